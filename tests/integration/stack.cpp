#include "stack.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <librdkafka/rdkafka.h>

#include "transport/proc.hpp"

namespace cyme::test {

using namespace std::chrono_literals;

temp_dir::temp_dir() {
  char tmpl[] = "/tmp/cyme-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

bool has_ended(int32_t pid) {
  std::string stat;
  if (!read_capped(proc_path(pid, "stat"), 4096, stat).empty())
    return true;
  // The state follows the command's name, which ends with ')'.
  auto close = stat.rfind(')');
  return close != std::string::npos && stat.compare(close, 3, ") Z") == 0;
}

supervisor_settings test_settings() {
  supervisor_settings s;
  s.interval = 5s;
  s.wait_after_broker_revived = 10s;
  s.restart_max_rate = "100/m";
  return s;
}

namespace {

template <class T>
T unwrap(caf::expected<T> x, const char* what) {
  if (!x)
    throw std::runtime_error(std::string{what} + ": " + describe(x.error()));
  return std::move(*x);
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

/// The embedded cluster, unless CYME_TEST_KAFKA names a real broker.
std::optional<kafka::embedded_cluster> embedded_unless_real() {
  if (!env_or_empty("CYME_TEST_KAFKA").empty())
    return std::nullopt;
  return std::optional<kafka::embedded_cluster>{std::in_place};
}

/// Runs `deploy/kafka/kafka.sh ACTION DIR` (posix_spawn, no shell) and
/// waits for it; throws unless it exits with 0.
void run_kafka_script(const std::string& action, const std::string& dir) {
  std::string script = CYME_KAFKA_SCRIPT;
  std::vector<std::string> args{script, action, dir};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (int err = ::posix_spawn(&pid, script.c_str(), nullptr, nullptr,
                              argv.data(), environ);
      err != 0)
    throw std::runtime_error("spawning " + script + ": "
                             + std::strerror(err));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      throw std::runtime_error("waiting for " + script + ": "
                               + std::strerror(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(script + " " + action + " " + dir + " failed");
}

/// The sum of the end offsets (high watermarks) of `topic`'s partitions; 0
/// when the topic does not exist. Asks for all topics' metadata, so nothing
/// is auto-created.
int64_t end_offsets(rd_kafka_t* rk, const std::string& topic) {
  const rd_kafka_metadata_t* md = nullptr;
  if (auto err = rd_kafka_metadata(rk, 1, nullptr, &md, 10000);
      err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("metadata: " + std::string{rd_kafka_err2str(err)});
  int partitions = 0;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (topic == md->topics[i].topic && md->topics[i].err == 0)
      partitions = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  int64_t total = 0;
  // A topic just created may have no leader this client knows of yet (a
  // real broker answers "Not leader for partition" until its metadata
  // catches up): asked again until a deadline.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    for (;;) {
      auto err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low,
                                                  &high, 10000);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        break;
      bool transient = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
                       || err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE
                       || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
      if (!transient || std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error("watermarks of " + topic + ": "
                                 + rd_kafka_err2str(err));
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
    total += high;
  }
  return total;
}

} // namespace

template <class T, class Handle, class... Ts>
T stack::ask(const Handle& dest, Ts&&... xs) {
  T result;
  bool ok = false;
  std::string error;
  self->request(dest, std::chrono::seconds{90}, std::forward<Ts>(xs)...)
    .receive(
      [&](T& x) {
        result = std::move(x);
        ok = true;
      },
      [&](caf::error& err) { error = describe(err); });
  if (!ok)
    throw std::runtime_error("request failed: " + error);
  return result;
}

stack::stack(supervisor_settings settings, std::string worker_program,
             std::chrono::milliseconds broker_health_interval,
             uint32_t standby_workers)
  : cluster(embedded_unless_real()),
    sys(cfg),
    self(sys),
    real_bootstrap_(env_or_empty("CYME_TEST_KAFKA")),
    real_dir_(env_or_empty("CYME_TEST_KAFKA_DIR")),
    producer_(kafka::base_config(bootstrap())) {
  if (real_kafka()) {
    static bool told = false;
    if (!told) {
      told = true;
      std::cerr << "cyme test stack: real Kafka broker at " << real_bootstrap_
                << " (CYME_TEST_KAFKA), run in "
                << (real_dir_.empty() ? "?" : real_dir_)
                << " (CYME_TEST_KAFKA_DIR)\n";
    }
  }
  store = unwrap(spawn_model_store(sys, (dir.path / "model.db").string()),
                 "model store");
  control_bus_settings bus_settings;
  bus_settings.default_broker = bootstrap();
  bus_settings.branch_id = "itest";
  bus_settings.reply_fetch_wait_ms = 5;
  bus_settings.health_interval = broker_health_interval;
  bus = unwrap(spawn_control_bus(sys, bus_settings), "control bus");
  driver_settings.root = dir.path / "instances";
  driver_settings.worker_program = worker_program;
  driver_settings.log_program = CYME_LOG_PROGRAM;
  driver_settings.default_broker = bootstrap();
  driver_settings.extra_args = {"--control-fetch-wait-ms", "5",
                                "--keepalive-ms", "500", "--exec", "/bin/cat",
                                "--exec-timeout-ms", "5000"};
  driver_settings.standby_workers = standby_workers;
  driver = unwrap(spawn_process_driver(sys, driver_settings), "driver");
  settings.set_as_current = false;
  sup = unwrap(spawn_supervisor(sys, settings,
                                supervisor_seams{driver, bus, store}),
               "supervisor")
          .core;
  listener_ = sys.spawn(
    [log = events_](caf::event_based_actor*) -> caf::behavior {
      return {[log](supervisor_event& ev) {
        std::lock_guard<std::mutex> guard{log->mtx};
        log->events.push_back(std::move(ev));
      }};
    });
  caf::anon_send(sup, subscribe_atom::value,
                 caf::actor_cast<event_listener>(listener_));
  if (auto err = producer_.ensure_topics({"cyme.results"}, 1, 10000);
      !err.empty())
    throw std::runtime_error(err);
  results_reader_ = std::make_unique<kafka::topic_reader>(
    kafka::base_config(bootstrap()), "cyme.results");
}

stack::~stack() {
  // A test that failed during a broker outage leaves the broker down: bring
  // it back for the teardown and for the tests after this one.
  if (broker_is_down_) {
    try {
      broker_up();
    } catch (const std::exception& e) {
      std::cerr << "cyme test stack: " << e.what() << "\n";
    }
  }
  // Stop every worker before the parts go away.
  try {
    auto specs = ask<std::vector<instance_spec>>(store, list_atom::value);
    std::vector<std::string> names;
    for (auto& s : specs)
      names.push_back(s.name);
    ask<supervisor_status>(sup, pause_atom::value);
    for (auto& n : names)
      ask<int32_t>(driver, stop_atom::value, n);
  } catch (const std::exception&) {
    // Tear down anyway.
  }
  for (auto h : {caf::actor_cast<caf::actor>(sup), caf::actor_cast<caf::actor>(driver),
                 caf::actor_cast<caf::actor>(bus), caf::actor_cast<caf::actor>(store),
                 listener_})
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
}

instance_spec stack::put(const std::string& name,
                         std::vector<std::string> queues, uint32_t max,
                         uint32_t min) {
  instance_spec spec;
  spec.name = name;
  spec.app = "itest";
  spec.queues = std::move(queues);
  spec.max_concurrency = max;
  spec.min_concurrency = min;
  put(spec);
  return spec;
}

void stack::put(const instance_spec& spec) {
  ask<instance_spec>(store, put_instance_atom::value, spec);
}

instance_spec stack::get(const std::string& name) {
  auto specs = ask<std::vector<instance_spec>>(store, get_atom::value,
                                               std::vector<std::string>{name});
  if (specs.size() != 1)
    throw std::runtime_error("no spec for " + name);
  return specs.front();
}

std::vector<action_report> stack::verify(std::vector<std::string> names,
                                         bool ratelimit) {
  return ask<std::vector<action_report>>(sup, verify_atom::value,
                                         std::move(names), ratelimit);
}

std::vector<action_report> stack::shutdown(std::vector<std::string> names) {
  return ask<std::vector<action_report>>(sup, shutdown_atom::value,
                                         std::move(names));
}

instance_status stack::status(const std::string& name) {
  return ask<instance_status>(sup, status_atom::value, name);
}

supervisor_status stack::supervisor() {
  return ask<supervisor_status>(sup, status_atom::value);
}

size_t stack::events(event_kind kind, const std::string& instance) {
  std::lock_guard<std::mutex> guard{events_->mtx};
  size_t n = 0;
  for (auto& ev : events_->events)
    if (ev.kind == kind && (instance.empty() || ev.instance == instance))
      ++n;
  return n;
}

std::vector<supervisor_event> stack::event_log() {
  std::lock_guard<std::mutex> guard{events_->mtx};
  return events_->events;
}

std::vector<control_reply> stack::command(control_command cmd) {
  return ask<std::vector<control_reply>>(bus, command_atom::value,
                                         std::move(cmd));
}

bool stack::pings(const std::string& name, std::chrono::milliseconds timeout) {
  control_command cmd;
  cmd.op = control_op::ping;
  cmd.destinations = {name};
  cmd.timeout = timeout;
  try {
    return command(cmd).size() == 1;
  } catch (const std::exception&) {
    return false;
  }
}

worker_stats stack::stats(const std::string& name) {
  control_command cmd;
  cmd.op = control_op::stats;
  cmd.destinations = {name};
  cmd.timeout = 2s;
  auto replies = command(cmd);
  if (replies.size() != 1 || !replies.front().ok)
    throw std::runtime_error("no stats from " + name);
  return replies.front().stats;
}

int32_t stack::pid_of(const std::string& name) {
  return ask<int32_t>(driver, alive_atom::value, name);
}

std::vector<std::string> stack::send_tasks(const std::string& queue, size_t n,
                                           const std::string& handler,
                                           const std::string& args_json) {
  if (baseline_.count(queue) == 0)
    baseline_[queue] = end_offsets(producer_.handle(), queue);
  std::vector<std::string> ids;
  static uint64_t counter = 0;
  // Unique across runs: a real broker may still hold tasks of an earlier run.
  static const std::string run = std::to_string(::getpid()) + "."
                                 + std::to_string(std::chrono::system_clock::now()
                                                    .time_since_epoch()
                                                    .count() % 1000000007);
  for (size_t i = 0; i < n; ++i) {
    task_message t;
    t.id = queue + "-" + run + "-" + std::to_string(++counter);
    t.handler = handler;
    t.args_json = args_json;
    if (auto err = producer_.produce(queue, t.id, encode_task(t)); !err.empty())
      throw std::runtime_error("produce: " + err);
    ids.push_back(t.id);
  }
  producer_.flush(10000);
  return ids;
}

void stack::send_raw(const std::string& queue, const std::string& key,
                     const std::string& bytes) {
  if (baseline_.count(queue) == 0)
    baseline_[queue] = end_offsets(producer_.handle(), queue);
  if (auto err = producer_.produce(queue, key, bytes); !err.empty())
    throw std::runtime_error("produce: " + err);
  producer_.flush(10000);
}

void stack::collect_results(std::chrono::milliseconds for_at_most) {
  auto deadline = std::chrono::steady_clock::now() + for_at_most;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = results_reader_->poll(10);
    if (!m)
      return;
    if (auto r = decode_result(m->value))
      results[r.value->id].push_back(std::move(*r.value));
  }
}

bool stack::wait_for_results(const std::vector<std::string>& ids,
                             std::chrono::milliseconds limit) {
  return wait_until(
    [&] {
      collect_results(200ms);
      for (auto& id : ids)
        if (results.count(id) == 0)
          return false;
      return true;
    },
    limit);
}

int64_t stack::committed(const std::string& queue) {
  auto total = kafka::committed_total(kafka::base_config(bootstrap()),
                                      "cyme.itest." + queue, queue, 5000);
  if (!total)
    return -1;
  auto base = baseline_.find(queue);
  return *total - (base != baseline_.end() ? base->second : 0);
}

std::string stack::bootstrap() const {
  return cluster ? cluster->bootstrap() : real_bootstrap_;
}

void stack::broker_down() {
  if (cluster) {
    cluster->set_broker_down(1);
  } else {
    if (real_dir_.empty())
      throw std::runtime_error("CYME_TEST_KAFKA_DIR is not set: cannot take "
                               "the broker at " + real_bootstrap_ + " down");
    run_kafka_script("pause", real_dir_);
  }
  broker_is_down_ = true;
}

void stack::broker_up() {
  if (cluster) {
    cluster->set_broker_up(1);
  } else {
    if (real_dir_.empty())
      throw std::runtime_error("CYME_TEST_KAFKA_DIR is not set: cannot bring "
                               "the broker at " + real_bootstrap_ + " up");
    run_kafka_script("resume", real_dir_);
  }
  broker_is_down_ = false;
}

void stack::lag_broker(std::chrono::milliseconds rtt) {
  if (!cluster)
    throw std::runtime_error("only the embedded cluster can be made to lag, "
                             "not the broker at " + real_bootstrap_);
  cluster->set_broker_rtt(1, rtt);
}

} // namespace cyme::test

#include "worker/worker.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <ctime>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <mutex>
#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <thread>
#include <utility>
#include <vector>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "messages/adoption.hpp"
#include "messages/names.hpp"
#include "messages/topics.hpp"
#include "messages/wall_clock.hpp"
#include "messages/version.hpp"
#include "messages/wire.hpp"
#include "transport/kafka.hpp"
#include "transport/thread_name.hpp"
#include "worker/offset_tracker.hpp"
#include "worker/task_pool.hpp"

namespace cyme::worker {

namespace {

using json = nlohmann::json;

/// One log line on stderr (the driver sends it to the instance's log file).
void log_line(const std::string& name, const std::string& text) {
  auto t = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", std::gmtime(&t));
  std::string line = std::string{stamp} + "Z " + name + ": " + text + "\n";
  std::cerr << line << std::flush;
}

/// Replies are latency-bound: no batching delay.
kafka::config_map reply_config(kafka::config_map cfg) {
  cfg["linger.ms"] = "0";
  return cfg;
}

/// What all parts of one running worker share.
struct worker_context {
  const worker_options& opts;
  const handler_registry& handlers;
  kafka::config_map base;
  kafka::producer producer;
  task_pool pool;
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failed{0};
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  worker_context(const worker_options& o, const handler_registry& h)
    : opts(o),
      handlers(h),
      base(kafka::base_config(o.broker, o.kafka_properties)),
      producer(reply_config(base)),
      pool(o.max_concurrency, o.min_concurrency, o.keepalive) {
  }

  void log(const std::string& text) const {
    log_line(opts.name.empty() ? std::string{"standby"} : opts.name, text);
  }
};

/// Publishes a task's result. One that would pass the wire limit is
/// replaced by a FAILURE saying so: a branch would drop it.
void publish_result(worker_context& ctx, task_result r) {
  auto bytes = encode_result(r);
  if (bytes.size() > max_wire_message) {
    r.state = task_state::failure;
    r.result_json = "null";
    r.error = "result of " + std::to_string(bytes.size())
              + " bytes exceeds the limit of "
              + std::to_string(max_wire_message);
    bytes = encode_result(r);
  }
  // Counted by the state published.
  (r.state == task_state::success ? ctx.done : ctx.failed) += 1;
  if (auto err = ctx.producer.produce(ctx.opts.results_topic, r.id, bytes);
      !err.empty())
    ctx.log("result of " + r.id + " not published: " + err);
}

/// Runs one task and publishes its result.
void run_task(worker_context& ctx, const std::string& queue,
              const kafka::message& m) {
  task_result r;
  r.instance = ctx.opts.name;
  r.queue = queue;
  r.started_at_ms = wall_now_ms();
  auto task = decode_task(m.value);
  if (!task) {
    ctx.log("invalid task at " + queue + "/" + std::to_string(m.partition)
            + "@" + std::to_string(m.offset) + ": " + task.error);
    r.id = task_id_of(m.value);
    if (r.id.empty()) {
      // No id to answer to: counted, committed past.
      ctx.failed += 1;
      return;
    }
    r.state = task_state::failure;
    r.error = "invalid task: " + task.error;
    r.finished_at_ms = wall_now_ms();
    publish_result(ctx, std::move(r));
    return;
  }
  r.id = task.value->id;
  auto* handler = ctx.handlers.find(task.value->handler);
  if (handler == nullptr) {
    r.state = task_state::failure;
    r.error = "unknown handler '" + task.value->handler.substr(0, 64) + "'";
  } else {
    try {
      auto args = json::parse(task.value->args_json);
      r.result_json = (*handler)(args).dump();
    } catch (const std::exception& e) {
      r.state = task_state::failure;
      r.error = e.what();
    } catch (...) {
      r.state = task_state::failure;
      r.error = "handler threw a non-standard exception";
    }
  }
  r.finished_at_ms = wall_now_ms();
  publish_result(ctx, std::move(r));
}

/// Consumes one queue as a member of its consumer group: hands each task to
/// the pool and stores its offset once it (and every task before it in its
/// partition) finished.
class queue_consumer {
public:
  queue_consumer(worker_context& ctx, std::string queue, std::string group)
    : ctx_(ctx), queue_(std::move(queue)) {
    auto cfg = ctx_.base;
    cfg["group.id"] = group;
    cfg["session.timeout.ms"] = "6000";
    cfg["heartbeat.interval.ms"] = "1000";
    cfg["fetch.wait.max.ms"] = "50";
    consumer_ = std::make_unique<kafka::group_consumer>(
      cfg, std::vector<std::string>{queue_}, [this] { wait_idle(); });
    thread_ = std::thread{[this] { loop(); }};
    name_thread(thread_, "cyme-queue");
  }

  ~queue_consumer() {
    stop();
  }

  const std::string& queue() const {
    return queue_;
  }

  /// Stops taking tasks, finishes those taken, commits, leaves the group.
  void stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }

  void request_stop() {
    stop_ = true;
  }

  bool stopped() const {
    return finished_;
  }

  uint32_t assigned() const {
    return consumer_->assigned();
  }

private:
  void loop() {
    while (!stop_) {
      auto m = consumer_->poll(100);
      if (!m)
        continue;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        tracker_.started(m->partition, m->offset);
        ++pending_;
      }
      auto msg = std::make_shared<kafka::message>(std::move(*m));
      bool taken = ctx_.pool.submit([this, msg] {
        run_task(ctx_, queue_, *msg);
        finish(msg->partition, msg->offset);
      });
      if (!taken) {
        // The task stays "running" for the tracker, so its offset is never
        // committed and it is redelivered.
        std::lock_guard<std::mutex> guard{mtx_};
        --pending_;
        idle_.notify_all();
        break;
      }
    }
    wait_idle();
    consumer_->close();
    finished_ = true;
  }

  void finish(int32_t partition, int64_t offset) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto next = tracker_.finished(partition, offset))
      consumer_->store_offset(queue_, partition, *next);
    --pending_;
    idle_.notify_all();
  }

  void wait_idle() {
    std::unique_lock<std::mutex> lock{mtx_};
    idle_.wait(lock, [this] { return pending_ == 0; });
  }

  worker_context& ctx_;
  std::string queue_;
  std::unique_ptr<kafka::group_consumer> consumer_;
  std::mutex mtx_;
  std::condition_variable idle_;
  offset_tracker tracker_;
  size_t pending_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

/// The worker's queues, its direct queue first, in the order added.
class consumer_set {
public:
  explicit consumer_set(worker_context& ctx) : ctx_(ctx) {
  }

  ~consumer_set() {
    stop_all();
  }

  std::vector<std::string> queues() const {
    std::vector<std::string> out;
    for (auto& c : active_)
      out.push_back(c->queue());
    return out;
  }

  std::map<std::string, uint32_t> assignments() const {
    std::map<std::string, uint32_t> out;
    for (auto& c : active_)
      out[c->queue()] = c->assigned();
    return out;
  }

  bool has(const std::string& queue) const {
    return std::any_of(active_.begin(), active_.end(),
                       [&](auto& c) { return c->queue() == queue; });
  }

  /// Starts consuming `queue` (creating its topic if missing). Empty string
  /// on success.
  std::string add(const std::string& queue, int partitions,
                  const std::string& group) {
    if (has(queue))
      return {};
    if (auto err = ctx_.producer.ensure_topics({queue}, partitions, 5000);
        !err.empty())
      return err;
    try {
      active_.push_back(std::make_unique<queue_consumer>(ctx_, queue, group));
    } catch (const std::exception& e) {
      return e.what();
    }
    ctx_.log("consuming from " + queue);
    return {};
  }

  /// Stops consuming `queue` in the background: running tasks finish and
  /// are committed while the worker keeps answering.
  void cancel(const std::string& queue) {
    auto i = std::find_if(active_.begin(), active_.end(),
                          [&](auto& c) { return c->queue() == queue; });
    if (i == active_.end())
      return;
    (*i)->request_stop();
    retiring_.push_back(std::move(*i));
    active_.erase(i);
    ctx_.log("cancelled consuming from " + queue);
  }

  /// Joins consumers that finished retiring.
  void reap() {
    retiring_.erase(std::remove_if(retiring_.begin(), retiring_.end(),
                                   [](auto& c) {
                                     if (!c->stopped())
                                       return false;
                                     c->stop();
                                     return true;
                                   }),
                    retiring_.end());
  }

  void stop_all() {
    for (auto& c : active_)
      c->request_stop();
    for (auto& c : active_)
      c->stop();
    for (auto& c : retiring_)
      c->stop();
    active_.clear();
    retiring_.clear();
  }

private:
  worker_context& ctx_;
  std::vector<std::unique_ptr<queue_consumer>> active_;
  std::vector<std::unique_ptr<queue_consumer>> retiring_;
};

std::string group_of(const worker_options& opts, const std::string& queue) {
  return "cyme." + opts.app + "." + queue;
}

worker_stats stats_of(worker_context& ctx, const consumer_set& consumers) {
  worker_stats s;
  s.pid = static_cast<int32_t>(::getpid());
  s.uptime_ms = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - ctx.started)
      .count());
  s.queues = consumers.queues();
  s.autoscale_max = ctx.pool.max();
  s.autoscale_min = ctx.pool.min();
  s.concurrency = ctx.pool.size();
  s.tasks_done = ctx.done;
  s.tasks_failed = ctx.failed;
  s.partitions = consumers.assignments();
  return s;
}

/// Answers one command addressed to this worker.
control_reply handle(worker_context& ctx, consumer_set& consumers,
                     const control_command& cmd, bool& shutdown) {
  control_reply r;
  r.instance = ctx.opts.name;
  auto dq = direct_queue(ctx.opts.name);
  switch (cmd.op) {
    case control_op::ping:
      break;
    case control_op::stats:
      r.stats = stats_of(ctx, consumers);
      break;
    case control_op::active_queues:
      r.queues = consumers.queues();
      break;
    case control_op::add_consumer:
      if (auto err = consumers.add(cmd.queue, ctx.opts.queue_partitions,
                                   group_of(ctx.opts, cmd.queue));
          !err.empty()) {
        r.ok = false;
        r.error = err;
      }
      r.queues = consumers.queues();
      break;
    case control_op::cancel_consumer:
      if (cmd.queue == dq) {
        r.ok = false;
        r.error = "the direct queue is never cancelled";
      } else {
        consumers.cancel(cmd.queue);
      }
      r.queues = consumers.queues();
      break;
    case control_op::autoscale:
      ctx.pool.set_bounds(cmd.max_concurrency, cmd.min_concurrency);
      r.stats.autoscale_max = cmd.max_concurrency;
      r.stats.autoscale_min = cmd.min_concurrency;
      ctx.log("autoscale " + std::to_string(cmd.max_concurrency) + ","
              + std::to_string(cmd.min_concurrency));
      break;
    case control_op::shutdown:
      shutdown = true;
      break;
  }
  return r;
}

/// Blocks SIGTERM and SIGINT in every thread and returns a signalfd that
/// reports them, so shutdown happens in the control loop, not in a handler.
int termination_fd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

bool terminated(int fd) {
  signalfd_siginfo info;
  return ::read(fd, &info, sizeof(info)) == sizeof(info);
}

} // namespace

std::string options_problem(const worker_options& o) {
  if (o.standby) {
    if (!o.name.empty() || !o.queues.empty())
      return "a --standby worker takes its name and queues from its "
             "adoption, not from --name and --queues (its branch names it "
             "with a placeholder only)";
  } else if (o.name.empty()) {
    return "--name is required";
  } else if (auto p = name_problem("instance", o.name); !p.empty()) {
    return p;
  }
  if (auto p = name_problem("app", o.app); !p.empty())
    return p;
  if (o.broker.empty())
    return "--broker is required";
  if (auto p = broker_problem(o.broker); !p.empty())
    return p;
  instance_spec spec;
  spec.name = o.standby ? "standby" : o.name;
  spec.app = o.app;
  spec.queues = o.queues;
  spec.max_concurrency = o.max_concurrency;
  spec.min_concurrency = o.min_concurrency;
  if (auto p = spec_problem(spec); !p.empty())
    return p;
  if (auto p = name_problem("control topic", o.control_topic); !p.empty())
    return p;
  if (auto p = name_problem("results topic", o.results_topic); !p.empty())
    return p;
  if (o.queue_partitions < 1 || o.queue_partitions > 1000)
    return "--queue-partitions must be 1 to 1000";
  if (o.control_since_ms < -1)
    return "--control-since-ms must be a time in ms since the epoch";
  if (o.control_fetch_wait_ms < 1 || o.control_fetch_wait_ms > 10000)
    return "--control-fetch-wait-ms must be 1 to 10000";
  if (o.max_concurrency > 10000)
    return "--max must be at most 10000";
  if (o.exec.timeout.count() <= 0)
    return "--exec-timeout-ms must be positive";
  return {};
}

worker_options parse_worker_options(int argc, char** argv) {
  worker_options o;
  CLI::App app{"cyme-worker: one worker instance of a cyme fleet"};
  int64_t keepalive_ms = o.keepalive.count();
  int64_t exec_timeout_ms = o.exec.timeout.count();
  app.add_option("--name", o.name, "instance name (required but with "
                                   "--standby)");
  app.add_option("--app", o.app, "app the instance belongs to")->required();
  app.add_option("--broker", o.broker, "bootstrap servers host:port[,...]")
    ->required();
  app.add_option("--queues", o.queues, "queues to consume, comma-separated")
    ->delimiter(',');
  app.add_option("--max", o.max_concurrency, "most task runners");
  app.add_option("--min", o.min_concurrency, "fewest task runners");
  app.add_option("--control-topic", o.control_topic, "topic of commands");
  app.add_option("--results-topic", o.results_topic, "topic of task results");
  app.add_option("--queue-partitions", o.queue_partitions,
                 "partitions of queue topics this worker creates");
  app.add_option("--control-since-ms", o.control_since_ms,
                 "read control commands made from this time on (ms since "
                 "the epoch; the branch gives its start of this process) and "
                 "ignore older ones");
  app.add_option("--control-fetch-wait-ms", o.control_fetch_wait_ms,
                 "fetch.wait.max.ms of the control reader");
  app.add_option("--keepalive-ms", keepalive_ms,
                 "idle time after which a runner above min leaves");
  app.add_option("--instance-dir", o.instance_dir,
                 "the folder its branch keeps for this instance (marks whose "
                 "worker this process is)");
  app.add_option("--exec", o.exec.program,
                 "program the exec handler runs (absolute path)");
  app.add_option("--exec-timeout-ms", exec_timeout_ms,
                 "time limit of an exec task");
  app.add_flag("--standby", o.standby,
               "get on the bus, then wait for the adoption that names the "
               "instance on the socket that is stdin (started so by a "
               "branch, ahead of need)");
  std::string kafka_config;
  app.add_option("--kafka-config", kafka_config,
                 "file of librdkafka properties (key=value lines) for every "
                 "Kafka client: security.protocol, sasl.*, ssl.*");
  // A branch may pass flags a worker of an older version does not know.
  app.allow_extras();
  app.set_version_flag("--version", version_text("cyme-worker"));
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    std::exit(app.exit(e));
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    std::exit(2);
  }
  // A branch names a standby with the placeholder it writes the instance
  // over once adopted (see run_worker_main).
  if (o.standby && o.name == standby_placeholder())
    o.name.clear();
  o.keepalive = std::chrono::milliseconds{keepalive_ms};
  o.exec.timeout = std::chrono::milliseconds{exec_timeout_ms};
  if (!kafka_config.empty()) {
    std::ifstream in{kafka_config, std::ios::binary};
    std::string text(64 * 1024 + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    std::string problem;
    if (!in.eof())
      problem = in.is_open() ? "larger than 64 KiB" : "cannot be read";
    else
      problem = kafka::parse_properties(text, o.kafka_properties);
    if (!problem.empty()) {
      std::cerr << "cyme-worker: --kafka-config " << kafka_config << ": "
                << problem << "\n";
      std::exit(2);
    }
  }
  if (auto p = options_problem(o); !p.empty()) {
    std::cerr << "cyme-worker: " << p << "\n";
    std::exit(2);
  }
  return o;
}

namespace {

/// The start-up of a worker, piece by piece: when each piece was done,
/// from the moment the branch started the process when it says so
/// (--control-since-ms, to the millisecond), else from the start of
/// run_worker. Pieces overlap: the control reader is made while the
/// producer is, and the task consumers start while the control loop runs.
/// Said in its log once it answers its first ping, so how long a
/// replacement takes to get onto the bus can be read per piece
/// (BENCHMARKS.md).
class startup_clock {
public:
  /// `spawned_ms`: when the branch started the process (ms since the
  /// epoch), -1 when not known.
  explicit startup_clock(int64_t spawned_ms) {
    if (spawned_ms >= 0) {
      auto up = std::chrono::milliseconds{wall_now_ms() - spawned_ms};
      start_ -= up;
      pieces_.emplace_back("process up", start_ + up);
    }
  }

  void mark(const char* piece) {
    auto at = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> guard{mtx_};
    pieces_.emplace_back(piece, at);
  }

  /// "producer at 1.2 ms, control reader at 3.4 ms, ...".
  std::string text() const {
    std::lock_guard<std::mutex> guard{mtx_};
    std::string out;
    char buf[96];
    for (auto& [piece, at] : pieces_) {
      std::snprintf(buf, sizeof buf, "%s%s at %.1f ms", out.empty() ? "" : ", ",
                    piece,
                    std::chrono::duration<double, std::milli>(at - start_).count());
      out += buf;
    }
    return out;
  }

private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  mutable std::mutex mtx_;
  std::vector<std::pair<const char*, std::chrono::steady_clock::time_point>> pieces_;
};

/// The control reader, positioned at the end of the control topic, or why
/// it could not be made.
std::unique_ptr<kafka::topic_reader> open_control_reader(const kafka::config_map& cfg,
                                                         const std::string& topic,
                                                         int64_t since_ms,
                                                         std::string& err) {
  try {
    return std::make_unique<kafka::topic_reader>(cfg, topic, 10000, false,
                                                 since_ms);
  } catch (const std::exception& e) {
    err = e.what();
    return nullptr;
  }
}

// -- standby ------------------------------------------------------------------

/// The descriptor a standby reads its adoption from: its stdin, a socket
/// its driver holds the other end of.
constexpr int adoption_fd = 0;

/// Topics a standby looks up ahead: the results topic and the reply
/// topics of the commands it sees (one per branch).
constexpr size_t max_known_topics = 64;

/// The commands a standby keeps of those it read while it waited: the
/// newest, from the last `kept_commands_age_ms`. Once adopted it handles
/// those made since its adoption's control_since_ms (its predecessor's
/// exit) like any it reads later.
constexpr size_t max_kept_commands = 1024;
constexpr int64_t kept_commands_age_ms = 5000;

/// The command line the worker was started with, when run_worker_main
/// started it: a standby writes its instance over its placeholders there
/// once adopted, so `ps` and /proc show the instance like any worker's.
int command_line_count = 0;
char** command_line_words = nullptr;

/// Writes `value` over the argument after `flag` on the command line, in
/// place, when it fits.
void overwrite_argument_after(std::string_view flag, const std::string& value) {
  for (int i = 1; i + 1 < command_line_count; ++i) {
    if (flag != command_line_words[i])
      continue;
    auto* at = command_line_words[i + 1];
    auto room = std::strlen(at);
    if (value.size() > room)
      return;
    std::memcpy(at, value.data(), value.size());
    std::memset(at + value.size(), 0, room - value.size());
    return;
  }
}

/// Closes a received descriptor when it goes.
struct unique_log_fd {
  int fd;
  ~unique_log_fd() {
    ::close(fd);
  }
};

/// Writes `value` over the value of `key` in this process's environment,
/// in place: the block /proc/<pid>/environ shows. False when the entry is
/// missing or its value is shorter than `value`.
bool overwrite_environment(std::string_view key, const std::string& value) {
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry{*e};
    if (entry.size() <= key.size() || entry.substr(0, key.size()) != key
        || entry[key.size()] != '=')
      continue;
    auto room = entry.size() - key.size() - 1;
    if (value.size() > room)
      return false;
    auto* at = *e + key.size() + 1;
    std::memcpy(at, value.data(), value.size());
    std::memset(at + value.size(), 0, room - value.size());
    return true;
  }
  return false;
}

/// Makes this standby the worker of the instance `a` names: its output
/// goes to the instance's log, it runs in the instance's folder, and its
/// environment names the instance. Empty on success, else why not.
std::string take_adoption(worker_options& opts, const adoption& a, int log_fd) {
  // What fails before the output moves is said in the standby's own log.
  unique_log_fd log{log_fd};
  if (::chdir(a.instance_dir.c_str()) != 0)
    return "cannot enter " + a.instance_dir + ": " + std::strerror(errno);
  if (!overwrite_environment("CYME_INSTANCE", a.name)
      || !overwrite_environment("CYME_INSTANCE_DIR", a.instance_dir))
    return "no room in CYME_INSTANCE or CYME_INSTANCE_DIR for instance '"
           + a.name + "' (a standby starts with placeholders)";
  if (::dup2(log.fd, 1) < 0 || ::dup2(log.fd, 2) < 0)
    return "cannot write to the instance's log: "
           + std::string{std::strerror(errno)};
  overwrite_argument_after("--name", a.name);
  overwrite_argument_after("--instance-dir", a.instance_dir);
  opts.name = a.name;
  opts.queues = a.queues;
  opts.min_concurrency = a.min_concurrency;
  opts.max_concurrency = a.max_concurrency;
  opts.instance_dir = a.instance_dir;
  opts.control_since_ms = a.control_since_ms;
  return {};
}

/// What a look at the adoption socket found.
enum class adoption_look { waiting, adopted, ended };

/// Takes the adoption waiting on the socket, if one does; `status` is the
/// exit status when the wait ended (0: the driver is gone; 2: an unusable
/// adoption).
adoption_look look_for_adoption(worker_options& opts, worker_context& ctx,
                                int& status) {
  adoption a;
  int log_fd = -1;
  std::string problem;
  switch (receive_adoption(adoption_fd, a, log_fd, problem)) {
    case adoption_read::nothing:
      return adoption_look::waiting;
    case adoption_read::adopted:
      problem = take_adoption(opts, a, log_fd);
      if (problem.empty())
        return adoption_look::adopted;
      break;
    case adoption_read::ended:
      break;
  }
  if (!problem.empty())
    ctx.log(problem);
  status = problem.empty() ? 0 : 2;
  return adoption_look::ended;
}

/// A standby's wait: it says it is ready, then keeps reading the control
/// topic, so that it stays positioned at the end, until its adoption
/// comes. It sleeps on its socket, its signals and the control reader at
/// once, so it takes the adoption the moment it comes. What it reads
/// meanwhile it keeps for a while (max_kept_commands): once adopted, those
/// are in `pending`, oldest first, for the worker to handle; those made
/// before the adoption's control_since_ms are then skipped like any
/// earlier command. Returns -1 once adopted, else the exit status (0:
/// terminated or the driver is gone; 2: an unusable adoption).
int wait_for_adoption(worker_options& opts, worker_context& ctx,
                      kafka::topic_reader& control, int term_fd,
                      std::deque<kafka::message>& pending) {
  ctx.producer.know_topic(opts.results_topic);
  int wake[2];
  if (::pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
    ctx.log(std::string{"cannot make a pipe: "} + std::strerror(errno));
    return 2;
  }
  control.notify(wake[1]);
  struct wake_pipe {
    kafka::topic_reader& control;
    int ends[2];
    ~wake_pipe() {
      control.notify(-1);
      ::close(ends[0]);
      ::close(ends[1]);
    }
  } guard{control, {wake[0], wake[1]}};
  static constexpr char ready[] = "ready\n";
  if (::send(adoption_fd, ready, sizeof ready - 1, MSG_NOSIGNAL) < 0) {
    ctx.log(std::string{"no socket to its branch on stdin: "}
            + std::strerror(errno));
    return 2;
  }
  ctx.log("standby on the bus, pid " + std::to_string(::getpid())
          + ", waiting for its adoption");
  int status = 0;
  for (;;) {
    // Served on every turn: a busy control topic keeps the loop from
    // sleeping.
    if (term_fd >= 0 && terminated(term_fd))
      return 0;
    ctx.producer.poll(0);
    auto m = control.poll(0);
    if (m) {
      // The topic it wants replies on is looked up now, so that the first
      // reply once adopted does not wait for that.
      bool addressed = false;
      if (auto cmd = decode_command_for(m->value, {}, addressed);
          cmd && ctx.producer.known_topics() < max_known_topics)
        ctx.producer.know_topic(cmd.value->reply_to);
      pending.push_back(std::move(*m));
      auto oldest = wall_now_ms() - kept_commands_age_ms;
      while (!pending.empty()
             && (pending.size() > max_kept_commands
                 || (pending.front().timestamp_ms >= 0
                     && pending.front().timestamp_ms < oldest)))
        pending.pop_front();
    }
    switch (look_for_adoption(opts, ctx, status)) {
      case adoption_look::adopted:
        return -1;
      case adoption_look::ended:
        return status;
      case adoption_look::waiting:
        break;
    }
    if (m)
      continue;
    pollfd fds[] = {{adoption_fd, POLLIN, 0},
                    {wake[0], POLLIN, 0},
                    {term_fd, POLLIN, 0}};
    if (::poll(fds, term_fd >= 0 ? 3 : 2, 1000) < 0 && errno != EINTR) {
      ctx.log(std::string{"cannot wait for its adoption: "}
              + std::strerror(errno));
      return 2;
    }
    char drained[64];
    while (::read(wake[0], drained, sizeof drained) > 0)
      continue;
  }
}

} // namespace

int run_worker(worker_options opts, const handler_registry& handlers) {
  std::optional<startup_clock> startup;
  startup.emplace(opts.control_since_ms);
  // A program run by exec may exit without reading its stdin: the write
  // fails with EPIPE instead of killing the worker.
  ::signal(SIGPIPE, SIG_IGN);
  int term_fd = termination_fd();
  try {
    auto control_cfg = kafka::base_config(opts.broker, opts.kafka_properties);
    control_cfg["fetch.wait.max.ms"] = std::to_string(opts.control_fetch_wait_ms);
    // A replacement is on the bus once its control reader is positioned:
    // that comes first, made while the producer is.
    std::string first_err;
    auto first_reader = std::async(std::launch::async, [&] {
      auto r = open_control_reader(control_cfg, opts.control_topic,
                                   opts.control_since_ms, first_err);
      startup->mark("control reader");
      return r;
    });
    worker_context ctx{opts, handlers};
    startup->mark("producer");
    auto reader = first_reader.get();
    // A broker that just started, or a topic not made yet (no leader
    // elected), may not serve at once: make the topics, retry for a while.
    auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    std::string err = first_err;
    while (!reader) {
      if (term_fd >= 0 && terminated(term_fd)) {
        ctx.log("terminated by signal while waiting for broker "
                + opts.broker);
        return 0;
      }
      if (std::chrono::steady_clock::now() >= give_up_at) {
        ctx.log("cannot reach broker " + opts.broker + ": " + err);
        return 1;
      }
      ctx.log("waiting for broker " + opts.broker + ": " + err);
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
      // Both made in one request, with the partitions both are made with.
      static_assert(topics::control_partitions == topics::results_partitions);
      err = ctx.producer.ensure_topics({opts.control_topic, opts.results_topic},
                                       topics::control_partitions, 10000);
      if (err.empty())
        reader = open_control_reader(control_cfg, opts.control_topic,
                                     opts.control_since_ms, err);
    }
    auto& control = *reader;
    std::deque<kafka::message> pending;
    if (opts.standby) {
      if (auto status = wait_for_adoption(opts, ctx, control, term_fd, pending);
          status >= 0)
        return status;
      // Its start-up is counted from the adoption, its uptime too.
      startup.emplace(opts.control_since_ms);
      startup->mark("adopted");
      ctx.log("adopted: this standby is the instance's worker now");
      ctx.started = std::chrono::steady_clock::now();
      ctx.pool.set_bounds(opts.max_concurrency, opts.min_concurrency);
    }
    // The task consumers start beside the control loop; a command that
    // reads or changes them (anything but ping) waits until they have.
    consumer_set consumers{ctx};
    std::future<void> consumers_started
      = std::async(std::launch::async, [&] {
          // Results go to a topic that must exist before the first task
          // ends; made here, off the way to the first pong.
          if (auto e = ctx.producer.ensure_topics({opts.results_topic},
                                                             topics::results_partitions,
                                                             10000);
              !e.empty())
            ctx.log("cannot make " + opts.results_topic + ": " + e);
          auto dq = direct_queue(opts.name);
          if (auto e = consumers.add(dq, topics::direct_queue_partitions,
                                   group_of(opts, dq));
            !e.empty())
            throw std::runtime_error("cannot consume " + dq + ": " + e);
          for (auto& q : opts.queues)
            if (auto e = consumers.add(q, opts.queue_partitions, group_of(opts, q));
                !e.empty())
              ctx.log("cannot consume " + q + ": " + e);
          startup->mark("task consumers");
        });
    // Rethrows the direct queue's failure: the worker cannot run without it.
    auto wait_for_consumers = [&] {
      if (consumers_started.valid())
        consumers_started.get();
    };
    ctx.log("ready, pid " + std::to_string(::getpid()));
    bool shutdown = false;
    bool first_message = true;
    bool first_pong = true;
    while (!shutdown) {
      if (term_fd >= 0 && terminated(term_fd)) {
        ctx.log("terminated by signal");
        break;
      }
      if (consumers_started.valid()
          && consumers_started.wait_for(std::chrono::seconds{0})
               == std::future_status::ready)
        wait_for_consumers();
      if (!consumers_started.valid())
        consumers.reap();
      ctx.producer.poll(0);
      std::optional<kafka::message> m;
      if (!pending.empty()) {
        m = std::move(pending.front());
        pending.pop_front();
      } else {
        m = control.poll(50);
      }
      if (!m)
        continue;
      if (first_message) {
        startup->mark("first control message");
        first_message = false;
      }
      bool addressed = false;
      auto cmd = decode_command_for(m->value, opts.name, addressed);
      if (!cmd) {
        ctx.log("dropped control message at offset " + std::to_string(m->offset)
                + ": " + cmd.error);
        continue;
      }
      if (!addressed)
        continue;
      // Made before this process started: meant for an earlier one.
      if (opts.control_since_ms >= 0 && m->timestamp_ms >= 0
          && m->timestamp_ms < opts.control_since_ms)
        continue;
      if (cmd.value->command.op != control_op::ping)
        wait_for_consumers();
      reply_envelope reply;
      reply.id = cmd.value->id;
      reply.op = cmd.value->command.op;
      reply.reply = handle(ctx, consumers, cmd.value->command, shutdown);
      if (auto err = ctx.producer.produce(cmd.value->reply_to, reply.id,
                                          encode_reply(reply));
          !err.empty())
        ctx.log("reply to " + reply.id + " not sent: " + err);
      else if (first_pong && reply.op == control_op::ping) {
        first_pong = false;
        startup->mark("first pong");
        ctx.log("start-up: " + startup->text());
      }
      if (shutdown)
        ctx.log("shutdown requested");
    }
    wait_for_consumers();
    // Graceful: stop taking tasks, finish running ones, commit, leave.
    consumers.stop_all();
    ctx.pool.stop();
    ctx.producer.flush(5000);
    ctx.log("stopped after " + std::to_string(ctx.done.load()) + " done, "
            + std::to_string(ctx.failed.load()) + " failed");
  } catch (const std::exception& e) {
    log_line(opts.name, std::string{"cannot run: "} + e.what());
    return 1;
  }
  if (term_fd >= 0)
    ::close(term_fd);
  return 0;
}

int run_worker_main(int argc, char** argv, handler_registry handlers) {
  command_line_count = argc;
  command_line_words = argv;
  auto opts = parse_worker_options(argc, argv);
  add_builtin_handlers(handlers, opts.exec);
  return run_worker(opts, handlers);
}

} // namespace cyme::worker

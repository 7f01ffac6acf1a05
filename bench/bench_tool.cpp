// cyme-bench: the measuring tools bench/run.sh drives.
//
//   cyme-bench seed --db FILE --app A --queue Q --count N [--prefix P]
//       puts an app, its queue and N instances (P0000..) into a branch's
//       model before the branch starts.
//   cyme-bench rtt --broker B --instance NAME [--pings N] [--fetch-wait-ms W]
//       ping -> pong round trips through the broker, one at a time.
//   cyme-bench cpu --pid P [--pid Q ...] --seconds S
//       CPU each process used over S seconds, in % of one core.
//   cyme-bench produce --broker B --topic Q --count N
//       N no-op tasks (handler "echo", args null) onto queue topic Q.
//   cyme-bench acked --broker B --topic Q --count N [--clients C]
//       the same tasks, through the branch's task producer with its
//       settings, from C threads that each wait for the broker's
//       acknowledgement of one task before sending the next: the bus's
//       own limit for one task per request, without HTTP.
//   cyme-bench wire [--repeat N]
//       microseconds per message of the wire codecs, the direct forms
//       against the full JSON parser/encoder: a stats and a ping reply
//       (encode, decode) and a command to 5,000 instances as a worker
//       reads it.
//   cyme-bench presence --broker B --branches N [--seconds S]
//                       [--cluster-rate R]
//       N branches' presence (the part of cyme-branch that announces it
//       and follows the others) on a topic of their own, at the default
//       interval; once each sees all N, counts for S seconds what one
//       branch reads, every view that missed a live branch, and the CPU
//       the N took. --cluster-rate 0: every branch at the shortest
//       interval whatever N (the announcements before the rate).
//   cyme-bench results --broker B --queue Q --count N [--timeout-s T]
//       waits for N results of queue Q on cyme.results (reading from the
//       end of the topic as of its start) and reports the rate between the
//       first and the last finish time the worker recorded.
//
// Every figure is printed as one JSON object on stdout.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "bench/percentile.hpp"
#include "messages/names.hpp"
#include "messages/wire.hpp"
#include "store/model_db.hpp"
#include "transport/kafka.hpp"
#include "transport/presence.hpp"
#include "transport/task_producer.hpp"

using namespace cyme;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;
using cyme::bench::percentile;

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "cyme-bench: %s\n", why.c_str());
  std::exit(1);
}

void check_name(const char* what, const std::string& name) {
  if (auto p = name_problem(what, name); !p.empty()) {
    std::fprintf(stderr, "cyme-bench: %s\n", p.c_str());
    std::exit(2);
  }
}

// -- seed ---------------------------------------------------------------------

int seed(const std::string& db_path, const std::string& app,
         const std::string& queue, const std::string& prefix, int count) {
  check_name("app", app);
  check_name("queue", queue);
  auto db = model_db::open(db_path);
  if (!db)
    fail(db.error().text);
  auto& m = db.value();
  if (auto r = m.put_app(app, ""); !r)
    fail(r.error().text);
  if (auto r = m.put_queue(app, queue); !r && r.error().fault != model_fault::conflict)
    fail(r.error().text);
  for (int i = 0; i < count; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s%05d", prefix.c_str(), i);
    instance_spec spec;
    spec.name = name;
    spec.app = app;
    spec.queues = {queue};
    if (auto r = m.put_instance(spec); !r)
      fail(r.error().text);
  }
  std::printf("%s\n", json{{"seeded", count}, {"db", db_path}}.dump().c_str());
  return 0;
}

// -- rtt ----------------------------------------------------------------------

int rtt(const std::string& broker, const std::string& instance, int pings,
        int fetch_wait_ms, const std::string& label) {
  check_name("instance", instance);
  auto base = kafka::base_config(broker);
  auto pcfg = base;
  pcfg["linger.ms"] = "0";
  kafka::producer out{pcfg};
  auto reply_topic = "cyme.reply.bench-" + std::to_string(::getpid());
  if (auto err = out.ensure_topics({"cyme.control", reply_topic}, 1, 10000);
      !err.empty())
    fail(err);
  auto rcfg = base;
  rcfg["fetch.wait.max.ms"] = std::to_string(fetch_wait_ms);
  kafka::topic_reader in{rcfg, reply_topic};
  std::vector<double> rtts;
  int lost = 0;
  // A few unmeasured pings first: connections and leaders settle.
  for (int i = -5; i < pings; ++i) {
    command_envelope env;
    env.id = "rtt-" + std::to_string(i + 5);
    env.reply_to = reply_topic;
    env.command.op = control_op::ping;
    env.command.destinations = {instance};
    auto t0 = clock_type::now();
    if (auto err = out.produce("cyme.control", env.id, encode_command(env));
        !err.empty())
      fail(err);
    out.poll(0);
    bool got = false;
    auto deadline = t0 + std::chrono::seconds{5};
    while (!got && clock_type::now() < deadline) {
      auto m = in.poll(100);
      if (!m)
        continue;
      auto r = decode_reply(m->value);
      got = r && r.value->id == env.id;
    }
    if (!got) {
      lost += 1;
      continue;
    }
    if (i >= 0)
      rtts.push_back(
        std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  json j{{"figure", "control_rtt"},  {"label", label},
         {"n", rtts.size()},         {"lost", lost},
         {"median_ms", percentile(rtts, 0.5)},
         {"p90_ms", percentile(rtts, 0.9)},
         {"p99_ms", percentile(rtts, 0.99)}};
  std::printf("%s\n", j.dump().c_str());
  return rtts.empty() ? 1 : 0;
}

// -- cpu ----------------------------------------------------------------------

/// utime + stime of `pid` in clock ticks, or -1.
long long cpu_ticks(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(in, line))
    return -1;
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return -1;
  std::istringstream rest{line.substr(close + 2)};
  std::string field;
  long long utime = 0, stime = 0;
  // Fields after the command: state is field 3; utime 14, stime 15.
  for (int k = 3; k <= 15 && rest >> field; ++k) {
    if (k == 14)
      utime = std::stoll(field);
    if (k == 15)
      stime = std::stoll(field);
  }
  return utime + stime;
}

long rss_kb(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

int cpu(const std::vector<int>& pids, double seconds, const std::string& label) {
  std::vector<long long> before;
  for (int p : pids) {
    before.push_back(cpu_ticks(p));
    if (before.back() < 0)
      fail("no process " + std::to_string(p));
  }
  auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>{seconds});
  double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (size_t i = 0; i < pids.size(); ++i) {
    auto after = cpu_ticks(pids[i]);
    if (after < 0)
      fail("process " + std::to_string(pids[i]) + " ended during the measure");
    double used = static_cast<double>(after - before[i]) / hz;
    json j{{"figure", "cpu"},
           {"label", label},
           {"pid", pids[i]},
           {"seconds", wall},
           {"cpu_seconds", used},
           {"percent_of_core", 100.0 * used / wall},
           {"rss_kb", rss_kb(pids[i])}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

// -- tasks --------------------------------------------------------------------

int produce(const std::string& broker, const std::string& topic, int count) {
  check_name("queue", topic);
  auto cfg = kafka::base_config(broker);
  cfg["linger.ms"] = "5";
  cfg["queue.buffering.max.messages"] = "1000000";
  kafka::producer out{cfg};
  if (auto err = out.ensure_topics({topic}, 4, 10000); !err.empty())
    fail(err);
  auto t0 = clock_type::now();
  for (int i = 0; i < count; ++i) {
    task_message t;
    t.id = topic + "-" + std::to_string(i);
    t.handler = "echo";
    if (auto err = out.produce(topic, t.id, encode_task(t)); !err.empty())
      fail(err);
  }
  if (!out.flush(60000))
    fail("tasks not delivered within 60 s");
  double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("%s\n", json{{"produced", count}, {"topic", topic}, {"seconds", s}}
                        .dump()
                        .c_str());
  return 0;
}

int acked(const std::string& broker, const std::string& topic, int count,
          int clients) {
  check_name("queue", topic);
  task_producer out{task_producer::settings(kafka::base_config(broker))};
  if (auto err = out.ensure_topics({topic}, 4, 10000); !err.empty())
    fail(err);
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      std::mutex mtx;
      std::condition_variable cv;
      for (int i = next++; i < count; i = next++) {
        task_message t;
        t.id = topic + "-" + std::to_string(i);
        t.handler = "echo";
        bool done = false;
        std::vector<task_producer::item> one;
        one.emplace_back(t.id, encode_task(t));
        out.send(topic, std::move(one), [&](const std::string& error) {
          if (!error.empty())
            ++failed;
          std::lock_guard<std::mutex> guard{mtx};
          done = true;
          cv.notify_one();
        });
        std::unique_lock<std::mutex> lock{mtx};
        cv.wait(lock, [&] { return done; });
      }
    });
  for (auto& t : threads)
    t.join();
  double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("%s\n", json{{"figure", "acked"},
                           {"clients", clients},
                           {"tasks", count},
                           {"seconds", s},
                           {"tasks_per_s", std::lround(count / s)},
                           {"failed", failed.load()}}
                        .dump()
                        .c_str());
  return failed.load() == 0 ? 0 : 1;
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

int presence_growth(const std::string& broker, int branches, double seconds,
                    double cluster_rate) {
  presence_settings settings;
  settings.topic = "bench.presence." + std::to_string(branches) + "."
                   + std::to_string(::getpid()) + "."
                   + std::to_string(std::chrono::system_clock::now()
                                      .time_since_epoch()
                                      .count());
  settings.cluster_rate = cluster_rate;
  auto cfg = kafka::base_config(broker);
  auto n = static_cast<size_t>(branches);
  auto t0 = clock_type::now();
  std::vector<std::unique_ptr<presence>> all;
  for (int i = 0; i < branches; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "p%03d", i);
    std::string name = id;
    all.push_back(std::make_unique<presence>(cfg, settings, [name] {
      return branch_info{name, "http://" + name + ":8000", "", 0, 0};
    }));
  }
  auto all_see_all = [&] {
    return std::all_of(all.begin(), all.end(),
                       [&](auto& p) { return p->live().size() == n; });
  };
  while (!all_see_all()) {
    if (clock_type::now() - t0 > std::chrono::seconds{180})
      fail("the branches did not all see each other within 180 s");
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
  double converge_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  // Settle at the interval the cluster's size gives before counting.
  auto every = all[0]->live()[0].every;
  std::this_thread::sleep_for(every * 2);
  kafka::topic_reader reader{cfg, settings.topic};
  size_t read = 0, samples = 0, short_views = 0;
  double cpu0 = cpu_seconds();
  auto start = clock_type::now();
  auto next_sample = start;
  while (std::chrono::duration<double>(clock_type::now() - start).count() < seconds) {
    if (reader.poll(50))
      ++read;
    if (clock_type::now() >= next_sample) {
      next_sample += std::chrono::milliseconds{250};
      for (auto& p : all) {
        ++samples;
        if (p->live().size() < n)
          ++short_views;
      }
    }
  }
  double s = std::chrono::duration<double>(clock_type::now() - start).count();
  double cpu = cpu_seconds() - cpu0;
  every = all[0]->live()[0].every;
  double per_branch = static_cast<double>(read) / s;
  std::printf("%s\n", json{{"figure", "presence"},
                           {"branches", branches},
                           {"cluster_rate", cluster_rate},
                           {"every_ms", every.count()},
                           {"converge_s", std::round(converge_s * 10) / 10},
                           {"seconds", std::round(s * 10) / 10},
                           {"read_per_branch_per_s", std::round(per_branch * 100) / 100},
                           {"deliveries_per_s", std::round(per_branch * branches * 10) / 10},
                           {"views_sampled", samples},
                           {"views_missing_a_branch", short_views},
                           {"cpu_ms_per_branch_per_s",
                            std::round(cpu * 1000 / s / branches * 100) / 100}}
                        .dump()
                        .c_str());
  return short_views == 0 ? 0 : 1;
}

/// Median over `repeat` runs of `n` calls of `fn`, in µs per call.
template <class F>
double per_call_us(int repeat, int n, F&& fn) {
  std::vector<double> runs;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = clock_type::now();
    for (int i = 0; i < n; ++i)
      fn();
    runs.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count()
                   / n);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

int wire(int repeat) {
  reply_envelope stats;
  stats.id = "b1-123456";
  stats.op = control_op::stats;
  stats.reply.instance = "b1-01234";
  stats.reply.stats.pid = 12345;
  stats.reply.stats.uptime_ms = 123456789;
  stats.reply.stats.queues = {"dq.b1-01234", "benchq"};
  stats.reply.stats.autoscale_max = 4;
  stats.reply.stats.autoscale_min = 1;
  stats.reply.stats.concurrency = 1;
  reply_envelope ping = stats;
  ping.op = control_op::ping;
  command_envelope cmd;
  cmd.id = "b1-123456";
  cmd.reply_to = "cyme.reply.b1";
  cmd.command.op = control_op::ping;
  for (int i = 0; i < 5000; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "b1-%05d", i);
    cmd.command.destinations.push_back(name);
  }
  auto cmd_bytes = encode_command(cmd);
  size_t sink = 0;
  auto line = [](const char* what, size_t bytes, double direct, double full) {
    std::printf("%s\n", json{{"figure", "wire"},
                             {"what", what},
                             {"bytes", bytes},
                             {"direct_us", direct},
                             {"full_us", full},
                             {"ratio", full / direct}}
                          .dump()
                          .c_str());
  };
  for (auto* r : {&stats, &ping}) {
    auto bytes = encode_reply(*r);
    auto label = r == &stats ? "stats reply" : "ping reply";
    line((std::string{"encode "} + label).c_str(), bytes.size(),
         per_call_us(repeat, 20000, [&] { sink += encode_reply(*r).size(); }),
         per_call_us(repeat, 20000, [&] { sink += encode_reply_full(*r).size(); }));
    line((std::string{"decode "} + label).c_str(), bytes.size(),
         per_call_us(repeat, 20000, [&] { sink += decode_reply(bytes).value.has_value(); }),
         per_call_us(repeat, 20000,
                     [&] { sink += decode_reply_full(bytes).value.has_value(); }));
  }
  line("a worker reads a command to 5,000 instances", cmd_bytes.size(),
       per_call_us(repeat, 50, [&] {
         bool addressed = false;
         sink += decode_command_for(cmd_bytes, "b1-04999", addressed).value.has_value();
       }),
       per_call_us(repeat, 50, [&] {
         auto d = decode_command(cmd_bytes);
         auto& to = d.value->command.destinations;
         sink += std::find(to.begin(), to.end(), "b1-04999") != to.end();
       }));
  return sink > 0 ? 0 : 1;
}

int results(const std::string& broker, const std::string& queue, int count,
            int timeout_s, const std::string& label) {
  check_name("queue", queue);
  auto cfg = kafka::base_config(broker);
  cfg["fetch.wait.max.ms"] = "100";
  kafka::producer topics{kafka::base_config(broker)};
  if (auto err = topics.ensure_topics({"cyme.results"}, 1, 10000); !err.empty())
    fail(err);
  kafka::topic_reader in{cfg, "cyme.results"};
  // Tells bench/run.sh it may start the worker now.
  std::fprintf(stderr, "cyme-bench: reading cyme.results\n");
  std::map<std::string, int64_t> finished;
  int64_t first = 0, last = 0;
  auto deadline = clock_type::now() + std::chrono::seconds{timeout_s};
  while (static_cast<int>(finished.size()) < count
         && clock_type::now() < deadline) {
    auto m = in.poll(200);
    if (!m)
      continue;
    auto r = decode_result(m->value);
    if (!r || r.value->queue != queue)
      continue;
    finished.emplace(r.value->id, r.value->finished_at_ms);
  }
  if (static_cast<int>(finished.size()) < count)
    fail("only " + std::to_string(finished.size()) + " of "
         + std::to_string(count) + " results within "
         + std::to_string(timeout_s) + " s");
  std::vector<int64_t> times;
  for (auto& [id, t] : finished)
    times.push_back(t);
  std::sort(times.begin(), times.end());
  first = times.front();
  last = times.back();
  double span_s = static_cast<double>(last - first) / 1000.0;
  json j{{"figure", "throughput"},
         {"label", label},
         {"tasks", count},
         {"span_s", span_s},
         {"tasks_per_s", span_s > 0 ? (count - 1) / span_s : 0.0}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"cyme-bench: measuring tools of bench/run.sh"};
  app.require_subcommand(1);

  std::string db, app_name = "bench", queue = "benchq", prefix = "sim";
  int count = 0;
  auto* s = app.add_subcommand("seed", "put N instances into a model file");
  s->add_option("--db", db, "model file (SQLite)")->required();
  s->add_option("--app", app_name, "app of the instances");
  s->add_option("--queue", queue, "queue each instance consumes");
  s->add_option("--prefix", prefix, "instance name prefix");
  s->add_option("--count", count, "instances")->required()->check(
    CLI::Range(0, 100000));

  std::string broker, instance, label;
  int pings = 1000, fetch_wait_ms = 500;
  auto* r = app.add_subcommand("rtt", "ping round trips through the broker");
  r->add_option("--broker", broker, "bootstrap servers")->required();
  r->add_option("--instance", instance, "instance to ping")->required();
  r->add_option("--pings", pings, "measured pings")->check(CLI::Range(1, 1000000));
  r->add_option("--fetch-wait-ms", fetch_wait_ms, "fetch.wait.max.ms of the reply reader")
    ->check(CLI::Range(1, 10000));
  r->add_option("--label", label, "label of the figure");

  std::vector<int> pids;
  double seconds = 60;
  auto* c = app.add_subcommand("cpu", "CPU use of processes over a time");
  c->add_option("--pid", pids, "process (repeatable)")->required();
  c->add_option("--seconds", seconds, "measuring time")->check(
    CLI::Range(0.1, 3600.0));
  c->add_option("--label", label, "label of the figure");

  std::string topic;
  auto* p = app.add_subcommand("produce", "no-op tasks onto a queue topic");
  p->add_option("--broker", broker, "bootstrap servers")->required();
  p->add_option("--topic", topic, "queue topic")->required();
  p->add_option("--count", count, "tasks")->required()->check(
    CLI::Range(1, 10000000));

  int clients = 16;
  auto* a = app.add_subcommand(
    "acked", "tasks one at a time per client, each acknowledged before the next");
  a->add_option("--broker", broker, "bootstrap servers")->required();
  a->add_option("--topic", topic, "queue topic")->required();
  a->add_option("--count", count, "tasks")->required()->check(
    CLI::Range(1, 10000000));
  a->add_option("--clients", clients, "threads, one task each in flight")
    ->check(CLI::Range(1, 1024));

  int repeat = 5;
  auto* x = app.add_subcommand("wire", "time the wire codecs, direct against full");
  x->add_option("--repeat", repeat, "runs, the median taken")->check(CLI::Range(1, 101));

  int branches = 10;
  double cluster_rate = presence_settings{}.cluster_rate;
  auto* g = app.add_subcommand(
    "presence", "presence traffic and views of N branches on one broker");
  g->add_option("--broker", broker, "bootstrap servers")->required();
  g->add_option("--branches", branches, "branches")->required()->check(
    CLI::Range(1, 1000));
  g->add_option("--seconds", seconds, "measuring time")->check(
    CLI::Range(1.0, 3600.0));
  g->add_option("--cluster-rate", cluster_rate,
                "the cluster's announcements a second, at most (0: none)")
    ->check(CLI::Range(0.0, 1000.0));

  int timeout_s = 300;
  auto* w = app.add_subcommand("results", "wait for N results of a queue");
  w->add_option("--broker", broker, "bootstrap servers")->required();
  w->add_option("--queue", queue, "queue the tasks went to")->required();
  w->add_option("--count", count, "results to wait for")->required()->check(
    CLI::Range(2, 10000000));
  w->add_option("--timeout-s", timeout_s, "give up after")->check(
    CLI::Range(1, 3600));
  w->add_option("--label", label, "label of the figure");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*s)
      return seed(db, app_name, queue, prefix, count);
    if (*r)
      return rtt(broker, instance, pings, fetch_wait_ms, label);
    if (*c)
      return cpu(pids, seconds, label);
    if (*p)
      return produce(broker, topic, count);
    if (*a)
      return acked(broker, topic, count, clients);
    if (*x)
      return wire(repeat);
    if (*g)
      return presence_growth(broker, branches, seconds, cluster_rate);
    if (*w)
      return results(broker, queue, count, timeout_s, label);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return 2;
}

// cyme-fleet-sim: answers the control protocol (docs/PROTOCOL.md) for a
// whole simulated fleet, so one branch can supervise 10,000 instances on
// one machine. The branch runs with `--worker cyme-sim-instance`: each
// instance is a real process the branch starts, watches and stops, and
// this program answers the commands addressed to it, as its worker would.
//
//   cyme-fleet-sim --broker HOST:PORT (--program /abs/cyme-sim-instance | --any)
//                  [--counters FILE] [--control-topic cyme.control]
//
// It knows an instance from its stand-in process: the command line the
// driver gave it (--name, --queues, --min, --max) is its initial state, and
// it answers only while that process lives, so a killed stand-in goes
// silent like a killed worker. With --any (for cyme-bench-branch, whose
// instances have no process) it answers for every destination, each
// starting as a worker given no queues and concurrency 0..1 would. Commands change the state as in a worker
// (add_consumer, cancel_consumer, autoscale); shutdown ends the process.
//
// It counts what crosses the broker: commands addressed to its instances
// (by op) and replies sent, and rewrites --counters (JSON) after each
// command, so a runner can diff the counts around one verification round.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "messages/instance.hpp"
#include "messages/names.hpp"
#include "messages/wire.hpp"
#include "transport/kafka.hpp"
#include "transport/proc.hpp"

using namespace cyme;
using clock_type = std::chrono::steady_clock;

namespace {

std::atomic<bool> stop_requested{false};

void on_signal(int) {
  stop_requested = true;
}

struct sim_instance {
  int32_t pid = 0;
  std::vector<std::string> queues;
  uint32_t max = 1;
  uint32_t min = 0;
  clock_type::time_point started = clock_type::now();
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos)
      end = text.size();
    if (end > start)
      out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

/// The fleet as the stand-in processes on this machine describe it.
class fleet {
public:
  /// Stand-ins of `program`, or every name asked for when it is empty.
  explicit fleet(std::string program) : program_(std::move(program)) {
  }

  /// The live instance `name`. When it is unknown or its process is gone,
  /// /proc is read again, at most every 200 ms: a process started since
  /// answers after that, as a starting worker answers once its clients
  /// are up.
  sim_instance* find(const std::string& name) {
    auto i = known_.find(name);
    if (program_.empty()) {
      if (i == known_.end()) {
        i = known_.emplace(name, sim_instance{}).first;
        i->second.queues.push_back("dq." + name);
      }
      return &i->second;
    }
    if (i != known_.end() && ::kill(i->second.pid, 0) == 0)
      return &i->second;
    auto now = clock_type::now();
    if (now - last_scan_ < std::chrono::milliseconds{200})
      return nullptr;
    last_scan_ = now;
    scan();
    i = known_.find(name);
    return i == known_.end() ? nullptr : &i->second;
  }

  void forget(const std::string& name) {
    known_.erase(name);
  }

  size_t size() const {
    return known_.size();
  }

private:
  /// Reads the command line of processes not seen before only: with
  /// 10,000 stand-ins, a scan is then a walk of /proc's entries, not
  /// 10,000 reads, and a starting fleet's misses do not stall the answers.
  void scan() {
    std::map<std::string, sim_instance> found;
    std::map<int32_t, std::string> seen;
    auto* dir = ::opendir("/proc");
    if (dir == nullptr)
      return;
    while (auto* e = ::readdir(dir)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end != '\0')
        continue;
      if (auto k = pid_names_.find(static_cast<int32_t>(pid));
          k != pid_names_.end()) {
        if (auto old = known_.find(k->second);
            old != known_.end() && old->second.pid == pid) {
          found.emplace(old->first, old->second);
          seen.emplace(k->first, k->second);
        }
        continue;
      }
      auto args = command_line(static_cast<int32_t>(pid));
      if (args.empty() || args[0] != program_)
        continue;
      std::string name;
      sim_instance inst;
      inst.pid = static_cast<int32_t>(pid);
      for (size_t k = 1; k + 1 < args.size(); ++k) {
        if (args[k] == "--name")
          name = args[k + 1];
        else if (args[k] == "--queues")
          inst.queues = split_commas(args[k + 1]);
        else if (args[k] == "--max")
          inst.max = static_cast<uint32_t>(std::stoul(args[k + 1]));
        else if (args[k] == "--min")
          inst.min = static_cast<uint32_t>(std::stoul(args[k + 1]));
      }
      if (name.empty())
        continue;
      auto old = known_.find(name);
      if (old != known_.end() && old->second.pid == inst.pid) {
        seen.emplace(inst.pid, name);
        found.emplace(name, old->second);
        continue;
      }
      inst.queues.insert(inst.queues.begin(), "dq." + name);
      seen.emplace(inst.pid, name);
      found.emplace(name, std::move(inst));
    }
    ::closedir(dir);
    known_ = std::move(found);
    pid_names_ = std::move(seen);
  }

  std::string program_;
  /// The stand-ins' pids as of the last scan.
  std::map<int32_t, std::string> pid_names_;
  std::map<std::string, sim_instance> known_;
  clock_type::time_point last_scan_{};
};

worker_stats stats_of(const sim_instance& s) {
  worker_stats st;
  st.pid = s.pid;
  st.uptime_ms = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now()
                                                          - s.started)
      .count());
  st.queues = s.queues;
  st.autoscale_max = s.max;
  st.autoscale_min = s.min;
  st.concurrency = s.min;
  for (auto& q : s.queues)
    st.partitions[q] = 1;
  return st;
}

control_reply answer(const control_command& cmd, const std::string& name,
                     sim_instance& s) {
  control_reply r;
  r.instance = name;
  switch (cmd.op) {
    case control_op::ping:
      break;
    case control_op::stats:
      r.stats = stats_of(s);
      break;
    case control_op::active_queues:
      r.queues = s.queues;
      break;
    case control_op::add_consumer:
      if (std::find(s.queues.begin(), s.queues.end(), cmd.queue)
          == s.queues.end())
        s.queues.push_back(cmd.queue);
      r.queues = s.queues;
      break;
    case control_op::cancel_consumer:
      if (cmd.queue == "dq." + name) {
        r.ok = false;
        r.error = "the direct queue cannot be cancelled";
      } else {
        s.queues.erase(std::remove(s.queues.begin(), s.queues.end(), cmd.queue),
                       s.queues.end());
      }
      r.queues = s.queues;
      break;
    case control_op::autoscale:
      if (cmd.max_concurrency < cmd.min_concurrency || cmd.max_concurrency == 0) {
        r.ok = false;
        r.error = "max must be at least 1 and at least min";
      } else {
        s.max = cmd.max_concurrency;
        s.min = cmd.min_concurrency;
      }
      break;
    case control_op::shutdown:
      break;
  }
  return r;
}

struct counters {
  uint64_t commands = 0;
  std::map<std::string, uint64_t> by_op;
  uint64_t destinations = 0;
  uint64_t replies = 0;
  uint64_t unanswered = 0;
  double last_answer_ms = 0;

  void save(const std::string& path, size_t fleet_size) const {
    if (path.empty())
      return;
    nlohmann::json j{{"commands", commands},
                     {"by_op", by_op},
                     {"destinations", destinations},
                     {"replies", replies},
                     {"unanswered", unanswered},
                     {"last_answer_ms", last_answer_ms},
                     {"fleet", fleet_size}};
    auto tmp = path + ".tmp";
    {
      std::ofstream out{tmp, std::ios::trunc};
      out << j.dump() << "\n";
    }
    std::filesystem::rename(tmp, path);
  }
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"cyme-fleet-sim: answers the control protocol for a simulated "
               "fleet of stand-in processes"};
  std::string broker;
  std::string program;
  std::string control_topic = "cyme.control";
  std::string counters_path;
  int fetch_wait_ms = 100;
  app.add_option("--broker", broker, "bootstrap servers host:port[,...]")
    ->required();
  bool any = false;
  auto* program_opt = app.add_option(
    "--program", program,
    "absolute path of the stand-in program the branch starts");
  app.add_flag("--any", any,
               "answer for every destination (instances without processes, "
               "cyme-bench-branch)")
    ->excludes(program_opt);
  app.add_option("--control-topic", control_topic, "topic of commands");
  app.add_option("--counters", counters_path,
                 "file rewritten with the message counts after each command");
  app.add_option("--fetch-wait-ms", fetch_wait_ms,
                 "fetch.wait.max.ms of the command reader")
    ->check(CLI::Range(1, 10000));
  CLI11_PARSE(app, argc, argv);
  if (!any && (program.empty() || program[0] != '/')) {
    std::fprintf(stderr, "cyme-fleet-sim: --program must be an absolute path "
                         "(or --any)\n");
    return 2;
  }
  if (auto p = name_problem("control topic", control_topic); !p.empty()) {
    std::fprintf(stderr, "cyme-fleet-sim: %s\n", p.c_str());
    return 2;
  }
  ::signal(SIGTERM, on_signal);
  ::signal(SIGINT, on_signal);

  try {
    auto base = kafka::base_config(broker);
    auto pcfg = base;
    pcfg["linger.ms"] = "2";
    pcfg["queue.buffering.max.messages"] = "1000000";
    kafka::producer out{pcfg};
    if (auto err = out.ensure_topics({control_topic}, 1, 10000); !err.empty())
      throw kafka::kafka_error{err};
    auto rcfg = base;
    rcfg["fetch.wait.max.ms"] = std::to_string(fetch_wait_ms);
    kafka::topic_reader in{rcfg, control_topic};
    fleet sims{program};
    counters count;
    count.save(counters_path, 0);
    std::fprintf(stderr, "cyme-fleet-sim: reading %s on %s\n",
                 control_topic.c_str(), broker.c_str());
    while (!stop_requested) {
      out.poll(0);
      auto m = in.poll(100);
      if (!m)
        continue;
      auto cmd = decode_command(m->value);
      if (!cmd)
        continue;
      auto t0 = clock_type::now();
      auto& c = cmd.value->command;
      uint64_t answered = 0;
      for (auto& name : c.destinations) {
        auto* s = sims.find(name);
        if (s == nullptr) {
          count.unanswered += 1;
          continue;
        }
        reply_envelope reply;
        reply.id = cmd.value->id;
        reply.op = c.op;
        reply.reply = answer(c, name, *s);
        if (auto err = out.produce(cmd.value->reply_to, reply.id,
                                   encode_reply(reply));
            !err.empty()) {
          std::fprintf(stderr, "cyme-fleet-sim: reply not sent: %s\n",
                       err.c_str());
          continue;
        }
        answered += 1;
        if (c.op == control_op::shutdown) {
          if (s->pid > 0)
            ::kill(s->pid, SIGTERM);
          sims.forget(name);
        }
      }
      if (answered == 0)
        continue;
      count.commands += 1;
      count.by_op[to_string(c.op)] += 1;
      count.destinations += c.destinations.size();
      count.replies += answered;
      count.last_answer_ms
        = std::chrono::duration<double, std::milli>(clock_type::now() - t0)
            .count();
      count.save(counters_path, sims.size());
    }
    out.flush(5000);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cyme-fleet-sim: %s\n", e.what());
    return 1;
  }
  return 0;
}

// Benchmark probe: restart latency after kill -9 of one supervised process,
// whatever supervises it (cyme, supervisord, runit, s6, a bare loop).
//
//   cyme-bench-respawn --system NAME --match ARG [--kills N] [--gap-ms MS]
//                      [--ping-broker HOST:PORT --ping-name INSTANCE]
//   cyme-bench-respawn --match ARG [...] --bare -- CMD [ARGS...]
//
// The supervised process is the one whose /proc/PID/cmdline holds an
// argument exactly equal to ARG, or (--match-env ENTRY) whose environment
// holds the entry ENTRY (zombies and processes with the probe's own
// command line excluded). With --also-watch ARG2, processes that hold ARG2
// when a round kills are watched too: a supervisor that keeps a process
// ready (cyme's standby workers) replaces the killed one with it, and it
// then holds the entry (cyme rewrites its environment when it adopts one). Each round: find its pid, kill -9 it, then poll
// /proc (every --poll-us) until a process with a new pid holds ARG. That is
// the "death_to_new_pid" figure: from the return of kill(2) to the first
// poll that sees the replacement's command line (so after its execve). A
// poll reads only the pids created since the kill (the kernel's pid
// counter says which), so it costs microseconds however many processes
// the host runs, and disturbs the measured system little.
//
// With --ping-broker, the replacement must also answer `ping` on the
// control topic (docs/PROTOCOL.md), through the project's own codecs and
// Kafka clients, on a reply topic of the probe's own: after the kill a ping
// with a fresh id goes out every --ping-every-us, without waiting for
// answers, and the first pong to a ping sent after the kill ends the
// "death_to_ping" figure. Just before each kill, one ping to the process
// that runs times the bus's own round trip ("ping_rtt"): the part of
// death_to_ping that no replacement can cut.
//
// With --bare, the probe forks a child that is the reference supervisor: a
// loop of fork, execve(CMD), waitpid, nothing else. It is killed, with its
// current CMD process, when the probe ends.
//
// Before each kill (the first one too) the probe waits --gap-ms plus a
// random 0..--gap-jitter-ms, so that a supervisor's backoff after quick
// deaths is not what is measured. Whether a supervisor throttles or polls anyway shows in the
// figures; the probe also names the pattern it sees ("note").
//
// Output: one JSON object per figure on stdout (with every sample, in the
// order measured, as samples_ms); progress and errors on stderr. Exit 0 on
// success, 1 when a round fails, 2 on bad flags.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include "bench/percentile.hpp"
#include "messages/names.hpp"
#include "messages/wire.hpp"
#include "transport/kafka.hpp"

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;
using json = nlohmann::ordered_json;
using cyme::bench::percentile;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// -- /proc --------------------------------------------------------------------

/// Whole content of a small /proc file, or nothing when it cannot be read
/// (the process is gone).
std::optional<std::string> read_small(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

/// Whether `text`, NUL-separated entries, holds `entry` exactly.
bool holds_entry(const std::string& text, const std::string& entry) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos)
      end = text.size();
    if (text.compare(start, end - start, entry) == 0)
      return true;
    start = end + 1;
  }
  return false;
}

/// Finds the processes that hold one exact argument, or one exact entry
/// in their environment.
class proc_scanner {
public:
  explicit proc_scanner(std::string match, std::string env_entry = {})
    : match_(std::move(match)), env_entry_(std::move(env_entry)) {
    self_cmdline_ = read_small("/proc/self/cmdline").value_or("");
  }

  /// Every pid in /proc now, sorted.
  std::vector<pid_t> all_pids() const {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (d == nullptr)
      return out;
    while (auto* e = ::readdir(d)) {
      const char* n = e->d_name;
      if (*n < '1' || *n > '9')
        continue;
      char* end = nullptr;
      long v = std::strtol(n, &end, 10);
      if (*end == '\0')
        out.push_back(static_cast<pid_t>(v));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

  enum class seen { gone, other, match };

  /// Whether `pid` is a live (not zombie) process, other than the probe and
  /// its forks, with an argument equal to the match; `gone` when there is no
  /// such process (or it is a zombie). A process in the middle of execve
  /// may show an empty command line for a while: that is `other`.
  seen check(pid_t pid) const {
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/%d/cmdline", static_cast<int>(pid));
    auto cmd = read_small(path);
    if (!cmd)
      return seen::gone;
    if (cmd->empty() || *cmd == self_cmdline_)
      return seen::other;
    bool found = holds_entry(*cmd, match_);
    if (!found && !env_entry_.empty()) {
      std::snprintf(path, sizeof(path), "/proc/%d/environ", static_cast<int>(pid));
      auto env = read_small(path);
      found = env && holds_entry(*env, env_entry_);
    }
    if (!found)
      return seen::other;
    std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
    auto stat = read_small(path);
    if (!stat)
      return seen::gone;
    auto paren = stat->rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat->size())
      return seen::gone;
    char state = (*stat)[paren + 2];
    return state == 'Z' || state == 'X' || state == 'x' ? seen::gone
                                                        : seen::match;
  }

  bool matches(pid_t pid) const {
    return check(pid) == seen::match;
  }

  std::vector<pid_t> matching() const {
    std::vector<pid_t> out;
    for (auto pid : all_pids())
      if (matches(pid))
        out.push_back(pid);
    return out;
  }

private:
  std::string match_;
  std::string env_entry_;
  std::string self_cmdline_;
};

/// Last pid the kernel handed out in the probe's pid namespace, if readable.
std::optional<long> last_pid() {
  auto text = read_small("/proc/sys/kernel/ns_last_pid");
  if (!text || text->empty())
    return std::nullopt;
  return std::strtol(text->c_str(), nullptr, 10);
}

/// Whether `pid` leads its thread group (is a process, not a thread): the
/// kernel hands out thread ids from the same counter as pids.
std::optional<bool> is_process(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/status", static_cast<int>(pid));
  auto status = read_small(path);
  if (!status)
    return std::nullopt;
  auto at = status->find("\nTgid:");
  if (at == std::string::npos)
    return std::nullopt;
  return std::strtol(status->c_str() + at + 6, nullptr, 10) == pid;
}

/// Finds the replacement of a killed process cheaply, so the probe's own
/// polling disturbs the measured system little: only pids created since
/// the kill (the kernel's pid counter says which) are looked at, and each
/// is looked at again on every poll until it holds the match (a fork
/// execs after it appears), ends, or turns out to be a thread. When the
/// counter cannot be read or wraps, every pid in /proc not seen before
/// the kill is a candidate instead.
class replacement_watch {
public:
  /// `ready`: processes that ran before the kill and may become the
  /// replacement (watched from the start).
  replacement_watch(const proc_scanner& scan, std::vector<pid_t> before,
                    const std::vector<pid_t>& ready = {})
    : scan_(scan), before_(std::move(before)), last_(last_pid()) {
    auto now = clock_type::now();
    for (auto pid : ready)
      candidates_.emplace(pid, candidate{now, true});
  }

  /// The replacement's pid once it holds the match.
  std::optional<pid_t> poll() {
    auto now = clock_type::now();
    auto cur = last_pid();
    if (!cur || !last_ || *cur < *last_) {
      for (auto pid : scan_.all_pids())
        if (!std::binary_search(before_.begin(), before_.end(), pid))
          add(pid, now);
    } else {
      for (long pid = *last_ + 1; pid <= *cur; ++pid)
        add(static_cast<pid_t>(pid), now);
    }
    last_ = cur;
    for (auto i = candidates_.begin(); i != candidates_.end();) {
      auto& c = i->second;
      if (!c.process) {
        c.process = is_process(i->first);
        if (c.process && !*c.process) {
          i = candidates_.erase(i);
          continue;
        }
      }
      if (!c.process) {
        // A pid just handed out may not show in /proc yet: give it a while.
        if (now - c.added > std::chrono::milliseconds{50})
          i = candidates_.erase(i);
        else
          ++i;
        continue;
      }
      auto s = scan_.check(i->first);
      if (s == proc_scanner::seen::match)
        return i->first;
      if (s == proc_scanner::seen::gone)
        i = candidates_.erase(i);
      else
        ++i;
    }
    return std::nullopt;
  }

private:
  struct candidate {
    clock_type::time_point added;
    std::optional<bool> process;
  };

  void add(pid_t pid, clock_type::time_point now) {
    candidates_.emplace(pid, candidate{now, std::nullopt});
  }

  const proc_scanner& scan_;
  std::vector<pid_t> before_;
  std::optional<long> last_;
  std::map<pid_t, candidate> candidates_;
};

// -- bare respawn loop --------------------------------------------------------

volatile sig_atomic_t bare_group = 0;

void on_stop_signal(int sig) {
  if (bare_group > 0)
    ::kill(-bare_group, SIGKILL);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

/// The program CMD names: itself when it holds a slash, else the first
/// executable of that name along PATH.
std::optional<std::string> resolve_program(const std::string& cmd) {
  if (cmd.find('/') != std::string::npos)
    return ::access(cmd.c_str(), X_OK) == 0 ? std::optional{cmd} : std::nullopt;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string full = (dir.empty() ? std::string{"."} : dir) + "/" + cmd;
    struct stat st {};
    if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)
        && ::access(full.c_str(), X_OK) == 0)
      return full;
    start = end + 1;
  }
  return std::nullopt;
}

/// Forks the reference supervisor: fork, execve, waitpid, again. It leads a
/// process group of its own (so it and its current child are killed
/// together) and dies with the probe.
pid_t start_bare_loop(const std::string& program,
                      const std::vector<std::string>& args,
                      const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t loop = ::fork();
  if (loop < 0)
    return -1;
  if (loop > 0) {
    ::setpgid(loop, loop);
    return loop;
  }
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1)
    ::_exit(1);
  // The command reads nothing and writes to the log, never to the probe's
  // stdout (the figures).
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in < 0 || out < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0
      || ::dup2(out, 2) < 0)
    ::_exit(126);
  ::close(in);
  ::close(out);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGHUP, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  for (;;) {
    pid_t child = ::fork();
    if (child == 0) {
      ::execve(program.c_str(), argv.data(), environ);
      ::_exit(127);
    }
    if (child < 0)
      ::_exit(1);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    // A program that cannot be started is not restarted in a busy loop.
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      ::_exit(127);
  }
}

void stop_bare_loop(pid_t loop) {
  if (loop <= 0)
    return;
  ::kill(-loop, SIGKILL);
  while (::waitpid(loop, nullptr, 0) < 0 && errno == EINTR) {
  }
  bare_group = 0;
}

// -- ping over Kafka ----------------------------------------------------------

/// Sends pings to one instance on the control topic and hears its pongs on
/// a reply topic of its own.
class pinger {
public:
  pinger(const std::string& broker, std::string instance,
         std::string control_topic, int timeout_ms)
    : instance_(std::move(instance)),
      control_topic_(std::move(control_topic)),
      reply_topic_("cyme.reply.bench-" + std::to_string(::getpid())),
      producer_(producer_config(broker)) {
    auto err = producer_.ensure_topics({control_topic_, reply_topic_}, 1,
                                       timeout_ms);
    if (!err.empty())
      throw cyme::kafka::kafka_error("creating topics: " + err);
    auto cfg = cyme::kafka::base_config(broker);
    // A real broker answers a waiting fetch as soon as data arrives.
    cfg["fetch.wait.max.ms"] = "100";
    // A topic just created may have no leader yet: retry for a while.
    auto give_up = clock_type::now() + std::chrono::milliseconds{timeout_ms};
    for (;;) {
      try {
        reader_ = std::make_unique<cyme::kafka::topic_reader>(cfg, reply_topic_,
                                                              timeout_ms);
        break;
      } catch (const cyme::kafka::kafka_error&) {
        if (clock_type::now() >= give_up)
          throw;
        std::this_thread::sleep_for(std::chrono::milliseconds{100});
      }
    }
  }

  ~pinger() {
    reader_.reset();
    // The reply topic belongs to this run only.
    auto* rk = producer_.handle();
    auto* del = rd_kafka_DeleteTopic_new(reply_topic_.c_str());
    auto* q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &del, 1, nullptr, q);
    if (auto* ev = rd_kafka_queue_poll(q, 5000))
      rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(del);
  }

  /// Queues a ping with `id`; empty string or why it could not be queued.
  std::string send(const std::string& id) {
    cyme::command_envelope env;
    env.id = id;
    env.reply_to = reply_topic_;
    env.command.op = cyme::control_op::ping;
    env.command.destinations = {instance_};
    auto err = producer_.produce(control_topic_, id, cyme::encode_command(env));
    producer_.poll(0);
    return err;
  }

  /// Ids of the pongs from the instance that arrived since the last call
  /// (waits up to `timeout_ms` for the first message).
  std::vector<std::string> pongs(int timeout_ms) {
    std::vector<std::string> ids;
    producer_.poll(0);
    for (int wait = timeout_ms;; wait = 0) {
      auto m = reader_->poll(wait);
      if (!m)
        break;
      auto r = cyme::decode_reply(m->value);
      if (r && r.value->op == cyme::control_op::ping && r.value->reply.ok
          && r.value->reply.instance == instance_)
        ids.push_back(r.value->id);
    }
    return ids;
  }

  const std::string& reply_topic() const {
    return reply_topic_;
  }

private:
  static cyme::kafka::config_map producer_config(const std::string& broker) {
    auto cfg = cyme::kafka::base_config(broker);
    cfg["linger.ms"] = "0";
    return cfg;
  }

  std::string instance_;
  std::string control_topic_;
  std::string reply_topic_;
  cyme::kafka::producer producer_;
  std::unique_ptr<cyme::kafka::topic_reader> reader_;
};

// -- statistics ---------------------------------------------------------------

double round3(double x) {
  return std::round(x * 1000.0) / 1000.0;
}

/// Each of `xs`, rounded to the microsecond, in the order measured.
std::vector<double> rounded3(const std::vector<double>& xs) {
  std::vector<double> out;
  out.reserve(xs.size());
  for (auto x : xs)
    out.push_back(round3(x));
  return out;
}

/// What the latencies say about a supervisor's restart policy.
struct restart_pattern {
  /// "prompt", "fixed_delay", "min_interval" or "periodic".
  std::string kind = "prompt";
  /// One sentence, empty when prompt.
  std::string note;

  /// A fixed delay after a death, or a minimum interval between starts.
  bool throttled() const {
    return kind == "fixed_delay" || kind == "min_interval";
  }
};

/// Reads the pattern from each round's latency and the age of the process
/// it killed (time since its start was seen; negative for the first round,
/// whose start the probe did not see). Below `slow_ms` (median) a restart
/// is prompt. Above it: a delay with little spread is a fixed delay after
/// each death; a delay that shrinks as the killed process was older (the
/// random part of the settle time makes ages differ) is a minimum interval
/// between starts; anything else, spread over a wide range, is a periodic
/// check.
restart_pattern read_pattern(const std::vector<double>& lat_all,
                             const std::vector<double>& age_all,
                             double slow_ms) {
  restart_pattern out;
  double med = percentile(lat_all, 0.5);
  if (med < slow_ms)
    return out;
  auto spread = [](const std::vector<double>& xs) {
    return percentile(xs, 0.9) - percentile(xs, 0.1);
  };
  std::vector<double> lat, age, since_start;
  for (size_t i = 0; i < lat_all.size() && i < age_all.size(); ++i)
    if (age_all[i] >= 0) {
      lat.push_back(lat_all[i]);
      age.push_back(age_all[i]);
      since_start.push_back(lat_all[i] + age_all[i]);
    }
  char buf[256];
  if (lat.size() < 5) {
    out.kind = "periodic";
    std::snprintf(buf, sizeof(buf),
                  "slow (median %.0f ms); too few rounds to tell why", med);
    out.note = buf;
    return out;
  }
  double s_lat = spread(lat);
  double s_age = spread(age);
  double s_start = spread(since_start);
  if (s_age >= 20 && s_start <= 0.5 * s_lat) {
    out.kind = "min_interval";
    std::snprintf(buf, sizeof(buf),
                  "throttled: restarts ~%.0f ms after the previous start, "
                  "whatever the death (a minimum interval between starts)",
                  percentile(since_start, 0.5));
  } else if (s_lat <= 0.25 * med) {
    out.kind = "fixed_delay";
    std::snprintf(buf, sizeof(buf),
                  "throttled: restarts ~%.0f ms after each death, whatever "
                  "the process's age (%.0f-%.0f ms)",
                  percentile(lat, 0.1), percentile(age, 0.0),
                  percentile(age, 1.0));
  } else {
    out.kind = "periodic";
    std::snprintf(buf, sizeof(buf),
                  "slow: latency spread over %.0f-%.0f ms whatever the "
                  "process's age (looks like a periodic check)",
                  percentile(lat, 0.0), percentile(lat, 1.0));
  }
  out.note = buf;
  return out;
}

/// How a run was made, printed with each figure.
struct run_facts {
  int gap_ms = 0;
  int gap_jitter_ms = 0;
  int poll_us = 0;
  /// Mean duration of one /proc scan.
  double scan_us = 0;
};

void print_figure(const std::string& system, const char* figure,
                  const std::vector<double>& xs, const run_facts& facts,
                  const restart_pattern* pattern) {
  json j{{"system", system},
         {"figure", figure},
         {"n", xs.size()},
         {"median_ms", round3(percentile(xs, 0.5))},
         {"p90_ms", round3(percentile(xs, 0.9))},
         {"p99_ms", round3(percentile(xs, 0.99))},
         {"min_ms", round3(percentile(xs, 0.0))},
         {"max_ms", round3(percentile(xs, 1.0))},
         {"gap_ms", facts.gap_ms},
         {"gap_jitter_ms", facts.gap_jitter_ms},
         {"poll_us", facts.poll_us},
         {"scan_us", std::round(facts.scan_us)},
         {"restart", pattern != nullptr ? pattern->kind : "prompt"},
         {"throttled", pattern != nullptr && pattern->throttled()},
         {"note", pattern != nullptr ? pattern->note : ""},
         {"samples_ms", rounded3(xs)}};
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

[[noreturn]] void fail(pid_t loop, const std::string& why) {
  std::fprintf(stderr, "cyme-bench-respawn: %s\n", why.c_str());
  stop_bare_loop(loop);
  std::exit(1);
}

} // namespace

int main(int argc, char** argv) {
  // Everything after "--" is the bare loop's command.
  std::vector<std::string> bare_cmd;
  int own_argc = argc;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--") == 0) {
      own_argc = i;
      for (int j = i + 1; j < argc; ++j)
        bare_cmd.emplace_back(argv[j]);
      break;
    }

  CLI::App app{"cyme-bench-respawn: restart latency after kill -9 of one "
               "supervised process"};
  std::string system;
  std::string match;
  std::string match_env;
  std::string also_watch;
  int kills = 100;
  int gap_ms = 300;
  int gap_jitter_ms = 200;
  int poll_us = 150;
  int round_timeout_ms = 30000;
  int start_timeout_ms = 30000;
  int slow_ms = 100;
  bool bare = false;
  std::string bare_log = "/dev/null";
  std::string ping_broker;
  std::string ping_name;
  std::string control_topic = "cyme.control";
  int ping_every_us = 1000;
  app.add_option("--system", system,
                 "name of the supervisor in the output (default 'bare' with "
                 "--bare)");
  app.add_option("--match", match,
                 "the supervised process holds an argument exactly equal to "
                 "this")
    ->required();
  app.add_option("--match-env", match_env,
                 "or its environment holds this entry (KEY=VALUE) exactly");
  app.add_option("--also-watch", also_watch,
                 "processes holding this argument when a round kills may be "
                 "the replacement (a supervisor's ready ones)");
  app.add_option("--kills", kills, "kill -9 rounds")->check(CLI::Range(1, 100000));
  app.add_option("--gap-ms", gap_ms, "settle time between rounds")
    ->check(CLI::Range(0, 600000));
  app.add_option("--gap-jitter-ms", gap_jitter_ms,
                 "random extra settle time, 0 to this, so a throttle tied to "
                 "the previous start shows")
    ->check(CLI::Range(0, 600000));
  app.add_option("--poll-us", poll_us, "period of the /proc scan")
    ->check(CLI::Range(10, 100000));
  app.add_option("--round-timeout-ms", round_timeout_ms,
                 "longest wait for a replacement (and its pong)")
    ->check(CLI::Range(1, 3600000));
  app.add_option("--start-timeout-ms", start_timeout_ms,
                 "longest wait for the process (and its first pong) before "
                 "the first round")
    ->check(CLI::Range(1, 3600000));
  app.add_option("--slow-ms", slow_ms,
                 "a median death-to-new-pid above this gets a note on the "
                 "pattern of the delay")
    ->check(CLI::Range(1, 3600000));
  app.add_flag("--bare", bare,
               "supervise '-- CMD ARGS...' with a minimal fork/execve/waitpid "
               "loop of the probe's own");
  app.add_option("--bare-log", bare_log,
                 "file the --bare command's output is appended to");
  app.add_option("--ping-broker", ping_broker,
                 "also measure death to an answered ping, through this Kafka "
                 "(HOST:PORT[,...])");
  app.add_option("--ping-name", ping_name, "instance name the pings address");
  app.add_option("--control-topic", control_topic, "topic of commands");
  app.add_option("--ping-every-us", ping_every_us,
                 "period of the pings after a kill")
    ->check(CLI::Range(100, 1000000));
  try {
    app.parse(own_argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  auto usage = [](const std::string& why) {
    std::fprintf(stderr, "cyme-bench-respawn: %s\n", why.c_str());
    return 2;
  };
  if (match.empty())
    return usage("--match must not be empty");
  if (bare && bare_cmd.empty())
    return usage("--bare needs a command after '--'");
  if (!bare && own_argc != argc)
    return usage("a command after '--' is only for --bare");
  if (bare && std::find(bare_cmd.begin(), bare_cmd.end(), match) == bare_cmd.end())
    return usage("--match '" + match + "' is not an argument of the --bare "
                 "command, so its process would never be found");
  if (system.empty()) {
    if (!bare)
      return usage("--system is required (except with --bare)");
    system = "bare";
  }
  if (ping_broker.empty() != ping_name.empty())
    return usage("--ping-broker and --ping-name go together");
  if (!ping_name.empty()) {
    if (auto p = cyme::name_problem("--ping-name", ping_name); !p.empty())
      return usage(p);
    if (auto p = cyme::name_problem("--control-topic", control_topic); !p.empty())
      return usage(p);
  }
  std::optional<std::string> program;
  if (bare) {
    program = resolve_program(bare_cmd[0]);
    if (!program)
      return usage("no executable program '" + bare_cmd[0] + "'");
  }

  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGHUP, on_stop_signal);
  std::signal(SIGPIPE, SIG_IGN);

  proc_scanner scan{match, match_env};
  std::optional<proc_scanner> ready_scan;
  if (!also_watch.empty())
    ready_scan.emplace(also_watch);
  pid_t loop = -1;
  if (bare) {
    if (!scan.matching().empty())
      fail(-1, "a process holding '" + match + "' already runs; --bare "
                 "starts its own");
    loop = start_bare_loop(*program, bare_cmd, bare_log);
    if (loop < 0)
      fail(loop, std::string{"fork: "} + std::strerror(errno));
    bare_group = loop;
  }

  std::unique_ptr<pinger> ping;
  if (!ping_broker.empty()) {
    try {
      ping = std::make_unique<pinger>(ping_broker, ping_name, control_topic,
                                      start_timeout_ms);
    } catch (const std::exception& e) {
      fail(loop, e.what());
    }
  }

  auto poll_step = std::chrono::microseconds{poll_us};
  auto ping_step = std::chrono::microseconds{ping_every_us};
  uint64_t ping_seq = 0;
  auto ping_id = [&](int round) {
    return "bench-" + std::to_string(::getpid()) + "-r" + std::to_string(round)
           + "-" + std::to_string(++ping_seq);
  };
  auto round_of = [&](const std::string& id) -> int {
    // bench-<pid>-r<round>-<seq>
    auto r = id.rfind("-r");
    if (r == std::string::npos)
      return -2;
    return std::atoi(id.c_str() + r + 2);
  };
  std::string loop_end;
  auto loop_alive = [&] {
    if (loop <= 0)
      return true;
    int status = 0;
    if (::waitpid(loop, &status, WNOHANG) == 0)
      return true;
    loop_end = WIFEXITED(status) && WEXITSTATUS(status) == 127
                 ? "cannot execute " + *program
               : WIFEXITED(status) && WEXITSTATUS(status) == 126
                 ? "cannot open --bare-log " + bare_log
                 : "wait status " + std::to_string(status);
    return false;
  };

  // Before the first round: the process runs (and answers, with pings).
  {
    auto deadline = clock_type::now() + std::chrono::milliseconds{start_timeout_ms};
    std::vector<pid_t> found;
    while ((found = scan.matching()).size() != 1) {
      if (!loop_alive())
        fail(-1, "the bare loop ended: " + loop_end);
      if (clock_type::now() >= deadline)
        fail(loop, found.empty()
                     ? "no process holds '" + match + "' after "
                         + std::to_string(start_timeout_ms) + " ms"
                     : std::to_string(found.size()) + " processes hold '"
                         + match + "'");
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    if (ping) {
      bool answered = false;
      auto next_ping = clock_type::now();
      while (!answered) {
        if (clock_type::now() >= deadline)
          fail(loop, "'" + ping_name + "' did not answer ping within "
                       + std::to_string(start_timeout_ms) + " ms");
        if (clock_type::now() >= next_ping) {
          if (auto err = ping->send(ping_id(-1)); !err.empty())
            fail(loop, "ping not sent: " + err);
          next_ping = clock_type::now() + std::chrono::milliseconds{10};
        }
        answered = !ping->pongs(5).empty();
      }
    }
  }

  std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> jitter{0, gap_jitter_ms};
  auto settle = [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{
      gap_ms + (gap_jitter_ms > 0 ? jitter(rng) : 0)});
  };
  std::vector<double> to_pid, to_ping, age, rtt;
  std::optional<clock_type::time_point> last_start;
  double scan_ms = 0;
  uint64_t scans = 0;
  for (int round = 0; round < kills; ++round) {
    // Each kill comes a settle time after the process was seen.
    settle();
    if (ping) {
      // The bus's own round trip, to the process that runs: the part of
      // death_to_ping that no replacement can cut.
      auto id = ping_id(-1);
      auto sent = clock_type::now();
      if (auto err = ping->send(id); !err.empty())
        fail(loop, "ping not sent: " + err);
      auto until = sent + std::chrono::milliseconds{round_timeout_ms};
      bool back = false;
      while (!back) {
        if (clock_type::now() >= until)
          fail(loop, "round " + std::to_string(round + 1)
                       + ": the running process did not answer ping within "
                       + std::to_string(round_timeout_ms) + " ms");
        for (auto& got : ping->pongs(5))
          back = back || got == id;
      }
      rtt.push_back(ms_between(sent, clock_type::now()));
    }
    auto found = scan.matching();
    if (found.size() != 1)
      fail(loop, std::to_string(found.size()) + " processes hold '" + match
                   + "' before round " + std::to_string(round + 1));
    pid_t old = found[0];
    // The killed process holds the match until it is gone: not a ready one.
    std::vector<pid_t> ready;
    if (ready_scan)
      for (auto pid : ready_scan->matching())
        if (pid != old)
          ready.push_back(pid);
    replacement_watch watch{scan, scan.all_pids(), ready};
    if (::kill(old, SIGKILL) != 0)
      fail(loop, "kill " + std::to_string(old) + ": " + std::strerror(errno));
    auto died = clock_type::now();
    age.push_back(last_start ? ms_between(*last_start, died) : -1.0);
    auto deadline = died + std::chrono::milliseconds{round_timeout_ms};
    std::optional<clock_type::time_point> new_pid_at, pong_at;
    auto next_ping = died;
    while (!new_pid_at || (ping && !pong_at)) {
      auto now = clock_type::now();
      if (now >= deadline)
        fail(loop, std::string{"round "} + std::to_string(round + 1) + ": "
                     + (!new_pid_at ? "no new process holds '" + match + "'"
                                    : "'" + ping_name + "' did not answer ping")
                     + " within " + std::to_string(round_timeout_ms) + " ms");
      if (!new_pid_at) {
        bool seen = watch.poll().has_value();
        auto scanned = clock_type::now();
        scan_ms += ms_between(now, scanned);
        ++scans;
        if (seen)
          new_pid_at = scanned;
        else if (!loop_alive())
          fail(-1, "the bare loop ended: " + loop_end);
      }
      if (ping && !pong_at) {
        if (now >= next_ping) {
          if (auto err = ping->send(ping_id(round)); !err.empty())
            fail(loop, "ping not sent: " + err);
          next_ping += ping_step;
          if (next_ping < now)
            next_ping = now + ping_step;
        }
        for (auto& id : ping->pongs(0))
          if (round_of(id) == round && !pong_at)
            pong_at = clock_type::now();
      }
      std::this_thread::sleep_for(poll_step);
    }
    to_pid.push_back(ms_between(died, *new_pid_at));
    if (pong_at)
      to_ping.push_back(ms_between(died, *pong_at));
    last_start = new_pid_at;
    if (pong_at)
      std::fprintf(stderr, "%s round %d/%d: new pid after %.3f ms, pong after "
                   "%.3f ms\n", system.c_str(), round + 1, kills,
                   to_pid.back(), to_ping.back());
    else
      std::fprintf(stderr, "%s round %d/%d: new pid after %.3f ms\n",
                   system.c_str(), round + 1, kills, to_pid.back());
  }

  auto pattern = read_pattern(to_pid, age, slow_ms);
  run_facts facts{gap_ms, gap_jitter_ms, poll_us,
                  scans > 0 ? 1000.0 * scan_ms / static_cast<double>(scans) : 0};
  print_figure(system, "death_to_new_pid", to_pid, facts, &pattern);
  if (ping) {
    print_figure(system, "death_to_ping", to_ping, facts, &pattern);
    print_figure(system, "ping_rtt", rtt, facts, nullptr);
  }
  stop_bare_loop(loop);
  return 0;
}

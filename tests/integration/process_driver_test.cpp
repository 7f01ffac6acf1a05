/// The production process driver against real processes: a stand-in worker
/// (sleeper.cpp) is started, stopped, killed and adopted in a temporary
/// branch root, in a real actor system. Every test ends by checking that no
/// child of the test process is left running or a zombie.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/seams.hpp"
#include "messages/errors.hpp"
#include "messages/wall_clock.hpp"
#include "transport/proc.hpp"
#include "transport/process_driver.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace cyme;

namespace {

using clock_type = std::chrono::steady_clock;

constexpr auto event_timeout = 5s;

// -- /proc, read independently of the driver --------------------------------

struct proc_stat {
  int32_t pid = 0;
  char state = '?';
  int32_t ppid = 0;
  uint64_t start_time = 0;
};

std::string slurp(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::optional<proc_stat> read_stat(int32_t pid) {
  auto text = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream fields{text.substr(close + 2)};
  std::vector<std::string> xs;
  for (std::string x; fields >> x;)
    xs.push_back(x);
  // xs[0] is field 3 (state), xs[1] field 4 (ppid), xs[19] field 22.
  if (xs.size() < 20)
    return std::nullopt;
  proc_stat st;
  st.pid = pid;
  st.state = xs[0].front();
  st.ppid = std::stoi(xs[1]);
  st.start_time = std::stoull(xs[19]);
  return st;
}

/// Whether `pid` has finished its exec: its arguments are readable, or it
/// has already ended. posix_spawn returns once the child has switched to
/// the new program's memory, but the kernel sets up the new arguments and
/// environment after that: until then /proc shows both empty.
bool exec_finished(int32_t pid) {
  auto st = read_stat(pid);
  return !st || st->state == 'Z'
         || !slurp("/proc/" + std::to_string(pid) + "/cmdline").empty();
}

/// Whether `pid` still names the process that started at `start_time` and
/// has not ended.
bool still_runs(int32_t pid, uint64_t start_time) {
  auto st = read_stat(pid);
  return st && st->start_time == start_time && st->state != 'Z';
}

std::vector<proc_stat> children_of_this_process() {
  std::vector<proc_stat> out;
  for (auto& entry : fs::directory_iterator{"/proc"}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    if (auto st = read_stat(std::stoi(name)); st && st->ppid == getpid())
      out.push_back(*st);
  }
  return out;
}

/// The ids of this process's threads whose name is `name`.
std::set<pid_t> threads_named(std::string_view name) {
  std::set<pid_t> out;
  for (auto& [tid, comm] : threads_of(getpid()))
    if (comm == name)
      out.insert(tid);
  return out;
}

/// Whether this process still has the thread `tid`.
bool thread_exists(pid_t tid) {
  return fs::exists(fs::path{"/proc/self/task"} / std::to_string(tid));
}

/// What went wrong, for a failure message (evaluated even on success).
template <class T>
std::string problem_of(const caf::expected<T>& x) {
  return x ? std::string{"nothing"} : describe(x.error());
}

/// Milliseconds since `t0`, printable in test logs.
long long ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           clock_type::now() - t0)
    .count();
}

/// Polls `done` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& done,
                clock_type::duration timeout = event_timeout) {
  auto deadline = clock_type::now() + timeout;
  while (!done()) {
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// -- exit reports -------------------------------------------------------------

/// Exits that drivers report, gathered by a listener actor.
struct exit_log {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<process_exit> exits;

  /// The report of `pid`'s exit, waiting for it at most `timeout`.
  std::optional<process_exit>
  wait_exit(int32_t pid, clock_type::duration timeout = event_timeout) {
    std::unique_lock<std::mutex> guard{mtx};
    std::optional<process_exit> found;
    cv.wait_for(guard, timeout, [&] {
      for (auto& e : exits)
        if (e.pid == pid)
          found = e;
      return found.has_value();
    });
    return found;
  }

  size_t reports_of(int32_t pid) {
    std::lock_guard<std::mutex> guard{mtx};
    size_t n = 0;
    for (auto& e : exits)
      n += e.pid == pid ? 1 : 0;
    return n;
  }
};

exit_listener::behavior_type listener_behavior(exit_listener::pointer,
                                               std::shared_ptr<exit_log> log) {
  return {
    [log](exited_atom, const process_exit& e) {
      {
        std::lock_guard<std::mutex> guard{log->mtx};
        log->exits.push_back(e);
      }
      log->cv.notify_all();
    },
  };
}

// -- the fixture --------------------------------------------------------------

struct test_config : caf::actor_system_config {
  test_config() {
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

fs::path make_temp_root() {
  std::string tmpl = (fs::temp_directory_path() / "cyme-driver-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

struct driver_fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  fs::path root = make_temp_root();
  std::shared_ptr<exit_log> exits = std::make_shared<exit_log>();
  exit_listener listener = sys.spawn(listener_behavior, exits);
  std::vector<process_driver_actor> drivers;
  /// Processes the test learned of, with their start times.
  std::vector<std::pair<int32_t, uint64_t>> tracked;

  ~driver_fixture() {
    for (auto& d : drivers)
      self->send_exit(d, caf::exit_reason::user_shutdown);
    self->wait_for(drivers);
    drivers.clear();
    // No zombie, nothing left running: every child was reaped.
    for (auto& child : children_of_this_process()) {
      BOOST_CHECK_MESSAGE(child.state != 'Z',
                          "child " << child.pid << " left as a zombie");
      BOOST_CHECK_MESSAGE(child.state == 'Z',
                          "child " << child.pid << " left running");
      ::kill(child.pid, SIGKILL);
      ::waitpid(child.pid, nullptr, 0);
    }
    for (auto& [pid, start_time] : tracked) {
      bool left = still_runs(pid, start_time);
      BOOST_CHECK_MESSAGE(!left, "process " << pid << " left running");
      if (left)
        ::kill(pid, SIGKILL);
    }
    self->send_exit(listener, caf::exit_reason::user_shutdown);
    std::error_code ec;
    fs::remove_all(root, ec);
  }

  process_driver_settings settings() const {
    process_driver_settings s;
    s.root = root;
    s.worker_program = CYME_TEST_SLEEPER;
    s.log_program = CYME_LOG_PROGRAM;
    s.default_broker = "127.0.0.1:9092";
    return s;
  }

  process_driver_actor spawn_driver(process_driver_settings s) {
    auto d = spawn_process_driver(sys, std::move(s));
    BOOST_REQUIRE_MESSAGE(d, "driver not spawned: " << problem_of(d));
    self->send(*d, subscribe_atom::value, listener);
    drivers.push_back(*d);
    return *d;
  }

  process_driver_actor spawn_driver() {
    return spawn_driver(settings());
  }

  /// The default grace is long enough that a worker ended by SIGKILL
  /// instead of its stop signal shows.
  static instance_spec spec(const std::string& name,
                            std::chrono::milliseconds grace = 5s) {
    instance_spec s;
    s.name = name;
    s.app = "demo";
    s.min_concurrency = 1;
    s.max_concurrency = 2;
    s.launch.stop_grace_ms = static_cast<uint32_t>(grace.count());
    return s;
  }

  template <class... Ts>
  caf::expected<int32_t> ask(const process_driver_actor& d, Ts&&... xs) {
    caf::expected<int32_t> result{caf::make_error(caf::sec::request_timeout)};
    self->request(d, 10s, std::forward<Ts>(xs)...)
      .receive([&](int32_t pid) { result = pid; },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  /// alive(names): the pid of each, or the driver's error.
  caf::expected<std::vector<int32_t>>
  ask_list(const process_driver_actor& d, std::vector<std::string> names) {
    caf::expected<std::vector<int32_t>> result{
      caf::make_error(caf::sec::request_timeout)};
    self->request(d, 10s, alive_atom::value, std::move(names))
      .receive([&](std::vector<int32_t>& pids) { result = std::move(pids); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  int32_t start(const process_driver_actor& d, const instance_spec& s) {
    auto pid = ask(d, start_atom::value, s);
    BOOST_REQUIRE_MESSAGE(pid, "start failed: " << problem_of(pid));
    BOOST_REQUIRE_GT(*pid, 0);
    BOOST_REQUIRE_MESSAGE(wait_until([&] { return exec_finished(*pid); }),
                          "pid " << *pid << " never finished its exec");
    if (auto st = read_stat(*pid))
      tracked.emplace_back(*pid, st->start_time);
    return *pid;
  }

  int32_t alive(const process_driver_actor& d, const std::string& name) {
    auto pid = ask(d, alive_atom::value, name);
    BOOST_REQUIRE_MESSAGE(pid, "alive failed: " << problem_of(pid));
    return *pid;
  }

  /// Closes the driver (stop every worker); the count it stopped.
  uint32_t close(const process_driver_actor& d) {
    uint32_t stopped = 0;
    self->request(d, 10s, stop_atom::value)
      .receive([&](uint32_t n) { stopped = n; },
               [&](caf::error& err) {
                 BOOST_ERROR("close failed: " << describe(err));
               });
    return stopped;
  }

  int32_t stop(const process_driver_actor& d, const std::string& name) {
    auto pid = ask(d, stop_atom::value, name);
    BOOST_REQUIRE_MESSAGE(pid, "stop failed: " << problem_of(pid));
    return *pid;
  }

  fs::path dir(const std::string& name) const {
    return root / name;
  }

  fs::path pid_file(const std::string& name) const {
    return root / name / "worker.pid";
  }

  /// The sleeper's first line in the worker log, once it is there.
  std::string sleeper_line(const std::string& name) {
    std::string line;
    wait_until([&] {
      std::istringstream log{slurp(dir(name) / "worker.log")};
      while (std::getline(log, line))
        if (line.rfind("sleeper name=" + name + " pid=", 0) == 0)
          return true;
      line.clear();
      return false;
    });
    return line;
  }

  /// Writes a pid file by hand, as a crash or an attacker might leave it.
  void plant_pid_file(const std::string& name, const std::string& text) {
    fs::create_directories(dir(name));
    std::ofstream out{pid_file(name), std::ios::binary | std::ios::trunc};
    out << text;
  }

  /// Starts a sleeper outside any driver, as the test process's child.
  int32_t spawn_foreign_sleeper(const std::string& name) {
    std::vector<std::string> args{CYME_TEST_SLEEPER, "--name", name};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    auto err = posix_spawn(&pid, CYME_TEST_SLEEPER, &actions, nullptr,
                           argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    BOOST_REQUIRE_EQUAL(err, 0);
    // Its command line is the sleeper's once it runs.
    wait_until([&] {
      return slurp("/proc/" + std::to_string(pid) + "/cmdline")
               .find(name)
             != std::string::npos;
    });
    return pid;
  }

  static void kill_and_reap(int32_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

std::vector<std::string> cmdline_of(int32_t pid) {
  auto raw = slurp("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> out;
  std::string cur;
  for (char c : raw) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

// -- instance logs ------------------------------------------------------------

/// An instance's log files, oldest first: its backups, then worker.log.
std::vector<fs::path> log_files_of(const fs::path& dir) {
  std::map<long, fs::path, std::greater<>> backups;
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator{dir}) {
    auto name = e.path().filename().string();
    if (name.rfind("worker.log.", 0) == 0)
      backups[std::stol(name.substr(11))] = e.path();
  }
  for (auto& [k, path] : backups)
    out.push_back(path);
  if (fs::exists(dir / "worker.log"))
    out.push_back(dir / "worker.log");
  return out;
}

/// The text of an instance's log files, oldest first.
std::string log_text_of(const fs::path& dir) {
  std::string out;
  for (auto& f : log_files_of(dir))
    out += slurp(f);
  return out;
}

/// The numbers of the sleeper's "line <i> of ..." lines in `text`, in
/// order.
std::vector<long> numbered(const std::string& text) {
  std::vector<long> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("line ", 0) == 0)
      out.push_back(std::stol(line.substr(5)));
  return out;
}

/// Whether `numbers` are first, first + 1, ..., last.
bool is_run(const std::vector<long>& numbers, long first, long last) {
  if (numbers.size() != static_cast<size_t>(last - first + 1))
    return false;
  for (size_t i = 0; i < numbers.size(); ++i)
    if (numbers[i] != first + static_cast<long>(i))
      return false;
  return true;
}

/// The live cyme-log process writing the log of the instance in `dir`.
std::optional<int32_t> log_writer_of(const fs::path& dir) {
  auto log = (dir / "worker.log").string();
  for (auto& entry : fs::directory_iterator{"/proc"}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto pid = std::stoi(name);
    auto args = cmdline_of(pid);
    auto st = read_stat(pid);
    if (args.size() > 1 && args.front() == CYME_LOG_PROGRAM
        && args.back() == log && st && st->state != 'Z')
      return pid;
  }
  return std::nullopt;
}

/// Where descriptor `fd` of `pid` leads.
std::string fd_target(int32_t pid, int fd) {
  std::error_code ec;
  return fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/"
                            + std::to_string(fd),
                          ec)
    .string();
}

/// Counts SIGTERMs this process receives while alive.
struct sigterm_counter {
  static inline volatile sig_atomic_t count = 0;
  struct sigaction old {};

  sigterm_counter() {
    count = 0;
    struct sigaction sa {};
    sa.sa_handler = [](int) { count = count + 1; };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old);
  }
  ~sigterm_counter() {
    sigaction(SIGTERM, &old, nullptr);
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(process_driver, driver_fixture)

// A started worker has its folder (0750), a pid file naming it with its
// start time, a log receiving its output, and alive() answers its pid.
BOOST_AUTO_TEST_CASE(start_writes_pid_file_and_log_folder) {
  auto d = spawn_driver();
  auto pid = start(d, spec("alpha"));
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::stat(dir("alpha").c_str(), &st), 0);
  BOOST_CHECK(S_ISDIR(st.st_mode));
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0750u);
  auto proc = read_stat(pid);
  BOOST_REQUIRE(proc);
  BOOST_CHECK_EQUAL(slurp(pid_file("alpha")),
                    std::to_string(pid) + " "
                      + std::to_string(proc->start_time) + "\n");
  BOOST_CHECK_NE(sleeper_line("alpha"), "");
  BOOST_CHECK_EQUAL(alive(d, "alpha"), pid);
  BOOST_CHECK_EQUAL(stop(d, "alpha"), pid);
}

// The worker runs with exactly the documented command line: spec fields,
// the default broker when the spec has none, --queues only when there are
// queues, its start time, then the extra arguments.
BOOST_AUTO_TEST_CASE(worker_command_line_follows_the_spec) {
  auto s = settings();
  s.extra_args = {"--extra", "x y"};
  auto d = spawn_driver(s);
  auto before_ms = wall_now_ms();
  auto with_queues = spec("q1");
  with_queues.queues = {"orders", "mail"};
  with_queues.broker = "10.0.0.1:9092,10.0.0.2:9092";
  with_queues.min_concurrency = 3;
  with_queues.max_concurrency = 7;
  auto p1 = start(d, with_queues);
  auto p2 = start(d, spec("q2"));
  auto sleeper = fs::path{CYME_TEST_SLEEPER}.string();
  std::vector<std::string> want1{
    sleeper, "--name", "q1",
    "--app", "demo",
    "--broker", "10.0.0.1:9092,10.0.0.2:9092",
    "--queues", "orders,mail",
    "--min", "3",
    "--max", "7",
    "--instance-dir", (s.root / "q1").string(),
    "--extra", "x y"};
  std::vector<std::string> want2{
    sleeper, "--name", "q2",
    "--app", "demo",
    "--broker", "127.0.0.1:9092",
    "--min", "1",
    "--max", "2",
    "--instance-dir", (s.root / "q2").string(),
    "--extra", "x y"};
  auto after_ms = wall_now_ms();
  auto got1 = cmdline_of(p1);
  auto got2 = cmdline_of(p2);
  // --control-since-ms: when the driver started the process, between the
  // two readings of the clock; compared apart, then taken out.
  for (auto* got : {&got1, &got2}) {
    auto at = std::find(got->begin(), got->end(), "--control-since-ms");
    BOOST_TEST_REQUIRE((at != got->end() && at + 1 != got->end()));
    auto since = std::stoll(*(at + 1));
    BOOST_TEST(since >= before_ms);
    BOOST_TEST(since <= after_ms);
    BOOST_TEST((at + 2 != got->end() && *(at + 2) == "--extra"),
               "--control-since-ms comes before the extra arguments");
    got->erase(at, at + 2);
  }
  BOOST_CHECK_EQUAL_COLLECTIONS(got1.begin(), got1.end(), want1.begin(),
                                want1.end());
  BOOST_CHECK_EQUAL_COLLECTIONS(got2.begin(), got2.end(), want2.begin(),
                                want2.end());
  stop(d, "q1");
  stop(d, "q2");
}

/// The environment `pid` started with, as KEY -> VALUE.
std::map<std::string, std::string> environment_map(int32_t pid) {
  std::map<std::string, std::string> out;
  for (auto& entry : environment_of(pid))
    if (auto eq = entry.find('='); eq != std::string::npos)
      out[entry.substr(0, eq)] = entry.substr(eq + 1);
  return out;
}

// A process-kind instance runs exactly its program and arguments (no
// worker flags), with its env over the branch's plus the CYME_* entries,
// in its cwd; a worker-kind instance gets its own arguments before the
// branch's flags, and runs in its folder by default.
BOOST_AUTO_TEST_CASE(launch_sets_program_args_env_and_cwd) {
  auto s = settings();
  auto d = spawn_driver(s);
  auto sleeper = fs::path{CYME_TEST_SLEEPER}.string();
  auto proc = spec("web");
  proc.launch.kind = instance_kind::process;
  proc.launch.program = sleeper;
  proc.launch.args = {"--name", "web", "a b", "$(id)"};
  proc.launch.env = {{"GREETING", "hello world"}, {"HOME", "/nowhere"}};
  proc.launch.cwd = "/tmp";
  auto p1 = start(d, proc);
  auto args = cmdline_of(p1);
  std::vector<std::string> want{sleeper, "--name", "web", "a b", "$(id)"};
  BOOST_CHECK_EQUAL_COLLECTIONS(args.begin(), args.end(), want.begin(),
                                want.end());
  auto env = environment_map(p1);
  BOOST_CHECK_EQUAL(env["GREETING"], "hello world");
  BOOST_CHECK_EQUAL(env["HOME"], "/nowhere");
  BOOST_CHECK_EQUAL(env["CYME_INSTANCE"], "web");
  BOOST_CHECK_EQUAL(env["CYME_APP"], "demo");
  BOOST_CHECK_EQUAL(env["CYME_BROKER"], "127.0.0.1:9092");
  BOOST_CHECK_EQUAL(env["CYME_INSTANCE_DIR"], (s.root / "web").string());
  BOOST_CHECK(env.count("PATH") == 1u); // the branch's own, passed through
  BOOST_CHECK_EQUAL(fs::read_symlink(proc_path(p1, "cwd")).string(), "/tmp");
  auto worker = spec("w");
  worker.launch.args = {"--ignore-term"};
  auto p2 = start(d, worker);
  auto wargs = cmdline_of(p2);
  BOOST_REQUIRE_GE(wargs.size(), 4u);
  BOOST_CHECK_EQUAL(wargs[1], "--ignore-term");
  BOOST_CHECK_EQUAL(wargs[2], "--name");
  BOOST_CHECK_EQUAL(fs::read_symlink(proc_path(p2, "cwd")).string(),
                    (s.root / "w").string());
  stop(d, "web");
  BOOST_CHECK_EQUAL(stop(d, "w"), p2);
}

// A worker gets its broker's Kafka properties in a 0600 file that
// --kafka-config names, never on its command line; a process gets none,
// and a worker started when there are none no longer has the file.
BOOST_AUTO_TEST_CASE(workers_get_kafka_properties_in_a_private_file) {
  auto s = settings();
  s.kafka_properties = std::make_shared<kafka::property_book>(
    kafka::config_map{{"security.protocol", "SASL_PLAINTEXT"},
                      {"sasl.password", "s3cr3t-value"}});
  auto d = spawn_driver(s);
  auto pid = start(d, spec("kp"));
  auto file = dir("kp") / "kafka.properties";
  BOOST_CHECK_EQUAL(slurp(file),
                    "sasl.password=s3cr3t-value\nsecurity.protocol=SASL_PLAINTEXT\n");
  BOOST_CHECK_EQUAL(static_cast<unsigned>(fs::status(file).permissions()
                                          & fs::perms::all),
                    0600u);
  auto args = cmdline_of(pid);
  auto flag = std::find(args.begin(), args.end(), "--kafka-config");
  BOOST_REQUIRE(flag != args.end() && flag + 1 != args.end());
  BOOST_CHECK_EQUAL(*(flag + 1), file.string());
  for (auto& a : args)
    BOOST_CHECK(a.find("s3cr3t-value") == std::string::npos);
  auto proc = spec("kp-proc");
  proc.launch.kind = instance_kind::process;
  proc.launch.program = fs::path{CYME_TEST_SLEEPER}.string();
  proc.launch.args = {"--name", "kp-proc"};
  start(d, proc);
  BOOST_CHECK(!fs::exists(dir("kp-proc") / "kafka.properties"));
  stop(d, "kp");
  stop(d, "kp-proc");
  auto plain = spawn_driver(settings());
  auto again = start(plain, spec("kp"));
  BOOST_CHECK(!fs::exists(file));
  auto again_args = cmdline_of(again);
  BOOST_CHECK(std::find(again_args.begin(), again_args.end(), "--kafka-config")
              == again_args.end());
  stop(plain, "kp");
}

// A program that is neither the worker program nor on the allow-list is
// refused, naming the allow-list, and nothing starts; allowing its folder
// lets it run.
BOOST_AUTO_TEST_CASE(programs_off_the_allow_list_are_refused) {
  auto s = settings();
  auto d = spawn_driver(s);
  auto other = spec("other");
  other.launch.kind = instance_kind::process;
  other.launch.program = "/bin/sleep";
  other.launch.args = {"60"};
  auto refused = ask(d, start_atom::value, other);
  BOOST_REQUIRE(!refused);
  BOOST_CHECK_NE(describe(refused.error()).find("allow-list"),
                 std::string::npos);
  BOOST_CHECK_EQUAL(alive(d, "other"), 0);
  BOOST_CHECK(!fs::exists(pid_file("other")));
  auto allowing = settings();
  BOOST_REQUIRE_EQUAL(allowing.allowed_programs.allow("/bin"), "");
  auto d2 = spawn_driver(allowing);
  auto pid = start(d2, other);
  BOOST_CHECK_EQUAL(cmdline_of(pid).front(), "/bin/sleep");
  BOOST_CHECK_EQUAL(stop(d2, "other"), pid);
}

// Stopping sends the launch's stop signal: a sleeper ignoring SIGTERM
// ends at once on SIGINT, long before its grace.
BOOST_AUTO_TEST_CASE(stop_sends_the_launch_stop_signal) {
  auto d = spawn_driver();
  auto s = spec("gentle", 60s);
  s.launch.args = {"--ignore-term"};
  s.launch.stop_signal = "INT";
  auto pid = start(d, s);
  BOOST_REQUIRE_NE(sleeper_line("gentle"), "");
  BOOST_CHECK_EQUAL(slurp(dir("gentle") / "worker.stop"), "INT 60000\n");
  auto t0 = clock_type::now();
  BOOST_CHECK_EQUAL(stop(d, "gentle"), pid);
  BOOST_CHECK_LT(ms_since(t0), 5000);
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK(WIFSIGNALED(e->status));
  BOOST_CHECK_EQUAL(WTERMSIG(e->status), SIGINT);
}

// A restarted driver adopts a process-kind instance (no worker flags on its
// command line) by the marker in its environment, and stops it with the
// signal its launch named, read back from worker.stop.
BOOST_AUTO_TEST_CASE(restarted_driver_adopts_a_process_and_keeps_its_stop) {
  auto a = spawn_driver();
  auto s = spec("legacy", 60s);
  s.launch.kind = instance_kind::process;
  s.launch.program = fs::path{CYME_TEST_SLEEPER}.string();
  // Not its instance name: only the environment marks it.
  s.launch.args = {"--name", "not-the-instance", "--ignore-term"};
  s.launch.stop_signal = "INT";
  auto pid = start(a, s);
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  auto b = spawn_driver();
  BOOST_CHECK_EQUAL(alive(b, "legacy"), pid);
  auto t0 = clock_type::now();
  BOOST_CHECK_EQUAL(stop(b, "legacy"), pid);
  BOOST_CHECK_LT(ms_since(t0), 5000);
  int status = 0;
  BOOST_CHECK_EQUAL(::waitpid(pid, &status, 0), pid);
  BOOST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
}

// A worker leads its own process group, reads /dev/null and inherits no
// descriptor of the branch besides stdin, stdout and stderr.
BOOST_AUTO_TEST_CASE(worker_inherits_only_stdio_and_leads_its_group) {
  // A descriptor the branch forgot to mark close-on-exec.
  int leaky = ::open("/dev/null", O_RDONLY);
  BOOST_REQUIRE_GE(leaky, 3);
  auto d = spawn_driver();
  auto pid = start(d, spec("fds"));
  auto line = sleeper_line("fds");
  ::close(leaky);
  auto p = std::to_string(pid);
  BOOST_CHECK_EQUAL(line, "sleeper name=fds pid=" + p + " pgid=" + p
                            + " fds=0,1,2 stdin=/dev/null");
  stop(d, "fds");
}

// stop() sends SIGTERM, answers the pid once the process is gone, removes
// the pid file, and the exit is reported as requested.
BOOST_AUTO_TEST_CASE(stop_terminates_with_sigterm_and_reports_requested_exit) {
  auto d = spawn_driver();
  auto pid = start(d, spec("beta"));
  BOOST_REQUIRE_NE(sleeper_line("beta"), "");
  auto t0 = clock_type::now();
  BOOST_CHECK_EQUAL(stop(d, "beta"), pid);
  BOOST_CHECK_LT(ms_since(t0), 2000);
  BOOST_CHECK(!fs::exists(pid_file("beta")));
  BOOST_CHECK(fs::exists(dir("beta") / "worker.log"));
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK_EQUAL(e->instance, "beta");
  BOOST_CHECK(e->requested);
  BOOST_CHECK(WIFEXITED(e->status));
  BOOST_CHECK_EQUAL(WEXITSTATUS(e->status), 0);
  // Its last line reaches the log through its log writer.
  BOOST_CHECK(wait_until([&] {
    return slurp(dir("beta") / "worker.log").find("got SIGTERM")
           != std::string::npos;
  }));
  BOOST_CHECK_EQUAL(alive(d, "beta"), 0);
  BOOST_CHECK_EQUAL(exits->reports_of(pid), 1u);
}

// Stop requests for the same instance made while it is stopping all get
// the pid, and its exit is reported once.
BOOST_AUTO_TEST_CASE(concurrent_stops_all_get_the_answer) {
  auto s = settings();
  s.extra_args = {"--ignore-term"};
  auto d = spawn_driver(s);
  auto pid = start(d, spec("gamma", 300ms));
  BOOST_REQUIRE_NE(sleeper_line("gamma"), "");
  auto h1 = self->request(d, 10s, stop_atom::value, std::string{"gamma"});
  auto h2 = self->request(d, 10s, stop_atom::value, std::string{"gamma"});
  auto h3 = self->request(d, 10s, stop_atom::value, std::string{"gamma"});
  std::vector<int32_t> answers;
  for (auto* h : {&h1, &h2, &h3})
    h->receive([&](int32_t x) { answers.push_back(x); },
               [&](caf::error& err) {
                 BOOST_ERROR("stop failed: " << describe(err));
               });
  BOOST_CHECK_EQUAL(answers.size(), 3u);
  for (auto x : answers)
    BOOST_CHECK_EQUAL(x, pid);
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK(e->requested);
  BOOST_CHECK_EQUAL(exits->reports_of(pid), 1u);
}

// Closing stops every worker at once, answers with the count once all are
// gone, and refuses every later start.
BOOST_AUTO_TEST_CASE(closing_stops_all_at_once_and_refuses_starts) {
  auto d = spawn_driver(settings());
  std::vector<int32_t> pids;
  for (auto name : {"c1", "c2", "c3"})
    pids.push_back(start(d, spec(name, 300ms)));
  for (auto name : {"c1", "c2", "c3"})
    BOOST_REQUIRE_NE(sleeper_line(name), "");
  auto t0 = clock_type::now();
  auto stopped = close(d);
  BOOST_CHECK_EQUAL(stopped, 3u);
  // At once, not one after the other: well within three grace periods.
  BOOST_CHECK_LT(ms_since(t0), 2000);
  for (auto pid : pids) {
    auto e = exits->wait_exit(pid);
    BOOST_REQUIRE(e);
    BOOST_CHECK(e->requested);
  }
  for (auto name : {"c1", "c2", "c3"}) {
    BOOST_CHECK_EQUAL(alive(d, name), 0);
    BOOST_CHECK(!fs::exists(pid_file(name)));
  }
  auto late = ask(d, start_atom::value, spec("c4"));
  BOOST_REQUIRE(!late);
  BOOST_CHECK_EQUAL(late.error().code(),
                    static_cast<uint8_t>(cyme_errc::process_failure));
  BOOST_CHECK_EQUAL(alive(d, "c4"), 0);
  BOOST_CHECK(!fs::exists(pid_file("c4")));
}

// A restarted driver adopts lazily; closing it still stops the workers of
// its root it has not looked at yet, recorded or not.
BOOST_AUTO_TEST_CASE(closing_stops_workers_not_yet_adopted) {
  auto a = spawn_driver();
  auto recorded = start(a, spec("lazy1"));
  auto unrecorded = start(a, spec("lazy2"));
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  fs::remove(pid_file("lazy2"));
  auto b = spawn_driver();
  auto stopped = close(b);
  BOOST_CHECK_EQUAL(stopped, 2u);
  for (auto pid : {recorded, unrecorded}) {
    int status = 0;
    // Children of this test process: reaped here once gone.
    BOOST_CHECK_EQUAL(::waitpid(pid, &status, 0), pid);
  }
}

// A start that would take the driver past its open-file limit (a
// descriptor per worker and a reserve) is refused with a clear error
// naming the limit, and nothing starts; the workers it has keep running.
BOOST_AUTO_TEST_CASE(start_beyond_the_open_file_limit_is_refused) {
  rlimit saved{};
  BOOST_REQUIRE_EQUAL(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 512 + 3; // room for three workers
  BOOST_REQUIRE_EQUAL(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto d = spawn_driver(); // reads the limit now
  BOOST_REQUIRE_EQUAL(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  std::vector<int32_t> pids;
  for (auto name : {"f1", "f2", "f3"})
    pids.push_back(start(d, spec(name)));
  auto refused = ask(d, start_atom::value, spec("f4"));
  BOOST_REQUIRE(!refused);
  BOOST_CHECK_EQUAL(refused.error().code(),
                    static_cast<uint8_t>(cyme_errc::process_failure));
  BOOST_CHECK_NE(describe(refused.error()).find("RLIMIT_NOFILE"),
                 std::string::npos);
  BOOST_CHECK_EQUAL(alive(d, "f4"), 0);
  BOOST_CHECK(!fs::exists(pid_file("f4")));
  for (size_t i = 0; i < pids.size(); ++i)
    BOOST_CHECK_EQUAL(alive(d, std::string{"f"} + std::to_string(i + 1)), pids[i]);
  // Stopping one makes room for another.
  BOOST_CHECK_EQUAL(stop(d, "f1"), pids[0]);
  auto pid4 = start(d, spec("f4"));
  BOOST_CHECK_GT(pid4, 0);
  for (auto name : {"f2", "f3", "f4"})
    stop(d, name);
}

// Stopping an instance that does not run answers 0 at once.
BOOST_AUTO_TEST_CASE(stop_of_an_instance_not_running_answers_zero) {
  auto d = spawn_driver();
  BOOST_CHECK_EQUAL(stop(d, "never-started"), 0);
  BOOST_CHECK_EQUAL(alive(d, "never-started"), 0);
  BOOST_CHECK(!fs::exists(dir("never-started")));
}

// A worker that ignores SIGTERM is SIGKILLed once the grace period is
// over, and only then is the stop answered.
BOOST_AUTO_TEST_CASE(sigterm_ignoring_worker_is_killed_after_grace) {
  auto s = settings();
  s.extra_args = {"--ignore-term"};
  auto d = spawn_driver(s);
  auto pid = start(d, spec("stubborn", 200ms));
  BOOST_REQUIRE_NE(sleeper_line("stubborn"), "");
  auto t0 = clock_type::now();
  BOOST_CHECK_EQUAL(stop(d, "stubborn"), pid);
  auto took = ms_since(t0);
  BOOST_CHECK_GE(took, 200);
  BOOST_CHECK_LT(took, 3000);
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK(e->requested);
  BOOST_CHECK(WIFSIGNALED(e->status));
  BOOST_CHECK_EQUAL(WTERMSIG(e->status), SIGKILL);
  BOOST_CHECK(!fs::exists(pid_file("stubborn")));
}

// A kill -9 from outside is reported at once, not requested, with the wait
// status of SIGKILL; the pid file goes and alive() answers 0.
BOOST_AUTO_TEST_CASE(external_kill_is_reported_at_once_as_unrequested) {
  auto d = spawn_driver();
  auto pid = start(d, spec("victim"));
  auto t0 = clock_type::now();
  BOOST_REQUIRE_EQUAL(::kill(pid, SIGKILL), 0);
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK_LT(ms_since(t0), 2000);
  BOOST_CHECK_EQUAL(e->instance, "victim");
  BOOST_CHECK(!e->requested);
  BOOST_CHECK(WIFSIGNALED(e->status));
  BOOST_CHECK_EQUAL(WTERMSIG(e->status), SIGKILL);
  BOOST_CHECK_EQUAL(alive(d, "victim"), 0);
  // Set aside, not removed, once the death is told (the restart on its way
  // goes first); the restart's own pid file replaces it, and a stop
  // removes that one outright.
  BOOST_CHECK(wait_until(
    [&] { return fs::exists(dir("victim") / ".worker.pid.gone"); }));
  BOOST_CHECK(!fs::exists(pid_file("victim")));
  auto next = start(d, spec("victim"));
  BOOST_CHECK(fs::exists(pid_file("victim")));
  BOOST_CHECK(!fs::exists(dir("victim") / ".worker.pid.gone"));
  BOOST_CHECK_EQUAL(stop(d, "victim"), next);
  BOOST_CHECK(!fs::exists(pid_file("victim")));
  BOOST_CHECK(!fs::exists(dir("victim") / ".worker.pid.gone"));
}

// What a worker that died unasked left (its zombie, its pid file) is
// cleared after its death is told: a restart before that is not held up
// by it, does not take the dead worker's pid file for a running worker,
// and keeps its own pid file when the clearing comes.
BOOST_AUTO_TEST_CASE(a_restart_before_the_leftovers_are_cleared_keeps_its_pid_file) {
  auto s = settings();
  s.leftovers_delay = std::chrono::milliseconds{1500};
  auto d = spawn_driver(s);
  auto first = start(d, spec("quick"));
  BOOST_REQUIRE_EQUAL(::kill(first, SIGKILL), 0);
  BOOST_REQUIRE(exits->wait_exit(first));
  // Not cleared yet: the dead worker's pid file and its zombie are there,
  // and neither counts as a running worker.
  BOOST_CHECK_EQUAL(slurp(pid_file("quick")).rfind(std::to_string(first) + " ", 0),
                    0u);
  BOOST_CHECK_EQUAL(::kill(first, 0), 0);
  BOOST_CHECK_EQUAL(alive(d, "quick"), 0);
  auto second = start(d, spec("quick"));
  BOOST_REQUIRE_NE(second, first);
  BOOST_CHECK_EQUAL(alive(d, "quick"), second);
  // The clearing reaps the zombie and leaves the new pid file alone.
  BOOST_CHECK(wait_until([&] { return ::kill(first, 0) != 0 && errno == ESRCH; },
                         std::chrono::milliseconds{10000}));
  BOOST_CHECK_EQUAL(slurp(pid_file("quick")).rfind(std::to_string(second) + " ", 0),
                    0u);
  BOOST_CHECK(!fs::exists(dir("quick") / ".worker.pid.gone"));
  BOOST_CHECK_EQUAL(alive(d, "quick"), second);
  BOOST_CHECK_EQUAL(stop(d, "quick"), second);
  BOOST_CHECK(!fs::exists(pid_file("quick")));
}

// A worker started soon after its predecessor exited takes the commands
// made since that exit (none served the instance then): its
// --control-since-ms is when the exit was seen, not its own start.
BOOST_AUTO_TEST_CASE(a_replacement_takes_commands_from_its_predecessors_exit) {
  auto d = spawn_driver();
  auto since_of = [](int32_t pid) {
    auto got = cmdline_of(pid);
    auto at = std::find(got.begin(), got.end(), "--control-since-ms");
    BOOST_REQUIRE(at != got.end() && at + 1 != got.end());
    return std::stoll(*(at + 1));
  };
  auto first = start(d, spec("again"));
  auto before_kill = wall_now_ms();
  BOOST_REQUIRE_EQUAL(::kill(first, SIGKILL), 0);
  BOOST_REQUIRE(exits->wait_exit(first));
  auto reported = wall_now_ms();
  // Started a clock tick later than the exit was reported.
  BOOST_REQUIRE(wait_until([&] { return wall_now_ms() > reported + 1; }));
  auto second = start(d, spec("again"));
  auto since = since_of(second);
  BOOST_TEST(since >= before_kill);
  BOOST_TEST(since <= reported);
  stop(d, "again");
}

// Armed for its running worker, the driver starts the replacement when
// the worker dies, before telling of the death; the repair's start of the
// same spec takes it (nothing else is started) and is not armed again.
BOOST_AUTO_TEST_CASE(an_armed_worker_is_replaced_at_once_and_the_start_takes_it) {
  auto d = spawn_driver();
  auto first = start(d, spec("armed"));
  self->send(d, arm_atom::value, spec("armed"), first);
  BOOST_REQUIRE_EQUAL(alive(d, "armed"), first);
  BOOST_REQUIRE_EQUAL(::kill(first, SIGKILL), 0);
  auto e = exits->wait_exit(first);
  BOOST_REQUIRE(e);
  BOOST_CHECK(!e->requested);
  auto replacement = e->replacement;
  BOOST_REQUIRE_GT(replacement, 0);
  BOOST_REQUIRE_NE(replacement, first);
  BOOST_REQUIRE(wait_until([&] { return exec_finished(replacement); }));
  if (auto st = read_stat(replacement))
    tracked.emplace_back(replacement, st->start_time);
  // Until a start takes it, it is not the instance's process: a verify
  // that asks finds nothing running and restarts through its permit.
  BOOST_CHECK_EQUAL(alive(d, "armed"), 0);
  BOOST_CHECK_EQUAL(slurp(pid_file("armed")).rfind(std::to_string(replacement) + " ", 0),
                    0u);
  BOOST_CHECK_EQUAL(start(d, spec("armed")), replacement);
  BOOST_CHECK_EQUAL(alive(d, "armed"), replacement);
  // Taken, it is not armed: its death is the supervisor's to repair.
  BOOST_REQUIRE_EQUAL(::kill(replacement, SIGKILL), 0);
  e = exits->wait_exit(replacement);
  BOOST_REQUIRE(e);
  BOOST_CHECK_EQUAL(e->replacement, 0);
  BOOST_CHECK_EQUAL(alive(d, "armed"), 0);
}

// An arm for another pid than the running one, an arm withdrawn (pid 0)
// and a stop each leave a death to the supervisor: nothing is started.
BOOST_AUTO_TEST_CASE(a_withdrawn_or_stale_arm_and_a_stop_start_nothing) {
  auto d = spawn_driver();
  auto check_not_replaced = [&](const std::string& name, int32_t pid) {
    BOOST_REQUIRE_EQUAL(::kill(pid, SIGKILL), 0);
    auto e = exits->wait_exit(pid);
    BOOST_REQUIRE(e);
    BOOST_CHECK_EQUAL(e->replacement, 0);
    BOOST_CHECK_EQUAL(alive(d, name), 0);
  };
  auto stale = start(d, spec("stale"));
  self->send(d, arm_atom::value, spec("stale"), stale + 100000);
  check_not_replaced("stale", stale);
  auto withdrawn = start(d, spec("withdrawn"));
  self->send(d, arm_atom::value, spec("withdrawn"), withdrawn);
  self->send(d, arm_atom::value, spec("withdrawn"), int32_t{0});
  check_not_replaced("withdrawn", withdrawn);
  auto stopped = start(d, spec("stopped"));
  self->send(d, arm_atom::value, spec("stopped"), stopped);
  BOOST_CHECK_EQUAL(stop(d, "stopped"), stopped);
  auto e = exits->wait_exit(stopped);
  BOOST_REQUIRE(e);
  BOOST_CHECK(e->requested);
  BOOST_CHECK_EQUAL(e->replacement, 0);
  BOOST_CHECK_EQUAL(alive(d, "stopped"), 0);
}

// A start of another spec than the replacement's (the model changed
// meanwhile) stops the replacement first and starts its own; a stop ends
// a replacement nothing took.
BOOST_AUTO_TEST_CASE(a_replacement_gives_way_to_another_spec_and_to_a_stop) {
  auto d = spawn_driver();
  auto replaced = [&](const std::string& name) {
    auto first = start(d, spec(name));
    self->send(d, arm_atom::value, spec(name), first);
    BOOST_REQUIRE_EQUAL(alive(d, name), first);
    BOOST_REQUIRE_EQUAL(::kill(first, SIGKILL), 0);
    auto e = exits->wait_exit(first);
    BOOST_REQUIRE(e);
    BOOST_REQUIRE_GT(e->replacement, 0);
    BOOST_REQUIRE(wait_until([&] { return exec_finished(e->replacement); }));
    if (auto st = read_stat(e->replacement))
      tracked.emplace_back(e->replacement, st->start_time);
    return e->replacement;
  };
  auto spare = replaced("changed");
  auto other = spec("changed", 200ms);
  other.queues = {"elsewhere"};
  auto next = start(d, other);
  BOOST_CHECK_NE(next, spare);
  auto e = exits->wait_exit(spare);
  BOOST_REQUIRE(e);
  BOOST_CHECK(e->requested);
  BOOST_CHECK_EQUAL(alive(d, "changed"), next);
  auto args = cmdline_of(next);
  auto q = std::find(args.begin(), args.end(), "--queues");
  BOOST_REQUIRE(q != args.end() && q + 1 != args.end());
  BOOST_CHECK_EQUAL(*(q + 1), "elsewhere");
  BOOST_CHECK_EQUAL(stop(d, "changed"), next);

  spare = replaced("untaken");
  BOOST_CHECK_EQUAL(stop(d, "untaken"), spare);
  BOOST_CHECK_EQUAL(alive(d, "untaken"), 0);
}

// When a worker dies, what is left of its process group (its pool) is
// killed with it.
BOOST_AUTO_TEST_CASE(worker_exit_ends_its_process_group) {
  auto s = settings();
  s.extra_args = {"--fork-child"};
  auto d = spawn_driver(s);
  auto pid = start(d, spec("pool"));
  auto line = sleeper_line("pool");
  auto at = line.find(" child=");
  BOOST_REQUIRE_NE(at, std::string::npos);
  auto child = std::stoi(line.substr(at + 7));
  auto child_stat = read_stat(child);
  BOOST_REQUIRE(child_stat);
  BOOST_REQUIRE_EQUAL(::kill(pid, SIGKILL), 0);
  BOOST_REQUIRE(exits->wait_exit(pid));
  BOOST_CHECK(wait_until(
    [&] { return !still_runs(child, child_stat->start_time); }));
}

// start() of an instance that runs is refused and leaves it running.
BOOST_AUTO_TEST_CASE(start_of_a_running_instance_is_refused) {
  auto d = spawn_driver();
  auto pid = start(d, spec("once"));
  auto again = ask(d, start_atom::value, spec("once"));
  BOOST_REQUIRE(!again);
  BOOST_CHECK_EQUAL(again.error().code(),
                    static_cast<uint8_t>(cyme_errc::process_failure));
  BOOST_CHECK_EQUAL(alive(d, "once"), pid);
  BOOST_CHECK_EQUAL(slurp(pid_file("once")).rfind(std::to_string(pid) + " ", 0),
                    0u);
  BOOST_CHECK_EQUAL(stop(d, "once"), pid);
}

// Names that could escape the root or break a command line are refused by
// start, stop and alive, and nothing is created.
BOOST_AUTO_TEST_CASE(bad_names_are_refused_and_create_nothing) {
  auto d = spawn_driver();
  for (std::string name : {"../x", "a b", "", "/etc", ".hidden", "x/y"}) {
    BOOST_TEST_CONTEXT("name '" << name << "'") {
      auto started = ask(d, start_atom::value, spec(name));
      BOOST_REQUIRE(!started);
      BOOST_CHECK_EQUAL(started.error().code(),
                        static_cast<uint8_t>(cyme_errc::invalid_argument));
      auto stopped = ask(d, stop_atom::value, name);
      BOOST_CHECK(!stopped);
      auto alive = ask(d, alive_atom::value, name);
      BOOST_CHECK(!alive);
      auto listed = ask_list(d, {"fine", name});
      BOOST_CHECK(!listed);
    }
  }
  BOOST_CHECK(fs::is_empty(root));
  BOOST_CHECK(!fs::exists(root.parent_path() / "x"));
}

// A pid file naming a live process that is not the instance's worker (the
// test process itself, or a worker of another name) is not trusted: alive()
// answers 0, stop() signals nothing, the file is removed.
BOOST_AUTO_TEST_CASE(pid_file_of_a_foreign_process_is_not_trusted) {
  sigterm_counter sigterms;
  auto d = spawn_driver();
  auto me = read_stat(getpid());
  BOOST_REQUIRE(me);
  auto own_record = std::to_string(getpid()) + " "
                    + std::to_string(me->start_time) + "\n";
  plant_pid_file("mine", own_record);
  BOOST_CHECK_EQUAL(alive(d, "mine"), 0);
  BOOST_CHECK(!fs::exists(pid_file("mine")));
  plant_pid_file("mine", own_record);
  BOOST_CHECK_EQUAL(stop(d, "mine"), 0);
  BOOST_CHECK(!fs::exists(pid_file("mine")));
  auto other = spawn_foreign_sleeper("other");
  auto other_stat = read_stat(other);
  BOOST_REQUIRE(other_stat);
  plant_pid_file("mine", std::to_string(other) + " "
                           + std::to_string(other_stat->start_time) + "\n");
  BOOST_CHECK_EQUAL(stop(d, "mine"), 0);
  BOOST_CHECK(!fs::exists(pid_file("mine")));
  BOOST_CHECK(still_runs(other, other_stat->start_time));
  BOOST_CHECK_EQUAL(sigterms.count, 0);
  BOOST_CHECK_EQUAL(exits->reports_of(other), 0u);
  kill_and_reap(other);
}

// A pid file whose pid now belongs to another process (a different start
// time: the pid was recycled) is not trusted, even when that process is a
// worker of the same name, and that process is not signalled.
BOOST_AUTO_TEST_CASE(recycled_pid_is_not_trusted) {
  auto d = spawn_driver();
  auto other = spawn_foreign_sleeper("reused");
  auto other_stat = read_stat(other);
  BOOST_REQUIRE(other_stat);
  plant_pid_file("reused", std::to_string(other) + " "
                             + std::to_string(other_stat->start_time + 1)
                             + "\n");
  BOOST_CHECK_EQUAL(stop(d, "reused"), 0);
  BOOST_CHECK(!fs::exists(pid_file("reused")));
  BOOST_CHECK(still_runs(other, other_stat->start_time));
  kill_and_reap(other);
}

// Corrupt pid files (garbage, empty, huge, negative, truncated, zero, out of
// range, a dead pid, a folder) are not trusted and are removed.
BOOST_AUTO_TEST_CASE(corrupt_pid_files_are_not_trusted) {
  auto d = spawn_driver();
  // A pid that surely runs no process any more: a reaped child's.
  auto dead = spawn_foreign_sleeper("dead");
  auto dead_stat = read_stat(dead);
  BOOST_REQUIRE(dead_stat);
  kill_and_reap(dead);
  std::vector<std::pair<std::string, std::string>> cases{
    {"garbage", "hello world\n"},
    {"empty", ""},
    {"huge", std::string(4096, '1') + " 1\n"},
    {"negative", "-5 123\n"},
    {"truncated", std::to_string(getpid())},
    {"zero", "0 0\n"},
    {"too-big", "99999999999 1\n"},
    {"binary", std::string("1\0 2\n", 5)},
    {"two-lines", "1 2\n3 4\n"},
    {"dead", std::to_string(dead) + " " + std::to_string(dead_stat->start_time)
               + "\n"},
  };
  for (auto& [name, text] : cases) {
    BOOST_TEST_CONTEXT("pid file '" << name << "'") {
      plant_pid_file(name, text);
      BOOST_CHECK_EQUAL(alive(d, name), 0);
      BOOST_CHECK(!fs::exists(pid_file(name)));
      plant_pid_file(name, text);
      BOOST_CHECK_EQUAL(stop(d, name), 0);
      BOOST_CHECK(!fs::exists(pid_file(name)));
    }
  }
  // A folder where the pid file should be.
  fs::create_directories(pid_file("folder"));
  BOOST_CHECK_EQUAL(alive(d, "folder"), 0);
  BOOST_CHECK(!fs::exists(pid_file("folder")));
  // And start() is not fooled by any of them.
  auto pid = start(d, spec("garbage"));
  BOOST_CHECK_EQUAL(alive(d, "garbage"), pid);
  stop(d, "garbage");
}

// A driver started after its predecessor went away adopts the worker from
// its pid file: alive() answers the same pid, and its kill -9 is reported
// by the new driver (status unknown, -1, not requested).
BOOST_AUTO_TEST_CASE(restarted_driver_adopts_running_worker) {
  auto a = spawn_driver();
  auto pid = start(a, spec("adoptee"));
  auto started_at = read_stat(pid)->start_time;
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  BOOST_REQUIRE(still_runs(pid, started_at));
  BOOST_REQUIRE(fs::exists(pid_file("adoptee")));
  auto b = spawn_driver();
  // Asked for a list, as a round does: the running worker is adopted too.
  auto other = start(b, spec("other"));
  auto listed = ask_list(b, {"adoptee", "nobody", "other"});
  BOOST_REQUIRE_MESSAGE(listed, "alive failed: " << problem_of(listed));
  BOOST_CHECK((*listed == std::vector<int32_t>{pid, 0, other}));
  BOOST_CHECK_EQUAL(stop(b, "other"), other);
  BOOST_CHECK_EQUAL(alive(b, "adoptee"), pid);
  auto refused = ask(b, start_atom::value, spec("adoptee"));
  BOOST_CHECK(!refused);
  BOOST_REQUIRE_EQUAL(::kill(pid, SIGKILL), 0);
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK_EQUAL(e->instance, "adoptee");
  BOOST_CHECK_EQUAL(e->status, -1);
  BOOST_CHECK(!e->requested);
  BOOST_CHECK_EQUAL(exits->reports_of(pid), 1u);
  BOOST_CHECK_EQUAL(alive(b, "adoptee"), 0);
  // Taken away once the death is told.
  BOOST_CHECK(wait_until([&] { return !fs::exists(pid_file("adoptee")); }));
  // The test process is its real parent and reaps it, as init would after
  // a real branch restart.
  int status = 0;
  BOOST_CHECK_EQUAL(::waitpid(pid, &status, 0), pid);
  BOOST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

// A worker whose pid file was never written (its branch died right after
// starting it) is still found, by the --instance-dir its command line
// carries, adopted and recorded; a second process of the same instance is
// a duplicate and is killed.
BOOST_AUTO_TEST_CASE(unrecorded_worker_is_adopted_and_a_duplicate_killed) {
  auto a = spawn_driver();
  auto pid = start(a, spec("orphan"));
  auto dup = start(a, spec("orphan2"));
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  // As if both were started for "orphan" and never recorded: remove the
  // pid files and make the second one look like a second worker of it.
  fs::remove(pid_file("orphan"));
  fs::remove(pid_file("orphan2"));
  BOOST_REQUIRE(!fs::exists(pid_file("orphan")));
  auto b = spawn_driver();
  BOOST_CHECK_EQUAL(alive(b, "orphan"), pid);
  BOOST_CHECK(fs::exists(pid_file("orphan")));
  BOOST_CHECK_EQUAL(alive(b, "orphan2"), dup);
  stop(b, "orphan");
  stop(b, "orphan2");
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::waitpid(dup, &status, 0);
}

// An adopted worker is stopped like an own one: SIGTERM to its group, the
// pid answered once it is gone, the exit reported as requested.
BOOST_AUTO_TEST_CASE(adopted_worker_is_stopped_on_request) {
  auto a = spawn_driver();
  auto pid = start(a, spec("heir"));
  BOOST_REQUIRE_NE(sleeper_line("heir"), "");
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  auto b = spawn_driver();
  BOOST_CHECK_EQUAL(stop(b, "heir"), pid);
  auto e = exits->wait_exit(pid);
  BOOST_REQUIRE(e);
  BOOST_CHECK(e->requested);
  BOOST_CHECK_EQUAL(e->status, -1);
  BOOST_CHECK(!fs::exists(pid_file("heir")));
  int status = 0;
  BOOST_CHECK_EQUAL(::waitpid(pid, &status, 0), pid);
  BOOST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// The start time is read right even when the worker's comm field holds
// spaces and parentheses: the pid file agrees with /proc and a new driver
// adopts the worker.
BOOST_AUTO_TEST_CASE(start_time_survives_parentheses_in_comm) {
  auto bin = root / "bin";
  fs::create_directories(bin);
  auto odd = bin / "w) (x y";
  fs::create_symlink(CYME_TEST_SLEEPER, odd);
  auto s = settings();
  s.root = root / "branch";
  s.worker_program = odd;
  auto a = spawn_driver(s);
  auto pid = start(a, spec("odd"));
  auto comm = slurp("/proc/" + std::to_string(pid) + "/comm");
  BOOST_CHECK_EQUAL(comm, "w) (x y\n");
  auto proc = read_stat(pid);
  auto me = read_stat(getpid());
  BOOST_REQUIRE(proc && me);
  // Field 22 of a child is no earlier than its parent's and not in the
  // future; the neighbouring fields (0 and a size in bytes) are neither.
  auto ticks_now = static_cast<uint64_t>(
    std::stod(slurp("/proc/uptime")) * static_cast<double>(sysconf(_SC_CLK_TCK)));
  BOOST_CHECK_GE(proc->start_time, me->start_time);
  BOOST_CHECK_LE(proc->start_time, ticks_now + 1);
  BOOST_CHECK_EQUAL(slurp(s.root / "odd" / "worker.pid"),
                    std::to_string(pid) + " "
                      + std::to_string(proc->start_time) + "\n");
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  auto b = spawn_driver(s);
  BOOST_CHECK_EQUAL(alive(b, "odd"), pid);
  BOOST_CHECK_EQUAL(stop(b, "odd"), pid);
  ::waitpid(pid, nullptr, 0);
}

// Settings that cannot work are refused before anything is spawned.
BOOST_AUTO_TEST_CASE(bad_settings_are_refused) {
  auto expect_refused = [&](process_driver_settings s, const char* what) {
    BOOST_TEST_CONTEXT(what) {
      auto d = spawn_process_driver(sys, std::move(s));
      BOOST_REQUIRE(!d);
      BOOST_CHECK_EQUAL(d.error().code(),
                        static_cast<uint8_t>(cyme_errc::invalid_argument));
    }
  };
  auto s = settings();
  s.worker_program = root / "missing";
  expect_refused(s, "missing program");
  auto not_exec = root / "not-exec";
  std::ofstream{not_exec} << "#!/bin/sh\n";
  fs::permissions(not_exec, fs::perms::owner_read | fs::perms::owner_write);
  s = settings();
  s.worker_program = not_exec;
  expect_refused(s, "program not executable");
  s = settings();
  s.root = not_exec;
  expect_refused(s, "root is a file");
  s = settings();
  s.root = not_exec / "below";
  expect_refused(s, "root not creatable");
  s = settings();
  s.default_broker = "no port";
  expect_refused(s, "bad default broker");
  s = settings();
  s.log_program = root / "missing";
  expect_refused(s, "missing log program");
  s = settings();
  s.worker_log = rotation_policy{4096, 0};
  expect_refused(s, "rotation without a backup");
  s = settings();
  s.root = root / "fresh" / "deep";
  auto ok = spawn_process_driver(sys, s);
  BOOST_REQUIRE(ok);
  BOOST_CHECK(fs::is_directory(root / "fresh" / "deep"));
  self->send_exit(*ok, caf::exit_reason::user_shutdown);
  self->wait_for(*ok);
}

// A stop still waiting for its worker's exit is answered with an error when
// the driver exits, instead of leaving the requester waiting forever.
BOOST_AUTO_TEST_CASE(pending_stop_is_answered_when_the_driver_exits) {
  auto s = settings();
  s.extra_args = {"--ignore-term"};
  auto d = spawn_driver(s);
  auto pid = start(d, spec("held", 60s));
  BOOST_REQUIRE_NE(sleeper_line("held"), "");
  auto pending = self->request(d, 10s, stop_atom::value, std::string{"held"});
  // Answered after the stop, from the same sender: the stop was handled.
  BOOST_CHECK_EQUAL(alive(d, "held"), pid);
  self->send_exit(d, caf::exit_reason::user_shutdown);
  self->wait_for(d);
  std::optional<caf::error> err;
  pending.receive([&](int32_t) { BOOST_ERROR("stop answered a pid"); },
                  [&](caf::error& e) { err = e; });
  BOOST_REQUIRE(err);
  BOOST_CHECK_EQUAL(err->code(),
                    static_cast<uint8_t>(cyme_errc::process_failure));
  kill_and_reap(pid);
}

// A worker program that vanished after the driver started makes start()
// fail with a process failure, leaving no pid file and no process.
BOOST_AUTO_TEST_CASE(start_fails_cleanly_when_the_program_is_gone) {
  auto bin = root / "bin";
  fs::create_directories(bin);
  auto program = bin / "vanishing";
  fs::copy_file(CYME_TEST_SLEEPER, program);
  auto s = settings();
  s.root = root / "branch";
  s.worker_program = program;
  auto d = spawn_driver(s);
  fs::remove(program);
  auto started = ask(d, start_atom::value, spec("ghost"));
  BOOST_REQUIRE(!started);
  BOOST_CHECK_EQUAL(started.error().code(),
                    static_cast<uint8_t>(cyme_errc::process_failure));
  BOOST_CHECK(!fs::exists(s.root / "ghost" / "worker.pid"));
  BOOST_CHECK_EQUAL(alive(d, "ghost"), 0);
  BOOST_CHECK(children_of_this_process().empty());
}

// A driver's watcher thread ends with the driver: no thread is leaked.
BOOST_AUTO_TEST_CASE(driver_exit_ends_its_watcher_thread) {
  // Drivers of earlier tests may still be ending their own watchers, so the
  // one thread this driver added is told by its id, not by a count.
  auto before = threads_named("cyme-exits");
  auto d = spawn_process_driver(sys, settings());
  BOOST_REQUIRE(d);
  std::vector<pid_t> added;
  for (auto tid : threads_named("cyme-exits"))
    if (before.count(tid) == 0)
      added.push_back(tid);
  BOOST_REQUIRE_EQUAL(added.size(), 1u);
  auto pid = ask(*d, start_atom::value, spec("short"));
  BOOST_REQUIRE(pid);
  BOOST_CHECK_EQUAL(*ask(*d, stop_atom::value, std::string{"short"}), *pid);
  BOOST_CHECK(thread_exists(added[0]));
  self->send_exit(*d, caf::exit_reason::user_shutdown);
  self->wait_for(*d);
  BOOST_CHECK(wait_until([&] { return !thread_exists(added[0]); }));
}

// -- the log writer -----------------------------------------------------------

// An instance's output goes through its log writer, which rotates
// worker.log by size: every line the worker wrote is in worker.log and its
// backups, once and in order, and no file is over the size.
BOOST_AUTO_TEST_CASE(output_is_rotated_by_size_losing_no_line) {
  auto s = settings();
  s.worker_log = rotation_policy{4096, 30};
  auto d = spawn_driver(s);
  auto chatty = spec("chatty");
  chatty.launch.args = {"--lines", "1500"};
  start(d, chatty);
  BOOST_REQUIRE(wait_until(
    [&] {
      auto n = numbered(log_text_of(dir("chatty")));
      return !n.empty() && n.back() == 1500;
    },
    20s));
  BOOST_CHECK(is_run(numbered(log_text_of(dir("chatty"))), 1, 1500));
  auto files = log_files_of(dir("chatty"));
  BOOST_CHECK_GE(files.size(), 10u);
  BOOST_CHECK_LE(files.size(), 31u);
  for (auto& f : files)
    BOOST_CHECK_MESSAGE(fs::file_size(f) <= 4096u,
                        f << " holds " << fs::file_size(f) << " bytes");
  stop(d, "chatty");
}

// With fewer backups than the output needs, the newest lines stay, whole
// and in order, in worker.log and exactly that many backups.
BOOST_AUTO_TEST_CASE(rotation_keeps_only_the_backups_asked_for) {
  auto s = settings();
  s.worker_log = rotation_policy{4096, 3};
  auto d = spawn_driver(s);
  auto chatty = spec("brief");
  chatty.launch.args = {"--lines", "2000"};
  start(d, chatty);
  BOOST_REQUIRE(wait_until(
    [&] {
      auto n = numbered(log_text_of(dir("brief")));
      return !n.empty() && n.back() == 2000;
    },
    20s));
  auto n = numbered(log_text_of(dir("brief")));
  BOOST_REQUIRE(!n.empty());
  BOOST_CHECK_GT(n.front(), 1);
  BOOST_CHECK(is_run(n, n.front(), 2000));
  // Three full backups of about 100 lines each, and worker.log.
  BOOST_CHECK_GT(n.size(), 300u);
  BOOST_CHECK_EQUAL(log_files_of(dir("brief")).size(), 4u);
  BOOST_CHECK(!fs::exists(dir("brief") / "worker.log.4"));
  for (auto& f : log_files_of(dir("brief")))
    BOOST_CHECK_LE(fs::file_size(f), 4096u);
  stop(d, "brief");
}

// A worker killed with -9 just after writing leaves its last lines in the
// log: its log writer is outside the process group the driver kills, reads
// the pipe to its end, then ends.
BOOST_AUTO_TEST_CASE(a_worker_killed_hard_leaves_its_last_lines_in_the_log) {
  auto d = spawn_driver();
  auto doomed = spec("doomed");
  doomed.launch.args = {"--lines", "20000", "--kill-self"};
  auto pid = start(d, doomed);
  auto e = exits->wait_exit(pid, 20s);
  BOOST_REQUIRE(e);
  BOOST_CHECK(WIFSIGNALED(e->status) && WTERMSIG(e->status) == SIGKILL);
  BOOST_CHECK(wait_until([&] {
    auto n = numbered(log_text_of(dir("doomed")));
    return !n.empty() && n.back() == 20000;
  }));
  BOOST_CHECK(is_run(numbered(log_text_of(dir("doomed"))), 1, 20000));
  BOOST_CHECK(wait_until([&] { return !log_writer_of(dir("doomed")); }));
}

// The log writer is no instance: detached in a session of its own, with no
// environment (so no CYME_INSTANCE_DIR marker), reading the worker's pipe
// and holding no other end of it, writing nothing but the log. A restarted
// driver adopts the worker and leaves the writer alone; the writer ends
// once the worker is gone, its last line written.
BOOST_AUTO_TEST_CASE(the_log_writer_is_no_instance_and_ends_with_its_worker) {
  auto a = spawn_driver();
  auto pid = start(a, spec("scribe"));
  BOOST_REQUIRE_NE(sleeper_line("scribe"), "");
  auto writer = log_writer_of(dir("scribe"));
  BOOST_REQUIRE(writer);
  auto w = *writer;
  BOOST_CHECK(environment_of(w).empty());
  BOOST_CHECK_EQUAL(::getsid(w), w);
  BOOST_CHECK_NE(::getpgid(w), ::getpgid(pid));
  BOOST_CHECK_NE(read_stat(w)->ppid, ::getpid());
  BOOST_CHECK_EQUAL(fd_target(pid, 1).rfind("pipe:", 0), 0u);
  BOOST_CHECK_EQUAL(fd_target(pid, 2), fd_target(pid, 1));
  BOOST_CHECK_EQUAL(fd_target(w, 0), fd_target(pid, 1));
  BOOST_CHECK_EQUAL(fd_target(w, 1), "/dev/null");
  BOOST_CHECK_EQUAL(fd_target(w, 2), "/dev/null");
  for (auto& e : fs::directory_iterator{"/proc/" + std::to_string(w) + "/fd"})
    if (e.path().filename() != "0")
      BOOST_CHECK_MESSAGE(fs::read_symlink(e.path()).string().rfind("pipe:", 0)
                            != 0,
                          "the writer holds another pipe end: " << e.path());
  BOOST_CHECK_EQUAL(fs::read_symlink(proc_path(w, "cwd")).string(), "/");
  self->send_exit(a, caf::exit_reason::user_shutdown);
  self->wait_for(a);
  auto b = spawn_driver();
  BOOST_CHECK_EQUAL(alive(b, "scribe"), pid);
  BOOST_CHECK(log_writer_of(dir("scribe")) == w);
  BOOST_CHECK_EQUAL(stop(b, "scribe"), pid);
  // The test process is the worker's real parent and reaps it.
  int status = 0;
  BOOST_CHECK_EQUAL(::waitpid(pid, &status, 0), pid);
  BOOST_CHECK(wait_until([&] { return !log_writer_of(dir("scribe")); }));
  BOOST_CHECK_NE(slurp(dir("scribe") / "worker.log").find("got SIGTERM"),
                 std::string::npos);
}

// When the log writer cannot open the log (a folder in its place), the
// instance is not started, and the error says which log.
BOOST_AUTO_TEST_CASE(an_instance_whose_log_cannot_be_opened_is_not_started) {
  auto d = spawn_driver();
  fs::create_directories(dir("blocked") / "worker.log");
  auto started = ask(d, start_atom::value, spec("blocked"));
  BOOST_REQUIRE(!started);
  BOOST_CHECK_EQUAL(started.error().code(),
                    static_cast<uint8_t>(cyme_errc::process_failure));
  BOOST_CHECK_NE(describe(started.error()).find("worker.log"),
                 std::string::npos);
  BOOST_CHECK_EQUAL(alive(d, "blocked"), 0);
  BOOST_CHECK(!fs::exists(pid_file("blocked")));
  BOOST_CHECK(children_of_this_process().empty());
}

BOOST_AUTO_TEST_SUITE_END()

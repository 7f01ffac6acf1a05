#include "transport/process_driver.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/adoption.hpp"
#include "messages/errors.hpp"
#include "messages/names.hpp"
#include "messages/wall_clock.hpp"
#include "transport/kafka.hpp"
#include "transport/log_rotation.hpp"
#include "transport/logging.hpp"
#include "transport/proc.hpp"
#include "transport/thread_name.hpp"

extern char** environ;

namespace cyme {

namespace {

namespace fs = std::filesystem;

/// The driver as it is spawned: the public interface plus what its watcher
/// thread and its own timers tell it. Callers only see the public part.
///
/// - child_exit(name, pid): the pidfd of that process became readable (or,
///   without a pidfd, it is time to look again).
/// - grace_over(name, pid): the stop signal of a stop was not enough.
/// - standby(spec): make a standby ready for the next start like `spec`.
/// - leftovers(name, pid): clear what a worker that died unasked left.
using driver_impl = process_driver_actor::extend<
  caf::reacts_to<child_exit_atom, std::string, int32_t>,
  caf::reacts_to<grace_over_atom, std::string, int32_t>,
  caf::reacts_to<standby_atom, instance_spec>,
  caf::reacts_to<leftovers_atom, std::string, int32_t>>;

/// How often a process is looked at when it cannot be watched through a
/// pidfd (descriptors exhausted), or when its exit is not waitable yet.
constexpr auto exit_poll_interval = std::chrono::milliseconds{20};

constexpr const char* pid_file_name = "worker.pid";
constexpr const char* pid_temp_name = ".worker.pid.tmp";
/// The pid file of a process that died unasked, set aside until the next
/// start has written its own.
constexpr const char* pid_gone_name = ".worker.pid.gone";
constexpr const char* stop_file_name = "worker.stop";
constexpr const char* kafka_file_name = "kafka.properties";
constexpr const char* kafka_temp_name = ".kafka.properties.tmp";
constexpr const char* stop_temp_name = ".worker.stop.tmp";
/// Marks every process started here with its instance folder.
constexpr const char* instance_dir_variable = "CYME_INSTANCE_DIR";
/// Where standby workers run, under the root (not an instance name).
constexpr const char* standby_dir_name = ".standby";
/// How long a launch whose standby ended before its adoption gets none.
constexpr auto standby_pause = std::chrono::seconds{30};
/// How long after a start the next standby of its launch starts: the
/// worker just started gets onto the bus first, with the CPU to itself.
constexpr auto standby_delay = std::chrono::milliseconds{200};
/// A worker started within this time of its predecessor's exit takes the
/// commands made since that exit (control_since_ms).
constexpr int64_t command_gap_limit_ms = 5000;
/// What standbys say before they are adopted, in the standby folder; moved
/// to `<name>.1` when it passed `standby_log_limit` at a standby's start.
constexpr const char* standby_log_name = "standby.log";
constexpr off_t standby_log_limit = 1024 * 1024;

constexpr log::logger driver_log{"process driver"};

// -- pid files ----------------------------------------------------------------

/// The instance folder that `pid`'s environment marks it with, if any.
std::string marked_dir(int32_t pid) {
  auto prefix = std::string{instance_dir_variable} + "=";
  for (auto& entry : environment_of(pid))
    if (entry.rfind(prefix, 0) == 0)
      return entry.substr(prefix.size());
  return {};
}

/// Whether `pid` was started as the instance whose folder is `dir`: marked
/// in its environment, or (a worker) on its command line.
bool is_marked(int32_t pid, const fs::path& dir) {
  return marked_dir(pid) == dir.string()
         || has_argument_pair(pid, "--name", dir.filename().string());
}

/// Checks that the process a record names is the instance whose folder is
/// `dir`; on success hands out a pidfd that refers to exactly that
/// process. Returns why it is not trusted, empty when it is.
std::string check_process(const fs::path& dir, const pid_record& rec,
                          unique_fd& pidfd_out) {
  auto name = dir.filename().string();
  auto pid = std::to_string(rec.pid);
  if (::kill(rec.pid, 0) != 0) {
    if (errno == ESRCH)
      return "process " + pid + " no longer runs";
    return "process " + pid + " is not ours: " + errno_text(errno);
  }
  // Opened before the checks below: once they pass, the process they saw
  // was alive from its recorded start until now, so the pidfd is its own.
  unique_fd pidfd{pidfd_open(rec.pid)};
  if (!pidfd)
    return "process " + pid + " cannot be watched: " + errno_text(errno);
  auto start_time = start_time_of(rec.pid);
  if (!start_time)
    return "process " + pid + " no longer runs";
  if (*start_time != rec.start_time)
    return "pid " + pid + " was recycled (process started at "
           + std::to_string(*start_time) + ", not "
           + std::to_string(rec.start_time) + ")";
  if (!is_marked(rec.pid, dir))
    return "process " + pid + " is not the instance '" + name + "' (no "
           + instance_dir_variable + " marker for it, nor '--name " + name
           + "' on its command line)";
  pidfd_out = std::move(pidfd);
  return {};
}

/// Creates `<root>/<name>/` (0750) unless it exists as a folder. Returns why
/// not, empty on success.
std::string make_instance_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0750) == 0) {
    // The umask may have narrowed it.
    ::chmod(dir.c_str(), 0750);
    return {};
  }
  if (errno != EEXIST)
    return "cannot create " + dir.string() + ": " + errno_text(errno);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return dir.string() + " exists and is not a folder";
  return {};
}

// -- spawning -----------------------------------------------------------------

/// The program an instance runs.
fs::path program_of(const process_driver_settings& settings,
                    const instance_spec& spec) {
  return spec.launch.program.empty() ? settings.worker_program
                                     : fs::path{spec.launch.program};
}

/// The bootstrap servers of an instance's broker.
std::string broker_of(const process_driver_settings& settings,
                      const instance_spec& spec) {
  return spec.broker.empty() ? settings.default_broker : spec.broker;
}

/// The Kafka properties a worker-kind instance is given; none for others.
kafka::config_map kafka_properties_of(const process_driver_settings& settings,
                                      const instance_spec& spec) {
  if (spec.launch.kind != instance_kind::worker || !settings.kafka_properties)
    return {};
  return settings.kafka_properties->for_broker(broker_of(settings, spec));
}

/// The instance's command line, as documented in the header.
std::vector<std::string> launch_args(const process_driver_settings& settings,
                                     const instance_spec& spec,
                                     int64_t control_since_ms) {
  std::vector<std::string> args{program_of(settings, spec).string()};
  args.insert(args.end(), spec.launch.args.begin(), spec.launch.args.end());
  if (spec.launch.kind == instance_kind::process)
    return args;
  args.insert(args.end(), {"--name", spec.name, "--app", spec.app, "--broker",
                           broker_of(settings, spec)});
  if (!spec.queues.empty()) {
    std::string joined;
    for (auto& q : spec.queues) {
      if (!joined.empty())
        joined += ',';
      joined += q;
    }
    args.emplace_back("--queues");
    args.push_back(std::move(joined));
  }
  args.emplace_back("--min");
  args.push_back(std::to_string(spec.min_concurrency));
  args.emplace_back("--max");
  args.push_back(std::to_string(spec.max_concurrency));
  // Marks the process as this root's worker of this instance, so a driver
  // finds it even when a crash came between its start and its pid file.
  args.emplace_back("--instance-dir");
  args.push_back((settings.root / spec.name).string());
  if (!kafka_properties_of(settings, spec).empty()) {
    args.emplace_back("--kafka-config");
    args.push_back((settings.root / spec.name / kafka_file_name).string());
  }
  // Commands from this instant on are for this process (control_since_ms):
  // the supervisor's first ping after the start is read even when it comes
  // before the worker's control reader is positioned.
  args.emplace_back("--control-since-ms");
  args.push_back(std::to_string(control_since_ms));
  args.insert(args.end(), settings.extra_args.begin(),
              settings.extra_args.end());
  return args;
}

/// The instance's environment, as documented in the header.
std::vector<std::string> launch_env(const process_driver_settings& settings,
                                    const instance_spec& spec) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry{*e};
    auto eq = entry.find('=');
    if (eq != std::string_view::npos)
      vars[std::string{entry.substr(0, eq)}] = std::string{entry.substr(eq + 1)};
  }
  for (auto& [key, value] : spec.launch.env)
    vars[key] = value;
  vars["CYME_INSTANCE"] = spec.name;
  vars["CYME_APP"] = spec.app;
  vars["CYME_BROKER"] = broker_of(settings, spec);
  vars[instance_dir_variable] = (settings.root / spec.name).string();
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (auto& [key, value] : vars)
    out.push_back(key + "=" + value);
  return out;
}

/// The NULL-terminated pointers execve takes, into `strings`.
std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& x : strings)
    out.push_back(x.data());
  out.push_back(nullptr);
  return out;
}

/// posix_spawn with the setup every process started here gets: it leads a
/// new process group, starts with no blocked signal and default
/// dispositions in `cwd`, reads `in_fd` (-1: /dev/null), writes stdout and
/// stderr to `out_fd` (-1: /dev/null), and inherits no other descriptor.
/// `in_fd` and `out_fd` are at least 3 when given. Returns 0 or an errno
/// value.
int spawn_in_own_group(const fs::path& program, std::vector<std::string>& args,
                       std::vector<std::string>& env, const fs::path& cwd,
                       int in_fd, int out_fd, pid_t& pid) {
  auto argv = c_strings(args);
  auto envp = c_strings(env);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  if (int err = posix_spawn_file_actions_init(&actions); err != 0)
    return err;
  if (int err = posix_spawnattr_init(&attr); err != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return err;
  }
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  int err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP
                                              | POSIX_SPAWN_SETSIGMASK
                                              | POSIX_SPAWN_SETSIGDEF);
  if (err == 0)
    err = posix_spawnattr_setpgroup(&attr, 0);
  if (err == 0)
    err = posix_spawnattr_setsigmask(&attr, &none);
  if (err == 0)
    err = posix_spawnattr_setsigdefault(&attr, &all);
  if (err == 0)
    err = in_fd >= 0 ? posix_spawn_file_actions_adddup2(&actions, in_fd, 0)
                     : posix_spawn_file_actions_addopen(&actions, 0, "/dev/null",
                                                        O_RDONLY, 0);
  if (err == 0)
    err = out_fd >= 0
            ? posix_spawn_file_actions_adddup2(&actions, out_fd, 1)
            : posix_spawn_file_actions_addopen(&actions, 1, "/dev/null",
                                               O_WRONLY, 0);
  if (err == 0)
    err = posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (err == 0)
    err = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (err == 0)
    err = posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  if (err == 0)
    err = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(),
                      envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return err;
}

/// Starts the log writer of the instance whose log is `log`, reading
/// `in_fd` (at least 3), as the header documents: in a session of its own
/// (it leads a new group until it detaches and calls setsid), with an empty
/// environment, stdout and stderr on /dev/null, in "/". Waits for the
/// process started to exit, which it does once the log is open and the
/// writer detached. Returns why it failed, if it did.
std::optional<std::string> start_log_writer(const process_driver_settings& s,
                                            const fs::path& log, int in_fd) {
  std::vector<std::string> args{s.log_program.string(),
                                "--max-bytes",
                                std::to_string(s.worker_log.max_bytes),
                                "--backups",
                                std::to_string(s.worker_log.backups),
                                log.string()};
  std::vector<std::string> no_env;
  pid_t pid = 0;
  int err = spawn_in_own_group(s.log_program, args, no_env, "/", in_fd, -1, pid);
  if (err != 0)
    return "cannot start its log writer " + s.log_program.string() + ": "
           + errno_text(err);
  int status = 0;
  pid_t reaped;
  do
    reaped = ::waitpid(pid, &status, 0);
  while (reaped < 0 && errno == EINTR);
  if (reaped < 0)
    return "cannot wait for its log writer: " + errno_text(errno);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return std::nullopt;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
    return "its log writer cannot open " + log.string();
  return "its log writer " + s.log_program.string() + " failed (wait status "
         + std::to_string(status) + ")";
}

// -- the watcher thread -------------------------------------------------------

/// Waits on the pidfds of every watched process, plus an eventfd that wakes
/// it to take new ones or to stop, on one thread, through one epoll set: a
/// new process or an exit costs O(1), however many are watched. It reports each readable
/// pidfd once to the driver (child_exit) and forgets it; the driver makes
/// sure of the exit and reaps. It holds the driver weakly, so it never
/// keeps it alive.
class exit_watcher {
public:
  /// Starts the thread; null and `error` set when it cannot.
  static std::shared_ptr<exit_watcher> make(std::string& error) {
    auto w = std::shared_ptr<exit_watcher>(new exit_watcher);
    w->wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!w->wake_fd_) {
      error = "cannot create an eventfd: " + errno_text(errno);
      return nullptr;
    }
    w->epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!w->epoll_fd_) {
      error = "cannot create an epoll set: " + errno_text(errno);
      return nullptr;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_key;
    if (::epoll_ctl(w->epoll_fd_.get(), EPOLL_CTL_ADD, w->wake_fd_.get(), &ev)
        != 0) {
      error = "cannot watch the eventfd: " + errno_text(errno);
      return nullptr;
    }
    try {
      // The thread holds the watcher until it ends.
      w->thread_ = std::thread([w] { w->run(); });
      name_thread(w->thread_, "cyme-exits");
    } catch (const std::system_error& e) {
      error = std::string{"cannot start the exit watcher thread: "} + e.what();
      return nullptr;
    }
    return w;
  }

  /// Sets the driver that exits are reported to.
  void set_target(caf::actor_addr target) {
    std::lock_guard<std::mutex> guard{mtx_};
    target_ = std::move(target);
  }

  /// Watches the process behind `pidfd`, a descriptor the driver owns and
  /// keeps open until this watcher reported the exit (one descriptor per
  /// worker, not two). False when the thread has ended; the caller must
  /// then look by itself.
  bool watch(std::string name, int32_t pid, int pidfd) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_ || ended_)
        return false;
      incoming_.push_back(watched{std::move(name), pid, pidfd});
    }
    wake();
    return true;
  }

  /// Ends the thread, which closes its descriptors. Joins it, unless called
  /// on the thread itself (its report dropped the driver's last
  /// reference): it then just ends after this.
  void stop() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_)
        return;
      stopping_ = true;
    }
    wake();
    if (!thread_.joinable())
      return;
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else
      thread_.join();
  }

private:
  struct watched {
    std::string name;
    int32_t pid = 0;
    /// Borrowed from the driver.
    int pidfd = -1;
  };

  exit_watcher() = default;

  void wake() {
    uint64_t one = 1;
    // Fails only when the counter is saturated, which wakes it anyway.
    [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
  }

  void report(const watched& w) {
    caf::actor_addr target;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      target = target_;
    }
    if (auto driver = caf::actor_cast<driver_impl>(target))
      caf::anon_send(driver, child_exit_atom::value, w.name, w.pid);
  }

  void run() {
    std::map<uint64_t, watched> procs;
    uint64_t next_key = wake_key + 1;
    std::vector<epoll_event> ready(256);
    for (;;) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        if (stopping_)
          break;
        for (auto& w : incoming_) {
          auto key = next_key++;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = key;
          if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, w.pidfd, &ev)
              != 0) {
            // Unwatchable: report it now; the driver looks by itself and
            // keeps looking while the process lives.
            driver_log.warn("exit watcher: cannot watch pid "
                            + std::to_string(w.pid) + ": "
                            + errno_text(errno));
            report(w);
            continue;
          }
          procs.emplace(key, std::move(w));
        }
        incoming_.clear();
      }
      int n = ::epoll_wait(epoll_fd_.get(), ready.data(),
                           static_cast<int>(ready.size()), -1);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        driver_log.error("exit watcher stopped: epoll_wait: "
                         + errno_text(errno));
        break;
      }
      for (int i = 0; i < n; ++i) {
        auto key = ready[static_cast<size_t>(i)].data.u64;
        if (key == wake_key) {
          uint64_t count = 0;
          [[maybe_unused]] auto r = ::read(wake_fd_.get(), &count, sizeof count);
          continue;
        }
        auto p = procs.find(key);
        if (p == procs.end())
          continue;
        auto w = std::move(p->second);
        procs.erase(p);
        // Out of the set before the report: the driver closes the pidfd
        // only after it, and the number may then be reused.
        ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, w.pidfd, nullptr);
        report(w);
      }
    }
    std::lock_guard<std::mutex> guard{mtx_};
    ended_ = true;
  }

  static constexpr uint64_t wake_key = 0;
  unique_fd epoll_fd_;
  unique_fd wake_fd_;
  std::mutex mtx_;
  caf::actor_addr target_;
  std::vector<watched> incoming_;
  bool stopping_ = false;
  bool ended_ = false;
  std::thread thread_;
};

// -- the driver actor ---------------------------------------------------------

/// One running worker process, started here or adopted.
struct worker_process {
  int32_t pid = 0;
  uint64_t start_time = 0;
  /// Started by this driver (a child: reaped here, wait status known) or
  /// adopted from a pid file (status unknown).
  bool own = true;
  /// The driver's own pidfd: signals reach this process and no recycled
  /// pid. The watcher thread polls a duplicate.
  unique_fd pidfd;
  bool stop_requested = false;
  std::vector<caf::typed_response_promise<int32_t>> stop_waiters;
  /// Armed (arm): the spec its replacement is started from at once when
  /// it dies unasked.
  std::shared_ptr<const instance_spec> armed;
  /// Set while it is a replacement started that way and no start took it:
  /// the spec it was started from.
  std::shared_ptr<const instance_spec> spare_of;
  /// Starts of another spec that came while it was a spare: they run once
  /// it is gone.
  std::vector<std::pair<instance_spec, caf::typed_response_promise<int32_t>>>
    starts_after;
  /// How it is stopped: this signal, then SIGKILL after the grace.
  int stop_signal = SIGTERM;
  std::string stop_signal_name = "TERM";
  std::chrono::milliseconds stop_grace{launch_spec{}.stop_grace_ms};
};

/// Sets how `w` is stopped from a launch's stop_signal and grace.
void set_stop_policy(worker_process& w, const std::string& signal,
                     uint32_t grace_ms) {
  if (int sig = stop_signal_number(signal); sig != 0) {
    w.stop_signal = sig;
    w.stop_signal_name = signal;
  }
  w.stop_grace = std::chrono::milliseconds{grace_ms};
}

/// Reads how an adopted process is stopped from its worker.stop file; the
/// defaults when the file is missing or malformed.
void read_stop_policy(const fs::path& dir, worker_process& w) {
  std::string text;
  if (!read_capped((dir / stop_file_name).string(), 64, text).empty())
    return;
  auto space = text.find(' ');
  if (space == std::string::npos || text.empty() || text.back() != '\n')
    return;
  auto grace_text = text.substr(space + 1, text.size() - space - 2);
  uint32_t grace = 0;
  auto [end, ec] = std::from_chars(grace_text.data(),
                                   grace_text.data() + grace_text.size(), grace);
  if (ec != std::errc{} || end != grace_text.data() + grace_text.size()
      || grace > max_stop_grace_ms)
    return;
  set_stop_policy(w, text.substr(0, space), grace);
}

/// A standby worker (see the header): started ahead of need for one
/// launch, watched under a name no instance can have.
struct standby_process {
  std::string watch_name;
  int32_t pid = 0;
  uint64_t start_time = 0;
  /// Watched by the exit watcher, which borrows it until it reports.
  unique_fd pidfd;
  /// The driver's end of the socket that is the standby's stdin.
  unique_fd socket;
  /// It said "ready": it is on the bus.
  bool ready = false;
  /// Its Kafka properties, removed once it is adopted or ends.
  fs::path kafka_file;

  /// Kills its process group (the process alone, if it left it); its exit
  /// is reaped by whoever watches it.
  void kill() const {
    if (::getpgid(pid) == pid)
      ::kill(-pid, SIGKILL);
    else if (pidfd)
      pidfd_send_signal(pidfd.get(), SIGKILL);
  }

  /// Removes its Kafka properties: the secrets in them are not needed
  /// once it is on the bus and adopted, or gone.
  void remove_kafka_file() {
    if (!kafka_file.empty())
      ::unlink(kafka_file.c_str());
    kafka_file.clear();
  }
};

/// The wait status (as waitpid gives it) that `info`, from waitid,
/// describes; -1 when it describes no end.
int32_t wait_status_of(const siginfo_t& info) {
  switch (info.si_code) {
    case CLD_EXITED:
      return (info.si_status & 0xff) << 8;
    case CLD_KILLED:
      return info.si_status & 0x7f;
    case CLD_DUMPED:
      return (info.si_status & 0x7f) | 0x80;
    default:
      return -1;
  }
}

/// What a dead worker leaves until the driver clears it: the rest of its
/// process group (pool processes) and its zombie, when it was the
/// driver's child, and its pid file.
struct dead_worker {
  fs::path dir;
  int32_t pid = 0;
  /// It was the driver's child, not reaped yet (a zombie holds its pid and
  /// its group id).
  bool zombie = false;
  /// Its end was asked for: nothing restarts it, the pid file goes.
  bool requested = false;
};

/// Clears what `d` left (see dead_worker). A pid file that names another
/// process (its restart's) is left alone. When nobody asked for the death,
/// the pid file is renamed aside rather than removed, and removed once
/// the next start has written its own: removing a file whose blocks were
/// written out (the pid file is fsynced) frees them under the file
/// system's journal, 0.35-0.45 ms here against about 0.1 ms for the rename.
void clear_leftovers(const dead_worker& d) {
  if (d.zombie) {
    if (::getpgid(d.pid) == d.pid)
      ::kill(-d.pid, SIGKILL);
    ::waitpid(d.pid, nullptr, WNOHANG);
  }
  auto path = d.dir / pid_file_name;
  std::string text;
  pid_record rec;
  if (!read_capped(path.string(), pid_file_cap, text).empty()
      || !parse_pid_record(text, rec).empty() || rec.pid != d.pid)
    return;
  if (d.requested
      || ::rename(path.c_str(), (d.dir / pid_gone_name).c_str()) != 0)
    ::unlink(path.c_str());
}

struct driver_state {
  process_driver_settings settings;
  std::map<std::string, worker_process> workers;
  /// Workers that died unasked, their death told, what they left not yet
  /// cleared (settings.leftovers_delay), by instance (one may die again
  /// meanwhile). Such an instance's pid file is its dead worker's: nothing
  /// is adopted by it.
  std::multimap<std::string, dead_worker> dead;
  /// Standbys by the launch they are for (standby_key).
  std::map<std::string, standby_process> standbys;
  /// Standbys ended here, kept until their exit is reported (their pidfd
  /// is the watcher's until then).
  std::vector<standby_process> ending_standbys;
  /// The instance an adopted standby became, by its watch name: its exit
  /// is reported under that name.
  std::map<std::string, std::string> adopted_standbys;
  /// When a standby of a launch last ended before its adoption.
  std::map<std::string, std::chrono::steady_clock::time_point> standby_failed;
  uint64_t standby_serial = 0;
  std::vector<exit_listener> listeners;
  std::shared_ptr<exit_watcher> watcher;
  /// Workers of earlier branches by instance, found when the driver
  /// started; an entry goes once consulted.
  std::map<std::string, std::vector<int32_t>> unrecorded;
  /// When each instance's last worker exit was reported (ms since the
  /// epoch), until its next start or until it is too old to matter.
  std::map<std::string, int64_t> exited_at_ms;
  /// When exited_at_ms is next cleared of what is too old.
  int64_t exits_pruned_after_ms = 0;
  /// Set by stop(): every process is being stopped and none may start.
  bool closing = false;
  /// The descriptors this process may open (RLIMIT_NOFILE, soft).
  uint64_t fd_limit = 0;
  uint32_t stopped_on_close = 0;
  std::vector<caf::typed_response_promise<uint32_t>> close_waiters;

  static inline const char* name = "cyme.process_driver";

  // Workers keep running: the next driver adopts them. Stops still waiting
  // for an exit are answered, so that no requester waits forever.
  ~driver_state() {
    if (watcher)
      watcher->stop();
    for (auto& [name, d] : dead)
      clear_leftovers(d);
    // Standbys are this driver's alone: none outlives it (its socket's end
    // would end them too, but they would wait unreaped).
    auto end = [](standby_process& sb) {
      sb.kill();
      ::waitpid(sb.pid, nullptr, 0);
      sb.remove_kafka_file();
    };
    for (auto& [key, sb] : standbys)
      end(sb);
    for (auto& sb : ending_standbys)
      end(sb);
    for (auto& [name, w] : workers) {
      for (auto& rp : w.stop_waiters)
        rp.deliver(caf::make_error(cyme_errc::process_failure,
                                   "the process driver exited while stopping "
                                   "instance '" + name + "'"));
      for (auto& start : w.starts_after)
        start.second.deliver(caf::make_error(
          cyme_errc::process_failure,
          "the process driver exited before starting instance '" + name
            + "'"));
    }
    for (auto& rp : close_waiters)
      rp.deliver(caf::make_error(cyme_errc::process_failure,
                                 "the process driver exited while stopping "
                                 + std::to_string(workers.size())
                                 + " instances"));
  }
};

using self_ptr = driver_impl::stateful_pointer<driver_state>;

/// Descriptors left for everything but workers: Kafka sockets, the HTTP
/// server, SQLite, logs.
constexpr uint64_t fd_reserve = 512;

fs::path instance_dir(self_ptr self, const std::string& name) {
  return self->state.settings.root / name;
}

caf::error bad_name(const std::string& name) {
  if (auto problem = name_problem("instance", name); !problem.empty())
    return caf::make_error(cyme_errc::invalid_argument, problem);
  return caf::none;
}

void look_again_later(self_ptr self, const std::string& name, int32_t pid) {
  self->delayed_send(caf::actor_cast<driver_impl>(self), exit_poll_interval,
                     child_exit_atom::value, name, pid);
}

/// Has the watcher thread watch a worker's pidfd; looks periodically when
/// that cannot be done.
void watch_exit(self_ptr self, const std::string& name, worker_process& w) {
  if (w.pidfd && self->state.watcher->watch(name, w.pid, w.pidfd.get()))
    return;
  look_again_later(self, name, w.pid);
}

/// Signals a worker's process group while it leads one (a worker may have
/// left it), else the worker alone, through its pidfd.
void signal_worker(const worker_process& w, int sig) {
  // An adopted worker is not our child: once it ended, init may reap it and
  // its pid be recycled, so an ended one is never signalled. An own worker
  // stays unreaped (its pid and group id reserved) until we reap it.
  if (!w.own && (!w.pidfd || pidfd_exited(w.pidfd.get())))
    return;
  if (::getpgid(w.pid) == w.pid) {
    ::kill(-w.pid, sig);
    return;
  }
  if (w.pidfd)
    pidfd_send_signal(w.pidfd.get(), sig);
  else if (w.own)
    ::kill(w.pid, sig);
}

/// Logs why a pid file is not trusted and removes it.
void distrust(const fs::path& path, const std::string& why) {
  std::string outcome = "not trusted, removed";
  // An empty folder in its place goes too.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT
      && !(errno == EISDIR && ::rmdir(path.c_str()) == 0))
    outcome = "not trusted, cannot remove it: " + errno_text(errno);
  driver_log.warn(path.string() + ": " + why + "; " + outcome);
}

/// Ends `pid`, marked with the folder `dir` under the root, if it is a
/// standby that a gone branch left: a `--standby` process that no pid file
/// records and that is not a child of this process (whose own drivers'
/// standbys are theirs). Such a standby may have been told its adoption
/// just before its branch died, and be writing the instance over its
/// placeholders still: left alive it would become a second worker of an
/// instance the next branch starts again. True when it was ended.
bool end_if_left_standby(const fs::path& dir, int32_t pid) {
  std::string stat;
  if (!read_capped(proc_path(pid, "stat"), 4096, stat).empty()
      || stat_field(stat, 4) == static_cast<uint64_t>(::getpid()))
    return false;
  auto args = command_line(pid);
  if (std::find(args.begin(), args.end(), "--standby") == args.end())
    return false;
  std::string recorded;
  pid_record rec;
  if (read_capped((dir / pid_file_name).string(), pid_file_cap, recorded).empty()
      && parse_pid_record(recorded, rec).empty() && rec.pid == pid)
    return false;
  unique_fd pidfd{pidfd_open(pid)};
  if (!pidfd)
    return false;
  // Its own process group: what it started ends with it.
  if (::getpgid(pid) != pid || ::kill(-pid, SIGKILL) != 0)
    pidfd_send_signal(pidfd.get(), SIGKILL);
  driver_log.info("ended standby worker pid " + std::to_string(pid)
                  + " that a gone branch left");
  return true;
}

/// Live processes started as workers under this root, by instance, from
/// their environment (CYME_INSTANCE_DIR=ROOT/NAME) or, workers of earlier
/// versions, their command lines (`--instance-dir ROOT/NAME`, `--name
/// NAME`). Read
/// once when the driver starts: a worker without a pid file can only come
/// from an earlier branch (this driver records each worker it starts), and
/// one pass over /proc keeps adoption O(processes), not O(instances x
/// processes).
std::map<std::string, std::vector<int32_t>> find_marked_workers(const fs::path& root) {
  std::map<std::string, std::vector<int32_t>> out;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{"/proc", ec}) {
    auto text = entry.path().filename().string();
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto pid = static_cast<int32_t>(std::stol(text));
    if (auto dir = fs::path{marked_dir(pid)}; dir.parent_path() == root) {
      if (!end_if_left_standby(dir, pid))
        out[dir.filename().string()].push_back(pid);
      continue;
    }
    auto args = command_line(pid);
    for (auto& dir : arguments_after(args, "--instance-dir")) {
      // Exactly as worker_args wrote it: ROOT / NAME.
      auto name = fs::path{dir}.filename().string();
      if (!name.empty() && (root / name).string() == dir
          && has_argument_pair(args, "--name", name))
        out[name].push_back(pid);
    }
  }
  return out;
}

/// The live processes started as the worker of `name` under this root
/// that no pid file recorded (see find_marked_workers), rechecked now.
std::vector<int32_t> marked_workers(self_ptr self, const std::string& name) {
  std::vector<int32_t> out;
  auto i = self->state.unrecorded.find(name);
  if (i == self->state.unrecorded.end())
    return out;
  auto dir = instance_dir(self, name).string();
  for (auto pid : i->second) {
    auto args = command_line(pid);
    if (marked_dir(pid) == dir
        || (has_argument_pair(args, "--instance-dir", dir)
            && has_argument_pair(args, "--name", name)))
      out.push_back(pid);
  }
  self->state.unrecorded.erase(i);
  return out;
}

worker_process* adopt_from_pid_file(self_ptr self, const std::string& name);

/// Adopts the worker of `name` that runs without a pid file: a branch died
/// between starting it and recording it. One is adopted (and recorded);
/// any further one is a duplicate and is killed.
worker_process* adopt_unrecorded(self_ptr self, const std::string& name) {
  auto found = marked_workers(self, name);
  for (auto pid : found) {
    auto start = start_time_of(pid);
    if (!start)
      continue;
    auto dir = instance_dir(self, name);
    if (!write_pid_file(dir, pid_file_name, pid_temp_name,
                        pid_record{pid, *start})
           .empty())
      continue;
    auto* adopted = adopt_from_pid_file(self, name);
    if (adopted == nullptr)
      continue;
    driver_log.info("found unrecorded worker pid " + std::to_string(pid)
                    + " of instance '" + name + "'");
    for (auto other : found)
      if (other != pid && ::kill(other, 0) == 0) {
        driver_log.warn("killing duplicate worker pid "
                        + std::to_string(other) + " of instance '" + name
                        + "'");
        if (::getpgid(other) == other)
          ::kill(-other, SIGKILL);
        else
          ::kill(other, SIGKILL);
      }
    return adopted;
  }
  return nullptr;
}

/// Adopts the worker of `name`: the process its trusted pid file names, or
/// else one that runs unrecorded; null when none runs.
worker_process* adopt(self_ptr self, const std::string& name) {
  if (self->state.dead.count(name) > 0)
    return nullptr;
  if (auto* w = adopt_from_pid_file(self, name))
    return w;
  return adopt_unrecorded(self, name);
}

/// Adopts the process a trusted pid file names; null when there is none.
worker_process* adopt_from_pid_file(self_ptr self, const std::string& name) {
  auto path = instance_dir(self, name) / pid_file_name;
  std::string text;
  bool missing = false;
  auto problem = read_capped(path.string(), pid_file_cap, text, &missing);
  if (missing)
    return nullptr;
  pid_record rec;
  if (problem.empty())
    problem = parse_pid_record(text, rec);
  else
    problem = "unreadable: " + problem;
  unique_fd pidfd;
  if (problem.empty())
    problem = check_process(instance_dir(self, name), rec, pidfd);
  if (!problem.empty()) {
    distrust(path, problem);
    return nullptr;
  }
  worker_process w;
  w.pid = rec.pid;
  w.start_time = rec.start_time;
  w.own = false;
  w.pidfd = std::move(pidfd);
  read_stop_policy(instance_dir(self, name), w);
  auto& entry = self->state.workers.emplace(name, std::move(w)).first->second;
  watch_exit(self, name, entry);
  driver_log.info("adopted pid " + std::to_string(rec.pid) + " of instance '"
                  + name + "'");
  return &entry;
}

/// The running worker of `name`, known or adopted; null when none runs.
worker_process* find_running(self_ptr self, const std::string& name) {
  auto i = self->state.workers.find(name);
  if (i != self->state.workers.end())
    return &i->second;
  return adopt(self, name);
}

/// The pid of `name`'s running worker, known or adopted; 0 when none runs.
/// The pid of `name`'s process, 0 when none runs. A replacement started
/// at a death that no start took yet is not the instance's process: a
/// verify that asks before it learns of the death finds nothing running
/// and restarts through its permit, whose start takes the replacement
/// (and counts the restart).
int32_t running_pid(self_ptr self, const std::string& name) {
  auto* w = find_running(self, name);
  return w != nullptr && !w->spare_of ? w->pid : int32_t{0};
}

// -- standby workers ------------------------------------------------------------

/// The launch a standby for `spec` is started with, as one string; empty
/// when `spec` takes no standby: only workers that run the worker program
/// in their own folder do, and only when standbys are on.
std::string standby_key(const process_driver_settings& s,
                        const instance_spec& spec) {
  if (s.standby_workers == 0 || spec.launch.kind != instance_kind::worker
      || !spec.launch.cwd.empty() || program_of(s, spec) != s.worker_program)
    return {};
  std::string key = spec.app;
  key += '\0';
  key += broker_of(s, spec);
  key += '\0';
  for (auto& a : spec.launch.args)
    key += a + '\0';
  key += '\1';
  for (auto& [k, v] : spec.launch.env)
    key += k + '=' + v + '\0';
  key += '\1';
  key += kafka::format_properties(kafka_properties_of(s, spec));
  return key;
}

/// Whether `sb` said it is ready (looked for without waiting).
bool standby_ready(standby_process& sb) {
  if (sb.ready)
    return true;
  char buf[16];
  auto n = ::recv(sb.socket.get(), buf, sizeof buf, MSG_DONTWAIT);
  sb.ready = n == 6 && std::memcmp(buf, "ready\n", 6) == 0;
  return sb.ready;
}

/// Kills `sb`'s process group and removes its Kafka properties; its exit
/// is reaped when reported.
void end_standby(self_ptr self, standby_process sb) {
  sb.kill();
  sb.remove_kafka_file();
  self->state.ending_standbys.push_back(std::move(sb));
}

/// Starts a standby for the launch of `spec` (see the header).
void spawn_standby(self_ptr self, const instance_spec& spec,
                   const std::string& key) {
  auto& st = self->state;
  auto fail = [&](const std::string& why) {
    driver_log.warn("no standby worker for app '" + spec.app + "': " + why);
  };
  auto dir = st.settings.root / standby_dir_name;
  if (auto problem = make_instance_dir(dir); !problem.empty())
    return fail(problem);
  standby_process sb;
  auto serial = ++st.standby_serial;
  sb.watch_name = std::string{standby_dir_name} + "-" + std::to_string(serial);
  auto placeholder = spec;
  placeholder.name = standby_placeholder();
  auto env = launch_env(st.settings, placeholder);
  auto program = program_of(st.settings, spec);
  std::vector<std::string> args{program.string()};
  args.insert(args.end(), spec.launch.args.begin(), spec.launch.args.end());
  // Placeholders the standby writes its instance over once adopted.
  args.insert(args.end(), {"--standby", "--name", placeholder.name, "--app",
                           spec.app, "--broker", broker_of(st.settings, spec),
                           "--instance-dir",
                           (st.settings.root / placeholder.name).string()});
  if (auto props = kafka_properties_of(st.settings, spec); !props.empty()) {
    auto file = "kafka-" + std::to_string(serial) + ".properties";
    if (auto problem = write_file_atomically(dir, file, "." + file + ".tmp",
                                             kafka::format_properties(props),
                                             0600);
        !problem.empty())
      return fail(problem);
    sb.kafka_file = dir / file;
    args.emplace_back("--kafka-config");
    args.push_back(sb.kafka_file.string());
  }
  args.insert(args.end(), st.settings.extra_args.begin(),
              st.settings.extra_args.end());
  auto cleanup = [&] { sb.remove_kafka_file(); };
  auto log = dir / standby_log_name;
  struct stat log_stat{};
  if (::stat(log.c_str(), &log_stat) == 0 && log_stat.st_size > standby_log_limit)
    ::rename(log.c_str(), (log.string() + ".1").c_str());
  unique_fd out{::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                       0640)};
  if (out && out.get() < 3)
    out.reset(::fcntl(out.get(), F_DUPFD_CLOEXEC, 3));
  if (!out) {
    cleanup();
    return fail("cannot open " + log.string() + ": " + errno_text(errno));
  }
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) {
    cleanup();
    return fail("cannot make a socket pair: " + errno_text(errno));
  }
  sb.socket.reset(ends[0]);
  unique_fd theirs{ends[1]};
  if (theirs.get() < 3)
    theirs.reset(::fcntl(theirs.get(), F_DUPFD_CLOEXEC, 3));
  pid_t pid = 0;
  int err = theirs ? spawn_in_own_group(program, args, env, dir, theirs.get(),
                                        out.get(), pid)
                   : errno;
  theirs.reset();
  out.reset();
  if (err != 0) {
    cleanup();
    return fail("cannot start " + program.string() + ": " + errno_text(err));
  }
  sb.pid = pid;
  sb.pidfd.reset(pidfd_open(pid));
  auto start_time = start_time_of(pid);
  if (!sb.pidfd || !start_time) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    cleanup();
    return fail("cannot watch the process it started");
  }
  sb.start_time = *start_time;
  auto& entry = st.standbys.emplace(key, std::move(sb)).first->second;
  if (!st.watcher->watch(entry.watch_name, entry.pid, entry.pidfd.get()))
    look_again_later(self, entry.watch_name, entry.pid);
  driver_log.debug("standby worker pid " + std::to_string(entry.pid)
                   + " started for app '" + spec.app + "'");
}

/// Whether a standby for the launch `key` may be started now.
bool standby_wanted(const driver_state& st, const std::string& key) {
  if (key.empty() || st.closing || st.standbys.count(key) > 0
      || st.standbys.size() >= st.settings.standby_workers)
    return false;
  auto f = st.standby_failed.find(key);
  return f == st.standby_failed.end()
         || std::chrono::steady_clock::now() - f->second >= standby_pause;
}

/// Asks for a standby for the launch of `spec` a little after this start
/// (standby_delay), when one may be started.
void want_standby(self_ptr self, const instance_spec& spec,
                  const std::string& key) {
  if (standby_wanted(self->state, key))
    self->delayed_send(caf::actor_cast<driver_impl>(self), standby_delay,
                       standby_atom::value, spec);
}

/// From when a new worker of `name` takes commands (ms since the epoch):
/// from its predecessor's exit, when that was less than
/// command_gap_limit_ms ago, since a command made after it was meant for
/// whichever process serves the instance next (the supervisor's ping of a
/// round, an operator's broadcast); else from now.
int64_t control_since_ms(driver_state& st, const std::string& name) {
  auto now = wall_now_ms();
  auto i = st.exited_at_ms.find(name);
  if (i == st.exited_at_ms.end())
    return now;
  auto at = i->second;
  st.exited_at_ms.erase(i);
  return now - at <= command_gap_limit_ms ? at : now;
}

/// Makes the ready standby for `key` the worker of `spec`: sends it its
/// adoption with the instance's log descriptor `log_fd` and moves its
/// process into `w`. False when there is none ready (or it could not be
/// told: it is then ended).
bool adopt_standby(self_ptr self, const std::string& key,
                   const instance_spec& spec, int64_t since_ms, int log_fd,
                   worker_process& w) {
  auto& st = self->state;
  auto i = st.standbys.find(key);
  if (i == st.standbys.end() || !standby_ready(i->second))
    return false;
  auto sb = std::move(i->second);
  st.standbys.erase(i);
  adoption a;
  a.name = spec.name;
  a.queues = spec.queues;
  a.min_concurrency = spec.min_concurrency;
  a.max_concurrency = spec.max_concurrency;
  a.instance_dir = (st.settings.root / spec.name).string();
  a.control_since_ms = since_ms;
  if (auto problem = send_adoption(sb.socket.get(), a, log_fd);
      !problem.empty()) {
    driver_log.warn("standby worker pid " + std::to_string(sb.pid)
                    + " cannot be told its adoption: " + problem + "; ended");
    end_standby(self, std::move(sb));
    return false;
  }
  sb.remove_kafka_file();
  st.adopted_standbys[sb.watch_name] = spec.name;
  w.pid = sb.pid;
  w.start_time = sb.start_time;
  w.pidfd = std::move(sb.pidfd);
  return true;
}

void on_child_exit(self_ptr self, const std::string& name, int32_t pid);

/// The exit of a process watched as a standby: an adopted one's is its
/// instance's; any other is reaped here.
void on_standby_exit(self_ptr self, const std::string& watch, int32_t pid) {
  auto& st = self->state;
  if (auto a = st.adopted_standbys.find(watch); a != st.adopted_standbys.end()) {
    // The watcher reports a pidfd once; a look again is under the name.
    auto name = a->second;
    st.adopted_standbys.erase(a);
    on_child_exit(self, name, pid);
    return;
  }
  int status = 0;
  auto reaped = ::waitpid(pid, &status, WNOHANG);
  if (reaped == 0) {
    look_again_later(self, watch, pid);
    return;
  }
  auto& ending = st.ending_standbys;
  for (auto e = ending.begin(); e != ending.end(); ++e)
    if (e->watch_name == watch) {
      ending.erase(e);
      return;
    }
  for (auto s = st.standbys.begin(); s != st.standbys.end(); ++s) {
    if (s->second.watch_name != watch)
      continue;
    driver_log.warn("standby worker pid " + std::to_string(pid)
                    + " ended before it was needed (wait status "
                    + std::to_string(status) + "); none for its launch for "
                    + std::to_string(standby_pause.count()) + " s");
    s->second.remove_kafka_file();
    st.standby_failed[s->first] = std::chrono::steady_clock::now();
    st.standbys.erase(s);
    return;
  }
}

caf::expected<int32_t> start_worker(self_ptr self, const instance_spec& spec) {
  auto& st = self->state;
  auto dir = instance_dir(self, spec.name);
  auto failure = [&](const std::string& what) {
    return caf::make_error(cyme_errc::process_failure,
                           "instance '" + spec.name + "': " + what);
  };
  if (auto problem = make_instance_dir(dir); !problem.empty())
    return failure(problem);
  auto program = program_of(st.settings, spec);
  auto programs = program == st.settings.worker_program
                    ? exec_programs(spec.launch.args)
                    : std::vector<std::string>{program.string()};
  for (auto& p : programs)
    if (!st.settings.allowed_programs.allows(p))
      return failure("program " + p
                     + " is not on this branch's allow-list (--allow-program)");
  auto policy = spec.launch.stop_signal + " "
                + std::to_string(spec.launch.stop_grace_ms) + "\n";
  if (auto problem = write_file_atomically(dir, stop_file_name, stop_temp_name,
                                           policy, 0640);
      !problem.empty())
    return failure(problem);
  if (auto props = kafka_properties_of(st.settings, spec); !props.empty()) {
    if (auto problem = write_file_atomically(dir, kafka_file_name,
                                             kafka_temp_name,
                                             kafka::format_properties(props),
                                             0600);
        !problem.empty())
      return failure(problem);
  } else if (::unlink((dir / kafka_file_name).c_str()) != 0
             && errno != ENOENT) {
    // Secrets an instance no longer uses do not stay behind.
    return failure("cannot remove " + (dir / kafka_file_name).string() + ": "
                   + errno_text(errno));
  }
  auto since_ms = control_since_ms(st, spec.name);
  auto args = launch_args(st.settings, spec, since_ms);
  auto env = launch_env(st.settings, spec);
  auto cwd = spec.launch.cwd.empty() ? dir : fs::path{spec.launch.cwd};
  // The log the writer appends to is opened here first, the way the writer
  // opens it: a log that cannot be opened stops the start before anything
  // runs.
  auto log = dir / worker_log_name;
  if (auto opened = log_rotation::open(log, st.settings.worker_log); !opened)
    return failure("its log writer " + opened.error().text);
  // The instance writes into a pipe that its log writer reads. Both ends
  // are close-on-exec and above 0..2 (the branch may run without some
  // standard descriptor), so each child gets only its own end, and once
  // both are started the instance (and what it starts) holds the only
  // write end: the writer sees the pipe end when they are all gone.
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0)
    return failure("cannot make a pipe for its output: " + errno_text(errno));
  unique_fd out_read{ends[0]};
  unique_fd out_write{ends[1]};
  for (auto* end : {&out_read, &out_write})
    if (end->get() < 3) {
      end->reset(::fcntl(end->get(), F_DUPFD_CLOEXEC, 3));
      if (!*end)
        return failure("cannot duplicate a pipe descriptor: "
                       + errno_text(errno));
    }
  auto key = standby_key(st.settings, spec);
  worker_process w;
  w.own = true;
  set_stop_policy(w, spec.launch.stop_signal, spec.launch.stop_grace_ms);
  // A ready standby is already on the bus: it answers at once.
  bool from_standby = !key.empty()
                      && adopt_standby(self, key, spec, since_ms, out_write.get(), w);
  int pidfd_errno = 0;
  std::optional<uint64_t> start_time;
  if (from_standby) {
    start_time = w.start_time;
  } else {
    pid_t started = 0;
    if (int err = spawn_in_own_group(program, args, env, cwd, -1,
                                     out_write.get(), started);
        err != 0)
      return failure("cannot start " + program.string() + " in "
                     + cwd.string() + ": " + errno_text(err));
    w.pid = started;
    w.pidfd.reset(pidfd_open(started));
    pidfd_errno = errno;
    start_time = start_time_of(started);
  }
  out_write.reset();
  auto pid = w.pid;
  auto& entry = st.workers.emplace(spec.name, std::move(w)).first->second;
  // A standby's pidfd is watched already (its exit comes under its
  // standby name and is passed on).
  if (!from_standby)
    watch_exit(self, spec.name, entry);
  // Recorded at once: a branch that dies from here on leaves a pid file
  // for the next one to adopt the worker by.
  std::string problem;
  if (!entry.pidfd) {
    problem = "pidfd_open: " + errno_text(pidfd_errno);
  } else if (!start_time) {
    problem = "cannot read its start time";
  } else {
    entry.start_time = *start_time;
    problem = write_pid_file(dir, pid_file_name, pid_temp_name,
                             pid_record{pid, *start_time});
    // The predecessor's, set aside at its death (after the new process
    // started: not on the way to it).
    ::unlink((dir / pid_gone_name).c_str());
  }
  // The instance's log writer starts once the instance has (the pipe holds
  // what it writes until then): a replacement is not kept waiting for it.
  if (problem.empty())
    if (auto failed = start_log_writer(st.settings, log, out_read.get()))
      problem = *failed;
  out_read.reset();
  if (!problem.empty()) {
    // Unrecorded, it could not be adopted after a branch restart and would
    // run twice; without its log writer, its output would go nowhere: end
    // it. Its exit is reported as requested (and its pid file removed).
    entry.stop_requested = true;
    signal_worker(entry, SIGKILL);
    return failure("started as pid " + std::to_string(pid) + " but "
                   + problem + "; killed it");
  }
  want_standby(self, spec, key);
  return static_cast<int32_t>(pid);
}

void on_child_exit(self_ptr self, const std::string& name, int32_t pid) {
  if (name.rfind(standby_dir_name, 0) == 0) {
    on_standby_exit(self, name, pid);
    return;
  }
  auto& st = self->state;
  auto i = st.workers.find(name);
  if (i == st.workers.end() || i->second.pid != pid)
    return; // Already handled.
  auto& w = i->second;
  int32_t status = -1;
  dead_worker left{instance_dir(self, name), pid, false, w.stop_requested};
  if (w.own) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info,
                 WEXITED | WNOHANG | WNOWAIT)
        == 0) {
      if (info.si_pid == 0) {
        look_again_later(self, name, pid);
        return;
      }
      // Still a zombie, it holds its pid and group id: what is left of its
      // group (pool processes) is ended before it is reaped.
      status = wait_status_of(info);
      left.zombie = true;
    }
    // Else (ECHILD) someone reaped it (SIGCHLD ignored?): status unknown.
  } else if (!w.pidfd || !pidfd_exited(w.pidfd.get())) {
    look_again_later(self, name, pid);
    return;
  }
  process_exit ev{name, pid, status, w.stop_requested};
  auto now_ms = wall_now_ms();
  if (now_ms >= st.exits_pruned_after_ms) {
    // Instances that were not started again: what they left is too old.
    // Once per command_gap_limit_ms, so an exit costs O(1) amortized.
    for (auto e = st.exited_at_ms.begin(); e != st.exited_at_ms.end();)
      e = now_ms - e->second > command_gap_limit_ms ? st.exited_at_ms.erase(e)
                                                    : std::next(e);
    st.exits_pruned_after_ms = now_ms + command_gap_limit_ms;
  }
  st.exited_at_ms[name] = now_ms;
  auto waiters = std::move(w.stop_waiters);
  auto armed = std::move(w.armed);
  auto starts_after = std::move(w.starts_after);
  st.workers.erase(i);
  if (armed && !left.requested && !st.closing) {
    // Armed: the replacement starts before anyone hears of the death (the
    // supervisor gave its permit in advance), and the repair's start takes
    // it.
    if (auto started = start_worker(self, *armed)) {
      st.workers.at(name).spare_of = std::move(armed);
      ev.replacement = *started;
    } else {
      driver_log.warn("instance '" + name + "' (pid " + std::to_string(pid)
                      + ") died and was armed, but its replacement did not "
                        "start: " + describe(started.error())
                      + "; the supervisor's repair starts it");
    }
  }
  if (left.requested || st.closing) {
    // Whoever asked is told once nothing of it is left.
    clear_leftovers(left);
  } else {
    // A restart is on its way: the supervisor hears of the death first,
    // and what the worker left is cleared once the restart has started.
    st.dead.emplace(name, std::move(left));
    self->delayed_send(caf::actor_cast<driver_impl>(self),
                       st.settings.leftovers_delay,
                       leftovers_atom::value, name, pid);
  }
  for (auto& listener : st.listeners)
    self->send(listener, exited_atom::value, ev);
  for (auto& rp : waiters)
    rp.deliver(pid);
  // A spare stopped for a start of another spec: that start runs now.
  for (auto& [spec, rp] : starts_after) {
    if (st.closing)
      rp.deliver(caf::make_error(cyme_errc::process_failure,
                                 "the branch is stopping: instance '" + name
                                   + "' is not started"));
    else if (auto started = start_worker(self, spec))
      rp.deliver(*started);
    else
      rp.deliver(started.error());
  }
  if (st.closing && st.workers.empty()) {
    for (auto& rp : st.close_waiters)
      rp.deliver(st.stopped_on_close);
    st.close_waiters.clear();
  }
}

/// Asks `w` to end (its stop signal now, SIGKILL when its grace is over).
void request_stop(self_ptr self, const std::string& name, worker_process& w) {
  if (w.stop_requested)
    return;
  w.stop_requested = true;
  signal_worker(w, w.stop_signal);
  self->delayed_send(caf::actor_cast<driver_impl>(self), w.stop_grace,
                     grace_over_atom::value,
                     name, w.pid);
}

driver_impl::behavior_type driver_behavior(self_ptr self,
                                           process_driver_settings settings,
                                           std::shared_ptr<exit_watcher> w,
                                           uint64_t fd_limit,
                                           std::map<std::string, std::vector<int32_t>> unrecorded) {
  self->state.settings = std::move(settings);
  self->state.unrecorded = std::move(unrecorded);
  self->state.fd_limit = fd_limit;
  self->state.watcher = std::move(w);
  self->state.watcher->set_target(self->address());
  // A listener that ended is forgotten.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& ls = self->state.listeners;
    ls.erase(std::remove_if(ls.begin(), ls.end(),
                            [&](const exit_listener& l) {
                              return l.address() == dm.source;
                            }),
             ls.end());
  });
  return {
    [=](start_atom, const instance_spec& spec) -> caf::result<int32_t> {
      if (auto err = bad_name(spec.name))
        return err;
      if (auto problem = spec_problem(spec); !problem.empty())
        return caf::make_error(cyme_errc::invalid_argument, problem);
      auto& st = self->state;
      if (st.closing)
        return caf::make_error(cyme_errc::process_failure,
                               "the branch is stopping: instance '" + spec.name
                                 + "' is not started");
      // Each worker holds a descriptor here (its pidfd); past the limit,
      // pid files and logs could not be opened and workers would be lost
      // track of. Refuse, saying what to raise.
      if (st.workers.count(spec.name) == 0
          && st.workers.size() + 1 + fd_reserve > st.fd_limit)
        return caf::make_error(
          cyme_errc::process_failure,
          "instance '" + spec.name + "' not started: "
            + std::to_string(st.workers.size())
            + " workers run and the open-file limit (RLIMIT_NOFILE) is "
            + std::to_string(st.fd_limit)
            + "; each worker needs a descriptor: raise the limit "
              "(LimitNOFILE= in the unit, ulimit -n)");
      if (auto* w = find_running(self, spec.name)) {
        if (w->spare_of && !w->stop_requested) {
          // The replacement started at a death: this is the repair's start.
          if (*w->spare_of == spec) {
            w->spare_of.reset();
            return w->pid;
          }
          // The spec changed meanwhile: the spare goes, then this starts.
          auto rp = self->make_response_promise<int32_t>();
          w->starts_after.emplace_back(spec, rp);
          request_stop(self, spec.name, *w);
          return rp;
        }
        return caf::make_error(cyme_errc::process_failure,
                               "instance '" + spec.name + "' already runs (pid "
                                 + std::to_string(w->pid)
                                 + (w->stop_requested ? ", stopping)" : ")"));
      }
      return start_worker(self, spec);
    },
    [=](arm_atom, const instance_spec& spec, int32_t pid) {
      auto i = self->state.workers.find(spec.name);
      if (i == self->state.workers.end())
        return;
      auto& w = i->second;
      if (pid > 0 && pid == w.pid && !w.stop_requested && !w.spare_of)
        w.armed = std::make_shared<const instance_spec>(spec);
      else if (pid == 0)
        w.armed.reset();
    },
    [=](stop_atom, const std::string& name) -> caf::result<int32_t> {
      if (auto err = bad_name(name))
        return err;
      auto* w = find_running(self, name);
      if (w == nullptr)
        return int32_t{0};
      auto rp = self->make_response_promise<int32_t>();
      w->stop_waiters.push_back(rp);
      request_stop(self, name, *w);
      return rp;
    },
    [=](stop_atom) -> caf::result<uint32_t> {
      auto& st = self->state;
      if (!st.closing) {
        st.closing = true;
        // Workers of this root not looked at yet (a restarted branch adopts
        // lazily) are adopted first, so that none is left running.
        std::error_code ec;
        for (auto& e : fs::directory_iterator{st.settings.root, ec}) {
          auto name = e.path().filename().string();
          if (e.is_directory(ec) && name_problem("instance", name).empty())
            find_running(self, name);
        }
        st.stopped_on_close = static_cast<uint32_t>(st.workers.size());
        auto standbys = std::move(st.standbys);
        st.standbys.clear();
        for (auto& [key, sb] : standbys)
          end_standby(self, std::move(sb));
      }
      if (st.workers.empty())
        return st.stopped_on_close;
      for (auto& [name, w] : st.workers)
        request_stop(self, name, w);
      auto rp = self->make_response_promise<uint32_t>();
      st.close_waiters.push_back(rp);
      return rp;
    },
    [=](alive_atom, const std::string& name) -> caf::result<int32_t> {
      if (auto err = bad_name(name))
        return err;
      return running_pid(self, name);
    },
    [=](alive_atom,
        const std::vector<std::string>& names) -> caf::result<std::vector<int32_t>> {
      for (auto& name : names)
        if (auto err = bad_name(name))
          return err;
      std::vector<int32_t> pids;
      pids.reserve(names.size());
      for (auto& name : names)
        pids.push_back(running_pid(self, name));
      return pids;
    },
    [=](subscribe_atom, const exit_listener& listener) {
      auto& ls = self->state.listeners;
      if (!listener || std::find(ls.begin(), ls.end(), listener) != ls.end())
        return;
      ls.push_back(listener);
      self->monitor(listener);
    },
    [=](child_exit_atom, const std::string& name, int32_t pid) {
      on_child_exit(self, name, pid);
    },
    [=](standby_atom, const instance_spec& spec) {
      auto key = standby_key(self->state.settings, spec);
      if (standby_wanted(self->state, key))
        spawn_standby(self, spec, key);
    },
    [=](leftovers_atom, const std::string& name, int32_t pid) {
      auto& dead = self->state.dead;
      auto [first, last] = dead.equal_range(name);
      for (auto d = first; d != last; ++d)
        if (d->second.pid == pid) {
          clear_leftovers(d->second);
          dead.erase(d);
          return;
        }
    },
    [=](grace_over_atom, const std::string& name, int32_t pid) {
      auto i = self->state.workers.find(name);
      if (i == self->state.workers.end() || i->second.pid != pid)
        return;
      auto& w = i->second;
      driver_log.warn("instance '" + name + "' (pid " + std::to_string(pid)
                      + ") still runs " + std::to_string(w.stop_grace.count())
                      + " ms after SIG" + w.stop_signal_name
                      + "; sending SIGKILL");
      signal_worker(i->second, SIGKILL);
    },
  };
}

/// Validates the settings and makes their paths absolute (a later chdir of
/// the branch must not move them). Returns why they are invalid, or empty.
std::string check_settings(process_driver_settings& s) {
  std::error_code ec;
  if (s.root.empty())
    return "the root folder is not set";
  s.root = fs::absolute(s.root, ec);
  if (ec)
    return "root " + s.root.string() + ": " + ec.message();
  fs::create_directories(s.root, ec);
  if (ec)
    return "cannot create root " + s.root.string() + ": " + ec.message();
  if (!fs::is_directory(s.root, ec))
    return "root " + s.root.string() + " is not a folder";
  if (::access(s.root.c_str(), W_OK | X_OK) != 0)
    return "root " + s.root.string() + " is not writable: "
           + errno_text(errno);
  for (auto [what, program] : {std::pair{"worker program", &s.worker_program},
                                std::pair{"log program", &s.log_program}}) {
    if (program->empty())
      return std::string{"the "} + what + " is not set";
    *program = fs::absolute(*program, ec);
    if (ec)
      return std::string{what} + " " + program->string() + ": "
             + ec.message();
    if (!fs::is_regular_file(*program, ec))
      return std::string{what} + " " + program->string()
             + " does not exist or is not a file";
    if (::access(program->c_str(), X_OK) != 0)
      return std::string{what} + " " + program->string()
             + " is not executable: " + errno_text(errno);
  }
  if (auto problem = rotation_policy_problem(s.worker_log))
    return *problem;
  if (auto problem = broker_problem(s.default_broker); !problem.empty())
    return "default broker: " + problem;
  for (auto& arg : s.extra_args)
    if (arg.find('\0') != std::string::npos)
      return "an extra argument holds a NUL character";
  if (s.standby_workers > max_standby_workers)
    return "standby workers must be at most "
           + std::to_string(max_standby_workers);
  return {};
}

} // namespace

caf::expected<process_driver_actor>
spawn_process_driver(caf::actor_system& sys, process_driver_settings settings) {
  if (auto problem = check_settings(settings); !problem.empty())
    return caf::make_error(cyme_errc::invalid_argument, problem);
  if (unique_fd probe{pidfd_open(::getpid())}; !probe)
    return caf::make_error(cyme_errc::process_failure,
                           "pidfd_open is not available: "
                             + errno_text(errno));
  std::string error;
  auto watcher = exit_watcher::make(error);
  if (!watcher)
    return caf::make_error(cyme_errc::process_failure, error);
  rlimit lim{};
  uint64_t fd_limit = ::getrlimit(RLIMIT_NOFILE, &lim) == 0
                        ? static_cast<uint64_t>(lim.rlim_cur)
                        : 1024;
  auto unrecorded = find_marked_workers(settings.root);
  auto impl = sys.spawn(driver_behavior, std::move(settings),
                        std::move(watcher), fd_limit, std::move(unrecorded));
  return caf::actor_cast<process_driver_actor>(impl);
}

} // namespace cyme

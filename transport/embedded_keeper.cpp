#include "transport/embedded_keeper.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "messages/supervision.hpp"
#include "transport/kafka.hpp"
#include "transport/logging.hpp"
#include "transport/proc.hpp"
#include "transport/thread_name.hpp"

extern char** environ;

namespace cyme {

namespace fs = std::filesystem;

namespace {

constexpr log::logger keeper_log{"embedded kafka"};

constexpr const char* pid_name = "kafka.pid";
constexpr const char* pid_temp = ".kafka.pid.tmp";
constexpr const char* bootstrap_name = "bootstrap";

std::string bootstrap_path(const fs::path& dir) {
  return (dir / bootstrap_name).string();
}

/// The pid of the cluster process for `dir` if its pid file is trusted.
std::optional<int32_t> trusted_pid(const fs::path& dir) {
  std::string text;
  if (!read_capped((dir / pid_name).string(), pid_file_cap, text).empty())
    return std::nullopt;
  pid_record rec;
  if (!parse_pid_record(text, rec).empty())
    return std::nullopt;
  auto start = start_time_of(rec.pid);
  if (!start || *start != rec.start_time
      || !has_argument_pair(rec.pid, "--bootstrap-file", bootstrap_path(dir)))
    return std::nullopt;
  return rec.pid;
}

std::optional<std::string> read_bootstrap(const fs::path& dir) {
  std::string text;
  if (!read_capped(bootstrap_path(dir), 1024, text).empty() || text.empty())
    return std::nullopt;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

bool answers(const std::string& bootstrap) {
  try {
    kafka::producer probe{kafka::base_config(bootstrap)};
    return probe.reachable(3000);
  } catch (const std::exception&) {
    return false;
  }
}

/// The ports of a bootstrap list of the cluster's ("127.0.0.1:P1,..."),
/// comma-separated: "P1,...".
std::string ports_of(const std::string& bootstrap) {
  std::string ports;
  size_t at = 0;
  while (at <= bootstrap.size()) {
    auto end = bootstrap.find(',', at);
    if (end == std::string::npos)
      end = bootstrap.size();
    auto colon = bootstrap.rfind(':', end);
    if (colon != std::string::npos && colon >= at)
      ports += (ports.empty() ? "" : ",") + bootstrap.substr(colon + 1, end - colon - 1);
    at = end + 1;
  }
  return ports;
}

/// Starts the cluster's process for `dir` (on `ports` when not empty) and
/// waits until it says its address.
std::optional<embedded_kafka> start_cluster(const fs::path& dir,
                                            const fs::path& program,
                                            const std::string& ports,
                                            std::string& error) {
  std::error_code ec;
  fs::remove(dir / pid_name, ec);
  fs::remove(dir / bootstrap_name, ec);
  auto log = (dir / "kafka.log").string();
  auto bootstrap_file = bootstrap_path(dir);
  std::vector<std::string> args{program.string(), "--bootstrap-file",
                                bootstrap_file};
  if (!ports.empty()) {
    auto brokers = 1 + std::count(ports.begin(), ports.end(), ',');
    args.insert(args.end(), {"--brokers", std::to_string(brokers), "--ports",
                             ports});
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A session of its own: signals meant for the branch's terminal or
  // process group do not reach it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(),
                         environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    error = "cannot run " + program.string() + ": " + errno_text(rc);
    return std::nullopt;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  std::optional<std::string> bootstrap;
  while (!(bootstrap = read_bootstrap(dir))) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      error = "the embedded Kafka cluster exited at start; see " + log;
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      error = "the embedded Kafka cluster did not start within 10 s; see " + log;
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  auto start = start_time_of(pid);
  if (start) {
    if (auto err = write_pid_file(dir, pid_name, pid_temp,
                                  pid_record{static_cast<int32_t>(pid), *start});
        !err.empty())
      keeper_log.warn(err);
  }
  return embedded_kafka{*bootstrap, static_cast<int32_t>(pid), true};
}

} // namespace

std::optional<embedded_kafka>
ensure_embedded_kafka(const fs::path& dir, const fs::path& program,
                      std::string& error) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    error = "cannot create " + dir.string() + ": " + ec.message();
    return std::nullopt;
  }
  if (auto pid = trusted_pid(dir)) {
    if (auto bootstrap = read_bootstrap(dir); bootstrap && answers(*bootstrap))
      return embedded_kafka{*bootstrap, *pid, false};
  }
  // Nothing usable: start afresh, on ports the system picks.
  return start_cluster(dir, program, "", error);
}

void stop_embedded_kafka(const fs::path& dir, const embedded_kafka& kafka) {
  auto pid = trusted_pid(dir);
  if (!pid || *pid != kafka.pid)
    return;
  unique_fd pidfd{pidfd_open(*pid)};
  ::kill(*pid, SIGTERM);
  if (pidfd) {
    pollfd p{pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) == 0)
      ::kill(*pid, SIGKILL);
  }
  if (kafka.started_here)
    ::waitpid(*pid, nullptr, 0);
  std::error_code ec;
  fs::remove(dir / pid_name, ec);
  fs::remove(dir / bootstrap_name, ec);
}

// -- embedded_kafka_watch ----------------------------------------------------

embedded_kafka_watch::embedded_kafka_watch(fs::path dir, fs::path program,
                                           embedded_kafka kafka,
                                           restarted_fn on_restarted,
                                           failed_fn on_failed)
  : dir_(std::move(dir)),
    program_(std::move(program)),
    on_restarted_(std::move(on_restarted)),
    on_failed_(std::move(on_failed)),
    kafka_(std::move(kafka)) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error("embedded Kafka watch: pipe: " + errno_text(errno));
  stop_read_ = unique_fd{fds[0]};
  stop_write_ = unique_fd{fds[1]};
  thread_ = std::thread{[this] { run(); }};
  name_thread(thread_, "cyme-keeper");
}

embedded_kafka_watch::~embedded_kafka_watch() {
  char one = 1;
  [[maybe_unused]] auto n = ::write(stop_write_.get(), &one, 1);
  thread_.join();
}

embedded_kafka embedded_kafka_watch::current() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return kafka_;
}

bool embedded_kafka_watch::pause(std::chrono::milliseconds d) {
  pollfd p{stop_read_.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(d.count())) == 0;
}

bool embedded_kafka_watch::wait_for_end(std::map<std::string, std::string>& ended) {
  auto kafka = current();
  unique_fd pidfd{pidfd_open(kafka.pid)};
  if (pidfd) {
    pollfd ps[2] = {{stop_read_.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    while (::poll(ps, 2, -1) < 0)
      if (errno != EINTR)
        return false;
    if (ps[0].revents != 0)
      return false;
  } else if (errno != ESRCH) {
    // No pidfd (an old kernel): look twice a second.
    while (::kill(kafka.pid, 0) == 0)
      if (!pause(std::chrono::milliseconds{500}))
        return false;
  }
  // Our own child is reaped here, and tells how it ended.
  int status = 0;
  if (kafka.started_here && ::waitpid(kafka.pid, &status, 0) == kafka.pid)
    ended = exit_data(status);
  return true;
}

void embedded_kafka_watch::run() {
  for (;;) {
    std::map<std::string, std::string> ended;
    if (!wait_for_end(ended))
      return;
    auto died_at = std::chrono::steady_clock::now();
    auto ports = ports_of(current().bootstrap);
    for (auto backoff = std::chrono::milliseconds{0};;) {
      if (backoff.count() > 0 && !pause(backoff))
        return;
      std::string error;
      if (auto started = start_cluster(dir_, program_, ports, error)) {
        {
          std::lock_guard<std::mutex> guard{mtx_};
          kafka_ = *started;
        }
        on_restarted_(*started, ended,
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - died_at));
        break;
      }
      on_failed_(error);
      backoff = std::min(std::chrono::milliseconds{1000},
                         std::max(std::chrono::milliseconds{100}, backoff * 2));
    }
  }
}

} // namespace cyme

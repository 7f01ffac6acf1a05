#include "transport/embedded_keeper.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "transport/kafka.hpp"
#include "transport/logging.hpp"
#include "transport/proc.hpp"

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
  // Nothing usable: start afresh.
  fs::remove(dir / pid_name, ec);
  fs::remove(dir / bootstrap_name, ec);
  auto log = (dir / "kafka.log").string();
  auto bootstrap_file = bootstrap_path(dir);
  std::vector<std::string> args{program.string(), "--bootstrap-file",
                                bootstrap_file};
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

} // namespace cyme

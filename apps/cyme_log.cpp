// cyme-log: the log writer of one instance. The process driver starts one
// beside each instance, its stdin the read end of the pipe that the
// instance's stdout and stderr write to; it appends the whole lines it
// reads to FILE (the instance's worker.log), rotating it by size
// (transport/log_rotation.hpp). It detaches once FILE is open, so the
// driver reaps the process it started at once, and the writer outlives a
// branch restart with its instance. It ignores SIGTERM, SIGINT and SIGHUP:
// it ends when its input does, once the instance and everything it started
// are gone and their last lines are written.
//
// A write that fails (a full disk) is tried again every second, not
// dropped: the instance then waits on its full pipe. When FILE's folder is
// removed there is nowhere to write and it exits 1.
//
// Exit status of the process started: 0 once detached, 1 when FILE cannot
// be opened, 2 for bad arguments.

#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "messages/version.hpp"
#include "transport/log_rotation.hpp"

using namespace cyme;

namespace {

/// How long a failed write waits before it is tried again.
constexpr auto retry_interval = std::chrono::seconds{1};

/// Writes all of `pending` (whole lines), trying again while writes fail.
/// False when the log's folder is gone.
bool write_all(log_rotation& log, std::string& pending) {
  for (;;) {
    auto outcome = log.append(pending);
    pending.erase(0, outcome.written);
    if (!outcome.error)
      return true;
    if (outcome.folder_gone)
      return false;
    std::this_thread::sleep_for(retry_interval);
  }
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"cyme-log: appends the lines read on stdin to FILE, rotating "
               "it by size, until stdin ends"};
  rotation_policy policy;
  std::string file;
  app.add_option("--max-bytes", policy.max_bytes,
                 "rotate FILE before it would exceed this size (0: never)")
    ->capture_default_str();
  app.add_option("--backups", policy.backups,
                 "backups kept: FILE.1 (newest) to FILE.N")
    ->capture_default_str();
  app.add_option("file", file, "the log file")->required();
  app.set_version_flag("--version", cyme::version_text("cyme-log"));
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (auto problem = rotation_policy_problem(policy)) {
    std::cerr << "cyme-log: " << *problem << "\n";
    return 2;
  }
  for (int sig : {SIGTERM, SIGINT, SIGHUP})
    ::signal(sig, SIG_IGN);
  auto log = log_rotation::open(file, policy);
  if (!log) {
    std::cerr << "cyme-log: " << log.error().text << "\n";
    return 1;
  }
  auto child = ::fork();
  if (child < 0) {
    std::cerr << "cyme-log: " << log_failure(errno, "cannot fork").text << "\n";
    return 1;
  }
  if (child > 0)
    ::_exit(0);
  // No controlling terminal, no group of anyone else's.
  ::setsid();
  line_buffer lines{line_limit(policy)};
  std::string pending;
  std::array<char, 64 * 1024> buf;
  for (;;) {
    auto n = ::read(0, buf.data(), buf.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      // The end of the input (no writer is left), or an input that cannot
      // be read any more: what remains is written.
      pending += lines.finish();
      return write_all(log.value(), pending) ? 0 : 1;
    }
    pending += lines.take({buf.data(), static_cast<std::size_t>(n)});
    if (!write_all(log.value(), pending))
      return 1;
  }
}

#pragma once

/// Facts about processes from /proc and pid files, without trusting either
/// blindly: start times (so a recycled pid is told apart), command lines,
/// pidfds, and pid files written atomically as one line "<pid> <starttime>".
/// Shared by the process driver and the embedded Kafka keeper.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

namespace cyme {

/// Largest pid file read; anything longer is corrupt.
constexpr std::size_t pid_file_cap = 256;

/// Enough of /proc/<pid>/cmdline to find the flags a program gets first.
constexpr std::size_t cmdline_cap = 64 * 1024;

std::string errno_text(int err);

/// Owns one file descriptor.
class unique_fd {
public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {
  }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
  }
  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    reset();
  }

  int get() const {
    return fd_;
  }
  explicit operator bool() const {
    return fd_ >= 0;
  }
  int release() {
    return std::exchange(fd_, -1);
  }
  void reset(int fd = -1) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

int pidfd_open(pid_t pid);
int pidfd_send_signal(int pidfd, int sig);

/// True once the process of `pidfd` has exited (it is readable then).
bool pidfd_exited(int pidfd);

/// Reads at most `cap` + 1 bytes of a regular file (one more than allowed,
/// so that an oversized file shows), never following a symlink or blocking
/// on a FIFO. Returns why not, empty on success; `missing` tells a file that
/// does not exist from a broken one.
std::string read_capped(const std::string& path, std::size_t cap,
                        std::string& out, bool* missing = nullptr);

std::string proc_path(int32_t pid, const char* entry);

/// Field 22 (starttime) of a /proc/<pid>/stat line.
std::optional<uint64_t> parse_start_time(std::string_view stat);

/// Field `n` (1-based, as proc(5) numbers them, from 3 on) of a
/// /proc/<pid>/stat line, when it is a number.
std::optional<uint64_t> stat_field(std::string_view stat, int n);

/// What a process uses: CPU time (user + system) and resident memory.
struct process_usage {
  double cpu_seconds = 0;
  uint64_t resident_bytes = 0;
};

/// The usage of `pid`, or nothing when it is gone.
std::optional<process_usage> usage_of(int32_t pid);

/// Descriptors this process has open.
std::size_t open_descriptors();

/// The threads of `pid` (its /proc tasks) with their names, as `top -H`
/// shows them; empty when it is gone.
std::vector<std::pair<int32_t, std::string>> threads_of(int32_t pid);

/// The start time of a live process, or nothing.
std::optional<uint64_t> start_time_of(int32_t pid);

/// Whether the command line of `pid` holds the argument `flag` directly
/// followed by `value`.
bool has_argument_pair(int32_t pid, std::string_view flag,
                       std::string_view value);

/// The command line of `pid`, one string per argument (empty when the
/// process is gone or its command line unreadable).
std::vector<std::string> command_line(int32_t pid);

/// The environment `pid` started with, one "KEY=VALUE" per entry (empty
/// when the process is gone or not ours to read).
std::vector<std::string> environment_of(int32_t pid);

/// Every argument of `args` that directly follows `flag`.
std::vector<std::string> arguments_after(const std::vector<std::string>& args,
                                         std::string_view flag);

/// Whether `args` holds `flag` directly followed by `value`.
bool has_argument_pair(const std::vector<std::string>& args,
                       std::string_view flag, std::string_view value);

/// What a pid file says: one line "<pid> <starttime>\n".
struct pid_record {
  int32_t pid = 0;
  uint64_t start_time = 0;
};

std::string format_pid_record(const pid_record& r);

/// Parses a pid file's text; returns why it is corrupt, empty when it is
/// not.
std::string parse_pid_record(std::string_view text, pid_record& out);

/// Writes `text` to `dir/file_name` atomically (through `dir/temp_name`,
/// created with `mode`, fsynced, renamed, folder fsynced), unless the file
/// is a regular one of `mode` that holds `text` already. Returns why it
/// failed, empty on success.
std::string write_file_atomically(const std::filesystem::path& dir,
                                  const std::string& file_name,
                                  const std::string& temp_name,
                                  std::string_view text, mode_t mode);

/// write_file_atomically of a pid record, mode 0640.
std::string write_pid_file(const std::filesystem::path& dir,
                           const std::string& file_name,
                           const std::string& temp_name,
                           const pid_record& rec);

} // namespace cyme

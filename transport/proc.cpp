#include "transport/proc.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <system_error>

namespace cyme {

namespace fs = std::filesystem;

std::string errno_text(int err) {
  return std::error_code{err, std::generic_category()}.message();
}

int pidfd_open(pid_t pid) {
  // pidfds are always close-on-exec.
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
}

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(
    ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

/// True once the process of `pidfd` has exited (it is readable then).
bool pidfd_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

/// Reads at most `cap` + 1 bytes of a regular file (one more than allowed,
/// so that an oversized file shows). Returns why not, empty on success;
/// `missing` tells a file that does not exist from a broken one.
std::string read_capped(const std::string& path, size_t cap, std::string& out,
                        bool* missing) {
  out.clear();
  if (missing)
    *missing = false;
  // Never follow a symlink, never block on a FIFO.
  unique_fd fd{
    ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (!fd) {
    auto err = errno;
    if (missing && err == ENOENT)
      *missing = true;
    return "cannot open: " + errno_text(err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return "cannot stat: " + errno_text(errno);
  if (!S_ISREG(st.st_mode))
    return "not a regular file";
  out.resize(cap + 1);
  size_t got = 0;
  while (got < out.size()) {
    auto n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return "cannot read: " + errno_text(errno);
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return {};
}

std::string proc_path(int32_t pid, const char* entry) {
  return "/proc/" + std::to_string(pid) + "/" + entry;
}

/// Field 22 (starttime) of a /proc/<pid>/stat line. The second field (comm)
/// is in parentheses and may itself hold spaces and parentheses, so fields
/// are counted from the last ')', after which only numbers and the state
/// letter follow.
std::optional<uint64_t> stat_field(std::string_view stat, int n) {
  auto close = stat.rfind(')');
  if (close == std::string_view::npos || n < 3)
    return std::nullopt;
  auto rest = stat.substr(close + 1);
  int field = 2;
  size_t pos = 0;
  for (;;) {
    while (pos < rest.size() && rest[pos] == ' ')
      ++pos;
    if (pos >= rest.size())
      return std::nullopt;
    auto end = rest.find_first_of(" \n", pos);
    if (end == std::string_view::npos)
      end = rest.size();
    if (++field == n) {
      uint64_t value = 0;
      auto* first = rest.data() + pos;
      auto* last = rest.data() + end;
      auto [ptr, ec] = std::from_chars(first, last, value);
      if (ec != std::errc{} || ptr != last)
        return std::nullopt;
      return value;
    }
    pos = end;
    if (pos < rest.size() && rest[pos] == '\n')
      return std::nullopt;
  }
}

std::optional<uint64_t> parse_start_time(std::string_view stat) {
  return stat_field(stat, 22);
}

std::optional<process_usage> usage_of(int32_t pid) {
  if (pid <= 0)
    return std::nullopt;
  std::string stat;
  if (!read_capped(proc_path(pid, "stat"), 4096, stat).empty())
    return std::nullopt;
  auto utime = stat_field(stat, 14);
  auto stime = stat_field(stat, 15);
  auto rss = stat_field(stat, 24);
  if (!utime || !stime || !rss)
    return std::nullopt;
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  process_usage out;
  out.cpu_seconds = static_cast<double>(*utime + *stime) / ticks;
  out.resident_bytes = *rss * page;
  return out;
}

std::size_t open_descriptors() {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator{"/proc/self/fd", ec};
       !ec && it != std::filesystem::directory_iterator{}; it.increment(ec))
    ++n;
  return n;
}

std::vector<std::pair<int32_t, std::string>> threads_of(int32_t pid) {
  std::vector<std::pair<int32_t, std::string>> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator{proc_path(pid, "task"), ec};
       !ec && it != std::filesystem::directory_iterator{}; it.increment(ec)) {
    auto tid = it->path().filename().string();
    std::string comm;
    // A thread that ended meanwhile is left out.
    if (!read_capped((it->path() / "comm").string(), 64, comm).empty())
      continue;
    if (!comm.empty() && comm.back() == '\n')
      comm.pop_back();
    out.emplace_back(std::stoi(tid), std::move(comm));
  }
  return out;
}

std::optional<uint64_t> start_time_of(int32_t pid) {
  std::string stat;
  if (!read_capped(proc_path(pid, "stat"), 4096, stat).empty())
    return std::nullopt;
  return parse_start_time(stat);
}

bool has_argument_pair(int32_t pid, std::string_view flag,
                       std::string_view value) {
  return has_argument_pair(command_line(pid), flag, value);
}

bool has_argument_pair(const std::vector<std::string>& args,
                       std::string_view flag, std::string_view value) {
  auto values = arguments_after(args, flag);
  return std::find(values.begin(), values.end(), value) != values.end();
}

namespace {

/// The NUL-separated strings of /proc/<pid>/<entry>.
std::vector<std::string> nul_separated(int32_t pid, const char* entry) {
  std::vector<std::string> out;
  std::string raw;
  if (!read_capped(proc_path(pid, entry), cmdline_cap, raw).empty())
    return out;
  std::string_view rest{raw};
  while (!rest.empty()) {
    auto end = rest.find('\0');
    out.emplace_back(rest.substr(0, end));
    if (end == std::string_view::npos)
      break;
    rest.remove_prefix(end + 1);
  }
  return out;
}

} // namespace

std::vector<std::string> command_line(int32_t pid) {
  return nul_separated(pid, "cmdline");
}

std::vector<std::string> environment_of(int32_t pid) {
  return nul_separated(pid, "environ");
}

std::vector<std::string> arguments_after(const std::vector<std::string>& args,
                                         std::string_view flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag)
      out.push_back(args[i + 1]);
  return out;
}

std::string format_pid_record(const pid_record& r) {
  return std::to_string(r.pid) + " " + std::to_string(r.start_time) + "\n";
}

namespace {

bool all_digits(std::string_view x) {
  return !x.empty()
         && x.find_first_not_of("0123456789") == std::string_view::npos;
}

} // namespace

/// Parses a pid file's text; returns why it is corrupt, empty when it is
/// not.
std::string parse_pid_record(std::string_view text, pid_record& out) {
  if (text.size() > pid_file_cap)
    return "oversized (more than " + std::to_string(pid_file_cap)
           + " bytes)";
  if (text.empty())
    return "empty";
  if (text.back() != '\n')
    return "truncated (no end of line)";
  text.remove_suffix(1);
  if (text.find('\n') != std::string_view::npos)
    return "more than one line";
  auto space = text.find(' ');
  if (space == std::string_view::npos)
    return "not '<pid> <starttime>'";
  auto pid_text = text.substr(0, space);
  auto start_text = text.substr(space + 1);
  if (!pid_text.empty() && pid_text.front() == '-')
    return "negative pid";
  if (!all_digits(pid_text) || !all_digits(start_text))
    return "not '<pid> <starttime>'";
  int64_t pid = 0;
  auto pid_end = pid_text.data() + pid_text.size();
  auto [p1, e1] = std::from_chars(pid_text.data(), pid_end, pid);
  if (e1 != std::errc{} || p1 != pid_end || pid <= 0 || pid > INT32_MAX)
    return "pid out of range";
  uint64_t start_time = 0;
  auto start_end = start_text.data() + start_text.size();
  auto [p2, e2] = std::from_chars(start_text.data(), start_end, start_time);
  if (e2 != std::errc{} || p2 != start_end)
    return "start time out of range";
  out.pid = static_cast<int32_t>(pid);
  out.start_time = start_time;
  return {};
}

/// Writes a pid file atomically: a temporary file in the same folder,
/// fsynced, renamed over the old one, and the folder fsynced so the rename
/// survives a crash. Returns why it failed, empty on success.
namespace {

/// Whether `path` is a regular file of `mode` that holds exactly `text`.
bool holds_already(const fs::path& path, std::string_view text, mode_t mode) {
  unique_fd fd{::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)};
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)
      || (st.st_mode & 07777) != mode
      || st.st_size != static_cast<off_t>(text.size()))
    return false;
  std::string now(text.size() + 1, '\0');
  size_t done = 0;
  for (;;) {
    auto n = ::read(fd.get(), now.data() + done, now.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += static_cast<size_t>(n);
    if (done == now.size())
      return false;
  }
  return std::string_view{now.data(), done} == text;
}

} // namespace

std::string write_file_atomically(const fs::path& dir,
                                  const std::string& file_name,
                                  const std::string& temp_name,
                                  std::string_view text, mode_t mode) {
  auto tmp = dir / temp_name;
  auto dst = dir / file_name;
  // Written this way before (and made durable then): two fsyncs saved on
  // the way to a restart.
  if (holds_already(dst, text, mode))
    return {};
  unique_fd fd{::open(tmp.c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                      mode)};
  if (!fd)
    return "cannot create " + tmp.string() + ": " + errno_text(errno);
  auto fail = [&](const std::string& what) {
    auto why = what + " " + tmp.string() + ": " + errno_text(errno);
    fd.reset();
    ::unlink(tmp.c_str());
    return why;
  };
  // A temp file left by an earlier attempt keeps its mode through O_CREAT.
  if (::fchmod(fd.get(), mode) != 0)
    return fail("cannot set the mode of");
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail("cannot write");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0)
    return fail("cannot fsync");
  if (::close(fd.release()) != 0) {
    auto why = "cannot close " + tmp.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return why;
  }
  if (::rename(tmp.c_str(), dst.c_str()) != 0) {
    auto why = "cannot rename " + tmp.string() + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    return why;
  }
  unique_fd dir_fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd)
    ::fsync(dir_fd.get());
  return {};
}

std::string write_pid_file(const fs::path& dir, const std::string& file_name,
                           const std::string& temp_name,
                           const pid_record& rec) {
  return write_file_atomically(dir, file_name, temp_name,
                               format_pid_record(rec), 0640);
}

} // namespace cyme

#include "transport/log_tail.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>
#include <vector>

namespace cyme {

namespace fs = std::filesystem;

namespace {

/// Never through a symlink, never waiting on a FIFO put in a log's place.
constexpr int read_flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;

/// Bytes read at once.
constexpr std::size_t chunk_bytes = 64 * 1024;

std::string backup_name(uint32_t k) {
  return std::string{worker_log_name} + "." + std::to_string(k);
}

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/// Whether `a` was last modified before `b`.
bool modified_before(const struct stat& a, const struct stat& b) {
  if (a.st_mtim.tv_sec != b.st_mtim.tv_sec)
    return a.st_mtim.tv_sec < b.st_mtim.tv_sec;
  return a.st_mtim.tv_nsec < b.st_mtim.tv_nsec;
}

log_result<unique_fd> open_folder(const fs::path& folder) {
  unique_fd dir{::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!dir)
    return log_failure(errno, "cannot open the log folder " + folder.string());
  return dir;
}

/// One file of a log, opened, with what fstat said of it then.
struct opened_file {
  unique_fd fd;
  struct stat st {};
  std::string path;
};

/// Opens `name` in `dir` for reading: nothing when it does not exist.
log_result<std::optional<opened_file>> open_log_file(int dir,
                                                     const fs::path& folder,
                                                     const std::string& name) {
  opened_file f;
  f.path = (folder / name).string();
  f.fd.reset(::openat(dir, name.c_str(), read_flags));
  if (!f.fd) {
    if (errno == ENOENT)
      return std::optional<opened_file>{};
    return log_failure(errno, "cannot open " + f.path);
  }
  if (::fstat(f.fd.get(), &f.st) != 0)
    return log_failure(errno, "cannot stat " + f.path);
  if (!S_ISREG(f.st.st_mode))
    return log_error{EINVAL, f.path + " is not a file"};
  return std::optional<opened_file>{std::move(f)};
}

/// The backups of the log in `dir`, newest first, as far as they go.
log_result<std::vector<opened_file>> open_backups(int dir,
                                                  const fs::path& folder) {
  std::vector<opened_file> out;
  for (uint32_t k = 1; k <= max_rotation_backups; ++k) {
    auto f = open_log_file(dir, folder, backup_name(k));
    if (!f)
      return f.error();
    if (!f.value())
      break;
    out.push_back(std::move(*f.value()));
  }
  return out;
}

/// Bytes [from, from + len) of `fd`; fewer if the file ends first.
log_result<std::string> read_range(int fd, uint64_t from, std::size_t len,
                                   const std::string& what) {
  std::string out(len, '\0');
  std::size_t got = 0;
  while (got < len) {
    auto n = ::pread(fd, out.data() + got, len - got,
                     static_cast<off_t>(from + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return log_failure(errno, "cannot read " + what);
    if (n == 0)
      break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return out;
}

std::size_t count_lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

} // namespace

// -- last_lines ---------------------------------------------------------------

log_result<std::string> last_lines(const fs::path& folder, std::size_t n) {
  n = std::min(n, max_tail_lines);
  auto dir = open_folder(folder);
  if (!dir)
    return dir.error();
  // Newest first; worker.log, when there is one, is the first.
  std::vector<opened_file> files;
  bool live = false;
  {
    // Opened and measured at once, so no rotation falls in between and
    // worker.log's size ends at a whole line.
    folder_lock lock{dir.value().get(), folder_lock::mode::shared, true};
    if (!lock.held())
      return log_failure(errno, "cannot lock the log folder "
                                  + folder.string());
    auto current = open_log_file(dir.value().get(), folder, worker_log_name);
    if (!current)
      return current.error();
    if (current.value()) {
      live = true;
      files.push_back(std::move(*current.value()));
    }
    auto backups = open_backups(dir.value().get(), folder);
    if (!backups)
      return backups.error();
    for (auto& b : backups.value())
      files.push_back(std::move(b));
  }
  std::string text;
  for (std::size_t i = 0; i < files.size() && n > 0; ++i) {
    if (count_lines(text) >= n || text.size() >= max_tail_bytes)
      break;
    auto size = static_cast<uint64_t>(files[i].st.st_size);
    auto take = std::min<uint64_t>(size, max_tail_bytes - text.size());
    auto chunk = read_range(files[i].fd.get(), size - take,
                            static_cast<std::size_t>(take), files[i].path);
    if (!chunk)
      return chunk.error();
    auto& bytes = chunk.value();
    if (i == 0 && live) {
      // A line still being written waits for the follower.
      auto last_nl = bytes.rfind('\n');
      bytes.resize(last_nl == std::string::npos ? 0 : last_nl + 1);
    } else if (!bytes.empty() && bytes.back() != '\n') {
      bytes += '\n';
    }
    if (take < size) {
      // The byte bound falls inside this file, likely inside a line.
      auto first_nl = bytes.find('\n');
      bytes.erase(0, first_nl == std::string::npos ? bytes.size()
                                                   : first_nl + 1);
      text.insert(0, bytes);
      break;
    }
    text.insert(0, bytes);
  }
  // Only the last n lines.
  auto lines = count_lines(text);
  std::size_t pos = 0;
  for (auto skip = lines > n ? lines - n : 0; skip > 0; --skip)
    pos = text.find('\n', pos) + 1;
  text.erase(0, pos);
  return text;
}

// -- log_follower -------------------------------------------------------------

log_follower::log_follower(fs::path folder, unique_fd dir, unique_fd file,
                           uint64_t offset)
  : folder_(std::move(folder)),
    dir_(std::move(dir)),
    file_(std::move(file)),
    offset_(offset),
    lines_(longest_line) {
}

log_result<log_follower> log_follower::open(const fs::path& folder) {
  auto dir = open_folder(folder);
  if (!dir)
    return dir.error();
  // Measured under the lock: the end found is a whole line's.
  folder_lock lock{dir.value().get(), folder_lock::mode::shared, true};
  if (!lock.held())
    return log_failure(errno, "cannot lock the log folder " + folder.string());
  auto current = open_log_file(dir.value().get(), folder, worker_log_name);
  if (!current)
    return current.error();
  unique_fd file;
  uint64_t offset = 0;
  if (current.value()) {
    file = std::move(current.value()->fd);
    offset = static_cast<uint64_t>(current.value()->st.st_size);
  }
  return log_follower{folder, std::move(dir.value()), std::move(file), offset};
}

long log_follower::read_some(std::string& out, std::size_t budget) {
  std::array<char, chunk_bytes> buf;
  auto want = std::min(budget, buf.size());
  ssize_t n;
  do
    n = ::pread(file_.get(), buf.data(), want, static_cast<off_t>(offset_));
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    problem_ = log_failure(errno, "cannot read the log in " + folder_.string());
    return -1;
  }
  offset_ += static_cast<uint64_t>(n);
  out += lines_.take({buf.data(), static_cast<std::size_t>(n)});
  return static_cast<long>(n);
}

bool log_follower::find_successors() {
  // Without the lock a rotation could be half done; with a writer holding
  // it, the next call looks again.
  folder_lock lock{dir_.get(), folder_lock::mode::shared, false};
  if (!lock.held())
    return false;
  struct stat mine {};
  if (::fstat(file_.get(), &mine) != 0) {
    problem_ = log_failure(errno, "cannot stat the log in " + folder_.string());
    return false;
  }
  struct stat there {};
  if (::fstatat(dir_.get(), worker_log_name, &there, AT_SYMLINK_NOFOLLOW) == 0
      && same_file(mine, there))
    return false;
  // Rotated (or removed): the backups newer than the file read so far, then
  // the new worker.log.
  auto backups = open_backups(dir_.get(), folder_);
  if (!backups) {
    problem_ = backups.error();
    return false;
  }
  auto& found = backups.value();
  auto newer = found.size();
  auto at = std::find_if(found.begin(), found.end(), [&](const opened_file& f) {
    return same_file(f.st, mine);
  });
  if (at != found.end()) {
    newer = static_cast<std::size_t>(at - found.begin());
  } else {
    // Rotated out of the backups already (or removed by hand): the backups
    // written since it was are newer, older ones were read before.
    auto older = std::find_if(found.begin(), found.end(),
                              [&](const opened_file& f) {
                                return modified_before(f.st, mine);
                              });
    newer = static_cast<std::size_t>(older - found.begin());
  }
  for (auto i = newer; i-- > 0;)
    next_.push_back(std::move(found[i].fd));
  auto current = open_log_file(dir_.get(), folder_, worker_log_name);
  if (!current) {
    problem_ = current.error();
  } else if (current.value()) {
    next_.push_back(std::move(current.value()->fd));
  }
  return !next_.empty();
}

std::string log_follower::read_new() {
  problem_.reset();
  std::string out;
  while (out.size() < max_read_bytes) {
    if (!file_) {
      auto current = open_log_file(dir_.get(), folder_, worker_log_name);
      if (!current) {
        problem_ = current.error();
        break;
      }
      if (!current.value())
        break; // No log yet.
      file_ = std::move(current.value()->fd);
      offset_ = 0;
    }
    auto got = read_some(out, max_read_bytes - out.size());
    if (got < 0)
      break;
    if (got > 0)
      continue;
    if (!next_.empty()) {
      // The file read so far is finished: a rotated file is never written
      // again.
      out += lines_.finish();
      file_ = std::move(next_.front());
      next_.pop_front();
      offset_ = 0;
      continue;
    }
    struct stat st {};
    if (::fstat(file_.get(), &st) == 0
        && static_cast<uint64_t>(st.st_size) < offset_) {
      // Truncated in place: what it held before is gone; its new lines
      // start at 0.
      offset_ = 0;
      lines_ = line_buffer{longest_line};
      continue;
    }
    if (!find_successors())
      break;
  }
  return out;
}

} // namespace cyme

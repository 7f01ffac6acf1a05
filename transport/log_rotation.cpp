#include "transport/log_rotation.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cyme {

namespace fs = std::filesystem;

namespace {

constexpr int log_open_flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC
                               | O_NOFOLLOW;

/// Backups past this are not looked for when dropping extra ones.
constexpr uint32_t backup_search_limit = 10 * max_rotation_backups;

} // namespace

// -- line_buffer --------------------------------------------------------------

line_buffer::line_buffer(std::size_t limit) : limit_(limit < 2 ? 2 : limit) {
}

std::string line_buffer::take(std::string_view bytes) {
  std::string out;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    // Bytes this line may still take before its '\n'.
    auto room = limit_ - 1 - pending_.size();
    auto nl = bytes.find('\n', pos);
    auto end = nl == std::string_view::npos ? bytes.size() : nl;
    if (end - pos > room) {
      out += pending_;
      out.append(bytes.substr(pos, room));
      out += '\n';
      pending_.clear();
      pos += room;
      continue;
    }
    if (nl == std::string_view::npos) {
      pending_.append(bytes.substr(pos));
      break;
    }
    out += pending_;
    out.append(bytes.substr(pos, end - pos + 1));
    pending_.clear();
    pos = nl + 1;
  }
  return out;
}

std::string line_buffer::finish() {
  if (pending_.empty())
    return {};
  auto out = std::move(pending_);
  pending_.clear();
  out += '\n';
  return out;
}

// -- log_rotation -------------------------------------------------------------

log_rotation::log_rotation(fs::path log, rotation_policy policy, unique_fd dir,
                           unique_fd file)
  : log_(std::move(log)),
    name_(log_.filename().string()),
    policy_(policy),
    dir_(std::move(dir)),
    file_(std::move(file)) {
}

log_result<log_rotation> log_rotation::open(const fs::path& log,
                                            rotation_policy policy) {
  if (auto problem = rotation_policy_problem(policy))
    return log_error{EINVAL, *problem};
  auto folder = log.parent_path().empty() ? fs::path{"."} : log.parent_path();
  unique_fd dir{
    ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!dir)
    return log_failure(errno, "cannot open the folder " + folder.string());
  unique_fd file{::openat(dir.get(), log.filename().c_str(), log_open_flags,
                          0640)};
  if (!file)
    return log_failure(errno, "cannot open " + log.string());
  return log_rotation{log, policy, std::move(dir), std::move(file)};
}

std::optional<log_error> log_rotation::reopen_if_moved() {
  struct stat mine {};
  struct stat there {};
  if (::fstat(file_.get(), &mine) != 0)
    return log_failure(errno, "cannot stat " + log_.string());
  if (::fstatat(dir_.get(), name_.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0
      && there.st_dev == mine.st_dev && there.st_ino == mine.st_ino)
    return std::nullopt;
  unique_fd file{::openat(dir_.get(), name_.c_str(), log_open_flags, 0640)};
  if (!file)
    return log_failure(errno, "cannot open " + log_.string());
  file_ = std::move(file);
  return std::nullopt;
}

std::optional<log_error> log_rotation::rotate() {
  auto backup = [&](uint32_t k) { return name_ + "." + std::to_string(k); };
  // Backups beyond the policy (a branch that kept more) go.
  for (auto k = policy_.backups + 1; k <= backup_search_limit; ++k)
    if (::unlinkat(dir_.get(), backup(k).c_str(), 0) != 0)
      break;
  // The oldest kept is replaced by the one before it, and so on.
  for (auto k = policy_.backups - 1; k >= 1; --k)
    if (::renameat(dir_.get(), backup(k).c_str(), dir_.get(),
                   backup(k + 1).c_str())
          != 0
        && errno != ENOENT)
      return log_failure(errno,
                         "cannot rename " + backup_path(log_, k).string());
  if (::renameat(dir_.get(), name_.c_str(), dir_.get(), backup(1).c_str())
      != 0)
    return log_failure(errno, "cannot rename " + log_.string());
  unique_fd file{::openat(dir_.get(), name_.c_str(), log_open_flags, 0640)};
  if (!file)
    return log_failure(errno, "cannot open " + log_.string());
  file_ = std::move(file);
  return std::nullopt;
}

append_outcome log_rotation::append(std::string_view lines) {
  append_outcome out;
  auto fail = [&](log_error err) {
    struct stat st {};
    out.folder_gone = ::fstat(dir_.get(), &st) == 0 && st.st_nlink == 0;
    out.error = std::move(err);
    return out;
  };
  folder_lock lock{dir_.get(), folder_lock::mode::exclusive, true};
  if (!lock.held())
    return fail(
      log_failure(errno, "cannot lock the folder of " + log_.string()));
  if (auto err = reopen_if_moved())
    return fail(*err);
  struct stat st {};
  if (::fstat(file_.get(), &st) != 0)
    return fail(log_failure(errno, "cannot stat " + log_.string()));
  auto size = static_cast<uint64_t>(st.st_size);
  auto rest = lines;
  while (!rest.empty()) {
    // The whole lines that fit in the file as it is.
    std::size_t fit = rest.size();
    if (policy_.max_bytes != 0 && size + fit > policy_.max_bytes) {
      auto room = policy_.max_bytes > size ? policy_.max_bytes - size : 0;
      auto last_nl = room == 0 ? std::string_view::npos
                               : rest.rfind('\n', room - 1);
      fit = last_nl == std::string_view::npos ? 0 : last_nl + 1;
    }
    if (fit == 0) {
      if (size == 0)
        return fail(log_error{EINVAL, "a line longer than "
                                        + std::to_string(policy_.max_bytes)
                                        + " bytes cannot be written to "
                                        + log_.string()});
      if (auto err = rotate())
        return fail(*err);
      size = 0;
      continue;
    }
    auto chunk = rest.substr(0, fit);
    while (!chunk.empty()) {
      auto n = ::write(file_.get(), chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return fail(log_failure(n < 0 ? errno : EIO,
                                "cannot write to " + log_.string()));
      auto wrote = static_cast<std::size_t>(n);
      chunk.remove_prefix(wrote);
      out.written += wrote;
      size += wrote;
    }
    rest.remove_prefix(fit);
  }
  return out;
}

} // namespace cyme

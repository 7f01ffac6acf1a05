#include "transport/log_files.hpp"

#include <sys/file.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace cyme {

std::optional<std::string> rotation_policy_problem(const rotation_policy& p) {
  if (p.max_bytes != 0
      && (p.max_bytes < min_rotation_bytes || p.max_bytes > max_rotation_bytes))
    return "--worker-log-max-bytes must be 0 (never rotate) or "
           + std::to_string(min_rotation_bytes) + " to "
           + std::to_string(max_rotation_bytes) + ", not "
           + std::to_string(p.max_bytes);
  if (p.backups < 1 || p.backups > max_rotation_backups)
    return "--worker-log-backups must be 1 to "
           + std::to_string(max_rotation_backups) + ", not "
           + std::to_string(p.backups)
           + " (a rotation without a backup would drop lines; "
             "--worker-log-max-bytes 0 never rotates)";
  return std::nullopt;
}

std::size_t line_limit(const rotation_policy& p) {
  if (p.max_bytes == 0)
    return longest_line;
  return static_cast<std::size_t>(
    std::min<uint64_t>(longest_line, p.max_bytes));
}

std::filesystem::path backup_path(const std::filesystem::path& log,
                                  uint32_t k) {
  auto out = log;
  out += "." + std::to_string(k);
  return out;
}

log_error log_failure(int err, const std::string& what) {
  return log_error{err, what + ": "
                          + std::error_code{err, std::generic_category()}
                              .message()};
}

folder_lock::folder_lock(int dir_fd, mode m, bool wait) : dir_fd_(dir_fd) {
  int op = (m == mode::shared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB);
  int rc;
  do
    rc = ::flock(dir_fd_, op);
  while (rc != 0 && errno == EINTR);
  held_ = rc == 0;
}

folder_lock::~folder_lock() {
  if (held_)
    ::flock(dir_fd_, LOCK_UN);
}

} // namespace cyme

#pragma once

/// How an instance's output lies on disk, shared by its writer (`cyme-log`,
/// transport/log_rotation.hpp) and its readers (transport/log_tail.hpp):
///
///   <folder>/worker.log     the newest lines, appended to
///   <folder>/worker.log.1   the file before it (the newest backup)
///   ...
///   <folder>/worker.log.N   the oldest backup kept
///
/// Every file holds whole lines, each ending in '\n' and at most
/// `line_limit(policy)` bytes long (longer ones are cut into pieces of that
/// size). A rotation renames worker.log.(N-1) -> worker.log.N, ...,
/// worker.log -> worker.log.1 and starts an empty worker.log. Writers hold
/// an exclusive lock (flock) on the folder while they rotate or write;
/// readers a shared one while they find and open the files, so they never
/// see a rotation half done.
///
/// No CAF here: the branch's HTTP layer and cyme-log use it.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>

namespace cyme {

/// The name of an instance's log in its folder.
constexpr const char* worker_log_name = "worker.log";

/// When worker.log is rotated and how many backups are kept; the defaults
/// are the branch's (`--worker-log-max-bytes`, `--worker-log-backups`).
struct rotation_policy {
  /// Largest size of worker.log and of each backup, in bytes; 0: never
  /// rotate (worker.log grows without bound).
  uint64_t max_bytes = 10 * 1024 * 1024;
  /// How many backups are kept. At least 1: a rotation with no backup would
  /// drop lines nobody has read; to keep everything, set max_bytes to 0.
  uint32_t backups = 5;
};

/// Smallest max_bytes but 0: every file must hold at least a few lines.
constexpr uint64_t min_rotation_bytes = 4096;
/// Largest max_bytes (1 TiB).
constexpr uint64_t max_rotation_bytes = uint64_t{1} << 40;
/// Most backups kept.
constexpr uint32_t max_rotation_backups = 1000;

/// Why `policy` is not allowed, in words naming the branch's flags; nothing
/// when it is.
std::optional<std::string> rotation_policy_problem(const rotation_policy& p);

/// Longest line a log holds, its '\n' included.
constexpr std::size_t longest_line = 64 * 1024;

/// Longest line written under `p`: longest_line, or max_bytes when
/// smaller, so that any line fits in an empty file.
std::size_t line_limit(const rotation_policy& p);

/// The path of backup `k` (1 is the newest) of `log`: "<log>.<k>".
std::filesystem::path backup_path(const std::filesystem::path& log,
                                  uint32_t k);

/// A failed operation on log files: the errno value (0 when none applies)
/// and a sentence saying what failed.
struct log_error {
  int code = 0;
  std::string text;
};

/// A log_error for the errno value `err` while doing `what`.
log_error log_failure(int err, const std::string& what);

/// Either a value or a log_error. `value()` on an error throws
/// std::bad_variant_access; test with `ok()` first.
template <class T>
class log_result {
public:
  log_result(T value) : data_(std::in_place_index<0>, std::move(value)) {
  }

  log_result(log_error err) : data_(std::in_place_index<1>, std::move(err)) {
  }

  bool ok() const {
    return data_.index() == 0;
  }

  explicit operator bool() const {
    return ok();
  }

  T& value() {
    return std::get<0>(data_);
  }

  const T& value() const {
    return std::get<0>(data_);
  }

  const log_error& error() const {
    return std::get<1>(data_);
  }

private:
  std::variant<T, log_error> data_;
};

/// A lock on a log's folder, held until destroyed. Writers take it
/// exclusively while they write or rotate; readers shared while they find
/// and open files.
class folder_lock {
public:
  enum class mode { shared, exclusive };

  /// Locks the folder open as `dir_fd`, waiting for it unless `wait` is
  /// false; `held()` then tells whether it was free.
  folder_lock(int dir_fd, mode m, bool wait);
  ~folder_lock();
  folder_lock(const folder_lock&) = delete;
  folder_lock& operator=(const folder_lock&) = delete;

  bool held() const {
    return held_;
  }

private:
  int dir_fd_;
  bool held_ = false;
};

} // namespace cyme

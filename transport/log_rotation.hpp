#pragma once

/// The writing side of an instance's log (transport/log_files.hpp has the
/// layout): cutting a byte stream into whole lines, and appending them to
/// worker.log with size-based rotation. `cyme-log` (apps/cyme_log.cpp) is
/// these two pieces around a read loop; they are tested on their own.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "transport/log_files.hpp"
#include "transport/proc.hpp"

namespace cyme {

/// Cuts a byte stream into whole lines of at most `limit` bytes each, its
/// '\n' included. A line longer than that is cut into pieces, each ended by
/// a '\n' of its own. Bytes after the last '\n' wait for the rest of their
/// line.
class line_buffer {
public:
  /// `limit` is at least 2 (one byte and its '\n').
  explicit line_buffer(std::size_t limit);

  /// Takes `bytes` and returns the whole lines they complete, in order
  /// (empty when none is complete yet).
  std::string take(std::string_view bytes);

  /// The unfinished last line with a '\n' added, once the stream ended;
  /// empty when there is none.
  std::string finish();

  /// Bytes waiting for their line's end.
  std::size_t pending() const {
    return pending_.size();
  }

private:
  std::size_t limit_;
  std::string pending_;
};

/// How much of an append reached the files, and why the rest did not.
struct append_outcome {
  /// Bytes of the lines written (a prefix of them).
  std::size_t written = 0;
  std::optional<log_error> error;
  /// The log's folder was removed: nothing written can ever be read again.
  bool folder_gone = false;
};

/// Appends whole lines to a log file, rotating it by size (see
/// log_files.hpp): before lines that would take the file over
/// `max_bytes`, the file becomes backup 1, the backups move up by one, the
/// one beyond `backups` is dropped, and an empty file is started. So every
/// file stays within `max_bytes`, and a line is never split over two files.
///
/// Several writers of one log (a logger still draining a stopped worker's
/// last lines beside the new worker's) take turns through the folder lock;
/// each notices that another rotated the file and reopens it.
class log_rotation {
public:
  /// Opens the folder of `log` and `log` itself (created, mode 0640, never
  /// through a symlink) for appending.
  static log_result<log_rotation> open(const std::filesystem::path& log,
                                       rotation_policy policy);

  /// Appends `lines`: whole lines, each ending in '\n' and at most
  /// `line_limit(policy)` bytes (what line_buffer gives). On an error, the
  /// lines written before it stay written and `written` counts them.
  append_outcome append(std::string_view lines);

private:
  log_rotation(std::filesystem::path log, rotation_policy policy,
               unique_fd dir, unique_fd file);

  /// Reopens the log when its file is no longer the one at its path
  /// (another writer rotated it). Called with the folder locked.
  std::optional<log_error> reopen_if_moved();

  /// Renames the files one step older and starts an empty log. Called with
  /// the folder locked.
  std::optional<log_error> rotate();

  std::filesystem::path log_;
  std::string name_;
  rotation_policy policy_;
  unique_fd dir_;
  unique_fd file_;
};

} // namespace cyme

#pragma once

/// The reading side of an instance's log (transport/log_files.hpp has the
/// layout), for `GET /<app>/instances/<name>/logs/?tail=N&follow=1`: the
/// last lines across worker.log and its backups, and a follower that hands
/// out the lines appended since it last looked, across rotations.
/// `last_lines` and `log_follower::open` take the folder lock, so they may
/// wait for one write of the log writer to end; `read_new` never waits: it
/// is polled from an event loop.
///
/// No CAF and no Boost.Asio here.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>

#include "transport/log_files.hpp"
#include "transport/log_rotation.hpp"
#include "transport/proc.hpp"

namespace cyme {

/// Most lines one tail returns.
constexpr std::size_t max_tail_lines = 10000;
/// Most bytes one tail returns.
constexpr std::size_t max_tail_bytes = 4 * 1024 * 1024;

/// The last `n` whole lines (at most max_tail_lines) of the log in
/// `folder`, across worker.log and its backups, oldest first, each ending
/// in '\n'; only the newest of them when they would take more than
/// max_tail_bytes. Empty when no log was written yet; an error with code
/// ENOENT when `folder` does not exist.
log_result<std::string> last_lines(const std::filesystem::path& folder,
                                   std::size_t n);

/// Follows the log in a folder: created at the current end of worker.log,
/// `read_new()` returns the whole lines appended since. When worker.log was
/// rotated, the file being read is finished first, then the newer backups
/// and the new worker.log are read from their starts, so no line is lost
/// or repeated (unless the writer rotated a file out of the backups before
/// it was read). A worker.log that shrank in place (truncated by someone)
/// is read again from its start.
class log_follower {
public:
  /// About the most bytes one read_new returns; the rest comes next time.
  static constexpr std::size_t max_read_bytes = 1024 * 1024;

  /// A follower of the log in `folder`, from the end of its worker.log, or
  /// from the start of one made later. An error with code ENOENT when
  /// `folder` does not exist.
  static log_result<log_follower> open(const std::filesystem::path& folder);

  /// The whole lines appended since the last call (or since open), oldest
  /// first, each ending in '\n'; empty when there is nothing new. Never
  /// waits: when a writer holds the folder lock just as a rotation must be
  /// followed, the lines after it come next time.
  std::string read_new();

  /// What kept the last read_new from reading everything, if anything did
  /// (the log unreadable, say); it tries again on the next call.
  const std::optional<log_error>& problem() const {
    return problem_;
  }

private:
  log_follower(std::filesystem::path folder, unique_fd dir, unique_fd file,
               uint64_t offset);

  /// Reads on from the current file into `out`; the bytes read, or -1 on an
  /// error (then problem_ says which).
  long read_some(std::string& out, std::size_t budget);

  /// At the end of the current file: queues the files written after it
  /// when worker.log was rotated. False when there is nothing to read now.
  bool find_successors();

  std::filesystem::path folder_;
  unique_fd dir_;
  /// The file being read: worker.log, or what it became since.
  unique_fd file_;
  uint64_t offset_ = 0;
  /// Files to read after file_, oldest first, each from its start.
  std::deque<unique_fd> next_;
  line_buffer lines_;
  std::optional<log_error> problem_;
};

} // namespace cyme

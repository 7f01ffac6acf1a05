#pragma once

/// Which offset of each partition may be committed, when tasks of one
/// partition finish out of order: everything before the oldest task still
/// running, or after the newest one done when none runs. A crash then
/// redelivers unfinished tasks and never skips one (at-least-once).

#include <cstdint>
#include <map>
#include <optional>
#include <set>

namespace cyme::worker {

class offset_tracker {
public:
  /// A task at `offset` was taken.
  void started(int32_t partition, int64_t offset);

  /// The task at `offset` finished. Returns the next offset to store when
  /// the commit point moved forward.
  std::optional<int64_t> finished(int32_t partition, int64_t offset);

  /// Tasks taken and not finished, over all partitions.
  std::size_t in_flight() const;

private:
  struct partition_state {
    std::set<int64_t> running;
    int64_t newest_done = -1;
    int64_t stored = -1;
  };
  std::map<int32_t, partition_state> partitions_;
};

} // namespace cyme::worker

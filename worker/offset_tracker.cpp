#include "worker/offset_tracker.hpp"

#include <algorithm>

namespace cyme::worker {

void offset_tracker::started(int32_t partition, int64_t offset) {
  auto [i, first] = partitions_.try_emplace(partition);
  // Where consumption began is where the group's commit already stands.
  if (first)
    i->second.stored = offset;
  i->second.running.insert(offset);
}

std::optional<int64_t> offset_tracker::finished(int32_t partition,
                                                int64_t offset) {
  auto& p = partitions_[partition];
  p.running.erase(offset);
  p.newest_done = std::max(p.newest_done, offset);
  int64_t next = p.running.empty() ? p.newest_done + 1 : *p.running.begin();
  if (next <= p.stored)
    return std::nullopt;
  p.stored = next;
  return next;
}

std::size_t offset_tracker::in_flight() const {
  std::size_t n = 0;
  for (auto& [id, p] : partitions_)
    n += p.running.size();
  return n;
}

} // namespace cyme::worker

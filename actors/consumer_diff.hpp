#pragma once

/// What to send an instance so that it consumes exactly its model's queues:
/// add_consumer for each one it lacks, cancel_consumer for each one it has
/// that the model lacks. Its direct queue is never cancelled.

#include <string>
#include <vector>

namespace cyme {

struct consumer_diff {
  std::vector<std::string> to_add;
  std::vector<std::string> to_cancel;

  bool empty() const {
    return to_add.empty() && to_cancel.empty();
  }
};

/// `wanted`: the model's queues; `actual`: what the instance reports;
/// `direct`: its direct queue, wanted always and never cancelled. Adds come
/// in the model's order, cancels in the instance's.
consumer_diff diff_consumers(const std::vector<std::string>& wanted,
                             const std::vector<std::string>& actual,
                             const std::string& direct);

} // namespace cyme

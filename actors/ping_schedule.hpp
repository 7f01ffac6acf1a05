#pragma once

/// How a restarted instance is pinged until it answers: growing timeouts,
/// 0.1 s, 0.5 s, 0.9 s, then 1 s steps, about 30 s in all.

#include <chrono>
#include <vector>

namespace cyme {

class ping_schedule {
public:
  using duration = std::chrono::milliseconds;

  /// The seed's schedule: 100, 500, 900 ms, then 1 s steps within 30 s.
  ping_schedule();

  /// `first` timeouts as given, then `step` timeouts while the total stays
  /// within `budget`. `step` must be positive.
  ping_schedule(std::vector<duration> first, duration step, duration budget);

  /// Timeout of each successive ping.
  const std::vector<duration>& timeouts() const {
    return timeouts_;
  }

  /// Sum of all timeouts: how long an instance gets to answer.
  duration total() const;

private:
  std::vector<duration> timeouts_;
};

} // namespace cyme

#pragma once

/// The wall clock in the unit the wire and the logs use.

#include <chrono>
#include <cstdint>

namespace cyme {

/// Milliseconds since the epoch, now.
inline int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace cyme

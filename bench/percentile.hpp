#pragma once

// The percentile the benchmark tools report (nearest rank).
#include <algorithm>
#include <cstddef>
#include <vector>

namespace cyme::bench {

/// The `p` (0..1) percentile of `xs`, 0 for none.
inline double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto idx = static_cast<size_t>(p * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(idx, xs.size() - 1)];
}

} // namespace cyme::bench

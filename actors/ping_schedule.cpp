#include "actors/ping_schedule.hpp"

#include <numeric>

namespace cyme {

using namespace std::chrono_literals;

ping_schedule::ping_schedule() : ping_schedule({100ms, 500ms, 900ms}, 1s, 30s) {
  // nop
}

ping_schedule::ping_schedule(std::vector<duration> first, duration step,
                             duration budget)
  : timeouts_(std::move(first)) {
  auto sum = total();
  while (step.count() > 0 && sum + step <= budget) {
    timeouts_.push_back(step);
    sum += step;
  }
}

ping_schedule::duration ping_schedule::total() const {
  return std::accumulate(timeouts_.begin(), timeouts_.end(), duration{0});
}

} // namespace cyme

#include "messages/instance.hpp"
#include "messages/topics.hpp"

#include <tuple>

namespace cyme {

bool operator==(const instance_spec& x, const instance_spec& y) {
  auto tie = [](const instance_spec& s) {
    return std::tie(s.name, s.app, s.queues, s.max_concurrency,
                    s.min_concurrency, s.enabled, s.broker, s.disabled_reason,
                    s.launch, s.launch_overrides);
  };
  return tie(x) == tie(y);
}

std::string direct_queue(const std::string& instance_name) {
  return topics::direct_queue_prefix + instance_name;
}

std::string to_string(instance_state x) {
  switch (x) {
    case instance_state::stopped:
      return "stopped";
    case instance_state::starting:
      return "starting";
    case instance_state::running:
      return "running";
    case instance_state::unresponsive:
      return "unresponsive";
    case instance_state::disabled:
      return "disabled";
  }
  return "unknown";
}

} // namespace cyme

#include "messages/control.hpp"

namespace cyme {

std::string to_string(control_op x) {
  switch (x) {
    case control_op::ping:
      return "ping";
    case control_op::stats:
      return "stats";
    case control_op::active_queues:
      return "active_queues";
    case control_op::add_consumer:
      return "add_consumer";
    case control_op::cancel_consumer:
      return "cancel_consumer";
    case control_op::autoscale:
      return "autoscale";
    case control_op::shutdown:
      return "shutdown";
  }
  return "unknown";
}

} // namespace cyme

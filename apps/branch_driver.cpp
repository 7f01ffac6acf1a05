#include "apps/branch_driver.hpp"

namespace cyme {

caf::expected<process_driver_actor>
spawn_branch_driver(caf::actor_system& sys, process_driver_settings settings) {
  return spawn_process_driver(sys, std::move(settings));
}

} // namespace cyme

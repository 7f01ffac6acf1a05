#pragma once

/// The process driver cyme-branch runs, as a link-time seam: cyme-branch
/// links apps/branch_driver.cpp (real processes, transport/process_driver.hpp);
/// the cluster benchmark's cyme-bench-branch links bench/sim_driver.cpp,
/// which starts no process, so that ten branches of 10,000 instances fit on
/// one machine. Everything else of the two programs is the same code.

#include "transport/process_driver.hpp"

namespace cyme {

caf::expected<process_driver_actor>
spawn_branch_driver(caf::actor_system& sys, process_driver_settings settings);

} // namespace cyme

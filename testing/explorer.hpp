#pragma once

/// A randomized, deterministic, seeded exploration of the supervisor: the
/// real supervisor and instance actors run in CAF's test coordinator behind
/// the fakes of fleet.hpp, while a schedule drawn from a seed kills, hangs
/// and slows processes, crashes instance actors, takes brokers down and up,
/// changes the model, pauses and resumes, sends requests and jumps virtual
/// time. After every step it checks the invariants below; a failing
/// schedule is shrunk to the fewest steps that still fail and printed as a
/// scenario test.
///
/// Invariants:
/// - at most one process per instance (the driver is never asked to start
///   an instance whose process runs);
/// - once a verification of a disabled or removed instance is answered, no
///   process is left for it;
/// - no restart while the instance's broker is down, within
///   wait_after_broker_revived after it came back, or while paused, unless
///   an operator asked for it;
/// - restarts stay within the restart limit's bucket;
/// - while the bus is suspected, restarts of running instances that gave no
///   answer stay within bus_suspect_restart_rate's bucket;
/// - every request is answered, exactly once;
/// - liveness commands per round stay within N + c;
/// - once every fault is healed, the fleet converges on the model, and
///   every running process is the one its instance lists (no replacement
///   the driver started at a death is left untaken).

#include <cstdint>
#include <string>
#include <vector>

namespace cyme::testing {

/// One step of a schedule. `op` is one of: kill (arg 1: the driver tells,
/// 0: silent), hang, heal, slow (arg: ms), crash_on_start, fail_start,
/// crash_actor, broker_down, broker_up, flap (on broker `target`), add,
/// remove, disable, enable, queues (arg: which set), autoscale (arg: max),
/// pause, resume, verify (arg 1: rate-limited), restart, shutdown, advance
/// (arg: ms).
struct explore_step {
  std::string op;
  std::string target;
  int64_t arg = 0;
};

struct explore_result {
  /// Empty when every invariant held; else the first broken, in words.
  std::string violation;
  /// The step after which it was found (index into the steps).
  size_t at_step = 0;
  /// Virtual time the schedule covered, in seconds.
  double simulated_seconds = 0;
  size_t requests = 0;
  size_t starts = 0;
  /// Of those, replacements the driver started at a death and a repair
  /// took.
  size_t spares_taken = 0;
  /// With `trace`: every step and every event of the supervisor, in order,
  /// one per line.
  std::string timeline;
};

/// Draws the schedule of `seed`: `steps` steps over a fleet of five
/// instances on two brokers.
std::vector<explore_step> draw_schedule(uint64_t seed, size_t steps);

/// Runs a schedule against a fresh supervisor and checks the invariants.
explore_result run_schedule(const std::vector<explore_step>& steps,
                            bool trace = false);

/// The shortest schedule found, by removing steps, that still breaks an
/// invariant (the same one when it can).
std::vector<explore_step> shrink(std::vector<explore_step> steps,
                                 const std::string& violation);

/// A schedule as a scenario test to paste into tests/scenarios.
std::string as_scenario(const std::vector<explore_step>& steps,
                        const std::string& name,
                        const std::string& violation);

} // namespace cyme::testing

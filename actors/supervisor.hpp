#pragma once

/// The supervisor: keeps the instances of the model in the state the model
/// describes. Every `interval` it runs a verification round over all
/// instances (never two at once); it serves verify, restart and shutdown
/// requests for named instances, answered when each was handled; it owns an
/// instance actor per instance (respawned under a limit when one crashes),
/// the restart buckets, the paused state and broker health.
///
///                 pause / broker down
///   running  <------------------------------->  paused
///     |   ^     resume (no broker down) /          (no rounds, verify
///     |   |     broker up (no pause left)           answers "paused")
///   tick  round finished: next tick after interval
///     v   |
///   round in progress (at most one)
///
/// Beside those, each round judges the control bus by its batched probe:
///
///                 a round: silent running share >= threshold
///   bus trusted  ------------------------------------------->  bus suspected
///                <-------------------------------------------   (restarts of
///                 a round: silent running share < threshold     silent ones
///                                                                at a rate)

#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/instance.hpp"
#include "actors/seams.hpp"
#include "actors/supervisor_settings.hpp"
#include "messages/atoms.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"
#include "messages/supervision.hpp"

namespace cyme {

/// Receives supervisor events.
using event_listener = caf::typed_actor<caf::reacts_to<supervisor_event>>;

/// The supervisor's public requests: all that a remote node may send it.
///
/// - verify(names, ratelimit) -> one report per name, in order.
/// - restart(names) -> reports; not rate-limited, resets the buckets.
/// - shutdown(names) -> reports. A stopped enabled instance is started
///   again by the next verification; disable it to keep it down.
/// - pause / resume -> status. status -> status. status(name) -> its status.
/// - list -> the status of every supervised instance.
using supervisor_actor = caf::typed_actor<
  caf::replies_to<verify_atom, std::vector<std::string>, bool>::with<
    std::vector<action_report>>,
  caf::replies_to<restart_atom, std::vector<std::string>>::with<
    std::vector<action_report>>,
  caf::replies_to<shutdown_atom, std::vector<std::string>>::with<
    std::vector<action_report>>,
  caf::replies_to<pause_atom>::with<supervisor_status>,
  caf::replies_to<resume_atom>::with<supervisor_status>,
  caf::replies_to<status_atom>::with<supervisor_status>,
  caf::replies_to<status_atom, std::string>::with<instance_status>,
  caf::replies_to<list_atom>::with<std::vector<instance_status>>>;

/// The supervisor itself: the public requests and what only this process
/// sends it. A typed handle does not filter what reaches the actor behind
/// it, so this actor's address never leaves the process: remote nodes get
/// its front (see `supervisor_handles`).
///
/// - child(name) -> the instance actor of that instance.
/// - subscribe(listener): every event from now on.
/// The rest is what its seams, its timer and its instance actors send it.
using supervisor_core = supervisor_actor::extend<
  caf::replies_to<child_atom, std::string>::with<instance_actor>,
  caf::reacts_to<subscribe_atom, event_listener>,
  // From the control bus.
  caf::reacts_to<broker_down_atom, std::string, std::string>,
  caf::reacts_to<broker_up_atom, std::string>,
  // From the process driver.
  caf::reacts_to<exited_atom, process_exit>,
  // Its own timer.
  caf::reacts_to<tick_atom, uint64_t>,
  // From this process: rounds start where the actor clock's time since its
  // epoch, modulo the interval, equals this offset (see `phase_atom` in
  // supervisor.cpp).
  caf::reacts_to<phase_atom, caf::timespan>,
  // From its instance actors.
  caf::replies_to<permit_atom, std::string, bool, restart_cause>::with<
    restart_permit>,
  caf::reacts_to<report_atom, instance_status>,
  caf::reacts_to<supervisor_event>>;

/// A spawned supervisor, by its two handles.
struct supervisor_handles {
  /// The supervisor itself, for this process only.
  supervisor_core core;
  /// Its public front: takes the public requests, asks the core and answers
  /// them itself, so the answers come from the front and no holder of it
  /// learns the core's address; everything else it refuses
  /// (`unexpected_message`). It ends when the core ends; nothing sent to
  /// it ends the core. The only handle to publish (`--node`) or to make
  /// current.
  supervisor_actor front;
};

/// The seams a supervisor works through.
struct supervisor_seams {
  process_driver_actor driver;
  control_bus_actor bus;
  model_store_actor store;
};

/// Validates the settings and spawns a supervisor and its front; on invalid
/// settings returns an `invalid_argument` error and spawns nothing.
caf::expected<supervisor_handles>
spawn_supervisor(caf::actor_system& sys, supervisor_settings settings,
                 supervisor_seams seams);

/// The front of the current supervisor of this actor system (invalid if
/// none).
supervisor_actor get_current(caf::actor_system& sys);

/// Makes `sup` the current supervisor of this actor system. The registry
/// holds its front only: a remote node can reach any actor the registry
/// names.
void set_current(caf::actor_system& sys, const supervisor_handles& sup);

} // namespace cyme

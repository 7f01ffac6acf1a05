#pragma once

/// The three seams of the supervisor, as typed actor interfaces. Production
/// plugs in real processes, a Kafka relay and SQLite; scenario tests plug in
/// scripted fakes. The supervisor knows nothing else about them.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"
#include "messages/supervision.hpp"

namespace cyme {

/// Receives process exits from a process driver.
using exit_listener = caf::typed_actor<caf::reacts_to<exited_atom, process_exit>>;

/// Starts, stops and watches `cyme-worker` processes, one per instance name.
///
/// - start(spec) -> pid: starts the instance's process (an error when it
///   could not be started).
/// - stop(name) -> pid: stops its process (SIGTERM, then SIGKILL after a
///   grace period) and answers once it is gone, with the pid stopped or 0
///   when none was running.
/// - stop() -> count: the branch is closing: stops every process at once
///   (SIGTERM to all, SIGKILL after the grace period), refuses every later
///   start, and answers with how many it stopped once all are gone.
/// - alive(name) -> pid: the pid of its live process, or 0.
/// - alive(names) -> pids: the same for each name, at the same positions
///   (a round asks once for every instance it probed).
/// - subscribe(listener): every exit is reported to the listener, with
///   `requested` set when the exit followed a stop.
/// - arm(spec, pid): when process `pid` of `spec.name` (its running one)
///   dies unasked, start `spec` in its place at once, before telling of
///   the death, and tell its pid as the exit's `replacement`; once, and
///   not after a stop or start of the instance. pid 0: no longer. The
///   supervisor arms an instance only while a permit to restart it would
///   be granted. The replacement stays the driver's spare until a start
///   of the same spec takes it (answered with its pid, nothing started)
///   or a stop ends it; a start of another spec stops it first.
using process_driver_actor = caf::typed_actor<
  caf::replies_to<start_atom, instance_spec>::with<int32_t>,
  caf::reacts_to<arm_atom, instance_spec, int32_t>,
  caf::replies_to<stop_atom, std::string>::with<int32_t>,
  caf::replies_to<stop_atom>::with<uint32_t>,
  caf::replies_to<alive_atom, std::string>::with<int32_t>,
  caf::replies_to<alive_atom, std::vector<std::string>>::with<
    std::vector<int32_t>>,
  caf::reacts_to<subscribe_atom, exit_listener>>;

/// Receives broker health from a control bus. Brokers are named by the
/// `broker` string of the specs that use them (empty: the default broker);
/// a broker down comes with the reason, in one sentence.
using broker_listener
  = caf::typed_actor<caf::reacts_to<broker_down_atom, std::string, std::string>,
                     caf::reacts_to<broker_up_atom, std::string>>;

/// Sends control commands to instances and gathers their replies.
///
/// - command(cmd) -> replies: one message on cmd.broker for all of
///   cmd.destinations; answers with the replies that arrived within
///   cmd.timeout (instances that did not answer have none), or an error when
///   the broker could not be reached.
/// - subscribe(listener): broker connection loss and recovery.
using control_bus_actor = caf::typed_actor<
  caf::replies_to<command_atom, control_command>::with<
    std::vector<control_reply>>,
  caf::reacts_to<subscribe_atom, broker_listener>>;

/// Owns the durable model.
///
/// - list -> every instance spec.
/// - get(names) -> the specs of those names that exist.
/// - disable(name, reason) -> the updated spec, persisted.
using model_store_actor = caf::typed_actor<
  caf::replies_to<list_atom>::with<std::vector<instance_spec>>,
  caf::replies_to<get_atom, std::vector<std::string>>::with<
    std::vector<instance_spec>>,
  caf::replies_to<disable_atom, std::string, std::string>::with<
    instance_spec>>;

} // namespace cyme

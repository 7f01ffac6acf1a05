#pragma once

/// The instance actor: one per model instance, spawned and monitored by the
/// supervisor. It interprets its instance's lifecycle table
/// (actors/lifecycle.hpp): each request and each fact becomes an event of
/// the table, each action of the table a request to the process driver, the
/// bus or the supervisor, and each answer the next event, tagged so that a
/// stale one is dropped by the table. It is the only writer of its
/// instance's status: every change is reported to the supervisor, which
/// keeps the reports.

#include <string>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/lifecycle.hpp"
#include "actors/ping_schedule.hpp"
#include "actors/seams.hpp"
#include "messages/atoms.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"
#include "messages/supervision.hpp"

namespace cyme {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, probe_result& x) {
  return f(caf::meta::type_name("probe_result"), x.probed, x.pong,
           x.has_stats, x.stats, x.sent_at_ns, x.rtt_us, x.pid, x.bus_suspected);
}

/// What an instance actor needs of its supervisor. permit(name, ratelimit,
/// cause): may it restart its instance now?
using instance_parent = caf::typed_actor<
  caf::replies_to<permit_atom, std::string, bool, restart_cause>::with<
    restart_permit>,
  caf::reacts_to<report_atom, instance_status>,
  caf::reacts_to<supervisor_event>>;

/// - verify(spec, probe, ratelimit): judge and repair the instance.
/// - restart(spec): restart it unconditionally (no rate limit).
/// - shutdown(spec): stop its process if running.
/// - remove(spec): stop its process; the instance left the model.
/// - disable(reason): the model disabled it (an operator, or the restart
///   limit); the stop follows as an operation.
/// - exited(exit, repair): its process died unasked; the running
///   operation ends at once (answered "failed: interrupted") instead of
///   waiting on a dead process. `repair`: a verify follows, whose start
///   takes the exit's replacement; else the replacement is stopped.
/// - answered(probe): the supervisor settled a verify from a round's probe
///   and lists what it showed (lifecycle::list_probe); the actor lists the
///   same.
using instance_actor = caf::typed_actor<
  caf::replies_to<verify_atom, instance_spec, probe_result, bool>::with<
    action_report>,
  caf::replies_to<restart_atom, instance_spec>::with<action_report>,
  caf::replies_to<shutdown_atom, instance_spec>::with<action_report>,
  caf::replies_to<remove_atom, instance_spec>::with<action_report>,
  caf::reacts_to<disable_atom, std::string>,
  caf::reacts_to<exited_atom, process_exit, bool>,
  caf::reacts_to<answered_atom, probe_result>>;

/// What an instance actor is spawned with.
struct instance_config {
  process_driver_actor driver;
  control_bus_actor bus;
  /// The supervisor, held weakly so the two do not keep each other alive.
  caf::actor_addr parent;
  ping_schedule restart_pings;
  /// How long a liveness ping waits for its answer.
  caf::timespan probe_timeout;
  caf::timespan command_timeout;
};

/// Spawns an instance actor for `initial.name`, starting from the status the
/// supervisor last knew (so a respawned actor keeps its counters) and
/// whether the model has the instance enabled.
instance_actor spawn_instance_actor(caf::local_actor* parent,
                                    instance_config config,
                                    instance_status initial, bool enabled);

} // namespace cyme

#pragma once

/// The instance actor: one per model instance, spawned and monitored by the
/// supervisor. It decides for its instance: judges liveness, restarts it
/// (after asking the supervisor for a permit), pings it until it answers,
/// reconciles its consumers and concurrency, and stops it. An instance of
/// kind `process` is judged by its process alone: no ping, no reconcile.
/// It runs one operation at a time; a verify arriving while another verify
/// waits is merged into it.
///
///            verify/restart/shutdown
///   idle ---------------------------> busy --(queue empty)--> idle
///                                      |  ^
///                                      +--+ next queued operation
///
/// Every transition of its instance is reported to the supervisor as a new
/// `instance_status` and a `supervisor_event`.

#include <string>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/ping_schedule.hpp"
#include "actors/seams.hpp"
#include "messages/atoms.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"
#include "messages/supervision.hpp"

namespace cyme {

/// What a round's batched ping and stats learned about one instance.
struct probe_result {
  /// False when no batched probe was made; the instance actor then asks
  /// the instance itself.
  bool probed = false;
  bool pong = false;
  bool has_stats = false;
  worker_stats stats;
  /// When the probe was sent (the actor clock, in ns since its epoch): a
  /// probe sent before the instance's last start, or before its new
  /// process first answered, describes a process that is gone or was not
  /// listening yet, and is not used.
  int64_t sent_at_ns = 0;
  /// The ping's round trip, in microseconds, when it was answered.
  int64_t rtt_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, probe_result& x) {
  return f(caf::meta::type_name("probe_result"), x.probed, x.pong,
           x.has_stats, x.stats, x.sent_at_ns, x.rtt_us);
}

/// What an instance actor needs of its supervisor.
using instance_parent = caf::typed_actor<
  caf::replies_to<permit_atom, std::string, bool>::with<restart_permit>,
  caf::reacts_to<report_atom, instance_status>,
  caf::reacts_to<supervisor_event>>;

/// - verify(spec, probe, ratelimit): judge and repair the instance.
/// - restart(spec): restart it unconditionally (no rate limit).
/// - shutdown(spec): stop its process if running.
/// - exited(exit): its process died unasked; the running operation ends
///   at once (answered "failed: interrupted") instead of waiting on a dead
///   process.
using instance_actor = caf::typed_actor<
  caf::replies_to<verify_atom, instance_spec, probe_result, bool>::with<
    action_report>,
  caf::replies_to<restart_atom, instance_spec>::with<action_report>,
  caf::replies_to<shutdown_atom, instance_spec>::with<action_report>,
  caf::reacts_to<exited_atom, process_exit>>;

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
/// supervisor last knew (so a respawned actor keeps its counters).
instance_actor spawn_instance_actor(caf::local_actor* parent,
                                    instance_config config,
                                    instance_status initial);

} // namespace cyme

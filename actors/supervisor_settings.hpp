#pragma once

/// Every tunable of the supervisor, with the seed's defaults, in one place.

#include <chrono>
#include <string>

#include <caf/timespan.hpp>

#include "actors/ping_schedule.hpp"

namespace cyme {

struct supervisor_settings {
  /// Time between the end of one verification round and the start of the
  /// next; once the supervisor is told a phase (`phase_atom`), rounds
  /// start an interval apart at that offset, at least half an interval
  /// after the last one ended.
  caf::timespan interval = std::chrono::seconds{60};
  /// Restarts per instance made by rate-limited verification; beyond it the
  /// instance is disabled.
  std::string restart_max_rate = "1/m";
  /// After a broker comes back, its instances are not restarted for this
  /// long, so workers can reconnect before being judged dead.
  caf::timespan wait_after_broker_revived = std::chrono::seconds{35};
  /// How long a liveness probe waits: a round's batched stats, or one
  /// instance's own ping.
  caf::timespan probe_timeout = std::chrono::seconds{1};
  /// How long to wait for replies to add_consumer, cancel_consumer,
  /// autoscale and stats sent to one instance.
  caf::timespan command_timeout = std::chrono::seconds{5};
  /// Pings after a restart, with growing timeouts.
  ping_schedule restart_pings;
  /// Respawns of a crashed instance actor; beyond it the instance is left
  /// unsupervised until an explicit verify or restart names it.
  std::string respawn_max_rate = "3/m";
  /// A round in which at least this share of the probed instances miss
  /// their ping while their processes run (and at least
  /// bus_suspect_min_misses of them) makes the supervisor suspect the
  /// control bus rather than the instances, like Kubernetes'
  /// --unhealthy-zone-threshold; a round below it ends the suspicion.
  double bus_suspect_threshold = 0.55;
  /// The fewest silent live instances a round must find to suspect the bus:
  /// two silent instances of two are no evidence against the bus.
  uint32_t bus_suspect_min_misses = 5;
  /// While the bus is suspected, live but silent instances are restarted
  /// at most at this rate, fleet-wide (a token bucket like
  /// restart_max_rate's, like Kubernetes' --secondary-node-eviction-rate);
  /// the others wait for a later round. Dead processes are replaced at once
  /// as always.
  std::string bus_suspect_restart_rate = "5/m";
  /// Give the permit to restart a running instance in advance, while it
  /// would be granted: the process driver is armed to start the
  /// replacement the moment the worker dies, before the supervisor hears
  /// of the death (actors/seams.hpp, arm). Off: every restart waits for
  /// the supervisor's permit.
  bool restart_at_once = true;
  /// Register the supervisor as the current one of its actor system.
  bool set_as_current = true;
  /// The address of the default broker (the one instances with no broker
  /// of their own use, named "" in the model), so the status and events
  /// name every broker by its address.
  std::string default_broker;
};

/// Empty when the settings are valid, else the first problem found.
std::string settings_problem(const supervisor_settings& settings);

} // namespace cyme

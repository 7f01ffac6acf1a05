#pragma once

/// What the model says about an instance (its spec) and what the supervisor
/// observed of it (its status). Both cross actor and node boundaries, so each
/// has an `inspect`.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "messages/launch.hpp"

namespace cyme {

/// One worker instance as the durable model describes it.
struct instance_spec {
  std::string name;
  std::string app;
  /// Queues the instance must consume from, besides its direct queue.
  std::vector<std::string> queues;
  uint32_t max_concurrency = 1;
  uint32_t min_concurrency = 1;
  bool enabled = true;
  /// Bootstrap servers of the broker this instance talks to.
  std::string broker;
  /// Why the instance was disabled, when the supervisor disabled it.
  std::string disabled_reason;
  /// What it runs: its app's defaults overlaid with its own overrides.
  launch_spec launch;
  /// Its own overrides, as stored (a JSON object of launch fields).
  std::string launch_overrides = "{}";
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, instance_spec& x) {
  return f(caf::meta::type_name("instance_spec"), x.name, x.app, x.queues,
           x.max_concurrency, x.min_concurrency, x.enabled, x.broker,
           x.disabled_reason, x.launch, x.launch_overrides);
}

bool operator==(const instance_spec& x, const instance_spec& y);
inline bool operator!=(const instance_spec& x, const instance_spec& y) {
  return !(x == y);
}

/// The direct queue of an instance: private to it, never cancelled.
std::string direct_queue(const std::string& instance_name);

/// Lifecycle of an instance as the supervisor observed it.
enum class instance_state : uint8_t {
  stopped,
  starting,
  running,
  unresponsive,
  disabled,
};

std::string to_string(instance_state x);

/// What a worker reports about itself in answer to `stats`.
struct worker_stats {
  int32_t pid = 0;
  uint64_t uptime_ms = 0;
  /// Queues it consumes from, its direct queue included.
  std::vector<std::string> queues;
  uint32_t autoscale_max = 0;
  uint32_t autoscale_min = 0;
  /// Task runners in its pool right now.
  uint32_t concurrency = 0;
  uint64_t tasks_done = 0;
  uint64_t tasks_failed = 0;
  /// Partitions of each queue assigned to it by its consumer group now.
  std::map<std::string, uint32_t> partitions;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_stats& x) {
  return f(caf::meta::type_name("worker_stats"), x.pid, x.uptime_ms, x.queues,
           x.autoscale_max, x.autoscale_min, x.concurrency, x.tasks_done,
           x.tasks_failed, x.partitions);
}

/// The observed state of one instance, kept by the supervisor and updated
/// on every transition its instance actor reports.
struct instance_status {
  std::string name;
  instance_state state = instance_state::stopped;
  int32_t pid = 0;
  /// Restarts the supervisor made since the branch started.
  uint32_t restarts = 0;
  /// Queues the instance consumes from, as last seen or set.
  std::vector<std::string> consuming_from;
  /// Autoscale bounds and pool size, as last seen or set.
  uint32_t autoscale_max = 0;
  uint32_t autoscale_min = 0;
  uint32_t concurrency = 0;
  std::string disabled_reason;
  /// False when the instance actor crashed too often and was not respawned;
  /// an explicit verify or restart of the instance supervises it again.
  bool supervised = true;
  /// When its process last started (wall clock, ms since the epoch; 0:
  /// not started under this branch).
  int64_t started_at_ms = 0;
  /// How its process last ended, when it died: an exit code (-1: none) or
  /// a signal name, and when (wall clock ms; 0: it has not died).
  int32_t last_exit_code = -1;
  std::string last_exit_signal;
  int64_t last_exit_at_ms = 0;
  /// Round trip of its last answered ping, in microseconds (-1: none yet).
  int64_t ping_rtt_us = -1;
  /// Restarts within the restart limit's window (filled by the supervisor
  /// when asked).
  uint32_t restarts_in_window = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, instance_status& x) {
  return f(caf::meta::type_name("instance_status"), x.name, x.state, x.pid,
           x.restarts, x.consuming_from, x.autoscale_max, x.autoscale_min,
           x.concurrency, x.disabled_reason, x.supervised, x.started_at_ms,
           x.last_exit_code, x.last_exit_signal, x.last_exit_at_ms,
           x.ping_rtt_us, x.restarts_in_window);
}

} // namespace cyme

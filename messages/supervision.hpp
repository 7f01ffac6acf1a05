#pragma once

/// Replies and events of the supervisor: the per-instance outcome of a
/// verify, restart or shutdown request, the supervisor's own status, and the
/// events it publishes on every transition.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

namespace cyme {

/// What handling one instance in a request came to.
enum class outcome : uint8_t {
  /// Alive and (now) consistent with the model.
  verified,
  /// Was never running under this supervisor; started and answered ping.
  started,
  /// Restarted and answered ping.
  restarted,
  /// Restarted but never answered ping within the ping schedule.
  does_not_respond,
  /// Was running and has been stopped.
  stopped,
  /// Was not running and should not be: nothing to do.
  not_running,
  /// Needed a restart beyond the restart limit; now disabled in the model.
  disabled,
  /// Needed a restart, held back while its broker was revived recently or
  /// could not be asked.
  deferred,
  /// The supervisor is paused: nothing was done.
  paused,
  /// Not in the model and not supervised.
  unknown_instance,
  /// The model holds an invalid spec for it: nothing was done.
  invalid_spec,
  /// A driver, bus or actor failure stopped the operation.
  failed,
};

std::string to_string(outcome x);

/// The outcome of one instance in a request.
struct action_report {
  std::string instance;
  outcome result = outcome::verified;
  /// Readable detail: actions taken, reasons, errors.
  std::string detail;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, action_report& x) {
  return f(caf::meta::type_name("action_report"), x.instance, x.result,
           x.detail);
}

/// The answer an instance actor gets when it asks to restart its instance.
enum class restart_permit : uint8_t {
  granted,
  /// Granted, and the instance never ran under this supervisor: a first
  /// start, which takes no token and counts no restart.
  first_start,
  /// The restart limit is exceeded; the supervisor disabled the instance.
  rate_limited,
  /// Its broker was revived less than wait_after_broker_revived ago.
  broker_reviving,
  /// The supervisor is paused.
  paused,
  /// The instance is no longer in the model.
  withdrawn,
  /// Its process runs but did not answer a ping, and the supervisor
  /// suspects the control bus of the silence: restarts of such instances
  /// are held to bus_suspect_restart_rate, whose tokens are used up now.
  bus_suspected,
};

std::string to_string(restart_permit x);

/// Why an instance actor asks to restart its instance.
enum class restart_cause : uint8_t {
  /// An operator asked for a restart.
  requested,
  /// Its process does not run.
  not_running,
  /// Its process runs but did not answer a ping.
  no_answer,
};

std::string to_string(restart_cause x);

/// The supervisor as a whole.
struct supervisor_status {
  bool paused = false;
  /// Paused by an operator (as opposed to by a broker outage).
  bool paused_by_operator = false;
  std::vector<std::string> brokers_down;
  /// Why each broker down is down (librdkafka's last error).
  std::map<std::string, std::string> broker_errors;
  /// Brokers revived less than wait_after_broker_revived ago.
  std::vector<std::string> brokers_reviving;
  caf::timespan interval{0};
  bool round_in_progress = false;
  uint64_t rounds_completed = 0;
  /// How long the last completed round took, and over how many instances.
  caf::timespan last_round{0};
  uint64_t last_round_instances = 0;
  uint64_t instances = 0;
  /// A round found most of its probed instances silent while their
  /// processes run: the supervisor takes the control bus, not them, for
  /// the cause and restarts them only at bus_suspect_restart_rate.
  bool bus_suspected = false;
  /// When it began to (wall clock, ms since the epoch; 0 when it does not).
  int64_t bus_suspected_since_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, supervisor_status& x) {
  return f(caf::meta::type_name("supervisor_status"), x.paused,
           x.paused_by_operator, x.brokers_down, x.broker_errors,
           x.brokers_reviving,
           x.interval, x.round_in_progress, x.rounds_completed, x.last_round,
           x.last_round_instances, x.instances, x.bus_suspected,
           x.bus_suspected_since_ms);
}

/// Kinds of transitions the supervisor publishes.
enum class event_kind : uint8_t {
  started,
  restarting,
  restarted,
  does_not_respond,
  consume_from,
  cancel_consume,
  set_autoscale,
  stopped,
  disabled,
  died,
  paused,
  resumed,
  broker_down,
  broker_up,
  actor_respawned,
  actor_given_up,
  round_finished,
  /// A round found most probed instances silent while their processes
  /// run: restarts of such instances are held to a rate from now on.
  bus_suspected,
  /// A round found the share of silent instances below the threshold
  /// again: they are restarted as usual.
  bus_recovered,
  /// The branch's embedded Kafka cluster ended and was started again (by
  /// the branch, not the supervisor): what it held in memory is lost.
  broker_restarted,
};

std::string to_string(event_kind x);

/// One transition, for logs and observers. `instance` and `app` are empty
/// for events of the supervisor as a whole.
struct supervisor_event {
  event_kind kind = event_kind::started;
  std::string instance;
  /// Readable detail, one line.
  std::string detail;
  /// The instance's app (filled by the supervisor).
  std::string app;
  /// The facts of the event, for machines: e.g. pid, code or signal of a
  /// death, duration_ms of a round, broker.
  std::map<std::string, std::string> data;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, supervisor_event& x) {
  return f(caf::meta::type_name("supervisor_event"), x.kind, x.instance,
           x.detail, x.app, x.data);
}

/// The event kind as named on the wire and in /events/, snake case:
/// "started", "died", "does_not_respond", "round_finished", ...
std::string event_name(event_kind x);

/// What a wait status says, as event data: {"code": N} for an exit,
/// {"signal": "SIGKILL"} for a signal.
std::map<std::string, std::string> exit_data(int wait_status);

/// One readable log line for an event, e.g.
/// "w1: consume_from: q2" or "supervisor: paused: broker k1:9092 down".
std::string to_log_line(const supervisor_event& x);

} // namespace cyme

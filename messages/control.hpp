#pragma once

/// Commands the supervisor sends to instances over the control bus, the
/// replies it gathers, and process exits the process driver reports.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "messages/instance.hpp"

namespace cyme {

/// The broadcast commands of the control protocol.
enum class control_op : uint8_t {
  ping,
  stats,
  active_queues,
  add_consumer,
  cancel_consumer,
  autoscale,
  shutdown,
};

std::string to_string(control_op x);

/// One command for one or many instances on one broker. A command for many
/// instances is one message on the bus, so a round costs O(N) messages.
struct control_command {
  control_op op = control_op::ping;
  std::string broker;
  std::vector<std::string> destinations;
  /// For add_consumer and cancel_consumer.
  std::string queue;
  /// For autoscale.
  uint32_t max_concurrency = 0;
  uint32_t min_concurrency = 0;
  /// How long to gather replies; replies arriving later are dropped, but
  /// for a series.
  caf::timespan timeout{0};
  /// Non-zero for the pings of one series (one instance's start schedule,
  /// numbered by its instance actor): a pong to an earlier ping of the
  /// series that arrives after that ping's timeout still answers a later
  /// ping of it that waits, so a bus slower than the schedule's timeouts
  /// does not fail a start that is answered. Local: not on the wire.
  uint64_t series = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, control_command& x) {
  return f(caf::meta::type_name("control_command"), x.op, x.broker,
           x.destinations, x.queue, x.max_concurrency, x.min_concurrency,
           x.timeout, x.series);
}

/// One instance's answer to a command. An instance that did not answer in
/// time has no reply at all.
struct control_reply {
  std::string instance;
  bool ok = true;
  std::string error;
  /// Filled in answer to `stats`.
  worker_stats stats;
  /// Filled in answer to `active_queues`, `add_consumer`, `cancel_consumer`.
  std::vector<std::string> queues;
  /// Microseconds from the command's sending to this reply's arrival (set
  /// by the bus on arrival, not on the wire).
  int64_t rtt_us = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, control_reply& x) {
  return f(caf::meta::type_name("control_reply"), x.instance, x.ok, x.error,
           x.stats, x.queues, x.rtt_us);
}

/// The process driver's report that an instance process ended.
struct process_exit {
  std::string instance;
  int32_t pid = 0;
  /// Exit status as waitpid reports it.
  int32_t status = 0;
  /// True when the driver was asked to stop it; an unrequested exit is a
  /// death the supervisor repairs at once.
  bool requested = false;
  /// The pid of the process the driver started at once in its place (it
  /// was armed for this death), 0 when none: the repair's start takes it.
  int32_t replacement = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_exit& x) {
  return f(caf::meta::type_name("process_exit"), x.instance, x.pid, x.status,
           x.requested, x.replacement);
}

} // namespace cyme

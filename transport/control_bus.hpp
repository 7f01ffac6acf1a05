#pragma once

/// The production control bus: a router actor behind the
/// `control_bus_actor` seam, with one Kafka relay actor per distinct broker.
/// A relay publishes each command once on the control topic, reads the
/// branch's reply topic (without a consumer-group join) on a thread of its
/// own, routes each reply to the waiting request by correlation id, and
/// answers with whatever arrived when every destination replied or the
/// command's timeout ran out. It probes its broker once a `health_interval`,
/// on a thread of its own, and reports loss (with the reason: librdkafka's
/// last error, such as a failed SASL authentication) and recovery to
/// subscribers as broker_down / broker_up. A probe that fails while replies
/// or delivery reports still came within the last interval does not count:
/// a burst of commands slows the probe, not the broker. While its broker
/// is down, a command fails when its timeout runs out (like one that was
/// not delivered), not at once.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/seams.hpp"
#include "messages/topics.hpp"
#include "transport/metrics.hpp"
#include "transport/property_book.hpp"

namespace cyme {

/// What the control bus counts, for /metrics (shared with the branch).
struct control_bus_counters {
  std::atomic<uint64_t> commands_sent{0};
  std::atomic<uint64_t> replies_received{0};
  /// Destinations that did not answer within a command's timeout.
  std::atomic<uint64_t> timeouts{0};
  /// Round trips of replies, in seconds.
  metrics::histogram round_trip{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25, 0.5, 1, 2.5, 5}};
};

/// fetch.wait.max.ms of control readers (the branch's reply reader, its
/// workers' control readers; docs/PROTOCOL.md, "Latency and the embedded
/// cluster"): a real broker answers a waiting fetch as soon as data
/// arrives, the embedded cluster only when the wait runs out.
constexpr int embedded_fetch_wait_ms = 10;
constexpr int broker_fetch_wait_ms = 500;

struct control_bus_settings {
  /// Bootstrap servers used for specs whose broker is empty.
  std::string default_broker;
  /// Names the branch's reply topic, `cyme.reply.<branch_id>`.
  std::string branch_id = "branch";
  std::string control_topic = topics::control;
  /// fetch.wait.max.ms of the reply reader (see docs/PROTOCOL.md).
  int reply_fetch_wait_ms = embedded_fetch_wait_ms;
  /// Commands for one instance each go out at once when no such command
  /// went out within this window, else together at the window's end
  /// (Nagle's rule, bounded): one replacement's ping is not delayed, and a
  /// fleet starting or failing at once costs a few hundred commands a
  /// second, not one per instance and attempt.
  std::chrono::milliseconds gather_window{5};
  /// Time between broker probes.
  std::chrono::milliseconds health_interval{1000};
  /// Failed probes in a row before the broker counts as down.
  int health_failures = 2;
  /// librdkafka properties of each broker (security, SASL, TLS); none
  /// when null. A relay made before its broker's properties changed is
  /// replaced at the next command.
  std::shared_ptr<const kafka::property_book> properties;
  /// Counted into when given.
  std::shared_ptr<control_bus_counters> counters;
};

/// The reply topic of a branch.
std::string reply_topic(const std::string& branch_id);

/// Validates the settings and spawns the router; the default broker's relay
/// starts connecting at once.
caf::expected<control_bus_actor> spawn_control_bus(caf::actor_system& sys,
                                                   control_bus_settings settings);

} // namespace cyme

#pragma once

// Every Kafka topic cyme uses, by name, with the partitions it is made
// with (docs/PROTOCOL.md, "Topics"), and the limits of what travels on
// them: one place for what the branch, its workers and the tools must
// agree on.

#include <cstddef>

namespace cyme {

/// Version of the wire format written into every message as "v".
constexpr int wire_version = 1;

/// Largest control message, reply, announcement or task accepted, in
/// bytes (a command to more instances than fit is split, see
/// encode_command_messages in messages/wire.hpp).
constexpr std::size_t max_wire_message = 64 * 1024;

} // namespace cyme

namespace cyme::topics {

/// Commands from branches to workers: one partition, so every reader sees
/// commands in the order they were made.
constexpr const char* control = "cyme.control";
constexpr int control_partitions = 1;

/// Task results, keyed by task id; read from the beginning by branches
/// answering queries.
constexpr const char* results = "cyme.results";
constexpr int results_partitions = 1;

/// Every branch's events (api/events.hpp).
constexpr const char* events = "cyme.events";
constexpr int events_partitions = 1;

/// Branches announcing themselves to their cluster (transport/presence.hpp).
constexpr const char* presence = "cyme.presence";
constexpr int presence_partitions = 1;

/// A task queue's topic is the queue's name, made with queue_partitions
/// by whoever sends to it or consumes it first; an instance's direct queue
/// is this prefix and its name (messages/instance.hpp, direct_queue),
/// made with direct_queue_partitions by its worker when it starts first.
constexpr const char* direct_queue_prefix = "dq.";
constexpr int queue_partitions = 4;
constexpr int direct_queue_partitions = 1;

} // namespace cyme::topics

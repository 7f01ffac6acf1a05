#pragma once

/// Validation of everything that later becomes a path, a Kafka topic or a
/// process argument, and of what a listening address lets in. Checked at
/// every boundary, before anything changes.

#include <string>
#include <string_view>

#include "messages/instance.hpp"

namespace cyme {

/// Longest instance, app or queue name.
constexpr std::size_t max_name_length = 64;

/// Returns an empty string when `name` is a valid name for a `what` (app,
/// instance, queue), else a sentence saying why not. A valid name is 1 to 64
/// characters of [A-Za-z0-9._-] starting with a letter or digit: safe as a
/// single path component, a Kafka topic and a process argument.
std::string name_problem(std::string_view what, std::string_view name);

/// Returns an empty string when `servers` is a valid bootstrap list
/// (`host:port[,host:port...]`), or empty (the default broker), else why not.
std::string broker_problem(std::string_view servers);

/// Whether a listener bound to `host` is reachable from this host only:
/// "localhost", an IPv4 address in 127.0.0.0/8, or ::1 (also bracketed, or
/// an IPv4-mapped 127.x address). Any other name, 0.0.0.0 and :: included,
/// may be reachable from elsewhere.
bool loopback_host(std::string_view host);

/// Returns an empty string when the spec is valid, else the first problem:
/// bad names, a queue listed twice, the direct queue listed, queues on a
/// process, a launch that cannot run (launch_problem), max < min, zero
/// concurrency, a bad broker.
std::string spec_problem(const instance_spec& spec);

} // namespace cyme

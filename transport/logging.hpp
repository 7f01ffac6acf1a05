#pragma once

/// The branch's own log, on stderr: one line per event, each with its time
/// (UTC, milliseconds), level and component. As text:
///
///   2025-05-01T12:00:00.123Z info process driver: adopted pid 42 of ...
///
/// (control characters in a message escaped, so an event is one line), or
/// as JSON, one object per line:
///
///   {"time":"2025-05-01T12:00:00.123Z","level":"info",
///    "component":"process driver","message":"adopted pid 42 of ..."}
///
/// spdlog does the writing (thread-safe, each line flushed at once); this
/// header keeps it out of the files that log. Until `setup` is called (in
/// tests, say), lines of level info and above are written as text.
///
/// Never log a secret: Kafka passwords, tokens, env values.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cyme::log {

enum class level : uint8_t { trace, debug, info, warn, error };

enum class format : uint8_t { text, json };

/// "trace", "debug", "info", "warn" or "error"; nothing for anything else.
std::optional<level> parse_level(std::string_view text);

/// "text" or "json"; nothing for anything else.
std::optional<format> parse_format(std::string_view text);

std::string to_string(level x);

/// Writes lines of level `min` and above from now on, as `fmt`. Meant to
/// be called once, at start, before other threads log.
void setup(level min, format fmt);

/// The log of one part of the branch, named in each of its lines. A
/// constant: `constexpr log::logger driver_log{"process driver"};`.
class logger {
public:
  constexpr explicit logger(std::string_view component)
    : component_(component) {
  }

  void write(level x, std::string_view message) const;

  void trace(std::string_view message) const {
    write(level::trace, message);
  }
  void debug(std::string_view message) const {
    write(level::debug, message);
  }
  void info(std::string_view message) const {
    write(level::info, message);
  }
  void warn(std::string_view message) const {
    write(level::warn, message);
  }
  void error(std::string_view message) const {
    write(level::error, message);
  }

private:
  std::string_view component_;
};

} // namespace cyme::log

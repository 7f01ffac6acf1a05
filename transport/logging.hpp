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

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

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

/// Holds back lines that repeat: of each kind, at most `burst` lines in a
/// window of `window`; the first line of a later window says how many were
/// held back. For what something outside the branch makes it say over and
/// over (a broker that is gone, a peer sending bad announcements).
class limiter {
public:
  using clock = std::chrono::steady_clock;

  limiter(int burst, std::chrono::seconds window)
    : burst_(burst), window_(window) {
  }

  /// `line` (of `kind`) to write, or nothing when it is held back.
  std::optional<std::string> admit(const std::string& kind, std::string line,
                                   clock::time_point now = clock::now());

private:
  struct state {
    clock::time_point start;
    int written = 0;
    uint64_t held = 0;
  };
  int burst_;
  std::chrono::seconds window_;
  std::mutex mtx_;
  std::unordered_map<std::string, state> windows_;
};

} // namespace cyme::log

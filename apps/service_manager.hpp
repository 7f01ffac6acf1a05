#pragma once

// The branch's side of systemd's service protocol (sd_notify(3)): readiness,
// stopping, status lines and the watchdog, as datagrams to the socket that
// NOTIFY_SOCKET names.
//
// Written here rather than through libsystemd's sd_notify: that reads
// NOTIFY_SOCKET from the environment on every call, so the variable would
// have to stay set, and every worker, log writer and embedded cluster the
// branch starts would inherit it (a worker could then tell systemd that the
// branch is ready, or feed its watchdog). from_environment() takes the
// variables once and removes them.

#include <chrono>
#include <optional>
#include <string>

namespace cyme {

class service_manager {
public:
  /// Takes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the
  /// environment and unsets them; call it before any thread starts (the
  /// environment is not thread-safe). The watchdog is on when WATCHDOG_USEC
  /// is a positive number and WATCHDOG_PID, if set, is this process.
  static service_manager from_environment();

  /// Whether a service manager listens (NOTIFY_SOCKET was set).
  bool active() const {
    return !socket_.empty();
  }

  /// How often the service manager wants WATCHDOG=1, if at all.
  std::optional<std::chrono::microseconds> watchdog() const {
    if (watchdog_.count() <= 0)
      return std::nullopt;
    return watchdog_;
  }

  /// Sends `state` (newline-separated KEY=VALUE assignments, e.g.
  /// "READY=1\nSTATUS=serving"). Returns why it could not, empty when it
  /// could or when no service manager listens.
  std::string notify(const std::string& state) const;

private:
  /// A path, or an abstract socket's name after '@'.
  std::string socket_;
  std::chrono::microseconds watchdog_{0};
};

} // namespace cyme

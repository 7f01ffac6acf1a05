#pragma once

/// The restart limit: a rate such as "1/m", parsed once, a token bucket per
/// instance that a rate-limited restart must take a token from, and the
/// policy that answers a restart's request for a permit. Pure: the clock is
/// passed in, so tests drive it directly.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "messages/supervision.hpp"

namespace cyme {

using steady_time = std::chrono::steady_clock::time_point;

/// `count` events per `period`.
struct rate {
  double count = 1;
  std::chrono::duration<double> period{60};

  /// Tokens added per second.
  double per_second() const {
    return count / period.count();
  }
};

/// Parses "N/s", "N/m", "N/h" or a bare "N" (per second); N is a positive
/// number, fractions allowed ("0.5/m"). On failure returns nothing and, when
/// `problem` is given, says why there.
std::optional<rate> parse_rate(std::string_view text,
                               std::string* problem = nullptr);

/// A token bucket holding at most max(1, count) tokens of its rate, refilled
/// continuously at the rate. It starts full: N/period allows N restarts at
/// once, then one every period/N.
class restart_bucket {
public:
  restart_bucket(rate r, steady_time now);

  /// Takes one token if there is one; returns whether it did.
  bool try_take(steady_time now);

  /// Fills the bucket: an explicit request forgives past restarts.
  void reset(steady_time now);

  /// Tokens available at `now`.
  double tokens(steady_time now) const;

private:
  void refill(steady_time now);

  rate rate_;
  double capacity_;
  double tokens_;
  steady_time last_;
};

/// What the restart policy is asked, about one instance the supervisor
/// knows.
struct permit_request {
  /// False for an explicit request (an operator's restart or verify): it is
  /// not limited and forgives past restarts.
  bool ratelimit = true;
  /// The fleet is paused (by an operator or a broker down).
  bool paused = false;
  /// The instance talks over a broker (a worker; a plain process does not)
  /// and that broker came back less than wait_after_broker_revived ago.
  bool broker_reviving = false;
  /// Its instance ran under this supervisor before.
  bool ever_started = false;
  restart_bucket bucket;
  steady_time now;
  /// Why the restart is asked for.
  restart_cause cause = restart_cause::not_running;
  /// Set while the supervisor suspects the control bus: the fleet's bucket
  /// of restarts of live but silent instances (bus_suspect_restart_rate).
  std::optional<restart_bucket> bus_bucket;
};

/// The answer, and the instance's and the fleet's restart state after it.
struct permit_decision {
  restart_permit permit = restart_permit::granted;
  restart_bucket bucket;
  bool ever_started = false;
  std::optional<restart_bucket> bus_bucket;
};

/// The restart policy (OTP's intensity and period, as a token bucket):
/// - an explicit request is granted and fills the bucket again;
/// - otherwise, nothing restarts while paused, nor while its broker is
///   reviving;
/// - a first start takes no token;
/// - while the bus is suspected, a live but silent instance (cause
///   no_answer) is restarted only with a token of the fleet's bus bucket
///   too: without one it is held back (bus_suspected) and its own bucket
///   is left alone, since the silence is not held against it (Kubernetes
///   evicts from an unhealthy zone at a lower rate in the same way);
/// - a restart takes a token, and is refused (rate_limited: the instance is
///   to be disabled) when there is none.
permit_decision decide_permit(const permit_request& req);

} // namespace cyme

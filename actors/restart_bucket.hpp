#pragma once

/// The restart limit: a rate such as "1/m", parsed once, and a token bucket
/// per instance that a rate-limited restart must take a token from. Pure:
/// the clock is passed in, so tests drive it directly.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

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

} // namespace cyme

#include "actors/restart_bucket.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace cyme {

namespace {

std::optional<rate> fail(std::string* problem, std::string_view text,
                         const char* why) {
  if (problem != nullptr)
    *problem = "invalid rate '" + std::string{text} + "': " + why;
  return std::nullopt;
}

} // namespace

std::optional<rate> parse_rate(std::string_view text, std::string* problem) {
  auto slash = text.find('/');
  auto number = text.substr(0, slash);
  if (number.empty())
    return fail(problem, text, "expected N/s, N/m, N/h or N");
  bool digits_only = std::all_of(number.begin(), number.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
  });
  if (!digits_only || std::count(number.begin(), number.end(), '.') > 1
      || number == ".")
    return fail(problem, text, "count is not a positive number");
  std::string number_text{number};
  double count = std::strtod(number_text.c_str(), nullptr);
  if (!(count > 0) || !std::isfinite(count))
    return fail(problem, text, "count must be greater than zero");
  double seconds = 1;
  if (slash != std::string_view::npos) {
    auto unit = text.substr(slash + 1);
    if (unit == "s")
      seconds = 1;
    else if (unit == "m")
      seconds = 60;
    else if (unit == "h")
      seconds = 3600;
    else
      return fail(problem, text, "unit must be s, m or h");
  }
  return rate{count, std::chrono::duration<double>{seconds}};
}

restart_bucket::restart_bucket(rate r, steady_time now)
  : rate_(r), capacity_(std::max(1.0, r.count)), tokens_(capacity_), last_(now) {
  // nop
}

void restart_bucket::refill(steady_time now) {
  if (now <= last_)
    return;
  std::chrono::duration<double> elapsed = now - last_;
  tokens_ = std::min(capacity_, tokens_ + elapsed.count() * rate_.per_second());
  last_ = now;
}

bool restart_bucket::try_take(steady_time now) {
  refill(now);
  if (tokens_ < 1)
    return false;
  tokens_ -= 1;
  return true;
}

void restart_bucket::reset(steady_time now) {
  tokens_ = capacity_;
  last_ = now;
}

double restart_bucket::tokens(steady_time now) const {
  auto copy = *this;
  copy.refill(now);
  return copy.tokens_;
}

permit_decision decide_permit(const permit_request& req) {
  permit_decision d{restart_permit::granted, req.bucket, true, req.bus_bucket};
  auto first = !req.ever_started;
  if (!req.ratelimit) {
    d.bucket.reset(req.now);
    d.permit = first ? restart_permit::first_start : restart_permit::granted;
    return d;
  }
  d.ever_started = req.ever_started;
  if (req.paused) {
    d.permit = restart_permit::paused;
    return d;
  }
  if (req.broker_reviving) {
    d.permit = restart_permit::broker_reviving;
    return d;
  }
  d.ever_started = true;
  if (first) {
    d.permit = restart_permit::first_start;
    return d;
  }
  bool held_to_bus_rate
    = d.bus_bucket.has_value() && req.cause == restart_cause::no_answer;
  if (held_to_bus_rate && d.bus_bucket->tokens(req.now) < 1) {
    d.permit = restart_permit::bus_suspected;
    return d;
  }
  if (!d.bucket.try_take(req.now)) {
    d.permit = restart_permit::rate_limited;
    return d;
  }
  if (held_to_bus_rate)
    d.bus_bucket->try_take(req.now);
  return d;
}

} // namespace cyme

#include "actors/supervisor_settings.hpp"

#include "actors/restart_bucket.hpp"

namespace cyme {

std::string settings_problem(const supervisor_settings& s) {
  std::string problem;
  if (s.interval.count() <= 0)
    return "interval must be greater than zero";
  if (!parse_rate(s.restart_max_rate, &problem))
    return "restart_max_rate: " + problem;
  if (!parse_rate(s.respawn_max_rate, &problem))
    return "respawn_max_rate: " + problem;
  if (!parse_rate(s.bus_suspect_restart_rate, &problem))
    return "bus_suspect_restart_rate: " + problem;
  if (!(s.bus_suspect_threshold > 0 && s.bus_suspect_threshold <= 1))
    return "bus_suspect_threshold must be greater than 0 and at most 1";
  if (s.bus_suspect_min_misses < 1)
    return "bus_suspect_min_misses must be at least 1";
  if (s.wait_after_broker_revived.count() < 0)
    return "wait_after_broker_revived must not be negative";
  if (s.probe_timeout.count() <= 0)
    return "probe_timeout must be greater than zero";
  if (s.command_timeout.count() <= 0)
    return "command_timeout must be greater than zero";
  if (s.restart_pings.timeouts().empty())
    return "restart_pings must hold at least one ping";
  for (auto t : s.restart_pings.timeouts())
    if (t.count() <= 0)
      return "restart_pings timeouts must be greater than zero";
  return {};
}

} // namespace cyme

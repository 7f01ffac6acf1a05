#include "messages/supervision.hpp"

#include <sys/wait.h>

#include <cstring>

namespace cyme {

std::string to_string(outcome x) {
  switch (x) {
    case outcome::verified:
      return "verified";
    case outcome::started:
      return "started";
    case outcome::restarted:
      return "restarted";
    case outcome::does_not_respond:
      return "does not respond";
    case outcome::stopped:
      return "stopped";
    case outcome::not_running:
      return "not running";
    case outcome::disabled:
      return "disabled";
    case outcome::deferred:
      return "deferred";
    case outcome::paused:
      return "paused";
    case outcome::unknown_instance:
      return "unknown instance";
    case outcome::invalid_spec:
      return "invalid spec";
    case outcome::failed:
      return "failed";
  }
  return "unknown";
}

std::string to_string(restart_permit x) {
  switch (x) {
    case restart_permit::granted:
      return "granted";
    case restart_permit::first_start:
      return "first start";
    case restart_permit::rate_limited:
      return "rate limited";
    case restart_permit::broker_reviving:
      return "broker reviving";
    case restart_permit::paused:
      return "paused";
    case restart_permit::withdrawn:
      return "withdrawn";
    case restart_permit::bus_suspected:
      return "bus suspected";
  }
  return "unknown";
}

std::string to_string(restart_cause x) {
  switch (x) {
    case restart_cause::requested:
      return "requested";
    case restart_cause::not_running:
      return "not running";
    case restart_cause::no_answer:
      return "no answer";
  }
  return "unknown";
}

std::string to_string(event_kind x) {
  switch (x) {
    case event_kind::started:
      return "started";
    case event_kind::restarting:
      return "instance restarted";
    case event_kind::restarted:
      return "successfully restarted";
    case event_kind::does_not_respond:
      return "does not respond";
    case event_kind::consume_from:
      return "consume_from";
    case event_kind::cancel_consume:
      return "cancel_consume";
    case event_kind::set_autoscale:
      return "set_autoscale";
    case event_kind::stopped:
      return "stopped";
    case event_kind::disabled:
      return "disabled";
    case event_kind::died:
      return "died";
    case event_kind::paused:
      return "paused";
    case event_kind::resumed:
      return "resumed";
    case event_kind::broker_down:
      return "broker down";
    case event_kind::broker_up:
      return "broker up";
    case event_kind::actor_respawned:
      return "instance actor respawned";
    case event_kind::actor_given_up:
      return "instance actor given up";
    case event_kind::round_finished:
      return "round finished";
    case event_kind::bus_suspected:
      return "bus suspected";
    case event_kind::bus_recovered:
      return "bus recovered";
    case event_kind::broker_restarted:
      return "broker restarted";
  }
  return "unknown";
}

std::string event_name(event_kind x) {
  switch (x) {
    case event_kind::started:
      return "started";
    case event_kind::restarting:
      return "restarting";
    case event_kind::restarted:
      return "restarted";
    case event_kind::does_not_respond:
      return "does_not_respond";
    case event_kind::consume_from:
      return "consume_from";
    case event_kind::cancel_consume:
      return "cancel_consumer";
    case event_kind::set_autoscale:
      return "autoscale";
    case event_kind::stopped:
      return "stopped";
    case event_kind::disabled:
      return "disabled";
    case event_kind::died:
      return "died";
    case event_kind::paused:
      return "paused";
    case event_kind::resumed:
      return "resumed";
    case event_kind::broker_down:
      return "broker_down";
    case event_kind::broker_up:
      return "broker_up";
    case event_kind::actor_respawned:
      return "actor_respawned";
    case event_kind::actor_given_up:
      return "actor_given_up";
    case event_kind::round_finished:
      return "round_finished";
    case event_kind::bus_suspected:
      return "bus_suspected";
    case event_kind::bus_recovered:
      return "bus_recovered";
    case event_kind::broker_restarted:
      return "broker_restarted";
  }
  return "unknown";
}

std::map<std::string, std::string> exit_data(int wait_status) {
  if (WIFEXITED(wait_status))
    return {{"code", std::to_string(WEXITSTATUS(wait_status))}};
  if (WIFSIGNALED(wait_status)) {
    auto sig = WTERMSIG(wait_status);
    const char* abbrev = sigabbrev_np(sig);
    return {{"signal", abbrev ? std::string{"SIG"} + abbrev
                              : std::to_string(sig)}};
  }
  return {{"status", std::to_string(wait_status)}};
}

std::string to_log_line(const supervisor_event& x) {
  std::string line = x.instance.empty() ? "supervisor" : x.instance;
  line += ": ";
  line += to_string(x.kind);
  if (!x.detail.empty()) {
    line += ": ";
    line += x.detail;
  }
  return line;
}

} // namespace cyme

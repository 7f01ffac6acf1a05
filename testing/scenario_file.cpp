#include "testing/scenario_file.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "actors/restart_bucket.hpp"
#include "messages/names.hpp"
#include "testing/simulation.hpp"

namespace cyme::testing {

namespace {

using json = nlohmann::json;

/// A problem in the file, at `where`.
struct bad_field {
  std::string where;
  std::string what;
};

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw bad_field{where, what};
}

void only_fields(const json& obj, const std::string& where,
                 std::initializer_list<const char*> allowed) {
  if (!obj.is_object())
    bad(where, "must be an object");
  for (auto& [key, value] : obj.items())
    if (std::none_of(allowed.begin(), allowed.end(),
                     [&](const char* a) { return key == a; })) {
      std::string list;
      for (auto a : allowed)
        list += std::string{list.empty() ? "" : ", "} + a;
      bad(where + "." + key, "unknown field (known: " + list + ")");
    }
}

std::string text_of(const json& v, const std::string& where) {
  if (!v.is_string())
    bad(where, "must be a string");
  return v.get<std::string>();
}

bool flag_of(const json& v, const std::string& where) {
  if (!v.is_boolean())
    bad(where, "must be true or false");
  return v.get<bool>();
}

uint64_t count_of(const json& v, const std::string& where, uint64_t max) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > max)
    bad(where, "must be a whole number from 0 to " + std::to_string(max));
  return v.get<uint64_t>();
}

/// "250ms", "1.5s", "2m", "1h", or a number of seconds.
caf::timespan duration_of(const json& v, const std::string& where) {
  double seconds = 0;
  if (v.is_number()) {
    seconds = v.get<double>();
  } else if (v.is_string()) {
    auto s = v.get<std::string>();
    size_t end = 0;
    double n = 0;
    try {
      n = std::stod(s, &end);
    } catch (const std::exception&) {
      bad(where, "'" + s + "' is not a duration (like 250ms, 1.5s, 2m, 1h)");
    }
    auto unit = s.substr(end);
    if (unit == "ms")
      seconds = n / 1000;
    else if (unit == "s" || unit.empty())
      seconds = n;
    else if (unit == "m")
      seconds = n * 60;
    else if (unit == "h")
      seconds = n * 3600;
    else
      bad(where, "'" + s + "': unknown unit '" + unit + "' (ms, s, m or h)");
  } else {
    bad(where, "must be a duration (like \"250ms\", \"1.5s\", \"2m\")");
  }
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 30 * 24 * 3600.0)
    bad(where, "must be from 0 to 30 days");
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(seconds));
}

std::vector<std::string> names_of(const json& v, const std::string& where,
                                  const char* what) {
  if (!v.is_array())
    bad(where, "must be a list of names");
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    auto w = where + "[" + std::to_string(i) + "]";
    auto name = text_of(v[i], w);
    if (auto p = name_problem(what, name); !p.empty())
      bad(w, p);
    out.push_back(std::move(name));
  }
  return out;
}

supervisor_settings settings_of(const json& v, const std::string& where) {
  only_fields(v, where,
              {"interval", "restart_max_rate", "wait_after_broker_revived",
               "probe_timeout", "command_timeout", "respawn_max_rate",
               "bus_suspect_threshold", "bus_suspect_min_misses",
               "bus_suspect_restart_rate"});
  supervisor_settings s;
  if (v.contains("interval"))
    s.interval = duration_of(v["interval"], where + ".interval");
  if (v.contains("wait_after_broker_revived"))
    s.wait_after_broker_revived = duration_of(
      v["wait_after_broker_revived"], where + ".wait_after_broker_revived");
  if (v.contains("probe_timeout"))
    s.probe_timeout = duration_of(v["probe_timeout"], where + ".probe_timeout");
  if (v.contains("command_timeout"))
    s.command_timeout = duration_of(v["command_timeout"],
                                    where + ".command_timeout");
  if (v.contains("bus_suspect_threshold")) {
    auto& t = v["bus_suspect_threshold"];
    if (!t.is_number())
      bad(where + ".bus_suspect_threshold", "must be a number");
    s.bus_suspect_threshold = t.get<double>();
  }
  if (v.contains("bus_suspect_min_misses"))
    s.bus_suspect_min_misses = static_cast<uint32_t>(
      count_of(v["bus_suspect_min_misses"], where + ".bus_suspect_min_misses",
               1000000));
  for (auto [key, field] :
       {std::pair{"restart_max_rate", &s.restart_max_rate},
        std::pair{"respawn_max_rate", &s.respawn_max_rate},
        std::pair{"bus_suspect_restart_rate", &s.bus_suspect_restart_rate}}) {
    if (!v.contains(key))
      continue;
    *field = text_of(v[key], where + "." + key);
    std::string problem;
    if (!parse_rate(*field, &problem))
      bad(where + "." + key, problem);
  }
  if (auto p = settings_problem(s); !p.empty())
    bad(where, p);
  return s;
}

instance_spec instance_of(const json& v, const std::string& where,
                          bool& in_model) {
  only_fields(v, where,
              {"name", "queues", "broker", "kind", "enabled", "max_concurrency",
               "min_concurrency", "in_model"});
  instance_spec s;
  if (!v.contains("name"))
    bad(where + ".name", "missing");
  s.name = text_of(v["name"], where + ".name");
  if (auto p = name_problem("instance", s.name); !p.empty())
    bad(where + ".name", p);
  s.app = "app";
  if (v.contains("queues"))
    s.queues = names_of(v["queues"], where + ".queues", "queue");
  if (v.contains("broker"))
    s.broker = text_of(v["broker"], where + ".broker");
  if (v.contains("kind")) {
    auto kind = text_of(v["kind"], where + ".kind");
    if (kind == "process") {
      s.launch.kind = instance_kind::process;
      s.launch.program = "/bin/sleep";
      s.launch.args = {"3600"};
    } else if (kind != "worker") {
      bad(where + ".kind", "'" + kind + "' is not worker or process");
    }
  }
  if (v.contains("enabled"))
    s.enabled = flag_of(v["enabled"], where + ".enabled");
  if (!s.enabled)
    s.disabled_reason = "disabled in the scenario";
  s.max_concurrency = static_cast<uint32_t>(
    v.contains("max_concurrency")
      ? count_of(v["max_concurrency"], where + ".max_concurrency", 10000)
      : 1);
  s.min_concurrency = static_cast<uint32_t>(
    v.contains("min_concurrency")
      ? count_of(v["min_concurrency"], where + ".min_concurrency", 10000)
      : 1);
  in_model = !v.contains("in_model") || flag_of(v["in_model"], where + ".in_model");
  if (auto p = spec_problem(s); !p.empty())
    bad(where, p);
  return s;
}

/// `{"w1": X, ...}` with each X read by `read`.
template <class T, class F>
std::vector<std::pair<std::string, T>>
per_instance(const json& v, const std::string& where, F read) {
  if (!v.is_object())
    bad(where, "must be an object of instance names");
  std::vector<std::pair<std::string, T>> out;
  for (auto& [name, x] : v.items()) {
    if (auto p = name_problem("instance", name); !p.empty())
      bad(where + "." + name, p);
    out.emplace_back(name, read(x, where + "." + name));
  }
  return out;
}

const std::set<std::string>& event_kinds() {
  static const std::set<std::string> kinds = [] {
    std::set<std::string> out;
    for (int k = 0; k <= static_cast<int>(event_kind::broker_restarted); ++k)
      out.insert(event_name(static_cast<event_kind>(k)));
    return out;
  }();
  return kinds;
}

void event_counts(const json& v, const std::string& where,
                  const std::string& instance,
                  std::vector<expectation::event_count>& out) {
  if (!v.is_object())
    bad(where, "must be an object of event kinds and counts");
  for (auto& [kind, n] : v.items()) {
    if (event_kinds().count(kind) == 0)
      bad(where + "." + kind, "not an event kind");
    out.push_back({instance, kind,
                   static_cast<size_t>(count_of(n, where + "." + kind, 1000000))});
  }
}

expectation expectation_of(const json& v, const std::string& where) {
  only_fields(v, where,
              {"running", "not_running", "state", "paused", "events",
               "events_of", "starts", "restarts", "consuming",
               "disabled_reason_contains"});
  expectation e;
  e.text = v.dump();
  if (v.contains("running"))
    e.running = names_of(v["running"], where + ".running", "instance");
  if (v.contains("not_running"))
    e.not_running = names_of(v["not_running"], where + ".not_running",
                             "instance");
  if (v.contains("state"))
    e.state = per_instance<std::string>(
      v["state"], where + ".state", [](const json& x, const std::string& w) {
        auto s = text_of(x, w);
        static const std::set<std::string> states{
          "stopped", "starting", "running", "unresponsive", "disabled"};
        if (states.count(s) == 0)
          bad(w, "'" + s + "' is not a state (stopped, starting, running, "
                           "unresponsive, disabled)");
        return s;
      });
  if (v.contains("paused"))
    e.paused = flag_of(v["paused"], where + ".paused");
  if (v.contains("events"))
    event_counts(v["events"], where + ".events", {}, e.events);
  if (v.contains("events_of")) {
    if (!v["events_of"].is_object())
      bad(where + ".events_of", "must be an object of instance names");
    for (auto& [name, counts] : v["events_of"].items())
      event_counts(counts, where + ".events_of." + name, name, e.events);
  }
  auto counts = [](const json& x, const std::string& w) {
    return static_cast<size_t>(count_of(x, w, 1000000));
  };
  if (v.contains("starts"))
    e.starts = per_instance<size_t>(v["starts"], where + ".starts", counts);
  if (v.contains("restarts"))
    e.restarts = per_instance<size_t>(v["restarts"], where + ".restarts",
                                      counts);
  if (v.contains("consuming"))
    e.consuming = per_instance<std::vector<std::string>>(
      v["consuming"], where + ".consuming",
      [](const json& x, const std::string& w) {
        auto qs = names_of(x, w, "queue");
        std::sort(qs.begin(), qs.end());
        return qs;
      });
  if (v.contains("disabled_reason_contains"))
    e.disabled_reason = per_instance<std::string>(
      v["disabled_reason_contains"], where + ".disabled_reason_contains",
      [](const json& x, const std::string& w) { return text_of(x, w); });
  return e;
}

const std::set<std::string> instance_ops{
  "kill", "hang", "heal", "slow", "crash_on_start", "fail_start",
  "crash_actor", "add", "remove", "disable", "enable", "queues",
  "autoscale", "drift"};
const std::set<std::string> broker_ops{"broker_down", "broker_up", "flap"};
const std::set<std::string> request_ops{"verify", "restart", "shutdown"};

scenario_step step_of(const json& v, const std::string& where,
                      const std::set<std::string>& known) {
  only_fields(v, where,
              {"at", "do", "instance", "instances", "broker", "silent", "ms",
               "queues", "max", "min", "ratelimit", "expect", "note"});
  scenario_step s;
  s.where = where;
  if (!v.contains("at"))
    bad(where + ".at", "missing");
  s.at = duration_of(v["at"], where + ".at");
  if (v.contains("expect"))
    s.expect = expectation_of(v["expect"], where + ".expect");
  if (!v.contains("do")) {
    if (!s.expect)
      bad(where, "a step needs \"do\", \"expect\" or both");
    return s;
  }
  auto op = text_of(v["do"], where + ".do");
  explore_step a{op, {}, 0};
  auto need = [&](const char* field) -> const json& {
    if (!v.contains(field))
      bad(where + "." + field, "missing (\"" + op + "\" needs it)");
    return v[field];
  };
  if (instance_ops.count(op) > 0) {
    a.target = text_of(need("instance"), where + ".instance");
    if (known.count(a.target) == 0)
      bad(where + ".instance",
          "'" + a.target + "' is not an instance of the fleet");
    if (op == "kill")
      a.arg = v.contains("silent") && flag_of(v["silent"], where + ".silent")
                ? 0
                : 1;
    if (op == "slow")
      a.arg = static_cast<int64_t>(count_of(need("ms"), where + ".ms", 3600000));
    if (op == "queues" || op == "drift")
      s.queues = names_of(need("queues"), where + ".queues", "queue");
    if (op == "autoscale") {
      s.max = static_cast<uint32_t>(count_of(need("max"), where + ".max", 10000));
      s.min = static_cast<uint32_t>(count_of(need("min"), where + ".min", 10000));
      if (s.min == 0 || s.max < s.min)
        bad(where, "autoscale needs 1 <= min <= max");
    }
  } else if (broker_ops.count(op) > 0) {
    a.target = text_of(need("broker"), where + ".broker");
  } else if (request_ops.count(op) > 0) {
    s.names = names_of(need("instances"), where + ".instances", "instance");
    if (s.names.empty())
      bad(where + ".instances", "names no instance");
    if (v.contains("ratelimit"))
      s.ratelimit = flag_of(v["ratelimit"], where + ".ratelimit");
  } else if (op != "pause" && op != "resume") {
    bad(where + ".do",
        "'" + op + "' is not an action (kill, hang, heal, slow, "
                   "crash_on_start, fail_start, crash_actor, add, remove, "
                   "disable, enable, queues, autoscale, drift, broker_down, "
                   "broker_up, flap, pause, resume, verify, restart, "
                   "shutdown)");
  }
  s.action = a;
  return s;
}

/// The line and column of byte `offset` of `text`.
std::string line_and_column(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1 + static_cast<size_t>(
                      std::count(text.begin(),
                                 text.begin() + static_cast<std::ptrdiff_t>(offset),
                                 '\n'));
  auto start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  size_t column = start == std::string::npos ? offset + 1 : offset - start;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

} // namespace

std::optional<scenario> parse_scenario(const std::string& text,
                                       std::string& problem) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    // nlohmann's text: "[json.exception.parse_error.101] parse error at
    // line L, column C: ..."; keep the part after the position.
    auto colon = what.find(": ", what.find("parse error"));
    problem = line_and_column(text, e.byte == 0 ? 0 : e.byte - 1) + ": "
              + (colon == std::string::npos ? what : what.substr(colon + 2));
    return std::nullopt;
  }
  try {
    only_fields(doc, "scenario",
                {"name", "description", "settings", "fleet", "steps"});
    scenario s;
    if (doc.contains("name"))
      s.name = text_of(doc["name"], "name");
    if (doc.contains("description"))
      s.description = text_of(doc["description"], "description");
    if (doc.contains("settings"))
      s.settings = settings_of(doc["settings"], "settings");
    if (!doc.contains("fleet") || !doc["fleet"].is_array()
        || doc["fleet"].empty())
      bad("fleet", "must be a list of at least one instance");
    std::set<std::string> known;
    for (size_t i = 0; i < doc["fleet"].size(); ++i) {
      auto where = "fleet[" + std::to_string(i) + "]";
      bool in_model = true;
      auto spec = instance_of(doc["fleet"][i], where, in_model);
      if (!known.insert(spec.name).second)
        bad(where + ".name", "'" + spec.name + "' is named twice");
      if (in_model)
        s.initial.push_back(spec.name);
      s.fleet.push_back(std::move(spec));
    }
    if (!doc.contains("steps") || !doc["steps"].is_array())
      bad("steps", "must be a list of steps");
    caf::timespan last{0};
    for (size_t i = 0; i < doc["steps"].size(); ++i) {
      auto where = "steps[" + std::to_string(i) + "]";
      auto step = step_of(doc["steps"][i], where, known);
      if (step.at < last)
        bad(where + ".at", "comes before the step above it");
      last = step.at;
      s.steps.push_back(std::move(step));
    }
    return s;
  } catch (const bad_field& e) {
    problem = e.where + ": " + e.what;
    return std::nullopt;
  }
}

namespace {

/// Checks one expectation; empty when it holds, else what differs.
std::string check(simulation& sim, const expectation& e) {
  auto& fx = sim.fixture();
  auto& world = fx.world;
  std::ostringstream out;
  auto runs = [&](const std::string& name) {
    auto w = world.workers.find(name);
    return w != world.workers.end() && w->second.running;
  };
  for (auto& n : e.running)
    if (!runs(n))
      out << n << " is not running; ";
  for (auto& n : e.not_running)
    if (runs(n))
      out << n << " is running (pid " << world.workers[n].pid << "); ";
  auto status = [&](const std::string& name) -> std::optional<instance_status> {
    auto slot = fx.request<instance_status>(fx.sup, status_atom::value, name);
    fx.sched.run();
    if (!slot->value)
      return std::nullopt;
    return *slot->value;
  };
  for (auto& [n, state] : e.state) {
    auto st = status(n);
    if (!st)
      out << n << " is not supervised; ";
    else if (to_string(st->state) != state)
      out << n << " is " << to_string(st->state) << ", not " << state << "; ";
  }
  for (auto& [n, count] : e.restarts) {
    auto st = status(n);
    if (!st || st->restarts != count)
      out << n << " has " << (st ? std::to_string(st->restarts) : "no")
          << " restarts, not " << count << "; ";
  }
  for (auto& [n, words] : e.disabled_reason) {
    auto st = status(n);
    if (!st || st->disabled_reason.find(words) == std::string::npos)
      out << n << "'s disabled reason is '"
          << (st ? st->disabled_reason : std::string{}) << "', without '"
          << words << "'; ";
  }
  if (e.paused) {
    auto slot = fx.request<supervisor_status>(fx.sup, status_atom::value);
    fx.sched.run();
    if (!slot->value || slot->value->paused != *e.paused)
      out << "the supervisor is " << (*e.paused ? "not " : "") << "paused; ";
  }
  for (auto& ev : e.events) {
    size_t n = 0;
    for (auto& seen : fx.log)
      if (event_name(seen.kind) == ev.kind
          && (ev.instance.empty() || seen.instance == ev.instance))
        ++n;
    if (n != ev.count)
      out << n << " " << ev.kind << " events"
          << (ev.instance.empty() ? "" : " of " + ev.instance) << ", not "
          << ev.count << "; ";
  }
  for (auto& [n, count] : e.starts) {
    auto starts = world.workers.count(n) ? world.workers[n].starts : 0;
    if (starts != count)
      out << n << " was started " << starts << " times, not " << count << "; ";
  }
  for (auto& [n, queues] : e.consuming) {
    std::vector<std::string> actual;
    if (runs(n))
      for (auto& q : world.workers[n].queues)
        if (q != direct_queue(n))
          actual.push_back(q);
    std::sort(actual.begin(), actual.end());
    if (actual != queues) {
      out << n << " consumes [";
      for (size_t i = 0; i < actual.size(); ++i)
        out << (i ? ", " : "") << actual[i];
      out << "]; ";
    }
  }
  auto text = out.str();
  if (text.size() >= 2)
    text.resize(text.size() - 2);
  return text;
}

std::string seconds(caf::timespan t) {
  std::ostringstream out;
  out << std::chrono::duration<double>(t).count() << " s";
  return out.str();
}

} // namespace

scenario_outcome run_scenario(const scenario& s) {
  scenario_outcome result;
  simulation sim{s.settings, s.fleet, s.initial};
  sim.start();
  for (auto& step : s.steps) {
    if (step.at > sim.elapsed())
      sim.advance(step.at - sim.elapsed());
    if (step.action) {
      auto& a = *step.action;
      std::string what = a.op + (a.target.empty() ? "" : " " + a.target);
      sim.note("do " + what);
      if (a.op == "queues") {
        sim.set_queues(a.target, step.queues);
      } else if (a.op == "autoscale") {
        sim.set_autoscale(a.target, step.max, step.min);
      } else if (a.op == "drift") {
        sim.drift(a.target, step.queues);
      } else if (a.op == "verify" || a.op == "restart" || a.op == "shutdown") {
        sim.send(a.op, step.names, step.ratelimit);
      } else {
        sim.apply(a);
      }
    }
    if (!sim.violation().empty()) {
      result.passed = false;
      result.failure = step.where + " (at " + seconds(step.at)
                       + "): invariant broken: " + sim.violation();
      break;
    }
    if (step.expect) {
      auto differs = check(sim, *step.expect);
      sim.note("expect " + step.expect->text
               + (differs.empty() ? ": ok" : ": FAILED: " + differs));
      if (!differs.empty()) {
        result.passed = false;
        result.failure = step.where + " (at " + seconds(step.at) + "): expected "
                         + step.expect->text + ", but " + differs;
        break;
      }
    }
  }
  sim.note("end");
  result.timeline = sim.timeline();
  return result;
}

} // namespace cyme::testing

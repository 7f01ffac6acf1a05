#include "testing/explorer.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include "actors/restart_bucket.hpp"
#include "testing/simulation.hpp"

namespace cyme::testing {

namespace {

using namespace std::chrono_literals;

/// The fleet explored: w1..w3 on the default broker, w4 and w5 on another;
/// w3 is a plain process (judged alive by its process alone). w5 starts
/// outside the model.
const std::vector<std::string> instance_names{"w1", "w2", "w3", "w4", "w5"};
const std::vector<std::string> broker_names{"", "b2:9092"};

std::string broker_of(const std::string& name) {
  return name == "w4" || name == "w5" ? broker_names[1] : broker_names[0];
}

instance_spec spec_for(const std::string& name) {
  instance_spec s;
  s.name = name;
  s.app = "app";
  s.broker = broker_of(name);
  s.queues = {"q1"};
  s.max_concurrency = 2;
  s.min_concurrency = 1;
  if (name == "w3") {
    s.launch.kind = instance_kind::process;
    s.launch.program = "/bin/sleep";
    s.launch.args = {"600"};
    s.queues.clear();
  }
  return s;
}

supervisor_settings explore_settings() {
  supervisor_settings s;
  s.interval = 5s;
  s.restart_max_rate = "3/m";
  s.wait_after_broker_revived = 35s;
  // Apart from every timeout of the restart schedule, so liveness
  // commands can be told from the schedule's pings.
  s.probe_timeout = 700ms;
  s.command_timeout = 2s;
  s.respawn_max_rate = "3/m";
  // Two silent of the three or four probed workers suspect the bus, so
  // schedules of hangs reach that state.
  s.bus_suspect_min_misses = 2;
  s.bus_suspect_restart_rate = "1/m";
  return s;
}

} // namespace

std::vector<explore_step> draw_schedule(uint64_t seed, size_t steps) {
  std::mt19937_64 rng{seed};
  auto pick = [&](size_t n) {
    return static_cast<size_t>(std::uniform_int_distribution<size_t>{0, n - 1}(rng));
  };
  auto between = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>{lo, hi}(rng);
  };
  // Weighted kinds of steps: time passes most often.
  struct kind {
    const char* op;
    int weight;
  };
  static const kind kinds[] = {
    {"advance", 30}, {"kill", 8},        {"hang", 3},       {"heal", 6},
    {"slow", 2},     {"crash_on_start", 1}, {"fail_start", 1}, {"crash_actor", 2},
    {"broker_down", 2}, {"broker_up", 3}, {"flap", 2},     {"add", 2},
    {"remove", 2},   {"disable", 3},     {"enable", 3},     {"queues", 2},
    {"autoscale", 2}, {"pause", 1},      {"resume", 2},     {"verify", 4},
    {"restart", 2},  {"shutdown", 2},
  };
  int total = 0;
  for (auto& k : kinds)
    total += k.weight;
  std::vector<explore_step> out;
  out.reserve(steps);
  for (size_t i = 0; i < steps; ++i) {
    auto r = static_cast<int>(pick(static_cast<size_t>(total)));
    const kind* k = &kinds[0];
    for (auto& candidate : kinds) {
      if (r < candidate.weight) {
        k = &candidate;
        break;
      }
      r -= candidate.weight;
    }
    explore_step s{k->op, {}, 0};
    std::string op = k->op;
    if (op == "advance") {
      // Mostly short, sometimes a jump past rounds and grace periods.
      s.arg = pick(10) == 0 ? between(30'000, 120'000) : between(5, 6'000);
    } else if (op == "broker_down" || op == "broker_up" || op == "flap") {
      s.target = broker_names[pick(broker_names.size())];
    } else if (op != "pause" && op != "resume") {
      s.target = instance_names[pick(instance_names.size())];
      if (op == "kill")
        s.arg = pick(4) == 0 ? 0 : 1;
      else if (op == "slow")
        s.arg = between(200, 3'000);
      else if (op == "queues")
        s.arg = between(0, 3);
      else if (op == "autoscale")
        s.arg = between(1, 4);
      else if (op == "verify")
        s.arg = pick(2);
    }
    out.push_back(std::move(s));
  }
  return out;
}

explore_result run_schedule(const std::vector<explore_step>& steps,
                            bool trace) {
  std::vector<instance_spec> catalogue;
  for (auto& name : instance_names)
    catalogue.push_back(spec_for(name));
  simulation sim{explore_settings(), catalogue, {"w1", "w2", "w3", "w4"}};
  explore_result result;
  sim.start();
  for (size_t i = 0; i < steps.size() && sim.violation().empty(); ++i) {
    if (trace)
      sim.note("step " + steps[i].op + " " + steps[i].target + " "
               + std::to_string(steps[i].arg));
    sim.apply(steps[i]);
    result.at_step = i;
  }
  // Past the revival grace, the whole restart schedule and a few rounds.
  if (sim.violation().empty())
    sim.settle(explore_settings().wait_after_broker_revived + 90s);
  if (trace)
    sim.note("end");
  result.timeline = sim.timeline();
  result.violation = sim.violation();
  result.simulated_seconds
    = std::chrono::duration<double>(sim.elapsed()).count();
  result.requests = sim.requests();
  result.starts = sim.fixture().world.total_starts();
  for (auto& [name, w] : sim.fixture().world.workers)
    result.spares_taken += w.spares_taken;
  return result;
}

std::vector<explore_step> shrink(std::vector<explore_step> steps,
                                 const std::string& violation) {
  // The kind of violation: its text up to the first name or number.
  auto kind_of = [](const std::string& v) {
    auto cut = v.find_first_of("0123456789w'");
    return v.substr(0, cut);
  };
  auto wanted = kind_of(violation);
  auto still_fails = [&](const std::vector<explore_step>& candidate) {
    auto r = run_schedule(candidate);
    return !r.violation.empty() && kind_of(r.violation) == wanted;
  };
  // Drop ever smaller chunks while the schedule still fails the same way.
  for (size_t chunk = std::max<size_t>(1, steps.size() / 2); chunk >= 1;
       chunk /= 2) {
    bool removed = true;
    while (removed) {
      removed = false;
      for (size_t at = 0; at + chunk <= steps.size();) {
        std::vector<explore_step> candidate;
        candidate.reserve(steps.size() - chunk);
        candidate.insert(candidate.end(), steps.begin(),
                         steps.begin() + static_cast<std::ptrdiff_t>(at));
        candidate.insert(candidate.end(),
                         steps.begin() + static_cast<std::ptrdiff_t>(at + chunk),
                         steps.end());
        if (still_fails(candidate)) {
          steps = std::move(candidate);
          removed = true;
        } else {
          at += chunk;
        }
      }
    }
    if (chunk == 1)
      break;
  }
  return steps;
}

std::string as_scenario(const std::vector<explore_step>& steps,
                        const std::string& name,
                        const std::string& violation) {
  std::ostringstream out;
  out << "BOOST_AUTO_TEST_CASE(" << name << ") {\n"
      << "  // Found by cyme-explore: " << violation << "\n"
      << "  auto r = cyme::testing::run_schedule({\n";
  for (auto& s : steps)
    out << "    {\"" << s.op << "\", \"" << s.target << "\", " << s.arg
        << "},\n";
  out << "  });\n"
      << "  BOOST_TEST(r.violation.empty(), r.violation);\n"
      << "}\n";
  return out.str();
}

} // namespace cyme::testing

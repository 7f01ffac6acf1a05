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
#include "testing/fixture.hpp"

namespace cyme::testing {

namespace {

using namespace std::chrono_literals;
using time_point = caf::actor_clock::time_point;
using reports = std::vector<action_report>;

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
  return s;
}

/// One run of a schedule.
class exploration {
public:
  exploration() : settings_(explore_settings()) {
    restart_rate_ = *parse_rate(settings_.restart_max_rate);
    for (auto& name : instance_names)
      if (name != "w5")
        add(name);
    fx_.world.on_start = [this](const std::string& name, int32_t) {
      on_start(name);
    };
    fx_.world.on_command = [this](const control_command& c) { on_command(c); };
  }

  explore_result run(const std::vector<explore_step>& steps, bool trace) {
    explore_result result;
    auto t0 = fx_.now();
    trace_ = trace;
    fx_.start(settings_);
    for (size_t i = 0; i < steps.size() && violation_.empty(); ++i) {
      if (trace_)
        note("step " + steps[i].op + " " + steps[i].target + " "
             + std::to_string(steps[i].arg));
      apply(steps[i]);
      check_step();
      result.at_step = i;
    }
    if (violation_.empty())
      settle();
    if (trace_)
      note("end");
    result.timeline = timeline_.str();
    result.violation = violation_;
    result.simulated_seconds
      = std::chrono::duration<double>(fx_.now() - t0).count();
    result.requests = requests_.size();
    result.starts = fx_.world.total_starts();
    return result;
  }

private:
  struct tracked {
    std::string op;
    std::vector<std::string> names;
    size_t answers = 0;
    /// The model version of each name when the request was sent.
    std::map<std::string, uint64_t> versions;
  };

  /// Adds the events since the last note, then `what`, to the timeline.
  void note(const std::string& what) {
    auto t0 = std::chrono::hours{1};
    auto at = [&] {
      return std::chrono::duration<double>(fx_.now().time_since_epoch() - t0)
        .count();
    };
    for (; traced_ < fx_.log.size(); ++traced_) {
      auto& ev = fx_.log[traced_];
      timeline_ << "  " << to_string(ev.kind) << " " << ev.instance << ": "
                << ev.detail << "\n";
    }
    timeline_ << at() << " s: " << what << "\n";
  }

  // -- steps --------------------------------------------------------------------

  void apply(const explore_step& s) {
    auto& world = fx_.world;
    if (s.op == "advance") {
      fx_.advance(std::chrono::milliseconds{s.arg});
      return;
    }
    if (s.op == "broker_down" || s.op == "broker_up" || s.op == "flap") {
      if (s.op != "broker_up")
        broker_down(s.target);
      if (s.op != "broker_down")
        broker_up(s.target);
      fx_.sched.run();
      return;
    }
    if (s.op == "pause" || s.op == "resume") {
      operator_paused_ = s.op == "pause";
      send(s.op, {});
      return;
    }
    auto& w = world.workers[s.target];
    if (s.op == "kill") {
      if (w.running)
        fx_.kill(s.target, s.arg != 0);
    } else if (s.op == "hang") {
      w.hangs = true;
      w.responsive = false;
    } else if (s.op == "heal") {
      heal(w);
    } else if (s.op == "slow") {
      w.start_delay = std::chrono::milliseconds{s.arg};
    } else if (s.op == "crash_on_start") {
      w.crashes_on_start = true;
    } else if (s.op == "fail_start") {
      w.fails_to_start = true;
    } else if (s.op == "crash_actor") {
      auto child = fx_.request<instance_actor>(fx_.sup, child_atom::value,
                                               s.target);
      fx_.sched.run();
      if (child->value)
        caf::anon_send_exit(*child->value, caf::exit_reason::kill);
    } else if (s.op == "add") {
      if (world.model.count(s.target) == 0)
        add(s.target);
    } else if (s.op == "remove") {
      world.model.erase(s.target);
      bump(s.target);
    } else if (s.op == "disable" || s.op == "enable") {
      if (auto i = world.model.find(s.target); i != world.model.end()) {
        i->second.enabled = s.op == "enable";
        i->second.disabled_reason = s.op == "enable" ? "" : "by the explorer";
        bump(s.target);
      }
    } else if (s.op == "queues") {
      static const std::vector<std::vector<std::string>> sets{
        {"q1"}, {"q1", "q2"}, {}, {"q3"}};
      // A plain process consumes no queues.
      if (auto i = world.model.find(s.target);
          i != world.model.end() && s.target != "w3")
        i->second.queues = sets[static_cast<size_t>(s.arg) % sets.size()];
    } else if (s.op == "autoscale") {
      if (auto i = world.model.find(s.target); i != world.model.end()) {
        i->second.max_concurrency = static_cast<uint32_t>(s.arg);
        i->second.min_concurrency = 1;
      }
    } else if (s.op == "verify" || s.op == "restart" || s.op == "shutdown") {
      send(s.op, {s.target}, s.arg != 0);
      return;
    } else {
      fail("unknown step '" + s.op + "'");
      return;
    }
    fx_.sched.run();
  }

  void heal(fake_worker& w) {
    w.hangs = false;
    w.crashes_on_start = false;
    w.fails_to_start = false;
    w.start_delay = 0ns;
    if (w.running)
      w.responsive = true;
  }

  void add(const std::string& name) {
    fx_.world.model[name] = spec_for(name);
    bump(name);
    // A new instance (or one back in the model) has a fresh bucket.
    starts_at_[name].clear();
  }

  void bump(const std::string& name) {
    versions_[name] += 1;
  }

  void broker_down(const std::string& broker) {
    fx_.world.brokers_down.insert(broker);
    if (down_.insert(broker).second)
      caf::anon_send(fx_.sup, broker_down_atom::value, broker,
                     std::string{"unreachable (explorer)"});
  }

  void broker_up(const std::string& broker) {
    fx_.world.brokers_down.erase(broker);
    if (down_.erase(broker) > 0) {
      caf::anon_send(fx_.sup, broker_up_atom::value, broker);
      revived_at_[broker] = fx_.now();
    }
  }

  /// Sends a request from a helper actor, counting its answers.
  void send(const std::string& op, std::vector<std::string> names,
            bool ratelimit = true) {
    auto id = requests_.size();
    tracked t{op, names, 0, {}};
    for (auto& n : names)
      t.versions[n] = versions_[n];
    requests_.push_back(t);
    window_extra_ += 2 * std::max<size_t>(1, names.size());
    bool is_explicit = op == "restart" || op == "shutdown"
                       || (op == "verify" && !ratelimit);
    for (auto& n : names)
      if (is_explicit) {
        explicit_pending_[n] += 1;
        // An explicit request fills the bucket again.
        starts_at_[n].clear();
      }
    auto on_reports = [this, id, is_explicit](reports* r) {
      answered(id, r, is_explicit);
    };
    auto& sys = fx_.sys;
    auto sup = fx_.sup;
    sys.spawn(
      [op, names, ratelimit, sup, on_reports](caf::event_based_actor* self,
                                               int) {
        auto ok = [on_reports](reports& r) { on_reports(&r); };
        auto err = [on_reports](caf::error&) { on_reports(nullptr); };
        auto status = [on_reports](supervisor_status&) { on_reports(nullptr); };
        if (op == "verify")
          self->request(sup, caf::infinite, verify_atom::value, names, ratelimit)
            .then(ok, err);
        else if (op == "restart")
          self->request(sup, caf::infinite, restart_atom::value, names)
            .then(ok, err);
        else if (op == "shutdown")
          self->request(sup, caf::infinite, shutdown_atom::value, names)
            .then(ok, err);
        else if (op == "pause")
          self->request(sup, caf::infinite, pause_atom::value).then(status, err);
        else
          self->request(sup, caf::infinite, resume_atom::value).then(status, err);
      },
      0);
    fx_.sched.run();
  }

  // -- invariants ---------------------------------------------------------------

  void fail(std::string what) {
    if (violation_.empty()) {
      std::ostringstream out;
      out << what << " (at " << std::fixed
          << std::chrono::duration<double>(fx_.now().time_since_epoch()).count()
          << " s of virtual time)";
      violation_ = out.str();
    }
  }

  void answered(size_t id, reports* r, bool is_explicit) {
    auto& t = requests_[id];
    t.answers += 1;
    if (t.answers > 1) {
      fail(t.op + " request " + std::to_string(id) + " answered twice");
      return;
    }
    if (is_explicit)
      for (auto& n : t.names)
        explicit_pending_[n] -= 1;
    if (r == nullptr || t.op != "verify")
      return;
    // A verification of a disabled or removed instance leaves no process.
    for (auto& rep : *r) {
      if (rep.result == outcome::paused || rep.result == outcome::failed)
        continue;
      auto i = fx_.world.model.find(rep.instance);
      bool off = i == fx_.world.model.end() || !i->second.enabled;
      if (!off || versions_[rep.instance] != t.versions[rep.instance])
        continue;
      auto w = fx_.world.workers.find(rep.instance);
      if (w != fx_.world.workers.end() && w->second.running)
        fail("verify of " + rep.instance
             + (i == fx_.world.model.end() ? " (removed)" : " (disabled)")
             + " answered '" + to_string(rep.result) + "' with its process "
             + std::to_string(w->second.pid) + " left running");
    }
  }

  void on_start(const std::string& name) {
    auto now = fx_.now();
    auto& starts = starts_at_[name];
    starts.push_back(now);
    window_extra_ += 2;
    if (explicit_pending_[name] > 0)
      return;
    auto broker = broker_of(name);
    bool worker = name != "w3";
    if (operator_paused_)
      fail("started " + name + " while paused");
    if (worker && down_.count(broker) > 0)
      fail("started " + name + " while its broker '" + broker + "' was down");
    if (auto i = revived_at_.find(broker);
        worker && i != revived_at_.end()
        && now - i->second < settings_.wait_after_broker_revived)
      fail("started " + name + " "
           + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                              now - i->second)
                              .count())
           + " ms after its broker came back");
    // A bucket of count N per period holds max(1, N) tokens and refills N
    // per period: within any period at most that plus N restarts, plus the
    // first start.
    auto window = std::chrono::duration_cast<caf::timespan>(
      restart_rate_.period);
    auto in_window = std::count_if(starts.begin(), starts.end(),
                                   [&](time_point t) { return now - t <= window; });
    auto bound = std::max(1.0, restart_rate_.count) + restart_rate_.count + 1;
    if (static_cast<double>(in_window) > bound)
      fail(name + " started " + std::to_string(in_window)
           + " times within one restart period (bucket allows "
           + std::to_string(static_cast<int>(bound)) + ")");
  }

  void check_step() {
    if (fx_.world.starts_while_running > 0)
      fail("the driver was asked to start an instance whose process runs");
    check_rounds();
  }

  /// Liveness commands (probes: ping at the probe timeout, stats) per round
  /// stay within 2 per instance and 2 per broker, plus 2 for each request,
  /// death and start that fell into the round. Rounds are told apart by
  /// their round_finished events, read as commands and steps come.
  void check_rounds() {
    auto& log = fx_.log;
    for (; log_seen_ < log.size(); ++log_seen_) {
      auto& ev = log[log_seen_];
      if (ev.kind == event_kind::died)
        window_extra_ += 2;
      if (ev.kind != event_kind::round_finished)
        continue;
      if (ev.detail.find("invalid spec") != std::string::npos)
        fail("the explorer's model holds an invalid spec: " + ev.detail);
      auto bound = 2 * instance_names.size() + 2 * broker_names.size()
                   + window_extra_;
      if (liveness_ > bound)
        fail("a round sent " + std::to_string(liveness_)
             + " liveness commands (bound " + std::to_string(bound) + ")");
      liveness_ = 0;
      window_extra_ = 0;
    }
  }

  void on_command(const control_command& c) {
    check_rounds();
    if ((c.op == control_op::ping && c.timeout == settings_.probe_timeout)
        || c.op == control_op::stats)
      liveness_ += 1;
  }

  /// Heals every fault, lets the supervisor work, and checks that every
  /// request was answered and the fleet matches the model.
  void settle() {
    for (auto& b : broker_names)
      broker_up(b);
    if (operator_paused_) {
      operator_paused_ = false;
      send("resume", {});
    }
    for (auto& [name, w] : fx_.world.workers)
      heal(w);
    // Past the revival grace, the whole restart schedule and a few rounds.
    fx_.advance(settings_.wait_after_broker_revived + 90s);
    check_step();
    for (size_t i = 0; i < requests_.size(); ++i)
      if (requests_[i].answers == 0)
        fail(requests_[i].op + " request " + std::to_string(i)
             + " never answered");
    auto statuses = fx_.request<std::vector<instance_status>>(fx_.sup,
                                                              list_atom::value);
    fx_.sched.run();
    std::set<std::string> unsupervised;
    if (statuses->value)
      for (auto& s : *statuses->value)
        if (!s.supervised)
          unsupervised.insert(s.name);
    for (auto& name : instance_names) {
      if (unsupervised.count(name) > 0)
        continue;
      auto m = fx_.world.model.find(name);
      bool want = m != fx_.world.model.end() && m->second.enabled;
      auto w = fx_.world.workers.find(name);
      bool runs = w != fx_.world.workers.end() && w->second.running;
      if (want != runs)
        fail("after healing, " + name + (runs ? " runs" : " does not run")
             + " but the model has it "
             + (m == fx_.world.model.end() ? "removed"
                : want                     ? "enabled"
                                           : "disabled"));
    }
  }

  supervision_fixture fx_;
  bool trace_ = false;
  std::ostringstream timeline_;
  size_t traced_ = 0;
  supervisor_settings settings_;
  rate restart_rate_;
  std::string violation_;
  std::vector<tracked> requests_;
  std::map<std::string, uint64_t> versions_;
  std::map<std::string, int> explicit_pending_;
  std::map<std::string, std::vector<time_point>> starts_at_;
  std::set<std::string> down_;
  std::map<std::string, time_point> revived_at_;
  bool operator_paused_ = false;
  size_t log_seen_ = 0;
  /// Liveness commands in the current round's window, and what the
  /// window's requests, deaths and starts allow beyond the bound.
  size_t liveness_ = 0;
  size_t window_extra_ = 0;
};

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
  exploration x;
  return x.run(steps, trace);
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

#include "testing/simulation.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

namespace cyme::testing {

using namespace std::chrono_literals;
using reports = std::vector<action_report>;

simulation::simulation(supervisor_settings settings,
                       std::vector<instance_spec> catalogue,
                       const std::vector<std::string>& initial)
  : settings_(std::move(settings)) {
  t0_ = fx_.now();
  restart_rate_ = *parse_rate(settings_.restart_max_rate);
  bus_restart_rate_ = *parse_rate(settings_.bus_suspect_restart_rate);
  for (auto& spec : catalogue) {
    brokers_.insert(spec.broker);
    catalogue_[spec.name] = std::move(spec);
  }
  for (auto& name : initial)
    add(name);
  fx_.world.on_start = [this](const std::string& name, int32_t) {
    on_start(name);
  };
  fx_.world.on_command = [this](const control_command& c) { on_command(c); };
}

void simulation::start() {
  fx_.start(settings_);
  check_step();
}

caf::timespan simulation::elapsed() const {
  return fx_.now() - t0_;
}

const instance_spec& simulation::spec_of(const std::string& name) {
  if (auto i = fx_.world.model.find(name); i != fx_.world.model.end())
    return i->second;
  auto& s = catalogue_[name];
  s.name = name;
  return s;
}

void simulation::note(const std::string& what) {
  for (; traced_ < fx_.log.size(); ++traced_) {
    auto& ev = fx_.log[traced_];
    timeline_ << "    "
              << std::chrono::duration<double>(fx_.log_at[traced_] - t0_).count()
              << " s  " << to_string(ev.kind)
              << (ev.instance.empty() ? "" : " " + ev.instance) << ": "
              << ev.detail << "\n";
  }
  timeline_ << std::chrono::duration<double>(elapsed()).count() << " s: "
            << what << "\n";
}

void simulation::advance(caf::timespan d) {
  fx_.advance(d);
  check_step();
}

void simulation::apply(const explore_step& s) {
  auto& world = fx_.world;
  if (s.op == "advance") {
    advance(std::chrono::milliseconds{s.arg});
    return;
  }
  if (s.op == "broker_down" || s.op == "broker_up" || s.op == "flap") {
    if (s.op != "broker_up")
      broker_down(s.target);
    if (s.op != "broker_down")
      broker_up(s.target);
    fx_.sched.run();
    check_step();
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
    set_queues(s.target, sets[static_cast<size_t>(s.arg) % sets.size()]);
    return;
  } else if (s.op == "autoscale") {
    set_autoscale(s.target, static_cast<uint32_t>(s.arg), 1);
    return;
  } else if (s.op == "verify" || s.op == "restart" || s.op == "shutdown") {
    send(s.op, {s.target}, s.arg != 0);
    return;
  } else {
    fail("unknown step '" + s.op + "'");
    return;
  }
  fx_.sched.run();
  check_step();
}

void simulation::set_queues(const std::string& name,
                            std::vector<std::string> queues) {
  // A plain process consumes no queues.
  if (auto i = fx_.world.model.find(name);
      i != fx_.world.model.end()
      && i->second.launch.kind == instance_kind::worker)
    i->second.queues = std::move(queues);
}

void simulation::drift(const std::string& name,
                       const std::vector<std::string>& queues) {
  auto& w = fx_.world.workers[name];
  if (!w.running)
    return;
  w.queues = {direct_queue(name)};
  w.queues.insert(w.queues.end(), queues.begin(), queues.end());
}

void simulation::set_autoscale(const std::string& name, uint32_t max,
                               uint32_t min) {
  if (auto i = fx_.world.model.find(name); i != fx_.world.model.end()) {
    i->second.max_concurrency = max;
    i->second.min_concurrency = min;
  }
}

void simulation::heal(fake_worker& w) {
  w.hangs = false;
  w.crashes_on_start = false;
  w.fails_to_start = false;
  w.start_delay = 0ns;
  if (w.running)
    w.responsive = true;
}

void simulation::add(const std::string& name) {
  fx_.world.model[name] = spec_of(name);
  bump(name);
  // A new instance (or one back in the model) has a fresh bucket.
  starts_at_[name].clear();
}

void simulation::bump(const std::string& name) {
  versions_[name] += 1;
  verified_off_.erase(name);
}

void simulation::broker_down(const std::string& broker) {
  fx_.world.brokers_down.insert(broker);
  if (down_.insert(broker).second)
    caf::anon_send(fx_.sup, broker_down_atom::value, broker,
                   std::string{"unreachable (simulated)"});
}

void simulation::broker_up(const std::string& broker) {
  fx_.world.brokers_down.erase(broker);
  if (down_.erase(broker) > 0) {
    caf::anon_send(fx_.sup, broker_up_atom::value, broker);
    revived_at_[broker] = fx_.now();
  }
}

void simulation::send(const std::string& op, std::vector<std::string> names,
                    bool ratelimit) {
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

void simulation::fail(std::string what) {
  if (violation_.empty()) {
    std::ostringstream out;
    out << what << " (at " << std::fixed
        << std::chrono::duration<double>(fx_.now().time_since_epoch()).count()
        << " s of virtual time)";
    violation_ = out.str();
  }
}

void simulation::answered(size_t id, reports* r, bool is_explicit) {
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
    verified_off_.insert(rep.instance);
    auto w = fx_.world.workers.find(rep.instance);
    if (w != fx_.world.workers.end() && w->second.running)
      fail("verify of " + rep.instance
           + (i == fx_.world.model.end() ? " (removed)" : " (disabled)")
           + " answered '" + to_string(rep.result) + "' with its process "
           + std::to_string(w->second.pid) + " left running");
  }
}

void simulation::on_start(const std::string& name) {
  auto now = fx_.now();
  auto& starts = starts_at_[name];
  starts.push_back(now);
  window_extra_ += 2;
  // Starts that take no virtual time never let time run: a restart loop
  // would spin for ever. Fail, and refuse further starts so it ends.
  if (std::count(starts.begin(), starts.end(), now) > 100) {
    fail(name + " started over 100 times at one instant (a restart loop)");
    for (auto& [other, w] : fx_.world.workers)
      w.fails_to_start = true;
    return;
  }
  if (verified_off_.count(name) > 0)
    fail("started " + name + " after a verification found it "
         + (fx_.world.model.count(name) ? "disabled" : "removed")
         + " (the model unchanged since)");
  if (explicit_pending_[name] > 0)
    return;
  const auto& spec = spec_of(name);
  auto broker = spec.broker;
  bool worker = spec.launch.kind == instance_kind::worker;
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

void simulation::check_step() {
  if (fx_.world.starts_while_running > 0)
    fail("the driver was asked to start an instance whose process runs");
  check_rounds();
}

/// Liveness commands (probes: ping at the probe timeout, stats) per round
/// stay within 1 per instance and 1 per broker (a round's probe is one
/// stats command per broker; an actor pings only what it was not told),
/// plus 2 for each request, death and start that fell into the round. Rounds are told apart by
/// their round_finished events, read as commands and steps come. While the
/// bus is suspected, restarts of running instances that gave no answer
/// stay within bus_suspect_restart_rate's bucket.
void simulation::check_rounds() {
  auto& log = fx_.log;
  for (; log_seen_ < log.size(); ++log_seen_) {
    auto& ev = log[log_seen_];
    if (ev.kind == event_kind::died)
      window_extra_ += 2;
    if (ev.kind == event_kind::bus_suspected) {
      // Each suspicion starts with a full bucket.
      bus_suspected_ = true;
      silent_restarts_.clear();
    }
    if (ev.kind == event_kind::bus_recovered)
      bus_suspected_ = false;
    // An operator's verify or restart is not limited. A silent instance's
    // restart names what went unanswered: a ping, or the round's stats
    // and the ping that confirmed it.
    if (ev.kind == event_kind::restarting && bus_suspected_
        && ev.detail.rfind("no answer to ", 0) == 0
        && explicit_pending_[ev.instance] == 0) {
      auto at = fx_.log_at[log_seen_];
      silent_restarts_.push_back(at);
      auto window = std::chrono::duration_cast<caf::timespan>(
        bus_restart_rate_.period);
      auto in_window = std::count_if(
        silent_restarts_.begin(), silent_restarts_.end(),
        [&](time_point t) { return at - t <= window; });
      auto bound = std::max(1.0, bus_restart_rate_.count)
                   + bus_restart_rate_.count;
      if (static_cast<double>(in_window) > bound)
        fail("while the bus was suspected, " + std::to_string(in_window)
             + " running instances were restarted for no answer within one "
               "period of bus_suspect_restart_rate (bucket allows "
             + std::to_string(static_cast<int>(bound)) + ")");
    }
    if (ev.kind != event_kind::round_finished)
      continue;
    if (ev.detail.find("invalid spec") != std::string::npos)
      fail("the explorer's model holds an invalid spec: " + ev.detail);
    auto bound = catalogue_.size() + brokers_.size()
                 + window_extra_;
    if (liveness_ > bound)
      fail("a round sent " + std::to_string(liveness_)
           + " liveness commands (bound " + std::to_string(bound) + ")");
    liveness_ = 0;
    window_extra_ = 0;
  }
}

void simulation::on_command(const control_command& c) {
  check_rounds();
  if ((c.op == control_op::ping && c.timeout == settings_.probe_timeout)
      || c.op == control_op::stats)
    liveness_ += 1;
}

void simulation::settle(caf::timespan for_) {
  for (auto& b : brokers_)
    broker_up(b);
  if (operator_paused_) {
    operator_paused_ = false;
    send("resume", {});
  }
  for (auto& [name, w] : fx_.world.workers)
    heal(w);
  fx_.advance(for_);
  check_step();
  for (size_t i = 0; i < requests_.size(); ++i)
    if (requests_[i].answers == 0)
      fail(requests_[i].op + " request " + std::to_string(i)
           + " never answered");
  auto statuses = fx_.request<std::vector<instance_status>>(fx_.sup,
                                                            list_atom::value);
  fx_.sched.run();
  std::set<std::string> unsupervised;
  std::map<std::string, int32_t> listed;
  if (statuses->value)
    for (auto& s : *statuses->value) {
      if (!s.supervised)
        unsupervised.insert(s.name);
      listed[s.name] = s.pid;
    }
  for (auto& [name, spec] : catalogue_) {
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
    else if (runs && listed[name] != w->second.pid)
      fail("after healing, " + name + " runs pid "
           + std::to_string(w->second.pid) + " but its status lists pid "
           + std::to_string(listed[name]));
  }
}

} // namespace cyme::testing

#include "actors/supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/restart_bucket.hpp"
#include "actors/supervisor_front.hpp"
#include "messages/errors.hpp"
#include "messages/names.hpp"

namespace cyme {

namespace {

constexpr caf::atom_value current_key = caf::atom("cyme_sup");

using time_point = caf::actor_clock::time_point;

/// A request to an instance actor still unanswered. An actor that crashes
/// drops the requests it holds without answering, so each is failed by the
/// down handler instead; whichever comes first settles it.
struct in_flight {
  bool settled = false;
  /// Gives the request its answer.
  std::function<void(action_report)> answer;
};

using in_flight_ptr = std::shared_ptr<in_flight>;

struct child_entry {
  instance_spec spec;
  /// Invalid while the actor is given up after crashing too often.
  instance_actor handle;
  /// The status its instance actor last reported (it alone writes it).
  instance_status status;
  restart_bucket restarts;
  restart_bucket respawns;
  /// Whether its instance ran under this supervisor: the first start of a
  /// new instance is not a restart and takes no token.
  bool ever_started = false;
  /// False while its actor is given up.
  bool supervised = true;
  /// Requests its actor has not answered yet.
  std::vector<in_flight_ptr> waiting;
  /// Those waiting for its removal under way (a second removal joins it).
  std::vector<std::function<void(action_report)>> retiring;
  /// Requests made of its actor so far: a probe sent while none was
  /// unanswered, and followed by none, was taken after everything its
  /// actor did.
  uint64_t requests = 0;
  /// The listed round trip and concurrency are a probe's, newer than the
  /// actor's last report: a later report about the same process keeps
  /// them.
  bool observed_by_probe = false;
  /// The process the driver is armed to replace at once when it dies
  /// (arm), 0 when none; and whether the spec it was armed with is older
  /// than `spec`.
  int32_t armed_pid = 0;
  bool arm_stale = false;
};

/// Whether a request to `c`'s actor is unanswered.
bool busy(const child_entry& c) {
  return std::any_of(c.waiting.begin(), c.waiting.end(),
                     [](const in_flight_ptr& x) { return !x->settled; });
}

/// Answers every request still waiting on `c` with `r` (named for each).
void answer_waiting(child_entry& c, const action_report& r) {
  auto waiting = std::move(c.waiting);
  c.waiting.clear();
  for (auto& x : waiting)
    if (!std::exchange(x->settled, true))
      x->answer(r);
}

struct supervisor_state {
  supervisor_settings settings;
  rate restart_rate;
  rate respawn_rate;
  rate bus_restart_rate;
  supervisor_seams seams;
  std::map<std::string, child_entry> children;
  bool operator_paused = false;
  /// Brokers down, with why.
  std::map<std::string, std::string> brokers_down;
  std::map<std::string, time_point> revived_at;
  /// Ticks carrying an older generation are stale: pausing bumps it.
  uint64_t timer_generation = 0;
  bool round_in_progress = false;
  uint64_t rounds_completed = 0;
  time_point round_started{};
  /// When this round's listing came from the model, and when its probe
  /// was answered (unset: not yet, or no probe this round).
  std::optional<time_point> round_listed;
  std::optional<time_point> round_probed;
  /// This round's verifies its probe settled without asking the actor.
  size_t round_settled_by_probe = 0;
  caf::timespan last_round{0};
  uint64_t last_round_instances = 0;
  /// Where in the interval rounds start, when this process has said: the
  /// branches sharing a broker take turns instead of probing at once.
  std::optional<caf::timespan> phase;
  /// Set while the bus is suspected (a round found most probed instances
  /// silent while their processes run): the fleet's bucket of restarts of
  /// live but silent instances.
  std::optional<restart_bucket> bus_bucket;
  /// When the suspicion began (wall clock, ms since the epoch).
  int64_t bus_suspected_since_ms = 0;
  std::vector<event_listener> listeners;

  static inline const char* name = "cyme.supervisor";

  bool paused() const {
    return operator_paused || !brokers_down.empty();
  }

  /// A broker as the status and events name it: by its address, the
  /// default one ("") too when the settings know it.
  std::string broker_address(const std::string& broker) const {
    return broker.empty() && !settings.default_broker.empty()
             ? settings.default_broker
             : broker;
  }

  bool reviving(const std::string& broker, time_point now) const {
    auto i = revived_at.find(broker);
    return i != revived_at.end()
           && now - i->second < settings.wait_after_broker_revived;
  }

  ~supervisor_state() {
    for (auto& [name, child] : children)
      if (child.handle)
        caf::anon_send_exit(child.handle, caf::exit_reason::user_shutdown);
  }
};

using self_ptr = supervisor_core::stateful_pointer<supervisor_state>;
using reports_fn = std::function<void(std::vector<action_report>)>;

enum class request_kind { verify, restart, shutdown };

/// The reports of one request, filled as its instances are handled.
struct batch {
  std::vector<action_report> reports;
  /// Instances not handled yet, plus one while dispatching.
  size_t pending = 0;
  reports_fn on_done;
  /// A round's: its verifies settled by the probe are counted.
  bool is_round = false;
};

using batch_ptr = std::shared_ptr<batch>;

void settle(const batch_ptr& b, size_t i, action_report r) {
  b->reports[i] = std::move(r);
  if (--b->pending == 0)
    b->on_done(std::move(b->reports));
}

void emit(self_ptr self, supervisor_event ev) {
  if (ev.app.empty() && !ev.instance.empty())
    if (auto i = self->state.children.find(ev.instance);
        i != self->state.children.end())
      ev.app = i->second.spec.app;
  for (auto& l : self->state.listeners)
    self->send(l, ev);
}

void emit(self_ptr self, event_kind kind, std::string instance,
          std::string detail = {},
          std::map<std::string, std::string> data = {}) {
  emit(self, supervisor_event{kind, std::move(instance), std::move(detail), {},
                              std::move(data)});
}

/// An instance's status with the restarts its limit's window holds now.
instance_status with_window(self_ptr self, const child_entry& c) {
  auto out = c.status;
  out.supervised = c.supervised;
  auto used = self->state.restart_rate.count
              - c.restarts.tokens(self->clock().now());
  out.restarts_in_window = used > 0 ? static_cast<uint32_t>(std::ceil(used - 1e-9))
                                    : 0;
  return out;
}

supervisor_status status_of(self_ptr self) {
  auto& st = self->state;
  supervisor_status s;
  s.paused = st.paused();
  s.paused_by_operator = st.operator_paused;
  for (auto& [broker, why] : st.brokers_down) {
    s.brokers_down.push_back(st.broker_address(broker));
    s.broker_errors[st.broker_address(broker)] = why;
  }
  auto now = self->clock().now();
  for (auto& [broker, at] : st.revived_at)
    if (st.reviving(broker, now))
      s.brokers_reviving.push_back(st.broker_address(broker));
  s.interval = st.settings.interval;
  s.round_in_progress = st.round_in_progress;
  s.rounds_completed = st.rounds_completed;
  s.last_round = st.last_round;
  s.last_round_instances = st.last_round_instances;
  s.instances = st.children.size();
  s.bus_suspected = st.bus_bucket.has_value();
  s.bus_suspected_since_ms = st.bus_suspected_since_ms;
  return s;
}

void spawn_child(self_ptr self, child_entry& c) {
  instance_config cfg{self->state.seams.driver, self->state.seams.bus,
                      self->address(), self->state.settings.restart_pings,
                      self->state.settings.probe_timeout,
                      self->state.settings.command_timeout};
  c.handle = spawn_instance_actor(self, std::move(cfg), c.status,
                                  c.spec.enabled);
  self->monitor(c.handle);
}

/// What the restart policy is asked about `c` now.
permit_request permit_request_for(self_ptr self, const child_entry& c,
                                  bool ratelimit, restart_cause cause) {
  auto& st = self->state;
  auto now = self->clock().now();
  // A process does not use the broker: nothing to wait for.
  return permit_request{ratelimit,
                        st.paused(),
                        c.spec.launch.kind == instance_kind::worker
                          && st.reviving(c.spec.broker, now),
                        c.ever_started,
                        c.restarts,
                        now,
                        cause,
                        st.bus_bucket};
}

/// Whether the death of `c`'s running process may be repaired by the
/// driver at once, before the supervisor hears of it: the permit its
/// repair will ask would be granted now, and stays so until the supervisor
/// sees otherwise (a pause, a broker's revival, a disable, its actor
/// lost): only its own restarts take its bucket's tokens, and the repair's
/// permit takes the one this finds.
bool may_restart_at_once(self_ptr self, const child_entry& c) {
  return self->state.settings.restart_at_once && c.handle && c.spec.enabled
         && c.status.state == instance_state::running && c.status.pid > 0
         && decide_permit(permit_request_for(self, c, true,
                                             restart_cause::not_running))
                .permit
              == restart_permit::granted;
}

/// Arms the driver for `c`'s process, or disarms it, as
/// may_restart_at_once says; tells the driver only of a change.
void sync_arm(self_ptr self, child_entry& c) {
  int32_t want = may_restart_at_once(self, c) ? c.status.pid : 0;
  if (want == c.armed_pid && !(want > 0 && c.arm_stale))
    return;
  self->send(self->state.seams.driver, arm_atom::value, c.spec, want);
  c.armed_pid = want;
  c.arm_stale = false;
}

void sync_arms(self_ptr self) {
  for (auto& [name, c] : self->state.children)
    sync_arm(self, c);
}

/// Registers a request to `c`'s actor; `answer` gives it its answer, once:
/// from the actor, or for it when the actor goes down first.
in_flight_ptr track(child_entry& c, std::function<void(action_report)> answer) {
  auto& w = c.waiting;
  w.erase(std::remove_if(w.begin(), w.end(),
                         [](const in_flight_ptr& x) { return x->settled; }),
          w.end());
  auto x = std::make_shared<in_flight>(in_flight{false, std::move(answer)});
  w.push_back(x);
  ++c.requests;
  c.observed_by_probe = false;
  return x;
}

/// The child of `spec`, created (with its instance actor) if new. An
/// explicit request forgives past restarts and revives a given-up actor.
child_entry& ensure_child(self_ptr self, const instance_spec& spec,
                          bool explicit_request) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto i = st.children.find(spec.name);
  if (i == st.children.end()) {
    // Its status is what its actor starts from, until its first report.
    child_entry c{spec,
                  {},
                  lifecycle::initial_status(spec),
                  restart_bucket{st.restart_rate, now},
                  restart_bucket{st.respawn_rate, now},
                  false,
                  true,
                  {},
                  {}};
    i = st.children.emplace(spec.name, std::move(c)).first;
    spawn_child(self, i->second);
    return i->second;
  }
  auto& c = i->second;
  if (c.spec.enabled && !spec.enabled) {
    // Disabled in the model (by an operator): its stop follows.
    emit(self, event_kind::disabled, spec.name, spec.disabled_reason,
         {{"reason", spec.disabled_reason}});
    if (c.handle)
      self->send(c.handle, disable_atom::value, spec.disabled_reason);
  }
  // The arm follows at its dispatch, which comes next.
  if (c.armed_pid > 0 && !(c.spec == spec))
    c.arm_stale = true;
  c.spec = spec;
  if (explicit_request) {
    c.restarts.reset(now);
    if (!c.handle) {
      c.respawns.reset(now);
      c.supervised = true;
      spawn_child(self, c);
      emit(self, event_kind::actor_respawned, spec.name, "on request");
    }
  }
  return c;
}

/// Stops an instance that left the model and forgets it.
void retire(self_ptr self, const std::string& name,
            std::function<void(action_report)> done) {
  auto& c = self->state.children.at(name);
  if (!c.handle) {
    self->state.children.erase(name);
    done(action_report{name, outcome::not_running, "removed from the model"});
    return;
  }
  c.retiring.push_back(std::move(done));
  if (c.retiring.size() > 1)
    // Joins the removal under way.
    return;
  auto handle = c.handle;
  // Once the actor answered (or went down): forget the instance if that
  // actor still is its actor, and answer every removal.
  auto finish = [self, name, handle](action_report r) {
    auto i = self->state.children.find(name);
    if (i == self->state.children.end())
      return;
    auto& c = i->second;
    auto dones = std::move(c.retiring);
    c.retiring.clear();
    if (c.handle == handle) {
      self->demonitor(handle.address());
      self->send_exit(handle, caf::exit_reason::user_shutdown);
      // Requests queued behind the removal die with the actor.
      answer_waiting(c, action_report{name, outcome::not_running,
                                      "removed from the model"});
      self->state.children.erase(i);
    }
    for (auto& d : dones)
      d(r);
  };
  auto slot = track(c, finish);
  self->request(handle, caf::infinite, remove_atom::value, c.spec)
    .then(
      [slot, finish](action_report& r) {
        if (!std::exchange(slot->settled, true))
          finish(std::move(r));
      },
      [slot, finish, name](caf::error& err) {
        if (!std::exchange(slot->settled, true))
          finish(action_report{name, outcome::failed,
                               "removed from the model; stop: "
                                 + describe(err)});
      });
}

/// A batched probe: the instances asked, in order, and what each answered
/// (its entry at the same position). Replies find their entry by name
/// through `index`, whose keys view `names`.
struct probe_set {
  std::vector<std::string> names;
  std::vector<probe_result> results;
  std::unordered_map<std::string_view, size_t> index;
};

using probe_ptr = std::shared_ptr<probe_set>;

/// Asks stats of `names` (with their brokers, at the same positions) with
/// one command per broker, then asks the driver once which of them run: an
/// instance actor given its process's pid with the probe need not ask the
/// driver itself. An answer to stats proves its worker alive on the bus as
/// a pong does (its round trip is listed as the ping's), so a round costs
/// one reply per instance, not two.
void probe(self_ptr self, std::vector<std::string> names,
           const std::vector<const std::string*>& brokers,
           std::function<void(probe_ptr)> then) {
  auto ps = std::make_shared<probe_set>();
  ps->names = std::move(names);
  ps->results.resize(ps->names.size());
  ps->index.reserve(ps->names.size());
  std::map<std::string_view, std::vector<std::string>> by_broker;
  for (size_t i = 0; i < ps->names.size(); ++i) {
    ps->index.emplace(ps->names[i], i);
    by_broker[*brokers[i]].push_back(ps->names[i]);
  }
  auto pending = std::make_shared<size_t>(by_broker.size());
  auto sent_at = self->clock().now().time_since_epoch().count();
  auto one_done = [self, ps, pending, then] {
    if (--*pending > 0)
      return;
    self
      ->request(self->state.seams.driver, caf::infinite, alive_atom::value,
                ps->names)
      .then(
        [ps, then](std::vector<int32_t>& pids) {
          if (pids.size() == ps->names.size())
            for (size_t i = 0; i < pids.size(); ++i)
              ps->results[i].pid = pids[i];
          then(ps);
        },
        // Left unknown: each instance actor asks the driver itself.
        [ps, then](caf::error&) { then(ps); });
  };
  for (auto& [broker, group] : by_broker) {
    control_command cmd;
    cmd.broker = std::string{broker};
    cmd.destinations = std::move(group);
    cmd.timeout = self->state.settings.probe_timeout;
    cmd.op = control_op::stats;
    auto asked = std::make_shared<std::vector<std::string>>(cmd.destinations);
    self->request(self->state.seams.bus, caf::infinite, command_atom::value, cmd)
      .then(
        [ps, asked, one_done, sent_at](std::vector<control_reply>& replies) {
          for (auto& n : *asked) {
            auto& p = ps->results[ps->index.at(n)];
            p.probed = true;
            p.sent_at_ns = sent_at;
          }
          for (auto& r : replies)
            if (auto i = ps->index.find(r.instance); i != ps->index.end()) {
              auto& p = ps->results[i->second];
              p.pong = true;
              p.rtt_us = r.rtt_us;
              // A worker that could not give its stats is still alive;
              // its actor asks again.
              if (r.ok) {
                p.has_stats = true;
                p.stats = std::move(r.stats);
              }
            }
          one_done();
        },
        [one_done](caf::error&) {
          // Left unprobed: each instance actor asks its instance itself.
          one_done();
        });
  }
}

/// Enters or leaves the bus-suspected state by what a round's probe found:
/// `silent` of its `probed` instances missed their ping while their
/// processes run.
void judge_bus(self_ptr self, size_t silent, size_t probed) {
  auto& st = self->state;
  auto share = static_cast<double>(silent) / static_cast<double>(probed);
  bool suspect = silent >= st.settings.bus_suspect_min_misses
                 && share >= st.settings.bus_suspect_threshold;
  if (suspect == st.bus_bucket.has_value())
    return;
  char percent[16];
  std::snprintf(percent, sizeof(percent), "%.0f%%", share * 100);
  char share_text[16];
  std::snprintf(share_text, sizeof(share_text), "%.3f", share);
  auto found = std::to_string(silent) + " of " + std::to_string(probed)
               + " probed instances (" + percent
               + ") missed their ping while their processes run";
  std::map<std::string, std::string> data{
    {"share", share_text},
    {"missed", std::to_string(silent)},
    {"instances", std::to_string(probed)},
    {"rate", st.settings.bus_suspect_restart_rate}};
  if (suspect) {
    st.bus_bucket.emplace(st.bus_restart_rate, self->clock().now());
    st.bus_suspected_since_ms
      = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
    emit(self, event_kind::bus_suspected, {},
         found + "; the control bus is suspected: silent instances are "
                 "restarted at most at "
           + st.settings.bus_suspect_restart_rate,
         std::move(data));
  } else {
    st.bus_bucket.reset();
    st.bus_suspected_since_ms = 0;
    emit(self, event_kind::bus_recovered, {},
         found + "; silent instances are restarted as usual again",
         std::move(data));
  }
}

/// Judges the bus by a round's probe before its verdicts go out, so that
/// every restart of the round follows the judgment: the probed instances
/// that missed their ping while the driver said their processes run. A
/// probe that reached no instance judges nothing.
void judge_bus_by_probe(self_ptr self, const probe_set& probes) {
  size_t probed = 0;
  size_t silent = 0;
  for (auto& p : probes.results) {
    if (!p.probed)
      continue;
    ++probed;
    if (!p.pong && p.pid > 0)
      ++silent;
  }
  if (probed > 0)
    judge_bus(self, silent, probed);
}

/// No probe, or one sent while a request to the actor was unanswered.
constexpr uint64_t no_quiet_probe = UINT64_MAX;

/// Sends `kind` for `spec` to its instance actor, whose answer settles
/// entry `i` of `b`. A verify that a probe settles (sent when the actor's
/// requests so far, `requests_at_probe`, were all answered, and none made
/// since) is answered here instead.
void dispatch(self_ptr self, const batch_ptr& b, size_t i, request_kind kind,
              const instance_spec& spec, probe_result p, bool ratelimit,
              uint64_t requests_at_probe = no_quiet_probe) {
  auto it = self->state.children.find(spec.name);
  if (it == self->state.children.end() || !it->second.handle) {
    settle(b, i,
           action_report{spec.name, outcome::failed,
                         "not supervised: its instance actor crashed too often"});
    return;
  }
  auto& c = it->second;
  // Arms the driver once a broker's revival or a refill allows it again.
  sync_arm(self, c);
  if (kind == request_kind::verify && requests_at_probe == c.requests
      && !busy(c) && lifecycle::probe_settles(p, c.status, spec)) {
    // A process silent until now, or whose settings the actor did not
    // list (a command whose answer was lost), is listed as the probe shows
    // it, by the actor too; one message, no request.
    if (lifecycle::list_probe(c.status, p)) {
      self->send(c.handle, answered_atom::value, p);
      sync_arm(self, c);
    }
    c.observed_by_probe = true;
    if (b->is_round)
      ++self->state.round_settled_by_probe;
    settle(b, i, action_report{spec.name, outcome::verified, {}});
    return;
  }
  auto slot = track(it->second,
                    [b, i](action_report r) { settle(b, i, std::move(r)); });
  auto on_report = [slot](action_report& r) {
    if (!std::exchange(slot->settled, true))
      slot->answer(std::move(r));
  };
  auto on_error = [slot, name = spec.name](caf::error& err) {
    if (!std::exchange(slot->settled, true))
      slot->answer(action_report{name, outcome::failed,
                                 "instance actor: " + describe(err)});
  };
  auto& handle = it->second.handle;
  // A pong from the process the instance last reported: its round trip is
  // listed from here, so that a verify that finds the instance as it was
  // has it report nothing.
  if (p.pong && p.pid > 0 && p.pid == it->second.status.pid)
    it->second.status.ping_rtt_us = p.rtt_us;
  switch (kind) {
    case request_kind::verify:
      self
        ->request(handle, caf::infinite, verify_atom::value, spec, std::move(p),
                  ratelimit)
        .then(on_report, on_error);
      break;
    case request_kind::restart:
      self->request(handle, caf::infinite, restart_atom::value, spec)
        .then(on_report, on_error);
      break;
    case request_kind::shutdown:
      self->request(handle, caf::infinite, shutdown_atom::value, spec)
        .then(on_report, on_error);
      break;
  }
}

/// Handles `names` given the specs the model holds for them: unknown names
/// are reported, removed instances retired, new ones started, the rest
/// verified (after one batched probe), restarted or shut down. A round
/// (`is_round`) judges the bus by its probe first.
void handle_batch(self_ptr self, request_kind kind,
                  const std::vector<std::string>& names,
                  const std::vector<instance_spec>& specs, bool ratelimit,
                  reports_fn on_done, bool is_round) {
  auto b = std::make_shared<batch>();
  b->reports.resize(names.size());
  b->pending = names.size() + 1;
  b->on_done = std::move(on_done);
  b->is_round = is_round;
  std::unordered_map<std::string_view, const instance_spec*> by_name;
  by_name.reserve(specs.size());
  for (auto& s : specs)
    by_name.emplace(s.name, &s);
  bool explicit_request = kind != request_kind::verify || !ratelimit;
  // The position in `names` of each instance to probe, and its spec.
  std::vector<std::pair<size_t, const instance_spec*>> to_probe;
  // For each: its actor's requests so far, when none was unanswered.
  auto quiet_marks = std::make_shared<std::vector<uint64_t>>();
  for (size_t i = 0; i < names.size(); ++i) {
    auto& name = names[i];
    auto found = by_name.find(name);
    if (found == by_name.end()) {
      if (self->state.children.count(name) > 0)
        retire(self, name, [b, i](action_report r) { settle(b, i, std::move(r)); });
      else
        settle(b, i, action_report{name, outcome::unknown_instance, {}});
      continue;
    }
    const auto& spec = *found->second;
    if (auto problem = spec_problem(spec); !problem.empty()) {
      settle(b, i, action_report{name, outcome::invalid_spec, problem});
      continue;
    }
    auto& c = ensure_child(self, spec, explicit_request);
    if (kind != request_kind::verify) {
      dispatch(self, b, i, kind, spec, {}, ratelimit);
    } else if (self->state.paused()) {
      settle(b, i, action_report{name, outcome::paused, {}});
    } else if (spec.enabled && spec.launch.kind == instance_kind::worker) {
      to_probe.emplace_back(i, &spec);
      quiet_marks->push_back(busy(c) ? no_quiet_probe : c.requests);
    } else {
      dispatch(self, b, i, kind, spec, {}, ratelimit);
    }
  }
  if (to_probe.size() == 1) {
    // One instance asks its instance itself: no batch to gain, and a dead
    // process is restarted without waiting for a probe timeout.
    auto& [i, spec] = to_probe.front();
    dispatch(self, b, i, kind, *spec, {}, ratelimit);
  } else if (!to_probe.empty()) {
    std::vector<std::string> probed;
    std::vector<const std::string*> brokers;
    auto positions = std::make_shared<std::vector<size_t>>();
    probed.reserve(to_probe.size());
    brokers.reserve(to_probe.size());
    positions->reserve(to_probe.size());
    for (auto& [i, spec] : to_probe) {
      probed.push_back(spec->name);
      brokers.push_back(&spec->broker);
      positions->push_back(i);
    }
    probe(self, std::move(probed), brokers,
          [self, b, kind, ratelimit, positions, quiet_marks,
           is_round](probe_ptr ps) {
            if (is_round) {
              self->state.round_probed = self->clock().now();
              judge_bus_by_probe(self, *ps);
            }
            if (self->state.bus_bucket)
              for (auto& r : ps->results)
                r.bus_suspected = true;
            for (size_t k = 0; k < ps->names.size(); ++k) {
              auto i = (*positions)[k];
              const auto& name = ps->names[k];
              // A request that came while the probe was out (a disable, a
              // removal) read a newer model than this batch did: judge by
              // what the supervisor knows now, not by the batch's copy.
              auto child = self->state.children.find(name);
              if (child == self->state.children.end()) {
                settle(b, i, action_report{name, outcome::not_running,
                                           "removed meanwhile"});
                continue;
              }
              dispatch(self, b, i, kind, child->second.spec,
                       std::move(ps->results[k]), ratelimit, (*quiet_marks)[k]);
            }
          });
  }
  if (--b->pending == 0)
    b->on_done(std::move(b->reports));
}

/// Validates the names of an explicit request; empty when valid.
std::string names_problem(const std::vector<std::string>& names) {
  if (names.empty())
    return "no instance named";
  std::set<std::string> seen;
  for (auto& n : names) {
    if (auto p = name_problem("instance", n); !p.empty())
      return p;
    if (!seen.insert(n).second)
      return "instance '" + n + "' named twice";
  }
  return {};
}

caf::typed_response_promise<std::vector<action_report>>
request_batch(self_ptr self, request_kind kind, std::vector<std::string> names,
              bool ratelimit) {
  auto rp = self->make_response_promise<std::vector<action_report>>();
  if (auto problem = names_problem(names); !problem.empty()) {
    rp.deliver(caf::make_error(cyme_errc::invalid_argument, problem));
    return rp;
  }
  self
    ->request(self->state.seams.store, caf::infinite, get_atom::value, names)
    .then(
      [=](std::vector<instance_spec>& specs) mutable {
        handle_batch(
          self, kind, names, specs, ratelimit,
          [rp](std::vector<action_report> reports) mutable {
            rp.deliver(std::move(reports));
          },
          false);
      },
      [=](caf::error& err) mutable {
        rp.deliver(caf::make_error(cyme_errc::store_failure, describe(err)));
      });
  return rp;
}

void schedule_round(self_ptr self, caf::timespan delay) {
  auto gen = ++self->state.timer_generation;
  auto me = caf::actor_cast<supervisor_core>(self);
  if (delay.count() == 0)
    self->send(me, tick_atom::value, gen);
  else
    self->delayed_send(me, delay, tick_atom::value, gen);
}

/// The wait after a round before the next one: the interval, or, with a
/// phase, until the first time at least half an interval away whose offset
/// in the interval is the phase. Rounds then start a whole interval apart
/// on the phase, unless one runs past half an interval.
caf::timespan next_round_delay(self_ptr self) {
  auto& st = self->state;
  if (!st.phase)
    return st.settings.interval;
  auto interval = st.settings.interval;
  auto half = interval / 2;
  auto earliest = self->clock().now().time_since_epoch() + half;
  auto into = (earliest - *st.phase) % interval;
  if (into.count() < 0)
    into += interval;
  return half + (into.count() == 0 ? caf::timespan{0} : interval - into);
}

void finish_round(self_ptr self, const std::vector<action_report>& reports,
                  std::string note) {
  auto& st = self->state;
  st.round_in_progress = false;
  st.rounds_completed += 1;
  st.last_round = self->clock().now() - st.round_started;
  st.last_round_instances = reports.size();
  std::map<outcome, size_t> counts;
  for (auto& r : reports)
    counts[r.result] += 1;
  std::string detail = std::to_string(reports.size()) + " instances";
  for (auto& [result, n] : counts)
    detail += ", " + std::to_string(n) + " " + to_string(result);
  // Verified from the probe alone: their actors were not asked.
  if (st.round_settled_by_probe > 0)
    detail += " (" + std::to_string(st.round_settled_by_probe)
              + " by the probe alone)";
  auto ms = [](caf::timespan d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  char took[128];
  std::snprintf(took, sizeof(took), " in %.1f ms", ms(st.last_round));
  detail += took;
  std::map<std::string, std::string> data{
    {"instances", std::to_string(reports.size())},
    {"duration_ms", std::to_string(ms(st.last_round))},
    {"settled_by_probe", std::to_string(st.round_settled_by_probe)}};
  // Where the time went: the model's listing, the probe of the workers
  // over the bus, the verdicts of the instance actors.
  if (st.round_listed) {
    auto listed = ms(*st.round_listed - st.round_started);
    data["listing_ms"] = std::to_string(listed);
    if (st.round_probed) {
      auto probed = ms(*st.round_probed - *st.round_listed);
      auto judged = ms(self->clock().now() - *st.round_probed);
      data["probe_ms"] = std::to_string(probed);
      data["verdicts_ms"] = std::to_string(judged);
      std::snprintf(took, sizeof(took),
                    " (listing %.1f ms, probe %.1f ms, verdicts %.1f ms)",
                    listed, probed, judged);
    } else {
      std::snprintf(took, sizeof(took), " (listing %.1f ms)", listed);
    }
    detail += took;
  }
  if (!note.empty())
    detail += "; " + note;
  emit(self, event_kind::round_finished, {}, detail, std::move(data));
  if (!st.paused())
    schedule_round(self, next_round_delay(self));
}

void start_round(self_ptr self) {
  self->state.round_in_progress = true;
  self->state.round_started = self->clock().now();
  self->state.round_listed.reset();
  self->state.round_probed.reset();
  self->state.round_settled_by_probe = 0;
  self->request(self->state.seams.store, caf::infinite, list_atom::value)
    .then(
      [self](std::vector<instance_spec>& specs) {
        self->state.round_listed = self->clock().now();
        std::vector<std::string> names;
        std::unordered_set<std::string_view> seen;
        names.reserve(specs.size());
        seen.reserve(specs.size());
        for (auto& s : specs)
          if (seen.insert(s.name).second)
            names.push_back(s.name);
        for (auto& [name, child] : self->state.children)
          if (seen.count(name) == 0)
            names.push_back(name);
        handle_batch(
          self, request_kind::verify, names, specs, true,
          [self](std::vector<action_report> reports) {
            finish_round(self, reports, {});
          },
          true);
      },
      [self](caf::error& err) {
        finish_round(self, {}, "model store: " + describe(err));
      });
}

/// Disables an instance that needs more restarts than its limit allows,
/// and answers its instance actor once the model says so.
caf::typed_response_promise<restart_permit> refuse_restart(self_ptr self,
                                                           child_entry& c) {
  auto rp = self->make_response_promise<restart_permit>();
  auto name = c.spec.name;
  auto reason = "restarted too often (restart_max_rate "
                + self->state.settings.restart_max_rate + ")";
  c.spec.enabled = false;
  c.spec.disabled_reason = reason;
  emit(self, event_kind::disabled, name, reason, {{"reason", reason}});
  // Before the permit's answer: the actor keeps it down, with this reason.
  if (c.handle)
    self->send(c.handle, disable_atom::value, reason);
  self
    ->request(self->state.seams.store, caf::infinite, disable_atom::value, name,
              reason)
    .then(
      [self, rp](instance_spec& updated) mutable {
        auto i = self->state.children.find(updated.name);
        if (i != self->state.children.end())
          i->second.spec = updated;
        rp.deliver(restart_permit::rate_limited);
      },
      [self, rp, name](caf::error& err) mutable {
        emit(self, event_kind::disabled, name,
             "not persisted: " + describe(err));
        rp.deliver(restart_permit::rate_limited);
      });
  return rp;
}

supervisor_core::behavior_type
supervisor_behavior(self_ptr self, supervisor_settings settings,
                    supervisor_seams seams) {
  auto& st = self->state;
  st.restart_rate = *parse_rate(settings.restart_max_rate);
  st.respawn_rate = *parse_rate(settings.respawn_max_rate);
  st.bus_restart_rate = *parse_rate(settings.bus_suspect_restart_rate);
  st.settings = std::move(settings);
  st.seams = std::move(seams);
  self->send(st.seams.driver, subscribe_atom::value,
             caf::actor_cast<exit_listener>(self));
  self->send(st.seams.bus, subscribe_atom::value,
             caf::actor_cast<broker_listener>(self));
  self->set_down_handler([self](caf::down_msg& dm) {
    auto now = self->clock().now();
    for (auto& [name, c] : self->state.children) {
      if (!c.handle || c.handle.address() != dm.source)
        continue;
      c.handle = nullptr;
      auto why = caf::to_string(dm.reason);
      // What it held is lost with it: answer for it.
      answer_waiting(c, action_report{name, outcome::failed,
                                      "instance actor crashed (" + why + ")"});
      if (c.respawns.try_take(now)) {
        spawn_child(self, c);
        emit(self, event_kind::actor_respawned, name, why);
      } else {
        c.supervised = false;
        emit(self, event_kind::actor_given_up, name,
             why + "; crashed more often than respawn_max_rate "
               + self->state.settings.respawn_max_rate);
      }
      sync_arm(self, c);
      return;
    }
  });
  schedule_round(self, caf::timespan{0});
  return {
    [=](verify_atom, std::vector<std::string>& names, bool ratelimit) {
      return request_batch(self, request_kind::verify, std::move(names),
                           ratelimit);
    },
    [=](restart_atom, std::vector<std::string>& names) {
      return request_batch(self, request_kind::restart, std::move(names),
                           false);
    },
    [=](shutdown_atom, std::vector<std::string>& names) {
      return request_batch(self, request_kind::shutdown, std::move(names),
                           false);
    },
    [=](pause_atom) {
      auto& st = self->state;
      if (!st.operator_paused) {
        bool was_paused = st.paused();
        st.operator_paused = true;
        ++st.timer_generation;
        sync_arms(self);
        if (!was_paused)
          emit(self, event_kind::paused, {}, "by operator");
      }
      return status_of(self);
    },
    [=](resume_atom) {
      auto& st = self->state;
      if (st.operator_paused) {
        st.operator_paused = false;
        sync_arms(self);
        if (!st.paused()) {
          emit(self, event_kind::resumed, {}, "by operator");
          if (!st.round_in_progress)
            schedule_round(self, st.settings.interval);
        }
      }
      return status_of(self);
    },
    [=](status_atom) { return status_of(self); },
    [=](status_atom, const std::string& name) -> caf::result<instance_status> {
      auto i = self->state.children.find(name);
      if (i == self->state.children.end())
        return caf::make_error(cyme_errc::unknown_instance, name);
      return with_window(self, i->second);
    },
    [=](list_atom) {
      std::vector<instance_status> result;
      result.reserve(self->state.children.size());
      for (auto& [name, c] : self->state.children)
        result.push_back(with_window(self, c));
      return result;
    },
    [=](child_atom, const std::string& name) -> caf::result<instance_actor> {
      auto i = self->state.children.find(name);
      if (i == self->state.children.end() || !i->second.handle)
        return caf::make_error(cyme_errc::unknown_instance, name);
      return i->second.handle;
    },
    [=](subscribe_atom, event_listener& listener) {
      self->state.listeners.push_back(std::move(listener));
    },
    [=](broker_down_atom, std::string& broker, std::string& reason) {
      auto& st = self->state;
      bool was_paused = st.paused();
      if (!st.brokers_down.emplace(broker, reason).second)
        return;
      ++st.timer_generation;
      sync_arms(self);
      emit(self, event_kind::broker_down, {}, reason,
           {{"broker", st.broker_address(broker)}, {"reason", reason}});
      if (!was_paused)
        emit(self, event_kind::paused, {}, "broker down: " + reason);
    },
    [=](broker_up_atom, std::string& broker) {
      auto& st = self->state;
      if (st.brokers_down.erase(broker) == 0)
        return;
      st.revived_at[broker] = self->clock().now();
      sync_arms(self);
      auto address = st.broker_address(broker);
      emit(self, event_kind::broker_up, {}, address, {{"broker", address}});
      if (!st.paused()) {
        emit(self, event_kind::resumed, {}, "broker " + address + " up");
        if (!st.round_in_progress)
          schedule_round(self, st.settings.interval);
      }
    },
    [=](exited_atom, process_exit& e) {
      auto& st = self->state;
      auto i = st.children.find(e.instance);
      if (i == st.children.end())
        return;
      auto& c = i->second;
      // The driver's arm is spent (or gone with a stop).
      if (e.pid == c.armed_pid)
        c.armed_pid = 0;
      // A requested exit is the answer to its actor's stop.
      if (e.requested)
        return;
      auto data = exit_data(e.status);
      data["pid"] = std::to_string(e.pid);
      auto detail = "pid " + std::to_string(e.pid) + ", wait status "
                    + std::to_string(e.status);
      if (e.replacement > 0) {
        data["replacement"] = std::to_string(e.replacement);
        detail += "; the driver started pid " + std::to_string(e.replacement)
                  + " in its place at once";
      }
      emit(self, event_kind::died, e.instance, std::move(detail),
           std::move(data));
      if (!c.spec.enabled || st.paused()) {
        // Not repaired: a replacement is stopped.
        if (c.handle)
          self->send(c.handle, exited_atom::value, e, false);
        return;
      }
      // Repaired at once, under the restart limit like a round, from the
      // spec the supervisor holds: the model as it last read or wrote it.
      // Asking the model store first would add its round trip to every
      // repair. The store's spec is read meanwhile; one that differs (the
      // file was written behind the branch's back) is verified again once
      // the repair is done: queues and concurrency are reconciled, a
      // disabled instance is stopped, a removed one retired.
      std::vector<std::string> names{e.instance};
      auto used = c.spec;
      auto ignore = [](std::vector<action_report>) {};
      self->request(st.seams.store, caf::infinite, get_atom::value, names)
        .then(
          [self, names, used, ignore](std::vector<instance_spec>& specs) {
            if (specs.size() == 1 && specs.front() == used)
              return;
            handle_batch(self, request_kind::verify, names, specs, true,
                         ignore, false);
          },
          [self, names](caf::error& err) {
            emit(self, event_kind::died, names.front(),
                 "repaired from the spec the branch held; the model store "
                 "could not be read to check it: " + describe(err));
          });
      // Sent last, the instance actor runs first (before the died event's
      // listeners): the scheduler takes what a handler sent newest first.
      if (c.handle)
        self->send(c.handle, exited_atom::value, e, true);
      handle_batch(self, request_kind::verify, names, {used}, true, ignore,
                   false);
    },
    [=](phase_atom, caf::timespan offset) {
      // Taken from the next round's end on: the round already due keeps
      // its time, so changes of phase never hold rounds off.
      auto& st = self->state;
      auto interval = st.settings.interval;
      offset %= interval;
      if (offset.count() < 0)
        offset += interval;
      st.phase = offset;
    },
    [=](tick_atom, uint64_t generation) {
      auto& st = self->state;
      if (generation != st.timer_generation || st.paused()
          || st.round_in_progress)
        return;
      start_round(self);
    },
    [=](permit_atom, const std::string& name, bool ratelimit,
        restart_cause cause) {
      auto& st = self->state;
      auto i = st.children.find(name);
      auto granted = [&](restart_permit p) {
        auto rp = self->make_response_promise<restart_permit>();
        rp.deliver(p);
        return rp;
      };
      if (i == st.children.end())
        return granted(restart_permit::withdrawn);
      auto& c = i->second;
      auto d = decide_permit(permit_request_for(self, c, ratelimit, cause));
      c.restarts = d.bucket;
      c.ever_started = d.ever_started;
      st.bus_bucket = d.bus_bucket;
      if (d.permit == restart_permit::rate_limited)
        return refuse_restart(self, c);
      return granted(d.permit);
    },
    [=](report_atom, instance_status& s) {
      auto i = self->state.children.find(s.name);
      if (i == self->state.children.end())
        return;
      auto& c = i->second;
      if (s.pid > 0)
        c.ever_started = true;
      // What a probe the actor was not told of observed is newer than what
      // the actor lists for the same process.
      if (c.observed_by_probe && s.pid > 0 && s.pid == c.status.pid) {
        s.ping_rtt_us = c.status.ping_rtt_us;
        s.concurrency = c.status.concurrency;
      } else {
        c.observed_by_probe = false;
      }
      c.status = std::move(s);
      sync_arm(self, c);
    },
    [=](supervisor_event& ev) { emit(self, std::move(ev)); },
  };
}

} // namespace

caf::expected<supervisor_handles>
spawn_supervisor(caf::actor_system& sys, supervisor_settings settings,
                 supervisor_seams seams) {
  if (auto problem = settings_problem(settings); !problem.empty())
    return caf::make_error(cyme_errc::invalid_argument, problem);
  if (!seams.driver || !seams.bus || !seams.store)
    return caf::make_error(cyme_errc::invalid_argument,
                           "a supervisor needs a process driver, a control "
                           "bus and a model store");
  bool make_current = settings.set_as_current;
  auto core = sys.spawn(supervisor_behavior, std::move(settings),
                        std::move(seams));
  supervisor_handles sup{core, spawn_supervisor_front(sys, core)};
  if (make_current)
    set_current(sys, sup);
  return sup;
}

supervisor_actor get_current(caf::actor_system& sys) {
  return sys.registry().get<supervisor_actor>(current_key);
}

void set_current(caf::actor_system& sys, const supervisor_handles& sup) {
  // put() keeps an existing entry: replace it.
  sys.registry().erase(current_key);
  sys.registry().put(current_key, sup.front);
  // The registry holds a strong reference; drop it when the supervisor ends
  // (its front ends with it) so a dead supervisor is never current.
  auto* registry = &sys.registry();
  auto addr = sup.front.address();
  sup.front->attach_functor([registry, addr] {
    auto cur = registry->get<supervisor_actor>(current_key);
    if (cur && cur.address() == addr)
      registry->erase(current_key);
  });
}

} // namespace cyme

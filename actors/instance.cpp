#include "actors/instance.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <limits>
#include <memory>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/consumer_diff.hpp"
#include "messages/errors.hpp"

namespace cyme {

namespace {

enum class op_kind { verify, restart, shutdown };

struct pending_op {
  uint64_t id = 0;
  op_kind kind = op_kind::verify;
  instance_spec spec;
  probe_result probe;
  bool ratelimit = true;
  std::vector<caf::typed_response_promise<action_report>> promises;
};

struct instance_actor_state {
  instance_config config;
  instance_status status;
  /// When this actor last asked for its instance to be started, or when
  /// the started process first answered (actor clock, ns): probes sent
  /// before that are about an earlier process, or one not listening yet.
  int64_t last_start_ns = std::numeric_limits<int64_t>::min();
  /// The operation running (front) and those waiting behind it.
  std::deque<pending_op> ops;
  uint64_t next_op = 0;
  static inline const char* name = "cyme.instance";
};

using self_ptr = instance_actor::stateful_pointer<instance_actor_state>;
/// Completes the running operation. It knows which operation it belongs
/// to, so the continuations of an operation that was interrupted (its
/// process died under it) can tell they are stale and do nothing.
struct done_fn {
  uint64_t op = 0;
  std::function<void(action_report)> fn;
  void operator()(action_report r) const {
    fn(std::move(r));
  }
};

/// Whether `done` belongs to an operation that is no longer running.
bool stale(self_ptr self, const done_fn& done) {
  return self->state.ops.empty() || self->state.ops.front().id != done.op;
}

instance_parent parent_of(self_ptr self) {
  return caf::actor_cast<instance_parent>(self->state.config.parent);
}

/// Now on the wall clock, in ms since the epoch: for people reading a
/// status, never for decisions (those use the actor clock).
int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

void publish(self_ptr self) {
  if (auto parent = parent_of(self))
    self->send(parent, report_atom::value, self->state.status);
}

void emit(self_ptr self, event_kind kind, std::string detail = {},
          std::map<std::string, std::string> data = {}) {
  if (auto parent = parent_of(self))
    self->send(parent, supervisor_event{kind, self->state.status.name,
                                        std::move(detail), {},
                                        std::move(data)});
}

action_report report(self_ptr self, outcome result, std::string detail = {}) {
  return action_report{self->state.status.name, result, std::move(detail)};
}

void append(std::string& text, const std::string& more) {
  if (more.empty())
    return;
  if (!text.empty())
    text += "; ";
  text += more;
}

/// Takes the observed queues and autoscale bounds from a worker's stats.
void observe(self_ptr self, const worker_stats& stats) {
  auto& st = self->state.status;
  st.consuming_from = stats.queues;
  st.autoscale_max = stats.autoscale_max;
  st.autoscale_min = stats.autoscale_min;
  st.concurrency = stats.concurrency;
}

control_command command_for(self_ptr self, const instance_spec& spec,
                            control_op op) {
  control_command cmd;
  cmd.op = op;
  cmd.broker = spec.broker;
  cmd.destinations = {spec.name};
  cmd.timeout = self->state.config.command_timeout;
  return cmd;
}

const control_reply* reply_from(const std::vector<control_reply>& replies,
                                const std::string& name) {
  auto i = std::find_if(replies.begin(), replies.end(),
                        [&](const control_reply& r) { return r.instance == name; });
  return i == replies.end() ? nullptr : &*i;
}

/// Sends the add_consumer, cancel_consumer and autoscale commands that make
/// the instance match its spec, then reports `result` with what was done.
void reconcile(self_ptr self, const instance_spec& spec,
               const worker_stats& stats, outcome result, std::string detail,
               done_fn done) {
  observe(self, stats);
  auto diff = diff_consumers(spec.queues, stats.queues, direct_queue(spec.name));
  std::vector<control_command> cmds;
  for (auto& q : diff.to_add) {
    auto cmd = command_for(self, spec, control_op::add_consumer);
    cmd.queue = q;
    cmds.push_back(std::move(cmd));
  }
  for (auto& q : diff.to_cancel) {
    auto cmd = command_for(self, spec, control_op::cancel_consumer);
    cmd.queue = q;
    cmds.push_back(std::move(cmd));
  }
  if (stats.autoscale_max != spec.max_concurrency
      || stats.autoscale_min != spec.min_concurrency) {
    auto cmd = command_for(self, spec, control_op::autoscale);
    cmd.max_concurrency = spec.max_concurrency;
    cmd.min_concurrency = spec.min_concurrency;
    cmds.push_back(std::move(cmd));
  }
  self->state.status.state = instance_state::running;
  if (cmds.empty()) {
    publish(self);
    done(report(self, result, std::move(detail)));
    return;
  }
  struct gather {
    size_t pending;
    std::string detail;
    bool failed = false;
  };
  auto g = std::make_shared<gather>(gather{cmds.size(), std::move(detail)});
  auto one_done = [self, g, result, done] {
    if (--g->pending > 0)
      return;
    publish(self);
    done(report(self, g->failed ? outcome::failed : result, g->detail));
  };
  for (auto& cmd : cmds) {
    self->request(self->state.config.bus, caf::infinite, command_atom::value, cmd)
      .then(
        [self, g, cmd, one_done, done](std::vector<control_reply>& replies) {
          if (stale(self, done))
            return;
          auto& st = self->state.status;
          auto r = reply_from(replies, st.name);
          std::string what = to_string(cmd.op);
          if (cmd.op == control_op::autoscale)
            what += " " + std::to_string(cmd.max_concurrency) + ","
                    + std::to_string(cmd.min_concurrency);
          else
            what += " " + cmd.queue;
          if (r == nullptr || !r->ok) {
            g->failed = true;
            append(g->detail, what + " failed: "
                                + (r ? r->error : std::string{"no reply"}));
            one_done();
            return;
          }
          switch (cmd.op) {
            case control_op::add_consumer:
              st.consuming_from.push_back(cmd.queue);
              emit(self, event_kind::consume_from, cmd.queue);
              break;
            case control_op::cancel_consumer:
              st.consuming_from.erase(std::remove(st.consuming_from.begin(),
                                                  st.consuming_from.end(),
                                                  cmd.queue),
                                      st.consuming_from.end());
              emit(self, event_kind::cancel_consume, cmd.queue);
              break;
            default:
              st.autoscale_max = cmd.max_concurrency;
              st.autoscale_min = cmd.min_concurrency;
              emit(self, event_kind::set_autoscale,
                   std::to_string(cmd.max_concurrency) + ","
                     + std::to_string(cmd.min_concurrency));
              break;
          }
          append(g->detail, what);
          one_done();
        },
        [self, g, cmd, one_done, done](caf::error& err) {
          if (stale(self, done))
            return;
          g->failed = true;
          append(g->detail, to_string(cmd.op) + " failed: " + describe(err));
          one_done();
        });
  }
}

/// Asks a (re)started instance for its stats and reconciles it.
void fetch_stats_and_reconcile(self_ptr self, const instance_spec& spec,
                               outcome result, std::string detail,
                               done_fn done) {
  auto cmd = command_for(self, spec, control_op::stats);
  self->request(self->state.config.bus, caf::infinite, command_atom::value, cmd)
    .then(
      [=](std::vector<control_reply>& replies) {
        if (stale(self, done))
          return;
        auto r = reply_from(replies, spec.name);
        if (r == nullptr || !r->ok) {
          auto d = detail;
          append(d, "no stats reply; consumers not verified");
          publish(self);
          done(report(self, result, d));
          return;
        }
        reconcile(self, spec, r->stats, result, detail, done);
      },
      [=](caf::error& err) {
        if (stale(self, done))
          return;
        auto d = detail;
        append(d, "stats failed: " + describe(err));
        publish(self);
        done(report(self, result, d));
      });
}

/// Pings a freshly started instance with the i-th timeout of the restart
/// schedule, and on silence with the next one, until it answers, its process
/// dies, or the schedule runs out.
void ping_until_answer(self_ptr self, const instance_spec& spec, size_t i,
                       bool first_start, done_fn done) {
  const auto& timeouts = self->state.config.restart_pings.timeouts();
  auto cmd = command_for(self, spec, control_op::ping);
  cmd.timeout = timeouts[i];
  auto give_up = [self, done](std::string why) {
    auto& st = self->state.status;
    st.state = st.pid > 0 ? instance_state::unresponsive
                          : instance_state::stopped;
    publish(self);
    emit(self, event_kind::does_not_respond, why);
    done(report(self, outcome::does_not_respond, std::move(why)));
  };
  auto on_silence = [self, spec, i, first_start, done, give_up] {
    const auto& timeouts = self->state.config.restart_pings.timeouts();
    if (i + 1 >= timeouts.size()) {
      give_up("no answer to " + std::to_string(timeouts.size()) + " pings");
      return;
    }
    self
      ->request(self->state.config.driver, caf::infinite, alive_atom::value,
                spec.name)
      .then(
        [=](int32_t pid) {
          if (stale(self, done))
            return;
          if (pid == 0) {
            self->state.status.pid = 0;
            give_up("process exited while starting");
            return;
          }
          ping_until_answer(self, spec, i + 1, first_start, done);
        },
        [=](caf::error& err) {
          if (!stale(self, done))
            give_up("driver: " + describe(err));
        });
  };
  self->request(self->state.config.bus, caf::infinite, command_atom::value, cmd)
    .then(
      [=](std::vector<control_reply>& replies) {
        if (stale(self, done))
          return;
        auto pong = reply_from(replies, spec.name);
        if (pong == nullptr) {
          on_silence();
          return;
        }
        self->state.status.ping_rtt_us = pong->rtt_us;
        // A probe sent before this answer may have found the new process
        // not listening yet: only later ones describe it.
        self->state.last_start_ns
          = self->clock().now().time_since_epoch().count();
        self->state.status.state = instance_state::running;
        publish(self);
        if (!first_start)
          emit(self, event_kind::restarted,
               "pid " + std::to_string(self->state.status.pid),
               {{"pid", std::to_string(self->state.status.pid)}});
        fetch_stats_and_reconcile(
          self, spec, first_start ? outcome::started : outcome::restarted, {},
          done);
      },
      [=](caf::error&) {
        if (!stale(self, done))
          on_silence();
      });
}

/// Stops the process if running, starts a new one, pings it.
void restart(self_ptr self, const instance_spec& spec, std::string why,
             bool first_start, done_fn done) {
  auto& driver = self->state.config.driver;
  if (!first_start)
    emit(self, event_kind::restarting, why);
  self->state.status.state = instance_state::starting;
  publish(self);
  auto fail = [self, done](std::string what) {
    auto& st = self->state.status;
    st.state = instance_state::stopped;
    st.pid = 0;
    publish(self);
    done(report(self, outcome::failed, std::move(what)));
  };
  self->request(driver, caf::infinite, stop_atom::value, spec.name)
    .then(
      [=](int32_t) {
        if (stale(self, done))
          return;
        self->state.last_start_ns
          = self->clock().now().time_since_epoch().count();
        self
          ->request(self->state.config.driver, caf::infinite,
                    start_atom::value, spec)
          .then(
            [=](int32_t pid) {
              if (stale(self, done))
                return;
              auto& st = self->state.status;
              st.pid = pid;
              st.started_at_ms = wall_ms();
              if (first_start)
                emit(self, event_kind::started, "pid " + std::to_string(pid),
                     {{"pid", std::to_string(pid)}});
              else
                st.restarts += 1;
              st.disabled_reason.clear();
              if (spec.launch.kind == instance_kind::process) {
                // Liveness is the process alive: started is running.
                st.state = instance_state::running;
                publish(self);
                if (!first_start)
                  emit(self, event_kind::restarted,
                       "pid " + std::to_string(pid),
                       {{"pid", std::to_string(pid)}});
                done(report(self,
                            first_start ? outcome::started : outcome::restarted,
                            {}));
                return;
              }
              publish(self);
              ping_until_answer(self, spec, 0, first_start, done);
            },
            [=](caf::error& err) {
              if (!stale(self, done))
                fail("start failed: " + describe(err));
            });
      },
      [=](caf::error& err) {
        if (!stale(self, done))
          fail("stop failed: " + describe(err));
      });
}

/// Stops the process if running.
void shut_down(self_ptr self, const instance_spec& spec, done_fn done) {
  self
    ->request(self->state.config.driver, caf::infinite, stop_atom::value,
              spec.name)
    .then(
      [=](int32_t pid) {
        if (stale(self, done))
          return;
        auto& st = self->state.status;
        st.pid = 0;
        st.state = spec.enabled ? instance_state::stopped
                                : instance_state::disabled;
        st.disabled_reason = spec.disabled_reason;
        publish(self);
        if (pid == 0) {
          done(report(self, outcome::not_running));
          return;
        }
        emit(self, event_kind::stopped, "pid " + std::to_string(pid));
        done(report(self, outcome::stopped, "pid " + std::to_string(pid)));
      },
      [=](caf::error& err) {
        if (stale(self, done))
          return;
        done(report(self, outcome::failed, "stop failed: " + describe(err)));
      });
}

/// Acts on the supervisor's answer to a restart request.
void restart_if_permitted(self_ptr self, const instance_spec& spec,
                          bool ratelimit, std::string why, done_fn done) {
  auto parent = parent_of(self);
  if (!parent) {
    done(report(self, outcome::failed, "supervisor gone"));
    return;
  }
  self
    ->request(parent, caf::infinite, permit_atom::value, spec.name, ratelimit)
    .then(
      [=](restart_permit permit) {
        if (stale(self, done))
          return;
        auto& st = self->state.status;
        switch (permit) {
          case restart_permit::granted:
            restart(self, spec, why, false, done);
            return;
          case restart_permit::first_start:
            // A process found running is restarted, not started.
            restart(self, spec, why, st.pid == 0, done);
            return;
          case restart_permit::rate_limited: {
            // The supervisor disabled the instance in the model already;
            // keep it down.
            auto disabled = spec;
            disabled.enabled = false;
            shut_down(self, disabled,
                      done_fn{done.op, [why, done](action_report r) {
                                r.result = outcome::disabled;
                                r.detail = why + "; restart limit exceeded";
                                done(std::move(r));
                              }});
            return;
          }
          case restart_permit::broker_reviving:
            st.state = instance_state::unresponsive;
            publish(self);
            done(report(self, outcome::deferred,
                        why + "; broker revived recently"));
            return;
          case restart_permit::paused:
            done(report(self, outcome::paused));
            return;
          case restart_permit::withdrawn:
            done(report(self, outcome::unknown_instance));
            return;
        }
      },
      [=](caf::error& err) {
        if (stale(self, done))
          return;
        done(report(self, outcome::failed, "permit: " + describe(err)));
      });
}

/// Judges liveness (process alive and answering ping) from the probe or by
/// asking, then restarts or reconciles.
void verify(self_ptr self, const instance_spec& spec, const probe_result& probe,
            bool ratelimit, done_fn done) {
  if (!spec.enabled) {
    shut_down(self, spec, done);
    return;
  }
  self
    ->request(self->state.config.driver, caf::infinite, alive_atom::value,
              spec.name)
    .then(
      [=](int32_t pid) {
        if (stale(self, done))
          return;
        self->state.status.pid = pid;
        if (pid == 0) {
          restart_if_permitted(self, spec, ratelimit, "not running", done);
          return;
        }
        if (spec.launch.kind == instance_kind::process) {
          // Alive is all a process is judged by; it has no bus commands.
          self->state.status.state = instance_state::running;
          publish(self);
          done(report(self, outcome::verified));
          return;
        }
        // A probe sent before the last start is about a process that is
        // gone (a restart ran while the round's probe was out).
        if (probe.probed && probe.sent_at_ns > self->state.last_start_ns) {
          if (probe.pong)
            self->state.status.ping_rtt_us = probe.rtt_us;
          if (probe.pong && probe.has_stats)
            reconcile(self, spec, probe.stats, outcome::verified, {}, done);
          else if (probe.pong)
            fetch_stats_and_reconcile(self, spec, outcome::verified, {}, done);
          else
            restart_if_permitted(self, spec, ratelimit, "no answer to ping",
                                 done);
          return;
        }
        // Not probed by the round: ask the instance itself.
        auto cmd = command_for(self, spec, control_op::ping);
        cmd.timeout = self->state.config.probe_timeout;
        self
          ->request(self->state.config.bus, caf::infinite, command_atom::value,
                    cmd)
          .then(
            [=](std::vector<control_reply>& replies) {
              if (stale(self, done))
                return;
              auto pong = reply_from(replies, spec.name);
              if (pong == nullptr) {
                restart_if_permitted(self, spec, ratelimit,
                                     "no answer to ping", done);
              } else {
                self->state.status.ping_rtt_us = pong->rtt_us;
                fetch_stats_and_reconcile(self, spec, outcome::verified, {},
                                          done);
              }
            },
            [=](caf::error& err) {
              if (stale(self, done))
                return;
              done(report(self, outcome::deferred,
                          "ping failed: " + describe(err)));
            });
      },
      [=](caf::error& err) {
        if (stale(self, done))
          return;
        done(report(self, outcome::failed, "driver: " + describe(err)));
      });
}

void run_front(self_ptr self);

/// Answers every request merged into the running operation, then runs the
/// next one.
void finish_front(self_ptr self, action_report result) {
  auto op = std::move(self->state.ops.front());
  self->state.ops.pop_front();
  for (auto& promise : op.promises)
    promise.deliver(result);
  if (!self->state.ops.empty())
    run_front(self);
}

void run_front(self_ptr self) {
  auto& op = self->state.ops.front();
  done_fn done{op.id, [self, id = op.id](action_report r) {
                 if (!self->state.ops.empty()
                     && self->state.ops.front().id == id)
                   finish_front(self, std::move(r));
               }};
  switch (op.kind) {
    case op_kind::verify:
      verify(self, op.spec, op.probe, op.ratelimit, done);
      break;
    case op_kind::restart:
      if (!op.spec.enabled)
        done(report(self, outcome::disabled,
                    "not restarted: the instance is disabled; enable it first"));
      else
        restart_if_permitted(self, op.spec, false, "restart requested", done);
      break;
    case op_kind::shutdown:
      shut_down(self, op.spec, done);
      break;
  }
}

caf::typed_response_promise<action_report>
enqueue(self_ptr self, op_kind kind, instance_spec spec, probe_result probe,
        bool ratelimit) {
  auto promise = self->make_response_promise<action_report>();
  auto& ops = self->state.ops;
  // A verify waiting behind another operation absorbs further verifies: a
  // flood of requests costs one verification, answered to all.
  if (kind == op_kind::verify && ops.size() > 1
      && ops.back().kind == op_kind::verify) {
    auto& waiting = ops.back();
    waiting.spec = std::move(spec);
    waiting.probe = std::move(probe);
    waiting.ratelimit = waiting.ratelimit && ratelimit;
    waiting.promises.push_back(promise);
    return promise;
  }
  pending_op op{self->state.next_op++, kind, std::move(spec), std::move(probe),
                ratelimit, {promise}};
  ops.push_back(std::move(op));
  if (ops.size() == 1)
    run_front(self);
  return promise;
}

/// The instance's process died while an operation ran: whatever it waits
/// for will not come, so it ends now and the next one (the repair) runs.
void interrupt(self_ptr self, const process_exit& e) {
  auto& st = self->state.status;
  if (st.pid == e.pid) {
    st.pid = 0;
    st.state = instance_state::stopped;
  }
  auto how = exit_data(e.status);
  st.last_exit_code = how.count("code") ? std::stoi(how["code"]) : -1;
  st.last_exit_signal = how.count("signal") ? how["signal"] : std::string{};
  st.last_exit_at_ms = wall_ms();
  if (self->state.ops.empty())
    return;
  finish_front(self, report(self, outcome::failed,
                            "interrupted: process " + std::to_string(e.pid)
                              + " exited"));
}

instance_actor::behavior_type instance_behavior(self_ptr self,
                                                instance_config config,
                                                instance_status initial) {
  self->state.config = std::move(config);
  self->state.status = std::move(initial);
  return {
    [=](verify_atom, instance_spec& spec, probe_result& probe, bool ratelimit) {
      return enqueue(self, op_kind::verify, std::move(spec), std::move(probe),
                     ratelimit);
    },
    [=](restart_atom, instance_spec& spec) {
      return enqueue(self, op_kind::restart, std::move(spec), {}, false);
    },
    [=](shutdown_atom, instance_spec& spec) {
      return enqueue(self, op_kind::shutdown, std::move(spec), {}, false);
    },
    [=](exited_atom, const process_exit& e) { interrupt(self, e); },
  };
}

} // namespace

instance_actor spawn_instance_actor(caf::local_actor* parent,
                                    instance_config config,
                                    instance_status initial) {
  return parent->spawn(instance_behavior, std::move(config),
                       std::move(initial));
}

} // namespace cyme

#include "actors/instance.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/errors.hpp"

namespace cyme {

namespace {

using promise_t = caf::typed_response_promise<action_report>;

struct instance_actor_state {
  instance_config config;
  std::optional<lifecycle::machine> machine;
  /// The requests waiting on each operation.
  std::map<uint64_t, std::vector<promise_t>> waiting;
  static inline const char* name = "cyme.instance";
};

using self_ptr = instance_actor::stateful_pointer<instance_actor_state>;

instance_parent parent_of(self_ptr self) {
  return caf::actor_cast<instance_parent>(self->state.config.parent);
}

lifecycle::clock_reading now(self_ptr self) {
  return {self->clock().now().time_since_epoch().count(),
          std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count()};
}

const control_reply* reply_from(const std::vector<control_reply>& replies,
                                const std::string& name) {
  auto i = std::find_if(replies.begin(), replies.end(),
                        [&](const control_reply& r) { return r.instance == name; });
  return i == replies.end() ? nullptr : &*i;
}

lifecycle::event answer_event(lifecycle::event_kind kind, uint64_t tag) {
  lifecycle::event ev;
  ev.kind = kind;
  ev.tag = tag;
  return ev;
}

lifecycle::event failure(uint64_t tag, const caf::error& err) {
  auto ev = answer_event(lifecycle::event_kind::failed, tag);
  ev.text = describe(err);
  return ev;
}

void carry_out(self_ptr self, std::vector<lifecycle::action>& actions);

lifecycle::step feed(self_ptr self, lifecycle::event ev) {
  return self->state.machine->handle(std::move(ev), now(self));
}

/// Feeds one event to the table and carries out what it says.
void feed_and_act(self_ptr self, lifecycle::event ev) {
  auto step = feed(self, std::move(ev));
  carry_out(self, step.actions);
}

/// Sends the commands of a reconciliation and feeds their results, in
/// order, as one event once all are in.
void send_commands(self_ptr self, uint64_t tag,
                   std::vector<control_command> commands) {
  struct gather {
    std::vector<lifecycle::command_result> results;
    size_t pending;
  };
  auto g = std::make_shared<gather>(
    gather{std::vector<lifecycle::command_result>(commands.size()),
           commands.size()});
  auto one_done = [self, g, tag](size_t i, lifecycle::command_result r) {
    g->results[i] = std::move(r);
    if (--g->pending > 0)
      return;
    auto ev = answer_event(lifecycle::event_kind::reconciled, tag);
    ev.results = std::move(g->results);
    feed_and_act(self, std::move(ev));
  };
  const auto& name = self->state.machine->status().name;
  for (size_t i = 0; i < commands.size(); ++i)
    self
      ->request(self->state.config.bus, caf::infinite, command_atom::value,
                commands[i])
      .then(
        [one_done, i, name](std::vector<control_reply>& replies) {
          auto r = reply_from(replies, name);
          if (r != nullptr && r->ok)
            one_done(i, {true, {}});
          else
            one_done(i, {false, r ? r->error : std::string{"no reply"}});
        },
        [one_done, i](caf::error& err) { one_done(i, {false, describe(err)}); });
}

void carry_out(self_ptr self, std::vector<lifecycle::action>& actions) {
  using lifecycle::action_kind;
  using lifecycle::event_kind;
  auto& cfg = self->state.config;
  const auto name = self->state.machine->status().name;
  for (auto& a : actions) {
    auto tag = a.tag;
    auto on_error = [self, tag](caf::error& err) {
      feed_and_act(self, failure(tag, err));
    };
    switch (a.kind) {
      case action_kind::check:
        self->request(cfg.driver, caf::infinite, alive_atom::value, name)
          .then(
            [self, tag](int32_t pid) {
              auto ev = answer_event(event_kind::checked, tag);
              ev.pid = pid;
              feed_and_act(self, std::move(ev));
            },
            on_error);
        break;
      case action_kind::ask_permit: {
        auto parent = parent_of(self);
        if (!parent) {
          auto ev = answer_event(event_kind::failed, tag);
          ev.text = "supervisor gone";
          feed_and_act(self, std::move(ev));
          break;
        }
        self
          ->request(parent, caf::infinite, permit_atom::value, name,
                    a.ratelimit, a.cause)
          .then(
            [self, tag](restart_permit p) {
              auto ev = answer_event(event_kind::permit, tag);
              ev.permit = p;
              feed_and_act(self, std::move(ev));
            },
            on_error);
        break;
      }
      case action_kind::stop:
        self->request(cfg.driver, caf::infinite, stop_atom::value, name)
          .then(
            [self, tag](int32_t pid) {
              auto ev = answer_event(event_kind::stop_done, tag);
              ev.pid = pid;
              feed_and_act(self, std::move(ev));
            },
            on_error);
        break;
      case action_kind::start:
        self->request(cfg.driver, caf::infinite, start_atom::value, a.spec)
          .then(
            [self, tag](int32_t pid) {
              auto ev = answer_event(event_kind::started, tag);
              ev.pid = pid;
              feed_and_act(self, std::move(ev));
            },
            [self, tag](caf::error& err) {
              auto ev = answer_event(event_kind::start_failed, tag);
              ev.text = describe(err);
              feed_and_act(self, std::move(ev));
            });
        break;
      case action_kind::ping:
        self->request(cfg.bus, caf::infinite, command_atom::value, a.command)
          .then(
            [self, tag, name](std::vector<control_reply>& replies) {
              auto pong = reply_from(replies, name);
              auto ev = answer_event(pong ? event_kind::pong
                                          : event_kind::ping_timeout,
                                     tag);
              if (pong)
                ev.rtt_us = pong->rtt_us;
              feed_and_act(self, std::move(ev));
            },
            on_error);
        break;
      case action_kind::fetch_stats:
        self->request(cfg.bus, caf::infinite, command_atom::value, a.command)
          .then(
            [self, tag, name](std::vector<control_reply>& replies) {
              auto r = reply_from(replies, name);
              auto ev = answer_event(event_kind::stats, tag);
              ev.has_stats = r != nullptr && r->ok;
              if (ev.has_stats)
                ev.stats = r->stats;
              feed_and_act(self, std::move(ev));
            },
            on_error);
        break;
      case action_kind::reconcile:
        send_commands(self, tag, std::move(a.commands));
        break;
      case action_kind::report:
        if (auto parent = parent_of(self))
          self->send(parent, report_atom::value,
                     self->state.machine->status());
        break;
      case action_kind::emit:
        if (auto parent = parent_of(self))
          self->send(parent, std::move(a.event));
        break;
      case action_kind::answer: {
        auto i = self->state.waiting.find(a.op);
        if (i == self->state.waiting.end())
          break;
        for (auto& promise : i->second)
          promise.deliver(a.result);
        self->state.waiting.erase(i);
        break;
      }
    }
  }
}

/// A request: joins (or starts) an operation, answered when it ends.
promise_t request_op(self_ptr self, lifecycle::event ev) {
  auto promise = self->make_response_promise<action_report>();
  auto step = feed(self, std::move(ev));
  // Registered before the actions run: the operation may end at once.
  self->state.waiting[step.op].push_back(promise);
  carry_out(self, step.actions);
  return promise;
}

lifecycle::event request_event(lifecycle::event_kind kind,
                               instance_spec spec) {
  lifecycle::event ev;
  ev.kind = kind;
  ev.spec = std::move(spec);
  return ev;
}

instance_actor::behavior_type instance_behavior(self_ptr self,
                                                instance_config config,
                                                instance_status initial,
                                                bool enabled) {
  lifecycle::settings s{config.restart_pings, config.probe_timeout,
                        config.command_timeout};
  self->state.config = std::move(config);
  self->state.machine.emplace(std::move(s), std::move(initial), enabled);
  using lifecycle::event_kind;
  return {
    [=](verify_atom, instance_spec& spec, probe_result& probe, bool ratelimit) {
      auto ev = request_event(event_kind::verify, std::move(spec));
      ev.probe = std::move(probe);
      ev.ratelimit = ratelimit;
      return request_op(self, std::move(ev));
    },
    [=](restart_atom, instance_spec& spec) {
      return request_op(self, request_event(event_kind::restart, std::move(spec)));
    },
    [=](shutdown_atom, instance_spec& spec) {
      return request_op(self,
                        request_event(event_kind::shutdown, std::move(spec)));
    },
    [=](remove_atom, instance_spec& spec) {
      return request_op(self, request_event(event_kind::remove, std::move(spec)));
    },
    [=](disable_atom, std::string& reason) {
      lifecycle::event ev;
      ev.kind = event_kind::disable;
      ev.text = std::move(reason);
      feed_and_act(self, std::move(ev));
    },
    [=](exited_atom, const process_exit& e, bool repair) {
      lifecycle::event ev;
      ev.kind = event_kind::exited;
      ev.pid = e.pid;
      ev.wait_status = e.status;
      ev.replacement = e.replacement;
      ev.repair = repair;
      feed_and_act(self, std::move(ev));
    },
    [=](answered_atom, probe_result& probe) {
      lifecycle::event ev;
      ev.kind = event_kind::answered;
      ev.probe = std::move(probe);
      feed_and_act(self, std::move(ev));
    },
  };
}

} // namespace

instance_actor spawn_instance_actor(caf::local_actor* parent,
                                    instance_config config,
                                    instance_status initial, bool enabled) {
  return parent->spawn(instance_behavior, std::move(config),
                       std::move(initial), enabled);
}

} // namespace cyme

#include "testing/fleet.hpp"

#include <algorithm>
#include <memory>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "messages/errors.hpp"

namespace cyme::testing {

namespace {

using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using died_atom = caf::atom_constant<caf::atom("died")>;

void notify_exit(caf::event_based_actor* self, fleet* world,
                 const std::string& name, int32_t pid, bool requested,
                 int32_t replacement = 0) {
  for (auto& l : world->exit_listeners)
    self->send(l, exited_atom::value,
               process_exit{name, pid, requested ? 15 : 9, requested,
                            replacement});
}

/// Starts a process for `spec` in `w`, which runs none. One that crashes
/// on start has its exit told at once, unless `tell_crash` is false.
int32_t launch(caf::event_based_actor* self, fleet* world, fake_worker& w,
               const instance_spec& spec, bool tell_crash = true) {
  w.running = true;
  w.pid = world->next_pid++;
  w.responsive = !w.hangs;
  w.ready_at_ns = self->clock().now().time_since_epoch().count()
                  + w.start_delay.count();
  w.queues = {direct_queue(spec.name)};
  w.queues.insert(w.queues.end(), spec.queues.begin(), spec.queues.end());
  w.autoscale_max = spec.max_concurrency;
  w.autoscale_min = spec.min_concurrency;
  w.armed.reset();
  w.spare_of.reset();
  w.starts += 1;
  auto pid = w.pid;
  if (world->on_start)
    world->on_start(spec.name, pid);
  if (w.crashes_on_start) {
    w.running = false;
    if (tell_crash)
      notify_exit(self, world, spec.name, pid, false);
  }
  return pid;
}

/// Ends `name`'s running process in `w`, as asked (a stop) or not.
void end_process(caf::event_based_actor* self, fleet* world,
                 const std::string& name, fake_worker& w, bool requested) {
  w.running = false;
  auto pid = w.pid;
  auto armed = std::move(w.armed);
  w.armed.reset();
  w.spare_of.reset();
  int32_t replacement = 0;
  if (armed && !requested && !w.fails_to_start) {
    replacement = launch(self, world, w, *armed, false);
    w.spare_of = std::move(armed);
  }
  notify_exit(self, world, name, pid, requested, replacement);
  if (replacement != 0 && !w.running) {
    // The replacement crashed on start: its exit comes after its
    // predecessor's, as the driver sees them.
    w.spare_of.reset();
    notify_exit(self, world, name, replacement, false);
  }
}

/// The pid of `name`'s running process, 0 when none runs.
/// As the real driver answers: a replacement no start took yet is not the
/// instance's process.
int32_t alive_pid(const fleet& world, const std::string& name) {
  auto i = world.workers.find(name);
  return i != world.workers.end() && i->second.running && !i->second.spare_of
           ? i->second.pid
           : 0;
}

caf::behavior fake_driver(caf::event_based_actor* self, fleet* world) {
  return {
    [=](start_atom, const instance_spec& spec) -> caf::result<int32_t> {
      auto& w = world->workers[spec.name];
      if (w.running && w.spare_of) {
        // The replacement started at a death: taken, or ended for a start
        // of another spec.
        if (*w.spare_of == spec) {
          w.spare_of.reset();
          w.spares_taken += 1;
          return w.pid;
        }
        w.stops += 1;
        end_process(self, world, spec.name, w, true);
      }
      if (w.running) {
        world->starts_while_running += 1;
        return caf::make_error(cyme_errc::process_failure,
                               spec.name + " already running");
      }
      if (w.fails_to_start)
        return caf::make_error(cyme_errc::process_failure,
                               spec.name + ": cannot execute");
      return launch(self, world, w, spec);
    },
    [=](arm_atom, const instance_spec& spec, int32_t pid) {
      auto i = world->workers.find(spec.name);
      if (i == world->workers.end())
        return;
      auto& w = i->second;
      if (pid > 0 && w.running && w.pid == pid && !w.spare_of)
        w.armed = spec;
      else if (pid == 0)
        w.armed.reset();
    },
    [=](died_atom, const std::string& name) {
      auto i = world->workers.find(name);
      if (i != world->workers.end() && i->second.running)
        end_process(self, world, name, i->second, false);
    },
    [=](stop_atom, const std::string& name) -> int32_t {
      auto i = world->workers.find(name);
      if (i == world->workers.end() || !i->second.running)
        return 0;
      auto& w = i->second;
      w.stops += 1;
      auto pid = w.pid;
      end_process(self, world, name, w, true);
      return pid;
    },
    [=](alive_atom, const std::string& name) -> int32_t {
      ++world->alive_asks;
      return alive_pid(*world, name);
    },
    [=](alive_atom, const std::vector<std::string>& names) {
      ++world->alive_list_asks;
      std::vector<int32_t> pids;
      for (auto& name : names)
        pids.push_back(alive_pid(*world, name));
      return pids;
    },
    [=](subscribe_atom, exit_listener& l) {
      world->exit_listeners.push_back(std::move(l));
    },
  };
}

/// One instance's answer, applying the command's effect, or nothing when it
/// is not running or does not answer.
bool answer(fake_worker& w, const std::string& name,
            const control_command& cmd, control_reply& out, int64_t now_ns) {
  if (!w.running || !w.responsive || now_ns < w.ready_at_ns)
    return false;
  out.instance = name;
  out.rtt_us = w.rtt_us;
  switch (cmd.op) {
    case control_op::ping:
      break;
    case control_op::stats:
      out.stats.pid = w.pid;
      out.stats.queues = w.queues;
      out.stats.autoscale_max = w.autoscale_max;
      out.stats.autoscale_min = w.autoscale_min;
      out.stats.concurrency = w.concurrency.value_or(w.autoscale_min);
      break;
    case control_op::active_queues:
      out.queues = w.queues;
      break;
    case control_op::add_consumer:
      if (std::find(w.queues.begin(), w.queues.end(), cmd.queue)
          == w.queues.end())
        w.queues.push_back(cmd.queue);
      out.queues = w.queues;
      break;
    case control_op::cancel_consumer:
      w.queues.erase(std::remove(w.queues.begin(), w.queues.end(), cmd.queue),
                     w.queues.end());
      out.queues = w.queues;
      break;
    case control_op::autoscale:
      w.autoscale_max = cmd.max_concurrency;
      w.autoscale_min = cmd.min_concurrency;
      break;
    case control_op::shutdown:
      w.running = false;
      break;
  }
  return true;
}

struct bus_state {
  uint64_t next_id = 0;
  std::map<uint64_t, std::pair<caf::response_promise, std::vector<control_reply>>>
    waiting;
};

caf::behavior fake_bus(caf::stateful_actor<bus_state>* self, fleet* world) {
  return {
    [=](command_atom, const control_command& cmd)
      -> caf::result<std::vector<control_reply>> {
      world->commands.push_back(cmd);
      if (world->on_command)
        world->on_command(cmd);
      if (world->bus_fails || world->brokers_down.count(cmd.broker) > 0)
        return caf::make_error(cyme_errc::bus_failure, "broker unreachable");
      std::vector<control_reply> replies;
      auto now_ns = self->clock().now().time_since_epoch().count();
      for (auto& name : cmd.destinations) {
        auto i = world->workers.find(name);
        control_reply r;
        if (i != world->workers.end()
            && answer(i->second, name, cmd, r, now_ns))
          replies.push_back(std::move(r));
      }
      world->replies += replies.size();
      if (replies.size() == cmd.destinations.size())
        return replies;
      // Someone is silent: the gather ends when the timeout runs out.
      auto id = self->state.next_id++;
      self->state.waiting.emplace(
        id, std::make_pair(self->make_response_promise(), std::move(replies)));
      self->delayed_send(self, cmd.timeout, deliver_atom::value, id);
      return caf::delegated<std::vector<control_reply>>{};
    },
    [=](deliver_atom, uint64_t id) {
      auto i = self->state.waiting.find(id);
      if (i == self->state.waiting.end())
        return;
      i->second.first.deliver(std::move(i->second.second));
      self->state.waiting.erase(i);
    },
    [=](subscribe_atom, const broker_listener&) {
      // Broker health is scripted by sending the supervisor broker_down /
      // broker_up directly.
    },
  };
}

caf::behavior fake_store(caf::event_based_actor*, fleet* world) {
  return {
    [=](list_atom) {
      world->model_lists += 1;
      std::vector<instance_spec> specs;
      for (auto& [name, spec] : world->model)
        specs.push_back(spec);
      return specs;
    },
    [=](get_atom, const std::vector<std::string>& names) {
      std::vector<instance_spec> specs;
      for (auto& n : names)
        if (auto i = world->model.find(n); i != world->model.end())
          specs.push_back(i->second);
      return specs;
    },
    [=](disable_atom, const std::string& name,
        const std::string& reason) -> caf::result<instance_spec> {
      auto i = world->model.find(name);
      if (i == world->model.end())
        return caf::make_error(cyme_errc::unknown_instance, name);
      i->second.enabled = false;
      i->second.disabled_reason = reason;
      return i->second;
    },
  };
}

} // namespace

size_t fleet::count(control_op op, const std::string& instance) const {
  return std::count_if(commands.begin(), commands.end(),
                       [&](const control_command& c) {
                         if (c.op != op)
                           return false;
                         if (instance.empty())
                           return true;
                         return std::find(c.destinations.begin(),
                                          c.destinations.end(), instance)
                                != c.destinations.end();
                       });
}

size_t fleet::total_starts() const {
  size_t n = 0;
  for (auto& [name, w] : workers)
    n += w.starts;
  return n;
}

process_driver_actor spawn_fake_driver(caf::actor_system& sys, fleet* world) {
  return caf::actor_cast<process_driver_actor>(sys.spawn(fake_driver, world));
}

void kill_through_driver(const process_driver_actor& driver,
                         const std::string& name) {
  caf::anon_send(caf::actor_cast<caf::actor>(driver), died_atom::value, name);
}

control_bus_actor spawn_fake_bus(caf::actor_system& sys, fleet* world) {
  return caf::actor_cast<control_bus_actor>(sys.spawn(fake_bus, world));
}

model_store_actor spawn_fake_store(caf::actor_system& sys, fleet* world) {
  return caf::actor_cast<model_store_actor>(sys.spawn(fake_store, world));
}

} // namespace cyme::testing

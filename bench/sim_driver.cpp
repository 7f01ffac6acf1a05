// The simulated process driver of cyme-bench-branch (apps/branch_driver.hpp):
// a branch that supervises instances without processes, for the cluster
// benchmark (bench/run.sh cluster). 100,000 stand-in processes, each with
// its log writer, would take about 63 GB here (BENCHMARKS.md §11); this
// driver starts nothing and keeps, per instance, only its name and a pid
// that no Linux process can have. cyme-fleet-sim --any answers the control
// protocol in the instances' names, so everything above the driver (the
// supervisor's rounds, the bus, the model, the HTTP API, presence) is the
// production code at full size.
//
// Its instances never die on their own; stop ends one at once (its exit is
// reported as requested), and stop() ends them all and refuses later
// starts, as the real driver does.
#include <map>
#include <string>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "apps/branch_driver.hpp"
#include "messages/errors.hpp"
#include "transport/logging.hpp"

namespace cyme {

namespace {

/// Above any pid_max Linux allows (2^22), so /proc knows none of them.
constexpr int32_t first_pid = 100'000'000;

struct sim_driver_state {
  std::map<std::string, int32_t> running;
  int32_t next_pid = first_pid;
  bool closing = false;
  std::vector<exit_listener> listeners;

  /// The pid of `name`'s instance, 0 when it does not run.
  int32_t pid_of(const std::string& name) const {
    auto i = running.find(name);
    return i == running.end() ? 0 : i->second;
  }
};

caf::behavior sim_driver(caf::stateful_actor<sim_driver_state>* self) {
  auto exited = [self](const std::string& name, int32_t pid) {
    for (auto& l : self->state.listeners)
      self->send(l, exited_atom::value, process_exit{name, pid, 15, true});
  };
  return {
    [=](start_atom, const instance_spec& spec) -> caf::result<int32_t> {
      auto& st = self->state;
      if (st.closing)
        return caf::make_error(cyme_errc::process_failure,
                               "the branch is closing");
      if (st.running.count(spec.name) != 0)
        return caf::make_error(cyme_errc::process_failure,
                               spec.name + " already running");
      auto pid = st.next_pid++;
      st.running.emplace(spec.name, pid);
      return pid;
    },
    [=](stop_atom, const std::string& name) -> int32_t {
      auto i = self->state.running.find(name);
      if (i == self->state.running.end())
        return 0;
      auto pid = i->second;
      self->state.running.erase(i);
      exited(name, pid);
      return pid;
    },
    [=](stop_atom) -> uint32_t {
      auto& st = self->state;
      st.closing = true;
      auto n = static_cast<uint32_t>(st.running.size());
      for (auto& [name, pid] : st.running)
        exited(name, pid);
      st.running.clear();
      return n;
    },
    [=](alive_atom, const std::string& name) -> int32_t {
      return self->state.pid_of(name);
    },
    [=](alive_atom, const std::vector<std::string>& names) {
      std::vector<int32_t> pids;
      pids.reserve(names.size());
      for (auto& name : names)
        pids.push_back(self->state.pid_of(name));
      return pids;
    },
    [=](subscribe_atom, exit_listener& l) {
      self->state.listeners.push_back(std::move(l));
    },
    // No simulated instance dies unasked: there is no death to restart at
    // once.
    [=](arm_atom, const instance_spec&, int32_t) {},
  };
}

} // namespace

caf::expected<process_driver_actor>
spawn_branch_driver(caf::actor_system& sys, process_driver_settings) {
  log::logger{"process driver"}.warn(
    "simulated driver: instances have no processes (cyme-bench-branch)");
  return caf::actor_cast<process_driver_actor>(sys.spawn(sim_driver));
}

} // namespace cyme

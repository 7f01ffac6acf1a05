#pragma once

/// Scripted fakes behind the supervisor's three seams, sharing one `fleet`:
/// the processes the fake driver runs, what the fake bus lets them answer,
/// and the model the fake store holds. Tests arrange the fleet, advance
/// virtual time and read back what the supervisor caused.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/seams.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"

namespace cyme::testing {

/// One fake `cyme-worker` process slot.
struct fake_worker {
  bool running = false;
  int32_t pid = 0;
  /// Answers control commands while running.
  bool responsive = true;
  /// Processes started from now on never answer (a hung worker).
  bool hangs = false;
  /// Processes started from now on die right after starting.
  bool crashes_on_start = false;
  /// Starts fail from now on (the driver answers with an error).
  bool fails_to_start = false;
  /// Processes started from now on answer only this long after their
  /// start (a slow start); 0: at once.
  std::chrono::nanoseconds start_delay{0};
  /// When the running process starts answering (virtual clock, ns).
  int64_t ready_at_ns = 0;
  std::vector<std::string> queues;
  uint32_t autoscale_max = 0;
  uint32_t autoscale_min = 0;
  /// Its pool's size now, when its autoscaler moved it from the minimum.
  std::optional<uint32_t> concurrency;
  /// The round trip its answers report (the bus measures it).
  int64_t rtt_us = 0;
  /// Starts and stops the driver made for this instance.
  size_t starts = 0;
  size_t stops = 0;
  /// The spec the driver restarts the running process with at once when
  /// it dies unasked (the supervisor armed it), and, while the running
  /// process is such a replacement no start took yet, its spec.
  std::optional<instance_spec> armed;
  std::optional<instance_spec> spare_of;
  /// Starts that took a replacement the driver had started at a death.
  size_t spares_taken = 0;
};

/// Everything the fakes share, and the traces tests assert on.
struct fleet {
  std::map<std::string, fake_worker> workers;
  std::map<std::string, instance_spec> model;
  int32_t next_pid = 1000;
  /// The bus answers every command with an error (broker unreachable).
  bool bus_fails = false;
  /// Brokers (by spec name; "" is the default) the bus cannot reach: their
  /// commands are answered with an error.
  std::set<std::string> brokers_down;
  /// Starts asked for while the instance's process was running (the driver
  /// refused them): a supervisor that does this lost track of a process.
  size_t starts_while_running = 0;
  /// Called by the fake driver on each process it starts.
  std::function<void(const std::string& name, int32_t pid)> on_start;
  /// Called by the fake bus on each command it carries.
  std::function<void(const control_command&)> on_command;
  /// Every command the bus carried, in order.
  std::vector<control_command> commands;
  /// Replies the bus carried.
  size_t replies = 0;
  /// Times the driver was asked whether one instance's process runs, and
  /// whether each of a list's does.
  size_t alive_asks = 0;
  size_t alive_list_asks = 0;
  /// Times the store listed the whole model (once per round).
  size_t model_lists = 0;
  /// Listeners the fake driver tells about exits.
  std::vector<exit_listener> exit_listeners;

  /// Commands of one op, optionally only those addressed to `instance`.
  size_t count(control_op op, const std::string& instance = {}) const;

  /// Total starts across all instances.
  size_t total_starts() const;
};

/// Spawns the fakes; each keeps a pointer to `world`, which must outlive
/// them.
process_driver_actor spawn_fake_driver(caf::actor_system& sys, fleet* world);

/// Tells the fake driver that `name`'s process died, as its exit watcher
/// would: it restarts it at once when armed, then tells its listeners.
void kill_through_driver(const process_driver_actor& driver,
                         const std::string& name);
control_bus_actor spawn_fake_bus(caf::actor_system& sys, fleet* world);
model_store_actor spawn_fake_store(caf::actor_system& sys, fleet* world);

} // namespace cyme::testing

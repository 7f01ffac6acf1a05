#pragma once

/// A Boost.Test fixture running the supervisor in CAF's deterministic test
/// coordinator with a virtual clock, behind the scripted fakes of fleet.hpp.
/// Nothing sleeps: tests advance virtual time.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/supervisor.hpp"
#include "testing/fleet.hpp"
#include "messages/errors.hpp"
#include "messages/supervision.hpp"

namespace cyme::testing {

/// A reply that arrives while virtual time runs.
template <class T>
struct pending {
  std::optional<T> value;
  std::optional<caf::error> error;
  bool done() const {
    return value.has_value() || error.has_value();
  }
};

struct test_config : caf::actor_system_config {
  test_config();
};

class supervision_fixture {
public:
  supervision_fixture();
  ~supervision_fixture();

  // -- arranging --------------------------------------------------------------

  /// Puts an instance in the model (enabled, concurrency 1..1 unless set).
  instance_spec& add_instance(const std::string& name,
                              std::vector<std::string> queues = {},
                              std::string broker = {});

  /// Spawns the supervisor with `settings` (its first round starts at once)
  /// and subscribes to its events.
  void start(supervisor_settings settings = {});

  // -- acting -----------------------------------------------------------------

  /// Kills an instance's process like `kill -9`. With `tell_driver`, the
  /// supervisor hears of the death at once, as from SIGCHLD; without, only
  /// a verification notices it.
  void kill(const std::string& name, bool tell_driver);

  /// Sends a request to `dest` from a helper actor; the reply lands in the
  /// returned slot as virtual time runs.
  template <class T, class Handle, class... Ts>
  std::shared_ptr<pending<T>> request(const Handle& dest, Ts... xs) {
    auto slot = std::make_shared<pending<T>>();
    // Spawned with an argument: CAF 0.17 dereferences a null argument tuple
    // for argument-less function actors, which UBSan reports.
    sys.spawn(
      [xs...](caf::event_based_actor* self, Handle dest,
              std::shared_ptr<pending<T>> slot) {
        self->request(dest, caf::infinite, xs...)
          .then([slot](T& x) { slot->value = std::move(x); },
                [slot](caf::error& err) { slot->error = std::move(err); });
      },
      dest, slot);
    return slot;
  }

  /// Like `request` to the supervisor, then runs virtual time (at most
  /// `limit`) until the reply arrives; fails the test if none does.
  template <class T, class... Ts>
  T ask(Ts... xs) {
    auto slot = request<T>(sup, xs...);
    run_until([&] { return slot->done(); }, std::chrono::hours{1});
    if (!slot->done())
      fail("no reply within an hour of virtual time");
    if (slot->error)
      fail("request failed: " + describe(*slot->error));
    return std::move(*slot->value);
  }

  /// Like `ask` but expects an error and returns it.
  template <class T, class... Ts>
  caf::error ask_error(Ts... xs) {
    auto slot = request<T>(sup, xs...);
    run_until([&] { return slot->done(); }, std::chrono::hours{1});
    if (!slot->error)
      fail("request succeeded but an error was expected");
    return *slot->error;
  }

  // -- time -------------------------------------------------------------------

  /// Runs all jobs and every timer due within `d` of virtual time, in order.
  void advance(caf::timespan d);

  /// Runs jobs and timers in order until `pred` holds or `limit` of virtual
  /// time passed. Returns whether `pred` holds.
  template <class Pred>
  bool run_until(Pred pred, caf::timespan limit) {
    auto deadline = now() + limit;
    run_jobs();
    while (!pred()) {
      if (!step_to_next_timer(deadline))
        return pred();
    }
    return true;
  }

  /// The virtual clock.
  caf::actor_clock::time_point now() const;

  /// Runs every job queued (the messages actors handle), counting them in
  /// `jobs_run`.
  void run_jobs();

  // -- reading ----------------------------------------------------------------

  instance_status status_of(const std::string& name);
  supervisor_status supervisor();
  /// Events of one kind (for one instance if named) seen so far.
  size_t events(event_kind kind, const std::string& instance = {}) const;

  test_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  fleet world;
  process_driver_actor driver;
  control_bus_actor bus;
  model_store_actor store;
  /// The supervisor itself (tests send it internal messages too).
  supervisor_core sup;
  /// Its public front, as a remote node sees it.
  supervisor_actor front;
  /// Every event the supervisor published, in order, and when (virtual
  /// time) each arrived.
  std::vector<supervisor_event> log;
  std::vector<caf::actor_clock::time_point> log_at;
  /// Jobs run by advance, run_until and run_jobs so far: what a step cost
  /// in messages.
  size_t jobs_run = 0;

private:
  /// Fires the next timer if due by `deadline` and runs the jobs it made.
  bool step_to_next_timer(caf::actor_clock::time_point deadline);

  [[noreturn]] static void fail(const std::string& what);
};

} // namespace cyme::testing

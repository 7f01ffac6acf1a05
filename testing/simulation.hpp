#pragma once

/// The supervisor under simulation: the real supervisor and instance actors
/// in CAF's test coordinator (virtual time) behind the fakes of fleet.hpp,
/// driven by steps (explore_step: kills, hangs, broker outages, model
/// changes, requests, time) and watched by the invariants listed in
/// explorer.hpp after every step. The explorer (random schedules) and
/// cyme-scenario (scenario files) both run on it.

#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "actors/restart_bucket.hpp"
#include "actors/supervisor_settings.hpp"
#include "messages/instance.hpp"
#include "testing/explorer.hpp"
#include "testing/fixture.hpp"

namespace cyme::testing {

class simulation {
public:
  using time_point = caf::actor_clock::time_point;

  /// `catalogue`: every instance a step may add, by name; those named in
  /// `initial` are in the model from the start.
  simulation(supervisor_settings settings,
             std::vector<instance_spec> catalogue,
             const std::vector<std::string>& initial);

  /// Spawns the supervisor: its first round starts.
  void start();

  /// Carries out one step, then checks the invariants.
  void apply(const explore_step& s);

  /// Model changes and requests the steps cannot express.
  void set_queues(const std::string& name, std::vector<std::string> queues);
  void set_autoscale(const std::string& name, uint32_t max, uint32_t min);
  /// The running process's consumers change behind the supervisor's back
  /// (its direct queue stays).
  void drift(const std::string& name, const std::vector<std::string>& queues);
  void send(const std::string& op, std::vector<std::string> names,
            bool ratelimit = true);

  /// Runs virtual time, then checks the invariants.
  void advance(caf::timespan d);

  /// Heals every fault (brokers up, resumed, processes answering), runs
  /// `for_` of virtual time, and checks that every request was answered
  /// and the fleet matches the model.
  void settle(caf::timespan for_);

  /// The first invariant broken, in words (empty: none).
  const std::string& violation() const {
    return violation_;
  }

  /// Records the events since the last note, then `what`.
  void note(const std::string& what);

  std::string timeline() const {
    return timeline_.str();
  }

  /// Virtual time since the simulation was made.
  caf::timespan elapsed() const;

  size_t requests() const {
    return requests_.size();
  }

  supervision_fixture& fixture() {
    return fx_;
  }

  /// Records a broken invariant (the first one is kept).
  void fail(std::string what);

private:
  struct tracked {
    std::string op;
    std::vector<std::string> names;
    size_t answers = 0;
    /// The model version of each name when the request was sent.
    std::map<std::string, uint64_t> versions;
  };

  void heal(fake_worker& w);
  void add(const std::string& name);
  void bump(const std::string& name);
  void broker_down(const std::string& broker);
  void broker_up(const std::string& broker);
  void answered(size_t id, std::vector<action_report>* r, bool is_explicit);
  void on_start(const std::string& name);
  void check_step();
  void check_rounds();
  void on_command(const control_command& c);
  /// The spec an instance has, or had last.
  const instance_spec& spec_of(const std::string& name);

  supervision_fixture fx_;
  time_point t0_;
  std::ostringstream timeline_;
  size_t traced_ = 0;
  supervisor_settings settings_;
  rate restart_rate_;
  rate bus_restart_rate_;
  std::map<std::string, instance_spec> catalogue_;
  std::set<std::string> brokers_;
  std::string violation_;
  std::vector<tracked> requests_;
  std::map<std::string, uint64_t> versions_;
  /// Instances a verification found disabled or removed, answered, with
  /// the model unchanged since: no process may run for them.
  std::set<std::string> verified_off_;
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
  /// Whether the supervisor suspects the bus (by its events), and when,
  /// since it began to, it restarted a running instance for no answer.
  bool bus_suspected_ = false;
  std::vector<time_point> silent_restarts_;
};

} // namespace cyme::testing

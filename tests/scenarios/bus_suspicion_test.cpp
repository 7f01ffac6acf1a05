// A lagging control bus is not a dead fleet: when most of a round's probed
// instances miss their ping while their processes run, the supervisor
// suspects the bus, restarts those instances only at
// bus_suspect_restart_rate and says so; dead processes are still replaced
// at once; a round with few silent instances ends the suspicion.
#include <boost/test/unit_test.hpp>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;

namespace {

/// A fleet of `n` instances, w1..wn, started and answering.
struct lagging_bus_fixture : supervision_fixture {
  std::vector<std::string> names;

  void start_fleet(size_t n, supervisor_settings settings = {}) {
    for (size_t i = 1; i <= n; ++i) {
      names.push_back("w" + std::to_string(i));
      add_instance(names.back());
    }
    start(settings);
    advance(1s);
    BOOST_REQUIRE(world.total_starts() == n);
  }

  /// The bus carries nothing to or from the first `n` instances any more,
  /// nor to the processes that replace them; their processes keep running.
  void silence(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      auto& w = world.workers[names[i]];
      w.responsive = false;
      w.hangs = true;
    }
  }

  /// The bus carries everything again.
  void heal_bus() {
    for (auto& [name, w] : world.workers) {
      w.hangs = false;
      if (w.running)
        w.responsive = true;
    }
  }

  /// Restarts the supervisor asked for (stops of a running process to start
  /// a new one) so far.
  size_t restarts() const {
    return events(event_kind::restarting);
  }

  /// The detail of the last event of `kind`.
  std::string log_detail(event_kind kind) const {
    for (auto i = log.rbegin(); i != log.rend(); ++i)
      if (i->kind == kind)
        return i->detail;
    return {};
  }

  /// The data of the last event of `kind`.
  std::map<std::string, std::string> data_of(event_kind kind) const {
    for (auto i = log.rbegin(); i != log.rend(); ++i)
      if (i->kind == kind)
        return i->data;
    return {};
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(bus_suspicion, lagging_bus_fixture)

BOOST_AUTO_TEST_CASE(a_lagging_bus_gets_restarts_at_the_bounded_rate_not_a_mass_restart) {
  // 80 of 100 instances fall silent while their processes run. The next
  // round suspects the bus (event and status) and restarts at most the
  // rate's 5/m of them; for ten minutes restarts stay within the rate. When
  // the bus answers again, a round ends the suspicion with an event.
  start_fleet(100);
  BOOST_TEST(!supervisor().bus_suspected);
  silence(80);
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::bus_suspected) == 1; }, 70s));
  auto suspected_at = now();
  auto st = supervisor();
  BOOST_TEST(st.bus_suspected);
  BOOST_TEST(st.bus_suspected_since_ms > 0);
  auto data = data_of(event_kind::bus_suspected);
  BOOST_TEST(data["missed"] == "80");
  BOOST_TEST(data["instances"] == "100");
  BOOST_TEST(data["share"] == "0.800");
  BOOST_TEST(data["rate"] == "5/m");
  // The round's verdicts: five restarts, the rest held back.
  advance(2s);
  BOOST_TEST(restarts() == 5u);
  // Ten minutes on: a bucket of 5/m allows its 5 plus 5 a minute.
  for (int minute = 1; minute <= 10; ++minute) {
    advance(60s);
    auto minutes = std::chrono::duration<double>(now() - suspected_at).count()
                   / 60;
    BOOST_TEST(static_cast<double>(restarts()) <= 5 + 5 * minutes,
               restarts() << " restarts after " << minutes << " minutes");
  }
  BOOST_TEST(restarts() >= 10u);
  BOOST_TEST(supervisor().bus_suspected);
  // No instance was disabled for the bus's silence.
  for (auto& name : names)
    BOOST_TEST(world.model[name].enabled, name);
  // The bus answers again: the next round ends the suspicion.
  heal_bus();
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::bus_recovered) == 1; }, 70s));
  BOOST_TEST(!supervisor().bus_suspected);
  BOOST_TEST(supervisor().bus_suspected_since_ms == 0);
  BOOST_TEST(data_of(event_kind::bus_recovered)["missed"] == "0");
  advance(70s);
  for (auto& name : names)
    BOOST_TEST(to_string(status_of(name).state) == "running", name);
  BOOST_TEST(events(event_kind::bus_suspected) == 1u);
}

BOOST_AUTO_TEST_CASE(while_the_bus_is_suspected_a_dead_process_is_replaced_at_once) {
  // The rate holds back restarts of running silent instances only: a
  // process that dies is replaced as soon as the driver reports it.
  start_fleet(100);
  silence(80);
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::bus_suspected) == 1; }, 70s));
  advance(2s);
  auto before = restarts();
  // One held back (its first process still runs) dies.
  std::string victim;
  for (size_t i = 0; i < 80 && victim.empty(); ++i)
    if (world.workers[names[i]].starts == 1)
      victim = names[i];
  BOOST_REQUIRE(!victim.empty());
  auto at = now();
  kill(victim, true);
  BOOST_TEST(world.workers[victim].starts == 2u);
  BOOST_TEST(world.workers[victim].running);
  BOOST_TEST((now() == at));
  BOOST_TEST(restarts() == before + 1);
}

BOOST_AUTO_TEST_CASE(a_round_that_suspects_the_bus_pings_no_silent_instance) {
  // The round's stats found 80 of 100 silent: pinging each once more
  // would only add to the lag. The held-back instances get no ping of
  // their own; the restarts the rate allows say why they were not
  // confirmed.
  start_fleet(100);
  silence(80);
  auto commands = world.commands.size();
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::bus_suspected) == 1; }, 70s));
  advance(2s);
  BOOST_TEST(restarts() == 5u);
  BOOST_TEST(log_detail(event_kind::restarting)
             == "no answer to the round's stats while the bus is suspected");
  std::set<std::string> held;
  for (size_t i = 0; i < 80; ++i)
    if (world.workers[names[i]].starts == 1)
      held.insert(names[i]);
  BOOST_REQUIRE(held.size() == 75u);
  size_t pinged = 0;
  for (size_t i = commands; i < world.commands.size(); ++i)
    if (world.commands[i].op == control_op::ping)
      for (auto& to : world.commands[i].destinations)
        pinged += held.count(to);
  BOOST_TEST(pinged == 0u);
  for (auto& name : held)
    BOOST_TEST(to_string(status_of(name).state) == "unresponsive", name);
}

BOOST_AUTO_TEST_CASE(the_round_that_finds_the_bus_back_asks_no_instance_actor) {
  // The bus answers again: the silent instances' processes answer the
  // round's probe as the model says. The probe settles their verifies and
  // lists them running; each actor is told in one message, and none asks
  // the driver or pings (a round over a whole fleet silenced by a lagging
  // bus costs as little as a steady one).
  start_fleet(100);
  silence(80);
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::bus_suspected) == 1; }, 70s));
  // The suspecting round ends once its restarts gave up.
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::round_finished) == 2; }, 70s));
  size_t silent = 0;
  for (auto& name : names)
    silent += status_of(name).state == instance_state::unresponsive;
  BOOST_REQUIRE(silent >= 70u);
  heal_bus();
  auto alive_asks = world.alive_asks;
  auto commands = world.commands.size();
  auto jobs = jobs_run;
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::round_finished) == 3; }, 70s));
  BOOST_TEST(events(event_kind::bus_recovered) == 1u);
  BOOST_TEST(data_of(event_kind::round_finished)["settled_by_probe"] == "100");
  BOOST_TEST(world.alive_asks == alive_asks);
  // The round's one stats command, and no ping or other command.
  BOOST_TEST(world.commands.size() - commands == 1u);
  // A message to each of the 80 actors at most, beside the round's own
  // work: asking each actor (a request, its answer, a report) ran 329.
  BOOST_TEST(jobs_run - jobs < 200u, "the round ran " << jobs_run - jobs << " jobs");
  for (auto& name : names)
    BOOST_TEST(to_string(status_of(name).state) == "running", name);
  // The actors list the same: an operator's verify of one finds it
  // running and changes nothing.
  auto before = status_of(names[0]);
  auto reports = ask<std::vector<action_report>>(
    verify_atom::value, std::vector<std::string>{names[0]}, false);
  BOOST_REQUIRE(reports.size() == 1u);
  BOOST_TEST(to_string(reports[0].result) == "verified", reports[0].detail);
  BOOST_TEST(to_string(status_of(names[0]).state) == "running");
  BOOST_TEST(status_of(names[0]).pid == before.pid);
  BOOST_TEST(status_of(names[0]).consuming_from == before.consuming_from);
  BOOST_TEST(events(event_kind::restarting) == restarts());
}

BOOST_AUTO_TEST_CASE(a_bus_that_lagged_only_in_the_probe_restarts_nothing) {
  // 30 of 100 miss the round's stats (below the share that suspects the
  // bus), and the bus carries everything again before their actors ask:
  // each actor's own ping confirms the silence first, finds the process
  // answering, and nothing is restarted.
  start_fleet(100);
  auto rounds = events(event_kind::round_finished);
  silence(30);
  auto commands = world.commands.size();
  BOOST_REQUIRE(run_until(
    [&] { return world.commands.size() > commands; }, 70s));
  BOOST_REQUIRE(world.commands[commands].op == control_op::stats);
  heal_bus();
  BOOST_REQUIRE(run_until(
    [&] { return events(event_kind::round_finished) == rounds + 1; }, 70s));
  BOOST_TEST(events(event_kind::bus_suspected) == 0u);
  BOOST_TEST(restarts() == 0u);
  BOOST_TEST(world.total_starts() == 100u);
  // The round's stats, and one ping for each of the 30.
  size_t pinged = 0;
  for (size_t i = commands + 1; i < world.commands.size(); ++i)
    if (world.commands[i].op == control_op::ping)
      pinged += world.commands[i].destinations.size();
  BOOST_TEST(pinged == 30u);
  for (auto& name : names)
    BOOST_TEST(to_string(status_of(name).state) == "running", name);
  // Silent in both, an instance is restarted, saying so.
  silence(1);
  BOOST_REQUIRE(run_until([&] { return restarts() == 1; }, 70s));
  BOOST_TEST(log_detail(event_kind::restarting)
             == "no answer to the round's stats nor to a ping");
}

BOOST_AUTO_TEST_CASE(few_silent_instances_are_restarted_as_usual) {
  // 10 of 100 silent is below the threshold (0.55): they are the problem,
  // not the bus, and the next round restarts all ten.
  start_fleet(100);
  silence(10);
  advance(63s);
  BOOST_TEST(restarts() == 10u);
  BOOST_TEST(events(event_kind::bus_suspected) == 0u);
  BOOST_TEST(!supervisor().bus_suspected);
}

BOOST_AUTO_TEST_CASE(a_small_fleet_all_silent_is_not_the_bus) {
  // Both instances of a fleet of two silent: a share of 1, but fewer than
  // bus_suspect_min_misses (5) is no evidence against the bus.
  start_fleet(2);
  silence(2);
  advance(63s);
  BOOST_TEST(restarts() == 2u);
  BOOST_TEST(events(event_kind::bus_suspected) == 0u);
}

BOOST_AUTO_TEST_CASE(dead_processes_do_not_make_the_bus_suspected) {
  // 80 of 100 processes die unseen: they miss their ping, but the driver
  // says they do not run, so the bus is not suspected and all are
  // replaced.
  start_fleet(100);
  for (size_t i = 0; i < 80; ++i)
    kill(names[i], false);
  advance(63s);
  BOOST_TEST(events(event_kind::bus_suspected) == 0u);
  BOOST_TEST(world.total_starts() == 180u);
}

BOOST_AUTO_TEST_CASE(a_higher_threshold_takes_more_silence_for_the_bus) {
  // With a threshold of 0.9, 80 silent of 100 is not the bus: all 80 are
  // restarted.
  supervisor_settings s;
  s.bus_suspect_threshold = 0.9;
  start_fleet(100, s);
  silence(80);
  advance(63s);
  BOOST_TEST(events(event_kind::bus_suspected) == 0u);
  BOOST_TEST(restarts() == 80u);
}

BOOST_AUTO_TEST_CASE(a_lower_threshold_and_rate_hold_restarts_to_the_rate) {
  // With a threshold of 0.8 and a rate of 2/m, 80 silent of 100 is the bus
  // and the round restarts two.
  supervisor_settings s;
  s.bus_suspect_threshold = 0.8;
  s.bus_suspect_restart_rate = "2/m";
  start_fleet(100, s);
  silence(80);
  advance(63s);
  BOOST_TEST(events(event_kind::bus_suspected) == 1u);
  BOOST_TEST(data_of(event_kind::bus_suspected)["rate"] == "2/m");
  BOOST_TEST(restarts() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

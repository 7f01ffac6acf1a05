// Pausing: an operator's pause or a broker outage stops all timers and all
// repair; a revived broker's instances get wait_after_broker_revived to
// reconnect before any restart.
#include <boost/test/unit_test.hpp>

#include <caf/send.hpp>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;
using names = std::vector<std::string>;
using reports = std::vector<action_report>;

BOOST_FIXTURE_TEST_SUITE(pausing, supervision_fixture)

BOOST_AUTO_TEST_CASE(paused_supervisor_does_nothing_for_hours) {
  // While paused: no round, no command, no start, whatever drifts; verify
  // answers "paused". Resume brings the next round after one interval.
  add_instance("w1", {"q1"});
  start();
  advance(1s);
  auto st = ask<supervisor_status>(pause_atom::value);
  BOOST_TEST(st.paused);
  BOOST_TEST(st.paused_by_operator);
  auto commands = world.commands.size();
  auto lists = world.model_lists;
  kill("w1", true);
  world.model["w1"].queues = {"q2"};
  add_instance("w2");
  advance(5h);
  BOOST_TEST(world.commands.size() == commands);
  BOOST_TEST(world.model_lists == lists);
  BOOST_TEST(world.total_starts() == 1u);
  auto r = ask<reports>(verify_atom::value, names{"w1", "w2"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "paused");
  BOOST_TEST(to_string(r.at(1).result) == "paused");
  BOOST_TEST(world.total_starts() == 1u);
  st = ask<supervisor_status>(resume_atom::value);
  BOOST_TEST(!st.paused);
  advance(59s);
  BOOST_TEST(world.total_starts() == 1u);
  advance(2s);
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST(world.workers["w2"].running);
  BOOST_TEST(events(event_kind::paused) == 1u);
  BOOST_TEST(events(event_kind::resumed) == 1u);
}

BOOST_AUTO_TEST_CASE(pause_and_resume_are_idempotent) {
  // Pausing twice is one pause; resuming twice is one resume.
  start();
  ask<supervisor_status>(pause_atom::value);
  ask<supervisor_status>(pause_atom::value);
  ask<supervisor_status>(resume_atom::value);
  auto st = ask<supervisor_status>(resume_atom::value);
  BOOST_TEST(!st.paused);
  BOOST_TEST(events(event_kind::paused) == 1u);
  BOOST_TEST(events(event_kind::resumed) == 1u);
}

BOOST_AUTO_TEST_CASE(the_default_broker_is_named_by_its_address) {
  // Instances with no broker of their own use the default one, named "" in
  // the model: the status and the events name it by its address.
  add_instance("w1");
  supervisor_settings s;
  s.default_broker = "127.0.0.1:40123";
  start(s);
  advance(1s);
  caf::anon_send(sup, broker_down_atom::value, std::string{},
                 std::string{"127.0.0.1:40123: Connection refused"});
  sched.run();
  auto st = supervisor();
  BOOST_TEST(st.paused);
  BOOST_TEST(st.brokers_down == std::vector<std::string>{"127.0.0.1:40123"});
  BOOST_TEST(st.broker_errors.count("127.0.0.1:40123") == 1u);
  caf::anon_send(sup, broker_up_atom::value, std::string{});
  sched.run();
  st = supervisor();
  BOOST_TEST(!st.paused);
  BOOST_TEST(st.brokers_reviving == std::vector<std::string>{"127.0.0.1:40123"});
  size_t named = 0;
  for (auto& ev : log)
    if (ev.kind == event_kind::broker_down || ev.kind == event_kind::broker_up) {
      BOOST_TEST(ev.data.at("broker") == "127.0.0.1:40123");
      ++named;
    } else if (ev.kind == event_kind::resumed) {
      BOOST_TEST(ev.detail == "broker 127.0.0.1:40123 up");
    }
  BOOST_TEST(named == 2u);
}

BOOST_AUTO_TEST_CASE(broker_outage_pauses_and_revival_waits_before_restarts) {
  // Broker down: paused, nothing restarted. Broker up: resumed, but its
  // instances are not restarted until 35 s after the revival; then normal.
  add_instance("w1", {}, "k1:9092");
  add_instance("w2", {}, "k1:9092");
  supervisor_settings s;
  s.interval = 10s;
  start(s);
  advance(1s);
  caf::anon_send(sup, broker_down_atom::value, std::string{"k1:9092"},
                 std::string{"k1:9092: Local: Broker transport failure"});
  sched.run();
  auto st = supervisor();
  BOOST_TEST(st.paused);
  BOOST_TEST(!st.paused_by_operator);
  BOOST_TEST(st.brokers_down.size() == 1u);
  BOOST_TEST(st.broker_errors["k1:9092"]
             == "k1:9092: Local: Broker transport failure");
  // Workers cannot answer while their broker is gone.
  world.workers["w1"].responsive = false;
  world.workers["w2"].responsive = false;
  kill("w2", true);
  advance(10min);
  BOOST_TEST(world.total_starts() == 2u);
  BOOST_TEST(world.workers["w1"].stops == 0u);

  caf::anon_send(sup, broker_up_atom::value, std::string{"k1:9092"});
  sched.run();
  st = supervisor();
  BOOST_TEST(!st.paused);
  BOOST_TEST(st.brokers_reviving.size() == 1u);
  // Rounds at +10, +20, +30 s judge w1 silent and w2 dead, but defer.
  advance(34s);
  BOOST_TEST(world.total_starts() == 2u);
  BOOST_TEST(world.workers["w1"].stops == 0u);
  BOOST_TEST(to_string(status_of("w1").state) == "unresponsive");
  // w1 reconnects in time and is left alone; w2 stays dead and is restarted
  // by the first round after the wait.
  world.workers["w1"].responsive = true;
  advance(10s);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  BOOST_TEST(world.workers["w1"].stops == 0u);
  BOOST_TEST(world.workers["w2"].starts == 2u);
  BOOST_TEST(world.workers["w2"].running);
  BOOST_TEST(supervisor().brokers_reviving.empty());
  BOOST_TEST(events(event_kind::broker_down) == 1u);
  BOOST_TEST(events(event_kind::broker_up) == 1u);
}

BOOST_AUTO_TEST_CASE(reported_death_during_revival_is_deferred) {
  // A death reported within the revival window is not restarted then.
  add_instance("w1", {}, "k1:9092");
  start();
  advance(1s);
  caf::anon_send(sup, broker_down_atom::value, std::string{"k1:9092"},
                 std::string{"k1:9092: Local: Broker transport failure"});
  caf::anon_send(sup, broker_up_atom::value, std::string{"k1:9092"});
  sched.run();
  kill("w1", true);
  BOOST_TEST(!world.workers["w1"].running);
  advance(36s);
  BOOST_TEST(!world.workers["w1"].running);
  advance(30s); // the round 60 s after the revival restarts it
  BOOST_TEST(world.workers["w1"].running);
}

BOOST_AUTO_TEST_CASE(other_brokers_are_not_held_back_by_a_revival) {
  // Only the revived broker's instances wait.
  add_instance("w1", {}, "k1:9092");
  add_instance("w2", {}, "k2:9092");
  start();
  advance(1s);
  caf::anon_send(sup, broker_down_atom::value, std::string{"k1:9092"},
                 std::string{"k1:9092: Local: Broker transport failure"});
  caf::anon_send(sup, broker_up_atom::value, std::string{"k1:9092"});
  sched.run();
  kill("w2", true);
  BOOST_TEST(world.workers["w2"].running);
  BOOST_TEST(world.workers["w2"].starts == 2u);
}

BOOST_AUTO_TEST_CASE(operator_pause_outlives_a_broker_revival) {
  // A broker coming back does not lift an operator's pause.
  add_instance("w1", {}, "k1:9092");
  start();
  advance(1s);
  ask<supervisor_status>(pause_atom::value);
  caf::anon_send(sup, broker_down_atom::value, std::string{"k1:9092"},
                 std::string{"k1:9092: Local: Broker transport failure"});
  caf::anon_send(sup, broker_up_atom::value, std::string{"k1:9092"});
  sched.run();
  BOOST_TEST(supervisor().paused);
  kill("w1", true);
  advance(2h);
  BOOST_TEST(!world.workers["w1"].running);
}

BOOST_AUTO_TEST_CASE(reported_death_while_paused_is_not_repaired) {
  // A death reported while paused waits for resume and the next round.
  add_instance("w1");
  start();
  advance(1s);
  ask<supervisor_status>(pause_atom::value);
  kill("w1", true);
  advance(1h);
  BOOST_TEST(!world.workers["w1"].running);
  ask<supervisor_status>(resume_atom::value);
  advance(61s);
  BOOST_TEST(world.workers["w1"].running);
}

BOOST_AUTO_TEST_SUITE_END()

// The supervisor's core rules: new instances start, dead or silent ones are
// restarted, disabled or removed ones stop, requests answer per instance.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;
using names = std::vector<std::string>;
using reports = std::vector<action_report>;

BOOST_FIXTURE_TEST_SUITE(supervision, supervision_fixture)

BOOST_AUTO_TEST_CASE(new_instances_in_the_model_are_started) {
  // The first round starts every enabled instance of the model, once.
  add_instance("w1", {"q1"});
  add_instance("w2");
  start();
  advance(1s);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  BOOST_TEST(world.workers["w2"].starts == 1u);
  auto st = status_of("w1");
  BOOST_TEST(to_string(st.state) == "running");
  BOOST_TEST(st.pid == world.workers["w1"].pid);
  BOOST_TEST(st.restarts == 0u);
  BOOST_TEST(events(event_kind::started) == 2u);
  BOOST_TEST(events(event_kind::restarting) == 0u);
}

BOOST_AUTO_TEST_CASE(the_listed_round_trip_is_each_rounds_pong) {
  // A round that finds an instance as it was has it report nothing to the
  // supervisor; the round trip of its pong is listed all the same.
  add_instance("w1");
  add_instance("w2");
  supervisor_settings settings;
  start(settings);
  advance(1s);
  world.workers["w1"].rtt_us = 1500;
  world.workers["w2"].rtt_us = 2500;
  advance(settings.interval);
  BOOST_TEST(status_of("w1").ping_rtt_us == 1500);
  BOOST_TEST(status_of("w2").ping_rtt_us == 2500);
  world.workers["w1"].rtt_us = 700;
  advance(settings.interval);
  BOOST_TEST(status_of("w1").ping_rtt_us == 700);
  BOOST_TEST(status_of("w2").ping_rtt_us == 2500);
  BOOST_TEST(to_string(status_of("w1").state) == "running");
  BOOST_TEST(world.total_starts() == 2u);
}

BOOST_AUTO_TEST_CASE(a_round_asks_only_the_actors_its_probe_does_not_settle) {
  // A round's probe that finds an instance as its actor last reported it,
  // and consuming as the model says, settles its verify: the actor is not
  // asked. Every difference still reaches the actor, which acts on it: a
  // queue the worker took on its own, a model change, a dead process.
  for (auto name : {"w1", "w2", "w3", "w4"})
    add_instance(name, {"q1"});
  supervisor_settings settings;
  start(settings);
  advance(1s);
  auto settled = [&] {
    for (auto i = log.rbegin(); i != log.rend(); ++i)
      if (i->kind == event_kind::round_finished)
        return std::stoul(i->data.at("settled_by_probe"));
    return ~0ul;
  };
  BOOST_TEST(settled() == 0u); // round 1 started them
  advance(settings.interval);
  BOOST_TEST(settled() == 4u);
  world.workers["w1"].queues.push_back("stray");
  world.model["w2"].max_concurrency = 4;
  kill("w3", false);
  advance(settings.interval + 5s);
  BOOST_TEST(settled() == 1u);
  BOOST_TEST(world.count(control_op::cancel_consumer, "w1") == 1u);
  BOOST_TEST(world.count(control_op::autoscale, "w2") == 1u);
  BOOST_TEST(world.workers["w3"].starts == 2u);
  BOOST_TEST(status_of("w2").autoscale_max == 4u);
  BOOST_TEST(to_string(status_of("w3").state) == "running");
  // All as specified again: settled by the probe, and nothing sent.
  auto commands = world.commands.size();
  advance(settings.interval);
  BOOST_TEST(settled() == 4u);
  BOOST_TEST(world.commands.size() - commands == 1u); // the probe's stats
  // What is only observed does not need the actor: a pool its autoscaler
  // grew, queues listed in another order. The supervisor lists the new
  // concurrency, and keeps it over a later report about the same process.
  world.workers["w1"].concurrency = 3;
  std::reverse(world.workers["w2"].queues.begin(), world.workers["w2"].queues.end());
  advance(settings.interval);
  BOOST_TEST(settled() == 4u);
  BOOST_TEST(status_of("w1").concurrency == 3u);
  // A report its actor sends about the same process (as on an exit of an
  // older one) lists the concurrency it last saw: the probe's is kept.
  auto stale = status_of("w1");
  stale.concurrency = 1;
  stale.last_exit_at_ms = 1;
  caf::anon_send(sup, report_atom::value, stale);
  run_jobs();
  BOOST_TEST(status_of("w1").concurrency == 3u);
  BOOST_TEST(status_of("w1").last_exit_at_ms == 1);
  // One about another process is taken as it is.
  stale.pid += 1;
  caf::anon_send(sup, report_atom::value, stale);
  run_jobs();
  BOOST_TEST(status_of("w1").concurrency == 1u);
}

BOOST_AUTO_TEST_CASE(a_finished_round_says_where_its_time_went) {
  // The round_finished event splits the round's time: the model's
  // listing, the probe over the bus, the instance actors' verdicts. A
  // worker that stops answering holds the probe for its whole timeout.
  add_instance("w1");
  add_instance("w2");
  supervisor_settings settings;
  start(settings);
  advance(1s);
  world.workers["w2"].responsive = false;
  auto before = log.size();
  advance(settings.interval + 5s);
  const supervisor_event* round = nullptr;
  for (size_t i = before; i < log.size(); ++i)
    if (log[i].kind == event_kind::round_finished)
      round = &log[i];
  BOOST_REQUIRE(round != nullptr);
  for (auto key : {"duration_ms", "listing_ms", "probe_ms", "verdicts_ms"})
    BOOST_REQUIRE_MESSAGE(round->data.count(key) == 1, "no " << key);
  auto ms = [&](const char* key) { return std::stod(round->data.at(key)); };
  auto timeout_ms = std::chrono::duration<double, std::milli>(settings.probe_timeout).count();
  BOOST_TEST(ms("probe_ms") >= timeout_ms);
  BOOST_TEST(ms("listing_ms") + ms("probe_ms") + ms("verdicts_ms")
               == ms("duration_ms"),
             boost::test_tools::tolerance(0.01));
  BOOST_TEST(round->detail.find("probe ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(instance_added_later_is_started_by_the_next_round) {
  // An instance put in the model after start is started by the next round.
  add_instance("w1");
  start();
  advance(1s);
  add_instance("w2");
  advance(30s);
  BOOST_TEST(world.workers["w2"].starts == 0u);
  advance(31s);
  BOOST_TEST(world.workers["w2"].starts == 1u);
  BOOST_TEST(world.workers["w1"].starts == 1u);
}

BOOST_AUTO_TEST_CASE(killed_instance_is_restarted_on_the_next_round) {
  // A death nobody reported is found and repaired by the next round.
  add_instance("w1");
  start();
  advance(1s);
  kill("w1", false);
  advance(30s);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  advance(31s);
  BOOST_TEST(world.workers["w1"].starts == 2u);
  auto st = status_of("w1");
  BOOST_TEST(st.restarts == 1u);
  BOOST_TEST(to_string(st.state) == "running");
  BOOST_TEST(events(event_kind::restarting, "w1") == 1u);
  BOOST_TEST(events(event_kind::restarted, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(reported_death_is_repaired_at_once) {
  // A death the driver reports is repaired without waiting for a round.
  add_instance("w1");
  start();
  advance(1s);
  auto before = now();
  kill("w1", true);
  BOOST_TEST(world.workers["w1"].starts == 2u);
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST((now() == before));
  BOOST_TEST(events(event_kind::died, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(alive_but_silent_instance_is_restarted) {
  // Process alive but no answer to ping: stopped and started again.
  add_instance("w1");
  start();
  advance(1s);
  world.workers["w1"].responsive = false;
  advance(61s);
  BOOST_TEST(world.workers["w1"].stops == 1u);
  BOOST_TEST(world.workers["w1"].starts == 2u);
  BOOST_TEST(world.workers["w1"].responsive);
  BOOST_TEST(status_of("w1").restarts == 1u);
}

BOOST_AUTO_TEST_CASE(restarted_instance_that_never_answers_does_not_respond) {
  // After a restart the instance is pinged with growing timeouts for about
  // 30 s; no answer means "does not respond".
  add_instance("w1");
  start();
  advance(1s);
  world.workers["w1"].responsive = false;
  world.workers["w1"].hangs = true;
  auto pings_before = world.count(control_op::ping, "w1");
  auto t0 = now();
  auto r = ask<reports>(restart_atom::value, names{"w1"});
  auto took = now() - t0;
  BOOST_REQUIRE(r.size() == 1u);
  BOOST_TEST(to_string(r[0].result) == "does not respond");
  BOOST_TEST(world.count(control_op::ping, "w1") - pings_before == 31u);
  BOOST_TEST((took >= 29s && took <= 31s), "took " << took.count() << " ns");
  BOOST_TEST(to_string(status_of("w1").state) == "unresponsive");
  BOOST_TEST(events(event_kind::does_not_respond, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(ping_schedule_stops_when_the_process_dies) {
  // A process that dies while being pinged is reported at once, not after
  // the whole schedule.
  add_instance("w1");
  world.workers["w1"].hangs = true;
  start();
  advance(200ms);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  kill("w1", false);
  advance(2s);
  BOOST_TEST(events(event_kind::does_not_respond, "w1") == 1u);
  BOOST_TEST(world.count(control_op::ping, "w1") < 5u);
}

BOOST_AUTO_TEST_CASE(reported_death_interrupts_the_running_operation) {
  // A process that dies while its instance actor waits on it (here: the
  // ping schedule of a hung restart) ends that wait at once, and the death
  // is repaired right away instead of after the ~30 s schedule.
  add_instance("w1");
  start();
  advance(1s);
  world.workers["w1"].hangs = true;
  world.workers["w1"].responsive = false;
  auto pending_restart = request<reports>(sup, restart_atom::value, names{"w1"});
  advance(2s);
  BOOST_TEST(!pending_restart->done());
  BOOST_TEST(world.workers["w1"].starts == 2u);
  world.workers["w1"].hangs = false;
  auto t0 = now();
  kill("w1", true);
  BOOST_REQUIRE(pending_restart->done());
  BOOST_REQUIRE(pending_restart->value);
  BOOST_TEST(to_string(pending_restart->value->at(0).result) == "failed");
  BOOST_TEST(pending_restart->value->at(0).detail.find("interrupted")
             != std::string::npos);
  BOOST_TEST(world.workers["w1"].starts == 3u);
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST((now() == t0));
}

BOOST_AUTO_TEST_CASE(restart_request_answers_restarted) {
  // An explicit restart stops, starts, pings and answers "restarted".
  add_instance("w1");
  start();
  advance(1s);
  auto old_pid = world.workers["w1"].pid;
  auto r = ask<reports>(restart_atom::value, names{"w1"});
  BOOST_REQUIRE(r.size() == 1u);
  BOOST_TEST(r[0].instance == "w1");
  BOOST_TEST(to_string(r[0].result) == "restarted");
  BOOST_TEST(world.workers["w1"].pid != old_pid);
  BOOST_TEST(world.workers["w1"].stops == 1u);
}

BOOST_AUTO_TEST_CASE(disabled_instance_is_stopped_and_not_restarted) {
  // Disabling in the model stops the instance; rounds keep it down.
  add_instance("w1");
  start();
  advance(1s);
  world.model["w1"].enabled = false;
  auto r = ask<reports>(verify_atom::value, names{"w1"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "stopped");
  BOOST_TEST(!world.workers["w1"].running);
  advance(1h);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  BOOST_TEST(to_string(status_of("w1").state) == "disabled");
}

BOOST_AUTO_TEST_CASE(disabled_instance_is_not_restarted_by_request) {
  // An explicit restart of a disabled instance is refused with a reason.
  add_instance("w1").enabled = false;
  start();
  advance(1s);
  auto r = ask<reports>(restart_atom::value, names{"w1"});
  BOOST_TEST(to_string(r.at(0).result) == "disabled");
  BOOST_TEST(r.at(0).detail.find("enable it first") != std::string::npos);
  BOOST_TEST(world.workers["w1"].starts == 0u);
}

BOOST_AUTO_TEST_CASE(instance_removed_from_the_model_is_stopped) {
  // Removing an instance stops its process and forgets it.
  add_instance("w1");
  add_instance("w2");
  start();
  advance(1s);
  world.model.erase("w1");
  advance(61s);
  BOOST_TEST(!world.workers["w1"].running);
  BOOST_TEST(world.workers["w1"].stops == 1u);
  BOOST_TEST(world.workers["w2"].running);
  auto all = ask<std::vector<instance_status>>(list_atom::value);
  BOOST_REQUIRE(all.size() == 1u);
  BOOST_TEST(all[0].name == "w2");
  BOOST_TEST(supervisor().instances == 1u);
}

BOOST_AUTO_TEST_CASE(removal_is_acted_on_by_a_verify_request) {
  // verify of a name no longer in the model stops it and says so.
  add_instance("w1");
  start();
  advance(1s);
  world.model.erase("w1");
  auto r = ask<reports>(verify_atom::value, names{"w1"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "stopped");
  BOOST_TEST(r.at(0).detail.find("removed from the model") != std::string::npos);
  auto again = ask<reports>(verify_atom::value, names{"w1"}, false);
  BOOST_TEST(to_string(again.at(0).result) == "unknown instance");
}

BOOST_AUTO_TEST_CASE(shutdown_of_an_enabled_instance_is_undone_by_verification) {
  // shutdown stops it; the next round starts it again (disable to keep it
  // down).
  add_instance("w1");
  start();
  advance(1s);
  auto r = ask<reports>(shutdown_atom::value, names{"w1"});
  BOOST_TEST(to_string(r.at(0).result) == "stopped");
  BOOST_TEST(!world.workers["w1"].running);
  BOOST_TEST(to_string(status_of("w1").state) == "stopped");
  advance(61s);
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST(world.workers["w1"].starts == 2u);
}

BOOST_AUTO_TEST_CASE(requests_answer_each_instance_in_order) {
  // One report per name, in the order asked, unknown names included.
  add_instance("w1");
  add_instance("w2");
  start();
  advance(1s);
  kill("w2", false);
  auto r = ask<reports>(verify_atom::value, names{"w2", "nope", "w1"}, false);
  BOOST_REQUIRE(r.size() == 3u);
  BOOST_TEST(r[0].instance == "w2");
  BOOST_TEST(to_string(r[0].result) == "restarted");
  BOOST_TEST(r[1].instance == "nope");
  BOOST_TEST(to_string(r[1].result) == "unknown instance");
  BOOST_TEST(r[2].instance == "w1");
  BOOST_TEST(to_string(r[2].result) == "verified");
}

BOOST_AUTO_TEST_CASE(invalid_spec_in_the_model_is_not_acted_on) {
  // max < min in the model: reported, never started.
  add_instance("w1");
  auto& bad = add_instance("w2");
  bad.max_concurrency = 1;
  bad.min_concurrency = 3;
  start();
  advance(1s);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  BOOST_TEST(world.workers.count("w2") == 0u);
  auto r = ask<reports>(verify_atom::value, names{"w2"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "invalid spec");
  BOOST_TEST(r.at(0).detail.find("less than min_concurrency") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(spawned_supervisor_is_the_current_one) {
  // get_current returns (the front of) the supervisor spawned last with
  // set_as_current, and nothing once it is gone. The registry never names
  // a core: a remote node can reach whatever it names.
  BOOST_TEST(!get_current(sys));
  start();
  BOOST_TEST((get_current(sys) == front));
  BOOST_TEST((get_current(sys).address() != sup.address()));
  supervisor_settings other;
  other.set_as_current = false;
  auto second = spawn_supervisor(sys, other, supervisor_seams{driver, bus, store});
  BOOST_REQUIRE(second);
  BOOST_TEST((get_current(sys) == front));
  set_current(sys, *second);
  BOOST_TEST((get_current(sys) == second->front));
  caf::anon_send_exit(second->core, caf::exit_reason::user_shutdown);
  sched.run();
  BOOST_TEST(!get_current(sys));
}

// The driver is armed for a running instance while a permit to restart it
// would be granted: its death is then repaired by a replacement the driver
// starts at once, which the repair's start takes. A pause, a disable, a
// broker's revival or an empty restart bucket disarm it first.
BOOST_AUTO_TEST_CASE(a_death_the_driver_was_armed_for_is_replaced_at_once) {
  add_instance("w1");
  add_instance("w2", {}, "k1:9092");
  supervisor_settings s;
  s.interval = 10s;
  start(s);
  advance(1s);
  auto& w1 = world.workers["w1"];
  BOOST_REQUIRE(w1.running);
  BOOST_TEST(w1.armed.has_value());
  auto first = w1.pid;
  kill("w1", true);
  // The replacement runs before the supervisor heard of the death; the
  // repair's start took it instead of starting another.
  BOOST_TEST(w1.running);
  BOOST_TEST(w1.starts == 2u);
  BOOST_TEST(w1.spares_taken == 1u);
  advance(1s);
  auto st = status_of("w1");
  BOOST_TEST(st.pid == w1.pid);
  BOOST_TEST(st.pid != first);
  BOOST_TEST(st.restarts == 1u);
  BOOST_TEST(to_string(st.state) == "running");
  bool told = false;
  for (auto& ev : log)
    if (ev.kind == event_kind::died && ev.instance == "w1")
      told = ev.data.count("replacement") == 1
             && ev.data.at("replacement") == std::to_string(w1.pid);
  BOOST_TEST(told);
  // Its one token is spent: no arm until the bucket refills (1/m) and a
  // round sees it.
  BOOST_TEST(!w1.armed.has_value());
  advance(70s);
  BOOST_TEST(w1.armed.has_value());

  // Paused: disarmed, and a death waits for the resume like any other.
  ask<supervisor_status>(pause_atom::value);
  BOOST_TEST(!w1.armed.has_value());
  BOOST_TEST(world.workers["w2"].armed.has_value() == false);
  kill("w1", true);
  BOOST_TEST(!w1.running);
  BOOST_TEST(w1.starts == 2u);
  ask<supervisor_status>(resume_atom::value);
  advance(11s);
  BOOST_TEST(w1.running);
  BOOST_TEST(w1.starts == 3u);
  BOOST_TEST(w1.spares_taken == 1u);

  // A broker revived within wait_after_broker_revived: its workers are not
  // armed; after it, the next round arms them again.
  advance(70s);
  auto& w2 = world.workers["w2"];
  BOOST_TEST(w2.armed.has_value());
  caf::anon_send(sup, broker_down_atom::value, std::string{"k1:9092"},
                 std::string{"Connection refused"});
  caf::anon_send(sup, broker_up_atom::value, std::string{"k1:9092"});
  run_jobs();
  BOOST_TEST(!w2.armed.has_value());
  BOOST_TEST(w1.armed.has_value());
  advance(s.wait_after_broker_revived + s.interval);
  BOOST_TEST(w2.armed.has_value());

  // Disabled in the model: disarmed before its stop.
  world.model["w2"].enabled = false;
  world.model["w2"].disabled_reason = "by an operator";
  ask<reports>(verify_atom::value, names{"w2"}, false);
  BOOST_TEST(!w2.running);
  BOOST_TEST(!w2.armed.has_value());
  BOOST_TEST(w2.stops == 1u);
  BOOST_TEST(w2.starts == 1u);
}

// With restart_at_once off (--no-restart-at-once), nothing is armed: every
// restart waits for the supervisor's permit.
BOOST_AUTO_TEST_CASE(without_restart_at_once_every_restart_waits_for_the_permit) {
  add_instance("w1");
  supervisor_settings s;
  s.restart_at_once = false;
  start(s);
  advance(1s);
  auto& w1 = world.workers["w1"];
  BOOST_REQUIRE(w1.running);
  BOOST_TEST(!w1.armed.has_value());
  kill("w1", true);
  BOOST_TEST(w1.running);
  BOOST_TEST(w1.starts == 2u);
  BOOST_TEST(w1.spares_taken == 0u);
  BOOST_TEST(status_of("w1").restarts == 1u);
  advance(2min);
  BOOST_TEST(!w1.armed.has_value());
}

// A replacement of another spec than the repair starts (an arm of an
// older spec was still on its way when the process died) is stopped, and
// the repair's spec started.
BOOST_AUTO_TEST_CASE(a_replacement_of_another_spec_gives_way_to_the_repair) {
  add_instance("w1", {"q1"});
  start();
  advance(1s);
  auto& w1 = world.workers["w1"];
  BOOST_REQUIRE(w1.armed.has_value());
  auto older = world.model["w1"];
  older.queues = {"q0"};
  caf::anon_send(driver, arm_atom::value, older, w1.pid);
  run_jobs();
  kill("w1", true);
  BOOST_TEST(w1.spares_taken == 0u);
  BOOST_TEST(w1.starts == 3u); // the first, the replacement, the repair's
  BOOST_TEST(w1.stops == 1u);  // the replacement
  BOOST_TEST(world.starts_while_running == 0u);
  advance(1s);
  BOOST_TEST(w1.running);
  BOOST_TEST(std::count(w1.queues.begin(), w1.queues.end(), "q1") == 1);
  BOOST_TEST(std::count(w1.queues.begin(), w1.queues.end(), "q0") == 0);
  BOOST_TEST(status_of("w1").pid == w1.pid);
  BOOST_TEST(to_string(status_of("w1").state) == "running");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(bad_input, supervision_fixture)

BOOST_AUTO_TEST_CASE(invalid_settings_spawn_nothing) {
  // A bad rate, a zero or negative interval: an error, no supervisor.
  for (auto mutate : std::vector<std::function<void(supervisor_settings&)>>{
         [](auto& s) { s.restart_max_rate = "fast"; },
         [](auto& s) { s.restart_max_rate = "0/m"; },
         [](auto& s) { s.interval = caf::timespan{0}; },
         [](auto& s) { s.interval = -caf::timespan{5s}; },
         [](auto& s) { s.wait_after_broker_revived = -caf::timespan{1s}; },
       }) {
    supervisor_settings s;
    mutate(s);
    auto spawned = spawn_supervisor(sys, s, supervisor_seams{driver, bus, store});
    BOOST_TEST(!spawned);
    BOOST_TEST(describe(spawned.error()).find("invalid argument") == 0u);
    sched.run();
    BOOST_TEST(!get_current(sys));
    BOOST_TEST(world.model_lists == 0u);
  }
}

BOOST_AUTO_TEST_CASE(bad_names_in_requests_are_rejected_and_change_nothing) {
  // Empty list, empty name, duplicate name, unsafe name: an error each,
  // and no command sent, no process started or stopped.
  add_instance("w1");
  start();
  advance(1s);
  auto commands = world.commands.size();
  auto starts = world.total_starts();
  for (auto bad : std::vector<names>{{}, {""}, {"w1", "w1"}, {"../w1"},
                                    {"w1", "a b"}}) {
    auto err = ask_error<reports>(verify_atom::value, bad, false);
    BOOST_TEST(describe(err).find("invalid argument") == 0u);
    err = ask_error<reports>(restart_atom::value, bad);
    BOOST_TEST(describe(err).find("invalid argument") == 0u);
    err = ask_error<reports>(shutdown_atom::value, bad);
    BOOST_TEST(describe(err).find("invalid argument") == 0u);
  }
  BOOST_TEST(world.commands.size() == commands);
  BOOST_TEST(world.total_starts() == starts);
  BOOST_TEST(world.workers["w1"].stops == 0u);
  BOOST_TEST(world.workers["w1"].running);
}

BOOST_AUTO_TEST_CASE(duplicate_name_error_says_which) {
  // The error names the duplicated instance.
  start();
  auto err = ask_error<reports>(verify_atom::value, names{"a", "b", "a"}, false);
  BOOST_TEST(describe(err).find("'a' named twice") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(status_of_an_unknown_instance_is_an_error) {
  // Asking for an instance nobody supervises is an error, not a crash.
  start();
  auto err = ask_error<instance_status>(status_atom::value, std::string{"ghost"});
  BOOST_TEST(describe(err).find("unknown instance") == 0u);
}

BOOST_AUTO_TEST_CASE(a_process_is_judged_by_liveness_alone) {
  // An instance of kind `process` is started, kept and repaired without a
  // single bus command: a process that never answers a ping is running, a
  // killed one is restarted, rounds probe only the workers beside it.
  add_instance("w1", {"q1"});
  auto& p = add_instance("p1");
  p.launch.kind = instance_kind::process;
  p.launch.program = "/usr/bin/daemon";
  world.workers["p1"].hangs = true;
  start();
  advance(1s);
  BOOST_TEST(world.workers["p1"].starts == 1u);
  BOOST_TEST(to_string(status_of("p1").state) == "running");
  advance(5min);
  BOOST_TEST(world.workers["p1"].starts == 1u);
  BOOST_TEST(to_string(status_of("p1").state) == "running");
  kill("p1", true);
  advance(1s);
  BOOST_TEST(world.workers["p1"].starts == 2u);
  BOOST_TEST(status_of("p1").restarts == 1u);
  BOOST_TEST(to_string(status_of("p1").state) == "running");
  for (auto op : {control_op::ping, control_op::stats, control_op::add_consumer,
                  control_op::cancel_consumer, control_op::autoscale})
    BOOST_TEST(world.count(op, "p1") == 0u, to_string(op));
  BOOST_TEST(world.count(control_op::ping, "w1") > 0u);
}

BOOST_AUTO_TEST_CASE(a_probe_older_than_a_restart_is_not_believed) {
  // A round's probe finds w1 silent; while it waits, w1 dies and is
  // restarted at once. The probe's silence is about the process that is
  // gone: the new one is asked itself, and is neither restarted again nor
  // disabled for restarting too often.
  add_instance("w1");
  add_instance("w2");
  start();
  advance(1s);
  world.workers["w1"].responsive = false;
  // Round 1 ended at 1 s; round 2 starts 60 s after it, and its probe
  // waits 1 s for the silent w1.
  advance(60500ms);
  BOOST_TEST_REQUIRE(supervisor().round_in_progress);
  world.workers["w1"].responsive = true;
  kill("w1", true);
  advance(200ms);
  BOOST_TEST(world.workers["w1"].starts == 2u);
  advance(5s); // the probe times out and the round verifies w1
  BOOST_TEST(!supervisor().round_in_progress);
  BOOST_TEST(world.workers["w1"].starts == 2u);
  BOOST_TEST(status_of("w1").restarts == 1u);
  BOOST_TEST(to_string(status_of("w1").state) == "running");
  BOOST_TEST(events(event_kind::disabled, "w1") == 0u);
  BOOST_TEST(world.model["w1"].enabled);
}

BOOST_AUTO_TEST_CASE(a_probe_sent_before_a_new_process_listens_is_not_believed) {
  // w1 dies and its replacement takes a while to listen; a round's probe
  // sent in that while finds it silent. Once the replacement answers, that
  // silence is old news: the round asks w1 itself instead of restarting
  // it again (or disabling it for restarting too often).
  add_instance("w1");
  add_instance("w2");
  start();
  advance(59s);
  world.workers["w1"].hangs = true;
  kill("w1", true);
  advance(2200ms); // round 2 (at 61 s) has probed the silent replacement
  BOOST_TEST_REQUIRE(supervisor().round_in_progress);
  world.workers["w1"].hangs = false;
  world.workers["w1"].responsive = true;
  advance(5s);
  BOOST_TEST(!supervisor().round_in_progress);
  BOOST_TEST(world.workers["w1"].starts == 2u);
  BOOST_TEST(status_of("w1").restarts == 1u);
  BOOST_TEST(to_string(status_of("w1").state) == "running");
  BOOST_TEST(events(event_kind::disabled, "w1") == 0u);
  BOOST_TEST(world.model["w1"].enabled);
}

BOOST_AUTO_TEST_CASE(a_disable_while_a_round_probes_leaves_no_process) {
  // A round reads the model, then probes its instances; an operator
  // disables a dead instance while the probe is out. Once the disable's
  // verification is answered no process may be left, and the round,
  // judging afterwards, must not start one from the spec it read before.
  add_instance("w1");
  add_instance("w2");
  start();
  advance(1s);
  world.workers["w2"].responsive = false; // the probe waits for its timeout
  kill("w1", false);
  auto probes = world.count(control_op::stats);
  BOOST_REQUIRE(run_until([&] { return world.count(control_op::stats) > probes; },
                          std::chrono::minutes{2}));
  world.model["w1"].enabled = false;
  world.model["w1"].disabled_reason = "by operator";
  auto slot = request<std::vector<action_report>>(
    sup, verify_atom::value, std::vector<std::string>{"w1"}, false);
  BOOST_REQUIRE(run_until([&] { return slot->done(); }, 1s));
  BOOST_TEST(!world.workers["w1"].running);
  advance(30s);
  BOOST_TEST(!world.workers["w1"].running);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  BOOST_TEST(events(event_kind::disabled, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(a_change_while_a_round_probes_is_not_shown_stale) {
  // A round's probe is out when an operator raises w1's concurrency and
  // has it verified. The probe's stats were taken before the change: once
  // the round judges w1 with them, the status must not fall back to the
  // old settings (an API call that reads it after its answer saw that), and
  // the change is not sent a second time.
  add_instance("w1");
  add_instance("w2");
  start();
  advance(1s);
  BOOST_TEST_REQUIRE(world.workers["w1"].autoscale_max == 1u);
  world.workers["w2"].responsive = false; // the probe waits for its timeout
  auto probes = world.count(control_op::stats);
  BOOST_REQUIRE(run_until([&] { return world.count(control_op::stats) > probes; },
                          std::chrono::minutes{2}));
  BOOST_TEST_REQUIRE(supervisor().round_in_progress);
  world.model["w1"].max_concurrency = 6;
  auto slot = request<std::vector<action_report>>(
    sup, verify_atom::value, std::vector<std::string>{"w1"}, false);
  BOOST_REQUIRE(run_until([&] { return slot->done(); }, 1s));
  BOOST_TEST(world.workers["w1"].autoscale_max == 6u);
  BOOST_TEST(status_of("w1").autoscale_max == 6u);
  while (supervisor().round_in_progress) {
    advance(100ms);
    BOOST_TEST_REQUIRE(status_of("w1").autoscale_max == 6u);
  }
  BOOST_TEST(world.workers["w1"].autoscale_max == 6u);
  BOOST_TEST(world.count(control_op::autoscale, "w1") == 1u);
  BOOST_TEST(events(event_kind::set_autoscale, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(rounds_take_their_turn_in_the_interval) {
  // Told a phase, the supervisor starts its rounds where the clock's time
  // since its epoch, modulo the interval, equals it, so branches sharing a
  // broker take turns. The round already due keeps its time; rounds stay at
  // least half an interval apart; an offset beyond the interval wraps.
  add_instance("w1");
  supervisor_settings s;
  s.interval = 60s;
  start(s);
  advance(1s);
  BOOST_REQUIRE(world.model_lists >= 1u);
  auto next_round = [&] {
    auto k = world.model_lists;
    BOOST_REQUIRE(run_until([&] { return world.model_lists > k; }, 2min));
    return now();
  };
  auto ms = [](caf::timespan d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  auto offset = [&](caf::actor_clock::time_point t) {
    return ms(t.time_since_epoch() % 60s);
  };
  auto started = now();
  caf::anon_send(sup, phase_atom::value, caf::timespan{17s});
  sched.run();
  auto due = next_round();
  BOOST_TEST(ms(due - started) <= 60000);
  auto t1 = next_round();
  BOOST_TEST(offset(t1) == 17000);
  BOOST_TEST(ms(t1 - due) >= 30000);
  auto t2 = next_round();
  BOOST_TEST(ms(t2 - t1) == 60000);
  caf::anon_send(sup, phase_atom::value, caf::timespan{40s});
  sched.run();
  auto t3 = next_round();
  BOOST_TEST(ms(t3 - t2) == 60000);
  auto t4 = next_round();
  BOOST_TEST(offset(t4) == 40000);
  BOOST_TEST(ms(t4 - t3) >= 30000);
  BOOST_TEST(ms(t4 - t3) < 90000);
  caf::anon_send(sup, phase_atom::value, caf::timespan{65s});
  sched.run();
  next_round();
  BOOST_TEST(offset(next_round()) == 5000);
  BOOST_TEST(world.workers["w1"].starts == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

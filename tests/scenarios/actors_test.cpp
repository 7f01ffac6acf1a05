// The supervisor's own machinery: instance actors respawned under a limit,
// rounds that never overlap, a flood of requests merged, and the public
// front that remote nodes see.
#include <boost/test/unit_test.hpp>

#include <memory>

#include <caf/send.hpp>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;
using names = std::vector<std::string>;
using reports = std::vector<action_report>;

BOOST_FIXTURE_TEST_SUITE(actor_machinery, supervision_fixture)

BOOST_AUTO_TEST_CASE(crashed_instance_actor_is_respawned) {
  // An instance actor that crashes is replaced; supervision goes on.
  add_instance("w1");
  start();
  advance(1s);
  auto first = ask<instance_actor>(child_atom::value, std::string{"w1"});
  caf::anon_send_exit(first, caf::exit_reason::kill);
  sched.run();
  auto second = ask<instance_actor>(child_atom::value, std::string{"w1"});
  BOOST_TEST((first != second));
  BOOST_TEST(events(event_kind::actor_respawned, "w1") == 1u);
  auto st = status_of("w1");
  BOOST_TEST(st.supervised);
  BOOST_TEST(st.pid == world.workers["w1"].pid);
  kill("w1", false);
  advance(61s);
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST(status_of("w1").restarts == 1u);
}

BOOST_AUTO_TEST_CASE(an_actor_crashing_mid_operation_does_not_stall_rounds) {
  // Found by cyme-explore (seed 4): an instance actor that crashed while
  // its instance was being restarted took the round's request with it,
  // unanswered; the round never finished and no round ran again. The
  // request is now failed when the actor goes down, and the round ends.
  add_instance("w1");
  add_instance("w2");
  world.workers["w1"].hangs = true;
  start();
  advance(1750ms);
  BOOST_REQUIRE(supervisor().round_in_progress);
  auto child = ask<instance_actor>(child_atom::value, std::string{"w1"});
  auto pending = request<reports>(sup, restart_atom::value, names{"w1"});
  sched.run();
  caf::anon_send_exit(child, caf::exit_reason::kill);
  sched.run();
  BOOST_REQUIRE(pending->done());
  BOOST_REQUIRE(pending->value);
  BOOST_TEST(to_string(pending->value->at(0).result) == "failed");
  BOOST_TEST(pending->value->at(0).detail.find("crashed") != std::string::npos);
  auto rounds = supervisor().rounds_completed;
  BOOST_TEST(rounds >= 1u);
  world.workers["w1"].hangs = false;
  advance(3min);
  BOOST_TEST(supervisor().rounds_completed >= rounds + 2);
  BOOST_TEST(world.workers["w1"].running);
}

BOOST_AUTO_TEST_CASE(crash_looping_instance_actor_is_not_respawned_forever) {
  // Under respawn_max_rate 3/m, a fourth crash within the minute leaves the
  // instance unsupervised (and says so) until a request names it.
  add_instance("w1");
  supervisor_settings s;
  s.respawn_max_rate = "3/m";
  start(s);
  advance(1s);
  for (int i = 0; i < 10; ++i) {
    auto child = request<instance_actor>(sup, child_atom::value, std::string{"w1"});
    sched.run();
    if (!child->value)
      break;
    caf::anon_send_exit(*child->value, caf::exit_reason::kill);
    sched.run();
  }
  BOOST_TEST(events(event_kind::actor_respawned, "w1") == 3u);
  BOOST_TEST(events(event_kind::actor_given_up, "w1") == 1u);
  BOOST_TEST(!status_of("w1").supervised);
  kill("w1", false);
  advance(61s);
  BOOST_TEST(!world.workers["w1"].running);
  // An explicit request takes it back.
  auto r = ask<reports>(verify_atom::value, names{"w1"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "restarted");
  BOOST_TEST(status_of("w1").supervised);
  BOOST_TEST(world.workers["w1"].running);
}

BOOST_AUTO_TEST_CASE(round_slower_than_the_interval_never_overlaps) {
  // interval 1 s, but a hung instance makes each round last ~30 s: rounds
  // run one after another, never two at once, none piling up.
  add_instance("w1");
  add_instance("w2");
  world.workers["w2"].hangs = true;
  supervisor_settings s;
  s.interval = 1s;
  s.restart_max_rate = "100/s";
  start(s);
  size_t max_in_flight = 0;
  for (int i = 0; i < 600; ++i) {
    advance(500ms);
    auto finished = events(event_kind::round_finished);
    auto started = world.model_lists;
    BOOST_REQUIRE(started >= finished);
    max_in_flight = std::max(max_in_flight, started - finished);
  }
  BOOST_TEST(max_in_flight == 1u);
  // 300 s of rounds of about 31 s each (30 s pinging plus 1 s interval).
  BOOST_TEST(events(event_kind::round_finished) >= 8u);
  BOOST_TEST(events(event_kind::round_finished) <= 11u);
  BOOST_TEST(world.workers["w1"].starts == 1u);
}

BOOST_AUTO_TEST_CASE(flood_of_verify_requests_is_merged) {
  // 100 verify requests arriving during a long restart cost one more
  // verification, and every one of them is answered.
  add_instance("w1");
  start();
  advance(1s);
  world.workers["w1"].hangs = true;
  auto restart = request<reports>(sup, restart_atom::value, names{"w1"});
  sched.run();
  std::vector<std::shared_ptr<pending<reports>>> floods;
  for (int i = 0; i < 100; ++i)
    floods.push_back(request<reports>(sup, verify_atom::value, names{"w1"}, false));
  run_until(
    [&] {
      return std::all_of(floods.begin(), floods.end(),
                         [](auto& p) { return p->done(); });
    },
    10min);
  BOOST_TEST(restart->done());
  for (auto& p : floods) {
    BOOST_REQUIRE(p->value);
    BOOST_TEST(p->value->size() == 1u);
  }
  // The initial start, the requested restart, one merged verification.
  BOOST_TEST(world.workers["w1"].starts == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(public_front, supervision_fixture)

namespace {

/// An actor that notes what reaches it: events, or the end of an actor it
/// watches. The caller keeps the handle (nothing else holds it).
caf::behavior observer(caf::event_based_actor* self, caf::actor watched,
                       std::shared_ptr<std::vector<std::string>> seen) {
  if (watched) {
    self->monitor(watched);
    self->set_down_handler([seen](caf::down_msg&) { seen->push_back("down"); });
  }
  return {[seen](supervisor_event& ev) { seen->push_back(ev.detail); }};
}

} // namespace

BOOST_AUTO_TEST_CASE(the_front_answers_public_requests_and_refuses_the_rest) {
  // The handle a remote node holds: the front answers the public requests
  // as the supervisor would; the supervisor's internal messages sent to it
  // (broker down, an exit, a report, a tick, a permit, an event, a child or
  // subscribe request) are refused and change nothing.
  add_instance("w1");
  start();
  advance(1s);
  auto pid = world.workers["w1"].pid;
  BOOST_TEST_REQUIRE(to_string(status_of("w1").state) == "running");
  auto rounds = supervisor().rounds_completed;
  auto any = caf::actor_cast<caf::actor>(front);
  caf::anon_send(any, broker_down_atom::value, std::string{},
                 std::string{"forged"});
  caf::anon_send(any, exited_atom::value, process_exit{"w1", pid, 9, false});
  instance_status dead;
  dead.name = "w1";
  dead.state = instance_state::stopped;
  caf::anon_send(any, report_atom::value, dead);
  for (uint64_t gen = 0; gen < 4; ++gen)
    caf::anon_send(any, tick_atom::value, gen);
  caf::anon_send(any,
                 supervisor_event{event_kind::disabled, "w1", "forged", {}, {}});
  auto permit = request<restart_permit>(any, permit_atom::value,
                                        std::string{"w1"}, false,
                                        restart_cause::requested);
  auto child = request<instance_actor>(any, child_atom::value,
                                       std::string{"w1"});
  auto heard = std::make_shared<std::vector<std::string>>();
  auto eavesdropper = sys.spawn(observer, caf::actor{}, heard);
  caf::anon_send(any, subscribe_atom::value,
                 caf::actor_cast<event_listener>(eavesdropper));
  advance(10s);
  for (auto* refused : {&permit->error, &child->error}) {
    BOOST_REQUIRE(refused->has_value());
    BOOST_TEST((**refused == caf::sec::unexpected_message));
  }
  auto st = supervisor();
  BOOST_TEST(!st.paused);
  BOOST_TEST(st.brokers_down.empty());
  BOOST_TEST(st.rounds_completed == rounds);
  auto w1 = status_of("w1");
  BOOST_TEST(to_string(w1.state) == "running");
  BOOST_TEST(w1.pid == pid);
  BOOST_TEST(world.workers["w1"].starts == 1u);
  BOOST_TEST(events(event_kind::broker_down) == 0u);
  BOOST_TEST(events(event_kind::died) == 0u);
  BOOST_TEST(events(event_kind::disabled) == 0u);
  // The public requests work through it.
  auto paused = request<supervisor_status>(front, pause_atom::value);
  sched.run();
  BOOST_REQUIRE(paused->value);
  BOOST_TEST(paused->value->paused);
  BOOST_TEST(supervisor().paused_by_operator);
  // The pause was an event, and the would-be subscriber heard none.
  BOOST_TEST(events(event_kind::paused) == 1u);
  BOOST_TEST(heard->empty());
  auto listed = request<std::vector<instance_status>>(front, list_atom::value);
  auto one = request<instance_status>(front, status_atom::value,
                                      std::string{"w1"});
  auto restarted = request<reports>(front, restart_atom::value, names{"w1"});
  auto unknown = request<instance_status>(front, status_atom::value,
                                          std::string{"ghost"});
  run_until([&] { return restarted->done(); }, 1min);
  BOOST_REQUIRE(listed->value);
  BOOST_TEST(listed->value->size() == 1u);
  BOOST_REQUIRE(one->value);
  BOOST_TEST(one->value->pid == pid);
  BOOST_REQUIRE(restarted->value);
  BOOST_TEST(to_string(restarted->value->at(0).result) == "restarted");
  BOOST_REQUIRE(unknown->error);
  BOOST_TEST(describe(*unknown->error).find("unknown instance") == 0u);
  caf::anon_send_exit(eavesdropper, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(nothing_sent_to_the_front_ends_the_supervisor) {
  // A peer's exit or error message leaves the front serving; a kill, which
  // no CAF actor can refuse, ends the front but not the supervisor.
  add_instance("w1");
  start();
  advance(1s);
  auto seen = std::make_shared<std::vector<std::string>>();
  auto watcher = sys.spawn(observer, caf::actor_cast<caf::actor>(front), seen);
  sched.run();
  caf::anon_send_exit(front, caf::exit_reason::user_shutdown);
  caf::anon_send(caf::actor_cast<caf::actor>(front),
                 caf::make_error(caf::sec::runtime_error));
  auto still = request<supervisor_status>(front, status_atom::value);
  sched.run();
  BOOST_TEST(still->value.has_value());
  BOOST_TEST(seen->empty());
  caf::anon_send_exit(front, caf::exit_reason::kill);
  sched.run();
  BOOST_TEST((*seen == std::vector<std::string>{"down"}));
  BOOST_TEST(supervisor().instances == 1u);
  auto restarted = ask<reports>(restart_atom::value, names{"w1"});
  BOOST_TEST(to_string(restarted.at(0).result) == "restarted");
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(the_front_ends_with_the_supervisor) {
  // When the supervisor ends, so does its front (and with it what a remote
  // node published); no front outlives its core.
  add_instance("w1");
  start();
  advance(1s);
  auto seen = std::make_shared<std::vector<std::string>>();
  auto watcher = sys.spawn(observer, caf::actor_cast<caf::actor>(front), seen);
  sched.run();
  BOOST_TEST(seen->empty());
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  sched.run();
  BOOST_TEST((*seen == std::vector<std::string>{"down"}));
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()

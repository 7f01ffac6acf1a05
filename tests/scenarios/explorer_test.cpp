// Schedules cyme-explore found breaking an invariant, shrunk, kept as
// regression tests (each was fixed in the supervisor), and a fixed set of
// seeds run through the explorer in the scenario tier.
#include <boost/test/unit_test.hpp>

#include "testing/explorer.hpp"

BOOST_AUTO_TEST_SUITE(explorer)

BOOST_AUTO_TEST_CASE(explorer_seed_4_an_actor_crash_stalled_rounds) {
  // An instance actor killed while its instance ran the restart schedule
  // held the round's request: the round never finished.
  auto r = cyme::testing::run_schedule({
    {"hang", "w1", 0},
    {"advance", "", 1750},
    {"crash_actor", "w1", 0},
    {"kill", "w3", 0},
  });
  BOOST_TEST(r.violation.empty(), r.violation);
}

BOOST_AUTO_TEST_CASE(explorer_seed_166_a_second_removal_went_unanswered) {
  // Two requests naming an instance that left the model each queued a
  // removal in its actor; the first removal ended the actor, and the second
  // request was never answered.
  auto r = cyme::testing::run_schedule({
    {"hang", "w2", 0},
    {"advance", "", 3867},
    {"remove", "w2", 0},
    {"shutdown", "w2", 0},
    {"restart", "w2", 0},
  });
  BOOST_TEST(r.violation.empty(), r.violation);
}

BOOST_AUTO_TEST_CASE(explorer_the_loose_disable_race) {
  // The race of the tour (a disable right after a restart left a worker
  // running): a round's probe is out when the instance is disabled and
  // verified; the verification stops it, and then the round, judging by
  // the model it read before probing, started it again. Fixed before the
  // explorer existed (scenario a_disable_while_a_round_probes_leaves_no_
  // process); with that fix undone, the explorer finds it at seed 15 and
  // shrinks it to these two steps.
  auto r = cyme::testing::run_schedule({
    {"disable", "w4", 0},
    {"verify", "w4", 1},
  });
  BOOST_TEST(r.violation.empty(), r.violation);
}

BOOST_AUTO_TEST_CASE(a_shrunk_schedule_prints_as_a_scenario) {
  std::vector<cyme::testing::explore_step> steps{{"kill", "w1", 1},
                                                 {"advance", "", 500}};
  auto text = cyme::testing::as_scenario(steps, "example", "what broke");
  BOOST_TEST(text.find("BOOST_AUTO_TEST_CASE(example)") != std::string::npos);
  BOOST_TEST(text.find("{\"kill\", \"w1\", 1},") != std::string::npos);
  BOOST_TEST(text.find("// Found by cyme-explore: what broke") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_schedule_is_drawn_the_same_from_the_same_seed) {
  auto a = cyme::testing::draw_schedule(42, 100);
  auto b = cyme::testing::draw_schedule(42, 100);
  auto c = cyme::testing::draw_schedule(43, 100);
  BOOST_REQUIRE(a.size() == 100u);
  bool same = true;
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    same = same && a[i].op == b[i].op && a[i].target == b[i].target
           && a[i].arg == b[i].arg;
    differs = differs || a[i].op != c[i].op || a[i].arg != c[i].arg;
  }
  BOOST_TEST(same);
  BOOST_TEST(differs);
  auto r1 = cyme::testing::run_schedule(a, true);
  auto r2 = cyme::testing::run_schedule(a, true);
  BOOST_TEST(r1.timeline == r2.timeline);
  BOOST_TEST(r1.simulated_seconds > 0);
}

BOOST_AUTO_TEST_CASE(an_unknown_step_is_reported) {
  auto r = cyme::testing::run_schedule({{"explode", "w1", 0}});
  BOOST_TEST(r.violation.find("unknown step 'explode'") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

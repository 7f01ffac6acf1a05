// The restart limit: rate-limited verification restarts an instance at most
// restart_max_rate times, then disables it; explicit requests bypass and
// reset the limit.
#include <boost/test/unit_test.hpp>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;
using names = std::vector<std::string>;
using reports = std::vector<action_report>;

BOOST_FIXTURE_TEST_SUITE(rate_limit, supervision_fixture)

BOOST_AUTO_TEST_CASE(restart_storm_yields_one_restart_then_disables) {
  // A worker that dies right after every start is restarted once within the
  // minute, then disabled; the model says why and nothing restarts it.
  add_instance("w1");
  start();
  advance(1s);
  world.workers["w1"].crashes_on_start = true;
  kill("w1", true);
  advance(1h);
  auto& w = world.workers["w1"];
  BOOST_TEST(w.starts == 2u); // the first start and one restart
  BOOST_TEST(!w.running);
  BOOST_TEST(!world.model["w1"].enabled);
  BOOST_TEST(world.model["w1"].disabled_reason.find("restarted too often")
             != std::string::npos);
  BOOST_TEST(world.model["w1"].disabled_reason.find("1/m") != std::string::npos);
  auto st = status_of("w1");
  BOOST_TEST(to_string(st.state) == "disabled");
  BOOST_TEST(st.disabled_reason == world.model["w1"].disabled_reason);
  BOOST_TEST(events(event_kind::disabled, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(one_death_a_minute_is_restarted_every_time) {
  // Deaths further apart than the limit are all repaired; never disabled.
  add_instance("w1");
  start();
  advance(1s);
  for (int i = 0; i < 10; ++i) {
    kill("w1", true);
    BOOST_TEST(world.workers["w1"].running);
    advance(61s);
  }
  BOOST_TEST(world.workers["w1"].starts == 11u);
  BOOST_TEST(world.model["w1"].enabled);
  BOOST_TEST(status_of("w1").restarts == 10u);
}

BOOST_AUTO_TEST_CASE(deaths_within_the_minute_disable_the_instance) {
  // Two deaths 30 s apart under 1/m: the second is over the limit.
  add_instance("w1");
  start();
  advance(1s);
  kill("w1", true);
  BOOST_TEST(world.workers["w1"].running);
  advance(30s);
  kill("w1", true);
  BOOST_TEST(!world.workers["w1"].running);
  BOOST_TEST(!world.model["w1"].enabled);
  BOOST_TEST(world.workers["w1"].starts == 2u);
}

BOOST_AUTO_TEST_CASE(custom_rate_allows_its_burst) {
  // restart_max_rate 3/m: three quick restarts, the fourth disables.
  add_instance("w1");
  supervisor_settings s;
  s.restart_max_rate = "3/m";
  start(s);
  advance(1s);
  for (int i = 0; i < 3; ++i) {
    kill("w1", true);
    BOOST_TEST(world.workers["w1"].running);
    advance(1s);
  }
  kill("w1", true);
  BOOST_TEST(!world.workers["w1"].running);
  BOOST_TEST(!world.model["w1"].enabled);
  BOOST_TEST(world.workers["w1"].starts == 4u);
}

BOOST_AUTO_TEST_CASE(explicit_restart_bypasses_and_resets_the_bucket) {
  // With the token spent, an explicit restart still restarts, and refills
  // the bucket: the next death is repaired instead of disabling.
  add_instance("w1");
  start();
  advance(1s);
  kill("w1", true); // takes the only token
  BOOST_TEST(world.workers["w1"].starts == 2u);
  advance(5s);
  auto r = ask<reports>(restart_atom::value, names{"w1"});
  BOOST_TEST(to_string(r.at(0).result) == "restarted");
  BOOST_TEST(world.workers["w1"].starts == 3u);
  advance(5s);
  kill("w1", true); // a token is there again
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST(world.workers["w1"].starts == 4u);
  BOOST_TEST(world.model["w1"].enabled);
}

BOOST_AUTO_TEST_CASE(explicit_verify_is_not_rate_limited) {
  // verify(ratelimit=false) restarts even with the bucket empty.
  add_instance("w1");
  start();
  advance(1s);
  kill("w1", true);
  advance(5s);
  kill("w1", false);
  auto r = ask<reports>(verify_atom::value, names{"w1"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "restarted");
  BOOST_TEST(world.model["w1"].enabled);
}

BOOST_AUTO_TEST_CASE(rate_limited_verify_request_disables_over_the_limit) {
  // verify(ratelimit=true) is judged like a round.
  add_instance("w1");
  start();
  advance(1s);
  kill("w1", true);
  advance(5s);
  kill("w1", false);
  auto r = ask<reports>(verify_atom::value, names{"w1"}, true);
  BOOST_TEST(to_string(r.at(0).result) == "disabled");
  BOOST_TEST(!world.model["w1"].enabled);
}

BOOST_AUTO_TEST_SUITE_END()

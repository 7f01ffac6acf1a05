// The ping schedule after a restart: 0.1, 0.5, 0.9 s, then 1 s steps.
#include <boost/test/unit_test.hpp>

#include "actors/ping_schedule.hpp"

using namespace cyme;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(ping_schedule_suite)

BOOST_AUTO_TEST_CASE(seed_schedule_grows_then_steps_by_one_second) {
  // The default schedule starts 100, 500, 900 ms and steps 1 s up to ~30 s.
  ping_schedule s;
  auto& t = s.timeouts();
  BOOST_REQUIRE(t.size() > 4);
  BOOST_TEST(t[0].count() == 100);
  BOOST_TEST(t[1].count() == 500);
  BOOST_TEST(t[2].count() == 900);
  for (size_t i = 3; i < t.size(); ++i)
    BOOST_TEST(t[i].count() == 1000);
  BOOST_TEST((s.total() <= 30s));
  BOOST_TEST((s.total() >= 29s));
  BOOST_TEST(t.size() == 31u);
}

BOOST_AUTO_TEST_CASE(custom_schedule_stays_within_budget) {
  // Steps are added only while the total stays within the budget.
  ping_schedule s{{10ms}, 20ms, 75ms};
  BOOST_TEST(s.timeouts().size() == 4u);
  BOOST_TEST(s.total().count() == 70);
}

BOOST_AUTO_TEST_CASE(zero_step_adds_nothing) {
  // A non-positive step cannot loop forever.
  ping_schedule s{{10ms}, 0ms, 1s};
  BOOST_TEST(s.timeouts().size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

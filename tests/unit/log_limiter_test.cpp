// Lines that repeat are held back: per kind, a burst per window, and the
// first line of a later window says how many were held back.
#include <boost/test/unit_test.hpp>

#include "transport/logging.hpp"

using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(log_limiting)

BOOST_AUTO_TEST_CASE(a_kind_gets_its_burst_then_a_count_of_what_was_held) {
  cyme::log::limiter limiter{3, std::chrono::seconds{30}};
  auto t0 = cyme::log::limiter::clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(limiter.admit("FAIL", "down", t0 + i * 1s).value_or("held") == "down");
  for (int i = 3; i < 10; ++i)
    BOOST_TEST(!limiter.admit("FAIL", "down", t0 + i * 1s).has_value());
  // Another kind has its own burst.
  BOOST_TEST(limiter.admit("CLUSTERID", "other", t0 + 5s).has_value());
  // A new window: written, with the count of the window before.
  auto next = limiter.admit("FAIL", "down", t0 + 31s);
  BOOST_REQUIRE(next.has_value());
  BOOST_TEST(*next == "down (7 more FAIL lines held back in the last 30 s)");
  // Nothing held in that window: the next one says nothing more.
  auto later = limiter.admit("FAIL", "down", t0 + 62s);
  BOOST_REQUIRE(later.has_value());
  BOOST_TEST(*later == "down");
}

BOOST_AUTO_TEST_SUITE_END()

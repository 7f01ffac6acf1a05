// The restart limit: rate strings and the token bucket, with the clock
// passed in.
#include <boost/test/unit_test.hpp>

#include "actors/restart_bucket.hpp"

using namespace cyme;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(restart_limit)

BOOST_AUTO_TEST_CASE(rates_parse_per_second_minute_hour_and_bare) {
  // Each unit gives its period; a bare number means per second.
  auto one_per_minute = parse_rate("1/m");
  BOOST_REQUIRE(one_per_minute);
  BOOST_TEST(one_per_minute->count == 1);
  BOOST_TEST(one_per_minute->period.count() == 60);
  auto ten_per_second = parse_rate("10/s");
  BOOST_REQUIRE(ten_per_second);
  BOOST_TEST(ten_per_second->per_second() == 10);
  auto hundred_per_hour = parse_rate("100/h");
  BOOST_REQUIRE(hundred_per_hour);
  BOOST_TEST(hundred_per_hour->period.count() == 3600);
  BOOST_TEST(hundred_per_hour->count == 100);
  auto bare = parse_rate("5");
  BOOST_REQUIRE(bare);
  BOOST_TEST(bare->per_second() == 5);
  auto half = parse_rate("0.5/m");
  BOOST_REQUIRE(half);
  BOOST_TEST(half->count == 0.5);
}

BOOST_AUTO_TEST_CASE(invalid_rates_are_rejected_with_a_reason) {
  // Every malformed rate fails and says why.
  for (auto text : {"", "/m", "abc", "1/d", "0/m", "-1/m", "1/", "1.2.3/s",
                    ".", "1/mm", "1 /m", "nan/m"}) {
    std::string problem;
    BOOST_TEST(!parse_rate(text, &problem), "accepted '" << text << "'");
    BOOST_TEST(!problem.empty());
    BOOST_TEST(problem.find("invalid rate") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(one_per_minute_allows_one_then_one_a_minute_later) {
  // 1/m: a full bucket gives one token, the next comes 60 s later.
  steady_time t0{};
  restart_bucket bucket{*parse_rate("1/m"), t0};
  BOOST_TEST(bucket.try_take(t0));
  BOOST_TEST(!bucket.try_take(t0));
  BOOST_TEST(!bucket.try_take(t0 + 59s));
  BOOST_TEST(bucket.try_take(t0 + 60s));
  BOOST_TEST(!bucket.try_take(t0 + 61s));
}

BOOST_AUTO_TEST_CASE(n_per_period_allows_a_burst_of_n) {
  // 3/m: three at once, then one every 20 s; never more than three banked.
  steady_time t0{};
  restart_bucket bucket{*parse_rate("3/m"), t0};
  BOOST_TEST(bucket.try_take(t0));
  BOOST_TEST(bucket.try_take(t0));
  BOOST_TEST(bucket.try_take(t0));
  BOOST_TEST(!bucket.try_take(t0));
  BOOST_TEST(bucket.try_take(t0 + 20s));
  BOOST_TEST(bucket.tokens(t0 + 1h) == 3);
}

BOOST_AUTO_TEST_CASE(reset_fills_the_bucket) {
  // An explicit request forgives: after reset a token is there at once.
  steady_time t0{};
  restart_bucket bucket{*parse_rate("1/h"), t0};
  BOOST_TEST(bucket.try_take(t0));
  BOOST_TEST(!bucket.try_take(t0 + 1s));
  bucket.reset(t0 + 2s);
  BOOST_TEST(bucket.try_take(t0 + 2s));
}

BOOST_AUTO_TEST_CASE(fractional_rates_still_allow_one_restart) {
  // 0.5/m: capacity is at least one token, refilled every two minutes.
  steady_time t0{};
  restart_bucket bucket{*parse_rate("0.5/m"), t0};
  BOOST_TEST(bucket.try_take(t0));
  BOOST_TEST(!bucket.try_take(t0 + 60s));
  BOOST_TEST(bucket.try_take(t0 + 120s));
}

BOOST_AUTO_TEST_SUITE_END()

// The turns branches on one broker take at their rounds, and the
// announcements that tell them about each other.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "transport/presence.hpp"

using namespace cyme;
using namespace std::chrono_literals;
using ids = std::vector<std::string>;

namespace {

int64_t ms(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

} // namespace

BOOST_AUTO_TEST_SUITE(presence_turns)

BOOST_AUTO_TEST_CASE(live_branches_split_the_interval_in_the_order_of_their_ids) {
  // Whatever order they were heard in, each branch gets its own slot: k/n
  // of the interval, by its rank among the sorted ids.
  ids heard{"c", "a", "d", "b"};
  BOOST_TEST(ms(round_slot(heard, "a", 10s)) == 0);
  BOOST_TEST(ms(round_slot(heard, "b", 10s)) == 2500);
  BOOST_TEST(ms(round_slot(heard, "c", 10s)) == 5000);
  BOOST_TEST(ms(round_slot(heard, "d", 10s)) == 7500);
  BOOST_TEST(ms(round_slot(ids{"a"}, "a", 10s)) == 0);
  // Three branches in an interval that does not divide: no overflow, no
  // two slots alike, all within the interval.
  auto i = std::chrono::hours{24};
  auto s1 = round_slot(ids{"x", "y", "z"}, "y", i);
  auto s2 = round_slot(ids{"x", "y", "z"}, "z", i);
  BOOST_TEST(ms(s1) == ms(i) / 3);
  BOOST_TEST(ms(s2) == ms(i) * 2 / 3);
  // A branch that does not hear itself yet starts at the interval's start.
  BOOST_TEST(ms(round_slot(ids{"a", "b"}, "q", 10s)) == 0);
}

BOOST_AUTO_TEST_CASE(a_wall_clock_slot_becomes_an_offset_on_the_steady_clock) {
  // steady = wall - behind: the offset moves back by `behind` and wraps
  // into [0, interval), whatever the sign or size of `behind`.
  BOOST_TEST(ms(offset_on_clock(3s, 1s, 10s)) == 2000);
  BOOST_TEST(ms(offset_on_clock(3s, 5s, 10s)) == 8000);
  BOOST_TEST(ms(offset_on_clock(3s, 123s, 10s)) == 0);
  BOOST_TEST(ms(offset_on_clock(3s, -4s, 10s)) == 7000);
  BOOST_TEST(ms(offset_on_clock(0s, 0s, 10s)) == 0);
  // Checked the long way: a steady time on the offset is a wall time on
  // the slot.
  auto behind = std::chrono::nanoseconds{1'764'560'000'123'456'789};
  auto off = offset_on_clock(7s, behind, 60s);
  auto steady = std::chrono::nanoseconds{86'400'000'000'000} * 3 + off;
  BOOST_TEST(ms((steady + behind) % 60s) == 7000);
}

BOOST_AUTO_TEST_SUITE_END()

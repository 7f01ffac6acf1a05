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

BOOST_AUTO_TEST_SUITE(presence_announcements)

BOOST_AUTO_TEST_CASE(an_announcement_round_trips_with_an_http_or_https_url) {
  for (std::string url : {"http://10.0.0.2:8000", "https://h1.example:8443"}) {
    branch_info in{"h1", url, "10.0.0.2:4242", 12, 0.5};
    auto out = decode_presence(encode_presence(in));
    BOOST_TEST_REQUIRE(out.has_value(), url);
    BOOST_TEST(out->id == "h1");
    BOOST_TEST(out->http == url);
    BOOST_TEST(out->node == "10.0.0.2:4242");
    BOOST_TEST(out->instances == 12u);
    BOOST_TEST(out->load == 0.5);
  }
}

BOOST_AUTO_TEST_CASE(a_bad_announcement_is_dropped_with_the_reason) {
  auto with_url = [](const std::string& url) {
    return encode_presence(branch_info{"h1", url, "", 0, 0});
  };
  struct {
    std::string bytes;
    std::string says;
  } bad[] = {
    {"[1]", "not a JSON object"},
    {R"({"v":2,"id":"h1","http":"http://h:1","node":"","instances":0,"load":0})",
     "no \"v\": 1"},
    {R"({"v":1,"http":"http://h:1","node":"","instances":0,"load":0})",
     "lacks a string field"},
    {encode_presence(branch_info{"../x", "http://h:1", "", 0, 0}),
     "invalid branch id"},
    {with_url("ftp://h:1"), "invalid HTTP URL"},
    {with_url("h:1"), "invalid HTTP URL"},
    {with_url("https://" + std::string(300, 'h')), "invalid HTTP URL"},
    {R"({"v":1,"id":"h1","http":"http://h:1","node":"","instances":-1,"load":0})",
     "lacks instances or load"},
  };
  for (auto& b : bad) {
    std::string why;
    BOOST_TEST(!decode_presence(b.bytes, &why).has_value(), b.bytes);
    BOOST_TEST(why.find(b.says) != std::string::npos, why << " / " << b.says);
  }
}

BOOST_AUTO_TEST_SUITE_END()

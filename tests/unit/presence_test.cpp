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

BOOST_AUTO_TEST_SUITE(presence_view_of_the_cluster)

namespace {

presence_settings two_seconds() {
  presence_settings s;
  s.interval = 2s;
  s.cluster_rate = 5;
  s.silence_intervals = 3;
  return s;
}

branch_info said(const std::string& id, std::chrono::milliseconds every,
                 bool leaving = false) {
  branch_info b{id, "http://" + id + ":8000", "", 0, 0};
  b.every = every;
  b.leaving = leaving;
  return b;
}

/// A view at t0 that heard a (2 s), b (20 s) and c (at `c_every`).
presence_view heard_three(std::chrono::milliseconds c_every) {
  presence_view v{two_seconds(), "a"};
  presence_view::time_point t0{};
  v.heard(said("a", 2s), t0);
  v.heard(said("b", 20s), t0);
  v.heard(said("c", c_every), t0);
  return v;
}

ids ids_of(const std::vector<branch_info>& live) {
  ids out;
  for (auto& b : live)
    out.push_back(b.id);
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_interval_grows_with_the_cluster_and_the_cluster_rate_stays_bounded) {
  presence_view v{two_seconds(), "a"};
  // Up to ten branches each keeps the shortest interval.
  BOOST_TEST(v.announce_every(1).count() == 2000);
  BOOST_TEST(v.announce_every(10).count() == 2000);
  // Beyond, n / every stays at the cluster's 5 a second, so what a branch
  // reads is constant and the deliveries summed over all branches, n
  // times that, grow as n.
  BOOST_TEST(v.announce_every(11).count() == 2200);
  BOOST_TEST(v.announce_every(100).count() == 20000);
  for (std::size_t n : {10u, 11u, 37u, 100u, 1000u}) {
    double per_second = static_cast<double>(n) * 1000.0
                        / static_cast<double>(v.announce_every(n).count());
    BOOST_TEST(per_second <= 5.0, n);
    BOOST_TEST(per_second >= 4.9, n);
  }
  // With no cluster rate, every branch keeps the interval at any size.
  auto flat = two_seconds();
  flat.cluster_rate = 0;
  BOOST_TEST(presence_view(flat, "a").announce_every(100).count() == 2000);
}

BOOST_AUTO_TEST_CASE(a_branch_is_live_for_three_of_the_intervals_it_announced) {
  presence_view v{two_seconds(), "a"};
  presence_view::time_point t0{};
  v.heard(said("a", 20s), t0);
  // "b" did not say: it is judged by the default 2 s.
  v.heard(said("b", 0ms), t0);
  BOOST_TEST((ids_of(v.live(t0 + 6s)) == ids{"a", "b"}));
  auto live = v.live(t0 + 6s);
  BOOST_TEST(live[0].every.count() == 20000);
  BOOST_TEST(live[1].every.count() == 2000);
  BOOST_TEST((ids_of(v.live(t0 + 6001ms)) == ids{"a"}));
  BOOST_TEST((ids_of(v.live(t0 + 60s)) == ids{"a"}));
  BOOST_TEST(v.live(t0 + 60001ms).empty());
  // A later word brings a silent branch back.
  v.heard(said("b", 2s), t0 + 61s);
  BOOST_TEST((ids_of(v.live(t0 + 62s)) == ids{"b"}));
}

BOOST_AUTO_TEST_CASE(a_branch_that_says_it_is_leaving_drops_out_at_once) {
  auto v = heard_three(2s);
  presence_view::time_point t0{};
  v.heard(said("b", 0ms, true), t0 + 1s);
  BOOST_TEST((ids_of(v.live(t0 + 1s)) == ids{"a", "c"}));
  // Placements counted on a branch that is gone change nothing.
  v.placed_on("b");
  v.placed_on("c");
  BOOST_TEST(v.live(t0 + 1s)[1].instances == 1u);
  BOOST_TEST(v.live(t0 + 1s).size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_branch_that_takes_no_connection_is_out_until_it_announces_again) {
  auto v = heard_three(20s);
  presence_view::time_point t0{};
  // Out at once, long before its silence of a minute.
  BOOST_TEST(v.unreachable("b", t0 + 1s));
  BOOST_TEST((ids_of(v.live(t0 + 1s)) == ids{"a", "c"}));
  // Said again, or of a branch no one heard of: it was not live.
  BOOST_TEST(!v.unreachable("b", t0 + 2s));
  BOOST_TEST(!v.unreachable("zz", t0 + 2s));
  // This branch never leaves its own view.
  BOOST_TEST(!v.unreachable("a", t0 + 2s));
  BOOST_TEST((ids_of(v.live(t0 + 2s)) == ids{"a", "c"}));
  // Its next announcement brings it back.
  v.heard(said("b", 20s), t0 + 3s);
  BOOST_TEST((ids_of(v.live(t0 + 3s)) == ids{"a", "b", "c"}));
  // One past its silence was not live either.
  BOOST_TEST(!v.unreachable("c", t0 + 61s));
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

BOOST_AUTO_TEST_CASE(an_announcement_says_when_the_next_comes_and_when_it_leaves) {
  branch_info in{"h1", "http://h1:8000", "", 3, 0};
  in.every = 22000ms;
  auto out = decode_presence(encode_presence(in));
  BOOST_TEST_REQUIRE(out.has_value());
  BOOST_TEST(out->every.count() == 22000);
  BOOST_TEST(!out->leaving);
  in.every = 0ms;
  in.leaving = true;
  auto bytes = encode_presence(in);
  // Said only when there is something to say: a branch of an earlier
  // version reads both as it always did.
  BOOST_TEST(bytes.find("every") == std::string::npos);
  out = decode_presence(bytes);
  BOOST_TEST_REQUIRE(out.has_value());
  BOOST_TEST(out->every.count() == 0);
  BOOST_TEST(out->leaving);
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
    {R"({"v":1,"id":"h1","http":"http://h:1","node":"","instances":0,"load":0,"every":0})",
     "\"every\" that is not 1 to 86400000 ms"},
    {R"({"v":1,"id":"h1","http":"http://h:1","node":"","instances":0,"load":0,"every":-5})",
     "\"every\" that is not"},
    {R"({"v":1,"id":"h1","http":"http://h:1","node":"","instances":0,"load":0,"every":86400001})",
     "\"every\" that is not"},
    {R"({"v":1,"id":"h1","http":"http://h:1","node":"","instances":0,"load":0,"every":"2s"})",
     "\"every\" that is not"},
    {R"({"v":1,"id":"h1","http":"http://h:1","node":"","instances":0,"load":0,"leaving":1})",
     "\"leaving\" that is not true or false"},
  };
  for (auto& b : bad) {
    std::string why;
    BOOST_TEST(!decode_presence(b.bytes, &why).has_value(), b.bytes);
    BOOST_TEST(why.find(b.says) != std::string::npos, why << " / " << b.says);
  }
}

BOOST_AUTO_TEST_SUITE_END()

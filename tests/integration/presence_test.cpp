// Branches finding each other on a real Kafka protocol: the embedded
// cluster, or the real broker CYME_TEST_KAFKA names. Each participant is
// the presence of a branch, as cyme-branch runs it.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "stack.hpp"
#include "transport/kafka.hpp"
#include "transport/presence.hpp"

using namespace cyme;
using namespace cyme::test;
using namespace std::chrono_literals;

namespace {

std::string broker_named() {
  const char* real = std::getenv("CYME_TEST_KAFKA");
  return real != nullptr ? real : "";
}

/// The broker the tests run on: the real one when CYME_TEST_KAFKA names
/// it, else an embedded cluster of their own.
struct broker {
  broker() : bootstrap(broker_named()) {
    if (bootstrap.empty())
      bootstrap = embedded.emplace().bootstrap();
  }
  std::optional<kafka::embedded_cluster> embedded;
  std::string bootstrap;
};

/// Settings on a topic no earlier run used (a real broker keeps them).
presence_settings on_a_fresh_topic(std::chrono::milliseconds interval,
                                   double cluster_rate, int silence_intervals) {
  std::random_device rd;
  presence_settings s;
  s.topic = "t.presence." + std::to_string(rd()) + std::to_string(rd());
  s.interval = interval;
  s.cluster_rate = cluster_rate;
  s.silence_intervals = silence_intervals;
  return s;
}

std::unique_ptr<presence> branch(const broker& b, const presence_settings& s,
                                 const std::string& id) {
  return std::make_unique<presence>(kafka::base_config(b.bootstrap), s, [id] {
    return branch_info{id, "http://" + id + ":8000", "", 0, 0};
  });
}

std::string id_of(int i) {
  char id[8];
  std::snprintf(id, sizeof id, "b%02d", i);
  return id;
}

} // namespace

BOOST_AUTO_TEST_SUITE(presence_cluster)

BOOST_AUTO_TEST_CASE(a_cluster_announces_at_its_rate_however_many_branches_it_has) {
  // Twelve branches at a shortest interval of 100 ms would announce 120
  // times a second together, and each would read all 120. With the
  // cluster's rate at 40 a second each announces every 300 ms instead,
  // and says so.
  broker b;
  // A silence of 20 intervals, long enough that a loaded machine never
  // drops a branch here: what is asserted is the rate.
  auto s = on_a_fresh_topic(100ms, 40, 20);
  const int n = 12;
  std::vector<std::unique_ptr<presence>> all;
  for (int i = 0; i < n; ++i)
    all.push_back(branch(b, s, id_of(i)));
  auto everyone_sees_everyone = [&] {
    return std::all_of(all.begin(), all.end(), [&](auto& p) {
      auto live = p->live();
      return live.size() == static_cast<size_t>(n)
             && std::all_of(live.begin(), live.end(),
                            [](auto& x) { return x.every == 300ms; });
    });
  };
  BOOST_TEST_REQUIRE(wait_until(everyone_sees_everyone, 30s));
  // What a branch reads: count the announcements over three seconds.
  kafka::topic_reader reader{kafka::base_config(b.bootstrap), s.topic};
  size_t heard = 0;
  auto start = std::chrono::steady_clock::now();
  auto window = 3s;
  while (std::chrono::steady_clock::now() - start < window)
    if (reader.poll(20))
      ++heard;
  double seconds = std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - start)
                     .count();
  double rate = static_cast<double>(heard) / seconds;
  BOOST_TEST_MESSAGE("announcements a second: " << rate);
  // At most 12 x (3 s / 300 ms + 1) = 132 in the window, 44 a second;
  // every 100 ms it would be 120 a second.
  BOOST_TEST(rate <= 50.0);
  BOOST_TEST(heard >= 1u);
  BOOST_TEST(everyone_sees_everyone());
}

BOOST_AUTO_TEST_CASE(a_branch_that_stops_leaves_the_others_view_at_once) {
  // Its silence would take a minute; its leaving is heard within seconds.
  broker b;
  auto s = on_a_fresh_topic(2s, 5, 30);
  auto stays = branch(b, s, "stays");
  auto goes = branch(b, s, "goes");
  auto sees = [&](const presence& p, size_t count) {
    return [&p, count] { return p.live().size() == count; };
  };
  BOOST_TEST_REQUIRE(wait_until(sees(*stays, 2), 20s));
  BOOST_TEST_REQUIRE(wait_until(sees(*goes, 2), 20s));
  goes.reset();
  BOOST_TEST(wait_until(sees(*stays, 1), 15s));
  auto left = stays->live();
  BOOST_TEST((left.size() == 1 && left[0].id == "stays"));
}

// The embedded cluster looks up no offsets by time: a late branch hears
// the others at their next announcement there.
BOOST_AUTO_TEST_CASE(a_branch_that_starts_late_knows_the_cluster_at_once,
                     *boost::unit_test::precondition([](auto) {
                       return !broker_named().empty();
                     })) {
  // The others announce only every 30 s: a branch joining reads what they
  // said before it started, on a broker that looks up offsets by time.
  broker b;
  auto s = on_a_fresh_topic(30s, 0, 3);
  auto first = branch(b, s, "first");
  auto second = branch(b, s, "second");
  // Each announced once at its start: "first" hears "second" then.
  BOOST_TEST_REQUIRE(wait_until([&] { return first->live().size() == 2; }, 20s));
  auto late = branch(b, s, "late");
  BOOST_TEST(wait_until([&] { return late->live().size() == 3; }, 20s));
}

BOOST_AUTO_TEST_SUITE_END()

// Scale: a round over 10,000 instances costs O(N) control messages: one
// batched stats command per broker, one reply per instance, plus only what
// repairs need.
#include <boost/test/unit_test.hpp>

#include <set>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;

BOOST_FIXTURE_TEST_SUITE(scale, supervision_fixture)

BOOST_AUTO_TEST_CASE(ten_thousand_instances_in_one_round_cost_linear_messages) {
  // Round 2 over 10,000 healthy instances: 1 command and N replies.
  // Round 3 with 100 dead: the same plus a bounded cost per restart.
  constexpr size_t n = 10000;
  for (size_t i = 0; i < n; ++i)
    add_instance("w" + std::to_string(i), {"q" + std::to_string(i % 10)});
  start();
  advance(1s);
  BOOST_TEST(world.total_starts() == n);
  BOOST_TEST(events(event_kind::round_finished) == 1u);

  auto commands = world.commands.size();
  auto replies = world.replies;
  auto alive_asks = world.alive_asks;
  auto alive_list_asks = world.alive_list_asks;
  auto jobs = jobs_run;
  advance(60s);
  BOOST_TEST(events(event_kind::round_finished) == 2u);
  auto round_commands = world.commands.size() - commands;
  auto round_replies = world.replies - replies;
  BOOST_TEST(round_commands == 1u);
  BOOST_TEST(round_replies == n);
  BOOST_TEST(world.commands[commands].destinations.size() == n);
  BOOST_TEST(world.total_starts() == n);
  // The driver is asked once which processes run, not once per instance.
  BOOST_TEST(world.alive_list_asks - alive_list_asks == 1u);
  BOOST_TEST(world.alive_asks - alive_asks == 0u);
  // The probe settles every verify: the instance actors are not asked, so
  // the round's messages do not grow with the fleet.
  BOOST_TEST(jobs_run - jobs < 100u, "a steady round ran " << jobs_run - jobs << " jobs");

  for (size_t i = 0; i < 100; ++i)
    kill("w" + std::to_string(i * 97), false);
  commands = world.commands.size();
  replies = world.replies;
  advance(61s);
  BOOST_TEST(events(event_kind::round_finished) == 3u);
  BOOST_TEST(world.total_starts() == n + 100);
  round_commands = world.commands.size() - commands;
  round_replies = world.replies - replies;
  // Per restart: one ping and one stats, each answered once.
  BOOST_TEST(round_commands == 1u + 2 * 100);
  BOOST_TEST(round_replies == (n - 100) + 2 * 100);
  BOOST_TEST(round_commands + round_replies <= n + 4 * 100 + 1);
}

BOOST_AUTO_TEST_CASE(brokers_are_probed_with_one_command_each) {
  // Instances spread over three brokers: one stats command per broker.
  for (size_t i = 0; i < 300; ++i)
    add_instance("w" + std::to_string(i), {},
                 "k" + std::to_string(i % 3) + ":9092");
  start();
  advance(1s);
  auto commands = world.commands.size();
  advance(60s);
  BOOST_TEST_REQUIRE(world.commands.size() - commands == 3u);
  std::set<std::string> brokers;
  for (size_t i = commands; i < world.commands.size(); ++i) {
    BOOST_TEST((world.commands[i].op == control_op::stats));
    BOOST_TEST(world.commands[i].destinations.size() == 100u);
    brokers.insert(world.commands[i].broker);
  }
  BOOST_TEST(brokers.size() == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

// Commands for one instance each, gathered into one command per kind
// (transport/command_batch.hpp): what shares a command, what does not, and
// who gets which reply.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "transport/command_batch.hpp"

using namespace cyme;
using namespace std::chrono_literals;

namespace {

control_command one(control_op op, std::string name,
                    caf::timespan timeout = caf::timespan{100ms}) {
  control_command cmd;
  cmd.op = op;
  cmd.destinations = {std::move(name)};
  cmd.timeout = timeout;
  return cmd;
}

} // namespace

BOOST_AUTO_TEST_SUITE(command_batch_gathering)

BOOST_AUTO_TEST_CASE(the_same_question_to_many_instances_is_one_command) {
  command_batch<int> b;
  BOOST_TEST(b.empty());
  for (int i = 0; i < 1000; ++i)
    b.add(one(control_op::ping, "w" + std::to_string(i)), i);
  BOOST_TEST(!b.empty());
  auto taken = b.take();
  BOOST_TEST(b.empty());
  BOOST_TEST_REQUIRE(taken.size() == 1u);
  auto& g = taken.front();
  BOOST_TEST((g.command.op == control_op::ping));
  BOOST_TEST((g.command.timeout == caf::timespan{100ms}));
  BOOST_TEST_REQUIRE(g.command.destinations.size() == 1000u);
  // In the order they came, each with its own caller.
  BOOST_TEST(g.command.destinations.front() == "w0");
  BOOST_TEST(g.command.destinations.back() == "w999");
  BOOST_TEST(g.callers.size() == 1000u);
  auto c = g.callers.equal_range("w7");
  BOOST_TEST_REQUIRE(std::distance(c.first, c.second) == 1);
  BOOST_TEST(c.first->second == 7);
  // Taken once: nothing is sent twice.
  BOOST_TEST(b.take().empty());
}

BOOST_AUTO_TEST_CASE(different_questions_stay_apart) {
  // Op, timeout, queue, concurrency and broker each make another command.
  command_batch<int> b;
  b.add(one(control_op::ping, "a"), 1);
  b.add(one(control_op::ping, "b", caf::timespan{500ms}), 2);
  b.add(one(control_op::stats, "a"), 3);
  auto add = one(control_op::add_consumer, "a");
  add.queue = "q1";
  b.add(add, 4);
  add.queue = "q2";
  b.add(add, 5);
  auto scale = one(control_op::autoscale, "a");
  scale.max_concurrency = 4;
  scale.min_concurrency = 1;
  b.add(scale, 6);
  scale.max_concurrency = 8;
  b.add(scale, 7);
  auto elsewhere = one(control_op::ping, "c");
  elsewhere.broker = "other:9092";
  b.add(elsewhere, 8);
  auto taken = b.take();
  BOOST_TEST(taken.size() == 8u);
  for (auto& g : taken) {
    BOOST_TEST(g.command.destinations.size() == 1u);
    BOOST_TEST(g.callers.size() == 1u);
  }
  auto q2 = std::find_if(taken.begin(), taken.end(), [](auto& g) {
    return g.command.queue == "q2";
  });
  BOOST_TEST_REQUIRE((q2 != taken.end()));
  BOOST_TEST(q2->callers.begin()->second == 5);
  auto other = std::find_if(taken.begin(), taken.end(), [](auto& g) {
    return g.command.broker == "other:9092";
  });
  BOOST_TEST_REQUIRE((other != taken.end()));
  BOOST_TEST(other->command.destinations.front() == "c");
}

BOOST_AUTO_TEST_CASE(an_instance_asked_twice_is_named_once_and_answers_both) {
  command_batch<int> b;
  b.add(one(control_op::ping, "w1"), 1);
  b.add(one(control_op::ping, "w2"), 2);
  b.add(one(control_op::ping, "w1"), 3);
  auto taken = b.take();
  BOOST_TEST_REQUIRE(taken.size() == 1u);
  auto& g = taken.front();
  BOOST_TEST(g.command.destinations == (std::vector<std::string>{"w1", "w2"}),
             boost::test_tools::per_element());
  auto w1 = g.callers.equal_range("w1");
  std::vector<int> callers;
  for (auto i = w1.first; i != w1.second; ++i)
    callers.push_back(i->second);
  BOOST_TEST(callers == (std::vector<int>{1, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

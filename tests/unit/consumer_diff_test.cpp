// The consumer diff: what to add and cancel so an instance consumes exactly
// its model's queues, never touching its direct queue.
#include <boost/test/unit_test.hpp>

#include "actors/consumer_diff.hpp"

using namespace cyme;
using strings = std::vector<std::string>;

BOOST_AUTO_TEST_SUITE(consumer_diff_suite)

BOOST_AUTO_TEST_CASE(consistent_instance_needs_nothing) {
  // Model and instance agree: the diff is empty.
  auto d = diff_consumers({"a", "b"}, {"dq.w1", "b", "a"}, "dq.w1");
  BOOST_TEST(d.empty());
}

BOOST_AUTO_TEST_CASE(missing_queues_are_added_in_model_order) {
  // Queues the instance lacks are added, in the model's order.
  auto d = diff_consumers({"a", "b", "c"}, {"dq.w1", "b"}, "dq.w1");
  BOOST_TEST(d.to_add == (strings{"a", "c"}), boost::test_tools::per_element());
  BOOST_TEST(d.to_cancel.empty());
}

BOOST_AUTO_TEST_CASE(extra_queues_are_cancelled_but_never_the_direct_queue) {
  // Queues the model lacks are cancelled; the direct queue never is.
  auto d = diff_consumers({}, {"dq.w1", "x", "y"}, "dq.w1");
  BOOST_TEST(d.to_add.empty());
  BOOST_TEST(d.to_cancel == (strings{"x", "y"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_missing_direct_queue_is_added) {
  // The direct queue is always wanted.
  auto d = diff_consumers({"a"}, {"a"}, "dq.w1");
  BOOST_TEST(d.to_add == (strings{"dq.w1"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(drift_both_ways) {
  // Both directions at once, each queue once even if reported twice.
  auto d = diff_consumers({"a", "b"}, {"dq.w1", "b", "c", "c"}, "dq.w1");
  BOOST_TEST(d.to_add == (strings{"a"}), boost::test_tools::per_element());
  BOOST_TEST(d.to_cancel == (strings{"c"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

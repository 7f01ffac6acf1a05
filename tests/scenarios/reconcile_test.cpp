// Consumers and concurrency: an instance is made to consume exactly its
// model's queues (its direct queue untouched) at its model's concurrency.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include "testing/fixture.hpp"

using namespace cyme;
using namespace cyme::testing;
using namespace std::chrono_literals;
using names = std::vector<std::string>;
using reports = std::vector<action_report>;

namespace {

std::vector<std::string> sorted(std::vector<std::string> xs) {
  std::sort(xs.begin(), xs.end());
  return xs;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(reconcile, supervision_fixture)

BOOST_AUTO_TEST_CASE(consistent_instance_gets_no_commands) {
  // Nothing drifted: a verification sends no add, cancel or autoscale.
  add_instance("w1", {"q1", "q2"});
  start();
  advance(1s);
  auto r = ask<reports>(verify_atom::value, names{"w1"}, false);
  BOOST_TEST(to_string(r.at(0).result) == "verified");
  BOOST_TEST(world.count(control_op::add_consumer) == 0u);
  BOOST_TEST(world.count(control_op::cancel_consumer) == 0u);
  BOOST_TEST(world.count(control_op::autoscale) == 0u);
}

BOOST_AUTO_TEST_CASE(queue_drift_both_ways_sends_exactly_the_needed_commands) {
  // Model gains q3 and loses q1; the worker also picked up a stray queue.
  // Exactly add q3, cancel q1 and the stray; the direct queue is untouched.
  add_instance("w1", {"q1", "q2"});
  start();
  advance(1s);
  world.model["w1"].queues = {"q2", "q3"};
  world.workers["w1"].queues.push_back("stray");
  advance(61s);
  BOOST_TEST(world.count(control_op::add_consumer) == 1u);
  BOOST_TEST(world.count(control_op::cancel_consumer) == 2u);
  for (auto& c : world.commands) {
    if (c.op == control_op::add_consumer)
      BOOST_TEST(c.queue == "q3");
    if (c.op == control_op::cancel_consumer) {
      BOOST_TEST((c.queue == "q1" || c.queue == "stray"));
      BOOST_TEST(c.queue != "dq.w1");
    }
  }
  BOOST_TEST(sorted(world.workers["w1"].queues)
               == sorted({"dq.w1", "q2", "q3"}),
             boost::test_tools::per_element());
  auto st = status_of("w1");
  BOOST_TEST(sorted(st.consuming_from) == sorted({"dq.w1", "q2", "q3"}),
             boost::test_tools::per_element());
  BOOST_TEST(events(event_kind::consume_from, "w1") == 1u);
  BOOST_TEST(events(event_kind::cancel_consume, "w1") == 2u);
  // Consistent now: the next round sends nothing more.
  advance(61s);
  BOOST_TEST(world.count(control_op::add_consumer) == 1u);
  BOOST_TEST(world.count(control_op::cancel_consumer) == 2u);
}

BOOST_AUTO_TEST_CASE(lost_direct_queue_is_consumed_again) {
  // A worker that lost its direct queue gets add_consumer for it.
  add_instance("w1", {"q1"});
  start();
  advance(1s);
  auto& qs = world.workers["w1"].queues;
  qs.erase(std::remove(qs.begin(), qs.end(), "dq.w1"), qs.end());
  advance(61s);
  BOOST_TEST(world.count(control_op::add_consumer) == 1u);
  BOOST_TEST((world.commands.back().op == control_op::add_consumer));
  BOOST_TEST(world.commands.back().queue == "dq.w1");
}

BOOST_AUTO_TEST_CASE(concurrency_drift_sends_one_autoscale) {
  // max/min changed in the model: one autoscale with both bounds.
  add_instance("w1", {"q1"});
  start();
  advance(1s);
  world.model["w1"].max_concurrency = 8;
  world.model["w1"].min_concurrency = 2;
  advance(61s);
  BOOST_TEST(world.count(control_op::autoscale) == 1u);
  auto& w = world.workers["w1"];
  BOOST_TEST(w.autoscale_max == 8u);
  BOOST_TEST(w.autoscale_min == 2u);
  auto st = status_of("w1");
  BOOST_TEST(st.autoscale_max == 8u);
  BOOST_TEST(st.autoscale_min == 2u);
  BOOST_TEST(events(event_kind::set_autoscale, "w1") == 1u);
  advance(61s);
  BOOST_TEST(world.count(control_op::autoscale) == 1u);
}

BOOST_AUTO_TEST_CASE(worker_side_concurrency_drift_is_corrected) {
  // The worker drifted on its own (only min differs): one autoscale.
  add_instance("w1");
  start();
  advance(1s);
  world.workers["w1"].autoscale_min = 0;
  advance(61s);
  BOOST_TEST(world.count(control_op::autoscale) == 1u);
  BOOST_TEST(world.workers["w1"].autoscale_min == 1u);
}

BOOST_AUTO_TEST_CASE(restarted_instance_is_reconciled) {
  // A death is repaired at once from the spec the supervisor holds, without
  // waiting for the model store. The model, read meanwhile, gained a queue
  // behind the branch's back: once the restart is done the instance is
  // verified again and the queue added, once.
  add_instance("w1", {"q1"});
  start();
  advance(1s);
  auto pid = world.workers["w1"].pid;
  world.model["w1"].queues = {"q1", "q2"};
  kill("w1", true);
  BOOST_TEST(world.workers["w1"].running);
  BOOST_TEST(world.workers["w1"].pid != pid);
  BOOST_TEST(world.count(control_op::add_consumer, "w1") == 1u);
  BOOST_TEST(world.count(control_op::stats, "w1") >= 1u);
  BOOST_TEST(sorted(status_of("w1").consuming_from)
               == sorted({"dq.w1", "q1", "q2"}),
             boost::test_tools::per_element());
  // Nothing more to fix: the next round adds nothing.
  advance(61s);
  BOOST_TEST(world.count(control_op::add_consumer, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(a_repair_checked_against_the_model_stops_what_it_disabled) {
  // Disabled in the file behind the branch's back, then dead: the repair
  // from the spec the supervisor held starts it, and the model's spec, read
  // meanwhile, stops it again and keeps it down.
  add_instance("w1", {"q1"});
  start();
  advance(1s);
  world.model["w1"].enabled = false;
  world.model["w1"].disabled_reason = "by hand";
  kill("w1", true);
  advance(2s);
  BOOST_TEST(!world.workers["w1"].running);
  BOOST_TEST(status_of("w1").disabled_reason == "by hand");
  advance(61s);
  BOOST_TEST(!world.workers["w1"].running);
}

BOOST_AUTO_TEST_SUITE_END()

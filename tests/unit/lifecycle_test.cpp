// The instance lifecycle table (actors/lifecycle.hpp), cell by cell: every
// phase crossed with every event is one test case (`cell_<phase>_<event>`),
// checked against the expectation written below: the phase after and the
// actions, in order. Cells not written are either a request arriving while
// an operation runs (queued: no action) or an answer the phase does not
// await (dropped: no action, nothing changes). Every answer is also sent
// with a wrong tag, which the table must drop. Then the policies the table
// leans on: merging of waiting verifies, probes older than a start, a
// process exiting before its start is answered, every answer to a restart
// permit, the restart permit policy.
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "actors/lifecycle.hpp"
#include "actors/restart_bucket.hpp"

namespace bdata = boost::unit_test::data;
using namespace cyme;
using cyme::lifecycle::action;
using cyme::lifecycle::action_kind;
using cyme::lifecycle::clock_reading;
using cyme::lifecycle::command_result;
using cyme::lifecycle::event;
using cyme::lifecycle::event_count;
using cyme::lifecycle::initial_status;
using cyme::lifecycle::machine;
using cyme::lifecycle::phase;
using cyme::lifecycle::phase_count;
using cyme::lifecycle::settings;
using cyme::lifecycle::step;
using ev_kind = cyme::lifecycle::event_kind;
using namespace std::chrono_literals;

namespace {

constexpr int32_t old_pid = 7;
constexpr int32_t new_pid = 8;

instance_spec worker_spec() {
  instance_spec s;
  s.name = "w1";
  s.app = "demo";
  s.queues = {"q"};
  s.max_concurrency = 2;
  s.min_concurrency = 1;
  return s;
}

event request(ev_kind kind, instance_spec spec = worker_spec()) {
  event ev;
  ev.kind = kind;
  ev.spec = std::move(spec);
  return ev;
}

/// A machine and the clock it is driven by.
struct driver {
  machine m{settings{}, initial_status(worker_spec()), true};
  int64_t t = 1'000'000'000;

  step feed(event ev) {
    t += 1'000'000;
    return m.handle(ev, clock_reading{t, t / 1'000'000});
  }

  /// An answer to what the current phase awaits.
  step answer(ev_kind kind) {
    return answer(kind, [](event&) {});
  }

  template <class F>
  step answer(ev_kind kind, F fill) {
    event ev;
    ev.kind = kind;
    ev.tag = m.awaiting();
    fill(ev);
    return feed(ev);
  }
};

worker_stats stats_without_queue() {
  worker_stats s;
  s.queues = {direct_queue("w1")};
  s.autoscale_max = 2;
  s.autoscale_min = 1;
  return s;
}

/// A machine brought into phase `p` the way a real instance gets there.
driver in_phase(phase p) {
  driver d;
  auto checked = [&](int32_t pid) {
    d.answer(ev_kind::checked, [pid](event& ev) { ev.pid = pid; });
  };
  auto to_replacing = [&] {
    d.feed(request(ev_kind::verify));
    checked(0);
    d.answer(ev_kind::permit,
             [](event& ev) { ev.permit = restart_permit::granted; });
  };
  auto to_pinging = [&] {
    to_replacing();
    d.answer(ev_kind::stop_done);
    d.answer(ev_kind::started, [](event& ev) { ev.pid = new_pid; });
  };
  auto to_fetching = [&] {
    d.feed(request(ev_kind::verify));
    checked(old_pid);
    d.answer(ev_kind::pong);
  };
  switch (p) {
    case phase::idle:
      break;
    case phase::checking:
      d.feed(request(ev_kind::verify));
      break;
    case phase::probing:
      d.feed(request(ev_kind::verify));
      checked(old_pid);
      break;
    case phase::permitting:
      d.feed(request(ev_kind::verify));
      checked(0);
      break;
    case phase::stopping:
      d.feed(request(ev_kind::shutdown));
      break;
    case phase::replacing:
      to_replacing();
      break;
    case phase::starting:
      to_replacing();
      d.answer(ev_kind::stop_done);
      break;
    case phase::pinging:
      to_pinging();
      break;
    case phase::rechecking:
      to_pinging();
      d.answer(ev_kind::ping_timeout);
      break;
    case phase::fetching:
      to_fetching();
      break;
    case phase::reconciling:
      to_fetching();
      d.answer(ev_kind::stats, [](event& ev) {
        ev.has_stats = true;
        ev.stats = stats_without_queue();
      });
      break;
  }
  BOOST_REQUIRE_MESSAGE(d.m.current() == p,
                        "setup reached " << to_string(d.m.current())
                                         << " instead of " << to_string(p));
  return d;
}

/// The event of kind `e` a cell is tested with, answering what the machine
/// awaits.
event cell_event(const driver& d, ev_kind e) {
  event ev;
  if (e == ev_kind::verify || e == ev_kind::restart
      || e == ev_kind::shutdown || e == ev_kind::remove)
    return request(e);
  ev.kind = e;
  ev.tag = d.m.awaiting();
  switch (e) {
    case ev_kind::disable:
      ev.text = "by an operator";
      break;
    case ev_kind::exited:
      // The instance's own process when it has one.
      ev.pid = d.m.status().pid != 0 ? d.m.status().pid : old_pid;
      ev.wait_status = 9;
      break;
    case ev_kind::checked:
    case ev_kind::stop_done:
      ev.pid = old_pid;
      break;
    case ev_kind::started:
      ev.pid = new_pid;
      break;
    case ev_kind::permit:
      ev.permit = restart_permit::granted;
      break;
    case ev_kind::start_failed:
    case ev_kind::failed:
      ev.text = "refused";
      break;
    case ev_kind::pong:
      ev.rtt_us = 900;
      break;
    case ev_kind::stats:
      ev.has_stats = true;
      ev.stats = stats_without_queue();
      break;
    case ev_kind::reconciled:
      // One command is out in the reconciling phase: add_consumer q.
      ev.results = {command_result{true, {}}};
      break;
    case ev_kind::answered:
      // About the instance's own process: only an idle machine takes it.
      ev.probe.probed = true;
      ev.probe.pong = true;
      ev.probe.has_stats = true;
      ev.probe.stats = stats_without_queue();
      ev.probe.pid = d.m.status().pid;
      break;
    default:
      break;
  }
  return ev;
}

struct expectation {
  phase after;
  std::vector<action_kind> actions;
};

using AK = action_kind;
using P = phase;
using E = ev_kind;

/// Every cell that does something. The rest: a request while an operation
/// runs is queued, any other event is dropped; both leave the phase and do
/// nothing.
const std::map<std::pair<P, E>, expectation>& table() {
  static const std::map<std::pair<P, E>, expectation> t{
    // Requests begin an operation when idle.
    {{P::idle, E::verify}, {P::checking, {AK::check}}},
    {{P::idle, E::restart}, {P::permitting, {AK::ask_permit}}},
    {{P::idle, E::shutdown}, {P::stopping, {AK::stop}}},
    {{P::idle, E::remove}, {P::stopping, {AK::stop}}},
    // A disable changes the status in every phase; the stop follows as an
    // operation of its own.
    {{P::idle, E::disable}, {P::idle, {AK::report}}},
    {{P::checking, E::disable}, {P::checking, {AK::report}}},
    {{P::probing, E::disable}, {P::probing, {AK::report}}},
    {{P::permitting, E::disable}, {P::permitting, {AK::report}}},
    {{P::stopping, E::disable}, {P::stopping, {AK::report}}},
    {{P::replacing, E::disable}, {P::replacing, {AK::report}}},
    {{P::starting, E::disable}, {P::starting, {AK::report}}},
    {{P::pinging, E::disable}, {P::pinging, {AK::report}}},
    {{P::rechecking, E::disable}, {P::rechecking, {AK::report}}},
    {{P::fetching, E::disable}, {P::fetching, {AK::report}}},
    {{P::reconciling, E::disable}, {P::reconciling, {AK::report}}},
    // An exit is recorded in every phase; when it is the process the
    // operation works on, the operation ends ("interrupted").
    {{P::idle, E::exited}, {P::idle, {AK::report}}},
    {{P::checking, E::exited}, {P::checking, {AK::report}}},
    {{P::probing, E::exited}, {P::idle, {AK::report, AK::answer}}},
    {{P::permitting, E::exited}, {P::permitting, {AK::report}}},
    {{P::stopping, E::exited}, {P::stopping, {AK::report}}},
    {{P::replacing, E::exited}, {P::replacing, {AK::report}}},
    {{P::starting, E::exited}, {P::starting, {AK::report}}},
    {{P::pinging, E::exited}, {P::idle, {AK::report, AK::answer}}},
    {{P::rechecking, E::exited}, {P::idle, {AK::report, AK::answer}}},
    {{P::fetching, E::exited}, {P::idle, {AK::report, AK::answer}}},
    {{P::reconciling, E::exited}, {P::idle, {AK::report, AK::answer}}},
    // Answers, each in the phase that awaits it.
    {{P::checking, E::checked}, {P::probing, {AK::ping, AK::report}}},
    {{P::rechecking, E::checked}, {P::pinging, {AK::ping}}},
    {{P::permitting, E::permit},
     {P::replacing, {AK::emit, AK::stop, AK::report}}},
    {{P::stopping, E::stop_done},
     {P::idle, {AK::emit, AK::report, AK::answer}}},
    {{P::replacing, E::stop_done}, {P::starting, {AK::start, AK::report}}},
    {{P::starting, E::started}, {P::pinging, {AK::ping, AK::report}}},
    {{P::starting, E::start_failed}, {P::idle, {AK::report, AK::answer}}},
    {{P::probing, E::pong}, {P::fetching, {AK::fetch_stats, AK::report}}},
    {{P::pinging, E::pong},
     {P::fetching, {AK::emit, AK::fetch_stats, AK::report}}},
    {{P::probing, E::ping_timeout}, {P::permitting, {AK::ask_permit}}},
    {{P::pinging, E::ping_timeout}, {P::rechecking, {AK::check}}},
    {{P::fetching, E::stats}, {P::reconciling, {AK::reconcile, AK::report}}},
    {{P::reconciling, E::reconciled},
     {P::idle, {AK::emit, AK::report, AK::answer}}},
    // A request that failed.
    {{P::checking, E::failed}, {P::idle, {AK::answer}}},
    {{P::probing, E::failed}, {P::idle, {AK::answer}}},
    {{P::permitting, E::failed}, {P::idle, {AK::answer}}},
    {{P::stopping, E::failed}, {P::idle, {AK::answer}}},
    {{P::replacing, E::failed}, {P::idle, {AK::report, AK::answer}}},
    {{P::starting, E::failed}, {P::idle, {AK::report, AK::answer}}},
    {{P::pinging, E::failed}, {P::rechecking, {AK::check}}},
    {{P::rechecking, E::failed},
     {P::idle, {AK::emit, AK::report, AK::answer}}},
    {{P::fetching, E::failed}, {P::idle, {AK::answer}}},
  };
  return t;
}

std::string kinds(const std::vector<action>& actions) {
  std::ostringstream out;
  for (auto& a : actions)
    out << to_string(a.kind) << " ";
  return out.str();
}

std::string kinds(const std::vector<action_kind>& actions) {
  std::ostringstream out;
  for (auto& a : actions)
    out << to_string(a) << " ";
  return out.str();
}

bool is_answer(ev_kind e) {
  return e != E::verify && e != E::restart && e != E::shutdown
         && e != E::remove && e != E::disable && e != E::exited;
}

/// Brings a pinging start to its end: pong, then stats that match the spec.
void settle_start(driver& d) {
  d.answer(E::pong);
  d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  });
  BOOST_REQUIRE_EQUAL(to_string(d.m.current()), "idle");
}

/// A round's verify whose probe, sent just now, found the process silent.
event silent_in_the_round(const driver& d) {
  auto v = request(ev_kind::verify);
  v.probe.probed = true;
  v.probe.pong = false;
  v.probe.sent_at_ns = d.t + 1;
  return v;
}

/// Grants the permit the machine asked for; the reason its restarting
/// event gives (empty when none).
std::string reason_once_granted(driver& d) {
  auto s = d.answer(E::permit,
                    [](event& ev) { ev.permit = restart_permit::granted; });
  for (auto& a : s.actions)
    if (a.kind == AK::emit && a.event.kind == cyme::event_kind::restarting)
      return a.event.detail;
  return {};
}

/// The driver's report that `pid` was killed.
event killed(int32_t pid) {
  event gone;
  gone.kind = E::exited;
  gone.pid = pid;
  gone.wait_status = 9;
  return gone;
}

} // namespace

BOOST_AUTO_TEST_SUITE(lifecycle_table)

BOOST_DATA_TEST_CASE(cell, bdata::xrange(phase_count) * bdata::xrange(event_count),
                     pi, ei) {
  auto p = static_cast<phase>(pi);
  auto e = static_cast<ev_kind>(ei);
  BOOST_TEST_CONTEXT("phase " << to_string(p) << ", event " << to_string(e)) {
    auto d = in_phase(p);
    auto before = d.m.status();
    auto queued_before = d.m.queued();
    auto ev = cell_event(d, e);
    auto s = d.feed(ev);
    auto found = table().find({p, e});
    if (found != table().end()) {
      BOOST_TEST(s.applied);
      BOOST_TEST(to_string(d.m.current()) == to_string(found->second.after));
      BOOST_TEST(kinds(s.actions) == kinds(found->second.actions));
    } else if (!is_answer(e)) {
      // A request while an operation runs: queued behind it.
      BOOST_TEST(to_string(p) != "idle");
      BOOST_TEST(s.actions.empty(), kinds(s.actions));
      BOOST_TEST(d.m.queued() == queued_before + 1);
      BOOST_TEST(to_string(d.m.current()) == to_string(p));
    } else {
      // Forbidden: an answer this phase does not await is dropped.
      BOOST_TEST(!s.applied);
      BOOST_TEST(s.actions.empty(), kinds(s.actions));
      BOOST_TEST(to_string(d.m.current()) == to_string(p));
      BOOST_TEST(to_string(d.m.status().state) == to_string(before.state));
      BOOST_TEST(d.m.status().pid == before.pid);
    }
    if (is_answer(e)) {
      // The same answer with a tag not awaited is stale, in every phase.
      auto stale_driver = in_phase(p);
      auto stale = cell_event(stale_driver, e);
      stale.tag = stale_driver.m.awaiting() + 1000;
      auto status = stale_driver.m.status();
      auto r = stale_driver.feed(stale);
      BOOST_TEST(!r.applied);
      BOOST_TEST(r.actions.empty());
      BOOST_TEST(to_string(stale_driver.m.current()) == to_string(p));
      BOOST_TEST(stale_driver.m.status().pid == status.pid);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_table_names_only_real_cells) {
  for (auto& [cell, expected] : table()) {
    BOOST_TEST(static_cast<size_t>(cell.first) < phase_count);
    BOOST_TEST(static_cast<size_t>(cell.second) < event_count);
  }
}

BOOST_AUTO_TEST_CASE(a_verify_waiting_absorbs_later_verifies) {
  driver d;
  auto first = d.feed(request(E::verify));
  auto second = d.feed(request(E::verify));
  auto third = d.feed(request(E::verify));
  BOOST_TEST(first.op != second.op);
  BOOST_TEST(second.op == third.op);
  BOOST_TEST(d.m.queued() == 1u);
  // The first ends (process found dead, permit paused): the merged one
  // runs, and ends answering once for both requests.
  d.answer(E::checked, [](event& ev) { ev.pid = 0; });
  auto s = d.answer(E::permit,
                    [](event& ev) { ev.permit = restart_permit::paused; });
  BOOST_REQUIRE(!s.actions.empty());
  BOOST_TEST(to_string(s.actions.front().kind) == "answer");
  BOOST_TEST(s.actions.front().op == first.op);
  BOOST_TEST(to_string(d.m.current()) == "checking");
}

/// Brings `d` through a first start to running, consuming its queue; the
/// time its process was started at.
int64_t run_first_start(driver& d) {
  d.feed(request(E::restart));
  d.answer(E::permit, [](event& ev) { ev.permit = restart_permit::first_start; });
  d.answer(E::stop_done);
  auto started_at = d.t;
  d.answer(E::started, [](event& ev) { ev.pid = new_pid; });
  d.answer(E::pong);
  d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  });
  return started_at;
}

BOOST_AUTO_TEST_CASE(a_probe_older_than_the_last_start_is_not_used) {
  driver d;
  // Started at some time T.
  auto started_at = run_first_start(d);
  BOOST_REQUIRE(to_string(d.m.current()) == "idle");
  BOOST_TEST(to_string(d.m.status().state) == "running");
  // A round's probe sent before that start found no pong: it is about the
  // process that was replaced, so the instance is asked itself.
  auto v = request(E::verify);
  v.probe.probed = true;
  v.probe.pong = false;
  v.probe.sent_at_ns = started_at - 1;
  d.feed(v);
  auto s = d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(to_string(d.m.current()) == "probing");
  // A probe sent after it is used: no pong means asking for a restart.
  d.answer(E::pong);
  d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  });
  v.probe.sent_at_ns = d.t + 1;
  d.feed(v);
  d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  // Its silence is confirmed by a ping of the instance's own first.
  BOOST_TEST(to_string(d.m.current()) == "probing");
  d.answer(E::ping_timeout);
  BOOST_TEST(to_string(d.m.current()) == "permitting");
  BOOST_TEST(reason_once_granted(d)
             == "no answer to the round's stats nor to a ping");
}

BOOST_AUTO_TEST_CASE(a_replacement_a_start_took_before_the_death_was_told_is_kept) {
  // The driver replaced a dead process at once; a verify asked it before
  // the death reached the actor, found nothing running (the replacement is
  // nobody's until a start takes it) and restarted: its start took the
  // replacement and counted the restart. The death, told then, names that
  // process as its replacement: it runs, and nothing stops it.
  driver d;
  run_first_start(d);
  BOOST_REQUIRE(to_string(d.m.current()) == "idle");
  constexpr int32_t replacement = 9;
  d.feed(request(E::verify));
  d.answer(E::checked, [](event& ev) { ev.pid = 0; });
  d.answer(E::permit, [](event& ev) { ev.permit = restart_permit::granted; });
  d.answer(E::stop_done);
  d.answer(E::started, [](event& ev) { ev.pid = replacement; });
  BOOST_REQUIRE(to_string(d.m.current()) == "pinging");
  auto gone = killed(new_pid);
  gone.replacement = replacement;
  std::vector<action> after;
  auto keep = [&](const step& st) {
    after.insert(after.end(), st.actions.begin(), st.actions.end());
  };
  keep(d.feed(gone));
  keep(d.answer(E::pong));
  keep(d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  }));
  BOOST_TEST(to_string(d.m.current()) == "idle");
  for (auto& a : after)
    BOOST_TEST(to_string(a.kind) != "stop");
  BOOST_TEST(d.m.status().pid == replacement);
  BOOST_TEST(d.m.status().restarts == 1u);
}

BOOST_AUTO_TEST_CASE(silence_in_a_round_probe_is_confirmed_before_a_restart) {
  // A bus that lagged in the round's probe answers the instance's own
  // ping: verified, no restart asked for.
  driver d;
  run_first_start(d);
  d.feed(silent_in_the_round(d));
  auto s = d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(kinds(s.actions) == kinds({AK::ping}));
  d.answer(E::pong);
  BOOST_TEST(to_string(d.m.current()) == "fetching");
  d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  });
  BOOST_TEST(to_string(d.m.current()) == "idle");
  BOOST_TEST(to_string(d.m.status().state) == "running");
  BOOST_TEST(d.m.status().restarts == 0u);
}

BOOST_AUTO_TEST_CASE(silence_in_a_round_that_suspected_the_bus_is_not_pinged) {
  // Most of the fleet was silent in the round's stats: a ping of each
  // would only add to the bus's lag. The actor asks for its permit at once,
  // which holds the restart to the bus's rate, and its restart says why.
  driver d;
  run_first_start(d);
  auto v = silent_in_the_round(d);
  v.probe.bus_suspected = true;
  d.feed(v);
  auto s = d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(kinds(s.actions) == kinds({AK::ask_permit}));
  BOOST_TEST(to_string(d.m.current()) == "permitting");
  BOOST_TEST(reason_once_granted(d)
             == "no answer to the round's stats while the bus is suspected");
}

BOOST_AUTO_TEST_CASE(a_round_that_suspected_the_bus_still_confirms_an_old_probe) {
  // A probe sent before the instance's last start says nothing of its
  // process: its own ping asks, suspicion or not.
  driver d;
  run_first_start(d);
  auto v = silent_in_the_round(d);
  v.probe.sent_at_ns = 0;
  v.probe.bus_suspected = true;
  d.feed(v);
  auto s = d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(kinds(s.actions) == kinds({AK::ping}));
  BOOST_TEST(to_string(d.m.current()) == "probing");
}

// A round asks the driver once, with its probe, which processes run. That
// answer stands for the instance's own check only when it names the
// process the machine knows: any other may be older than what the machine
// did since (a restart, a stop).
BOOST_AUTO_TEST_CASE(the_driver_answer_with_the_probe_spares_the_check) {
  driver d;
  run_first_start(d);
  BOOST_REQUIRE(to_string(d.m.current()) == "idle");
  auto healthy = [&](int32_t pid) {
    auto v = request(E::verify);
    v.probe.probed = true;
    v.probe.pong = true;
    v.probe.sent_at_ns = d.t + 1;
    v.probe.has_stats = true;
    v.probe.stats = stats_without_queue();
    v.probe.stats.queues.push_back("q");
    v.probe.pid = pid;
    return v;
  };
  // The process it knows runs: verified at once, no action asks the driver.
  auto s = d.feed(healthy(new_pid));
  BOOST_TEST(kinds(s.actions).find("check") == std::string::npos, kinds(s.actions));
  BOOST_TEST(kinds(s.actions).find("answer") != std::string::npos, kinds(s.actions));
  BOOST_TEST(to_string(d.m.current()) == "idle");
  BOOST_TEST(d.m.status().pid == new_pid);
  // Another pid (a process the driver adopted, or an answer from before a
  // restart): the driver is asked again.
  s = d.feed(healthy(old_pid));
  BOOST_TEST(kinds(s.actions) == "check ");
  BOOST_TEST(to_string(d.m.current()) == "checking");
  d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(to_string(d.m.current()) == "idle");
  // Not asked with the probe: the driver is asked.
  s = d.feed(healthy(-1));
  BOOST_TEST(kinds(s.actions) == "check ");
  d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(to_string(d.m.current()) == "idle");
  // Nothing runs by the driver's answer, and the machine knows of none (it
  // never started one): straight to the permit.
  driver fresh;
  s = fresh.feed(healthy(0));
  BOOST_TEST(kinds(s.actions) == "ask_permit ");
  BOOST_TEST(to_string(fresh.m.current()) == "permitting");
}

// A round's probe can be answered before an operator's change reaches the
// worker, and be used after it: its stats are then older than the worker
// and would show the old settings (and resend the change). A probe sent
// before the last reconciliation ended is not used; the instance is asked.
BOOST_AUTO_TEST_CASE(a_probe_older_than_the_last_reconciliation_is_not_used) {
  driver d;
  auto changed = worker_spec();
  changed.max_concurrency = 6;
  // A verify of the changed spec: the worker still has 2, gets 6.
  d.feed(request(E::verify, changed));
  d.answer(E::checked, [](event& ev) { ev.pid = old_pid; });
  d.answer(E::pong);
  auto probe_sent = d.t;
  d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  });
  BOOST_REQUIRE(to_string(d.m.current()) == "reconciling");
  d.answer(E::reconciled, [](event& ev) { ev.results = {command_result{true, {}}}; });
  BOOST_REQUIRE(to_string(d.m.current()) == "idle");
  BOOST_REQUIRE_EQUAL(d.m.status().autoscale_max, 6u);
  // The round's probe, sent before that, says 2.
  auto v = request(E::verify, changed);
  v.probe.probed = true;
  v.probe.pong = true;
  v.probe.has_stats = true;
  v.probe.stats = stats_without_queue();
  v.probe.stats.queues.push_back("q");
  v.probe.sent_at_ns = probe_sent;
  d.feed(v);
  auto s = d.answer(E::checked, [](event& ev) { ev.pid = old_pid; });
  BOOST_TEST(to_string(d.m.current()) == "probing");
  BOOST_TEST(d.m.status().autoscale_max == 6u, "the old stats were not taken");
  for (auto& a : s.actions)
    BOOST_TEST(to_string(a.kind) != "reconcile");
  d.answer(E::pong);
  s = d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
    ev.stats.autoscale_max = 6;
  });
  BOOST_TEST(to_string(d.m.current()) == "idle", "nothing to change");
  BOOST_TEST(d.m.status().autoscale_max == 6u);
  // A probe sent after the reconciliation is used as it is.
  v.probe.stats.autoscale_max = 6;
  v.probe.sent_at_ns = d.t + 1;
  d.feed(v);
  s = d.answer(E::checked, [](event& ev) { ev.pid = old_pid; });
  BOOST_TEST(to_string(d.m.current()) == "idle");
  BOOST_TEST(d.m.status().autoscale_max == 6u);
}

BOOST_AUTO_TEST_CASE(an_exit_before_the_start_is_answered_ends_the_start) {
  auto d = in_phase(P::starting);
  d.feed(killed(new_pid));
  BOOST_TEST(to_string(d.m.current()) == "starting");
  auto s = d.answer(E::started, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(to_string(d.m.current()) == "idle");
  BOOST_TEST(d.m.status().pid == 0);
  BOOST_TEST(to_string(d.m.status().state) == "stopped");
  BOOST_TEST(d.m.status().last_exit_signal == "SIGKILL");
  bool answered = false;
  for (auto& a : s.actions)
    if (a.kind == AK::answer) {
      answered = true;
      BOOST_TEST(a.result.detail.find("interrupted") != std::string::npos);
    }
  BOOST_TEST(answered);
}

// After the driver reported the death of the running process, the repair
// asks nothing it knows the answer to: no check of whether the process
// runs, no stop of what is not there. Only the permit, then the start.
BOOST_AUTO_TEST_CASE(a_repair_after_a_reported_death_goes_straight_to_the_start) {
  auto d = in_phase(P::pinging);
  settle_start(d);
  BOOST_REQUIRE_EQUAL(d.m.status().pid, new_pid);
  d.feed(killed(new_pid));
  auto s = d.feed(request(E::verify));
  BOOST_TEST(to_string(d.m.current()) == "permitting");
  BOOST_TEST(kinds(s.actions) == kinds({AK::ask_permit}));
  s = d.answer(E::permit,
               [](event& ev) { ev.permit = restart_permit::granted; });
  BOOST_TEST(to_string(d.m.current()) == "starting");
  BOOST_TEST(kinds(s.actions) == kinds({AK::emit, AK::start, AK::report}));
  d.answer(E::started, [](event& ev) { ev.pid = new_pid + 1; });
  BOOST_TEST(to_string(d.m.current()) == "pinging");
  // Once a process was started, the driver is asked again: a later verify
  // checks, and a later restart stops first.
  settle_start(d);
  s = d.feed(request(E::verify));
  BOOST_TEST(kinds(s.actions) == kinds({AK::check}));
  d.answer(E::checked, [](event& ev) { ev.pid = 0; });
  s = d.answer(E::permit,
               [](event& ev) { ev.permit = restart_permit::granted; });
  BOOST_TEST(kinds(s.actions) == kinds({AK::emit, AK::stop, AK::report}));
}

/// The driver's report that `pid` was killed and that it started
/// `replacement` in its place at once; `repair`: a verify follows.
event replaced(int32_t pid, int32_t replacement, bool repair = true) {
  auto ev = killed(pid);
  ev.replacement = replacement;
  ev.repair = repair;
  return ev;
}

/// Stops that await no answer: a replacement ended.
size_t discards(const lifecycle::step& s) {
  return static_cast<size_t>(
    std::count_if(s.actions.begin(), s.actions.end(), [](const action& a) {
      return a.kind == AK::stop && a.tag == 0;
    }));
}

/// A running instance (pid new_pid) whose process died, replaced at once
/// by the driver with pid new_pid + 1, and whose repair asked its permit.
driver replaced_and_permitting() {
  auto d = in_phase(P::pinging);
  settle_start(d);
  d.feed(replaced(new_pid, new_pid + 1));
  d.feed(request(E::verify));
  BOOST_REQUIRE_EQUAL(to_string(d.m.current()), "permitting");
  return d;
}

// The repair of a death the armed driver replaced at once starts as any
// repair: its start is what takes the replacement (the driver answers
// with its pid). Nothing is stopped.
BOOST_AUTO_TEST_CASE(a_repair_takes_the_replacement_the_driver_started) {
  auto d = replaced_and_permitting();
  auto restarts = d.m.status().restarts;
  auto s = d.answer(E::permit,
                    [](event& ev) { ev.permit = restart_permit::granted; });
  BOOST_TEST(kinds(s.actions) == kinds({AK::emit, AK::start, AK::report}));
  s = d.answer(E::started, [](event& ev) { ev.pid = new_pid + 1; });
  BOOST_TEST(discards(s) == 0u);
  BOOST_TEST(d.m.status().pid == new_pid + 1);
  BOOST_TEST(d.m.status().restarts == restarts + 1);
  d.answer(E::pong);
  s = d.answer(E::stats, [](event& ev) {
    ev.has_stats = true;
    ev.stats = stats_without_queue();
    ev.stats.queues.push_back("q");
  });
  BOOST_TEST(discards(s) == 0u);
  BOOST_TEST(to_string(d.m.status().state) == "running");
}

// A repair refused (paused, a broker reviving, the bus suspected,
// withdrawn) ends with the replacement stopped: nothing will take it.
BOOST_AUTO_TEST_CASE(a_refused_repair_stops_the_replacement) {
  for (auto p : {restart_permit::paused, restart_permit::broker_reviving,
                 restart_permit::bus_suspected, restart_permit::withdrawn}) {
    BOOST_TEST_CONTEXT("permit " << to_string(p)) {
      auto d = replaced_and_permitting();
      auto s = d.answer(E::permit, [p](event& ev) { ev.permit = p; });
      BOOST_TEST(to_string(d.m.current()) == "idle");
      BOOST_TEST(discards(s) == 1u);
      BOOST_TEST(d.m.status().pid == 0);
      // Ended once: the next operation has nothing to end.
      s = d.feed(request(E::verify));
      BOOST_TEST(discards(s) == 0u);
    }
  }
  // Over the limit, the instance's stop ends it (awaited, as any stop).
  auto d = replaced_and_permitting();
  auto s = d.answer(E::permit, [](event& ev) {
    ev.permit = restart_permit::rate_limited;
  });
  BOOST_TEST(kinds(s.actions) == kinds({AK::stop}));
  BOOST_TEST(s.actions.front().tag != 0u);
}

// A death the supervisor does not repair (the instance disabled, the
// fleet paused): its replacement is stopped at once.
BOOST_AUTO_TEST_CASE(an_unrepaired_death_stops_the_replacement_at_once) {
  auto d = in_phase(P::pinging);
  settle_start(d);
  auto s = d.feed(replaced(new_pid, new_pid + 1, false));
  BOOST_TEST(discards(s) == 1u);
  BOOST_TEST(d.m.status().pid == 0);
}

// The replacement died before the repair's permit came: that permit paid
// for it (it was the restart) and starts nothing; the replacement's own
// death is repaired next, under its own permit.
BOOST_AUTO_TEST_CASE(a_replacement_dead_before_its_repair_counts_as_the_restart) {
  auto d = replaced_and_permitting();
  auto restarts = d.m.status().restarts;
  d.feed(killed(new_pid + 1));
  d.feed(request(E::verify));
  BOOST_TEST(d.m.queued() == 1u);
  auto s = d.answer(E::permit,
                    [](event& ev) { ev.permit = restart_permit::granted; });
  BOOST_TEST(d.m.status().restarts == restarts + 1);
  BOOST_TEST(discards(s) == 0u);
  bool interrupted = false;
  for (auto& a : s.actions) {
    BOOST_TEST((a.kind != AK::start), "nothing is started for it");
    if (a.kind == AK::answer)
      interrupted = a.result.detail.find("its replacement, pid "
                                         + std::to_string(new_pid + 1))
                    != std::string::npos;
  }
  BOOST_TEST(interrupted);
  // The queued repair of the replacement's death asks its own permit.
  BOOST_TEST(to_string(d.m.current()) == "permitting");
  s = d.answer(E::permit,
               [](event& ev) { ev.permit = restart_permit::granted; });
  BOOST_TEST(kinds(s.actions) == kinds({AK::emit, AK::start, AK::report}));
}

// A replacement told while a start is out is not taken for a spare: the
// start's answer says which process runs.
BOOST_AUTO_TEST_CASE(a_replacement_told_while_starting_is_left_to_the_start) {
  auto d = in_phase(P::starting);
  auto s = d.feed(replaced(old_pid, new_pid + 5));
  BOOST_TEST(discards(s) == 0u);
  s = d.answer(E::started, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(discards(s) == 0u);
  settle_start(d);
  BOOST_TEST(d.m.status().pid == new_pid);
}

// The death of an earlier process (not the one the machine knows) says
// nothing of what runs now: the driver is still asked.
BOOST_AUTO_TEST_CASE(the_death_of_an_earlier_process_still_asks_the_driver) {
  auto d = in_phase(P::idle);
  d.feed(killed(old_pid));
  auto s = d.feed(request(E::verify));
  BOOST_TEST(to_string(d.m.current()) == "checking");
  BOOST_TEST(kinds(s.actions) == kinds({AK::check}));
}

BOOST_AUTO_TEST_CASE(a_rate_limited_restart_keeps_the_instance_down) {
  auto d = in_phase(P::probing);
  d.answer(E::ping_timeout);
  event disable;
  disable.kind = E::disable;
  disable.text = "restarted too often (restart_max_rate 1/m)";
  d.feed(disable);
  d.answer(E::permit,
           [](event& ev) { ev.permit = restart_permit::rate_limited; });
  BOOST_TEST(to_string(d.m.current()) == "stopping");
  auto s = d.answer(E::stop_done, [](event& ev) { ev.pid = old_pid; });
  BOOST_TEST(to_string(d.m.current()) == "idle");
  BOOST_TEST(to_string(d.m.status().state) == "disabled");
  BOOST_TEST(d.m.status().disabled_reason
             == "restarted too often (restart_max_rate 1/m)");
  BOOST_TEST(d.m.status().pid == 0);
  bool answered = false;
  for (auto& a : s.actions)
    if (a.kind == AK::answer) {
      answered = true;
      BOOST_TEST(to_string(a.result.result) == "disabled");
    }
  BOOST_TEST(answered);
}

/// What each answer to a permit does to a running but silent instance
/// (its ping timed out): the phase after and the actions, in order.
const std::map<restart_permit, expectation>& permit_answers() {
  static const std::map<restart_permit, expectation> t{
    {restart_permit::granted, {P::replacing, {AK::emit, AK::stop, AK::report}}},
    // A process found running is restarted, not started.
    {restart_permit::first_start,
     {P::replacing, {AK::emit, AK::stop, AK::report}}},
    {restart_permit::rate_limited, {P::stopping, {AK::stop}}},
    {restart_permit::broker_reviving, {P::idle, {AK::report, AK::answer}}},
    {restart_permit::paused, {P::idle, {AK::answer}}},
    {restart_permit::withdrawn, {P::idle, {AK::answer}}},
    // Held back for the bus: its process keeps running, unresponsive.
    {restart_permit::bus_suspected, {P::idle, {AK::report, AK::answer}}},
  };
  return t;
}

BOOST_DATA_TEST_CASE(permit_answer,
                     bdata::xrange(static_cast<int>(restart_permit::bus_suspected)
                                   + 1),
                     pi) {
  auto permit = static_cast<restart_permit>(pi);
  BOOST_TEST_CONTEXT("permit " << to_string(permit)) {
    auto d = in_phase(P::probing);
    d.answer(E::ping_timeout);
    BOOST_REQUIRE(to_string(d.m.current()) == "permitting");
    auto found = permit_answers().find(permit);
    BOOST_REQUIRE(found != permit_answers().end());
    auto s = d.answer(E::permit, [permit](event& ev) { ev.permit = permit; });
    BOOST_TEST(s.applied);
    BOOST_TEST(to_string(d.m.current()) == to_string(found->second.after));
    BOOST_TEST(kinds(s.actions) == kinds(found->second.actions));
  }
}

BOOST_AUTO_TEST_CASE(a_restart_held_back_for_the_bus_leaves_the_process_running) {
  // The bus is suspected and its rate used up: the silent instance keeps
  // its process, is unresponsive, and the request is answered "deferred",
  // saying why.
  auto d = in_phase(P::probing);
  d.answer(E::ping_timeout);
  auto s = d.answer(E::permit,
                    [](event& ev) { ev.permit = restart_permit::bus_suspected; });
  BOOST_TEST(to_string(d.m.status().state) == "unresponsive");
  BOOST_TEST(d.m.status().pid == old_pid);
  BOOST_TEST(d.m.status().restarts == 0u);
  bool answered = false;
  for (auto& a : s.actions) {
    BOOST_TEST(to_string(a.kind) != "stop");
    if (a.kind == AK::answer) {
      answered = true;
      BOOST_TEST(to_string(a.result.result) == "deferred");
      BOOST_TEST(a.result.detail.find("bus suspected") != std::string::npos,
                 a.result.detail);
    }
  }
  BOOST_TEST(answered);
}

BOOST_AUTO_TEST_CASE(a_permit_request_says_why_the_restart) {
  // The supervisor holds only silent running instances to the bus rate, so
  // each way to ask for a permit names its cause.
  auto cause_of = [](const step& s) {
    for (auto& a : s.actions)
      if (a.kind == AK::ask_permit)
        return to_string(a.cause);
    return std::string{"no ask_permit"};
  };
  {
    driver d;
    BOOST_TEST(cause_of(d.feed(request(E::restart))) == "requested");
  }
  {
    driver d;
    d.feed(request(E::verify));
    BOOST_TEST(cause_of(d.answer(E::checked, [](event& ev) { ev.pid = 0; }))
               == "not running");
  }
  {
    auto d = in_phase(P::probing);
    BOOST_TEST(cause_of(d.answer(E::ping_timeout)) == "no answer");
  }
  {
    // A round's probe that found no pong, about the running process.
    driver d;
    d.feed(silent_in_the_round(d));
    // A ping of its own confirms the silence first.
    BOOST_TEST(cause_of(d.answer(E::checked,
                                 [](event& ev) { ev.pid = old_pid; }))
               == "no ask_permit");
    BOOST_TEST(cause_of(d.answer(E::ping_timeout)) == "no answer");
    // Its restart says what went unanswered: the round's stats and the
    // ping.
    BOOST_TEST(reason_once_granted(d)
               == "no answer to the round's stats nor to a ping");
  }
  {
    // A ping of its own that timed out says so.
    auto d = in_phase(P::probing);
    d.answer(E::ping_timeout);
    BOOST_TEST(reason_once_granted(d) == "no answer to ping");
  }
}

BOOST_AUTO_TEST_CASE(a_probe_lists_what_it_shows_and_says_when_the_actor_must_be_told) {
  instance_status s;
  s.pid = old_pid;
  s.state = instance_state::running;
  s.consuming_from = {"q", direct_queue("w1")};
  s.autoscale_max = 2;
  s.autoscale_min = 1;
  s.concurrency = 1;
  probe_result p;
  p.probed = p.pong = p.has_stats = true;
  p.pid = old_pid;
  p.rtt_us = 700;
  p.stats = stats_without_queue();
  p.stats.queues = {direct_queue("w1"), "q"};
  p.stats.concurrency = 2;
  // The settings it lists, in another order: only what is observed moves.
  auto same = s;
  BOOST_TEST(!lifecycle::list_probe(same, p));
  BOOST_TEST(same.ping_rtt_us == 700);
  BOOST_TEST(same.concurrency == 2);
  BOOST_TEST(same.consuming_from == s.consuming_from);
  // Silent until now: running again, the actor told.
  auto silent = s;
  silent.state = instance_state::unresponsive;
  BOOST_TEST(lifecycle::list_probe(silent, p));
  BOOST_TEST(to_string(silent.state) == "running");
  // A queue it did not list (its command's answer was lost): listed.
  auto missing = s;
  missing.consuming_from = {direct_queue("w1")};
  BOOST_TEST(lifecycle::list_probe(missing, p));
  BOOST_TEST(missing.consuming_from == p.stats.queues);
  BOOST_TEST(missing.concurrency == 2);
}

BOOST_AUTO_TEST_CASE(a_probe_settles_a_silent_process_that_answers_as_specified) {
  instance_status s;
  s.pid = old_pid;
  s.state = instance_state::unresponsive;
  probe_result p;
  p.probed = p.pong = p.has_stats = true;
  p.pid = old_pid;
  p.stats = stats_without_queue();
  p.stats.queues.push_back("q");
  auto spec = worker_spec();
  BOOST_TEST(lifecycle::probe_settles(p, s, spec));
  // Not when it consumes otherwise than the model says: a command is due.
  auto other = p;
  other.stats.queues = {direct_queue("w1")};
  BOOST_TEST(!lifecycle::probe_settles(other, s, spec));
  // Not about another process, nor one not running.
  other = p;
  other.pid = new_pid;
  BOOST_TEST(!lifecycle::probe_settles(other, s, spec));
  auto starting = s;
  starting.state = instance_state::starting;
  BOOST_TEST(!lifecycle::probe_settles(p, starting, spec));
  // Not without the answer itself.
  other = p;
  other.pong = false;
  BOOST_TEST(!lifecycle::probe_settles(other, s, spec));
}

BOOST_AUTO_TEST_CASE(a_silent_instance_the_supervisor_found_answering_is_running) {
  // Silent while the bus was suspected: the restart was held back.
  driver d;
  d.feed(silent_in_the_round(d));
  d.answer(E::checked, [](event& ev) { ev.pid = old_pid; });
  d.answer(E::ping_timeout);
  d.answer(E::permit,
           [](event& ev) { ev.permit = restart_permit::bus_suspected; });
  BOOST_REQUIRE(to_string(d.m.current()) == "idle");
  BOOST_REQUIRE(to_string(d.m.status().state) == "unresponsive");
  event told;
  told.kind = E::answered;
  told.probe.probed = told.probe.pong = told.probe.has_stats = true;
  told.probe.rtt_us = 700;
  told.probe.stats = stats_without_queue();
  told.probe.stats.queues.push_back("q");
  told.probe.stats.concurrency = 2;
  // About another process: stale.
  told.probe.pid = new_pid;
  auto s = d.feed(told);
  BOOST_TEST(!s.applied);
  BOOST_TEST(to_string(d.m.status().state) == "unresponsive");
  // About its own: running, listed as the probe shows it; the supervisor
  // lists it already, so nothing is reported.
  told.probe.pid = old_pid;
  s = d.feed(told);
  BOOST_TEST(s.applied);
  BOOST_TEST(s.actions.empty(), kinds(s.actions));
  BOOST_TEST(to_string(d.m.status().state) == "running");
  BOOST_TEST(d.m.status().consuming_from == told.probe.stats.queues);
  BOOST_TEST(d.m.status().ping_rtt_us == 700);
  BOOST_TEST(d.m.status().concurrency == 2);
  // While an operation runs, it is not taken: the operation lists what it
  // finds.
  auto busy = in_phase(P::probing);
  auto before = busy.m.status();
  told.probe.pid = before.pid;
  BOOST_TEST(!busy.feed(told).applied);
  BOOST_TEST(busy.m.status().ping_rtt_us == before.ping_rtt_us);
}

BOOST_AUTO_TEST_CASE(the_pings_of_one_start_share_a_series) {
  // The bus lets a late pong answer a later ping of the same series, so
  // every ping of one start carries the same series, and not 0 (none).
  settings s;
  s.restart_pings = ping_schedule{{100ms, 200ms}, 1000ms, 300ms};
  driver d;
  d.m = machine{s, initial_status(worker_spec()), true};
  auto series_of = [](const step& st) {
    for (auto& a : st.actions)
      if (a.kind == action_kind::ping)
        return a.command.series;
    return uint64_t{0};
  };
  d.feed(request(E::restart));
  d.answer(E::permit, [](event& ev) { ev.permit = restart_permit::granted; });
  d.answer(E::stop_done);
  auto first = d.answer(E::started, [](event& ev) { ev.pid = new_pid; });
  d.answer(E::ping_timeout);
  auto second = d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(series_of(first) != 0u);
  BOOST_TEST(series_of(second) == series_of(first));
}

BOOST_AUTO_TEST_CASE(the_restart_schedule_gives_up_after_its_last_ping) {
  settings s;
  s.restart_pings = ping_schedule{{100ms, 200ms}, 1000ms, 300ms};
  BOOST_REQUIRE(s.restart_pings.timeouts().size() == 2u);
  driver d;
  d.m = machine{s, initial_status(worker_spec()), true};
  d.feed(request(E::restart));
  d.answer(E::permit, [](event& ev) { ev.permit = restart_permit::granted; });
  d.answer(E::stop_done);
  d.answer(E::started, [](event& ev) { ev.pid = new_pid; });
  d.answer(E::ping_timeout);
  d.answer(E::checked, [](event& ev) { ev.pid = new_pid; });
  BOOST_TEST(to_string(d.m.current()) == "pinging");
  auto last = d.answer(E::ping_timeout);
  BOOST_TEST(to_string(d.m.current()) == "idle");
  BOOST_TEST(to_string(d.m.status().state) == "unresponsive");
  BOOST_TEST(kinds(last.actions) == "emit report answer ");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(restart_permit_policy)

permit_request base(steady_time now) {
  return permit_request{true,
                        false,
                        false,
                        true,
                        restart_bucket{rate{1, 60s}, now},
                        now,
                        restart_cause::not_running,
                        std::nullopt};
}

BOOST_AUTO_TEST_CASE(an_explicit_request_is_granted_and_forgives) {
  steady_time t0{};
  auto req = base(t0);
  BOOST_REQUIRE(req.bucket.try_take(t0));
  req.ratelimit = false;
  req.paused = true;
  req.broker_reviving = true;
  auto d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::granted));
  BOOST_TEST(d.bucket.tokens(t0) == 1.0);
  req.ever_started = false;
  BOOST_TEST(to_string(decide_permit(req).permit)
             == to_string(restart_permit::first_start));
}

BOOST_AUTO_TEST_CASE(paused_and_reviving_refuse_without_a_token) {
  steady_time t0{};
  auto req = base(t0);
  req.paused = true;
  auto d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::paused));
  BOOST_TEST(d.bucket.tokens(t0) == 1.0);
  req.paused = false;
  req.broker_reviving = true;
  req.ever_started = false;
  d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::broker_reviving));
  BOOST_TEST(!d.ever_started);
}

BOOST_AUTO_TEST_CASE(a_first_start_takes_no_token_and_restarts_take_one) {
  steady_time t0{};
  auto req = base(t0);
  req.ever_started = false;
  auto d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::first_start));
  BOOST_TEST(d.ever_started);
  BOOST_TEST(d.bucket.tokens(t0) == 1.0);
  req = base(t0);
  d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::granted));
  req.bucket = d.bucket;
  d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::rate_limited));
  // A minute later the bucket holds a token again.
  req.now = t0 + 60s;
  req.bucket = d.bucket;
  BOOST_TEST(to_string(decide_permit(req).permit)
             == to_string(restart_permit::granted));
}

BOOST_AUTO_TEST_CASE(while_the_bus_is_suspected_silent_instances_need_a_bus_token) {
  // A running but silent instance takes a token of the fleet's bus bucket
  // as well as its own; without one it is held back and its own bucket is
  // left alone. A dead process, an explicit request and a first start pass
  // as before.
  steady_time t0{};
  auto req = base(t0);
  req.cause = restart_cause::no_answer;
  req.bus_bucket = restart_bucket{rate{1, 60s}, t0};
  auto d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::granted));
  BOOST_REQUIRE(d.bus_bucket.has_value());
  BOOST_TEST(d.bus_bucket->tokens(t0) == 0.0);
  BOOST_TEST(d.bucket.tokens(t0) == 0.0);
  // Another silent instance, its own bucket full: held back for the bus.
  req.bus_bucket = d.bus_bucket;
  d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::bus_suspected));
  BOOST_TEST(d.bucket.tokens(t0) == 1.0);
  BOOST_TEST(d.bus_bucket->tokens(t0) == 0.0);
  // A dead process is replaced at once.
  req.cause = restart_cause::not_running;
  d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::granted));
  BOOST_TEST(d.bus_bucket->tokens(t0) == 0.0);
  // An operator's request too.
  req.cause = restart_cause::no_answer;
  req.ratelimit = false;
  BOOST_TEST(to_string(decide_permit(req).permit)
             == to_string(restart_permit::granted));
  req.ratelimit = true;
  req.ever_started = false;
  BOOST_TEST(to_string(decide_permit(req).permit)
             == to_string(restart_permit::first_start));
  // A minute later the bus bucket holds a token again.
  req.ever_started = true;
  req.now = t0 + 60s;
  BOOST_TEST(to_string(decide_permit(req).permit)
             == to_string(restart_permit::granted));
}

BOOST_AUTO_TEST_CASE(an_instance_without_its_own_token_takes_no_bus_token) {
  // Refused by its own limit (to be disabled), a silent instance leaves
  // the fleet's bus token to another.
  steady_time t0{};
  auto req = base(t0);
  req.cause = restart_cause::no_answer;
  req.bus_bucket = restart_bucket{rate{1, 60s}, t0};
  BOOST_REQUIRE(req.bucket.try_take(t0));
  auto d = decide_permit(req);
  BOOST_TEST(to_string(d.permit) == to_string(restart_permit::rate_limited));
  BOOST_TEST(d.bus_bucket->tokens(t0) == 1.0);
}

BOOST_AUTO_TEST_SUITE_END()

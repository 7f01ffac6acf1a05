#include "actors/lifecycle.hpp"

#include <algorithm>

#include "actors/consumer_diff.hpp"

namespace cyme::lifecycle {

std::string to_string(phase x) {
  switch (x) {
    case phase::idle: return "idle";
    case phase::checking: return "checking";
    case phase::probing: return "probing";
    case phase::permitting: return "permitting";
    case phase::stopping: return "stopping";
    case phase::replacing: return "replacing";
    case phase::starting: return "starting";
    case phase::pinging: return "pinging";
    case phase::rechecking: return "rechecking";
    case phase::fetching: return "fetching";
    case phase::reconciling: return "reconciling";
  }
  return "?";
}

std::string to_string(event_kind x) {
  switch (x) {
    case event_kind::verify: return "verify";
    case event_kind::restart: return "restart";
    case event_kind::shutdown: return "shutdown";
    case event_kind::remove: return "remove";
    case event_kind::disable: return "disable";
    case event_kind::exited: return "exited";
    case event_kind::answered: return "answered";
    case event_kind::checked: return "checked";
    case event_kind::permit: return "permit";
    case event_kind::stop_done: return "stop_done";
    case event_kind::started: return "started";
    case event_kind::start_failed: return "start_failed";
    case event_kind::pong: return "pong";
    case event_kind::ping_timeout: return "ping_timeout";
    case event_kind::stats: return "stats";
    case event_kind::reconciled: return "reconciled";
    case event_kind::failed: return "failed";
  }
  return "?";
}

std::string to_string(action_kind x) {
  switch (x) {
    case action_kind::check: return "check";
    case action_kind::ask_permit: return "ask_permit";
    case action_kind::stop: return "stop";
    case action_kind::start: return "start";
    case action_kind::ping: return "ping";
    case action_kind::fetch_stats: return "fetch_stats";
    case action_kind::reconcile: return "reconcile";
    case action_kind::report: return "report";
    case action_kind::emit: return "emit";
    case action_kind::answer: return "answer";
  }
  return "?";
}

namespace {

void append(std::string& text, const std::string& more) {
  if (more.empty())
    return;
  if (!text.empty())
    text += "; ";
  text += more;
}

std::string pid_text(int32_t pid) {
  return "pid " + std::to_string(pid);
}

action make_action(action_kind kind, uint64_t tag = 0) {
  action a;
  a.kind = kind;
  a.tag = tag;
  return a;
}

bool is_request(event_kind k) {
  return k == event_kind::verify || k == event_kind::restart
         || k == event_kind::shutdown || k == event_kind::remove;
}

} // namespace

instance_status initial_status(const instance_spec& spec) {
  instance_status s;
  s.name = spec.name;
  s.state = spec.enabled ? instance_state::stopped : instance_state::disabled;
  s.disabled_reason = spec.enabled ? std::string{} : spec.disabled_reason;
  return s;
}

bool shows_settings(const worker_stats& stats, const instance_status& s) {
  return s.state == instance_state::running
         && s.consuming_from.size() == stats.queues.size()
         && std::is_permutation(s.consuming_from.begin(), s.consuming_from.end(),
                                stats.queues.begin())
         && s.autoscale_max == stats.autoscale_max
         && s.autoscale_min == stats.autoscale_min;
}

bool as_specified(const worker_stats& stats, const instance_spec& spec) {
  if (stats.autoscale_max != spec.max_concurrency
      || stats.autoscale_min != spec.min_concurrency)
    return false;
  auto diff = diff_consumers(spec.queues, stats.queues, direct_queue(spec.name));
  return diff.to_add.empty() && diff.to_cancel.empty();
}

bool probe_settles(const probe_result& p, const instance_status& s,
                   const instance_spec& spec) {
  return spec.enabled && spec.launch.kind == instance_kind::worker && p.probed
         && p.pong && p.has_stats && p.pid > 0 && p.pid == s.pid
         && (s.state == instance_state::running
             || s.state == instance_state::unresponsive)
         && as_specified(p.stats, spec);
}

namespace {

/// Lists in `s` what a worker answering `stats` shows of itself.
void take_stats(instance_status& s, const worker_stats& stats) {
  s.consuming_from = stats.queues;
  s.autoscale_max = stats.autoscale_max;
  s.autoscale_min = stats.autoscale_min;
  s.concurrency = stats.concurrency;
  s.state = instance_state::running;
}

} // namespace

bool list_probe(instance_status& s, const probe_result& p) {
  s.ping_rtt_us = p.rtt_us;
  s.concurrency = p.stats.concurrency;
  if (shows_settings(p.stats, s))
    return false;
  take_stats(s, p.stats);
  return true;
}

machine::machine(settings s, instance_status initial, bool enabled)
  : settings_(std::move(s)), status_(std::move(initial)), enabled_(enabled) {
  // A schedule with no timeout would give up before pinging.
  if (settings_.restart_pings.timeouts().empty())
    settings_.restart_pings = ping_schedule{};
}

step machine::handle(event ev, clock_reading now) {
  now_ = now;
  out_.clear();
  changed_ = false;
  step result;
  if (is_request(ev.kind)) {
    result.op = enqueue(ev.kind == event_kind::verify    ? op_kind::verify
                        : ev.kind == event_kind::restart ? op_kind::restart
                        : ev.kind == event_kind::shutdown
                          ? op_kind::shutdown
                          : op_kind::remove,
                        ev);
  } else if (ev.kind == event_kind::disable) {
    enabled_ = false;
    status_.disabled_reason = ev.text;
    if (status_.pid == 0 && phase_ == phase::idle)
      status_.state = instance_state::disabled;
    changed_ = true;
  } else if (ev.kind == event_kind::exited) {
    on_exited(ev);
  } else if (ev.kind == event_kind::answered) {
    // The supervisor lists it already: nothing to report. An operation
    // under way, or another process, makes it stale.
    result.applied = phase_ == phase::idle && ev.probe.pong
                     && ev.probe.has_stats && ev.probe.pid > 0
                     && ev.probe.pid == status_.pid;
    if (result.applied)
      list_probe(status_, ev.probe);
  } else if (phase_ == phase::idle || ev.tag != awaiting_) {
    // Stale: the answer to a request of an operation that ended.
    result.applied = false;
  } else {
    bool applied = false;
    switch (ev.kind) {
      case event_kind::checked:
        applied = on_checked(ev);
        break;
      case event_kind::permit:
        applied = on_permit(ev);
        break;
      case event_kind::stop_done:
        applied = on_stop_done(ev);
        break;
      case event_kind::started:
        applied = phase_ == phase::starting && on_started(ev.pid);
        break;
      case event_kind::start_failed:
        applied = phase_ == phase::starting && on_failed(ev);
        break;
      case event_kind::pong:
        if (phase_ == phase::probing) {
          status_.ping_rtt_us = ev.rtt_us;
          status_.state = instance_state::running;
          changed_ = true;
          send_stats(outcome::verified, {});
          applied = true;
        } else if (phase_ == phase::pinging) {
          status_.ping_rtt_us = ev.rtt_us;
          // A probe sent before this answer may have found the new process
          // not listening yet: only later ones describe it.
          last_start_ns_ = now_.steady_ns;
          status_.state = instance_state::running;
          changed_ = true;
          // Which ping of the schedule was answered (1: the first, with
          // the shortest timeout): how soon replacements get onto the bus.
          if (!first_start_)
            emit(cyme::event_kind::restarted, pid_text(status_.pid),
                 {{"pid", std::to_string(status_.pid)},
                  {"pings", std::to_string(ping_index_ + 1)}});
          send_stats(first_start_ ? outcome::started : outcome::restarted, {});
          applied = true;
        }
        break;
      case event_kind::ping_timeout:
        if (phase_ == phase::probing) {
          send_permit(restart_cause::no_answer,
                      believed(ops_.front().probe)
                        ? "no answer to the round's stats nor to a ping"
                        : "no answer to ping");
          applied = true;
        } else if (phase_ == phase::pinging) {
          after_silence();
          applied = true;
        }
        break;
      case event_kind::stats:
        if (phase_ == phase::fetching) {
          if (ev.has_stats) {
            reconcile(ev.stats, result_, detail_);
          } else {
            append(detail_, "no stats reply; consumers not verified");
            finish(result_, detail_);
          }
          applied = true;
        }
        break;
      case event_kind::reconciled:
        if (phase_ == phase::reconciling && ev.results.size() == sent_.size()) {
          last_reconciled_ns_ = now_.steady_ns;
          bool failed = false;
          for (size_t i = 0; i < sent_.size(); ++i) {
            auto& cmd = sent_[i];
            auto& r = ev.results[i];
            std::string what = cyme::to_string(cmd.op);
            if (cmd.op == control_op::autoscale)
              what += " " + std::to_string(cmd.max_concurrency) + ","
                      + std::to_string(cmd.min_concurrency);
            else
              what += " " + cmd.queue;
            if (!r.ok) {
              failed = true;
              append(detail_, what + " failed: " + r.error);
              continue;
            }
            auto& q = status_.consuming_from;
            switch (cmd.op) {
              case control_op::add_consumer:
                if (std::find(q.begin(), q.end(), cmd.queue) == q.end())
                  q.push_back(cmd.queue);
                emit(cyme::event_kind::consume_from, cmd.queue);
                break;
              case control_op::cancel_consumer:
                q.erase(std::remove(q.begin(), q.end(), cmd.queue), q.end());
                emit(cyme::event_kind::cancel_consume, cmd.queue);
                break;
              default:
                status_.autoscale_max = cmd.max_concurrency;
                status_.autoscale_min = cmd.min_concurrency;
                emit(cyme::event_kind::set_autoscale,
                     std::to_string(cmd.max_concurrency) + ","
                       + std::to_string(cmd.min_concurrency));
                break;
            }
            append(detail_, what);
          }
          changed_ = true;
          finish(failed ? outcome::failed : result_, detail_);
          applied = true;
        }
        break;
      case event_kind::failed:
        applied = on_failed(ev);
        break;
      default:
        break;
    }
    result.applied = applied;
  }
  if (changed_) {
    // Before any answer: whoever is answered and then asks the supervisor
    // for this instance's status must find it already reported.
    auto at = std::find_if(out_.begin(), out_.end(), [](const action& a) {
      return a.kind == action_kind::answer;
    });
    out_.insert(at, make_action(action_kind::report));
  }
  result.actions = std::move(out_);
  out_.clear();
  return result;
}

// -- requests and operations --------------------------------------------------

uint64_t machine::enqueue(op_kind kind, event& ev) {
  // A verify waiting behind another operation absorbs further verifies: a
  // flood of requests costs one verification, answered to all.
  if (kind == op_kind::verify && ops_.size() > 1
      && ops_.back().kind == op_kind::verify) {
    auto& waiting = ops_.back();
    waiting.spec = std::move(ev.spec);
    waiting.probe = std::move(ev.probe);
    waiting.ratelimit = waiting.ratelimit && ev.ratelimit;
    return waiting.id;
  }
  auto id = next_op_++;
  ops_.push_back(operation{id, kind, std::move(ev.spec), std::move(ev.probe),
                           kind == op_kind::verify && ev.ratelimit});
  if (ops_.size() == 1)
    begin();
  return id;
}

void machine::begin() {
  auto& op = ops_.front();
  enabled_ = op.spec.enabled;
  if (!enabled_ && op.spec.disabled_reason != status_.disabled_reason) {
    status_.disabled_reason = op.spec.disabled_reason;
    changed_ = true;
  }
  why_.clear();
  detail_.clear();
  result_ = outcome::verified;
  switch (op.kind) {
    case op_kind::verify:
      if (!enabled_)
        send_stop();
      else
        send_check();
      return;
    case op_kind::restart:
      if (!enabled_) {
        finish(outcome::disabled,
               "not restarted: the instance is disabled; enable it first");
        return;
      }
      send_permit(restart_cause::requested, "restart requested");
      return;
    case op_kind::shutdown:
    case op_kind::remove:
      send_stop();
      return;
  }
}

void machine::finish(outcome result, std::string detail) {
  auto op = std::move(ops_.front());
  ops_.pop_front();
  if (op.kind == op_kind::remove)
    detail = detail.empty() ? "removed from the model"
                            : detail + "; removed from the model";
  auto a = make_action(action_kind::answer);
  a.op = op.id;
  a.result = action_report{status_.name, result, std::move(detail)};
  out_.push_back(std::move(a));
  phase_ = phase::idle;
  awaiting_ = 0;
  // A replacement the driver started at a death, which this operation did
  // not take: nothing will.
  if (spare_ != 0)
    discard_spare();
  spare_lost_ = 0;
  // No process: nothing but at rest is true of it.
  if (status_.pid == 0 && status_.state != at_rest()) {
    status_.state = at_rest();
    changed_ = true;
  }
  if (!ops_.empty())
    begin();
}

void machine::await(phase p) {
  phase_ = p;
  awaiting_ = next_tag_++;
}

instance_state machine::at_rest() const {
  return enabled_ ? instance_state::stopped : instance_state::disabled;
}

control_command machine::command(control_op op) const {
  control_command cmd;
  cmd.op = op;
  cmd.broker = ops_.front().spec.broker;
  cmd.destinations = {status_.name};
  cmd.timeout = settings_.command_timeout;
  return cmd;
}

void machine::emit(cyme::event_kind kind, std::string detail,
                   std::map<std::string, std::string> data) {
  auto a = make_action(action_kind::emit);
  a.event = supervisor_event{kind, status_.name, std::move(detail), {},
                             std::move(data)};
  out_.push_back(std::move(a));
}

// -- the steps of an operation ------------------------------------------------

void machine::send_check() {
  if (exit_reported_) {
    // The driver's answer is known: nothing runs.
    send_permit(restart_cause::not_running, "not running");
    return;
  }
  await(phase::checking);
  // The driver answered with the round's probe about the process this
  // machine knows (or that none runs, as it knows): no need to ask again.
  // Any other answer may be older than what happened here since.
  const auto& probe = ops_.front().probe;
  if (probe.pid >= 0 && probe.pid == status_.pid) {
    event ev;
    ev.kind = event_kind::checked;
    ev.tag = awaiting_;
    ev.pid = probe.pid;
    on_checked(ev);
    return;
  }
  out_.push_back(make_action(action_kind::check, awaiting_));
}

void machine::send_permit(restart_cause cause, std::string why) {
  why_ = std::move(why);
  await(phase::permitting);
  auto a = make_action(action_kind::ask_permit, awaiting_);
  a.ratelimit = ops_.front().ratelimit;
  a.cause = cause;
  out_.push_back(std::move(a));
}

void machine::send_stop() {
  // It stops the spare too, if any.
  spare_ = 0;
  await(phase::stopping);
  out_.push_back(make_action(action_kind::stop, awaiting_));
}

void machine::restart(bool first_start) {
  first_start_ = first_start;
  if (!first_start)
    emit(cyme::event_kind::restarting, why_);
  status_.state = instance_state::starting;
  changed_ = true;
  if (spare_lost_ != 0) {
    // The driver made this restart at the death, and its process died
    // before this permit: that is the restart the permit paid for, and its
    // death is repaired next.
    status_.restarts += 1;
    finish(outcome::failed, "interrupted: its replacement, pid "
                              + std::to_string(spare_lost_)
                              + ", started at the death, exited");
    return;
  }
  if (exit_reported_) {
    // Nothing runs to be stopped.
    send_start();
    return;
  }
  await(phase::replacing);
  out_.push_back(make_action(action_kind::stop, awaiting_));
}

void machine::send_start() {
  last_start_ns_ = now_.steady_ns;
  status_.pid = 0;
  changed_ = true;
  exited_while_starting_.clear();
  exit_reported_ = false;
  // The driver answers with the spare, if any.
  spare_ = 0;
  spare_lost_ = 0;
  await(phase::starting);
  auto a = make_action(action_kind::start, awaiting_);
  a.spec = ops_.front().spec;
  out_.push_back(std::move(a));
}

void machine::send_ping(caf::timespan timeout) {
  await(phase::pinging);
  auto a = make_action(action_kind::ping, awaiting_);
  a.command = command(control_op::ping);
  a.command.timeout = timeout;
  a.command.series = series_;
  out_.push_back(std::move(a));
}

void machine::send_stats(outcome result, std::string detail) {
  result_ = result;
  detail_ = std::move(detail);
  await(phase::fetching);
  auto a = make_action(action_kind::fetch_stats, awaiting_);
  a.command = command(control_op::stats);
  out_.push_back(std::move(a));
}

void machine::reconcile(const worker_stats& stats, outcome result,
                        std::string detail) {
  result_ = result;
  detail_ = std::move(detail);
  if (!shows_settings(stats, status_)
      || status_.concurrency != stats.concurrency) {
    take_stats(status_, stats);
    changed_ = true;
  }
  const auto& spec = ops_.front().spec;
  auto diff = diff_consumers(spec.queues, stats.queues, direct_queue(spec.name));
  sent_.clear();
  for (auto& q : diff.to_add) {
    auto cmd = command(control_op::add_consumer);
    cmd.queue = q;
    sent_.push_back(std::move(cmd));
  }
  for (auto& q : diff.to_cancel) {
    auto cmd = command(control_op::cancel_consumer);
    cmd.queue = q;
    sent_.push_back(std::move(cmd));
  }
  if (stats.autoscale_max != spec.max_concurrency
      || stats.autoscale_min != spec.min_concurrency) {
    auto cmd = command(control_op::autoscale);
    cmd.max_concurrency = spec.max_concurrency;
    cmd.min_concurrency = spec.min_concurrency;
    sent_.push_back(std::move(cmd));
  }
  if (sent_.empty()) {
    finish(result_, detail_);
    return;
  }
  await(phase::reconciling);
  auto a = make_action(action_kind::reconcile, awaiting_);
  a.commands = sent_;
  out_.push_back(std::move(a));
}

void machine::after_silence() {
  const auto& timeouts = settings_.restart_pings.timeouts();
  if (ping_index_ + 1 >= timeouts.size()) {
    give_up("no answer to " + std::to_string(timeouts.size()) + " pings");
    return;
  }
  await(phase::rechecking);
  out_.push_back(make_action(action_kind::check, awaiting_));
}

void machine::discard_spare() {
  spare_ = 0;
  out_.push_back(make_action(action_kind::stop, 0));
}

void machine::give_up(std::string why) {
  status_.state = status_.pid > 0 ? instance_state::unresponsive : at_rest();
  changed_ = true;
  emit(cyme::event_kind::does_not_respond, why);
  finish(outcome::does_not_respond, why);
}

// -- answers ------------------------------------------------------------------

bool machine::believed(const probe_result& p) const {
  return p.probed && p.sent_at_ns > last_start_ns_
         && p.sent_at_ns > last_reconciled_ns_;
}

bool machine::on_checked(const event& ev) {
  if (phase_ == phase::rechecking) {
    if (ev.pid == 0) {
      status_.pid = 0;
      give_up("process exited while starting");
    } else {
      ++ping_index_;
      send_ping(settings_.restart_pings.timeouts()[ping_index_]);
    }
    return true;
  }
  if (phase_ != phase::checking)
    return false;
  const auto& op = ops_.front();
  if (status_.pid != ev.pid) {
    status_.pid = ev.pid;
    changed_ = true;
  }
  if (ev.pid == 0) {
    send_permit(restart_cause::not_running, "not running");
    return true;
  }
  if (op.spec.launch.kind == instance_kind::process) {
    // Alive is all a process is judged by; it has no bus commands.
    status_.state = instance_state::running;
    changed_ = true;
    finish(outcome::verified);
    return true;
  }
  // A probe sent before the last start is about a process that is gone
  // (a restart ran while the round's probe was out); one sent before the
  // last reconciliation ended may show settings it changed (an operator's
  // change applied while the round's probe was out).
  const auto& probe = op.probe;
  // The round's probe is one stats command; an answer to it proves the
  // worker alive as a pong does. Silence in it is confirmed by a ping of
  // the instance's own before a restart: a bus that lagged for a moment
  // (below the share that makes the supervisor suspect it) restarts
  // nothing, the way a liveness probe restarts only after more than one
  // failure.
  if (believed(probe) && probe.pong) {
    // The supervisor lists the round trip of the round's pong itself (it
    // holds the probe): a verify that finds the instance as it was reports
    // nothing.
    status_.ping_rtt_us = probe.rtt_us;
    if (probe.has_stats)
      reconcile(probe.stats, outcome::verified, {});
    else
      send_stats(outcome::verified, {});
    return true;
  }
  // Silent in the probe of a round that suspected the bus, like most of
  // the fleet: a ping of its own would only add to the lag. The permit
  // holds its restart to the bus's rate.
  if (believed(probe) && probe.bus_suspected) {
    send_permit(restart_cause::no_answer,
                "no answer to the round's stats while the bus is suspected");
    return true;
  }
  // Not probed by the round, or silent in its probe: ask the instance
  // itself.
  await(phase::probing);
  auto a = make_action(action_kind::ping, awaiting_);
  a.command = command(control_op::ping);
  a.command.timeout = settings_.probe_timeout;
  out_.push_back(std::move(a));
  return true;
}

bool machine::on_permit(const event& ev) {
  if (phase_ != phase::permitting)
    return false;
  switch (ev.permit) {
    case restart_permit::granted:
      restart(false);
      break;
    case restart_permit::first_start:
      // A process found running is restarted, not started.
      restart(status_.pid == 0);
      break;
    case restart_permit::rate_limited:
      // The supervisor disabled the instance in the model already (its
      // `disable` came first): keep it down.
      enabled_ = false;
      result_ = outcome::disabled;
      detail_ = why_ + "; restart limit exceeded";
      send_stop();
      break;
    case restart_permit::broker_reviving:
      status_.state
        = status_.pid > 0 ? instance_state::unresponsive : at_rest();
      changed_ = true;
      finish(outcome::deferred, why_ + "; broker revived recently");
      break;
    case restart_permit::bus_suspected:
      // Alive but silent, like most of the fleet: the bus is the likelier
      // cause, and the next round judges it again.
      status_.state = instance_state::unresponsive;
      changed_ = true;
      finish(outcome::deferred,
             why_ + "; bus suspected, restarts of silent instances held "
                    "to bus_suspect_restart_rate");
      break;
    case restart_permit::paused:
      finish(outcome::paused);
      break;
    case restart_permit::withdrawn:
      finish(outcome::unknown_instance);
      break;
  }
  return true;
}

bool machine::on_stop_done(const event& ev) {
  if (phase_ == phase::replacing) {
    send_start();
    return true;
  }
  if (phase_ != phase::stopping)
    return false;
  status_.pid = 0;
  status_.state = at_rest();
  changed_ = true;
  if (result_ == outcome::disabled) {
    // Stopped after the restart limit was exceeded.
    if (ev.pid != 0)
      emit(cyme::event_kind::stopped, pid_text(ev.pid));
    finish(outcome::disabled, detail_);
    return true;
  }
  if (ev.pid == 0) {
    finish(outcome::not_running);
    return true;
  }
  emit(cyme::event_kind::stopped, pid_text(ev.pid));
  finish(outcome::stopped, pid_text(ev.pid));
  return true;
}

bool machine::on_started(int32_t pid) {
  const auto& spec = ops_.front().spec;
  status_.pid = pid;
  status_.started_at_ms = now_.wall_ms;
  if (first_start_)
    emit(cyme::event_kind::started, pid_text(pid),
         {{"pid", std::to_string(pid)}});
  else
    status_.restarts += 1;
  status_.disabled_reason.clear();
  changed_ = true;
  if (exited_while_starting_.count(pid) > 0) {
    // Its exit came before the driver's answer.
    status_.pid = 0;
    status_.state = at_rest();
    finish(outcome::failed,
           "interrupted: process " + std::to_string(pid) + " exited");
    return true;
  }
  if (spec.launch.kind == instance_kind::process) {
    // Liveness is the process alive: started is running.
    status_.state = instance_state::running;
    if (!first_start_)
      emit(cyme::event_kind::restarted, pid_text(pid),
           {{"pid", std::to_string(pid)}});
    finish(first_start_ ? outcome::started : outcome::restarted);
    return true;
  }
  ping_index_ = 0;
  // Unique to this start, also against an earlier instance actor of the
  // same name (a late pong to its pings must not answer these).
  series_ = static_cast<uint64_t>(now_.steady_ns) + ++series_count_;
  send_ping(settings_.restart_pings.timeouts()[0]);
  return true;
}

bool machine::on_failed(const event& ev) {
  switch (phase_) {
    case phase::checking:
      finish(outcome::failed, "driver: " + ev.text);
      return true;
    case phase::probing:
      finish(outcome::deferred, "ping failed: " + ev.text);
      return true;
    case phase::permitting:
      finish(outcome::failed, "permit: " + ev.text);
      return true;
    case phase::stopping:
      finish(outcome::failed, "stop failed: " + ev.text);
      return true;
    case phase::replacing:
    case phase::starting:
      status_.state = at_rest();
      status_.pid = 0;
      changed_ = true;
      finish(outcome::failed, (phase_ == phase::replacing ? "stop failed: "
                                                          : "start failed: ")
                                + ev.text);
      return true;
    case phase::pinging:
      // The bus could not send this ping: it counts as unanswered.
      after_silence();
      return true;
    case phase::rechecking:
      give_up("driver: " + ev.text);
      return true;
    case phase::fetching:
      append(detail_, "stats failed: " + ev.text);
      finish(result_, detail_);
      return true;
    case phase::reconciling:
    case phase::idle:
      return false;
  }
  return false;
}

void machine::on_exited(const event& ev) {
  if (ev.pid != 0 && ev.pid == spare_) {
    // The spare died before anything took it.
    spare_ = 0;
    spare_lost_ = ev.pid;
  }
  on_death(ev);
  if (ev.replacement <= 0 || phase_ == phase::starting
      || ev.replacement == status_.pid)
    // While a start is out, its answer says which process runs; one that
    // took the replacement already (its verify asked the driver before
    // the death was told) runs it.
    return;
  spare_ = ev.replacement;
  // No repair follows (the instance is disabled, the fleet paused).
  if (!ev.repair)
    discard_spare();
}

void machine::on_death(const event& ev) {
  auto how = exit_data(ev.wait_status);
  status_.last_exit_code = how.count("code") ? std::stoi(how["code"]) : -1;
  status_.last_exit_signal = how.count("signal") ? how["signal"] : std::string{};
  status_.last_exit_at_ms = now_.wall_ms;
  changed_ = true;
  if (phase_ == phase::starting)
    exited_while_starting_.insert(ev.pid);
  if (ev.pid == 0 || status_.pid != ev.pid)
    // An earlier process, or one whose start is not answered yet: the
    // running operation is not waiting on it.
    return;
  exit_reported_ = true;
  status_.pid = 0;
  status_.state = at_rest();
  if (phase_ == phase::idle)
    return;
  // Whatever the operation waits for will not come: it ends now, and the
  // next one (the repair) runs.
  finish(outcome::failed,
         "interrupted: process " + std::to_string(ev.pid) + " exited");
}

} // namespace cyme::lifecycle

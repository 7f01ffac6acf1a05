#pragma once

/// An instance's lifecycle as one table: a pure state machine (no actors,
/// no clock of its own) that takes events and answers with actions. The
/// instance actor (actors/instance.cpp) interprets it: it carries out each
/// action and turns each answer into the next event. It is the only writer
/// of an instance's status.
///
/// Requests (verify, restart, shutdown, remove) queue as operations and run
/// one at a time; a verify arriving while another waits joins it. Each
/// request the machine sends out (to the process driver, the bus or the
/// supervisor) carries a tag, and the answer must bring it back: an answer
/// whose tag is not the one awaited belongs to an operation that ended (its
/// process died under it) and is dropped, here and nowhere else.
///
/// The phases, and what moves between them (x: the operation ends, its
/// requests are answered, the next one begins or the machine is idle):
///
///   idle --verify--> checking --checked(0)--> permitting
///                       |  \--checked(pid), probe pong--> fetching/reconciling
///                       |  \--checked(pid), no probe or probe silent--> probing
///                       |  \--checked(pid), probe silent, bus suspected-->
///                       |      permitting (no ping to add to the lag)
///                    probing --pong--> fetching --stats--> reconciling --x
///                    probing --ping timeout--> permitting
///   idle --restart--> permitting --granted--> replacing --stop done-->
///                     starting --started--> pinging --pong--> fetching ...
///                     pinging --ping timeout--> rechecking --checked(pid)-->
///                     pinging (next timeout); after the last, or checked(0): x
///   permitting --rate limited--> stopping (disabled) --stop done--> x
///   permitting --paused, broker reviving, bus suspected, withdrawn--> x
///   idle --shutdown/remove, or verify of a disabled spec--> stopping --> x
///   any --exited (its pid)--> x (answered "interrupted"), status stopped
///
/// An exit may come with a replacement: the driver, armed by the
/// supervisor, started the instance again at once. The repair's start
/// (the verify that follows) takes that process; an operation that ends
/// without a start or a stop ends it with a stop whose answer nothing
/// awaits, and so does an exit the supervisor does not repair.
///
/// Once the driver reported the exit of the instance's process, the
/// driver has none for it until this machine starts one: a verify goes
/// from idle straight to permitting (no check), and a restart from
/// permitting straight to starting (no stop), so a replacement waits for
/// no answer it knows already.
///
/// `disable` (the model disabled it: an operator, or the restart limit)
/// and `exited` apply in every phase; every other answer applies only in
/// the phase that awaits it. The unit tests cover every cell of the table.

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <vector>

#include "actors/ping_schedule.hpp"
#include "messages/control.hpp"
#include "messages/instance.hpp"
#include "messages/supervision.hpp"

namespace cyme {

/// What a round's batched stats learned about one instance.
struct probe_result {
  /// False when no batched probe was made; the instance is then asked
  /// itself.
  bool probed = false;
  /// It answered (alive on the bus, as a pong shows), with its stats when
  /// it could give them.
  bool pong = false;
  bool has_stats = false;
  worker_stats stats;
  /// When the probe was sent (steady clock, ns): a probe sent before the
  /// instance's last start, or before its new process first answered,
  /// describes a process that is gone or was not listening yet, and is not
  /// used.
  int64_t sent_at_ns = 0;
  /// The answer's round trip, in microseconds.
  int64_t rtt_us = 0;
  /// The process driver's answer, asked once the probe's answers were in:
  /// the pid of the instance's process, 0 when none runs; -1 when not
  /// asked (the instance actor then asks the driver itself).
  int32_t pid = -1;
  /// The supervisor suspected the bus when the probe's answers were in: a
  /// silence in it is then likelier the bus's than the instance's, and is
  /// not confirmed by a ping of the instance's own, which would only add
  /// to the lag (the permit holds its restart to the bus's rate).
  bool bus_suspected = false;
};

namespace lifecycle {

/// Where the machine is. Every phase but idle runs an operation and awaits
/// exactly one answer.
enum class phase : uint8_t {
  idle,
  /// Asked the driver whether its process is alive.
  checking,
  /// Pinged it to judge liveness.
  probing,
  /// Asked the supervisor for a restart permit.
  permitting,
  /// Stopping its process for good (shutdown, disable, removal).
  stopping,
  /// Stopping its process to start a new one.
  replacing,
  /// Asked the driver to start its process.
  starting,
  /// Pinging the new process along the restart schedule.
  pinging,
  /// Asked the driver whether the new process still lives, after a ping
  /// of the schedule went unanswered.
  rechecking,
  /// Asked it for its stats.
  fetching,
  /// Sent the commands that make its consumers match the spec.
  reconciling,
};

constexpr size_t phase_count = 11;

std::string to_string(phase x);

enum class event_kind : uint8_t {
  // Requests: each starts (or joins) an operation.
  verify,
  restart,
  shutdown,
  remove,
  // Facts that apply in every phase.
  disable,
  exited,
  /// The supervisor settled a verify from a round's probe (`probe`) and
  /// lists what it showed of the process: taken when idle, for that
  /// process.
  answered,
  // Answers, each carrying the tag of the request it answers.
  checked,
  permit,
  stop_done,
  started,
  start_failed,
  pong,
  ping_timeout,
  stats,
  reconciled,
  /// A request failed (the actor it went to answered with an error).
  failed,
};

constexpr size_t event_count = 17;

std::string to_string(event_kind x);

/// The result of one command of a reconciliation.
struct command_result {
  bool ok = false;
  std::string error;
};

/// One event. Which fields matter depends on the kind.
struct event {
  event_kind kind = event_kind::verify;
  /// Answers: the tag of the request answered.
  uint64_t tag = 0;
  /// verify, restart, shutdown, remove: the spec as the model holds it.
  instance_spec spec;
  /// verify, answered: what the round's probe found; verify: whether the
  /// restart limit applies.
  probe_result probe;
  bool ratelimit = true;
  /// disable: why. failed, start_failed: what went wrong.
  std::string text;
  /// checked, stop_done, started, exited: a pid (0: none).
  int32_t pid = 0;
  /// exited: the wait status; the process the driver started at once in
  /// its place (0: none); whether the supervisor repairs the death (a
  /// verify follows), else that process is stopped.
  int wait_status = 0;
  int32_t replacement = 0;
  bool repair = true;
  /// permit.
  restart_permit permit = restart_permit::granted;
  /// pong: the round trip.
  int64_t rtt_us = 0;
  /// stats: whether the instance answered, and its stats.
  bool has_stats = false;
  worker_stats stats;
  /// reconciled: one result per command sent, in order.
  std::vector<command_result> results;
};

enum class action_kind : uint8_t {
  /// Ask the driver whether the process is alive (answer: checked).
  check,
  /// Ask the supervisor for a restart permit (answer: permit).
  ask_permit,
  /// Ask the driver to stop the process (answer: stop_done). With tag 0,
  /// no answer is awaited: a replacement nothing will take is ended.
  stop,
  /// Ask the driver to start `spec` (answer: started or start_failed).
  start,
  /// Send `command`, a ping (answer: pong or ping_timeout).
  ping,
  /// Send `command`, a stats request (answer: stats).
  fetch_stats,
  /// Send `commands` (answer: reconciled, one result each).
  reconcile,
  /// Tell the supervisor the instance's status changed.
  report,
  /// Publish `event`.
  emit,
  /// Answer the requests that joined operation `op` with `result`.
  answer,
};

std::string to_string(action_kind x);

struct action {
  action_kind kind = action_kind::report;
  /// Requests out: the tag their answer must carry.
  uint64_t tag = 0;
  /// ask_permit: whether the restart limit applies, and why the restart.
  bool ratelimit = true;
  restart_cause cause = restart_cause::not_running;
  /// start.
  instance_spec spec;
  /// ping, fetch_stats.
  control_command command;
  /// reconcile.
  std::vector<control_command> commands;
  /// emit.
  supervisor_event event;
  /// answer.
  uint64_t op = 0;
  action_report result;
};

/// The clock, passed in: a steady reading for decisions and the wall clock
/// for what people read.
struct clock_reading {
  int64_t steady_ns = 0;
  int64_t wall_ms = 0;
};

struct settings {
  ping_schedule restart_pings;
  /// How long a liveness ping waits for its answer.
  caf::timespan probe_timeout{std::chrono::seconds{1}};
  /// How long other commands wait.
  caf::timespan command_timeout{std::chrono::seconds{1}};
};

/// What one event did: the actions to carry out, in order, and for a
/// request the operation it started or joined.
struct step {
  std::vector<action> actions;
  uint64_t op = 0;
  /// False when the event was dropped: a stale answer, or one the current
  /// phase does not await.
  bool applied = true;
};

enum class op_kind : uint8_t { verify, restart, shutdown, remove };

/// The status an instance starts with, before anything is known of its
/// process.
instance_status initial_status(const instance_spec& spec);

/// Whether `stats`, a worker's answer, shows the settings `s` lists of
/// it: running, the same queues (in any order), the same autoscale
/// bounds. Not what is only observed: the concurrency, which a worker's
/// autoscaler moves on its own, and the ping's round trip.
bool shows_settings(const worker_stats& stats, const instance_status& s);

/// Whether a worker answering `stats` consumes and scales as `spec` says:
/// a reconciliation sends it no command.
bool as_specified(const worker_stats& stats, const instance_spec& spec);

/// Whether a round's probe `p` settles a verify of an instance whose actor
/// last reported `s` and had nothing under way since before the probe
/// went out: its process (the one `s` names, running or silent until now)
/// answered with stats that consume as the enabled `spec` says. Its actor
/// would send no command and answer "verified", listing what the stats
/// show (list_probe), so the supervisor need not ask it.
bool probe_settles(const probe_result& p, const instance_status& s,
                   const instance_spec& spec);

/// Lists in `s` what an answered probe `p` of its process shows, as a
/// verify that reconciles nothing would: the round trip and concurrency
/// always; the queues, the autoscale bounds and the state `running` when
/// `s` did not list them (shows_settings). True in that case: what the
/// instance actor lists changed, and it must be told (event `answered`).
bool list_probe(instance_status& s, const probe_result& p);

class machine {
public:
  /// Starts idle, from `initial` (a respawned instance actor keeps the
  /// counters the supervisor last knew).
  machine(settings s, instance_status initial, bool enabled);

  step handle(event ev, clock_reading now);

  const instance_status& status() const {
    return status_;
  }

  phase current() const {
    return phase_;
  }

  /// The tag the current phase awaits (0 when idle).
  uint64_t awaiting() const {
    return awaiting_;
  }

  /// Operations waiting behind the running one.
  size_t queued() const {
    return ops_.empty() ? 0 : ops_.size() - 1;
  }

private:
  struct operation {
    uint64_t id = 0;
    op_kind kind = op_kind::verify;
    instance_spec spec;
    probe_result probe;
    bool ratelimit = true;
  };

  // Requests and operations.
  uint64_t enqueue(op_kind kind, event& ev);
  void begin();
  void finish(outcome result, std::string detail = {});
  // Steps of an operation.
  void await(phase p);
  void send_check();
  void send_permit(restart_cause cause, std::string why);
  void send_stop();
  void restart(bool first_start);
  void send_start();
  void send_ping(caf::timespan timeout);
  void send_stats(outcome result, std::string detail);
  void reconcile(const worker_stats& stats, outcome result,
                 std::string detail);
  /// After an unanswered ping of the restart schedule: the next one, once
  /// the process is known to live, or giving up after the last.
  void after_silence();
  void give_up(std::string why);
  /// Stops the spare, awaiting no answer.
  void discard_spare();
  void emit(cyme::event_kind kind, std::string detail = {},
            std::map<std::string, std::string> data = {});
  control_command command(control_op op) const;
  /// The state an instance with no process settles in.
  instance_state at_rest() const;

  // Phase handlers.
  bool on_checked(const event& ev);
  bool on_permit(const event& ev);
  bool on_stop_done(const event& ev);
  bool on_started(int32_t pid);
  bool on_failed(const event& ev);
  void on_exited(const event& ev);
  /// What an exit does to the status and the running operation.
  void on_death(const event& ev);

  settings settings_;
  instance_status status_;
  /// The newest enabled flag the model gave.
  bool enabled_ = true;
  phase phase_ = phase::idle;
  uint64_t awaiting_ = 0;
  uint64_t next_tag_ = 1;
  uint64_t next_op_ = 1;
  /// The running operation (front) and those waiting behind it.
  std::deque<operation> ops_;
  /// When a start was last asked for, or its process first answered: probes
  /// sent before that are about an earlier process.
  int64_t last_start_ns_ = INT64_MIN;
  /// When the last reconciliation was answered: a probe sent before that
  /// may show the settings the reconciliation changed.
  int64_t last_reconciled_ns_ = INT64_MIN;
  /// Whether a round's probe `p` describes the process as it is now: sent
  /// after the last start and the last reconciliation. When it found that
  /// process silent, the probing phase's ping confirms the silence.
  bool believed(const probe_result& p) const;
  clock_reading now_;
  std::vector<action> out_;
  bool changed_ = false;
  // The running operation's context.
  std::string why_;
  bool first_start_ = false;
  size_t ping_index_ = 0;
  /// The series of the current start's pings (see control_command), and
  /// how many starts this machine has pinged.
  uint64_t series_ = 0;
  uint64_t series_count_ = 0;
  outcome result_ = outcome::verified;
  std::string detail_;
  std::vector<control_command> sent_;
  /// Pids that exited while a start was out: a start answering with one of
  /// them started a process that is gone already.
  std::set<int32_t> exited_while_starting_;
  /// The driver reported the exit of the process this machine knew, and
  /// none was started since: the driver runs none for the instance but
  /// the spare, if any.
  bool exit_reported_ = false;
  /// The process the driver started at once at the last death (it was
  /// armed), while no start or stop has been sent since: the repair's
  /// start takes it; an operation that ends without one stops it.
  int32_t spare_ = 0;
  /// The spare died before a start took it: the repair's permit pays for
  /// it (it was that restart) and starts nothing; its death is repaired
  /// next.
  int32_t spare_lost_ = 0;
};

} // namespace lifecycle

} // namespace cyme

#pragma once

/// The production process driver: starts, stops and watches real
/// `cyme-worker` processes on Linux, one per instance name, behind the
/// `process_driver_actor` seam (actors/seams.hpp).
///
/// Files, per instance, under the branch root:
///
///   <root>/<name>/            0750, created on first start
///   <root>/<name>/worker.log  the worker's stdout and stderr, written by
///                             its log writer and rotated by size into
///                             worker.log.1 ... worker.log.N
///                             (transport/log_files.hpp)
///   <root>/<name>/worker.pid  one line "<pid> <starttime>\n", written
///                             atomically (temp file, fsync, rename) once
///                             the process runs; removed after it exits
///   <root>/<name>/worker.stop one line "<SIGNAL> <grace_ms>\n": how its
///                             process is stopped, kept for the driver of
///                             a restarted branch
///
/// `<starttime>` is field 22 of /proc/<pid>/stat (clock ticks since boot):
/// with the pid it names one process for the life of the machine, so a
/// recycled pid is never mistaken for a worker.
///
/// A pid file is trusted only when it is one well-formed line of at most
/// 256 bytes, its process exists (kill(pid, 0)), has the recorded start
/// time, and is marked as this instance's: its environment holds
/// `CYME_INSTANCE_DIR=<root>/<name>` (every process started here), or its
/// /proc/<pid>/cmdline the pair `--name`, `<name>` (workers).
/// Anything else (stale, corrupt, truncated, oversized, negative, foreign)
/// is logged in one line on stderr, treated as "not running" and removed;
/// the pid in it is never signalled.
///
/// Adoption: a driver started after a branch restart has no record of the
/// workers still running. `alive(name)`, `stop(name)` and `start(spec)` for
/// an instance it does not know read its pid file and, if trusted, adopt the
/// process: from then on its exit is watched like a child's, but its wait
/// status is unknown and reported as -1. Exiting the driver actor leaves
/// its workers running so that the next driver can adopt them.
///
/// Exits are noticed at once: every started or adopted process has a pidfd,
/// polled by one watcher thread per driver.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "actors/seams.hpp"
#include "transport/log_files.hpp"
#include "transport/program_allow_list.hpp"
#include "transport/property_book.hpp"

namespace cyme {

/// Most standby workers a driver keeps ready.
constexpr uint32_t max_standby_workers = 64;

/// How a process driver runs workers.
struct process_driver_settings {
  /// Branch root: one folder per instance is made under it.
  std::filesystem::path root;
  /// The worker executable (`cyme-worker`), started with execve when a
  /// launch names no program.
  std::filesystem::path worker_program;
  /// The log writer (`cyme-log`, apps/cyme_log.cpp), started beside every
  /// instance to write its output to worker.log.
  std::filesystem::path log_program;
  /// When each instance's worker.log is rotated, and how many backups stay.
  rotation_policy worker_log;
  /// Programs a launch may name besides the worker program.
  program_allow_list allowed_programs;
  /// Passed as `--broker` when a spec names no broker.
  std::string default_broker;
  /// Appended to every worker-kind instance's command line.
  std::vector<std::string> extra_args;
  /// librdkafka properties of each broker (SASL, TLS) for the workers on
  /// it: written, mode 0600, to `<root>/<name>/kafka.properties` and named
  /// by `--kafka-config`, so no secret is on a command line. None when null.
  std::shared_ptr<const kafka::property_book> kafka_properties;
  /// Standby workers kept ready at most (0: none). See "Standby workers"
  /// above spawn_process_driver.
  uint32_t standby_workers = 0;
  /// How long after telling of a death nobody asked for the driver clears
  /// what the dead worker left: the rest of its process group, its zombie,
  /// its pid file. By then its restart has started (0.5-1.5 ms here), so
  /// the clearing is not on the way to it.
  std::chrono::milliseconds leftovers_delay{5};
};

/// Spawns a process driver after validating `settings`: the root must be
/// creatable (it is created) and writable, the worker and log programs must
/// exist and be executable, the default broker be well-formed and the
/// rotation policy allowed. Otherwise answers an `invalid_argument` error
/// and spawns nothing.
///
/// An instance is started from its launch (messages/launch.hpp) with
/// execve, never a shell; stdin from /dev/null, stdout and stderr the
/// write end of a pipe, no other descriptor inherited, leading its own
/// process group, in its launch's `cwd` (default: its folder). Its
/// environment is the branch's, then its launch's `env`, then
/// CYME_INSTANCE (name), CYME_APP, CYME_BROKER and CYME_INSTANCE_DIR. A
/// worker-kind instance is started as
///
///   <program> <args...> --name <name> --app <app> --broker <broker>
///     [--queues <q1,q2,...>] --min <min_concurrency>
///     --max <max_concurrency> --instance-dir <root>/<name>
///     [--kafka-config <root>/<name>/kafka.properties]
///     --control-since-ms <T> <extra_args...>
///
/// (program: the launch's, or `worker_program`; T: when the instance's
/// previous worker exited, if less than 5 s ago, so that commands sent
/// while none served it are taken, else now); a process-kind instance as
/// `<program> <args...>`. A program that is neither the worker program nor
/// allowed by `allowed_programs` is refused.
///
/// The driver opens the log first (as the writer will): an instance whose
/// log cannot be opened is not started. The worker's pid file is written
/// as soon as it runs. Its log writer is started just after that (the
/// pipe holds what the instance writes until then, so a replacement does
/// not wait for it): `log_program --max-bytes M --backups N
/// <root>/<name>/worker.log` reading the pipe's other end. It runs in a
/// session of its own, with an empty environment, stdout and stderr on
/// /dev/null, in "/": nothing sent to the instance's group reaches it, and
/// adoption never takes it for an instance. It detaches once the log is
/// open (the process started here is reaped at once), keeps no other end
/// of the pipe, and exits when the pipe ends, once the instance and every
/// process it started are gone and their last lines written. So it
/// outlives a branch restart with its instance, and writes reach the log a
/// little after the instance wrote them. An instance whose log writer
/// fails all the same is killed, and its start fails.
///
/// Standby workers: with `standby_workers` above 0, each start of a worker
/// that runs the worker program in its own folder is followed, 0.2 s later
/// (the started worker gets onto the bus first), by the start of a
/// standby for the next start of the same launch (same app, broker,
/// arguments, environment and Kafka properties), unless one is ready
/// already or `standby_workers` run: `<program> <args...> --standby --name
/// <P> --app <app> --broker <broker> --instance-dir <root>/<P>
/// [--kafka-config <root>/.standby/kafka-<n>.properties] <extra_args...>`
/// (P: a placeholder as long as the longest name, which no instance can
/// be named), in `<root>/.standby`, its stdout and stderr appended to
/// `<root>/.standby/standby.log` (moved to standby.log.1 once past 1 MiB
/// when a standby starts), its stdin a socket the driver holds the other
/// end of, its CYME_INSTANCE and the name in its CYME_INSTANCE_DIR
/// placeholders. It gets on the bus and says
/// "ready". The next such start takes it instead of starting a process:
/// the driver sends the standby its adoption (messages/adoption.hpp) with
/// the write end of the log's pipe, and starts the log writer as always;
/// the standby moves its output to the log, enters the instance's folder,
/// writes the instance over the placeholders of its environment and of
/// its command line (so `ps` shows it, and adoption by a later driver
/// trusts it, like any worker of the instance), and serves. A start with
/// no ready standby starts a process as above. A standby that ends before
/// it is adopted is not replaced for 30 s; one whose driver is gone (its
/// socket ends) exits by itself, and closing the driver ends them all. A
/// driver that starts ends (SIGKILL) every `--standby` process marked
/// under its root that is not a child of its own process and that no pid
/// file records: a branch that died may have told one its adoption, which
/// it would take, becoming a second worker of an instance the next branch
/// starts itself.
///
/// Arming (arm(spec, pid), see actors/seams.hpp): when an armed worker
/// dies unasked, the driver starts `spec` in its place from the exit
/// handler, before it tells of the death (a ready standby is taken as by
/// any start), and tells the new pid as the exit's `replacement`. Until a
/// start takes it (same spec: answered with its pid at once; another spec:
/// it is stopped, then that start runs), it is a spare: a stop ends it,
/// and it is not armed itself. A replacement that cannot be started is
/// logged, and the supervisor's repair starts the instance as usual.
///
/// Stopping sends the launch's stop signal to the process group, then
/// SIGKILL after its stop grace, and answers once the exit was observed.
/// When an own process exits, what is left of its group is killed, so no
/// pool process outlives its worker.
caf::expected<process_driver_actor>
spawn_process_driver(caf::actor_system& sys, process_driver_settings settings);

} // namespace cyme

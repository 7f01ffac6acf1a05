#pragma once

/// The production process driver: starts, stops and watches real
/// `cyme-worker` processes on Linux, one per instance name, behind the
/// `process_driver_actor` seam (actors/seams.hpp).
///
/// Files, per instance, under the branch root:
///
///   <root>/<name>/            0750, created on first start
///   <root>/<name>/worker.log  the worker's stdout and stderr, appended
///   <root>/<name>/worker.pid  one line "<pid> <starttime>\n", written
///                             atomically (temp file, fsync, rename) once
///                             the process runs; removed after it exits
///
/// `<starttime>` is field 22 of /proc/<pid>/stat (clock ticks since boot):
/// with the pid it names one process for the life of the machine, so a
/// recycled pid is never mistaken for a worker.
///
/// A pid file is trusted only when it is one well-formed line of at most
/// 256 bytes, its process exists (kill(pid, 0)), has the recorded start
/// time, and its /proc/<pid>/cmdline holds the pair `--name`, `<name>`.
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
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "actors/seams.hpp"

namespace cyme {

/// How a process driver runs workers.
struct process_driver_settings {
  /// Branch root: one folder per instance is made under it.
  std::filesystem::path root;
  /// The worker executable (`cyme-worker`), started with execve.
  std::filesystem::path worker_program;
  /// Passed as `--broker` when a spec names no broker.
  std::string default_broker;
  /// Appended to every worker's command line.
  std::vector<std::string> extra_args;
  /// Time between SIGTERM and SIGKILL when stopping a worker.
  caf::timespan stop_grace = std::chrono::seconds{10};
};

/// Spawns a process driver after validating `settings`: the root must be
/// creatable (it is created) and writable, the worker program must exist
/// and be executable, the default broker well-formed and the grace not
/// negative. Otherwise answers an `invalid_argument` error and spawns
/// nothing.
///
/// A worker is started as (execve, never a shell, the branch's environment
/// passed through, stdin from /dev/null, stdout and stderr appended to its
/// log, no other descriptor inherited, leading its own process group):
///
///   <worker_program> --name <name> --app <app> --broker <broker>
///     [--queues <q1,q2,...>] --min <min_concurrency>
///     --max <max_concurrency> <extra_args...>
///
/// Stopping sends SIGTERM to the worker's process group, then SIGKILL to it
/// after `stop_grace`, and answers once the exit was observed. When an own
/// worker exits, what is left of its process group is killed, so no pool
/// process outlives its worker.
caf::expected<process_driver_actor>
spawn_process_driver(caf::actor_system& sys, process_driver_settings settings);

} // namespace cyme

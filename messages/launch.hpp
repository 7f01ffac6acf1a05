#pragma once

/// What an instance runs: its program, arguments, environment, working
/// folder, how it is stopped, and its kind. An app holds defaults that its
/// instances inherit; an instance overrides any of them.
///
/// In the model both are stored as *overrides*: a JSON object holding only
/// the fields that were set (`program`, `args`, `env`, `cwd`, `stop_signal`,
/// `stop_grace_s`, `kind`). Resolving an instance's overrides over its app's
/// gives its `launch_spec`, what the process driver starts.
///
/// Everything here becomes an execve argument, an environment entry or a
/// path, never shell text; the limits keep a request from making the branch
/// build unbounded command lines.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

namespace cyme {

/// How an instance is supervised.
enum class instance_kind : uint8_t {
  /// Speaks the control protocol: alive means running and answering ping;
  /// its queues and concurrency are reconciled.
  worker,
  /// Any program: alive means running; no bus commands.
  process,
};

std::string to_string(instance_kind x);

/// Most arguments, environment entries, and bytes in each.
constexpr std::size_t max_launch_args = 64;
constexpr std::size_t max_launch_env = 64;
constexpr std::size_t max_launch_text = 4096;
/// Longest grace between the stop signal and SIGKILL.
constexpr uint32_t max_stop_grace_ms = 3600 * 1000;

/// The launch of one instance, resolved.
struct launch_spec {
  instance_kind kind = instance_kind::worker;
  /// Absolute path; empty: the branch's worker program (cyme-worker).
  std::string program;
  std::vector<std::string> args;
  /// Added to the branch's environment (and replacing its entries).
  std::map<std::string, std::string> env;
  /// Absolute path; empty: the instance's folder under the branch root.
  std::string cwd;
  /// TERM, INT, QUIT, HUP, USR1 or USR2.
  std::string stop_signal = "TERM";
  /// Time between the stop signal and SIGKILL.
  uint32_t stop_grace_ms = 10000;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, launch_spec& x) {
  return f(caf::meta::type_name("launch_spec"), x.kind, x.program, x.args,
           x.env, x.cwd, x.stop_signal, x.stop_grace_ms);
}

bool operator==(const launch_spec& x, const launch_spec& y);
inline bool operator!=(const launch_spec& x, const launch_spec& y) {
  return !(x == y);
}

/// The flags a branch gives every worker-kind instance; an instance's own
/// arguments must not carry them.
const std::vector<std::string>& branch_worker_flags();

/// The signal number of a stop_signal name, or 0 when it is not one of
/// the allowed names.
int stop_signal_number(const std::string& name);

/// Applies `changes_json` (a JSON object of launch fields, as a request
/// sends them) to the overrides `overrides_json`: a member set to null is
/// removed (inherited again), any other is validated and set. Unknown
/// members are left alone: the caller's other fields. On success returns
/// empty and sets `out_json`; else says what is wrong and leaves it.
std::string merge_launch_overrides(const std::string& overrides_json,
                                   const std::string& changes_json,
                                   std::string& out_json);

/// The launch of an instance: the defaults, then its app's overrides, then
/// its own. Returns why not when stored overrides are unreadable.
std::string resolve_launch(const std::string& app_overrides_json,
                           const std::string& instance_overrides_json,
                           launch_spec& out);

/// Empty when a resolved launch can be run, else the first problem: a
/// relative or unnormalised path, too many or too long arguments, a bad
/// environment key, a branch flag among a worker's arguments, a process
/// without a program, a stop signal not allowed.
std::string launch_problem(const launch_spec& launch);

/// The launch as the JSON object the HTTP API shows (`stop_grace_s` in
/// seconds), as text.
std::string launch_json_text(const launch_spec& launch);

/// Whether `path` is absolute and lexically normal: no empty, "." or ".."
/// component, so prefix checks on it mean what they say.
bool is_normal_absolute_path(const std::string& path);

} // namespace cyme

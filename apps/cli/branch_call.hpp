#pragma once

/// One exchange between the `cyme` CLI and a branch: where the branch
/// listens, the single HTTP request a command maps to, and how its answer
/// becomes output and an exit code. Every `cyme` command is exactly one
/// request, so a command is fully described by a `branch_call` built from
/// its arguments before anything is sent.

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace cyme::cli {

/// Exit codes scripts can rely on; `cyme --help` lists them too.
enum exit_code : int {
  /// The branch did what was asked (2xx).
  exit_ok = 0,
  /// The branch answered an error (4xx); its `error` text went to stderr.
  exit_refused = 1,
  /// Bad flags, names or JSON on the command line; nothing was sent.
  exit_usage = 2,
  /// The branch could not be reached, timed out, or answered 5xx.
  exit_unreachable = 3,
  /// `tasks wait` ran out of time (504) with the task still PENDING.
  exit_still_pending = 4,
};

/// Where a branch listens, from a URL `http://HOST[:PORT][/]`.
struct branch_address {
  /// Host name or address; an IPv6 literal without its brackets.
  std::string host;
  int port = 80;
  /// https://: the branch serves its API over TLS.
  bool tls = false;
};

/// Parses a branch URL. Returns nothing and says why in `why` when `url` is
/// not `http://HOST[:PORT]` or `https://HOST[:PORT]` (ports 80 and 443 by
/// default) with an optional trailing slash: the branch serves its API at
/// its root, so another scheme, user info, a path, a query or a fragment
/// would be silently ignored or misrouted.
std::optional<branch_address> parse_branch_url(std::string_view url,
                                               std::string* why);

/// How a successful answer is shown to a person (without `--json`).
enum class view {
  /// `key: value` lines of a JSON object.
  object,
  /// A one-column table of the strings in a JSON array.
  names,
  /// A table with one row per instance.
  instances,
  /// Only the `id` of the answer (a task just sent).
  task_id,
  /// The `ids` of the answer, one per line (a batch just sent).
  task_ids,
  /// Server-Sent Events (`events`): one line per event as it arrives.
  event_stream,
  /// Text as it arrives (`instances logs`).
  text_stream,
};

/// The one request a command maps to, and how to report its answer.
struct branch_call {
  /// GET, PUT, POST or DELETE.
  std::string method = "GET";
  /// Path segments, percent-encoded when sent: {"demo", "instances"} is
  /// `/demo/instances/` (the API's paths end with a slash).
  std::vector<std::string> segments;
  /// Query parameters (`nowait`, `timeout`): the ones that also make sense
  /// on GET and DELETE, which carry no body.
  std::vector<std::pair<std::string, std::string>> query;
  /// JSON body for PUT and POST (an object; an array for a batch of
  /// tasks), sent as application/json.
  std::optional<nlohmann::ordered_json> body;
  view shown_as = view::object;
  /// Column title for `view::names`.
  std::string names_title = "NAME";
  /// `tasks wait`: a 504 means the task is still PENDING (exit 4), not that
  /// the branch failed.
  bool timeout_means_pending = false;
  /// The server may legitimately hold the answer this long (`tasks wait`),
  /// so the read timeout must not be shorter.
  int min_read_timeout_s = 0;

  /// The request target: encoded path with trailing slash, then the query.
  std::string target() const;
};

/// Settings shared by every call of one run.
struct connection_settings {
  branch_address address;
  /// Sent as `Authorization: Bearer <token>` when not empty.
  std::string token;
  /// Connect, read and write timeout in seconds.
  int timeout_s = 120;
  /// PEM CAs an https:// branch's certificate is checked against; empty:
  /// the system's.
  std::string ca_file;
};

/// Percent-encodes everything in `text` except RFC 3986 unreserved
/// characters, so a path segment or query value can never add a separator.
std::string percent_encode(std::string_view text);

/// Sends `call` and reports the answer: with `as_json` the server's JSON
/// pretty-printed on `out`, else the answer for people; errors on `err` as
/// `cyme: <text>`. Returns the process exit code (see `exit_code`).
int perform(const connection_settings& settings, const branch_call& call,
            bool as_json, std::ostream& out, std::ostream& err);

} // namespace cyme::cli

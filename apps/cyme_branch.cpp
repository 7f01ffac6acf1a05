// cyme-branch: the daemon of one host. Composes the model store (SQLite
// under --root), the supervisor, the Kafka control bus, the process driver
// running cyme-worker, the embedded Kafka cluster (default) or a real one,
// task results and the HTTP API; logs each supervisor event as one line
// (transport/logging.hpp: stderr, text or JSON). Bad flags exit 2, other
// failures to start exit 1.
// SIGTERM or SIGINT stops it cleanly: its instances are stopped too unless
// --keep-instances. After kill -9, starting it again on the same --root
// re-adopts the instances still running (and the embedded cluster).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/message_types.hpp"
#include "actors/restart_bucket.hpp"
#include "actors/supervisor.hpp"
#include "messages/errors.hpp"
#include "messages/names.hpp"
#include "messages/topics.hpp"
#include "messages/version.hpp"
#include "store/model_store.hpp"
#include "transport/control_bus.hpp"
#include "transport/embedded_keeper.hpp"
#include "apps/branch_driver.hpp"
#include "apps/service_manager.hpp"
#include "apps/token_file.hpp"
#include "api/events.hpp"
#include "api/http_api.hpp"
#include "transport/http_server.hpp"
#include "transport/kafka.hpp"
#include "transport/log_files.hpp"
#include "transport/logging.hpp"
#include "transport/presence.hpp"
#include "transport/task_results.hpp"

namespace fs = std::filesystem;
using namespace cyme;

namespace {

/// The host name as a valid branch id, or "branch".
std::string default_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0)
    return "branch";
  std::string id;
  for (char* c = host; *c != '\0' && id.size() < 64; ++c)
    id += std::isalnum(static_cast<unsigned char>(*c)) || *c == '-' ? *c : '-';
  return name_problem("branch id", id).empty() ? id : "branch";
}

double seconds_of(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

std::chrono::milliseconds millis_of(double seconds) {
  return std::chrono::milliseconds{static_cast<int64_t>(seconds * 1000)};
}

/// Every connection is a descriptor: the soft limit goes up to what the
/// connection cap needs (and the hard limit allows), with room for
/// instances, Kafka and files.
void raise_descriptor_limit(uint32_t connections) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return;
  rlim_t want = static_cast<rlim_t>(connections) + 1024;
  if (lim.rlim_cur >= want)
    return;
  lim.rlim_cur = std::min(want, lim.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

struct branch_options {
  std::string id = default_id();
  std::string http = http_settings{}.host + ":"
                     + std::to_string(http_settings{}.port);
  std::string root = "cyme-data";
  std::string kafka = "embedded";
  // The supervisor's rules, defaults from supervisor_settings.
  double interval = seconds_of(supervisor_settings{}.interval);
  std::string restart_max_rate = supervisor_settings{}.restart_max_rate;
  double wait_after_broker_revived
    = seconds_of(supervisor_settings{}.wait_after_broker_revived);
  double bus_suspect_threshold = supervisor_settings{}.bus_suspect_threshold;
  uint32_t bus_suspect_min_misses = supervisor_settings{}.bus_suspect_min_misses;
  std::string bus_suspect_restart_rate
    = supervisor_settings{}.bus_suspect_restart_rate;
  int control_fetch_wait_ms = 0;
  bool no_restart_at_once = false;
  bool keep_instances = false;
  std::string worker;
  std::vector<std::string> allow_program;
  std::vector<std::string> kafka_property;
  std::string node;
  std::string node_cert;
  std::string node_key;
  std::string node_ca;
  bool node_insecure = false;
  std::string token;
  std::string token_file;
  bool token_for_reads = false;
  // HTTPS: this branch's certificate and key, the CA its peers' are checked
  // against.
  std::string http_cert;
  std::string http_key;
  std::string http_ca;
  // The HTTP server's limits, defaults from http_settings.
  double http_header_timeout = seconds_of(http_settings{}.header_timeout);
  double http_body_timeout = seconds_of(http_settings{}.body_timeout);
  double http_keep_alive_timeout = seconds_of(http_settings{}.keep_alive_timeout);
  uint32_t http_keep_alive_requests = http_settings{}.keep_alive_requests;
  uint32_t http_max_connections = http_settings{}.max_connections;
  uint32_t http_threads = http_settings{}.handler_threads;
  std::string log_level = "info";
  std::string log_format = "text";
  rotation_policy worker_log;
  // One standby per launch (the driver's own default, for embedders and
  // tests, is none).
  uint32_t standby_workers = 1;
};

constexpr log::logger branch_log{"branch"};

/// A flag or the config file is wrong: says so and exits 2.
[[noreturn]] void bad_flag(const std::string& text) {
  std::cerr << "cyme-branch: " << text << "\n";
  std::exit(2);
}

/// The branch cannot start or run on: logs why and exits 1.
[[noreturn]] void die(const std::string& text) {
  branch_log.error(text);
  std::exit(1);
}

/// A CLI11 check: digits only (CLI11 reads "-3" as a huge unsigned number).
/// Empty when `text` passes, as CLI11 wants it.
std::string whole_number(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return "'" + text + "' is not a whole number";
  return {};
}

/// How much a supervisor event matters to an operator.
log::level level_of(event_kind kind) {
  switch (kind) {
    case event_kind::does_not_respond:
    case event_kind::died:
    case event_kind::disabled:
    case event_kind::broker_down:
    case event_kind::broker_restarted:
    case event_kind::actor_given_up:
    case event_kind::bus_suspected:
      return log::level::warn;
    case event_kind::round_finished:
      return log::level::debug;
    default:
      return log::level::info;
  }
}

/// Splits HOST:PORT; fails on anything else.
std::pair<std::string, uint16_t> host_port(const std::string& flag,
                                           const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= text.size())
    bad_flag(flag + " must be HOST:PORT, not '" + text + "'");
  auto port_text = text.substr(colon + 1);
  if (port_text.size() > 5
      || port_text.find_first_not_of("0123456789") != std::string::npos
      || std::stoul(port_text) > 65535)
    bad_flag(flag + " port '" + port_text + "' is not a port number");
  return {text.substr(0, colon), static_cast<uint16_t>(std::stoul(port_text))};
}

/// A program installed next to this one.
fs::path sibling(const char* argv0, const std::string& name) {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec)
    self = fs::absolute(argv0);
  return self.parent_path() / name;
}

/// `dest`'s answer to `xs`, if it comes within `limit`.
template <class T, caf::message_priority P = caf::message_priority::normal,
          class Handle, class... Ts>
std::optional<T> ask_within(caf::actor_system& sys, caf::timespan limit,
                            const Handle& dest, Ts&&... xs) {
  caf::scoped_actor self{sys};
  std::optional<T> out;
  self->template request<P>(dest, limit, std::forward<Ts>(xs)...)
    .receive([&](T& x) { out = std::move(x); },
             [&](caf::error& err) { branch_log.error(describe(err)); });
  return out;
}

template <class T, caf::message_priority P = caf::message_priority::normal,
          class Handle, class... Ts>
std::optional<T> ask(caf::actor_system& sys, const Handle& dest, Ts&&... xs) {
  return ask_within<T, P>(sys, std::chrono::seconds{60}, dest,
                          std::forward<Ts>(xs)...);
}

/// One line on the supervisor for systemctl status.
std::string status_line(const supervisor_status& st) {
  std::string line = std::to_string(st.instances) + " instances, "
                     + std::to_string(st.rounds_completed) + " rounds";
  if (st.paused)
    line += st.paused_by_operator ? ", paused by an operator"
                                  : ", paused (broker down)";
  if (st.bus_suspected)
    line += ", control bus suspected";
  return line;
}

/// Waits for SIGTERM or SIGINT (blocked in every thread) and returns it.
/// With a service manager listening (systemd, Type=notify), meanwhile:
/// READY=1 once the supervisor's first round has started (the HTTP API is
/// bound before this is called); and, with its watchdog on, WATCHDOG=1
/// whenever the supervisor answers a heartbeat (a status request) within
/// half the watchdog's period, sent twice a period. A wedged actor system
/// answers none, is not fed, and systemd restarts the branch.
int serve_until_stopped(caf::actor_system& sys, const supervisor_core& sup,
                        const service_manager& sm,
                        const sigset_t& stop_signals) {
  using namespace std::chrono;
  if (!sm.active()) {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    return sig;
  }
  auto say = [&](const std::string& state) {
    if (auto err = sm.notify(state); !err.empty())
      branch_log.warn("service manager: " + err);
  };
  // Until ready, the supervisor is asked every 50 ms; then once per
  // heartbeat: half the watchdog's period, or 10 s for the status line.
  auto beat = sm.watchdog() ? duration_cast<nanoseconds>(*sm.watchdog()) / 2
                            : nanoseconds{seconds{10}};
  bool ready = false;
  auto next = steady_clock::now();
  for (;;) {
    auto wait = ready ? std::max(nanoseconds{0}, next - steady_clock::now())
                      : nanoseconds{milliseconds{50}};
    timespec ts{static_cast<time_t>(duration_cast<seconds>(wait).count()),
                static_cast<long>((wait % seconds{1}).count())};
    if (int sig = sigtimedwait(&stop_signals, nullptr, &ts); sig > 0)
      return sig;
    if (ready && steady_clock::now() < next)
      continue;
    next = steady_clock::now() + beat;
    auto st = ask_within<supervisor_status>(sys, ready ? beat : seconds{1},
                                            sup, status_atom::value);
    if (!st) {
      if (ready && sm.watchdog())
        branch_log.warn("watchdog: the supervisor did not answer its "
                        "heartbeat; systemd is not fed");
      continue;
    }
    std::string state;
    if (!ready && (st->round_in_progress || st->rounds_completed > 0)) {
      ready = true;
      state = "READY=1\n";
      branch_log.info("service manager: ready (the first round has started)");
    }
    if (ready) {
      if (sm.watchdog())
        state += "WATCHDOG=1\n";
      say(state + "STATUS=" + status_line(*st));
    }
  }
}

/// The branch's Kafka client properties: `--kafka-property KEY=VALUE`
/// flags (never a secret: a command line is visible in ps) and the [kafka]
/// section of the --config file (which, holding a secret, must be readable
/// by its owner only). Exits 2 with a clear error on anything else.
kafka::config_map kafka_properties(const CLI::App& app,
                                   const branch_options& o) {
  kafka::config_map props;
  for (auto& kv : o.kafka_property) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      bad_flag("--kafka-property takes KEY=VALUE, not '" + kv.substr(0, 64)
               + "'");
    auto key = kv.substr(0, eq);
    if (kafka::is_secret_property(key))
      bad_flag("--kafka-property " + key
               + ": a secret never goes on the command line (ps shows it); "
                 "put it in the [kafka] section of the --config file, "
                 "readable by the branch's user only");
    props[key] = kv.substr(eq + 1);
  }
  auto* config = app.get_config_ptr();
  if (config != nullptr && config->count() > 0) {
    auto path = config->as<std::string>();
    std::vector<CLI::ConfigItem> items;
    try {
      items = CLI::ConfigTOML().from_file(path);
    } catch (const CLI::Error& e) {
      bad_flag("--config " + path + ": " + e.what());
    }
    bool secrets = false;
    for (auto& item : items) {
      if (item.name == "++" || item.name == "--")
        continue; // section markers
      if (item.parents.empty()) {
        if (app.get_option_no_throw("--" + item.name) == nullptr)
          bad_flag("--config " + path + ": unknown setting '" + item.name
                   + "'");
        continue;
      }
      if (item.parents.front() != "kafka")
        bad_flag("--config " + path + ": unknown section ["
                 + item.parents.front() + "]; the only section is [kafka]");
      std::string key;
      for (size_t i = 1; i < item.parents.size(); ++i)
        key += item.parents[i] + ".";
      key += item.name;
      if (item.inputs.size() != 1)
        bad_flag("--config " + path + ": [kafka] " + key + " takes one value");
      secrets = secrets || kafka::is_secret_property(key);
      props[key] = item.inputs.front();
    }
    struct stat st {};
    if (secrets && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
      bad_flag("--config " + path + " holds a Kafka secret but others may "
               "read it: chmod 600 it");
  }
  if (auto p = kafka::properties_problem(props); !p.empty())
    bad_flag(p);
  return props;
}

} // namespace

int main(int argc, char** argv) {
  branch_options o;
  CLI::App app{"cyme-branch: keeps the worker instances of this host in the "
               "state the model describes"};
  app.set_config("--config", "",
                 "read these flags from a TOML/INI file (key = value, names "
                 "without dashes; librdkafka properties in a [kafka] "
                 "section; see deploy/examples/)");
  // The [kafka] section is read by kafka_properties(), which also refuses
  // unknown settings.
  app.allow_config_extras(CLI::config_extras_mode::ignore);
  app.add_option("--id", o.id,
                 "branch id, unique per Kafka cluster (names its reply topic; "
                 "default: the host name)");
  app.add_option("--http", o.http, "HTTP API address HOST:PORT (loopback by default)")
    ->capture_default_str();
  app.add_option("--http-cert", o.http_cert,
                 "PEM certificate (chain) of the HTTP API: with --http-key, "
                 "the API is served over HTTPS only (TLS 1.2 or later)");
  app.add_option("--http-key", o.http_key,
                 "PEM private key of --http-cert (a file not every user may "
                 "read, e.g. mode 0640)");
  app.add_option("--http-ca", o.http_ca,
                 "PEM file of the CA that other branches' HTTPS certificates "
                 "are checked against when requests are forwarded to them "
                 "(default: the system's)");
  app.add_option("--root", o.root,
                 "folder for the model database, pid files, logs and the "
                 "embedded cluster");
  app.add_option("--kafka", o.kafka,
                 "'embedded' (an in-memory cluster on loopback) or "
                 "HOST:PORT[,HOST:PORT...] of a real Kafka");
  app.add_option("--interval", o.interval, "seconds between verification rounds")
    ->capture_default_str();
  app.add_option("--restart-max-rate", o.restart_max_rate,
                 "restarts per instance before it is disabled (N/s, N/m, N/h)")
    ->capture_default_str();
  app.add_option("--wait-after-broker-revived", o.wait_after_broker_revived,
                 "seconds without restarts after a broker comes back")
    ->capture_default_str();
  app.add_option("--bus-suspect-threshold", o.bus_suspect_threshold,
                 "share of a round's probed instances silent while their "
                 "processes run (0 to 1) at which the control bus, not the "
                 "instances, is suspected")
    ->capture_default_str();
  app.add_option("--bus-suspect-min-misses", o.bus_suspect_min_misses,
                 "fewest silent running instances a round must find to "
                 "suspect the bus (at least 1)")
    ->check(whole_number)
    ->capture_default_str();
  app.add_option("--bus-suspect-restart-rate", o.bus_suspect_restart_rate,
                 "while the bus is suspected, restarts of running but silent "
                 "instances, fleet-wide (N/s, N/m, N/h); dead ones are "
                 "replaced at once")
    ->capture_default_str();
  app.add_option("--control-fetch-wait-ms", o.control_fetch_wait_ms,
                 "fetch.wait.max.ms of control readers (default "
                   + std::to_string(embedded_fetch_wait_ms) + " embedded, "
                   + std::to_string(broker_fetch_wait_ms) + " real Kafka)");
  app.add_flag("--no-restart-at-once", o.no_restart_at_once,
               "every restart waits for the supervisor's permit; by default "
               "the process driver is armed to start a healthy worker's "
               "replacement the moment it dies, while a permit would be "
               "granted");
  app.add_flag("--keep-instances", o.keep_instances,
               "on SIGTERM, leave the instances (and the embedded cluster) "
               "running");
  app.add_option("--node", o.node,
                 "HOST:PORT on which remote nodes send the supervisor its "
                 "public requests as typed actor messages (CAF middleman); "
                 "off when not given. Without TLS, loopback only unless "
                 "--node-insecure");
  app.add_option("--node-cert", o.node_cert,
                 "PEM certificate of this node: with --node-key and "
                 "--node-ca, node traffic is TLS and peers must present a "
                 "certificate signed by the CA");
  app.add_option("--node-key", o.node_key, "PEM private key of --node-cert");
  app.add_option("--node-ca", o.node_ca, "PEM file of the CA nodes trust");
  app.add_flag("--node-insecure", o.node_insecure,
               "allow --node on an address beyond loopback without TLS: "
               "whoever reaches it may pause the branch and restart or stop "
               "its instances");
  app.add_option("--token", o.token,
                 "require 'Authorization: Bearer TOKEN' on every change "
                 "through the HTTP API (also CYME_TOKEN)")
    ->envname("CYME_TOKEN");
  app.add_flag("--token-for-reads", o.token_for_reads,
               "require the token on reads too: every request but the "
               "dashboard's page (which then asks for it); needs --token or "
               "--token-file");
  app.add_option("--token-file", o.token_file,
                 "read the token of --token from this file (mode 0600 or "
                 "stricter), so that it is not on the command line");
  app.add_option("--worker", o.worker,
                 "the cyme-worker program (default: next to cyme-branch)");
  app.add_option("--kafka-property", o.kafka_property,
                 "KEY=VALUE librdkafka property for every Kafka client of "
                 "the branch and its workers (security.protocol, "
                 "sasl.mechanism, ssl.ca.location, ...); repeatable. Secrets "
                 "(sasl.password, ...) only in the [kafka] section of "
                 "--config");
  app.add_option("--allow-program", o.allow_program,
                 "a program (file) or a folder of programs that instances "
                 "may run besides the worker; repeatable. Naming a program "
                 "over HTTP runs it on this host: allow only what operators "
                 "may run");
  app.add_option("--http-header-timeout", o.http_header_timeout,
                 "seconds a client has for a request's header fields (and a "
                 "new connection for its first request)")
    ->capture_default_str();
  app.add_option("--http-body-timeout", o.http_body_timeout,
                 "seconds a client has for a request's body")
    ->capture_default_str();
  app.add_option("--http-keep-alive-timeout", o.http_keep_alive_timeout,
                 "seconds an idle keep-alive connection stays open")
    ->capture_default_str();
  app.add_option("--http-keep-alive-requests", o.http_keep_alive_requests,
                 "requests served on one connection before it is closed")
    ->capture_default_str();
  app.add_option("--http-max-connections", o.http_max_connections,
                 "open HTTP connections; past it, new ones get 503")
    ->capture_default_str();
  app.add_option("--http-threads", o.http_threads,
                 "threads for requests that ask the supervisor or the model "
                 "(long polls and streams hold none)")
    ->capture_default_str();
  app.add_option("--worker-log-max-bytes", o.worker_log.max_bytes,
                 "rotate an instance's worker.log before it would exceed "
                 "this size, into worker.log.1 ... (0: never rotate)")
    ->check(whole_number)
    ->capture_default_str();
  app.add_option("--worker-log-backups", o.worker_log.backups,
                 "rotated worker.log files kept per instance (at least 1)")
    ->check(whole_number)
    ->capture_default_str();
  app.add_option("--standby-workers", o.standby_workers,
                 "workers kept ready on the bus, one per launch, so that a "
                 "start or replacement of a worker of that launch answers "
                 "at once (0: none; at most "
                   + std::to_string(max_standby_workers) + ")")
    ->check(whole_number)
    ->capture_default_str();
  app.add_option("--log-level", o.log_level,
                 "lowest level of the branch's log lines: trace, debug, "
                 "info, warn or error")
    ->capture_default_str();
  app.add_option("--log-format", o.log_format,
                 "the branch's log lines on stderr: 'text' or 'json' (one "
                 "object per line: time, level, component, message)")
    ->capture_default_str();
  app.set_version_flag("--version", cyme::version_text("cyme-branch"));
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  auto log_level = log::parse_level(o.log_level);
  if (!log_level)
    bad_flag("--log-level must be trace, debug, info, warn or error, not '"
             + o.log_level + "'");
  auto log_format = log::parse_format(o.log_format);
  if (!log_format)
    bad_flag("--log-format must be text or json, not '" + o.log_format + "'");
  log::setup(*log_level, *log_format);
  if (auto p = rotation_policy_problem(o.worker_log))
    bad_flag(*p);
  if (o.standby_workers > max_standby_workers)
    bad_flag("--standby-workers must be 0 to "
             + std::to_string(max_standby_workers));
  if (auto p = name_problem("branch id", o.id); !p.empty())
    bad_flag(p);
  if (o.http_cert.empty() != o.http_key.empty())
    bad_flag("--http-cert and --http-key go together");
  if (!o.http_cert.empty()) {
    if (auto p = key_file_problem(o.http_key); !p.empty())
      bad_flag("--http-key " + o.http_key + ": " + p);
    if (auto p = http::tls_problem(o.http_cert, o.http_key); !p.empty())
      bad_flag("--http-cert/--http-key: " + p);
  }
  if (!o.http_ca.empty())
    if (auto p = http::ca_problem(o.http_ca); !p.empty())
      bad_flag("--http-ca: " + p);
  if (!o.token_file.empty()) {
    if (!o.token.empty())
      bad_flag("give the token once: --token (or CYME_TOKEN) or --token-file");
    if (auto p = read_token_file(o.token_file, o.token); !p.empty())
      bad_flag("--token-file: " + p);
  }
  if (o.token_for_reads && o.token.empty())
    bad_flag("--token-for-reads needs a token (--token, CYME_TOKEN or "
             "--token-file)");

  auto kafka_props = kafka_properties(app, o);
  auto [http_host, http_port] = host_port("--http", o.http);
  std::optional<std::pair<std::string, uint16_t>> node;
  if (!o.node.empty())
    node = host_port("--node", o.node);
  bool node_tls = !o.node_cert.empty() || !o.node_key.empty()
                  || !o.node_ca.empty();
  if (node_tls) {
    if (!node)
      bad_flag("--node-cert, --node-key and --node-ca need --node");
    for (auto& [flag, path] : {std::pair{"--node-cert", o.node_cert},
                               std::pair{"--node-key", o.node_key},
                               std::pair{"--node-ca", o.node_ca}})
      if (path.empty() || !fs::is_regular_file(path))
        bad_flag(std::string{flag} + " must name a readable PEM file");
  }
  if (o.node_insecure && !node)
    bad_flag("--node-insecure needs --node");
  // Plain node traffic beyond loopback lets anyone on the network drive the
  // supervisor: only on an operator's explicit word.
  if (node && !node_tls && !o.node_insecure && !loopback_host(node->first))
    bad_flag("--node " + o.node
             + " is reachable beyond loopback and node traffic would be "
               "plain: give --node-cert, --node-key and --node-ca for TLS, "
               "or --node-insecure if the network is trusted");
  bool embedded = o.kafka == "embedded";
  if (!embedded)
    if (auto p = broker_problem(o.kafka); !p.empty() || o.kafka.empty())
      bad_flag("--kafka: " + (p.empty() ? std::string{"empty"} : p));
  if (o.control_fetch_wait_ms == 0)
    o.control_fetch_wait_ms = embedded ? embedded_fetch_wait_ms
                                       : broker_fetch_wait_ms;
  if (o.control_fetch_wait_ms < 1 || o.control_fetch_wait_ms > 10000)
    bad_flag("--control-fetch-wait-ms must be 1 to 10000");
  supervisor_settings settings;
  // Before --interval: a test passes --interval 0 so that a bad flag let
  // through here still starts no branch.
  if (!(o.bus_suspect_threshold > 0 && o.bus_suspect_threshold <= 1))
    bad_flag("--bus-suspect-threshold must be greater than 0 and at most 1");
  if (o.bus_suspect_min_misses < 1)
    bad_flag("--bus-suspect-min-misses must be at least 1");
  if (std::string problem;
      !parse_rate(o.bus_suspect_restart_rate, &problem))
    bad_flag("--bus-suspect-restart-rate: " + problem);
  if (!(o.interval > 0) || o.interval > 86400)
    bad_flag("--interval must be greater than 0 and at most 86400 seconds");
  if (!(o.wait_after_broker_revived >= 0) || o.wait_after_broker_revived > 86400)
    bad_flag("--wait-after-broker-revived must be 0 to 86400 seconds");
  for (auto [flag, value] :
       {std::pair{"--http-header-timeout", o.http_header_timeout},
        std::pair{"--http-body-timeout", o.http_body_timeout},
        std::pair{"--http-keep-alive-timeout", o.http_keep_alive_timeout}})
    if (!(value >= 0.001 && value <= 3600))
      bad_flag(std::string{flag} + " must be from 0.001 to 3600 seconds");
  if (o.http_keep_alive_requests < 1)
    bad_flag("--http-keep-alive-requests must be at least 1");
  if (o.http_max_connections < 1 || o.http_max_connections > 1000000)
    bad_flag("--http-max-connections must be 1 to 1000000");
  if (o.http_threads < 1 || o.http_threads > 256)
    bad_flag("--http-threads must be 1 to 256");
  settings.interval = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>{o.interval});
  settings.wait_after_broker_revived = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>{o.wait_after_broker_revived});
  settings.restart_max_rate = o.restart_max_rate;
  settings.bus_suspect_threshold = o.bus_suspect_threshold;
  settings.bus_suspect_min_misses = o.bus_suspect_min_misses;
  settings.bus_suspect_restart_rate = o.bus_suspect_restart_rate;
  settings.restart_at_once = !o.no_restart_at_once;
  if (auto p = settings_problem(settings); !p.empty())
    bad_flag(p);
  fs::path root = fs::absolute(o.root);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec)
    die("cannot create --root " + root.string() + ": " + ec.message());
  fs::path worker = fs::absolute(o.worker.empty()
                                   ? sibling(argv[0], "cyme-worker")
                                   : fs::path{o.worker})
                      .lexically_normal();
  program_allow_list programs;
  for (auto& path : o.allow_program)
    if (auto p = programs.allow(path); !p.empty())
      bad_flag("--allow-program: " + p);

  // Each supervised worker costs the process driver a descriptor: use
  // all the descriptors the hard limit allows.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }

  // Before any thread starts: the environment is not thread-safe, and
  // the instances must not inherit the service manager's variables.
  auto service = service_manager::from_environment();

  // SIGTERM and SIGINT are taken by serve_until_stopped, in no thread else.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::string bootstrap = o.kafka;
  std::optional<embedded_kafka> cluster;
  if (embedded) {
    std::string error;
    cluster = ensure_embedded_kafka(root / "kafka",
                                    sibling(argv[0], "cyme-embedded-kafka"),
                                    error);
    if (!cluster)
      die(error);
    bootstrap = cluster->bootstrap;
    branch_log.info(std::string{"embedded Kafka "}
                    + (cluster->started_here ? "started" : "found running")
                    + " at " + bootstrap + " (pid "
                    + std::to_string(cluster->pid)
                    + "; in memory: tasks are lost if it stops)");
  }

  settings.default_broker = bootstrap;

  // The branch's events: kept for /events/ and published on cyme.events.
  // Made before the actor system, so they outlive the actor that feeds them.
  event_publisher event_bus{kafka::base_config(bootstrap, kafka_props), o.id};
  event_hub events{o.id};
  events.set_sink([&](const event_record& e) { event_bus.enqueue(e); });
  // The embedded cluster, supervised: started again at once, on the same
  // address, when its process dies.
  std::optional<embedded_kafka_watch> cluster_watch;
  if (cluster)
    cluster_watch.emplace(
      root / "kafka", sibling(argv[0], "cyme-embedded-kafka"), *cluster,
      [&events](const embedded_kafka& now,
                const std::map<std::string, std::string>& ended,
                std::chrono::milliseconds took) {
        supervisor_event ev;
        ev.kind = event_kind::broker_restarted;
        ev.data = ended;
        ev.data["broker"] = now.bootstrap;
        ev.data["pid"] = std::to_string(now.pid);
        ev.data["took_ms"] = std::to_string(took.count());
        std::string how = "died";
        if (auto i = ended.find("signal"); i != ended.end())
          how = "was killed by " + i->second;
        else if (auto j = ended.find("code"); j != ended.end())
          how = "exited with code " + j->second;
        ev.detail = "embedded Kafka at " + now.bootstrap + " " + how
                    + "; started again in " + std::to_string(took.count())
                    + " ms (pid " + std::to_string(now.pid)
                    + "); the tasks, results and events it held in memory "
                      "are lost";
        branch_log.write(level_of(ev.kind), to_log_line(ev));
        events.publish(ev);
      },
      [last = std::string{}](const std::string& why) mutable {
        // Tried again up to once a second: say each new reason once.
        if (why != last)
          branch_log.error("embedded Kafka cannot be started again (trying "
                           "again): " + why);
        last = why;
      });
  // What /metrics shows of the bus and of rounds.
  auto bus_counters = std::make_shared<control_bus_counters>();
  auto round_durations = std::make_shared<metrics::histogram>(
    std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                        30, 60});

  caf::actor_system_config cfg;
  // After each piece of work a scheduler thread polls for more, 500 times
  // 50 us apart by default, then sleeps until work arrives or
  // relaxed-sleep-duration (10 ms) passes, to steal. With a few timers a
  // second that cost a branch with nothing to do about 2 % of a core. Work
  // sent to a sleeping thread wakes it at once, so shorter polling and a
  // longer sleep only delay stealing, which supervision does not need
  // within milliseconds (BENCHMARKS.md, idle cost).
  cfg.set("work-stealing.moderate-poll-attempts", size_t{10});
  cfg.set("work-stealing.relaxed-sleep-duration",
          caf::timespan{std::chrono::milliseconds{100}});
  if (node) {
    cfg.load<caf::io::middleman>();
    add_message_types(cfg);
  }
  if (node_tls) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = fs::absolute(o.node_cert).string();
    cfg.openssl_key = fs::absolute(o.node_key).string();
    cfg.openssl_cafile = fs::absolute(o.node_ca).string();
  }
  // Everything that talks to Kafka lives in this scope and is gone (threads
  // joined) before the embedded cluster is stopped below.
  {
  caf::actor_system sys{cfg};
  auto apps = std::make_shared<app_directory>();
  auto store = spawn_model_store(sys, (root / "model.db").string(), apps);
  if (!store)
    die(describe(store.error()));
  // The branch's Kafka properties, and those the model gives brokers.
  auto properties = std::make_shared<kafka::property_book>(kafka_props);
  if (auto brokers = ask<std::map<std::string, kafka::config_map>>(
        sys, *store, list_brokers_atom::value))
    for (auto& [broker, props] : *brokers)
      properties->set_own(broker, props);
  else
    die("cannot read the brokers of the model");
  if (auto apps = ask<std::vector<std::string>>(sys, *store,
                                                list_apps_atom::value))
    for (auto& app : *apps)
      if (reserved_app_name(app))
        branch_log.warn("app '" + app + "' has a name the API now reserves for a "
                 "path of its own; it is served under /apps/" + app + "/");
  control_bus_settings bus_settings;
  bus_settings.counters = bus_counters;
  bus_settings.default_broker = bootstrap;
  bus_settings.branch_id = o.id;
  bus_settings.reply_fetch_wait_ms = o.control_fetch_wait_ms;
  bus_settings.properties = properties;
  auto bus = spawn_control_bus(sys, bus_settings);
  if (!bus)
    die(describe(bus.error()));
  process_driver_settings driver_settings;
  driver_settings.root = root / "instances";
  driver_settings.worker_program = worker;
  driver_settings.log_program = sibling(argv[0], "cyme-log");
  driver_settings.worker_log = o.worker_log;
  driver_settings.allowed_programs = programs;
  driver_settings.default_broker = bootstrap;
  driver_settings.kafka_properties = properties;
  driver_settings.extra_args = {"--control-fetch-wait-ms",
                                std::to_string(o.control_fetch_wait_ms)};
  driver_settings.standby_workers = o.standby_workers;
  auto driver = spawn_branch_driver(sys, driver_settings);
  if (!driver)
    die(describe(driver.error()));
  auto spawned = spawn_supervisor(sys, settings,
                                  supervisor_seams{*driver, *bus, *store});
  if (!spawned)
    die(describe(spawned.error()));
  // This process's own parts (the event logger, the HTTP API, presence)
  // talk to the core; only the front is published.
  auto sup = spawned->core;
  auto logger = sys.spawn([&events, round_durations](
                            caf::event_based_actor*) -> caf::behavior {
    return {[&events, round_durations](supervisor_event& ev) {
      branch_log.write(level_of(ev.kind), to_log_line(ev));
      if (ev.kind == event_kind::round_finished)
        if (auto i = ev.data.find("duration_ms"); i != ev.data.end())
          round_durations->observe(std::stod(i->second) / 1000);
      events.publish(ev);
    }};
  });
  caf::anon_send(sup, subscribe_atom::value,
                 caf::actor_cast<event_listener>(logger));
  std::string node_address;
  if (node) {
    auto& front = spawned->front;
    auto port = node_tls ? caf::openssl::publish(front, node->second,
                                                 node->first.c_str(), true)
                         : sys.middleman().publish(front, node->second,
                                                   node->first.c_str(), true);
    if (!port)
      die("--node " + o.node + ": " + sys.render(port.error()));
    node_address = node->first + ":" + std::to_string(*port);
    branch_log.info("node: supervisor published at " + node_address
                    + (node_tls ? " (TLS)" : ""));
    if (!node_tls && !loopback_host(node->first))
      branch_log.warn("node: " + node_address
                      + " takes plain traffic beyond loopback "
                        "(--node-insecure): whoever reaches it may pause the "
                        "branch and restart or stop its instances");
  }

  task_result_readers results{properties, topics::results};
  // The default broker's results are read from the start.
  results.of(bootstrap);
  // Announced to the other branches on the bus; the HTTP port is known
  // once bound.
  std::atomic<uint16_t> http_bound{0};
  auto advertised_host = http_host == "0.0.0.0" ? default_id() : http_host;
  const std::string http_scheme = o.http_cert.empty() ? "http://" : "https://";
  presence branches{
    kafka::base_config(bootstrap, kafka_props), presence_settings{},
    [&, sup] {
      branch_info me;
      me.id = o.id;
      me.http = http_scheme + advertised_host + ":"
                + std::to_string(http_bound.load());
      me.node = node_address;
      if (auto st = ask<supervisor_status>(sys, sup, status_atom::value))
        me.instances = static_cast<uint32_t>(st->instances);
      double load[1] = {0};
      if (::getloadavg(load, 1) == 1)
        me.load = load[0];
      return me;
    },
    // The branches on this broker take turns at their rounds.
    [&, sup](const std::vector<std::string>& ids) {
      using namespace std::chrono;
      nanoseconds interval = settings.interval;
      auto wall = round_slot(ids, o.id, interval);
      auto behind = system_clock::now().time_since_epoch()
                    - steady_clock::now().time_since_epoch();
      caf::anon_send(sup, phase_atom::value,
                     caf::timespan{offset_on_clock(wall, behind, interval)});
      auto k = std::find(ids.begin(), ids.end(), o.id) - ids.begin();
      char line[160];
      std::snprintf(line, sizeof(line),
                    "rounds take turn %d of %zu on this broker: %.3f s into "
                    "each %.3f s interval of the wall clock",
                    static_cast<int>(k) + 1, ids.size(),
                    duration<double>(wall).count(),
                    duration<double>(interval).count());
      branch_log.info(line);
    }};
  http_parts parts{&sys,     sup,    *store,    apps, *bus,
                   bootstrap, &results, o.id, &branches,
                   &programs, worker.string(),
                   (root / "instances").string(), properties, &events,
                   bus_counters,    round_durations};
  http_settings hs;
  hs.host = http_host;
  hs.port = http_port;
  hs.token = o.token;
  hs.token_for_reads = o.token_for_reads;
  hs.header_timeout = millis_of(o.http_header_timeout);
  hs.body_timeout = millis_of(o.http_body_timeout);
  hs.keep_alive_timeout = millis_of(o.http_keep_alive_timeout);
  hs.keep_alive_requests = o.http_keep_alive_requests;
  hs.max_connections = o.http_max_connections;
  hs.tls_cert_file = o.http_cert;
  hs.tls_key_file = o.http_key;
  hs.peer_ca_file = o.http_ca;
  hs.handler_threads = o.http_threads;
  raise_descriptor_limit(o.http_max_connections);
  http_api api{parts, hs};
  if (auto err = api.start(); !err.empty())
    die(err);
  http_bound = api.port();
  branch_log.info("cyme-branch " + o.id + " serving " + http_scheme + http_host + ":"
                  + std::to_string(api.port()) + "/ (root " + root.string()
                  + ", kafka " + bootstrap + "; programs allowed: "
                  + worker.string() + ", " + programs.describe() + ")");

  int sig = serve_until_stopped(sys, sup, service, stop_signals);
  if (auto err = service.notify("STOPPING=1\nSTATUS=stopping"); !err.empty())
    branch_log.warn("service manager: " + err);
  branch_log.info(std::string{"stopping on "}
                  + (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                  + (o.keep_instances ? ", keeping instances" : ""));
  api.stop();
  if (o.keep_instances) {
    ask<supervisor_status>(sys, sup, pause_atom::value);
  } else {
    // Ahead of any start still queued: those are refused from now on, and
    // every instance is stopped at once (a fleet of thousands stops within
    // one grace period). The supervisor sees requested exits, not deaths.
    if (auto n = ask<uint32_t, caf::message_priority::high>(sys, *driver,
                                                            stop_atom::value))
      branch_log.info("stopped " + std::to_string(*n) + " instances");
  }
  // The front ends with the core.
  for (auto h : {caf::actor_cast<caf::actor>(sup),
                 caf::actor_cast<caf::actor>(*driver),
                 caf::actor_cast<caf::actor>(*bus),
                 caf::actor_cast<caf::actor>(*store), logger})
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
  if (cluster_watch) {
    cluster = cluster_watch->current();
    cluster_watch.reset();
  }
  if (cluster && !o.keep_instances)
    stop_embedded_kafka(root / "kafka", *cluster);
  return 0;
}

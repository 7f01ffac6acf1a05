// cyme: the command-line client of a branch's HTTP API (docs/HTTP.md).
//
// Every command is exactly one HTTP request, built and checked completely
// from the command line before anything is sent (apps/cli/branch_call.hpp),
// then reported for people or, with --json, as the server's JSON.
//
// Exit codes, for scripts (also printed by `cyme --help`):
//   0  success (2xx). A task still PENDING is a success for `tasks state`
//      and `tasks result`: the state is printed.
//   1  the branch answered an error (4xx); its `error` text goes to stderr
//      as "cyme: <text>".
//   2  usage error: bad flags, names, numbers, URL or JSON. Nothing was sent.
//   3  the branch could not be reached, timed out, or answered 5xx.
//   4  `tasks wait` timed out (504): the task is still PENDING.
#include <algorithm>
#include <cctype>
#include <exception>
#include <functional>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli/branch_call.hpp"
#include "apps/cli/node_call.hpp"
#include "apps/token_file.hpp"
#include "messages/names.hpp"
#include "messages/version.hpp"

namespace {

using json = nlohmann::ordered_json;
using cyme::cli::branch_call;
using cyme::cli::view;

constexpr const char* default_branch = "http://127.0.0.1:8000";
constexpr int default_timeout_s = 120;
/// `tasks wait` without --timeout: the branch waits this long (docs/HTTP.md).
constexpr int server_default_wait_s = 10;
/// The branch waits at most this long for a task (docs/HTTP.md).
constexpr int server_max_wait_s = 300;
/// Slack on top of a task wait so the read timeout never fires before the
/// branch gives its own 504.
constexpr int wait_slack_s = 15;
/// A followed stream (events, logs) gets a keep-alive every 15 s; this much
/// silence means the branch is gone.
constexpr int follow_silence_s = 60;

constexpr const char* footer_text = R"(
Exit codes:
  0  success; a task still PENDING is a success for tasks state/result
  1  the branch answered an error (4xx), printed as "cyme: <text>"
  2  usage error (bad flags, names, URL or JSON); nothing was sent
  3  the branch could not be reached, timed out, or answered 5xx
  4  tasks wait timed out (504): the task is still PENDING

Environment: CYME_BRANCH (branch URL), CYME_TOKEN (bearer token),
CYME_HTTP_CA (the CA of an https:// branch).
Global options (--branch, --token, --token-file, --http-ca, --timeout, --json) may
come before or after the command.)";

/// Every option and positional of the command line. Only one command runs
/// per invocation, so commands share the fields they have in common.
struct arguments {
  std::string branch = default_branch;
  std::string node;
  cyme::cli::node_tls tls;
  std::string token;
  std::string token_file;
  std::string http_ca;
  int timeout_s = default_timeout_s;
  bool as_json = false;
  std::string app;
  std::string instance;
  std::string queue;
  std::string task_id;
  std::string broker;
  std::vector<std::string> queues;
  /// 0 means "not given": valid values are checked to be at least 1.
  int max_concurrency = 0;
  int min_concurrency = 0;
  bool nowait = false;
  bool follow = false;
  /// Lines of a log to show; 0 means "not given".
  int tail = 0;
  std::string reason;
  std::string handler;
  std::string task_args;
  /// `tasks send --from FILE`: the tasks read from it (one batch).
  std::string tasks_file;
  nlohmann::ordered_json task_batch;
  /// 0 means "not given": the branch's default applies.
  int wait_s = 0;
  /// What an instance (or an app's instances) runs; empty: not given.
  std::string program;
  std::vector<std::string> launch_args;
  std::vector<std::string> env;
  std::string cwd;
  std::string stop_signal;
  /// Negative means "not given".
  double stop_grace_s = -1;
  std::string kind;
  /// Launch fields set back to "inherit" (null).
  std::vector<std::string> inherit;
};

/// Checks a name for a `what` (app, instance, queue, task) with the same
/// rule the branch applies, so a name never reaches a URL path unchecked.
CLI::Validator name_rule(std::string what) {
  return CLI::Validator(
    [what](std::string& value) -> std::string {
      // `/supervisor/` is the supervisor's resource, not an app's.
      if (what == "app" && value == "supervisor")
        return "app name 'supervisor' is reserved";
      return cyme::name_problem(what, value);
    },
    "");
}

/// Longest task id the branch accepts. Ids made by other producers may be
/// longer than a name's 64 characters.
constexpr std::size_t max_task_id_length = 128;

/// Task ids go into a URL path like names, so they get the names'
/// characters and first-character rule, with the branch's length limit.
CLI::Validator task_id_rule() {
  return CLI::Validator(
    [](std::string& value) -> std::string {
      auto is_id_char = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.'
               || c == '_' || c == '-';
      };
      if (value.empty())
        return "task id is empty";
      if (value.size() > max_task_id_length)
        return "task id is longer than " + std::to_string(max_task_id_length)
               + " characters";
      if (!std::isalnum(static_cast<unsigned char>(value.front()))
          || !std::all_of(value.begin(), value.end(), is_id_char))
        return "task id must start with a letter or digit and hold only "
               "letters, digits, '.', '_' and '-'";
      return {};
    },
    "");
}

CLI::Validator broker_rule() {
  return CLI::Validator(
    [](std::string& value) { return cyme::broker_problem(value); }, "");
}

CLI::Validator branch_url_rule() {
  return CLI::Validator(
    [](std::string& value) {
      std::string why;
      return cyme::cli::parse_branch_url(value, &why) ? std::string{} : why;
    },
    "");
}

/// A token becomes a header line: control characters would split it.
CLI::Validator token_rule() {
  return CLI::Validator(
    [](std::string& value) { return cyme::token_problem(value); }, "");
}

CLI::Validator json_rule() {
  return CLI::Validator(
    [](std::string& value) -> std::string {
      try {
        auto parsed = json::parse(value);
        static_cast<void>(parsed);
        return {};
      } catch (const json::parse_error& e) {
        std::string what = e.what();
        // Drop nlohmann's "[json.exception.parse_error.101] " tag.
        auto tag_end = what.find("] ");
        if (tag_end != std::string::npos)
          what = what.substr(tag_end + 2);
        return "not valid JSON: " + what;
      }
    },
    "");
}

/// Most tasks one batch may hold (the branch's limit, docs/HTTP.md).
constexpr size_t max_batch = 10000;

/// Reads a file of tasks, one JSON object per line ({"handler", "args"});
/// blank lines are skipped. Empty when it holds 1 to `max_batch` valid
/// tasks (then in `out`), else what is wrong, naming the line.
std::string read_task_lines(const std::string& path,
                            nlohmann::ordered_json& out) {
  std::ifstream in{path};
  if (!in)
    return "cannot read " + path;
  out = nlohmann::ordered_json::array();
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    auto where = path + ", line " + std::to_string(n) + ": ";
    auto task = nlohmann::ordered_json::parse(line, nullptr, false);
    if (task.is_discarded() || !task.is_object())
      return where + "not a JSON object";
    for (auto& [k, v] : task.items()) {
      if (k != "handler" && k != "args")
        return where + "unknown field '" + k + "' (handler, args)";
      if (k == "handler"
          && (!v.is_string() || v.get<std::string>().empty()
              || v.get<std::string>().size() > 64))
        return where + "'handler' must hold 1 to 64 characters";
    }
    if (out.size() == max_batch)
      return path + " holds more than " + std::to_string(max_batch)
             + " tasks: split it (one batch per command)";
    out.push_back(std::move(task));
  }
  if (out.empty())
    return path + " holds no task";
  return {};
}

/// The leaf commands and the request each maps to.
class command_table {
public:
  /// Registers `build` as what `command` does when it is the deepest
  /// command on the command line.
  void add(CLI::App* command, std::function<branch_call()> build) {
    entries_.emplace_back(command, std::move(build));
  }

  /// The builder of the command the command line selected, or null.
  const std::function<branch_call()>* chosen() const {
    for (auto& [command, build] : entries_)
      if (command->parsed() && command->get_subcommands().empty())
        return &build;
    return nullptr;
  }

private:
  std::vector<std::pair<CLI::App*, std::function<branch_call()>>> entries_;
};

branch_call call(std::string method, std::vector<std::string> segments,
                 view shown_as = view::object) {
  branch_call c;
  c.method = std::move(method);
  c.segments = std::move(segments);
  c.shown_as = shown_as;
  // PUT and POST always carry a JSON object, even an empty one, so the
  // branch never has to guess the content type.
  if (c.method == "PUT" || c.method == "POST")
    c.body = json::object();
  return c;
}

branch_call names_call(std::vector<std::string> segments, std::string title) {
  auto c = call("GET", std::move(segments), view::names);
  c.names_title = std::move(title);
  return c;
}

void add_nowait(branch_call& c, bool nowait) {
  // As a query parameter: DELETE carries no body, and `?nowait=1` is how
  // the contract spells it.
  if (nowait)
    c.query.emplace_back("nowait", "1");
}

/// Fails with a usage error when both bounds are given and max < min: the
/// branch would refuse it anyway, and a usage error sends nothing.
void check_bounds(const arguments& a) {
  if (a.max_concurrency != 0 && a.min_concurrency != 0
      && a.max_concurrency < a.min_concurrency)
    throw CLI::ValidationError("--max (" + std::to_string(a.max_concurrency)
                               + ") is less than --min ("
                               + std::to_string(a.min_concurrency) + ")");
}

void add_bound_options(CLI::App* command, arguments& a, const char* what) {
  command
    ->add_option("--max", a.max_concurrency,
                 std::string{"maximum concurrency"} + what)
    ->check(CLI::Range(1, 1000000));
  command
    ->add_option("--min", a.min_concurrency,
                 std::string{"minimum concurrency"} + what)
    ->check(CLI::Range(1, 1000000));
}

CLI::Option* add_app(CLI::App* command, arguments& a) {
  return command->add_option("APP", a.app, "the app")
    ->required()
    ->check(name_rule("app"));
}

CLI::Option* add_instance(CLI::App* command, arguments& a,
                          const char* label = "NAME") {
  return command->add_option(label, a.instance, "the instance")
    ->required()
    ->check(name_rule("instance"));
}

CLI::Option* add_queue(CLI::App* command, arguments& a) {
  return command->add_option("QUEUE", a.queue, "the queue")
    ->required()
    ->check(name_rule("queue"));
}

void add_nowait_flag(CLI::App* command, arguments& a) {
  command->add_flag("--nowait", a.nowait,
                    "answer once the model holds the change, without "
                    "waiting for the supervisor to act");
}

/// The launch fields, as the branch names them.
const std::vector<std::string> launch_field_names{
  "program", "args", "env", "cwd", "stop_signal", "stop_grace_s", "kind"};

void add_launch_options(CLI::App* command, arguments& a) {
  command->add_option("--program", a.program,
                      "program to run, an absolute path on the branch's "
                      "allow-list (default: cyme-worker)");
  command
    ->add_option("--arg", a.launch_args,
                 "one argument of the program; repeatable, in order (write "
                 "--arg=--flag for one that starts with a dash)")
    ->allow_extra_args(false);
  command
    ->add_option("--env", a.env,
                 "KEY=VALUE added to the program's environment; repeatable")
    ->allow_extra_args(false)
    ->check(CLI::Validator(
      [](std::string& value) -> std::string {
        auto eq = value.find('=');
        if (eq == std::string::npos || eq == 0)
          return "--env takes KEY=VALUE";
        return {};
      },
      ""));
  command->add_option("--cwd", a.cwd,
                      "working folder, an absolute path (default: the "
                      "instance's folder)");
  command
    ->add_option("--stop-signal", a.stop_signal,
                 "signal that stops it: TERM (default), INT, QUIT, HUP, "
                 "USR1 or USR2")
    ->check(CLI::IsMember({"TERM", "INT", "QUIT", "HUP", "USR1", "USR2"}));
  command
    ->add_option("--stop-grace", a.stop_grace_s,
                 "seconds between the stop signal and SIGKILL (default 10)")
    ->check(CLI::Range(0.0, 3600.0));
  command
    ->add_option("--kind", a.kind,
                 "worker (speaks the control protocol; default) or process "
                 "(any program, supervised by liveness)")
    ->check(CLI::IsMember({"worker", "process"}));
  command
    ->add_option("--inherit", a.inherit,
                 "launch field to clear, so it is inherited again (program, "
                 "args, env, cwd, stop_signal, stop_grace_s, kind); "
                 "repeatable")
    ->allow_extra_args(false)
    ->check(CLI::IsMember(launch_field_names));
}

/// Adds the launch fields given on the command line to a request body.
void put_launch(const arguments& a, json& body) {
  for (auto& field : a.inherit)
    body[field] = nullptr;
  if (!a.program.empty())
    body["program"] = a.program;
  if (!a.launch_args.empty())
    body["args"] = a.launch_args;
  if (!a.env.empty()) {
    json env = json::object();
    for (auto& kv : a.env) {
      auto eq = kv.find('=');
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    body["env"] = env;
  }
  if (!a.cwd.empty())
    body["cwd"] = a.cwd;
  if (!a.stop_signal.empty())
    body["stop_signal"] = a.stop_signal;
  if (a.stop_grace_s >= 0)
    body["stop_grace_s"] = a.stop_grace_s;
  if (!a.kind.empty())
    body["kind"] = a.kind;
}

void define_apps(CLI::App& root, arguments& a, command_table& table) {
  auto* apps = root.add_subcommand(
    "apps", "list apps (GET /), or manage one with a subcommand");
  apps->require_subcommand(0, 1);
  table.add(apps, [] { return names_call({}, "APP"); });

  auto* add =
    apps->add_subcommand("add", "create or update an app (PUT /APP/)");
  add_app(add, a);
  add->add_option("--broker", a.broker,
                  "the app's broker, HOST:PORT[,HOST:PORT...]")
    ->check(broker_rule());
  add_launch_options(add, a);
  add_nowait_flag(add, a);
  table.add(add, [&a] {
    auto c = call("PUT", {a.app});
    if (!a.broker.empty())
      (*c.body)["broker"] = a.broker;
    put_launch(a, *c.body);
    add_nowait(c, a.nowait);
    return c;
  });

  auto* show = apps->add_subcommand("show", "show an app (GET /APP/)");
  add_app(show, a);
  table.add(show, [&a] { return call("GET", {a.app}); });

  auto* del = apps->add_subcommand(
    "delete", "delete an app without instances (DELETE /APP/)");
  add_app(del, a);
  table.add(del, [&a] { return call("DELETE", {a.app}); });
}

void define_instances(CLI::App& root, arguments& a, command_table& table) {
  auto* instances = root.add_subcommand("instances", "manage instances");
  instances->require_subcommand(1);

  auto* list = instances->add_subcommand(
    "list", "list an app's instances (GET /APP/instances/)");
  add_app(list, a);
  table.add(list, [&a] {
    return call("GET", {a.app, "instances"}, view::instances);
  });

  auto* add = instances->add_subcommand(
    "add", "create or replace an instance (PUT /APP/instances/NAME/); "
           "without NAME, create one with a new uuid name "
           "(POST /APP/instances/)");
  add_app(add, a);
  add->add_option("NAME", a.instance, "the instance (optional)")
    ->check(name_rule("instance"));
  add->add_option("--queues", a.queues, "queues to consume, q1,q2,...")
    ->delimiter(',')
    // One value per --queues, so a NAME after it stays the instance name.
    ->allow_extra_args(false)
    ->check(name_rule("queue"));
  add_bound_options(add, a, "");
  add->add_option("--broker", a.broker,
                  "the instance's broker, HOST:PORT[,HOST:PORT...]")
    ->check(broker_rule());
  add_launch_options(add, a);
  add_nowait_flag(add, a);
  table.add(add, [&a] {
    check_bounds(a);
    auto c = a.instance.empty() ? call("POST", {a.app, "instances"})
                                : call("PUT", {a.app, "instances", a.instance});
    auto& body = *c.body;
    if (!a.queues.empty())
      body["queues"] = a.queues;
    if (a.max_concurrency != 0)
      body["max_concurrency"] = a.max_concurrency;
    if (a.min_concurrency != 0)
      body["min_concurrency"] = a.min_concurrency;
    if (!a.broker.empty())
      body["broker"] = a.broker;
    put_launch(a, body);
    add_nowait(c, a.nowait);
    return c;
  });

  auto* show = instances->add_subcommand(
    "show", "show an instance (GET /APP/instances/NAME/)");
  add_app(show, a);
  add_instance(show, a);
  table.add(show, [&a] {
    return call("GET", {a.app, "instances", a.instance});
  });

  auto* del = instances->add_subcommand(
    "delete", "stop and remove an instance (DELETE /APP/instances/NAME/)");
  add_app(del, a);
  add_instance(del, a);
  add_nowait_flag(del, a);
  table.add(del, [&a] {
    auto c = call("DELETE", {a.app, "instances", a.instance});
    add_nowait(c, a.nowait);
    return c;
  });

  auto* restart = instances->add_subcommand(
    "restart", "restart an instance now, outside the restart limit "
               "(POST /APP/instances/NAME/restart/)");
  add_app(restart, a);
  add_instance(restart, a);
  table.add(restart, [&a] {
    return call("POST", {a.app, "instances", a.instance, "restart"});
  });

  auto* enable = instances->add_subcommand(
    "enable", "enable an instance (POST /APP/instances/NAME/enable/)");
  add_app(enable, a);
  add_instance(enable, a);
  add_nowait_flag(enable, a);
  table.add(enable, [&a] {
    auto c = call("POST", {a.app, "instances", a.instance, "enable"});
    add_nowait(c, a.nowait);
    return c;
  });

  auto* disable = instances->add_subcommand(
    "disable", "disable (and stop) an instance "
               "(POST /APP/instances/NAME/disable/)");
  add_app(disable, a);
  add_instance(disable, a);
  disable->add_option("--reason", a.reason, "why, kept in the model");
  add_nowait_flag(disable, a);
  table.add(disable, [&a] {
    auto c = call("POST", {a.app, "instances", a.instance, "disable"});
    if (!a.reason.empty())
      (*c.body)["reason"] = a.reason;
    add_nowait(c, a.nowait);
    return c;
  });

  auto* stats = instances->add_subcommand(
    "stats", "ask a running instance for its live stats "
             "(GET /APP/instances/NAME/stats/)");
  add_app(stats, a);
  add_instance(stats, a);
  table.add(stats, [&a] {
    return call("GET", {a.app, "instances", a.instance, "stats"});
  });

  auto* logs = instances->add_subcommand(
    "logs", "show the last lines of an instance's log, -f to follow it "
            "(GET /APP/instances/NAME/logs/)");
  add_app(logs, a);
  add_instance(logs, a);
  logs->add_option("-n,--lines", a.tail, "lines to show (default 100)")
    ->check(CLI::Range(1, 10000));
  logs->add_flag("-f,--follow", a.follow,
                 "go on printing lines as they are written");
  table.add(logs, [&a] {
    auto c = call("GET", {a.app, "instances", a.instance, "logs"});
    if (a.tail > 0)
      c.query.emplace_back("tail", std::to_string(a.tail));
    if (a.follow) {
      c.query.emplace_back("follow", "1");
      // A quiet instance writes nothing for as long as it likes.
      c.min_read_timeout_s = 86400;
    }
    c.shown_as = cyme::cli::view::text_stream;
    return c;
  });

  auto* autoscale = instances->add_subcommand(
    "autoscale", "show the autoscale bounds (GET "
                 "/APP/instances/NAME/autoscale/), or set them with --max "
                 "and/or --min (POST)");
  add_app(autoscale, a);
  add_instance(autoscale, a);
  add_bound_options(autoscale, a, " to set");
  table.add(autoscale, [&a] {
    check_bounds(a);
    std::vector<std::string> path{a.app, "instances", a.instance, "autoscale"};
    if (a.max_concurrency == 0 && a.min_concurrency == 0)
      return call("GET", path);
    auto c = call("POST", path);
    if (a.max_concurrency != 0)
      (*c.body)["max"] = a.max_concurrency;
    if (a.min_concurrency != 0)
      (*c.body)["min"] = a.min_concurrency;
    return c;
  });
}

void define_queues(CLI::App& root, arguments& a, command_table& table) {
  auto* queues = root.add_subcommand("queues", "manage an app's queues");
  queues->require_subcommand(1);

  auto* list = queues->add_subcommand(
    "list", "list an app's queues (GET /APP/queues/)");
  add_app(list, a);
  table.add(list, [&a] { return names_call({a.app, "queues"}, "QUEUE"); });

  auto* add = queues->add_subcommand(
    "add", "declare a queue (PUT /APP/queues/QUEUE/)");
  add_app(add, a);
  add_queue(add, a);
  table.add(add, [&a] { return call("PUT", {a.app, "queues", a.queue}); });

  auto* show = queues->add_subcommand(
    "show", "show a queue and its consumers (GET /APP/queues/QUEUE/)");
  add_app(show, a);
  add_queue(show, a);
  table.add(show, [&a] { return call("GET", {a.app, "queues", a.queue}); });

  auto* del = queues->add_subcommand(
    "delete", "delete a queue (DELETE /APP/queues/QUEUE/)");
  add_app(del, a);
  add_queue(del, a);
  table.add(del,
            [&a] { return call("DELETE", {a.app, "queues", a.queue}); });
}

void define_consumers(CLI::App& root, arguments& a, command_table& table) {
  auto* consumers = root.add_subcommand(
    "consumers", "make an instance consume a queue, or stop");
  consumers->require_subcommand(1);

  auto* add = consumers->add_subcommand(
    "add", "make INSTANCE consume QUEUE "
           "(PUT /APP/instances/INSTANCE/queues/QUEUE/)");
  add_app(add, a);
  add_instance(add, a, "INSTANCE");
  add_queue(add, a);
  add_nowait_flag(add, a);
  table.add(add, [&a] {
    auto c = call("PUT", {a.app, "instances", a.instance, "queues", a.queue});
    add_nowait(c, a.nowait);
    return c;
  });

  auto* cancel = consumers->add_subcommand(
    "cancel", "make INSTANCE stop consuming QUEUE "
              "(DELETE /APP/instances/INSTANCE/queues/QUEUE/)");
  add_app(cancel, a);
  add_instance(cancel, a, "INSTANCE");
  add_queue(cancel, a);
  add_nowait_flag(cancel, a);
  table.add(cancel, [&a] {
    auto c =
      call("DELETE", {a.app, "instances", a.instance, "queues", a.queue});
    add_nowait(c, a.nowait);
    return c;
  });
}

void define_tasks(CLI::App& root, arguments& a, command_table& table) {
  auto* tasks = root.add_subcommand("tasks", "send tasks and query them");
  tasks->require_subcommand(1);

  auto* send = tasks->add_subcommand(
    "send", "send a task to a queue and print its id "
            "(POST /APP/queue/QUEUE/)");
  add_app(send, a);
  add_queue(send, a);
  auto* handler = send->add_option("--handler", a.handler,
                   "the handler to run (the branch's default: echo)");
  auto* args = send->add_option("--args", a.task_args,
                                "the task's arguments, any JSON")
                ->check(json_rule());
  send
    ->add_option("--from", a.tasks_file,
                 "send the tasks of FILE instead, one JSON object per line "
                 "({\"handler\": ..., \"args\": ...}), up to "
                 + std::to_string(max_batch)
                 + ", as one batch; prints their ids in order")
    ->excludes(args)
    ->excludes(handler)
    ->check(CLI::Validator(
      [&a](std::string& path) { return read_task_lines(path, a.task_batch); },
      "FILE"));
  table.add(send, [&a] {
    if (!a.tasks_file.empty()) {
      auto c = call("POST", {a.app, "queue", a.queue}, view::task_ids);
      c.body = a.task_batch;
      return c;
    }
    auto c = call("POST", {a.app, "queue", a.queue}, view::task_id);
    if (!a.handler.empty())
      (*c.body)["handler"] = a.handler;
    if (!a.task_args.empty())
      (*c.body)["args"] = json::parse(a.task_args);
    return c;
  });

  auto add_task_id = [&a](CLI::App* command) {
    command->add_option("ID", a.task_id, "the task id")
      ->required()
      ->check(task_id_rule());
  };

  auto* state = tasks->add_subcommand(
    "state", "print a task's state: PENDING, SUCCESS or FAILURE "
             "(GET /APP/query/ID/state/)");
  add_app(state, a);
  add_task_id(state);
  table.add(state, [&a] {
    return call("GET", {a.app, "query", a.task_id, "state"});
  });

  auto* result = tasks->add_subcommand(
    "result", "print a task's state and result, without waiting "
              "(GET /APP/query/ID/result/)");
  add_app(result, a);
  add_task_id(result);
  table.add(result, [&a] {
    return call("GET", {a.app, "query", a.task_id, "result"});
  });

  auto* wait = tasks->add_subcommand(
    "wait", "wait until a task is done and print its result; exit 4 if "
            "it is still PENDING when the wait times out "
            "(GET /APP/query/ID/wait/)");
  add_app(wait, a);
  add_task_id(wait);
  wait->add_option("--timeout", a.wait_s,
                   "seconds the branch waits for the task (its default: "
                   + std::to_string(server_default_wait_s) + ", at most "
                   + std::to_string(server_max_wait_s) + ")")
    ->check(CLI::Range(1, server_max_wait_s));
  table.add(wait, [&a] {
    auto c = call("GET", {a.app, "query", a.task_id, "wait"});
    int wait_s = a.wait_s != 0 ? a.wait_s : server_default_wait_s;
    if (a.wait_s != 0)
      c.query.emplace_back("timeout", std::to_string(a.wait_s));
    c.timeout_means_pending = true;
    c.min_read_timeout_s = wait_s + wait_slack_s;
    return c;
  });
}

void define_events(CLI::App& root, arguments& a, command_table& table) {
  auto* events = root.add_subcommand(
    "events", "show the branch's recent events, -f to follow them "
              "(GET /events/)");
  events->add_flag("-f,--follow", a.follow,
                   "go on printing events as they happen");
  events->add_option("--app", a.app, "only events of this app")
    ->check(name_rule("app"));
  events->add_option("--instance", a.instance, "only events of this instance")
    ->check(name_rule("instance"));
  table.add(events, [&a] {
    auto c = call("GET", {"events"});
    // What the branch keeps, then (with -f) what happens next.
    c.query.emplace_back("since", "0");
    c.query.emplace_back("follow", a.follow ? "1" : "0");
    if (!a.app.empty())
      c.query.emplace_back("app", a.app);
    if (!a.instance.empty())
      c.query.emplace_back("instance", a.instance);
    if (a.follow)
      c.min_read_timeout_s = follow_silence_s;
    c.shown_as = cyme::cli::view::event_stream;
    return c;
  });
}

void define_supervisor(CLI::App& root, command_table& table) {
  auto* supervisor = root.add_subcommand(
    "supervisor", "the branch's supervisor: status, pause, resume");
  supervisor->require_subcommand(1);

  auto* status = supervisor->add_subcommand(
    "status", "show the supervisor's status (GET /supervisor/)");
  table.add(status, [] { return call("GET", {"supervisor"}); });

  auto* pause = supervisor->add_subcommand(
    "pause", "stop verification rounds until resumed "
             "(POST /supervisor/pause/)");
  table.add(pause, [] { return call("POST", {"supervisor", "pause"}); });

  auto* resume = supervisor->add_subcommand(
    "resume", "resume verification rounds (POST /supervisor/resume/)");
  table.add(resume, [] { return call("POST", {"supervisor", "resume"}); });
}

/// Parses the command line, sends the one request it maps to and reports
/// the answer. Returns the exit code.
int run(int argc, char** argv) {
  arguments a;
  command_table table;
  CLI::App root{"cyme: the command-line client of a cyme branch "
                "(HTTP API: docs/HTTP.md)",
                "cyme"};
  // Set before adding commands: subcommands inherit both, so every
  // command's --help shows the exit codes and accepts the global options.
  root.fallthrough();
  root.footer(footer_text);
  root.require_subcommand(1);
  root.add_option("--branch", a.branch,
                  "the branch's URL, http://HOST:PORT or https://HOST:PORT")
    ->envname("CYME_BRANCH")
    ->capture_default_str()
    ->check(branch_url_rule());
  root.add_option("--token", a.token,
                  "sent as 'Authorization: Bearer TOKEN'")
    ->envname("CYME_TOKEN")
    ->check(token_rule());
  root.add_option("--http-ca", a.http_ca,
                  "PEM file of the CA an https:// branch's certificate is "
                  "checked against (default: the system's)")
    ->envname("CYME_HTTP_CA")
    ->check(CLI::ExistingFile);
  root.add_option("--token-file", a.token_file,
                  "read the token from this file (mode 0600 or stricter), so "
                  "that it is not on the command line");
  root.add_option("--timeout", a.timeout_s,
                  "HTTP timeout in seconds; mutations answer after the "
                  "supervisor acted, which can take a while")
    ->capture_default_str()
    ->check(CLI::Range(1, 86400));
  root.add_option("--node", a.node,
                  "HOST:PORT of a branch's published supervisor: send "
                  "supervisor status|pause|resume, instances list|restart "
                  "as typed actor messages instead of HTTP");
  root.add_option("--node-cert", a.tls.certificate,
                  "with --node: PEM certificate presented to the node (TLS)")
    ->envname("CYME_NODE_CERT")
    ->check(CLI::ExistingFile);
  root.add_option("--node-key", a.tls.key, "with --node: PEM key of --node-cert")
    ->envname("CYME_NODE_KEY")
    ->check(CLI::ExistingFile);
  root.add_option("--node-ca", a.tls.ca, "with --node: PEM CA the node must match")
    ->envname("CYME_NODE_CA")
    ->check(CLI::ExistingFile);
  root.add_flag("--json", a.as_json,
                "print the branch's JSON answer (pretty) instead of tables");

  define_apps(root, a, table);
  define_instances(root, a, table);
  define_queues(root, a, table);
  define_consumers(root, a, table);
  define_tasks(root, a, table);
  define_events(root, a, table);
  define_supervisor(root, table);

  root.set_version_flag("--version", cyme::version_text("cyme"));
  branch_call request;
  try {
    root.parse(argc, argv);
    auto* build = table.chosen();
    if (build == nullptr)
      throw CLI::RequiredError("a command");
    request = (*build)();
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e);
  } catch (const CLI::Error& e) {
    std::cerr << "cyme: " << e.what() << "\n"
              << "Run with --help for more information.\n";
    return cyme::cli::exit_usage;
  }
  if (!a.token_file.empty()) {
    if (!a.token.empty()) {
      std::cerr << "cyme: give the token once: --token (or CYME_TOKEN) or "
                   "--token-file\n";
      return cyme::cli::exit_usage;
    }
    if (auto p = cyme::read_token_file(a.token_file, a.token); !p.empty()) {
      std::cerr << "cyme: --token-file: " << p << "\n";
      return cyme::cli::exit_usage;
    }
  }

  if (!a.node.empty()) {
    auto colon = a.node.rfind(':');
    auto port_text = colon == std::string::npos ? "" : a.node.substr(colon + 1);
    if (colon == 0 || port_text.empty() || port_text.size() > 5
        || port_text.find_first_not_of("0123456789") != std::string::npos
        || std::stoul(port_text) == 0 || std::stoul(port_text) > 65535) {
      std::cerr << "cyme: --node must be HOST:PORT, not '" << a.node << "'\n";
      return cyme::cli::exit_usage;
    }
    if (!cyme::cli::node_supports(request)) {
      std::cerr << "cyme: this command is not available with --node "
                   "(use --branch)\n";
      return cyme::cli::exit_usage;
    }
    return cyme::cli::perform_on_node(
      a.node.substr(0, colon), static_cast<uint16_t>(std::stoul(port_text)),
      a.tls, request, a.as_json, a.timeout_s, std::cout, std::cerr);
  }

  cyme::cli::connection_settings settings;
  // Validated by branch_url_rule during parsing.
  settings.address = *cyme::cli::parse_branch_url(a.branch, nullptr);
  if (!a.http_ca.empty() && !settings.address.tls) {
    std::cerr << "cyme: --http-ca is for an https:// branch, not "
              << a.branch << "\n";
    return cyme::cli::exit_usage;
  }
  settings.ca_file = a.http_ca;
  settings.token = a.token;
  settings.timeout_s = a.timeout_s;
  return cyme::cli::perform(settings, request, a.as_json, std::cout,
                            std::cerr);
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // Nothing above throws by design; if something does, say so and use the
    // "could not complete" code rather than a crash.
    std::cerr << "cyme: unexpected failure: " << e.what() << "\n";
    return cyme::cli::exit_unreachable;
  }
}

// The branch daemon end to end: cyme-branch started as a process with the
// embedded Kafka, driven over HTTP like an operator would; every endpoint,
// the README's tour, bad input that changes nothing, and branch restarts.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <csignal>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fstream>
#include <set>
#include <sstream>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <tuple>

#include <httplib.h>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/message_types.hpp"
#include <nlohmann/json.hpp>

#include "stack.hpp"
#include "tests/notify_listener.hpp"
#include "transport/kafka.hpp"
#include "transport/presence.hpp"
#include "transport/proc.hpp"

extern char** environ;

using namespace cyme;
using namespace cyme::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

/// The worker processes of instance `name` of the branch on `root`: their
/// command line holds `--name <name>` and `--instance-dir
/// <root>/instances/<name>` (only this test's: another run on the machine
/// may use the same name).
int processes_named(const std::filesystem::path& root, const std::string& name) {
  auto dir = (root / "instances" / name).string();
  int n = 0;
  for (auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    auto pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos)
      continue;
    // A process may end while it is read: it no longer counts.
    std::string raw;
    if (!read_capped((entry.path() / "cmdline").string(), cmdline_cap, raw)
           .empty())
      continue;
    if (raw.find(std::string{"--name"} + '\0' + name + '\0') != std::string::npos
        && raw.find(std::string{"--instance-dir"} + '\0' + dir + '\0')
             != std::string::npos
        && raw.find("cyme-worker") != std::string::npos)
      ++n;
  }
  return n;
}

std::string slurp_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

/// One cyme-branch process on a fresh (or given) root.
class branch {
public:
  explicit branch(const std::filesystem::path& root,
                  std::vector<std::string> extra = {},
                  const std::string& id = "e2e")
    : root_(root) {
    std::filesystem::create_directories(root);
    log_ = (root / "branch.log").string();
    // Only what this run writes counts (a root may have served before).
    std::error_code ec;
    auto size = std::filesystem::file_size(log_, ec);
    log_start_ = ec ? 0 : size;
    std::vector<std::string> args{CYME_BRANCH_PROGRAM, "--root", root.string(),
                                  "--http", "127.0.0.1:0", "--interval", "2",
                                  "--id", id};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0640);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (::posix_spawn(&pid_, args[0].c_str(), &actions, nullptr, argv.data(),
                      environ)
        != 0)
      throw std::runtime_error("cannot start cyme-branch");
    posix_spawn_file_actions_destroy(&actions);
    if (!wait_until([&] { return (port_ = read_port()) > 0; }, 20s))
      throw std::runtime_error("cyme-branch did not start:\n" + log());
  }

  ~branch() {
    stop(SIGTERM);
  }

  /// Sends `sig` and reaps the branch.
  int stop(int sig) {
    if (pid_ <= 0)
      return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port_};
    c.set_read_timeout(120, 0);
    return c;
  }

  std::string log() const {
    std::ifstream in{log_};
    return {std::istreambuf_iterator<char>{in}, {}};
  }

  int port() const {
    return port_;
  }

  pid_t pid() const {
    return pid_;
  }

  /// The port of the published supervisor (after "node: ... published at"),
  /// published on `host`.
  int node_port(const std::string& host = "127.0.0.1") const {
    auto text = log().substr(log_start_);
    const std::string pattern = "supervisor published at " + host + ":";
    auto at = text.find(pattern);
    if (at == std::string::npos)
      return 0;
    return std::stoi(text.substr(at + pattern.size()));
  }

private:
  int read_port() const {
    auto text = log().substr(log_start_);
    auto at = text.find("serving http");
    const std::string host = "://127.0.0.1:";
    if (at == std::string::npos || (at = text.find(host, at)) == std::string::npos)
      return 0;
    return std::stoi(text.substr(at + host.size()));
  }

  std::filesystem::path root_;
  std::string log_;
  std::size_t log_start_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
};

/// A response's status and JSON body.
struct reply {
  int status = 0;
  json body;
};

template <class Client> // httplib::Client, or httplib::SSLClient
reply call(Client& c, const std::string& method,
           const std::string& path, const json& body = json::object()) {
  httplib::Result r{nullptr, httplib::Error::Unknown};
  auto text = body.dump();
  if (method == "GET")
    r = c.Get(path.c_str());
  else if (method == "DELETE")
    r = c.Delete(path.c_str(), text, "application/json");
  else if (method == "PUT")
    r = c.Put(path.c_str(), text, "application/json");
  else
    r = c.Post(path.c_str(), text, "application/json");
  if (!r)
    throw std::runtime_error(method + " " + path + ": no answer");
  reply out;
  out.status = r->status;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

/// What one run of the cyme CLI printed and how it exited.
struct cli_run {
  int code = -1;
  std::string out;
  std::string err;
};

/// Runs a program (execve, no shell) and collects its output.
cli_run run_program(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0)
    throw std::runtime_error("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  pid_t pid = 0;
  if (::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot run cyme");
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  cli_run r;
  auto drain = [](int fd, std::string& into) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0)
      into.append(buf, static_cast<size_t>(n));
    ::close(fd);
  };
  std::thread err_reader{[&] { drain(err_pipe[0], r.err); }};
  drain(out_pipe[0], r.out);
  err_reader.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// Runs the cyme CLI against the branch on `port`.
cli_run cyme_cli(int port, std::vector<std::string> args) {
  args.insert(args.begin(), {CYME_CLI_PROGRAM, "--branch",
                             "http://127.0.0.1:" + std::to_string(port)});
  return run_program(std::move(args));
}

/// Instances of a listing by name.
std::map<std::string, json> by_name_local(const json& list) {
  std::map<std::string, json> out;
  if (list.is_array())
    for (auto& x : list)
      out[x["name"].get<std::string>()] = x;
  return out;
}

/// Starts the branch with each case's flags after --root ROOT and
/// --interval 0 (refused after every other flag, so a flag wrongly let
/// through still starts nothing) and expects exit 2 with an error naming
/// the case's text.
void expect_flags_refused(
  const std::filesystem::path& root,
  std::vector<std::pair<std::vector<std::string>, std::string>> cases) {
  for (auto& [args, says] : cases) {
    args.insert(args.begin(), {CYME_BRANCH_PROGRAM, "--root", root.string(),
                               "--interval", "0"});
    auto r = run_program(args);
    BOOST_TEST(r.code == 2, args.back());
    BOOST_TEST(r.err.find(says) != std::string::npos, r.err);
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(branch_daemon)

BOOST_AUTO_TEST_CASE(the_tour_works_with_the_cli) {
  // Every cyme command against a real branch: exit 0 and the expected
  // output for the tour; 1 for an error the branch answers, 2 for bad input
  // nothing is sent for.
  temp_dir dir;
  branch b{dir.path / "root"};
  auto run = [&](std::vector<std::string> args) {
    return cyme_cli(b.port(), std::move(args));
  };
  auto ok = [&](std::vector<std::string> args) {
    auto r = run(args);
    std::string cmd;
    for (auto& a : args)
      cmd += a + " ";
    BOOST_TEST(r.code == 0, cmd << "-> " << r.code << ": " << r.err);
    return r;
  };
  ok({"apps", "add", "demo"});
  BOOST_TEST(ok({"apps"}).out.find("demo") != std::string::npos);
  BOOST_TEST(ok({"apps", "show", "demo"}).out.find("name: demo")
             != std::string::npos);
  ok({"queues", "add", "demo", "tasks"});
  BOOST_TEST(ok({"queues", "list", "demo"}).out.find("tasks") != std::string::npos);
  auto added = ok({"instances", "add", "demo", "cli1", "--queues", "tasks",
                   "--max", "3"});
  BOOST_TEST(added.out.find("state: running") != std::string::npos, added.out);
  auto table = ok({"instances", "list", "demo"}).out;
  BOOST_TEST(table.find("NAME") != std::string::npos);
  BOOST_TEST(table.find("cli1") != std::string::npos);
  auto listed = json::parse(ok({"--json", "instances", "list", "demo"}).out);
  BOOST_TEST(listed.size() == 1u);
  BOOST_TEST(listed[0]["max_concurrency"] == 3);
  ok({"instances", "show", "demo", "cli1"});
  ok({"consumers", "add", "demo", "cli1", "more"});
  BOOST_TEST(ok({"queues", "show", "demo", "more"}).code == 0);
  auto stats = json::parse(ok({"--json", "instances", "stats", "demo", "cli1"}).out);
  BOOST_TEST(stats["queues"].size() == 3u);
  ok({"consumers", "cancel", "demo", "cli1", "more"});
  ok({"instances", "autoscale", "demo", "cli1", "--max", "5", "--min", "2"});
  BOOST_TEST(ok({"instances", "autoscale", "demo", "cli1"}).out.find("5")
             != std::string::npos);
  auto id = ok({"tasks", "send", "demo", "tasks", "--handler", "echo", "--args",
                R"({"x":1})"})
              .out;
  while (!id.empty() && id.back() == '\n')
    id.pop_back();
  BOOST_TEST(ok({"tasks", "wait", "demo", id, "--timeout", "60"}).out.find("SUCCESS")
             != std::string::npos);
  BOOST_TEST(ok({"tasks", "state", "demo", id}).out.find("SUCCESS")
             != std::string::npos);
  BOOST_TEST(ok({"tasks", "result", "demo", id}).out.find("\"x\":1")
             != std::string::npos);
  ok({"instances", "restart", "demo", "cli1"});
  ok({"instances", "disable", "demo", "cli1", "--reason", "test"});
  BOOST_TEST(processes_named(dir.path / "root", "cli1") == 0);
  ok({"instances", "enable", "demo", "cli1"});
  BOOST_TEST(processes_named(dir.path / "root", "cli1") == 1);
  ok({"supervisor", "pause"});
  BOOST_TEST(ok({"supervisor", "status"}).out.find("paused: true")
             != std::string::npos);
  ok({"supervisor", "resume"});
  // Errors: the branch says no (1); bad input is refused locally (2).
  auto missing = run({"instances", "show", "demo", "ghost"});
  BOOST_TEST(missing.code == 1);
  BOOST_TEST(missing.err.find("cyme: ") == 0u);
  BOOST_TEST(run({"instances", "add", "demo", "../evil"}).code == 2);
  BOOST_TEST(run({"tasks", "send", "demo", "tasks", "--args", "{nope"}).code == 2);
  ok({"instances", "delete", "demo", "cli1"});
  BOOST_TEST(processes_named(dir.path / "root", "cli1") == 0);
  ok({"queues", "delete", "demo", "tasks"});
  ok({"apps", "delete", "demo"});
  BOOST_TEST(ok({"--json", "apps"}).out.find("demo") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_tour_works_over_http) {
  // Create an app, a queue, an instance; add a consumer; send tasks and see
  // them done; autoscale; kill a worker and watch it come back; disable,
  // enable, restart, delete — each endpoint answering as docs/HTTP.md says.
  temp_dir dir;
  branch b{dir.path / "root"};
  auto c = b.client();
  BOOST_TEST(call(c, "GET", "/").body == json::array());
  auto r = call(c, "PUT", "/demo/");
  BOOST_TEST(r.status == 201);
  BOOST_TEST(call(c, "GET", "/").body == json::array({"demo"}));
  BOOST_TEST(call(c, "GET", "/demo/").body["name"] == "demo");
  BOOST_TEST(call(c, "PUT", "/demo/queues/tasks/").status == 201);
  BOOST_TEST(call(c, "GET", "/demo/queues/").body == json::array({"tasks"}));
  r = call(c, "PUT", "/demo/instances/tour1/",
           {{"queues", {"tasks"}}, {"max_concurrency", 2}});
  BOOST_TEST_REQUIRE(r.status == 201, r.body.dump());
  BOOST_TEST(r.body["state"] == "running");
  BOOST_TEST(r.body["outcome"]["outcome"] == "started");
  auto pid = r.body["pid"].get<int>();
  BOOST_TEST(pid > 0);
  BOOST_TEST(call(c, "GET", "/demo/queues/tasks/").body["consumers"]
             == json::array({"tour1"}));
  // An anonymous instance gets a uuid name.
  r = call(c, "POST", "/demo/instances/", {{"queues", "tasks"}});
  BOOST_TEST_REQUIRE(r.status == 201, r.body.dump());
  auto anon = r.body["name"].get<std::string>();
  BOOST_TEST(anon.size() == 36u);
  BOOST_TEST(call(c, "GET", "/demo/instances/").body.size() == 2u);
  // Parameters also come as form data and as the query string.
  auto form = c.Put("/demo/instances/formy/",
                    httplib::Params{{"queues", "tasks,other"},
                                    {"max_concurrency", "2"},
                                    {"nowait", "1"}});
  BOOST_REQUIRE(form);
  BOOST_TEST(form->status == 202, form->body);
  auto formy = json::parse(form->body);
  BOOST_TEST(formy["queues"] == json::array({"tasks", "other"}));
  BOOST_TEST(formy["max_concurrency"] == 2);
  auto query = c.Put("/demo/instances/queried/?max_concurrency=3&nowait=1", "",
                     "text/plain");
  BOOST_REQUIRE(query);
  BOOST_TEST(query->status == 202, query->body);
  BOOST_TEST(json::parse(query->body)["max_concurrency"] == 3);
  BOOST_TEST(call(c, "DELETE", "/demo/instances/formy/").status == 200);
  BOOST_TEST(call(c, "DELETE", "/demo/instances/queried/").status == 200);
  // Add a consumer, then see the worker consume it.
  r = call(c, "PUT", "/demo/instances/tour1/queues/extra/");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body["queues"] == json::array({"tasks", "extra"}));
  r = call(c, "GET", "/demo/instances/tour1/stats/");
  BOOST_TEST_REQUIRE(r.status == 200, r.body.dump());
  auto queues = r.body["queues"];
  BOOST_TEST((std::find(queues.begin(), queues.end(), "extra") != queues.end()));
  // Tasks: send, wait, state, result.
  r = call(c, "POST", "/demo/queue/tasks/", {{"handler", "echo"}, {"args", {1, 2}}});
  BOOST_TEST_REQUIRE(r.status == 202);
  auto id = r.body["id"].get<std::string>();
  r = call(c, "GET", "/demo/query/" + id + "/wait/?timeout=60");
  BOOST_TEST_REQUIRE(r.status == 200, r.body.dump());
  BOOST_TEST(r.body["state"] == "SUCCESS");
  BOOST_TEST(r.body["result"] == json::array({1, 2}));
  BOOST_TEST(call(c, "GET", "/demo/query/" + id + "/state/").body["state"]
             == "SUCCESS");
  BOOST_TEST(call(c, "GET", "/demo/query/" + id + "/result/").body["result"]
             == json::array({1, 2}));
  BOOST_TEST(call(c, "GET", "/demo/query/nope/state/").body["state"]
             == "PENDING");
  // Autoscale.
  r = call(c, "POST", "/demo/instances/tour1/autoscale/", {{"max", 6}, {"min", 2}});
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body["autoscale"]["max"] == 6, r.body.dump());
  BOOST_TEST(call(c, "GET", "/demo/instances/tour1/autoscale/").body
             == json({{"max", 6}, {"min", 2}}));
  BOOST_TEST(call(c, "GET", "/demo/instances/tour1/stats/").body["autoscale"]["min"]
             == 2);
  // Kill the worker: it comes back with a new pid.
  ::kill(pid, SIGKILL);
  BOOST_TEST(wait_until(
    [&] {
      auto st = call(c, "GET", "/demo/instances/tour1/").body;
      return st["pid"].get<int>() != pid && st["state"] == "running"
             && st["restarts"] == 1;
    },
    10s));
  // Disable stops it; enable starts it; restart restarts it.
  r = call(c, "POST", "/demo/instances/tour1/disable/", {{"reason", "maintenance"}});
  BOOST_TEST(r.body["is_enabled"] == false);
  BOOST_TEST(r.body["state"] == "disabled");
  BOOST_TEST(r.body["disabled_reason"] == "maintenance");
  BOOST_TEST(processes_named(dir.path / "root", "tour1") == 0);
  r = call(c, "POST", "/demo/instances/tour1/enable/");
  BOOST_TEST(r.body["is_enabled"] == true);
  BOOST_TEST(r.body["state"] == "running");
  BOOST_TEST(processes_named(dir.path / "root", "tour1") == 1);
  r = call(c, "POST", "/demo/instances/tour1/restart/");
  BOOST_TEST(r.body["outcome"] == "restarted");
  // Cancel the consumer, delete instances, queue and app.
  r = call(c, "DELETE", "/demo/instances/tour1/queues/extra/");
  BOOST_TEST(r.body["queues"] == json::array({"tasks"}));
  BOOST_TEST(call(c, "DELETE", "/demo/").status == 409);
  r = call(c, "DELETE", "/demo/instances/tour1/");
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body["outcome"] == "stopped");
  BOOST_TEST(processes_named(dir.path / "root", "tour1") == 0);
  BOOST_TEST(call(c, "DELETE", "/demo/instances/" + anon + "/").status == 200);
  BOOST_TEST(call(c, "DELETE", "/demo/queues/tasks/").status == 200);
  BOOST_TEST(call(c, "DELETE", "/demo/").status == 200);
  BOOST_TEST(call(c, "GET", "/").body == json::array());
  // The supervisor.
  BOOST_TEST(call(c, "POST", "/supervisor/pause/").body["paused"] == true);
  BOOST_TEST(call(c, "GET", "/supervisor/").body["paused_by_operator"] == true);
  auto sup = call(c, "GET", "/supervisor/").body;
  BOOST_TEST(sup["bus_suspected"] == false);
  BOOST_TEST(sup["bus_suspected_since"].is_null());
  BOOST_TEST(call(c, "POST", "/supervisor/resume/").body["paused"] == false);
  // The log has one readable line per action.
  auto log = b.log();
  for (auto line : {"tour1: started", "tour1: died", "tour1: instance restarted",
                    "tour1: successfully restarted", "tour1: consume_from: extra",
                    "tour1: set_autoscale: 6,2", "tour1: stopped",
                    "supervisor: paused: by operator"})
    BOOST_TEST(log.find(line) != std::string::npos, line);
}

BOOST_AUTO_TEST_CASE(bad_input_gets_a_clear_error_and_changes_nothing) {
  // Invalid names, numbers and JSON, unknown resources, wrong methods and
  // oversized bodies: a 4xx with {"error"}, and the model as it was.
  temp_dir dir;
  branch b{dir.path / "root"};
  auto c = b.client();
  call(c, "PUT", "/demo/");
  auto good = call(c, "PUT", "/demo/instances/bad1/",
                   {{"queues", {"q1"}}, {"max_concurrency", 2}});
  BOOST_TEST_REQUIRE(good.status == 201);
  // What the model and the supervisor hold, without what the process uses
  // and how long it has run (those change by themselves).
  auto model_view = [&] {
    auto list = call(c, "GET", "/demo/instances/").body;
    for (auto& x : list)
      for (auto key : {"uptime_s", "cpu_seconds", "rss_bytes", "ping_rtt_ms"})
        x.erase(key);
    return list;
  };
  auto before = model_view();
  struct bad {
    const char* method;
    std::string path;
    json body;
    int status;
  };
  std::vector<bad> cases{
    {"PUT", "/bad%20name/", json::object(), 400},
    {"PUT", "/supervisor/", json::object(), 400},
    {"PUT", "/demo/instances/-x/", json::object(), 400},
    {"PUT", "/demo/instances/bad1/", {{"max_concurrency", 1}, {"min_concurrency", 3}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"max_concurrency", "lots"}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"queues", {"ok", "no/slash"}}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"queues", {"dq.bad1"}}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"broker", "nowhere"}}, 400},
    {"POST", "/demo/instances/bad1/autoscale/", {{"max", 1}, {"min", 5}}, 400},
    {"POST", "/demo/instances/bad1/autoscale/", json::object(), 400},
    {"GET", "/nope/", json::object(), 404},
    {"GET", "/demo/instances/ghost/", json::object(), 404},
    {"DELETE", "/demo/instances/ghost/", json::object(), 404},
    {"DELETE", "/demo/instances/bad1/queues/never/", json::object(), 404},
    {"GET", "/demo/queues/ghost/", json::object(), 404},
    {"GET", "/demo/whatever/", json::object(), 404},
    {"POST", "/demo/", {{"broker", "a b:1"}}, 400},
    {"DELETE", "/demo/", json::object(), 409},
    {"GET", "/demo/query/x/wait/?timeout=9999", json::object(), 400},
    {"POST", "/demo/queue/bad$queue/", json::object(), 400},
    {"PUT", "/demo/instances/bad1/", {{"program", "/bin/sh"}}, 403},
    {"PUT", "/demo/instances/bad1/", {{"program", "bin/worker"}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"cwd", "/srv/../etc"}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"args", {"--name", "evil"}}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"args", "not a list"}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"env", {{"BAD KEY", "x"}}}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"env", {{"CYME_APP", "x"}}}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"stop_signal", "KILL"}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"stop_grace_s", 99999}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"kind", "daemon"}}, 400},
    {"PUT", "/demo/instances/bad1/", {{"kind", "process"}}, 400},
    {"PUT", "/demo/", {{"program", "/usr/bin/yes"}}, 403},
    {"PUT", "/demo/", {{"kind", "process"}, {"program", "/usr/bin/yes"}}, 403},
  };
  for (auto& x : cases) {
    auto r = call(c, x.method, x.path, x.body);
    BOOST_TEST(r.status == x.status, x.method << " " << x.path << " -> "
                                              << r.status << " " << r.body.dump());
    BOOST_TEST(r.body.contains("error"), x.method << " " << x.path);
  }
  // Malformed JSON and an oversized body.
  auto r = c.Put("/demo/instances/bad1/", "{not json", "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 400);
  r = c.Put("/demo/instances/bad1/", std::string(200 * 1024, 'x'), "application/json");
  BOOST_REQUIRE(r);
  BOOST_TEST(r->status == 413);
  BOOST_TEST(model_view() == before);
  BOOST_TEST(processes_named(dir.path / "root", "bad1") == 1);
}

BOOST_AUTO_TEST_CASE(a_batch_of_tasks_is_queued_whole_or_not_at_all) {
  // POST /<app>/queue/<queue>/ with a JSON array: every item is checked
  // first, a wrong one refused naming its index with nothing queued; a good
  // batch is answered with the ids in order once the broker has them all.
  temp_dir dir;
  branch b{dir.path / "root"};
  auto c = b.client();
  BOOST_TEST_REQUIRE(call(c, "PUT", "/demo/").status == 201);
  auto r = call(c, "PUT", "/demo/instances/bw/", {{"queues", {"batchq"}}});
  BOOST_TEST_REQUIRE(r.status == 201, r.body.dump());
  // Refused, each naming what is wrong, and nothing queued.
  struct bad_batch {
    json body;
    std::string says;
  };
  std::vector<bad_batch> bad{
    {json::array({json{{"args", 1}}, json{{"handler", 5}}}), "task 1: 'handler'"},
    {json::array({json{{"args", 1}}, json{{"args", 2}}, json{{"colour", "red"}}}),
     "task 2: unknown field 'colour'"},
    {json::array({json{{"args", 1}}, json("not a task")}), "task 1: must be an object"},
    {json::array({json{{"args", std::string(70000, 'x')}}}), "task 0: the task is larger"},
    {json::array(), "a batch holds 1 to 10000 tasks"},
  };
  json too_many = json::array();
  for (int i = 0; i < 10001; ++i)
    too_many.push_back(json{{"args", i}});
  bad.push_back({too_many, "a batch holds 1 to 10000 tasks"});
  for (auto& x : bad) {
    r = call(c, "POST", "/demo/queue/batchq/", x.body);
    BOOST_TEST((r.status == 400 || r.status == 413), r.status << " " << r.body.dump());
    BOOST_TEST(r.body["error"].get<std::string>().find(x.says) != std::string::npos,
               r.body.dump());
  }
  // An array anywhere else is still refused.
  BOOST_TEST(call(c, "PUT", "/demo/instances/bw2/", json::array({1})).status == 400);
  // A good batch: ids in order, each done by the worker.
  r = call(c, "POST", "/demo/queue/batchq/",
           json::array({json{{"handler", "echo"}, {"args", 1}}, json{{"args", 2}},
                        json{{"args", "three"}}}));
  BOOST_TEST_REQUIRE(r.status == 202, r.body.dump());
  BOOST_TEST_REQUIRE(r.body["ids"].size() == 3u);
  std::set<std::string> distinct;
  json expected = json::array({1, 2, "three"});
  for (size_t i = 0; i < 3; ++i) {
    auto id = r.body["ids"][i].get<std::string>();
    distinct.insert(id);
    auto done = call(c, "GET", "/demo/query/" + id + "/wait/?timeout=60");
    BOOST_TEST_REQUIRE(done.status == 200, done.body.dump());
    BOOST_TEST(done.body["result"] == expected[i]);
  }
  BOOST_TEST(distinct.size() == 3u);
  // The topic holds those three and nothing of the refused batches.
  std::string bootstrap;
  {
    std::ifstream in{dir.path / "root" / "kafka" / "bootstrap"};
    in >> bootstrap;
  }
  BOOST_TEST_REQUIRE(!bootstrap.empty());
  kafka::topic_reader reader{kafka::base_config(bootstrap), "batchq", 10000, true};
  size_t messages = 0;
  while (reader.poll(2000))
    ++messages;
  BOOST_TEST(messages == 3u);
}

BOOST_AUTO_TEST_CASE(any_allowed_program_runs_as_a_process_instance) {
  // A process instance runs its program (from its app's defaults, its own
  // overrides on top), is restarted after kill -9 by liveness alone, takes
  // no queues, autoscale or stats, and restarts once when what it runs
  // changes, its own launch or its app's; programs off the allow-list get
  // 403 and change nothing.
  temp_dir dir;
  branch b{dir.path / "root", {"--allow-program", "/bin/sleep"}};
  auto c = b.client();
  auto app = call(c, "PUT", "/legacy/",
                  {{"kind", "process"}, {"program", "/bin/sleep"},
                   {"args", {"300"}}});
  BOOST_TEST_REQUIRE(app.status == 201, app.body.dump());
  BOOST_TEST(app.body["launch"]["program"] == "/bin/sleep");
  auto put = call(c, "PUT", "/legacy/instances/p1/", {{"env", {{"MODE", "x"}}}});
  BOOST_TEST_REQUIRE(put.status == 201, put.body.dump());
  BOOST_TEST(put.body["kind"] == "process");
  BOOST_TEST(put.body["program"] == "/bin/sleep");
  BOOST_TEST(put.body["args"] == json({"300"}));
  BOOST_TEST(put.body["env"]["MODE"] == "x");
  BOOST_TEST(put.body["state"] == "running");
  auto pid = put.body["pid"].get<int>();
  BOOST_TEST_REQUIRE(pid > 0);
  BOOST_TEST(command_line(pid) == (std::vector<std::string>{"/bin/sleep", "300"}));
  auto pid_of = [&] {
    return call(c, "GET", "/legacy/instances/p1/").body["pid"].get<int>();
  };
  for (auto& [method, path, body] : std::vector<std::tuple<std::string, std::string, json>>{
         {"PUT", "/legacy/instances/p1/", {{"queues", {"q"}}}},
         {"PUT", "/legacy/instances/p1/", {{"max_concurrency", 2}}},
         {"POST", "/legacy/instances/p1/autoscale/", {{"max", 2}}},
         {"PUT", "/legacy/instances/p1/queues/q/", json::object()},
         {"GET", "/legacy/instances/p1/stats/", json::object()}}) {
    auto r = call(c, method, path, body);
    BOOST_TEST(r.status == 400, method << " " << path << " " << r.body.dump());
  }
  auto refused = call(c, "PUT", "/legacy/instances/p1/", {{"program", "/bin/cat"}});
  BOOST_TEST(refused.status == 403, refused.body.dump());
  BOOST_TEST(refused.body["error"].get<std::string>().find("allow-list")
             != std::string::npos);
  BOOST_TEST(call(c, "PUT", "/legacy/instances/p2/", {{"program", "/bin/cat"}}).status == 403);
  BOOST_TEST(call(c, "GET", "/legacy/instances/p2/").status == 404);
  BOOST_TEST(pid_of() == pid);

  // What it runs changed: restarted once, with the new arguments.
  auto changed = call(c, "PUT", "/legacy/instances/p1/", {{"args", {"301"}}});
  BOOST_TEST_REQUIRE(changed.status == 200, changed.body.dump());
  BOOST_TEST(changed.body["outcome"]["outcome"] == "restarted", changed.body.dump());
  auto pid2 = changed.body["pid"].get<int>();
  BOOST_TEST(pid2 != pid);
  BOOST_TEST(::kill(pid, 0) != 0);
  BOOST_TEST(command_line(pid2) == (std::vector<std::string>{"/bin/sleep", "301"}));

  // Killed: restarted by liveness alone.
  BOOST_TEST_REQUIRE(::kill(pid2, SIGKILL) == 0);
  int pid3 = 0;
  BOOST_TEST_REQUIRE(wait_until([&] {
    pid3 = pid_of();
    return pid3 > 0 && pid3 != pid2;
  }, 10s));

  // The app's stop signal changes what p1 runs: restarted once more.
  auto app_change = call(c, "PUT", "/legacy/", {{"stop_signal", "INT"}});
  BOOST_TEST_REQUIRE(app_change.status == 200, app_change.body.dump());
  BOOST_TEST(app_change.body["restarted"] == json({"p1"}));
  auto shown = call(c, "GET", "/legacy/instances/p1/").body;
  BOOST_TEST(shown["stop_signal"] == "INT");
  BOOST_TEST(shown["pid"].get<int>() != pid3);
  BOOST_TEST(shown["restarts"].get<int>() >= 3);

  auto del = call(c, "DELETE", "/legacy/instances/p1/");
  BOOST_TEST(del.status == 200, del.body.dump());
  auto last = shown["pid"].get<int>();
  BOOST_TEST(wait_until([&] { return ::kill(last, 0) != 0; }, 10s));
}

BOOST_AUTO_TEST_CASE(a_branch_killed_hard_readopts_its_instances) {
  // kill -9 of the branch: its workers and the embedded cluster run on; a
  // new branch on the same root finds both, keeps the same worker (no
  // duplicate, no restart) and the model holds every acknowledged change.
  temp_dir dir;
  auto root = dir.path / "root";
  int pid1 = 0;
  {
    branch b{root};
    auto c = b.client();
    call(c, "PUT", "/demo/");
    auto r = call(c, "PUT", "/demo/instances/hard1/", {{"queues", {"q1"}}});
    BOOST_TEST_REQUIRE(r.status == 201);
    pid1 = r.body["pid"].get<int>();
    r = call(c, "PUT", "/demo/instances/hard2/", {{"queues", {"q1"}}, {"nowait", 1}});
    BOOST_TEST(r.status == 202);
    b.stop(SIGKILL);
  }
  BOOST_TEST(::kill(pid1, 0) == 0);
  branch again{root};
  auto c = again.client();
  BOOST_TEST(wait_until(
    [&] {
      auto list = call(c, "GET", "/demo/instances/").body;
      return list.size() == 2 && list[0]["state"] == "running"
             && list[1]["state"] == "running";
    },
    20s));
  auto w1 = call(c, "GET", "/demo/instances/hard1/").body;
  BOOST_TEST(w1["pid"] == pid1);
  BOOST_TEST(w1["restarts"] == 0);
  BOOST_TEST(processes_named(root, "hard1") == 1);
  BOOST_TEST(processes_named(root, "hard2") == 1);
  BOOST_TEST(again.log().find("embedded Kafka found running") != std::string::npos);
  // The bus works on: a task sent now is done.
  auto r = call(c, "POST", "/demo/queue/q1/", {{"args", "hi"}});
  auto id = r.body["id"].get<std::string>();
  r = call(c, "GET", "/demo/query/" + id + "/wait/?timeout=60");
  BOOST_TEST(r.body["state"] == "SUCCESS");
}

BOOST_AUTO_TEST_CASE(a_remote_node_drives_the_supervisor_with_typed_messages) {
  // With --node, another actor system reaches the branch's supervisor
  // through CAF's middleman and gets typed replies to status, verify,
  // restart, pause and resume; bad names are refused as locally.
  temp_dir dir;
  branch b{dir.path / "root", {"--node", "127.0.0.1:0"}};
  auto c = b.client();
  call(c, "PUT", "/demo/");
  auto created = call(c, "PUT", "/demo/instances/remote1/");
  BOOST_TEST_REQUIRE(created.status == 201);
  BOOST_TEST_REQUIRE(wait_until([&] { return b.node_port() > 0; }, 10s));
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto sup = sys.middleman().remote_actor<supervisor_actor>(
    "127.0.0.1", static_cast<uint16_t>(b.node_port()));
  if (!sup)
    BOOST_FAIL("remote_actor: " + sys.render(sup.error()));
  caf::scoped_actor self{sys};
  auto ask = [&](auto... xs) {
    std::optional<std::vector<action_report>> out;
    self->request(*sup, 60s, xs...)
      .receive([&](std::vector<action_report>& r) { out = std::move(r); },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return *out;
  };
  supervisor_status st;
  self->request(*sup, 10s, status_atom::value)
    .receive([&](supervisor_status& x) { st = x; },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_TEST(st.instances == 1u);
  auto verified = ask(verify_atom::value, std::vector<std::string>{"remote1", "ghost"},
                      false);
  BOOST_REQUIRE(verified.size() == 2u);
  BOOST_TEST(to_string(verified[0].result) == "verified");
  BOOST_TEST(to_string(verified[1].result) == "unknown instance");
  auto old_pid = created.body["pid"].get<int>();
  auto restarted = ask(restart_atom::value, std::vector<std::string>{"remote1"});
  BOOST_TEST(to_string(restarted.at(0).result) == "restarted");
  BOOST_TEST(call(c, "GET", "/demo/instances/remote1/").body["pid"] != old_pid);
  self->request(*sup, 10s, pause_atom::value)
    .receive([&](supervisor_status& x) { BOOST_TEST(x.paused); },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_TEST(call(c, "GET", "/supervisor/").body["paused"] == true);
  self->request(*sup, 10s, resume_atom::value)
    .receive([&](supervisor_status& x) { BOOST_TEST(!x.paused); },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  // The CLI takes the same path with --node.
  auto node = "127.0.0.1:" + std::to_string(b.node_port());
  auto status = cyme_cli(b.port(), {"--node", node, "supervisor", "status"});
  BOOST_TEST(status.code == 0, status.err);
  BOOST_TEST(status.out.find("instances: 1") != std::string::npos, status.out);
  auto listed = cyme_cli(b.port(), {"--node", node, "--json", "instances",
                                    "list", "demo"});
  BOOST_TEST(listed.code == 0, listed.err);
  BOOST_TEST(json::parse(listed.out)[0]["name"] == "remote1");
  auto cli_restart = cyme_cli(b.port(), {"--node", node, "instances",
                                         "restart", "demo", "remote1"});
  BOOST_TEST(cli_restart.code == 0, cli_restart.err);
  BOOST_TEST(cli_restart.out.find("outcome: restarted") != std::string::npos);
  BOOST_TEST(cyme_cli(b.port(), {"--node", node, "apps"}).code == 2);
  BOOST_TEST(cyme_cli(b.port(), {"--node", "nowhere", "supervisor", "status"}).code
             == 2);
  // So does the example client in examples/.
  auto example = run_program({CYME_REMOTE_EXAMPLE, "127.0.0.1",
                              std::to_string(b.node_port()), "remote1"});
  BOOST_TEST(example.code == 0, example.err);
  BOOST_TEST(example.out.find("remote1: restarted") != std::string::npos,
             example.out);
  bool refused = false;
  self->request(*sup, 10s, verify_atom::value, std::vector<std::string>{"../x"},
                false)
    .receive([&](std::vector<action_report>&) {},
             [&](caf::error& e) {
               refused = describe(e).find("invalid argument") == 0;
             });
  BOOST_TEST(refused);
}

BOOST_AUTO_TEST_CASE(a_remote_node_cannot_send_the_supervisor_its_internal_messages) {
  // The handle --node publishes takes the public requests only. A node
  // that sends it what the control bus, the process driver, the timer or
  // the instance actors send the supervisor (a broker down, an exit, a
  // report, ticks, an event) changes nothing; asking for a permit, an
  // instance actor or a subscription is refused. The public requests work
  // through the same handle, answered by it (never by an actor behind it,
  // whose address the caller could then send anything).
  temp_dir dir;
  branch b{dir.path / "root", {"--node", "127.0.0.1:0"}};
  auto c = b.client();
  call(c, "PUT", "/demo/");
  auto created = call(c, "PUT", "/demo/instances/forged1/");
  BOOST_TEST_REQUIRE(created.status == 201);
  auto pid = created.body["pid"].get<int>();
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto w = call(c, "GET", "/demo/instances/forged1/").body;
      return w["state"] == "running" && w["pid"] == pid;
    },
    20s));
  BOOST_TEST_REQUIRE(wait_until([&] { return b.node_port() > 0; }, 10s));
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  add_message_types(cfg);
  caf::actor_system sys{cfg};
  // CAF 0.17 hands out a typed published actor only under its own interface
  // (neither a dynamically typed handle nor a wider interface); a cast then
  // lets any message through, as a hostile node would send it.
  auto sup = sys.middleman().remote_actor<supervisor_actor>(
    "127.0.0.1", static_cast<uint16_t>(b.node_port()));
  if (!sup)
    BOOST_FAIL("remote_actor: " + sys.render(sup.error()));
  auto any = caf::actor_cast<caf::actor>(*sup);
  caf::scoped_actor self{sys};
  self->send(any, broker_down_atom::value, std::string{},
             std::string{"forged outage"});
  self->send(any, exited_atom::value,
             process_exit{"forged1", static_cast<int32_t>(pid), 9, false});
  instance_status dead;
  dead.name = "forged1";
  dead.state = instance_state::stopped;
  self->send(any, report_atom::value, dead);
  for (uint64_t generation = 0; generation < 8; ++generation)
    self->send(any, tick_atom::value, generation);
  self->send(any, supervisor_event{event_kind::disabled, "forged1", "forged",
                                   {}, {}});
  auto refused = [&](const char* what, auto&& request, auto on_answer) {
    std::optional<caf::error> err;
    request.receive(on_answer, [&](caf::error& e) { err = std::move(e); });
    BOOST_TEST_REQUIRE(err.has_value(), what << " was answered");
    BOOST_TEST((*err == caf::sec::unexpected_message),
               what << ": " << sys.render(*err));
  };
  refused("permit",
          self->request(any, 10s, permit_atom::value, std::string{"forged1"},
                        false, restart_cause::requested),
          [](restart_permit) {});
  refused("child",
          self->request(any, 10s, child_atom::value, std::string{"forged1"}),
          [](instance_actor&) {});
  auto listener = sys.spawn(
    [](caf::event_based_actor*, int) -> caf::behavior {
      return {[](supervisor_event&) {}};
    },
    0);
  refused("subscribe",
          self->request(any, 10s, subscribe_atom::value,
                        caf::actor_cast<event_listener>(listener)),
          [] {});
  caf::anon_send_exit(listener, caf::exit_reason::user_shutdown);
  // From the same sender, so after every forged message.
  supervisor_status st;
  caf::actor_addr answered_by;
  self->request(*sup, 10s, status_atom::value)
    .receive(
      [&](supervisor_status& x) {
        st = x;
        answered_by = caf::actor_cast<caf::actor_addr>(self->current_sender());
      },
      [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_TEST((answered_by == sup->address()));
  BOOST_TEST(!st.paused);
  BOOST_TEST(st.brokers_down.empty());
  BOOST_TEST(st.instances == 1u);
  auto shown = call(c, "GET", "/demo/instances/forged1/").body;
  BOOST_TEST(shown["state"] == "running", shown.dump());
  BOOST_TEST(shown["pid"] == pid, shown.dump());
  BOOST_TEST(shown["is_enabled"] == true, shown.dump());
  BOOST_TEST(::kill(pid, 0) == 0);
  BOOST_TEST(processes_named(dir.path / "root", "forged1") == 1);
  BOOST_TEST(call(c, "GET", "/supervisor/").body["paused"] == false);
  // The public requests still work through it.
  std::vector<instance_status> listed;
  self->request(*sup, 10s, list_atom::value)
    .receive([&](std::vector<instance_status>& x) { listed = std::move(x); },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_TEST_REQUIRE(listed.size() == 1u);
  BOOST_TEST(listed[0].pid == pid);
  std::vector<action_report> verified;
  self->request(*sup, 60s, verify_atom::value,
                std::vector<std::string>{"forged1"}, false)
    .receive([&](std::vector<action_report>& r) { verified = std::move(r); },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_TEST_REQUIRE(verified.size() == 1u);
  BOOST_TEST(to_string(verified[0].result) == "verified");
  BOOST_TEST(call(c, "GET", "/demo/instances/forged1/").body["pid"] == pid);
}

BOOST_AUTO_TEST_CASE(plain_node_traffic_beyond_loopback_needs_node_insecure) {
  // --node on an address other than loopback without TLS is refused as a
  // bad flag (exit 2, naming the way out) before anything starts; with
  // --node-insecure the branch publishes there and warns in its log.
  temp_dir dir;
  auto root = dir.path / "root";
  for (std::string node : {"0.0.0.0:0", "10.1.2.3:4242", "[::]:0", "myhost:4242"}) {
    auto r = run_program({CYME_BRANCH_PROGRAM, "--root", root.string(),
                          "--node", node});
    BOOST_TEST(r.code == 2, node);
    BOOST_TEST(r.err.find("--node " + node + " is reachable beyond loopback")
                 != std::string::npos,
               r.err);
    BOOST_TEST(r.err.find("--node-insecure") != std::string::npos, r.err);
  }
  auto alone = run_program({CYME_BRANCH_PROGRAM, "--root", root.string(),
                            "--node-insecure"});
  BOOST_TEST(alone.code == 2);
  BOOST_TEST(alone.err.find("--node-insecure needs --node") != std::string::npos,
             alone.err);
  // Nothing started: no root, so no model and no embedded cluster.
  BOOST_TEST(!std::filesystem::exists(root));
  branch b{root, {"--node", "0.0.0.0:0", "--node-insecure"}};
  BOOST_TEST_REQUIRE(wait_until([&] { return b.node_port("0.0.0.0") > 0; }, 10s));
  BOOST_TEST(b.log().find("--node-insecure") != std::string::npos, b.log());
  auto node = "127.0.0.1:" + std::to_string(b.node_port("0.0.0.0"));
  auto status = cyme_cli(b.port(), {"--node", node, "supervisor", "status"});
  BOOST_TEST(status.code == 0, status.err);
  BOOST_TEST(status.out.find("paused: false") != std::string::npos, status.out);
}

BOOST_AUTO_TEST_CASE(branches_on_one_bus_form_a_cluster) {
  // Two branches on one Kafka see each other: anonymous instances created
  // through one are spread over both, either lists them all with the
  // branch each lives on, an operation on an instance is forwarded to its
  // owner, and a branch that goes silent drops out of the view.
  temp_dir dir;
  branch a{dir.path / "a", {}, "alpha"};
  std::string bootstrap;
  {
    std::ifstream in{dir.path / "a" / "kafka" / "bootstrap"};
    in >> bootstrap;
  }
  BOOST_TEST_REQUIRE(!bootstrap.empty());
  auto b = std::make_unique<branch>(dir.path / "b",
                                    std::vector<std::string>{"--kafka", bootstrap},
                                    "beta");
  auto ca = a.client();
  auto cb = b->client();
  call(ca, "PUT", "/demo/");
  call(cb, "PUT", "/demo/");
  // Both know both (announcements every 2 s).
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      call(ca, "GET", "/demo/instances/");
      auto r = call(cb, "POST", "/demo/instances/", {{"nowait", 1}});
      // Placement goes to the branch with fewer instances; stop once both
      // got one.
      auto list = call(ca, "GET", "/demo/instances/").body;
      std::set<std::string> where;
      for (auto& x : list)
        where.insert(x["branch"].get<std::string>());
      return where.size() == 2;
    },
    30s));
  for (int i = 0; i < 4; ++i)
    BOOST_TEST(call(ca, "POST", "/demo/instances/").status == 201);
  auto list = call(ca, "GET", "/demo/instances/").body;
  std::map<std::string, int> per_branch;
  for (auto& x : list)
    per_branch[x["branch"].get<std::string>()] += 1;
  BOOST_TEST(per_branch["alpha"] >= 2);
  BOOST_TEST(per_branch["beta"] >= 2);
  BOOST_TEST(call(cb, "GET", "/demo/instances/").body.size() == list.size());
  // Either branch names both, and itself.
  auto view = call(cb, "GET", "/cluster/");
  BOOST_TEST_REQUIRE(view.status == 200);
  BOOST_TEST_REQUIRE(view.body.size() == 2u);
  BOOST_TEST(view.body[0]["id"] == "alpha");
  BOOST_TEST(view.body[0]["self"] == false);
  BOOST_TEST(view.body[1]["id"] == "beta");
  BOOST_TEST(view.body[1]["self"] == true);
  BOOST_TEST(view.body[1]["http"] == "http://127.0.0.1:" + std::to_string(b->port()));
  // Two branches keep the shortest interval.
  BOOST_TEST(view.body[0]["every_ms"] == 2000);
  // The path is the API's own: no app of that name is made.
  BOOST_TEST(call(ca, "POST", "/cluster/").status == 400);
  // Pages of 2 across both branches, followed by their Link: every
  // instance once, in name order.
  std::vector<std::string> paged;
  std::string next = "/demo/instances/?limit=2";
  int pages = 0;
  while (!next.empty() && pages < 1000) {
    auto r = ca.Get(next.c_str());
    BOOST_TEST_REQUIRE(static_cast<bool>(r));
    BOOST_TEST_REQUIRE(r->status == 200);
    auto page = json::parse(r->body);
    BOOST_TEST(page.size() <= 2u);
    for (auto& x : page)
      paged.push_back(x["name"].get<std::string>());
    next.clear();
    auto link = r->get_header_value("Link");
    if (auto lt = link.find('<'), gt = link.find('>');
        lt != std::string::npos && gt != std::string::npos)
      next = link.substr(lt + 1, gt - lt - 1);
    ++pages;
  }
  std::vector<std::string> all_names;
  for (auto& x : list)
    all_names.push_back(x["name"].get<std::string>());
  std::sort(all_names.begin(), all_names.end());
  BOOST_TEST(paged == all_names, boost::test_tools::per_element());
  BOOST_TEST(pages >= static_cast<int>(all_names.size() / 2));
  // A page of one branch only, and bad paging: 400, nothing listed.
  auto mine = call(ca, "GET", "/demo/instances/?local=1&limit=10000").body;
  BOOST_TEST(mine.size() == static_cast<size_t>(per_branch["alpha"]));
  for (auto bad : {"limit=0", "limit=10001", "limit=x", "limit=-1",
                   "limit=2&after=..", "limit=2&after=a%2Fb"}) {
    auto r = call(ca, "GET", std::string{"/demo/instances/?"} + bad);
    BOOST_TEST(r.status == 400, bad);
    BOOST_TEST(r.body.contains("error"), bad);
  }
  // An instance of beta, operated through alpha.
  std::string on_beta;
  for (auto& x : list)
    if (x["branch"] == "beta")
      on_beta = x["name"].get<std::string>();
  auto shown = call(ca, "GET", "/demo/instances/" + on_beta + "/");
  BOOST_TEST(shown.status == 200);
  BOOST_TEST(shown.body["branch"] == "beta");
  auto old_pid = shown.body["pid"].get<int>();
  auto restarted = call(ca, "POST", "/demo/instances/" + on_beta + "/restart/");
  BOOST_TEST(restarted.body["outcome"] == "restarted");
  BOOST_TEST(call(cb, "GET", "/demo/instances/" + on_beta + "/?local=1").body["pid"]
             != old_pid);
  auto stats = call(ca, "GET", "/demo/instances/" + on_beta + "/stats/");
  BOOST_TEST(stats.status == 200, stats.body.dump());
  // beta dies: the first request alpha sends it finds nothing taking
  // connections, and beta leaves alpha's view at once, seconds before its
  // silence would say.
  b->stop(SIGKILL);
  call(ca, "GET", "/demo/instances/");
  auto after_kill = call(ca, "GET", "/cluster/");
  BOOST_TEST_REQUIRE(after_kill.body.size() == 1u);
  BOOST_TEST(after_kill.body[0]["id"] == "alpha");
  BOOST_TEST(wait_until(
    [&] {
      for (auto& x : call(ca, "GET", "/demo/instances/").body)
        if (x["branch"] == "beta")
          return false;
      return true;
    },
    20s));
  // Clean up beta's workers, which outlive its kill. Stopped in order,
  // it says it is leaving, so the others drop it at once rather than
  // after its silence.
  {
    branch again{dir.path / "b", {"--kafka", bootstrap}, "beta"};
    BOOST_TEST(wait_until(
      [&] { return call(ca, "GET", "/cluster/").body.size() == 2u; }, 30s));
    BOOST_TEST(again.stop(SIGTERM) == 0);
  }
  kafka::topic_reader announcements{kafka::base_config(bootstrap), topics::presence,
                                    10000, true};
  bool left = false;
  wait_until(
    [&] {
      while (auto m = announcements.poll(100))
        if (auto info = decode_presence(m->value); info && info->id == "beta")
          left = info->leaving;
      return left;
    },
    10s);
  BOOST_TEST(left);
}

BOOST_AUTO_TEST_CASE(node_traffic_is_tls_and_refuses_nodes_without_a_valid_certificate) {
  // With --node-cert/--node-key/--node-ca the published supervisor speaks
  // TLS: a node with a certificate from the CA gets answers; one with no
  // TLS, or with a certificate the CA did not sign, is refused.
  temp_dir dir;
  auto pki = dir.path / "pki";
  std::filesystem::create_directories(pki);
  auto p = [&](const char* f) { return (pki / f).string(); };
  auto openssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    auto r = run_program(args);
    BOOST_REQUIRE_MESSAGE(r.code == 0, "openssl failed: " << r.err);
  };
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"),
           "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=cyme-test-ca"});
  for (std::string n : {"node", "client"}) {
    openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", p((n + ".key").c_str()),
             "-out", p((n + ".csr").c_str()), "-subj", "/CN=" + n});
    openssl({"x509", "-req", "-in", p((n + ".csr").c_str()), "-CA", p("ca.pem"),
             "-CAkey", p("ca.key"), "-CAcreateserial", "-out",
             p((n + ".pem").c_str()), "-days", "2"});
  }
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("rogue.key"),
           "-out", p("rogue.pem"), "-days", "2", "-subj", "/CN=rogue"});
  branch b{dir.path / "root",
           {"--node", "127.0.0.1:0", "--node-cert", p("node.pem"), "--node-key",
            p("node.key"), "--node-ca", p("ca.pem")}};
  BOOST_TEST_REQUIRE(wait_until([&] { return b.node_port() > 0; }, 10s));
  BOOST_TEST(b.log().find("(TLS)") != std::string::npos);
  auto node = "127.0.0.1:" + std::to_string(b.node_port());
  auto trusted = cyme_cli(b.port(), {"--node", node, "--node-cert", p("client.pem"),
                                     "--node-key", p("client.key"), "--node-ca",
                                     p("ca.pem"), "supervisor", "status"});
  BOOST_TEST(trusted.code == 0, trusted.err);
  BOOST_TEST(trusted.out.find("paused: false") != std::string::npos);
  auto plain = cyme_cli(b.port(), {"--node", node, "supervisor", "status"});
  BOOST_TEST(plain.code == 3);
  BOOST_TEST(plain.out.empty());
  auto rogue = cyme_cli(b.port(), {"--node", node, "--node-cert", p("rogue.pem"),
                                   "--node-key", p("rogue.key"), "--node-ca",
                                   p("ca.pem"), "supervisor", "pause"});
  BOOST_TEST(rogue.code == 3);
  // The refused pause changed nothing.
  auto c = b.client();
  BOOST_TEST(call(c, "GET", "/supervisor/").body["paused"] == false);
}

BOOST_AUTO_TEST_CASE(the_api_is_served_over_https_and_forwarded_over_it) {
  // --http-cert/--http-key: the API speaks HTTPS only. The CLI reaches it
  // at https:// with --http-ca, and refuses a branch its CA did not sign; a
  // request for an instance of another branch is forwarded over HTTPS,
  // checked against --http-ca, and not to a peer that cannot prove itself.
  // Certificates that do not load, a key others may read, one flag without
  // the other: exit 2, nothing started.
  temp_dir dir;
  auto pki = dir.path / "pki";
  std::filesystem::create_directories(pki);
  auto p = [&](const std::string& f) { return (pki / f).string(); };
  auto openssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    auto r = run_program(args);
    BOOST_REQUIRE_MESSAGE(r.code == 0, "openssl failed: " << r.err);
  };
  { std::ofstream{p("san.ext")} << "subjectAltName=IP:127.0.0.1\n"; }
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"),
           "-out", p("ca.pem"), "-days", "2", "-subj", "/CN=cyme-test-ca"});
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("branch.key"),
           "-out", p("branch.csr"), "-subj", "/CN=cyme-branch"});
  openssl({"x509", "-req", "-in", p("branch.csr"), "-CA", p("ca.pem"), "-CAkey",
           p("ca.key"), "-CAcreateserial", "-out", p("branch.pem"), "-days", "2",
           "-extfile", p("san.ext")});
  openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("rogue.key"),
           "-out", p("rogue.pem"), "-days", "2", "-subj", "/CN=rogue",
           "-addext", "subjectAltName=IP:127.0.0.1"});
  namespace fs = std::filesystem;
  for (auto key : {"branch.key", "rogue.key"})
    fs::permissions(p(key), fs::perms::owner_read | fs::perms::owner_write);
  fs::copy_file(p("branch.key"), p("open.key"));
  fs::permissions(p("open.key"), fs::perms::owner_read | fs::perms::owner_write
                                   | fs::perms::group_read | fs::perms::others_read);
  { std::ofstream{p("garbage.pem")} << "not a certificate\n"; }
  { std::ofstream{p("garbage.key")} << "not a key\n"; }
  fs::permissions(p("garbage.key"), fs::perms::owner_read | fs::perms::owner_write);
  auto root = dir.path / "refused";
  expect_flags_refused(root, {
    {{"--http-cert", p("none.pem"), "--http-key", p("branch.key")},
     "cannot load the certificate " + p("none.pem")},
    {{"--http-cert", p("garbage.pem"), "--http-key", p("branch.key")},
     "cannot load the certificate " + p("garbage.pem")},
    {{"--http-cert", p("branch.pem"), "--http-key", p("garbage.key")},
     "cannot load the private key " + p("garbage.key")},
    {{"--http-cert", p("branch.pem"), "--http-key", p("rogue.key")},
     "does not belong to the certificate"},
    {{"--http-cert", p("branch.pem"), "--http-key", p("open.key")},
     "mode 0644 lets every user read it"},
    {{"--http-cert", p("branch.pem")}, "--http-cert and --http-key go together"},
    {{"--http-ca", p("garbage.pem")}, "cannot load the CA certificates"},
  });
  BOOST_TEST(!fs::exists(root), "nothing started");

  std::vector<std::string> tls{"--http-cert", p("branch.pem"), "--http-key",
                               p("branch.key")};
  auto with = [](std::vector<std::string> a, std::vector<std::string> b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  branch a{dir.path / "a", with(tls, {"--http-ca", p("ca.pem")}), "alpha"};
  BOOST_TEST(a.log().find("serving https://127.0.0.1:") != std::string::npos);
  auto url = "https://127.0.0.1:" + std::to_string(a.port());
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {CYME_CLI_PROGRAM, "--branch", url});
    return run_program(std::move(args));
  };
  auto added = cli({"--http-ca", p("ca.pem"), "apps", "add", "demo"});
  BOOST_TEST(added.code == 0, added.err);
  auto listed = cli({"--http-ca", p("ca.pem"), "apps"});
  BOOST_TEST(listed.code == 0, listed.err);
  BOOST_TEST(listed.out.find("demo") != std::string::npos, listed.out);
  // A CA that did not sign it, or the system's: refused, nothing sent.
  for (auto& untrusted : {std::vector<std::string>{"--http-ca", p("rogue.pem")},
                          std::vector<std::string>{}}) {
    auto r = cli(with(untrusted, {"apps", "add", "other"}));
    BOOST_TEST(r.code == 3, r.err);
    BOOST_TEST(r.err.find("not signed by a CA this client trusts") != std::string::npos,
               r.err);
  }
  // Plain HTTP to it gets no answer; --http-ca with http:// is a usage error.
  auto plain = cyme_cli(a.port(), {"apps"});
  BOOST_TEST(plain.code == 3, plain.err);
  auto mixed = cyme_cli(a.port(), {"--http-ca", p("ca.pem"), "apps"});
  BOOST_TEST(mixed.code == 2, mixed.err);
  BOOST_TEST(mixed.err.find("--http-ca is for an https:// branch") != std::string::npos);
  httplib::SSLClient ca{"127.0.0.1", a.port()};
  ca.enable_server_certificate_verification(true);
  ca.set_ca_cert_path(p("ca.pem"));
  ca.set_read_timeout(120, 0);
  // The refused "apps add other" changed nothing.
  BOOST_TEST(call(ca, "GET", "/").body == json::array({"demo"}));

  // beta, on alpha's bus, with the same certificate but no --http-ca: it
  // cannot check alpha's certificate (the system's CAs did not sign it).
  std::string bootstrap;
  {
    std::ifstream in{dir.path / "a" / "kafka" / "bootstrap"};
    in >> bootstrap;
  }
  BOOST_TEST_REQUIRE(!bootstrap.empty());
  branch b{dir.path / "b", with(tls, {"--kafka", bootstrap}), "beta"};
  httplib::SSLClient cb{"127.0.0.1", b.port()};
  cb.enable_server_certificate_verification(true);
  cb.set_ca_cert_path(p("ca.pem"));
  cb.set_read_timeout(120, 0);
  BOOST_TEST(call(cb, "PUT", "/demo/").status == 201);
  auto on_beta = call(cb, "PUT", "/demo/instances/tb1/?local=1", json::object());
  BOOST_TEST_REQUIRE(on_beta.status == 201, on_beta.body.dump());
  auto on_alpha = call(ca, "PUT", "/demo/instances/ta1/?local=1", json::object());
  BOOST_TEST_REQUIRE(on_alpha.status == 201, on_alpha.body.dump());
  // alpha learns of beta (https://) and forwards to it over HTTPS.
  BOOST_TEST(wait_until(
    [&] { return call(ca, "GET", "/demo/instances/tb1/").status == 200; }, 30s));
  auto shown = call(ca, "GET", "/demo/instances/tb1/");
  BOOST_TEST(shown.body["branch"] == "beta");
  auto view = call(ca, "GET", "/cluster/");
  BOOST_TEST_REQUIRE(view.body.size() == 2u);
  BOOST_TEST(view.body[1]["http"] == "https://127.0.0.1:" + std::to_string(b.port()));
  auto restarted = call(ca, "POST", "/demo/instances/tb1/restart/");
  BOOST_TEST(restarted.body["outcome"] == "restarted", restarted.body.dump());
  // beta knows alpha too, but will not talk to a peer it cannot check.
  BOOST_TEST_REQUIRE(wait_until(
    [&] { return call(cb, "GET", "/cluster/").body.size() == 2u; }, 30s));
  auto unchecked = call(cb, "GET", "/demo/instances/ta1/");
  BOOST_TEST(unchecked.status != 200, unchecked.body.dump());
}

BOOST_AUTO_TEST_CASE(a_token_guards_every_change) {
  // With --token, a change without the token (or with a wrong one) gets
  // 401 and changes nothing; reads stay open; the CLI sends the token.
  temp_dir dir;
  branch b{dir.path / "root", {"--token", "s3cret"}};
  auto c = b.client();
  auto denied = call(c, "PUT", "/demo/");
  BOOST_TEST(denied.status == 401);
  BOOST_TEST(denied.body["error"].get<std::string>().find("token")
             != std::string::npos);
  c.set_bearer_token_auth("wrong");
  BOOST_TEST(call(c, "PUT", "/demo/").status == 401);
  BOOST_TEST(call(c, "POST", "/supervisor/pause/").status == 401);
  BOOST_TEST(call(c, "GET", "/").body == json::array());
  BOOST_TEST(call(c, "GET", "/supervisor/").body["paused"] == false);
  c.set_bearer_token_auth("s3cret");
  BOOST_TEST(call(c, "PUT", "/demo/").status == 201);
  auto without = cyme_cli(b.port(), {"instances", "add", "demo", "tok1"});
  BOOST_TEST(without.code == 1);
  BOOST_TEST(processes_named(dir.path / "root", "tok1") == 0);
  auto with = cyme_cli(b.port(), {"--token", "s3cret", "instances", "add",
                                  "demo", "tok1"});
  BOOST_TEST(with.code == 0, with.err);
  BOOST_TEST(processes_named(dir.path / "root", "tok1") == 1);
}

BOOST_AUTO_TEST_CASE(with_token_for_reads_every_read_needs_the_token_but_the_page) {
  // --token-for-reads: reads need the token too (401 with
  // WWW-Authenticate, nothing shown), metrics and the event stream
  // included; the dashboard's files do not. Without a token the flag is
  // refused with exit 2.
  temp_dir dir;
  expect_flags_refused(dir.path / "refused",
                       {{{"--token-for-reads"}, "--token-for-reads needs a token"}});
  BOOST_TEST(!std::filesystem::exists(dir.path / "refused"), "nothing started");
  branch b{dir.path / "root", {"--token", "s3cret", "--token-for-reads"}};
  auto c = b.client();
  for (auto path : {"/", "/supervisor/", "/cluster/", "/metrics", "/events/?since=0&follow=0"}) {
    auto r = c.Get(path);
    BOOST_TEST_REQUIRE(static_cast<bool>(r), path);
    BOOST_TEST(r->status == 401, path);
    BOOST_TEST(r->get_header_value("WWW-Authenticate") == "Bearer realm=\"cyme\"", path);
    BOOST_TEST(r->body.find("requires a token (Authorization") != std::string::npos, r->body);
  }
  for (auto path : {"/ui/", "/ui/app.js"}) {
    auto r = c.Get(path);
    BOOST_TEST_REQUIRE(static_cast<bool>(r), path);
    BOOST_TEST(r->status == 200, path);
  }
  c.set_bearer_token_auth("wrong");
  BOOST_TEST(call(c, "GET", "/").status == 401);
  c.set_bearer_token_auth("s3cret");
  BOOST_TEST(call(c, "PUT", "/demo/").status == 201);
  BOOST_TEST(call(c, "GET", "/").body == json::array({"demo"}));
  auto metrics = c.Get("/metrics");
  BOOST_TEST_REQUIRE(static_cast<bool>(metrics));
  BOOST_TEST(metrics->status == 200);
  BOOST_TEST(metrics->body.find("cyme_supervisor_paused") != std::string::npos);
  auto without = cyme_cli(b.port(), {"apps"});
  BOOST_TEST(without.code == 1);
  BOOST_TEST(without.out.empty());
  auto with = cyme_cli(b.port(), {"--token", "s3cret", "apps"});
  BOOST_TEST(with.code == 0, with.err);
  BOOST_TEST(with.out.find("demo") != std::string::npos, with.out);
}

BOOST_AUTO_TEST_CASE(a_token_file_keeps_the_token_off_the_command_line) {
  // --token-file: the branch and the CLI read the token from a file only
  // its owner may read; one others may read, an empty or a missing one, or
  // a token given twice is a bad flag (exit 2, saying why) and nothing
  // starts. The token is then on no command line.
  temp_dir dir;
  auto root = dir.path / "root";
  auto file = dir.path / "token";
  auto empty = dir.path / "empty";
  { std::ofstream{file} << "s3cret\n"; }
  { std::ofstream{empty}; }
  namespace fs = std::filesystem;
  fs::permissions(file, fs::perms::owner_read | fs::perms::group_read
                          | fs::perms::others_read);
  fs::permissions(empty, fs::perms::owner_read | fs::perms::owner_write);
  struct {
    std::vector<std::string> flags;
    std::string says;
  } bad[] = {
    {{"--token-file", file.string()}, "mode 0444 lets others than its owner read"},
    {{"--token-file", empty.string()}, "empty"},
    {{"--token-file", (dir.path / "none").string()}, "No such file"},
    {{"--token-file", dir.path.string()}, "not a regular file"},
  };
  for (auto& b : bad) {
    std::vector<std::string> args{CYME_BRANCH_PROGRAM, "--root", root.string()};
    args.insert(args.end(), b.flags.begin(), b.flags.end());
    auto r = run_program(args);
    BOOST_TEST(r.code == 2, b.says);
    BOOST_TEST(r.err.find(b.says) != std::string::npos, r.err);
    auto cli = run_program({CYME_CLI_PROGRAM, b.flags[0], b.flags[1], "apps"});
    BOOST_TEST(cli.code == 2, b.says);
    BOOST_TEST(cli.err.find(b.says) != std::string::npos, cli.err);
  }
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  auto twice = run_program({CYME_BRANCH_PROGRAM, "--root", root.string(),
                            "--token", "x", "--token-file", file.string()});
  BOOST_TEST(twice.code == 2);
  BOOST_TEST(twice.err.find("give the token once") != std::string::npos, twice.err);
  BOOST_TEST(!fs::exists(root), "nothing started");
  branch b{root, {"--token-file", file.string()}};
  auto c = b.client();
  BOOST_TEST(call(c, "PUT", "/demo/").status == 401);
  c.set_bearer_token_auth("s3cret");
  BOOST_TEST(call(c, "PUT", "/demo/").status == 201);
  BOOST_TEST(cyme_cli(b.port(), {"instances", "add", "demo", "tf1", "--nowait"}).code == 1);
  auto with = cyme_cli(b.port(), {"--token-file", file.string(), "instances",
                                  "add", "demo", "tf1", "--nowait"});
  BOOST_TEST(with.code == 0, with.err);
  std::string cmdline;
  BOOST_TEST(read_capped(proc_path(b.pid(), "cmdline"), cmdline_cap, cmdline).empty());
  BOOST_TEST(cmdline.find("s3cret") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(systemd_hears_ready_the_watchdog_and_stopping) {
  // Type=notify: with NOTIFY_SOCKET set, the branch says READY=1 once its
  // HTTP API is bound and its first round has started, feeds the watchdog
  // (WATCHDOG_USEC) with each heartbeat the supervisor answers, and says
  // STOPPING=1 on SIGTERM. Its instances do not inherit the variables.
  temp_dir dir;
  cyme::testing::notify_listener systemd;
  struct environment {
    environment(const std::string& socket) {
      ::setenv("NOTIFY_SOCKET", socket.c_str(), 1);
      ::setenv("WATCHDOG_USEC", "1000000", 1);
    }
    ~environment() {
      ::unsetenv("NOTIFY_SOCKET");
      ::unsetenv("WATCHDOG_USEC");
    }
  };
  std::optional<branch> b;
  {
    environment env{systemd.address()};
    b.emplace(dir.path / "root");
  }
  auto ready = systemd.next(30000);
  BOOST_TEST(ready.rfind("READY=1\n", 0) == 0, ready);
  BOOST_TEST(ready.find("\nSTATUS=0 instances, ") != std::string::npos, ready);
  auto log = b->log();
  auto serving = log.find("serving http://");
  auto said_ready = log.find("service manager: ready (the first round has started)");
  BOOST_TEST(serving != std::string::npos);
  BOOST_TEST(said_ready != std::string::npos, log);
  BOOST_TEST(serving < said_ready, "bound before ready");
  // Half a period between feeds: four come well within ten periods.
  int fed = 0;
  wait_until([&] {
    if (systemd.next().find("WATCHDOG=1\n") == 0)
      ++fed;
    return fed >= 4;
  }, 10s);
  BOOST_TEST(fed >= 4);
  auto c = b->client();
  BOOST_TEST(call(c, "PUT", "/demo/").status == 201);
  auto put = call(c, "PUT", "/demo/instances/sd1/", json::object());
  BOOST_TEST_REQUIRE(put.status == 201, put.body.dump());
  auto env = environment_of(put.body["pid"].get<int>());
  BOOST_TEST(!env.empty());
  for (auto& var : env) {
    BOOST_TEST(var.rfind("NOTIFY_SOCKET=", 0) != 0, var);
    BOOST_TEST(var.rfind("WATCHDOG_USEC=", 0) != 0, var);
  }
  auto status = b->stop(SIGTERM);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  bool stopping = false;
  for (auto d = systemd.next(); !d.empty() && !stopping; d = systemd.next())
    stopping = d.rfind("STOPPING=1\n", 0) == 0;
  BOOST_TEST(stopping, "STOPPING=1 before the branch ended");
}

BOOST_AUTO_TEST_CASE(a_branch_killed_during_a_burst_of_changes_keeps_every_acknowledged_one) {
  // kill -9 of the branch while 100 changes pour in: after a restart the
  // model holds every change that was acknowledged, none half-applied, and
  // the running workers are re-adopted without duplicates.
  temp_dir dir;
  auto root = dir.path / "root";
  std::vector<std::string> acknowledged;
  std::mutex acked_mtx;
  auto acked = [&] {
    std::lock_guard<std::mutex> guard{acked_mtx};
    return acknowledged.size();
  };
  {
    branch b{root};
    auto c = b.client();
    BOOST_TEST_REQUIRE(call(c, "PUT", "/demo/").status == 201);
    std::atomic<bool> stop{false};
    std::thread burst{[&] {
      auto bc = b.client();
      bc.set_read_timeout(5, 0);
      for (int i = 0; i < 100 && !stop; ++i) {
        auto name = "burst" + std::to_string(i);
        json spec{{"queues", {"q" + std::to_string(i)}},
                  {"max_concurrency", i % 5 + 1},
                  {"nowait", 1}};
        auto r = bc.Put(("/demo/instances/" + name + "/").c_str(), spec.dump(),
                        "application/json");
        if (r && r->status == 202) {
          std::lock_guard<std::mutex> guard{acked_mtx};
          acknowledged.push_back(name);
        }
      }
    }};
    BOOST_TEST(wait_until([&] { return acked() >= 30; }, 60s));
    b.stop(SIGKILL);
    stop = true;
    burst.join();
  }
  BOOST_TEST_REQUIRE(acknowledged.size() >= 30u);
  branch again{root};
  auto c = again.client();
  auto model = by_name_local(call(c, "GET", "/demo/instances/?local=1").body);
  for (auto& name : acknowledged)
    BOOST_TEST(model.count(name) == 1u, name << " lost");
  for (auto& [name, x] : model) {
    auto i = std::stoi(name.substr(5));
    BOOST_TEST(x["queues"] == json::array({"q" + std::to_string(i)}), name);
    BOOST_TEST(x["max_concurrency"] == i % 5 + 1, name);
  }
  // Every instance in the model ends up with exactly one process.
  BOOST_TEST(wait_until(
    [&] {
      for (auto& [name, x] : model)
        if (processes_named(root, name) != 1)
          return false;
      return true;
    },
    90s));
  for (auto& [name, x] : model)
    BOOST_TEST(processes_named(root, name) == 1, name);
}

BOOST_AUTO_TEST_CASE(sigterm_stops_instances_unless_kept) {
  // A clean stop stops the instances; with --keep-instances they run on.
  temp_dir dir;
  {
    branch b{dir.path / "a"};
    auto c = b.client();
    call(c, "PUT", "/demo/");
    BOOST_TEST_REQUIRE(call(c, "PUT", "/demo/instances/k1/").status == 201);
    BOOST_TEST(processes_named(dir.path / "a", "k1") == 1);
    auto status = b.stop(SIGTERM);
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0);
    BOOST_TEST(processes_named(dir.path / "a", "k1") == 0);
  }
  {
    branch b{dir.path / "b", {"--keep-instances"}};
    auto c = b.client();
    call(c, "PUT", "/demo/");
    auto r = call(c, "PUT", "/demo/instances/k2/");
    BOOST_TEST_REQUIRE(r.status == 201);
    b.stop(SIGTERM);
    BOOST_TEST(processes_named(dir.path / "b", "k2") == 1);
    // Clean up what was kept: the worker and the embedded cluster.
    ::kill(r.body["pid"].get<int>(), SIGKILL);
    std::ifstream pid_file{dir.path / "b" / "kafka" / "kafka.pid"};
    int kafka_pid = 0;
    pid_file >> kafka_pid;
    BOOST_TEST(kafka_pid > 0);
    if (kafka_pid > 0)
      ::kill(kafka_pid, SIGKILL);
  }
}

BOOST_AUTO_TEST_CASE(a_branch_and_its_workers_name_their_threads) {
  // top -H, ps -L and perf tell cyme's threads apart by their names.
  temp_dir dir;
  branch b{dir.path};
  auto c = b.client();
  call(c, "PUT", "/demo/");
  auto r = call(c, "PUT", "/demo/instances/t1/");
  BOOST_TEST_REQUIRE(r.status == 201);
  auto names_of = [](pid_t pid) {
    std::set<std::string> out;
    for (auto& [tid, comm] : threads_of(pid))
      out.insert(comm);
    return out;
  };
  auto branch_threads = names_of(b.pid());
  for (auto name : {"cyme-http", "cyme-handler", "cyme-bus", "cyme-bus-probe",
                    "cyme-presence", "cyme-events", "cyme-keeper",
                    "cyme-exits", "cyme-results"})
    BOOST_TEST(branch_threads.count(name) == 1u, name);
  // The worker may start its task pool after it first answered.
  auto worker = r.body["pid"].get<int>();
  for (auto name : {"cyme-queue", "cyme-task"})
    BOOST_TEST(wait_until([&] { return names_of(worker).count(name) == 1u; },
                          5s),
               name);
  // The task producer's thread comes with the first task.
  BOOST_TEST_REQUIRE(call(c, "POST", "/demo/queue/q1/", {{"handler", "echo"}}).status
                     == 202);
  BOOST_TEST(names_of(b.pid()).count("cyme-deliver") == 1u);
}

BOOST_AUTO_TEST_CASE(a_killed_embedded_cluster_is_started_again_and_the_fleet_works) {
  // kill -9 of cyme-embedded-kafka under a running branch (the default
  // deployment): the branch starts it again on the same address, says in
  // its log and in an event that what it held in memory is lost, is not
  // left paused, and its worker serves tasks again within 10 s.
  temp_dir dir;
  branch b{dir.path / "root"};
  auto c = b.client();
  BOOST_TEST_REQUIRE(call(c, "PUT", "/demo/").status == 201);
  auto r = call(c, "PUT", "/demo/instances/kw/", {{"queues", {"kq"}}});
  BOOST_TEST_REQUIRE(r.status == 201, r.body.dump());
  auto serves_a_task = [&](int timeout_s) {
    auto sent = call(c, "POST", "/demo/queue/kq/", {{"args", "hello"}});
    if (sent.status != 202)
      return false;
    auto done = call(c, "GET",
                     "/demo/query/" + sent.body["id"].get<std::string>()
                       + "/wait/?timeout=" + std::to_string(timeout_s));
    return done.status == 200 && done.body["state"] == "SUCCESS";
  };
  BOOST_TEST_REQUIRE(serves_a_task(60));
  auto kafka_dir = dir.path / "root" / "kafka";
  auto read_word = [](const std::filesystem::path& file) {
    std::ifstream in{file};
    std::string word;
    in >> word;
    return word;
  };
  auto bootstrap = read_word(kafka_dir / "bootstrap");
  auto old_pid = std::stoi(read_word(kafka_dir / "kafka.pid"));
  BOOST_TEST_REQUIRE(::kill(old_pid, SIGKILL) == 0);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  int new_pid = 0;
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto word = read_word(kafka_dir / "kafka.pid");
      new_pid = word.empty() ? 0 : std::stoi(word);
      return new_pid > 0 && new_pid != old_pid && ::kill(new_pid, 0) == 0;
    },
    5s), b.log());
  BOOST_TEST(read_word(kafka_dir / "bootstrap") == bootstrap);
  // Served again, before the deadline.
  bool served = false;
  while (!served && std::chrono::steady_clock::now() < deadline)
    served = serves_a_task(2);
  BOOST_TEST(served, "no task served within 10 s of the kill:\n" << b.log());
  auto status = call(c, "GET", "/supervisor/").body;
  BOOST_TEST(status["paused"] == false, status.dump());
  BOOST_TEST(status["brokers_down"].empty(), status.dump());
  // Said in the log and in an event, with how the old process ended.
  auto log = b.log();
  BOOST_TEST(log.find("embedded Kafka at " + bootstrap + " was killed by SIGKILL")
               != std::string::npos, log);
  BOOST_TEST(log.find("held in memory are lost") != std::string::npos);
  auto events = c.Get("/events/?since=0&follow=0");
  BOOST_TEST_REQUIRE(events != nullptr);
  auto restarted = events->body.find("broker_restarted");
  BOOST_TEST_REQUIRE(restarted != std::string::npos, events->body);
  auto from = events->body.rfind('\n', restarted) + 1;
  auto line = events->body.substr(from, events->body.find('\n', restarted) - from);
  BOOST_TEST(line.find(std::to_string(new_pid)) != std::string::npos, line);
  BOOST_TEST(line.find("SIGKILL") != std::string::npos, line);
  // A clean stop stops the cluster it started again.
  b.stop(SIGTERM);
  BOOST_TEST(wait_until([&] { return ::kill(new_pid, 0) != 0; }, 10s));
}

BOOST_AUTO_TEST_CASE(an_instance_serves_tasks_with_its_own_exec_program) {
  // A cyme-worker instance given --exec PROGRAM in its args serves `exec`
  // tasks with it: stdout is the result, a non-zero exit a FAILURE; an
  // --exec program off the allow-list gets 403.
  temp_dir dir;
  branch b{dir.path / "root",
           {"--allow-program", "/bin/cat", "--allow-program", "/bin/false"}};
  auto c = b.client();
  auto refused = call(c, "PUT", "/ex/instances/e0/", {{"args", {"--exec=/bin/sh"}}});
  BOOST_TEST(refused.status == 403, refused.body.dump());
  BOOST_TEST(call(c, "GET", "/ex/instances/e0/").status == 404);
  auto cat = call(c, "PUT", "/ex/instances/e1/",
                  {{"queues", {"cat-q"}},
                   {"args", {"--exec", "/bin/cat", "--exec-timeout-ms", "5000"}}});
  BOOST_TEST_REQUIRE(cat.status == 201, cat.body.dump());
  BOOST_TEST(cat.body["state"] == "running", cat.body.dump());
  auto fail = call(c, "PUT", "/ex/instances/e2/",
                   {{"queues", {"false-q"}}, {"args", {"--exec", "/bin/false"}}});
  BOOST_TEST_REQUIRE(fail.status == 201, fail.body.dump());
  auto run = [&](const std::string& queue) {
    auto sent = call(c, "POST", "/ex/queue/" + queue + "/",
                     {{"handler", "exec"}, {"args", {{"order", 42}}}});
    BOOST_REQUIRE(sent.status == 202);
    return call(c, "GET", "/ex/query/" + sent.body["id"].get<std::string>()
                            + "/wait/?timeout=60").body;
  };
  auto ok = run("cat-q");
  BOOST_TEST(ok["state"] == "SUCCESS", ok.dump());
  BOOST_TEST(ok["result"] == json({{"order", 42}}), ok.dump());
  auto bad = run("false-q");
  BOOST_TEST(bad["state"] == "FAILURE", bad.dump());
  BOOST_TEST(bad["error"] == "/bin/false exited with status 1", bad.dump());
}

BOOST_AUTO_TEST_CASE(an_app_on_its_own_broker_gets_its_task_results) {
  // An app that names its own broker sends its tasks there and its
  // results come back from there (the branch reads that broker's results).
  kafka::embedded_cluster other;
  temp_dir dir;
  branch b{dir.path / "root"};
  auto c = b.client();
  BOOST_TEST_REQUIRE(call(c, "PUT", "/away/", {{"broker", other.bootstrap()}}).status == 201);
  auto put = call(c, "PUT", "/away/instances/a1/", {{"queues", {"far"}}});
  BOOST_TEST_REQUIRE(put.status == 201, put.body.dump());
  BOOST_TEST(put.body["broker"] == other.bootstrap());
  BOOST_TEST(put.body["state"] == "running", put.body.dump());
  auto sent = call(c, "POST", "/away/queue/far/", {{"handler", "echo"}, {"args", 5}});
  BOOST_TEST_REQUIRE(sent.status == 202, sent.body.dump());
  auto id = sent.body["id"].get<std::string>();
  auto r = call(c, "GET", "/away/query/" + id + "/wait/?timeout=60");
  BOOST_TEST(r.status == 200, r.body.dump());
  BOOST_TEST(r.body["state"] == "SUCCESS", r.body.dump());
  BOOST_TEST(r.body["instance"] == "a1");
  BOOST_TEST(r.body["result"] == 5);
}

BOOST_AUTO_TEST_CASE(a_change_with_no_body_needs_no_content_length) {
  // PUT, POST and DELETE with neither a body nor Content-Length (as curl
  // -X PUT sends them) are served like an empty body.
  temp_dir dir;
  branch b{dir.path / "root"};
  auto raw = [&](const std::string& method, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(b.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    auto request = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    BOOST_REQUIRE(::write(fd, request.data(), request.size())
                  == static_cast<ssize_t>(request.size()));
    std::string answer;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
      answer.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return answer.substr(0, answer.find("\r\n"));
  };
  BOOST_TEST(raw("PUT", "/plain/") == "HTTP/1.1 201 Created");
  BOOST_TEST(raw("PUT", "/plain/instances/n1/") == "HTTP/1.1 201 Created");
  BOOST_TEST(raw("POST", "/plain/instances/n1/restart/") == "HTTP/1.1 200 OK");
  BOOST_TEST(raw("DELETE", "/plain/instances/n1/") == "HTTP/1.1 200 OK");
  BOOST_TEST(raw("PATCH", "/plain/") == "HTTP/1.1 405 Method Not Allowed");
  auto c = b.client();
  BOOST_TEST(call(c, "GET", "/plain/instances/n1/").status == 404);
}

BOOST_AUTO_TEST_CASE(kafka_secrets_never_go_on_the_command_line) {
  // A secret given as --kafka-property, a config file with a secret that
  // others may read, an unknown property or section: refused at start as
  // a bad flag (exit 2).
  temp_dir dir;
  auto root = (dir.path / "root").string();
  auto loose = dir.path / "loose.toml";
  std::ofstream{loose} << "[kafka]\nsasl.password = \"s3cr3t-value\"\n";
  std::filesystem::permissions(loose, std::filesystem::perms(0644));
  auto odd = dir.path / "odd.toml";
  std::ofstream{odd} << "[kafkaa]\nsecurity.protocol = \"SSL\"\n";
  for (auto& [args, says] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
         {{"--kafka-property", "sasl.password=s3cr3t-value"},
          "never goes on the command line"},
         {{"--config", loose.string()}, "chmod 600"},
         {{"--kafka-property", "no.such.property=1"}, "no.such.property"},
         {{"--config", odd.string()}, "unknown section"}}) {
    args.insert(args.begin(), {CYME_BRANCH_PROGRAM, "--root", root});
    auto r = run_program(args);
    BOOST_TEST(r.code == 2, args.back());
    BOOST_TEST(r.err.find(says) != std::string::npos, r.err);
    BOOST_TEST(r.err.find("s3cr3t-value") == std::string::npos, r.err);
  }
  BOOST_TEST(!std::filesystem::exists(dir.path / "root" / "model.db"));
}

BOOST_AUTO_TEST_CASE(bad_log_flags_are_refused_with_exit_2) {
  // A log level or format, or a worker log rotation, that is not allowed:
  // exit 2 naming the flag, before anything starts. (--interval 0, refused
  // later, keeps a flag wrongly let through from starting a branch.)
  temp_dir dir;
  expect_flags_refused(dir.path / "root", {
         {{"--log-level", "verbose"}, "--log-level"},
         {{"--log-level", "INFO"}, "--log-level"},
         {{"--log-format", "xml"}, "--log-format"},
         {{"--worker-log-backups", "0"}, "--worker-log-backups"},
         {{"--worker-log-backups", "-1"}, "--worker-log-backups"},
         {{"--worker-log-max-bytes", "100"}, "--worker-log-max-bytes"},
         {{"--worker-log-max-bytes", "-3"}, "--worker-log-max-bytes"},
         {{"--worker-log-max-bytes", "lots"}, "--worker-log-max-bytes"}});
  BOOST_TEST(!std::filesystem::exists(dir.path / "root" / "model.db"));
}

BOOST_AUTO_TEST_CASE(bad_standby_worker_counts_are_refused_with_exit_2) {
  temp_dir dir;
  expect_flags_refused(dir.path / "root", {
         {{"--standby-workers", "65"}, "--standby-workers"},
         {{"--standby-workers", "-1"}, "--standby-workers"},
         {{"--standby-workers", "some"}, "--standby-workers"}});
  BOOST_TEST(!std::filesystem::exists(dir.path / "root" / "model.db"));
}

BOOST_AUTO_TEST_CASE(bad_bus_suspicion_flags_are_refused_with_exit_2) {
  // A threshold outside (0, 1], a minimum of misses below 1 or not a
  // number, a rate that is not one: exit 2 naming the flag, before
  // anything starts. Good values pass on to the next check (--interval 0).
  // --help lists the three flags.
  temp_dir dir;
  expect_flags_refused(dir.path / "root", {
         {{"--bus-suspect-threshold", "0"}, "--bus-suspect-threshold"},
         {{"--bus-suspect-threshold", "1.5"}, "--bus-suspect-threshold"},
         {{"--bus-suspect-threshold", "-0.2"}, "--bus-suspect-threshold"},
         {{"--bus-suspect-threshold", "most"}, "--bus-suspect-threshold"},
         {{"--bus-suspect-min-misses", "0"}, "--bus-suspect-min-misses"},
         {{"--bus-suspect-min-misses", "-4"}, "--bus-suspect-min-misses"},
         {{"--bus-suspect-restart-rate", "fast"}, "--bus-suspect-restart-rate"},
         {{"--bus-suspect-restart-rate", "0/m"}, "--bus-suspect-restart-rate"},
         {{"--bus-suspect-threshold", "0.8", "--bus-suspect-min-misses", "3",
           "--bus-suspect-restart-rate", "2/s"},
          "--interval"}});
  BOOST_TEST(!std::filesystem::exists(dir.path / "root" / "model.db"));
  auto help = run_program({CYME_BRANCH_PROGRAM, "--help"});
  BOOST_TEST(help.code == 0);
  for (auto flag : {"--bus-suspect-threshold", "--bus-suspect-min-misses",
                    "--bus-suspect-restart-rate"})
    BOOST_TEST(help.out.find(flag) != std::string::npos, flag);
  // The defaults it shows for the supervisor's rules are the supervisor's
  // own (supervisor_settings), not copies.
  supervisor_settings defaults;
  auto seconds = [](caf::timespan t) {
    std::ostringstream out;
    out << std::chrono::duration<double>(t).count();
    return out.str();
  };
  for (auto shown : {"--interval FLOAT=" + seconds(defaults.interval),
                     "--restart-max-rate TEXT=" + defaults.restart_max_rate,
                     "--wait-after-broker-revived FLOAT="
                       + seconds(defaults.wait_after_broker_revived)})
    BOOST_TEST(help.out.find(shown) != std::string::npos, shown);
}

BOOST_AUTO_TEST_CASE(worker_logs_rotate_as_the_branch_flags_say) {
  // --worker-log-max-bytes and --worker-log-backups reach every instance's
  // log writer: a chatty process instance leaves worker.log and two
  // backups, none over 4 KiB, holding its newest lines in order.
  temp_dir dir;
  branch b{dir.path / "root",
           {"--allow-program", CYME_TEST_SLEEPER, "--worker-log-max-bytes",
            "4096", "--worker-log-backups", "2"}};
  auto c = b.client();
  auto put = call(c, "PUT", "/chat/instances/talker/",
                  {{"kind", "process"},
                   {"program", CYME_TEST_SLEEPER},
                   {"args", {"--name", "talker", "--lines", "2000"}}});
  BOOST_TEST_REQUIRE(put.status == 201, put.body.dump());
  auto folder = dir.path / "root" / "instances" / "talker";
  auto files = [&] {
    std::vector<std::filesystem::path> out;
    for (auto name : {"worker.log.2", "worker.log.1", "worker.log"})
      if (std::filesystem::exists(folder / name))
        out.push_back(folder / name);
    return out;
  };
  auto numbers = [&] {
    std::vector<long> out;
    for (auto& f : files()) {
      std::istringstream in{slurp_file(f)};
      for (std::string line; std::getline(in, line);)
        if (line.rfind("line ", 0) == 0)
          out.push_back(std::stol(line.substr(5)));
    }
    return out;
  };
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto n = numbers();
      return !n.empty() && n.back() == 2000;
    },
    20s));
  auto n = numbers();
  for (size_t i = 1; i < n.size(); ++i)
    BOOST_REQUIRE_EQUAL(n[i], n[i - 1] + 1);
  BOOST_TEST(n.size() > 200u);
  BOOST_TEST(files().size() == 3u);
  BOOST_TEST(!std::filesystem::exists(folder / "worker.log.3"));
  for (auto& f : files())
    BOOST_TEST(std::filesystem::file_size(f) <= 4096u, f);
}

BOOST_AUTO_TEST_CASE(json_log_format_gives_one_object_per_line) {
  // With --log-format json each line of the branch's log is a JSON object
  // with its time, level, component and message, a message with quotes and
  // backslashes (a root folder named so) included; --log-level debug adds
  // the end of every round. librdkafka's own lines ('%...') are its own.
  temp_dir dir;
  auto root = dir.path / "quote\"back\\slash";
  std::string log;
  {
    branch b{root, {"--log-format", "json", "--log-level", "debug"}};
    auto c = b.client();
    BOOST_TEST(call(c, "POST", "/supervisor/pause/").status == 200);
    BOOST_TEST(call(c, "POST", "/supervisor/resume/").status == 200);
    BOOST_TEST(wait_until(
      [&] {
        auto text = b.log();
        return text.find("paused: by operator") != std::string::npos
               && text.find("round finished") != std::string::npos;
      },
      20s));
    BOOST_TEST(WIFEXITED(b.stop(SIGTERM)));
    log = b.log();
  }
  std::istringstream in{log};
  std::set<std::string> levels;
  bool serving = false;
  bool paused = false;
  int objects = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("%", 0) == 0)
      continue;
    auto j = json::parse(line, nullptr, false);
    BOOST_REQUIRE_MESSAGE(j.is_object(), "not a JSON object: " << line);
    ++objects;
    BOOST_TEST(j.size() == 4u, line);
    for (auto key : {"time", "level", "component", "message"})
      BOOST_REQUIRE_MESSAGE(j.contains(key) && j[key].is_string(), line);
    auto time = j["time"].get<std::string>();
    BOOST_TEST(time.size() == 24u, time);
    BOOST_TEST(time.back() == 'Z', time);
    levels.insert(j["level"].get<std::string>());
    auto message = j["message"].get<std::string>();
    if (message.find("serving http://127.0.0.1:") != std::string::npos) {
      serving = j["component"] == "branch" && j["level"] == "info"
                && message.find("(root " + root.string() + ",")
                     != std::string::npos;
    }
    if (message == "supervisor: paused: by operator")
      paused = j["component"] == "branch";
  }
  BOOST_TEST(objects > 3);
  BOOST_TEST(serving);
  BOOST_TEST(paused);
  BOOST_TEST(levels.count("debug") == 1u);
  for (auto& level : levels)
    BOOST_TEST((level == "debug" || level == "info" || level == "warn"
                || level == "error"),
               level);
}

BOOST_AUTO_TEST_SUITE_END()

// Against the SASL_PLAINTEXT listener deploy/test.sh starts beside the real
// broker's PLAINTEXT one (CYME_TEST_KAFKA_SASL, _USER, _PASSWORD_FILE); run
// by the integration-real-kafka test only.
BOOST_AUTO_TEST_SUITE(kafka_security)

namespace {

struct sasl_listener {
  std::string address;
  std::string user;
  std::string password;
};

sasl_listener sasl_from_env() {
  sasl_listener out;
  auto get = [](const char* name) {
    auto* v = std::getenv(name);
    return std::string{v ? v : ""};
  };
  out.address = get("CYME_TEST_KAFKA_SASL");
  out.user = get("CYME_TEST_KAFKA_SASL_USER");
  std::ifstream in{get("CYME_TEST_KAFKA_SASL_PASSWORD_FILE")};
  std::getline(in, out.password);
  if (out.address.empty() || out.user.empty() || out.password.empty())
    throw std::runtime_error("CYME_TEST_KAFKA_SASL, CYME_TEST_KAFKA_SASL_USER "
                             "and CYME_TEST_KAFKA_SASL_PASSWORD_FILE must name "
                             "a SASL listener (deploy/test.sh starts one)");
  return out;
}

/// A branch config file (mode 0600) with the SASL client settings.
std::string sasl_config(const std::filesystem::path& path,
                        const sasl_listener& l, const std::string& password) {
  {
    std::ofstream out{path};
    out << "[kafka]\nsecurity.protocol = \"SASL_PLAINTEXT\"\n"
        << "sasl.mechanism = \"PLAIN\"\nsasl.username = \"" << l.user
        << "\"\nsasl.password = \"" << password << "\"\n";
  }
  std::filesystem::permissions(path, std::filesystem::perms(0600));
  return path.string();
}

} // namespace

BOOST_AUTO_TEST_CASE(a_fleet_works_on_a_sasl_broker_and_the_password_stays_secret) {
  // With the right password the tour's core works (a worker consumes and
  // answers, a task comes back); the password is in the worker's 0600
  // kafka.properties only: not on any command line, not in any log.
  auto l = sasl_from_env();
  temp_dir dir;
  auto cfg = sasl_config(dir.path / "branch.toml", l, l.password);
  branch b{dir.path / "root", {"--kafka", l.address, "--config", cfg}, "sasl-ok"};
  auto c = b.client();
  auto put = call(c, "PUT", "/secure/instances/s1/", {{"queues", {"secure-orders"}}});
  BOOST_TEST_REQUIRE(put.status == 201, put.body.dump());
  BOOST_TEST(put.body["state"] == "running", put.body.dump());
  auto pid = put.body["pid"].get<int>();
  auto sent = call(c, "POST", "/secure/queue/secure-orders/",
                   {{"handler", "echo"}, {"args", {{"n", 7}}}});
  BOOST_TEST_REQUIRE(sent.status == 202, sent.body.dump());
  auto id = sent.body["id"].get<std::string>();
  auto result = call(c, "GET", "/secure/query/" + id + "/wait/?timeout=60");
  BOOST_TEST(result.body["state"] == "SUCCESS", result.body.dump());
  BOOST_TEST(result.body["instance"] == "s1");
  auto folder = dir.path / "root" / "instances" / "s1";
  auto props = folder / "kafka.properties";
  BOOST_TEST(static_cast<unsigned>(std::filesystem::status(props).permissions()
                                   & std::filesystem::perms::all)
             == 0600u);
  BOOST_TEST(slurp_file(props).find("sasl.password=" + l.password)
             != std::string::npos);
  auto args = command_line(pid);
  BOOST_TEST((std::find(args.begin(), args.end(), props.string()) != args.end()));
  for (auto& a : args)
    BOOST_TEST(a.find(l.password) == std::string::npos, a);
  BOOST_TEST(b.log().find(l.password) == std::string::npos);
  BOOST_TEST(slurp_file(folder / "worker.log").find(l.password)
             == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_wrong_password_is_a_clear_error_and_nothing_restarts) {
  // With a wrong password the branch says so in its log and its status,
  // pauses, and starts or restarts nothing while it cannot authenticate.
  auto l = sasl_from_env();
  temp_dir dir;
  auto cfg = sasl_config(dir.path / "branch.toml", l, "not-" + l.password);
  branch b{dir.path / "root", {"--kafka", l.address, "--config", cfg}, "sasl-bad"};
  auto c = b.client();
  json status;
  BOOST_TEST_REQUIRE(wait_until([&] {
    status = call(c, "GET", "/supervisor/").body;
    return status["paused"] == true && !status["broker_errors"].empty();
  }, 30s), status.dump());
  auto why = status["broker_errors"].begin()->get<std::string>();
  BOOST_TEST(why.find("Authentication failed") != std::string::npos, why);
  BOOST_TEST(b.log().find("Authentication failed") != std::string::npos);
  BOOST_TEST(b.log().find(l.password) == std::string::npos);
  auto put = call(c, "PUT", "/secure/instances/s2/");
  BOOST_TEST(put.status == 201, put.body.dump());
  BOOST_TEST(put.body["outcome"]["outcome"] == "paused", put.body.dump());
  // Rounds run every 2 s: several pass, and none starts it.
  BOOST_TEST(!wait_until([&] {
    auto s2 = call(c, "GET", "/secure/instances/s2/").body;
    return s2["pid"].get<int>() != 0 || s2["restarts"].get<int>() != 0;
  }, 8s));
  BOOST_TEST(processes_named(dir.path / "root", "s2") == 0);
}

BOOST_AUTO_TEST_CASE(an_apps_own_broker_takes_its_own_kafka_properties) {
  // A branch on the embedded cluster runs an app on the SASL listener with
  // that broker's properties from the model: its worker answers and its
  // task comes back; the views mask the password. A wrong password set
  // later reconnects the broker's clients and is reported as its error.
  auto l = sasl_from_env();
  temp_dir dir;
  branch b{dir.path / "root", {}, "sasl-app"};
  auto c = b.client();
  json props{{"security.protocol", "SASL_PLAINTEXT"},
             {"sasl.mechanism", "PLAIN"},
             {"sasl.username", l.user},
             {"sasl.password", l.password}};
  auto app = call(c, "PUT", "/far/", {{"broker", l.address}, {"kafka", props}});
  BOOST_TEST_REQUIRE(app.status == 201, app.body.dump());
  BOOST_TEST(app.body["kafka"]["sasl.password"] == "(secret)");
  BOOST_TEST(app.body["kafka"]["sasl.username"] == l.user);
  BOOST_TEST(app.body.dump().find(l.password) == std::string::npos);
  auto put = call(c, "PUT", "/far/instances/f1/", {{"queues", {"far-orders"}}});
  BOOST_TEST_REQUIRE(put.status == 201, put.body.dump());
  BOOST_TEST(put.body["state"] == "running", put.body.dump());
  auto sent = call(c, "POST", "/far/queue/far-orders/", {{"handler", "echo"}, {"args", 3}});
  BOOST_TEST_REQUIRE(sent.status == 202, sent.body.dump());
  auto r = call(c, "GET", "/far/query/" + sent.body["id"].get<std::string>()
                            + "/wait/?timeout=60");
  BOOST_TEST(r.body["state"] == "SUCCESS", r.body.dump());
  BOOST_TEST(r.body["instance"] == "f1");
  auto bad = props;
  bad["sasl.password"] = "not-" + l.password;
  BOOST_TEST_REQUIRE(call(c, "PUT", "/far/", {{"kafka", bad}}).status == 200);
  // The next command on that broker goes through a relay made again.
  call(c, "POST", "/far/instances/f1/restart/");
  json status;
  BOOST_TEST(wait_until([&] {
    status = call(c, "GET", "/supervisor/").body;
    auto e = status["broker_errors"].find(l.address);
    return e != status["broker_errors"].end()
           && e->get<std::string>().find("Authentication failed")
                != std::string::npos;
  }, 30s), status.dump());
  BOOST_TEST(b.log().find(l.password) == std::string::npos);
  BOOST_TEST(call(c, "PUT", "/far/", {{"kafka", props}}).status == 200);
}

BOOST_AUTO_TEST_SUITE_END()

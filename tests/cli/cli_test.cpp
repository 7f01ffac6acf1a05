/// The `cyme` CLI against a fake branch: an in-process httplib::Server on
/// loopback that records every request and answers canned JSON. The real
/// `cyme` binary runs as a child process (posix_spawn, no shell), so these
/// tests check what a user or script sees: the request sent (method, path,
/// query, JSON body), stdout, stderr and the exit code. The fake is tooling
/// for the client only; the real branch has tests of its own.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cyme_version.h"

extern char** environ;

using namespace std::chrono_literals;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

namespace {

using clock_type = std::chrono::steady_clock;

/// Longest a single `cyme` run may take before the test gives up on it.
constexpr auto run_deadline = 30s;

// -- the fake branch ---------------------------------------------------------

/// One request as the fake branch received it.
struct recorded_request {
  std::string method;
  std::string path;
  std::multimap<std::string, std::string> params;
  std::string body;
  std::string content_type;
  std::string authorization;
};

/// A canned answer.
struct canned_answer {
  int status = 200;
  std::string body;
};

/// An HTTP server on 127.0.0.1 and an ephemeral port that records every
/// request and answers from a table keyed by "METHOD /path/".
class fake_branch {
public:
  fake_branch() {
    auto handler = [this](const httplib::Request& req,
                          httplib::Response& res) { serve(req, res); };
    server_.Get(".*", handler);
    server_.Put(".*", handler);
    server_.Post(".*", handler);
    server_.Delete(".*", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0)
      throw std::runtime_error("fake branch: cannot bind 127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    auto deadline = clock_type::now() + 10s;
    while (!server_.is_running()) {
      if (clock_type::now() > deadline) {
        server_.stop();
        thread_.join();
        throw std::runtime_error("fake branch: server did not start");
      }
      std::this_thread::yield();
    }
  }

  ~fake_branch() {
    release();
    server_.stop();
    thread_.join();
  }

  fake_branch(const fake_branch&) = delete;
  fake_branch& operator=(const fake_branch&) = delete;

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }

  /// Answers `method path` with `status` and `body` from now on.
  void answer(const std::string& method, const std::string& path, int status,
              std::string body) {
    std::lock_guard<std::mutex> guard{mtx_};
    answers_[method + " " + path] = canned_answer{status, std::move(body)};
  }

  /// Holds every answer until `release()` (or a 30 s safety deadline), to
  /// play a branch that takes too long.
  void hold_answers() {
    std::lock_guard<std::mutex> guard{mtx_};
    holding_ = true;
  }

  void release() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      holding_ = false;
    }
    released_.notify_all();
  }

  std::vector<recorded_request> requests() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return requests_;
  }

private:
  void serve(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock<std::mutex> guard{mtx_};
    recorded_request r;
    r.method = req.method;
    r.path = req.path;
    for (auto& [k, v] : req.params)
      r.params.emplace(k, v);
    r.body = req.body;
    r.content_type = req.get_header_value("Content-Type");
    r.authorization = req.get_header_value("Authorization");
    requests_.push_back(r);
    released_.wait_for(guard, 30s, [this] { return !holding_; });
    auto i = answers_.find(req.method + " " + req.path);
    if (i == answers_.end()) {
      res.status = 404;
      res.set_content(json{{"error", "fake branch: no answer for "
                                       + req.method + " " + req.path}}
                        .dump(),
                      "application/json");
      return;
    }
    res.status = i->second.status;
    res.set_content(i->second.body, "application/json");
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mtx_;
  std::condition_variable released_;
  bool holding_ = false;
  std::map<std::string, canned_answer> answers_;
  std::vector<recorded_request> requests_;
};

// -- running the cyme binary -------------------------------------------------

/// What one run of `cyme` did.
struct cli_run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const cli_run& r) {
  return os << "exit " << r.exit_code << ", stdout [" << r.out
            << "], stderr [" << r.err << "]";
}

/// Runs `program` with `args` (no shell) and the test's environment minus
/// CYME_BRANCH and CYME_TOKEN, plus `env` ("NAME=value"). Captures stdout
/// and stderr; fails the test if it runs past `run_deadline`.
cli_run run_program(const char* program, const std::vector<std::string>& args,
                    const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv_store{program};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry{*e};
    if (entry.rfind("CYME_BRANCH=", 0) != 0
        && entry.rfind("CYME_TOKEN=", 0) != 0)
      env_store.push_back(entry);
  }
  env_store.insert(env_store.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_store)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  BOOST_REQUIRE(pipe2(out_pipe, O_CLOEXEC) == 0);
  BOOST_REQUIRE(pipe2(err_pipe, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program, &actions, nullptr, argv.data(),
                       envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    BOOST_FAIL("posix_spawn " << program << ": " << std::strerror(rc));
  }

  cli_run run;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&run.out, &run.err};
  int open_fds = 2;
  auto deadline = clock_type::now() + run_deadline;
  bool timed_out = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock_type::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0)
        continue;
      char buf[4096];
      auto got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0)
      close(f.fd);
  if (timed_out)
    kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    BOOST_FAIL(program << " did not finish within the deadline: " << run);
  if (WIFEXITED(status))
    run.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    run.exit_code = 128 + WTERMSIG(status);
  return run;
}

/// Runs the `cyme` binary (see run_program).
cli_run run_cyme(const std::vector<std::string>& args,
                 const std::vector<std::string>& env = {}) {
  return run_program(CYME_CLI, args, env);
}

/// A loopback port with a socket bound to it but not listening: connecting
/// is refused for as long as this object lives, with no race against other
/// programs taking the port.
class dead_port {
public:
  dead_port() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    BOOST_REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr)
                  == 0);
    socklen_t len = sizeof addr;
    BOOST_REQUIRE(
      getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~dead_port() {
    close(fd_);
  }
  dead_port(const dead_port&) = delete;
  dead_port& operator=(const dead_port&) = delete;

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }

private:
  int fd_ = -1;
  int port_ = 0;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in{line};
  for (std::string w; in >> w;)
    words.push_back(w);
  return words;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const char* instance_w1 = R"({"name": "w1", "branch": "alpha", "app": "demo",
  "queues": ["q1", "q2"], "max_concurrency": 4, "min_concurrency": 1,
  "is_enabled": true, "broker": "", "state": "running", "pid": 1234,
  "restarts": 0, "consuming_from": ["dq.w1", "q1", "q2"], "concurrency": 2,
  "autoscale": {"max": 4, "min": 1}, "disabled_reason": "",
  "supervised": true})";

const char* instance_w2 = R"({"name": "worker-two", "branch": "beta", "app": "demo",
  "queues": [], "max_concurrency": 1, "min_concurrency": 1,
  "is_enabled": false, "broker": "", "state": "disabled", "pid": 0,
  "restarts": 7, "consuming_from": [], "concurrency": 0,
  "autoscale": {"max": 1, "min": 1}, "disabled_reason": "too many restarts",
  "supervised": true})";

/// A fake branch and a way to run `cyme` against it.
struct branch_fixture {
  fake_branch branch;

  /// Runs `cyme --branch <fake> args...`.
  cli_run cyme(std::vector<std::string> args,
               const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--branch", branch.url()});
    return run_cyme(args, env);
  }

  /// The only request the fake received; fails the test if there was not
  /// exactly one.
  recorded_request only_request() {
    auto all = branch.requests();
    BOOST_REQUIRE_EQUAL(all.size(), 1u);
    return all.front();
  }
};

/// Checks that `r` is `method path` with a JSON body equal to `body`.
void check_json_request(const recorded_request& r, const std::string& method,
                        const std::string& path, const json& body) {
  BOOST_TEST(r.method == method);
  BOOST_TEST(r.path == path);
  BOOST_TEST(r.content_type == "application/json");
  auto sent = json::parse(r.body, nullptr, false);
  BOOST_TEST(sent == body, "sent " << r.body << ", expected " << body);
}

} // namespace

// -- apps --------------------------------------------------------------------

BOOST_FIXTURE_TEST_SUITE(apps, branch_fixture)

BOOST_AUTO_TEST_CASE(apps_without_a_subcommand_lists_one_app_per_row) {
  // `cyme apps` is GET / and shows the names under an APP header.
  branch.answer("GET", "/", 200, R"(["demo", "other"])");
  auto run = cyme({"apps"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "APP\ndemo\nother\n");
  auto r = only_request();
  BOOST_TEST(r.method == "GET");
  BOOST_TEST(r.path == "/");
  BOOST_TEST(r.body.empty());
}

BOOST_AUTO_TEST_CASE(apps_add_puts_the_broker_in_a_json_body) {
  // The broker travels as JSON, and the created app prints as key: value.
  branch.answer("PUT", "/demo/", 201,
                R"({"name": "demo", "broker": "k1:9092"})");
  auto run = cyme({"apps", "add", "demo", "--broker", "k1:9092"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "name: demo\nbroker: k1:9092\n");
  check_json_request(only_request(), "PUT", "/demo/",
                     json{{"broker", "k1:9092"}});
}

BOOST_AUTO_TEST_CASE(apps_add_without_a_broker_sends_an_empty_object) {
  // PUT always carries a JSON object, so the branch never guesses a format.
  branch.answer("PUT", "/demo/", 200, R"({"name": "demo", "broker": ""})");
  auto run = cyme({"apps", "add", "demo"});
  BOOST_TEST(run.exit_code == 0, run);
  check_json_request(only_request(), "PUT", "/demo/", json::object());
}

BOOST_AUTO_TEST_CASE(apps_show_and_delete_use_the_app_path) {
  // show is GET /<app>/, delete is DELETE /<app>/.
  branch.answer("GET", "/demo/", 200, R"({"name": "demo", "broker": ""})");
  branch.answer("DELETE", "/demo/", 200, R"({"ok": true})");
  auto show = cyme({"apps", "show", "demo"});
  BOOST_TEST(show.exit_code == 0, show);
  BOOST_TEST(show.out == "name: demo\nbroker:\n");
  auto del = cyme({"apps", "delete", "demo"});
  BOOST_TEST(del.exit_code == 0, del);
  BOOST_TEST(del.out == "ok: true\n");
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  BOOST_TEST(all[0].method == "GET");
  BOOST_TEST(all[0].path == "/demo/");
  BOOST_TEST(all[1].method == "DELETE");
  BOOST_TEST(all[1].path == "/demo/");
}

BOOST_AUTO_TEST_CASE(json_flag_prints_the_answer_as_sent_pretty) {
  // --json keeps the server's key order and pretty-prints with 2 spaces.
  const char* answer = R"({"name":"demo","broker":"k:1","extra":[1,2]})";
  branch.answer("GET", "/demo/", 200, answer);
  auto run = cyme({"--json", "apps", "show", "demo"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == ordered_json::parse(answer).dump(2) + "\n");
  BOOST_TEST(run.out.rfind("{\n  \"name\": \"demo\",", 0) == 0u, run);
}

BOOST_AUTO_TEST_CASE(global_options_may_follow_the_command) {
  // --json and --branch are accepted after the command, where people
  // usually add them.
  branch.answer("GET", "/", 200, R"(["demo"])");
  auto run = run_cyme({"apps", "--json", "--branch", branch.url()});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "[\n  \"demo\"\n]\n");
}

BOOST_AUTO_TEST_SUITE_END()

// -- instances ---------------------------------------------------------------

BOOST_FIXTURE_TEST_SUITE(instances, branch_fixture)

BOOST_AUTO_TEST_CASE(instances_list_prints_an_aligned_row_per_instance) {
  // GET /<app>/instances/; columns NAME BRANCH STATE PID RESTARTS QUEUES
  // CONCURRENCY ENABLED, aligned, with "-" for no pid and no queues.
  branch.answer("GET", "/demo/instances/", 200,
                std::string{"["} + instance_w1 + "," + instance_w2 + "]");
  auto run = cyme({"instances", "list", "demo"});
  BOOST_TEST(run.exit_code == 0, run);
  auto lines = lines_of(run.out);
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  BOOST_TEST(words_of(lines[0])
               == (std::vector<std::string>{"NAME", "BRANCH", "STATE", "PID",
                                            "RESTARTS", "QUEUES",
                                            "CONCURRENCY", "ENABLED"}),
             boost::test_tools::per_element());
  BOOST_TEST(words_of(lines[1])
               == (std::vector<std::string>{"w1", "alpha", "running", "1234",
                                            "0",
                                            "q1,q2", "2", "(1-4)", "yes"}),
             boost::test_tools::per_element());
  BOOST_TEST(words_of(lines[2])
               == (std::vector<std::string>{"worker-two", "beta", "disabled",
                                            "-",
                                            "7", "-", "0", "(1-1)", "no"}),
             boost::test_tools::per_element());
  // Aligned: every column starts at the same offset on every line.
  BOOST_TEST(lines[1].find("running") == lines[0].find("STATE"));
  BOOST_TEST(lines[2].find("disabled") == lines[0].find("STATE"));
  BOOST_TEST(lines[1].find("yes") == lines[0].find("ENABLED"));
  auto r = only_request();
  BOOST_TEST(r.method == "GET");
  BOOST_TEST(r.path == "/demo/instances/");
}

BOOST_AUTO_TEST_CASE(instances_add_with_a_name_puts_the_spec) {
  // Named add is PUT /<app>/instances/<name>/ with the spec as JSON and
  // nowait as ?nowait=1; the instance prints as key: value lines.
  branch.answer("PUT", "/demo/instances/w1/", 201, instance_w1);
  auto run = cyme({"instances", "add", "demo", "w1", "--queues", "q1,q2",
                   "--max", "4", "--min", "1", "--broker", "k:9092",
                   "--nowait"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(contains(run.out, "name: w1\n"), run);
  BOOST_TEST(contains(run.out, "queues: q1,q2\n"), run);
  BOOST_TEST(contains(run.out, "autoscale: {\"max\":4,\"min\":1}\n"), run);
  auto r = only_request();
  check_json_request(r, "PUT", "/demo/instances/w1/",
                     json{{"queues", {"q1", "q2"}},
                          {"max_concurrency", 4},
                          {"min_concurrency", 1},
                          {"broker", "k:9092"}});
  BOOST_TEST(r.params.count("nowait") == 1u);
  BOOST_TEST(r.params.find("nowait")->second == "1");
}

BOOST_AUTO_TEST_CASE(instances_add_without_a_name_posts_to_the_collection) {
  // Anonymous add is POST /<app>/instances/; the branch picks the name.
  branch.answer("POST", "/demo/instances/", 201,
                R"({"name": "6f1c2a9e-3b4d", "app": "demo",
                    "state": "starting"})");
  auto run = cyme({"instances", "add", "demo", "--max", "2"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(contains(run.out, "name: 6f1c2a9e-3b4d\n"), run);
  auto r = only_request();
  check_json_request(r, "POST", "/demo/instances/",
                     json{{"max_concurrency", 2}});
  BOOST_TEST(r.params.empty());
}

BOOST_AUTO_TEST_CASE(instances_add_sends_what_the_instance_runs) {
  // --program, --arg (repeatable, in order), --env K=V (repeatable),
  // --cwd, --stop-signal, --stop-grace and --kind become the launch fields;
  // --inherit sends a field as null.
  branch.answer("PUT", "/demo/instances/web/", 201, instance_w1);
  auto run = cyme({"instances", "add", "demo", "web", "--program",
                   "/usr/bin/python3", "--arg", "-m", "--arg", "http.server",
                   "--arg=--bind", "--env", "A=1", "--env", "B=x=y", "--cwd",
                   "/srv", "--stop-signal", "INT", "--stop-grace", "2.5",
                   "--kind", "process", "--inherit", "stop_signal"});
  BOOST_TEST(run.exit_code == 0, run);
  check_json_request(only_request(), "PUT", "/demo/instances/web/",
                     json{{"program", "/usr/bin/python3"},
                          {"args", {"-m", "http.server", "--bind"}},
                          {"env", {{"A", "1"}, {"B", "x=y"}}},
                          {"cwd", "/srv"},
                          {"stop_signal", "INT"},
                          {"stop_grace_s", 2.5},
                          {"kind", "process"}});
}

BOOST_AUTO_TEST_CASE(apps_add_sends_the_launch_its_instances_inherit) {
  // The same launch options on an app set its instances' defaults.
  branch.answer("PUT", "/demo/", 200, R"({"name": "demo"})");
  auto run = cyme({"apps", "add", "demo", "--program", "/opt/w/bin/worker",
                   "--arg=--verbose", "--inherit", "cwd"});
  BOOST_TEST(run.exit_code == 0, run);
  check_json_request(only_request(), "PUT", "/demo/",
                     json{{"program", "/opt/w/bin/worker"},
                          {"args", {"--verbose"}},
                          {"cwd", nullptr}});
}

BOOST_AUTO_TEST_CASE(a_name_after_queues_stays_the_instance_name) {
  // --queues takes one comma list per occurrence (repeatable), so a NAME
  // following it is not swallowed as another queue.
  branch.answer("PUT", "/demo/instances/w1/", 200, instance_w1);
  auto run = cyme({"instances", "add", "demo", "--queues", "q1,q2",
                   "--queues", "q3", "w1"});
  BOOST_TEST(run.exit_code == 0, run);
  check_json_request(only_request(), "PUT", "/demo/instances/w1/",
                     json{{"queues", {"q1", "q2", "q3"}}});
}

BOOST_AUTO_TEST_CASE(instances_show_and_delete_use_the_instance_path) {
  // show is GET, delete is DELETE with nowait in the query (no body).
  branch.answer("GET", "/demo/instances/w1/", 200, instance_w1);
  branch.answer("DELETE", "/demo/instances/w1/", 200,
                R"({"ok": true, "name": "w1", "outcome": "stopped"})");
  auto show = cyme({"instances", "show", "demo", "w1"});
  BOOST_TEST(show.exit_code == 0, show);
  BOOST_TEST(contains(show.out, "state: running\npid: 1234\n"), show);
  auto del = cyme({"instances", "delete", "demo", "w1", "--nowait"});
  BOOST_TEST(del.exit_code == 0, del);
  BOOST_TEST(del.out == "ok: true\nname: w1\noutcome: stopped\n");
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  BOOST_TEST(all[0].method == "GET");
  BOOST_TEST(all[0].path == "/demo/instances/w1/");
  BOOST_TEST(all[1].method == "DELETE");
  BOOST_TEST(all[1].path == "/demo/instances/w1/");
  BOOST_TEST(all[1].params.count("nowait") == 1u);
  BOOST_TEST(all[1].body.empty());
}

BOOST_AUTO_TEST_CASE(instance_actions_post_to_their_action_paths) {
  // restart, enable and disable are POSTs to .../<action>/; disable sends
  // its reason in the body.
  branch.answer("POST", "/demo/instances/w1/restart/", 200,
                R"({"name": "w1", "outcome": "restarted", "detail": ""})");
  branch.answer("POST", "/demo/instances/w1/enable/", 200, instance_w1);
  branch.answer("POST", "/demo/instances/w1/disable/", 200, instance_w2);
  auto restart = cyme({"instances", "restart", "demo", "w1"});
  BOOST_TEST(restart.exit_code == 0, restart);
  BOOST_TEST(restart.out == "name: w1\noutcome: restarted\ndetail:\n");
  auto enable = cyme({"instances", "enable", "demo", "w1"});
  BOOST_TEST(enable.exit_code == 0, enable);
  auto disable = cyme(
    {"instances", "disable", "demo", "w1", "--reason", "too slow"});
  BOOST_TEST(disable.exit_code == 0, disable);
  BOOST_TEST(contains(disable.out, "disabled_reason: too many restarts\n"));
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  check_json_request(all[0], "POST", "/demo/instances/w1/restart/",
                     json::object());
  check_json_request(all[1], "POST", "/demo/instances/w1/enable/",
                     json::object());
  check_json_request(all[2], "POST", "/demo/instances/w1/disable/",
                     json{{"reason", "too slow"}});
}

BOOST_AUTO_TEST_CASE(instances_stats_gets_the_live_stats) {
  // GET .../stats/; nested objects print as compact JSON on their line.
  branch.answer("GET", "/demo/instances/w1/stats/", 200,
                R"({"pid": 123, "uptime_ms": 5000, "queues": ["dq.w1", "q1"],
                    "tasks": {"done": 10, "failed": 1}})");
  auto run = cyme({"instances", "stats", "demo", "w1"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out
             == "pid: 123\nuptime_ms: 5000\nqueues: dq.w1,q1\n"
                "tasks: {\"done\":10,\"failed\":1}\n");
  auto r = only_request();
  BOOST_TEST(r.method == "GET");
  BOOST_TEST(r.path == "/demo/instances/w1/stats/");
}

BOOST_AUTO_TEST_CASE(autoscale_reads_without_bounds_and_writes_with_them) {
  // No --max/--min: GET. With either: POST of only the bounds given.
  branch.answer("GET", "/demo/instances/w1/autoscale/", 200,
                R"({"max": 4, "min": 1})");
  branch.answer("POST", "/demo/instances/w1/autoscale/", 200, instance_w1);
  auto get = cyme({"instances", "autoscale", "demo", "w1"});
  BOOST_TEST(get.exit_code == 0, get);
  BOOST_TEST(get.out == "max: 4\nmin: 1\n");
  auto set_max = cyme({"instances", "autoscale", "demo", "w1", "--max", "8"});
  BOOST_TEST(set_max.exit_code == 0, set_max);
  auto set_both = cyme(
    {"instances", "autoscale", "demo", "w1", "--max", "8", "--min", "2"});
  BOOST_TEST(set_both.exit_code == 0, set_both);
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  BOOST_TEST(all[0].method == "GET");
  BOOST_TEST(all[0].path == "/demo/instances/w1/autoscale/");
  BOOST_TEST(all[0].body.empty());
  check_json_request(all[1], "POST", "/demo/instances/w1/autoscale/",
                     json{{"max", 8}});
  check_json_request(all[2], "POST", "/demo/instances/w1/autoscale/",
                     json{{"max", 8}, {"min", 2}});
}

BOOST_AUTO_TEST_CASE(instances_list_json_is_the_answer_as_sent) {
  // --json on a list prints the array, not the table.
  auto answer = std::string{"["} + instance_w1 + "]";
  branch.answer("GET", "/demo/instances/", 200, answer);
  auto run = cyme({"instances", "list", "demo", "--json"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == ordered_json::parse(answer).dump(2) + "\n");
}

BOOST_AUTO_TEST_SUITE_END()

// -- queues and consumers ----------------------------------------------------

BOOST_FIXTURE_TEST_SUITE(queues, branch_fixture)

BOOST_AUTO_TEST_CASE(queues_commands_use_the_queue_paths) {
  // list GET /<app>/queues/, add PUT, show GET, delete DELETE
  // /<app>/queues/<name>/.
  branch.answer("GET", "/demo/queues/", 200, R"(["q1", "q2"])");
  branch.answer("PUT", "/demo/queues/q1/", 201,
                R"({"name": "q1", "app": "demo"})");
  branch.answer("GET", "/demo/queues/q1/", 200,
                R"({"name": "q1", "app": "demo", "consumers": ["w1", "w2"]})");
  branch.answer("DELETE", "/demo/queues/q1/", 200, R"({"ok": true})");
  auto list = cyme({"queues", "list", "demo"});
  BOOST_TEST(list.exit_code == 0, list);
  BOOST_TEST(list.out == "QUEUE\nq1\nq2\n");
  auto add = cyme({"queues", "add", "demo", "q1"});
  BOOST_TEST(add.exit_code == 0, add);
  BOOST_TEST(add.out == "name: q1\napp: demo\n");
  auto show = cyme({"queues", "show", "demo", "q1"});
  BOOST_TEST(show.exit_code == 0, show);
  BOOST_TEST(show.out == "name: q1\napp: demo\nconsumers: w1,w2\n");
  auto del = cyme({"queues", "delete", "demo", "q1"});
  BOOST_TEST(del.exit_code == 0, del);
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 4u);
  BOOST_TEST(all[0].method == "GET");
  BOOST_TEST(all[0].path == "/demo/queues/");
  check_json_request(all[1], "PUT", "/demo/queues/q1/", json::object());
  BOOST_TEST(all[2].method == "GET");
  BOOST_TEST(all[2].path == "/demo/queues/q1/");
  BOOST_TEST(all[3].method == "DELETE");
  BOOST_TEST(all[3].path == "/demo/queues/q1/");
}

BOOST_AUTO_TEST_CASE(consumers_add_and_cancel_use_the_instance_queue_path) {
  // add is PUT, cancel is DELETE /<app>/instances/<name>/queues/<queue>/.
  branch.answer("PUT", "/demo/instances/w1/queues/q3/", 200, instance_w1);
  branch.answer("DELETE", "/demo/instances/w1/queues/q3/", 200, instance_w1);
  auto add = cyme({"consumers", "add", "demo", "w1", "q3"});
  BOOST_TEST(add.exit_code == 0, add);
  BOOST_TEST(contains(add.out, "consuming_from: dq.w1,q1,q2\n"), add);
  auto cancel = cyme({"consumers", "cancel", "demo", "w1", "q3", "--nowait"});
  BOOST_TEST(cancel.exit_code == 0, cancel);
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  check_json_request(all[0], "PUT", "/demo/instances/w1/queues/q3/",
                     json::object());
  BOOST_TEST(all[1].method == "DELETE");
  BOOST_TEST(all[1].path == "/demo/instances/w1/queues/q3/");
  BOOST_TEST(all[1].params.count("nowait") == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

// -- tasks -------------------------------------------------------------------

BOOST_FIXTURE_TEST_SUITE(tasks, branch_fixture)

BOOST_AUTO_TEST_CASE(tasks_send_posts_handler_and_args_and_prints_the_id) {
  // POST /<app>/queue/<queue>/ with handler and parsed args; stdout is the
  // task id alone, ready for $(...).
  branch.answer("POST", "/demo/queue/q1/", 202, R"({"id": "6f1c-42"})");
  auto run = cyme({"tasks", "send", "demo", "q1", "--handler", "exec",
                   "--args", R"({"argv": ["true"], "n": 1.5})"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "6f1c-42\n");
  check_json_request(only_request(), "POST", "/demo/queue/q1/",
                     json{{"handler", "exec"},
                          {"args", {{"argv", {"true"}}, {"n", 1.5}}}});
}

namespace {

/// A file of `text` that is removed when it goes.
struct text_file {
  std::string path;
  explicit text_file(const std::string& text) {
    char name[] = "/tmp/cyme-cli-tasks-XXXXXX";
    int fd = ::mkstemp(name);
    if (fd < 0)
      throw std::runtime_error("mkstemp failed");
    path = name;
    auto n = ::write(fd, text.data(), text.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size()))
      throw std::runtime_error("short write");
  }
  ~text_file() {
    ::unlink(path.c_str());
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(tasks_send_from_a_file_posts_one_batch_and_prints_the_ids) {
  // --from FILE: one JSON object per line (blank lines skipped) go as one
  // JSON array; the ids come back one per line, in order.
  text_file tasks{"{\"handler\": \"echo\", \"args\": [1]}\n\n{\"args\": \"two\"}\n"};
  branch.answer("POST", "/demo/queue/q1/", 202, R"({"ids": ["a-1", "b-2"]})");
  auto run = cyme({"tasks", "send", "demo", "q1", "--from", tasks.path});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "a-1\nb-2\n");
  check_json_request(only_request(), "POST", "/demo/queue/q1/",
                     json::array({json{{"handler", "echo"}, {"args", {1}}},
                                  json{{"args", "two"}}}));
}

BOOST_AUTO_TEST_CASE(a_bad_tasks_file_exits_2_naming_its_line_and_sends_nothing) {
  struct bad_file {
    std::string text;
    std::string says;
  };
  const std::vector<bad_file> cases{
    {"{\"args\": 1}\n{args: 2}\n", ", line 2: not a JSON object"},
    {"{\"args\": 1}\n{\"colour\": 1}\n", ", line 2: unknown field 'colour'"},
    {"{\"handler\": \"\"}\n", ", line 1: 'handler' must hold 1 to 64"},
    {"\n\n", "holds no task"},
  };
  for (auto& c : cases) {
    text_file f{c.text};
    auto run = cyme({"tasks", "send", "demo", "q1", "--from", f.path});
    BOOST_TEST(run.exit_code == 2, run);
    BOOST_TEST(contains(run.err, c.says), run);
  }
  std::string many;
  for (int i = 0; i < 10001; ++i)
    many += "{\"args\": " + std::to_string(i) + "}\n";
  text_file big{many};
  auto run = cyme({"tasks", "send", "demo", "q1", "--from", big.path});
  BOOST_TEST(run.exit_code == 2, run);
  BOOST_TEST(contains(run.err, "more than 10000 tasks"), run);
  auto missing = cyme({"tasks", "send", "demo", "q1", "--from", "/nonexistent/t"});
  BOOST_TEST(missing.exit_code == 2, missing);
  BOOST_TEST(contains(missing.err, "cannot read /nonexistent/t"), missing);
  // --from excludes --args and --handler.
  text_file ok{"{\"args\": 1}\n"};
  auto both = cyme({"tasks", "send", "demo", "q1", "--from", ok.path, "--args", "1"});
  BOOST_TEST(both.exit_code == 2, both);
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(tasks_send_json_prints_the_whole_answer) {
  // With --json the answer object is printed, not just the id.
  branch.answer("POST", "/demo/queue/q1/", 202, R"({"id": "6f1c-42"})");
  auto run = cyme({"--json", "tasks", "send", "demo", "q1"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "{\n  \"id\": \"6f1c-42\"\n}\n");
  check_json_request(only_request(), "POST", "/demo/queue/q1/",
                     json::object());
}

BOOST_AUTO_TEST_CASE(a_pending_task_is_not_an_error_for_state_and_result) {
  // state and result of a PENDING task exit 0 and print the state.
  branch.answer("GET", "/demo/query/t1/state/", 200,
                R"({"id": "t1", "state": "PENDING"})");
  branch.answer("GET", "/demo/query/t1/result/", 200,
                R"({"id": "t1", "state": "PENDING", "result": null,
                    "error": null, "instance": null})");
  auto state = cyme({"tasks", "state", "demo", "t1"});
  BOOST_TEST(state.exit_code == 0, state);
  BOOST_TEST(state.out == "id: t1\nstate: PENDING\n");
  auto result = cyme({"tasks", "result", "demo", "t1"});
  BOOST_TEST(result.exit_code == 0, result);
  BOOST_TEST(contains(result.out, "state: PENDING\n"), result);
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  BOOST_TEST(all[0].path == "/demo/query/t1/state/");
  BOOST_TEST(all[1].path == "/demo/query/t1/result/");
}

BOOST_AUTO_TEST_CASE(tasks_wait_sends_its_timeout_and_prints_the_result) {
  // wait is GET .../wait/?timeout=S; a done task prints state and result.
  branch.answer("GET", "/demo/query/t1/wait/", 200,
                R"({"id": "t1", "state": "SUCCESS", "result": {"x": 1},
                    "error": null, "instance": "w1"})");
  auto run = cyme({"tasks", "wait", "demo", "t1", "--timeout", "5"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out
             == "id: t1\nstate: SUCCESS\nresult: {\"x\":1}\nerror:\n"
                "instance: w1\n");
  auto r = only_request();
  BOOST_TEST(r.method == "GET");
  BOOST_TEST(r.path == "/demo/query/t1/wait/");
  BOOST_TEST(r.params.count("timeout") == 1u);
  BOOST_TEST(r.params.find("timeout")->second == "5");
}

BOOST_AUTO_TEST_CASE(tasks_wait_exits_4_when_the_task_is_still_pending) {
  // A 504 from wait is "still PENDING": exit 4, the state on stdout, a
  // sentence on stderr.
  branch.answer("GET", "/demo/query/t1/wait/", 504,
                R"({"id": "t1", "state": "PENDING"})");
  auto run = cyme({"tasks", "wait", "demo", "t1"});
  BOOST_TEST(run.exit_code == 4, run);
  BOOST_TEST(run.out == "id: t1\nstate: PENDING\n");
  BOOST_TEST(run.err == "cyme: task t1 is still PENDING; the wait timed out\n");
  BOOST_TEST(only_request().params.empty()); // no --timeout: branch default
}

BOOST_AUTO_TEST_CASE(task_ids_follow_the_branch_length_limit) {
  // Task ids may be up to 128 characters (longer than names, as ids from
  // other producers may be); a longer one is a usage error, sent nowhere.
  std::string id_128(128, 'a');
  branch.answer("GET", "/demo/query/" + id_128 + "/state/", 200,
                json{{"id", id_128}, {"state", "SUCCESS"}}.dump());
  auto ok = cyme({"tasks", "state", "demo", id_128});
  BOOST_TEST(ok.exit_code == 0, ok);
  auto too_long = cyme({"tasks", "state", "demo", id_128 + "a"});
  BOOST_TEST(too_long.exit_code == 2, too_long);
  BOOST_TEST(contains(too_long.err, "longer than 128"), too_long);
  BOOST_TEST(branch.requests().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_504_outside_tasks_wait_is_a_branch_failure) {
  // Only wait gives 504 the "pending" meaning; elsewhere it is exit 3.
  branch.answer("GET", "/demo/query/t1/result/", 504,
                R"({"error": "gateway timeout"})");
  auto run = cyme({"tasks", "result", "demo", "t1"});
  BOOST_TEST(run.exit_code == 3, run);
}

BOOST_AUTO_TEST_SUITE_END()

// -- supervisor --------------------------------------------------------------

BOOST_FIXTURE_TEST_SUITE(supervisor, branch_fixture)

BOOST_AUTO_TEST_CASE(supervisor_status_pause_and_resume) {
  // status is GET /supervisor/; pause and resume POST to their paths.
  const char* status = R"({"paused": false, "paused_by_operator": false,
    "brokers_down": [], "interval_s": 60, "rounds_completed": 12,
    "instances": 3})";
  const char* paused = R"({"paused": true, "paused_by_operator": true})";
  branch.answer("GET", "/supervisor/", 200, status);
  branch.answer("POST", "/supervisor/pause/", 200, paused);
  branch.answer("POST", "/supervisor/resume/", 200, status);
  auto s = cyme({"supervisor", "status"});
  BOOST_TEST(s.exit_code == 0, s);
  BOOST_TEST(s.out
             == "paused: false\npaused_by_operator: false\nbrokers_down:\n"
                "interval_s: 60\nrounds_completed: 12\ninstances: 3\n");
  auto p = cyme({"supervisor", "pause"});
  BOOST_TEST(p.exit_code == 0, p);
  BOOST_TEST(p.out == "paused: true\npaused_by_operator: true\n");
  auto r = cyme({"supervisor", "resume"});
  BOOST_TEST(r.exit_code == 0, r);
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  BOOST_TEST(all[0].method == "GET");
  BOOST_TEST(all[0].path == "/supervisor/");
  check_json_request(all[1], "POST", "/supervisor/pause/", json::object());
  check_json_request(all[2], "POST", "/supervisor/resume/", json::object());
}

BOOST_AUTO_TEST_SUITE_END()

// -- exit codes and configuration -------------------------------------------

BOOST_FIXTURE_TEST_SUITE(exit_codes, branch_fixture)

BOOST_AUTO_TEST_CASE(a_branch_error_exits_1_with_its_text) {
  // A 4xx prints the branch's `error` as "cyme: <text>" and nothing on
  // stdout.
  branch.answer("GET", "/demo/instances/nope/", 404, R"({"error": "x"})");
  auto run = cyme({"instances", "show", "demo", "nope"});
  BOOST_TEST(run.exit_code == 1, run);
  BOOST_TEST(run.err == "cyme: x\n");
  BOOST_TEST(run.out.empty());
}

BOOST_AUTO_TEST_CASE(a_conflict_exits_1_even_with_json) {
  // --json does not turn an error into output: exit 1, stdout empty.
  branch.answer("DELETE", "/demo/", 409,
                R"({"error": "app 'demo' still has 2 instances"})");
  auto run = cyme({"--json", "apps", "delete", "demo"});
  BOOST_TEST(run.exit_code == 1, run);
  BOOST_TEST(run.err == "cyme: app 'demo' still has 2 instances\n");
  BOOST_TEST(run.out.empty());
}

BOOST_AUTO_TEST_CASE(a_bad_flag_exits_2_and_sends_nothing) {
  // Unknown flags, missing arguments, bad numbers and a missing command
  // are usage errors.
  for (auto args : std::vector<std::vector<std::string>>{
         {"apps", "--nope"},
         {"instances", "list"},
         {"instances"},
         {},
         {"instances", "add", "demo", "--max", "zero"},
         {"instances", "add", "demo", "--max", "0"},
         {"instances", "add", "demo", "--env", "NOVALUE"},
         {"instances", "add", "demo", "--env", "=x"},
         {"instances", "add", "demo", "--stop-signal", "KILL"},
         {"instances", "add", "demo", "--stop-grace", "-1"},
         {"instances", "add", "demo", "--kind", "daemon"},
         {"apps", "add", "demo", "--inherit", "queues"},
         {"tasks", "wait", "demo", "t1", "--timeout", "301"},
         {"--timeout", "0", "apps"},
         {"frobnicate"}}) {
    auto run = cyme(args);
    BOOST_TEST(run.exit_code == 2, run);
    BOOST_TEST(run.err.rfind("cyme: ", 0) == 0u, run);
  }
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(bad_names_exit_2_and_send_nothing) {
  // Names are checked with the branch's rule before they enter a URL path,
  // and the reserved app name `supervisor` is refused.
  for (auto args : std::vector<std::vector<std::string>>{
         {"apps", "show", "../x"},
         {"apps", "add", "supervisor"},
         {"instances", "show", "demo", "../x"},
         {"instances", "add", "demo", "a/b"},
         {"instances", "add", "demo", "--queues", "q1,../q"},
         {"queues", "add", "demo", "a b"},
         {"consumers", "add", "demo", "w1", "%2e%2e"},
         {"tasks", "state", "demo", "../../etc"},
         {"apps", "add", "demo", "--broker", "no-port"}}) {
    auto run = cyme(args);
    BOOST_TEST(run.exit_code == 2, run);
  }
  auto run = cyme({"apps", "show", "../x"});
  BOOST_TEST(contains(run.err, "app name '../x'"), run);
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(bad_args_json_exits_2_and_sends_nothing) {
  // --args must parse as JSON; the message says so.
  auto run = cyme({"tasks", "send", "demo", "q1", "--args", "{x: 1}"});
  BOOST_TEST(run.exit_code == 2, run);
  BOOST_TEST(contains(run.err, "--args: not valid JSON"), run);
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(max_below_min_exits_2_and_sends_nothing) {
  // Bounds the branch would refuse are refused before sending.
  auto add = cyme({"instances", "add", "demo", "w1", "--max", "1", "--min",
                   "3"});
  BOOST_TEST(add.exit_code == 2, add);
  BOOST_TEST(contains(add.err, "--max (1) is less than --min (3)"), add);
  auto scale = cyme({"instances", "autoscale", "demo", "w1", "--max", "1",
                     "--min", "2"});
  BOOST_TEST(scale.exit_code == 2, scale);
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(a_malformed_branch_url_exits_2) {
  // Only http://HOST[:PORT][/] is a branch address; anything else is a
  // usage error with a clear message, from the flag or the environment.
  for (auto url : {"ftp://h:1", "http://", "http://h:0", "http://h:99999",
                   "http://h:", "http://h/x", "https://h/x", "https://",
                   "127.0.0.1:8000", "http://u@h:1", "https://u@h:1",
                   "http://h h:1", "http://h:1?x=1"}) {
    auto run = run_cyme({"--branch", url, "apps"});
    BOOST_TEST(run.exit_code == 2, url << ": " << run);
    BOOST_TEST(contains(run.err, "branch URL"), url << ": " << run);
  }
  auto env = run_cyme({"apps"}, {"CYME_BRANCH=http://h/path"});
  BOOST_TEST(env.exit_code == 2, env);
  BOOST_TEST(contains(env.err, "http://h/path"), env);
}

BOOST_AUTO_TEST_CASE(an_unreachable_branch_exits_3) {
  // Nothing listening: exit 3 and a sentence naming the address.
  dead_port port;
  auto run = run_cyme({"--branch", port.url(), "apps"});
  BOOST_TEST(run.exit_code == 3, run);
  BOOST_TEST(contains(run.err, "cyme: cannot reach the branch at "
                                 + port.url()),
             run);
  BOOST_TEST(run.out.empty());
}

BOOST_AUTO_TEST_CASE(an_https_branch_url_speaks_tls_and_checks_the_certificate) {
  // https:// makes the CLI speak TLS: to a branch serving plain HTTP the
  // handshake fails (exit 3, saying so) and the fake sees no request.
  // --http-ca must name a file and goes with https:// only (exit 2).
  auto https = "https://127.0.0.1:" + branch.url().substr(branch.url().rfind(':') + 1);
  auto run = run_cyme({"--branch", https, "apps"});
  BOOST_TEST(run.exit_code == 3, run);
  BOOST_TEST(contains(run.err, "cannot reach the branch at " + https), run);
  BOOST_TEST(contains(run.err, "TLS handshake failed"), run);
  auto missing = run_cyme({"--branch", https, "--http-ca", "/nonexistent/ca.pem", "apps"});
  BOOST_TEST(missing.exit_code == 2, missing);
  BOOST_TEST(contains(missing.err, "/nonexistent/ca.pem"), missing);
  auto env = run_cyme({"--branch", https, "apps"}, {"CYME_HTTP_CA=/nonexistent/ca.pem"});
  BOOST_TEST(env.exit_code == 2, env);
  auto mixed = cyme({"--http-ca", "/etc/passwd", "apps"});
  BOOST_TEST(mixed.exit_code == 2, mixed);
  BOOST_TEST(contains(mixed.err, "--http-ca is for an https:// branch"), mixed);
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(a_server_error_exits_3_with_its_text) {
  // A 503 (supervisor, broker or worker did not answer) is exit 3 and its
  // error text is shown with the status.
  branch.answer("GET", "/demo/instances/w1/stats/", 503,
                R"({"error": "instance w1 did not answer"})");
  auto run = cyme({"instances", "stats", "demo", "w1"});
  BOOST_TEST(run.exit_code == 3, run);
  BOOST_TEST(contains(run.err, "cyme: instance w1 did not answer (HTTP 503"),
             run);
  BOOST_TEST(run.out.empty());
}

BOOST_AUTO_TEST_CASE(a_slow_branch_times_out_with_exit_3) {
  // --timeout bounds the wait for an answer: a branch holding it longer
  // is exit 3, and the CLI does not hang.
  branch.answer("GET", "/", 200, R"([])");
  branch.hold_answers();
  auto started = clock_type::now();
  auto run = cyme({"--timeout", "1", "apps"});
  auto took = clock_type::now() - started;
  branch.release();
  BOOST_TEST(run.exit_code == 3, run);
  BOOST_TEST(contains(run.err, "timed out after 1 s"), run);
  auto took_ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  BOOST_TEST(took_ms < 10000);
  BOOST_TEST(branch.requests().size() == 1u);
}

BOOST_AUTO_TEST_CASE(help_exits_0_and_lists_the_exit_codes) {
  // --help works at every level, sends nothing, and documents exit codes.
  for (auto args : std::vector<std::vector<std::string>>{
         {"--help"}, {"instances", "--help"}, {"tasks", "wait", "--help"}}) {
    auto run = run_cyme(args);
    BOOST_TEST(run.exit_code == 0, run);
    BOOST_TEST(contains(run.out, "Usage: cyme"), run);
    BOOST_TEST(contains(run.out, "Exit codes:"), run);
    BOOST_TEST(contains(run.out, "4  tasks wait timed out"), run);
  }
  BOOST_TEST(contains(run_cyme({"tasks", "wait", "--help"}).out, "--timeout"));
  BOOST_TEST(contains(run_cyme({"instances", "--help"}).out, "autoscale"));
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(cyme_branch_environment_is_honoured) {
  // Without --branch, CYME_BRANCH says where the branch is; --branch wins
  // over it.
  branch.answer("GET", "/", 200, R"(["demo"])");
  auto from_env = run_cyme({"apps"}, {"CYME_BRANCH=" + branch.url() + "/"});
  BOOST_TEST(from_env.exit_code == 0, from_env);
  BOOST_TEST(from_env.out == "APP\ndemo\n");
  dead_port port;
  auto flag_wins = run_cyme({"--branch", branch.url(), "apps"},
                            {"CYME_BRANCH=" + port.url()});
  BOOST_TEST(flag_wins.exit_code == 0, flag_wins);
  BOOST_TEST(branch.requests().size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_token_is_sent_as_a_bearer_authorization) {
  // --token or CYME_TOKEN becomes "Authorization: Bearer TOKEN"; without
  // one no Authorization header is sent.
  branch.answer("GET", "/", 200, R"([])");
  BOOST_TEST(cyme({"apps"}).exit_code == 0);
  BOOST_TEST(cyme({"--token", "s3cret", "apps"}).exit_code == 0);
  BOOST_TEST(cyme({"apps"}, {"CYME_TOKEN=from-env"}).exit_code == 0);
  auto all = branch.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  BOOST_TEST(all[0].authorization.empty());
  BOOST_TEST(all[1].authorization == "Bearer s3cret");
  BOOST_TEST(all[2].authorization == "Bearer from-env");
}

BOOST_AUTO_TEST_SUITE_END()

// -- events and logs ------------------------------------------------------------

BOOST_FIXTURE_TEST_SUITE(watching, branch_fixture)

BOOST_AUTO_TEST_CASE(events_asks_for_the_kept_events_and_prints_one_line_each) {
  // `cyme events --app shop` is GET /events/?since=0&follow=0&app=shop; each
  // Server-Sent Event becomes one line (its JSON with --json); -f follows.
  branch.answer("GET", "/events/", 200,
                ": cyme events\nretry: 2000\n\n"
                "id: 1\ndata: {\"id\":1,\"time\":\"2026-11-30T10:00:00.000Z\","
                "\"branch\":\"b1\",\"app\":\"shop\",\"instance\":\"w1\","
                "\"kind\":\"died\",\"detail\":\"pid 7\",\"data\":{}}\n\n"
                "id: 2\ndata: {\"id\":2,\"time\":\"2026-11-30T10:00:01.000Z\","
                "\"branch\":\"b1\",\"app\":\"\",\"instance\":\"\","
                "\"kind\":\"paused\",\"detail\":\"by operator\",\"data\":{}}\n\n");
  auto run = cyme({"events", "--app", "shop"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out
             == "2026-11-30T10:00:00.000Z  b1  shop/w1  died  pid 7\n"
                "2026-11-30T10:00:01.000Z  b1  supervisor  paused  by operator\n");
  auto r = only_request();
  BOOST_TEST(r.path == "/events/");
  BOOST_TEST(r.params.find("since")->second == "0");
  BOOST_TEST(r.params.find("follow")->second == "0");
  BOOST_TEST(r.params.find("app")->second == "shop");
  auto as_json = cyme({"--json", "events", "-f", "--instance", "w1"});
  BOOST_TEST(as_json.exit_code == 0, as_json);
  BOOST_TEST(as_json.out.rfind("{\"id\":1,", 0) == 0);
  auto followed = branch.requests().back();
  BOOST_TEST(followed.params.find("follow")->second == "1");
  BOOST_TEST(followed.params.find("instance")->second == "w1");
}

BOOST_AUTO_TEST_CASE(bad_event_filters_are_refused_before_anything_is_sent) {
  // A bad name is a usage error (exit 2) and nothing reaches the branch.
  BOOST_TEST(cyme({"events", "--app", "no such app"}).exit_code == 2);
  BOOST_TEST(cyme({"instances", "logs", "shop", "w1", "-n", "0"}).exit_code == 2);
  BOOST_TEST(cyme({"instances", "logs", "shop", "w1", "-n", "20000"}).exit_code == 2);
  BOOST_TEST(branch.requests().empty());
}

BOOST_AUTO_TEST_CASE(instances_logs_prints_the_log_as_it_comes) {
  // `cyme instances logs shop w1 -n 5 -f` is GET
  // /shop/instances/w1/logs/?tail=5&follow=1, printed as sent; an error
  // answer is an error.
  branch.answer("GET", "/shop/instances/w1/logs/", 200, "line 1\nline 2\n");
  auto run = cyme({"instances", "logs", "shop", "w1", "-n", "5", "-f"});
  BOOST_TEST(run.exit_code == 0, run);
  BOOST_TEST(run.out == "line 1\nline 2\n");
  auto r = only_request();
  BOOST_TEST(r.params.find("tail")->second == "5");
  BOOST_TEST(r.params.find("follow")->second == "1");
  branch.answer("GET", "/shop/instances/w9/logs/", 404,
                R"({"error": "no instance 'w9' in app 'shop'"})");
  auto missing = cyme({"instances", "logs", "shop", "w9"});
  BOOST_TEST(missing.exit_code == 1, missing);
  BOOST_TEST(missing.err.find("no instance 'w9'") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// The programs the project builds, each answering --version and --help.
constexpr const char* every_program[] = {
  CYME_CLI,         CYME_BRANCH_PROGRAM,         CYME_WORKER_PROGRAM,
  CYME_LOG_PROGRAM, CYME_EMBEDDED_KAFKA_PROGRAM, CYME_EXPLORE_PROGRAM,
  CYME_SCENARIO_PROGRAM};

} // namespace

BOOST_AUTO_TEST_SUITE(versions)

BOOST_AUTO_TEST_CASE(every_program_answers_version_with_the_version_and_revision) {
  // `--version` prints "<program> <version> (git <revision>)" and exits 0
  // without doing anything else; the version is the project's, the
  // revision the source tree's (a git hash, "-dirty" with changes).
  const std::regex revision{"[0-9a-f]{12}(-dirty)?|unknown"};
  BOOST_TEST(std::regex_match(std::string{CYME_REVISION}, revision), CYME_REVISION);
  for (auto* program : every_program) {
    auto name = std::string{program}.substr(std::string{program}.rfind('/') + 1);
    auto r = run_program(program, {"--version"});
    BOOST_TEST(r.exit_code == 0, name << ": " << r);
    BOOST_TEST(r.out == name + " " + CYME_PROJECT_VERSION + " (git " + CYME_REVISION
                          + ")\n",
               name << ": " << r);
    BOOST_TEST(r.err.empty(), name << ": " << r);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(documented_flags)

namespace {

/// The long flags (--name) in `text`, once each.
std::set<std::string> long_flags(const std::string& text) {
  static const std::regex flag{"--[a-z][a-z0-9-]*"};
  std::set<std::string> out;
  for (std::sregex_iterator i{text.begin(), text.end(), flag}, end; i != end; ++i)
    out.insert(i->str());
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(every_program_answers_help_on_stdout) {
  // `--help` prints the usage and the options on stdout and exits 0: the
  // manual pages (help2man) are made from it.
  for (auto* program : every_program) {
    auto name = std::string{program}.substr(std::string{program}.rfind('/') + 1);
    auto r = run_program(program, {"--help"});
    BOOST_TEST(r.exit_code == 0, name << ": " << r);
    BOOST_TEST(r.out.find(name) != std::string::npos, name << ": " << r);
    BOOST_TEST(long_flags(r.out).count("--version") == 1, name << ": " << r);
    BOOST_TEST(r.err.empty(), name << ": " << r);
  }
}

BOOST_AUTO_TEST_CASE(the_readme_lists_exactly_the_flags_of_cyme_branch_help) {
  // The README's list of cyme-branch's flags (from "`cyme-branch --help`
  // lists its flags:" to "A bad flag exits 2") names every flag --help
  // shows and no other (--help and --version aside).
  std::ifstream in{CYME_README};
  std::string readme{std::istreambuf_iterator<char>{in}, {}};
  const std::string start = "`cyme-branch --help` lists its flags:";
  auto from = readme.find(start);
  BOOST_TEST_REQUIRE(from != std::string::npos, "the README has no flag list");
  auto to = readme.find("A bad flag exits 2", from);
  BOOST_TEST_REQUIRE(to != std::string::npos);
  auto listed = long_flags(readme.substr(from + start.size(), to - from - start.size()));
  auto r = run_program(CYME_BRANCH_PROGRAM, {"--help"});
  BOOST_TEST_REQUIRE(r.exit_code == 0, r);
  std::set<std::string> shown;
  std::istringstream lines{r.out};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("  -", 0) == 0) // an option's line, not its description
      for (auto& f : long_flags(line.substr(0, line.find("  ", 2))))
        shown.insert(f);
  shown.erase("--help");
  shown.erase("--version");
  BOOST_TEST(shown.size() > 30u);
  for (auto& f : shown)
    BOOST_TEST(listed.count(f) == 1, f << " is in --help but not in the README's list");
  for (auto& f : listed)
    BOOST_TEST(shown.count(f) == 1, f << " is in the README's list but not in --help");
}

BOOST_AUTO_TEST_SUITE_END()

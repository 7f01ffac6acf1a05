// Real cyme-worker processes supervised over the embedded Kafka cluster:
// repair after kill -9, consumers and concurrency made to match the model,
// tasks done exactly once (at least once across a crash), broker outages,
// graceful shutdown, and bad control messages that change nothing.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include <caf/event_based_actor.hpp>
#include <nlohmann/json.hpp>

#include "messages/adoption.hpp"
#include "messages/wire.hpp"
#include "messages/wall_clock.hpp"
#include "stack.hpp"
#include "transport/proc.hpp"
#include "transport/task_results.hpp"

using namespace cyme;
using namespace cyme::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using names = std::vector<std::string>;
namespace fs = std::filesystem;

namespace {

/// The pids of the standbys of `s` that said they are on the bus, in order.
std::vector<int32_t> standbys_on_the_bus(stack& s) {
  std::vector<int32_t> out;
  std::ifstream in{s.driver_settings.root / ".standby" / "standby.log"};
  std::string marker = "standby on the bus, pid ";
  for (std::string line; std::getline(in, line);)
    if (auto at = line.find(marker); at != std::string::npos)
      out.push_back(std::stoi(line.substr(at + marker.size())));
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> xs) {
  std::sort(xs.begin(), xs.end());
  return xs;
}

/// Starts instances through an explicit verify and waits until each
/// answers ping.
void start_all(stack& s, const names& ns) {
  auto reports = s.verify(ns);
  for (auto& r : reports)
    BOOST_TEST_REQUIRE((r.result == outcome::started
                        || r.result == outcome::restarted
                        || r.result == outcome::verified),
                       r.instance << ": " << to_string(r.result) << " "
                                  << r.detail);
  for (auto& n : ns)
    BOOST_TEST_REQUIRE(wait_until([&] { return s.pings(n); }, 10s), n);
}

/// A cyme-worker started as a standby by hand: its stdin one end of a
/// socket pair whose other end this holds, its output in `log`. One `left`
/// by its branch is started the way a driver starts it (placeholders for
/// its instance in its environment) and is not this process's child (as
/// when its branch died): its pid is known once it is on the bus.
struct hand_started_standby {
  pid_t pid = 0;
  int socket = -1;
  fs::path log;
  bool left = false;

  hand_started_standby(const stack& s, fs::path log_file, bool left_by_branch = false)
    : log(std::move(log_file)), left(left_by_branch) {
    int ends[2];
    BOOST_TEST_REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
                                    ends) == 0);
    socket = ends[0];
    std::vector<std::string> args{CYME_WORKER_PROGRAM, "--standby", "--app",
                                  "demo", "--broker", s.bootstrap(),
                                  "--control-fetch-wait-ms", "5"};
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e)
      env.emplace_back(*e);
    if (left) {
      args.insert(args.begin(), {"/usr/bin/setsid", "--fork"});
      auto placeholder = standby_placeholder();
      env.push_back("CYME_INSTANCE=" + placeholder);
      env.push_back("CYME_INSTANCE_DIR="
                    + (s.driver_settings.root / placeholder).string());
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, ends[1], 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int err = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(),
                            envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(ends[1]);
    BOOST_TEST_REQUIRE(err == 0);
    if (left) {
      // setsid forks the standby and exits: init is its parent.
      ::waitpid(pid, nullptr, 0);
      pid = 0;
    }
  }

  ~hand_started_standby() {
    if (socket >= 0)
      ::close(socket);
    if (pid > 0 && ::kill(pid, SIGKILL) == 0 && !left)
      ::waitpid(pid, nullptr, 0);
  }

  std::string output() const {
    std::ifstream in{log};
    return std::string{std::istreambuf_iterator<char>{in}, {}};
  }

  /// Whether it said it is on the bus; a left one's pid is known then.
  bool on_the_bus() {
    const std::string marker = "standby on the bus, pid ";
    auto text = output();
    auto at = text.find(marker);
    if (at == std::string::npos)
      return false;
    if (left)
      pid = std::stoi(text.substr(at + marker.size()));
    return true;
  }

  /// Sends `text`, with a descriptor of /dev/null beside it unless
  /// `with_fd` is false.
  void send(const std::string& text, bool with_fd = true) {
    int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    BOOST_TEST(send_with_descriptor(socket, text, with_fd ? fd : -1) == "");
    ::close(fd);
  }

  /// Its exit status once it ended, or -1 when it still runs after 10 s.
  int exit_status() {
    int status = 0;
    bool ended = wait_until(
      [&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s);
    if (!ended)
      return -1;
    pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(fleet)

BOOST_AUTO_TEST_CASE(killed_worker_is_replaced_and_answers) {
  // kill -9 of a worker: the driver sees the death, a new process starts
  // and answers ping. How fast is measured by bench/run.sh restart, not
  // here.
  stack s;
  s.put("w1", {"q1"});
  start_all(s, {"w1"});
  auto old_pid = s.pid_of("w1");
  BOOST_TEST_REQUIRE(old_pid > 0);
  ::kill(old_pid, SIGKILL);
  BOOST_TEST(wait_until(
    [&] {
      auto pid = s.pid_of("w1");
      return pid > 0 && pid != old_pid && s.pings("w1", 200ms);
    },
    10s));
  BOOST_TEST(s.events(event_kind::died, "w1") == 1u);
  BOOST_TEST(wait_until([&] { return s.status("w1").restarts == 1; }, 5s));
}

BOOST_AUTO_TEST_CASE(a_replacement_is_the_standby_already_on_the_bus) {
  // With a standby kept ready, kill -9 of a worker is repaired with the
  // standby: the instance's new pid is the standby's, it answers as the
  // instance, writes to the instance's log from its folder, names the
  // instance in its environment (so a later driver trusts it), and a new
  // standby gets ready. Closing the driver ends the standby.
  stack s{test_settings(), CYME_WORKER_PROGRAM, 500ms, 1};
  s.put("w1", {"q1"});
  start_all(s, {"w1"});
  auto ready_pids = [&] { return standbys_on_the_bus(s); };
  BOOST_TEST_REQUIRE(wait_until([&] { return ready_pids().size() == 1; }, 10s));
  auto standby = ready_pids().front();
  auto old_pid = s.pid_of("w1");
  BOOST_TEST_REQUIRE(standby != old_pid);
  ::kill(old_pid, SIGKILL);
  BOOST_TEST_REQUIRE(wait_until(
    [&] { return s.pid_of("w1") == standby && s.pings("w1", 200ms); }, 10s));
  BOOST_TEST(s.stats("w1").pid == standby);
  BOOST_TEST(sorted(s.stats("w1").queues) == sorted({direct_queue("w1"), "q1"}));
  auto dir = s.driver_settings.root / "w1";
  BOOST_TEST(fs::read_symlink("/proc/" + std::to_string(standby) + "/cwd") == dir);
  BOOST_TEST(has_argument_pair(standby, "--name", "w1"), "ps shows w1");
  BOOST_TEST(has_argument_pair(standby, "--instance-dir", dir.string()));
  auto env = environment_of(standby);
  BOOST_TEST((std::find(env.begin(), env.end(), "CYME_INSTANCE=w1") != env.end()));
  BOOST_TEST((std::find(env.begin(), env.end(),
                        "CYME_INSTANCE_DIR=" + dir.string())
              != env.end()));
  BOOST_TEST(wait_until(
    [&] {
      std::ifstream in{dir / "worker.log"};
      std::string text{std::istreambuf_iterator<char>{in}, {}};
      return text.find("ready, pid " + std::to_string(standby))
             != std::string::npos;
    },
    5s));
  BOOST_TEST(wait_until([&] { return ready_pids().size() == 2; }, 10s));
  // A driver of a restarted branch trusts the adopted standby as w1's.
  auto spawned = spawn_process_driver(s.sys, s.driver_settings);
  BOOST_TEST_REQUIRE(spawned.engaged());
  auto later = *spawned;
  s.self->request(later, 10s, alive_atom::value, std::string{"w1"})
    .receive([&](int32_t pid) { BOOST_TEST(pid == standby); },
             [&](caf::error& err) { BOOST_FAIL(to_string(err)); });
  s.self->send_exit(later, caf::exit_reason::user_shutdown);
  // Closing the driver ends the new standby.
  auto second = ready_pids().back();
  s.self->request(s.driver, 10s, stop_atom::value)
    .receive([&](uint32_t n) { BOOST_TEST(n == 1u); },
             [&](caf::error& err) { BOOST_FAIL(to_string(err)); });
  BOOST_TEST(wait_until([&] { return ::kill(second, 0) != 0; }, 5s));
}

BOOST_AUTO_TEST_CASE(a_command_sent_while_no_worker_serves_reaches_the_next) {
  // A command made after an instance's worker exited and before the next
  // one was adopted is for the next one: the standby kept it (or reads it
  // once adopted), and answers it as the instance.
  stack s{test_settings(), CYME_WORKER_PROGRAM, 500ms, 1};
  s.put("w1", {"q1"});
  start_all(s, {"w1"});
  BOOST_TEST_REQUIRE(
    wait_until([&] { return standbys_on_the_bus(s).size() == 1; }, 10s));
  auto standby = standbys_on_the_bus(s).front();
  // No round restarts w1 meanwhile.
  s.self->request(s.sup, 10s, pause_atom::value)
    .receive([](supervisor_status&) {},
             [&](caf::error& err) { BOOST_FAIL(to_string(err)); });
  s.self->request(s.driver, 10s, stop_atom::value, std::string{"w1"})
    .receive([](int32_t) {},
             [&](caf::error& err) { BOOST_FAIL(to_string(err)); });
  BOOST_TEST_REQUIRE(s.pid_of("w1") == 0);
  control_command cmd;
  cmd.op = control_op::stats;
  cmd.destinations = {"w1"};
  cmd.timeout = 10s;
  caf::scoped_actor asker{s.sys};
  auto answer = asker->request(s.bus, 20s, command_atom::value, cmd);
  // Started a clock tick later than the command was made, so that only
  // taking commands from the exit on answers it.
  auto sent_ms = wall_now_ms();
  BOOST_TEST_REQUIRE(wait_until([&] { return wall_now_ms() > sent_ms + 1; }, 1s));
  int32_t pid = 0;
  s.self->request(s.driver, 10s, start_atom::value, s.get("w1"))
    .receive([&](int32_t p) { pid = p; },
             [&](caf::error& err) { BOOST_FAIL(to_string(err)); });
  BOOST_TEST_REQUIRE(pid == standby);
  std::vector<control_reply> replies;
  std::move(answer).receive(
    [&](std::vector<control_reply>& r) { replies = std::move(r); },
    [&](caf::error& err) { BOOST_FAIL(to_string(err)); });
  BOOST_TEST_REQUIRE(replies.size() == 1u, "the command was answered");
  BOOST_TEST(replies.front().instance == "w1");
  BOOST_TEST(replies.front().stats.pid == standby);
}

BOOST_AUTO_TEST_CASE(a_standby_refuses_a_bad_adoption_and_ends_with_its_branch) {
  // A standby told an adoption it cannot use exits 2 saying why, serving
  // nothing; one whose branch is gone (its socket ends), or that is sent
  // SIGTERM, exits 0.
  stack s;
  // A standby started without the placeholders a driver gives it.
  auto w1_dir = s.dir.path / "w1";
  fs::create_directories(w1_dir);
  struct {
    std::string text;
    bool with_fd;
    std::string says;
  } bad[] = {
    {"name=w1\nqueues=\nmin=1\nmax=1\ninstance_dir=" + w1_dir.string()
       + "\ncontrol_since_ms=1\n",
     true, "no room in CYME_INSTANCE"},
    {"name=w1\n", true, "adoption without 'queues'"},
    {"name=../w1\nqueues=\nmin=1\nmax=1\ninstance_dir=/tmp/../w1\n"
     "control_since_ms=1\n", true, "must start with a letter or digit"},
    {"name=w1\nqueues=\nmin=1\nmax=1\ninstance_dir=/nowhere/w1\n"
     "control_since_ms=1\n", true, "cannot enter /nowhere/w1"},
    {"name=w1\nqueues=\nmin=1\nmax=1\ninstance_dir=/tmp/w1\n"
     "control_since_ms=1\n", false, "without the instance's log descriptor"},
  };
  int n = 0;
  for (auto& b : bad) {
    hand_started_standby w{s, s.dir.path / ("standby-" + std::to_string(++n) + ".log")};
    BOOST_TEST_REQUIRE(wait_until([&] { return w.on_the_bus(); }, 10s), w.output());
    w.send(b.text, b.with_fd);
    BOOST_TEST(w.exit_status() == 2, b.says);
    BOOST_TEST(w.output().find(b.says) != std::string::npos, w.output());
  }
  BOOST_TEST(!s.pings("w1", 300ms), "no adoption made a worker of w1");
  hand_started_standby orphan{s, s.dir.path / "orphan.log"};
  BOOST_TEST_REQUIRE(wait_until([&] { return orphan.on_the_bus(); }, 10s));
  ::close(std::exchange(orphan.socket, -1));
  BOOST_TEST(orphan.exit_status() == 0, orphan.output());
  // SIGTERM ends a waiting standby too, with 0.
  hand_started_standby told_to_end{s, s.dir.path / "terminated.log"};
  BOOST_TEST_REQUIRE(wait_until([&] { return told_to_end.on_the_bus(); }, 10s));
  BOOST_TEST_REQUIRE(::kill(told_to_end.pid, SIGTERM) == 0);
  BOOST_TEST(told_to_end.exit_status() == 0, told_to_end.output());
}

BOOST_AUTO_TEST_CASE(a_driver_ends_the_standbys_a_gone_branch_left) {
  // A branch died right after it told its standby an instance, before the
  // standby took it (it is stopped here, so it cannot see its branch go).
  // The driver of the next branch ends that standby: going on, it would
  // become a second worker of an instance the next branch starts itself.
  stack s;
  auto w1_dir = s.driver_settings.root / "w1";
  fs::create_directories(w1_dir);
  hand_started_standby left{s, s.dir.path / "left.log", true};
  BOOST_TEST_REQUIRE(wait_until([&] { return left.on_the_bus(); }, 10s), left.output());
  BOOST_TEST_REQUIRE(::kill(left.pid, SIGSTOP) == 0);
  // Read as a driver reads it: a socket closed with a message unread
  // resets its peer's, which would lose the adoption.
  char ready[8];
  BOOST_TEST_REQUIRE(::recv(left.socket, ready, sizeof ready, MSG_DONTWAIT) == 6);
  left.send("name=w1\nqueues=q1\nmin=1\nmax=1\ninstance_dir=" + w1_dir.string()
            + "\ncontrol_since_ms=1\n");
  ::close(std::exchange(left.socket, -1));
  auto spawned = spawn_process_driver(s.sys, s.driver_settings);
  BOOST_TEST_REQUIRE(spawned.engaged());
  BOOST_TEST(wait_until([&] { return has_ended(left.pid); }, 5s));
  ::kill(left.pid, SIGCONT);
  BOOST_TEST(!wait_until([&] { return s.pings("w1", 200ms); }, 2s), "the left standby did not become w1");
  s.self->send_exit(*spawned, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(queue_drift_is_reconciled_to_the_model) {
  // The model changes from {q1, q2} to {q2, q3}: after a verify, the
  // worker's active_queues are exactly the model's plus its direct queue.
  stack s;
  s.put("w1", {"q1", "q2"});
  start_all(s, {"w1"});
  BOOST_TEST(sorted(s.stats("w1").queues) == sorted({"dq.w1", "q1", "q2"}),
             boost::test_tools::per_element());
  auto spec = s.get("w1");
  spec.queues = {"q2", "q3"};
  s.put(spec);
  auto r = s.verify({"w1"});
  BOOST_TEST(to_string(r.at(0).result) == "verified");
  control_command cmd;
  cmd.op = control_op::active_queues;
  cmd.destinations = {"w1"};
  cmd.timeout = 2s;
  auto replies = s.command(cmd);
  BOOST_REQUIRE(replies.size() == 1u);
  BOOST_TEST(sorted(replies[0].queues) == sorted({"dq.w1", "q2", "q3"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(concurrency_drift_is_reconciled_to_the_model) {
  // max/min change in the model: stats show the new bounds after a verify.
  stack s;
  s.put("w1", {"q1"}, 2, 1);
  start_all(s, {"w1"});
  auto spec = s.get("w1");
  spec.max_concurrency = 6;
  spec.min_concurrency = 3;
  s.put(spec);
  s.verify({"w1"});
  auto st = s.stats("w1");
  BOOST_TEST(st.autoscale_max == 6u);
  BOOST_TEST(st.autoscale_min == 3u);
  BOOST_TEST(st.concurrency >= 3u);
}

BOOST_AUTO_TEST_CASE(tasks_on_a_shared_queue_are_done_exactly_once) {
  // 1,000 tasks on a queue two instances share, nothing failing: every
  // task has exactly one result, both instances worked, all committed.
  stack s;
  s.put("w1", {"jobs"}, 2, 1);
  s.put("w2", {"jobs"}, 2, 1);
  start_all(s, {"w1", "w2"});
  // Both members of the group hold partitions before tasks arrive.
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto a = s.stats("w1").partitions["jobs"];
      auto b = s.stats("w2").partitions["jobs"];
      return a > 0 && b > 0;
    },
    30s));
  auto ids = s.send_tasks("jobs", 1000, "echo", R"({"n":1})");
  BOOST_TEST_REQUIRE(s.wait_for_results(ids, 60s));
  s.collect_results(500ms);
  std::map<std::string, size_t> by_instance;
  size_t duplicates = 0;
  for (auto& id : ids) {
    auto& rs = s.results[id];
    duplicates += rs.size() - 1;
    by_instance[rs.front().instance] += 1;
    BOOST_TEST(to_string(rs.front().state) == "SUCCESS");
  }
  BOOST_TEST(duplicates == 0u);
  BOOST_TEST(by_instance["w1"] > 0u);
  BOOST_TEST(by_instance["w2"] > 0u);
  BOOST_TEST(by_instance["w1"] + by_instance["w2"] == 1000u);
  BOOST_TEST(wait_until([&] { return s.committed("jobs") == 1000; }, 10s),
             "committed " << s.committed("jobs"));
}

BOOST_AUTO_TEST_CASE(tasks_of_a_worker_killed_midway_are_redelivered) {
  // One of two workers is killed -9 while tasks run: no task is lost;
  // those it held are done again by someone (at least once).
  stack s;
  s.put("w1", {"jobs"}, 4, 1);
  s.put("w2", {"jobs"}, 4, 1);
  start_all(s, {"w1", "w2"});
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      return s.stats("w1").partitions["jobs"] > 0
             && s.stats("w2").partitions["jobs"] > 0;
    },
    30s));
  auto ids = s.send_tasks("jobs", 1000, "sleep", R"({"ms":5})");
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      s.collect_results(100ms);
      return s.results.size() >= 200;
    },
    30s));
  ::kill(s.pid_of("w1"), SIGKILL);
  BOOST_TEST(s.wait_for_results(ids, 90s),
             "results for " << s.results.size() << " of 1000 tasks");
  BOOST_TEST(s.events(event_kind::died, "w1") == 1u);
}

BOOST_AUTO_TEST_CASE(shutdown_lets_running_tasks_finish_and_commits_them) {
  // A shutdown while four 1 s tasks run: all four finish with a result and
  // are committed before the process exits.
  stack s;
  s.put("w1", {"slow"}, 4, 1);
  start_all(s, {"w1"});
  BOOST_TEST_REQUIRE(wait_until(
    [&] { return s.stats("w1").partitions["slow"] > 0; }, 30s));
  auto ids = s.send_tasks("slow", 4, "sleep", "1");
  BOOST_TEST_REQUIRE(wait_until([&] { return s.stats("w1").concurrency == 4; },
                                10s));
  auto pid = s.pid_of("w1");
  auto r = s.shutdown({"w1"});
  BOOST_TEST(to_string(r.at(0).result) == "stopped");
  // Answered once the process is gone (a later round may start a new one).
  BOOST_TEST(::kill(pid, 0) == -1);
  BOOST_TEST(s.wait_for_results(ids, 5s));
  for (auto& id : ids)
    BOOST_TEST(to_string(s.results[id].front().state) == "SUCCESS");
  BOOST_TEST(s.committed("slow") == 4);
}

BOOST_AUTO_TEST_CASE(failing_and_unknown_tasks_fail_without_harm) {
  // An unknown handler and a throwing handler give FAILURE results with the
  // reason; the worker goes on answering and running tasks.
  stack s;
  s.put("w1", {"mixed"});
  start_all(s, {"w1"});
  BOOST_TEST_REQUIRE(wait_until(
    [&] { return s.stats("w1").partitions["mixed"] > 0; }, 30s));
  auto unknown = s.send_tasks("mixed", 1, "no_such_handler", "null");
  auto failing = s.send_tasks("mixed", 1, "fail", R"({"message":"boom"})");
  auto fine = s.send_tasks("mixed", 1, "echo", R"([1,2,3])");
  BOOST_TEST_REQUIRE(s.wait_for_results(unknown, 20s));
  BOOST_TEST_REQUIRE(s.wait_for_results(failing, 20s));
  BOOST_TEST_REQUIRE(s.wait_for_results(fine, 20s));
  BOOST_TEST(to_string(s.results[unknown[0]].front().state) == "FAILURE");
  BOOST_TEST(s.results[unknown[0]].front().error.find("unknown handler")
             != std::string::npos);
  BOOST_TEST(s.results[failing[0]].front().error == "boom");
  BOOST_TEST(s.results[fine[0]].front().result_json == "[1,2,3]");
  // exec runs the instance's program (here /bin/cat) without a shell: the
  // arguments go in as JSON on stdin and come back as the result.
  auto exec = s.send_tasks("mixed", 1, "exec", R"({"through":"cat"})");
  BOOST_TEST_REQUIRE(s.wait_for_results(exec, 20s));
  BOOST_TEST(to_string(s.results[exec[0]].front().state) == "SUCCESS");
  BOOST_TEST(s.results[exec[0]].front().result_json == R"({"through":"cat"})");
  BOOST_TEST(s.pings("w1"));
  BOOST_TEST(s.stats("w1").tasks_failed == 2u);
}

BOOST_AUTO_TEST_CASE(invalid_tasks_and_oversized_results_answer_with_failure) {
  // A task that does not decode but carries an id, and a result that would
  // pass the 64 KiB wire limit, are answered with FAILURE saying why, so
  // their senders never wait forever; a task without an id is only
  // counted. The worker goes on.
  stack s;
  s.put("w1", {"strict"});
  start_all(s, {"w1"});
  BOOST_TEST_REQUIRE(wait_until(
    [&] { return s.stats("w1").partitions["strict"] > 0; }, 30s));
  auto tag = std::to_string(::getpid()) + "-" + std::to_string(std::rand());
  auto no_handler = "inv-h-" + tag;
  auto wrong_v = "inv-v-" + tag;
  s.send_raw("strict", no_handler,
             R"({"v": 1, "id": ")" + no_handler + R"(", "handler": 7})");
  s.send_raw("strict", wrong_v,
             R"({"v": 2, "id": ")" + wrong_v + R"(", "handler": "echo"})");
  s.send_raw("strict", "no-id", "not json at all");
  // Just under the limit as a task, just over it as a result.
  auto big = s.send_tasks("strict", 1, "echo",
                          json(std::string(max_wire_message - 120, 'x')).dump());
  auto fine = s.send_tasks("strict", 1, "echo", "1");
  BOOST_TEST_REQUIRE(s.wait_for_results({no_handler, wrong_v, big[0], fine[0]}, 30s));
  auto& h = s.results[no_handler].front();
  BOOST_TEST(to_string(h.state) == "FAILURE");
  BOOST_TEST(h.error == R"(invalid task: "handler" is not a string)");
  auto& v = s.results[wrong_v].front();
  BOOST_TEST(to_string(v.state) == "FAILURE");
  BOOST_TEST(v.error.rfind("invalid task: ", 0) == 0u, v.error);
  auto& b = s.results[big[0]].front();
  BOOST_TEST(to_string(b.state) == "FAILURE");
  BOOST_TEST(b.error.find("exceeds the limit of 65536") != std::string::npos,
             b.error);
  BOOST_TEST(b.result_json == "null");
  BOOST_TEST(to_string(s.results[fine[0]].front().state) == "SUCCESS");
  BOOST_TEST(s.stats("w1").tasks_failed == 4u);
}

BOOST_AUTO_TEST_CASE(bad_control_messages_are_dropped_and_change_nothing) {
  // Garbage, truncated, oversized, unknown-op and wrong-typed commands on
  // the control topic, addressed to the worker: it logs and drops them,
  // keeps its queues, and still answers ping.
  stack s;
  s.put("w1", {"q1"});
  start_all(s, {"w1"});
  auto before = s.stats("w1");
  kafka::producer raw{kafka::base_config(s.bootstrap())};
  std::string valid = R"({"v":1,"id":"x1","op":"cancel_consumer","reply_to":"cyme.reply.itest","to":["w1"],"args":{"queue":"q1"}})";
  for (std::string bad : {
         std::string{"garbage"}, valid.substr(0, valid.size() - 10),
         std::string(200 * 1024, '{'),
         std::string{R"({"v":1,"id":"x2","op":"explode","reply_to":"cyme.reply.itest","to":["w1"]})"},
         std::string{R"({"v":1,"id":"x3","op":"cancel_consumer","reply_to":"cyme.reply.itest","to":"w1","args":{"queue":"q1"}})"},
         std::string{R"({"v":1,"id":"x4","op":"autoscale","reply_to":"cyme.reply.itest","to":["w1"],"args":{"max":"ten","min":1}})"},
         std::string{R"({"v":9,"id":"x5","op":"cancel_consumer","reply_to":"cyme.reply.itest","to":["w1"],"args":{"queue":"q1"}})"},
         std::string{R"({"v":1,"id":"x6","op":"add_consumer","reply_to":"cyme.reply.itest","to":["w1"],"args":{"queue":"../../etc"}})"}})
    BOOST_REQUIRE(raw.produce("cyme.control", "bad", bad).empty());
  BOOST_REQUIRE(raw.flush(5000));
  BOOST_TEST(wait_until([&] { return s.pings("w1"); }, 5s));
  auto after = s.stats("w1");
  BOOST_TEST(after.pid == before.pid);
  BOOST_TEST(sorted(after.queues) == sorted(before.queues),
             boost::test_tools::per_element());
  BOOST_TEST(after.autoscale_max == before.autoscale_max);
  // Replies nobody asked for reach the branch too: dropped, bus still works.
  BOOST_REQUIRE(raw.produce("cyme.reply.itest", "x", "not a reply").empty());
  BOOST_REQUIRE(raw.produce("cyme.reply.itest", "x",
                            R"({"v":1,"id":"nobody","op":"ping","from":"w1","ok":true,"result":{}})")
                  .empty());
  BOOST_REQUIRE(raw.flush(5000));
  BOOST_TEST(s.pings("w1"));
}

BOOST_AUTO_TEST_CASE(broker_outage_pauses_and_revival_waits_before_restarts) {
  // The embedded broker goes down: the supervisor pauses and restarts
  // nothing, not even a worker killed meanwhile. It comes back: resumed,
  // and the dead worker is restarted only once wait_after_broker_revived
  // (10 s here) has passed.
  auto settings = test_settings();
  settings.interval = 2s;
  stack s{settings};
  s.put("w1", {"q1"});
  s.put("w2", {"q1"});
  start_all(s, {"w1", "w2"});
  auto pid1 = s.pid_of("w1");
  auto pid2 = s.pid_of("w2");
  s.broker_down();
  BOOST_TEST_REQUIRE(wait_until([&] { return s.supervisor().paused; }, 15s));
  ::kill(pid2, SIGKILL);
  BOOST_TEST(wait_until([&] { return s.events(event_kind::died, "w2") == 1; },
                        5s));
  // Several intervals pass while down: nothing is restarted.
  BOOST_TEST(!wait_until([&] { return s.pid_of("w2") != 0; }, 6s));
  BOOST_TEST(s.pid_of("w1") == pid1);
  s.broker_up();
  BOOST_TEST_REQUIRE(wait_until([&] { return !s.supervisor().paused; }, 15s));
  auto revived = std::chrono::steady_clock::now();
  BOOST_TEST_REQUIRE(wait_until([&] { return s.pid_of("w2") != 0; }, 30s));
  auto waited = std::chrono::steady_clock::now() - revived;
  BOOST_TEST(std::chrono::duration_cast<std::chrono::seconds>(waited).count()
             >= 9);
  BOOST_TEST(s.pid_of("w1") == pid1);
  BOOST_TEST(s.events(event_kind::restarting, "w1") == 0u);
  BOOST_TEST(wait_until([&] { return s.pings("w2"); }, 10s));
}

BOOST_AUTO_TEST_CASE(a_kill_storm_gets_one_restart_per_death_and_leaves_no_strays) {
  // 200 kill -9s spread over four workers (50 each, within their limit of
  // 60/m): every death is followed by exactly one restart, and at the end
  // no worker process is orphaned and none is a zombie.
  auto settings = test_settings();
  settings.restart_max_rate = "60/m";
  stack s{settings};
  std::vector<std::string> names{"k1", "k2", "k3", "k4"};
  for (auto& n : names)
    s.put(n, {"storm"});
  start_all(s, names);
  std::map<std::string, std::set<int32_t>> pids;
  for (auto& n : names)
    pids[n].insert(s.pid_of(n));
  for (int i = 0; i < 200; ++i) {
    auto& n = names[i % names.size()];
    auto old_pid = s.pid_of(n);
    BOOST_REQUIRE(old_pid > 0);
    ::kill(old_pid, SIGKILL);
    int32_t fresh = 0;
    BOOST_REQUIRE_MESSAGE(wait_until(
                            [&] {
                              fresh = s.pid_of(n);
                              return fresh > 0 && fresh != old_pid;
                            },
                            10s),
                          "no replacement after kill " << i);
    pids[n].insert(fresh);
  }
  // Each death gave exactly one new process and one counted restart.
  for (auto& n : names) {
    BOOST_TEST(pids[n].size() == 51u, n);
    BOOST_TEST(wait_until([&] { return s.status(n).restarts == 50u; }, 10s),
               n << " restarts " << s.status(n).restarts);
  }
  // No strays: every cyme-worker of this stack's broker is one the driver
  // trusts, and no child of this process is a zombie.
  std::set<int32_t> trusted;
  for (auto& n : names)
    trusted.insert(s.pid_of(n));
  int strays = 0, zombies = 0;
  for (auto& entry : std::filesystem::directory_iterator{"/proc"}) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream cmd{entry.path() / "cmdline", std::ios::binary};
    std::string raw{std::istreambuf_iterator<char>{cmd}, {}};
    std::ifstream stat{entry.path() / "stat"};
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size()
        && line[close + 2] == 'Z'
        && line.find(" " + std::to_string(::getpid()) + " ", close) == close + 3)
      ++zombies;
    if (raw.find("cyme-worker") != std::string::npos
        && raw.find(s.bootstrap()) != std::string::npos
        && trusted.count(std::stoi(name)) == 0)
      ++strays;
  }
  BOOST_TEST(strays == 0);
  BOOST_TEST(zombies == 0);
}

BOOST_AUTO_TEST_CASE(a_crash_looping_worker_is_disabled_as_the_policy_says) {
  // Under restart_max_rate 3/m, a worker that keeps dying is restarted
  // three times, then disabled with the reason, and not started again.
  auto settings = test_settings();
  settings.restart_max_rate = "3/m";
  stack s{settings};
  s.put("looper", {"storm"});
  start_all(s, {"looper"});
  for (int i = 0; i < 3; ++i) {
    auto pid = s.pid_of("looper");
    ::kill(pid, SIGKILL);
    BOOST_REQUIRE(wait_until(
      [&] {
        auto now = s.pid_of("looper");
        return now > 0 && now != pid;
      },
      10s));
  }
  ::kill(s.pid_of("looper"), SIGKILL);
  BOOST_TEST(wait_until([&] { return !s.get("looper").enabled; }, 10s));
  BOOST_TEST(s.get("looper").disabled_reason.find("restarted too often")
             != std::string::npos);
  BOOST_TEST(s.pid_of("looper") == 0);
  BOOST_TEST(s.status("looper").restarts == 3u);
  BOOST_TEST(to_string(s.status("looper").state) == "disabled");
}

BOOST_AUTO_TEST_CASE(commands_for_one_instance_each_sent_at_once_get_their_own_replies) {
  // Fifty-one callers ask one instance each, all at once, so the bus
  // gathers them into one command per kind: every caller gets exactly its
  // own instance's reply, an instance asked twice answers both, a stats
  // question is answered with stats, and a name no worker has leaves its
  // caller with no reply when the timeout runs out.
  stack s{test_settings()};
  s.put("w1", {"q1"});
  s.put("w2", {"q1"});
  s.put("w3", {"q2"});
  start_all(s, {"w1", "w2", "w3"});
  std::vector<control_command> cmds;
  for (int k = 0; k < 10; ++k)
    for (auto name : {"w1", "w2", "w3", "w1", "nobody"}) {
      control_command cmd;
      cmd.op = control_op::ping;
      cmd.destinations = {name};
      cmd.timeout = caf::timespan{3s};
      cmds.push_back(cmd);
    }
  control_command stats;
  stats.op = control_op::stats;
  stats.destinations = {"w3"};
  stats.timeout = caf::timespan{3s};
  cmds.push_back(stats);
  struct results {
    std::mutex mtx;
    std::vector<std::optional<std::vector<control_reply>>> replies;
    std::vector<std::string> errors;
    size_t done = 0;
  };
  auto got = std::make_shared<results>();
  got->replies.resize(cmds.size());
  auto bus = s.bus;
  s.sys.spawn([got, bus, cmds](caf::event_based_actor* self) {
    for (size_t i = 0; i < cmds.size(); ++i)
      self->request(bus, caf::infinite, command_atom::value, cmds[i])
        .then(
          [got, i](std::vector<control_reply>& r) {
            std::lock_guard<std::mutex> guard{got->mtx};
            got->replies[i] = std::move(r);
            ++got->done;
          },
          [got](caf::error& e) {
            std::lock_guard<std::mutex> guard{got->mtx};
            got->errors.push_back(describe(e));
            ++got->done;
          });
  });
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      std::lock_guard<std::mutex> guard{got->mtx};
      return got->done == cmds.size();
    },
    20s));
  std::lock_guard<std::mutex> guard{got->mtx};
  BOOST_TEST(got->errors.empty());
  for (size_t i = 0; i < cmds.size(); ++i) {
    BOOST_TEST_REQUIRE(got->replies[i].has_value());
    auto& r = *got->replies[i];
    const auto& asked = cmds[i].destinations.front();
    if (asked == "nobody") {
      BOOST_TEST(r.empty(), i);
      continue;
    }
    BOOST_TEST_REQUIRE(r.size() == 1u, i << " " << asked);
    BOOST_TEST(r.front().instance == asked);
    BOOST_TEST(r.front().ok);
  }
  auto& st = got->replies.back()->front();
  BOOST_TEST(st.stats.pid == s.pid_of("w3"));
  BOOST_TEST(std::count(st.stats.queues.begin(), st.stats.queues.end(), "q2") == 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(topic_reading)

BOOST_AUTO_TEST_CASE(a_reader_waits_out_a_leader_election) {
  // A broker answers "not leader for partition" while a new topic's leader
  // is elected (a fresh cluster, a worker starting as the control topic is
  // made): a reader asks again instead of failing, and reads what comes
  // after it returned. One that finds no leader within its timeout says
  // why.
  kafka::embedded_cluster cluster;
  auto cfg = kafka::base_config(cluster.bootstrap());
  cluster.create_topic("elected", 1);
  cluster.refuse_offset_lookups(3);
  kafka::topic_reader reader{cfg, "elected", 10000};
  kafka::producer out{cfg};
  BOOST_TEST_REQUIRE(out.produce("elected", "k", "after").empty());
  std::optional<kafka::message> got;
  BOOST_TEST(wait_until([&] { return (got = reader.poll(100)).has_value(); }, 10s));
  BOOST_TEST((got ? got->value : std::string{}) == "after");
  cluster.refuse_offset_lookups(1000);
  try {
    kafka::topic_reader never{cfg, "elected", 500};
    BOOST_ERROR("a reader was made without a leader");
  } catch (const kafka::kafka_error& e) {
    BOOST_TEST(std::string{e.what()}.find("reading elected: watermarks: ")
                 != std::string::npos,
               e.what());
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(kept_results)

BOOST_AUTO_TEST_CASE(kept_results_stay_within_their_bounds) {
  // Results beyond the count or the byte bound forget the oldest first;
  // the newest are found; a task's result seen again counts as the newest.
  kafka::embedded_cluster cluster;
  auto cfg = kafka::base_config(cluster.bootstrap());
  cluster.create_topic("kept.results", 1);
  const std::size_t max_results = 50, max_bytes = 20000;
  task_results results{cfg, "kept.results", max_results, max_bytes};
  kafka::producer out{cfg};
  auto send = [&](int i) {
    task_result r;
    r.id = "t" + std::to_string(i);
    r.result_json = json(std::string(i % 2 == 0 ? 10 : 500, 'x')).dump();
    BOOST_TEST_REQUIRE(out.produce("kept.results", r.id, encode_result(r)).empty());
  };
  for (int i = 0; i < 100; ++i)
    send(i);
  send(60); // seen again: now the newest
  out.flush(5000);
  BOOST_TEST_REQUIRE(wait_until(
    [&] { return results.counts()["SUCCESS"] == 101u; }, 20s));
  BOOST_TEST(results.kept() <= max_results);
  BOOST_TEST(results.kept_bytes() <= max_bytes);
  // The byte bound binds first here: fewer than 50 are kept.
  BOOST_TEST(results.kept() < max_results);
  BOOST_TEST(!results.find("t0"));
  BOOST_TEST(!results.find("t50"));
  BOOST_TEST(results.find("t99").has_value());
  BOOST_TEST(results.find("t60").has_value());
  // What kept_bytes says is what the kept results weigh.
  std::size_t weighed = 0;
  for (int i = 0; i < 100; ++i)
    if (auto r = results.find("t" + std::to_string(i)))
      weighed += task_results::size_of(*r);
  BOOST_TEST(weighed == results.kept_bytes());
}

BOOST_AUTO_TEST_SUITE_END()

// Not in `fleet`: a real broker cannot be made to lag.
BOOST_AUTO_TEST_SUITE(lagging_bus)

BOOST_AUTO_TEST_CASE(a_lagging_bus_is_suspected_and_gets_no_mass_restart) {
  // The embedded broker answers every request 700 ms late: it takes a
  // command within the ping's 1 s, but no reply comes back in time, so the
  // pings of all six workers time out while their processes run. The
  // supervisor suspects the bus (status and event) and restarts them only
  // at its rate (1/m here), not all six. Once the lag ends, a round ends
  // the suspicion (event) and every worker answers again, none disabled.
  auto settings = test_settings();
  settings.interval = 2s;
  settings.bus_suspect_min_misses = 3;
  settings.bus_suspect_restart_rate = "1/m";
  // Metadata answered 700 ms late is a slow broker, not one down.
  stack s{settings, CYME_WORKER_PROGRAM, 5s};
  names ns{"l1", "l2", "l3", "l4", "l5", "l6"};
  for (auto& n : ns)
    s.put(n, {"lag"});
  start_all(s, ns);
  std::map<std::string, int32_t> pids;
  for (auto& n : ns)
    pids[n] = s.pid_of(n);
  auto lag_began = std::chrono::steady_clock::now();
  s.lag_broker(700ms);
  BOOST_TEST_REQUIRE(wait_until([&] { return s.supervisor().bus_suspected; },
                                60s));
  BOOST_TEST(s.supervisor().bus_suspected_since_ms > 0);
  BOOST_TEST(s.events(event_kind::bus_suspected) == 1u);
  // Rounds go on under the lag; restarts stay within 1/m: the bucket's one
  // plus one a minute since the lag began.
  auto rounds = s.supervisor().rounds_completed;
  BOOST_TEST(wait_until(
    [&] { return s.supervisor().rounds_completed >= rounds + 3; }, 180s));
  BOOST_TEST(s.supervisor().bus_suspected);
  auto restarts = s.events(event_kind::restarting);
  auto minutes = std::chrono::duration<double>(
                   std::chrono::steady_clock::now() - lag_began)
                   .count()
                 / 60;
  BOOST_TEST(static_cast<double>(restarts) <= 1 + minutes,
             restarts << " restarts in " << minutes << " minutes");
  BOOST_TEST(restarts < ns.size());
  size_t kept = 0;
  for (auto& n : ns)
    kept += s.pid_of(n) == pids[n] ? 1 : 0;
  BOOST_TEST(kept + restarts >= ns.size());
  // The lag ends: the next round finds them answering.
  s.lag_broker(0ms);
  BOOST_TEST_REQUIRE(wait_until([&] { return !s.supervisor().bus_suspected; },
                                60s));
  // The event reaches the test's listener after the status changed.
  BOOST_TEST(wait_until(
    [&] { return s.events(event_kind::bus_recovered) == 1u; }, 5s));
  for (auto& n : ns)
    BOOST_TEST(wait_until([&] { return s.pings(n); }, 10s), n);
  for (auto& n : ns)
    BOOST_TEST(s.get(n).enabled, n);
  BOOST_TEST(s.events(event_kind::disabled) == 0u);
}

BOOST_AUTO_TEST_CASE(a_start_whose_pongs_come_after_each_pings_timeout_succeeds) {
  // The embedded broker answers every request 700 ms late, so no pong comes
  // back within its own ping's timeout (0.1, 0.5, 0.9 s, then 1 s steps).
  // A late pong still answers the later ping of the same start that waits:
  // the worker counts as started, not "does not respond" after 31 pings.
  auto settings = test_settings();
  // No round of its own meanwhile: the start is what is looked at.
  settings.interval = std::chrono::minutes{10};
  stack s{settings, CYME_WORKER_PROGRAM, 5s};
  s.lag_broker(700ms);
  s.put("slow1", {"lag"});
  auto reports = s.verify({"slow1"});
  BOOST_TEST_REQUIRE(reports.size() == 1u);
  BOOST_TEST((reports[0].result == outcome::started),
             to_string(reports[0].result) << " " << reports[0].detail);
  BOOST_TEST(s.events(event_kind::does_not_respond) == 0u);
  BOOST_TEST((s.status("slow1").state == instance_state::running));
  s.lag_broker(0ms);
  BOOST_TEST(wait_until([&] { return s.pings("slow1"); }, 10s));
}

BOOST_AUTO_TEST_SUITE_END()

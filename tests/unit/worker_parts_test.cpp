// The worker's own parts: the offset tracker that keeps commits
// at-least-once, and the autoscaling task pool.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "worker/handlers.hpp"
#include "worker/offset_tracker.hpp"
#include "worker/task_pool.hpp"
#include "worker/worker.hpp"

using namespace cyme::worker;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(worker_parts)

BOOST_AUTO_TEST_CASE(commit_point_never_passes_a_running_task) {
  // Offsets 5, 6, 7 taken; 6 and 7 finish first: nothing is committable
  // until 5 finishes, then everything up to 8.
  offset_tracker t;
  t.started(0, 5);
  t.started(0, 6);
  t.started(0, 7);
  BOOST_TEST(!t.finished(0, 6));
  BOOST_TEST(!t.finished(0, 7));
  auto next = t.finished(0, 5);
  BOOST_REQUIRE(next);
  BOOST_TEST(*next == 8);
  BOOST_TEST(t.in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(partitions_are_tracked_apart) {
  // A slow task in partition 0 does not hold back partition 1.
  offset_tracker t;
  t.started(0, 1);
  t.started(1, 1);
  auto next = t.finished(1, 1);
  BOOST_REQUIRE(next);
  BOOST_TEST(*next == 2);
  BOOST_TEST(t.in_flight() == 1u);
}

BOOST_AUTO_TEST_CASE(pool_grows_to_max_while_tasks_wait_and_shrinks_after) {
  // 4 blocked tasks with max 4: four runners; once idle past keepalive it
  // shrinks back to min.
  task_pool pool{4, 1, 50ms};
  BOOST_TEST(pool.size() == 1u);
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> running{0};
  for (int i = 0; i < 4; ++i)
    BOOST_REQUIRE(pool.submit([&] {
      ++running;
      std::unique_lock<std::mutex> lock{m};
      cv.wait(lock, [&] { return release; });
    }));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (running < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  BOOST_TEST(running.load() == 4);
  BOOST_TEST(pool.size() == 4u);
  {
    std::lock_guard<std::mutex> guard{m};
    release = true;
  }
  cv.notify_all();
  deadline = std::chrono::steady_clock::now() + 5s;
  while (pool.size() > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  BOOST_TEST(pool.size() == 1u);
}

BOOST_AUTO_TEST_CASE(pool_runs_every_submitted_task_before_stopping) {
  // stop() finishes what was accepted.
  std::atomic<int> done{0};
  {
    task_pool pool{2, 1, 1s};
    for (int i = 0; i < 100; ++i)
      pool.submit([&] { ++done; });
    pool.stop();
    BOOST_TEST(!pool.submit([&] { ++done; }));
  }
  BOOST_TEST(done.load() == 100);
}

BOOST_AUTO_TEST_CASE(new_bounds_apply_at_once) {
  // Raising min starts runners; max is reported.
  task_pool pool{1, 1, 1s};
  pool.set_bounds(6, 3);
  BOOST_TEST(pool.max() == 6u);
  BOOST_TEST(pool.min() == 3u);
  BOOST_TEST(pool.size() == 3u);
}

BOOST_AUTO_TEST_CASE(exec_runs_a_program_without_a_shell) {
  // stdin goes in, stdout comes back; a failing, missing or flooding
  // program throws.
  BOOST_TEST(run_program("/bin/cat", "hello", 5s) == "hello");
  BOOST_CHECK_THROW(run_program("/bin/false", "", 5s), std::runtime_error);
  BOOST_CHECK_THROW(run_program("/nonexistent", "", 5s), std::runtime_error);
  BOOST_CHECK_THROW(run_program("/usr/bin/yes", "", 5s), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(exec_failures_say_why_with_the_end_of_stderr) {
  // A non-zero exit, a signal or a timeout fails with what happened and
  // the end of the program's stderr; stderr is never part of a result.
  auto message = [](const std::string& program, const std::string& input,
                    std::chrono::milliseconds timeout) {
    try {
      run_program(program, input, timeout);
    } catch (const std::runtime_error& e) {
      return std::string{e.what()};
    }
    return std::string{"no failure"};
  };
  auto exited = message("/usr/bin/python3",
                        "import sys\nsys.stderr.write('boom\\n')\nsys.exit(3)\n",
                        10s);
  BOOST_TEST(exited == "/usr/bin/python3 exited with status 3: boom");
  auto killed = message("/usr/bin/python3",
                        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
                        10s);
  BOOST_TEST(killed == "/usr/bin/python3 killed by signal 15");
  auto slow = message("/usr/bin/python3",
                      "import sys, time\nsys.stderr.write('waiting')\n"
                      "sys.stderr.flush()\ntime.sleep(30)\n",
                      1s);
  BOOST_TEST(slow == "/usr/bin/python3 timed out after 1000 ms: waiting");
  BOOST_TEST(run_program("/usr/bin/python3",
                         "import sys\nsys.stderr.write('noise')\nprint('{}')\n",
                         10s)
             == "{}\n");
}

BOOST_AUTO_TEST_CASE(sleep_refuses_what_is_not_a_duration) {
  // Negative, huge and mistyped durations fail before any conversion.
  handler_registry r;
  add_builtin_handlers(r, {});
  auto& sleep = *r.find("sleep");
  for (auto bad : {nlohmann::json(-1), nlohmann::json(1e300),
                   nlohmann::json(3601), nlohmann::json("1"),
                   nlohmann::json{{"ms", -5}}})
    BOOST_CHECK_THROW(sleep(bad), std::invalid_argument);
  BOOST_TEST(sleep(nlohmann::json::parse(R"({"ms": 1})"))["slept_ms"] == 1);
}

BOOST_AUTO_TEST_CASE(worker_options_take_unknown_flags_and_cap_concurrency) {
  // A flag it does not know is ignored (a newer branch may pass one);
  // more than 10,000 runners is refused like the branch refuses it.
  std::vector<std::string> args{"cyme-worker", "--name", "w1", "--app", "a",
                                "--broker", "h:1", "--future-flag", "x",
                                "--max", "3"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  auto o = parse_worker_options(static_cast<int>(argv.size()), argv.data());
  BOOST_TEST(o.max_concurrency == 3u);
  o.max_concurrency = 10001;
  BOOST_TEST(options_problem(o) == "--max must be at most 10000");
}

BOOST_AUTO_TEST_CASE(a_standby_takes_no_name_and_every_other_worker_needs_one) {
  worker_options o;
  o.app = "a";
  o.broker = "h:1";
  BOOST_TEST(options_problem(o) == "--name is required");
  o.standby = true;
  BOOST_TEST(options_problem(o) == "");
  o.name = "w1";
  BOOST_TEST(options_problem(o).find("from its adoption") != std::string::npos);
  o.name.clear();
  o.queues = {"q"};
  BOOST_TEST(options_problem(o).find("from its adoption") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(builtin_handlers_and_own_handlers) {
  // echo echoes, fail throws, a program's own handler wins over a builtin.
  handler_registry r;
  r.add("echo", [](const nlohmann::json&) { return nlohmann::json("mine"); });
  add_builtin_handlers(r, {});
  BOOST_TEST((*r.find("echo"))(nlohmann::json(1)) == nlohmann::json("mine"));
  BOOST_CHECK_THROW((*r.find("fail"))(nlohmann::json{}), std::runtime_error);
  BOOST_CHECK_THROW((*r.find("exec"))(nlohmann::json{}), std::runtime_error);
  BOOST_TEST(r.find("nope") == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()

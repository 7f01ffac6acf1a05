// Benchmark: restart latency after kill -9 and control round-trip, on the
// real stack (embedded Kafka cluster, SQLite model, Kafka control bus,
// process driver, supervisor, cyme-worker processes).
//
//   cyme-bench-restart [--kills N] [--pings N]
//
// For each kill it records two figures: death -> a replacement process
// exists (the driver trusts a new pid), and death -> the replacement
// answers ping through Kafka. Both are measured by an independent poller
// (driver asked every 0.2 ms; pings with a 50 ms timeout, back to back), so each carries up
// to that much polling error. Medians and p90 are printed.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "stack.hpp"

using namespace cyme;
using namespace cyme::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

/// Polls `pred` every `step` until it holds or `limit` passed.
template <class Pred>
bool poll_until(Pred pred, std::chrono::milliseconds limit,
                std::chrono::microseconds step) {
  auto deadline = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(step);
  }
  return true;
}

double ms(clock_type::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto idx = static_cast<size_t>(p * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(idx, xs.size() - 1)];
}

void report(const char* what, const std::vector<double>& xs) {
  std::printf("%-44s n=%-4zu median %8.2f ms   p90 %8.2f ms   p99 %8.2f ms\n",
              what, xs.size(), percentile(xs, 0.5), percentile(xs, 0.9),
              percentile(xs, 0.99));
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"cyme-bench-restart: restart latency and control round-trip"};
  int kills = 50;
  int pings = 200;
  app.add_option("--kills", kills, "kill -9 rounds")->check(CLI::Range(1, 1000));
  app.add_option("--pings", pings, "ping round-trips")->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);

  auto settings = test_settings();
  settings.restart_max_rate = "1000/s";
  stack s{settings};
  std::printf("cyme restart and control latency, embedded Kafka cluster "
              "(control fetch wait 5 ms)\n");
  s.put("bench1", {"benchq"});
  auto reports = s.verify({"bench1"});
  if (reports.empty() || !wait_until([&] { return s.pings("bench1"); }, 10s)) {
    std::fprintf(stderr, "worker did not start\n");
    return 1;
  }

  std::vector<double> rtt;
  control_command ping;
  ping.op = control_op::ping;
  ping.destinations = {"bench1"};
  ping.timeout = 1s;
  for (int i = 0; i < pings; ++i) {
    auto t0 = clock_type::now();
    auto replies = s.command(ping);
    if (replies.size() == 1)
      rtt.push_back(ms(clock_type::now() - t0));
  }
  report("control round-trip (ping -> pong)", rtt);

  std::vector<double> to_process, to_ping;
  for (int i = 0; i < kills; ++i) {
    auto old_pid = s.pid_of("bench1");
    auto t0 = clock_type::now();
    ::kill(old_pid, SIGKILL);
    int32_t pid = 0;
    if (!poll_until(
          [&] {
            pid = s.pid_of("bench1");
            return pid > 0 && pid != old_pid;
          },
          10s, 200us)) {
      std::fprintf(stderr, "no replacement after kill %d\n", i);
      return 1;
    }
    to_process.push_back(ms(clock_type::now() - t0));
    if (getenv("CYME_BENCH_DEBUG") && to_process.back() > 1000) {
      auto log = s.event_log();
      for (size_t j = log.size() > 12 ? log.size() - 12 : 0; j < log.size(); ++j)
        std::fprintf(stderr, "  %s\n", to_log_line(log[j]).c_str());
    }
    if (!poll_until([&] { return s.pings("bench1", 50ms); }, 10s, 0us)) {
      std::fprintf(stderr, "replacement never answered after kill %d\n", i);
      return 1;
    }
    to_ping.push_back(ms(clock_type::now() - t0));
  }

  report("kill -9 -> replacement process exists", to_process);
  report("kill -9 -> replacement answers ping", to_ping);
  return 0;
}

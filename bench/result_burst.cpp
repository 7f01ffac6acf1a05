// cyme-bench-results: how fast a burst of task results reaches the clients
// waiting for them. --waiters connections each hold a `wait` long poll
// (GET /APP/query/ID/wait/) on a task id of their own; once the branch has
// them all open, the results of every one of those ids are written to the
// results topic at once, as workers write them. Each waiter's time is from
// the first result written to its answer. Prints one JSON line:
//   {"figure": "result_burst", "waiters": N, "answered": K,
//    "write_ms": ..., "median_ms": ..., "p90_ms": ..., "all_ms": ...}
// bench/run.sh results runs it against a branch it starts.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "loopback.hpp"

#include "messages/wire.hpp"
#include "percentile.hpp"
#include "transport/kafka.hpp"

namespace {

using cyme::bench::connect_to;
using cyme::bench::send_all;

using clock_type = std::chrono::steady_clock;



/// A GET on its own connection, answered whole (Connection: close).
std::string get(int port, const std::string& path) {
  int fd = connect_to(port);
  if (fd < 0)
    return {};
  send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

/// The value of an unlabelled-but-for-branch gauge in /metrics text.
long metric(const std::string& text, const std::string& name) {
  auto at = text.find("\n" + name + "{");
  if (at == std::string::npos)
    return -1;
  auto space = text.find("} ", at);
  if (space == std::string::npos)
    return -1;
  return std::atol(text.c_str() + space + 2);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"cyme-bench-results: a burst of results to waiting clients"};
  int port = 0;
  int waiters = 10000;
  std::string app_name = "bench";
  std::string broker;
  std::string topic = "cyme.results";
  app.add_option("--port", port, "the branch's HTTP port")->required();
  app.add_option("--broker", broker, "bootstrap of the app's broker")->required();
  app.add_option("--app", app_name, "app the tasks belong to");
  app.add_option("--topic", topic, "the results topic");
  app.add_option("--waiters", waiters, "long polls, one per task")
    ->check(CLI::Range(1, 60000));
  CLI11_PARSE(app, argc, argv);

  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);

  std::mt19937_64 rng{std::random_device{}()};
  auto run = std::to_string(rng());
  std::vector<std::string> ids;
  std::vector<int> fds;
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < waiters; ++i) {
    ids.push_back("burst-" + run + "-" + std::to_string(i));
    int fd = connect_to(port);
    if (fd < 0) {
      std::fprintf(stderr, "cyme-bench-results: connection %d refused\n", i);
      return 1;
    }
    send_all(fd, "GET /" + app_name + "/query/" + ids.back()
                   + "/wait/?timeout=300 HTTP/1.1\r\nHost: b\r\n\r\n");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fds.push_back(fd);
  }
  // Every long poll open on the branch, plus this probe's own connection.
  auto open_deadline = clock_type::now() + std::chrono::seconds{60};
  while (metric(get(port, "/metrics"), "cyme_http_connections_open") < waiters + 1) {
    if (clock_type::now() > open_deadline) {
      std::fprintf(stderr, "cyme-bench-results: the long polls did not open\n");
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }

  // The burst: every result at once, as workers write them.
  cyme::kafka::producer out{cyme::kafka::base_config(broker)};
  std::vector<std::string> encoded;
  for (auto& id : ids) {
    cyme::task_result r;
    r.id = id;
    r.result_json = "\"done\"";
    r.instance = "bench";
    r.queue = "burst";
    encoded.push_back(cyme::encode_result(r));
  }
  // The producer connected, with the topic's metadata, before the clock
  // starts: one result of a task nobody waits for.
  {
    cyme::task_result warm;
    warm.id = "burst-" + run + "-warm-up";
    if (auto err = out.produce(topic, warm.id, cyme::encode_result(warm));
        !err.empty() || !out.flush(30000)) {
      std::fprintf(stderr, "cyme-bench-results: cannot write to %s\n",
                   topic.c_str());
      return 1;
    }
  }
  auto t0 = clock_type::now();
  for (size_t i = 0; i < ids.size(); ++i)
    if (auto err = out.produce(topic, ids[i], encoded[i]); !err.empty()) {
      std::fprintf(stderr, "cyme-bench-results: %s\n", err.c_str());
      return 1;
    }
  out.flush(30000);
  double write_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();

  std::vector<double> took(static_cast<size_t>(waiters), -1);
  std::vector<std::string> got(static_cast<size_t>(waiters));
  int answered = 0;
  int failed = 0;
  auto deadline = t0 + std::chrono::seconds{60};
  std::vector<epoll_event> events(1024);
  while (answered + failed < waiters && clock_type::now() < deadline) {
    int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int k = 0; k < n; ++k) {
      auto i = events[static_cast<size_t>(k)].data.u32;
      char buf[4096];
      auto r = ::read(fds[i], buf, sizeof buf);
      if (r > 0)
        got[i].append(buf, static_cast<size_t>(r));
      bool whole = got[i].find("\r\n\r\n") != std::string::npos
                   && got[i].find('}') != std::string::npos;
      if (!whole && r > 0)
        continue;
      ::epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], nullptr);
      if (got[i].rfind("HTTP/1.1 200", 0) == 0
          && got[i].find("SUCCESS") != std::string::npos) {
        took[i] = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        ++answered;
      } else {
        ++failed;
      }
    }
  }
  std::vector<double> times;
  for (auto t : took)
    if (t >= 0)
      times.push_back(t);
  for (int fd : fds)
    ::close(fd);
  std::printf("{\"figure\": \"result_burst\", \"waiters\": %d, \"answered\": %d, "
              "\"write_ms\": %.1f, \"median_ms\": %.1f, \"p90_ms\": %.1f, "
              "\"all_ms\": %.1f}\n",
              waiters, answered, write_ms, cyme::bench::percentile(times, 0.5),
              cyme::bench::percentile(times, 0.9),
              cyme::bench::percentile(times, 1.0));
  return answered == waiters ? 0 : 1;
}

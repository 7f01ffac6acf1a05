// cyme-bench-http: how fast a branch answers GET / on its own, and while
// misbehaving clients hold connections open: --slow connections that send a
// request line and then one header byte a second, and --polls `wait` long
// polls on tasks that never finish. Prints one JSON line per case:
//   {"case": "...", "samples": K, "median_ms": ..., "p90_ms": ..., "max_ms": ...}
// bench/run.sh http runs it against a branch it starts.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "loopback.hpp"

namespace {

using cyme::bench::connect_to;
using cyme::bench::send_all;

/// One GET / on a fresh connection; its time in ms, or -1 without a 200.
double timed_get(int port) {
  auto start = std::chrono::steady_clock::now();
  int fd = connect_to(port);
  if (fd < 0)
    return -1;
  send_all(fd, "GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (out.rfind("HTTP/1.1 200", 0) != 0)
    return -1;
  return std::chrono::duration<double, std::milli>(
           std::chrono::steady_clock::now() - start)
    .count();
}

void report(const char* name, int port, int samples) {
  std::vector<double> ms;
  int failed = 0;
  for (int i = 0; i < samples; ++i) {
    auto t = timed_get(port);
    if (t < 0)
      ++failed;
    else
      ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms.empty() ? -1.0 : ms[static_cast<size_t>(q * (ms.size() - 1))];
  };
  std::printf("{\"case\": \"%s\", \"samples\": %zu, \"failed\": %d, "
              "\"median_ms\": %.3f, \"p90_ms\": %.3f, \"max_ms\": %.3f}\n",
              name, ms.size(), failed, at(0.5), at(0.9), ms.empty() ? -1.0 : ms.back());
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  int port = 0;
  int slow = 1000;
  int polls = 1000;
  int samples = 200;
  CLI::App app{"cyme-bench-http: GET / latency under slow clients and long polls"};
  app.add_option("--port", port, "the branch's HTTP port on 127.0.0.1")->required();
  app.add_option("--slow", slow, "connections that trickle their headers");
  app.add_option("--polls", polls, "open `wait` long polls");
  app.add_option("--samples", samples, "GET / requests per case");
  CLI11_PARSE(app, argc, argv);

  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);

  report("GET /, idle branch", port, samples);
  std::vector<int> fds;
  for (int i = 0; i < slow; ++i) {
    int fd = connect_to(port);
    if (fd < 0)
      break;
    send_all(fd, "GET / HTTP/1.1\r\nHost: b\r\nX-Slow: ");
    fds.push_back(fd);
  }
  std::vector<int> slow_fds = fds;
  for (int i = 0; i < polls; ++i) {
    int fd = connect_to(port);
    if (fd < 0)
      break;
    send_all(fd, "GET /bench/query/never-" + std::to_string(i)
                   + "/wait/?timeout=300 HTTP/1.1\r\nHost: b\r\n\r\n");
    fds.push_back(fd);
  }
  std::atomic<bool> trickling{true};
  std::thread trickle{[&] {
    while (trickling) {
      for (int fd : slow_fds)
        ::send(fd, "a", 1, MSG_NOSIGNAL);
      for (int i = 0; i < 10 && trickling; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
  }};
  // Let the long polls reach their waits.
  std::this_thread::sleep_for(std::chrono::seconds{2});
  auto name = "GET /, " + std::to_string(slow_fds.size()) + " slow clients and "
              + std::to_string(fds.size() - slow_fds.size()) + " long polls open";
  report(name.c_str(), port, samples);
  trickling = false;
  trickle.join();
  for (int fd : fds)
    ::close(fd);
  return 0;
}

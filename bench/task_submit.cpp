// cyme-bench-tasks: task submission through a branch's HTTP API. --clients
// keep-alive connections post --count tasks in all, either one per request
// (POST /APP/queue/QUEUE/ with {"handler": "echo"}) or as batches of
// --batch (a JSON array). A task counts once the branch answered 202, that
// is once the broker has it. Prints one JSON line:
//   {"figure": "submit", "mode": "single"|"batch", "clients": C,
//    "tasks": N, "seconds": S, "tasks_per_s": R, "failed": F}
// bench/run.sh tasks runs it beside kcat producing the same messages.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>

int main(int argc, char** argv) {
  CLI::App app{"task submission through a branch's HTTP API"};
  int port = 0;
  std::string app_name = "bench";
  std::string queue = "submit";
  int clients = 16;
  long count = 100000;
  int batch = 0;
  app.add_option("--port", port, "the branch's HTTP port")->required();
  app.add_option("--app", app_name, "app of the queue");
  app.add_option("--queue", queue, "queue the tasks go to");
  app.add_option("--clients", clients, "keep-alive connections")
    ->check(CLI::Range(1, 1024));
  app.add_option("--count", count, "tasks in all")->check(CLI::Range(1L, 100000000L));
  app.add_option("--batch", batch, "tasks per request (0: one, no array)")
    ->check(CLI::Range(0, 10000));
  CLI11_PARSE(app, argc, argv);
  auto path = "/" + app_name + "/queue/" + queue + "/";
  std::string body;
  long per_request = batch == 0 ? 1 : batch;
  if (batch == 0) {
    body = R"({"handler": "echo"})";
  } else {
    body = "[";
    for (int i = 0; i < batch; ++i)
      body += std::string{i == 0 ? "" : ","} + R"({"handler": "echo"})";
    body += "]";
  }
  long requests = (count + per_request - 1) / per_request;
  std::atomic<long> next{0};
  std::atomic<long> done{0};
  std::atomic<long> failed{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&] {
      httplib::Client client{"127.0.0.1", port};
      client.set_keep_alive(true);
      // Header and body in two writes must not wait on a delayed ACK
      // (Nagle): real clients (curl, urllib3) set this too.
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      while (next.fetch_add(1) < requests) {
        auto r = client.Post(path.c_str(), body, "application/json");
        if (r && r->status == 202)
          done += per_request;
        else
          failed += per_request;
      }
    });
  for (auto& t : threads)
    t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
               .count();
  std::printf("{\"figure\": \"submit\", \"mode\": \"%s\", \"clients\": %d, "
              "\"batch\": %d, \"tasks\": %ld, \"seconds\": %.3f, "
              "\"tasks_per_s\": %.0f, \"failed\": %ld}\n",
              batch == 0 ? "single" : "batch", clients, batch, done.load(), s,
              s > 0 ? static_cast<double>(done.load()) / s : 0.0,
              failed.load());
  return failed.load() == 0 ? 0 : 1;
}

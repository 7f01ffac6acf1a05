#pragma once

/// The cyme-worker instance: consumes its queues (and its direct queue)
/// with a pool of task runners, answers the control protocol, publishes
/// task results. See docs/PROTOCOL.md.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "messages/topics.hpp"
#include "worker/handlers.hpp"

namespace cyme::worker {

/// Everything a worker is started with; defaults are the product's.
struct worker_options {
  std::string name;
  std::string app;
  /// Bootstrap servers.
  std::string broker;
  std::vector<std::string> queues;
  uint32_t max_concurrency = 1;
  uint32_t min_concurrency = 1;
  std::string control_topic = topics::control;
  std::string results_topic = topics::results;
  /// Partitions of queue topics this worker creates.
  int queue_partitions = topics::queue_partitions;
  /// fetch.wait.max.ms of the control reader: its latency on brokers that
  /// answer a waiting fetch only at the deadline (the embedded cluster).
  int control_fetch_wait_ms = 10;
  /// Set by the process driver: when the instance's previous process
  /// exited, if recently, else when it started this one (ms since the
  /// epoch, its clock). Commands made from then on are read, those made
  /// before (for an earlier process of the instance) are ignored. -1: read
  /// from the end of the control topic as of start, take all.
  int64_t control_since_ms = -1;
  /// A runner idle this long leaves, down to min_concurrency.
  std::chrono::milliseconds keepalive{2000};
  exec_settings exec;
  /// Set by the process driver: the folder of this instance under the
  /// branch root. Only identifies the process; the worker does not use it.
  std::string instance_dir;
  /// librdkafka properties of every client (from --kafka-config FILE).
  std::map<std::string, std::string> kafka_properties;
  /// Started ahead of need (--standby): gets on the bus, then waits on the
  /// socket that is its stdin for the adoption that names its instance
  /// (messages/adoption.hpp). No --name, --queues, --min or --max then:
  /// they come with the adoption.
  bool standby = false;
};

/// Parses the command line. On --help prints usage and exits 0; on bad
/// input prints the error and exits 2.
worker_options parse_worker_options(int argc, char** argv);

/// Empty when the options are valid, else the first problem.
std::string options_problem(const worker_options& opts);

/// Runs until told to shut down (control command, SIGTERM or SIGINT):
/// stops taking tasks, finishes running ones, commits, returns 0. Returns
/// 1 when it cannot start (e.g. no broker). A standby returns 0 when its
/// socket ends before it is adopted, 2 when its adoption is unusable.
int run_worker(worker_options opts, const handler_registry& handlers);

/// parse_worker_options + builtins + run_worker: the main() of a program
/// that embeds the worker with its own handlers.
int run_worker_main(int argc, char** argv, handler_registry handlers);

} // namespace cyme::worker

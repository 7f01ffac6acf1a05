#pragma once

/// Keeps the embedded Kafka cluster in a process of its own
/// (`cyme-embedded-kafka`, in its own session) so that it outlives a
/// crashed branch: the re-adopted workers keep their bus. A restarted
/// branch finds it again through the files it left in its folder: a pid
/// file (pid + start time, checked against /proc and the command line) and
/// the bootstrap address, which must answer.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "transport/proc.hpp"

namespace cyme {

struct embedded_kafka {
  std::string bootstrap;
  int32_t pid = 0;
  /// Started by this branch (else found running).
  bool started_here = false;
};

/// Finds the embedded cluster running for `dir`, or starts `program` for
/// it. On failure returns nothing and says why in `error`.
std::optional<embedded_kafka>
ensure_embedded_kafka(const std::filesystem::path& dir,
                      const std::filesystem::path& program, std::string& error);

/// Stops it (SIGTERM, SIGKILL after 5 s) and removes its files.
void stop_embedded_kafka(const std::filesystem::path& dir,
                         const embedded_kafka& kafka);

/// Supervises the embedded cluster while the branch runs: when its process
/// ends (a crash, kill -9), starts it again at once on the same loopback
/// ports, so the branch's clients and its workers find it at the address
/// they know and reconnect by themselves. What the cluster held in memory
/// (tasks, results, events, consumer groups' offsets) is gone.
///
/// A start that fails (the port taken meanwhile, say) is tried again, at
/// most once a second, until it succeeds or the watch ends.
class embedded_kafka_watch {
public:
  /// A new process serves the cluster again: how the old one ended ({"code":
  /// N} or {"signal": "SIGKILL"}, empty when not known) and how long after
  /// its end the new one was ready.
  using restarted_fn = std::function<void(
    const embedded_kafka& now, const std::map<std::string, std::string>& ended,
    std::chrono::milliseconds took)>;
  /// A start failed (it is tried again).
  using failed_fn = std::function<void(const std::string& why)>;

  /// Watches `kafka`, the cluster of `dir`; starts `program` for it again.
  /// The callbacks run on the watch's own thread.
  embedded_kafka_watch(std::filesystem::path dir, std::filesystem::path program,
                       embedded_kafka kafka, restarted_fn on_restarted,
                       failed_fn on_failed);

  /// Stops watching; the cluster is left as it is.
  ~embedded_kafka_watch();

  embedded_kafka_watch(const embedded_kafka_watch&) = delete;
  embedded_kafka_watch& operator=(const embedded_kafka_watch&) = delete;

  /// The cluster as it runs now (its pid changes with each restart).
  embedded_kafka current() const;

private:
  void run();
  /// Waits until the cluster's process ends (true) or the watch is asked to
  /// stop (false); says how it ended.
  bool wait_for_end(std::map<std::string, std::string>& ended);
  /// Waits `d` unless asked to stop (false then).
  bool pause(std::chrono::milliseconds d);

  std::filesystem::path dir_;
  std::filesystem::path program_;
  restarted_fn on_restarted_;
  failed_fn on_failed_;
  mutable std::mutex mtx_;
  embedded_kafka kafka_;
  /// Readable once the watch is to stop.
  unique_fd stop_read_;
  unique_fd stop_write_;
  std::thread thread_;
};

} // namespace cyme

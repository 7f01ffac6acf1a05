#pragma once

/// Task submission to one broker, asynchronous: each batch of tasks is
/// queued to librdkafka at once and its completion is called from the
/// producer's own polling thread when the broker has acknowledged every
/// task of the batch, or one failed. No caller waits on the broker, and no
/// lock is held across broker I/O.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "transport/kafka.hpp"

namespace cyme {

class task_producer {
public:
  /// Empty when the broker stored every task of the batch, else why not
  /// (the first failure).
  using done_fn = std::function<void(const std::string& error)>;

  /// One task: its id (the message key, unique) and its encoded bytes.
  using item = std::pair<std::string, std::string>;

  /// The client properties submission uses, over `base` (the broker's
  /// address and its operator-given properties).
  static kafka::config_map settings(kafka::config_map base);

  explicit task_producer(const kafka::config_map& cfg);
  ~task_producer();

  task_producer(const task_producer&) = delete;
  task_producer& operator=(const task_producer&) = delete;

  /// Queues every task of `batch` on `topic`. `done` is called exactly once:
  /// from the polling thread once the broker answered for all of them, or
  /// at once (on the caller's thread) when librdkafka would not queue one;
  /// tasks queued before that one may still reach the broker.
  void send(const std::string& topic, std::vector<item> batch, done_fn done);

  /// Creates topics that do not exist (broker I/O, on the caller's thread).
  std::string ensure_topics(const std::vector<std::string>& topics,
                            int partitions, int timeout_ms);

private:
  struct batch_state {
    std::atomic<size_t> pending{0};
    std::mutex mtx;
    std::string error;
    done_fn done;
  };

  void delivered(const std::string& key, const std::string& error);
  static void settle(batch_state& b, const std::string& error);

  std::mutex mtx_;
  /// The batch of each task not answered for yet, by id.
  std::unordered_map<std::string, std::shared_ptr<batch_state>> waiting_;
  kafka::producer producer_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

} // namespace cyme

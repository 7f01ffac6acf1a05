#pragma once

/// What the branch knows of task results: a thread follows the results
/// topic (from its beginning, so results from before a branch restart are
/// found) and keeps the newest result of each task id, up to a bound,
/// oldest forgotten first. A query can watch for a result, holding no
/// thread meanwhile.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <atomic>

#include "messages/wire.hpp"
#include "transport/kafka.hpp"
#include "transport/property_book.hpp"

namespace cyme {

class task_results {
public:
  /// The results kept in memory, per broker: at most this many tasks and
  /// this many bytes (a result may be up to 64 KiB), the oldest forgotten
  /// first when either is passed.
  static constexpr std::size_t default_capacity = 100000;
  static constexpr std::size_t default_max_bytes = 256u << 20;

  /// Starts following `topic` on the cluster of `cfg`; results beyond
  /// `capacity` tasks or `max_bytes` forget the oldest.
  task_results(kafka::config_map cfg, std::string topic,
               std::size_t capacity = default_capacity,
               std::size_t max_bytes = default_max_bytes);
  ~task_results();
  task_results(const task_results&) = delete;
  task_results& operator=(const task_results&) = delete;

  /// The result of task `id`, if one arrived.
  std::optional<task_result> find(const std::string& id) const;

  using watcher = std::function<void(const task_result&)>;

  /// Calls `fn` once with the result of task `id`: at once (on this
  /// thread) when it is known, else when it arrives (on the reader's
  /// thread). Nothing waits meanwhile. Returns a handle for `unwatch`.
  uint64_t watch(const std::string& id, watcher fn);

  /// Forgets a watch whose result has not come (a long poll that ended).
  void unwatch(uint64_t handle);

  /// Results read so far, by state ("SUCCESS", "FAILURE", ...).
  std::map<std::string, uint64_t> counts() const;

  /// The results kept now, and the bytes they take.
  std::size_t kept() const;
  std::size_t kept_bytes() const;

  /// What one kept result counts for against `max_bytes`: its texts and
  /// the bookkeeping around them.
  static std::size_t size_of(const task_result& r);

private:
  void run();
  /// Keeps `r`, forgetting the oldest beyond the bounds. Under `mtx_`.
  task_result& keep(task_result&& r);

  kafka::config_map cfg_;
  std::string topic_;
  std::size_t capacity_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  mutable std::mutex mtx_;
  std::map<std::string, task_result> results_;
  std::multimap<std::string, std::pair<uint64_t, watcher>> watchers_;
  std::map<uint64_t, std::string> watched_ids_;
  std::map<std::string, uint64_t> counts_;
  uint64_t next_watch_ = 1;
  std::deque<std::string> order_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// The task results of every broker the branch's apps use: one
/// `task_results` per broker, made at its first use, and made again when
/// the broker's client properties change. A reader follows its topic from
/// the beginning, so a result that came before is found.
class task_result_readers {
public:
  task_result_readers(std::shared_ptr<const kafka::property_book> properties,
                      std::string topic);

  /// The results of broker `bootstrap`.
  std::shared_ptr<task_results> of(const std::string& bootstrap);

  /// Results read so far on every broker, by state.
  std::map<std::string, uint64_t> counts();

private:
  struct reader {
    std::shared_ptr<task_results> results;
    uint64_t version = 0;
  };
  std::shared_ptr<const kafka::property_book> properties_;
  std::string topic_;
  std::mutex mtx_;
  std::map<std::string, reader> readers_;
};

} // namespace cyme

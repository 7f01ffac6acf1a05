#pragma once

/// The worker's pool of task runners. It holds between `min` and `max`
/// threads: it grows while tasks wait and shrinks back after a thread idled
/// for `keepalive`. At most `max` tasks are in it (running or waiting) at
/// once; `submit` blocks beyond that, which throttles the queue consumers.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

namespace cyme::worker {

class task_pool {
public:
  task_pool(uint32_t max, uint32_t min, std::chrono::milliseconds keepalive);
  ~task_pool();
  task_pool(const task_pool&) = delete;
  task_pool& operator=(const task_pool&) = delete;

  /// Runs `job` on a runner; blocks while the pool is full. Returns false
  /// (without running it) once the pool is stopping.
  bool submit(std::function<void()> job);

  /// New bounds, applied at once: missing runners start, extra idle ones
  /// leave. Requires 1 <= min <= max.
  void set_bounds(uint32_t max, uint32_t min);

  uint32_t max() const;
  uint32_t min() const;
  /// Runner threads alive now.
  uint32_t size() const;

  /// Finishes what was submitted, then joins every runner.
  void stop();

private:
  void spawn_locked();
  void run();

  mutable std::mutex mtx_;
  std::condition_variable work_;
  std::condition_variable space_;
  std::condition_variable gone_;
  std::deque<std::function<void()>> queue_;
  uint32_t max_;
  uint32_t min_;
  std::chrono::milliseconds keepalive_;
  uint32_t threads_ = 0;
  uint32_t busy_ = 0;
  bool stopping_ = false;
};

} // namespace cyme::worker

#include "worker/task_pool.hpp"

#include <thread>

#include "transport/thread_name.hpp"

namespace cyme::worker {

task_pool::task_pool(uint32_t max, uint32_t min,
                     std::chrono::milliseconds keepalive)
  : max_(max), min_(min), keepalive_(keepalive) {
  std::lock_guard<std::mutex> guard{mtx_};
  while (threads_ < min_)
    spawn_locked();
}

task_pool::~task_pool() {
  stop();
}

void task_pool::spawn_locked() {
  ++threads_;
  std::thread t{[this] { run(); }};
  name_thread(t, "cyme-task");
  t.detach();
}

bool task_pool::submit(std::function<void()> job) {
  std::unique_lock<std::mutex> lock{mtx_};
  space_.wait(lock, [&] { return stopping_ || queue_.size() + busy_ < max_; });
  if (stopping_)
    return false;
  queue_.push_back(std::move(job));
  // Grow while tasks wait for a runner.
  if (threads_ - busy_ < queue_.size() && threads_ < max_)
    spawn_locked();
  work_.notify_one();
  return true;
}

void task_pool::run() {
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    bool woke = work_.wait_for(lock, keepalive_, [&] {
      return stopping_ || !queue_.empty() || threads_ > max_;
    });
    if (!queue_.empty()) {
      auto job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      lock.unlock();
      job();
      lock.lock();
      --busy_;
      space_.notify_all();
      continue;
    }
    // Shrink: above max at once, above min after idling for keepalive.
    if (stopping_ || threads_ > max_ || (!woke && threads_ > min_))
      break;
  }
  --threads_;
  gone_.notify_all();
}

void task_pool::set_bounds(uint32_t max, uint32_t min) {
  std::lock_guard<std::mutex> guard{mtx_};
  max_ = max;
  min_ = min;
  while (!stopping_ && threads_ < min_)
    spawn_locked();
  work_.notify_all();
  space_.notify_all();
}

uint32_t task_pool::max() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return max_;
}

uint32_t task_pool::min() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return min_;
}

uint32_t task_pool::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return threads_;
}

void task_pool::stop() {
  std::unique_lock<std::mutex> lock{mtx_};
  // Let waiting tasks run first: a stop finishes what was accepted.
  space_.wait(lock, [&] { return queue_.empty() || threads_ == 0; });
  stopping_ = true;
  work_.notify_all();
  space_.notify_all();
  gone_.wait(lock, [&] { return threads_ == 0; });
}

} // namespace cyme::worker

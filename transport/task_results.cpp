#include "transport/task_results.hpp"

#include <algorithm>
#include <memory>

#include "messages/topics.hpp"
#include "transport/logging.hpp"
#include "transport/thread_name.hpp"

namespace cyme {

namespace {

constexpr log::logger results_log{"task results"};

} // namespace

task_results::task_results(kafka::config_map cfg, std::string topic,
                           std::size_t capacity, std::size_t max_bytes)
  : cfg_(std::move(cfg)),
    topic_(std::move(topic)),
    capacity_(capacity),
    max_bytes_(max_bytes) {
  thread_ = std::thread{[this] { run(); }};
  name_thread(thread_, "cyme-results");
}

task_results::~task_results() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void task_results::run() {
  std::unique_ptr<kafka::topic_reader> reader;
  std::string last_error;
  while (!stop_) {
    if (!reader) {
      std::string err;
      try {
        // The topic appears with a fleet's first result; creating it here
        // lets the reader start on a fleet that has none yet.
        kafka::producer admin{cfg_};
        err = admin.ensure_topics({topic_}, topics::results_partitions, 5000);
        if (err.empty())
          reader = std::make_unique<kafka::topic_reader>(cfg_, topic_, 5000,
                                                         true);
      } catch (const std::exception& e) {
        err = e.what();
      }
      if (!reader) {
        if (err != last_error)
          results_log.warn("cannot read " + topic_ + ": " + err
                           + " (retrying every second)");
        last_error = err;
        // Retry after a pause, still answering stop requests promptly.
        for (int i = 0; i < 10 && !stop_; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds{100});
        continue;
      }
      if (!last_error.empty())
        results_log.info("reading " + topic_ + " again");
      last_error.clear();
    }
    auto m = reader->poll(100);
    if (!m)
      continue;
    auto r = decode_result(m->value);
    if (!r) {
      results_log.warn("dropped: " + r.error);
      continue;
    }
    std::vector<watcher> due;
    std::unique_lock<std::mutex> lock{mtx_};
    auto id = r.value->id;
    counts_[to_string(r.value->state)] += 1;
    auto& stored = keep(std::move(*r.value));
    auto range = watchers_.equal_range(id);
    for (auto i = range.first; i != range.second; ++i) {
      due.push_back(std::move(i->second.second));
      watched_ids_.erase(i->second.first);
    }
    watchers_.erase(range.first, range.second);
    auto copy = due.empty() ? task_result{} : stored;
    lock.unlock();
    for (auto& fn : due)
      fn(copy);
  }
}

std::size_t task_results::size_of(const task_result& r) {
  // The map node and the order entry: about 200 bytes besides the texts.
  return 2 * r.id.size() + r.result_json.size() + r.error.size()
         + r.instance.size() + r.queue.size() + 200;
}

task_result& task_results::keep(task_result&& r) {
  auto [at, added] = results_.try_emplace(r.id);
  if (added) {
    order_.push_back(r.id);
  } else {
    // A result again (a task run twice): it counts as the newest.
    bytes_ -= size_of(at->second);
    order_.erase(std::find(order_.begin(), order_.end(), r.id));
    order_.push_back(r.id);
  }
  bytes_ += size_of(r);
  at->second = std::move(r);
  // The newest is always kept, even alone over the bounds.
  while (order_.size() > 1
         && (order_.size() > capacity_ || bytes_ > max_bytes_)) {
    auto old = results_.find(order_.front());
    bytes_ -= size_of(old->second);
    results_.erase(old);
    order_.pop_front();
  }
  return at->second;
}

std::size_t task_results::kept() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return results_.size();
}

std::size_t task_results::kept_bytes() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return bytes_;
}

std::optional<task_result> task_results::find(const std::string& id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = results_.find(id);
  if (i == results_.end())
    return std::nullopt;
  return i->second;
}

uint64_t task_results::watch(const std::string& id, watcher fn) {
  std::unique_lock<std::mutex> lock{mtx_};
  if (auto i = results_.find(id); i != results_.end()) {
    auto copy = i->second;
    lock.unlock();
    fn(copy);
    return 0;
  }
  auto handle = next_watch_++;
  watchers_.emplace(id, std::pair{handle, std::move(fn)});
  watched_ids_.emplace(handle, id);
  return handle;
}

void task_results::unwatch(uint64_t handle) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = watched_ids_.find(handle);
  if (i == watched_ids_.end())
    return;
  auto range = watchers_.equal_range(i->second);
  for (auto w = range.first; w != range.second; ++w)
    if (w->second.first == handle) {
      watchers_.erase(w);
      break;
    }
  watched_ids_.erase(i);
}

std::map<std::string, uint64_t> task_results::counts() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return counts_;
}

std::map<std::string, uint64_t> task_result_readers::counts() {
  std::lock_guard<std::mutex> guard{mtx_};
  std::map<std::string, uint64_t> out;
  for (auto& [broker, r] : readers_)
    for (auto& [state, n] : r.results->counts())
      out[state] += n;
  return out;
}

task_result_readers::task_result_readers(
  std::shared_ptr<const kafka::property_book> properties, std::string topic)
  : properties_(std::move(properties)), topic_(std::move(topic)) {
}

std::shared_ptr<task_results>
task_result_readers::of(const std::string& bootstrap) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto version = properties_->version(bootstrap);
  auto& r = readers_[bootstrap];
  if (!r.results || r.version != version) {
    r.results = std::make_shared<task_results>(
      kafka::base_config(bootstrap, properties_->for_broker(bootstrap)),
      topic_);
    r.version = version;
  }
  return r.results;
}

} // namespace cyme

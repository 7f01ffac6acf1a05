#include "transport/task_producer.hpp"

#include "transport/thread_name.hpp"

namespace cyme {

kafka::config_map task_producer::settings(kafka::config_map base) {
  base["message.timeout.ms"] = "10000";
  // A request is answered only once the broker has its tasks, so waiting
  // to fill a batch (librdkafka's default 5 ms) is latency every
  // single-task request pays; tasks queued while a send is out still go
  // together in the next one.
  base["linger.ms"] = "0";
  // One request in flight per connection: a broker serves a connection's
  // requests one at a time, so tasks queued while a send is out go in
  // the next request, not in a request each queued behind it.
  base["max.in.flight.requests.per.connection"] = "1";
  return base;
}

task_producer::task_producer(const kafka::config_map& cfg)
  : producer_(cfg, [this](const std::string& key, const std::string& error) {
      delivered(key, error);
    }) {
  poller_ = std::thread{[this] {
    // Delivery reports are served here, and only here.
    while (!stop_.load())
      producer_.poll(50);
  }};
  name_thread(poller_, "cyme-deliver");
}

task_producer::~task_producer() {
  producer_.flush(2000);
  stop_ = true;
  poller_.join();
  // Batches the broker never answered for: say so rather than drop them.
  std::unordered_map<std::string, std::shared_ptr<batch_state>> left;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    left.swap(waiting_);
  }
  for (auto& [key, b] : left)
    settle(*b, "the branch is stopping");
}

void task_producer::settle(batch_state& b, const std::string& error) {
  {
    std::lock_guard<std::mutex> guard{b.mtx};
    if (!error.empty() && b.error.empty())
      b.error = error;
  }
  if (--b.pending == 0) {
    done_fn done;
    std::string why;
    {
      std::lock_guard<std::mutex> guard{b.mtx};
      done = std::move(b.done);
      why = b.error;
    }
    if (done)
      done(why);
  }
}

void task_producer::delivered(const std::string& key, const std::string& error) {
  std::shared_ptr<batch_state> b;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = waiting_.find(key);
    if (i == waiting_.end())
      return;
    b = std::move(i->second);
    waiting_.erase(i);
  }
  settle(*b, error);
}

void task_producer::send(const std::string& topic, std::vector<item> batch,
                         done_fn done) {
  auto b = std::make_shared<batch_state>();
  b->done = std::move(done);
  // One more than the tasks while queuing, so no report ends the batch
  // before all are queued.
  b->pending = batch.size() + 1;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [key, bytes] : batch)
      waiting_.emplace(key, b);
  }
  size_t queued = 0;
  for (; queued < batch.size(); ++queued) {
    auto& [key, bytes] = batch[queued];
    if (auto err = producer_.produce(topic, key, bytes); !err.empty()) {
      // The rest are not queued: take them back and fail the batch.
      {
        std::lock_guard<std::mutex> guard{mtx_};
        for (size_t j = queued; j < batch.size(); ++j)
          waiting_.erase(batch[j].first);
      }
      {
        std::lock_guard<std::mutex> guard{b->mtx};
        if (b->error.empty())
          b->error = "task " + std::to_string(queued) + " not queued: " + err;
      }
      b->pending -= batch.size() - queued;
      break;
    }
  }
  settle(*b, {});
}

std::string task_producer::ensure_topics(const std::vector<std::string>& topics,
                                         int partitions, int timeout_ms) {
  return producer_.ensure_topics(topics, partitions, timeout_ms);
}

} // namespace cyme

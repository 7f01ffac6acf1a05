#pragma once

/// Tasks through the HTTP API: submission to a queue's topic, and results
/// (state, result, and `wait`, a long poll that holds no thread). Internal
/// to api/.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "api/common.hpp"

namespace cyme::api {

class task_room {
public:
  explicit task_room(context& ctx) : ctx_(ctx) {
  }

  /// POST /<app>/queue/<queue>/: one task, answered 202 with its id once
  /// the broker has it.
  void send(const std::string& method, const std::string& app,
            const std::string& queue, const params& p, http::response& res);

  /// GET /<app>/query/<id>/<what>/. `wait` parks the exchange: it is
  /// answered when the result arrives or the timeout passes, and returns
  /// true; the other queries answer in `res` and return false.
  bool query(const http::exchange_ptr& ex, const std::string& method,
             const std::string& app, const std::string& id,
             const std::string& what, const params& p, http::response& res);

  /// Tasks accepted by the broker so far.
  uint64_t submitted() const {
    return submitted_;
  }

private:
  struct task_producer {
    std::unique_ptr<kafka::producer> client;
    /// The version of its broker's properties it was made with.
    uint64_t version = 0;
  };

  kafka::producer& producer_for(const std::string& broker);

  context& ctx_;
  std::mutex producers_mtx_;
  /// (broker, queue) pairs whose topic is known to exist: checked once,
  /// not with a metadata request per task.
  std::set<std::pair<std::string, std::string>> known_topics_;
  std::map<std::string, task_producer> producers_;
  std::atomic<uint64_t> submitted_{0};
};

} // namespace cyme::api

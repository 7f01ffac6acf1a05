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
#include <vector>

#include "api/common.hpp"
#include "transport/task_producer.hpp"

namespace cyme::api {

class task_room {
public:
  explicit task_room(context& ctx) : ctx_(ctx) {
  }

  /// POST /<app>/queue/<queue>/: one task ({"handler", "args"}), or a
  /// batch (a JSON array of up to `max_batch` of them). Everything is
  /// checked first: a wrong item is refused (400, naming its index) and
  /// nothing is queued. The exchange is parked and answered 202 with the
  /// id ({"id"}) or the ids in order ({"ids"}) once the broker has every
  /// task, 503 if it does not take one. Always returns true (parked).
  /// With `may_wait` false, throws `would_wait` before anything is queued
  /// if the queue's topic has to be checked on the broker first.
  bool send(const http::exchange_ptr& ex, const std::string& method,
            const std::string& app, const std::string& queue,
            const params& p, bool may_wait);

  static constexpr size_t max_batch = 10000;

  /// Whether a request for `send` may run on the HTTP server's own thread:
  /// a small body (one task, not a large batch to parse) for a queue whose
  /// topic is known on the app's broker, so nothing in it waits. `seg` is
  /// the path without a leading "apps". Saves the hand-over to the handler
  /// pool, which was a sixth of the branch's CPU per task.
  bool sends_at_once(const http::request& req,
                     const std::vector<std::string>& seg);

  /// Bodies up to this size may be sent from the server's thread.
  static constexpr size_t at_once_body = 4096;

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
  struct producer_slot {
    std::shared_ptr<task_producer> client;
    /// The version of its broker's properties it was made with.
    uint64_t version = 0;
  };

  /// The broker's producer, and whether `queue`'s topic is known to exist
  /// there.
  std::shared_ptr<task_producer> producer_for(const std::string& broker,
                                              const std::string& queue,
                                              bool& topic_known);

  context& ctx_;
  /// Held only to look up or make a producer, never across broker I/O.
  std::mutex producers_mtx_;
  /// (broker, queue) pairs whose topic is known to exist: checked once,
  /// not with a metadata request per task.
  std::set<std::pair<std::string, std::string>> known_topics_;
  std::map<std::string, producer_slot> producers_;
  std::atomic<uint64_t> submitted_{0};
};

} // namespace cyme::api

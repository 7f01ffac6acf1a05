#pragma once

/// The branch's events: every supervisor event, stamped with a time, this
/// branch and a sequence number, kept in a bounded ring (oldest forgotten
/// first), handed to followers (Server-Sent Events) as it happens, and
/// published on the Kafka topic `cyme.events` so a cluster's events can be
/// read in one place. Nothing here waits: followers get events through
/// calls that only queue, and the Kafka producer runs on a thread of its
/// own.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "messages/supervision.hpp"
#include "messages/wall_clock.hpp"
#include "messages/wire.hpp"
#include "transport/http_server.hpp"
#include "transport/kafka.hpp"

namespace cyme {

/// One event as served: its number, and its JSON text.
struct event_record {
  uint64_t id = 0;
  std::string app;
  std::string instance;
  event_kind kind = event_kind::started;
  /// {"id", "time", "branch", "app", "instance", "kind", "detail", "data"}.
  std::string json;
};

/// Which events a follower wants (empty: all).
struct event_filter {
  std::string app;
  std::string instance;

  bool matches(const event_record& e) const {
    return (app.empty() || e.app == app)
           && (instance.empty() || e.instance == instance);
  }
};

class event_hub {
public:
  /// Told of each new event, under the hub's lock: it must only queue.
  /// Returns false to stop following.
  using follower = std::function<bool(const event_record&)>;

  event_hub(std::string branch_id, std::size_t capacity = 10000);

  /// Stamps, keeps and hands on one event.
  void publish(const supervisor_event& ev);

  /// Hands `fn` the kept events after `after` that match, then every new
  /// one, with nothing lost or repeated between the two. Returns a handle
  /// for `unfollow`, or 0 when `fn` stopped during the backlog.
  uint64_t follow(uint64_t after, const event_filter& filter, follower fn);

  void unfollow(uint64_t handle);

  /// The kept events after `after` that match.
  std::vector<event_record> since(uint64_t after,
                                  const event_filter& filter) const;

  /// The numbers of the newest event (0: none yet) and of the oldest kept.
  uint64_t newest() const;
  uint64_t oldest() const;

  /// Also hands every event to `sink` (the Kafka publisher), under the
  /// hub's lock: it must only queue.
  void set_sink(std::function<void(const event_record&)> sink);

  std::size_t capacity() const {
    return capacity_;
  }

private:
  std::string branch_;
  std::size_t capacity_;
  mutable std::mutex mtx_;
  std::deque<event_record> ring_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::pair<event_filter, follower>> followers_;
  uint64_t next_follower_ = 1;
  std::function<void(const event_record&)> sink_;
};

/// Publishes events on `cyme.events` of one Kafka cluster, keyed by branch,
/// from a thread of its own. Events that pile up while the broker is
/// unreachable are bounded: the oldest are dropped (and counted).
class event_publisher {
public:
  event_publisher(kafka::config_map cfg, std::string branch_id,
                  std::size_t backlog = 10000);
  ~event_publisher();
  event_publisher(const event_publisher&) = delete;
  event_publisher& operator=(const event_publisher&) = delete;

  /// Queues one event (never waits).
  void enqueue(const event_record& e);

  uint64_t published() const;
  uint64_t dropped() const;

private:
  void run();

  kafka::config_map cfg_;
  std::string branch_;
  std::size_t backlog_;
  mutable std::mutex mtx_;
  std::condition_variable ready_;
  std::deque<std::string> queue_;
  bool stop_ = false;
  uint64_t published_ = 0;
  uint64_t dropped_ = 0;
  std::thread thread_;
};

/// GET /events/: the hub's events as Server-Sent Events, from `since` (or
/// Last-Event-ID) on, filtered by app and instance, followed unless
/// follow=0. Answers on the calling thread without waiting: it runs on the
/// server's thread.
void serve_events(event_hub& hub, const http::exchange_ptr& ex);

} // namespace cyme

#include "api/events.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include "messages/names.hpp"
#include "messages/topics.hpp"
#include "transport/logging.hpp"
#include "transport/thread_name.hpp"

namespace cyme {

namespace {

constexpr log::logger events_log{"events"};

} // namespace

event_hub::event_hub(std::string branch_id, std::size_t capacity)
  : branch_(std::move(branch_id)), capacity_(capacity) {
}

void event_hub::publish(const supervisor_event& ev) {
  nlohmann::json data = nlohmann::json::object();
  for (auto& [k, v] : ev.data)
    data[k] = v;
  std::lock_guard<std::mutex> guard{mtx_};
  event_record rec;
  rec.id = next_id_++;
  rec.app = ev.app;
  rec.instance = ev.instance;
  rec.kind = ev.kind;
  rec.json = nlohmann::json{{"id", rec.id},
                            {"time", wall_time_text(wall_now_ms())},
                            {"branch", branch_},
                            {"app", ev.app},
                            {"instance", ev.instance},
                            {"kind", event_name(ev.kind)},
                            {"detail", ev.detail},
                            {"data", data}}
               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (auto i = followers_.begin(); i != followers_.end();) {
    auto& [filter, fn] = i->second;
    if (filter.matches(rec) && !fn(rec))
      i = followers_.erase(i);
    else
      ++i;
  }
  if (sink_)
    sink_(rec);
  ring_.push_back(std::move(rec));
  if (ring_.size() > capacity_)
    ring_.pop_front();
}

uint64_t event_hub::follow(uint64_t after, const event_filter& filter,
                           follower fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& e : ring_)
    if (e.id > after && filter.matches(e) && !fn(e))
      return 0;
  auto handle = next_follower_++;
  followers_.emplace(handle, std::pair{filter, std::move(fn)});
  return handle;
}

void event_hub::unfollow(uint64_t handle) {
  std::lock_guard<std::mutex> guard{mtx_};
  followers_.erase(handle);
}

std::vector<event_record> event_hub::since(uint64_t after,
                                           const event_filter& filter) const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<event_record> out;
  for (auto& e : ring_)
    if (e.id > after && filter.matches(e))
      out.push_back(e);
  return out;
}

uint64_t event_hub::newest() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return next_id_ - 1;
}

uint64_t event_hub::oldest() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return ring_.empty() ? next_id_ : ring_.front().id;
}

void event_hub::set_sink(std::function<void(const event_record&)> sink) {
  std::lock_guard<std::mutex> guard{mtx_};
  sink_ = std::move(sink);
}

// -- event_publisher --------------------------------------------------------------

event_publisher::event_publisher(kafka::config_map cfg, std::string branch_id,
                                 std::size_t backlog)
  : cfg_(std::move(cfg)), branch_(std::move(branch_id)), backlog_(backlog) {
  thread_ = std::thread{[this] { run(); }};
  name_thread(thread_, "cyme-events");
}

event_publisher::~event_publisher() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stop_ = true;
  }
  ready_.notify_all();
  thread_.join();
}

void event_publisher::enqueue(const event_record& e) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    queue_.push_back(e.json);
    if (queue_.size() > backlog_) {
      queue_.pop_front();
      ++dropped_;
    }
  }
  ready_.notify_one();
}

uint64_t event_publisher::published() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return published_;
}

uint64_t event_publisher::dropped() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return dropped_;
}

void event_publisher::run() {
  std::unique_ptr<kafka::producer> producer;
  std::string last_error;
  for (;;) {
    std::deque<std::string> batch;
    {
      std::unique_lock<std::mutex> lock{mtx_};
      ready_.wait_for(lock, std::chrono::milliseconds{200},
                      [this] { return stop_ || !queue_.empty(); });
      if (stop_) {
        // What was published reaches the broker before the branch goes.
        if (producer)
          producer->flush(2000);
        return;
      }
      batch.swap(queue_);
    }
    if (!producer) {
      std::string err;
      try {
        auto p = std::make_unique<kafka::producer>(cfg_);
        err = p->ensure_topics({topics::events}, topics::events_partitions, 5000);
        if (err.empty())
          producer = std::move(p);
      } catch (const std::exception& e) {
        err = e.what();
      }
      if (!producer) {
        if (err != last_error)
          events_log.warn(std::string{"cannot publish on "} + topics::events
                          + ": " + err + " (retrying)");
        last_error = err;
        // Put the batch back (bounded) and try again in a second.
        std::unique_lock<std::mutex> lock{mtx_};
        for (auto i = batch.rbegin(); i != batch.rend(); ++i)
          queue_.push_front(std::move(*i));
        while (queue_.size() > backlog_) {
          queue_.pop_front();
          ++dropped_;
        }
        ready_.wait_for(lock, std::chrono::seconds{1}, [this] { return stop_; });
        continue;
      }
      last_error.clear();
    }
    uint64_t sent = 0;
    for (auto& json : batch)
      if (producer->produce(topics::events, branch_, json).empty())
        ++sent;
    producer->poll(0);
    std::lock_guard<std::mutex> guard{mtx_};
    published_ += sent;
    dropped_ += batch.size() - sent;
  }
}

// -- GET /events/ ----------------------------------------------------------------

namespace {

/// How often an idle stream gets a comment, so proxies and clients see it
/// alive.
constexpr auto keep_alive_interval = std::chrono::seconds{15};

void refuse(const http::exchange_ptr& ex, int status, const std::string& text) {
  http::response res;
  res.status = status;
  res.body = nlohmann::json{{"error", text}}.dump();
  ex->reply(std::move(res));
}

/// A whole number of at most 19 digits.
std::optional<uint64_t> event_number(const std::string& text) {
  if (text.empty() || text.size() > 19)
    return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9')
      return std::nullopt;
  return std::stoull(text);
}

std::string sse_chunk(const event_record& e) {
  return "id: " + std::to_string(e.id) + "\ndata: " + e.json + "\n\n";
}

/// Sends a comment every keep_alive_interval while the stream is open.
void keep_alive(const http::exchange_ptr& ex) {
  ex->after(keep_alive_interval, [ex] {
    if (ex->send(": keep-alive\n\n"))
      keep_alive(ex);
  });
}

} // namespace

void serve_events(event_hub& hub, const http::exchange_ptr& ex) {
  const auto& req = ex->req();
  if (req.method != "GET")
    return refuse(ex, 405, "method not allowed");
  for (auto& [key, value] : req.params)
    if (key != "app" && key != "instance" && key != "since" && key != "follow"
        && key != "local")
      return refuse(ex, 400, "unknown parameter '" + key.substr(0, 64)
                               + "'; /events/ takes app, instance, since and "
                                 "follow");
  event_filter filter;
  filter.app = req.param("app");
  filter.instance = req.param("instance");
  if (!filter.app.empty())
    if (auto p = name_problem("app", filter.app); !p.empty())
      return refuse(ex, 400, p);
  if (!filter.instance.empty())
    if (auto p = name_problem("instance", filter.instance); !p.empty())
      return refuse(ex, 400, p);
  auto follow_text = req.param("follow");
  bool follow = true;
  if (follow_text == "0" || follow_text == "false")
    follow = false;
  else if (!follow_text.empty() && follow_text != "1" && follow_text != "true")
    return refuse(ex, 400, "'follow' is 1 or 0");
  auto newest = hub.newest();
  auto oldest = hub.oldest();
  uint64_t after = 0;
  if (req.params.count("since")) {
    auto since = event_number(req.param("since"));
    if (!since)
      return refuse(ex, 400, "'since' must be an event number");
    if (*since > newest)
      return refuse(ex, 400, "'since' " + std::to_string(*since)
                               + " is after the newest event ("
                               + std::to_string(newest) + ")");
    if (*since != 0 && *since + 1 < oldest)
      return refuse(ex, 410, "events before " + std::to_string(oldest)
                               + " are no longer kept (the branch keeps the "
                                 "last "
                               + std::to_string(hub.capacity()) + ")");
    after = *since;
  } else if (auto last = event_number(req.header("last-event-id"))) {
    // A reconnecting EventSource: resume where it was, or from the oldest
    // kept when the branch restarted since (numbers begin again).
    after = *last <= newest ? *last : 0;
  } else if (follow) {
    // A new follower starts with what happens from now on.
    after = newest;
  }
  ex->open_stream(200, "text/event-stream",
                  {{"X-Accel-Buffering", "no"}});
  ex->send(": cyme events of this branch\nretry: 2000\n\n");
  if (!follow) {
    for (auto& e : hub.since(after, filter))
      if (!ex->send(sse_chunk(e)))
        return;
    ex->end();
    return;
  }
  auto handle = hub.follow(after, filter, [ex](const event_record& e) {
    return ex->send(sse_chunk(e));
  });
  if (handle == 0)
    return;
  ex->on_close([&hub, handle] { hub.unfollow(handle); });
  keep_alive(ex);
}

} // namespace cyme

#include "api/http_api.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "api/cluster.hpp"
#include "api/common.hpp"
#include "api/events.hpp"
#include "api/fleet.hpp"
#include "api/logs.hpp"
#include "api/metrics.hpp"
#include "api/tasks.hpp"
#include "api/ui_assets.hpp"
#include "messages/wire.hpp"
#include "transport/http_server.hpp"
#include "transport/thread_name.hpp"

namespace cyme {

namespace {

/// A few threads that run the requests which ask actors, so the server's
/// own thread never waits. Bounded: past `capacity` waiting requests,
/// `submit` refuses.
class handler_pool {
public:
  handler_pool(uint32_t threads, uint32_t capacity) : capacity_(capacity) {
    for (uint32_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { run(); });
      name_thread(threads_.back(), "cyme-handler");
    }
  }

  ~handler_pool() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_)
      t.join();
  }

  bool submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_ || jobs_.size() >= capacity_)
        return false;
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
    return true;
  }

private:
  void run() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock{mtx_};
        ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty())
          return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::size_t capacity_;
  std::mutex mtx_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

/// An exchange with no socket behind it (`http_api::serve`): the answer is
/// handed to a promise; a long poll's timeout passes at once and a stream
/// ends at its first chunk.
class local_exchange : public http::exchange {
public:
  explicit local_exchange(http::request req) : req_(std::move(req)) {
  }

  const http::request& req() const override {
    return req_;
  }

  void reply(http::response res) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (answered_)
      return;
    answered_ = true;
    answer_.set_value(std::move(res));
  }

  void open_stream(int status, std::string type,
                   std::vector<std::pair<std::string, std::string>>) override {
    http::response res;
    res.status = status;
    res.content_type = std::move(type);
    reply(std::move(res));
  }

  bool send(std::string) override {
    return false;
  }

  void end() override {
  }

  void on_close(std::function<void()>) override {
  }

  void after(std::chrono::milliseconds, std::function<void()> fn) override {
    fn();
  }

  bool closed() const override {
    std::lock_guard<std::mutex> guard{mtx_};
    return answered_;
  }

  std::future<http::response> answer() {
    return answer_.get_future();
  }

private:
  http::request req_;
  mutable std::mutex mtx_;
  bool answered_ = false;
  std::promise<http::response> answer_;
};

} // namespace

bool reserved_app_name(const std::string& name) {
  return name == "supervisor" || name == "events" || name == "metrics"
         || name == "ui" || name == "apps" || name == "cluster";
}

std::string reserved_app_refusal(const std::string& name) {
  return "the app name '" + name + "' is reserved (the API's own paths: "
         "supervisor, events, metrics, ui, apps, cluster)";
}

struct http_api::impl : std::enable_shared_from_this<http_api::impl> {
  api::context ctx;
  api::cluster_room cluster{ctx};
  api::task_room tasks{ctx};
  api::fleet_room fleet{ctx, cluster};
  std::unique_ptr<handler_pool> pool;
  /// The server's counters (none without a server: `serve`).
  const http::server_counters* server_counters = nullptr;

  /// Routes a request; true when the exchange is parked (answered later
  /// by someone else), else the answer is in `res`.
  /// On the server's thread (`may_wait` false), a request that would wait
  /// throws `api::would_wait`.
  bool route(const http::exchange_ptr& ex, http::response& res, bool may_wait) {
    const auto& req = ex->req();
    const auto& m = req.method;
    auto seg = api::split_path(req.path);
    // /apps/<app>/... is /<app>/...: the path of every app, those with
    // reserved names included.
    bool prefixed = seg.size() >= 2 && seg[0] == "apps";
    if (prefixed)
      seg.erase(seg.begin());
    api::params p{req};
    auto n = seg.size();
    if (p.array() != nullptr && !(n == 3 && seg[1] == "queue"))
      api::fail(400, "the JSON body must be an object");
    if (n == 0 || (n == 1 && seg[0] == "apps" && !prefixed)) {
      fleet.apps(m, res);
      return false;
    }
    if (!prefixed && n == 1 && seg[0] == "metrics") {
      if (m != "GET")
        api::fail(405, "method not allowed");
      res.status = 200;
      res.content_type = "text/plain; version=0.0.4; charset=utf-8";
      res.body = api::render_metrics(ctx, tasks, server_counters);
      return false;
    }
    if (!prefixed && n == 1 && seg[0] == "cluster") {
      cluster.branches(m, res);
      return false;
    }
    if (!prefixed && seg[0] == "supervisor") {
      fleet.supervisor(m, seg, res);
      return false;
    }
    if (!prefixed && reserved_app_name(seg[0])) {
      if (m != "GET")
        api::fail(400, reserved_app_refusal(seg[0]));
      api::fail(404, "no such path");
    }
    const auto& app_name = seg[0];
    if (n == 1) {
      fleet.app(m, app_name, p, res);
      return false;
    }
    if (seg[1] == "instances") {
      if (n == 2) {
        fleet.instances(req, m, app_name, p, res);
        return false;
      }
      if (cluster.clustered(p))
        if (auto owner = cluster.owner_elsewhere(app_name, seg[2])) {
          if (n == 4 && seg[3] == "logs" && p.flag("follow")) {
            // A stream is not relayed: the client goes to the owner.
            cluster.redirect(*owner, req, res);
            return false;
          }
          cluster.forward(*owner, req, res);
          return false;
        }
      if (n == 4 && seg[3] == "logs") {
        if (m != "GET")
          api::fail(405, "method not allowed");
        return api::serve_logs(ctx, ex, ctx.spec_in(app_name, seg[2]), p, res);
      }
      if (n == 3) {
        fleet.instance(m, app_name, seg[2], p, res);
        return false;
      }
      if (n == 4) {
        fleet.instance_action(m, app_name, seg[2], seg[3], p, res);
        return false;
      }
      if (n == 5 && seg[3] == "queues") {
        fleet.consumer(m, app_name, seg[2], seg[4], p, res);
        return false;
      }
    } else if (seg[1] == "queues") {
      if (n == 2) {
        fleet.queues(m, app_name, res);
        return false;
      }
      if (n == 3) {
        fleet.queue(m, app_name, seg[2], res);
        return false;
      }
    } else if (seg[1] == "queue" && n == 3) {
      // Answered from the broker's acknowledgement.
      return tasks.send(ex, m, app_name, seg[2], p, may_wait);
    } else if (seg[1] == "query" && n == 4) {
      api::check_name("app", app_name);
      return tasks.query(ex, m, app_name, seg[2], seg[3], p, res);
    }
    api::fail(404, "no such path");
  }

  /// Whether a request that needs the token carries it (compared in
  /// constant time): every change, and with token_for_reads every read.
  bool authorized(const http::request& req) const {
    const auto& token = ctx.settings.token;
    if (token.empty() || (req.method == "GET" && !ctx.settings.token_for_reads))
      return true;
    auto given = req.header("authorization");
    auto expected = "Bearer " + token;
    if (given.size() != expected.size())
      return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < given.size(); ++i)
      diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
    return diff == 0;
  }

  /// Answers a request, on a handler thread; or, with `may_wait` false, on
  /// the server's thread, where one that would wait goes to the pool.
  void handle(const http::exchange_ptr& ex, bool may_wait = true) {
    if (ex->closed())
      return; // The client went while the request waited.
    http::response res;
    try {
      if (route(ex, res, may_wait))
        return;
    } catch (const api::would_wait&) {
      return to_pool(ex);
    } catch (const api::http_error& e) {
      api::reply(res, e.status, api::json{{"error", e.text}});
    } catch (const std::exception& e) {
      api::reply(res, 500, api::json{{"error", std::string{"internal error: "}
                                                 + e.what()}});
    }
    ex->reply(std::move(res));
  }

  /// GET /ui/...: the dashboard's files, from the binary.
  static void serve_ui(const http::exchange_ptr& ex,
                       const std::vector<std::string>& seg) {
    http::response res;
    const auto& req = ex->req();
    if (req.method != "GET") {
      api::reply(res, 405, api::json{{"error", "method not allowed"}});
    } else if (seg.size() == 1 && req.path.back() != '/') {
      // Relative links in the page need the trailing slash.
      api::reply(res, 301, api::json{{"location", "/ui/"}});
      res.headers.emplace_back("Location", "/ui/");
    } else if (auto* file = ui::find(seg.size() == 1 ? "" : seg[1]);
               file != nullptr && seg.size() <= 2) {
      res.status = 200;
      res.content_type = std::string{file->content_type};
      res.body = std::string{file->body};
      res.headers.emplace_back("Cache-Control", "no-cache");
      res.headers.emplace_back("X-Content-Type-Options", "nosniff");
      res.headers.emplace_back("Content-Security-Policy",
                               "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    } else {
      api::reply(res, 404, api::json{{"error", "no such file"}});
    }
    ex->reply(std::move(res));
  }

  /// Runs on the server's thread: nothing here may wait.
  void on_request(const http::exchange_ptr& ex) {
    auto seg = api::split_path(ex->req().path);
    // The dashboard's page and files hold no data: the page asks for the
    // token itself when the branch wants one.
    bool ui = !seg.empty() && seg[0] == "ui";
    if (ui && ex->req().method == "GET")
      return serve_ui(ex, seg);
    if (!authorized(ex->req())) {
      http::response res;
      api::reply(res, 401,
                 api::json{{"error", ctx.settings.token_for_reads
                                       ? "this branch requires a token "
                                         "(Authorization: Bearer TOKEN)"
                                       : "this branch requires a token for "
                                         "changes (Authorization: Bearer "
                                         "TOKEN)"}});
      res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"cyme\"");
      ex->reply(std::move(res));
      return;
    }
    const auto& m = ex->req().method;
    if (seg.size() == 1 && reserved_app_name(seg[0])
        && (m == "PUT" || m == "POST")) {
      http::response res;
      api::reply(res, 400, api::json{{"error", reserved_app_refusal(seg[0])}});
      ex->reply(std::move(res));
      return;
    }
    if (ui)
      return serve_ui(ex, seg); // 405
    if (!seg.empty() && seg[0] == "events" && seg.size() == 1) {
      if (ctx.parts.events == nullptr) {
        http::response res;
        api::reply(res, 404, api::json{{"error", "no events on this branch"}});
        ex->reply(std::move(res));
        return;
      }
      // Reads the ring and follows it: nothing to wait for.
      return serve_events(*ctx.parts.events, ex);
    }
    if (tasks.sends_at_once(ex->req(), seg.size() > 1 && seg[0] == "apps"
                                          ? std::vector<std::string>{seg.begin() + 1, seg.end()}
                                          : seg)) {
      return handle(ex, false);
    }
    to_pool(ex);
  }

  void to_pool(const http::exchange_ptr& ex) {
    if (!pool || !pool->submit([self = shared_from_this(), ex] { self->handle(ex); })) {
      http::response res;
      api::reply(res, 503, api::json{{"error", "the branch is busy; try again"}});
      res.headers.emplace_back("Retry-After", "1");
      ex->reply(std::move(res));
    }
  }
};

http_api::http_api(http_parts parts, http_settings settings)
  : impl_(std::make_shared<impl>()) {
  impl_->ctx.parts = std::move(parts);
  impl_->ctx.settings = settings;
  impl_->pool = std::make_unique<handler_pool>(settings.handler_threads,
                                               settings.handler_queue);
  http::server_settings ss;
  ss.host = settings.host;
  ss.port = settings.port;
  ss.header_timeout = settings.header_timeout;
  ss.body_timeout = settings.body_timeout;
  ss.keep_alive_timeout = settings.keep_alive_timeout;
  ss.keep_alive_requests = settings.keep_alive_requests;
  ss.max_connections = settings.max_connections;
  ss.tls_cert_file = settings.tls_cert_file;
  ss.tls_key_file = settings.tls_key_file;
  ss.max_body_bytes = max_wire_message;
  // A batch of tasks (POST /<app>/queue/<queue>/, or under /apps/) may be
  // up to max_batch tasks; every other body stays within one wire message.
  ss.body_limit_for = [](std::string_view method, std::string_view target) {
    auto path = target.substr(0, target.find('?'));
    auto seg = api::split_path(std::string{path});
    if (seg.size() == 4 && seg[0] == "apps")
      seg.erase(seg.begin());
    bool batch = (method == "POST" || method == "PUT") && seg.size() == 3
                 && seg[1] == "queue";
    return batch ? api::max_batch_body_bytes : max_wire_message;
  };
  server_ = std::make_unique<http::server>(
    ss, [impl = impl_](http::exchange_ptr ex) { impl->on_request(ex); });
  impl_->server_counters = &server_->counters();
}

http_api::~http_api() {
  stop();
}

http::response http_api::serve(const http::request& req) {
  auto ex = std::make_shared<local_exchange>(req);
  auto answer = ex->answer();
  impl_->on_request(ex);
  return answer.get();
}

std::string http_api::start() {
  if (auto err = server_->start(); !err.empty())
    return err;
  bound_port_ = server_->port();
  return {};
}

void http_api::stop() {
  if (server_)
    server_->stop();
  // Requests still being handled finish; then the threads go.
  impl_->pool.reset();
}

} // namespace cyme

#include "transport/http_server.hpp"

#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace cyme::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// -- requests -------------------------------------------------------------------

std::string request::header(const std::string& name) const {
  auto i = headers.find(name);
  return i == headers.end() ? std::string{} : i->second;
}

std::string request::param(const std::string& key) const {
  auto range = params.equal_range(key);
  if (range.first == range.second)
    return {};
  return std::prev(range.second)->second;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// Percent-decodes `in` ('+' as a space too in a query); false on a
/// broken escape.
bool decode(const std::string& in, bool query, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size())
        return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && query) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

} // namespace

bool parse_target(const std::string& target, std::string& path,
                  std::multimap<std::string, std::string>& params) {
  if (target.empty() || target[0] != '/')
    return false;
  auto q = target.find('?');
  if (!decode(target.substr(0, q), false, path))
    return false;
  params.clear();
  if (q == std::string::npos)
    return true;
  auto query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    auto amp = query.find('&', pos);
    if (amp == std::string::npos)
      amp = query.size();
    auto pair = query.substr(pos, amp - pos);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      std::string key, value;
      if (!decode(pair.substr(0, eq), true, key))
        return false;
      if (eq != std::string::npos && !decode(pair.substr(eq + 1), true, value))
        return false;
      params.emplace(std::move(key), std::move(value));
    }
    pos = amp + 1;
  }
  return true;
}

// -- the server -----------------------------------------------------------------

namespace {

class session;
class exchange_impl;

std::string error_body(const std::string& text) {
  // Plain ASCII texts of our own: no escaping needed.
  return "{\"error\":\"" + text + "\"}";
}

} // namespace

struct server::impl : std::enable_shared_from_this<server::impl> {
  server_settings settings;
  handler on_request;
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  server_counters counters;
  std::map<session*, std::weak_ptr<session>> sessions;
  bool stopping = false;
  std::optional<net::steady_timer> grace_timer;
  net::steady_timer accept_retry{ioc};
  uint16_t bound_port = 0;
  std::atomic<bool> stopped{false};

  void accept();
  void refuse(tcp::socket socket);
  void removed(session* s);
  void begin_stop();
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  enum class phase { reading, handling, writing, streaming, closed };

  session(std::shared_ptr<server::impl> srv, tcp::socket socket)
    : srv_(std::move(srv)), stream_(std::move(socket)) {
  }

  void start() {
    read_request();
  }

  phase current_phase() const {
    return phase_;
  }

  /// Whether the exchange being handled is parked (a long poll).
  bool parked() const;

  void close();

  // Called on the server's thread by the exchange.
  void write_response(const exchange_impl* ex, response res);
  void begin_stream(const exchange_impl* ex, int status, std::string type,
                    std::vector<std::pair<std::string, std::string>> headers);
  void push(const exchange_impl* ex, std::string chunk);
  void finish_stream(const exchange_impl* ex);

  server::impl& srv() {
    return *srv_;
  }

private:
  void read_request();
  void on_header(beast::error_code ec);
  void read_body();
  void on_body(beast::error_code ec);
  void fail_request(beast::error_code ec);
  void reply_and_close(int status, const std::string& text);
  void write(std::shared_ptr<bhttp::response<bhttp::string_body>> res);
  void watch_client();
  void stop_watching();
  void pump();
  void after_answer();

  std::shared_ptr<server::impl> srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  phase phase_ = phase::reading;
  uint32_t served_ = 0;
  bool keep_alive_ = false;
  uint64_t watch_gen_ = 0;
  std::shared_ptr<exchange_impl> current_;
  // A stream.
  std::shared_ptr<bhttp::response<bhttp::empty_body>> stream_head_;
  std::shared_ptr<bhttp::response_serializer<bhttp::empty_body>> stream_sr_;
  bool head_written_ = false;
  bool chunk_writing_ = false;
  bool stream_ending_ = false;
  std::deque<std::string> out_;
};

class exchange_impl : public exchange,
                      public std::enable_shared_from_this<exchange_impl> {
public:
  exchange_impl(std::shared_ptr<server::impl> srv, std::weak_ptr<session> s,
                request req)
    : srv_(std::move(srv)), session_(std::move(s)), req_(std::move(req)) {
  }

  const request& req() const override {
    return req_;
  }

  void reply(response res) override {
    if (answered_.exchange(true) || gone_)
      return;
    post([self = shared_from_this(), res = std::move(res)]() mutable {
      if (auto s = self->session_.lock())
        s->write_response(self.get(), std::move(res));
    });
  }

  void open_stream(int status, std::string type,
                   std::vector<std::pair<std::string, std::string>> headers)
    override {
    if (answered_.exchange(true) || gone_)
      return;
    streaming_ = true;
    post([self = shared_from_this(), status, type = std::move(type),
          headers = std::move(headers)]() mutable {
      if (auto s = self->session_.lock())
        s->begin_stream(self.get(), status, std::move(type), std::move(headers));
    });
  }

  bool send(std::string chunk) override {
    if (!streaming_ || gone_ || ended_)
      return false;
    auto size = chunk.size();
    if (queued_ + size > srv_->settings.stream_backlog_bytes) {
      // Too far behind: cut off, never waited for.
      gone_ = true;
      srv_->counters.streams_cut_off++;
      post([self = shared_from_this()] {
        if (auto s = self->session_.lock())
          s->close();
      });
      return false;
    }
    queued_ += size;
    post([self = shared_from_this(), chunk = std::move(chunk)]() mutable {
      if (auto s = self->session_.lock())
        s->push(self.get(), std::move(chunk));
    });
    return true;
  }

  void end() override {
    if (!streaming_ || ended_.exchange(true))
      return;
    post([self = shared_from_this()] {
      if (auto s = self->session_.lock())
        s->finish_stream(self.get());
    });
  }

  void on_close(std::function<void()> fn) override {
    parked_ = true;
    post([self = shared_from_this(), fn = std::move(fn)]() mutable {
      if (self->gone_ && !self->answered_by_handler()) {
        fn();
        return;
      }
      self->close_fn_ = std::move(fn);
    });
  }

  void after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    post([self = shared_from_this(), delay, fn = std::move(fn)]() mutable {
      if (self->closed())
        return;
      auto timer = std::make_shared<net::steady_timer>(self->srv_->ioc, delay);
      self->timers_.push_back(timer);
      timer->async_wait([self, fn = std::move(fn)](beast::error_code ec) {
        if (!ec && !self->closed())
          fn();
      });
    });
  }

  bool closed() const override {
    return gone_ || ended_ || (answered_ && !streaming_);
  }

  // -- on the server's thread ------------------------------------------------

  bool parked() const {
    return parked_ || streaming_;
  }

  bool answered_by_handler() const {
    return answered_;
  }

  /// The chunk was written: room in the backlog again.
  void written(std::size_t n) {
    queued_ -= n;
  }

  /// The connection is over: runs the close handler unless answered.
  void lost() {
    gone_ = true;
    for (auto& t : timers_)
      t->cancel();
    timers_.clear();
    if (auto fn = std::move(close_fn_); fn && (!answered_ || streaming_))
      fn();
    close_fn_ = nullptr;
  }

  /// The answer is written: timers have nothing left to do.
  void done() {
    for (auto& t : timers_)
      t->cancel();
    timers_.clear();
    close_fn_ = nullptr;
  }

private:
  template <class F>
  void post(F&& f) {
    net::post(srv_->ioc, std::forward<F>(f));
  }

  std::shared_ptr<server::impl> srv_;
  std::weak_ptr<session> session_;
  request req_;
  std::atomic<bool> answered_{false};
  std::atomic<bool> streaming_{false};
  std::atomic<bool> ended_{false};
  std::atomic<bool> gone_{false};
  std::atomic<bool> parked_{false};
  std::atomic<std::size_t> queued_{0};
  // Server thread only.
  std::function<void()> close_fn_;
  std::vector<std::shared_ptr<net::steady_timer>> timers_;
};

bool session::parked() const {
  return current_ && current_->parked();
}

void session::read_request() {
  phase_ = phase::reading;
  current_.reset();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(srv_->settings.max_header_bytes));
  // With a limit per route, the header is read first (Beast checks a
  // Content-Length against the limit there) and the route's limit applied
  // once the target is known.
  parser_->body_limit(srv_->settings.body_limit_for
                        ? std::numeric_limits<std::uint64_t>::max()
                        : srv_->settings.max_body_bytes);
  stream_.expires_after(served_ == 0 ? srv_->settings.header_timeout
                                     : srv_->settings.keep_alive_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec,
                                                       std::size_t) {
                             self->on_header(ec);
                           });
}

void session::on_header(beast::error_code ec) {
  if (ec)
    return fail_request(ec);
  if (srv_->stopping)
    return close();
  auto& head = parser_->get();
  if (srv_->settings.body_limit_for) {
    auto limit = srv_->settings.body_limit_for(
      std::string_view{head.method_string().data(), head.method_string().size()},
      std::string_view{head.target().data(), head.target().size()});
    auto length = parser_->content_length();
    if (length && *length > limit)
      return reply_and_close(413, "request body too large");
    parser_->body_limit(limit);
  }
  auto expect = head[bhttp::field::expect];
  if (beast::iequals(expect, "100-continue") && !parser_->is_done()) {
    auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(
      bhttp::status::continue_, head.version());
    stream_.expires_after(srv_->settings.body_timeout);
    bhttp::async_write(stream_, *cont,
                       [self = shared_from_this(), cont](beast::error_code ec,
                                                         std::size_t) {
                         if (ec)
                           return self->close();
                         self->read_body();
                       });
    return;
  }
  read_body();
}

void session::read_body() {
  if (parser_->is_done())
    return on_body({});
  stream_.expires_after(srv_->settings.body_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec,
                                                std::size_t) {
                      self->on_body(ec);
                    });
}

void session::fail_request(beast::error_code ec) {
  if (ec == beast::error::timeout)
    srv_->counters.timeouts_total++;
  if (ec == bhttp::error::header_limit)
    return reply_and_close(431, "request header fields too large");
  if (ec == bhttp::error::body_limit)
    return reply_and_close(413, "request body too large");
  if (ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category()
      && ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
    return reply_and_close(400, "bad request");
  close();
}

void session::on_body(beast::error_code ec) {
  if (ec)
    return fail_request(ec);
  stream_.expires_never();
  auto msg = parser_->release();
  request req;
  req.method = std::string{msg.method_string()};
  req.target = std::string{msg.target()};
  if (!parse_target(req.target, req.path, req.params))
    return reply_and_close(400, "bad request target");
  for (auto& field : msg) {
    std::string name{field.name_string()};
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto& value = req.headers[name];
    if (!value.empty())
      value += ", ";
    value += std::string{field.value()};
  }
  req.body = std::move(msg.body());
  ++served_;
  keep_alive_ = msg.keep_alive() && served_ < srv_->settings.keep_alive_requests
                && !srv_->stopping;
  srv_->counters.requests_total++;
  phase_ = phase::handling;
  current_ = std::make_shared<exchange_impl>(srv_, weak_from_this(),
                                             std::move(req));
  watch_client();
  try {
    if (!srv_->on_request)
      return close();
    srv_->on_request(current_);
  } catch (const std::exception& e) {
    response res;
    res.status = 500;
    res.body = error_body("internal error");
    current_->reply(std::move(res));
  }
}

/// Notices a client that goes while its request is handled, so a long poll
/// or a stream is ended (and its resources freed) at once.
void session::watch_client() {
  auto gen = ++watch_gen_;
  stream_.socket().async_wait(
    tcp::socket::wait_read,
    [self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->watch_gen_ || self->phase_ == phase::closed)
        return;
      char c;
      auto n = ::recv(self->stream_.socket().native_handle(), &c, 1,
                      MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        self->close();
      else if (n < 0)
        self->watch_client();
      // Else the client sent more (a pipelined request): it is read once
      // this answer is written.
    });
}

void session::stop_watching() {
  ++watch_gen_;
  beast::error_code ec;
  stream_.socket().cancel(ec);
}

void session::write_response(const exchange_impl* ex, response r) {
  if (phase_ != phase::handling || ex != current_.get())
    return;
  stop_watching();
  auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
  res->version(11);
  res->result(static_cast<unsigned>(r.status));
  res->set(bhttp::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers)
    res->set(k, v);
  res->body() = std::move(r.body);
  if (srv_->stopping)
    keep_alive_ = false;
  res->keep_alive(keep_alive_);
  res->prepare_payload();
  write(std::move(res));
}

void session::reply_and_close(int status, const std::string& text) {
  if (phase_ == phase::closed)
    return;
  stop_watching();
  keep_alive_ = false;
  auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
  res->version(11);
  res->result(static_cast<unsigned>(status));
  res->set(bhttp::field::content_type, "application/json");
  res->body() = error_body(text);
  res->keep_alive(false);
  res->prepare_payload();
  write(std::move(res));
}

void session::write(std::shared_ptr<bhttp::response<bhttp::string_body>> res) {
  phase_ = phase::writing;
  stream_.expires_after(srv_->settings.body_timeout);
  bhttp::async_write(stream_, *res,
                     [self = shared_from_this(), res](beast::error_code ec,
                                                      std::size_t) {
                       if (ec)
                         return self->close();
                       self->after_answer();
                     });
}

void session::after_answer() {
  if (current_)
    current_->done();
  if (!keep_alive_ || srv_->stopping) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    return close();
  }
  read_request();
}

void session::begin_stream(const exchange_impl* ex, int status,
                           std::string type,
                           std::vector<std::pair<std::string, std::string>>
                             headers) {
  if (phase_ != phase::handling || ex != current_.get())
    return;
  if (srv_->stopping)
    return close();
  phase_ = phase::streaming;
  srv_->counters.streams_open++;
  stream_head_ = std::make_shared<bhttp::response<bhttp::empty_body>>();
  stream_head_->version(11);
  stream_head_->result(static_cast<unsigned>(status));
  stream_head_->set(bhttp::field::content_type, type);
  stream_head_->set(bhttp::field::cache_control, "no-cache");
  for (auto& [k, v] : headers)
    stream_head_->set(k, v);
  stream_head_->keep_alive(keep_alive_);
  stream_head_->chunked(true);
  stream_sr_ = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(
    *stream_head_);
  chunk_writing_ = true;
  stream_.expires_after(srv_->settings.body_timeout);
  bhttp::async_write_header(stream_, *stream_sr_,
                            [self = shared_from_this()](beast::error_code ec,
                                                        std::size_t) {
                              self->chunk_writing_ = false;
                              if (ec)
                                return self->close();
                              self->head_written_ = true;
                              self->pump();
                            });
}

void session::push(const exchange_impl* ex, std::string chunk) {
  if (phase_ != phase::streaming || ex != current_.get())
    return;
  out_.push_back(std::move(chunk));
  pump();
}

void session::finish_stream(const exchange_impl* ex) {
  if (phase_ != phase::streaming || ex != current_.get())
    return;
  stream_ending_ = true;
  pump();
}

void session::pump() {
  if (phase_ != phase::streaming || chunk_writing_ || !head_written_)
    return;
  if (out_.empty()) {
    if (!stream_ending_)
      return;
    // The last chunk; then the connection serves the next request.
    stream_ending_ = false;
    chunk_writing_ = true;
    stop_watching();
    stream_.expires_after(srv_->settings.body_timeout);
    net::async_write(stream_, bhttp::make_chunk_last(),
                     [self = shared_from_this()](beast::error_code ec,
                                                 std::size_t) {
                       self->chunk_writing_ = false;
                       self->srv_->counters.streams_open--;
                       self->phase_ = phase::writing;
                       if (ec)
                         return self->close();
                       self->after_answer();
                     });
    return;
  }
  chunk_writing_ = true;
  auto size = out_.front().size();
  stream_.expires_after(srv_->settings.body_timeout);
  net::async_write(stream_, bhttp::make_chunk(net::buffer(out_.front())),
                   [self = shared_from_this(), size](beast::error_code ec,
                                                     std::size_t) {
                     self->chunk_writing_ = false;
                     if (self->current_)
                       self->current_->written(size);
                     if (ec)
                       return self->close();
                     if (!self->out_.empty())
                       self->out_.pop_front();
                     self->pump();
                   });
}

void session::close() {
  if (phase_ == phase::closed)
    return;
  if (phase_ == phase::streaming)
    srv_->counters.streams_open--;
  phase_ = phase::closed;
  ++watch_gen_;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
  out_.clear();
  if (auto ex = std::move(current_))
    ex->lost();
  srv_->removed(this);
}

} // namespace

void server::impl::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec,
                                                    tcp::socket socket) {
    if (self->stopping)
      return;
    if (ec) {
      // Out of descriptors, say: the pending connection stays queued;
      // try again shortly rather than spin on the error.
      self->accept_retry.expires_after(std::chrono::milliseconds{50});
      self->accept_retry.async_wait([self](beast::error_code ec) {
        if (!ec && !self->stopping)
          self->accept();
      });
      return;
    }
    if (self->sessions.size() >= self->settings.max_connections) {
      self->refuse(std::move(socket));
    } else {
      // Answers go out at once, not held back for a delayed ACK.
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto s = std::make_shared<session>(self, std::move(socket));
      self->sessions.emplace(s.get(), s);
      self->counters.connections_open++;
      self->counters.connections_total++;
      s->start();
    }
    self->accept();
  });
}

void server::impl::refuse(tcp::socket socket) {
  counters.connections_refused++;
  struct refusal {
    beast::tcp_stream stream;
    bhttp::response<bhttp::string_body> res;
  };
  auto r = std::make_shared<refusal>(refusal{beast::tcp_stream{std::move(socket)},
                                             {}});
  r->res.version(11);
  r->res.result(bhttp::status::service_unavailable);
  r->res.set(bhttp::field::content_type, "application/json");
  r->res.set(bhttp::field::retry_after, "1");
  r->res.body() = error_body("too many connections; try again shortly");
  r->res.keep_alive(false);
  r->res.prepare_payload();
  r->stream.expires_after(std::chrono::seconds{1});
  bhttp::async_write(r->stream, r->res, [r](beast::error_code, std::size_t) {
    beast::error_code ec;
    r->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    r->stream.close();
  });
}

void server::impl::removed(session* s) {
  if (sessions.erase(s) > 0)
    counters.connections_open--;
  if (stopping && sessions.empty())
    ioc.stop();
}

void server::impl::begin_stop() {
  stopping = true;
  beast::error_code ec;
  acceptor.close(ec);
  accept_retry.cancel();
  // Streams, long polls and idle connections end now; requests being
  // handled get the grace.
  std::vector<std::shared_ptr<session>> now;
  for (auto& [p, w] : sessions)
    if (auto s = w.lock())
      if (s->current_phase() != session::phase::handling || s->parked())
        now.push_back(s);
  for (auto& s : now)
    s->close();
  if (sessions.empty()) {
    ioc.stop();
    return;
  }
  grace_timer.emplace(ioc, settings.stop_grace);
  grace_timer->async_wait([self = shared_from_this()](beast::error_code) {
    std::vector<std::shared_ptr<session>> rest;
    for (auto& [p, w] : self->sessions)
      if (auto s = w.lock())
        rest.push_back(s);
    for (auto& s : rest)
      s->close();
    self->ioc.stop();
  });
}

server::server(server_settings settings, handler on_request)
  : impl_(std::make_shared<impl>()) {
  impl_->settings = std::move(settings);
  impl_->on_request = std::move(on_request);
}

server::~server() {
  stop();
}

std::string server::start() {
  auto& s = *impl_;
  beast::error_code ec;
  auto address = net::ip::make_address(s.settings.host, ec);
  if (ec)
    return "cannot listen on " + s.settings.host + ": not an IP address";
  tcp::endpoint ep{address, s.settings.port};
  auto fail = [&](const char* what) {
    return "cannot listen on " + s.settings.host + ":"
           + std::to_string(s.settings.port) + ": " + what + ": "
           + ec.message();
  };
  s.acceptor.open(ep.protocol(), ec);
  if (ec)
    return fail("open");
  s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  s.acceptor.bind(ep, ec);
  if (ec)
    return fail("bind");
  s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return fail("listen");
  s.bound_port = s.acceptor.local_endpoint().port();
  s.accept();
  s.thread = std::thread{[self = impl_] {
    // One thread serves every connection; handlers never block it.
    self->ioc.run();
  }};
  return {};
}

void server::stop() {
  auto& s = *impl_;
  if (s.stopped.exchange(true))
    return;
  if (!s.thread.joinable())
    return;
  net::post(s.ioc, [self = impl_] { self->begin_stop(); });
  s.thread.join();
  // The handler and what it holds go now, not with the last exchange.
  s.on_request = nullptr;
  // Operations aborted by the closing run now, on this thread, so that
  // they release the connections they hold.
  s.ioc.restart();
  s.ioc.poll();
  s.sessions.clear();
}

uint16_t server::port() const {
  return impl_->bound_port;
}

const server_counters& server::counters() const {
  return impl_->counters;
}

} // namespace cyme::http

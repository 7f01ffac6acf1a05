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
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "transport/thread_name.hpp"

namespace cyme::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

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
  /// Set when the server speaks HTTPS.
  std::optional<ssl::context> tls;

  void accept();
  void refuse(tcp::socket socket);
  void removed(session* s);
  void begin_stop();
};

namespace {

/// One connection, plain or TLS (`connection<Stream>` below): what the
/// server and the exchanges ask of it, on the server's thread.
class session : public std::enable_shared_from_this<session> {
public:
  enum class phase { reading, handling, writing, streaming, closed };

  virtual ~session() = default;

  virtual void start() = 0;

  phase current_phase() const {
    return phase_;
  }

  /// Whether the exchange being handled is parked (a long poll).
  bool parked() const;

  virtual void close() = 0;

  // Called on the server's thread by the exchange.
  virtual void write_response(const exchange_impl* ex, response res) = 0;
  virtual void begin_stream(const exchange_impl* ex, int status,
                            std::string type,
                            std::vector<std::pair<std::string, std::string>>
                              headers)
    = 0;
  virtual void push(const exchange_impl* ex, std::string chunk) = 0;
  virtual void finish_stream(const exchange_impl* ex) = 0;

protected:
  phase phase_ = phase::reading;
  std::shared_ptr<exchange_impl> current_;
};

/// A connection over `Stream`: beast::tcp_stream, or tls_stream for HTTPS
/// (the handshake first, within the header timeout).
template <class Stream>
class connection : public session {
public:
  connection(std::shared_ptr<server::impl> srv, Stream stream)
    : srv_(std::move(srv)), stream_(std::move(stream)) {
  }

  void start() override;
  void close() override;
  void write_response(const exchange_impl* ex, response res) override;
  void begin_stream(const exchange_impl* ex, int status, std::string type,
                    std::vector<std::pair<std::string, std::string>> headers)
    override;
  void push(const exchange_impl* ex, std::string chunk) override;
  void finish_stream(const exchange_impl* ex) override;

private:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  std::shared_ptr<connection> me() {
    return std::static_pointer_cast<connection>(shared_from_this());
  }
  beast::tcp_stream& tcp() {
    return beast::get_lowest_layer(stream_);
  }

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
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  uint32_t served_ = 0;
  bool keep_alive_ = false;
  uint64_t watch_gen_ = 0;
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

template <class Stream>
void connection<Stream>::start() {
  if constexpr (is_tls) {
    tcp().expires_after(srv_->settings.header_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = me()](beast::error_code ec) {
                              if (ec) {
                                if (ec == beast::error::timeout)
                                  self->srv_->counters.timeouts_total++;
                                return self->close();
                              }
                              self->read_request();
                            });
  } else {
    read_request();
  }
}

template <class Stream>
void connection<Stream>::read_request() {
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
  tcp().expires_after(served_ == 0 ? srv_->settings.header_timeout
                                     : srv_->settings.keep_alive_timeout);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = me()](beast::error_code ec,
                                                       std::size_t) {
                             self->on_header(ec);
                           });
}

template <class Stream>
void connection<Stream>::on_header(beast::error_code ec) {
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
    tcp().expires_after(srv_->settings.body_timeout);
    bhttp::async_write(stream_, *cont,
                       [self = me(), cont](beast::error_code ec,
                                                         std::size_t) {
                         if (ec)
                           return self->close();
                         self->read_body();
                       });
    return;
  }
  read_body();
}

template <class Stream>
void connection<Stream>::read_body() {
  if (parser_->is_done())
    return on_body({});
  tcp().expires_after(srv_->settings.body_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = me()](beast::error_code ec,
                                                std::size_t) {
                      self->on_body(ec);
                    });
}

template <class Stream>
void connection<Stream>::fail_request(beast::error_code ec) {
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

template <class Stream>
void connection<Stream>::on_body(beast::error_code ec) {
  if (ec)
    return fail_request(ec);
  tcp().expires_never();
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
/// or a stream is ended (and its resources freed) at once. It peeks at the
/// socket below TLS: a TLS client that says close_notify before it goes
/// sends bytes, taken for a pipelined request, so its long poll ends at
/// its own deadline and its stream at the next write.
template <class Stream>
void connection<Stream>::watch_client() {
  auto gen = ++watch_gen_;
  tcp().socket().async_wait(
    tcp::socket::wait_read,
    [self = me(), gen](beast::error_code ec) {
      if (ec || gen != self->watch_gen_ || self->phase_ == phase::closed)
        return;
      char c;
      auto n = ::recv(self->tcp().socket().native_handle(), &c, 1,
                      MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        self->close();
      else if (n < 0)
        self->watch_client();
      // Else the client sent more (a pipelined request): it is read once
      // this answer is written.
    });
}

template <class Stream>
void connection<Stream>::stop_watching() {
  ++watch_gen_;
  beast::error_code ec;
  tcp().socket().cancel(ec);
}

template <class Stream>
void connection<Stream>::write_response(const exchange_impl* ex, response r) {
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

template <class Stream>
void connection<Stream>::reply_and_close(int status, const std::string& text) {
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

template <class Stream>
void connection<Stream>::write(std::shared_ptr<bhttp::response<bhttp::string_body>> res) {
  phase_ = phase::writing;
  tcp().expires_after(srv_->settings.body_timeout);
  bhttp::async_write(stream_, *res,
                     [self = me(), res](beast::error_code ec,
                                                      std::size_t) {
                       if (ec)
                         return self->close();
                       self->after_answer();
                     });
}

template <class Stream>
void connection<Stream>::after_answer() {
  if (current_)
    current_->done();
  if (!keep_alive_ || srv_->stopping) {
    if constexpr (is_tls) {
      // TLS ends with close_notify, so that the client can tell the end
      // of the connection from a cut (OpenSSL 3 reports a bare EOF as an
      // error); a client that does not answer it gets a second.
      if (!srv_->stopping) {
        tcp().expires_after(std::chrono::seconds{1});
        stream_.async_shutdown(
          [self = me()](beast::error_code) { self->close(); });
        return;
      }
    }
    beast::error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    return close();
  }
  read_request();
}

template <class Stream>
void connection<Stream>::begin_stream(const exchange_impl* ex, int status,
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
  tcp().expires_after(srv_->settings.body_timeout);
  bhttp::async_write_header(stream_, *stream_sr_,
                            [self = me()](beast::error_code ec,
                                                        std::size_t) {
                              self->chunk_writing_ = false;
                              if (ec)
                                return self->close();
                              self->head_written_ = true;
                              self->pump();
                            });
}

template <class Stream>
void connection<Stream>::push(const exchange_impl* ex, std::string chunk) {
  if (phase_ != phase::streaming || ex != current_.get())
    return;
  out_.push_back(std::move(chunk));
  pump();
}

template <class Stream>
void connection<Stream>::finish_stream(const exchange_impl* ex) {
  if (phase_ != phase::streaming || ex != current_.get())
    return;
  stream_ending_ = true;
  pump();
}

template <class Stream>
void connection<Stream>::pump() {
  if (phase_ != phase::streaming || chunk_writing_ || !head_written_)
    return;
  if (out_.empty()) {
    if (!stream_ending_)
      return;
    // The last chunk; then the connection serves the next request.
    stream_ending_ = false;
    chunk_writing_ = true;
    stop_watching();
    tcp().expires_after(srv_->settings.body_timeout);
    net::async_write(stream_, bhttp::make_chunk_last(),
                     [self = me()](beast::error_code ec,
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
  tcp().expires_after(srv_->settings.body_timeout);
  net::async_write(stream_, bhttp::make_chunk(net::buffer(out_.front())),
                   [self = me(), size](beast::error_code ec,
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

template <class Stream>
void connection<Stream>::close() {
  if (phase_ == phase::closed)
    return;
  if (phase_ == phase::streaming)
    srv_->counters.streams_open--;
  phase_ = phase::closed;
  ++watch_gen_;
  beast::error_code ec;
  tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
  tcp().close();
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
      std::shared_ptr<session> s;
      if (self->tls)
        s = std::make_shared<connection<tls_stream>>(
          self, tls_stream{beast::tcp_stream{std::move(socket)}, *self->tls});
      else
        s = std::make_shared<connection<beast::tcp_stream>>(
          self, beast::tcp_stream{std::move(socket)});
      self->sessions.emplace(s.get(), s);
      self->counters.connections_open++;
      self->counters.connections_total++;
      s->start();
    }
    self->accept();
  });
}

namespace {

/// A 503 to a connection past the cap, then the connection closed; over
/// TLS after the handshake. One second for all of it.
template <class Stream>
struct refusal : std::enable_shared_from_this<refusal<Stream>> {
  Stream stream;
  bhttp::response<bhttp::string_body> res;

  explicit refusal(Stream s) : stream(std::move(s)) {
    res.version(11);
    res.result(bhttp::status::service_unavailable);
    res.set(bhttp::field::content_type, "application/json");
    res.set(bhttp::field::retry_after, "1");
    res.body() = error_body("too many connections; try again shortly");
    res.keep_alive(false);
    res.prepare_payload();
  }

  void start() {
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds{1});
    if constexpr (std::is_same_v<Stream, tls_stream>)
      stream.async_handshake(ssl::stream_base::server,
                             [r = this->shared_from_this()](
                               beast::error_code ec) {
                               if (ec)
                                 return r->close();
                               r->write();
                             });
    else
      write();
  }

  void write() {
    bhttp::async_write(stream, res,
                       [r = this->shared_from_this()](beast::error_code,
                                                      std::size_t) {
                         r->close();
                       });
  }

  void close() {
    beast::error_code ec;
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest.close();
  }
};

} // namespace

void server::impl::refuse(tcp::socket socket) {
  counters.connections_refused++;
  if (tls)
    std::make_shared<refusal<tls_stream>>(
      tls_stream{beast::tcp_stream{std::move(socket)}, *tls})
      ->start();
  else
    std::make_shared<refusal<beast::tcp_stream>>(
      beast::tcp_stream{std::move(socket)})
      ->start();
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

namespace {

/// Loads a server's certificate chain and key into `ctx`: TLS 1.2 or
/// later. Empty on success, else why not.
std::string load_tls(ssl::context& ctx, const std::string& cert_file,
                     const std::string& key_file) {
  beast::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                    | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                    | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                  ec);
  ctx.use_certificate_chain_file(cert_file, ec);
  if (ec)
    return "cannot load the certificate " + cert_file + ": " + ec.message();
  // OpenSSL checks that the key is the certificate's as it loads it.
  ctx.use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value()))
              == X509_R_KEY_VALUES_MISMATCH)
    return "the private key " + key_file + " does not belong to the "
           "certificate " + cert_file;
  if (ec)
    return "cannot load the private key " + key_file + ": " + ec.message();
  return {};
}

} // namespace

std::string tls_problem(const std::string& cert_file,
                        const std::string& key_file) {
  ssl::context ctx{ssl::context::tls_server};
  return load_tls(ctx, cert_file, key_file);
}

std::string ca_problem(const std::string& path) {
  ssl::context ctx{ssl::context::tls_client};
  beast::error_code ec;
  ctx.load_verify_file(path, ec);
  if (ec)
    return "cannot load the CA certificates " + path + ": " + ec.message();
  return {};
}

std::string server::start() {
  auto& s = *impl_;
  if (!s.settings.tls_cert_file.empty() || !s.settings.tls_key_file.empty()) {
    s.tls.emplace(ssl::context::tls_server);
    if (auto err = load_tls(*s.tls, s.settings.tls_cert_file,
                            s.settings.tls_key_file);
        !err.empty())
      return err;
  }
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
  name_thread(s.thread, "cyme-http");
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

#pragma once

/// The branch's HTTP/1.1 server, plain or over TLS: Boost.Beast on one Asio
/// thread, event driven. No connection owns a thread: a slow client, a long poll or a
/// stream costs a socket and a few buffers. Requests are handed to a
/// handler as `exchange`s, which may be answered later from any thread, or
/// turned into a stream (Server-Sent Events, a followed log).
///
/// Limits, each with a default in `server_settings`: headers must arrive
/// within the header timeout and a body within the body timeout (slow
/// clients are cut off); an idle keep-alive connection is closed after the
/// keep-alive timeout or after so many requests; past the connection cap a
/// new connection gets 503 and is closed; a stream client that falls too far
/// behind is cut off, never waited for. Stopping ends streams and long polls
/// at once and gives requests being handled a short grace.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cyme::http {

/// A request as read from the wire, its target split and percent-decoded.
struct request {
  std::string method;
  /// The target as sent, e.g. "/a/instances/?local=1".
  std::string target;
  /// The decoded path, e.g. "/a/instances/".
  std::string path;
  /// Decoded query parameters, in order.
  std::multimap<std::string, std::string> params;
  /// Header fields, names lower-cased.
  std::map<std::string, std::string> headers;
  std::string body;

  /// The value of header `name` (lower case), or "".
  std::string header(const std::string& name) const;

  bool has_header(const std::string& name) const {
    return headers.count(name) > 0;
  }

  /// The last value of query parameter `key`, or "".
  std::string param(const std::string& key) const;
};

/// Splits `target` into a decoded path and parameters; false when it is
/// not a valid origin-form target (bad percent-encoding, no leading '/').
bool parse_target(const std::string& target, std::string& path,
                  std::multimap<std::string, std::string>& params);

struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Further header fields.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// One request being answered. Answered once, with `reply`, or turned into
/// a stream with `open_stream`. Every member may be called from any thread;
/// the I/O happens on the server's thread.
class exchange {
public:
  virtual ~exchange() = default;

  virtual const request& req() const = 0;

  /// Answers the request. Later calls, and calls after the client went,
  /// do nothing.
  virtual void reply(response res) = 0;

  /// Sends the status and header fields of a streamed answer (chunked);
  /// `send` adds to it, `end` ends it.
  virtual void open_stream(int status, std::string content_type,
                           std::vector<std::pair<std::string, std::string>>
                             headers = {})
    = 0;

  /// Queues `chunk` on the stream. False when the stream is over: ended,
  /// the client went, or the client fell more than the backlog limit
  /// behind (it is then cut off).
  virtual bool send(std::string chunk) = 0;

  /// Ends the stream; the connection may serve another request.
  virtual void end() = 0;

  /// Parks the exchange: `fn` runs once, on the server's thread, if the
  /// exchange ends without an answer of the handler's (the client closed,
  /// or the server stops). A parked exchange, like a stream, is ended at
  /// once when the server stops.
  virtual void on_close(std::function<void()> fn) = 0;

  /// Runs `fn` on the server's thread after `delay`, unless the exchange
  /// is over by then.
  virtual void after(std::chrono::milliseconds delay, std::function<void()> fn)
    = 0;

  /// Whether the exchange is over (answered, ended, or the client went).
  virtual bool closed() const = 0;
};

using exchange_ptr = std::shared_ptr<exchange>;

struct server_settings {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  /// From a connection's first byte (or the end of the previous answer)
  /// to the end of a request's header fields.
  std::chrono::milliseconds header_timeout{std::chrono::seconds{10}};
  /// For a request's body, once its header fields are in.
  std::chrono::milliseconds body_timeout{std::chrono::seconds{30}};
  /// How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds keep_alive_timeout{std::chrono::seconds{30}};
  /// Requests served on one connection before it is closed.
  uint32_t keep_alive_requests = 1000;
  /// Open connections; past it, new ones get 503 and are closed.
  uint32_t max_connections = 4096;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  /// When set, the body limit of a request, from its method and target
  /// (read before its body): a route may take more than max_body_bytes.
  std::function<std::size_t(std::string_view method, std::string_view target)>
    body_limit_for;
  /// Bytes a stream's client may fall behind before it is cut off.
  std::size_t stream_backlog_bytes = 1024 * 1024;
  /// How long stopping waits for requests being handled.
  std::chrono::milliseconds stop_grace{std::chrono::seconds{2}};
  /// PEM files of the certificate (its chain) and the private key: when
  /// set, the server speaks HTTPS only (TLS 1.2 or later), the handshake
  /// within the header timeout.
  std::string tls_cert_file;
  std::string tls_key_file;
};

/// Why the certificate and key in these PEM files cannot serve HTTPS (one
/// does not load, or the key is not the certificate's), empty when they
/// can.
std::string tls_problem(const std::string& cert_file,
                        const std::string& key_file);

/// Why the PEM file at `path` cannot serve as the CAs a client checks
/// servers against (it does not load, or holds no certificate), empty when
/// it can.
std::string ca_problem(const std::string& path);

/// What the server counts, for /metrics.
struct server_counters {
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> timeouts_total{0};
  std::atomic<uint64_t> streams_open{0};
  std::atomic<uint64_t> streams_cut_off{0};
};

class server {
public:
  using handler = std::function<void(exchange_ptr)>;

  /// `on_request` runs on the server's thread for every request read; it
  /// must not block (hand blocking work to other threads).
  server(server_settings settings, handler on_request);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and starts serving on a thread of its own. Empty on success,
  /// else why not.
  std::string start();

  /// Stops accepting, ends streams and parked exchanges at once, waits up
  /// to the stop grace for the others, and joins the thread. Idempotent.
  void stop();

  /// The port bound (useful with port 0).
  uint16_t port() const;

  const server_counters& counters() const;

  /// The state shared with connections (internal).
  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace cyme::http

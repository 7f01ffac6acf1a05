#pragma once

/// The branch's HTTP API (docs/HTTP.md): JSON in and out, every request
/// turned into typed requests to the model store, the supervisor and the
/// control bus. Bad input answers 4xx with {"error": ...} and changes
/// nothing; nothing here crashes on input.
///
/// Served by the event-driven server of transport/http_server.hpp. Requests
/// that ask actors wait on a bounded pool of handler threads; long polls
/// and streams hold no thread at all.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/supervisor.hpp"
#include "store/model_store.hpp"
#include "transport/kafka.hpp"
#include "transport/presence.hpp"
#include "transport/property_book.hpp"
#include "transport/program_allow_list.hpp"
#include "transport/task_results.hpp"

namespace cyme::http {
struct request;
struct response;
class server;
struct server_settings;
} // namespace cyme::http

namespace cyme {

class event_hub;
struct control_bus_counters;
namespace metrics {
class histogram;
} // namespace metrics

struct http_settings {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  /// How long a request waits for the supervisor, store or bus.
  std::chrono::seconds request_timeout{120};
  /// When set, every mutation (PUT, POST, DELETE) must carry
  /// `Authorization: Bearer <token>`; reads stay open unless
  /// token_for_reads.
  std::string token;
  /// Reads need the token too: every request but the dashboard's page and
  /// files (/ui/), which hold no data.
  bool token_for_reads = false;
  /// Threads that run requests which ask actors (a long poll or a stream
  /// holds none).
  uint32_t handler_threads = 8;
  /// Requests waiting for a handler thread; past it, 503.
  uint32_t handler_queue = 4096;
  /// Connection limits and timeouts of the server.
  std::chrono::milliseconds header_timeout{std::chrono::seconds{10}};
  std::chrono::milliseconds body_timeout{std::chrono::seconds{30}};
  std::chrono::milliseconds keep_alive_timeout{std::chrono::seconds{30}};
  uint32_t keep_alive_requests = 1000;
  uint32_t max_connections = 4096;
  /// PEM certificate and key: when set, the API is served over HTTPS.
  std::string tls_cert_file;
  std::string tls_key_file;
  /// PEM CAs that peers' HTTPS certificates are checked against when a
  /// request is forwarded to them; empty: the system's.
  std::string peer_ca_file;
};

/// What the API talks to.
struct http_parts {
  caf::actor_system* sys = nullptr;
  supervisor_actor sup;
  model_admin_actor store;
  /// Every app's broker, kept by the store: read on each task submission.
  std::shared_ptr<const app_directory> apps;
  control_bus_actor bus;
  /// Bootstrap servers of the branch's default broker (tasks of apps with
  /// no broker of their own go there).
  std::string default_broker;
  /// Task results, per broker.
  task_result_readers* results = nullptr;
  /// This branch's id, shown with every instance.
  std::string branch_id;
  /// The cluster view; without it the API serves this branch only.
  presence* cluster = nullptr;
  /// Programs an instance may name (403 for others), besides the worker.
  const program_allow_list* programs = nullptr;
  /// What an instance whose launch names no program runs.
  std::string worker_program;
  /// Where instance folders are: an instance's default working folder.
  std::string instances_root;
  /// librdkafka properties of each broker; an app's `kafka` sets its
  /// broker's own.
  std::shared_ptr<kafka::property_book> kafka_properties;
  /// The branch's events (GET /events/); without it, 404.
  event_hub* events = nullptr;
  /// What the control bus counts, and how long rounds take (/metrics).
  std::shared_ptr<control_bus_counters> bus_counters;
  std::shared_ptr<metrics::histogram> round_durations;
};

/// Top-level paths of the API itself, which no app may take as its name.
/// An app that has one (made before it was reserved) is served under
/// /apps/<name>/..., where every app is too.
bool reserved_app_name(const std::string& name);

/// Why a request may not make an app of a reserved name.
std::string reserved_app_refusal(const std::string& name);

class http_api {
public:
  http_api(http_parts parts, http_settings settings);
  ~http_api();
  http_api(const http_api&) = delete;
  http_api& operator=(const http_api&) = delete;

  /// Binds and starts serving on a thread of its own. Empty string on
  /// success, else why not.
  std::string start();

  /// Stops serving and joins the thread.
  void stop();

  /// Answers one request as the server would, without a socket, and
  /// waits for the answer (the fuzzer drives the API through this).
  http::response serve(const http::request& req);

  /// The port bound (useful with port 0).
  uint16_t port() const {
    return bound_port_;
  }

private:
  struct impl;
  std::shared_ptr<impl> impl_;
  std::unique_ptr<http::server> server_;
  uint16_t bound_port_ = 0;
};

} // namespace cyme

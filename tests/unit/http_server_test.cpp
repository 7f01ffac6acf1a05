/// The HTTP server's pieces on their own: request targets, streams that
/// cut off a client that does not read, the event ring and its followers,
/// and the Prometheus text format.

#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "api/events.hpp"
#include "transport/http_server.hpp"
#include "transport/metrics.hpp"

using namespace std::chrono_literals;

namespace {

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string exchange_once(uint16_t port, const std::string& request) {
  int fd = connect_to(port);
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

/// Runs /usr/bin/openssl with `args` (no shell); true when it succeeded.
bool openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/bin/openssl");
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t quiet;
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  bool started = ::posix_spawn(&pid, argv[0], &quiet, nullptr, argv.data(),
                               environ)
                 == 0;
  posix_spawn_file_actions_destroy(&quiet);
  int status = 0;
  return started && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status)
         && WEXITSTATUS(status) == 0;
}

/// A self-signed certificate for 127.0.0.1 and its key, in a fresh folder.
struct test_certificate {
  std::filesystem::path dir;
  std::string cert, key;

  test_certificate() {
    char tmpl[] = "/tmp/cyme-tls-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    cert = (dir / "cert.pem").string();
    key = (dir / "key.pem").string();
    BOOST_REQUIRE(openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes",
                           "-keyout", key, "-out", cert, "-days", "2", "-subj",
                           "/CN=127.0.0.1", "-addext",
                           "subjectAltName=IP:127.0.0.1"}));
  }
  ~test_certificate() {
    std::filesystem::remove_all(dir);
  }
};

cyme::supervisor_event event_of(const std::string& app,
                                const std::string& instance) {
  cyme::supervisor_event ev;
  ev.kind = cyme::event_kind::died;
  ev.app = app;
  ev.instance = instance;
  ev.data = {{"signal", "SIGKILL"}};
  return ev;
}

} // namespace

BOOST_AUTO_TEST_SUITE(http_targets)

BOOST_AUTO_TEST_CASE(a_target_is_split_and_decoded) {
  // Path and parameters are percent-decoded, '+' is a space in the query
  // only, and a broken escape or a target without '/' is refused.
  std::string path;
  std::multimap<std::string, std::string> params;
  BOOST_REQUIRE(cyme::http::parse_target("/a%20b/c+d/?x=1+2&y=%41&x=3&flag",
                                         path, params));
  BOOST_CHECK_EQUAL(path, "/a b/c+d/");
  BOOST_CHECK_EQUAL(params.count("x"), 2u);
  BOOST_CHECK_EQUAL(params.find("y")->second, "A");
  BOOST_CHECK_EQUAL(params.find("flag")->second, "");
  cyme::http::request req;
  req.params = params;
  BOOST_CHECK_EQUAL(req.param("x"), "3");
  BOOST_CHECK(!cyme::http::parse_target("/a%2", path, params));
  BOOST_CHECK(!cyme::http::parse_target("/a%zz", path, params));
  BOOST_CHECK(!cyme::http::parse_target("a/", path, params));
  BOOST_CHECK(!cyme::http::parse_target("/?k=%", path, params));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(http_streams)

BOOST_AUTO_TEST_CASE(a_stream_client_that_does_not_read_is_cut_off) {
  // A client that never reads falls behind by more than the backlog limit:
  // `send` says so at once (the sender never waits) and the server counts
  // it, while another client is still served.
  cyme::http::server_settings settings;
  settings.host = "127.0.0.1";
  settings.port = 0;
  settings.stream_backlog_bytes = 256 * 1024;
  std::promise<bool> cut_off;
  std::atomic<int> sent{0};
  cyme::http::server srv{settings, [&](cyme::http::exchange_ptr ex) {
    if (ex->req().path != "/stream") {
      ex->reply(cyme::http::response{200, "text/plain", "ok", {}});
      return;
    }
    ex->open_stream(200, "text/plain");
    std::thread{[ex, &cut_off, &sent] {
      std::string chunk(64 * 1024, 'x');
      for (int i = 0; i < 4000; ++i) {
        if (!ex->send(chunk)) {
          cut_off.set_value(true);
          return;
        }
        ++sent;
      }
      cut_off.set_value(false);
    }}.detach();
  }};
  BOOST_REQUIRE_EQUAL(srv.start(), "");
  int lazy = connect_to(srv.port());
  std::string request = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
  ::send(lazy, request.data(), request.size(), MSG_NOSIGNAL);
  auto result = cut_off.get_future();
  BOOST_REQUIRE(result.wait_for(30s) == std::future_status::ready);
  BOOST_CHECK(result.get());
  BOOST_CHECK_LT(sent.load(), 4000);
  BOOST_CHECK_EQUAL(srv.counters().streams_cut_off.load(), 1u);
  auto answer = exchange_once(srv.port(),
                              "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  BOOST_CHECK(answer.rfind("HTTP/1.1 200", 0) == 0);
  ::close(lazy);
  srv.stop();
}

BOOST_AUTO_TEST_CASE(a_parked_exchange_learns_that_its_client_went) {
  // A long poll whose client closes runs its close handler; stopping the
  // server ends another at once.
  cyme::http::server_settings settings;
  settings.host = "127.0.0.1";
  settings.port = 0;
  std::atomic<int> closed{0};
  cyme::http::server srv{settings, [&](cyme::http::exchange_ptr ex) {
    ex->on_close([&closed] { ++closed; });
  }};
  BOOST_REQUIRE_EQUAL(srv.start(), "");
  std::string request = "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n";
  int first = connect_to(srv.port());
  ::send(first, request.data(), request.size(), MSG_NOSIGNAL);
  int second = connect_to(srv.port());
  ::send(second, request.data(), request.size(), MSG_NOSIGNAL);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (srv.counters().requests_total.load() < 2
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ::close(first);
  while (closed.load() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  BOOST_CHECK_EQUAL(closed.load(), 1);
  auto before = std::chrono::steady_clock::now();
  srv.stop();
  BOOST_CHECK_EQUAL(closed.load(), 2);
  BOOST_CHECK_LT(std::chrono::duration<double>(std::chrono::steady_clock::now()
                                               - before)
                   .count(),
                 settings.stop_grace.count() / 1000.0);
  ::close(second);
}

BOOST_AUTO_TEST_CASE(over_tls_it_answers_https_only_and_keeps_its_limits) {
  // With a certificate and key: an HTTPS client checking the certificate
  // is answered; a plain HTTP request gets no answer; a client that never
  // completes its handshake is cut off at the header timeout; past the
  // connection cap, 503 over TLS. A certificate that does not load stops
  // the start with the reason.
  // A TLS client writing to a connection the server closed (the 503)
  // gets EPIPE, not a signal; the branch ignores SIGPIPE the same way.
  ::signal(SIGPIPE, SIG_IGN);
  test_certificate tls;
  cyme::http::server_settings settings;
  settings.host = "127.0.0.1";
  settings.port = 0;
  settings.tls_cert_file = tls.cert;
  settings.tls_key_file = tls.key;
  settings.header_timeout = 300ms;
  settings.max_connections = 2;
  cyme::http::server srv{settings, [](cyme::http::exchange_ptr ex) {
    ex->reply(cyme::http::response{200, "text/plain", "over tls", {}});
  }};
  BOOST_REQUIRE_EQUAL(srv.start(), "");
  httplib::SSLClient client{"127.0.0.1", srv.port()};
  client.enable_server_certificate_verification(true);
  client.set_ca_cert_path(tls.cert);
  client.set_keep_alive(false);
  auto ok = client.Get("/");
  BOOST_REQUIRE(ok);
  BOOST_CHECK_EQUAL(ok->status, 200);
  BOOST_CHECK_EQUAL(ok->body, "over tls");
  auto plain = exchange_once(srv.port(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  BOOST_CHECK(plain.find("HTTP/1.1") == std::string::npos);
  // Two connections that say nothing fill the cap...
  auto timeouts = srv.counters().timeouts_total.load();
  int silent[2] = {connect_to(srv.port()), connect_to(srv.port())};
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (srv.counters().connections_open.load() < 2
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  auto refused = client.Get("/");
  BOOST_REQUIRE(refused);
  BOOST_CHECK_EQUAL(refused->status, 503);
  BOOST_CHECK(refused->body.find("too many connections") != std::string::npos);
  // ...until their handshakes time out.
  while (srv.counters().timeouts_total.load() < timeouts + 2
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  BOOST_CHECK_EQUAL(srv.counters().timeouts_total.load(), timeouts + 2);
  for (int fd : silent)
    ::close(fd);
  auto again = client.Get("/");
  BOOST_REQUIRE(again);
  BOOST_CHECK_EQUAL(again->status, 200);
  srv.stop();

  settings.tls_cert_file = tls.key; // a key is no certificate
  cyme::http::server broken{settings, [](cyme::http::exchange_ptr) {}};
  auto err = broken.start();
  BOOST_CHECK(err.find("cannot load the certificate " + tls.key) == 0);
  BOOST_CHECK(cyme::http::tls_problem(tls.cert, tls.key).empty());
  BOOST_CHECK(!cyme::http::ca_problem(tls.key).empty());
  BOOST_CHECK(cyme::http::ca_problem(tls.cert).empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(event_ring)

BOOST_AUTO_TEST_CASE(the_ring_keeps_the_newest_and_followers_miss_nothing) {
  // Past its capacity the ring forgets the oldest; a follower gets the
  // kept events after its number, then every new one, filtered.
  cyme::event_hub hub{"b1", 3};
  for (int i = 0; i < 5; ++i)
    hub.publish(event_of("shop", "w" + std::to_string(i % 2)));
  BOOST_CHECK_EQUAL(hub.newest(), 5u);
  BOOST_CHECK_EQUAL(hub.oldest(), 3u);
  BOOST_CHECK_EQUAL(hub.since(0, {}).size(), 3u);
  std::vector<uint64_t> seen;
  auto handle = hub.follow(3, cyme::event_filter{"shop", "w0"},
                           [&](const cyme::event_record& e) {
                             seen.push_back(e.id);
                             return true;
                           });
  BOOST_CHECK_NE(handle, 0u);
  hub.publish(event_of("shop", "w0"));
  hub.publish(event_of("shop", "w1"));
  hub.publish(event_of("other", "w0"));
  BOOST_CHECK(seen == (std::vector<uint64_t>{5, 6}));
  hub.unfollow(handle);
  hub.publish(event_of("shop", "w0"));
  BOOST_CHECK_EQUAL(seen.size(), 2u);
  auto json = nlohmann::json::parse(hub.since(8, {}).front().json);
  BOOST_CHECK_EQUAL(json["kind"], "died");
  BOOST_CHECK_EQUAL(json["branch"], "b1");
  BOOST_CHECK_EQUAL(json["data"]["signal"], "SIGKILL");
}

BOOST_AUTO_TEST_CASE(a_follower_that_stops_is_dropped) {
  // A follower that answers false (its client fell behind) is not called
  // again.
  cyme::event_hub hub{"b1"};
  int calls = 0;
  hub.follow(0, {}, [&](const cyme::event_record&) {
    ++calls;
    return false;
  });
  hub.publish(event_of("a", "w"));
  hub.publish(event_of("a", "w"));
  BOOST_CHECK_EQUAL(calls, 1);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(prometheus_text)

BOOST_AUTO_TEST_CASE(families_samples_and_histograms_follow_the_format) {
  // HELP and TYPE precede samples; label values are escaped; a histogram
  // has cumulative buckets, +Inf, sum and count.
  cyme::metrics::histogram h{{0.1, 1}};
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  cyme::metrics::exposition x;
  x.family("t_total", "counter", "a test");
  x.sample("t_total", {{"name", "a\"b\\c\nd"}}, 3);
  x.family("t_seconds", "histogram", "a histogram");
  x.histogram_samples("t_seconds", {}, h.read());
  BOOST_CHECK_EQUAL(x.text(), "# HELP t_total a test\n"
                              "# TYPE t_total counter\n"
                              "t_total{name=\"a\\\"b\\\\c\\nd\"} 3\n"
                              "# HELP t_seconds a histogram\n"
                              "# TYPE t_seconds histogram\n"
                              "t_seconds_bucket{le=\"0.1\"} 1\n"
                              "t_seconds_bucket{le=\"1\"} 2\n"
                              "t_seconds_bucket{le=\"+Inf\"} 3\n"
                              "t_seconds_sum 5.55\n"
                              "t_seconds_count 3\n");
  BOOST_CHECK_EQUAL(cyme::metrics::format_value(1796057233.152),
                    "1796057233.152");
}

BOOST_AUTO_TEST_SUITE_END()

/// The branch's HTTP server under clients that misbehave: slow clients,
/// long polls by the thousand, too many connections, oversized requests,
/// and a stop while all of that is open. A real cyme-branch, raw sockets.

#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "stack.hpp"
#include "transport/kafka.hpp"

extern char** environ;

using namespace std::chrono_literals;
using cyme::test::temp_dir;
using cyme::test::wait_until;

namespace {

/// A port free on loopback now.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A connected socket to the port, or -1.
int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    auto n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

/// Reads until the peer closes or `limit` passes.
std::string read_until_closed(int fd, std::chrono::milliseconds limit) {
  timeval tv{};
  tv.tv_sec = limit.count() / 1000;
  tv.tv_usec = (limit.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

/// Whether the peer closed `fd` (a read sees the end), without waiting.
bool peer_closed(int fd) {
  char c;
  auto n = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/// Whether anything (an answer) arrived on `fd`, without waiting.
bool has_data(int fd) {
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) > 0;
}

/// One GET on a fresh connection: the whole answer.
std::string get(int port, const std::string& target,
                std::chrono::milliseconds limit = 10s) {
  int fd = connect_to(port);
  if (fd < 0)
    return {};
  send_all(fd, "GET " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto out = read_until_closed(fd, limit);
  ::close(fd);
  return out;
}

/// One request with a JSON body on a fresh connection: the whole answer.
std::string request(int port, const std::string& method,
                    const std::string& target, const std::string& body = {}) {
  int fd = connect_to(port);
  if (fd < 0)
    return {};
  send_all(fd, method + " " + target
                 + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                   "Content-Type: application/json\r\nContent-Length: "
                 + std::to_string(body.size()) + "\r\n\r\n" + body);
  auto out = read_until_closed(fd, 60s);
  ::close(fd);
  return out;
}

/// The JSON body of an answer (chunked bodies are not expected here).
nlohmann::json body_of(const std::string& answer) {
  auto at = answer.find("\r\n\r\n");
  if (at == std::string::npos)
    return nullptr;
  return nlohmann::json::parse(answer.substr(at + 4), nullptr, false);
}

/// The data of each Server-Sent Event in `text`.
std::vector<nlohmann::json> sse_events(const std::string& text) {
  std::vector<nlohmann::json> out;
  size_t pos = 0;
  while ((pos = text.find("data: ", pos)) != std::string::npos) {
    auto end = text.find('\n', pos);
    auto e = nlohmann::json::parse(text.substr(pos + 6, end - pos - 6), nullptr,
                                   false);
    if (e.is_object())
      out.push_back(e);
    pos = end;
  }
  return out;
}

int status_of(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12)
    return 0;
  return std::stoi(answer.substr(9, 3));
}

/// Raises this process's descriptor limit to what the test opens.
void allow_descriptors(rlim_t n) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < n) {
    lim.rlim_cur = std::min(n, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

/// A cyme-branch on a free loopback port with its embedded cluster.
class branch_process {
public:
  branch_process(const std::filesystem::path& root,
                 std::vector<std::string> extra)
    : root_(root), port_(free_port()) {
    std::vector<std::string> args{CYME_BRANCH_PROGRAM, "--root", root.string(),
                                  "--http",
                                  "127.0.0.1:" + std::to_string(port_),
                                  "--interval", "2", "--id", "http"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    auto log = (root.parent_path() / "branch.log").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0640);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (::posix_spawn(&pid_, args[0].c_str(), &actions, nullptr, argv.data(),
                      environ)
        != 0)
      throw std::runtime_error("cannot start cyme-branch");
    posix_spawn_file_actions_destroy(&actions);
    if (!wait_until([&] { return status_of(get(port_, "/", 2s)) == 200; }, 30s))
      throw std::runtime_error("cyme-branch did not serve");
  }

  ~branch_process() {
    // SIGTERM: the branch stops its instances and its embedded cluster
    // (a SIGKILL would leave the cluster's process behind).
    if (pid_ > 0 && !terminate_within(30s)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  int port() const {
    return port_;
  }

  /// The bootstrap address of its embedded cluster.
  std::string bootstrap() const {
    std::ifstream in{root_ / "kafka" / "bootstrap"};
    std::string text;
    std::getline(in, text);
    return text;
  }

  /// Sends SIGTERM; true when the branch exited within `limit`.
  bool terminate_within(std::chrono::milliseconds limit) {
    ::kill(pid_, SIGTERM);
    bool gone = wait_until(
      [&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, limit);
    if (gone)
      pid_ = -1;
    return gone;
  }

private:
  std::filesystem::path root_;
  int port_;
  pid_t pid_ = -1;
};

struct sockets {
  std::vector<int> fds;
  ~sockets() {
    for (int fd : fds)
      ::close(fd);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(http_server)

BOOST_AUTO_TEST_CASE(get_root_stays_fast_under_a_thousand_slow_clients_and_a_thousand_long_polls) {
  // GET / answers within 100 ms (median) while 1,000 connections trickle
  // their headers and 1,000 `wait` long polls are open; SIGTERM then ends
  // the long polls at once.
  allow_descriptors(8192);
  temp_dir dir;
  branch_process b{dir.path / "root", {"--http-header-timeout", "120"}};
  sockets slow, polls;
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_to(b.port());
    BOOST_REQUIRE(fd >= 0);
    slow.fds.push_back(fd);
    BOOST_REQUIRE(send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "));
  }
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_to(b.port());
    BOOST_REQUIRE(fd >= 0);
    polls.fds.push_back(fd);
    BOOST_REQUIRE(send_all(fd, "GET /load/query/no-such-task-" + std::to_string(i)
                                 + "/wait/?timeout=120 HTTP/1.1\r\nHost: t\r\n\r\n"));
  }
  // The slow clients go on sending a byte each now and then.
  std::atomic<bool> trickling{true};
  std::thread trickle{[&] {
    while (trickling) {
      for (int fd : slow.fds)
        ::send(fd, "a", 1, MSG_NOSIGNAL);
      for (int i = 0; i < 10 && trickling; ++i)
        std::this_thread::sleep_for(100ms);
    }
  }};
  std::vector<double> took_ms;
  for (int i = 0; i < 21; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto answer = get(b.port(), "/");
    took_ms.push_back(std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - start)
                        .count());
    BOOST_CHECK_EQUAL(status_of(answer), 200);
  }
  trickling = false;
  trickle.join();
  std::sort(took_ms.begin(), took_ms.end());
  auto median = took_ms[took_ms.size() / 2];
  BOOST_TEST_MESSAGE("GET / under load: median " << median << " ms, max "
                                                 << took_ms.back() << " ms");
  BOOST_CHECK_LT(median, 100.0);
  // Nothing was answered or dropped meanwhile.
  BOOST_CHECK(std::none_of(polls.fds.begin(), polls.fds.end(), has_data));
  BOOST_CHECK(std::none_of(slow.fds.begin(), slow.fds.end(), peer_closed));
  // A stop ends them all at once, well before their 120 s.
  BOOST_REQUIRE(b.terminate_within(20s));
  BOOST_CHECK(std::all_of(polls.fds.begin(), polls.fds.end(), peer_closed));
}

BOOST_AUTO_TEST_CASE(a_client_too_slow_with_its_headers_is_cut_off) {
  // A connection that trickles its header fields past the header timeout is
  // closed; the branch keeps serving others.
  temp_dir dir;
  branch_process b{dir.path / "root", {"--http-header-timeout", "0.5"}};
  int fd = connect_to(b.port());
  BOOST_REQUIRE(fd >= 0);
  send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
  BOOST_CHECK(wait_until(
    [&] {
      ::send(fd, "a", 1, MSG_NOSIGNAL);
      return peer_closed(fd);
    },
    10s));
  ::close(fd);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/")), 200);
}

BOOST_AUTO_TEST_CASE(past_the_connection_cap_a_client_gets_503) {
  // With 4 connections open (idle), a fifth is answered 503 and closed;
  // once they close, requests are served again.
  temp_dir dir;
  branch_process b{dir.path / "root", {"--http-max-connections", "4"}};
  // The readiness probe's connection may still be closing on the server.
  sockets idle;
  for (int i = 0; i < 4; ++i)
    idle.fds.push_back(connect_to(b.port()));
  std::string refused;
  BOOST_CHECK(wait_until(
    [&] {
      refused = get(b.port(), "/", 2s);
      return status_of(refused) == 503;
    },
    10s));
  BOOST_CHECK(refused.find("too many connections") != std::string::npos);
  for (int fd : idle.fds)
    ::close(fd);
  idle.fds.clear();
  BOOST_CHECK(wait_until([&] { return status_of(get(b.port(), "/")) == 200; },
                         10s));
}

BOOST_AUTO_TEST_CASE(oversized_requests_are_refused_with_a_clear_status) {
  // A body over 64 KiB gets 413, header fields over 16 KiB get 431, a bad
  // target gets 400; nothing changes and the branch keeps serving.
  temp_dir dir;
  branch_process b{dir.path / "root", {}};
  int fd = connect_to(b.port());
  send_all(fd, "POST /a/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
               "\r\nContent-Length: 100000\r\n\r\n"
                 + std::string(100000, ' '));
  BOOST_CHECK_EQUAL(status_of(read_until_closed(fd, 10s)), 413);
  ::close(fd);
  fd = connect_to(b.port());
  send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'x')
                 + "\r\n\r\n");
  BOOST_CHECK_EQUAL(status_of(read_until_closed(fd, 10s)), 431);
  ::close(fd);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/a%zz/")), 400);
  auto apps = get(b.port(), "/");
  BOOST_CHECK_EQUAL(status_of(apps), 200);
  BOOST_CHECK(apps.find("\r\n\r\n[]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_keep_alive_connection_is_closed_after_its_request_limit) {
  // With --http-keep-alive-requests 2, the second answer on a connection
  // says close and the connection ends.
  temp_dir dir;
  branch_process b{dir.path / "root", {"--http-keep-alive-requests", "2"}};
  int fd = connect_to(b.port());
  send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto both = read_until_closed(fd, 10s);
  ::close(fd);
  auto second = both.find("HTTP/1.1 200", 1);
  BOOST_REQUIRE(second != std::string::npos);
  BOOST_CHECK(both.substr(0, second).find("Connection: close") == std::string::npos);
  BOOST_CHECK(both.find("Connection: close", second) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_server_flags_are_refused) {
  // Out-of-range limits stop the branch at start with a clear error.
  temp_dir dir;
  for (auto flags : std::vector<std::vector<std::string>>{
         {"--http-max-connections", "0"},
         {"--http-header-timeout", "0"},
         {"--http-threads", "1000"}}) {
    std::vector<std::string> args{CYME_BRANCH_PROGRAM, "--root",
                                  (dir.path / "root").string(), "--http",
                                  "127.0.0.1:0"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    BOOST_REQUIRE_EQUAL(::posix_spawn(&pid, args[0].c_str(), &actions, nullptr,
                                      argv.data(), environ),
                        0);
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    ::waitpid(pid, &status, 0);
    BOOST_CHECK_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) != 0,
                        flags[0] << " " << flags[1] << " was accepted");
    // Nothing was made: the model database does not exist.
    BOOST_CHECK(!std::filesystem::exists(dir.path / "root" / "model.db"));
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(events)

BOOST_AUTO_TEST_CASE(a_kill_shows_up_on_the_event_stream_and_on_the_events_topic) {
  // A follower of /events/ filtered to one instance sees its start, its
  // death by SIGKILL (with the signal in the data) and its restart, as they
  // happen; the same events are on the Kafka topic cyme.events.
  temp_dir dir;
  branch_process b{dir.path / "root", {}};
  auto added = request(b.port(), "PUT", "/shop/instances/w1/", "{}");
  BOOST_REQUIRE_EQUAL(status_of(added), 201);
  int pid = body_of(added)["pid"].get<int>();
  BOOST_REQUIRE_GT(pid, 0);
  request(b.port(), "PUT", "/shop/instances/w2/", "{}");
  int fd = connect_to(b.port());
  send_all(fd, "GET /events/?since=0&instance=w1 HTTP/1.1\r\nHost: t\r\n\r\n");
  ::kill(pid, SIGKILL);
  std::string seen;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto has = [&](const std::string& kind) {
    for (auto& e : sse_events(seen))
      if (e["kind"] == kind)
        return true;
    return false;
  };
  BOOST_CHECK(wait_until(
    [&] {
      char buf[4096];
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0)
        seen.append(buf, static_cast<size_t>(n));
      return has("started") && has("died") && has("restarted");
    },
    30s));
  ::close(fd);
  BOOST_CHECK(seen.find("text/event-stream") != std::string::npos);
  for (auto& e : sse_events(seen)) {
    BOOST_CHECK_EQUAL(e["instance"], "w1");
    BOOST_CHECK_EQUAL(e["app"], "shop");
    BOOST_CHECK_EQUAL(e["branch"], "http");
    BOOST_CHECK(e["time"].is_string() && e["id"].is_number());
    if (e["kind"] == "died") {
      BOOST_CHECK_EQUAL(e["data"]["signal"], "SIGKILL");
      BOOST_CHECK_EQUAL(e["data"]["pid"], std::to_string(pid));
    }
  }
  // The topic has them too.
  cyme::kafka::topic_reader reader{cyme::kafka::base_config(b.bootstrap(), {}),
                                   "cyme.events", 5000, true};
  bool died_on_topic = false;
  BOOST_CHECK(wait_until(
    [&] {
      while (auto m = reader.poll(100)) {
        auto e = nlohmann::json::parse(m->value, nullptr, false);
        if (m->key == "http" && e.is_object() && e["kind"] == "died"
            && e["instance"] == "w1")
          died_on_topic = true;
      }
      return died_on_topic;
    },
    30s));
}

BOOST_AUTO_TEST_CASE(a_client_resumes_where_it_was_and_bad_queries_are_refused) {
  // ?since=N and Last-Event-ID give only the events after N; unknown
  // parameters, bad names and a since after the newest event get 400.
  temp_dir dir;
  branch_process b{dir.path / "root", {}};
  request(b.port(), "PUT", "/shop/instances/w1/", "{}");
  std::vector<nlohmann::json> all;
  BOOST_REQUIRE(wait_until(
    [&] {
      all = sse_events(get(b.port(), "/events/?since=0&follow=0"));
      return all.size() >= 3;
    },
    30s));
  auto middle = all[1]["id"].get<uint64_t>();
  auto after = sse_events(
    get(b.port(), "/events/?follow=0&since=" + std::to_string(middle)));
  BOOST_REQUIRE(!after.empty());
  BOOST_CHECK_EQUAL(after.front()["id"].get<uint64_t>(), middle + 1);
  int fd = connect_to(b.port());
  send_all(fd, "GET /events/?follow=0 HTTP/1.1\r\nHost: t\r\nConnection: "
               "close\r\nLast-Event-ID: "
                 + std::to_string(middle) + "\r\n\r\n");
  auto resumed = sse_events(read_until_closed(fd, 10s));
  ::close(fd);
  BOOST_REQUIRE(!resumed.empty());
  BOOST_CHECK_EQUAL(resumed.front()["id"].get<uint64_t>(), middle + 1);
  for (auto& e : sse_events(get(b.port(), "/events/?since=0&follow=0&app=other")))
    BOOST_CHECK_EQUAL(e["app"], "other");
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/events/?colour=red")), 400);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/events/?app=bad%20name")), 400);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/events/?since=999999999")), 400);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/events/?since=x")), 400);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/events/?follow=maybe")), 400);
  BOOST_CHECK_EQUAL(status_of(request(b.port(), "DELETE", "/events/")), 405);
  // An operator's disable is an event, with its reason.
  BOOST_REQUIRE_EQUAL(
    status_of(request(b.port(), "POST", "/shop/instances/w1/disable/",
                      R"({"reason": "maintenance"})")),
    200);
  bool disabled = false;
  for (auto& e : sse_events(get(b.port(), "/events/?since=0&follow=0&instance=w1")))
    if (e["kind"] == "disabled" && e["data"]["reason"] == "maintenance")
      disabled = true;
  BOOST_CHECK(disabled);
  // An app may not take a reserved name; nothing is made.
  for (auto name : {"events", "metrics", "ui", "apps", "supervisor", "cluster"})
    BOOST_CHECK_EQUAL(status_of(request(b.port(), "PUT",
                                        std::string{"/"} + name + "/", "{}")),
                      400);
  BOOST_CHECK_EQUAL(status_of(request(b.port(), "PUT", "/apps/metrics/", "{}")),
                    400);
  auto apps = body_of(get(b.port(), "/"));
  BOOST_CHECK_EQUAL(apps, nlohmann::json::array({"shop"}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(metrics)

/// Runs promtool check metrics on `text`: its output, and whether it passed.
std::pair<bool, std::string> promtool_check(const std::filesystem::path& dir,
                                            const std::string& text) {
  auto in = dir / "metrics.txt";
  auto out = dir / "promtool.txt";
  std::ofstream{in} << text;
  std::string command = "promtool check metrics < '" + in.string() + "' > '"
                        + out.string() + "' 2>&1";
  int rc = std::system(command.c_str());
  std::ifstream said{out};
  return {rc == 0, std::string{std::istreambuf_iterator<char>{said}, {}}};
}

BOOST_AUTO_TEST_CASE(metrics_describe_the_fleet_and_pass_promtool) {
  // GET /metrics has the instance, supervisor, bus, task, HTTP and process
  // families, labelled app, instance and branch, reflects a kill, and
  // promtool finds nothing wrong with it.
  temp_dir dir;
  branch_process b{dir.path / "root", {}};
  auto added = request(b.port(), "PUT", "/shop/instances/w1/",
                       R"({"queues": ["orders", "mail"]})");
  BOOST_REQUIRE_EQUAL(status_of(added), 201);
  ::kill(body_of(added)["pid"].get<int>(), SIGKILL);
  std::string text;
  BOOST_REQUIRE(wait_until(
    [&] {
      auto answer = get(b.port(), "/metrics");
      text = answer.substr(answer.find("\r\n\r\n") + 4);
      return text.find("cyme_instance_restarts_total{app=\"shop\",instance="
                       "\"w1\",branch=\"http\"} 1")
               != std::string::npos
             && text.find("cyme_instance_up{app=\"shop\",instance=\"w1\","
                          "branch=\"http\"} 1")
                  != std::string::npos;
    },
    30s));
  for (auto family :
       {"cyme_instance_state{", "cyme_instance_start_time_seconds{",
        "cyme_instance_last_exit_signal{app=\"shop\",instance=\"w1\","
        "branch=\"http\",signal=\"SIGKILL\"} 1",
        "cyme_instance_concurrency{",
        "cyme_instance_queues{app=\"shop\",instance=\"w1\",branch=\"http\"} 3",
        "cyme_instance_ping_round_trip_seconds{",
        "cyme_instance_resident_memory_bytes{", "cyme_instance_cpu_seconds_total{",
        "cyme_supervisor_round_duration_seconds_bucket{",
        "cyme_supervisor_rounds_total{", "cyme_supervisor_paused{branch=\"http\"} 0",
        "cyme_supervisor_bus_suspected{branch=\"http\"} 0",
        "cyme_broker_up{", "cyme_control_round_trip_seconds_bucket{",
        "cyme_control_commands_sent_total{", "cyme_control_replies_received_total{",
        "cyme_control_timeouts_total{", "cyme_tasks_submitted_total{",
        "cyme_http_connections_open{", "process_resident_memory_bytes ",
        "process_cpu_seconds_total ", "process_open_fds "})
    BOOST_CHECK_MESSAGE(text.find(family) != std::string::npos,
                        "no " << family);
  auto [ok, said] = promtool_check(dir.path, text);
  BOOST_CHECK_MESSAGE(ok, "promtool: " << said);
  auto answer = get(b.port(), "/metrics");
  BOOST_CHECK(answer.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  BOOST_CHECK_EQUAL(status_of(request(b.port(), "DELETE", "/metrics/")), 405);
}

BOOST_AUTO_TEST_CASE(an_instance_shows_when_it_started_how_it_last_died_and_what_it_uses) {
  // The instance view gains started_at, uptime, last exit (signal and
  // when), restarts in the window, memory, CPU and the last ping's round
  // trip.
  temp_dir dir;
  branch_process b{dir.path / "root", {}};
  auto added = request(b.port(), "PUT", "/shop/instances/w1/", "{}");
  auto pid = body_of(added)["pid"].get<int>();
  ::kill(pid, SIGKILL);
  nlohmann::json view;
  BOOST_REQUIRE(wait_until(
    [&] {
      view = body_of(get(b.port(), "/shop/instances/w1/"));
      return view.is_object() && view["pid"].is_number()
             && view["pid"].get<int>() > 0 && view["pid"].get<int>() != pid
             && view["state"] == "running" && !view["ping_rtt_ms"].is_null();
    },
    30s));
  BOOST_CHECK(view["started_at"].is_string());
  BOOST_CHECK(view["uptime_s"].is_number());
  BOOST_CHECK_EQUAL(view["last_exit"]["signal"], "SIGKILL");
  BOOST_CHECK(view["last_exit"]["code"].is_null());
  BOOST_CHECK(view["last_exit"]["at"].is_string());
  BOOST_CHECK_EQUAL(view["restarts"], 1);
  BOOST_CHECK_EQUAL(view["restarts_in_window"], 1);
  BOOST_CHECK_GT(view["rss_bytes"].get<double>(), 0);
  BOOST_CHECK(view["cpu_seconds"].is_number());
  BOOST_CHECK_GT(view["ping_rtt_ms"].get<double>(), 0);
}

BOOST_AUTO_TEST_SUITE_END()


BOOST_AUTO_TEST_SUITE(instance_logs)

BOOST_AUTO_TEST_CASE(the_tail_of_a_log_and_its_new_lines_as_they_come) {
  // logs/?tail=N gives the last N lines; follow=1 then streams the lines a
  // restarted process writes; bad parameters get 400, unknown instances 404.
  temp_dir dir;
  branch_process b{dir.path / "root", {"--allow-program", CYME_TEST_SLEEPER}};
  auto put = request(b.port(), "PUT", "/chat/instances/talker/",
                     nlohmann::json{{"kind", "process"},
                                    {"program", CYME_TEST_SLEEPER},
                                    {"args", {"--name", "talker", "--lines", "50"}}}
                       .dump());
  BOOST_REQUIRE_EQUAL(status_of(put), 201);
  std::string tail;
  BOOST_REQUIRE(wait_until(
    [&] {
      auto answer = get(b.port(), "/chat/instances/talker/logs/?tail=5");
      tail = answer.substr(answer.find("\r\n\r\n") + 4);
      return status_of(answer) == 200 && tail.find("line 50") != std::string::npos;
    },
    30s));
  BOOST_CHECK_EQUAL(std::count(tail.begin(), tail.end(), '\n'), 5);
  BOOST_CHECK(tail.find("line 46") != std::string::npos);
  int fd = connect_to(b.port());
  send_all(fd, "GET /chat/instances/talker/logs/?tail=1&follow=1 HTTP/1.1\r\n"
               "Host: t\r\n\r\n");
  std::string streamed;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  auto read_more = [&] {
    char buf[4096];
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0)
      streamed.append(buf, static_cast<size_t>(n));
  };
  BOOST_REQUIRE(wait_until(
    [&] {
      read_more();
      return streamed.find("line 50") != std::string::npos;
    },
    10s));
  auto before_restart = streamed.size();
  BOOST_REQUIRE_EQUAL(
    status_of(request(b.port(), "POST", "/chat/instances/talker/restart/")), 200);
  BOOST_CHECK(wait_until(
    [&] {
      read_more();
      return streamed.find("line 50", before_restart) != std::string::npos;
    },
    30s));
  BOOST_CHECK(streamed.find("line 1", before_restart) != std::string::npos);
  ::close(fd);
  for (auto bad : {"tail=0", "tail=20000", "tail=x", "follow=2", "colour=red"})
    BOOST_CHECK_MESSAGE(
      status_of(get(b.port(), std::string{"/chat/instances/talker/logs/?"} + bad))
        == 400,
      bad);
  BOOST_CHECK_EQUAL(status_of(get(b.port(), "/chat/instances/nobody/logs/")), 404);
  BOOST_CHECK_EQUAL(status_of(request(b.port(), "DELETE",
                                      "/chat/instances/talker/logs/")),
                    405);
}

BOOST_AUTO_TEST_SUITE_END()

// System tests on a namespace cluster (tests/system/run.sh): one real Kafka
// broker host, three branch hosts, and this program on a fourth host.
// Run in this order, they share the cluster: spread, repair, remote
// restart, a host cut off, the broker stopped for 60 s.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <set>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

extern char** environ;

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr)
    throw std::runtime_error(std::string{"run through tests/system/run.sh ("}
                             + name + " unset)");
  return v;
}

std::string host_addr(int n) {
  return "10.77.0.1" + std::to_string(n);
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

struct reply {
  int status = 0;
  json body;
};

/// One HTTP call to branch host `n`; status 0 when it does not answer.
reply call(int n, const std::string& method, const std::string& path,
           const json& body = json::object()) {
  httplib::Client c{host_addr(n), 8000};
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(120, 0);
  httplib::Result r{nullptr, httplib::Error::Unknown};
  auto text = body.dump();
  if (method == "GET")
    r = c.Get(path.c_str());
  else if (method == "DELETE")
    r = c.Delete(path.c_str(), text, "application/json");
  else if (method == "PUT")
    r = c.Put(path.c_str(), text, "application/json");
  else
    r = c.Post(path.c_str(), text, "application/json");
  reply out;
  if (!r)
    return out;
  out.status = r->status;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

/// Runs a program (argv, no shell); returns its exit code.
int run(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int cluster(std::vector<std::string> args) {
  args.insert(args.begin(), env("CYME_SYS_REPO") + "/deploy/netns/cluster.sh");
  return run(std::move(args));
}

int kafka(const std::string& verb) {
  std::vector<std::string> args{"exec", "kafka",
                                env("CYME_SYS_REPO") + "/deploy/kafka/kafka.sh",
                                verb, env("CYME_SYS_RUN_DIR") + "/kafka"};
  if (verb == "start")
    args.push_back("10.77.0.1:9092");
  return cluster(std::move(args));
}

/// Every instance of app demo, as host `n` lists them (cluster-wide).
json instances(int n) {
  return call(n, "GET", "/demo/instances/").body;
}

std::map<std::string, json> by_name(const json& list) {
  std::map<std::string, json> out;
  if (list.is_array())
    for (auto& x : list)
      out[x["name"].get<std::string>()] = x;
  return out;
}

std::string first_on(const json& list, const std::string& branch) {
  for (auto& x : list)
    if (x["branch"] == branch)
      return x["name"].get<std::string>();
  return {};
}

/// Sends `n` sleep tasks through host 1; returns their ids.
std::vector<std::string> send_tasks(int n, int ms) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    auto r = call(1, "POST", "/demo/queue/jobs/",
                  {{"handler", "sleep"}, {"args", {{"ms", ms}}}});
    if (r.status == 202)
      ids.push_back(r.body["id"].get<std::string>());
  }
  return ids;
}

/// Whether every task has a result (waits up to `seconds` for each).
bool all_done(const std::vector<std::string>& ids, int seconds) {
  for (auto& id : ids) {
    auto r = call(1, "GET", "/demo/query/" + id + "/wait/?timeout="
                              + std::to_string(seconds));
    if (r.status != 200 || r.body["state"] != "SUCCESS")
      return false;
  }
  return true;
}

/// Takes the broker down with `verb` (kafka.sh stop or kill) while 40
/// tasks are queued, keeps it down `outage` longer once every branch has
/// paused, and starts it again on the same data. Checks: every branch
/// pauses and resumes, no instance is restarted (same restarts, same pid)
/// until well past wait_after_broker_revived, and every task queued before
/// the fault gets its result, as does one sent afterwards.
void broker_outage(const std::string& verb, std::chrono::seconds outage) {
  std::map<int, std::map<std::string, json>> before;
  for (int n = 1; n <= 3; ++n)
    before[n] = by_name(call(n, "GET", "/demo/instances/?local=1").body);
  auto ids = send_tasks(40, 200);
  BOOST_TEST_REQUIRE(ids.size() == 40u);
  BOOST_TEST_REQUIRE(kafka(verb) == 0);
  BOOST_TEST(wait_until(
    [&] {
      for (int n = 1; n <= 3; ++n)
        if (call(n, "GET", "/supervisor/").body["paused"] != true)
          return false;
      return true;
    },
    30s));
  std::this_thread::sleep_for(outage);
  BOOST_TEST_REQUIRE(kafka("start") == 0);
  BOOST_TEST(wait_until(
    [&] {
      for (int n = 1; n <= 3; ++n)
        if (call(n, "GET", "/supervisor/").body["paused"] != false)
          return false;
      return true;
    },
    60s));
  // Past the wait after revival, with a round or two to spare.
  std::this_thread::sleep_for(30s);
  for (int n = 1; n <= 3; ++n) {
    auto now = by_name(call(n, "GET", "/demo/instances/?local=1").body);
    for (auto& [name, x] : before[n]) {
      BOOST_TEST(now[name]["restarts"] == x["restarts"], "host" << n << " " << name);
      BOOST_TEST(now[name]["pid"] == x["pid"], "host" << n << " " << name);
    }
  }
  BOOST_TEST(all_done(ids, 120));
  auto task = call(1, "POST", "/demo/queue/jobs/", {{"args", "after"}});
  BOOST_TEST_REQUIRE(task.status == 202);
  auto id = task.body["id"].get<std::string>();
  BOOST_TEST(call(1, "GET", "/demo/query/" + id + "/wait/?timeout=60").body["state"]
             == "SUCCESS");
}

} // namespace

BOOST_AUTO_TEST_SUITE(namespace_cluster)

BOOST_AUTO_TEST_CASE(instances_created_through_one_branch_are_spread) {
  // Anonymous instances created through host 1 land on all three hosts,
  // and host 1 lists them all with the host each lives on.
  for (int n = 1; n <= 3; ++n)
    BOOST_TEST_REQUIRE(call(n, "PUT", "/demo/").status / 100 == 2);
  BOOST_TEST_REQUIRE(wait_until(
    [&] {
      auto r = call(1, "POST", "/demo/instances/", {{"queues", {"jobs"}}});
      BOOST_REQUIRE(r.status == 201);
      std::set<std::string> where;
      for (auto& x : instances(1))
        where.insert(x["branch"].get<std::string>());
      return where.size() == 3;
    },
    60s));
  // Host 2's view converges on the same fleet (announcements every 2 s).
  json list;
  std::set<std::string> where;
  BOOST_TEST(wait_until(
               [&] {
                 list = instances(2);
                 where.clear();
                 for (auto& x : list)
                   where.insert(x["branch"].get<std::string>());
                 return where.size() == 3
                        && list.size() == instances(1).size();
               },
               20s),
             list.dump());
  for (auto& x : list)
    BOOST_TEST(x["state"] == "running", x.dump());
}

BOOST_AUTO_TEST_CASE(a_killed_worker_on_host_2_is_repaired_by_host_2) {
  // kill -9 of a worker of host 2: host 2's supervisor restarts it.
  auto name = first_on(instances(1), "host2");
  BOOST_TEST_REQUIRE(!name.empty());
  auto before = call(2, "GET", "/demo/instances/" + name + "/").body;
  auto pid = before["pid"].get<int>();
  BOOST_TEST_REQUIRE(pid > 0);
  ::kill(pid, SIGKILL);
  BOOST_TEST(wait_until(
    [&] {
      auto now = call(2, "GET", "/demo/instances/" + name + "/").body;
      return now["pid"] != pid && now["state"] == "running"
             && now["restarts"] == before["restarts"].get<int>() + 1;
    },
    15s));
}

BOOST_AUTO_TEST_CASE(host_1_restarts_an_instance_of_host_3_by_actor_message) {
  // From host 1, `cyme --node` reaches host 3's supervisor through CAF's
  // middleman and restarts one of host 3's instances.
  auto name = first_on(instances(1), "host3");
  BOOST_TEST_REQUIRE(!name.empty());
  auto pid = call(3, "GET", "/demo/instances/" + name + "/").body["pid"];
  auto code = cluster({"exec", "h1", env("CYME_SYS_BUILD") + "/cyme", "--node",
                       "10.77.0.13:4242", "instances", "restart", "demo", name});
  BOOST_TEST(code == 0);
  auto now = call(3, "GET", "/demo/instances/" + name + "/").body;
  BOOST_TEST(now["pid"] != pid);
  BOOST_TEST(now["state"] == "running");
}

BOOST_AUTO_TEST_CASE(host_3_cut_off_the_others_work_on_and_it_catches_up) {
  // Host 3's link goes down: hosts 1 and 2 go on placing and running
  // tasks, and drop host 3 from their view. The link comes back: host 3 is
  // in the view again and its instances run, none restarted meanwhile.
  auto on_three = by_name(call(3, "GET", "/demo/instances/?local=1").body);
  BOOST_TEST_REQUIRE(!on_three.empty());
  BOOST_TEST_REQUIRE(cluster({"link", "h3", "down"}) == 0);
  BOOST_TEST(wait_until(
    [&] { return first_on(instances(1), "host3").empty(); }, 30s));
  auto made = call(1, "POST", "/demo/instances/", {{"queues", {"jobs"}}});
  BOOST_TEST(made.status == 201);
  BOOST_TEST(made.body["branch"] != "host3");
  auto task = call(2, "POST", "/demo/queue/jobs/", {{"args", "cut off"}});
  BOOST_TEST_REQUIRE(task.status == 202);
  auto id = task.body["id"].get<std::string>();
  BOOST_TEST(call(2, "GET", "/demo/query/" + id + "/wait/?timeout=60").body["state"]
             == "SUCCESS");
  BOOST_TEST_REQUIRE(cluster({"link", "h3", "up"}) == 0);
  BOOST_TEST(wait_until(
    [&] { return !first_on(instances(1), "host3").empty(); }, 30s));
  BOOST_TEST(wait_until(
    [&] {
      auto st = call(3, "GET", "/supervisor/").body;
      return st.is_object() && st["paused"] == false;
    },
    60s));
  auto after = by_name(call(3, "GET", "/demo/instances/?local=1").body);
  for (auto& [name, x] : on_three) {
    BOOST_TEST(after[name]["pid"] == x["pid"], name);
    BOOST_TEST(after[name]["restarts"] == x["restarts"], name);
  }
}

BOOST_AUTO_TEST_CASE(broker_frozen_20_seconds_loses_no_task) {
  // The broker is frozen (SIGSTOP) for 20 s while tasks are queued: no
  // instance is restarted for it, and every task gets its result.
  std::map<int, std::map<std::string, json>> before;
  for (int n = 1; n <= 3; ++n)
    before[n] = by_name(call(n, "GET", "/demo/instances/?local=1").body);
  auto ids = send_tasks(40, 200);
  BOOST_TEST_REQUIRE(ids.size() == 40u);
  BOOST_TEST_REQUIRE(kafka("pause") == 0);
  std::this_thread::sleep_for(20s); // the freeze's length
  BOOST_TEST_REQUIRE(kafka("resume") == 0);
  BOOST_TEST(all_done(ids, 120));
  for (int n = 1; n <= 3; ++n) {
    auto now = by_name(call(n, "GET", "/demo/instances/?local=1").body);
    for (auto& [name, x] : before[n])
      BOOST_TEST(now[name]["restarts"] == x["restarts"], "host" << n << " " << name);
  }
}

BOOST_AUTO_TEST_CASE(broker_down_60_seconds_restarts_nothing) {
  // The broker stops for 60 s: every branch pauses, no instance is
  // restarted while it is down nor within wait_after_broker_revived (20 s
  // here) after it is back; tasks queued before the stop all get their
  // result afterwards. The outage lasts 60 s in all (a fault's length, not
  // a wait for a condition): about 10 s to notice it, then 50 s.
  broker_outage("stop", 50s);
}

BOOST_AUTO_TEST_CASE(broker_killed_and_restarted_loses_no_task) {
  // kill -9 of the broker with tasks queued, then a restart on the same
  // data (as its service manager would): the same promises as a clean stop.
  broker_outage("kill", 0s);
}

BOOST_AUTO_TEST_SUITE_END()

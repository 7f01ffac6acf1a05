// An instance as the API shows it (api/common.hpp): the text written
// straight for listings is valid JSON, escapes what it must, and shows
// every field of the spec, its launch and its status.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/common.hpp"

using namespace cyme;
using json = nlohmann::json;

BOOST_AUTO_TEST_SUITE(instance_view)

BOOST_AUTO_TEST_CASE(the_written_view_is_json_with_every_field) {
  instance_spec spec;
  spec.name = "w1";
  spec.app = "shop";
  spec.broker = "kafka-2:9092";
  spec.queues = {"q1", "q2"};
  spec.max_concurrency = 4;
  spec.min_concurrency = 1;
  spec.enabled = false;
  spec.disabled_reason = "said \"stop\"\n\tnow \\ \x01 ü";
  spec.launch.kind = instance_kind::process;
  spec.launch.program = "/usr/bin/python3";
  spec.launch.args = {"-m", "app", "--quote=\"x\""};
  spec.launch.env = {{"B", "2"}, {"A", "line\nbreak"}};
  spec.launch.stop_signal = "INT";
  spec.launch.stop_grace_ms = 2500;
  spec.launch_overrides = R"({"env": {"A": "line\nbreak"}})";
  instance_status st;
  st.name = "w1";
  st.state = instance_state::running;
  st.pid = 0;
  st.restarts = 3;
  st.consuming_from = {"dq.w1", "q1"};
  st.autoscale_max = 4;
  st.autoscale_min = 1;
  st.concurrency = 2;
  st.last_exit_code = -1;
  st.last_exit_signal = "KILL";
  st.last_exit_at_ms = 1764547200000; // 2025-12-01T00:00:00Z
  st.ping_rtt_us = 1500;
  st.restarts_in_window = 2;
  http_parts parts;
  parts.branch_id = "b1";
  parts.worker_program = "/opt/cyme/cyme-worker";
  parts.instances_root = "/var/lib/cyme/instances";
  std::string text = "[";
  api::append_instance_text(text, spec, st, parts);
  text += "]";
  auto parsed = json::parse(text);
  BOOST_TEST_REQUIRE(parsed.size() == 1u);
  auto v = parsed[0];
  BOOST_TEST(v == api::instance_json(spec, st, parts));
  BOOST_TEST(v.size() == 31u);
  BOOST_TEST(v["name"] == "w1");
  BOOST_TEST(v["app"] == "shop");
  BOOST_TEST(v["branch"] == "b1");
  BOOST_TEST(v["broker"] == "kafka-2:9092");
  BOOST_TEST(v["queues"] == json({"q1", "q2"}));
  BOOST_TEST(v["max_concurrency"] == 4);
  BOOST_TEST(v["min_concurrency"] == 1);
  BOOST_TEST(v["is_enabled"] == false);
  BOOST_TEST(v["disabled_reason"] == spec.disabled_reason);
  BOOST_TEST(v["kind"] == "process");
  BOOST_TEST(v["program"] == "/usr/bin/python3");
  BOOST_TEST(v["args"] == json({"-m", "app", "--quote=\"x\""}));
  BOOST_TEST(v["env"] == json({{"A", "line\nbreak"}, {"B", "2"}}));
  BOOST_TEST(v["cwd"] == "/var/lib/cyme/instances/w1");
  BOOST_TEST(v["stop_signal"] == "INT");
  BOOST_TEST(v["stop_grace_s"] == 2.5);
  BOOST_TEST(v["launch_overrides"] == json({{"env", {{"A", "line\nbreak"}}}}));
  BOOST_TEST(v["state"] == "running");
  BOOST_TEST(v["pid"] == 0);
  BOOST_TEST(v["restarts"] == 3);
  BOOST_TEST(v["restarts_in_window"] == 2);
  BOOST_TEST(v["consuming_from"] == json({"dq.w1", "q1"}));
  BOOST_TEST(v["concurrency"] == 2);
  BOOST_TEST(v["autoscale"] == json({{"max", 4}, {"min", 1}}));
  BOOST_TEST(v["supervised"] == true);
  BOOST_TEST(v["ping_rtt_ms"] == 1.5);
  BOOST_TEST(v["last_exit"]["code"].is_null());
  BOOST_TEST(v["last_exit"]["signal"] == "KILL");
  BOOST_TEST(v["last_exit"]["at"] == "2025-12-01T00:00:00.000Z");
  // No process: no start, no usage.
  for (auto k : {"started_at", "uptime_s", "rss_bytes", "cpu_seconds"})
    BOOST_TEST(v[k].is_null(), k);
  // Fields in byte order, as the rest of the API writes them.
  std::vector<std::string> keys;
  auto in_order = nlohmann::ordered_json::parse(text);
  for (auto& [k, x] : in_order[0].items())
    keys.push_back(k);
  BOOST_TEST(std::is_sorted(keys.begin(), keys.end()));
}

BOOST_AUTO_TEST_CASE(a_worker_without_a_program_or_folder_gets_the_branchs) {
  instance_spec spec;
  spec.name = "w2";
  spec.app = "shop";
  instance_status st;
  st.name = "w2";
  st.pid = 4242;
  st.started_at_ms = 1;
  http_parts parts;
  parts.branch_id = "b1";
  parts.worker_program = "/opt/cyme/cyme-worker";
  parts.instances_root = "/var/lib/cyme/instances";
  std::string text;
  api::append_instance_text(text, spec, st, parts);
  auto v = json::parse(text);
  BOOST_TEST(v["program"] == "/opt/cyme/cyme-worker");
  BOOST_TEST(v["cwd"] == "/var/lib/cyme/instances/w2");
  BOOST_TEST(v["kind"] == "worker");
  BOOST_TEST(v["launch_overrides"] == json::object());
  BOOST_TEST(v["last_exit"].is_null());
  BOOST_TEST(v["ping_rtt_ms"].is_null());
  BOOST_TEST(v["started_at"] == "1970-01-01T00:00:00.001Z");
  BOOST_TEST(v["uptime_s"].get<double>() > 1e9);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(task_ids)

BOOST_AUTO_TEST_CASE(ids_are_version_4_uuids_none_twice_across_threads) {
  // Taken from the kernel's random source through a per-thread buffer:
  // every id has the version and variant bits, and 4 threads making
  // 25,000 each (the buffer refilled many times) never make one twice.
  const std::regex shape{"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"};
  std::set<std::string> seen;
  std::mutex mtx;
  std::vector<std::thread> threads;
  bool all_shaped = true;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      std::vector<std::string> mine;
      for (int i = 0; i < 25000; ++i)
        mine.push_back(api::new_uuid());
      bool shaped = std::all_of(mine.begin(), mine.end(), [&](auto& id) {
        return std::regex_match(id, shape);
      });
      std::lock_guard<std::mutex> guard{mtx};
      all_shaped = all_shaped && shaped;
      seen.insert(mine.begin(), mine.end());
    });
  for (auto& t : threads)
    t.join();
  BOOST_TEST(all_shaped);
  BOOST_TEST(seen.size() == 100000u);
  // Every hex digit shows up first: ids made of a zeroed buffer would
  // not.
  std::set<char> first_digits;
  for (auto& id : seen)
    first_digits.insert(id[0]);
  BOOST_TEST(first_digits.size() == 16u);
}

BOOST_AUTO_TEST_SUITE_END()

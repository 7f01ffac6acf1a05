// Scenario files (testing/scenario_file.hpp): a bad file gets an error that
// names the line or the field and runs nothing; an expectation that does
// not hold fails the run and names its step; a good one passes.
#include <boost/test/unit_test.hpp>

#include "testing/scenario_file.hpp"

using cyme::testing::parse_scenario;
using cyme::testing::run_scenario;

namespace {

std::string problem_of(const std::string& text) {
  std::string problem;
  auto s = parse_scenario(text, problem);
  BOOST_TEST(!s.has_value());
  return problem;
}

const char* fleet = R"("fleet": [{"name": "w1", "queues": ["q"]}])";

std::string with_steps(const std::string& steps) {
  return std::string{"{"} + fleet + ", \"steps\": [" + steps + "]}";
}

} // namespace

BOOST_AUTO_TEST_SUITE(scenario_files)

BOOST_AUTO_TEST_CASE(a_syntax_error_names_its_line) {
  auto p = problem_of("{\n  \"fleet\": [\n    {\"name\": \"w1\",,}\n  ]\n}\n");
  BOOST_TEST(p.find("line 3") != std::string::npos, p);
}

BOOST_AUTO_TEST_CASE(a_wrong_field_is_named) {
  struct bad_case {
    std::string text;
    std::string names;
  };
  const std::vector<bad_case> cases{
    {R"({"fleet": [], "steps": []})", "fleet: must be a list of at least one"},
    {std::string{"{"} + fleet + R"(, "steps": [], "colour": 1})",
     "scenario.colour: unknown field"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"interval": "5 parsecs"}})",
     "settings.interval: '5 parsecs': unknown unit"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"restart_max_rate": "fast"}})",
     "settings.restart_max_rate:"},
    {R"({"fleet": [{"name": "../w1"}], "steps": []})", "fleet[0].name"},
    {R"({"fleet": [{"name": "w1"}, {"name": "w1"}], "steps": []})",
     "fleet[1].name: 'w1' is named twice"},
    {R"({"fleet": [{"name": "w1", "kind": "daemon"}], "steps": []})",
     "fleet[0].kind: 'daemon' is not worker or process"},
    {with_steps(R"({"at": "1s", "do": "explode", "instance": "w1"})"),
     "steps[0].do: 'explode' is not an action"},
    {with_steps(R"({"at": "1s", "do": "kill", "instance": "w9"})"),
     "steps[0].instance: 'w9' is not an instance of the fleet"},
    {with_steps(R"({"at": "1s", "do": "kill"})"),
     "steps[0].instance: missing"},
    {with_steps(R"({"at": "5s", "do": "pause"}, {"at": "2s", "do": "resume"})"),
     "steps[1].at: comes before the step above it"},
    {with_steps(R"({"at": "1s"})"), "steps[0]: a step needs"},
    {with_steps(R"({"at": "1s", "expect": {"events": {"exploded": 1}}})"),
     "steps[0].expect.events.exploded: not an event kind"},
    {with_steps(R"({"at": "1s", "expect": {"state": {"w1": "asleep"}}})"),
     "steps[0].expect.state.w1: 'asleep' is not a state"},
    {with_steps(R"({"at": -1, "do": "pause"})"), "steps[0].at: must be from 0"},
    {with_steps(R"({"at": "1s", "do": "autoscale", "instance": "w1", "max": 1, "min": 2})"),
     "steps[0]: autoscale needs 1 <= min <= max"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"bus_suspect_threshold": 1.5}})",
     "settings: bus_suspect_threshold must be greater than 0 and at most 1"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"bus_suspect_threshold": "half"}})",
     "settings.bus_suspect_threshold: must be a number"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"bus_suspect_min_misses": 0}})",
     "settings: bus_suspect_min_misses must be at least 1"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"bus_suspect_min_misses": -3}})",
     "settings.bus_suspect_min_misses: must be a whole number"},
    {std::string{"{"} + fleet + R"(, "steps": [], "settings": {"bus_suspect_restart_rate": "often"}})",
     "settings.bus_suspect_restart_rate:"},
  };
  for (auto& c : cases) {
    auto p = problem_of(c.text);
    BOOST_TEST(p.find(c.names) != std::string::npos,
               "'" << p << "' does not contain '" << c.names << "'");
  }
}

BOOST_AUTO_TEST_CASE(a_failing_expectation_names_its_step) {
  std::string problem;
  auto s = parse_scenario(with_steps(R"(
    {"at": "2s", "expect": {"running": ["w1"]}},
    {"at": "3s", "do": "kill", "instance": "w1", "silent": true},
    {"at": "4s", "expect": {"running": ["w1"]}})"),
                          problem);
  BOOST_REQUIRE_MESSAGE(s.has_value(), problem);
  auto outcome = run_scenario(*s);
  BOOST_TEST(!outcome.passed);
  BOOST_TEST(outcome.failure.find("steps[2]") == 0u, outcome.failure);
  BOOST_TEST(outcome.failure.find("w1 is not running") != std::string::npos,
             outcome.failure);
  BOOST_TEST(outcome.timeline.find("do kill w1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_silent_death_is_repaired_by_the_next_round) {
  std::string problem;
  auto s = parse_scenario(std::string{"{"} + fleet + R"(,
    "settings": {"interval": "10s"},
    "steps": [
      {"at": "3s", "do": "kill", "instance": "w1", "silent": true},
      {"at": "4s", "expect": {"not_running": ["w1"]}},
      {"at": "15s", "expect": {"running": ["w1"], "starts": {"w1": 2}, "restarts": {"w1": 1}}}]})",
                          problem);
  BOOST_REQUIRE_MESSAGE(s.has_value(), problem);
  auto outcome = run_scenario(*s);
  BOOST_TEST(outcome.passed, outcome.failure);
}

BOOST_AUTO_TEST_CASE(the_bus_suspicion_is_set_and_seen_in_a_file) {
  // Four of six instances fall silent while their processes run: with a
  // threshold of a half and at least three misses, the round at 10 s
  // suspects the bus, and restarts at most one of them a minute. With the
  // default threshold (0.55) and minimum (5) the same fleet restarts all
  // four instead.
  auto file = [](const std::string& settings, const std::string& expect) {
    return std::string{R"({"fleet": [{"name": "w1"}, {"name": "w2"}, {"name": "w3"},
                                    {"name": "w4"}, {"name": "w5"}, {"name": "w6"}],
      "settings": {"interval": "10s")"}
           + settings + R"(},
      "steps": [
        {"at": "2s", "expect": {"running": ["w1", "w2", "w3", "w4", "w5", "w6"]}},
        {"at": "3s", "do": "hang", "instance": "w1"},
        {"at": "3s", "do": "hang", "instance": "w2"},
        {"at": "3s", "do": "hang", "instance": "w3"},
        {"at": "3s", "do": "hang", "instance": "w4"},
        {"at": "40s", "expect": )"
           + expect + "}]}";
  };
  std::string problem;
  auto suspected = parse_scenario(
    file(R"(, "bus_suspect_threshold": 0.5, "bus_suspect_min_misses": 3,
            "bus_suspect_restart_rate": "1/m")",
         R"({"events": {"bus_suspected": 1, "restarting": 1}})"),
    problem);
  BOOST_REQUIRE_MESSAGE(suspected.has_value(), problem);
  auto outcome = run_scenario(*suspected);
  BOOST_TEST(outcome.passed, outcome.failure << "\n" << outcome.timeline);
  auto plain = parse_scenario(file("", R"({"events": {"bus_suspected": 0, "restarting": 4}})"),
                              problem);
  BOOST_REQUIRE_MESSAGE(plain.has_value(), problem);
  outcome = run_scenario(*plain);
  BOOST_TEST(outcome.passed, outcome.failure << "\n" << outcome.timeline);
}

BOOST_AUTO_TEST_SUITE_END()

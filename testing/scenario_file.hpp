#pragma once

/// Scenario files: a fleet, the supervisor's settings and steps of the form
/// "at T do X, expect Y", run against the real supervisor code in virtual
/// time (testing/simulation.hpp). docs/SCENARIOS.md describes the format;
/// examples/scenarios/ holds examples; `cyme-scenario FILE.json` runs one.

#include <optional>
#include <string>
#include <vector>


#include "actors/supervisor_settings.hpp"
#include "messages/instance.hpp"
#include "testing/explorer.hpp"

namespace cyme::testing {

/// What a step expects; every part is optional.
struct expectation {
  /// The whole expectation as written, to name it when it fails.
  std::string text;
  std::vector<std::string> running;
  std::vector<std::string> not_running;
  std::vector<std::pair<std::string, std::string>> state;
  std::optional<bool> paused;
  /// Events of a kind so far (instance empty: any instance).
  struct event_count {
    std::string instance;
    std::string kind;
    size_t count = 0;
  };
  std::vector<event_count> events;
  std::vector<std::pair<std::string, size_t>> starts;
  std::vector<std::pair<std::string, size_t>> restarts;
  std::vector<std::pair<std::string, std::vector<std::string>>> consuming;
  std::vector<std::pair<std::string, std::string>> disabled_reason;
};

struct scenario_step {
  /// Where the step is in the file ("steps[3]").
  std::string where;
  caf::timespan at{0};
  /// The action, when there is one: an explorer step, or one of
  /// queues / autoscale / drift / verify / restart / shutdown with the
  /// fields below.
  std::optional<explore_step> action;
  std::vector<std::string> names;
  std::vector<std::string> queues;
  uint32_t max = 0;
  uint32_t min = 0;
  bool ratelimit = true;
  std::optional<expectation> expect;
};

struct scenario {
  std::string name;
  std::string description;
  supervisor_settings settings;
  std::vector<instance_spec> fleet;
  /// Names in the model at the start (the rest can be added by a step).
  std::vector<std::string> initial;
  std::vector<scenario_step> steps;
};

/// Parses a scenario file's text. On a problem, returns nothing and says
/// where in `problem`: the line and column of a syntax error, or the field
/// ("steps[2].do") of a wrong value.
std::optional<scenario> parse_scenario(const std::string& text,
                                       std::string& problem);

struct scenario_outcome {
  bool passed = true;
  /// Which step failed and why.
  std::string failure;
  /// Each step and each event of the supervisor, with its virtual time.
  std::string timeline;
};

/// Runs a scenario: steps in order at their times; stops at the first
/// expectation that fails or invariant broken.
scenario_outcome run_scenario(const scenario& s);

} // namespace cyme::testing

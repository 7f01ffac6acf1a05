// cyme-explore: runs the supervisor under randomized, seeded schedules of
// faults and requests in virtual time (testing/explorer.hpp) and checks its
// invariants after every step. A failing seed is shrunk and printed as a
// scenario test; the exit code is then 1.
//
//   cyme-explore [--seeds N] [--steps M] [--first-seed S] [--seed S]
//                [--trace] [--json]
//   cyme-explore --help | --version
//
// --trace prints the timeline (steps and the supervisor's events) of the
// shrunk schedule of a failing seed. --json prints the figures of a run in
// which every invariant held as one JSON line (bench/run.sh explore).
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <string>

#include "messages/version.hpp"
#include "testing/explorer.hpp"

namespace {

constexpr const char* usage_line
  = "usage: cyme-explore [--seeds N] [--steps M] [--first-seed S] [--seed S]"
    " [--trace] [--json] | --help | --version\n";

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "cyme-explore: " << problem << "\n" << usage_line;
  std::exit(2);
}

void help() {
  std::cout
    << "cyme-explore: runs the supervisor under random, seeded schedules of "
       "faults and requests in virtual time and checks its invariants after "
       "every step\n"
    << usage_line
    << "\nOptions:\n"
       "  --seeds N        schedules to run (default 100)\n"
       "  --steps M        steps per schedule (default 200)\n"
       "  --first-seed S   seed of the first schedule (default 1)\n"
       "  --seed S         run only the schedule of seed S\n"
       "  --trace          print the timeline of a failing seed's shrunk "
       "schedule\n"
       "  --json           print the figures of a passing run as one JSON "
       "line\n"
       "  -h,--help        print this help and exit\n"
       "  --version        print the version and exit\n"
       "\nA failing seed is shrunk and printed as a scenario test; the exit "
       "status is then 1 (2 for a bad flag).\n";
}

uint64_t number(const std::string& flag, const char* text) {
  if (text == nullptr)
    usage(flag + " needs a value");
  std::string s{text};
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos
      || s.size() > 18)
    usage(flag + ": '" + s + "' is not a whole number");
  return std::stoull(s);
}

double cpu_seconds() {
  return static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
}

} // namespace

int main(int argc, char** argv) {
  uint64_t seeds = 100;
  uint64_t steps = 200;
  uint64_t first = 1;
  bool trace = false;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--version") {
      std::cout << cyme::version_text("cyme-explore") << "\n";
      return 0;
    }
    if (flag == "--help" || flag == "-h") {
      help();
      return 0;
    }
    if (flag == "--trace" || flag == "--json") {
      (flag == "--trace" ? trace : json) = true;
      continue;
    }
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (flag == "--seeds")
      seeds = number(flag, value);
    else if (flag == "--steps")
      steps = number(flag, value);
    else if (flag == "--first-seed")
      first = number(flag, value);
    else if (flag == "--seed") {
      first = number(flag, value);
      seeds = 1;
    } else
      usage("unknown flag '" + flag + "'");
    ++i;
  }
  if (seeds == 0 || steps == 0)
    usage("--seeds and --steps must be positive");
  auto cpu0 = cpu_seconds();
  double simulated = 0;
  size_t requests = 0;
  size_t starts = 0;
  size_t spares_taken = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    auto schedule = cyme::testing::draw_schedule(seed, steps);
    auto r = cyme::testing::run_schedule(schedule);
    simulated += r.simulated_seconds;
    requests += r.requests;
    starts += r.starts;
    spares_taken += r.spares_taken;
    if (!r.violation.empty()) {
      std::cout << "seed " << seed << ": " << r.violation << " after step "
                << r.at_step + 1 << " of " << schedule.size() << "\n";
      auto shrunk = cyme::testing::shrink(schedule, r.violation);
      auto again = cyme::testing::run_schedule(shrunk, trace);
      if (trace)
        std::cout << again.timeline << "\n";
      std::cout << "shrunk to " << shrunk.size() << " steps: "
                << again.violation << "\n\n"
                << cyme::testing::as_scenario(
                     shrunk, "explorer_seed_" + std::to_string(seed),
                     again.violation);
      return 1;
    }
  }
  auto cpu = cpu_seconds() - cpu0;
  auto rate = cpu > 0 ? simulated / 3600 / cpu : 0;
  if (json) {
    std::cout << "{\"seeds\": " << seeds << ", \"steps\": " << steps
              << ", \"simulated_hours\": " << simulated / 3600
              << ", \"cpu_seconds\": " << cpu << ", \"requests\": " << requests
              << ", \"starts\": " << starts
              << ", \"spares_taken\": " << spares_taken
              << ", \"simulated_hours_per_cpu_second\": " << rate << "}\n";
    return 0;
  }
  std::cout << seeds << " seeds x " << steps << " steps: every invariant held; "
            << static_cast<uint64_t>(simulated / 3600) << " h "
            << static_cast<uint64_t>(simulated) % 3600 / 60
            << " min simulated, " << requests << " requests, " << starts
            << " process starts (" << spares_taken
            << " made at a death by the armed driver), in " << cpu << " s of CPU ("
            << rate << " simulated hours per CPU second)\n";
  return 0;
}

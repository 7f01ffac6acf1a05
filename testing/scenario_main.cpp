// cyme-scenario: runs a scenario file (docs/SCENARIOS.md) against the real
// supervisor code in virtual time and prints its timeline. Exit code 0 when
// every expectation held, 1 when one failed (named), 2 when the file is
// unreadable or wrong (the line or field named).
//
//   cyme-scenario FILE.json [--quiet] | --help | --version
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "messages/version.hpp"
#include "testing/scenario_file.hpp"

namespace {

constexpr const char* usage_line
  = "usage: cyme-scenario FILE.json [--quiet] | --help | --version\n";

} // namespace

int main(int argc, char** argv) {
  std::string file;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version") {
      std::cout << cyme::version_text("cyme-scenario") << "\n";
      return 0;
    }
    if (arg == "--help" || arg == "-h") {
      std::cout
        << "cyme-scenario: runs a scenario file against the real supervisor "
           "in virtual time\n"
        << usage_line
        << "\nOptions:\n"
           "  FILE.json   the scenario: instances, settings, steps and "
           "expectations (docs/SCENARIOS.md)\n"
           "  --quiet     print only a failed expectation, not the "
           "timeline\n"
           "  -h,--help   print this help and exit\n"
           "  --version   print the version and exit\n"
           "\nExit status: 0 when every expectation held, 1 when one "
           "failed (named), 2 when the file is unreadable or wrong (the "
           "line or field named).\n";
      return 0;
    }
    if (arg == "--quiet")
      quiet = true;
    else if (file.empty() && !arg.empty() && arg[0] != '-')
      file = arg;
    else {
      std::cerr << "cyme-scenario: unexpected argument '" << arg << "'\n"
                << usage_line;
      return 2;
    }
  }
  if (file.empty()) {
    std::cerr << usage_line;
    return 2;
  }
  std::ifstream in{file};
  if (!in) {
    std::cerr << "cyme-scenario: cannot read " << file << "\n";
    return 2;
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string problem;
  auto s = cyme::testing::parse_scenario(text.str(), problem);
  if (!s) {
    std::cerr << file << ": " << problem << "\n";
    return 2;
  }
  auto outcome = cyme::testing::run_scenario(*s);
  if (!quiet || !outcome.passed) {
    std::cout << "scenario: " << (s->name.empty() ? file : s->name) << "\n";
    if (!s->description.empty())
      std::cout << s->description << "\n";
    std::cout << outcome.timeline;
  }
  if (!outcome.passed) {
    std::cout << "FAILED: " << outcome.failure << "\n";
    return 1;
  }
  std::cout << file << ": passed (" << s->steps.size() << " steps)\n";
  return 0;
}

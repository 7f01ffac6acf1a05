// cyme-scenario: runs a scenario file (docs/SCENARIOS.md) against the real
// supervisor code in virtual time and prints its timeline. Exit code 0 when
// every expectation held, 1 when one failed (named), 2 when the file is
// unreadable or wrong (the line or field named).
//
//   cyme-scenario FILE.json [--quiet] | --version
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "messages/version.hpp"
#include "testing/scenario_file.hpp"

int main(int argc, char** argv) {
  std::string file;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version") {
      std::cout << cyme::version_text("cyme-scenario") << "\n";
      return 0;
    }
    if (arg == "--quiet")
      quiet = true;
    else if (file.empty() && !arg.empty() && arg[0] != '-')
      file = arg;
    else {
      std::cerr << "cyme-scenario: unexpected argument '" << arg << "'\n"
                << "usage: cyme-scenario FILE.json [--quiet] | --version\n";
      return 2;
    }
  }
  if (file.empty()) {
    std::cerr << "usage: cyme-scenario FILE.json [--quiet] | --version\n";
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

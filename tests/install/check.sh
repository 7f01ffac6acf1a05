#!/usr/bin/env bash
# Installs the build into a scratch prefix and builds a user's scenario
# (examples/scenario_example.cpp) against the installed headers and
# libraries only, then runs it and the installed cyme-scenario.
#
#   check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for h in testing/fixture.hpp testing/fleet.hpp testing/simulation.hpp \
         testing/explorer.hpp testing/scenario_file.hpp actors/supervisor.hpp \
         actors/lifecycle.hpp messages/supervision.hpp; do
  test -f "$prefix/include/cyme/$h" || { echo "not installed: $h"; exit 1; }
done
# Only the installed tree: the source folder is not on the include path.
c++ -std=c++17 -I "$prefix/include/cyme" "$src/examples/scenario_example.cpp" \
  "$prefix/lib/cyme/libcyme_testing.a" "$prefix/lib/cyme/libcyme_actors.a" \
  "$prefix/lib/cyme/libcyme_messages.a" -lcaf_core -lpthread \
  -o "$prefix/scenario_example"
"$prefix/scenario_example"
"$prefix/bin/cyme-scenario" "$src/examples/scenarios/crash_loop.json" --quiet

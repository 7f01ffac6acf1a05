#!/usr/bin/env bash
# cyme as users get it from `cmake --install`: installs the build into a
# scratch prefix, then, from the installed tree only,
# - builds examples/ (its own CMake project) with find_package(cyme);
# - runs the scenario example and the installed cyme-scenario;
# - starts the installed cyme-branch (embedded Kafka, --node on loopback)
#   and asks its supervisor for its status with the remote client built
#   against the package, then stops the branch.
#
#   check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
prefix=$(mktemp -d)
branch=
cleanup() {
  if [ -n "$branch" ]; then
    kill -TERM "$branch" 2>/dev/null || true
    wait "$branch" 2>/dev/null || true
  fi
  rm -rf "$prefix"
}
trap cleanup EXIT
fail() { echo "check.sh: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for p in cyme-branch cyme cyme-worker cyme-log cyme-embedded-kafka \
         cyme-explore cyme-scenario; do
  test -x "$prefix/bin/$p" || fail "not installed: bin/$p"
done
for h in testing/fixture.hpp testing/fleet.hpp testing/simulation.hpp \
         testing/explorer.hpp testing/scenario_file.hpp actors/supervisor.hpp \
         actors/message_types.hpp actors/lifecycle.hpp \
         messages/supervision.hpp messages/topics.hpp; do
  test -f "$prefix/include/cyme/$h" || fail "not installed: include/cyme/$h"
done
for f in cymeConfig.cmake cymeConfigVersion.cmake cymeTargets.cmake \
         FindCAF.cmake; do
  test -f "$prefix/lib/cmake/cyme/$f" || fail "not installed: lib/cmake/cyme/$f"
done
"$prefix/bin/cyme-branch" --version | grep -q '^cyme-branch ' \
  || fail "the installed cyme-branch does not answer --version"

# The examples, as a user's project: the source tree is not on any path,
# only the package is.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$src/examples" -B "$prefix/examples-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >/dev/null
grep -q "cyme_DIR:PATH=$prefix/lib/cmake/cyme" "$prefix/examples-build/CMakeCache.txt" \
  || fail "find_package(cyme) did not take the installed package"
if grep -rq -- "-I$src\b\|-I $src\b\|isystem $src\b" \
     "$prefix/examples-build/build.ninja"; then
  fail "the examples were compiled with the source tree on the include path"
fi
cmake --build "$prefix/examples-build" >/dev/null
"$prefix/examples-build/scenario_example"
"$prefix/bin/cyme-scenario" "$src/examples/scenarios/crash_loop.json" --quiet

# The installed branch, and the remote client asking it over the middleman.
free_port() { "$src/deploy/kafka/kafka.sh" free-port 127.0.0.1; }
http_port=$(free_port)
node_port=$(free_port)
while [ "$node_port" = "$http_port" ]; do node_port=$(free_port); done
"$prefix/bin/cyme-branch" --root "$prefix/root" \
  --http "127.0.0.1:$http_port" --node "127.0.0.1:$node_port" \
  >"$prefix/branch.log" 2>&1 &
branch=$!
answer=
for _ in $(seq 300); do
  if answer=$("$prefix/examples-build/remote_client" 127.0.0.1 "$node_port" 2>&1); then
    break
  fi
  kill -0 "$branch" 2>/dev/null || { cat "$prefix/branch.log" >&2; fail "the installed cyme-branch exited"; }
  answer=
  sleep 0.1
done
[ -n "$answer" ] || { cat "$prefix/branch.log" >&2; fail "the remote client never reached the installed branch"; }
echo "remote client: $answer"
case "$answer" in
  running,\ 0\ instances,*|paused,\ 0\ instances,*) ;;
  *) fail "unexpected status from the installed branch: $answer" ;;
esac
kill -TERM "$branch"
wait "$branch" || fail "the installed cyme-branch did not stop cleanly (exit $?)"
branch=
echo "check.sh: the installed tree builds the examples and runs a branch"

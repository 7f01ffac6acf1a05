#!/usr/bin/env bash
# Installs every dependency, builds cyme, and runs the whole test suite:
# all tiers in a release build, then the unit and scenario tiers again
# under AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh

jobs=$(nproc)

echo "== build (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

echo "== tests"
ctest --test-dir build --output-on-failure --no-tests=error

echo "== build (sanitizers)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCYME_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"

echo "== tests under sanitizers (unit, scenario)"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
ctest --test-dir build-asan --output-on-failure --no-tests=error -L 'unit|scenario'

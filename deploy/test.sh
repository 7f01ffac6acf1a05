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

# The fleet tests again, on a real Apache Kafka broker (KRaft, single node)
# from Maven Central: deploy/kafka/kafka.sh fetches it once (later runs reuse
# ~/.m2 and deploy/kafka/lib/) and runs it in a fresh directory under build/.
# No network for Maven is a failure, never a skip.
echo "== integration tests on a real Kafka broker (deploy/kafka)"
./deploy/kafka/kafka.sh fetch
kafka_dir="$(mktemp -d "$PWD/build/kafka-test.XXXXXX")"
stop_kafka() {
  ./deploy/kafka/kafka.sh stop "$kafka_dir" || true
}
trap stop_kafka EXIT
trap 'exit 130' INT TERM
kafka_address="127.0.0.1:$(./deploy/kafka/kafka.sh free-port 127.0.0.1)"
# A SASL_PLAINTEXT listener beside it, for the Kafka security tests; its
# password is made here and lives in a file only this user can read.
sasl_address="127.0.0.1:$(./deploy/kafka/kafka.sh free-port 127.0.0.1)"
while [ "$sasl_address" = "$kafka_address" ]; do
  sasl_address="127.0.0.1:$(./deploy/kafka/kafka.sh free-port 127.0.0.1)"
done
sasl_password_file="$kafka_dir/sasl-password"
(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '._' >"$sasl_password_file")
./deploy/kafka/kafka.sh start "$kafka_dir" "$kafka_address" \
  "$sasl_address" cyme "$sasl_password_file"
echo "== integration-real-kafka: broker at $kafka_address, SASL at $sasl_address ($kafka_dir)"
CYME_TEST_KAFKA="$kafka_address" CYME_TEST_KAFKA_DIR="$kafka_dir" \
CYME_TEST_KAFKA_SASL="$sasl_address" CYME_TEST_KAFKA_SASL_USER=cyme \
CYME_TEST_KAFKA_SASL_PASSWORD_FILE="$sasl_password_file" \
  ctest --test-dir build --output-on-failure --no-tests=error -L real-kafka
stop_kafka
trap - EXIT INT TERM
rm -rf "$kafka_dir"

echo "== build (sanitizers)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCYME_SANITIZE=ON >/dev/null
# Only what the sanitizer tiers run: the unit and scenario tests, the
# explorer, the scenario-file runner and the fuzz corpus replays (not the
# process tiers' programs).
cmake --build build-asan -j "$jobs" --target cyme-unit-tests \
  cyme-scenario-tests cyme-explore cyme-scenario cyme-fuzz-replay-wire \
  cyme-fuzz-replay-names cyme-fuzz-replay-http

echo "== tests under sanitizers (unit, scenario)"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
ctest --test-dir build-asan --output-on-failure --no-tests=error -L 'unit|scenario'

echo "== fuzzing smoke pass (clang, libFuzzer)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCYME_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build build-fuzz -j "$jobs" --target cyme-fuzz-wire cyme-fuzz-names cyme-fuzz-http
ctest --test-dir build-fuzz --output-on-failure --no-tests=error -L fuzz

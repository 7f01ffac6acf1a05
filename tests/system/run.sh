#!/usr/bin/env bash
# System tests: a real Kafka broker and three cyme branches, each on a host
# of its own (network namespaces from deploy/netns/cluster.sh), driven by
# cyme-system-tests from a fourth host. Needs root.
#
#   tests/system/run.sh BUILD_DIR TEST_BINARY [boost.test args...]
set -euo pipefail

build=$(cd "$1" && pwd)
test_bin=$2
shift 2
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster="$repo/deploy/netns/cluster.sh"
kafka="$repo/deploy/kafka/kafka.sh"
run_dir=$(mktemp -d "$build/system-run.XXXXXX")
pids=()

[ "$(id -u)" -eq 0 ] || { echo "run.sh: system tests need root" >&2; exit 1; }
# The namespaces have fixed names: another run of these tests on this
# machine (another checkout) would remove them under this one. Runs take
# turns.
exec 9>/run/lock/cyme-system-tests.lock
if ! flock -n 9; then
  echo "run.sh: another run of the system tests holds the cluster; waiting" >&2
  flock -w 1800 9 || { echo "run.sh: still held after 30 minutes" >&2; exit 1; }
fi

cleanup() {
  set +e
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  "$cluster" exec kafka "$kafka" stop "$run_dir/kafka" >/dev/null 2>&1
  "$cluster" down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$kafka" fetch
"$cluster" up
"$cluster" exec kafka "$kafka" start "$run_dir/kafka" 10.77.0.1:9092 9>&-

for n in 1 2 3; do
  "$cluster" exec "h$n" "$build/cyme-branch" --id "host$n" \
    --http "10.77.0.1$n:8000" --node "10.77.0.1$n:4242" --node-insecure \
    --kafka 10.77.0.1:9092 --root "$run_dir/h$n" --interval 5 \
    --wait-after-broker-revived 20 >"$run_dir/h$n.log" 2>&1 9>&- &
  pids+=($!)
done
for n in 1 2 3; do
  for _ in $(seq 300); do
    if "$cluster" exec ctl curl -s -o /dev/null --max-time 1 "http://10.77.0.1$n:8000/"; then
      break
    fi
    sleep 0.1
  done
done

export CYME_SYS_RUN_DIR=$run_dir CYME_SYS_BUILD=$build CYME_SYS_REPO=$repo
status=0
"$cluster" exec ctl "$test_bin" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  for n in 1 2 3; do
    echo "---- branch host$n log (last 30 lines)"
    grep -v '^%' "$run_dir/h$n.log" | tail -30
  done
fi
exit "$status"

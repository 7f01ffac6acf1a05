#!/usr/bin/env bash
# Installs every dependency, builds cyme, and runs a branch with the
# embedded Kafka and a small demo fleet: app "demo", queue "tasks", two
# cyme-worker instances (w1, w2) and one Python worker (py1) running the
# handlers of examples/python/shop_tasks.py with the library of
# clients/python (installed into build/python-venv). Ctrl-C stops the
# branch and its instances.
#
# Settings (environment): CYME_ROOT (default ./cyme-data), CYME_HTTP
# (default 127.0.0.1:8000).
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target cyme-branch cyme cyme-worker cyme-embedded-kafka
venv="$PWD/build/python-venv"
./clients/python/install.sh "$venv"

root=${CYME_ROOT:-./cyme-data}
http=${CYME_HTTP:-127.0.0.1:8000}
export CYME_BRANCH="http://${http}"
cyme=./build/cyme

# The branch may run the venv's interpreter, and nothing else but its
# cyme-worker.
./build/cyme-branch --root "$root" --http "$http" --allow-program "$venv/bin" &
branch=$!
trap 'kill -TERM "$branch" 2>/dev/null; wait "$branch"' INT TERM EXIT

# Wait (at most 30 s) until the branch answers.
for _ in $(seq 300); do
  if "$cyme" apps >/dev/null 2>&1; then break; fi
  if ! kill -0 "$branch" 2>/dev/null; then
    echo "run.sh: cyme-branch exited; see the lines above" >&2
    exit 1
  fi
  sleep 0.1
done

"$cyme" apps add demo
"$cyme" queues add demo tasks
"$cyme" instances add demo w1 --queues tasks --max 4 --min 1
"$cyme" instances add demo w2 --queues tasks --max 4 --min 1
"$cyme" instances add demo py1 --program "$venv/bin/python" \
  --arg=-m --arg cyme_worker --arg=--tasks \
  --arg "$PWD/examples/python/shop_tasks.py"
"$cyme" instances list demo

cat <<MSG

cyme is running: branch at ${CYME_BRANCH}, data in ${root}.
Try, in another terminal (export CYME_BRANCH=${CYME_BRANCH}):
  ./build/cyme instances list demo
  ./build/cyme tasks send demo tasks --handler echo --args '{"hello": "world"}'
  ./build/cyme tasks wait demo <id>
  ./build/cyme tasks send demo dq.py1 --handler total --args '{"items": [{"price": 3}]}'
  curl -s ${CYME_BRANCH}/demo/instances/
  ./build/cyme events -f                        # supervisor events as they happen
  ./build/cyme instances logs demo w1 -f        # w1's log as it is written
  curl -s ${CYME_BRANCH}/metrics                # Prometheus metrics
Open ${CYME_BRANCH}/ui/ in a browser for the dashboard.
Ctrl-C here stops the branch and its instances.
MSG
wait "$branch"

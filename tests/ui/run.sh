#!/usr/bin/env bash
# The dashboard in a real browser: starts BUILD_DIR's cyme-branch on the
# embedded Kafka, with a token and its HTTP API on a free loopback port, adds
# app "ui-demo" with two cyme-worker instances (w1, w2) through the HTTP API,
# and runs dashboard_test.py (Selenium, headless Chromium) against its
# /ui/; then starts it again with --token-for-reads and runs the test of a
# page that must ask for the token first. Screenshots go to
# BUILD_DIR/ui-screenshots/. The branch, its workers and its embedded
# cluster are stopped on exit, whatever happened.
#
#   tests/ui/run.sh BUILD_DIR
#
# Needs chromium, chromium-driver and python3-selenium (deploy/install-deps.sh).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python=/usr/bin/python3 # Debian's, which has python3-selenium
app=ui-demo
deadline_s=30

for need in "$build/cyme-branch" /usr/bin/chromium /usr/bin/chromedriver; do
  [ -x "$need" ] || { echo "run.sh: $need is missing (deploy/install-deps.sh, then build)" >&2; exit 1; }
done

root="$(mktemp -d "${TMPDIR:-/tmp}/cyme-ui-test.XXXXXX")"
screenshots="$build/ui-screenshots"
rm -rf "$screenshots"
mkdir -p "$screenshots"
port="$("$here/../../deploy/kafka/kafka.sh" free-port 127.0.0.1)"
url="http://127.0.0.1:$port"
token="$(head -c 18 /dev/urandom | base64 | tr '+/' '._')"
branch=""

# Kills a process left behind only if it is one of this run's: its command
# line or environment names this run's root.
kill_ours() {
  local pid="$1"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  if grep -qsF "$root" "/proc/$pid/cmdline" "/proc/$pid/environ"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

cleanup() {
  local status=$?
  set +e
  if [ -n "$branch" ] && kill -0 "$branch" 2>/dev/null; then
    # SIGTERM stops its instances and its embedded cluster.
    kill -TERM "$branch"
    for _ in $(seq 400); do
      kill -0 "$branch" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$branch" 2>/dev/null; then
      echo "run.sh: cyme-branch did not stop within 40 s; killing it and what it left" >&2
      kill -KILL "$branch"
    fi
    wait "$branch" 2>/dev/null
  fi
  # Whatever survived (a branch that crashed or was killed): its workers and
  # its embedded cluster, found by their pid files.
  for f in "$root"/instances/*/worker.pid "$root"/kafka/kafka.pid; do
    [ -f "$f" ] && kill_ours "$(awk '{print $1; exit}' "$f")"
  done
  if [ "$status" -ne 0 ]; then
    echo "run.sh: failed ($status); the branch's log ($root/branch.log), last lines:" >&2
    tail -n 60 "$root/branch.log" >&2
    echo "run.sh: screenshots in $screenshots" >&2
  else
    rm -rf "$root"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The token through the environment (a command line is visible in ps).
CYME_TOKEN="$token" "$build/cyme-branch" --id ui-test --root "$root" \
  --http "127.0.0.1:$port" --kafka embedded --interval 2 \
  >"$root/branch.log" 2>&1 </dev/null &
branch=$!

# HTTP status of one request; its body in $root/answer.
call() {
  local method="$1" path="$2" body="${3:-}"
  curl -sS -o "$root/answer" -w '%{http_code}' -X "$method" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data "$body" --max-time 60 "$url$path"
}

ok() {
  local code
  code="$(call "$@")"
  case "$code" in
    2??) ;;
    *) echo "run.sh: $1 $2 answered $code: $(cat "$root/answer")" >&2; exit 1 ;;
  esac
}

echo "run.sh: cyme-branch (pid $branch) at $url, root $root"
serving=""
for _ in $(seq $((deadline_s * 10))); do
  if ! kill -0 "$branch" 2>/dev/null; then
    echo "run.sh: cyme-branch exited before it served" >&2
    exit 1
  fi
  if curl -sf -o /dev/null --max-time 2 "$url/"; then serving=1; break; fi
  sleep 0.1
done
[ -n "$serving" ] || { echo "run.sh: cyme-branch did not serve within $deadline_s s" >&2; exit 1; }

ok PUT "/$app/"
ok PUT "/$app/queues/tasks/"
for name in w1 w2; do
  ok PUT "/$app/instances/$name/" '{"queues": ["tasks"], "max_concurrency": 2}'
done

CYME_UI_TEST_TOKEN="$token" "$python" "$here/dashboard_test.py" \
  --branch "$url" --app "$app" --screenshots "$screenshots"

# The same branch again, with reads behind the token too.
kill -TERM "$branch"
wait "$branch" || { echo "run.sh: cyme-branch did not stop cleanly" >&2; branch=""; exit 1; }
CYME_TOKEN="$token" "$build/cyme-branch" --id ui-test --root "$root" \
  --http "127.0.0.1:$port" --kafka embedded --interval 2 --token-for-reads \
  >>"$root/branch.log" 2>&1 </dev/null &
branch=$!
serving=""
for _ in $(seq $((deadline_s * 10))); do
  kill -0 "$branch" 2>/dev/null || { echo "run.sh: cyme-branch --token-for-reads exited" >&2; exit 1; }
  # Its reads answer 401 without the token: it serves.
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/" || true)"
  if [ "$code" = 401 ]; then serving=1; break; fi
  sleep 0.1
done
[ -n "$serving" ] || { echo "run.sh: cyme-branch --token-for-reads did not serve" >&2; exit 1; }
CYME_UI_TEST_TOKEN="$token" "$python" "$here/dashboard_test.py" \
  --branch "$url" --app "$app" --screenshots "$screenshots" --reads-need-token

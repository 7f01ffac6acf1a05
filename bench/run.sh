#!/usr/bin/env bash
# The benchmark runner: installs what it compares against, builds, starts
# a real Apache Kafka broker (deploy/kafka) and runs every benchmark in one
# go. Figures go to bench/results/ (JSON lines, a markdown summary and the
# growth plot); BENCHMARKS.md quotes them.
#
#   bench/run.sh [PART ...]
#
# PARTs (default: all, in this order):
#   restart     kill -9 -> new process / answering ping: cyme, supervisord,
#               runit, s6 and a bare respawn loop, same worker binary
#   rtt         control round trip on the embedded cluster (against its
#               fetch wait, with idle CPU) and on the real broker
#   fleet       verification rounds at 100, 1,000 and 10,000 instances on a
#               real branch and broker, answered by cyme-fleet-sim; round
#               time, messages per round, branch memory; the growth plot
#   idle        branch CPU over 60 s supervising 100 instances at the
#               default interval (real broker and embedded cluster)
#   throughput  no-op tasks per second through one worker at concurrency 1
#               and 4, against kcat reading the same topic
#   explore     simulated hours per CPU second of cyme-explore
#   wire        microseconds per message of the wire codecs: the direct
#               forms against the full JSON parser and encoder
#   tasks       task submission over HTTP (16 clients one task per request;
#               batches of 10,000) beside kcat producing the same messages,
#               on the real broker and the embedded cluster
#   results     a burst of 10,000 task results to 10,000 clients waiting
#               for them (long polls), on the real broker and the embedded
#               cluster
#   cluster     branches of 10,000 instances each on one real broker, up to
#               10 (100,000 instances): every branch's round, a
#               cluster-wide listing, placement of new instances, presence
#               traffic; the instances have no processes (cyme-bench-branch)
#               and cyme-fleet-sim --any answers for them
#   presence    the presence of 10 to 100 branches on one real broker
#               (cyme-bench presence), with the cluster's announcement
#               rate and without it: what each branch reads, the
#               deliveries summed over the cluster, views that missed a
#               live branch, CPU per branch
#   recovery    one branch of 10,000 instances (cyme-bench-branch) whose
#               simulator stops for a round, so that the branch suspects the
#               bus and defers the silent instances' restarts, and then
#               answers again: the round that finds the bus back, beside a
#               steady round
#
# Environment: CYME_BUILD (build dir, default build), BENCH_KILLS (100),
# BENCH_RESTART_PASSES (4: the systems take turns, see bench/restart.sh),
# BENCH_PINGS (1000), BENCH_FLEET_SIZES ("100 1000 10000"),
# BENCH_IDLE_SECONDS (60), BENCH_TASKS (100000), BENCH_SUBMIT_SINGLE
# (100000), BENCH_SUBMIT_BATCHED (1000000), BENCH_WAITERS (10000),
# BENCH_CLUSTER ("1x1000 1x10000 2x10000 5x10000 10x10000": branches x
# instances per branch), BENCH_CLUSTER_STAGGER (1: seconds between the
# starts of those branches), BENCH_PRESENCE ("10 25 50 100": branches),
# BENCH_PRESENCE_SECONDS (30), BENCH_RECOVERY_RUNS (3), BENCH_KEEP_WORK (1: keep the work folder, with
# every log, after a run that passed too; a failed run always keeps it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/.." && pwd)"
cd "$top"

build="${CYME_BUILD:-build}"
kills="${BENCH_KILLS:-100}"
restart_passes="${BENCH_RESTART_PASSES:-4}"
pings="${BENCH_PINGS:-1000}"
fleet_sizes="${BENCH_FLEET_SIZES:-100 1000 10000}"
idle_seconds="${BENCH_IDLE_SECONDS:-60}"
tasks="${BENCH_TASKS:-100000}"
out="$here/results"
cluster_sizes="${BENCH_CLUSTER:-1x1000 1x10000 2x10000 5x10000 10x10000}"
cluster_stagger="${BENCH_CLUSTER_STAGGER:-1}"
recovery_runs="${BENCH_RECOVERY_RUNS:-3}"
presence_sizes="${BENCH_PRESENCE:-10 25 50 100}"
presence_seconds="${BENCH_PRESENCE_SECONDS:-30}"
all_parts=(restart rtt fleet idle throughput http explore wire tasks results cluster presence recovery)

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then parts=("${all_parts[@]}"); fi
for p in "${parts[@]}"; do
  case " ${all_parts[*]} " in
    *" $p "*) ;;
    *) echo "bench/run.sh: unknown part '$p' (parts: ${all_parts[*]})" >&2; exit 2 ;;
  esac
done

die() {
  echo "bench/run.sh: $*" >&2
  exit 1
}

log() {
  echo "== $*" >&2
}

# -- setup -----------------------------------------------------------------------

bash deploy/install-deps.sh --bench
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target cyme-branch cyme-worker \
  cyme-embedded-kafka cyme cyme-bench cyme-fleet-sim cyme-sim-instance \
  cyme-bench-respawn cyme-bench-http cyme-bench-tasks cyme-bench-results \
  cyme-bench-branch cyme-explore
bin="$(cd "$build" && pwd)"
mkdir -p "$out"

# A branch holds a descriptor per worker it supervises.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d /tmp/cyme-bench.XXXXXX)"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  pkill -KILL -f "$bin/cyme-sim-instance" 2>/dev/null || true
  if [ -f "$work/kafka/kafka.pid" ]; then
    bash deploy/kafka/kafka.sh stop "$work/kafka" >/dev/null 2>&1 || true
  fi
  if [ "$rc" -eq 0 ] && [ "${BENCH_KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$work"
  elif [ "$rc" -eq 0 ]; then
    echo "bench/run.sh: its work folder, with every log, is kept: $work" >&2
  else
    # A failed run keeps what it made: the branches' logs, the workers'
    # folders, the broker's log.
    echo "bench/run.sh: failed (exit $rc); its work folder, with every log, is kept: $work" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

free_port() {
  bash deploy/kafka/kafka.sh free-port
}

bash deploy/kafka/kafka.sh fetch
broker="127.0.0.1:$(free_port)"
bash deploy/kafka/kafka.sh start "$work/kafka" "$broker"

machine="$(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r)"
kafka_version="$(ls deploy/kafka/lib | sed -n 's/^kafka_2.13-\(.*\)\.jar$/\1/p' | head -1)"
summary="$out/summary.md"

# Each part keeps its figures (PART.jsonl) and when and where they were
# taken (PART.run); summary.md is rebuilt from all of them after each run,
# so parts can be run again one at a time.
part_done() { # PART
  echo "$(date -u +%Y-%m-%dT%H:%MZ); $machine; Apache Kafka $kafka_version (KRaft, one node, loopback)" \
    > "$out/$1.run"
}

write_summary() {
  {
    echo "# Benchmark figures"
    echo
    echo "Written by \`bench/run.sh\` (see BENCHMARKS.md). Each part: when it ran,"
    echo "on what machine, against which real broker."
    echo
    for p in "${all_parts[@]}"; do
      [ -f "$out/$p.jsonl" ] && [ -f "$out/$p.run" ] || continue
      python3 "$here/report.py" "$p" "$out/$p.jsonl" "$out"
      echo "Run: $(cat "$out/$p.run")."
      echo
    done
  } > "$summary"
}

# JSON helpers (python3 is part of Debian's base system).
json_get() { # FILE KEY
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# -- fleet -----------------------------------------------------------------------

# Branch status field over HTTP.
status_field() { # PORT KEY
  curl -sf "http://127.0.0.1:$1/supervisor/" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

rounds_at_least() { # PORT K
  local r
  r=$(status_field "$1" rounds_completed 2>/dev/null) || return 1
  [ "$r" -ge "$2" ]
}

rss_kb() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# Starts a branch supervising N stand-ins answered by cyme-fleet-sim, lets
# three rounds pass after the first two (the first starts them all; the
# second still meets instances finishing their start) and records
# each round's time, the messages it cost and the branch's memory.
fleet_once() { # N
  local n=$1 dir="$work/fleet-$1" port sim branch
  mkdir -p "$dir"
  "$bin/cyme-bench" seed --db "$dir/model.db" --count "$n" >/dev/null
  "$bin/cyme-fleet-sim" --broker "$broker" --program "$bin/cyme-sim-instance" \
    --counters "$dir/counters.json" 2>"$dir/sim.log" &
  sim=$!
  pids+=("$sim")
  wait_for 30 test -s "$dir/counters.json" || die "fleet simulator did not start"
  port=$(free_port)
  "$bin/cyme-branch" --id "bench-$n" --kafka "$broker" --root "$dir" \
    --http "127.0.0.1:$port" --interval 10 --worker "$bin/cyme-sim-instance" \
    >"$dir/branch.log" 2>&1 &
  branch=$!
  pids+=("$branch")
  # Round 1 starts every instance; the rounds after it are the steady state.
  wait_for 600 rounds_at_least "$port" 1 \
    || die "branch with $n instances finished no round in 600 s"
  wait_for 120 rounds_at_least "$port" 2 || die "round 2 did not finish"
  local running unresponsive
  running=$(pgrep -c -f "^$bin/cyme-sim-instance --name" || true)
  [ "$running" -eq "$n" ] || die "$running stand-ins run, expected $n"
  # Starts the branch gave up on (no answer to any of their start pings).
  unresponsive=$(grep -c "does not respond" "$dir/branch.log" || true)
  for k in 3 4 5; do
    cp "$dir/counters.json" "$dir/before.json"
    wait_for 120 rounds_at_least "$port" "$k" \
      || die "round $k did not finish"
    # The round ends when the branch has every reply; the simulator wrote
    # its counts after sending them.
    local ms cmds replies
    ms=$(status_field "$port" last_round_ms)
    cmds=$(( $(json_get "$dir/counters.json" commands) - $(json_get "$dir/before.json" commands) ))
    replies=$(( $(json_get "$dir/counters.json" replies) - $(json_get "$dir/before.json" replies) ))
    echo "{\"figure\":\"fleet_round\",\"instances\":$n,\"round\":$k,\"round_ms\":$ms,\"commands\":$cmds,\"replies\":$replies,\"unresponsive_at_start\":$unresponsive,\"branch_rss_kb\":$(rss_kb "$branch")}"
  done
  kill -TERM "$branch"
  wait_for 300 bash -c "! kill -0 $branch 2>/dev/null" || die "branch did not stop"
  kill -TERM "$sim"
  wait "$sim" 2>/dev/null || true
  local left
  left=$(pgrep -c -f "^$bin/cyme-sim-instance --name" || true)
  [ "$left" -eq 0 ] || die "$left stand-ins left after the branch stopped"
}

run_fleet() {
  log "fleet: verification rounds at $fleet_sizes instances"
  local res="$out/fleet.jsonl"
  : > "$res"
  for n in 0 $fleet_sizes; do
    fleet_once "$n" >> "$res"
    tail -n 3 "$res" >&2
  done
  part_done fleet
}

# -- restart latency ---------------------------------------------------------------

run_restart() {
  log "restart: kill -9, $kills times per system, in $restart_passes passes"
  CYME_BUILD="$build" bash "$here/restart.sh" --broker "$broker" \
    --kills "$kills" --passes "$restart_passes" --out "$work" >&2
  python3 -c 'import json,sys; [print(json.dumps(x)) for x in json.load(open(sys.argv[1]))]' \
    "$work/restart.json" > "$out/restart.jsonl"
  part_done restart
}

# -- control round trip -------------------------------------------------------------

# Starts a cyme-worker NAME on BROKER with control fetch wait W; prints its pid.
start_worker() { # NAME BROKER W [ARGS...]
  local name=$1 b=$2 w=$3
  shift 3
  "$bin/cyme-worker" --name "$name" --app bench --broker "$b" \
    --control-fetch-wait-ms "$w" "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_for 60 grep -qs "ready, pid" "$work/$name.log" \
    || die "worker $name did not get ready: $(tail -3 "$work/$name.log")"
  echo "$pid"
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Idle CPU of a worker and of its broker, then ping round trips, for one
# broker and fetch wait.
rtt_case() { # LABEL BROKER BROKER-PID W
  local label=$1 b=$2 bpid=$3 w=$4 name pid cpu
  name="rtt-$RANDOM"
  pid=$(start_worker "$name" "$b" "$w")
  cpu=$("$bin/cyme-bench" cpu --pid "$pid" --pid "$bpid" --seconds 10 --label "$label" \
    | python3 -c 'import json,sys; print(" ".join(str(round(json.loads(l)["percent_of_core"], 2)) for l in sys.stdin))')
  "$bin/cyme-bench" rtt --broker "$b" --instance "$name" --pings "$pings" \
    --fetch-wait-ms "$w" --label "$label" \
    | python3 -c 'import json,sys; j=json.load(sys.stdin); c=sys.argv[1].split(); j["worker_cpu"]=float(c[0]); j["broker_cpu"]=float(c[1]); print(json.dumps(j))' "$cpu"
  stop_pid "$pid"
}

run_rtt() {
  log "rtt: control round trips"
  local res="$out/rtt.jsonl" ek
  : > "$res"
  "$bin/cyme-embedded-kafka" --bootstrap-file "$work/embedded.addr" \
    >"$work/embedded.log" 2>&1 &
  ek=$!
  pids+=("$ek")
  wait_for 30 test -s "$work/embedded.addr" || die "embedded cluster did not start"
  local eb
  eb=$(cat "$work/embedded.addr")
  for w in 1 2 3 4 5 10 50 100; do
    rtt_case "embedded, fetch wait $w ms" "$eb" "$ek" "$w" >> "$res"
    tail -n 1 "$res" >&2
  done
  stop_pid "$ek"
  rtt_case "real broker, fetch wait 500 ms" "$broker" "$(cat "$work/kafka/kafka.pid")" 500 >> "$res"
  tail -n 1 "$res" >&2
  part_done rtt
}

# -- idle cost ----------------------------------------------------------------------

# A branch at the default interval (60 s) supervising 100 stand-ins on
# BROKER, measured over idle_seconds after its first round.
idle_case() { # LABEL KAFKA-FLAG
  local label=$1 kafka=$2 dir="$work/idle-$RANDOM" port sim branch b
  mkdir -p "$dir"
  "$bin/cyme-bench" seed --db "$dir/model.db" --count 100 >/dev/null
  port=$(free_port)
  "$bin/cyme-branch" --id "idle" --kafka "$kafka" --root "$dir" \
    --http "127.0.0.1:$port" --worker "$bin/cyme-sim-instance" \
    >"$dir/branch.log" 2>&1 &
  branch=$!
  pids+=("$branch")
  wait_for 60 grep -qs "serving http" "$dir/branch.log" || die "idle branch did not start"
  b=$(sed -n 's/.*, kafka \(.*\))$/\1/p' "$dir/branch.log" | head -1)
  "$bin/cyme-fleet-sim" --broker "$b" --program "$bin/cyme-sim-instance" \
    --counters "$dir/counters.json" 2>"$dir/sim.log" &
  sim=$!
  pids+=("$sim")
  wait_for 120 rounds_at_least "$port" 1 || die "idle branch finished no round"
  "$bin/cyme-bench" cpu --pid "$branch" --seconds "$idle_seconds" --label "$label"
  kill -TERM "$branch"
  wait "$branch" 2>/dev/null || true
  stop_pid "$sim"
}

run_idle() {
  log "idle: branch CPU over $idle_seconds s with 100 instances"
  local res="$out/idle.jsonl"
  : > "$res"
  idle_case "real broker, 100 instances, interval 60 s" "$broker" >> "$res"
  tail -n 1 "$res" >&2
  idle_case "embedded cluster, 100 instances, interval 60 s" embedded >> "$res"
  tail -n 1 "$res" >&2
  part_done idle
}

# -- worker throughput ----------------------------------------------------------------

throughput_case() { # CONCURRENCY
  local c=$1 q="tp$1x$RANDOM" pid reader
  "$bin/cyme-bench" produce --broker "$broker" --topic "$q" --count "$tasks" >/dev/null
  # kcat's own start (connection, metadata) is taken out: the median time
  # to read one message is subtracted from the median time to read them
  # all (five runs each).
  local one=() all=() t0 t1 i
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N)
    kcat -C -b "$broker" -t "$q" -o beginning -e -q -c 1 >/dev/null
    t1=$(date +%s%N)
    one+=($((t1 - t0)))
    t0=$(date +%s%N)
    kcat -C -b "$broker" -t "$q" -o beginning -e -q -c "$tasks" >/dev/null
    t1=$(date +%s%N)
    all+=($((t1 - t0)))
  done
  python3 -c 'import json,statistics,sys; n=int(sys.argv[1]); one=statistics.median(map(int,sys.argv[2].split())); full=statistics.median(map(int,sys.argv[3].split())); s=(full-one)/1e9; print(json.dumps({"figure":"throughput","label":"kcat (ceiling), same topic","tasks":n,"span_s":s,"tasks_per_s":(n-1)/s}))' \
    "$tasks" "${one[*]}" "${all[*]}"
  "$bin/cyme-bench" results --broker "$broker" --queue "$q" --count "$tasks" \
    --label "cyme-worker, concurrency $c" 2>"$work/results-$c.log" &
  reader=$!
  wait_for 30 grep -qs "reading cyme.results" "$work/results-$c.log" || die "results reader did not start"
  pid=$(start_worker "tpw$c" "$broker" 500 --queues "$q" --min "$c" --max "$c")
  wait "$reader" || die "results of concurrency $c incomplete"
  stop_pid "$pid"
}

run_throughput() {
  log "throughput: $tasks no-op tasks through one worker"
  local res="$out/throughput.jsonl"
  : > "$res"
  for c in 1 4; do
    throughput_case "$c" >> "$res"
    tail -n 2 "$res" >&2
  done
  part_done throughput
}

# -- HTTP under misbehaving clients ---------------------------------------------------

# GET / alone, then with 1,000 connections trickling their headers and
# 1,000 `wait` long polls open; then wrk's keep-alive rate of GET / with
# and without them.
wrk_case() { # LABEL PORT
  wrk -t2 -c64 -d10s "http://127.0.0.1:$2/" \
    | python3 -c 'import json,re,sys; t=sys.stdin.read(); m=re.search(r"Requests/sec:\s*([0-9.]+)", t); print(json.dumps({"case": sys.argv[1], "requests_per_s": float(m.group(1)) if m else 0}))' "$1"
}

# The one sample of metric NAME on the /metrics of the branch at PORT.
branch_metric() { # PORT NAME
  curl -s "http://127.0.0.1:$1/metrics" | sed -n "s/^$2{[^}]*} //p" | head -n 1
}

connections_at_least() { # PORT N
  local n
  n=$(branch_metric "$1" cyme_http_connections_open)
  [ -n "$n" ] && [ "$n" -ge "$2" ]
}

run_http() {
  log "http: GET / alone and under 1,000 slow clients and 1,000 long polls"
  local res="$out/http.jsonl" dir="$work/http" port branch load
  : > "$res"
  mkdir -p "$dir"
  port=$(free_port)
  "$bin/cyme-branch" --id http --root "$dir" --http "127.0.0.1:$port" \
    --http-header-timeout 600 >"$dir/branch.log" 2>&1 &
  branch=$!
  pids+=("$branch")
  wait_for 60 grep -qs "serving http" "$dir/branch.log" || die "http branch did not start"
  "$bin/cyme-bench-http" --port "$port" --slow 1000 --polls 1000 \
    --samples 200 >> "$res"
  wrk_case "wrk, 64 keep-alive connections, GET /" "$port" >> "$res"
  # The same with the misbehaving clients open meanwhile.
  "$bin/cyme-bench-http" --port "$port" --slow 1000 --polls 1000 \
    --samples 2000 > "$dir/under-load.jsonl" &
  load=$!
  wait_for 60 connections_at_least "$port" 2000 || die "the misbehaving clients did not connect"
  wrk_case "wrk, 64 keep-alive connections, GET /, with 1,000 slow clients and 1,000 long polls open" "$port" >> "$res"
  wait "$load" || true
  kill -TERM "$branch"
  wait "$branch" 2>/dev/null || true
  tail -n 4 "$res" >&2
  part_done http
}

# The same messages kcat would produce: the wire form of an echo task, one
# per line, key and value separated by a tab.
task_lines() { # COUNT PREFIX
  python3 -c '
import json, sys
n, prefix = int(sys.argv[1]), sys.argv[2]
out = sys.stdout
for i in range(n):
    tid = "%s-%08d" % (prefix, i)
    out.write(tid + "\t" + json.dumps({"v": 1, "id": tid, "handler": "echo", "args": None}, separators=(",", ":")) + "\n")
' "$1" "$2"
}

# Starts a branch in the background on the real broker or its embedded
# cluster (WHICH: real | embedded), its root DIR, its HTTP on PORT, with
# the FLAGS after; $! is its pid. Returns once it serves HTTP.
start_bench_branch() { # WHICH DIR PORT [FLAGS...]
  local which=$1 dir=$2 port=$3
  shift 3
  mkdir -p "$dir"
  local args=("$@")
  [ "$which" = real ] && args+=(--kafka "$broker")
  "$bin/cyme-branch" --id "$(basename "$dir")" --root "$dir" \
    --http "127.0.0.1:$port" "${args[@]}" >"$dir/branch.log" 2>&1 &
  pids+=("$!")
  wait_for 60 grep -qs "serving http" "$dir/branch.log" \
    || die "the branch in $dir did not start (see $dir/branch.log)"
}

# The bootstrap address of the broker a branch of start_bench_branch uses.
bench_bootstrap() { # WHICH DIR
  if [ "$1" = embedded ]; then cat "$2/kafka/bootstrap"; else echo "$broker"; fi
}

run_tasks() {
  log "tasks: submission over HTTP (16 clients one by one, batches of 10,000) beside kcat"
  local res="$out/tasks.jsonl" single="${BENCH_SUBMIT_SINGLE:-100000}"
  local batched="${BENCH_SUBMIT_BATCHED:-1000000}" which dir port branch bootstrap t0 t1
  : > "$res"
  for which in real embedded; do
    dir="$work/tasks-$which"
    port=$(free_port)
    start_bench_branch "$which" "$dir" "$port"
    branch=$!
    bootstrap="$(bench_bootstrap "$which" "$dir")"
    curl -sf -X PUT "http://127.0.0.1:$port/bench/" >/dev/null || die "no app"
    # Every topic made (4 partitions) before the clock starts.
    for q in single batch kcat; do
      curl -sf -X POST -H 'Content-Type: application/json' -d '{}' \
        "http://127.0.0.1:$port/bench/queue/$q/" >/dev/null || die "no queue $q"
    done
    # The broker and the topic warmed first, as a queue in use is (a JVM
    # compiles its hot paths as it runs, and a new topic's first segment
    # is slower to fill): the acknowledged sends of the peer below, not
    # measured. Every one-task-per-request figure goes to this topic.
    "$bin/cyme-bench" acked --broker "$bootstrap" --topic single --count 200000 \
      --clients 16 >/dev/null || die "warming the broker failed"
    "$bin/cyme-bench-tasks" --port "$port" --queue single --clients 16 \
      --count "$single" | sed "s/^{/{\"broker\": \"$which\", /" >> "$res" \
      || die "single submissions failed"
    # The same one task per request from wrk (one thread, 16 keep-alive
    # connections), a client that takes less of the machine's two cores.
    wrk -t1 -c16 -d10s -s "$here/submit.lua" "http://127.0.0.1:$port/bench/queue/single/" \
      | grep '^{"tasks"' \
      | sed "s/^{/{\"broker\": \"$which\", \"figure\": \"submit\", \"mode\": \"single-wrk\", \"clients\": 16, \"batch\": 0, /" \
      >> "$res" || die "wrk submissions failed"
    # The bus's own limit for one task per request: the branch's producer
    # and settings, 16 threads each waiting for its task's acknowledgement.
    "$bin/cyme-bench" acked --broker "$bootstrap" --topic single --count "$single" \
      --clients 16 | sed "s/^{/{\"broker\": \"$which\", /" >> "$res" \
      || die "acknowledged sends failed"
    "$bin/cyme-bench-tasks" --port "$port" --queue batch --clients 4 --batch 10000 \
      --count "$batched" | sed "s/^{/{\"broker\": \"$which\", /" >> "$res" \
      || die "batched submissions failed"
    task_lines "$batched" "kcat-$which" > "$dir/tasks.txt"
    t0=$(date +%s.%N)
    kcat -P -b "$bootstrap" -t kcat -K $'\t' -l "$dir/tasks.txt" || die "kcat failed"
    t1=$(date +%s.%N)
    python3 -c 'import json,sys; n=int(sys.argv[2]); s=float(sys.argv[4])-float(sys.argv[3]); print(json.dumps({"broker": sys.argv[1], "figure": "kcat", "tasks": n, "seconds": round(s, 3), "tasks_per_s": round(n / s)}))' \
      "$which" "$batched" "$t0" "$t1" >> "$res"
    kill -TERM "$branch"
    wait "$branch" 2>/dev/null || true
  done
  cat "$res" >&2
  part_done tasks
}

run_explore() {
  log "explore: the supervisor in virtual time, simulated hours per CPU second"
  local res="$out/explore.jsonl" i
  : > "$res"
  for i in 1 2 3 4 5; do
    "$bin/cyme-explore" --seeds 2000 --steps 300 --json >> "$res" \
      || die "cyme-explore found a broken invariant"
  done
  tail -n 1 "$res" >&2
  part_done explore
}

run_wire() {
  log "wire: the codecs, direct against the full JSON parser and encoder"
  "$bin/cyme-bench" wire --repeat 11 > "$out/wire.jsonl" || die "cyme-bench wire failed"
  cat "$out/wire.jsonl" >&2
  part_done wire
}

run_results() {
  log "results: a burst of results to clients waiting for them (long polls)"
  local res="$out/results.jsonl" waiters="${BENCH_WAITERS:-10000}" which dir port branch bootstrap i
  : > "$res"
  for which in real embedded; do
    dir="$work/results-$which"
    port=$(free_port)
    start_bench_branch "$which" "$dir" "$port" --http-max-connections $((waiters + 100))
    branch=$!
    bootstrap="$(bench_bootstrap "$which" "$dir")"
    curl -sf -X PUT "http://127.0.0.1:$port/bench/" >/dev/null || die "no app"
    for i in 1 2 3 4 5; do
      "$bin/cyme-bench-results" --port "$port" --broker "$bootstrap" --waiters "$waiters" \
        | sed "s/^{/{\"broker\": \"$which\", /" >> "$res" \
        || die "not every waiter was answered"
    done
    kill -TERM "$branch"
    wait "$branch" 2>/dev/null || true
  done
  cat "$res" >&2
  part_done results
}

# -- a cluster of branches -------------------------------------------------------

# Starts one cyme-fleet-sim --any, answering for every instance on the
# broker, its counters and log in DIR; its pid in $sim (the caller's).
start_any_sim() { # DIR
  "$bin/cyme-fleet-sim" --broker "$broker" --any --counters "$1/counters.json" \
    2>"$1/sim.log" &
  sim=$!
  pids+=("$sim")
  wait_for 30 test -s "$1/counters.json" || die "fleet simulator did not start"
}

# The offset after the last presence announcement on the broker.
presence_end() {
  local last
  last=$(kcat -b "$broker" -C -t cyme.presence -o -1 -c 1 -e -q -f '%o\n' 2>/dev/null \
         | tail -n 1)
  echo $(( ${last:-0} + 1 ))
}

# Every round's time (ms) in a branch log, in order.
round_times() { # LOG
  sed -n 's/.*round finished: .* in \([0-9.]*\) ms.*/\1/p' "$1"
}

# The first three rounds (ms) of each of the NB branches under DIR that
# began after the last branch's first round ended, as a JSON array of
# arrays; fails while some branch has fewer.
steady_rounds() { # DIR NB
  python3 - "$1" "$2" <<'PY'
import datetime, json, re, sys
top, nb = sys.argv[1], int(sys.argv[2])
line = re.compile(r"^(\S+) .*round finished: .* in ([0-9.]+) ms")
def rounds(i):
    out = []
    with open(f"{top}/b{i}/branch.log") as f:
        for text in f:
            m = line.match(text)
            if m:
                end = datetime.datetime.fromisoformat(
                    m.group(1).replace("Z", "+00:00")).timestamp() * 1000
                out.append((end - float(m.group(2)), float(m.group(2)), end))
    return out
every = [rounds(i) for i in range(1, nb + 1)]
if any(not r for r in every):
    sys.exit(1)
started = max(r[0][2] for r in every)
picked = [[ms for begin, ms, _ in r[1:] if begin > started][:3] for r in every]
if any(len(p) < 3 for p in picked):
    sys.exit(1)
print(json.dumps(picked))
PY
}

# Starts B branches of N instances each on the real broker (cyme-bench-branch:
# no processes) and one cyme-fleet-sim --any answering for all of them; after
# every branch's first round (it starts its instances), records three
# rounds of every branch, a cluster-wide listing (three times, through
# branch 1), where 10 instances per branch created through branch 1 were
# placed, and the presence announcements over 20 s.
cluster_once() { # B N
  local nb=$1 n=$2 dir="$work/cluster-${1}x$2" sim i d port
  local -a ports=() branches=()
  mkdir -p "$dir"
  start_any_sim "$dir"
  # Every model first, so the branches start at a pace of the bench's own.
  for i in $(seq 1 "$nb"); do
    mkdir -p "$dir/b$i"
    "$bin/cyme-bench" seed --db "$dir/b$i/model.db" --count "$n" --prefix "b$i-" >/dev/null
  done
  for i in $(seq 1 "$nb"); do
    d="$dir/b$i"
    port=$(free_port)
    # At debug level the log has every round's time, and little else more.
    "$bin/cyme-bench-branch" --id "b$i" --kafka "$broker" --root "$d" \
      --http "127.0.0.1:$port" --interval 10 --log-level debug \
      >"$d/branch.log" 2>&1 &
    branches+=($!)
    pids+=($!)
    ports+=("$port")
    # A rolling start, one branch a stagger apart (pacing, not waiting for
    # anything): 100,000 instances started at the same instant overload
    # this machine's one simulator and broker (BENCHMARKS.md §11).
    [ "$i" -lt "$nb" ] && sleep "$cluster_stagger"
  done
  # Round 1 starts every instance; a start that the branch gave up on says
  # "does not respond" in its log. The rounds measured are each branch's
  # first three that began after every branch's first round had ended.
  wait_for 900 steady_rounds "$dir" "$nb" >/dev/null \
    || die "the branches of ${nb}x$n did not finish 3 rounds each after their first rounds in 900 s"
  local url="http://127.0.0.1:${ports[0]}" first rounds unresponsive=0 list_ms=() k t items
  first="[$(for i in $(seq 1 "$nb"); do round_times "$dir/b$i/branch.log" | sed -n 1p; done | paste -sd, -)]"
  rounds=$(steady_rounds "$dir" "$nb")
  for i in $(seq 1 "$nb"); do
    unresponsive=$((unresponsive + $(grep -c "does not respond" "$dir/b$i/branch.log" || true)))
  done
  # Every branch is in the view before the listing is timed.
  wait_for 30 bash -c "[ \$(curl -sf '$url/cluster/' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') -eq $nb ]" \
    || die "branch 1 does not see $nb branches"
  for k in 1 2 3; do
    t=$(curl -sf -o "$dir/list.json" -w '%{time_total}' "$url/bench/instances/") \
      || die "cluster-wide listing failed"
    list_ms+=("$(python3 -c "print(round($t * 1000, 1))")")
  done
  items=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$dir/list.json")
  [ "$items" -eq $((nb * n)) ] || die "the cluster-wide listing has $items instances, expected $((nb * n))"
  for k in $(seq 1 $((10 * nb))); do
    curl -sf -X POST "$url/bench/instances/?nowait=1" >/dev/null || die "placement failed"
  done
  local placed
  placed=$(curl -sf "$url/bench/instances/" | python3 -c '
import collections, json, re, sys
c = collections.Counter(x["branch"] for x in json.load(sys.stdin) if not re.fullmatch(r"b[0-9]+-[0-9]{5}", x["name"]))
print(json.dumps(dict(sorted(c.items()))))')
  local p0 p1 bytes
  p0=$(presence_end)
  sleep 20
  p1=$(presence_end)
  bytes=$(kcat -b "$broker" -C -t cyme.presence -o -1 -c 1 -e -q -f '%S\n' | tail -n 1)
  echo "{\"figure\":\"cluster\",\"branches\":$nb,\"stagger_s\":$cluster_stagger,\"per_branch\":$n,\"instances\":$((nb * n)),\"first_round_ms\":$first,\"unresponsive_at_start\":$unresponsive,\"round_ms\":$rounds,\"list_ms\":[$(IFS=,; echo "${list_ms[*]}")],\"listed\":$items,\"placed\":$placed,\"presence_per_s\":$(python3 -c "print(round(($p1 - $p0) / 20, 2))"),\"presence_bytes\":$bytes,\"branch_rss_kb\":$(rss_kb "${branches[0]}")}"
  for i in "${branches[@]}"; do kill -TERM "$i"; done
  for i in "${branches[@]}"; do
    wait_for 300 bash -c "! kill -0 $i 2>/dev/null" || die "branch did not stop"
  done
  kill -TERM "$sim"
  wait "$sim" 2>/dev/null || true
}

# -- a bus that lags, then answers again -----------------------------------------

# Whether a branch log has at least K rounds finished.
logged_rounds_at_least() { # LOG K
  [ "$(grep -c "round finished" "$1" || true)" -ge "$2" ]
}

# One branch of 10,000 instances and one cyme-fleet-sim --any answering for
# them. After two rounds the simulator is stopped (SIGSTOP): the next round
# finds every instance silent while its process runs, suspects the bus and
# defers their restarts (they are listed unresponsive). The simulator is
# continued once that round ended; the round after it finds the bus back.
# Prints that round, the steady round after it, and the suspecting one with
# the control commands the branch sent while the simulator was stopped, and
# their destinations that did not answer.
recovery_once() { # K
  local dir="$work/recovery-$1" port sim branch n=10000 sent0 sent1 lost0 lost1
  mkdir -p "$dir"
  start_any_sim "$dir"
  "$bin/cyme-bench" seed --db "$dir/model.db" --count "$n" --prefix "r$1-" >/dev/null
  port=$(free_port)
  "$bin/cyme-bench-branch" --id "r$1" --kafka "$broker" --root "$dir" \
    --http "127.0.0.1:$port" --interval 10 --log-level debug \
    >"$dir/branch.log" 2>&1 &
  branch=$!
  pids+=("$branch")
  wait_for 300 logged_rounds_at_least "$dir/branch.log" 2 \
    || die "recovery: the branch finished no 2 rounds in 300 s"
  sent0=$(branch_metric "$port" cyme_control_commands_sent_total)
  lost0=$(branch_metric "$port" cyme_control_timeouts_total)
  kill -STOP "$sim"
  wait_for 300 logged_rounds_at_least "$dir/branch.log" 3 \
    || { kill -CONT "$sim"; die "recovery: the round without the simulator did not finish in 300 s"; }
  sent1=$(branch_metric "$port" cyme_control_commands_sent_total)
  lost1=$(branch_metric "$port" cyme_control_timeouts_total)
  kill -CONT "$sim"
  wait_for 120 logged_rounds_at_least "$dir/branch.log" 5 \
    || die "recovery: the rounds after the simulator came back did not finish in 120 s"
  python3 - "$dir/branch.log" "$1" "$sent0" "$sent1" "$lost0" "$lost1" <<'PY'
import json, re, sys
line = re.compile(r"round finished: (.*) in ([0-9.]+) ms \(listing ([0-9.]+) ms, "
                  r"probe ([0-9.]+) ms, verdicts ([0-9.]+) ms\)")
rounds = []
for text in open(sys.argv[1]):
    m = line.search(text)
    if m:
        settled = re.search(r"\(([0-9]+) by the probe alone\)", m.group(1))
        rounds.append({"summary": m.group(1), "ms": float(m.group(2)),
                       "verdicts_ms": float(m.group(5)),
                       "settled": int(settled.group(1)) if settled else 0})
suspecting, back, steady = rounds[2], rounds[3], rounds[4]
print(json.dumps({"figure": "recovery", "run": int(sys.argv[2]),
                  "instances": 10000,
                  "suspected": "bus suspected" in open(sys.argv[1]).read(),
                  "suspecting_ms": suspecting["ms"],
                  "suspecting": suspecting["summary"],
                  "suspecting_commands": int(float(sys.argv[4]) - float(sys.argv[3])),
                  "suspecting_unanswered": int(float(sys.argv[6]) - float(sys.argv[5])),
                  "back_ms": back["ms"], "back_verdicts_ms": back["verdicts_ms"],
                  "back_settled": back["settled"], "back": back["summary"],
                  "steady_ms": steady["ms"],
                  "steady_verdicts_ms": steady["verdicts_ms"]}))
PY
  kill -TERM "$branch"
  wait_for 120 bash -c "! kill -0 $branch 2>/dev/null" || die "branch did not stop"
  kill -TERM "$sim"
  wait "$sim" 2>/dev/null || true
}

run_recovery() {
  log "recovery: the round that finds a lagging bus back ($recovery_runs runs)"
  local res="$out/recovery.jsonl" k
  : > "$res"
  for k in $(seq 1 "$recovery_runs"); do
    recovery_once "$k" >> "$res"
    tail -n 1 "$res" >&2
  done
  part_done recovery
}

run_cluster() {
  log "cluster: branches of instances on one broker ($cluster_sizes)"
  local res="$out/cluster.jsonl" size
  : > "$res"
  for size in $cluster_sizes; do
    cluster_once "${size%x*}" "${size#*x}" >> "$res"
    tail -n 1 "$res" >&2
  done
  part_done cluster
}

run_presence() {
  log "presence: $presence_sizes branches, with the cluster's rate (5 a second) and without"
  local res="$out/presence.jsonl" n r
  : > "$res"
  for n in $presence_sizes; do
    for r in 5 0; do
      "$bin/cyme-bench" presence --broker "$broker" --branches "$n" \
        --seconds "$presence_seconds" --cluster-rate "$r" >> "$res"
      tail -n 1 "$res" >&2
    done
  done
  part_done presence
}

for p in "${parts[@]}"; do
  "run_$p"
done
write_summary
log "done: $summary"

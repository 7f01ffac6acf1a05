#!/usr/bin/env bash
# Restart latency after kill -9: cyme beside supervisord, runit, s6 and a
# bare fork/execve/waitpid loop, in one run, all supervising the same
# cyme-worker binary on the same Kafka broker.
#
#   bench/restart.sh --broker HOST:PORT --kills N --out DIR
#                    [--gap-ms MS] [--warmup-kills N] [--systems LIST]
#                    [--passes P]
#
#   --broker    a real Kafka broker (e.g. deploy/kafka/kafka.sh start ...)
#   --kills     kill -9 rounds per system (default 100), over all passes
#   --out       DIR/restart.json gets every figure (a JSON array)
#   --gap-ms    settle time between kills, plus a random 0-200 ms
#               (default 1000: runsv waits 1 s before restarting a service
#               that ran less than 1 s, and that rule is not what is
#               measured here)
#   --warmup-kills  kills of cyme before any measured, after 20,000
#               pings, to warm the broker (default 30; 0: no warm-up)
#   --systems   comma-separated subset of cyme,cyme-cold,cyme-asked,
#               supervisord,runit,s6,bare (default all, in that order);
#               cyme-cold is cyme without standby workers
#               (--standby-workers 0): each replacement is a new process;
#               cyme-asked is cyme-cold with --no-restart-at-once: each
#               restart waits for the supervisor's permit
#   --passes    the systems take turns P times (default 1), each turn
#               with --kills/P kills (rounded up): the machine's load
#               drifts over minutes, and systems measured one after the
#               other would each get a different hour. Each figure pools
#               the passes' samples and lists each pass's median; the
#               table gives each system's ratio to the bare loop, pass
#               by pass, when the bare loop was measured
#
# Per system, cyme-bench-respawn kills the worker and times death -> a new
# process holds the worker's name (all systems) and death -> the new
# worker answers ping through Kafka (cyme). A markdown table of the
# figures goes to stdout, progress to stderr. Everything started here is
# stopped at the end, on error and on interrupt.
#
# Environment: CYME_BUILD (build dir, default build; relative to the
# repository) with cyme-bench-respawn, cyme-branch and cyme-worker built.
# The peers come from deploy/install-deps.sh --bench. BENCH_KEEP_WORK=1
# keeps the work folder (the branches' logs) after a run that passed too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(cd "$here/.." && pwd)"
cd "$top"

usage() {
  sed -n '2,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

bad() {
  echo "bench/restart.sh: $*" >&2
  exit 2
}

die() {
  echo "bench/restart.sh: $*" >&2
  exit 1
}

log() {
  echo "== $*" >&2
}

# -- flags -----------------------------------------------------------------------

broker=""
kills=100
out=""
gap_ms=1000
warmup_kills=30
passes=1
all_systems=(cyme cyme-cold cyme-asked supervisord runit s6 bare)
systems_flag="$(IFS=,; echo "${all_systems[*]}")"
while [ $# -gt 0 ]; do
  case "$1" in
    --broker|--kills|--out|--gap-ms|--warmup-kills|--systems|--passes)
      [ $# -ge 2 ] || bad "$1 needs a value"
      case "$1" in
        --broker) broker="$2" ;;
        --kills) kills="$2" ;;
        --out) out="$2" ;;
        --gap-ms) gap_ms="$2" ;;
        --warmup-kills) warmup_kills="$2" ;;
        --systems) systems_flag="$2" ;;
        --passes) passes="$2" ;;
      esac
      shift 2
      ;;
    -h|--help) usage ;;
    *) bad "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$broker" ] || bad "--broker HOST:PORT is required"
[ -n "$out" ] || bad "--out DIR is required"
# The broker goes into a supervisord config and a run script: plain
# host:port pairs only.
[[ "$broker" =~ ^[A-Za-z0-9._-]+:[0-9]{1,5}(,[A-Za-z0-9._-]+:[0-9]{1,5})*$ ]] \
  || bad "--broker must be HOST:PORT[,HOST:PORT...], got '$broker'"
[[ "$kills" =~ ^[1-9][0-9]{0,5}$ ]] || bad "--kills must be a positive number, got '$kills'"
[[ "$gap_ms" =~ ^[0-9]{1,6}$ ]] || bad "--gap-ms must be a number of milliseconds, got '$gap_ms'"
[[ "$warmup_kills" =~ ^[0-9]{1,4}$ ]] || bad "--warmup-kills must be a number, got '$warmup_kills'"
[[ "$passes" =~ ^[1-9][0-9]?$ ]] || bad "--passes must be a number from 1 to 99, got '$passes'"
[ "$passes" -le "$kills" ] || bad "--passes ($passes) must not exceed --kills ($kills)"
# Kills per system in each pass.
pass_kills=$(((kills + passes - 1) / passes))
systems=()
IFS=, read -r -a wanted <<< "$systems_flag"
for s in "${wanted[@]}"; do
  case " ${all_systems[*]} " in
    *" $s "*) systems+=("$s") ;;
    *) bad "unknown system '$s' (systems: ${all_systems[*]})" ;;
  esac
done
[ ${#systems[@]} -gt 0 ] || bad "--systems is empty"
has() { case " ${systems[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

build="${CYME_BUILD:-build}"
[ -d "$build" ] || die "no build dir '$build' (set CYME_BUILD)"
bin="$(cd "$build" && pwd)"
# The worker's path goes into a supervisord config and a run script.
[[ "$bin" =~ ^[A-Za-z0-9/._+-]+$ ]] || die "the build dir's path '$bin' has characters this script does not quote"
for p in cyme-bench-respawn cyme-worker; do
  [ -x "$bin/$p" ] || die "$bin/$p is missing: cmake --build $build --target $p"
done
has_cyme() { has cyme || has cyme-cold || has cyme-asked; }
if has_cyme; then
  [ -x "$bin/cyme-branch" ] || die "$bin/cyme-branch is missing: cmake --build $build --target cyme-branch"
fi
need() { # PROGRAM SYSTEM
  command -v "$1" >/dev/null || die "$1 not found (${2}: deploy/install-deps.sh --bench installs it)"
}
need python3 "figures"
if has_cyme; then need curl cyme; fi
if has supervisord; then need supervisord supervisor; fi
if has runit; then need runsv runit; fi
if has s6; then need s6-supervise s6; fi
need pgrep procps

mkdir -p "$out"
out="$(cd "$out" && pwd)"

first="${broker%%,*}"
timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${first%:*}" "${first##*:}" 2>/dev/null \
  || die "nothing accepts connections on $first"

# -- processes -------------------------------------------------------------------

# Every name and path of this run holds the tag followed by '-' or '.', so
# what is left of it can be found by it (and not that of another run).
tag="rsb$$"
app="$tag"
work="$(mktemp -d "/tmp/cyme-restart-$tag.XXXXXX")"
started=()   # pids of the supervisors started here, in order
probe=""     # pid of the running probe

# Whether PID runs (is neither gone nor a zombie).
running() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$st" != Z* ]]
}

# Polls every 50 ms, up to LIMIT seconds, until the command succeeds.
wait_for() { # LIMIT COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

not_running() { ! running "$1"; }

# SIGTERM, up to LIMIT seconds to end, then SIGKILL; reaps it.
stop_pid() { # PID LIMIT
  local pid=$1
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$2" not_running "$pid"; then
      echo "bench/restart.sh: pid $pid ignored SIGTERM for $2 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 10 not_running "$pid" || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# Stops one of the supervisors started here and forgets its pid.
stop_started() { # PID LIMIT
  stop_pid "$1" "$2"
  local keep=() p
  for p in "${started[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  started=("${keep[@]}")
}

# Pids of processes of this run still there (the script itself aside).
leftovers() {
  pgrep -f -- "$tag[-.]" | grep -vx "$$" || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$probe" ]; then stop_pid "$probe" 10; fi
  local i
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    stop_pid "${started[$i]}" 60
  done
  local left
  left="$(leftovers)"
  if [ -n "$left" ]; then
    echo "bench/restart.sh: killing what is left of this run: $(echo $left)" >&2
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    wait_for 10 test -z "$(leftovers)" || true
    left="$(leftovers)"
    if [ -n "$left" ]; then
      echo "bench/restart.sh: processes still running: $(echo $left)" >&2
      rc=1
    fi
  fi
  if [ "$rc" -eq 0 ] && [ "${BENCH_KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$work"
  else
    echo "bench/restart.sh: logs kept in $work" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench/restart.sh: interrupted" >&2; exit 130' INT
trap 'echo "bench/restart.sh: terminated" >&2; exit 143' TERM

# The worker's command line for instance NAME, as the branch starts it.
worker_args() { # NAME
  printf '%s\n' "$bin/cyme-worker" --name "$1" --app "$app" --broker "$broker" \
    --min 1 --max 1 --control-fetch-wait-ms 500
}

# Runs the probe for SYSTEM; its figures go to $work/figures.jsonl.
run_probe() { # SYSTEM PROBE-ARGS...
  local sys=$1
  shift
  local procs
  # A process that ends during the scan is no error.
  procs="$( (find /proc -maxdepth 1 -name '[0-9]*' 2>/dev/null || true) | wc -l)"
  log "$sys, pass $pass of $passes: $pass_kills kills, $gap_ms-$((gap_ms + 200)) ms apart (load $(cut -d' ' -f1-3 /proc/loadavg), $procs processes)"
  "$bin/cyme-bench-respawn" --system "$sys" --kills "$pass_kills" --gap-ms "$gap_ms" \
    --gap-jitter-ms 200 "$@" >"$work/$sys.jsonl" 2>"$work/$sys.probe.log" &
  probe=$!
  local rc=0
  wait "$probe" || rc=$?
  probe=""
  if [ "$rc" -ne 0 ]; then
    tail -n 5 "$work/$sys.probe.log" >&2
    die "$sys: the probe failed (exit $rc)"
  fi
  cat "$work/$sys.jsonl" >> "$work/figures.jsonl"
  python3 - "$work/$sys.jsonl" <<'PY' >&2
import json, sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    print(f"   {f['figure']}: median {f['median_ms']:.2f} ms, p90 {f['p90_ms']:.2f} ms"
          + (f" ({f['note']})" if f['note'] and f['figure'] == 'death_to_new_pid' else ""))
PY
}

# A run script for runsv and s6-supervise: sh execs the worker.
write_run_script() { # FILE NAME LOG
  local args q=""
  mapfile -t args < <(worker_args "$2")
  for a in "${args[@]}"; do q+=" '$a'"; done
  printf '#!/bin/sh\nexec%s >>'"'"'%s'"'"' 2>&1\n' "$q" "$3" > "$1"
  chmod +x "$1"
}

# -- systems ---------------------------------------------------------------------

http_ok() { # URL
  curl -sf --max-time 5 -o /dev/null "$1"
}

instance_field() { # URL KEY
  curl -sf --max-time 10 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

instance_running() { # URL
  [ "$(instance_field "$1" state 2>/dev/null)" = running ]
}

run_cyme() {
  run_cyme_with cyme 1
}

run_cyme-cold() {
  run_cyme_with cyme-cold 0
}

run_cyme-asked() {
  run_cyme_with cyme-asked 0 --no-restart-at-once
}

# Starts a cyme-branch for SYSTEM with one instance, NAME, running: sets
# name, url and branch.
start_cyme() { # SYSTEM STANDBY-WORKERS [BRANCH-FLAGS...]
  local sys=$1 standby=$2 port
  shift 2
  name="$tag-$sys"
  port="$(bash deploy/kafka/kafka.sh free-port)"
  url="http://127.0.0.1:$port"
  "$bin/cyme-branch" --id "$tag" --kafka "$broker" --root "$work/$sys" \
    --http "127.0.0.1:$port" --restart-max-rate 1000/s \
    --standby-workers "$standby" "$@" \
    --worker "$bin/cyme-worker" >"$work/$sys-branch.log" 2>&1 &
  branch=$!
  started+=("$branch")
  branch_answers() { running "$branch" && http_ok "$url/supervisor/"; }
  wait_for 60 branch_answers || die "cyme-branch does not answer on $url (see $work/$sys-branch.log)"
  curl -sf --max-time 30 -X PUT -d '' "$url/$app/" >/dev/null || die "cannot create app $app"
  curl -sf --max-time 60 -X PUT -H 'Content-Type: application/json' \
    -d '{"max_concurrency": 1, "min_concurrency": 1}' \
    "$url/$app/instances/$name/" >/dev/null || die "cannot create instance $name"
  wait_for 60 instance_running "$url/$app/instances/$name/" \
    || die "instance $name is not running (see $work/$sys-branch.log)"
}

# The broker warmed first, as a bus in use is: a JVM compiles its hot
# paths as it runs, and the first restarts measured on a fresh broker
# took half as long again to answer a ping. Pings to a cyme worker, then
# kills of it, not measured.
warm_up() {
  local name url branch
  log "warming the broker: 20,000 pings and $warmup_kills kills, not measured"
  start_cyme warm-up 1
  "$bin/cyme-bench" rtt --broker "$broker" --instance "$name" --pings 20000 \
    --fetch-wait-ms 100 --label warm-up >/dev/null 2>"$work/warm-up.rtt.log" \
    || die "warming the broker failed (see $work/warm-up.rtt.log)"
  "$bin/cyme-bench-respawn" --system warm-up --kills "$warmup_kills" \
    --gap-ms 200 --gap-jitter-ms 100 --match "$name" \
    --match-env "CYME_INSTANCE=$name" --also-watch=--standby \
    --ping-broker "$broker" --ping-name "$name" \
    >"$work/warm-up.jsonl" 2>"$work/warm-up.probe.log" \
    || die "warming the broker failed (see $work/warm-up.probe.log)"
  stop_started "$branch" 60
}

run_cyme_with() { # SYSTEM STANDBY-WORKERS [BRANCH-FLAGS...]
  local sys=$1 standby=$2
  shift 2
  local name url branch
  start_cyme "$sys" "$standby" "$@"
  # A standby that replaces the worker holds the instance in its
  # environment, not on its command line.
  run_probe "$sys" --match "$name" --match-env "CYME_INSTANCE=$name" \
    --also-watch=--standby --ping-broker "$broker" --ping-name "$name"
  # Each replacement's start-up, piece by piece, as its log says it.
  python3 - "$work/$sys/instances/$name/worker.log" "$sys" <<'PY' >> "$work/figures.jsonl"
import json, re, sys
pieces = {}
for line in open(sys.argv[1], errors="replace"):
    if "start-up: " not in line:
        continue
    for piece, ms in re.findall(r"([a-z][a-z ]*?) at ([0-9.]+) ms", line.split("start-up: ", 1)[1]):
        pieces.setdefault(piece, []).append(float(ms))
# The figure's statistics are taken from its samples at the end.
for piece, xs in pieces.items():
    print(json.dumps({"system": sys.argv[2], "figure": "start-up: " + piece + " at",
                      "note": "", "samples_ms": xs}))
PY
  # Which ping of the supervisor's schedule each restart's answer was to
  # (1: the first, whose timeout is 0.1 s).
  curl -sf --max-time 30 "$url/events/?since=0&follow=0&instance=$name" \
    | python3 -c '
import json, sys
pings = [int(json.loads(l[6:])["data"].get("pings", 0)) for l in sys.stdin
         if l.startswith("data: ") and json.loads(l[6:])["kind"] == "restarted"]
print(json.dumps({"restarts": len(pings), "first_ping": sum(1 for p in pings if p == 1)}))
' > "$work/pings-$sys.json" || die "cannot read the events of $url"
  local state restarts
  state="$(instance_field "$url/$app/instances/$name/" state)"
  restarts="$(instance_field "$url/$app/instances/$name/" restarts)"
  echo "   the branch reports $name $state after $restarts restarts" >&2
  stop_started "$branch" 60
}

run_supervisord() {
  local name="$tag-supervisord" d="$work/supervisord" args
  mkdir -p "$d"
  mapfile -t args < <(worker_args "$name")
  cat > "$d/supervisord.conf" <<EOF
[unix_http_server]
file=$d/supervisor.sock

[supervisord]
nodaemon=true
pidfile=$d/supervisord.pid
logfile=$d/supervisord.log
childlogdir=$d

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$d/supervisor.sock

[program:$name]
command=${args[*]}
startsecs=0
autorestart=true
stopwaitsecs=30
stdout_logfile=$d/worker.log
redirect_stderr=true
EOF
  supervisord -n -c "$d/supervisord.conf" >"$d/out.log" 2>&1 &
  local sv=$!
  started+=("$sv")
  run_probe supervisord --match "$name"
  stop_started "$sv" 60
}

# runit and s6 both supervise a service folder whose run script execs the
# worker: SYSTEM PROGRAM.
run_service_dir() {
  local system=$1 program=$2 name="$tag-$1" d="$work/$1/svc"
  mkdir -p "$d"
  write_run_script "$d/run" "$name" "$work/$system/worker.log"
  "$program" "$d" >"$work/$system/$program.log" 2>&1 &
  local sv=$!
  started+=("$sv")
  run_probe "$system" --match "$name"
  stop_started "$sv" 60
}

run_runit() {
  run_service_dir runit runsv
}

run_s6() {
  run_service_dir s6 s6-supervise
}

run_bare() {
  local name="$tag-bare" args
  mapfile -t args < <(worker_args "$name")
  run_probe bare --match "$name" --bare --bare-log "$work/bare-worker.log" -- "${args[@]}"
}

# -- run -------------------------------------------------------------------------

: > "$work/figures.jsonl"
log "restart latency: ${systems[*]}; broker $broker; worker $bin/cyme-worker"
[ "$warmup_kills" -eq 0 ] || warm_up
for ((pass = 1; pass <= passes; pass++)); do
  for s in "${systems[@]}"; do
    "run_$s"
    left="$(leftovers)"
    [ -z "$left" ] || die "$s: processes left after stopping it: $(echo $left)"
    # What the system's turn left goes aside, so the next pass starts
    # afresh under the same names.
    mkdir -p "$work/pass$pass"
    for f in "$work/$s" "$work/$s-branch.log" "$work/$s.jsonl" \
             "$work/$s.probe.log" "$work/$s-worker.log" "$work/pings-$s.json"; do
      if [ -e "$f" ]; then mv "$f" "$work/pass$pass/"; fi
    done
  done
done

python3 - "$work/figures.jsonl" "$out/restart.json" <<'PY'
import glob, json, os, sys
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))]
# One figure per system and kind, its statistics taken from the passes'
# samples pooled (the probe's nearest rank).
groups = {}
for line in open(sys.argv[1]):
    if line.strip():
        x = json.loads(line)
        groups.setdefault((x["system"], x["figure"]), []).append(x)
figures = []
for runs in groups.values():
    x = dict(runs[0])
    xs = [v for r in runs for v in r["samples_ms"]]
    x.update(n=len(xs), median_ms=pct(xs, 0.5), p90_ms=pct(xs, 0.9),
             p99_ms=pct(xs, 0.99), min_ms=min(xs), max_ms=max(xs), samples_ms=xs)
    if len(runs) > 1:
        if "restart" in x:
            kinds = sorted({r["restart"] for r in runs})
            x["restart"] = kinds[0] if len(kinds) == 1 else "mixed: " + ", ".join(kinds)
            x["throttled"] = any(r["throttled"] for r in runs)
        x["note"] = "; ".join(dict.fromkeys(r["note"] for r in runs if r["note"]))
        x["pass_medians_ms"] = [pct(r["samples_ms"], 0.5) for r in runs]
    figures.append(x)
with open(sys.argv[2], "w") as f:
    json.dump(figures, f, indent=1)
    f.write("\n")
print("| system | figure | n | median | p90 | p99 | each pass's median |")
print("|---|---|---|---|---|---|---|")
for x in figures:
    each = ", ".join(f"{m:.2f}" for m in x.get("pass_medians_ms", []))
    print(f"| {x['system']} | {x['figure']} | {x['n']} | {x['median_ms']:.2f} ms"
          f" | {x['p90_ms']:.2f} ms | {x['p99_ms']:.2f} ms | {each} |")
# Death -> new process beside the bare loop's, measured in the same run
# (and pass by pass, each beside the bare loop's turn of that pass).
to_pid = {x["system"]: x for x in figures if x["figure"] == "death_to_new_pid"}
if "bare" in to_pid:
    bare = to_pid["bare"]
    print()
    for system, x in to_pid.items():
        if system == "bare":
            continue
        line = f"- {system}: death to new process {x['median_ms'] / bare['median_ms']:.2f}x the bare loop's"
        if "pass_medians_ms" in x and "pass_medians_ms" in bare:
            each = [a / b for a, b in zip(x["pass_medians_ms"], bare["pass_medians_ms"])]
            line += " (pass by pass: " + ", ".join(f"{r:.2f}x" for r in each) + ")"
        print(line)
notes = [x for x in figures if x["figure"] == "death_to_new_pid" and x["note"]]
if notes:
    print()
    for x in notes:
        print(f"- {x['system']}: {x['note']}")
answered = {}
for path in sorted(glob.glob(os.path.join(os.path.dirname(sys.argv[1]), "pass*", "pings-*.json"))):
    system = os.path.basename(path)[len("pings-"):-len(".json")]
    got = json.load(open(path))
    a = answered.setdefault(system, {"system": system, "figure": "first_ping_answered",
                                     "restarts": 0, "first_ping": 0})
    a["restarts"] += got["restarts"]
    a["first_ping"] += got["first_ping"]
answered = list(answered.values())
if answered:
    with open(sys.argv[2], "w") as f:
        json.dump(figures + answered, f, indent=1)
        f.write("\n")
    print()
    for p in answered:
        print(f"{p['system']}: the supervisor's first ping after a restart (timeout 0.1 s) was"
              f" answered for {p['first_ping']} of {p['restarts']} restarts.")
if figures:
    x = figures[0]
    print()
    print(f"Kills {x['gap_ms']}-{x['gap_ms'] + x['gap_jitter_ms']} ms apart;"
          f" /proc polled every {x['poll_us']} us.")
PY
log "figures in $out/restart.json"

#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker and controller in one
# JVM) for tests, from the jars pom.xml brings from Maven Central.
#
#   kafka.sh fetch                 copy the broker's classpath into lib/ (once)
#   kafka.sh free-port [HOST]      print a TCP port nothing listens on
#   kafka.sh start DIR HOST:PORT [SASL_HOST:PORT USER PASSWORD_FILE]
#                                  format DIR and start a broker serving
#                                  PLAINTEXT on HOST:PORT (and, if given,
#                                  SASL_PLAINTEXT with mechanism PLAIN for
#                                  USER, whose password is the first line
#                                  of PASSWORD_FILE); returns once it
#                                  answers Kafka requests (90 s deadline)
#   kafka.sh stop DIR              SIGTERM, then SIGKILL after 30 s
#   kafka.sh kill DIR              SIGKILL (a crash); start DIR restarts it
#   kafka.sh pause DIR             SIGSTOP the broker (a hung broker)
#   kafka.sh resume DIR            SIGCONT it
#   kafka.sh status DIR            running / paused / stopped (exit 0 / 0 / 3)
#
# DIR holds server.properties, log4j.properties, data/, kafka.pid and
# kafka.log (the broker's output). Environment: KAFKA_HEAP_OPTS (default
# "-Xmx512m -Xms256m"), KAFKA_START_TIMEOUT (seconds, default 90), KAFKA_LIB
# (where fetch puts the jars and start takes them; default lib/ beside
# this script).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lib="${KAFKA_LIB:-$here/lib}"
marker="$lib/.fetched"

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# -- fetch ---------------------------------------------------------------------

pom_digest() {
  sha256sum "$here/pom.xml" | cut -d' ' -f1
}

fetched() {
  [ -f "$marker" ] && [ "$(cat "$marker")" = "$(pom_digest)" ]
}

cmd_fetch() {
  if fetched; then
    echo "kafka.sh: $lib is complete ($(find "$lib" -name '*.jar' | wc -l) jars)"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (deploy/install-deps.sh installs maven)"
  command -v java >/dev/null || die "java not found (deploy/install-deps.sh installs a JDK)"
  local partial="$lib.partial"
  rm -rf "$partial"
  echo "kafka.sh: fetching the broker's jars from Maven Central (the first time may take minutes)"
  local started=$SECONDS
  if ! mvn -B -q -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
         "-DoutputDirectory=$partial" -DincludeScope=runtime; then
    rm -rf "$partial"
    die "FAILED to fetch Kafka from Maven Central (no network? see mvn's output above)"
  fi
  compgen -G "$partial/kafka_2.13-*.jar" >/dev/null \
    || die "FAILED: mvn copied no kafka_2.13 jar into $partial"
  rm -rf "$lib"
  mv "$partial" "$lib"
  pom_digest >"$marker"
  echo "kafka.sh: fetched $(find "$lib" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
}

require_fetched() {
  fetched || die "$lib is not fetched: run '$0 fetch' first"
}

# -- helpers -------------------------------------------------------------------

# Whether something accepts TCP connections on HOST PORT.
listening() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Sends an ApiVersions v0 request (correlation id 7, client id "cyme") to
# HOST PORT and checks that the answer carries correlation id 7: the broker
# serves Kafka requests, not just accepts connections.
answers_kafka() {
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x07\x00\x04cyme" >&3
    reply=$(head -c 8 <&3 | od -An -tx1 | tr -d " \n")
    [ "${#reply}" -eq 16 ] && [ "${reply:8:8}" = "00000007" ]
  ' _ "$1" "$2" 2>/dev/null
}

cmd_free_port() {
  local host="${1:-127.0.0.1}" port tries
  # Below the usual ephemeral range (32768-60999), so no outgoing connection
  # holds it.
  for tries in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    if ! listening "$host" "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found on $host"
}

split_address() {
  local address="$1"
  host="${address%:*}"
  port="${address##*:}"
  [ -n "$host" ] && [ "$host" != "$address" ] && [[ "$port" =~ ^[0-9]+$ ]] \
    || die "bad address '$address' (want HOST:PORT)"
}

# The broker's pid from DIR/kafka.pid when that process is this DIR's
# broker (never a recycled pid); empty otherwise.
broker_pid() {
  local dir="$1" pid
  [ -f "$dir/kafka.pid" ] || return 0
  pid="$(cat "$dir/kafka.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$dir/server.properties"; then
    echo "$pid"
  fi
}

# R, S, T (stopped), Z... from /proc/PID/stat.
proc_state() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  echo "${stat%% *}"
}

abs_dir() {
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# -- start ---------------------------------------------------------------------

cmd_start() {
  [ $# -eq 2 ] || [ $# -eq 5 ] || usage
  require_fetched
  local dir host port
  dir="$(abs_dir "$1")"
  # An optional SASL_PLAINTEXT listener beside the PLAINTEXT one.
  local sasl_listener="" sasl_advertised="" sasl_map="" sasl_settings=""
  local sasl_port=""
  if [ $# -eq 5 ]; then
    split_address "$3"
    local sasl_address="$host:$port" user="$4" password
    sasl_port="$port"
    [[ "$user" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "bad SASL user '$user'"
    [ -r "$5" ] || die "cannot read the password file $5"
    password="$(head -n 1 "$5")"
    [[ "$password" =~ ^[A-Za-z0-9_.-]{1,128}$ ]] \
      || die "the password in $5 must be 1 to 128 of [A-Za-z0-9_.-]"
    if listening "$host" "$port"; then
      die "$sasl_address is already in use"
    fi
    sasl_listener=",SASL_PLAINTEXT://$sasl_address"
    sasl_advertised=",SASL_PLAINTEXT://$sasl_address"
    sasl_map=",SASL_PLAINTEXT:SASL_PLAINTEXT"
    sasl_settings="sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$user=\"$password\";"
  fi
  split_address "$2"
  if [ -n "$(broker_pid "$dir")" ]; then
    die "a broker already runs in $dir (pid $(broker_pid "$dir"))"
  fi
  if listening "$host" "$port"; then
    die "$host:$port is already in use"
  fi
  local cport
  cport="$(cmd_free_port "$host")"
  while [ "$cport" = "$port" ] || [ "$cport" = "$sasl_port" ]; do
    cport="$(cmd_free_port "$host")"
  done

  # It may hold a password.
  (umask 077 && : >"$dir/server.properties")
  cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka/kafka.sh: a single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$cport
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport$sasl_listener
advertised.listeners=PLAINTEXT://$host:$port$sasl_advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$sasl_map
$sasl_settings
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
EOF
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=WARN
log4j.logger.org.apache.kafka.raft=WARN
EOF

  local heap=()
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
  local java_cmd=(java "${heap[@]}" -XX:+UseSerialGC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$dir/log4j.properties"
    -cp "$lib/*")

  # Format once; a DIR already formatted keeps its cluster id and data.
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid gave '$cluster_id'"
    "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "formatting $dir/data failed"; }
  fi

  local started=$SECONDS
  "${java_cmd[@]}" kafka.Kafka "$dir/server.properties" \
    </dev/null >"$dir/kafka.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/kafka.pid"

  local limit="${KAFKA_START_TIMEOUT:-90}"
  local deadline=$((SECONDS + limit))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$dir/kafka.log" >&2 || true
      rm -f "$dir/kafka.pid"
      die "the broker exited while starting (log: $dir/kafka.log)"
    fi
    if grep -qE 'Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)' \
         "$dir/kafka.log" \
       && listening "$host" "$port" && answers_kafka "$host" "$port"; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$dir/kafka.log" >&2 || true
      cmd_stop "$dir" >&2 || true
      die "the broker did not serve $host:$port within $limit s (log: $dir/kafka.log)"
    fi
    sleep 0.2
  done
  echo "kafka.sh: broker pid $pid serves $host:$port (controller $host:$cport), started in $((SECONDS - started)) s"
}

# -- stop, pause, resume, status ----------------------------------------------

# Waits until broker PID of DIR is gone (or a zombie), then forgets it.
wait_gone() { # DIR PID
  local dir="$1" pid="$2"
  # Reaped by its parent, or by init once kafka.sh (its parent) exited.
  local reap=$((SECONDS + 10))
  while [ -n "$(broker_pid "$dir")" ] && [ "$(proc_state "$pid")" != Z ] \
        && [ "$SECONDS" -lt "$reap" ]; do
    sleep 0.1
  done
  rm -f "$dir/kafka.pid"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local dir pid
  dir="$(abs_dir "$1")"
  pid="$(broker_pid "$dir")"
  if [ -z "$pid" ]; then
    rm -f "$dir/kafka.pid"
    echo "kafka.sh: no broker runs in $dir"
    return 0
  fi
  kill -CONT "$pid" 2>/dev/null || true # a paused broker cannot shut down
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30}))
  while kill -0 "$pid" 2>/dev/null && [ "$(proc_state "$pid")" != Z ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "kafka.sh: broker pid $pid ignored SIGTERM; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait_gone "$dir" "$pid"
  echo "kafka.sh: broker pid $pid stopped"
}

# A crash: SIGKILL, no shutdown. `start` on the same DIR brings the broker
# back with its data (a process crash loses nothing the kernel took).
cmd_kill() {
  [ $# -eq 1 ] || usage
  local dir pid
  dir="$(abs_dir "$1")"
  pid="$(running_pid "$dir")"
  kill -KILL "$pid"
  wait_gone "$dir" "$pid"
  echo "kafka.sh: broker pid $pid killed"
}

running_pid() {
  local pid
  pid="$(broker_pid "$1")"
  [ -n "$pid" ] || die "no broker runs in $1"
  echo "$pid"
}

cmd_pause() {
  [ $# -eq 1 ] || usage
  local pid
  pid="$(running_pid "$(abs_dir "$1")")"
  kill -STOP "$pid"
  echo "kafka.sh: broker pid $pid paused"
}

cmd_resume() {
  [ $# -eq 1 ] || usage
  local pid
  pid="$(running_pid "$(abs_dir "$1")")"
  kill -CONT "$pid"
  echo "kafka.sh: broker pid $pid resumed"
}

cmd_status() {
  [ $# -eq 1 ] || usage
  local dir pid address
  dir="$(abs_dir "$1")"
  pid="$(broker_pid "$dir")"
  if [ -z "$pid" ]; then
    echo "stopped"
    return 3
  fi
  address="$(sed -n 's|^advertised.listeners=PLAINTEXT://||p' "$dir/server.properties")"
  if [ "$(proc_state "$pid")" = T ]; then
    echo "paused pid $pid $address"
  else
    echo "running pid $pid $address"
  fi
}

[ $# -ge 1 ] || usage
sub="$1"
shift
case "$sub" in
  fetch) [ $# -eq 0 ] || usage; cmd_fetch ;;
  free-port) cmd_free_port "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  kill) cmd_kill "$@" ;;
  pause) cmd_pause "$@" ;;
  resume) cmd_resume "$@" ;;
  status) cmd_status "$@" ;;
  *) usage ;;
esac

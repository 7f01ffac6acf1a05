#!/usr/bin/env bash
# The Debian package, end to end, on this machine:
# - CPack builds cyme_<version>_amd64.deb from BUILD_DIR;
# - lintian finds no error in it;
# - the shipped systemd units score within their bars on
#   `systemd-analyze security --offline=yes` (branch <= 3.0, broker <= 4.5);
# - dpkg -i installs it: the cyme user, /var/lib/cyme, /etc/cyme/branch.conf,
#   the units, the programs in /usr/bin;
# - the installed cyme-branch answers --version, and runs as user cyme from
#   the installed config, with the embedded Kafka and a worker instance; a
#   kill -9 of it and a new start re-adopt the worker; SIGTERM stops both;
# - dpkg --purge leaves nothing behind: no file of the package, no state,
#   no config, no user.
# Needs root (dpkg). Runs take turns on this machine (flock); a cyme package
# already installed is left alone and fails the test.
#
#   check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
fail() { echo "package check: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root: it installs and purges the package with dpkg"
exec 9>/run/lock/cyme-package-test.lock
flock -w 1800 9 || fail "another package test held the lock for 30 minutes"
if dpkg-query -W -f='${Status}' cyme 2>/dev/null | grep -q "installed"; then
  fail "a cyme package is already installed here; this test installs and purges its own"
fi

work=$(mktemp -d)
installed=
branch=
cleanup() {
  if [ -n "$branch" ]; then
    kill -TERM "$branch" 2>/dev/null || true
    wait "$branch" 2>/dev/null || true
  fi
  if [ -n "$installed" ]; then
    dpkg --purge cyme >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build/CPackConfig.cmake"
cpack --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1 \
  || { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb="$work/cyme_${version}_amd64.deb"
[ -f "$deb" ] || fail "cpack made no $deb"
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"

# Dependencies come from dpkg-shlibdeps, not from a list kept by hand.
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libcaf-core libc6 librdkafka libsqlite3 adduser; do
  case "$depends" in *"$lib"*) ;; *) fail "Depends lacks $lib: $depends" ;; esac
done

lintian --allow-root --fail-on error "$deb" >"$work/lintian.log" 2>&1 \
  || { cat "$work/lintian.log" >&2; fail "lintian found errors"; }
echo "lintian: $(grep -c '^[EW]:' "$work/lintian.log" || true) errors and warnings"

# The units' exposure, from the package's own files.
dpkg-deb -x "$deb" "$work/tree"
exposure() {
  systemd-analyze security --offline=yes "$1" 2>&1 \
    | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'
}
for pair in cyme-branch:3.0 cyme-kafka:4.5; do
  unit=${pair%%:*} bar=${pair#*:}
  score=$(exposure "$work/tree/lib/systemd/system/$unit.service")
  [ -n "$score" ] || fail "systemd-analyze rated no $unit.service"
  echo "$unit.service: exposure $score (bar $bar)"
  awk -v s="$score" -v b="$bar" 'BEGIN { exit !(s <= b) }' \
    || fail "$unit.service is rated $score, above its bar of $bar"
done

installed=yes
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
getent passwd cyme >/dev/null || fail "no user cyme after install"
[ "$(stat -c '%U:%G %a' /var/lib/cyme)" = "cyme:cyme 750" ] \
  || fail "/var/lib/cyme is $(stat -c '%U:%G %a' /var/lib/cyme), not cyme:cyme 750"
for f in /etc/cyme/branch.conf /lib/systemd/system/cyme-branch.service \
         /lib/systemd/system/cyme-kafka.service /usr/share/cyme/kafka/kafka.sh \
         /usr/share/man/man1/cyme-branch.1.gz /usr/share/doc/cyme/copyright; do
  [ -f "$f" ] || fail "not installed: $f"
done
/usr/bin/cyme-branch --version | grep -qx "cyme-branch $version (git .*)" \
  || fail "the installed cyme-branch answers --version with '$(/usr/bin/cyme-branch --version)'"

# A short start, as the service would: user cyme, the installed config
# (its HTTP port moved to a free one), the installed worker.
port=$("$src/deploy/kafka/kafka.sh" free-port 127.0.0.1)
export CYME_BRANCH="http://127.0.0.1:$port"
start_branch() {
  setpriv --reuid=cyme --regid=cyme --init-groups \
    /usr/bin/cyme-branch --config /etc/cyme/branch.conf --http "127.0.0.1:$port" \
    >>"$work/branch.log" 2>&1 &
  branch=$!
  local up=
  for _ in $(seq 300); do
    if /usr/bin/cyme apps >/dev/null 2>&1; then up=yes; break; fi
    kill -0 "$branch" 2>/dev/null || { cat "$work/branch.log" >&2; fail "the installed branch exited"; }
    sleep 0.1
  done
  [ -n "$up" ] || { cat "$work/branch.log" >&2; fail "the installed branch never answered"; }
}
workers_of() {
  pgrep -u cyme -f -- "cyme-worker .*--instance-dir /var/lib/cyme/instances/$1( |$)" || true
}
start_branch
/usr/bin/cyme apps add demo >/dev/null
/usr/bin/cyme instances add demo pk1 >"$work/add.out" 2>&1 \
  || { cat "$work/add.out" "$work/branch.log" >&2; fail "cannot add an instance"; }
worker=$(workers_of pk1)
[ -n "$worker" ] || { cat "$work/branch.log" >&2; fail "no worker of pk1 runs as user cyme"; }
# A branch killed hard and started again, still as user cyme, re-adopts
# the worker it left (as the unit's Restart=on-failure would have it).
kill -KILL "$branch"
wait "$branch" 2>/dev/null || true
start_branch
pid=$(/usr/bin/cyme --json instances show demo pk1 | sed -n 's/^ *"pid": \([0-9]*\).*/\1/p')
[ "$pid" = "$worker" ] || fail "after a kill -9, pk1 runs as pid '$pid', not the re-adopted $worker"
[ "$(workers_of pk1)" = "$worker" ] || fail "pk1 has workers $(workers_of pk1 | tr '\n' ' ') after re-adoption"
kill -TERM "$branch"
wait "$branch" || { cat "$work/branch.log" >&2; fail "the installed branch did not stop cleanly"; }
branch=
# Log writers end when their worker's output closes: give them 10 s.
# (Zombies count as ended: this machine's init may not reap them.)
alive() { ps -u cyme -o pid=,stat=,args= | awk '$2 !~ /^Z/'; }
for _ in $(seq 100); do
  [ -z "$(alive)" ] && break
  sleep 0.1
done
[ -z "$(alive)" ] || fail "processes of user cyme still run after the branch stopped: $(alive)"
echo "the installed branch ran as user cyme with an instance, and stopped"

installed=
dpkg --purge cyme >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
left=()
while read -r path; do
  [ -e "$path" ] && [ ! -d "$path" ] && left+=("$path")
done < <(dpkg-deb -c "$deb" | awk '{ print substr($6, 2) }')
for p in /etc/cyme /var/lib/cyme /var/lib/cyme-kafka; do
  [ -e "$p" ] && left+=("$p")
done
getent passwd cyme >/dev/null && left+=("user cyme")
getent group cyme >/dev/null && left+=("group cyme")
[ ${#left[@]} -eq 0 ] || fail "left behind after purge: ${left[*]}"
echo "package check: built, linted, installed, ran, purged; nothing left"

#!/usr/bin/env bash
# A cluster of hosts on one machine, made of network namespaces: a switch
# (a bridge in namespace cyme-sw) and, wired to it by veth pairs,
#   cyme-kafka  10.77.0.1    the broker host
#   cyme-h1     10.77.0.11   branch host 1
#   cyme-h2     10.77.0.12   branch host 2
#   cyme-h3     10.77.0.13   branch host 3
#   cyme-ctl    10.77.0.100  where tests and operators run
# The addresses exist only inside these namespaces; nothing is routed to or
# from the machine's own network.
#
#   cluster.sh up                  create (idempotent: recreates)
#   cluster.sh down                remove everything
#   cluster.sh link HOST down|up   cut a host off the switch, or reconnect it
#   cluster.sh addr HOST           print a host's address
#   cluster.sh exec HOST CMD...    run CMD in a host's namespace
# Needs root and iproute2.
set -euo pipefail

hosts=(kafka h1 h2 h3 ctl)
declare -A addr=([kafka]=10.77.0.1 [h1]=10.77.0.11 [h2]=10.77.0.12
                 [h3]=10.77.0.13 [ctl]=10.77.0.100)

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

known_host() {
  [ -n "${addr[$1]+x}" ] || die "unknown host '$1' (one of: ${hosts[*]})"
}

cmd_down() {
  for h in "${hosts[@]}"; do
    ip netns del "cyme-$h" 2>/dev/null || true
  done
  ip netns del cyme-sw 2>/dev/null || true
}

cmd_up() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  command -v ip >/dev/null || die "needs iproute2"
  cmd_down
  ip netns add cyme-sw
  ip -n cyme-sw link set lo up
  ip -n cyme-sw link add br0 type bridge
  ip -n cyme-sw link set br0 up
  for h in "${hosts[@]}"; do
    ip netns add "cyme-$h"
    ip -n "cyme-$h" link set lo up
    # Both ends are created inside the switch namespace, then one moves to
    # the host: nothing appears in the machine's own namespace.
    ip -n cyme-sw link add "v-$h" type veth peer name "p-$h"
    ip -n cyme-sw link set "v-$h" netns "cyme-$h"
    ip -n cyme-sw link set "p-$h" master br0
    ip -n cyme-sw link set "p-$h" up
    ip -n "cyme-$h" addr add "${addr[$h]}/24" dev "v-$h"
    ip -n "cyme-$h" link set "v-$h" up
  done
}

cmd_link() {
  [ $# -eq 2 ] || die "usage: cluster.sh link HOST down|up"
  known_host "$1"
  case "$2" in
    down | up) ip -n cyme-sw link set "p-$1" "$2" ;;
    *) die "link state must be down or up" ;;
  esac
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  link) shift; cmd_link "$@" ;;
  addr) known_host "${2:-}"; echo "${addr[$2]}" ;;
  exec)
    [ $# -ge 3 ] || die "usage: cluster.sh exec HOST CMD..."
    known_host "$2"
    host=$2
    shift 2
    exec ip netns exec "cyme-$host" "$@"
    ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

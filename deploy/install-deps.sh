#!/usr/bin/env bash
# Installs every Debian package that building, testing and running cyme need.
# Idempotent: packages already present are skipped, apt is not touched then.
#
#   install-deps.sh           what building, testing and running need
#   install-deps.sh --bench   that, plus what bench/run.sh compares against
#                             (supervisor, runit, s6, kcat) and plots with
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev
  librdkafka-dev
  nlohmann-json3-dev
  libboost-test-dev
  libsqlite3-dev
  libcpp-httplib-dev
  libcli11-dev
  libspdlog-dev
  curl
  openjdk-17-jdk-headless
  maven
  openssl libssl-dev
  iproute2
  clang-14
  python3 python3-venv
  prometheus
  libclang-rt-14-dev
  chromium chromium-driver python3-selenium # the dashboard's browser test
  help2man                     # the programs' manual pages
  lintian adduser systemd      # the Debian package's test (lintian, the
                               # maintainer scripts, systemd-analyze)
)

if [ "${1:-}" = "--bench" ]; then
  packages+=(supervisor runit s6 kcat gnuplot-nox procps wrk)
elif [ $# -gt 0 ]; then
  echo "usage: deploy/install-deps.sh [--bench]" >&2
  exit 2
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deploy/install-deps.sh: all ${#packages[@]} packages present"
  exit 0
fi

echo "deploy/install-deps.sh: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

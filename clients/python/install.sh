#!/usr/bin/env bash
# Makes (or reuses) a venv at VENV with this source tree's cyme-worker
# package installed (pip brings confluent-kafka from PyPI). The venv is
# reused while it holds this tree's package: a digest of the package's
# files, written once pip succeeded. One run at a time (flock on
# VENV.lock), so parallel callers share it.
#
#   clients/python/install.sh VENV
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 VENV" >&2; exit 2; }
client="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$(dirname "$1")"
venv="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
stamp="$venv/.cyme-worker-source"
digest="$(cd "$client" && find pyproject.toml README.md src -type f \
            -not -path '*/__pycache__/*' -not -path '*.egg-info*' -print0 \
          | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"

exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "install.sh: installing clients/python into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # From a copy, so the install leaves no build files in the source tree.
  work="$(mktemp -d)"
  cp -r "$client" "$work/client"
  rm -rf "$work/client"/src/*.egg-info "$work/client/build"
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "$work/client"; then
    rm -rf "$work"
    echo "install.sh: FAILED to install clients/python (pip's output above)" >&2
    exit 1
  fi
  rm -rf "$work"
  echo "$digest" >"$stamp"
fi

#!/usr/bin/env bash
# The Python worker's tests: makes (or reuses) a venv at BUILD_DIR/python-venv
# with clients/python installed from this source tree (pip brings
# confluent-kafka from PyPI), then runs with it test_units.py (the library's
# parts) and test_fleet.py (against BUILD_DIR's cyme-branch and cyme-worker). With CYME_TEST_KAFKA
# (HOST:PORT) set, the branch uses that broker instead of the embedded one.
#
#   tests/python/run.sh BUILD_DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
client="$(cd "$here/../../clients/python" && pwd)"
venv="$build/python-venv"
# The venv is complete once it holds this source tree's package: a digest
# of the client's files, written after pip succeeded.
stamp="$venv/.cyme-worker-source"
digest="$(cd "$client" && find pyproject.toml README.md src -type f \
            -not -path '*/__pycache__/*' -not -path '*.egg-info*' -print0 \
          | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"

# One run at a time makes the venv (ctest -j may start two of these).
exec 9>"$build/python-venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "run.sh: installing clients/python into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # From a copy, so the install leaves no build files in the source tree.
  work="$(mktemp -d)"
  cp -r "$client" "$work/client"
  rm -rf "$work/client"/src/*.egg-info "$work/client/build"
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check "$work/client"; then
    rm -rf "$work"
    echo "run.sh: FAILED to install clients/python (pip's output above)" >&2
    exit 1
  fi
  rm -rf "$work"
  echo "$digest" >"$stamp"
fi
flock -u 9

(cd "$here" && "$venv/bin/python" -m unittest test_units)
exec "$venv/bin/python" "$here/test_fleet.py" "$build"

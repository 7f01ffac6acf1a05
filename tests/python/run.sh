#!/usr/bin/env bash
# The Python worker's tests: makes (or reuses) a venv at BUILD_DIR/python-venv
# with clients/python installed from this source tree
# (clients/python/install.sh), then runs with it test_units.py (the library's
# parts) and test_fleet.py (against BUILD_DIR's cyme-branch and cyme-worker). With CYME_TEST_KAFKA
# (HOST:PORT) set, the branch uses that broker instead of the embedded one.
#
#   tests/python/run.sh BUILD_DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$build/python-venv"
"$here/../../clients/python/install.sh" "$venv"

(cd "$here" && "$venv/bin/python" -m unittest test_units)
exec "$venv/bin/python" "$here/test_fleet.py" "$build"

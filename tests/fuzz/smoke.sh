#!/usr/bin/env bash
# A short fuzzing pass over every target: the committed corpus first, then
# new inputs for SECONDS seconds each. New inputs go to a scratch folder;
# the committed corpus is only read. A crash fails the run and leaves its
# input (crash-*) in the scratch folder.
#
#   smoke.sh FUZZ_BUILD_DIR CORPUS_DIR SECONDS
set -euo pipefail
bin=$(cd "$1" && pwd)
corpus=$(cd "$2" && pwd)
seconds=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in wire names http; do
  mkdir -p "$scratch/$target"
  echo "== fuzz $target: ${seconds}s"
  seeds=("$corpus/$target")
  if [ -d "$corpus/../regressions/$target" ]; then
    seeds+=("$corpus/../regressions/$target")
  fi
  (cd "$scratch" && "$bin/cyme-fuzz-$target" -max_total_time="$seconds" \
     -max_len=4096 -print_final_stats=1 "$scratch/$target" "${seeds[@]}")
done

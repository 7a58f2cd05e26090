#!/usr/bin/env bash
# The test suite's wall time on an older commit and on HEAD, side by side in one sitting (issue 22: at most
# 0.55x the time of the commit before the issue). Each commit is cloned, installed (not timed), then
# `make test` is timed on the first, then on the second, with nothing else running. Prints both and the ratio.
#
#   bash bench/suite_time.sh 9ea4198          # the base commit; HEAD is the other
#
# Measured on 2026-12-01 (2 cores, quiet machine): bench/RESULTS.md, "Test suite time" (1,273 s against 624 s, 0.49x).
set -euo pipefail
base=${1:?usage: bash bench/suite_time.sh BASE_COMMIT}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
for name in base head; do
  git clone -q "$repo" "$work/$name"
done
git -C "$work/base" checkout -q "$base"
for name in base head; do
  make -C "$work/$name" install >/dev/null
done
declare -A took
for name in base head; do
  start=$(date +%s)
  make -C "$work/$name" test ARGS="-p no:cacheprovider" >"$work/$name.log" 2>&1 || { tail -20 "$work/$name.log"; exit 1; }
  took[$name]=$(( $(date +%s) - start ))
  echo "$name ($(git -C "$work/$name" log --oneline -1 | cut -c1-60)): ${took[$name]} s, $(grep -E "passed|failed" "$work/$name.log" | tail -1)"
done
python3 -c "print(f'head / base = {${took[head]} / ${took[base]}:.2f}')"
echo "logs in $work"

#!/usr/bin/env bash
# The test suite's wall time on older commits and on HEAD, side by side in one sitting (issue 22: at most 0.55x the
# time of the commit before the issue; issues 28 and 31: at most 1.10x and 1.05x). Each commit is cloned and
# installed (not timed), then `make test` is timed on each base in turn, then on HEAD, with nothing else running.
# Prints each time and HEAD's ratio to each base.
#
#   bash bench/suite_time.sh 9ea4198              # one base commit; HEAD is the other
#   bash bench/suite_time.sh e4daa0a 218b539      # several bases, one sitting
#   ROUNDS=2 bash bench/suite_time.sh e4daa0a      # base, head, head, base: drift over the sitting cancels
#
# Measured on 2026-12-01 (2 cores, quiet machine): bench/RESULTS.md, "Test suite time" (1,273 s against 624 s, 0.49x).
set -euo pipefail
(( $# )) || { echo "usage: bash bench/suite_time.sh BASE_COMMIT [BASE_COMMIT ...]"; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
names=()
for i in $(seq 1 $#); do names+=("base$i"); done
names+=(head)
# each clone with its .venv is about 7 GB: only the logs outlive the sitting (a disk filled by old sittings once failed
# CI's install)
trap 'for name in "${names[@]}"; do rm -rf "${work:?}/$name"; done' EXIT
for name in "${names[@]}"; do
  git clone -q "$repo" "$work/$name"
done
i=0
for commit in "$@"; do
  i=$((i + 1))
  git -C "$work/base$i" checkout -q "$commit"
done
for name in "${names[@]}"; do
  make -C "$work/$name" install >/dev/null
done
# ROUNDS=2: a second round in the reverse order (bases, head, head, bases), so that a machine that slows down or
# speeds up over the sitting weighs on both sides alike; each side's time is then its mean over the rounds
rounds=${ROUNDS:-1}
case $rounds in 1|2) ;; *) echo "ROUNDS is 1 or 2"; exit 2;; esac
order=("${names[@]}")
if (( rounds == 2 )); then
  order+=(head)
  for ((j = $#; j >= 1; j--)); do order+=("base$j"); done
fi
declare -A took failed
for name in "${names[@]}"; do took[$name]=0; failed[$name]=0; done
n=0
for name in "${order[@]}"; do
  n=$((n + 1))
  start=$(date +%s)
  # a failed suite is timed and said, not a reason to stop: an old commit's flaky test must not cost the sitting
  make -C "$work/$name" test ARGS="-p no:cacheprovider" >"$work/$name.$n.log" 2>&1 || { failed[$name]=1; echo "$name: make test FAILED (see $work/$name.$n.log)"; }
  t=$(( $(date +%s) - start ))
  took[$name]=$(( took[$name] + t ))
  echo "$name ($(git -C "$work/$name" log --oneline -1 | cut -c1-60)): $t s, $(grep -E "passed|failed" "$work/$name.$n.log" | tail -1)"
done
i=0
status=0
for commit in "$@"; do
  i=$((i + 1))
  if (( failed[head] || failed[base$i] )); then  # a failed suite's time says nothing about the suite's speed
    echo "head / $commit = n/a (a suite failed)"; status=1
  else
    python3 -c "print(f'head / $commit = {${took[head]} / ${took[base$i]}:.2f} (means over $rounds round(s): {${took[head]} / $rounds:.0f} s and {${took[base$i]} / $rounds:.0f} s)')"
  fi
done
echo "logs in $work"
exit $status

#!/usr/bin/env bash
# Runs the workspace tests and ends with one line saying how many tests skipped and why, instead
# of leaving skips hidden among the "ok"s. Every skip goes through testbed::skip, which appends
# "test: reason" to $RVSWITCH_SKIP_LOG. Arguments go to `cargo test --workspace` (options such as
# --locked or `-- --nocapture`; not -p, which --workspace overrides); cargo's exit status is kept.
# Under CI=true a skip is a failure anyway, so there the line says 0.
set -uo pipefail
cd "$(dirname "$0")/.."
skips=$(mktemp "${TMPDIR:-/tmp}/rvswitch-skips.XXXXXX") || exit 1
trap 'rm -f "$skips"' EXIT
RVSWITCH_SKIP_LOG="$skips" cargo test --workspace "$@"
status=$?
count=$(grep -c . "$skips")
if [ "$count" -eq 0 ]; then
  echo "0 tests skipped"
else
  # Reasons with how many tests each, most common first.
  reasons=$(sed 's/^[^:]*: //' "$skips" | sort | uniq -c | sort -rn | sed 's/^ *\([0-9]*\) /\1× /' | paste -sd ';' | sed 's/;/; /g')
  [ "$count" -eq 1 ] && noun=test || noun=tests
  echo "$count $noun skipped: $reasons"
fi
exit "$status"

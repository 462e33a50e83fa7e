#!/usr/bin/env bash
# The CI smoke version of the performance gate: a `loadgen mock`, the gateway on
# bench/minimal.yaml in front of it, and 3 s of open-loop load at 200 req/s alternating between
# the gateway and the mock directly. Exits 1 if the p99 overhead exceeds 50 ms or any request
# fails: a threshold that only a gross regression breaks. The full runs are in docs/BENCHMARKS.md.
# Usage: bench/smoke-gate.sh [BIN_DIR]   (default target/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Prints the rest of the first line of FILE that starts with PREFIX, waiting up to 20 s.
wait_line() {
  local file=$1 prefix=$2 line
  for _ in $(seq 200); do
    line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      echo "${line#"$prefix"}"
      return 0
    fi
    sleep 0.1
  done
  echo "smoke gate: $file never said '$prefix'; stderr:" >&2
  cat "${file%.out}.err" >&2 || true
  return 1
}

"$bin/loadgen" mock --listen 127.0.0.1:0 >"$work/mock.out" 2>"$work/mock.err" &
pids+=($!)
mock=$(wait_line "$work/mock.out" "loadgen mock listening on ")
TOLLGATE_BENCH_UPSTREAM=$mock TOLLGATE_LOG=warn \
  "$bin/tollgate" serve -c bench/minimal.yaml >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
gateway=$(wait_line "$work/gw.out" "tollgate data plane listening on ")

"$bin/loadgen" run --target "$gateway/v1/chat/completions" --direct "$mock/v1/chat/completions" \
  --key tg-bench-key --rate 200 --duration 3s --max-p99-overhead 50ms --max-errors 0

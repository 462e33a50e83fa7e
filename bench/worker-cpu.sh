#!/usr/bin/env bash
# The gateway's own CPU per request with one and with two tokio workers, alternating runs:
# the full-policy config with its SQLite request log, open loop at 5,000 req/s for 6 s after a
# 2 s warm-up, CPU from /proc/<pid>/stat. Needs release binaries (cargo build --release --bins).
#   bash bench/worker-cpu.sh [RUNS]     (default 5 runs of each)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
runs=${1:-5}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# The address a process printed as "... listening on http://ADDR".
address() { for _ in $(seq 100); do a=$(grep -om1 'listening on http://[0-9.:]*' "$1" | cut -d/ -f3) && [ -n "$a" ] && { echo "$a"; return; }; sleep 0.1; done; echo "no address in $1" >&2; exit 1; }
"$bin/loadgen" mock --listen 127.0.0.1:0 --latency 0ms >"$work/mock.log" 2>&1 &
pids+=($!)
mock=$(address "$work/mock.log")
"$bin/gen-config" --out "$work/full.yaml" --keys-out "$work/keys.txt" --keys 1000 --teams 50 \
  --customers 10 --policy full --logs sqlite --upstream "http://$mock/v1" >/dev/null
hz=$(getconf CLK_TCK)
n=0
one_run() {
  n=$((n + 1))
  local log="$work/gw-$n.log"  # a new file per run: the address is read from it
  TOKIO_WORKER_THREADS=$1 "$bin/tollgate" serve -c "$work/full.yaml" >"$log" 2>&1 &
  local gw=$!
  pids+=($gw)
  local target="http://$(address "$log")/v1/chat/completions"
  local load=("$bin/loadgen" run --target "$target" --rate 5000 --connections 64 --keys-file "$work/keys.txt")
  "${load[@]}" --duration 2s >/dev/null
  local t0 t1
  t0=$(awk '{print $14 + $15}' "/proc/$gw/stat")
  "${load[@]}" --duration 6s >"$work/run.txt"
  t1=$(awk '{print $14 + $15}' "/proc/$gw/stat")
  kill "$gw"; wait "$gw" 2>/dev/null || true
  echo "workers $1: $(( (t1 - t0) * 1000000 / hz / 30000 )) µs CPU per request; $(grep -o 'statuses [^,]*' "$work/run.txt")"
}
for _ in $(seq "$runs"); do one_run 2; one_run 1; done

#!/usr/bin/env bash
# What the MCP gateway adds to a tool server's latency: the Python-SDK weather server
# (tests/fixtures/mcp/weather_server.py, stateless streamable HTTP with JSON answers) called
# directly and through `tollgate serve`, interleaved by `loadgen run --direct`, for `tools/list`
# and a trivial `tools/call`. Results go to docs/BENCHMARKS.md.
# Usage: bench/mcp-overhead.sh [BIN_DIR] [PYTHON] [RATE] [DURATION]
#   BIN_DIR  where tollgate and loadgen are (default target/release)
#   PYTHON   a python with the `mcp` package (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release}
python=${2:-python3}
rate=${3:-100}
duration=${4:-20s}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# The key doubles as the upstream credential, since loadgen sends the same header both ways.
key=bench-key
up_port=$(free_port)
"$python" tests/fixtures/mcp/weather_server.py "$up_port" "$key" stateless >"$work/up.out" 2>&1 &
pids+=($!)
wait_port "$up_port"
gw_port=$(free_port)
cat >"$work/gw.yaml" <<YAML
server: {listen: 127.0.0.1:$gw_port, admin_listen: 127.0.0.1:0}
logs: {kind: sqlite, path: '$work/logs.db'}
mcp:
  servers:
    - {name: weather, transport: http, url: "http://127.0.0.1:$up_port/mcp", headers: {Authorization: "Bearer $key"}}
virtual_keys:
  - {id: vk-bench, key: $key}
YAML
TOLLGATE_LOG=warn "$bin/tollgate" serve -c "$work/gw.yaml" >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
wait_port "$gw_port"

echo '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$work/list.json"
echo '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather__forecast","arguments":{"city":"Paris"}}}' >"$work/call-gw.json"
for case in list call; do
  body=$work/$case.json
  direct_body=$body
  if [ "$case" = call ]; then
    body=$work/call-gw.json
    # Directly, the tool has its own name; loadgen sends one body to both sides, so the
    # direct side is measured on a separate run with the server's name.
    echo '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"forecast","arguments":{"city":"Paris"}}}' >"$work/call-direct.json"
    direct_body=$work/call-direct.json
  fi
  echo "== $case"
  if [ "$body" = "$direct_body" ]; then
    "$bin/loadgen" run --target "http://127.0.0.1:$gw_port/mcp" --direct "http://127.0.0.1:$up_port/mcp" \
      --rate "$rate" --duration "$duration" --body "$body" --key "$key" \
      -H 'accept: application/json, text/event-stream' --json "$work/$case.json.out"
  else
    "$bin/loadgen" run --target "http://127.0.0.1:$gw_port/mcp" \
      --rate "$rate" --duration "$duration" --body "$body" --key "$key" \
      -H 'accept: application/json, text/event-stream'
    "$bin/loadgen" run --target "http://127.0.0.1:$up_port/mcp" \
      --rate "$rate" --duration "$duration" --body "$direct_body" --key "$key" \
      -H 'accept: application/json, text/event-stream'
  fi
done

# The gateway's own share of each tool call, from its request log: `overhead_us` is the time
# outside the upstream call (auth, scope, guardrails, limits, JSON), `upstream_us` the call
# through the MCP client to the server and back.
sleep 1.5
"$python" - "$work/logs.db" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT overhead_us, upstream_us FROM requests WHERE endpoint = 'mcp' AND status = 200").fetchall()
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]
over = [r[0] for r in rows]
up = [r[1] for r in rows if r[1] is not None]
print(f"== request log: {len(rows)} tool calls; gateway overhead p50 {pct(over, .5)}µs p99 {pct(over, .99)}µs; "
      f"upstream (MCP client + server) p50 {pct(up, .5)}µs p99 {pct(up, .99)}µs")
PY

#!/usr/bin/env bash
# Runs every check and test of the repository, from a fresh clone, with no input.
set -euo pipefail
cd "$(dirname "$0")/.."

# The SDK tests create a Python virtualenv and pip-install the official clients into it.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3 python3-venv
fi

# The MCP gateway tests run real MCP servers from npm (installed by the tests with
# `npm install --prefix target/debug/../e2e-npm`), so node and npm must be present.
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi

# Tests that need Redis start their own redis-server on a free loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq redis-server
fi

# The PostgreSQL request-log tests start their own server (initdb + postgres from Debian's
# package, under /usr/lib/postgresql/*/bin) in a temporary directory on a free loopback port.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq postgresql
fi

cargo fmt --all --check
cargo build --workspace --bins --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
# The semantic cache, its Qdrant index and the PostgreSQL request log are default features;
# builds without them must stay sound too.
cargo clippy -p tollgate --no-default-features --locked -- -D warnings
cargo clippy -p tollgate --no-default-features --features semantic --locked -- -D warnings
target/debug/tollgate check -c policies/tollgate.yaml
target/debug/tollgate check -c policies/quickstart.yaml
target/debug/tollgate check -c policies/mcp.yaml
target/debug/tollgate test policies/tests
# Performance smoke gate: gateway vs direct for 3 s at 200 req/s; fails on gross regressions.
bash bench/smoke-gate.sh target/debug
# Every stream decoder's fuzz target, 10 s each from its seeds (long runs: docs/FUZZING.md).
bash tests/fuzz_smoke.sh 10
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the last often empty).
awk '/^test result:/ { p += $4; f += $6 } END { printf "workspace: %d passed, %d failed\n", p, f }' "$log"

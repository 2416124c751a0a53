#!/usr/bin/env bash
# demo.sh BUILD_DIR: the main job end to end: make the default demo model with `cllm mkmodel`
# (random weights, the Llama 3 vocabulary when ../shared has it) and generate from it; then the
# same with the small real model from ../shared (TinyStories), whose text is readable.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${CLLM_SHARED_DIR:-$ROOT/../shared}
CLLM=$BUILD/cllm
OUT=$BUILD/demo
mkdir -p "$OUT"

model=$OUT/demo-q8_0.gguf
vocab_args=()
[ -f "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf" ] &&
  vocab_args=(--vocab-from "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf" --chat-template llama3)
if [ ! -f "$model" ]; then
  echo "== making the demo model: cllm mkmodel --shape demo --dtype q8_0" >&2
  "$CLLM" mkmodel --shape demo --dtype q8_0 "${vocab_args[@]}" -o "$model"
fi
echo "== cllm generate on the demo model (random weights: the text is noise, the speed is real)" >&2
"$CLLM" generate -m "$model" -p "The capital of France is" -n 48 --temp 0 --ignore-eos
if [ -f "$SHARED/models/stories260K.gguf" ]; then
  echo "== cllm generate on stories260K (a real 260K-parameter TinyStories model)" >&2
  "$CLLM" generate -m "$SHARED/models/stories260K.gguf" -p "Once upon a time" -n 120 --temp 0
fi

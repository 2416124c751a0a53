#!/usr/bin/env bash
# demo.sh BUILD_DIR: the main job end to end, as the seed does it: make the default demo model
# (`cllm mkmodel --shape demo`, Q8_0, with the Llama 3 vocabulary and chat template when ../shared
# has them), start `cllm serve` with prefix caching off, run the seed's client against it, then the
# same with prefix caching on, and print both averages and their ratio.
# Environment: MAX_TOKENS (default 16: the random-weight model never says EOS, so the seed's
# "no max_tokens" would run to max-model-len), PORT (default 8000), THREADS (default: all cores).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${CLLM_SHARED_DIR:-$ROOT/../shared}
CLLM=$BUILD/cllm
OUT=$BUILD/demo
PORT=${PORT:-8000}
export MAX_TOKENS=${MAX_TOKENS:-16}
mkdir -p "$OUT"

model=$OUT/demo-q8_0.gguf
vocab_args=()
[ -f "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf" ] &&
  vocab_args=(--vocab-from "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf")
if [ ! -f "$model" ]; then
  echo "== making the demo model: cllm mkmodel --shape demo --dtype q8_0" >&2
  "$CLLM" mkmodel --shape demo --dtype q8_0 "${vocab_args[@]}" --chat-template llama3 -o "$model"
fi

pid=""
stop_server() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop_server EXIT

# run_seed LABEL FLAGS...: serve the model with FLAGS, run the seed's client, print its average
run_seed() {
  local label=$1; shift
  local log=$OUT/serve-$label.log
  "$CLLM" serve --model "$model" --port "$PORT" --max-model-len 4096 ${THREADS:+-t "$THREADS"} "$@" 2>"$log" &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q "ready:" "$log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "demo: cllm serve failed to start" >&2; exit 1; }
    sleep 0.2
  done
  grep "ready:" "$log" >&2
  MODEL_PATH=$model BASE_URL=http://127.0.0.1:$PORT bash "$SHARED/seed/send_request.sh" >"$OUT/client-$label.txt"
  stop_server
  grep "Average time" "$OUT/client-$label.txt" | sed -e 's/.*: //' -e 's/ seconds//'
}

echo "== the seed's client, prefix caching off" >&2
off=$(run_seed off --no-enable-prefix-caching)
echo "== the seed's client, prefix caching on" >&2
on=$(run_seed on --enable-prefix-caching)
echo
echo "seed workload (send_request.sh, 10 timed requests, max_tokens $MAX_TOKENS) on $model:"
printf '  average response time, prefix caching off: %.3f s\n' "$off"
printf '  average response time, prefix caching on:  %.3f s\n' "$on"
printf '  ratio off / on: %.2fx\n' "$(echo "$off / $on" | bc -l)"

#!/usr/bin/env bash
# make_corpus.sh [BUILD_DIR]: regenerates the generated seed inputs of tests/fuzz/corpus/ from
# make_corpus.c (linked with BUILD_DIR/libcllm.a, default build/) and `cllm mkmodel` tiny models.
# Only the generated names are rewritten: regression inputs (regress_*) and the coverage set
# (cov_*: inputs of up to 0.5-2 KiB that libFuzzer -merge kept from long local runs) are kept.
# Run it after a change to a format, then commit the corpus; CI only reads it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
corpus=$root/tests/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in fuzz_gguf fuzz_safetensors fuzz_tokenizer fuzz_chat_template fuzz_request fuzz_hf_config; do
  mkdir -p "$corpus/$t"
done

# tiny llama models (the built-in 579-token vocabulary): f32 untied, q8_0 and q4_0 tied
mk() { "$build/cllm" mkmodel --shape tiny --n-layer 1 --n-head 2 --n-head-kv 1 --seed 7 "$@" >/dev/null 2>&1; }
mk --n-embd 8 --n-ff 16 --untied -o "$corpus/fuzz_gguf/model_llama_f32.gguf"
mk --n-embd 32 --n-ff 32 --dtype q8_0 -o "$corpus/fuzz_gguf/model_llama_q8_0.gguf"
mk --n-embd 32 --n-ff 32 --dtype q4_0 -o "$corpus/fuzz_gguf/model_llama_q4_0.gguf"

# a Hugging Face checkpoint like the one fuzz_hf_config builds: each file, behind its selector byte
mk --n-embd 8 --n-ff 16 --untied --format hf --shards 2 --chat-template llama3 \
  --gen-defaults temperature=0.6,top_p=0.9,top_k=40 -o "$tmp/hf"
i=0
for f in config.json tokenizer.json tokenizer_config.json generation_config.json model.safetensors.index.json; do
  { printf "\\$(printf %03o $i)"; cat "$tmp/hf/$f"; } >"$corpus/fuzz_hf_config/$f"
  i=$((i + 1))
done

cc=${CC:-cc}
# shellcheck disable=SC2046
$cc -std=c11 -O1 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$root/include" -I"$root/src" "$root/tests/fuzz/make_corpus.c" \
  "$build/libcllm.a" $(pkg-config --libs jansson libxxhash libmicrohttpd libcurl) -lpthread -lm -o "$tmp/make_corpus"
"$tmp/make_corpus" "$corpus" "$corpus/fuzz_gguf/model_llama_f32.gguf"
du -sh "$corpus"
find "$corpus" -type f -size +64k -printf 'make_corpus: %p is over 64 KiB\n'

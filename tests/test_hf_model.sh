#!/usr/bin/env bash
# test_hf_model.sh: Hugging Face checkpoint directories end to end: `cllm mkmodel --format hf`
# with the same seed as a GGUF gives the same greedy text from `cllm generate -m DIR` (f32 and
# bf16, Llama 3 vocabulary, also -m DIR/config.json); broken checkpoints (a missing field, a bad
# architecture, a mis-shaped or missing tensor, bad JSON) exit non-zero with one line naming the
# problem; q8_0 as hf is refused; and the seed's client (send_request.sh with MODEL_PATH=DIR)
# against `cllm serve --model DIR`.
# Args: path of the cllm binary, the shared data directory. Needs curl, jq, bc (setup.sh).
. "$(dirname "$0")/lib.sh" test-hf-model "$@"
need curl jq bc

# ---- the same model as GGUF and as a checkpoint ----
for dt in f32 bf16; do
  for fmt in gguf hf; do
    out=$WORK/tiny-$dt.$fmt
    "$CLLM" mkmodel --shape tiny --seed 5 --dtype "$dt" --vocab-from "$VOCAB" --chat-template llama3 --format "$fmt" \
      -o "$out" 2>"$WORK/mk.err" || { cat "$WORK/mk.err"; bad "mkmodel --format $fmt --dtype $dt"; }
  done
  [ -f "$WORK/tiny-$dt.hf/config.json" ] && [ -f "$WORK/tiny-$dt.hf/model.safetensors" ] &&
    [ -f "$WORK/tiny-$dt.hf/generation_config.json" ] && ok "$dt checkpoint: config.json, generation_config.json, model.safetensors" ||
    bad "$dt checkpoint files: $(ls "$WORK/tiny-$dt.hf")"
  gen() { "$CLLM" generate -m "$1" -p "Once upon a time, in a land far away," -n 24 --temp 0 -t 2 2>"$WORK/gen.err"; }
  want=$(gen "$WORK/tiny-$dt.gguf") || bad "generate -m FILE ($dt): $(tail -1 "$WORK/gen.err")"
  got=$(gen "$WORK/tiny-$dt.hf") || bad "generate -m DIR ($dt): $(tail -1 "$WORK/gen.err")"
  if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "$dt: greedy text of -m DIR == -m FILE: '$got'"; else
    bad "$dt: greedy text differs: DIR '$got' vs FILE '$want'"; fi
  got=$(gen "$WORK/tiny-$dt.hf/config.json")
  [ "$got" = "$want" ] && ok "$dt: -m DIR/config.json too" || bad "$dt: -m DIR/config.json: '$got'"
done
# `cllm tokenize` reads the checkpoint's tokenizer files: the same ids as the GGUF's metadata.
text="Hello world, it's 2026! <|eot_id|>"
want=$("$CLLM" tokenize -m "$WORK/tiny-f32.gguf" --ids --parse-special "$text" 2>&1)
got=$("$CLLM" tokenize -m "$WORK/tiny-f32.hf" --ids --parse-special "$text" 2>&1)
[ -n "$want" ] && [ "$got" = "$want" ] && ok "tokenize -m DIR == -m FILE: $got" || bad "tokenize: DIR '$got' vs FILE '$want'"
grep -q "rotate_half" "$WORK/gen.err" && ok "the Q/K permutation is logged" || bad "no Q/K permutation log line"

# ---- broken checkpoints: one line naming the problem, non-zero exit, no crash ----
SRC=$WORK/tiny-f32.hf
# broken NAME: a copy of the f32 checkpoint: config.json copied, the other files linked (replace a
# link with rm first: writing through it would change the original)
broken() {
  local d=$WORK/$1 f
  rm -rf "$d"; mkdir "$d"
  for f in "$SRC"/*; do ln -s "$f" "$d/$(basename "$f")"; done
  rm "$d/config.json"; cp "$SRC/config.json" "$d/config.json"
  echo "$d"
}
expect_fail() {
  local what=$1 dir=$2 word=$3 out rc
  out=$("$CLLM" generate -m "$dir" -p hi -n 2 -t 1 2>"$WORK/err.txt"); rc=$?
  local line
  line=$(grep -v '^cllm info' "$WORK/err.txt" | grep -v '^cllm warn')
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ -z "$out" ] && [ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] &&
      printf '%s' "$line" | grep -qF -- "$word"; then
    ok "$what: $line"
  else
    bad "$what: rc=$rc stdout='$out' stderr='$(cat "$WORK/err.txt")' (want '$word')"
  fi
}
d=$(broken no-field); jq 'del(.num_attention_heads)' "$SRC/config.json" >"$d/config.json"
expect_fail "missing field" "$d" "'num_attention_heads' is missing"
d=$(broken bad-arch); jq '.architectures = ["FalconForCausalLM"]' "$SRC/config.json" >"$d/config.json"
expect_fail "bad architecture" "$d" "architecture 'FalconForCausalLM' is not supported"
d=$(broken bad-shape); jq '.hidden_size = 96' "$SRC/config.json" >"$d/config.json"
expect_fail "wrong shape tensor" "$d" "tensor 'model.embed_tokens.weight' has shape [128256, 64], expected [128256, 96]"
d=$(broken untied); jq '.tie_word_embeddings = false' "$SRC/config.json" >"$d/config.json"
expect_fail "missing tensor" "$d" "tensor 'lm_head.weight' is missing"
d=$(broken bad-json); printf '{"architectures": ["LlamaForCausalLM"],' >"$d/config.json"
expect_fail "malformed JSON" "$d" "config.json"
d=$(broken no-weights); rm "$d/model.safetensors"
expect_fail "no safetensors" "$d" "model.safetensors"
d=$(broken cut); rm "$d/model.safetensors"; head -c 100000 "$SRC/model.safetensors" >"$d/model.safetensors"
expect_fail "truncated safetensors" "$d" "model.safetensors"

out=$("$CLLM" mkmodel --shape tiny --format hf --dtype q8_0 -o "$WORK/q8" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "safetensors has no q8_0" && ok "q8_0 as hf refused: $out" || bad "q8_0 as hf: rc $rc: $out"
out=$("$CLLM" mkmodel --shape tiny --gen-defaults temperature=0.5 -o "$WORK/x.gguf" 2>&1); rc=$?
[ $rc -eq 2 ] && ok "--gen-defaults without --format hf refused" || bad "--gen-defaults on gguf: rc $rc: $out"

# ---- the seed's client against `cllm serve --model DIR` ----
MODEL=$SRC
start_server "$WORK/serve.log" --model "$MODEL" -t 2 --max-model-len 2048 --num-blocks 400
for _ in $(seq 1 50); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && break; sleep 0.1; done
[ "$(curl -s "$BASE/v1/models" | jq -r '.data[0].id')" = "$MODEL" ] && ok "/v1/models names the directory" ||
  bad "/v1/models: $(curl -s "$BASE/v1/models")"
MODEL_PATH=$MODEL BASE_URL=$BASE MAX_TOKENS=8 timeout 120 bash "$SHARED/seed/send_request.sh" >"$WORK/seed.out" 2>&1
nresp=$(grep -c '^Response: ' "$WORK/seed.out")
nnull=$(grep -c '^Response: null$' "$WORK/seed.out")
if [ "$nresp" -eq 11 ] && [ "$nnull" -eq 0 ] && grep -q "^Average time across 10 requests: [0-9]*\.[0-9]* seconds" "$WORK/seed.out"; then
  ok "send_request.sh with MODEL_PATH=DIR: 11 responses, $(grep '^Average' "$WORK/seed.out")"
else
  bad "send_request.sh: $nresp responses, $nnull null"; tail -5 "$WORK/seed.out"; tail -5 "$WORK/serve.log"
fi
kill -INT "$SPID"
for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
wait "$SPID"; rc=$?
[ $rc -eq 0 ] && ok "serve exits 0 on SIGINT" || bad "serve exit $rc"

finish

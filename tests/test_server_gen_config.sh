#!/usr/bin/env bash
# test_server_gen_config.sh: the model's sampling defaults in `cllm serve` (issue 8), as vLLM's
# --generation-config: with auto (the default) the generation_config.json of a Hugging Face
# checkpoint fills the sampling fields a request leaves out, and the server says so at start;
# fields a request gives win; with vllm the checkpoint's defaults are ignored.
# Args: path of the cllm binary, the shared data directory. Needs curl and jq.
. "$(dirname "$0")/lib.sh" test-server-gen-config "$@"
need curl jq

# temperature 0 as the checkpoint's default: a request without temperature is then greedy
HF=$WORK/tiny.hf
"$CLLM" mkmodel --shape tiny --format hf --vocab-from "$VOCAB" --gen-defaults "temperature=0,top_p=0.9,top_k=40" \
  -o "$HF" 2>"$WORK/mkmodel.err" || { cat "$WORK/mkmodel.err"; echo "FAIL: mkmodel --format hf"; exit 1; }

# text BODY: the completion's text
text() { curl -s -m 60 "$BASE/v1/completions" -d "$1" | jq -r '.choices[0].text // "error"'; }
P='"prompt":"Once upon a time","max_tokens":12'

start_server "$WORK/auto.log" "$HF" -t 2 --max-model-len 256 --num-blocks 64
grep -q "generation config auto" "$WORK/auto.log" && ok "--generation-config auto is the default" ||
  bad "config line: $(grep 'config:' "$WORK/auto.log")"
grep -q "default sampling parameters have been overridden by the model's Hugging Face generation config.*(temperature=0, top_p=0.9, top_k=40).*--generation-config vllm" \
  "$WORK/auto.log" && ok "the checkpoint's defaults are logged at start" ||
  bad "no defaults log line: $(grep -i 'sampling' "$WORK/auto.log")"
greedy=$(text "{$P,\"temperature\":0}")
omitted=$(text "{$P,\"seed\":7}")
nulled=$(text "{$P,\"seed\":7,\"temperature\":null}")
given=$(text "{$P,\"seed\":7,\"temperature\":1.0,\"top_p\":1.0,\"top_k\":-1}")
[ "$greedy" != error ] && [ "$omitted" = "$greedy" ] && [ "$nulled" = "$greedy" ] &&
  ok "auto: temperature left out (or null) takes the checkpoint's 0: greedy text" ||
  bad "auto: omitted '$omitted', null '$nulled', greedy '$greedy'"
[ "$given" != error ] && [ "$given" != "$greedy" ] && ok "auto: a request's own temperature 1 wins (sampled text differs)" ||
  bad "auto: temperature 1 gave '$given' (greedy '$greedy')"
kill -TERM "$SPID"; wait "$SPID"

start_server "$WORK/vllm.log" "$HF" -t 2 --max-model-len 256 --num-blocks 64 --generation-config vllm
grep -q "generation config vllm" "$WORK/vllm.log" && ! grep -q "default sampling parameters" "$WORK/vllm.log" &&
  ok "--generation-config vllm: no defaults taken, none logged" || bad "vllm: $(grep -i 'sampling\|config:' "$WORK/vllm.log")"
omitted_v=$(text "{$P,\"seed\":7}")
[ "$omitted_v" != error ] && [ "$omitted_v" = "$given" ] && [ "$omitted_v" != "$greedy" ] &&
  ok "vllm: temperature left out is vLLM's 1 (the same text as an explicit 1 with the seed)" ||
  bad "vllm: omitted '$omitted_v', explicit 1 '$given', greedy '$greedy'"
kill -TERM "$SPID"; wait "$SPID"

finish

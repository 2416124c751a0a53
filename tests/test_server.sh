#!/usr/bin/env bash
# test_server.sh: `cllm serve` end to end on a tiny random Llama-3-vocabulary model:
# the tutorial's client (seed/send_request.sh), every error status, chat and completions
# streaming and not (curl + jq), client disconnects freeing their KV blocks, 50 concurrent
# requests matching their solo greedy text, /metrics, /tokenize, the API key, graceful
# shutdown, and the official `openai` npm client.
# Args: path of the cllm binary, the shared data directory. Needs curl, jq, bc (setup.sh).
. "$(dirname "$0")/lib.sh" test-server "$@"
need curl jq bc

MODEL=$WORK/tiny.gguf
NAME=tiny-llama3
"$CLLM" mkmodel --shape tiny --vocab-from "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf" \
  --chat-template llama3 -o "$MODEL" 2>"$WORK/mkmodel.err" || { cat "$WORK/mkmodel.err"; echo "FAIL: mkmodel"; exit 1; }

start_server "$WORK/serve.log" "$MODEL" --served-model-name "$NAME" -t 2 --max-model-len 2048 --num-blocks 400 \
  --block-size 16
MAIN_PID=$SPID
BASE=http://127.0.0.1:$PORT
grep -q "cllm: ready: serving $NAME on http://127.0.0.1:$PORT" "$WORK/serve.log" && ok "ready line" ||
  bad "no ready line: $(tail -3 "$WORK/serve.log")"
grep -q "KV cache: 400 blocks of 16 tokens" "$WORK/serve.log" && ok "start-up prints the KV blocks" ||
  bad "no KV block line in the start-up log"

# ---- simple endpoints ----
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && ok "/health 200" || bad "/health"
[ "$(curl -s "$BASE/v1/models" | jq -r '.data[0].id + " " + .object + " " + (.data[0].max_model_len|tostring)')" = \
  "$NAME list 2048" ] && ok "/v1/models" || bad "/v1/models: $(curl -s "$BASE/v1/models")"
curl -s "$BASE/version" | jq -e '.version | type == "string"' >/dev/null && ok "/version" || bad "/version"
tk=$(curl -s "$BASE/tokenize" -d "{\"model\":\"$NAME\",\"prompt\":\"Hello world\"}")
[ "$(echo "$tk" | jq -c '[.tokens, .count, .max_model_len]')" = '[[128000,9906,1917],3,2048]' ] &&
  ok "/tokenize" || bad "/tokenize: $tk"
[ "$(curl -s "$BASE/detokenize" -d '{"tokens":[128000,9906,1917]}' | jq -r .prompt)" = "<|begin_of_text|>Hello world" ] &&
  ok "/detokenize" || bad "/detokenize"

# ---- the tutorial's client ----
MODEL_PATH=$NAME BASE_URL=$BASE MAX_TOKENS=16 timeout 120 bash "$SHARED/seed/send_request.sh" >"$WORK/seed.out" 2>&1
nresp=$(grep -c '^Response: ' "$WORK/seed.out")
nnull=$(grep -c '^Response: null$' "$WORK/seed.out")
if [ "$nresp" -eq 11 ] && [ "$nnull" -eq 0 ] && grep -q "^Average time across 10 requests: [0-9]*\.[0-9]* seconds" "$WORK/seed.out"; then
  ok "send_request.sh: 11 responses, $(grep '^Average' "$WORK/seed.out")"
else
  bad "send_request.sh: $nresp responses, $nnull null"; tail -5 "$WORK/seed.out"
fi
hits=$(metric cllm:prefix_cache_hits_total)
[ "${hits:-0}" -gt 10000 ] && ok "prefix cache hits after the tutorial's requests: $hits tokens" ||
  bad "prefix_cache_hits_total is ${hits:-missing}"

# ---- errors: status code and OpenAI error body ----
# expect_error STATUS WHAT CURL_ARGS...: the body must be {"error": {message, type, param, code: STATUS}}
expect_error() {
  local want=$1 what=$2; shift 2
  local code
  code=$(curl -s -m 30 -o "$WORK/err.json" -w '%{http_code}' "$@")
  if [ "$code" = "$want" ] && jq -e --argjson c "$want" \
      '.error | (.message|type=="string") and (.type|type=="string") and has("param") and .code == $c' \
      "$WORK/err.json" >/dev/null 2>&1; then
    ok "$what -> $want: $(jq -r .error.message "$WORK/err.json")"
  else
    bad "$what: got $code, want $want: $(head -c 300 "$WORK/err.json")"
  fi
}
CHAT=$BASE/v1/chat/completions
MSG='"messages":[{"role":"user","content":"hi"}]'
expect_error 400 "malformed JSON" "$CHAT" -d '{"messages": ['
expect_error 400 "missing messages" "$CHAT" -d "{\"model\":\"$NAME\"}"
expect_error 400 "mistyped field" "$CHAT" -d "{$MSG,\"temperature\":\"warm\"}"
expect_error 400 "out-of-range top_p" "$CHAT" -d "{$MSG,\"top_p\":2}"
expect_error 400 "out-of-range max_tokens" "$CHAT" -d "{$MSG,\"max_tokens\":0}"
expect_error 400 "n > 1" "$CHAT" -d "{$MSG,\"n\":2}"
grep -q "n > 1 is not supported yet" "$WORK/err.json" && ok "n > 1 message" || bad "n > 1 message"
expect_error 404 "unknown model" "$CHAT" -d "{\"model\":\"gpt-4\",$MSG}"
expect_error 400 "prompt + max_tokens over max-model-len" "$CHAT" -d "{$MSG,\"max_tokens\":5000}"
jq -r .error.message "$WORK/err.json" | grep -q "2048.*5000" && ok "length error names the numbers" ||
  bad "length error lacks the numbers: $(cat "$WORK/err.json")"
expect_error 400 "prompt over max-model-len" "$BASE/v1/completions" \
  -d "{\"prompt\":[$(seq -s, 1 2100)],\"max_tokens\":1}"
expect_error 400 "two prompts" "$BASE/v1/completions" -d '{"prompt":["a","b"]}'
expect_error 400 "non-text content part" "$CHAT" -d '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}'
expect_error 404 "unknown path" "$BASE/v1/embeddings" -d '{}'
expect_error 405 "wrong method" "$CHAT"
expect_error 405 "wrong method on /health" -X POST "$BASE/health"
head -c 17000000 /dev/zero | tr '\0' ' ' >"$WORK/big.json"
expect_error 413 "body over 16 MiB" "$CHAT" --data-binary @"$WORK/big.json"
curl -s -o /dev/null -w '%{http_code}' "$CHAT" -d "{$MSG,\"max_tokens\":2}" | grep -q 200 &&
  ok "the server still answers after the errors" || bad "the server does not answer after the errors"

# ---- chat and completions, streaming and not ----
body='{"model":"'$NAME'","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Write a poem."}],"max_tokens":12,"temperature":0}'
r=$(curl -s "$CHAT" -d "$body")
if echo "$r" | jq -e --arg n "$NAME" '(.id|test("^chatcmpl-[0-9a-f]{32}$")) and .object=="chat.completion" and
    (.created|type=="number") and .model==$n and .choices[0].message.role=="assistant" and
    .choices[0].finish_reason=="length" and .usage.completion_tokens==12 and
    .usage.total_tokens==.usage.prompt_tokens+12 and (.usage.prompt_tokens_details.cached_tokens|type=="number")' >/dev/null; then
  ok "chat completion (non-streaming)"
else
  bad "chat completion: $r"
fi
text=$(echo "$r" | jq -r '.choices[0].message.content')
ntok=$(curl -s "$BASE/tokenize" -d '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Write a poem."}]}' | jq .count)
[ "$ntok" = "$(echo "$r" | jq .usage.prompt_tokens)" ] && ok "chat prompt tokens = /tokenize messages count ($ntok, one BOS)" ||
  bad "chat prompt_tokens $(echo "$r" | jq .usage.prompt_tokens) != tokenize $ntok"
sbody=$(echo "$body" | jq -c '. + {stream: true, stream_options: {include_usage: true}}')
curl -sN "$CHAT" -d "$sbody" >"$WORK/chat.sse"
grep -v '^$' "$WORK/chat.sse" | tail -1 | grep -qx 'data: \[DONE\]' && ok "chat stream ends with [DONE]" || bad "chat stream end"
sed -n 's/^data: //p' "$WORK/chat.sse" | grep -v '^\[DONE\]$' >"$WORK/chat.jsonl"
[ "$(head -1 "$WORK/chat.jsonl" | jq -r '.choices[0].delta.role')" = assistant ] && ok "first delta has role assistant" ||
  bad "first chunk: $(head -1 "$WORK/chat.jsonl")"
stext=$(jq -j '.choices[0].delta.content // ""' "$WORK/chat.jsonl")
[ "$stext" = "$text" ] && ok "streamed chat text equals non-streamed at temperature 0" ||
  bad "streamed chat '$stext' != '$text'"
last=$(tail -1 "$WORK/chat.jsonl")
echo "$last" | jq -e '(.choices|length)==0 and .usage.completion_tokens==12' >/dev/null && ok "include_usage chunk" ||
  bad "usage chunk: $last"
[ "$(jq -r 'select(.choices|length>0) | .choices[0].finish_reason // empty' "$WORK/chat.jsonl")" = length ] &&
  ok "stream finish_reason" || bad "stream finish_reason"
[ "$(jq -r .id "$WORK/chat.jsonl" | sort -u | wc -l)" = 1 ] && ok "one id per stream" || bad "ids differ in a stream"

cbody='{"prompt":"Once upon a time","max_tokens":16,"temperature":0}'
r=$(curl -s "$BASE/v1/completions" -d "$cbody")
ctext=$(echo "$r" | jq -r '.choices[0].text')
echo "$r" | jq -e '(.id|test("^cmpl-")) and .object=="text_completion" and .usage.completion_tokens==16' >/dev/null &&
  ok "completion (non-streaming)" || bad "completion: $r"
cs=$(curl -sN "$BASE/v1/completions" -d "$(echo "$cbody" | jq -c '. + {stream: true}')" | sed -n 's/^data: //p' |
  grep -v '^\[DONE\]$' | jq -j '.choices[0].text')
[ "$cs" = "$ctext" ] && ok "streamed completion equals non-streamed" || bad "streamed completion '$cs' != '$ctext'"
r=$(curl -s "$BASE/v1/completions" -d '{"prompt":[128000,12805,5304,264,892],"max_tokens":16,"temperature":0}')
[ "$(echo "$r" | jq -r '.choices[0].text')" = "$ctext" ] && ok "token-id prompt gives the same text" ||
  bad "token prompt: $r"
r=$(curl -s "$BASE/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":16,"temperature":0,"echo":true}')
[ "$(echo "$r" | jq -r '.choices[0].text')" = "Once upon a time$ctext" ] && ok "echo" || bad "echo: $r"
# a stop string cut from the greedy text
stop=$(printf '%s' "$ctext" | cut -c6-9)
r=$(curl -s "$BASE/v1/completions" -d "$(jq -nc --arg s "$stop" '{prompt:"Once upon a time",max_tokens:16,temperature:0,stop:[$s]}')")
want=${ctext%%"$stop"*}
if [ -n "$stop" ] && echo "$r" | jq -e --arg w "$want" --arg s "$stop" \
    '.choices[0].text==$w and .choices[0].finish_reason=="stop" and .choices[0].stop_reason==$s' >/dev/null; then
  ok "stop string '$stop' ends the text with finish_reason stop"
else
  bad "stop '$stop': want '$want', got $r"
fi
sb='{"prompt":"Once upon a time","max_tokens":16,"temperature":1.0,"top_p":0.9,"seed":1234}'
s1=$(curl -s "$BASE/v1/completions" -d "$sb" | jq -r '.choices[0].text')
s2=$(curl -sN "$BASE/v1/completions" -d "$(echo "$sb" | jq -c '. + {stream: true}')" | sed -n 's/^data: //p' |
  grep -v '^\[DONE\]$' | jq -j '.choices[0].text')
[ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s1" != "$ctext" ] && ok "seeded sampling: the same text streamed or not" ||
  bad "seeded sampling: '$s1' vs '$s2'"
r=$(curl -s "$BASE/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":4,"temperature":0,"logprobs":2}')
echo "$r" | jq -e '.choices[0].logprobs | (.tokens|length)==4 and (.token_logprobs|length)==4 and
  (.top_logprobs[0]|length)>=2 and .text_offset[0]==0' >/dev/null && ok "completion logprobs" || bad "logprobs: $r"
r=$(curl -s "$CHAT" -d "{$MSG,\"max_tokens\":3,\"logprobs\":true,\"top_logprobs\":2}")
echo "$r" | jq -e '.choices[0].logprobs.content | length==3 and (.[0].top_logprobs|length)==2 and (.[0].bytes|type=="array")' \
  >/dev/null && ok "chat logprobs" || bad "chat logprobs: $r"

# ---- disconnects free their blocks ----
# wait_idle: running 0 and KV usage 0 within 10 s
wait_idle() {
  for _ in $(seq 1 100); do
    [ "$(metric cllm:num_requests_running)" = 0 ] && [ "$(metric cllm:kv_cache_usage_perc)" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
aborts0=$(curl -s "$BASE/metrics" | grep 'request_success_total{finished_reason="abort"' | awk '{print $NF}')
curl -sN "$BASE/v1/completions" -d '{"prompt":"Tell me everything","ignore_eos":true,"stream":true}' >"$WORK/cut.sse" &
CPID=$!
for _ in $(seq 1 100); do [ "$(grep -c '^data: ' "$WORK/cut.sse")" -ge 3 ] && break; sleep 0.05; done
[ "$(metric cllm:num_requests_running)" = 1 ] && ok "a long stream is running" || bad "the long stream is not running"
kill "$CPID"; wait "$CPID" 2>/dev/null
wait_idle && ok "client gone mid-stream: no request running, KV usage 0" ||
  bad "after a mid-stream disconnect: running $(metric cllm:num_requests_running), usage $(metric cllm:kv_cache_usage_perc)"
curl -s "$BASE/v1/completions" -d '{"prompt":"Tell me everything again","ignore_eos":true}' >/dev/null &
CPID=$!
for _ in $(seq 1 50); do [ "$(metric cllm:num_requests_running)" = 1 ] && break; sleep 0.05; done
sleep 0.3
kill "$CPID"; wait "$CPID" 2>/dev/null
wait_idle && ok "client gone mid-request (non-streaming): no request running, KV usage 0" ||
  bad "after a non-streaming disconnect: running $(metric cllm:num_requests_running), usage $(metric cllm:kv_cache_usage_perc)"
aborts1=$(curl -s "$BASE/metrics" | grep 'request_success_total{finished_reason="abort"' | awk '{print $NF}')
[ "$((aborts1 - aborts0))" -eq 2 ] && ok "both counted as aborted" || bad "aborts went from $aborts0 to $aborts1"
grep -q "client disconnected, request cancelled" "$WORK/serve.log" && ok "disconnect logged" || bad "no disconnect log line"

# ---- 50 concurrent requests give their solo greedy text ----
mkdir -p "$WORK/solo" "$WORK/conc"
req50() {
  if [ $(($1 % 2)) -eq 0 ]; then
    curl -s -m 60 "$BASE/v1/completions" -d "{\"prompt\":\"Request $1: the answer is\",\"max_tokens\":16,\"temperature\":0}" |
      jq -r '.choices[0].text'
  else
    curl -s -m 60 "$CHAT" -d "{\"messages\":[{\"role\":\"user\",\"content\":\"Question $1?\"}],\"max_tokens\":16,\"temperature\":0}" |
      jq -r '.choices[0].message.content'
  fi
}
for i in $(seq 1 50); do req50 "$i" >"$WORK/solo/$i"; done
t0=$(date +%s.%N)
CPIDS=()
for i in $(seq 1 50); do req50 "$i" >"$WORK/conc/$i" & CPIDS+=($!); done
wait "${CPIDS[@]}"
t1=$(date +%s.%N)
ndiff=0; nnull=0
for i in $(seq 1 50); do
  cmp -s "$WORK/solo/$i" "$WORK/conc/$i" || ndiff=$((ndiff + 1))
  [ "$(cat "$WORK/conc/$i")" = null ] && nnull=$((nnull + 1))
done
[ $ndiff -eq 0 ] && [ $nnull -eq 0 ] && ok "50 concurrent requests complete with their solo text ($(echo "$t1 - $t0" | bc) s)" ||
  bad "50 concurrent: $ndiff differ from solo, $nnull failed"
wait_idle && ok "idle after the burst" || bad "not idle after the burst"

# ---- metrics ----
curl -s "$BASE/metrics" >"$WORK/metrics.txt"
for m in cllm:prefix_cache_queries_total cllm:prefix_cache_hits_total cllm:prompt_tokens_total \
    cllm:generation_tokens_total cllm:num_preemptions_total cllm:num_requests_running cllm:num_requests_waiting \
    cllm:prefix_cache_evictions_total cllm:prefix_cache_blocks \
    cllm:kv_cache_usage_perc cllm:time_to_first_token_seconds_count cllm:inter_token_latency_seconds_count \
    cllm:e2e_request_latency_seconds_count; do
  grep -q "^$m{model_name=\"$NAME\"} " "$WORK/metrics.txt" || bad "metric $m missing"
done
grep -q "^cllm:request_success_total{finished_reason=\"length\",model_name=\"$NAME\"} [1-9]" "$WORK/metrics.txt" &&
  ok "request_success_total" || bad "request_success_total"
grep -q "^cllm:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"$NAME\"} [1-9]" "$WORK/metrics.txt" &&
  [ "$(metric cllm:generation_tokens_total)" -gt 1000 ] && ok "/metrics counters and histograms" ||
  bad "/metrics: $(grep -v '^#' "$WORK/metrics.txt" | head -20)"

# ---- the official openai npm client ----
if command -v npm >/dev/null && command -v node >/dev/null; then
  NPMDIR=$BUILD/npm-openai
  if [ ! -f "$NPMDIR/node_modules/openai/package.json" ]; then
    mkdir -p "$NPMDIR"
    timeout 300 npm install --prefix "$NPMDIR" --no-audit --no-fund --loglevel=error openai@6 >"$WORK/npm.log" 2>&1 ||
      { bad "npm install openai@6 failed: $(tail -3 "$WORK/npm.log")"; }
  fi
  if [ -f "$NPMDIR/node_modules/openai/package.json" ]; then
    timeout 120 node "$HERE/server/openai_client.mjs" "$BASE" "$NAME" "$NPMDIR" >"$WORK/node.out" 2>&1
    rc=$?
    cat "$WORK/node.out"
    [ $rc -eq 0 ] && ok "openai npm client ($(jq -r .version "$NPMDIR/node_modules/openai/package.json"))" ||
      bad "openai npm client exited $rc"
  fi
else
  echo "SKIP: npm/node not installed: the openai npm client test did not run"
fi

# ---- SIGINT: exit 0 ----
kill -INT "$MAIN_PID"
for _ in $(seq 1 100); do kill -0 "$MAIN_PID" 2>/dev/null || break; sleep 0.1; done
wait "$MAIN_PID"; rc=$?
[ $rc -eq 0 ] && grep -q "cllm: stopped" "$WORK/serve.log" && ok "SIGINT: clean exit 0" || bad "SIGINT: exit $rc"

# ---- API key, small body limit, graceful shutdown with requests in flight ----
# a model without a chat template, given one with --chat-template NAME
NOTMPL=$WORK/notmpl.gguf
"$CLLM" mkmodel --shape tiny --vocab-from "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf" -o "$NOTMPL" \
  2>"$WORK/mkmodel.err" || { cat "$WORK/mkmodel.err"; echo "FAIL: mkmodel"; exit 1; }
start_server "$WORK/serve2.log" "$NOTMPL" --served-model-name "$NAME" -t 2 --max-model-len 8192 --num-blocks 600 \
  --api-key sekret --max-request-bytes 64K --shutdown-grace 4 --chat-template llama3
B2=$SPID
BASE=http://127.0.0.1:$PORT
expect_error 401 "no API key" "$BASE/v1/models"
expect_error 401 "wrong API key" -H "Authorization: Bearer nope" "$BASE/v1/chat/completions" -d "{$MSG}"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sekret' "$BASE/v1/models")" = 200 ] &&
  ok "right API key -> 200" || bad "right API key"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && ok "/health needs no key" || bad "/health with key"
r=$(curl -s -H 'Authorization: Bearer sekret' "$BASE/v1/chat/completions" -d "{$MSG,\"max_tokens\":4}")
echo "$r" | jq -e '.usage.completion_tokens == 4' >/dev/null && ok "--chat-template llama3 serves chat on a model without one" ||
  bad "--chat-template llama3: $r"
head -c 70000 /dev/zero | tr '\0' ' ' >"$WORK/mid.json"
expect_error 413 "body over --max-request-bytes 64K" -H 'Authorization: Bearer sekret' "$BASE/v1/completions" \
  --data-binary @"$WORK/mid.json"
AUTH=(-H 'Authorization: Bearer sekret')
# in flight at SIGTERM: two requests far longer than the grace period (8000 tokens), and a short
# stream that is already producing and fits in it
curl -s "${AUTH[@]}" -o "$WORK/long.json" -w '%{http_code}' "$BASE/v1/completions" \
  -d '{"prompt":"Hello","ignore_eos":true}' >"$WORK/long.code" &
S2=$!
curl -sN "${AUTH[@]}" "$BASE/v1/chat/completions" -d "{$MSG,\"ignore_eos\":true,\"stream\":true}" >"$WORK/long.sse" &
S3=$!
for _ in $(seq 1 100); do [ "$(grep -c '^data: ' "$WORK/long.sse")" -ge 2 ] && break; sleep 0.05; done
curl -sN "${AUTH[@]}" "$BASE/v1/completions" -d '{"prompt":"Hi","max_tokens":16,"ignore_eos":true,"stream":true}' \
  >"$WORK/short.sse" &
S1=$!
for _ in $(seq 1 500); do grep -q '^data: ' "$WORK/short.sse" && break; sleep 0.01; done
kill -TERM "$B2"
sleep 0.3
expect_error 503 "new request while shutting down" "${AUTH[@]}" "$BASE/v1/completions" -d '{"prompt":"x"}'
for _ in $(seq 1 100); do kill -0 "$B2" 2>/dev/null || break; sleep 0.1; done
wait "$B2"; rc=$?
wait "$S1" "$S2" "$S3"
[ $rc -eq 0 ] && grep -q "SIGTERM: shutting down (3 request(s) in flight" "$WORK/serve2.log" &&
  ok "SIGTERM with 3 requests in flight: exit 0" || bad "SIGTERM: exit $rc: $(tail -4 "$WORK/serve2.log")"
grep -q '"finish_reason":"length"' "$WORK/short.sse" && ! grep -q '"error"' "$WORK/short.sse" &&
  ok "a request that fits in the grace period completes" || bad "short request: $(tail -c 300 "$WORK/short.sse")"
[ "$(cat "$WORK/long.code")" = 503 ] && jq -e '.error.code==503' "$WORK/long.json" >/dev/null &&
  ok "a request past the grace period gets 503" || bad "long request: $(cat "$WORK/long.code") $(head -c 200 "$WORK/long.json")"
grep -q '"code":503' "$WORK/long.sse" && grep -v '^$' "$WORK/long.sse" | tail -1 | grep -qx 'data: \[DONE\]' &&
  ! grep -q '"finish_reason":"abort"' "$WORK/long.sse" && ok "a stream past the grace period ends with an error event" ||
  bad "long stream end: $(tail -c 300 "$WORK/long.sse")"

# ---- no chat template: chat 400, completions fine; --chat-template FILE ----
start_server "$WORK/serve3.log" "$NOTMPL" -t 1 --max-model-len 256 --num-blocks 64
P3=$SPID
BASE=http://127.0.0.1:$PORT
expect_error 400 "chat without any chat template" "$BASE/v1/chat/completions" -d "{$MSG}"
grep -q -- "--chat-template" "$WORK/err.json" && ok "the 400 says how to pass a template" || bad "no hint in $(cat "$WORK/err.json")"
[ "$(curl -s "$BASE/v1/completions" -d '{"prompt":"hi","max_tokens":2}' | jq .usage.completion_tokens)" = 2 ] &&
  ok "completions work without a chat template" || bad "completions without a chat template"
kill -TERM "$P3"; wait "$P3"
printf '%s' '{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}' \
  >"$WORK/tmpl.jinja"
start_server "$WORK/serve4.log" "$NOTMPL" -t 1 --max-model-len 256 --num-blocks 64 --chat-template "$WORK/tmpl.jinja"
P4=$SPID
BASE=http://127.0.0.1:$PORT
ids=$(curl -s "$BASE/tokenize" -d '{"messages":[{"role":"user","content":"hi"}]}' | jq -c .tokens)
[ "$(curl -s "$BASE/detokenize" -d "{\"tokens\":$ids}" | jq -r .prompt)" = "<|begin_of_text|><user>hi<assistant>" ] &&
  [ "$(echo "$ids" | jq '[.[] | select(. == 128000)] | length')" = 1 ] && ok "--chat-template FILE renders, one BOS" ||
  bad "--chat-template FILE: $ids"
kill -TERM "$P4"; wait "$P4"

# ---- command line ----
out=$("$CLLM" serve "$MODEL" --max-num-seq 4 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "did you mean '--max-num-seqs'" && ok "unknown flag hint: $out" ||
  bad "unknown flag: rc $rc: $out"
out=$("$CLLM" serve 2>&1); rc=$?
[ $rc -eq 2 ] && ok "no model: $out" || bad "no model: rc $rc"
out=$("$CLLM" serve "$MODEL" --chat-template no-such-template 2>&1); rc=$?
[ $rc -eq 2 ] && ok "bad --chat-template: $out" || bad "bad --chat-template: rc $rc: $out"
"$CLLM" serve --help | grep -q -- "--num-gpu-blocks-override" && ok "serve --help" || bad "serve --help"

exit $fail

#!/usr/bin/env bash
# test_server_isolation.sh: tenant isolation of `cllm serve` (issue 7 point 4): API keys from
# --api-key and --api-key-file, each tenant's own prefix cache (usage.prompt_tokens_details.
# cached_tokens), cache_salt splitting a tenant but never joining two, 401 on every endpoint but
# /health, and no prompt text in /metrics, in error bodies or in the server log.
# Args: path of the cllm binary, the shared data directory. Needs curl and jq (setup.sh).
. "$(dirname "$0")/lib.sh" test-server-isolation "$@"
need curl jq

MODEL=$WORK/tiny.gguf
"$CLLM" mkmodel --shape tiny --vocab-from "$VOCAB" \
  --chat-template llama3 -o "$MODEL" 2>"$WORK/mkmodel.err" || { cat "$WORK/mkmodel.err"; echo "FAIL: mkmodel"; exit 1; }

# A prompt of a few hundred tokens (many 16-token blocks) carrying a marker that must never be
# echoed anywhere.
MARK=ZQXJ7731SECRETMARK
P="The quarterly report of $MARK says that"
for i in $(seq 1 40); do P="$P item $i was fine,"; done

# cached KEY [SALT]: cached_tokens of a 1-token completion of P sent with KEY (and cache_salt)
cached() {
  local body
  if [ $# -ge 2 ]; then body=$(jq -nc --arg p "$P" --arg s "$2" '{prompt:$p,max_tokens:1,cache_salt:$s}')
  else body=$(jq -nc --arg p "$P" '{prompt:$p,max_tokens:1}'); fi
  curl -s -m 30 -H "Authorization: Bearer $1" "$BASE/v1/completions" -d "$body" |
    jq -r '.usage.prompt_tokens_details.cached_tokens // "error"'
}

# ---- two tenants from a key file (alpha has two keys), one more key on the command line ----
cat >"$WORK/keys.txt" <<'EOF'
# tenant alpha: two keys (rotation)
key-alpha-1 alpha

   key-alpha-2   alpha
key-bravo
EOF
chmod 600 "$WORK/keys.txt"
start_server "$WORK/serve.log" "$MODEL" -t 2 --max-model-len 2048 --num-blocks 400 --block-size 16 \
  --api-key-file "$WORK/keys.txt" --api-key key-charlie
grep -q "api keys 4 (3 tenants)" "$WORK/serve.log" && ok "4 keys of 3 tenants configured" ||
  bad "key count line: $(grep 'config:' "$WORK/serve.log")"

c1=$(cached key-alpha-1); c2=$(cached key-alpha-1)
[ "$c1" = 0 ] && [ "${c2:-0}" != error ] && [ "$c2" -gt 0 ] &&
  ok "tenant alpha: P twice -> cached_tokens $c1 then $c2" || bad "alpha P twice: cached $c1 then $c2"
c3=$(cached key-alpha-2)
[ "$c3" = "$c2" ] && ok "the other key of tenant alpha shares its cache ($c3)" || bad "alpha's second key: cached $c3"
c4=$(cached key-bravo)
[ "$c4" = 0 ] && ok "tenant bravo sends P -> cached_tokens 0" || bad "bravo reused alpha's blocks: cached $c4"
c5=$(cached key-bravo)
[ "${c5:-0}" != error ] && [ "$c5" -gt 0 ] && ok "bravo's second P is cached ($c5)" || bad "bravo second: $c5"
c6=$(cached key-charlie)
[ "$c6" = 0 ] && ok "a --api-key tenant does not share either" || bad "charlie: cached $c6"

# cache_salt under one key: x vs y never share, the same salt does
x1=$(cached key-charlie x); x2=$(cached key-charlie x); y1=$(cached key-charlie y)
[ "$x1" = 0 ] && [ "${x2:-0}" != error ] && [ "$x2" -gt 0 ] && ok "one key, cache_salt x twice -> $x1 then $x2" ||
  bad "salt x twice: $x1 then $x2"
[ "$y1" = 0 ] && ok "one key, cache_salt y after x -> 0" || bad "salt y shared with x: $y1"
# the client's salt cannot join another tenant: alpha with charlie's salt x
ax=$(cached key-alpha-1 x)
[ "$ax" = 0 ] && ok "alpha with charlie's cache_salt x -> 0 (a client salt never joins tenants)" ||
  bad "alpha + salt x: cached $ax"

# ---- 401 on every endpoint but /health ----
# expect_401 WHAT CURL_ARGS...
expect_401() {
  local what=$1; shift
  local code
  code=$(curl -s -m 10 -o "$WORK/err.json" -w '%{http_code}' "$@")
  if [ "$code" = 401 ] && jq -e '.error.code == 401 and .error.type == "AuthenticationError"' "$WORK/err.json" >/dev/null 2>&1; then
    ok "$what -> 401"
  else
    bad "$what: got $code: $(head -c 200 "$WORK/err.json")"
  fi
  grep -q "$MARK" "$WORK/err.json" && bad "$what: the 401 body holds the prompt"
}
CBODY=$(jq -nc --arg p "$P" '{prompt:$p,max_tokens:1}')
for auth in "none" "Bearer wrong-key" "Bearer key-alpha-1x" "Bearer key-alpha" "Basic a2V5LWFscGhhLTE=" "key-alpha-1"; do
  H=()
  [ "$auth" != none ] && H=(-H "Authorization: $auth")
  expect_401 "POST /v1/completions, auth '$auth'" "${H[@]}" "$BASE/v1/completions" -d "$CBODY"
done
H=(-H "Authorization: Bearer wrong-key")
expect_401 "POST /v1/chat/completions" "${H[@]}" "$BASE/v1/chat/completions" -d '{"messages":[{"role":"user","content":"hi"}]}'
expect_401 "GET /v1/models" "${H[@]}" "$BASE/v1/models"
expect_401 "GET /metrics" "${H[@]}" "$BASE/metrics"
expect_401 "GET /version" "${H[@]}" "$BASE/version"
expect_401 "POST /tokenize" "${H[@]}" "$BASE/tokenize" -d "$CBODY"
expect_401 "POST /detokenize" "${H[@]}" "$BASE/detokenize" -d '{"tokens":[1,2]}'
expect_401 "an unknown path (no 404 that tells which paths exist)" "${H[@]}" "$BASE/v1/embeddings" -d '{}'
expect_401 "GET /metrics without a key" "$BASE/metrics"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && ok "/health needs no key" || bad "/health"
for ep in /v1/models /metrics /version; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: bearer key-bravo' "$BASE$ep")" = 200 ] &&
    ok "GET $ep with a key (scheme in any case) -> 200" || bad "GET $ep with a key"
done
[ "$(curl -s -H 'Authorization: Bearer key-charlie' "$BASE/tokenize" -d '{"prompt":"Hello world"}' | jq -c .tokens)" = \
  '[128000,9906,1917]' ] && ok "POST /tokenize with a key" || bad "/tokenize with a key"

# ---- no prompt text in error bodies ----
# no_leak WHAT STATUS CURL_ARGS...: the answer has that status and does not contain the marker
no_leak() {
  local what=$1 want=$2; shift 2
  local code
  code=$(curl -s -m 30 -o "$WORK/err.json" -w '%{http_code}' -H 'Authorization: Bearer key-alpha-1' "$@")
  if [ "$code" != "$want" ]; then bad "$what: got $code, want $want: $(head -c 200 "$WORK/err.json")"
  elif grep -q "$MARK" "$WORK/err.json"; then bad "$what: the error body holds the prompt: $(head -c 300 "$WORK/err.json")"
  else ok "$what -> $want, no prompt text: $(jq -r .error.message "$WORK/err.json" 2>/dev/null | head -c 120)"; fi
}
LONG=$P; for i in 1 2 3 4; do LONG="$LONG $LONG"; done # about 4100 tokens, over 2048
printf '%s' "$LONG" >"$WORK/long.txt"
no_leak "malformed JSON inside the prompt string" 400 "$BASE/v1/completions" -d "{\"prompt\": \"$MARK and so
on\"}"
no_leak "unterminated prompt string" 400 "$BASE/v1/completions" -d "{\"prompt\": \"$MARK"
no_leak "unquoted prompt text" 400 "$BASE/v1/completions" -d "{\"prompt\": $MARK}"
no_leak "mistyped field next to the prompt" 400 "$BASE/v1/completions" -d "$(jq -nc --arg p "$P" '{prompt:$p,temperature:"warm"}')"
jq -nc --rawfile p "$WORK/long.txt" '{prompt:$p,max_tokens:1}' >"$WORK/long.json"
no_leak "prompt over max-model-len" 400 "$BASE/v1/completions" --data-binary @"$WORK/long.json"
jq -r .error.message "$WORK/err.json" | grep -q "maximum context length is 2048" && ok "it says the context length" ||
  bad "prompt over max-model-len: $(head -c 300 "$WORK/err.json")"
no_leak "prompt + max_tokens over max-model-len" 400 "$BASE/v1/completions" -d "$(jq -nc --arg p "$P" '{prompt:$p,max_tokens:2040}')"
jq -nc --rawfile p "$WORK/long.txt" '{messages:[{role:"user",content:$p}]}' >"$WORK/longchat.json"
no_leak "chat prompt over max-model-len" 400 "$BASE/v1/chat/completions" --data-binary @"$WORK/longchat.json"
no_leak "unknown model" 404 "$BASE/v1/completions" -d "$(jq -nc --arg p "$P" '{model:"gpt-4",prompt:$p}')"
no_leak "non-text content part" 400 "$BASE/v1/chat/completions" \
  -d "$(jq -nc --arg p "$P" '{messages:[{role:"user",content:[{type:"image_url",text:$p}]}]}')"
no_leak "continue_final_message with add_generation_prompt" 400 "$BASE/v1/chat/completions" \
  -d "$(jq -nc --arg p "$P" '{messages:[{role:"assistant",content:$p}],continue_final_message:true}')"
no_leak "tokenize with a mistyped field" 400 "$BASE/tokenize" -d "$(jq -nc --arg p "$P" '{prompt:$p,add_special_tokens:"yes"}')"
no_leak "wrong method" 405 -X GET "$BASE/v1/completions?prompt=$MARK"

# ---- /metrics and the log hold no prompt text ----
curl -s -H 'Authorization: Bearer key-bravo' "$BASE/metrics" >"$WORK/metrics.txt"
grep -q '^cllm:prefix_cache_hits_total' "$WORK/metrics.txt" && ! grep -q "$MARK" "$WORK/metrics.txt" &&
  ok "/metrics has no prompt text" || bad "/metrics: $(grep -c "$MARK" "$WORK/metrics.txt") lines with the prompt"
kill -TERM "$SPID"; wait "$SPID"
grep -q "$MARK" "$WORK/serve.log" && bad "the server log holds the prompt: $(grep "$MARK" "$WORK/serve.log" | head -2)" ||
  ok "the server log has no prompt text"
grep -q -- "key-alpha\|key-bravo\|key-charlie" "$WORK/serve.log" && bad "the server log holds an API key" ||
  ok "the server log has no API key"

# ---- without keys: cache_salt alone still splits (and the same salt shares) ----
start_server "$WORK/serve2.log" "$MODEL" -t 2 --max-model-len 2048 --num-blocks 400 --block-size 16
n1=$(cached none); n2=$(cached none); s1=$(cached none s1); s2=$(cached none s1); s3=$(cached none s2)
[ "$n1" = 0 ] && [ "${n2:-0}" != error ] && [ "$n2" -gt 0 ] && ok "no keys: P twice shares ($n2 cached)" ||
  bad "no keys: $n1 then $n2"
[ "$s1" = 0 ] && [ "${s2:-0}" != error ] && [ "$s2" -gt 0 ] && [ "$s3" = 0 ] &&
  ok "no keys: cache_salt s1 -> 0, s1 again -> $s2, s2 -> 0" || bad "no keys, salts: $s1 $s2 $s3"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")" = 200 ] && ok "no keys: /metrics is open" ||
  bad "no keys: /metrics"
kill -TERM "$SPID"; wait "$SPID"

# ---- key configuration errors are clear and stop the server before it loads the model ----
# serve_err WHAT PATTERN ARGS...: `cllm serve` exits 2 with a message matching PATTERN
serve_err() {
  local what=$1 pat=$2; shift 2
  local out rc
  out=$(CLLM_API_KEY= VLLM_API_KEY= "$CLLM" serve "$MODEL" --port 0 "$@" 2>&1); rc=$?
  [ $rc = 2 ] && echo "$out" | grep -q -- "$pat" && ok "$what: $(echo "$out" | tail -1)" || bad "$what: rc $rc: $out"
}
serve_err "a missing key file" "cannot read the API key file" --api-key-file "$WORK/nope.txt"
printf 'k1 t1 extra\n' >"$WORK/k3.txt"
serve_err "a line with 3 fields" "line 1: expected KEY or KEY TENANT" --api-key-file "$WORK/k3.txt"
printf '# only a comment\n\n' >"$WORK/k0.txt"
serve_err "a key file without keys" "holds no key" --api-key-file "$WORK/k0.txt"
printf 'k1\nk2 team/x\n' >"$WORK/kt.txt"
serve_err "a bad tenant name" "line 2: a tenant name may only hold" --api-key-file "$WORK/kt.txt"
printf 'k1\nk1\n' >"$WORK/kd.txt"
serve_err "a repeated key" "line 2: the same API key is given twice" --api-key-file "$WORK/kd.txt"
serve_err "a repeated --api-key" "given twice" --api-key a --api-key a
serve_err "an empty --api-key" "must not be empty" --api-key ""

# ---- keys from the environment: CLLM_API_KEY, else VLLM_API_KEY ----
for var in CLLM_API_KEY VLLM_API_KEY; do
  # the other variable empty: an empty one counts as unset
  if [ $var = CLLM_API_KEY ]; then SERVER_ENV="CLLM_API_KEY=env-key-1 VLLM_API_KEY="
  else SERVER_ENV="CLLM_API_KEY= VLLM_API_KEY=env-key-1"; fi
  start_server "$WORK/env.log" "$MODEL" -t 1 --max-model-len 256 --num-blocks 64
  c401=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/models")
  c200=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer env-key-1' "$BASE/v1/models")
  [ "$c401" = 401 ] && [ "$c200" = 200 ] && ok "$var sets the key" || bad "$var: $c401 / $c200: $(tail -3 "$WORK/env.log")"
  kill -TERM "$SPID"; wait "$SPID"
done
SERVER_ENV=

finish

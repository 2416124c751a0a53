#!/usr/bin/env bash
# test_bench_serve.sh: `cllm bench serve` and `cllm bench compare` end to end against `cllm serve`
# on a tiny random model with the Llama 3 vocabulary: a short table-qa workload (8 prompts,
# concurrency 4, max tokens 8) whose --save-result JSON must hold every documented field (the
# list `cllm bench serve --help` prints, and a fixed copy here) with consistent values, and
# whose --plot must be an SVG; a Poisson-rate completions run; failures (wrong model, nobody
# listening, bad flags) reported with the right exit status; a compare run and a hit-rate sweep.
# Args: path of the cllm binary, the shared data directory.
set -u
CLLM=$1
SHARED=$2
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

if ! "$CLLM" --help | grep -qE '^ +serve '; then
  echo "SKIP: this build has no 'cllm serve' command yet"
  exit 0
fi
"$CLLM" --help | grep -qE '^ +bench ' || { echo "FAIL: cllm --help lists no 'bench' command"; exit 1; }
command -v jq >/dev/null || { echo "FAIL: jq is needed"; exit 1; }

dir=$(mktemp -d /tmp/test_bench_serve.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT

model=$dir/tiny.gguf
if ! "$CLLM" mkmodel --shape tiny --vocab-from "$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf" \
     --chat-template llama3 -o "$model" >"$dir/mkmodel.log" 2>&1; then
  echo "FAIL: mkmodel: $(tail -1 "$dir/mkmodel.log")"
  exit 1
fi

"$CLLM" serve "$model" --port 0 -t 1 >"$dir/server.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 1 300); do
  url=$(sed -n 's/^cllm: ready: serving .* on \(http:\/\/[^ ]*\)$/\1/p' "$dir/server.log")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "FAIL: cllm serve did not start: $(tail -3 "$dir/server.log")"
  exit 1
fi
ok "server at $url"

# ---- the short workload ----
out=$("$CLLM" bench serve --base-url "$url" --model "$model" --dataset table-qa --num-prompts 8 \
      --max-concurrency 4 --max-tokens 8 --ignore-eos --warmup 1 --save-result "$dir/r.json" --save-detailed \
      --plot "$dir/r.svg" 2>"$dir/bench.err")
rc=$?
[ $rc -eq 0 ] && ok "bench serve exit 0" || bad "bench serve exited $rc: $(tail -3 "$dir/bench.err")"
for row in "Successful requests: *8" "Failed requests: *0" "TTFT " "TPOT " "ITL " "E2E " \
           "Request throughput" "Output token throughput" "Prefix cache hit rate: *[0-9]"; do
  printf '%s\n' "$out" | grep -qE "$row" || bad "report has no '$row' row"
done
grep -q '8/8' "$dir/bench.err" && ok "progress bar on stderr" || bad "no progress bar on stderr"

# every documented field: the --help list, and this fixed copy of it
fields=$("$CLLM" bench serve --help | sed -n '/^fields of the --save-result JSON/,$p' | tail -n +2 | awk '{print $1}')
[ "$(printf '%s\n' "$fields" | wc -l)" -ge 40 ] || bad "--help lists too few JSON fields: $(printf '%s' "$fields" | wc -l)"
fixed="date label base_url endpoint model_id dataset dataset_params num_prompts num_warmups warmup_failed
max_concurrency request_rate max_tokens ignore_eos temperature seed duration completed failed first_error
total_input_tokens total_output_tokens total_cached_tokens prefix_cache_hit_rate request_throughput
output_throughput total_token_throughput requests"
for m in ttft tpot itl e2el; do
  for s in mean median std min max p90 p99; do fixed="$fixed ${s}_${m}_ms"; done
done
for f in index ok http_status error start_time ttft_ms tpot_ms e2el_ms itl_ms prompt_tokens output_tokens \
         cached_tokens chunks generated_text; do
  fixed="$fixed requests[].$f"
done
missing=0
for f in $fields $fixed; do
  case $f in
    requests\[\].*) q=".requests | length > 0 and all(has(\"${f#requests[].}\"))" ;;
    *) q="has(\"$f\")" ;;
  esac
  jq -e "$q" "$dir/r.json" >/dev/null || { bad "JSON lacks field $f"; missing=1; }
done
[ $missing -eq 0 ] && ok "JSON has all $(printf '%s\n' $fields | wc -l) documented fields"
for f in $fields; do
  case " $(echo $fixed) " in *" $f "*) ;; *) bad "--help documents '$f' but the test's fixed list lacks it" ;; esac
done

# values that must hold
check() { jq -e "$1" "$dir/r.json" >/dev/null && ok "$2" || bad "$2: $1 is false"; }
check '.completed == 8 and .failed == 0 and .num_prompts == 8 and .num_warmups == 1' "8 completed, 0 failed"
check '.requests | length == 8 and all(.ok and .http_status == 200 and .error == null)' "8 ok records"
check '.total_output_tokens == 64 and all(.requests[]; .output_tokens == 8)' "8 tokens each (ignore_eos)"
check 'all(.requests[]; .ttft_ms > 0 and .ttft_ms <= .e2el_ms and (.itl_ms | length) == .chunks - 1)' "ttft <= e2e, one ITL per chunk gap"
check 'all(.requests[]; .prompt_tokens > 1000)' "prompt tokens from usage (a ~1,400-token table)"
check '.prefix_cache_hit_rate > 0.5 and .total_cached_tokens > 0' "table prefix is cached (hit rate > 50%)"
check '.median_ttft_ms >= .min_ttft_ms and .p99_ttft_ms <= .max_ttft_ms and .p90_ttft_ms <= .p99_ttft_ms' "percentiles ordered"
check '.max_concurrency == 4 and .max_tokens == 8 and .request_rate == null and .dataset == "table-qa"' "config recorded"
check '.request_throughput > 0 and .duration > 0' "throughput"
check 'all(.requests[]; .generated_text | type == "string")' "--save-detailed keeps texts"
head -c 200 "$dir/r.svg" | grep -q '<svg' && grep -q '</svg>' "$dir/r.svg" && ok "--plot wrote an SVG" || bad "--plot wrote no SVG"

# ---- Poisson arrivals, completions endpoint, prefix-repetition ----
"$CLLM" bench serve --base-url "$url/v1/" --model "$model" --dataset prefix-repetition --num-prefixes 2 \
  --prefix-len 64 --suffix-len 16 --num-prompts 6 --warmup 2 --max-tokens 4 --request-rate 50 --seed 3 \
  --endpoint completions --no-progress --save-result "$dir/p.json" >"$dir/p.out" 2>"$dir/p.err"
rc=$?
[ $rc -eq 0 ] && ok "prefix-repetition over /v1/completions at 50 req/s" || bad "prefix-repetition exited $rc: $(tail -2 "$dir/p.err")"
jq -e '.completed == 6 and .request_rate == 50 and .endpoint == "/v1/completions" and .prefix_cache_hit_rate > 0.3' \
  "$dir/p.json" >/dev/null && ok "prefix-repetition hits its prefixes" || bad "prefix-repetition JSON: $(jq -c '{completed, prefix_cache_hit_rate, first_error}' "$dir/p.json")"
grep -q '\[[#.]*\]' "$dir/p.err" && bad "--no-progress drew a bar: $(head -2 "$dir/p.err")" || ok "--no-progress draws no bar"

# ---- failures ----
"$CLLM" bench serve --base-url "$url" --model no-such-model --num-prompts 2 --max-tokens 2 --no-progress \
  --save-result "$dir/f.json" >"$dir/f.out" 2>&1
rc=$?
[ $rc -eq 1 ] && jq -e '.failed == 2 and .completed == 0 and (.first_error | test("404"))' "$dir/f.json" >/dev/null \
  && ok "wrong model: requests fail with the server's 404, exit 1" || bad "wrong model: rc=$rc $(jq -c '{failed, first_error}' "$dir/f.json" 2>&1)"
"$CLLM" bench serve --base-url http://127.0.0.1:1 --model x --num-prompts 2 --no-progress >"$dir/n.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -qi "fail" "$dir/n.out" && ok "nobody listening: exit 1" || bad "nobody listening: rc=$rc"
check_usage() {
  local what=$1; shift
  local so rc
  so=$("$CLLM" bench "$@" 2>"$dir/e.txt"); rc=$?
  if [ $rc -eq 2 ] && [ -z "$so" ] && [ "$(wc -l <"$dir/e.txt")" -eq 1 ]; then ok "$what: $(cat "$dir/e.txt")"
  else bad "$what: rc=$rc stdout='$so' stderr='$(cat "$dir/e.txt")'"; fi
}
check_usage "unknown flag" serve --model m --bogus
check_usage "missing model" serve --base-url "$url"
check_usage "bad number" serve --model m --num-prompts abc
check_usage "bad dataset" serve --model m --dataset nope
check_usage "jsonl without file" serve --model m --dataset jsonl
check_usage "unknown subcommand" frobnicate
check_usage "compare-only flag in serve" serve --model m --sweep-hit-rate
check_usage "--rounds 0" compare --model m --rounds 0
"$CLLM" bench serve --help | grep -q -- "--max-concurrency" && ok "bench serve --help" || bad "bench serve --help"
"$CLLM" bench compare --help | grep -q -- "--sweep-hit-rate" && ok "bench compare --help" || bad "bench compare --help"

kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; server_pid=

# ---- compare: two servers, same workload ----
"$CLLM" bench compare --model "$model" --common "-t 1" --num-prompts 4 --max-concurrency 2 --max-tokens 4 \
  --warmup 1 --no-progress --log-dir "$dir/logs" --save-result "$dir/c.json" --plot "$dir/c.svg" >"$dir/c.out" 2>"$dir/c.err"
rc=$?
[ $rc -eq 0 ] && ok "bench compare exit 0" || bad "bench compare exited $rc: $(tail -3 "$dir/c.err")"
grep -q "B/A" "$dir/c.out" && grep -q "Median TTFT" "$dir/c.out" && ok "side-by-side report" || bad "no side-by-side report"
jq -e '.a.completed == 4 and .b.completed == 4 and .a.prefix_cache_hit_rate == 0 and .b.prefix_cache_hit_rate > 0.5
       and (.ratios | has("mean_ttft") and has("median_ttft") and has("mean_e2el") and has("request_throughput"))' \
  "$dir/c.json" >/dev/null && ok "A uncached, B cached, ratios saved" || bad "compare JSON: $(jq -c '{a: .a.prefix_cache_hit_rate, b: .b.prefix_cache_hit_rate, r: .ratios}' "$dir/c.json" 2>&1)"
grep -q '</svg>' "$dir/c.svg" && ok "compare plot" || bad "no compare plot"
[ -s "$dir/logs/a.log" ] && [ -s "$dir/logs/b.log" ] && ok "--log-dir made and kept the server logs" || bad "no server logs in --log-dir $dir/logs"
pgrep -f -- "--model $model" >/dev/null && bad "compare left a server running" || ok "compare stopped its servers"

"$CLLM" bench compare --model "$model" --common "-t 1" --sweep-hit-rate --num-prompts 3 --input-len 256 \
  --max-tokens 2 --max-concurrency 1 --no-progress --save-result "$dir/s.json" --plot "$dir/s.svg" >"$dir/s.out" 2>"$dir/s.err"
rc=$?
[ $rc -eq 0 ] && ok "sweep exit 0" || bad "sweep exited $rc: $(tail -3 "$dir/s.err")"
jq -e '(.sweep | length == 4) and (.sweep[3].hit_rate > 0.8) and (.sweep[0].hit_rate < 0.1) and
       all(.sweep[]; .a.completed == 3 and .b.completed == 3 and (.speedup_p50 | type == "number"))' \
  "$dir/s.json" >/dev/null && ok "sweep: 4 points, hit rates ~0% .. >80%" || bad "sweep JSON: $(jq -c '[.sweep[] | {target, hit_rate, speedup_p50}]' "$dir/s.json" 2>&1)"
grep -q 'TTFT speedup' "$dir/s.svg" && ok "sweep plot" || bad "no sweep plot"

# --rounds: both servers up, A then B per round, fresh prompts each round, records pooled
"$CLLM" bench compare --model "$model" --common "-t 1" --sweep-hit-rate --sweep-points 0,0.95 --rounds 2 \
  --num-prompts 3 --input-len 256 --max-tokens 2 --max-concurrency 1 --no-progress --save-result "$dir/r.json" \
  >"$dir/r.out" 2>"$dir/r.err"
rc=$?
[ $rc -eq 0 ] && ok "--rounds 2 exit 0" || bad "--rounds 2 exited $rc: $(tail -3 "$dir/r.err")"
jq -e '.rounds == 2 and (.sweep | length == 2) and all(.sweep[]; .a.completed == 6 and .b.completed == 6)
       and .sweep[0].b.prefix_cache_hit_rate < 0.1 and .sweep[1].b.prefix_cache_hit_rate > 0.8' \
  "$dir/r.json" >/dev/null && ok "--rounds 2: 6 records a side, round 2 prompts fresh (0% point still ~0% hits)" ||
  bad "--rounds JSON: $(jq -c '{rounds, s: [.sweep[] | {a: .a.completed, b: .b.completed, hit: .b.prefix_cache_hit_rate}]}' "$dir/r.json" 2>&1)"
pgrep -f -- "--model $model" >/dev/null && bad "--rounds left a server running" || ok "--rounds stopped both servers"
exit $fail

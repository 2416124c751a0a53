#!/usr/bin/env bash
# test_bench_model.sh: `cllm bench model` end to end on tiny models: the markdown table, the
# JSON fields and their consistency (t/s from samples, decode GB/s, prefill GFLOP/s, the
# roofline), several sequences and a context depth, and bad command lines (exit 2, one line).
# Args: path of the cllm binary, shared dir.
. "$(dirname "$0")/lib.sh" bench_model "$@"
need jq
TMP=$WORK
check() { jq -e "$1" "$TMP/r.json" >/dev/null && ok "$2" || bad "$2: $1 is false ($(jq -c "$3" "$TMP/r.json" 2>&1 | head -c 400))"; }

"$CLLM" mkmodel --shape tiny -o "$TMP/tiny.gguf" 2>"$TMP/err" || { bad "mkmodel: $(cat "$TMP/err")"; finish; }
"$CLLM" mkmodel --shape tiny --dtype q8_0 -o "$TMP/tiny-q8.gguf" 2>"$TMP/err" || { bad "mkmodel q8_0: $(cat "$TMP/err")"; finish; }

# the brief's run: -p 16 -n 4 -r 1, JSON
if "$CLLM" bench model -m "$TMP/tiny.gguf" -p 16 -n 4 -r 1 -t 2 --roofline-mib 16 --json >"$TMP/r.json" 2>"$TMP/err"; then
    ok "bench model --json"
else
    bad "bench model --json: exit $?: $(tail -3 "$TMP/err")"
fi
for f in .build.kernel_level .build.n_threads .roofline.read_gbps .roofline.read_bytes .roofline.f32_fma_gflops \
         .roofline.int8_dot_gops .roofline.bf16_dot_gflops; do
    jq -e "$f != null" "$TMP/r.json" >/dev/null && ok "JSON has $f" || bad "JSON lacks $f"
done
check '.results | length == 2' "two tests" '.results | map(.test)'
check '.roofline.read_gbps > 0 and .roofline.f32_fma_gflops > 0 and .roofline.int8_dot_gops > 0
       and .roofline.measurements == 2' "positive roofline, measured twice" .roofline
check '[.results[] | has("model_filename", "model_type", "model_size", "model_n_params", "test", "n_prompt", "n_gen",
        "n_seqs", "n_depth", "n_ubatch", "n_threads", "kv_type", "reps", "samples_ts", "avg_ts", "stddev_ts",
        "median_ts", "avg_s", "gbps", "gflops", "roof_kind", "roof_ceiling", "roof_frac")] | all' "every result field" '.results[0] | keys'
check '.results[0] | .test == "pp16" and .n_prompt == 16 and .n_gen == 0 and .n_seqs == 1 and .reps == 1
       and .model_filename == "tiny.gguf" and .model_type == "f32" and .kv_type == "f16" and .n_threads == 2' \
      "pp16 fields" '.results[0]'
check '.results[1] | .test == "tg4" and .n_prompt == 0 and .n_gen == 4 and .n_seqs == 1' "tg4 fields" '.results[1]'
check '[.results[] | (.samples_ts | length) == 1 and .avg_ts == .samples_ts[0] and .median_ts == .avg_ts
        and .stddev_ts == 0 and .avg_ts > 0 and (.avg_s * .avg_ts - (.n_prompt + .n_gen * .n_seqs) | fabs) < 1e-6 * .avg_s * .avg_ts] | all' \
      "t/s from one sample" '.results | map({samples_ts, avg_ts, avg_s})'
check '. as $d | .results[0] | .gflops > 0 and .gbps == null and .roof_kind == "f32_fma" and .roof_ceiling > 0
       and .roof_ceiling <= $d.roofline.f32_fma_gflops and (.roof_frac - .gflops / .roof_ceiling | fabs) < 1e-9' \
      "prefill: GFLOP/s vs the FMA peak measured around it" '.results[0]'
# decode bytes of tg4 on the tiny model (f32; 2 layers; n_embd 64; n_ff 128; 4 heads, 2 KV heads
# of 16; vocab 579; tied): per step, each layer's wq, wo (64x64), wk, wv (32x64), gate, up, down
# (128x64) = 36864 params, twice, and the output matrix (579x64), 4 bytes each; plus K and V (f16)
# of 2 layers x 2 KV heads x 16 dims for positions 0..p at steps p = 0..3 (1+2+3+4 positions)
check '.results[1] | .gflops == null and .roof_kind == "read" and .gbps > 0
       and (((2 * 36864 + 579 * 64) * 4) * 4 + (2 * 2 * 2 * 16 * 2) * 10) as $bytes
       | ((.gbps * 1e9 / .median_ts * (.n_gen * .n_seqs)) - $bytes | fabs) < 1e-6 * $bytes' \
      "decode GB/s counts the bytes read" '.results[1]'
check '.roofline as $r | .results[1] | .roof_ceiling > 0 and .roof_ceiling <= $r.read_gbps
       and (.roof_frac - .gbps / .roof_ceiling | fabs) < 1e-9' "decode roof % vs the read bandwidth measured around it" '.results[1]'

# several sequences, a depth, list arguments, repetitions: markdown table
if "$CLLM" bench model -m "$TMP/tiny-q8.gguf" -m "$TMP/tiny.gguf" -p 8,16 -n 3 -b 1,4 -d 5 -r 3 -t 2 --no-roofline \
        >"$TMP/t.md" 2>"$TMP/err"; then
    ok "bench model table"
else
    bad "bench model table: exit $?: $(tail -3 "$TMP/err")"
fi
grep -q '^| model ' "$TMP/t.md" && ok "table header" || bad "table header missing: $(head -3 "$TMP/t.md")"
[ "$(grep -c '^| llama ' "$TMP/t.md")" -eq 8 ] && ok "8 table rows" || bad "expected 8 table rows (2 models x 4 tests): $(cat "$TMP/t.md")"
for t in "pp8 @ d5" "pp16 @ d5" "tg3 @ d5" "tg3 x4 @ d5"; do
    grep -q "| $t " "$TMP/t.md" && ok "table has $t" || bad "table lacks test '$t'"
done
grep -q "q8_0" "$TMP/t.md" && ok "table has the q8_0 model" || bad "table lacks the q8_0 model"
grep -q "roofline" "$TMP/t.md" && bad "--no-roofline printed a roofline" || ok "--no-roofline"

"$CLLM" bench model -m "$TMP/tiny-q8.gguf" -p 0 -n 2 -b 3 -r 2 -t 1 --roofline-mib 8 -o json >"$TMP/r.json" 2>"$TMP/err" \
    && ok "q8_0 -b 3 json" || bad "q8_0 -b 3 json: $(tail -3 "$TMP/err")"
check '.results | length == 1 and .[0].test == "tg2 x3" and .[0].n_seqs == 3 and (.[0].samples_ts | length) == 2
       and .[0].model_type == "q8_0" and .[0].stddev_ts >= 0' "tg2 x3" '.results'

# bad command lines: exit 2, one line on stderr
expect_bad() {
    local label=$1; shift
    "$CLLM" bench model "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$? lines
    lines=$(wc -l <"$TMP/err")
    if [ $rc -ne 2 ] || [ "$lines" -ne 1 ]; then bad "$label: exit $rc, $lines stderr lines: $(head -c 300 "$TMP/err")"; else ok "$label: exit 2, one line"; fi
}
expect_bad "no model" -p 16
expect_bad "unknown flag" -m "$TMP/tiny.gguf" --frobnicate
expect_bad "bad -p" -m "$TMP/tiny.gguf" -p abc
expect_bad "bad -b" -m "$TMP/tiny.gguf" -b 0
expect_bad "bad -r" -m "$TMP/tiny.gguf" -r 0
expect_bad "missing value" -m "$TMP/tiny.gguf" -t
expect_bad "bad output" -m "$TMP/tiny.gguf" -o xml
expect_bad "bad kv type" -m "$TMP/tiny.gguf" --kv-cache-dtype q8_0
"$CLLM" bench model -m "$TMP/missing.gguf" -p 8 -n 0 -r 1 --no-roofline >"$TMP/out" 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "missing.gguf" "$TMP/err" && ok "missing model: exit 1" || bad "missing model: not exit 1 with the path: $(cat "$TMP/err")"
"$CLLM" bench model --help | grep -q -- "--n-depth" && ok "--help" || bad "--help"
"$CLLM" bench --help | grep -q "bench model" && ok "bench --help lists model" || bad "bench --help lists model"
finish

#!/bin/sh
# bench/model_vs_llamacpp.sh: `cllm bench model` side by side with llama.cpp's llama-bench and
# llama-batched-bench on the same GGUF files, interleaved so that the load of a shared machine
# hits both alike (issue 6's BENCHMARKS.md tables).
#
# usage: bench/model_vs_llamacpp.sh [-o OUTDIR] [--llama-bin DIR] [-r ROUNDS] [-t THREADS]
#                                   [--parts pp,tg,batch] MODEL.gguf...
#   -o DIR          where the JSON of every run and summary.md go (default /tmp/model-vs-llamacpp)
#   --llama-bin DIR llama.cpp's build/bin (default $LLAMA_BIN, else /work/ext/llama.cpp/build/bin)
#   -r N            rounds (default 3); each round runs every test once on each side, one after
#                   the other; the summary takes the median over rounds, and the ratio of medians
#   -t N            threads for both (default 2)
#   --parts LIST    pp: prefill of 512 tokens (llama-bench -p 512 -n 0);
#                   tg: decode of 64 tokens, one sequence (llama-bench -p 0 -n 64);
#                   batch: 16 sequences decoding 32 tokens together after 32-token prompts
#                   (llama-batched-bench -npp 32 -ntg 32 -npl 16, its S_TG; cllm -b 16 -d 32)
# Each cllm test measures its own ceilings right before and after it (read bandwidth for decode,
# the instruction's peak for prefill), so "roof" in the summary is against the machine as it was
# then. Both tools do one warmup run of their own before each timed one.
# Needs: the cllm binary (build/cllm beside this script's repository, or $CLLM), jq.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
CLLM=${CLLM:-$here/build/cllm}
out=/tmp/model-vs-llamacpp
lbin=${LLAMA_BIN:-/work/ext/llama.cpp/build/bin}
rounds=3
threads=2
parts=pp,tg,batch
while [ $# -gt 0 ]; do
    case $1 in
    -o) out=$2; shift 2 ;;
    --llama-bin) lbin=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "model_vs_llamacpp: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "model_vs_llamacpp: no model given (see --help)" >&2; exit 2; }
for b in "$CLLM" "$lbin/llama-bench" "$lbin/llama-batched-bench"; do
    [ -x "$b" ] || { echo "model_vs_llamacpp: $b is not an executable" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "model_vs_llamacpp: needs jq" >&2; exit 2; }
mkdir -p "$out"
has() { case ",$parts," in *",$1,"*) return 0 ;; esac; return 1; }

# one cllm test: prints its t/s, keeps the JSON
run_cllm() { # name model args...
    name=$1; model=$2; shift 2
    "$CLLM" bench model -m "$model" -t "$threads" -r 1 --roofline-mib 256 --json "$@" >"$out/$name.json" 2>"$out/$name.err"
    jq -r '.results[0] | "\(.median_ts) \(.roof_frac // "null") \(.gbps // .gflops)"' "$out/$name.json"
}
run_lbench() { # name model args...
    name=$1; model=$2; shift 2
    "$lbin/llama-bench" -m "$model" -t "$threads" -r 1 -o json "$@" >"$out/$name.json" 2>"$out/$name.err"
    jq -r '.[0].avg_ts' "$out/$name.json"
}
run_lbatched() { # name model
    name=$1; model=$2
    "$lbin/llama-batched-bench" -m "$model" -t "$threads" -c 2048 -npp 32 -ntg 32 -npl 16 --output-format jsonl \
        >"$out/$name.jsonl" 2>"$out/$name.err"
    grep '^{' "$out/$name.jsonl" | tail -1 | jq -r '.speed_tg'
}

results=$out/results.tsv # model part round cllm_ts llama_ts roof
: >"$results"
r=1
while [ "$r" -le "$rounds" ]; do
    for model in "$@"; do
        tag=$(basename "$model" .gguf)
        if has pp; then
            c=$(run_cllm "cllm-$tag-pp512-r$r" "$model" -p 512 -n 0)
            l=$(run_lbench "llama-$tag-pp512-r$r" "$model" -p 512 -n 0)
            echo "$tag pp512 $r ${c%% *} $l $(echo "$c" | cut -d' ' -f2)" >>"$results"
        fi
        if has tg; then
            c=$(run_cllm "cllm-$tag-tg64-r$r" "$model" -p 0 -n 64)
            l=$(run_lbench "llama-$tag-tg64-r$r" "$model" -p 0 -n 64)
            echo "$tag tg64 $r ${c%% *} $l $(echo "$c" | cut -d' ' -f2)" >>"$results"
        fi
        if has batch; then
            c=$(run_cllm "cllm-$tag-tg32x16-r$r" "$model" -p 0 -n 32 -b 16 -d 32)
            l=$(run_lbatched "llama-$tag-tg32x16-r$r" "$model")
            echo "$tag tg32x16 $r ${c%% *} $l $(echo "$c" | cut -d' ' -f2)" >>"$results"
        fi
        tail -n 3 "$results" >&2
    done
    r=$((r + 1))
done

# summary: medians over rounds and their ratio
{
    echo "| model | test | cllm t/s (median of $rounds) | llama.cpp t/s (median) | cllm / llama.cpp | cllm roof (median) |"
    echo "|---|---|---|---|---|---|"
    jq -Rrs '
      def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      split("\n") | map(select(length > 0) | split(" ")) |
      group_by(.[0] + " " + .[1]) | .[] |
      { model: .[0][0], test: .[0][1],
        c: (map(.[3] | tonumber) | median), l: (map(.[4] | tonumber) | median),
        roof: (map(.[5] | select(. != "null") | tonumber) | if length > 0 then median else null end) } |
      "| \(.model) | \(.test) | \(.c * 100 | round / 100) | \(.l * 100 | round / 100) | \(.c / .l * 100 | round / 100)x | \(if .roof then "\(.roof * 100 | round)%" else "-" end) |"
    ' "$results"
} >"$out/summary.md"
cat "$out/summary.md"

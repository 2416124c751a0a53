#!/bin/bash
# bench/serve_vs_llamacpp.sh: every serving measurement of issue 5, point 5, for each model given:
# `cllm serve` (through `cllm bench compare`, prefix caching off vs on) and llama.cpp's llama-server
# (through `cllm bench serve`), same client, same prompts, same thread count, one after the other.
#
# usage: bench/serve_vs_llamacpp.sh [-o OUTDIR] [--llama-server PATH] [--parts table,sweep,conc]
#                                   [-t THREADS] [--quick] MODEL.gguf...
#   -o DIR               where everything goes (default /tmp/serve-cmp): every --save-result JSON,
#                        the SVG plots, the server logs, each client's report (*.txt) and summary.md
#                        (markdown tables, ratios, and the exact commands that were run)
#   --llama-server PATH  llama.cpp's server (default $LLAMA_SERVER, else
#                        /work/ext/llama.cpp/build/bin/llama-server)
#   -t N                 compute threads of every server (default 2)
#   --parts LIST         which measurements (default all three):
#     table  the seed's table workload (30 rows, 10 questions, chat, 1 warmup, concurrency 1,
#            max_tokens 16): `cllm bench compare` (A: prefix caching off, B: on) for mean response
#            time and TTFT p50; then llama-server with its defaults and with -fa off, each driven by
#            `cllm bench serve` with the same workload
#     sweep  TTFT p50 caching off vs on at about 0%, 25%, 50% and >90% prefix hits:
#            `cllm bench compare --sweep-hit-rate` (one prefix, --input-len-token prompts,
#            concurrency 1); then llama-server (defaults) with cache_prompt true and, on a fresh
#            server, false, driven by `cllm bench serve --dataset prefix-repetition` with exactly the
#            prompts the sweep made (its prefix/suffix split, its per-point seed
#            seed + 1000003 * (point + 1), a warmup that caches the prefix)
#     conc   request throughput at concurrency 1, 4 and 16 on a prefix-heavy workload (4 prefixes of
#            1,024 tokens, 32-token suffixes, max_tokens 16, ignore_eos, 48 prompts, 4 warmups that
#            cache the prefixes; a fresh seed per concurrency so that no run hits the previous
#            run's whole prompts): `cllm serve` (prefix caching on, --max-num-seqs 16) and
#            llama-server (-np 16, -c 16 x the per-request context: with an explicit -np this
#            llama.cpp does not unify the KV cache and gives each slot c / np, see its log line
#            "n_ctx_slot"; its prompt cache on)
#   --quick              tiny settings (few, short prompts) for a smoke test on a tiny model
# Environment overrides of the full settings (the defaults are in the "settings" block below):
#   SWEEP_INPUT_LEN, SWEEP_PROMPTS, CONC_PROMPTS, LLAMA_CTX, CLLM_MAX_LEN.
# Every server listens on 127.0.0.1 on a free port, is waited for on /health, and is killed when
# its part ends and, whatever happens, when the script exits (trap on EXIT, INT and TERM); the
# servers that `cllm bench compare` starts are its own and stop with it.
# Needs: the cllm binary (build/cllm of this repository, or $CLLM), llama-server, jq, curl.
# Exit status: 0 on success, 1 when a run failed (the message names its log), 2 for a bad command line.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
CLLM=${CLLM:-$here/build/cllm}
LLAMA_SERVER=${LLAMA_SERVER:-/work/ext/llama.cpp/build/bin/llama-server}
out=/tmp/serve-cmp
threads=2
parts=table,sweep,conc
quick=0

die() { echo "serve_vs_llamacpp: $*" >&2; exit 1; }
usage_error() { echo "serve_vs_llamacpp: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || usage_error "-o needs a directory"; out=$2; shift 2 ;;
    --llama-server) [ $# -ge 2 ] || usage_error "--llama-server needs a path"; LLAMA_SERVER=$2; shift 2 ;;
    -t) [ $# -ge 2 ] || usage_error "-t needs a number"; threads=$2; shift 2 ;;
    --parts) [ $# -ge 2 ] || usage_error "--parts needs a list"; parts=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) usage_error "unknown option $1 (see --help)" ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || usage_error "no model given (see --help)"
case $threads in ''|*[!0-9]*) usage_error "-t expects a number, got '$threads'" ;; esac
for p in ${parts//,/ }; do
    case $p in table|sweep|conc) ;; *) usage_error "--parts: unknown part '$p' (table, sweep, conc)" ;; esac
done
for m in "$@"; do [ -r "$m" ] || usage_error "cannot read model $m"; done
[ -x "$CLLM" ] || usage_error "$CLLM is not an executable (build cllm, or set CLLM)"
[ -x "$LLAMA_SERVER" ] || usage_error "$LLAMA_SERVER is not an executable (see --llama-server)"
command -v jq >/dev/null || usage_error "needs jq"
command -v curl >/dev/null || usage_error "needs curl"
has() { case ",$parts," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- settings --------------------------------------------------------------------------------
seed=0
max_tokens=16
warmup=1
if [ "$quick" = 1 ]; then
    table_args=(--rows 5 --questions 3)
    sweep_input_len=${SWEEP_INPUT_LEN:-64}
    sweep_prompts=${SWEEP_PROMPTS:-3}
    conc_prefixes=2 conc_prefix_len=64 conc_suffix_len=8
    conc_prompts=${CONC_PROMPTS:-8}
    llama_ctx=${LLAMA_CTX:-4096}
    cllm_max_len=${CLLM_MAX_LEN:-2048}
    max_tokens=8
else
    table_args=(--rows 30 --questions 10)
    sweep_input_len=${SWEEP_INPUT_LEN:-1024}
    sweep_prompts=${SWEEP_PROMPTS:-10}
    conc_prefixes=4 conc_prefix_len=1024 conc_suffix_len=32
    conc_prompts=${CONC_PROMPTS:-48}
    llama_ctx=${LLAMA_CTX:-8192}
    cllm_max_len=${CLLM_MAX_LEN:-4096}
fi
sweep_points=(0 0.25 0.5 0.95) # cllm bench compare's default --sweep-points
conc_levels=(1 4 16)
conc_seqs=16
# per-request context of the conc workload: prompt, chat template, output, rounded up to 256
conc_ctx=$(( (conc_prefix_len + conc_suffix_len + max_tokens + 64 + 255) / 256 * 256 ))

mkdir -p "$out"
out=$(cd "$out" && pwd)
commands=$out/commands.md
summary=$out/summary.md
: >"$commands"

# ---- servers ---------------------------------------------------------------------------------
server_pids=()
cleanup() {
    local pid
    for pid in "${server_pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    server_pids=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# a port on 127.0.0.1 that nothing listens on
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM + i) % 30000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    die "no free port found"
}

# appends a command to commands.md (shell-quoted, one line)
# a word as the shell reads it back: bare when safe, else in single quotes
quote() {
    case $1 in
    '' | *[!A-Za-z0-9_./:=,+@%-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
    esac
}
record() { # heading cmd...
    local h=$1 w sep=''
    shift
    {
        printf '# %s\n' "$h"
        for w in "$@"; do printf '%s' "$sep"; quote "$w"; sep=' '; done
        printf '\n'
    } >>"$commands"
}

# start_server NAME cmd... (the command without --host/--port; they are added): sets $server_url
# and $server_pid, logs to OUTDIR/NAME.log, waits for /health
server_url='' server_pid=''
start_server() {
    local name=$1 port log i
    shift
    port=$(free_port)
    log=$out/$name.log
    record "server $name" "$@" --host 127.0.0.1 --port "$port"
    echo "serve_vs_llamacpp: starting $name on port $port (log $log)" >&2
    "$@" --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    server_pid=$!
    server_pids+=("$server_pid")
    server_url=http://127.0.0.1:$port
    for i in $(seq 1 1200); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            tail -n 15 "$log" >&2 || true
            die "server $name exited before it was ready (log $log)"
        fi
        curl -sf -o /dev/null --max-time 2 "$server_url/health" && return 0
        sleep 0.5
    done
    die "server $name not ready after 600 s (log $log)"
}

stop_server() {
    local pid=$server_pid i
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# run_client NAME cmd...: runs a benchmark client, its report to NAME.txt, stderr to NAME.err
run_client() {
    local name=$1 rc=0
    shift
    record "$name" "$@"
    echo "serve_vs_llamacpp: running $name" >&2
    "$@" >"$out/$name.txt" 2>"$out/$name.err" || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 15 "$out/$name.err" >&2 || true
        die "$name failed (exit $rc; see $out/$name.txt, $out/$name.err)"
    fi
}

# ---- number formatting -------------------------------------------------------------------------
# jq FILE EXPR, "null" when absent
jv() { jq -r "$2 // \"null\"" "$1"; }
# ms -> "x.xxx s"
sec() { awk -v v="$1" 'BEGIN { if (v == "null" || v == "") print "n/a"; else printf "%.3f s", v / 1000 }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "null" || v == "") print "n/a"; else printf "%.1f ms", v }'; }
pct() { awk -v v="$1" 'BEGIN { if (v == "null" || v == "") print "n/a"; else printf "%.1f%%", 100 * v }'; }
num() { awk -v v="$1" 'BEGIN { if (v == "null" || v == "") print "n/a"; else printf "%.3f", v }'; }
# a / b as "N.NNx"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2fx", a / b }'; }

{
    echo "# cllm serve vs llama-server (issue 5, point 5)"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n), $(nproc) cores, $threads threads per server."
    echo "cllm: $CLLM ($(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'))."
    echo "llama-server: $LLAMA_SERVER ($("$LLAMA_SERVER" --version 2>&1 | grep -m1 '^version' || echo '?'))."
    [ "$quick" = 1 ] && echo "**--quick: tiny smoke-test settings, not a measurement.**"
    echo
} >"$summary"

cllm_common="-t $threads --max-model-len $cllm_max_len"

for model in "$@"; do
    tag=$(basename "$model" .gguf)
    echo "## $tag" >>"$summary"
    echo >>"$summary"

    # ---- a. the seed's table workload ------------------------------------------------------------
    if has table; then
        cmp=$out/$tag-table-cllm.json
        table_load=("${table_args[@]}" --warmup "$warmup" --max-concurrency 1 --max-tokens "$max_tokens" --seed "$seed" --no-progress)
        mkdir -p "$out/$tag-table-cllm-logs"
        run_client "$tag-table-cllm" "$CLLM" bench compare --model "$model" --served-model-name "$tag" \
            --common "$cllm_common" --log-dir "$out/$tag-table-cllm-logs" --dataset table-qa "${table_load[@]}" \
            --save-result "$cmp" --plot "$out/$tag-table-ttft.svg"
        for v in default fa-off; do
            extra=()
            [ "$v" = fa-off ] && extra=(-fa off)
            start_server "$tag-table-llama-$v" "$LLAMA_SERVER" -m "$model" -a "$tag" -t "$threads" -c "$llama_ctx" \
                --no-webui "${extra[@]}"
            run_client "$tag-table-llama-$v" "$CLLM" bench serve --base-url "$server_url" --model "$tag" \
                --dataset table-qa "${table_load[@]}" --save-result "$out/$tag-table-llama-$v.json" \
                --plot "$out/$tag-table-llama-$v-ttft.svg"
            stop_server
        done
        ld=$out/$tag-table-llama-default.json lf=$out/$tag-table-llama-fa-off.json
        {
            echo "### a. The seed's table workload ($(jv "$cmp" '.b.num_prompts') requests after $warmup warmup, concurrency 1, max_tokens $max_tokens)"
            echo
            echo "cllm: \`cllm bench compare\`, A = --no-enable-prefix-caching, B = --enable-prefix-caching, both $cllm_common."
            echo "llama-server: -c $llama_ctx (without it, it allocates the model's whole trained context), the rest its"
            echo "defaults (flash attention auto, prompt cache on, slots auto); then the same with -fa off."
            echo "\"on/off\" is B/A: below 1 is faster with caching."
            echo
            echo "| | cllm off | cllm on | cllm on/off | llama-server defaults | llama-server -fa off |"
            echo "|---|---|---|---|---|---|"
            echo "| prefix cache hit rate | $(pct "$(jv "$cmp" .a.prefix_cache_hit_rate)") | $(pct "$(jv "$cmp" .b.prefix_cache_hit_rate)") | | $(pct "$(jv "$ld" .prefix_cache_hit_rate)") | $(pct "$(jv "$lf" .prefix_cache_hit_rate)") |"
            for f in mean_e2el_ms:"mean response time" median_ttft_ms:"TTFT p50" p99_ttft_ms:"TTFT p99" median_tpot_ms:"TPOT p50"; do
                k=${f%%:*} label=${f#*:}
                a=$(jv "$cmp" ".a.$k") b=$(jv "$cmp" ".b.$k") x=$(jv "$ld" ".$k") y=$(jv "$lf" ".$k")
                if [ "$k" = median_tpot_ms ]; then fa=$(ms "$a") fb=$(ms "$b") fx=$(ms "$x") fy=$(ms "$y")
                else fa=$(sec "$a") fb=$(sec "$b") fx=$(sec "$x") fy=$(sec "$y"); fi
                echo "| $label | $fa | $fb | $(ratio "$b" "$a") | $fx | $fy |"
            done
            echo
            echo "| cllm (caching on) faster than llama-server by | defaults | -fa off |"
            echo "|---|---|---|"
            for f in mean_e2el_ms:"mean response time" median_ttft_ms:"cached TTFT p50" median_tpot_ms:"TPOT p50"; do
                k=${f%%:*} label=${f#*:}
                b=$(jv "$cmp" ".b.$k")
                echo "| $label | $(ratio "$(jv "$ld" ".$k")" "$b") | $(ratio "$(jv "$lf" ".$k")" "$b") |"
            done
            echo
            echo "Plots: $tag-table-ttft.svg (cllm off vs on), $tag-table-llama-default-ttft.svg, $tag-table-llama-fa-off-ttft.svg."
            echo
        } >>"$summary"
    fi

    # ---- b. the hit-rate sweep -------------------------------------------------------------------
    if has sweep; then
        sw=$out/$tag-sweep-cllm.json
        pts=$(IFS=,; echo "${sweep_points[*]}")
        mkdir -p "$out/$tag-sweep-cllm-logs"
        run_client "$tag-sweep-cllm" "$CLLM" bench compare --model "$model" --served-model-name "$tag" \
            --common "$cllm_common" --log-dir "$out/$tag-sweep-cllm-logs" --sweep-hit-rate --sweep-points "$pts" \
            --input-len "$sweep_input_len" --num-prefixes 1 --num-prompts "$sweep_prompts" --warmup "$warmup" \
            --max-concurrency 1 --max-tokens "$max_tokens" --seed "$seed" --no-progress \
            --save-result "$sw" --plot "$out/$tag-sweep-speedup.svg"
        # the same points against llama-server: one server with its prompt cache, a fresh one without
        for v in cache nocache; do
            extra=()
            [ "$v" = nocache ] && extra=(--extra-body '{"cache_prompt": false}')
            start_server "$tag-sweep-llama-$v" "$LLAMA_SERVER" -m "$model" -a "$tag" -t "$threads" -c "$llama_ctx" --no-webui
            for i in "${!sweep_points[@]}"; do
                # what cmd_bench.c's sweep does for point i: prefix = round(target x input_len), at most
                # input_len - 1; suffix = the rest; seed + 1000003 (i + 1); warmup >= num_prefixes
                pl=$(jq -n --argjson t "${sweep_points[$i]}" --argjson n "$sweep_input_len" \
                    '[($t * $n + 0.5 | floor), $n - 1] | min')
                sl=$(( sweep_input_len - pl ))
                ps=$(( seed + 1000003 * (i + 1) ))
                wu=$(( warmup > 1 ? warmup : 1 ))
                jpl=$(jv "$sw" ".sweep[$i].prefix_len")
                [ "$jpl" = "$pl" ] || die "sweep point $i: cllm bench compare used prefix_len $jpl, this script $pl"
                run_client "$tag-sweep-llama-$v-$i" "$CLLM" bench serve --base-url "$server_url" --model "$tag" \
                    --dataset prefix-repetition --num-prefixes 1 --prefix-len "$pl" --suffix-len "$sl" \
                    --num-prompts "$sweep_prompts" --warmup "$wu" --max-concurrency 1 --max-tokens "$max_tokens" \
                    --seed "$ps" --no-progress "${extra[@]}" --save-result "$out/$tag-sweep-llama-$v-$i.json"
            done
            stop_server
        done
        {
            echo "### b. TTFT p50, prefix caching off vs on, by prefix hit rate ($sweep_prompts requests of $sweep_input_len prompt tokens per point after a warmup that caches the prefix, concurrency 1, max_tokens $max_tokens)"
            echo
            echo "| target | prefix + suffix | cllm hit | cllm off | cllm on | cllm speedup | llama hit | llama cache_prompt false | llama cache_prompt true | llama speedup | cllm on faster by |"
            echo "|---|---|---|---|---|---|---|---|---|---|---|"
            for i in "${!sweep_points[@]}"; do
                c=$out/$tag-sweep-llama-cache-$i.json n=$out/$tag-sweep-llama-nocache-$i.json
                ca=$(jv "$sw" ".sweep[$i].a.median_ttft_ms") cb=$(jv "$sw" ".sweep[$i].b.median_ttft_ms")
                la=$(jv "$n" .median_ttft_ms) lb=$(jv "$c" .median_ttft_ms)
                echo "| $(pct "${sweep_points[$i]}") | $(jv "$sw" ".sweep[$i].prefix_len") + $(jv "$sw" ".sweep[$i].suffix_len") | $(pct "$(jv "$sw" ".sweep[$i].hit_rate")") | $(ms "$ca") | $(ms "$cb") | $(ratio "$ca" "$cb") | $(pct "$(jv "$c" .prefix_cache_hit_rate)") | $(ms "$la") | $(ms "$lb") | $(ratio "$la" "$lb") | $(ratio "$lb" "$cb") |"
            done
            echo
            echo "Hit rates are the servers' own (usage.prompt_tokens_details.cached_tokens / prompt tokens) with caching on;"
            echo "with it off both report 0. cllm: \`cllm bench compare --sweep-hit-rate\`; llama-server (-c $llama_ctx, defaults):"
            echo "\`cllm bench serve\` with the sweep's prompts, one server with cache_prompt true (its default), a fresh"
            echo "one with \"cache_prompt\": false in every request. Speedups are off/on; \"cllm on faster by\" is llama on / cllm on."
            echo "Plot: $tag-sweep-speedup.svg (cllm)."
            echo
        } >>"$summary"
    fi

    # ---- c. throughput by concurrency -------------------------------------------------------------
    if has conc; then
        nwarm=$conc_prefixes
        for side in cllm llama; do
            if [ "$side" = cllm ]; then
                start_server "$tag-conc-cllm" "$CLLM" serve --model "$model" --served-model-name "$tag" -t "$threads" \
                    --enable-prefix-caching --max-num-seqs "$conc_seqs" --max-model-len "$conc_ctx"
            else
                start_server "$tag-conc-llama" "$LLAMA_SERVER" -m "$model" -a "$tag" -t "$threads" \
                    -np "$conc_seqs" -c $(( conc_seqs * conc_ctx )) --no-webui
            fi
            for c in "${conc_levels[@]}"; do
                run_client "$tag-conc-$side-c$c" "$CLLM" bench serve --base-url "$server_url" --model "$tag" \
                    --dataset prefix-repetition --num-prefixes "$conc_prefixes" --prefix-len "$conc_prefix_len" \
                    --suffix-len "$conc_suffix_len" --num-prompts "$conc_prompts" --warmup "$nwarm" \
                    --max-concurrency "$c" --max-tokens "$max_tokens" --ignore-eos --seed $(( seed + c )) \
                    --no-progress --save-result "$out/$tag-conc-$side-c$c.json"
            done
            stop_server
        done
        slot_line=$(grep -m1 -o 'n_slots = .*' "$out/$tag-conc-llama.log" || echo "n/a")
        {
            echo "### c. Request throughput by concurrency ($conc_prompts requests: $conc_prefixes prefixes of $conc_prefix_len tokens + $conc_suffix_len-token suffixes, max_tokens $max_tokens with ignore_eos, $nwarm warmups caching the prefixes)"
            echo
            echo "cllm serve: prefix caching on, --max-num-seqs $conc_seqs, --max-model-len $conc_ctx. llama-server: -np $conc_seqs -c $(( conc_seqs * conc_ctx )), prompt cache on (its log: $slot_line)."
            echo
            echo "| concurrency | cllm req/s | llama req/s | cllm/llama | cllm output tok/s | llama output tok/s | cllm TTFT p50 | llama TTFT p50 | cllm hit | llama hit |"
            echo "|---|---|---|---|---|---|---|---|---|---|"
            for c in "${conc_levels[@]}"; do
                a=$out/$tag-conc-cllm-c$c.json b=$out/$tag-conc-llama-c$c.json
                ra=$(jv "$a" .request_throughput) rb=$(jv "$b" .request_throughput)
                echo "| $c | $(num "$ra") | $(num "$rb") | $(ratio "$ra" "$rb") | $(num "$(jv "$a" .output_throughput)") | $(num "$(jv "$b" .output_throughput)") | $(ms "$(jv "$a" .median_ttft_ms)") | $(ms "$(jv "$b" .median_ttft_ms)") | $(pct "$(jv "$a" .prefix_cache_hit_rate)") | $(pct "$(jv "$b" .prefix_cache_hit_rate)") |"
            done
            echo
        } >>"$summary"
    fi
done

{
    echo "## Commands, in the order they ran"
    echo
    echo "Server ports were picked free at run time; \`cllm bench compare\` starts its own two \`cllm serve\`"
    echo "(flags in its --a/--b/--common; its logs in the *-cllm-logs directories)."
    echo
    echo '```sh'
    cat "$commands"
    echo '```'
} >>"$summary"
echo "serve_vs_llamacpp: wrote $summary" >&2

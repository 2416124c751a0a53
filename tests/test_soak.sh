#!/usr/bin/env bash
# test_soak.sh: the soak test (issue 7, point 3) of `cllm serve`: bench_soak (bench/bench_soak.c)
# sends well-formed requests sharing random prefixes, clients that disconnect mid-stream and bad
# requests at once to a server whose KV pool is small enough to force eviction and preemption,
# and checks every answer against the same request run alone at temperature 0, every 4xx, the
# server's RSS, and that afterwards every KV block is free. Then the server must still shut down
# cleanly (exit 0 on SIGTERM) and its log must hold no error line.
#
# Args: path of the cllm binary, the shared data directory. The bench_soak binary is beside cllm.
# `make test` runs the short version (defaults below, ~15 s); `make soak` the long one with
#   SOAK_REQUESTS=1000 SOAK_CONCURRENCY=32 SOAK_NUM_BLOCKS=64
# Environment knobs: SOAK_REQUESTS, SOAK_CONCURRENCY, SOAK_NUM_BLOCKS, SOAK_MAX_MODEL_LEN, SOAK_SEED,
# SOAK_SERVER_ENV (VAR=VALUE words set for the server only, e.g. GLIBC_TUNABLES=...),
# SOAK_SERVER_ARGS (more `cllm serve` flags), SOAK_ARGS (more bench_soak flags).
# The server runs as shipped: the RSS check is what found the per-request sampler buffers that
# glibc's per-thread arenas kept (RELIABILITY.md); the engine now shares one set.
. "$(dirname "$0")/lib.sh" test-soak "$@"
SOAK=$BUILD/bench_soak
N=${SOAK_REQUESTS:-}
C=${SOAK_CONCURRENCY:-16}
BLOCKS=${SOAK_NUM_BLOCKS:-48}
MML=${SOAK_MAX_MODEL_LEN:-256}
SEED=${SOAK_SEED:-1}
SERVER_ENV=${SOAK_SERVER_ENV-}
MAX_BODY=65536

[ -x "$SOAK" ] || { echo "FAIL: $SOAK is not built (cmake --build builds every bench/bench_*.c)"; exit 1; }
# A random untied model: its greedy text depends on the whole context (a tied tiny model only
# repeats the last prompt token), so a wrong K/V anywhere shows in the output.
MODEL=$WORK/tiny-untied.gguf
"$CLLM" mkmodel --shape tiny --untied --vocab-from "$VOCAB" \
  --chat-template llama3 -o "$MODEL" 2>"$WORK/mkmodel.err" || { cat "$WORK/mkmodel.err"; echo "FAIL: mkmodel"; exit 1; }

# Sanitizer builds: slower, and their allocators keep freed memory in quarantine (RSS only reported).
extra=()
timeout_s=60
if grep -qa -e __asan_init -e __tsan_init "$CLLM"; then
  extra+=(--rss-report-only)
  timeout_s=300
  N=${N:-100}
  echo "note: a sanitizer build: the RSS figures are reported, not checked"
fi

N=${N:-200}
# shellcheck disable=SC2086
start_server "$WORK/serve.log" "$MODEL" --served-model-name tiny-untied -t 2 --max-model-len "$MML" \
  --num-blocks "$BLOCKS" --block-size 16 --max-num-seqs 32 --max-request-bytes "$MAX_BODY" --check-invariants \
  ${SOAK_SERVER_ARGS:-}
echo "server: ${SERVER_ENV:+$SERVER_ENV }cllm serve --max-model-len $MML --num-blocks $BLOCKS --block-size 16" \
  "--max-num-seqs 32 --max-request-bytes $MAX_BODY --check-invariants ${SOAK_SERVER_ARGS:-}(pid $SPID, port $PORT)"

"$SOAK" --url "$BASE" --server-pid "$SPID" -n "$N" -c "$C" --seed "$SEED" \
  --max-request-bytes "$MAX_BODY" --timeout "$timeout_s" "${extra[@]}" ${SOAK_ARGS:-}
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: bench_soak exited $rc"; fail=1; }
# the pool is far smaller than the prompts' blocks: cached prefixes must have been evicted
ev=$(metric cllm:prefix_cache_evictions_total)
case $ev in
  '' | *[!0-9]*) bad "no cllm:prefix_cache_evictions_total in /metrics (got '$ev')" ;;
  0) bad "cllm:prefix_cache_evictions_total is 0 after a soak that must evict" ;;
  *) ok "/metrics counted $ev prefix cache evictions" ;;
esac

if kill -0 "$SPID" 2>/dev/null; then
  kill -TERM "$SPID"
  for _ in $(seq 1 150); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SPID" 2>/dev/null && { echo "FAIL: the server still runs 15 s after SIGTERM"; kill -9 "$SPID"; fail=1; }
  wait "$SPID"; src=$?
  [ $src -eq 0 ] && echo "ok: the server shut down cleanly after the soak" ||
    { echo "FAIL: the server exited $src on SIGTERM: $(tail -3 "$WORK/serve.log")"; fail=1; }
else
  echo "FAIL: the server died: $(tail -5 "$WORK/serve.log")"
  fail=1
fi
nerr=$(grep -c "^cllm error" "$WORK/serve.log")
[ "$nerr" -eq 0 ] && echo "ok: no error line in the server log" ||
  { echo "FAIL: $nerr error lines in the server log:"; grep "^cllm error" "$WORK/serve.log" | head -10; fail=1; }
grep "^cllm warn" "$WORK/serve.log" | head -5
finish

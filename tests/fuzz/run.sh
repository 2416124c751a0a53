#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS TARGET...: runs each libFuzzer target BUILD_DIR/fuzz/TARGET for SECONDS
# seconds on its seed corpus tests/fuzz/corpus/TARGET/ (read only: new inputs go to
# BUILD_DIR/fuzz/work/TARGET/, crash inputs to BUILD_DIR/fuzz/artifacts/TARGET/), with the
# target's dictionary tests/fuzz/TARGET.dict when there is one. Every seed input runs first
# (libFuzzer loads the corpus before mutating), so each saved regression input is replayed.
# Fails if any target crashes, leaks, hits UB, times out on an input (-timeout) or runs past
# the memory limit; prints executions per target and in total (the numbers RELIABILITY.md
# records). Sanitizer options: halt on the first report; leaks detected at exit of each input.
set -uo pipefail
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
total=0
failed=()
for t in "$@"; do
  bin=$build/fuzz/$t
  seeds=$here/corpus/$t
  work=$build/fuzz/work/$t
  art=$build/fuzz/artifacts/$t
  log=$build/fuzz/logs/$t.log
  mkdir -p "$work" "$art" "$(dirname "$log")" "$seeds"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1
        -artifact_prefix="$art/")
  [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
  echo "fuzz: $t for ${seconds}s ($(ls "$seeds" | wc -l) seed inputs)"
  "$bin" "${args[@]}" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  runs=${runs:-0}
  total=$((total + runs))
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc) after $runs executions; log $log, inputs in $art:"
    grep -v '^#' "$log" | tail -n 60
    ls -l "$art"
  else
    echo "fuzz: $t ok: $runs executions, $(ls "$work" | wc -l) new corpus inputs in $work"
  fi
done
echo "fuzz: $total executions in total"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}"
  exit 1
fi

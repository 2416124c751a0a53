# tests/lib.sh: what the shell tests share. A test starts with
#   . "$(dirname "$0")/lib.sh" NAME "$@"
# (its own args: the path of the cllm binary, the shared data directory) and gets:
#   CLLM    absolute path of the cllm binary; BUILD its directory (the other binaries are beside it)
#   SHARED  the shared data directory; VOCAB the Llama 3 vocabulary GGUF in it
#   HERE    the tests/ directory
#   WORK    a fresh temporary directory, removed at exit, when every server that start_server
#           started (PIDS) is killed too
#   fail=0, ok MSG / bad MSG (bad sets fail=1), need TOOL... (FAIL and exit when one is missing)
#   start_server LOG ARGS...  `cllm serve ARGS --port P` on a free random port P, waits for its
#           ready line; sets SPID, PORT and BASE (http://127.0.0.1:PORT). Words in SERVER_ENV
#           (VAR=VALUE) are set for the server only.
#   metric NAME  the value of the first sample of NAME{...} in $BASE/metrics
#   finish  exits 1 if any check failed, else 0
set -u
CLLM=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
SHARED=$3
BUILD=$(dirname "$CLLM")
HERE=$(cd "$(dirname "$0")" && pwd)
VOCAB=$SHARED/reference/tokenizer/ggml-vocab-llama-bpe.gguf
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cllm-$1.XXXXXX")
PIDS=()
fail=0

ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
finish() { exit $fail; }

need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "FAIL: $t is required (scripts/setup.sh installs it)"; exit 1; }
  done
}

lib_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap lib_cleanup EXIT

start_server() {
  local log=$1 attempt
  shift
  for attempt in 1 2 3 4 5 6 7 8; do
    PORT=$((20000 + RANDOM % 40000))
    # shellcheck disable=SC2086
    env ${SERVER_ENV:-} "$CLLM" serve "$@" --port "$PORT" >"$log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 1 300); do
      grep -q "cllm: ready:" "$log" && { BASE=http://127.0.0.1:$PORT; return 0; }
      kill -0 "$SPID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    grep -q "cannot listen" "$log" || break # a port taken by someone else: try another
  done
  echo "FAIL: the server did not start:"
  cat "$log"
  exit 1
}

metric() { curl -s -m 10 "$BASE/metrics" | grep -F "$1{" | grep -v '^#' | head -1 | awk '{print $NF}'; }

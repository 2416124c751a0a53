#!/usr/bin/env bash
# test_generate.sh: `cllm generate` end to end on stories260K against llama.cpp's greedy text,
# plus the CLI's error handling (one line on stderr, non-zero exit, nothing on stdout).
# Args: path of the cllm binary, the shared data directory.
set -u
CLLM=$1
SHARED=$2
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

model=$SHARED/models/stories260K.gguf
expected=$SHARED/reference/stories260K/llama-completion_greedy_n200_once_upon_a_time.txt
out=$("$CLLM" generate -m "$model" -p "Once upon a time" -n 200 --temp 0 -t 2 2>gen.err)
rc=$?
[ $rc -eq 0 ] || bad "generate exited $rc: $(cat gen.err)"
# llama.cpp's file holds the prompt (with the tokenizer's leading space) and the completion.
want=$(sed -e '1s/^ //' "$expected")
got="Once upon a time$out"
if [ "$(printf '%s' "$got" | sed -e 's/[[:space:]]*$//')" = "$(printf '%s' "$want" | sed -e 's/[[:space:]]*$//')" ]; then
  ok "greedy 200 tokens match llama.cpp"
else
  bad "greedy text differs from llama.cpp"
  diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | head -20
fi
grep -q "tok/s" gen.err && ok "timing line on stderr" || bad "no timing line on stderr"

# errors: one clear line, exit code non-zero, nothing on stdout
check_err() {
  local what=$1; shift
  local so se rc
  so=$("$CLLM" "$@" 2>err.txt); rc=$?
  se=$(cat err.txt)
  if [ $rc -ne 0 ] && [ -z "$so" ] && [ "$(printf '%s\n' "$se" | wc -l)" -eq 1 ] && [ -n "$se" ]; then
    ok "$what: $se"
  else
    bad "$what: rc=$rc stdout='$so' stderr='$se'"
  fi
}
check_err "missing model file" generate -m /nonexistent.gguf -p hi
check_err "unknown flag" generate -m "$model" -p hi --bogus
check_err "missing prompt" generate -m "$model"
check_err "bad number" generate -m "$model" -p hi -n abc
check_err "not a gguf" generate -m "$expected" -p hi
check_err "unknown command" frobnicate
"$CLLM" generate --help | grep -q -- "--temp" && ok "generate --help" || bad "generate --help"
exit $fail

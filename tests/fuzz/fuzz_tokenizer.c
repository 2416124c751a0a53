/* fuzz_tokenizer.c: libFuzzer target for the tokenizer (tokenizer/tokenizer.h) on the two
 * reference vocabularies: Llama 3 byte-level BPE and Llama 2 SentencePiece
 * (CLLM_SHARED_DIR/reference/tokenizer/, loaded once in LLVMFuzzerInitialize and never changed).
 *
 * Input: byte 0 holds flags (bit 0: SPM instead of BPE, bit 1: parse_special, bit 2:
 * add_special), the rest is the text, any bytes. Checked on every input:
 *   - encode succeeds and every id is in the vocabulary; with add_special the first id is BOS
 *     when the vocabulary adds one;
 *   - the whole decode (special tokens rendered when they were parsed) gives the text back: BPE
 *     exactly as llama.cpp reads the bytes (each ill-formed byte as U+FFFD, so valid UTF-8 comes
 *     back unchanged); SPM (without special parsing) byte for byte modulo U+2581, as in
 *     test_tokenizer.c;
 *   - the streaming decoder, fed one id at a time, writes only valid UTF-8, and exactly the
 *     whole decode with each maximal ill-formed part replaced by U+FFFD;
 *   - no piece is longer than tokenizer_max_piece_len.
 * Any failure abort()s with what differed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REF_DIR CLLM_SHARED_DIR "/reference/tokenizer/"

static tokenizer_t *tok_bpe, *tok_spm;

static tokenizer_t *load_vocab(const char *path)
{
    gguf_t *g = NULL;
    tokenizer_t *tok = NULL;
    if (gguf_open(path, &g) != CLLM_OK || tokenizer_create(g, &tok) != CLLM_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", path, cllm_error_message());
        abort();
    }
    gguf_close(g); /* the tokenizer copies what it needs */
    return tok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tok_bpe = load_vocab(REF_DIR "ggml-vocab-llama-bpe.gguf");
    tok_spm = load_vocab(REF_DIR "ggml-vocab-llama-spm.gguf");
    return 0;
}

/* What llama.cpp's BPE reads from bytes: each code point decoded leniently, re-encoded. */
static size_t lenient_reading(const uint8_t *in, size_t len, char *out)
{
    size_t w = 0;
    for (size_t off = 0; off < len;) {
        uint32_t c;
        off += unicode_cpt_decode(in + off, len - off, &c);
        w += unicode_cpt_encode(c, (uint8_t *)out + w);
    }
    return w;
}

/* U+2581 read as a space (the SPM encoder writes spaces as U+2581). */
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

/* Each maximal ill-formed part of in replaced by U+FFFD (what the streaming decoder promises). */
static size_t strict_reading(const char *in, size_t len, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        if (unicode_utf8_check((const uint8_t *)in + i, len - i, &k) == UTF8_VALID) {
            memcpy(out + w, in + i, k);
            w += k;
        } else {
            memcpy(out + w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
        i += k ? k : 1;
    }
    return w;
}

static bool valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t k = 0;
        if (unicode_utf8_check((const uint8_t *)s + i, len - i, &k) != UTF8_VALID) return false;
        i += k;
    }
    return true;
}

static void dump(const char *what, const void *p, size_t n)
{
    fprintf(stderr, "%s (%zu bytes):", what, n);
    for (size_t i = 0; i < n && i < 256; i++) fprintf(stderr, " %02x", ((const uint8_t *)p)[i]);
    fprintf(stderr, "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const tokenizer_t *tok;
    bool spm, parse_special, add_special, render;
    const char *text;
    size_t len, n = 0, dlen = 0, slen = 0, cap, piece_max;
    int32_t *ids = NULL;
    char *dec = NULL, *stream, *want, *got;
    tokenizer_stream_t s;

    if (size < 1) return 0;
    spm = data[0] & 1;
    parse_special = data[0] & 2;
    add_special = data[0] & 4;
    render = parse_special; /* parsed control tokens come back as their text */
    tok = spm ? tok_spm : tok_bpe;
    text = (const char *)data + 1;
    len = size - 1;

    FUZZ_REQUIRE(tokenizer_encode(tok, text, len, add_special, parse_special, &ids, &n) == CLLM_OK, "encode failed");
    FUZZ_REQUIRE(ids != NULL, "encode gave no array");
    for (size_t i = 0; i < n; i++)
        FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < tokenizer_n_vocab(tok), "id %d out of the vocabulary", ids[i]);
    if (add_special && tokenizer_add_bos(tok))
        FUZZ_REQUIRE(n >= 1 && ids[0] == tokenizer_bos(tok), "add_special without BOS first");
    FUZZ_REQUIRE(tokenizer_decode(tok, ids, n, render, &dec, &dlen) == CLLM_OK, "decode failed");
    FUZZ_REQUIRE(dec[dlen] == '\0', "decode not NUL-terminated");

    /* round trip (without BOS/EOS, which decode as nothing or as their text) */
    want = malloc(3 * len + 16);
    got = malloc(3 * dlen + 16);
    FUZZ_REQUIRE(want && got, "out of memory");
    if (!add_special && !spm) {
        size_t wlen = lenient_reading(data + 1, len, want);
        if (wlen != dlen || memcmp(want, dec, dlen)) {
            dump("input", text, len);
            dump("decoded", dec, dlen);
            FUZZ_REQUIRE(0, "BPE: decode(encode(x)) is not x as llama.cpp reads it");
        }
    } else if (!add_special && !parse_special) {
        size_t na = spm_normalize(dec, dlen, got), nb = spm_normalize(text, len, want);
        if (na != nb || memcmp(got, want, na)) {
            dump("input", text, len);
            dump("decoded", dec, dlen);
            FUZZ_REQUIRE(0, "SPM: decode(encode(x)) is not x modulo U+2581");
        }
    }

    /* streaming, one id at a time */
    piece_max = tokenizer_max_piece_len(tok);
    cap = 3 * piece_max + 16;
    stream = malloc(n * cap + cap + 1);
    FUZZ_REQUIRE(stream != NULL, "out of memory");
    tokenizer_stream_init(&s, render);
    for (size_t i = 0; i < n; i++) {
        char piece[1];
        size_t w = tokenizer_stream_push(tok, &s, ids[i], stream + slen, cap);
        FUZZ_REQUIRE(w <= cap, "stream push wrote %zu > cap %zu", w, cap);
        slen += w;
        FUZZ_REQUIRE(tokenizer_token_to_bytes(tok, ids[i], true, piece, 0) <= piece_max, "piece of %d too long",
                     ids[i]);
    }
    slen += tokenizer_stream_flush(tok, &s, stream + slen, cap);
    if (!valid_utf8(stream, slen)) {
        dump("input", text, len);
        dump("stream", stream, slen);
        FUZZ_REQUIRE(0, "streamed text is not valid UTF-8");
    }
    {
        size_t glen = strict_reading(dec, dlen, got);
        if (glen != slen || memcmp(got, stream, slen)) {
            dump("input", text, len);
            dump("decoded, ill-formed parts replaced", got, glen);
            dump("streamed", stream, slen);
            FUZZ_REQUIRE(0, "streamed text differs from the whole decode");
        }
    }
    free(stream);
    free(want);
    free(got);
    free(dec);
    free(ids);
    return 0;
}

/* bpe.h: byte-level BPE encoding (tokenizer.ggml.model "gpt2"), as llama.cpp's
 * llm_tokenizer_bpe: the text is split into words by the pre-tokenizer's regex (implemented
 * by hand over code points), each word's bytes are mapped to GPT-2's byte-level characters,
 * then the adjacent pair with the lowest merge rank is merged again and again (ties: the
 * leftmost), and the resulting pieces are looked up as tokens.
 *
 * Internal to src/tokenizer/. A bpe_t is immutable after bpe_init; all per-call state lives in
 * the caller's scratch, so concurrent calls with separate scratches are safe. */
#ifndef CLLM_TOKENIZER_BPE_H
#define CLLM_TOKENIZER_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/vocab.h"

typedef enum {
    BPE_PRE_GPT2 = 0, /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    BPE_PRE_LLAMA3,   /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                         ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    BPE_PRE_QWEN2,    /* as LLAMA3 with \p{N} (one digit per word) */
} bpe_pre_t;

typedef struct {
    const vocab_t *vocab;
    bpe_pre_t pre;
    bool ignore_merges;    /* a word that is a token as a whole is taken as is (Llama 3) */
    uint8_t enc[256][2];   /* (256, enc_len) UTF-8 of the byte-level character of each byte */
    uint8_t enc_len[256];  /* 1 or 2 */
    int32_t byte_tok[256]; /* token of each byte's character, -1 if none */
    int16_t dec[324];      /* byte of each byte-level code point below 324, -1 for the others */
} bpe_t;

/* Fills the byte maps (GPT-2's bytes_to_unicode) and the byte tokens. */
void bpe_init(bpe_t *b, const vocab_t *v, bpe_pre_t pre, bool ignore_merges);

typedef struct {
    int32_t id;         /* token of the piece, -1 if it is not one */
    int32_t prev, next; /* neighbours in the word, -1 at the ends */
    uint32_t start, n;  /* bytes [start, start + n) of the encoded word; n == 0: merged away */
} bpe_symbol_t;

typedef struct {
    int32_t rank;        /* merge rank: lower first */
    int32_t left, right; /* symbol indices */
    uint32_t size;       /* bytes of left + right when queued: a stale entry no longer matches */
    int32_t merged;      /* token of the merged piece */
} bpe_bigram_t;

/* Per-call working memory, grown as needed; zero-initialize, free with bpe_scratch_free. */
typedef struct {
    uint32_t *cpt; /* (cpt_cap) code points of the text */
    size_t cpt_cap;
    uint8_t *flags; /* (flags_cap) their UNICODE_* flags */
    size_t flags_cap;
    uint8_t *word; /* (word_cap) the byte-level encoded word */
    size_t word_cap;
    bpe_symbol_t *sym; /* (sym_cap) */
    size_t sym_cap;
    bpe_bigram_t *heap; /* (heap_cap) binary min-heap by (rank, left) */
    size_t heap_cap, heap_n;
} bpe_scratch_t;

void bpe_scratch_free(bpe_scratch_t *s);

/* Appends the tokens of text (len bytes, any bytes: invalid UTF-8 reads as U+FFFD, as
 * llama.cpp) to out. CLLM_ERR_NOMEM or CLLM_ERR_RANGE (2^31 bytes or more) on failure. */
status_t bpe_encode(const bpe_t *b, const char *text, size_t len, bpe_scratch_t *scr, tokvec_t *out);

/* Calls fn(ctx, start, end) for each pre-tokenizer word of the code points cpt[0, n) (flags:
 * their UNICODE_* flags), in order; the words tile [0, n). For tests and encode. */
void bpe_split(bpe_pre_t pre, const uint32_t *cpt, const uint8_t *flags, size_t n,
               void (*fn)(void *ctx, size_t start, size_t end), void *ctx);

/* End of the pre-tokenizer word that starts at pos (< n). */
size_t bpe_word_end(bpe_pre_t pre, const uint32_t *cpt, const uint8_t *flags, size_t pos, size_t n);

#endif

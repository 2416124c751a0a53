/* spm.h: SentencePiece-style encoding (tokenizer.ggml.model "llama"), as llama.cpp's
 * llm_tokenizer_spm: spaces become U+2581, the text is split into UTF-8 characters, the adjacent
 * pair whose concatenation is the highest-scoring token is merged again and again (ties: the
 * leftmost), and pieces that are not tokens fall back to <0xNN> byte tokens.
 *
 * Internal to src/tokenizer/. An spm_t is immutable after spm_init; all per-call state lives in
 * the caller's scratch, so concurrent calls with separate scratches are safe. */
#ifndef CLLM_TOKENIZER_SPM_H
#define CLLM_TOKENIZER_SPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/vocab.h"

typedef struct {
    int32_t prev, next; /* neighbours in the symbol chain, -1 at the ends */
    uint32_t start, n;  /* bytes [start, start + n) of the escaped text; n == 0: merged away */
} spm_symbol_t;

typedef struct {
    float score;         /* score of the merged token */
    int32_t left, right; /* symbol indices */
    uint32_t size;       /* bytes of left + right when queued: a stale entry no longer matches */
} spm_bigram_t;

typedef struct {
    const vocab_t *vocab;
    int32_t byte_tok[256]; /* token of each byte for the fallback (<0xNN>, else the 1-byte text, else
                              unknown), -1 to drop the byte */
    uint64_t *pairs;       /* (pair_mask + 1) set of hashes of the adjacent character pairs inside
                              token texts (0 = free slot); no merge can join two characters whose
                              pair is not in it, so the text is cut there and each piece merged
                              on its own (same result, small queues) */
    size_t pair_mask;
} spm_t;

/* Builds the byte fallback table and the pair set. */
status_t spm_init(spm_t *s, const vocab_t *v, int32_t unk);
void spm_free(spm_t *s);

/* Per-call working memory, grown as needed; zero-initialize, free with spm_scratch_free. */
typedef struct {
    char *text; /* (text_cap) the escaped text */
    size_t text_cap;
    spm_symbol_t *sym; /* (sym_cap) */
    size_t sym_cap;
    spm_bigram_t *heap; /* (heap_cap) binary max-heap by (score, -left) */
    size_t heap_cap, heap_n;
} spm_scratch_t;

void spm_scratch_free(spm_scratch_t *s);

/* Appends the tokens of text (len bytes, any bytes) to out. space_prefix: put a space (U+2581)
 * before the text. CLLM_ERR_NOMEM or CLLM_ERR_RANGE (a text over 1 GiB) on failure. */
status_t spm_encode(const spm_t *s, const char *text, size_t len, bool space_prefix, spm_scratch_t *scr, tokvec_t *out);

#endif

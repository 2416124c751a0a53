/* vocab.h: the vocabulary shared by the SPM and BPE encoders (internal to src/tokenizer/).
 *
 * Owns the token texts (copied out of the GGUF into one pool), scores and attributes, an
 * open-addressing map text -> id, and for BPE an open-addressing map (left id, right id) ->
 * (merge rank, merged id). Also the growable buffers the encoders use as per-call scratch.
 *
 * Invariants: after vocab_load() (and vocab_load_merges()) nothing changes, so every lookup is
 * safe from many threads. Ids in the maps are in [0, n_tokens). Duplicate texts resolve to the
 * highest id (llama.cpp's token_to_id keeps the last); duplicate merges keep the first (lowest
 * rank), as llama.cpp's bpe_ranks. Empty texts are never in the text map. */
#ifndef CLLM_TOKENIZER_VOCAB_H
#define CLLM_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "model/gguf.h"

/* Token attributes, from tokenizer.ggml.token_type (GGUF / llama.cpp token types 1..6). */
#define TOKEN_ATTR_NORMAL 0x01       /* type 1 (also when token_type is absent) */
#define TOKEN_ATTR_UNKNOWN 0x02      /* type 2 */
#define TOKEN_ATTR_CONTROL 0x04      /* type 3 */
#define TOKEN_ATTR_USER_DEFINED 0x08 /* type 4 */
#define TOKEN_ATTR_UNUSED 0x10       /* type 5 */
#define TOKEN_ATTR_BYTE 0x20         /* type 6 */
/* any other type: attribute 0 (undefined) */

typedef struct {
    uint64_t key;   /* (left id << 32) | right id; VOCAB_MERGE_EMPTY when the slot is free */
    int32_t rank;   /* position in tokenizer.ggml.merges: lower merges first */
    int32_t merged; /* id of the text left+right, or -1 if that is not a token */
} vocab_merge_t;

#define VOCAB_MERGE_EMPTY UINT64_MAX

typedef struct {
    int32_t n_tokens;
    char *pool; /* (pool_size) every token text back to back, not NUL-terminated */
    size_t pool_size;
    size_t *text_off;   /* (n_tokens) where each text starts in pool */
    uint32_t *text_len; /* (n_tokens) its length in bytes */
    float *score;       /* (n_tokens) SPM merge scores; 0 when absent */
    uint8_t *attr;      /* (n_tokens) TOKEN_ATTR_* */
    int32_t *map_id;    /* (map_mask + 1) text map: token id, or -1 for a free slot */
    uint32_t *map_hash; /* (map_mask + 1) low bits of the text's hash, to skip most memcmps */
    size_t map_mask;
    vocab_merge_t *merge; /* (merge_mask + 1) merge map; NULL without merges */
    size_t merge_mask;
    size_t n_merges;  /* merges in the map */
    uint32_t max_len; /* longest token text */
} vocab_t;

/* Loads tokenizer.ggml.tokens, .scores (optional) and .token_type (optional) and builds the
 * text map. On error the vocab is left empty (vocab_free is still safe). */
status_t vocab_load(vocab_t *v, const gguf_t *g);
/* Loads tokenizer.ggml.merges ("left right" strings) into the merge map. Merges whose halves
 * are not both tokens can never apply to token-shaped symbols; they are skipped with a warning. */
status_t vocab_load_merges(vocab_t *v, const gguf_t *g);
void vocab_free(vocab_t *v);

static inline const char *vocab_text(const vocab_t *v, int32_t id) { return v->pool + v->text_off[id]; }

/* Id of the token whose text is exactly (text, len), or -1. */
int32_t vocab_find(const vocab_t *v, const void *text, size_t len);

/* The merge of the adjacent tokens (left, right): true and *m filled, or false. */
static inline bool vocab_merge_find(const vocab_t *v, int32_t left, int32_t right, const vocab_merge_t **m)
{
    uint64_t key, h;
    size_t i;

    if (!v->merge || left < 0 || right < 0) return false;
    key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    h = key * 0x9E3779B97F4A7C15ull;
    for (i = (size_t)(h >> 32) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        if (v->merge[i].key == key) {
            *m = &v->merge[i];
            return true;
        }
        if (v->merge[i].key == VOCAB_MERGE_EMPTY) return false;
    }
}

/* 64-bit hash of a byte string (not cryptographic). */
uint64_t vocab_hash(const void *data, size_t len);

/* Makes *buf hold at least need elements of elem bytes (grows geometrically; *cap counts
 * elements). False on overflow or out of memory (the old buffer stays valid). */
bool vocab_reserve(void **buf, size_t *cap, size_t need, size_t elem);

/* A growable list of token ids: what the encoders append to. */
typedef struct {
    int32_t *ids; /* (cap) */
    size_t n, cap;
    bool oom; /* an append failed: the encode call reports CLLM_ERR_NOMEM */
} tokvec_t;

static inline void tokvec_push(tokvec_t *tv, int32_t id)
{
    if (tv->n == tv->cap && !vocab_reserve((void **)&tv->ids, &tv->cap, tv->n + 1, sizeof(int32_t))) {
        tv->oom = true;
        return;
    }
    tv->ids[tv->n++] = id;
}

#endif

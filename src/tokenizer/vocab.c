/* vocab.c: loading the vocabulary and merges from GGUF metadata, and the lookups (see vocab.h).
 *
 * Every array read from the GGUF is checked for its element type and count before use; a
 * mismatch is a CLLM_ERR_FORMAT naming the key. Both maps use open addressing with linear
 * probing and stay at most about two-thirds full. */
#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TOKEN_TYPE "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

uint64_t vocab_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0x243F6A8885A308D3ull ^ ((uint64_t)len * 0x9E3779B97F4A7C15ull);
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len) {
        w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0x94D049BB133111EBull;
        h ^= h >> 31;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

bool vocab_reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    size_t n = *cap ? *cap : 16;
    void *p;

    if (need <= *cap) return true;
    while (n < need) {
        if (n > SIZE_MAX / 2) return false;
        n *= 2;
    }
    if (n > SIZE_MAX / elem) return false;
    p = realloc(*buf, n * elem);
    if (!p) return false;
    *buf = p;
    *cap = n;
    return true;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n) p *= 2;
    return p;
}

int32_t vocab_find(const vocab_t *v, const void *text, size_t len)
{
    const uint64_t h = vocab_hash(text, len);
    const uint32_t h32 = (uint32_t)h;
    size_t i;
    int32_t id;

    if (!v->map_id) return -1;
    for (i = (size_t)(h >> 32) & v->map_mask; (id = v->map_id[i]) >= 0; i = (i + 1) & v->map_mask) {
        if (v->map_hash[i] == h32 && v->text_len[id] == len && !memcmp(vocab_text(v, id), text, len)) return id;
    }
    return -1;
}

/* Adds id under its text; a later id with the same text replaces the earlier one. */
static void vocab_map_insert(vocab_t *v, int32_t id)
{
    const char *text = vocab_text(v, id);
    const size_t len = v->text_len[id];
    const uint64_t h = vocab_hash(text, len);
    const uint32_t h32 = (uint32_t)h;
    size_t i;
    int32_t old;

    for (i = (size_t)(h >> 32) & v->map_mask; (old = v->map_id[i]) >= 0; i = (i + 1) & v->map_mask) {
        if (v->map_hash[i] == h32 && v->text_len[old] == len && !memcmp(vocab_text(v, old), text, len)) break;
    }
    v->map_id[i] = id;
    v->map_hash[i] = h32;
}

/* Reads element i of an integer array of any integer type as int64. */
static int64_t arr_int(gguf_type_t t, const void *data, uint64_t i)
{
    const uint8_t *p = data;
    switch (t) {
    case GGUF_TYPE_UINT8: return p[i];
    case GGUF_TYPE_INT8: return (int8_t)p[i];
    case GGUF_TYPE_UINT16: {
        uint16_t x;
        memcpy(&x, p + 2 * i, 2);
        return x;
    }
    case GGUF_TYPE_INT16: {
        int16_t x;
        memcpy(&x, p + 2 * i, 2);
        return x;
    }
    case GGUF_TYPE_UINT32: {
        uint32_t x;
        memcpy(&x, p + 4 * i, 4);
        return x;
    }
    case GGUF_TYPE_INT32: {
        int32_t x;
        memcpy(&x, p + 4 * i, 4);
        return x;
    }
    case GGUF_TYPE_UINT64: {
        uint64_t x;
        memcpy(&x, p + 8 * i, 8);
        return x > INT64_MAX ? -1 : (int64_t)x;
    }
    case GGUF_TYPE_INT64: {
        int64_t x;
        memcpy(&x, p + 8 * i, 8);
        return x;
    }
    default: return 0;
    }
}

static bool is_int_type(gguf_type_t t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_INT16 ||
           t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

/* Index of an array key with n_want elements (n_want 0: any count), -1 if absent. */
static status_t find_array(const gguf_t *g, const char *key, uint64_t n_want, int64_t *idx)
{
    *idx = gguf_find_key(g, key);
    if (*idx < 0) return CLLM_OK;
    if (gguf_kv_type(g, *idx) != GGUF_TYPE_ARRAY)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is not an array", key);
    if (n_want && gguf_arr_n(g, *idx) != n_want)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s has %llu entries but there are %llu tokens", key,
                          (unsigned long long)gguf_arr_n(g, *idx), (unsigned long long)n_want);
    return CLLM_OK;
}

static uint8_t attr_from_type(int64_t type)
{
    switch (type) {
    case 1: return TOKEN_ATTR_NORMAL;
    case 2: return TOKEN_ATTR_UNKNOWN;
    case 3: return TOKEN_ATTR_CONTROL;
    case 4: return TOKEN_ATTR_USER_DEFINED;
    case 5: return TOKEN_ATTR_UNUSED;
    case 6: return TOKEN_ATTR_BYTE;
    default: return 0;
    }
}

status_t vocab_load(vocab_t *v, const gguf_t *g)
{
    int64_t idx_tok, idx_score, idx_type;
    uint64_t n;
    size_t total = 0, off = 0, map_cap;
    status_t st;

    memset(v, 0, sizeof(*v));
    if ((st = find_array(g, KEY_TOKENS, 0, &idx_tok)) != CLLM_OK) return st;
    if (idx_tok < 0) return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is missing", KEY_TOKENS);
    if (gguf_arr_type(g, idx_tok) != GGUF_TYPE_STRING)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is not an array of strings", KEY_TOKENS);
    n = gguf_arr_n(g, idx_tok);
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s has %llu tokens", KEY_TOKENS, (unsigned long long)n);
    if ((st = find_array(g, KEY_SCORES, n, &idx_score)) != CLLM_OK) return st;
    if (idx_score >= 0 && gguf_arr_type(g, idx_score) != GGUF_TYPE_FLOAT32)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is not an array of float32", KEY_SCORES);
    if ((st = find_array(g, KEY_TOKEN_TYPE, n, &idx_type)) != CLLM_OK) return st;
    if (idx_type >= 0 && !is_int_type(gguf_arr_type(g, idx_type)))
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is not an array of integers", KEY_TOKEN_TYPE);

    for (uint64_t i = 0; i < n; i++) {
        gguf_str_t s = gguf_arr_str(g, idx_tok, i);
        if (s.len > UINT32_MAX / 2 || total > SIZE_MAX - s.len)
            return cllm_error(CLLM_ERR_FORMAT, "tokenizer: token %llu is too long", (unsigned long long)i);
        total += s.len;
    }
    v->n_tokens = (int32_t)n;
    map_cap = pow2_at_least((size_t)n * 2);
    v->pool = malloc(total ? total : 1);
    v->pool_size = total;
    v->text_off = malloc((size_t)n * sizeof(size_t));
    v->text_len = malloc((size_t)n * sizeof(uint32_t));
    v->score = calloc((size_t)n, sizeof(float));
    v->attr = malloc((size_t)n);
    v->map_id = malloc(map_cap * sizeof(int32_t));
    v->map_hash = malloc(map_cap * sizeof(uint32_t));
    if (!v->pool || !v->text_off || !v->text_len || !v->score || !v->attr || !v->map_id || !v->map_hash) {
        vocab_free(v);
        return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    }
    v->map_mask = map_cap - 1;
    memset(v->map_id, 0xFF, map_cap * sizeof(int32_t)); /* all -1 */

    for (uint64_t i = 0; i < n; i++) {
        gguf_str_t s = gguf_arr_str(g, idx_tok, i);
        if (s.len) memcpy(v->pool + off, s.ptr, s.len);
        v->text_off[i] = off;
        v->text_len[i] = (uint32_t)s.len;
        if (s.len > v->max_len) v->max_len = (uint32_t)s.len;
        off += s.len;
        v->attr[i] = idx_type >= 0 ? attr_from_type(arr_int(gguf_arr_type(g, idx_type), gguf_arr_data(g, idx_type), i))
                                   : TOKEN_ATTR_NORMAL;
    }
    if (idx_score >= 0) memcpy(v->score, gguf_arr_data(g, idx_score), (size_t)n * sizeof(float));
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->text_len[i]) vocab_map_insert(v, i);
    return CLLM_OK;
}

status_t vocab_load_merges(vocab_t *v, const gguf_t *g)
{
    int64_t idx;
    uint64_t n, n_skipped = 0;
    size_t cap, buf_cap = 0;
    char *buf = NULL;
    status_t st;

    if ((st = find_array(g, KEY_MERGES, 0, &idx)) != CLLM_OK) return st;
    if (idx < 0)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is missing (needed by a BPE vocabulary)", KEY_MERGES);
    if (gguf_arr_type(g, idx) != GGUF_TYPE_STRING)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s is not an array of strings", KEY_MERGES);
    n = gguf_arr_n(g, idx);
    if (n > (uint64_t)INT32_MAX / 4)
        return cllm_error(CLLM_ERR_FORMAT, "tokenizer: %s has %llu merges", KEY_MERGES, (unsigned long long)n);
    cap = pow2_at_least((size_t)n + (size_t)n / 2 + 1);
    v->merge = malloc(cap * sizeof(vocab_merge_t));
    if (!v->merge) return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory for %llu merges", (unsigned long long)n);
    v->merge_mask = cap - 1;
    for (size_t i = 0; i < cap; i++) v->merge[i].key = VOCAB_MERGE_EMPTY;

    for (uint64_t r = 0; r < n; r++) {
        gguf_str_t s = gguf_arr_str(g, idx, r);
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL; /* as llama.cpp: find(' ', 1) */
        size_t ll, rl;
        int32_t left, right;
        uint64_t key, h;
        size_t i;

        if (!sp) {
            n_skipped++;
            continue;
        }
        ll = (size_t)(sp - s.ptr);
        rl = s.len - ll - 1;
        left = vocab_find(v, s.ptr, ll);
        right = vocab_find(v, sp + 1, rl);
        if (left < 0 || right < 0) {
            n_skipped++;
            continue;
        }
        key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
        h = key * 0x9E3779B97F4A7C15ull;
        i = (size_t)(h >> 32) & v->merge_mask;
        while (v->merge[i].key != VOCAB_MERGE_EMPTY && v->merge[i].key != key) i = (i + 1) & v->merge_mask;
        if (v->merge[i].key == key) continue; /* a duplicate: the first (lower rank) stays */
        if (!vocab_reserve((void **)&buf, &buf_cap, ll + rl, 1)) {
            free(buf);
            return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory reading merges");
        }
        memcpy(buf, s.ptr, ll);
        memcpy(buf + ll, sp + 1, rl);
        v->merge[i].key = key;
        v->merge[i].rank = (int32_t)r;
        v->merge[i].merged = vocab_find(v, buf, ll + rl);
        v->n_merges++;
    }
    free(buf);
    if (n_skipped)
        log_warn("tokenizer: %llu of %llu merges name a piece that is not a token; they are ignored",
                 (unsigned long long)n_skipped, (unsigned long long)n);
    return CLLM_OK;
}

void vocab_free(vocab_t *v)
{
    free(v->pool);
    free(v->text_off);
    free(v->text_len);
    free(v->score);
    free(v->attr);
    free(v->map_id);
    free(v->map_hash);
    free(v->merge);
    memset(v, 0, sizeof(*v));
}

/* spm.c: SentencePiece-style encoding (see spm.h).
 *
 * The merge queue holds candidate pairs; a pair is stale when either symbol changed since it
 * was queued (then left.n + right.n no longer equals its size, or one of them is empty), which
 * is exactly llama.cpp's test. Symbols only grow to the right, so a symbol's start never moves.
 *
 * Two adjacent characters that appear next to each other in no token text can never end up in
 * one symbol, so the text is cut there and every piece is merged with its own small queue: the
 * merges inside a piece happen in the same relative order as in one queue for the whole text
 * (score, then position), so the tokens are the same, without a queue of millions of entries.
 *
 * llama.cpp also keeps a map of merged texts to resegment pieces that are not tokens; merged
 * pieces are always tokens and a single character can never equal a merged text, so that path
 * is never taken and is not needed here. */
#include "tokenizer/spm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

void spm_scratch_free(spm_scratch_t *s)
{
    free(s->text);
    free(s->sym);
    free(s->heap);
    memset(s, 0, sizeof(*s));
}

/* True when a should come out of the queue before b: higher score, then leftmost. */
static inline bool bigram_before(const spm_bigram_t *a, const spm_bigram_t *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bool heap_push(spm_scratch_t *s, spm_bigram_t b)
{
    size_t i;

    if (!vocab_reserve((void **)&s->heap, &s->heap_cap, s->heap_n + 1, sizeof(spm_bigram_t))) return false;
    i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = b;
    return true;
}

static spm_bigram_t heap_pop(spm_scratch_t *s)
{
    spm_bigram_t top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!bigram_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* Queues the pair (left, right) if their concatenation is a token. */
static bool try_add_bigram(const vocab_t *v, spm_scratch_t *s, int32_t left, int32_t right)
{
    spm_bigram_t b;
    int32_t id;

    if (left < 0 || right < 0) return true;
    b.size = s->sym[left].n + s->sym[right].n;
    id = vocab_find(v, s->text + s->sym[left].start, b.size);
    if (id < 0) return true;
    b.score = v->score[id];
    b.left = left;
    b.right = right;
    return heap_push(s, b);
}

/* Hash of the two characters a+b (n bytes) as a pair-set key (never 0). */
static inline uint64_t pair_key(const char *ab, size_t n)
{
    uint64_t h = vocab_hash(ab, n);
    return h ? h : 1;
}

static void pair_insert(spm_t *s, uint64_t key)
{
    size_t i = (size_t)(key >> 40) & s->pair_mask;
    while (s->pairs[i] && s->pairs[i] != key) i = (i + 1) & s->pair_mask;
    s->pairs[i] = key;
}

static bool pair_present(const spm_t *s, const char *ab, size_t n)
{
    const uint64_t key = pair_key(ab, n);
    size_t i;
    for (i = (size_t)(key >> 40) & s->pair_mask; s->pairs[i]; i = (i + 1) & s->pair_mask)
        if (s->pairs[i] == key) return true;
    return false;
}

/* Calls fn on every adjacent character pair of every token text (characters split as the
 * encoder splits text: by lead byte, the last one possibly short). */
static size_t for_each_pair(spm_t *s, const vocab_t *v, bool insert)
{
    size_t count = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const char *t = vocab_text(v, id);
        const size_t n = v->text_len[id];
        size_t prev = 0, prev_len = 0;
        for (size_t off = 0; off < n;) {
            size_t len = unicode_len_utf8((uint8_t)t[off]);
            if (len > n - off) len = n - off;
            if (prev_len) {
                if (insert) pair_insert(s, pair_key(t + prev, prev_len + len));
                count++;
            }
            prev = off;
            prev_len = len;
            off += len;
        }
    }
    return count;
}

status_t spm_init(spm_t *s, const vocab_t *v, int32_t unk)
{
    size_t n_pairs, cap = 16;

    memset(s, 0, sizeof(*s));
    s->vocab = v;
    for (int c = 0; c < 256; c++) {
        char hex[7];
        const char byte = (char)c;
        int32_t id;
        snprintf(hex, sizeof(hex), "<0x%02X>", c);
        id = vocab_find(v, hex, 6);
        if (id < 0) id = vocab_find(v, &byte, 1);
        s->byte_tok[c] = id >= 0 ? id : unk;
    }
    n_pairs = for_each_pair(s, v, false);
    while (cap < 2 * n_pairs) cap *= 2;
    s->pairs = calloc(cap, sizeof(uint64_t));
    if (!s->pairs) return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory");
    s->pair_mask = cap - 1;
    for_each_pair(s, v, true);
    return CLLM_OK;
}

void spm_free(spm_t *s)
{
    free(s->pairs);
    memset(s, 0, sizeof(*s));
}

/* Merges the symbols [a, b) (a chain on its own) and appends their tokens. */
static bool encode_piece(const spm_t *s, spm_scratch_t *scr, size_t a, size_t b, tokvec_t *out)
{
    const vocab_t *v = s->vocab;

    scr->sym[a].prev = -1;
    scr->sym[b - 1].next = -1;
    scr->heap_n = 0;
    for (size_t i = a + 1; i < b; i++)
        if (!try_add_bigram(v, scr, (int32_t)i - 1, (int32_t)i)) return false;
    while (scr->heap_n) {
        spm_bigram_t bg = heap_pop(scr);
        spm_symbol_t *l = &scr->sym[bg.left], *r = &scr->sym[bg.right];

        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) scr->sym[r->next].prev = bg.left;
        if (!try_add_bigram(v, scr, l->prev, bg.left) || !try_add_bigram(v, scr, bg.left, l->next)) return false;
    }
    for (int32_t i = (int32_t)a; i != -1; i = scr->sym[i].next) {
        const spm_symbol_t *sym = &scr->sym[i];
        int32_t id = vocab_find(v, scr->text + sym->start, sym->n);
        if (id >= 0) {
            tokvec_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < sym->n; j++) {
            int32_t bt = s->byte_tok[(uint8_t)scr->text[sym->start + j]];
            if (bt >= 0) tokvec_push(out, bt);
        }
    }
    return true;
}

status_t spm_encode(const spm_t *s, const char *text, size_t len, bool space_prefix, spm_scratch_t *scr, tokvec_t *out)
{
    static const char escaped_space[3] = { '\xE2', '\x96', '\x81' }; /* U+2581 */
    size_t n_text = 0, n_sym = 0;

    /* escape: ' ' -> U+2581 (3 bytes), so the text grows at most 3x */
    if (len > ((size_t)1 << 30)) return cllm_error(CLLM_ERR_RANGE, "tokenizer: text of %zu bytes is too long", len);
    if (!vocab_reserve((void **)&scr->text, &scr->text_cap, 3 * len + 3, 1)) goto oom;
    if (space_prefix) {
        memcpy(scr->text, escaped_space, 3);
        n_text = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(scr->text + n_text, escaped_space, 3);
            n_text += 3;
        } else {
            scr->text[n_text++] = text[i];
        }
    }
    if (n_text == 0) return CLLM_OK;

    /* one symbol per UTF-8 character (by the lead byte; the last one may be cut short) */
    if (!vocab_reserve((void **)&scr->sym, &scr->sym_cap, n_text, sizeof(spm_symbol_t))) goto oom;
    for (size_t off = 0; off < n_text;) {
        size_t n = unicode_len_utf8((uint8_t)scr->text[off]);
        spm_symbol_t *sym = &scr->sym[n_sym];
        if (n > n_text - off) n = n_text - off;
        sym->start = (uint32_t)off;
        sym->n = (uint32_t)n;
        sym->prev = (int32_t)n_sym - 1;
        off += n;
        sym->next = off == n_text ? -1 : (int32_t)n_sym + 1;
        n_sym++;
    }

    /* merge each run of characters that tokens can join, on its own */
    for (size_t a = 0, b; a < n_sym; a = b) {
        for (b = a + 1; b < n_sym; b++) {
            const spm_symbol_t *l = &scr->sym[b - 1];
            if (!pair_present(s, scr->text + l->start, l->n + scr->sym[b].n)) break;
        }
        if (!encode_piece(s, scr, a, b, out)) goto oom;
    }
    if (out->oom) goto oom;
    return CLLM_OK;
oom:
    return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
}

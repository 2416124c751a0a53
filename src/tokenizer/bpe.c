/* bpe.c: byte-level BPE encoding and the pre-tokenizer state machines (see bpe.h).
 *
 * The word splitters follow llama.cpp's hand-written matchers of the same regexes
 * (unicode_regex_split_custom_gpt2 / _llama3), alternative by alternative, over the code points
 * of one text fragment; positions past the fragment's end have no class at all.
 *
 * Merging works on token ids: every merge names two tokens (vocab_load_merges keeps only
 * those), so a pair can merge only when both of its pieces are tokens, and the merge table
 * gives the merged token directly. A queued pair is stale when either symbol changed since
 * (then left.n + right.n differs from its size, or one is empty) - llama.cpp's text test. */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

#define IN_RANGE 0x80 /* a class bit every position inside the fragment has */

void bpe_init(bpe_t *b, const vocab_t *v, bpe_pre_t pre, bool ignore_merges)
{
    int next = 256;

    memset(b, 0, sizeof(*b));
    b->vocab = v;
    b->pre = pre;
    b->ignore_merges = ignore_merges;
    for (int i = 0; i < 324; i++) b->dec[i] = -1;
    /* printable Latin-1 bytes stand for themselves; the rest get 256, 257, ... in byte order */
    for (int c = 0; c < 256; c++) {
        uint32_t cpt;
        uint8_t u[4];
        size_t n;

        if ((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))
            cpt = (uint32_t)c;
        else
            cpt = (uint32_t)next++;
        n = unicode_cpt_encode(cpt, u);
        memcpy(b->enc[c], u, n);
        b->enc_len[c] = (uint8_t)n;
        b->dec[cpt] = (int16_t)c;
        b->byte_tok[c] = vocab_find(v, u, n);
    }
}

void bpe_scratch_free(bpe_scratch_t *s)
{
    free(s->cpt);
    free(s->flags);
    free(s->word);
    free(s->sym);
    free(s->heap);
    memset(s, 0, sizeof(*s));
}

/* --- pre-tokenizers --- */

static inline uint32_t lower_ascii(uint32_t c) { return c - 'A' < 26u ? c + 32 : c; }

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at pos (cpt[pos] == '\''): the match length, or 0. Only ASCII
 * letters lowercase to these, so an ASCII fold is llama.cpp's unicode_tolower here. */
static size_t match_contraction(const uint32_t *cpt, size_t pos, size_t n, bool fold)
{
    uint32_t a, b;

    if (pos + 1 >= n) return 0;
    a = fold ? lower_ascii(cpt[pos + 1]) : cpt[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= n) return 0;
    b = fold ? lower_ascii(cpt[pos + 2]) : cpt[pos + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* Class of position p of a fragment of n code points: IN_RANGE plus its flags, 0 past the end. */
static inline uint8_t flags_at(const uint8_t *flags, size_t p, size_t n)
{
    return p < n ? (uint8_t)(flags[p] | IN_RANGE) : (uint8_t)0;
}

#define FLAGS_AT(p) flags_at(flags, (p), n)
#define NOT_WLN(f) (!((f) & (UNICODE_SPACE | UNICODE_LETTER | UNICODE_NUMBER)))

static size_t word_end_llama3(const uint32_t *cpt, const uint8_t *flags, size_t pos, size_t n, size_t max_digits)
{
    const uint32_t c = cpt[pos];
    const uint8_t f = FLAGS_AT(pos);
    uint8_t f2;
    size_t p, n_ws, last_rn;

    if (c == '\'') {
        size_t m = match_contraction(cpt, pos, n, true);
        if (m) return pos + m;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!(c == '\r' || c == '\n' || (f & UNICODE_NUMBER)) &&
        ((f & UNICODE_LETTER) || (FLAGS_AT(pos + 1) & UNICODE_LETTER))) {
        p = pos + 1;
        while (FLAGS_AT(p) & UNICODE_LETTER) p++;
        return p;
    }
    /* \p{N}{1,3} (Qwen2: \p{N}) */
    if (f & UNICODE_NUMBER) {
        p = pos + 1;
        while (p < pos + max_digits && (FLAGS_AT(p) & UNICODE_NUMBER)) p++;
        return p;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    f2 = c == ' ' ? FLAGS_AT(pos + 1) : f;
    if (NOT_WLN(f2)) {
        p = pos + (c == ' ');
        while (NOT_WLN(f2) && f2) f2 = FLAGS_AT(++p);
        while (p < n && (cpt[p] == '\r' || cpt[p] == '\n')) p++;
        return p;
    }
    n_ws = 0;
    last_rn = 0;
    while (FLAGS_AT(pos + n_ws) & UNICODE_SPACE) {
        if (cpt[pos + n_ws] == '\r' || cpt[pos + n_ws] == '\n') last_rn = pos + n_ws + 1;
        n_ws++;
    }
    if (last_rn > 0) return last_rn;                       /* \s*[\r\n]+ */
    if (n_ws > 1 && pos + n_ws < n) return pos + n_ws - 1; /* \s+(?!\S) */
    if (n_ws > 0) return pos + n_ws;                       /* \s+ */
    return pos + 1;
}

static size_t word_end_gpt2(const uint32_t *cpt, const uint8_t *flags, size_t pos, size_t n)
{
    const uint32_t c = cpt[pos];
    const uint8_t f = FLAGS_AT(pos);
    uint8_t f2;
    size_t p, n_ws;

    if (c == '\'') {
        size_t m = match_contraction(cpt, pos, n, false);
        if (m) return pos + m;
    }
    f2 = c == ' ' ? FLAGS_AT(pos + 1) : f;
    p = pos + (c == ' ');
    if (f2 & UNICODE_LETTER) { /* ' ?\p{L}+' */
        while (FLAGS_AT(p) & UNICODE_LETTER) p++;
        return p;
    }
    if (f2 & UNICODE_NUMBER) { /* ' ?\p{N}+' */
        while (FLAGS_AT(p) & UNICODE_NUMBER) p++;
        return p;
    }
    if (NOT_WLN(f2) && f2) { /* ' ?[^\s\p{L}\p{N}]+' */
        while (NOT_WLN(f2) && f2) f2 = FLAGS_AT(++p);
        return p;
    }
    n_ws = 0;
    while (FLAGS_AT(pos + n_ws) & UNICODE_SPACE) n_ws++;
    if (n_ws > 1 && pos + n_ws < n) return pos + n_ws - 1; /* \s+(?!\S) */
    if (n_ws > 0) return pos + n_ws;                       /* \s+ */
    return pos + 1;
}

#undef FLAGS_AT
#undef NOT_WLN

size_t bpe_word_end(bpe_pre_t pre, const uint32_t *cpt, const uint8_t *flags, size_t pos, size_t n)
{
    switch (pre) {
    case BPE_PRE_LLAMA3: return word_end_llama3(cpt, flags, pos, n, 3);
    case BPE_PRE_QWEN2: return word_end_llama3(cpt, flags, pos, n, 1);
    case BPE_PRE_GPT2: break;
    }
    return word_end_gpt2(cpt, flags, pos, n);
}

void bpe_split(bpe_pre_t pre, const uint32_t *cpt, const uint8_t *flags, size_t n,
               void (*fn)(void *ctx, size_t start, size_t end), void *ctx)
{
    for (size_t pos = 0; pos < n;) {
        size_t end = bpe_word_end(pre, cpt, flags, pos, n);
        fn(ctx, pos, end);
        pos = end;
    }
}

/* --- merging --- */

static inline bool bigram_before(const bpe_bigram_t *a, const bpe_bigram_t *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool heap_push(bpe_scratch_t *s, const bpe_bigram_t *b)
{
    size_t i;

    if (!vocab_reserve((void **)&s->heap, &s->heap_cap, s->heap_n + 1, sizeof(bpe_bigram_t))) return false;
    i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(b, &s->heap[parent])) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = *b;
    return true;
}

static bpe_bigram_t heap_pop(bpe_scratch_t *s)
{
    bpe_bigram_t top = s->heap[0], last = s->heap[--s->heap_n];
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

static bool add_bigram(const vocab_t *v, bpe_scratch_t *s, int32_t left, int32_t right)
{
    const vocab_merge_t *m;
    bpe_bigram_t b;

    if (left < 0 || right < 0) return true;
    if (!vocab_merge_find(v, s->sym[left].id, s->sym[right].id, &m)) return true;
    b.rank = m->rank;
    b.left = left;
    b.right = right;
    b.size = s->sym[left].n + s->sym[right].n;
    b.merged = m->merged;
    return heap_push(s, &b);
}

/* Encodes the word cpt[ws, we) into tokens. */
static bool encode_word(const bpe_t *b, bpe_scratch_t *s, size_t ws, size_t we, tokvec_t *out)
{
    const vocab_t *v = b->vocab;
    size_t n_word = 0, n_sym = 0;
    int32_t id;

    /* byte-level encoding: at most 4 bytes per code point, 2 per byte */
    if (!vocab_reserve((void **)&s->word, &s->word_cap, 8 * (we - ws), 1) ||
        !vocab_reserve((void **)&s->sym, &s->sym_cap, 4 * (we - ws), sizeof(bpe_symbol_t)))
        return false;
    for (size_t i = ws; i < we; i++) {
        uint8_t u[4];
        size_t n = unicode_cpt_encode(s->cpt[i], u);
        for (size_t j = 0; j < n; j++) {
            bpe_symbol_t *sym = &s->sym[n_sym];
            sym->id = b->byte_tok[u[j]];
            sym->prev = (int32_t)n_sym - 1;
            sym->next = (int32_t)n_sym + 1;
            sym->start = (uint32_t)n_word;
            sym->n = b->enc_len[u[j]];
            memcpy(s->word + n_word, b->enc[u[j]], sym->n);
            n_word += sym->n;
            n_sym++;
        }
    }
    s->sym[n_sym - 1].next = -1;

    if (b->ignore_merges && (id = vocab_find(v, s->word, n_word)) >= 0) {
        tokvec_push(out, id);
        return true;
    }

    s->heap_n = 0;
    for (size_t i = 1; i < n_sym; i++)
        if (!add_bigram(v, s, (int32_t)i - 1, (int32_t)i)) return false;
    while (s->heap_n) {
        bpe_bigram_t bg = heap_pop(s);
        bpe_symbol_t *l = &s->sym[bg.left], *r = &s->sym[bg.right];

        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) continue; /* stale */
        l->n += r->n;
        l->id = bg.merged;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = bg.left;
        if (!add_bigram(v, s, l->prev, bg.left) || !add_bigram(v, s, bg.left, l->next)) return false;
    }

    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const bpe_symbol_t *sym = &s->sym[i];
        if (sym->id >= 0) {
            tokvec_push(out, sym->id);
            continue;
        }
        /* not a token: each byte of the piece that is a token on its own (as llama.cpp) */
        for (uint32_t j = 0; j < sym->n; j++) {
            int32_t t = vocab_find(v, s->word + sym->start + j, 1);
            if (t >= 0) tokvec_push(out, t);
        }
    }
    return true;
}

status_t bpe_encode(const bpe_t *b, const char *text, size_t len, bpe_scratch_t *scr, tokvec_t *out)
{
    const uint8_t *t = (const uint8_t *)text;
    size_t n = 0;

    if (len >= (size_t)INT32_MAX / 8)
        return cllm_error(CLLM_ERR_RANGE, "tokenizer: text of %zu bytes is too long", len);
    if (!vocab_reserve((void **)&scr->cpt, &scr->cpt_cap, len, sizeof(uint32_t)) ||
        !vocab_reserve((void **)&scr->flags, &scr->flags_cap, len, 1))
        goto oom;
    for (size_t off = 0; off < len; n++) {
        off += unicode_cpt_decode(t + off, len - off, &scr->cpt[n]);
        scr->flags[n] = unicode_cpt_flags(scr->cpt[n]);
    }
    for (size_t pos = 0; pos < n;) {
        size_t end = bpe_word_end(b->pre, scr->cpt, scr->flags, pos, n);
        if (!encode_word(b, scr, pos, end, out)) goto oom;
        pos = end;
    }
    if (out->oom) goto oom;
    return CLLM_OK;
oom:
    return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory encoding %zu bytes", len);
}

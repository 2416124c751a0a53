/* tokenizer.c: the public tokenizer (see tokenizer.h): loading the GGUF metadata, splitting
 * out special tokens, dispatching to the SPM or BPE encoder, and decoding.
 *
 * Owns the vocabulary (vocab.h), the special-token list (longest text first), the EOG set and
 * every token's decoded piece, all computed once in tokenizer_create. Invariant: nothing in a
 * tokenizer_t changes after create, and encode keeps its working memory on the call's own
 * scratch, so every call is safe from many threads at once. */
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

#define TOKENIZER_MAX_TEXT ((size_t)1 << 28) /* bytes per encode call: keeps every index in 32 bits */

/* Shown when a token is rendered only with render_special. */
#define ATTR_HIDDEN (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN)
/* Split out of the text before encoding (control and unknown only with parse_special). */
#define ATTR_SPLIT (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_USER_DEFINED)

struct tokenizer {
    tokenizer_kind_t kind;
    vocab_t vocab;
    bpe_t bpe;                            /* BPE only */
    spm_t spm;                            /* SPM only */
    int32_t bos, eos, eot, eom, unk, pad; /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix; /* SPM: a space before the text, dropped again by decode */
    uint8_t *eog;          /* (n_tokens) 1 for end-of-generation tokens */
    int32_t *special;      /* (n_special) ATTR_SPLIT tokens with text, longest text first */
    size_t n_special;
    char *piece_pool;    /* (sum of piece_len) every token's decoded bytes */
    size_t *piece_off;   /* (n_tokens) */
    uint32_t *piece_len; /* (n_tokens) */
    uint32_t max_piece;  /* longest piece */
};

/* Token texts that end a turn when they are control tokens (as llama.cpp's EOG detection). */
static const char *const eog_texts[] = { "<|eot_id|>",    "<|eom_id|>",    "<|im_end|>", "<|end|>",
                                         "<end_of_turn>", "<|endoftext|>", "</s>" };

/* --- loading --- */

static bool str_is(gguf_str_t s, const char *lit) { return s.len == strlen(lit) && !memcmp(s.ptr, lit, s.len); }

/* Reads an optional token id key; an id outside the vocabulary keeps *id (with a warning). */
static status_t read_id(const gguf_t *g, const char *key, int32_t n_tokens, int32_t *id)
{
    int64_t v = *id;
    status_t st = gguf_get_i64_opt(g, key, &v);

    if (st != CLLM_OK) return st;
    if (v == *id || v == -1 || v == UINT32_MAX) return CLLM_OK; /* -1 (as int32 or uint32): none given */
    if (v < 0 || v >= n_tokens) {
        log_warn("tokenizer: %s = %lld is not a token id (vocabulary of %d); ignored", key, (long long)v, n_tokens);
        return CLLM_OK;
    }
    *id = (int32_t)v;
    return CLLM_OK;
}

typedef struct {
    uint32_t len;
    int32_t id;
} special_key_t;

static int special_cmp(const void *a, const void *b)
{
    const special_key_t *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static status_t build_special_list(tokenizer_t *tok)
{
    const vocab_t *v = &tok->vocab;
    special_key_t *keys;
    size_t n = 0;

    for (int32_t i = 0; i < v->n_tokens; i++)
        if ((v->attr[i] & ATTR_SPLIT) && v->text_len[i]) n++;
    if (!n) return CLLM_OK;
    keys = malloc(n * sizeof(*keys));
    tok->special = malloc(n * sizeof(int32_t));
    if (!keys || !tok->special) {
        free(keys);
        return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory");
    }
    n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if ((v->attr[i] & ATTR_SPLIT) && v->text_len[i]) {
            keys[n].len = v->text_len[i];
            keys[n].id = i;
            n++;
        }
    }
    qsort(keys, n, sizeof(*keys), special_cmp);
    for (size_t i = 0; i < n; i++) tok->special[i] = keys[i].id;
    tok->n_special = n;
    free(keys);
    return CLLM_OK;
}

/* The EOG set: EOS, EOT, EOM, control tokens with an end-of-turn text, and the ids listed in
 * tokenizer.ggml.eog_token_ids (a cllm key, written by hf_tokenizer.c from a Hugging Face
 * generation_config.json eos_token_id list; ids outside the vocabulary are ignored). */
static status_t build_eog(tokenizer_t *tok, const gguf_t *g)
{
    const vocab_t *v = &tok->vocab;
    const int64_t idx = gguf_find_key(g, "tokenizer.ggml.eog_token_ids");

    tok->eog = calloc((size_t)v->n_tokens, 1);
    if (!tok->eog) return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory");
    if (idx >= 0) {
        const uint8_t *ids = gguf_arr_data(g, idx);
        if (gguf_arr_type(g, idx) != GGUF_TYPE_INT32 || (!ids && gguf_arr_n(g, idx)))
            return cllm_error(CLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.eog_token_ids is not an array of i32");
        for (uint64_t i = 0; i < gguf_arr_n(g, idx); i++) {
            int32_t id;
            memcpy(&id, ids + 4 * i, 4);
            if (id >= 0 && id < v->n_tokens) tok->eog[id] = 1;
        }
    }
    if (tok->eos >= 0) tok->eog[tok->eos] = 1;
    if (tok->eot >= 0) tok->eog[tok->eot] = 1;
    if (tok->eom >= 0) tok->eog[tok->eom] = 1;
    for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++) {
        int32_t id = vocab_find(v, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0 && (v->attr[id] & TOKEN_ATTR_CONTROL)) tok->eog[id] = 1;
    }
    return CLLM_OK;
}

/* The bytes a token stands for when rendered (writes at most text_len bytes to dst). */
static uint32_t make_piece(const tokenizer_t *tok, int32_t id, char *dst)
{
    const vocab_t *v = &tok->vocab;
    const char *t = vocab_text(v, id);
    const uint32_t n = v->text_len[id];
    const uint8_t attr = v->attr[id];
    uint32_t w = 0;

    if (attr & (ATTR_HIDDEN | TOKEN_ATTR_USER_DEFINED)) {
        memcpy(dst, t, n);
        return n;
    }
    if (tok->kind == TOKENIZER_SPM && (attr & TOKEN_ATTR_NORMAL)) {
        for (uint32_t i = 0; i < n;) { /* U+2581 -> ' ' */
            if (i + 3 <= n && !memcmp(t + i, "\xE2\x96\x81", 3)) {
                dst[w++] = ' ';
                i += 3;
            } else {
                dst[w++] = t[i++];
            }
        }
        return w;
    }
    if (tok->kind == TOKENIZER_SPM && (attr & TOKEN_ATTR_BYTE)) { /* "<0xNN>" */
        static const char hex[] = "0123456789ABCDEFabcdef";
        const char *h1 = n == 6 ? memchr(hex, t[3], 22) : NULL, *h2 = n == 6 ? memchr(hex, t[4], 22) : NULL;
        int d1, d2;
        if (!h1 || !h2 || memcmp(t, "<0x", 3) || t[5] != '>') return 0;
        d1 = (int)(h1 - hex);
        d2 = (int)(h2 - hex);
        d1 = d1 >= 16 ? d1 - 6 : d1;
        d2 = d2 >= 16 ? d2 - 6 : d2;
        dst[0] = (char)(d1 * 16 + d2);
        return 1;
    }
    if (tok->kind == TOKENIZER_BPE && (attr & TOKEN_ATTR_NORMAL)) {
        for (uint32_t i = 0; i < n;) { /* byte-level characters -> bytes; others stay as they are */
            uint32_t cpt;
            size_t len = unicode_cpt_decode((const uint8_t *)t + i, n - i, &cpt);
            if (cpt < 324 && tok->bpe.dec[cpt] >= 0) {
                dst[w++] = (char)tok->bpe.dec[cpt];
            } else {
                memcpy(dst + w, t + i, len);
                w += (uint32_t)len;
            }
            i += (uint32_t)len;
        }
        return w;
    }
    return 0; /* unused, undefined, and (BPE) byte tokens render as nothing, as llama.cpp */
}

static status_t build_pieces(tokenizer_t *tok)
{
    const vocab_t *v = &tok->vocab;
    size_t off = 0;

    /* a piece is never longer than its token text */
    tok->piece_pool = malloc(v->pool_size ? v->pool_size : 1);
    tok->piece_off = malloc((size_t)v->n_tokens * sizeof(size_t));
    tok->piece_len = malloc((size_t)v->n_tokens * sizeof(uint32_t));
    if (!tok->piece_pool || !tok->piece_off || !tok->piece_len)
        return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint32_t n = make_piece(tok, i, tok->piece_pool + off);
        tok->piece_off[i] = off;
        tok->piece_len[i] = n;
        if (n > tok->max_piece) tok->max_piece = n;
        off += n;
    }
    return CLLM_OK;
}

static status_t read_pre(const gguf_t *g, bpe_pre_t *pre, bool *ignore_merges, bool *add_bos)
{
    gguf_str_t s = { "default", 7 };
    status_t st = gguf_get_str(g, "tokenizer.ggml.pre", &s);

    if (st == CLLM_ERR_NOT_FOUND) {
        cllm_error_clear();
        s.ptr = "default";
        s.len = 7;
    } else if (st != CLLM_OK) {
        return st;
    }
    *pre = BPE_PRE_GPT2;
    *ignore_merges = false;
    *add_bos = false;
    if (str_is(s, "llama-bpe") || str_is(s, "llama3") || str_is(s, "llama-v3")) {
        *pre = BPE_PRE_LLAMA3;
        *ignore_merges = true;
        *add_bos = true;
    } else if (str_is(s, "qwen2")) {
        *pre = BPE_PRE_QWEN2;
    } else if (!str_is(s, "default") && !str_is(s, "gpt2")) {
        log_warn("tokenizer: pre-tokenizer '%.*s' is not known; using the Llama 3 split", (int)s.len, s.ptr);
        *pre = BPE_PRE_LLAMA3;
    }
    return CLLM_OK;
}

status_t tokenizer_create(const gguf_t *g, tokenizer_t **out)
{
    tokenizer_t *tok;
    gguf_str_t model;
    bpe_pre_t pre = BPE_PRE_GPT2;
    bool ignore_merges = false;
    status_t st;

    if (!out) return cllm_error(CLLM_ERR_INVALID_ARG, "tokenizer_create: out is NULL");
    *out = NULL;
    if (!g) return cllm_error(CLLM_ERR_INVALID_ARG, "tokenizer_create: no GGUF");
    st = gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (st == CLLM_ERR_NOT_FOUND) return cllm_error(CLLM_ERR_FORMAT, "tokenizer: tokenizer.ggml.model is missing");
    if (st != CLLM_OK) return st;
    tok = calloc(1, sizeof(*tok));
    if (!tok) return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory");
    tok->bos = tok->eos = tok->eot = tok->eom = tok->unk = tok->pad = -1;

    if (str_is(model, "llama")) {
        tok->kind = TOKENIZER_SPM;
        tok->add_bos = true;
        tok->add_space_prefix = true;
    } else if (str_is(model, "gpt2")) {
        tok->kind = TOKENIZER_BPE;
        if ((st = read_pre(g, &pre, &ignore_merges, &tok->add_bos)) != CLLM_OK) goto fail;
    } else {
        st = cllm_error(CLLM_ERR_UNSUPPORTED,
                        "tokenizer: tokenizer.ggml.model '%.*s' is not supported (only 'llama' and 'gpt2')",
                        (int)(model.len > 64 ? 64 : model.len), model.ptr);
        goto fail;
    }
    if ((st = vocab_load(&tok->vocab, g)) != CLLM_OK) goto fail;
    if (tok->kind == TOKENIZER_SPM) { /* llama.cpp's defaults for SentencePiece vocabularies */
        if (tok->vocab.n_tokens > 2) {
            tok->unk = 0;
            tok->bos = 1;
            tok->eos = 2;
        }
    } else if ((st = vocab_load_merges(&tok->vocab, g)) != CLLM_OK) {
        goto fail;
    }

    if ((st = read_id(g, "tokenizer.ggml.bos_token_id", tok->vocab.n_tokens, &tok->bos)) != CLLM_OK ||
        (st = read_id(g, "tokenizer.ggml.eos_token_id", tok->vocab.n_tokens, &tok->eos)) != CLLM_OK ||
        (st = read_id(g, "tokenizer.ggml.eot_token_id", tok->vocab.n_tokens, &tok->eot)) != CLLM_OK ||
        (st = read_id(g, "tokenizer.ggml.eom_token_id", tok->vocab.n_tokens, &tok->eom)) != CLLM_OK ||
        (st = read_id(g, "tokenizer.ggml.unknown_token_id", tok->vocab.n_tokens, &tok->unk)) != CLLM_OK ||
        (st = read_id(g, "tokenizer.ggml.padding_token_id", tok->vocab.n_tokens, &tok->pad)) != CLLM_OK ||
        (st = gguf_get_bool_opt(g, "tokenizer.ggml.add_bos_token", &tok->add_bos)) != CLLM_OK ||
        (st = gguf_get_bool_opt(g, "tokenizer.ggml.add_eos_token", &tok->add_eos)) != CLLM_OK ||
        (st = gguf_get_bool_opt(g, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix)) != CLLM_OK)
        goto fail;
    if (tok->add_bos && tok->bos < 0) {
        log_warn("tokenizer: add_bos_token is set but there is no BOS token; not adding one");
        tok->add_bos = false;
    }
    if (tok->add_eos && tok->eos < 0) {
        log_warn("tokenizer: add_eos_token is set but there is no EOS token; not adding one");
        tok->add_eos = false;
    }

    if (tok->kind == TOKENIZER_SPM) {
        if ((st = spm_init(&tok->spm, &tok->vocab, tok->unk)) != CLLM_OK) goto fail;
    } else {
        bpe_init(&tok->bpe, &tok->vocab, pre, ignore_merges);
    }
    if ((st = build_special_list(tok)) != CLLM_OK || (st = build_eog(tok, g)) != CLLM_OK ||
        (st = build_pieces(tok)) != CLLM_OK)
        goto fail;
    log_debug("tokenizer: %s, %d tokens, %zu merges, bos %d eos %d eot %d, %zu special",
              tok->kind == TOKENIZER_SPM ? "spm" : "bpe", tok->vocab.n_tokens, tok->vocab.n_merges, tok->bos, tok->eos,
              tok->eot, tok->n_special);
    *out = tok;
    return CLLM_OK;
fail:
    tokenizer_destroy(tok);
    return st;
}

void tokenizer_destroy(tokenizer_t *tok)
{
    if (!tok) return;
    spm_free(&tok->spm);
    vocab_free(&tok->vocab);
    free(tok->eog);
    free(tok->special);
    free(tok->piece_pool);
    free(tok->piece_off);
    free(tok->piece_len);
    free(tok);
}

/* --- queries --- */

tokenizer_kind_t tokenizer_kind(const tokenizer_t *tok) { return tok->kind; }
int32_t tokenizer_n_vocab(const tokenizer_t *tok) { return tok->vocab.n_tokens; }
int32_t tokenizer_bos(const tokenizer_t *tok) { return tok->bos; }
int32_t tokenizer_eos(const tokenizer_t *tok) { return tok->eos; }
bool tokenizer_add_bos(const tokenizer_t *tok) { return tok->add_bos; }
size_t tokenizer_max_piece_len(const tokenizer_t *tok) { return tok->max_piece; }

bool tokenizer_is_eog(const tokenizer_t *tok, int32_t id)
{
    return id >= 0 && id < tok->vocab.n_tokens && tok->eog[id];
}

bool tokenizer_is_special(const tokenizer_t *tok, int32_t id)
{
    return id >= 0 && id < tok->vocab.n_tokens && (tok->vocab.attr[id] & ATTR_HIDDEN);
}

int32_t tokenizer_find(const tokenizer_t *tok, const char *text, size_t len)
{
    if (!text && len) return -1;
    return vocab_find(&tok->vocab, text ? text : "", len);
}

/* --- encoding --- */

typedef struct {
    int32_t id;      /* a special token, or -1 for raw text */
    size_t off, len; /* raw text: bytes [off, off + len) of the input */
} fragment_t;

typedef struct {
    fragment_t *f; /* (cap) */
    size_t n, cap;
} fragments_t;

static bool frag_push(fragments_t *fs, int32_t id, size_t off, size_t len)
{
    if (!vocab_reserve((void **)&fs->f, &fs->cap, fs->n + 1, sizeof(fragment_t))) return false;
    fs->f[fs->n].id = id;
    fs->f[fs->n].off = off;
    fs->f[fs->n].len = len;
    fs->n++;
    return true;
}

/* Splits the text on special-token texts as llama.cpp's tokenizer_st_partition: each special
 * token in turn, longest first, takes every leftmost non-overlapping occurrence in the raw
 * fragments left by the tokens before it. Control and unknown tokens only with parse_special;
 * user-defined tokens always. */
static bool partition(const tokenizer_t *tok, const char *text, size_t len, bool parse_special, fragments_t *a)
{
    fragments_t b = { 0 }, t;
    const vocab_t *v = &tok->vocab;

    if (len && !frag_push(a, -1, 0, len)) return false;
    for (size_t k = 0; k < tok->n_special && a->n; k++) {
        const int32_t sid = tok->special[k];
        const char *st = vocab_text(v, sid);
        const size_t sl = v->text_len[sid];
        bool found = false;

        if (!parse_special && (v->attr[sid] & ATTR_HIDDEN)) continue;
        for (size_t i = 0; i < a->n && !found; i++)
            found = a->f[i].id < 0 && a->f[i].len >= sl && memmem(text + a->f[i].off, a->f[i].len, st, sl) != NULL;
        if (!found) continue;
        b.n = 0;
        for (size_t i = 0; i < a->n; i++) {
            size_t off = a->f[i].off, rem = a->f[i].len;
            const char *m;

            if (a->f[i].id >= 0) {
                if (!frag_push(&b, a->f[i].id, 0, 0)) goto oom;
                continue;
            }
            while (rem >= sl && (m = memmem(text + off, rem, st, sl)) != NULL) {
                size_t mo = (size_t)(m - text);
                if (mo > off && !frag_push(&b, -1, off, mo - off)) goto oom;
                if (!frag_push(&b, sid, 0, 0)) goto oom;
                rem -= mo + sl - off;
                off = mo + sl;
            }
            if (rem && !frag_push(&b, -1, off, rem)) goto oom;
        }
        t = *a;
        *a = b;
        b = t;
    }
    free(b.f);
    return true;
oom:
    free(b.f);
    return false;
}

status_t tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len, bool add_special, bool parse_special,
                          int32_t **tokens, size_t *n_tokens)
{
    fragments_t frags = { 0 };
    tokvec_t out = { 0 };
    spm_scratch_t spm = { 0 };
    bpe_scratch_t bpe = { 0 };
    bool prev_special = true; /* SPM: a space prefix goes on the first text and on text after a special token */
    status_t st = CLLM_OK;

    if (!tok || !tokens || !n_tokens || (!text && len))
        return cllm_error(CLLM_ERR_INVALID_ARG, "tokenizer_encode: NULL argument");
    *tokens = NULL;
    *n_tokens = 0;
    if (len >= TOKENIZER_MAX_TEXT)
        return cllm_error(CLLM_ERR_RANGE, "tokenizer: a text of %zu bytes is too long (the limit is 256 MiB)", len);
    if (!partition(tok, text, len, parse_special, &frags)) {
        st = cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory splitting special tokens");
        goto out;
    }
    if (add_special && tok->add_bos) tokvec_push(&out, tok->bos);
    for (size_t i = 0; i < frags.n && st == CLLM_OK; i++) {
        const fragment_t *f = &frags.f[i];
        if (f->id >= 0) {
            tokvec_push(&out, f->id);
            prev_special = true;
        } else if (tok->kind == TOKENIZER_SPM) {
            st = spm_encode(&tok->spm, text + f->off, f->len, tok->add_space_prefix && prev_special, &spm, &out);
            prev_special = false;
        } else {
            st = bpe_encode(&tok->bpe, text + f->off, f->len, &bpe, &out);
        }
    }
    if (st != CLLM_OK) goto out;
    if (add_special && tok->add_eos) tokvec_push(&out, tok->eos);
    if (!out.ids && !vocab_reserve((void **)&out.ids, &out.cap, 1, sizeof(int32_t))) out.oom = true; /* never NULL */
    if (out.oom) {
        st = cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory for the tokens of %zu bytes", len);
        goto out;
    }
    *tokens = out.ids;
    *n_tokens = out.n;
    out.ids = NULL;
out:
    free(out.ids);
    free(frags.f);
    spm_scratch_free(&spm);
    bpe_scratch_free(&bpe);
    return st;
}

/* --- decoding --- */

/* The piece of id as rendered (empty for hidden tokens unless render_special). */
static size_t piece_get(const tokenizer_t *tok, int32_t id, bool render_special, const char **p)
{
    *p = "";
    if (id < 0 || id >= tok->vocab.n_tokens) return 0;
    if ((tok->vocab.attr[id] & ATTR_HIDDEN) && !render_special) return 0;
    *p = tok->piece_pool + tok->piece_off[id];
    return tok->piece_len[id];
}

size_t tokenizer_token_to_bytes(const tokenizer_t *tok, int32_t id, bool render_special, char *buf, size_t cap)
{
    const char *p;
    size_t n = piece_get(tok, id, render_special, &p);

    if (buf && cap) memcpy(buf, p, n < cap ? n : cap);
    return n;
}

void tokenizer_stream_init(tokenizer_stream_t *s, bool render_special)
{
    memset(s, 0, sizeof(*s));
    s->render_special = render_special;
}

/* Appends n bytes if they fit; a sequence that does not fit is dropped whole. */
static void put_bytes(char *out, size_t cap, size_t *w, const void *p, size_t n)
{
    if (n > cap - *w) return;
    memcpy(out + *w, p, n);
    *w += n;
}

static void put_replacement(char *out, size_t cap, size_t *w) { put_bytes(out, cap, w, "\xEF\xBF\xBD", 3); }

size_t tokenizer_stream_push(const tokenizer_t *tok, tokenizer_stream_t *s, int32_t id, char *out, size_t cap)
{
    const char *piece;
    size_t plen = piece_get(tok, id, s->render_special, &piece), i = 0, w = 0, len;

    if (!s->started) { /* llama.cpp's detokenize drops the first token's leading space */
        s->started = true;
        if (tok->kind == TOKENIZER_SPM && tok->add_space_prefix && plen && piece[0] == ' ') {
            piece++;
            plen--;
        }
    }
    if (s->n_pending < 0 || s->n_pending > 4) s->n_pending = 0;
    /* first finish the sequence held back from earlier pieces */
    while (s->n_pending > 0) {
        uint8_t win[8];
        size_t nw = (size_t)s->n_pending, take = plen - i < 4 ? plen - i : 4;
        utf8_check_t r;

        if (take == 0) return w;
        memcpy(win, s->pending, nw);
        memcpy(win + nw, piece + i, take);
        r = unicode_utf8_check(win, nw + take, &len);
        if (r == UTF8_INCOMPLETE) {
            memcpy(s->pending, win, len);
            s->n_pending = (int)len;
            return w; /* the whole piece was a continuation, still incomplete */
        }
        if (r == UTF8_VALID)
            put_bytes(out, cap, &w, win, len);
        else
            put_replacement(out, cap, &w);
        if (len >= nw) {
            i += len - nw;
            s->n_pending = 0;
        } else {
            memmove(s->pending, s->pending + len, nw - len);
            s->n_pending = (int)(nw - len);
        }
    }
    while (i < plen) {
        const uint8_t *p = (const uint8_t *)piece + i;
        utf8_check_t r;

        if (*p < 0x80) {
            size_t run = 1;
            while (i + run < plen && p[run] < 0x80) run++;
            put_bytes(out, cap, &w, p, run);
            i += run;
            continue;
        }
        r = unicode_utf8_check(p, plen - i, &len);
        if (r == UTF8_VALID) {
            put_bytes(out, cap, &w, p, len);
        } else if (r == UTF8_INCOMPLETE) {
            memcpy(s->pending, p, len);
            s->n_pending = (int)len;
        } else {
            put_replacement(out, cap, &w);
        }
        i += len;
    }
    return w;
}

size_t tokenizer_stream_flush(const tokenizer_t *tok, tokenizer_stream_t *s, char *out, size_t cap)
{
    size_t w = 0;

    (void)tok;
    if (s->n_pending > 0) put_replacement(out, cap, &w);
    s->n_pending = 0;
    return w;
}

status_t tokenizer_decode(const tokenizer_t *tok, const int32_t *tokens, size_t n, bool render_special, char **out,
                          size_t *len)
{
    size_t total = 0, w = 0;
    char *s;

    if (!tok || !out || (!tokens && n)) return cllm_error(CLLM_ERR_INVALID_ARG, "tokenizer_decode: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *p;
        total += piece_get(tok, tokens[i], render_special, &p);
    }
    s = malloc(total + 1);
    if (!s) return cllm_error(CLLM_ERR_NOMEM, "tokenizer: out of memory decoding %zu tokens", n);
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t m = piece_get(tok, tokens[i], render_special, &p);
        if (i == 0 && tok->kind == TOKENIZER_SPM && tok->add_space_prefix && m && p[0] == ' ') {
            p++;
            m--;
        }
        memcpy(s + w, p, m);
        w += m;
    }
    s[w] = '\0';
    *out = s;
    if (len) *len = w;
    return CLLM_OK;
}

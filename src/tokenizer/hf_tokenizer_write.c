/* hf_tokenizer_write.c: a GGUF's tokenizer metadata -> Hugging Face tokenizer.json and
 * tokenizer_config.json (see hf_tokenizer.h), written so that hf_tokenizer_load (and the
 * Hugging Face tokenizers library) gives back the same tokenizer.
 *
 * Owns nothing past a call. Mapping, the reverse of hf_tokenizer.c:
 *   - "gpt2": a byte-level BPE model whose vocab holds the normal tokens, merges copied in
 *     order, the Split regex of tokenizer.ggml.pre + ByteLevel, a ByteLevel decoder.
 *   - "llama": a BPE model with byte_fallback whose vocab holds every token; the merges are
 *     every split of a normal token into two normal tokens, ordered by the merged token's score
 *     (highest first; ties by id), which is what SentencePiece's BPE does and what the loader
 *     turns back into scores; normalizer Prepend U+2581 (when add_space_prefix) + Replace.
 *   - control, unknown and user-defined tokens go to added_tokens (special: not user-defined).
 *   - add_bos / add_eos: a TemplateProcessing post-processor around the sequence.
 * Every string must be valid UTF-8 (JSON); a token that is not gives CLLM_ERR_UNSUPPORTED. */
#include "tokenizer/hf_tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tokenizer/vocab.h"

#define HF_PATH_MAX 4096
#define ATTR_ADDED (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_USER_DEFINED)

static const char SPACE_MARK[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's space */

typedef struct {
    const gguf_t *g;
    const char *dir;
    vocab_t v;
    bool spm;
    const char *pre; /* byte-level: "llama-bpe", "qwen2" or "gpt2" */
    int32_t bos, eos, unk, pad; /* -1: none */
    bool add_bos, add_eos, add_space_prefix;
} hf_write_t;

/* One SPM merge: token id split after `split` bytes; ordered by (score desc, id, split). */
typedef struct {
    float score;
    int32_t id;
    uint32_t split;
} spm_merge_t;

static status_t oom(void) { return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory building JSON"); }

/* The text of token id as a JSON string; NULL (message set) if it is not valid UTF-8. */
static json_t *token_str(const hf_write_t *w, int32_t id)
{
    json_t *s = json_stringn(vocab_text(&w->v, id), w->v.text_len[id]);
    if (!s)
        cllm_error(CLLM_ERR_UNSUPPORTED, "hf tokenizer: token %d is not valid UTF-8, so it cannot be written to JSON",
                   id);
    return s;
}

/* obj[key] = token text of id, or null when id < 0. */
static status_t set_token(const hf_write_t *w, json_t *obj, const char *key, int32_t id)
{
    json_t *s = id >= 0 ? token_str(w, id) : json_null();
    if (!s) return CLLM_ERR_UNSUPPORTED;
    return json_object_set_new(obj, key, s) ? oom() : CLLM_OK;
}

/* --- reading the GGUF --- */

static status_t read_opt_id(const hf_write_t *w, const char *key, int32_t *id)
{
    int64_t v = *id;
    status_t st = gguf_get_i64_opt(w->g, key, &v);
    if (st != CLLM_OK) return st;
    *id = v >= 0 && v < w->v.n_tokens ? (int32_t)v : -1;
    return CLLM_OK;
}

static status_t read_gguf(hf_write_t *w)
{
    gguf_str_t model, pre = { "default", 7 };
    tokenizer_t *tok = NULL;
    bool add_eos = false;
    status_t st;

    st = gguf_get_str(w->g, "tokenizer.ggml.model", &model);
    if (st == CLLM_ERR_NOT_FOUND)
        return cllm_error(CLLM_ERR_FORMAT, "hf tokenizer: the GGUF has no tokenizer.ggml.model");
    if (st != CLLM_OK) return st;
    /* the effective BOS / EOS / add_bos, with tokenizer.c's defaults; this also validates the metadata */
    if ((st = tokenizer_create(w->g, &tok)) != CLLM_OK) return st;
    w->spm = tokenizer_kind(tok) == TOKENIZER_SPM;
    w->bos = tokenizer_bos(tok);
    w->eos = tokenizer_eos(tok);
    w->add_bos = tokenizer_add_bos(tok);
    tokenizer_destroy(tok);
    if ((st = vocab_load(&w->v, w->g)) != CLLM_OK) return st;

    w->unk = w->spm && w->v.n_tokens > 2 ? 0 : -1;
    w->pad = -1;
    w->add_space_prefix = w->spm;
    if ((st = read_opt_id(w, "tokenizer.ggml.unknown_token_id", &w->unk)) != CLLM_OK ||
        (st = read_opt_id(w, "tokenizer.ggml.padding_token_id", &w->pad)) != CLLM_OK ||
        (st = gguf_get_bool_opt(w->g, "tokenizer.ggml.add_eos_token", &add_eos)) != CLLM_OK ||
        (st = gguf_get_bool_opt(w->g, "tokenizer.ggml.add_space_prefix", &w->add_space_prefix)) != CLLM_OK)
        return st;
    w->add_eos = add_eos && w->eos >= 0;
    if (w->spm) return CLLM_OK;
    st = gguf_get_str(w->g, "tokenizer.ggml.pre", &pre);
    if (st == CLLM_ERR_NOT_FOUND) cllm_error_clear();
    else if (st != CLLM_OK) return st;
#define PRE_IS(lit) (pre.len == strlen(lit) && !memcmp(pre.ptr, lit, pre.len))
    if (PRE_IS("llama-bpe") || PRE_IS("llama3") || PRE_IS("llama-v3")) {
        w->pre = "llama-bpe";
    } else if (PRE_IS("qwen2")) {
        w->pre = "qwen2";
    } else if (PRE_IS("default") || PRE_IS("gpt2")) {
        w->pre = "gpt2";
    } else {
        log_warn("hf tokenizer: pre-tokenizer '%.*s' is not known; writing the Llama 3 split", (int)pre.len, pre.ptr);
        w->pre = "llama-bpe";
    }
#undef PRE_IS
    return CLLM_OK;
}

/* --- tokenizer.json --- */

/* An added_tokens entry (with its "id" when with_id) for token id. */
static status_t added_token(const hf_write_t *w, int32_t id, bool with_id, json_t **out)
{
    const bool special = !(w->v.attr[id] & TOKEN_ATTR_USER_DEFINED);
    json_t *s = token_str(w, id);
    if (!s) return CLLM_ERR_UNSUPPORTED;
    /* not normalized: matched against the raw text, as tokenizer.c splits them out */
    *out = json_pack("{s:o, s:b, s:b, s:b, s:b, s:b}", "content", s, "single_word", 0, "lstrip", 0, "rstrip", 0,
                     "normalized", 0, "special", special);
    if (*out && with_id && json_object_set_new(*out, "id", json_integer(id))) {
        json_decref(*out);
        *out = NULL;
    }
    return *out ? CLLM_OK : oom();
}

static status_t build_added(const hf_write_t *w, json_t *root)
{
    json_t *arr = json_array();
    status_t st;
    if (!arr || json_object_set_new(root, "added_tokens", arr)) return oom();
    for (int32_t id = 0; id < w->v.n_tokens; id++) {
        json_t *o;
        if (!(w->v.attr[id] & ATTR_ADDED)) continue;
        if ((st = added_token(w, id, true, &o)) != CLLM_OK) return st;
        if (json_array_append_new(arr, o)) return oom();
    }
    return CLLM_OK;
}

/* Whether id is an unused "[PAD<id>]" filler, which the loader recreates for a missing id. */
static bool is_filler(const hf_write_t *w, int32_t id)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "[PAD%d]", id);
    return (w->v.attr[id] & TOKEN_ATTR_UNUSED) && (uint32_t)n == w->v.text_len[id] &&
           !memcmp(buf, vocab_text(&w->v, id), (size_t)n);
}

static status_t build_vocab(const hf_write_t *w, json_t *model)
{
    json_t *vocab = json_object();
    size_t n_dup = 0;
    if (!vocab || json_object_set_new(model, "vocab", vocab)) return oom();
    for (int32_t id = 0; id < w->v.n_tokens; id++) {
        /* byte-level: special tokens live in added_tokens only (as Llama 3); SPM: in both (as Llama 2) */
        if ((!w->spm && (w->v.attr[id] & ATTR_ADDED)) || is_filler(w, id)) continue;
        if (json_object_getn(vocab, vocab_text(&w->v, id), w->v.text_len[id])) n_dup++;
        if (json_object_setn_new(vocab, vocab_text(&w->v, id), w->v.text_len[id], json_integer(id)))
            return cllm_error(CLLM_ERR_UNSUPPORTED, "hf tokenizer: token %d is not valid UTF-8, so it cannot be "
                              "written to JSON", id);
    }
    if (n_dup) log_warn("hf tokenizer: %zu token texts appear twice; tokenizer.json keeps the higher id", n_dup);
    return CLLM_OK;
}

/* "left right", or ["left", "right"] when a half holds a space. */
static json_t *merge_json(const char *l, size_t ll, const char *r, size_t rl, char *buf)
{
    if (memchr(l, ' ', ll) || memchr(r, ' ', rl)) return json_pack("[s%s%]", l, ll, r, rl);
    memcpy(buf, l, ll);
    buf[ll] = ' ';
    memcpy(buf + ll + 1, r, rl);
    return json_stringn(buf, ll + rl + 1);
}

static status_t merges_gpt2(const hf_write_t *w, json_t *arr)
{
    const int64_t idx = gguf_find_key(w->g, "tokenizer.ggml.merges");
    const uint64_t n = gguf_arr_n(w->g, idx);
    for (uint64_t i = 0; i < n; i++) {
        gguf_str_t s = gguf_arr_str(w->g, idx, i);
        json_t *j = json_stringn(s.ptr, s.len);
        if (!j)
            return cllm_error(CLLM_ERR_UNSUPPORTED, "hf tokenizer: merge %llu is not valid UTF-8, so it cannot be "
                              "written to JSON", (unsigned long long)i);
        if (json_array_append_new(arr, j)) return oom();
    }
    return CLLM_OK;
}

static int spm_merge_cmp(const void *a, const void *b)
{
    const spm_merge_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->split > y->split) - (x->split < y->split);
}

static status_t merges_spm(const hf_write_t *w, json_t *arr)
{
    spm_merge_t *m = NULL;
    size_t n = 0, cap = 0;
    char *buf = malloc(w->v.max_len + 2);
    status_t st = CLLM_OK;

    if (!buf) return oom();
    for (int32_t id = 0; id < w->v.n_tokens; id++) {
        const char *t = vocab_text(&w->v, id);
        const uint32_t len = w->v.text_len[id];
        if (!(w->v.attr[id] & TOKEN_ATTR_NORMAL)) continue;
        for (uint32_t k = 1; k < len; k++) {
            int32_t l, r;
            if (((uint8_t)t[k] & 0xC0) == 0x80) continue; /* not a character boundary */
            l = vocab_find(&w->v, t, k);
            r = vocab_find(&w->v, t + k, len - k);
            if (l < 0 || r < 0 || !(w->v.attr[l] & TOKEN_ATTR_NORMAL) || !(w->v.attr[r] & TOKEN_ATTR_NORMAL)) continue;
            if (!vocab_reserve((void **)&m, &cap, n + 1, sizeof(*m))) {
                st = oom();
                goto out;
            }
            m[n].score = w->v.score[id] == w->v.score[id] ? w->v.score[id] : -HUGE_VALF; /* NaN: last */
            m[n].id = id;
            m[n].split = k;
            n++;
        }
    }
    if (n) qsort(m, n, sizeof(*m), spm_merge_cmp);
    for (size_t i = 0; i < n; i++) {
        const char *t = vocab_text(&w->v, m[i].id);
        json_t *j = merge_json(t, m[i].split, t + m[i].split, w->v.text_len[m[i].id] - m[i].split, buf);
        if (!j) {
            st = cllm_error(CLLM_ERR_UNSUPPORTED, "hf tokenizer: token %d is not valid UTF-8, so it cannot be "
                            "written to JSON", m[i].id);
            goto out;
        }
        if (json_array_append_new(arr, j)) {
            st = oom();
            goto out;
        }
    }
out:
    free(m);
    free(buf);
    return st;
}

/* Appends a SpecialToken piece for token id to list and its entry to specials (once). */
static status_t template_special(const hf_write_t *w, json_t *list, json_t *specials, int32_t id, int type_id)
{
    json_t *s = token_str(w, id);
    status_t st = CLLM_OK;
    if (!s) return CLLM_ERR_UNSUPPORTED;
    if (json_array_append_new(list, json_pack("{s:{s:O, s:i}}", "SpecialToken", "id", s, "type_id", type_id)))
        st = oom();
    else if (!json_object_get(specials, json_string_value(s)) &&
             json_object_set_new(specials, json_string_value(s), json_pack("{s:O, s:[i], s:[O]}", "id", s, "ids", id,
                                                                           "tokens", s)))
        st = oom();
    json_decref(s);
    return st;
}

/* [BOS] $name [EOS] (as add_bos / add_eos say) appended to list. */
static status_t template_seq(const hf_write_t *w, json_t *list, json_t *specials, const char *name, int type_id)
{
    status_t st;
    if (w->add_bos && (st = template_special(w, list, specials, w->bos, type_id)) != CLLM_OK) return st;
    if (json_array_append_new(list, json_pack("{s:{s:s, s:i}}", "Sequence", "id", name, "type_id", type_id)))
        return oom();
    if (w->add_eos && (st = template_special(w, list, specials, w->eos, type_id)) != CLLM_OK) return st;
    return CLLM_OK;
}

/* {"type": "TemplateProcessing", ...}: [BOS] $A [EOS] for one sequence, then [BOS] $B [EOS] for a pair. */
static status_t template_processing(const hf_write_t *w, json_t **out)
{
    json_t *single = json_array(), *pair = json_array(), *specials = json_object();
    status_t st;
    *out = json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                     "special_tokens", specials);
    if (!*out) return oom();
    st = template_seq(w, single, specials, "A", 0);
    if (st == CLLM_OK) st = template_seq(w, pair, specials, "A", 0);
    if (st == CLLM_OK) st = template_seq(w, pair, specials, "B", 1);
    if (st != CLLM_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return st;
}

static json_t *byte_level(bool add_prefix_space, bool trim_offsets, bool use_regex)
{
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", add_prefix_space,
                     "trim_offsets", trim_offsets, "use_regex", use_regex);
}

/* normalizer, pre_tokenizer, decoder of a byte-level BPE vocabulary */
static status_t components_gpt2(const hf_write_t *w, json_t *root)
{
    json_t *pre;
    if (!strcmp(w->pre, "gpt2"))
        pre = byte_level(false, true, true);
    else
        pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Split",
                        "pattern", "Regex", hf_tokenizer_pre_regex(w->pre), "behavior", "Isolated", "invert", 0,
                        byte_level(false, true, false));
    if (!pre || json_object_set_new(root, "normalizer", json_null()) ||
        json_object_set_new(root, "pre_tokenizer", pre) ||
        json_object_set_new(root, "decoder", byte_level(true, true, true)))
        return oom();
    return CLLM_OK;
}

/* normalizer, pre_tokenizer, decoder of a SentencePiece-style vocabulary */
static status_t components_spm(const hf_write_t *w, json_t *root)
{
    json_t *replace =
        json_pack("{s:s, s:{s:s}, s:s}", "type", "Replace", "pattern", "String", " ", "content", SPACE_MARK);
    json_t *norm, *dec;
    if (w->add_space_prefix)
        norm = json_pack("{s:s, s:[{s:s, s:s}, o]}", "type", "Sequence", "normalizers", "type", "Prepend", "prepend",
                         SPACE_MARK, replace);
    else
        norm = replace;
    dec = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}]}", "type", "Sequence", "decoders", "type", "Replace",
                    "pattern", "String", SPACE_MARK, "content", " ", "type", "ByteFallback", "type", "Fuse");
    if (dec && w->add_space_prefix) { /* the decoder drops the prefix space again */
        json_t *strip = json_pack("{s:s, s:s, s:i, s:i}", "type", "Strip", "content", " ", "start", 1, "stop", 0);
        if (json_array_append_new(json_object_get(dec, "decoders"), strip)) return oom();
    }
    if (!norm || !dec || json_object_set_new(root, "normalizer", norm) ||
        json_object_set_new(root, "pre_tokenizer", json_null()) || json_object_set_new(root, "decoder", dec))
        return oom();
    return CLLM_OK;
}

static status_t build_post(const hf_write_t *w, json_t *root)
{
    json_t *pp = NULL;
    if (w->add_bos || w->add_eos) {
        json_t *tp;
        status_t st = template_processing(w, &tp);
        if (st != CLLM_OK) return st;
        pp = w->spm ? tp
                    : json_pack("{s:s, s:[o, o]}", "type", "Sequence", "processors", byte_level(true, false, true), tp);
    } else {
        pp = w->spm ? json_null() : byte_level(true, false, true);
    }
    if (!pp || json_object_set_new(root, "post_processor", pp)) return oom();
    return CLLM_OK;
}

static status_t build_model(const hf_write_t *w, json_t *root)
{
    json_t *merges, *unk = NULL, *model;
    status_t st;
    if (w->unk >= 0 && !(unk = token_str(w, w->unk))) return CLLM_ERR_UNSUPPORTED;
    merges = json_array();
    model = json_pack("{s:s, s:n, s:o, s:n, s:n, s:b, s:b, s:b}", "type", "BPE", "dropout", "unk_token",
                      unk ? unk : json_null(), "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", w->spm,
                      "byte_fallback", w->spm, "ignore_merges", !w->spm && !strcmp(w->pre, "llama-bpe"));
    if (!model || !merges || json_object_set_new(root, "model", model)) {
        json_decref(merges);
        return oom();
    }
    if ((st = build_vocab(w, model)) != CLLM_OK) {
        json_decref(merges);
        return st;
    }
    if (json_object_set_new(model, "merges", merges)) return oom();
    return w->spm ? merges_spm(w, merges) : merges_gpt2(w, merges);
}

/* Writes j to DIR/name; a failed write removes the partial file. */
static status_t dump(const hf_write_t *w, const json_t *j, const char *name)
{
    char path[HF_PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", w->dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return cllm_error(CLLM_ERR_INVALID_ARG, "hf tokenizer: directory name too long: %.64s...", w->dir);
    errno = 0;
    if (json_dump_file(j, path, JSON_INDENT(2)) != 0) {
        int e = errno;
        remove(path);
        return cllm_error(CLLM_ERR_IO, "hf tokenizer: %s: cannot write: %s", path, e ? strerror(e) : "write error");
    }
    return CLLM_OK;
}

static status_t write_tokenizer_json(const hf_write_t *w)
{
    json_t *root = json_pack("{s:s, s:n, s:n}", "version", "1.0", "truncation", "padding");
    status_t st;
    if (!root) return oom();
    st = build_added(w, root);
    if (st == CLLM_OK) st = w->spm ? components_spm(w, root) : components_gpt2(w, root);
    if (st == CLLM_OK) st = build_post(w, root);
    if (st == CLLM_OK) st = build_model(w, root);
    if (st == CLLM_OK) st = dump(w, root, "tokenizer.json");
    json_decref(root);
    return st;
}

static status_t write_config(const hf_write_t *w, const char *chat_template)
{
    json_t *cfg = json_pack("{s:b, s:b}", "add_bos_token", w->add_bos, "add_eos_token", w->add_eos);
    json_t *dec = json_object();
    gguf_str_t tmpl = { NULL, 0 };
    status_t st = CLLM_OK;

    if (!cfg || !dec || json_object_set_new(cfg, "added_tokens_decoder", dec)) {
        json_decref(cfg);
        return oom();
    }
    for (int32_t id = 0; id < w->v.n_tokens && st == CLLM_OK; id++) {
        char key[16];
        json_t *o;
        if (!(w->v.attr[id] & ATTR_ADDED)) continue;
        snprintf(key, sizeof(key), "%d", id);
        if ((st = added_token(w, id, false, &o)) == CLLM_OK && json_object_set_new(dec, key, o))
            st = oom();
    }
    if (st == CLLM_OK) st = set_token(w, cfg, "bos_token", w->bos);
    if (st == CLLM_OK) st = set_token(w, cfg, "eos_token", w->eos);
    if (st == CLLM_OK && w->unk >= 0) st = set_token(w, cfg, "unk_token", w->unk);
    if (st == CLLM_OK && w->pad >= 0) st = set_token(w, cfg, "pad_token", w->pad);
    if (st == CLLM_OK) {
        if (chat_template) {
            tmpl.ptr = chat_template;
            tmpl.len = strlen(chat_template);
        } else if ((st = gguf_get_str(w->g, "tokenizer.chat_template", &tmpl)) == CLLM_ERR_NOT_FOUND) {
            cllm_error_clear();
            st = CLLM_OK;
        }
    }
    if (st == CLLM_OK && tmpl.ptr) {
        json_t *s = json_stringn(tmpl.ptr, tmpl.len);
        if (!s) st = cllm_error(CLLM_ERR_UNSUPPORTED, "hf tokenizer: the chat template is not valid UTF-8");
        else if (json_object_set_new(cfg, "chat_template", s)) st = oom();
    }
    if (st == CLLM_OK &&
        (json_object_set_new(cfg, "clean_up_tokenization_spaces", json_false()) ||
         json_object_set_new(cfg, "tokenizer_class", json_string("PreTrainedTokenizerFast"))))
        st = oom();
    if (st == CLLM_OK) st = dump(w, cfg, "tokenizer_config.json");
    json_decref(cfg);
    return st;
}

status_t hf_tokenizer_write(const gguf_t *vocab, const char *chat_template, const char *dir)
{
    hf_write_t w;
    status_t st;

    if (!vocab || !dir) return cllm_error(CLLM_ERR_INVALID_ARG, "hf_tokenizer_write: NULL argument");
    memset(&w, 0, sizeof(w));
    w.g = vocab;
    w.dir = dir;
    st = read_gguf(&w);
    if (st == CLLM_OK) st = write_tokenizer_json(&w);
    if (st == CLLM_OK) st = write_config(&w, chat_template);
    vocab_free(&w.v);
    return st;
}

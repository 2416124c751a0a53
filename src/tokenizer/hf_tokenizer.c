/* hf_tokenizer.c: loading a Hugging Face checkpoint's tokenizer files (see hf_tokenizer.h).
 *
 * Owns nothing past a call: the parsed JSON documents, the token tables built from them and the
 * in-memory GGUF all live in one hf_load_t that is freed before hf_tokenizer_load returns.
 * Invariants while loading: text[i] / type[i] are set for every id in [0, n) (holes get an
 * unused "[PAD<id>]" token), every id stored (bos, eos, unk, pad, eog) is in [0, n) or -1, and
 * the strings point into the JSON documents or into pools owned by the hf_load_t. */
#include "tokenizer/hf_tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"

#define HF_MAX_FILE ((size_t)1 << 30) /* the largest JSON file read */
#define HF_MAX_ID (1 << 24)           /* token ids must be below this */
#define HF_PATH_MAX 4096

/* GGUF token types (tokenizer.ggml.token_type) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char F_TOK[] = "tokenizer.json";
static const char F_CFG[] = "tokenizer_config.json";
static const char F_GEN[] = "generation_config.json";
static const char F_MODEL[] = "config.json";

static const char REGEX_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char REGEX_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char REGEX_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char *hf_tokenizer_pre_regex(const char *pre)
{
    if (!pre) return NULL;
    if (!strcmp(pre, "llama-bpe")) return REGEX_LLAMA3;
    if (!strcmp(pre, "qwen2")) return REGEX_QWEN2;
    if (!strcmp(pre, "gpt2")) return REGEX_GPT2;
    return NULL;
}

typedef struct {
    const char *dir;
    json_t *tj, *cfg, *gen; /* tokenizer.json, tokenizer_config.json, generation_config.json (NULL: absent) */
    json_t *model_cfg;      /* config.json (NULL: absent) */
    json_t *model, *vocab;  /* tokenizer.json model and model.vocab */
    json_t *added;          /* tokenizer.json added_tokens (an array) or NULL */
    int32_t n;              /* tokens: max id + 1 */
    gguf_str_t *text;       /* (n) token texts */
    int32_t *type;          /* (n) GGUF token types */
    float *score;           /* (n) SPM scores; NULL for byte-level BPE */
    char *pad_pool;         /* the "[PAD<id>]" texts of ids with no token */
    gguf_str_t *merges;     /* (n_merges) byte-level BPE merges, "left right" */
    size_t n_merges;
    char *merge_pool;       /* joined pair-form merges */
    bool spm;               /* SentencePiece-style ("llama") rather than byte-level ("gpt2") */
    const char *pre;        /* tokenizer.ggml.pre */
    bool add_space_prefix;  /* SPM */
    int32_t bos, eos, unk, pad; /* -1: none */
    int add_bos, add_eos;   /* -1: not given */
    bool eos_from_cfg;      /* tokenizer_config.json named EOS (generation_config.json does not override it) */
    int32_t *eog;           /* (n_eog) generation_config eos ids */
    size_t n_eog;
    char *chat_template;    /* malloc'd, or NULL */
} hf_load_t;

/* Sets "hf tokenizer: DIR/FILE: message" as the error and returns st. */
static status_t __attribute__((format(printf, 4, 5))) hf_err(const hf_load_t *h, status_t st, const char *file,
                                                              const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cllm_error(st, "hf tokenizer: %s/%s: %s", h->dir, file, msg);
}

/* DIR/name into buf; false if it does not fit. */
static bool join_path(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* Reads DIR/name whole. Optional and absent: *out = NULL and CLLM_OK. */
static status_t read_text(const hf_load_t *h, const char *name, bool optional, char **out, size_t *len)
{
    char path[HF_PATH_MAX];
    *out = NULL;
    *len = 0;
    if (!join_path(path, sizeof(path), h->dir, name))
        return cllm_error(CLLM_ERR_INVALID_ARG, "hf tokenizer: directory name too long: %.64s...", h->dir);
    errno = 0;
    *out = file_read_all(path, HF_MAX_FILE, len);
    if (*out) return CLLM_OK;
    if (optional && errno == ENOENT) return CLLM_OK;
    if (errno == EFBIG) return hf_err(h, CLLM_ERR_IO, name, "larger than %zu MiB", HF_MAX_FILE >> 20);
    return hf_err(h, CLLM_ERR_IO, name, "cannot read: %s", errno ? strerror(errno) : "read error");
}

/* Parses DIR/name, which must hold a JSON object. Optional and absent: *out = NULL. The config
 * files are read with every number as a double: they hold integers beyond 64 bits
 * (model_max_length 1e30), which jansson otherwise refuses. */
static status_t read_json(const hf_load_t *h, const char *name, bool optional, json_t **out)
{
    const size_t flags = JSON_ALLOW_NUL | (strcmp(name, F_TOK) ? JSON_DECODE_INT_AS_REAL : 0);
    json_error_t e;
    size_t len;
    char *buf;
    status_t st = read_text(h, name, optional, &buf, &len);
    *out = NULL;
    if (st != CLLM_OK || !buf) return st;
    *out = json_loadb(buf, len, flags, &e);
    free(buf);
    if (!*out) return hf_err(h, CLLM_ERR_FORMAT, name, "line %d, column %d: %s", e.line, e.column, e.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return hf_err(h, CLLM_ERR_FORMAT, name, "not a JSON object");
    }
    return CLLM_OK;
}

static bool str_eq(const json_t *j, const char *s)
{
    return json_is_string(j) && !strcmp(json_string_value(j), s);
}

/* The first component of type `type` in j or, for a Sequence, in its list (key list_key); NULL if none. */
static const json_t *find_type(const json_t *j, const char *list_key, const char *type)
{
    const json_t *list = json_object_get(j, list_key), *e, *found;
    size_t i;
    if (str_eq(json_object_get(j, "type"), type)) return j;
    json_array_foreach(list, i, e)
    {
        if ((found = find_type(e, list_key, type)) != NULL) return found;
    }
    return NULL;
}

/* A normalizer that turns spaces into U+2581 or prepends one (SentencePiece-style); sets
 * *prepend when it prepends U+2581. */
static bool spm_normalizer(const json_t *j, bool *prepend)
{
    const json_t *list = json_object_get(j, "normalizers"), *e;
    bool found = false;
    size_t i;
    if (str_eq(json_object_get(j, "type"), "Prepend") && str_eq(json_object_get(j, "prepend"), "\xE2\x96\x81")) {
        *prepend = true;
        return true;
    }
    if (str_eq(json_object_get(j, "type"), "Replace") && str_eq(json_object_get(j, "content"), "\xE2\x96\x81"))
        return true;
    json_array_foreach(list, i, e)
    {
        found |= spm_normalizer(e, prepend);
    }
    return found;
}

/* A Metaspace pre-tokenizer (also inside a Sequence); *prepend: it adds a leading U+2581. */
static bool metaspace(const json_t *j, bool *prepend)
{
    const json_t *list = json_object_get(j, "pretokenizers"), *e;
    size_t i;
    if (str_eq(json_object_get(j, "type"), "Metaspace")) {
        const json_t *scheme = json_object_get(j, "prepend_scheme"), *aps = json_object_get(j, "add_prefix_space");
        *prepend = json_is_string(scheme) ? !str_eq(scheme, "never") : !json_is_false(aps);
        return true;
    }
    json_array_foreach(list, i, e)
    {
        if (metaspace(e, prepend)) return true;
    }
    return false;
}

/* Id of a token by its text: added tokens first, then the vocabulary; -1 if none. */
static int32_t find_token(const hf_load_t *h, const char *text, size_t len)
{
    const json_t *e, *v;
    size_t i;
    json_array_foreach(h->added, i, e)
    {
        const json_t *c = json_object_get(e, "content");
        if (json_is_string(c) && json_string_length(c) == len && !memcmp(json_string_value(c), text, len))
            return (int32_t)json_integer_value(json_object_get(e, "id"));
    }
    v = json_object_getn(h->vocab, text, len);
    return json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
}

/* An id field of tokenizer.json: an integer in [0, HF_MAX_ID). */
static status_t get_id(const hf_load_t *h, const json_t *j, const char *what, const char *key, int32_t *id)
{
    json_int_t v;
    if (!json_is_integer(j))
        return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "%s \"%.64s\": the id is not an integer", what, key);
    v = json_integer_value(j);
    if (v < 0 || v >= HF_MAX_ID)
        return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "%s \"%.64s\": id %lld is out of range [0, %d)", what, key,
                      (long long)v, HF_MAX_ID);
    *id = (int32_t)v;
    return CLLM_OK;
}

/* --- tokenizer.json: vocabulary and added tokens --- */

static status_t load_tokens(hf_load_t *h)
{
    const char *key;
    json_t *val, *e;
    int32_t max_id = -1, id;
    size_t i, n_holes = 0, off = 0;
    status_t st;

    json_object_foreach(h->vocab, key, val)
    {
        if ((st = get_id(h, val, "model.vocab", key, &id)) != CLLM_OK) return st;
        if (id > max_id) max_id = id;
    }
    json_array_foreach(h->added, i, e)
    {
        const json_t *c = json_object_get(e, "content"), *sp = json_object_get(e, "special");
        if (!json_is_object(e) || !json_is_string(c))
            return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "added_tokens[%zu]: no \"content\" string", i);
        if (sp && !json_is_boolean(sp))
            return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "added_tokens[%zu]: \"special\" is not a boolean", i);
        if ((st = get_id(h, json_object_get(e, "id"), "added_tokens", json_string_value(c), &id)) != CLLM_OK)
            return st;
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "model.vocab is empty");
    h->n = max_id + 1;
    h->text = calloc((size_t)h->n, sizeof(*h->text));
    h->type = calloc((size_t)h->n, sizeof(*h->type));
    if (!h->text || !h->type) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory for %d tokens", h->n);
    json_object_foreach(h->vocab, key, val)
    {
        id = (int32_t)json_integer_value(val);
        h->text[id].ptr = key;
        h->text[id].len = strlen(key);
        h->type[id] = TT_NORMAL;
    }
    json_array_foreach(h->added, i, e)
    {
        const json_t *c = json_object_get(e, "content");
        id = (int32_t)json_integer_value(json_object_get(e, "id"));
        h->text[id].ptr = json_string_value(c);
        h->text[id].len = json_string_length(c);
        h->type[id] = json_is_true(json_object_get(e, "special")) ? TT_CONTROL : TT_USER_DEFINED;
    }
    for (id = 0; id < h->n; id++) n_holes += h->type[id] == 0;
    if (!n_holes) return CLLM_OK;
    h->pad_pool = malloc(n_holes * 16);
    if (!h->pad_pool) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory");
    for (id = 0; id < h->n; id++) {
        if (h->type[id]) continue;
        h->text[id].ptr = h->pad_pool + off;
        h->text[id].len = (size_t)snprintf(h->pad_pool + off, 16, "[PAD%d]", id);
        h->type[id] = TT_UNUSED;
        off += 16;
    }
    log_warn("hf tokenizer: %s/%s: %zu ids below %d have no token; they are unused [PAD<id>] tokens", h->dir, F_TOK,
             n_holes, h->n);
    return CLLM_OK;
}

/* One merge as (left, right); the string form splits at the first space after its first byte. */
static status_t merge_parts(const hf_load_t *h, const json_t *m, size_t r, gguf_str_t *l, gguf_str_t *rt)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp;
        size_t len = json_string_length(m);
        sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "model.merges[%zu]: \"%.64s\" is not \"left right\"", r, s);
        l->ptr = s;
        l->len = (size_t)(sp - s);
        rt->ptr = sp + 1;
        rt->len = len - l->len - 1;
        return CLLM_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        l->ptr = json_string_value(json_array_get(m, 0));
        l->len = json_string_length(json_array_get(m, 0));
        rt->ptr = json_string_value(json_array_get(m, 1));
        rt->len = json_string_length(json_array_get(m, 1));
        return CLLM_OK;
    }
    return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "model.merges[%zu]: not a string or a pair of strings", r);
}

/* Byte-level BPE: the merges as GGUF "left right" strings (pair-form merges are joined; one with
 * a space inside a half cannot be written that way and is dropped with a warning). */
static status_t load_merges_bpe(hf_load_t *h, const json_t *merges)
{
    size_t n = json_array_size(merges), pool = 0, off = 0, dropped = 0, i;
    const json_t *m;
    status_t st;

    h->merges = malloc((n ? n : 1) * sizeof(*h->merges));
    if (!h->merges) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory for %zu merges", n);
    json_array_foreach(merges, i, m)
    {
        if (json_is_array(m))
            pool += json_string_length(json_array_get(m, 0)) + json_string_length(json_array_get(m, 1)) + 1;
    }
    if (pool && !(h->merge_pool = malloc(pool)))
        return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory for %zu merges", n);
    json_array_foreach(merges, i, m)
    {
        gguf_str_t l, r;
        if ((st = merge_parts(h, m, i, &l, &r)) != CLLM_OK) return st;
        if (json_is_string(m)) {
            h->merges[h->n_merges].ptr = json_string_value(m);
            h->merges[h->n_merges++].len = json_string_length(m);
            continue;
        }
        if (memchr(l.ptr, ' ', l.len) || memchr(r.ptr, ' ', r.len)) {
            dropped++;
            continue;
        }
        memcpy(h->merge_pool + off, l.ptr, l.len);
        h->merge_pool[off + l.len] = ' ';
        memcpy(h->merge_pool + off + l.len + 1, r.ptr, r.len);
        h->merges[h->n_merges].ptr = h->merge_pool + off;
        h->merges[h->n_merges++].len = l.len + r.len + 1;
        off += l.len + r.len + 1;
    }
    if (dropped)
        log_warn("hf tokenizer: %s/%s: %zu merges have a space inside a half; they are ignored", h->dir, F_TOK,
                 dropped);
    return CLLM_OK;
}

/* SentencePiece-style: a token made by a merge scores -(rank of its first merge), so the SPM
 * encoder (highest score first) merges in the order of the BPE ranks. Other normal tokens
 * score below every merge; byte, control and unknown tokens 0. */
static status_t load_scores_spm(hf_load_t *h, const json_t *merges)
{
    const float none = -(float)json_array_size(merges) - 1.0f;
    char *buf = NULL;
    size_t cap = 0, i;
    const json_t *m;
    status_t st = CLLM_OK;

    h->score = malloc((size_t)h->n * sizeof(float));
    if (!h->score) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory");
    for (int32_t id = 0; id < h->n; id++) h->score[id] = h->type[id] == TT_NORMAL ? none : 0.0f;
    json_array_foreach(merges, i, m)
    {
        gguf_str_t l, r;
        const json_t *v;
        if ((st = merge_parts(h, m, i, &l, &r)) != CLLM_OK) break;
        if (l.len + r.len > cap) {
            char *p = realloc(buf, l.len + r.len);
            if (!p) {
                st = cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory");
                break;
            }
            buf = p;
            cap = l.len + r.len;
        }
        memcpy(buf, l.ptr, l.len);
        memcpy(buf + l.len, r.ptr, r.len);
        v = json_object_getn(h->vocab, buf, l.len + r.len);
        if (json_is_integer(v)) {
            int32_t id = (int32_t)json_integer_value(v);
            if (h->type[id] == TT_NORMAL && h->score[id] == none) h->score[id] = -(float)i;
        }
    }
    free(buf);
    return st;
}

/* --- tokenizer.json: kind, pre-tokenizer, post-processor --- */

/* The Split regexes of a pre-tokenizer: the known one found, or the first unknown one in *other. */
static const char *find_split(const json_t *j, const char **other)
{
    const json_t *list = json_object_get(j, "pretokenizers"), *e;
    size_t i;
    if (str_eq(json_object_get(j, "type"), "Split")) {
        const json_t *pat = json_object_get(j, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        if (!re) re = json_string_value(json_object_get(pat, "String"));
        if (!re) return NULL;
        if (!strcmp(re, REGEX_LLAMA3)) return "llama-bpe";
        if (!strcmp(re, REGEX_QWEN2)) return "qwen2";
        if (!strcmp(re, REGEX_GPT2)) return "gpt2";
        if (!*other) *other = re;
        return NULL;
    }
    json_array_foreach(list, i, e)
    {
        const char *r = find_split(e, other);
        if (r) return r;
    }
    return NULL;
}

static status_t detect_kind(hf_load_t *h)
{
    const json_t *pre = json_object_get(h->tj, "pre_tokenizer"), *dec = json_object_get(h->tj, "decoder");
    const json_t *norm = json_object_get(h->tj, "normalizer");
    bool prepend = false;

    if (find_type(pre, "pretokenizers", "ByteLevel") || find_type(dec, "decoders", "ByteLevel")) {
        const json_t *bl = find_type(pre, "pretokenizers", "ByteLevel");
        const char *other = NULL;
        h->spm = false;
        h->pre = find_split(pre, &other);
        /* a ByteLevel pre-tokenizer with use_regex (the default) splits with GPT-2's regex itself */
        if (!h->pre && !other && bl && !json_is_false(json_object_get(bl, "use_regex"))) h->pre = "gpt2";
        if (json_is_true(json_object_get(bl, "add_prefix_space")))
            log_warn("hf tokenizer: %s/%s: the ByteLevel pre-tokenizer's add_prefix_space is not supported; ignored",
                     h->dir, F_TOK);
        if (!h->pre) {
            log_warn("hf tokenizer: %s/%s: pre_tokenizer regex '%.120s' is not known; using the Llama 3 split",
                     h->dir, F_TOK, other ? other : "(none)");
            h->pre = "llama-bpe";
        }
        return CLLM_OK;
    }
    /* all three are evaluated: each may set prepend */
    if ((int)json_is_true(json_object_get(h->model, "byte_fallback")) | (int)spm_normalizer(norm, &prepend) |
        (int)metaspace(pre, &prepend)) {
        h->spm = true;
        h->pre = "default";
        h->add_space_prefix = prepend;
        return CLLM_OK;
    }
    return hf_err(h, CLLM_ERR_UNSUPPORTED, F_TOK,
                  "a BPE model that is neither byte-level (ByteLevel) nor SentencePiece-style "
                  "(byte_fallback, Metaspace) is not supported");
}

/* The id of a TemplateProcessing special token named name, from its special_tokens map. */
static int32_t template_special(const hf_load_t *h, const json_t *tp, const json_t *piece)
{
    const json_t *st = json_object_get(piece, "SpecialToken");
    const char *name = json_string_value(json_object_get(st, "id"));
    const json_t *entry = json_object_get(json_object_get(tp, "special_tokens"), name ? name : "");
    const json_t *ids = json_object_get(entry, "ids");
    json_int_t id = json_integer_value(json_array_get(ids, 0));
    if (!name) return -1;
    if (json_is_integer(json_array_get(ids, 0)) && id >= 0 && id < h->n) return (int32_t)id;
    return find_token(h, name, strlen(name));
}

/* post_processor: BOS/EOS around a single sequence (TemplateProcessing, Roberta/Bert), also
 * inside a Sequence. Others (ByteLevel, none) add nothing. */
static void read_post(hf_load_t *h, const json_t *pp)
{
    const json_t *list = json_object_get(pp, "processors"), *e;
    const json_t *type = json_object_get(pp, "type");
    size_t i;

    if (str_eq(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(pp, "single"), *first = json_array_get(single, 0);
        bool seen_seq = false;
        h->add_bos = h->add_eos = 0;
        if (json_object_get(first, "SpecialToken")) {
            int32_t id = template_special(h, pp, first);
            h->add_bos = 1;
            if (id >= 0) h->bos = id;
        }
        json_array_foreach(single, i, e)
        {
            if (json_object_get(e, "Sequence")) seen_seq = true;
            if (seen_seq && json_object_get(e, "SpecialToken")) {
                int32_t id = template_special(h, pp, e);
                h->add_eos = 1;
                if (id >= 0) h->eos = id;
                break;
            }
        }
        return;
    }
    if (str_eq(type, "RobertaProcessing") || str_eq(type, "BertProcessing")) {
        /* "cls": [text, id], "sep": [text, id] */
        const json_t *c = json_array_get(json_object_get(pp, "cls"), 1);
        const json_t *s = json_array_get(json_object_get(pp, "sep"), 1);
        h->add_bos = h->add_eos = 1;
        if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) < h->n)
            h->bos = (int32_t)json_integer_value(c);
        if (json_is_integer(s) && json_integer_value(s) >= 0 && json_integer_value(s) < h->n)
            h->eos = (int32_t)json_integer_value(s);
        return;
    }
    json_array_foreach(list, i, e)
    {
        read_post(h, e);
    }
}

static bool is_hex_upper(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

static status_t load_tokenizer_json(hf_load_t *h)
{
    const json_t *type, *merges, *unk;
    status_t st;

    if ((st = read_json(h, F_TOK, false, &h->tj)) != CLLM_OK) return st;
    h->model = json_object_get(h->tj, "model");
    if (!json_is_object(h->model)) return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "no \"model\" object");
    type = json_object_get(h->model, "type");
    if (type && !str_eq(type, "BPE"))
        return hf_err(h, CLLM_ERR_UNSUPPORTED, F_TOK, "model.type '%.32s' is not supported (only BPE)",
                      json_is_string(type) ? json_string_value(type) : "?");
    h->vocab = json_object_get(h->model, "vocab");
    if (!json_is_object(h->vocab)) return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "model.vocab is missing or not an object");
    merges = json_object_get(h->model, "merges");
    if (!json_is_array(merges)) return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "model.merges is missing or not an array");
    if (json_array_size(merges) >= HF_MAX_ID) /* ranks stay exact as float scores */
        return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "model.merges has %zu merges", json_array_size(merges));
    h->added = json_object_get(h->tj, "added_tokens");
    if (json_is_null(h->added)) h->added = NULL;
    if (h->added && !json_is_array(h->added)) return hf_err(h, CLLM_ERR_FORMAT, F_TOK, "added_tokens is not an array");
    if ((st = load_tokens(h)) != CLLM_OK || (st = detect_kind(h)) != CLLM_OK) return st;

    unk = json_object_get(h->model, "unk_token");
    if (json_is_string(unk)) {
        h->unk = find_token(h, json_string_value(unk), json_string_length(unk));
        if (h->unk >= 0) h->type[h->unk] = TT_UNKNOWN;
    }
    if (h->spm) {
        for (int32_t id = 0; id < h->n; id++) {
            const char *t = h->text[id].ptr;
            if (h->type[id] == TT_NORMAL && h->text[id].len == 6 && !memcmp(t, "<0x", 3) && t[5] == '>' &&
                is_hex_upper(t[3]) && is_hex_upper(t[4]))
                h->type[id] = TT_BYTE;
        }
        if ((st = load_scores_spm(h, merges)) != CLLM_OK) return st;
    } else if ((st = load_merges_bpe(h, merges)) != CLLM_OK) {
        return st;
    }
    read_post(h, json_object_get(h->tj, "post_processor"));
    return CLLM_OK;
}

/* --- tokenizer_config.json and generation_config.json --- */

/* A token field of tokenizer_config.json (a string, {"content": ...}, or null) -> *id. */
static status_t cfg_token(hf_load_t *h, const char *key, int32_t *id)
{
    const json_t *v = json_object_get(h->cfg, key);
    const char *text;
    int32_t found;
    if (!v || json_is_null(v)) return CLLM_OK;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return hf_err(h, CLLM_ERR_FORMAT, F_CFG, "%s is not a string or an object with a \"content\" string", key);
    text = json_string_value(v);
    found = find_token(h, text, json_string_length(v));
    if (found < 0 || found >= h->n) {
        log_warn("hf tokenizer: %s/%s: %s '%.64s' is not a token; ignored", h->dir, F_CFG, key, text);
        return CLLM_OK;
    }
    *id = found;
    return CLLM_OK;
}

static status_t cfg_bool(hf_load_t *h, const char *key, int *out)
{
    const json_t *v = json_object_get(h->cfg, key);
    if (!v || json_is_null(v)) return CLLM_OK;
    if (!json_is_boolean(v)) return hf_err(h, CLLM_ERR_FORMAT, F_CFG, "%s is not a boolean", key);
    *out = json_is_true(v);
    return CLLM_OK;
}

static status_t set_template(hf_load_t *h, const char *file, const json_t *v)
{
    const json_t *e;
    size_t i;
    if (!v || json_is_null(v)) return CLLM_OK;
    if (json_is_array(v)) { /* [{name, template}]: the "default" one, else the first */
        const json_t *pick = NULL;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(json_object_get(e, "template")))
                return hf_err(h, CLLM_ERR_FORMAT, file, "chat_template[%zu] has no \"template\" string", i);
            if (str_eq(json_object_get(e, "name"), "default")) pick = e;
        }
        if (!pick && json_array_size(v)) {
            const char *name;
            pick = json_array_get(v, 0);
            name = json_string_value(json_object_get(pick, "name"));
            log_warn("hf tokenizer: %s/%s: no chat_template named \"default\"; using \"%.32s\"", h->dir, file,
                     name ? name : "?");
        }
        v = pick ? json_object_get(pick, "template") : NULL;
        if (!v) return CLLM_OK;
    }
    if (!json_is_string(v))
        return hf_err(h, CLLM_ERR_FORMAT, file, "chat_template is not a string or a list of {name, template}");
    h->chat_template = strndup(json_string_value(v), json_string_length(v));
    if (!h->chat_template) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory");
    return CLLM_OK;
}

static status_t load_config(hf_load_t *h)
{
    int32_t eos = -1;
    status_t st;
    if ((st = read_json(h, F_CFG, true, &h->cfg)) != CLLM_OK || !h->cfg) return st;
    if ((st = cfg_token(h, "bos_token", &h->bos)) != CLLM_OK || (st = cfg_token(h, "eos_token", &eos)) != CLLM_OK ||
        (st = cfg_token(h, "unk_token", &h->unk)) != CLLM_OK || (st = cfg_token(h, "pad_token", &h->pad)) != CLLM_OK ||
        (st = cfg_bool(h, "add_bos_token", &h->add_bos)) != CLLM_OK ||
        (st = cfg_bool(h, "add_eos_token", &h->add_eos)) != CLLM_OK)
        return st;
    if (eos >= 0) {
        h->eos = eos;
        h->eos_from_cfg = true;
    }
    return set_template(h, F_CFG, json_object_get(h->cfg, "chat_template"));
}

/* chat_template.jinja, or chat_template.json's "chat_template", when tokenizer_config.json has none. */
static status_t load_template_file(hf_load_t *h)
{
    static const char jinja[] = "chat_template.jinja", js[] = "chat_template.json";
    json_t *j = NULL;
    size_t len;
    status_t st;
    if (h->chat_template) return CLLM_OK;
    if ((st = read_text(h, jinja, true, &h->chat_template, &len)) != CLLM_OK || h->chat_template) return st;
    if ((st = read_json(h, js, true, &j)) != CLLM_OK || !j) return st;
    st = set_template(h, js, json_object_get(j, "chat_template"));
    json_decref(j);
    return st;
}

/* A token id of file (generation_config.json or config.json): *id = v when it is an id of the
 * vocabulary. */
static status_t gen_id(hf_load_t *h, const char *file, const json_t *v, const char *key, int32_t *id)
{
    const double x = json_number_value(v); /* numbers are read as doubles (read_json) */
    if (!json_is_number(v) || !(x > -1e15 && x < 1e15) || x != (double)(long long)x)
        return hf_err(h, CLLM_ERR_FORMAT, file, "%s is not an integer id or a list of them", key);
    if (x < 0 || x >= h->n) {
        log_warn("hf tokenizer: %s/%s: %s %.0f is not a token id (vocabulary of %d); ignored", h->dir, file, key, x,
                 h->n);
        return CLLM_OK;
    }
    *id = (int32_t)x;
    return CLLM_OK;
}

/* bos_token_id and eos_token_id (an id or a list: every one ends generation) of file, for what
 * the files read before it left unset. */
static status_t load_ids(hf_load_t *h, const char *file, json_t **j)
{
    const json_t *eos, *e;
    int32_t bos = -1;
    size_t i;
    status_t st;

    if ((st = read_json(h, file, true, j)) != CLLM_OK || !*j) return st;
    e = json_object_get(*j, "bos_token_id");
    if (e && !json_is_null(e)) {
        if ((st = gen_id(h, file, e, "bos_token_id", &bos)) != CLLM_OK) return st;
        if (h->bos < 0) h->bos = bos;
    }
    eos = json_object_get(*j, "eos_token_id");
    if (!eos || json_is_null(eos) || h->n_eog) return CLLM_OK;
    free(h->eog);
    h->eog = malloc((json_is_array(eos) ? json_array_size(eos) + 1 : 1) * sizeof(int32_t));
    if (!h->eog) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory");
    if (!json_is_array(eos)) {
        int32_t id = -1;
        if ((st = gen_id(h, file, eos, "eos_token_id", &id)) != CLLM_OK) return st;
        if (id >= 0) h->eog[h->n_eog++] = id;
    } else {
        json_array_foreach(eos, i, e)
        {
            int32_t id = -1;
            if ((st = gen_id(h, file, e, "eos_token_id", &id)) != CLLM_OK) return st;
            if (id >= 0) h->eog[h->n_eog++] = id;
        }
    }
    if (!h->eos_from_cfg && h->n_eog) h->eos = h->eog[0];
    return CLLM_OK;
}

/* generation_config.json first (vLLM's source of stop ids), then config.json for what is still
 * unset (the model's own bos/eos ids). */
static status_t load_generation(hf_load_t *h)
{
    status_t st = load_ids(h, F_GEN, &h->gen);
    return st == CLLM_OK ? load_ids(h, F_MODEL, &h->model_cfg) : st;
}

/* --- the GGUF --- */

static status_t build_gguf(const hf_load_t *h, tokenizer_t **tok)
{
    gguf_writer_t *w = gguf_writer_create();
    void *data = NULL;
    size_t size = 0;
    gguf_t *g = NULL;
    status_t st;

    if (!w) return cllm_error(CLLM_ERR_NOMEM, "hf tokenizer: out of memory");
    st = gguf_writer_set_str(w, "tokenizer.ggml.model", h->spm ? "llama" : "gpt2", h->spm ? 5 : 4);
    if (st == CLLM_OK) st = gguf_writer_set_str(w, "tokenizer.ggml.pre", h->pre, strlen(h->pre));
    if (st == CLLM_OK) st = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", h->text, (uint64_t)h->n);
    if (st == CLLM_OK)
        st = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, h->type, (uint64_t)h->n);
    if (st == CLLM_OK && h->spm)
        st = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, h->score, (uint64_t)h->n);
    if (st == CLLM_OK && !h->spm) st = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", h->merges, h->n_merges);
    if (st == CLLM_OK && h->bos >= 0) st = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)h->bos);
    if (st == CLLM_OK && h->eos >= 0) st = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)h->eos);
    if (st == CLLM_OK && h->unk >= 0) st = gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)h->unk);
    if (st == CLLM_OK && h->pad >= 0) st = gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)h->pad);
    if (st == CLLM_OK) st = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", h->add_bos > 0);
    if (st == CLLM_OK) st = gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", h->add_eos > 0);
    if (st == CLLM_OK && h->spm) st = gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", h->add_space_prefix);
    if (st == CLLM_OK && h->n_eog) st = gguf_writer_set_arr(w, HF_TOKENIZER_KEY_EOG, GGUF_TYPE_INT32, h->eog, h->n_eog);
    if (st == CLLM_OK) st = gguf_writer_write_memory(w, &data, &size);
    gguf_writer_destroy(w);
    if (st == CLLM_OK) st = gguf_open_memory(data, size, &g);
    if (st == CLLM_OK) st = tokenizer_create(g, tok);
    if (st != CLLM_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", cllm_error_message());
        st = cllm_error(st, "hf tokenizer: %s: %s", h->dir, msg);
    }
    gguf_close(g);
    free(data);
    return st;
}

status_t hf_tokenizer_load(const char *dir, tokenizer_t **tok, char **chat_template)
{
    hf_load_t h;
    status_t st;

    if (tok) *tok = NULL;
    if (chat_template) *chat_template = NULL;
    if (!dir || !tok) return cllm_error(CLLM_ERR_INVALID_ARG, "hf_tokenizer_load: NULL argument");
    memset(&h, 0, sizeof(h));
    h.dir = dir;
    h.bos = h.eos = h.unk = h.pad = -1;
    h.add_bos = h.add_eos = -1;
    st = load_tokenizer_json(&h);
    if (st == CLLM_OK) st = load_config(&h);
    if (st == CLLM_OK) st = load_template_file(&h);
    if (st == CLLM_OK) st = load_generation(&h);
    if (st == CLLM_OK) st = build_gguf(&h, tok);
    if (st == CLLM_OK && chat_template) {
        *chat_template = h.chat_template;
        h.chat_template = NULL;
    }
    free(h.chat_template);
    free(h.eog);
    free(h.merges);
    free(h.merge_pool);
    free(h.score);
    free(h.pad_pool);
    free(h.text);
    free(h.type);
    json_decref(h.tj);
    json_decref(h.cfg);
    json_decref(h.gen);
    json_decref(h.model_cfg);
    return st;
}

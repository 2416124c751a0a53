/* mkmodel.c: random-weight `llama` GGUF models (see mkmodel.h).
 *
 * Owns, during one mkmodel_write: the writer, the built-in vocabulary (token strings, types,
 * merges) and the per-tensor fill contexts. Tensors are produced one at a time by the
 * writer's fill callbacks, so memory peaks at one tensor (plus one f32 row of scratch).
 * Invariants: each tensor's values depend only on (seed, tensor name, shape, dtype), never on
 * the order tensors are written in; every token string of the built-in vocabulary is unique
 * and every merge's result is a token, as llama.cpp's BPE requires. */
#include "model/mkmodel.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/gguf.h"
#include "model/hf_model.h"
#include "model/safetensors.h"
#include "tokenizer/hf_tokenizer.h"

#define INIT_STD 0.02f
#define MAX_DIM ((int64_t)1 << 20)   /* bound on every size, so products cannot overflow */
#define MAX_LAYERS 1024

/* ---------------------------------------------------------------- shapes and templates */

void mkmodel_params_default(mkmodel_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->rope_theta = 10000.0f;
    p->rms_eps = 1e-5f;
    p->tied = true;
    p->dtype = DTYPE_F32;
    p->seed = 1;
    mkmodel_params_shape(p, "tiny");
}

status_t mkmodel_params_shape(mkmodel_params_t *p, const char *shape)
{
    if (!strcmp(shape, "llama3-1b")) { /* Llama 3.2 1B */
        p->name = "cllm-random-llama3-1b";
        p->n_embd = 2048; p->n_layer = 16; p->n_head = 32; p->n_head_kv = 8; p->head_dim = 64; p->n_ff = 8192;
        p->rope_theta = 500000.0f; p->n_ctx = 8192; p->tied = true; p->rms_eps = 1e-5f;
        p->rope_llama3 = true; p->rope_factor = 32.0f; p->rope_low_freq_factor = 1.0f;
        p->rope_high_freq_factor = 4.0f; p->rope_orig_ctx = 8192;
    } else if (!strcmp(shape, "demo")) {
        p->name = "cllm-random-demo";
        p->n_embd = 512; p->n_layer = 4; p->n_head = 8; p->n_head_kv = 4; p->head_dim = 0; p->n_ff = 1408;
        p->rope_theta = 500000.0f; p->n_ctx = 8192; p->tied = true; p->rms_eps = 1e-5f; p->rope_llama3 = false;
    } else if (!strcmp(shape, "tiny")) {
        p->name = "cllm-random-tiny";
        p->n_embd = 64; p->n_layer = 2; p->n_head = 4; p->n_head_kv = 2; p->head_dim = 0; p->n_ff = 128;
        p->rope_theta = 10000.0f; p->n_ctx = 2048; p->tied = true; p->rms_eps = 1e-5f; p->rope_llama3 = false;
    } else {
        return cllm_error(CLLM_ERR_NOT_FOUND, "mkmodel: unknown shape '%s' (known: %s)", shape, mkmodel_shape_names());
    }
    return CLLM_OK;
}

const char *mkmodel_shape_names(void)
{
    return "llama3-1b demo tiny";
}

/* The chat templates of each family as their model cards ship them (Jinja, tokenizer_config). */
static const struct {
    const char *name;
    const char *text;
} chat_templates[] = {
    { "llama3",
      "{% set loop_messages = messages %}{% for message in loop_messages %}"
      "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
      "+ message['content'] | trim + '<|eot_id|>' %}"
      "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}" },
    { "llama2",
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
      "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
      "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
      "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if loop.index0 == 0 and system_message != false %}"
      "{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}"
      "{% else %}{% set content = message['content'] %}{% endif %}"
      "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
      "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
      "{% endfor %}" },
    { "chatml",
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
      " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}" },
    { "mistral",
      "{{ bos_token }}{% for message in messages %}"
      "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
      "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
      "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}" },
    { "gemma",
      "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
      "{% endif %}{% for message in messages %}"
      "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
      "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
      "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}" },
};

const char *mkmodel_chat_template(const char *name)
{
    for (size_t i = 0; i < sizeof(chat_templates) / sizeof(chat_templates[0]); i++)
        if (!strcmp(name, chat_templates[i].name)) return chat_templates[i].text;
    return NULL;
}

const char *mkmodel_chat_template_names(void)
{
    return "llama3 llama2 chatml mistral gemma";
}

uint32_t mkmodel_file_type(dtype_t t)
{
    switch (t) {
    case DTYPE_F32: return 0;
    case DTYPE_F16: return 1;
    case DTYPE_Q4_0: return 2;
    case DTYPE_Q8_0: return 7;
    case DTYPE_BF16: return 32;
    }
    return 0;
}

static status_t gen_defaults_parse(const char *spec, json_t *gen);

static int64_t head_dim_of(const mkmodel_params_t *p)
{
    return p->head_dim ? p->head_dim : (p->n_head ? p->n_embd / p->n_head : 0);
}

static status_t check_range(const char *what, int64_t v, int64_t max)
{
    if (v < 1 || v > max)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: %s %lld out of range (1..%lld)", what, (long long)v,
                          (long long)max);
    return CLLM_OK;
}

status_t mkmodel_params_check(const mkmodel_params_t *p)
{
    int64_t hd = head_dim_of(p);
    size_t blk = dtype_block_elems(p->dtype);
    status_t st;
    if (!dtype_is_supported((uint32_t)p->dtype))
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: unsupported dtype %d", (int)p->dtype);
    if ((st = check_range("n_embd", p->n_embd, MAX_DIM)) != CLLM_OK) return st;
    if ((st = check_range("n_layer", p->n_layer, MAX_LAYERS)) != CLLM_OK) return st;
    if ((st = check_range("n_head", p->n_head, 4096)) != CLLM_OK) return st;
    if ((st = check_range("n_head_kv", p->n_head_kv, p->n_head)) != CLLM_OK) return st;
    if ((st = check_range("n_ff", p->n_ff, MAX_DIM)) != CLLM_OK) return st;
    if ((st = check_range("n_ctx", p->n_ctx, (int64_t)1 << 24)) != CLLM_OK) return st;
    if (p->n_head % p->n_head_kv)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: n_head %lld is not a multiple of n_head_kv %lld",
                          (long long)p->n_head, (long long)p->n_head_kv);
    if (!p->head_dim && p->n_embd % p->n_head)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: n_embd %lld is not a multiple of n_head %lld (give --head-dim)",
                          (long long)p->n_embd, (long long)p->n_head);
    if ((st = check_range("head_dim", hd, 1024)) != CLLM_OK) return st;
    if (hd % 2) return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: head_dim %lld must be even for RoPE", (long long)hd);
    if (p->n_head * hd > MAX_DIM)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: n_head * head_dim %lld too large", (long long)(p->n_head * hd));
    if (p->vocab_size < 0 || p->vocab_size > ((int64_t)1 << 22))
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: vocab size %lld out of range", (long long)p->vocab_size);
    if (!(p->rope_theta > 0.0f) || !(p->rms_eps > 0.0f))
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: rope_theta and rms_eps must be positive");
    if (p->rope_llama3 && (!(p->rope_factor > 0.0f) || !(p->rope_high_freq_factor > p->rope_low_freq_factor) ||
                           p->rope_orig_ctx < 1))
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: bad llama3 RoPE scaling parameters");
    if (p->n_embd % (int64_t)blk || p->n_ff % (int64_t)blk || (p->n_head * hd) % (int64_t)blk)
        return cllm_error(CLLM_ERR_INVALID_ARG,
                          "mkmodel: dtype %s needs n_embd (%lld), n_ff (%lld) and n_head*head_dim (%lld) to be multiples of %zu",
                          dtype_name((uint32_t)p->dtype), (long long)p->n_embd, (long long)p->n_ff,
                          (long long)(p->n_head * hd), blk);
    if (p->format != MKMODEL_FORMAT_HF) {
        if (p->format != MKMODEL_FORMAT_GGUF)
            return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: unknown format %d", (int)p->format);
        if (p->n_shards > 1 || p->gen_defaults)
            return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: shards and generation defaults need the hf format");
        return CLLM_OK;
    }
    if (blk != 1)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: safetensors has no %s type: use f32, f16 or bf16 with the hf format",
                          dtype_name((uint32_t)p->dtype));
    if (p->n_shards < 0 || p->n_shards > 99999)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: %d shards out of range (1..99999)", p->n_shards);
    if (p->n_shards > p->n_layer * 9 + 2 + !p->tied)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: %d shards for %lld tensors", p->n_shards,
                          (long long)(p->n_layer * 9 + 2 + !p->tied));
    return p->gen_defaults ? gen_defaults_parse(p->gen_defaults, NULL) : CLLM_OK;
}

/* ---------------------------------------------------------------- random numbers */

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
typedef struct {
    uint64_t s[4];
    int has_spare;
    float spare; /* Box-Muller's second normal */
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A stream for one tensor: depends on the seed and the tensor's name only. */
static void rng_seed(rng_t *r, uint64_t seed, const char *name)
{
    uint64_t x = seed, h = 0xcbf29ce484222325ull;
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    x ^= splitmix64(&h);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
}

/* N(0, 1) by Box-Muller, from two 53-bit uniforms (u1 in (0, 1] so log is finite). */
static float rng_normal(rng_t *r)
{
    double u1, u2, rad;
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    u1 = (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
    u2 = (double)(rng_next(r) >> 11) * 0x1.0p-53;
    rad = sqrt(-2.0 * log(u1));
    r->spare = (float)(rad * sin(2.0 * M_PI * u2));
    r->has_spare = 1;
    return (float)(rad * cos(2.0 * M_PI * u2));
}

/* ---------------------------------------------------------------- tensor fills */

typedef enum { FILL_RANDOM, FILL_ONES, FILL_ROPE_FREQS } fill_kind_t;

typedef struct {
    const mkmodel_params_t *p;
    const char *name;   /* the tensor's GGUF name, which seeds its stream (into the names arena) */
    fill_kind_t kind;
    dtype_t type;
    int64_t ne0, rows;
    int64_t permute_head_dim; /* HF q/k_proj: rows per head to put in rotate_half order; else 0 */
    float *scratch;     /* (max ne0) shared f32 row */
} tensor_fill_t;

/* The tensor's values in GGUF row order: N(0, 0.02) from its own stream, or all 1.0 (any
 * float dtype), or the Llama 3.x RoPE frequency divisors (F32, head_dim / 2). */
static void fill_rows(const tensor_fill_t *f, void *dst, size_t row_bytes)
{
    rng_t rng;
    if (f->kind == FILL_ROPE_FREQS) {
        hf_model_rope_llama3_factors(f->p->rope_theta, head_dim_of(f->p), f->p->rope_factor, f->p->rope_low_freq_factor,
                                     f->p->rope_high_freq_factor, (float)f->p->rope_orig_ctx, dst);
        return;
    }
    rng_seed(&rng, f->p->seed, f->name);
    for (int64_t r = 0; r < f->rows; r++) {
        float *row = f->type == DTYPE_F32 ? (float *)((uint8_t *)dst + (size_t)r * row_bytes) : f->scratch;
        for (int64_t i = 0; i < f->ne0; i++) row[i] = f->kind == FILL_ONES ? 1.0f : INIT_STD * rng_normal(&rng);
        if (f->type != DTYPE_F32)
            dtype_from_f32_row(f->type, row, (uint8_t *)dst + (size_t)r * row_bytes, (size_t)f->ne0);
    }
}

static status_t fill_tensor(void *ctx, void *dst, size_t nbytes)
{
    tensor_fill_t *f = ctx;
    size_t row_bytes = dtype_row_bytes(f->type, (size_t)f->ne0);
    void *gguf_order;
    if (row_bytes * (size_t)f->rows != nbytes)
        return cllm_error(CLLM_ERR_INTERNAL, "mkmodel: tensor '%s': %zu bytes asked, %zu expected", f->name, nbytes,
                          row_bytes * (size_t)f->rows);
    if (!f->permute_head_dim) {
        fill_rows(f, dst, row_bytes);
        return CLLM_OK;
    }
    /* a checkpoint's q_proj / k_proj: the GGUF rows, then each head into rotate_half order */
    if (!(gguf_order = malloc(nbytes ? nbytes : 1)))
        return cllm_error(CLLM_ERR_NOMEM, "mkmodel: out of memory for tensor '%s'", f->name);
    fill_rows(f, gguf_order, row_bytes);
    hf_model_permute_qk(dst, gguf_order, f->rows, f->permute_head_dim, row_bytes, true);
    free(gguf_order);
    return CLLM_OK;
}

/* ---------------------------------------------------------------- built-in vocabulary */

enum { TOKEN_TYPE_NORMAL = 1, TOKEN_TYPE_CONTROL = 3 };

typedef struct {
    char **tokens;      /* (n) */
    int32_t *types;     /* (n) */
    size_t n, cap;
    char **merges;      /* (n_merges) "left right" */
    size_t n_merges, cap_merges;
    int failed;         /* an allocation failed */
} vocab_t;

/* Common English words (leading space = a word start), whose left-to-right merges make a small
 * but working BPE vocabulary; order = merge priority. */
static const char *const vocab_words[] = {
    " the", " and", " to", " a", " of", " in", " was", " he", " she", " it", " is", " that", " his", " her",
    " they", " with", " for", " on", " you", " said", " had", " there", " were", " one", " day", " time",
    " upon", " once", " little", " big", " happy", " friend", " friends", " play", " played", " wanted",
    " went", " saw", " mom", " dog", " cat", " bird", " tree", " ball", " park", " sun", " very", " not",
    " but", " so", " all", " what", " can", " be", " have", " are", " this", " from", " by", " at", " as",
    " we", " or", " an", " do", " if", " will", " my", " up", " out", " about", " who", " get", " which",
    " go", " me", " when", " make", " like", " him", " know", " into", " your", " good", " some", " could",
    " them", " see", " other", " than", " then", " now", " look", " only", " come", " its", " over", " think",
    " also", " back", " after", " use", " two", " how", " our", " work", " first", " well", " way", " even",
    " new", " want", " because", " any", " these", " give", " most", " us", " people", " story", " home",
    " The", " He", " She", " It", " They", " One", " Once", " Lily", " Tom", " Ben", " Sue", " I",
    "The", "He", "She", "It", "Once", "One", "Lily", "Tom",
    "ing", "ed", "er", "ly", "es", "ion", "ness", "ful", "est", "ers",
};

static void vocab_add_token(vocab_t *v, const char *s, size_t len, int32_t type)
{
    char *copy;
    if (v->failed) return;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        char **t = realloc(v->tokens, cap * sizeof(*t));
        int32_t *ty = t ? realloc(v->types, cap * sizeof(*ty)) : NULL;
        if (t) v->tokens = t;
        if (ty) v->types = ty;
        if (!t || !ty) {
            v->failed = 1;
            return;
        }
        v->cap = cap;
    }
    copy = malloc(len + 1);
    if (!copy) {
        v->failed = 1;
        return;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    v->tokens[v->n] = copy;
    v->types[v->n++] = type;
}

static void vocab_add_merge(vocab_t *v, const char *left, const char *right)
{
    size_t ll = strlen(left), lr = strlen(right);
    char *m;
    if (v->failed) return;
    if (v->n_merges == v->cap_merges) {
        size_t cap = v->cap_merges ? v->cap_merges * 2 : 256;
        char **t = realloc(v->merges, cap * sizeof(*t));
        if (!t) {
            v->failed = 1;
            return;
        }
        v->merges = t;
        v->cap_merges = cap;
    }
    m = malloc(ll + lr + 2);
    if (!m) {
        v->failed = 1;
        return;
    }
    memcpy(m, left, ll);
    m[ll] = ' ';
    memcpy(m + ll + 1, right, lr + 1);
    v->merges[v->n_merges++] = m;
}

static int vocab_has(const vocab_t *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->tokens[i], s)) return 1;
    return 0;
}

/* GPT-2's byte-level mapping: printable bytes stand for themselves, the others (control,
 * space, 127..160, 173) for code points 256, 257, ... in byte order. */
static int byte_is_printable(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* UTF-8 of the code point standing for byte b (1 or 2 bytes + NUL). */
static void byte_symbol(int b, char out[4])
{
    int cp = b, n = 0;
    if (!byte_is_printable(b)) {
        for (int i = 0; i < b; i++) n += !byte_is_printable(i);
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = '\0';
    }
}

static const char *const special_tokens[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
};
enum { SPECIAL_BOS, SPECIAL_EOS, SPECIAL_START_HEADER, SPECIAL_END_HEADER, SPECIAL_EOT, N_SPECIALS };

/* Byte tokens in GPT-2 order (printable bytes first), merge tokens, the specials, then reserved
 * control tokens up to vocab_size. *special0 gets the id of the first special. */
static status_t vocab_build(vocab_t *v, int64_t vocab_size, int64_t *special0)
{
    char sym[4];
    size_t i;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            if (byte_is_printable(b) != (pass == 0)) continue;
            byte_symbol(b, sym);
            vocab_add_token(v, sym, strlen(sym), TOKEN_TYPE_NORMAL);
        }
    for (i = 0; i < sizeof(vocab_words) / sizeof(vocab_words[0]); i++) {
        const char *w = vocab_words[i];
        char prefix[64], merged[64];
        byte_symbol((uint8_t)w[0], prefix);
        for (const char *c = w + 1; *c; c++) {
            size_t lp = strlen(prefix), ls;
            byte_symbol((uint8_t)*c, sym);
            ls = strlen(sym);
            if (lp + ls >= sizeof(merged)) break; /* the words are short: never taken */
            memcpy(merged, prefix, lp);
            memcpy(merged + lp, sym, ls + 1);
            if (!vocab_has(v, merged)) {
                vocab_add_merge(v, prefix, sym);
                vocab_add_token(v, merged, strlen(merged), TOKEN_TYPE_NORMAL);
            }
            memcpy(prefix, merged, sizeof(prefix));
        }
    }
    *special0 = (int64_t)v->n;
    for (i = 0; i < N_SPECIALS; i++) vocab_add_token(v, special_tokens[i], strlen(special_tokens[i]), TOKEN_TYPE_CONTROL);
    if (vocab_size && vocab_size < (int64_t)v->n)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: vocab size %lld is smaller than the built-in vocabulary (%zu tokens)",
                          (long long)vocab_size, v->n);
    for (i = 0; (int64_t)v->n < vocab_size && !v->failed; i++) {
        char name[48];
        int len = snprintf(name, sizeof(name), "<|reserved_special_token_%zu|>", i);
        vocab_add_token(v, name, (size_t)len, TOKEN_TYPE_CONTROL);
    }
    if (v->failed) return cllm_error(CLLM_ERR_NOMEM, "mkmodel: out of memory building the vocabulary");
    return CLLM_OK;
}

static void vocab_free(vocab_t *v)
{
    for (size_t i = 0; i < v->n; i++) free(v->tokens[i]);
    for (size_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
}

static status_t set_str_array(gguf_writer_t *w, const char *key, char **strs, size_t n)
{
    gguf_str_t *s = malloc((n ? n : 1) * sizeof(*s));
    status_t st;
    if (!s) return cllm_error(CLLM_ERR_NOMEM, "mkmodel: out of memory for %s", key);
    for (size_t i = 0; i < n; i++) {
        s[i].ptr = strs[i];
        s[i].len = strlen(strs[i]);
    }
    st = gguf_writer_set_arr_str(w, key, s, n);
    free(s);
    return st;
}

/* The vocabulary to write: the built-in one, or another GGUF's tokenizer.* keys. */
typedef struct {
    gguf_t *src;        /* --vocab-from file, or NULL */
    vocab_t v;          /* built-in vocabulary when src is NULL */
    int64_t special0;   /* id of <|begin_of_text|> in the built-in vocabulary */
    int64_t n_vocab;
} vocab_source_t;

static status_t vocab_source_open(vocab_source_t *vs, const mkmodel_params_t *p)
{
    int64_t tok;
    status_t st;
    memset(vs, 0, sizeof(*vs));
    if (!p->vocab_from) {
        st = vocab_build(&vs->v, p->vocab_size, &vs->special0);
        vs->n_vocab = (int64_t)vs->v.n;
        return st;
    }
    if ((st = gguf_open(p->vocab_from, &vs->src)) != CLLM_OK) return st;
    tok = gguf_find_key(vs->src, "tokenizer.ggml.tokens");
    if (tok < 0 || gguf_arr_type(vs->src, tok) != GGUF_TYPE_STRING || gguf_arr_n(vs->src, tok) == 0)
        return cllm_error(CLLM_ERR_FORMAT, "mkmodel: %s has no tokenizer.ggml.tokens string array", p->vocab_from);
    vs->n_vocab = (int64_t)gguf_arr_n(vs->src, tok);
    if (p->vocab_size && p->vocab_size != vs->n_vocab)
        return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: vocab size %lld differs from the %lld tokens of %s",
                          (long long)p->vocab_size, (long long)vs->n_vocab, p->vocab_from);
    return CLLM_OK;
}

static void vocab_source_close(vocab_source_t *vs)
{
    gguf_close(vs->src);
    vocab_free(&vs->v);
}

/* Writes the tokenizer.* keys: a copy of every one of the source file's (its chat template
 * too, unless one is given), or the built-in byte-level BPE vocabulary. */
static status_t vocab_source_write(vocab_source_t *vs, gguf_writer_t *w, const mkmodel_params_t *p)
{
    const vocab_t *v = &vs->v;
    int64_t sp = vs->special0;
    status_t st = CLLM_OK;
    if (vs->src) {
        for (int64_t i = 0; i < gguf_n_kv(vs->src) && st == CLLM_OK; i++) {
            const char *key = gguf_key_name(vs->src, i);
            if (strncmp(key, "tokenizer.", 10)) continue;
            if (p->chat_template && !strcmp(key, "tokenizer.chat_template")) continue;
            st = gguf_writer_copy_kv(w, vs->src, i);
        }
        return st;
    }
    st = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", 4);
    if (st == CLLM_OK) st = gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe", 9);
    if (st == CLLM_OK) st = set_str_array(w, "tokenizer.ggml.tokens", v->tokens, v->n);
    if (st == CLLM_OK) st = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types, v->n);
    if (st == CLLM_OK) st = set_str_array(w, "tokenizer.ggml.merges", v->merges, v->n_merges);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(sp + SPECIAL_BOS));
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(sp + SPECIAL_EOS));
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)(sp + SPECIAL_EOT));
    if (st == CLLM_OK) st = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    return st;
}

/* ---------------------------------------------------------------- the model */

#define NAME_SLOT 64 /* bytes per tensor name: "model.layers.1023.post_attention_layernorm.weight" fits */

typedef struct {
    gguf_writer_t *w;        /* GGUF, or */
    safetensors_writer_t *sw; /* a checkpoint's safetensors */
    const mkmodel_params_t *p;
    tensor_fill_t *fills;  /* (cap) contexts, alive until the write */
    char *names;           /* (cap * NAME_SLOT) GGUF tensor names */
    size_t n, cap;
    int64_t n_elements;
    float *scratch;        /* (max ne0) */
} model_builder_t;

/* Plans one tensor: gguf names it in a GGUF (and seeds its values), hf in a checkpoint (NULL:
 * none there). permute: a checkpoint's q/k_proj, whose rows go in rotate_half order. */
static status_t add_weight(model_builder_t *b, const char *gguf, const char *hf, fill_kind_t kind, dtype_t type,
                           int64_t ne0, int64_t ne1, bool permute)
{
    tensor_fill_t *f;
    int64_t ne[2] = { ne0, ne1 }, shape[2] = { ne1, ne0 };
    uint32_t n_dims = ne1 > 1 || kind == FILL_RANDOM ? 2 : 1;
    char *slot;
    if (b->sw && !hf) return CLLM_OK;
    if (b->n == b->cap) return cllm_error(CLLM_ERR_INTERNAL, "mkmodel: more tensors than planned");
    slot = b->names + b->n * NAME_SLOT;
    snprintf(slot, NAME_SLOT, "%s", gguf);
    f = &b->fills[b->n++];
    f->p = b->p;
    f->name = slot;
    f->kind = kind;
    f->type = type;
    f->ne0 = ne0;
    f->rows = ne1;
    f->permute_head_dim = b->sw && permute ? head_dim_of(b->p) : 0;
    f->scratch = b->scratch;
    b->n_elements += ne0 * ne1;
    if (!b->sw) return gguf_writer_add_tensor_fill(b->w, slot, (uint32_t)type, n_dims, ne, fill_tensor, f);
    /* a checkpoint holds float types only (mkmodel_params_check) */
    return safetensors_writer_add_tensor_fill(b->sw, hf, type == DTYPE_F32   ? ST_DTYPE_F32
                                                         : type == DTYPE_F16 ? ST_DTYPE_F16
                                                                             : ST_DTYPE_BF16,
                                              n_dims, n_dims == 2 ? shape : ne, fill_tensor, f);
}

static status_t set_hparams(gguf_writer_t *w, const mkmodel_params_t *p, int64_t n_vocab)
{
    int64_t hd = head_dim_of(p);
    const char *name = p->name ? p->name : "cllm-random";
    status_t st = gguf_writer_set_str(w, "general.architecture", "llama", 5);
    if (st == CLLM_OK) st = gguf_writer_set_str(w, "general.name", name, strlen(name));
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "general.file_type", mkmodel_file_type(p->dtype));
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_vocab);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->n_embd);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv);
    if (st == CLLM_OK) st = gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_theta);
    if (st == CLLM_OK) st = gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->rms_eps);
    if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd);
    if (st == CLLM_OK && hd * p->n_head != p->n_embd) {
        st = gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)hd);
        if (st == CLLM_OK) st = gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)hd);
    }
    return st;
}

static status_t add_weights(model_builder_t *b, int64_t n_vocab)
{
    const mkmodel_params_t *p = b->p;
    int64_t hd = head_dim_of(p), q_dim = p->n_head * hd, kv_dim = p->n_head_kv * hd;
    dtype_t t = p->dtype, norm_t = b->sw ? p->dtype : DTYPE_F32;
    status_t st = CLLM_OK;
    char name[NAME_SLOT], hf[NAME_SLOT];
    /* llama.cpp's converter writes rope_freqs first (an extra tensor generated before the rest);
     * a checkpoint has config.json's rope_scaling instead */
    if (p->rope_llama3) st = add_weight(b, "rope_freqs.weight", NULL, FILL_ROPE_FREQS, DTYPE_F32, hd / 2, 1, false);
    if (st == CLLM_OK)
        st = add_weight(b, "token_embd.weight", "model.embed_tokens.weight", FILL_RANDOM, t, p->n_embd, n_vocab, false);
    for (int64_t l = 0; l < p->n_layer && st == CLLM_OK; l++) {
        static const struct {
            const char *suffix, *hf;
            int in, out; /* 0 n_embd, 1 q_dim, 2 kv_dim, 3 n_ff, -1 a norm */
        } layer[] = {
            { "attn_norm", "input_layernorm", 0, -1 },  { "attn_q", "self_attn.q_proj", 0, 1 },
            { "attn_k", "self_attn.k_proj", 0, 2 },     { "attn_v", "self_attn.v_proj", 0, 2 },
            { "attn_output", "self_attn.o_proj", 1, 0 }, { "ffn_norm", "post_attention_layernorm", 0, -1 },
            { "ffn_gate", "mlp.gate_proj", 0, 3 },      { "ffn_up", "mlp.up_proj", 0, 3 },
            { "ffn_down", "mlp.down_proj", 3, 0 },
        };
        const int64_t dims[4] = { p->n_embd, q_dim, kv_dim, p->n_ff };
        for (size_t k = 0; k < sizeof(layer) / sizeof(layer[0]) && st == CLLM_OK; k++) {
            snprintf(name, sizeof(name), "blk.%lld.%s.weight", (long long)l, layer[k].suffix);
            snprintf(hf, sizeof(hf), "model.layers.%lld.%s.weight", (long long)l, layer[k].hf);
            if (layer[k].out < 0)
                st = add_weight(b, name, hf, FILL_ONES, norm_t, p->n_embd, 1, false);
            else
                st = add_weight(b, name, hf, FILL_RANDOM, t, dims[layer[k].in], dims[layer[k].out], k == 1 || k == 2);
        }
    }
    if (st == CLLM_OK) st = add_weight(b, "output_norm.weight", "model.norm.weight", FILL_ONES, norm_t, p->n_embd, 1, false);
    if (st == CLLM_OK && !p->tied)
        st = add_weight(b, "output.weight", "lm_head.weight", FILL_RANDOM, t, p->n_embd, n_vocab, false);
    return st;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static status_t builder_init(model_builder_t *b, const mkmodel_params_t *p)
{
    int64_t max_ne0 = p->n_embd > p->n_ff ? p->n_embd : p->n_ff;
    if (p->n_head * head_dim_of(p) > max_ne0) max_ne0 = p->n_head * head_dim_of(p);
    memset(b, 0, sizeof(*b));
    b->p = p;
    b->cap = (size_t)p->n_layer * 9 + 4;
    b->fills = calloc(b->cap, sizeof(*b->fills));
    b->names = calloc(b->cap, NAME_SLOT);
    b->scratch = malloc((size_t)max_ne0 * sizeof(float));
    if (p->format == MKMODEL_FORMAT_HF) b->sw = safetensors_writer_create();
    else b->w = gguf_writer_create();
    if (!b->fills || !b->names || !b->scratch || (!b->w && !b->sw)) return cllm_error(CLLM_ERR_NOMEM, "mkmodel: out of memory");
    return CLLM_OK;
}

static void builder_free(model_builder_t *b)
{
    gguf_writer_destroy(b->w);
    safetensors_writer_destroy(b->sw);
    free(b->fills);
    free(b->names);
    free(b->scratch);
}

/* ---------------------------------------------------------------- Hugging Face checkpoints */

/* The double whose shortest decimal form reads back as f (1e-5f -> 1e-05, not 9.99999975e-06),
 * so config.json shows what a person would write and still parses to the same float. */
static json_t *json_float(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

/* Writes obj to dir/file (2-space indent, 9 significant digits: every float reads back exactly)
 * and releases it. */
static status_t json_write(json_t *obj, const char *dir, const char *file)
{
    char path[PATH_MAX];
    int rc = obj ? 0 : -1;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (!rc) rc = json_dump_file(obj, path, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(obj);
    if (rc) return cllm_error(CLLM_ERR_IO, "mkmodel: cannot write %s", path);
    return CLLM_OK;
}

/* json_pack's "o" takes its reference even when packing fails: no leak on either path. */
static status_t write_config(const mkmodel_params_t *p, const char *dir, int64_t n_vocab, int64_t bos, int64_t eos)
{
    static const char *const torch_dtype[] = { [DTYPE_F32] = "float32", [DTYPE_F16] = "float16", [DTYPE_BF16] = "bfloat16" };
    json_t *rope = json_null(), *cfg;
    if (p->rope_llama3)
        rope = json_pack("{s:o, s:o, s:o, s:I, s:s}", "factor", json_float(p->rope_factor), "high_freq_factor",
                         json_float(p->rope_high_freq_factor), "low_freq_factor", json_float(p->rope_low_freq_factor),
                         "original_max_position_embeddings", (json_int_t)p->rope_orig_ctx, "rope_type", "llama3");
    cfg = json_pack("{s:[s], s:s, s:b, s:I, s:s, s:I, s:o, s:I, s:I, s:b, s:I, s:I, s:I, s:o, s:o, s:o, s:b, s:s, "
                    "s:b, s:I}",
                    "architectures", "LlamaForCausalLM", "model_type", "llama", "attention_bias", 0, "head_dim",
                    (json_int_t)head_dim_of(p), "hidden_act", "silu", "hidden_size", (json_int_t)p->n_embd,
                    "initializer_range", json_float(INIT_STD), "intermediate_size", (json_int_t)p->n_ff,
                    "max_position_embeddings", (json_int_t)p->n_ctx, "mlp_bias", 0, "num_attention_heads",
                    (json_int_t)p->n_head, "num_hidden_layers", (json_int_t)p->n_layer, "num_key_value_heads",
                    (json_int_t)p->n_head_kv, "rms_norm_eps", json_float(p->rms_eps), "rope_scaling", rope,
                    "rope_theta", json_float(p->rope_theta), "tie_word_embeddings", p->tied, "torch_dtype",
                    torch_dtype[p->dtype], "use_cache", 1, "vocab_size", (json_int_t)n_vocab);
    if (cfg && bos >= 0) json_object_set_new(cfg, "bos_token_id", json_integer(bos));
    if (cfg && eos >= 0) json_object_set_new(cfg, "eos_token_id", json_integer(eos));
    return json_write(cfg, dir, "config.json");
}

typedef struct {
    const char *key;
    bool integer;
    double lo, hi;
} gen_key_t;

static const gen_key_t gen_keys[] = {
    { "temperature", false, 0.0, 1e6 }, { "top_p", false, 1e-9, 1.0 }, { "top_k", true, 0.0, 1e9 },
    { "min_p", false, 0.0, 1.0 },       { "repetition_penalty", false, 1e-9, 1e6 },
};

/* Parses "key=value,..." into the JSON object gen (NULL: only check). */
static status_t gen_defaults_parse(const char *spec, json_t *gen)
{
    const char *s = spec;
    while (*s) {
        const char *end = strchr(s, ','), *eq = strchr(s, '=');
        size_t klen, n = sizeof(gen_keys) / sizeof(gen_keys[0]), k;
        char *num_end;
        double v;
        if (!end) end = s + strlen(s);
        if (!eq || eq > end)
            return cllm_error(CLLM_ERR_INVALID_ARG,
                              "mkmodel: --gen-defaults '%s': expected key=value pairs separated by commas", spec);
        klen = (size_t)(eq - s);
        for (k = 0; k < n && (strlen(gen_keys[k].key) != klen || strncmp(gen_keys[k].key, s, klen)); k++) {}
        if (k == n)
            return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: --gen-defaults: unknown key '%.*s' (known: temperature, top_p, "
                              "top_k, min_p, repetition_penalty)", (int)klen, s);
        v = strtod(eq + 1, &num_end);
        if (num_end != end || eq + 1 == end || !(v >= gen_keys[k].lo && v <= gen_keys[k].hi) ||
            (gen_keys[k].integer && v != floor(v)))
            return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: --gen-defaults: %s needs %s in [%g, %g], not '%.*s'",
                              gen_keys[k].key, gen_keys[k].integer ? "an integer" : "a number", gen_keys[k].lo,
                              gen_keys[k].hi, (int)(end - eq - 1), eq + 1);
        if (gen)
            json_object_set_new(gen, gen_keys[k].key,
                                gen_keys[k].integer ? json_integer((json_int_t)v) : json_float((float)v));
        s = *end ? end + 1 : end;
    }
    return CLLM_OK;
}

/* generation_config.json: bos/eos (eos and eot as a list when they differ, as Meta's instruct
 * checkpoints do), and the sampling defaults of --gen-defaults. */
static status_t write_generation_config(const mkmodel_params_t *p, const char *dir, int64_t bos, int64_t eos, int64_t eot)
{
    json_t *gen = json_object();
    status_t st;
    if (!gen) return cllm_error(CLLM_ERR_NOMEM, "mkmodel: out of memory");
    if (bos >= 0) json_object_set_new(gen, "bos_token_id", json_integer(bos));
    if (eos >= 0 && eot >= 0 && eot != eos)
        json_object_set_new(gen, "eos_token_id", json_pack("[I, I]", (json_int_t)eos, (json_int_t)eot));
    else if (eos >= 0)
        json_object_set_new(gen, "eos_token_id", json_integer(eos));
    if (p->gen_defaults && p->gen_defaults[0]) {
        json_object_set_new(gen, "do_sample", json_true());
        if ((st = gen_defaults_parse(p->gen_defaults, gen)) != CLLM_OK) {
            json_decref(gen);
            return st;
        }
    }
    return json_write(gen, dir, "generation_config.json");
}

/* The vocabulary as a GGUF for hf_tokenizer_write: --vocab-from's file, or the built-in one
 * written to a temporary file in dir (removed at once; the mapping stays valid). */
static status_t vocab_gguf(vocab_source_t *vs, const mkmodel_params_t *p, const char *dir, gguf_t **own, gguf_t **out)
{
    char path[PATH_MAX];
    gguf_writer_t *w;
    status_t st;
    *own = NULL;
    *out = vs->src;
    if (vs->src) return CLLM_OK;
    if (!(w = gguf_writer_create())) return cllm_error(CLLM_ERR_NOMEM, "mkmodel: out of memory");
    snprintf(path, sizeof(path), "%s/.cllm-vocab.gguf", dir);
    st = vocab_source_write(vs, w, p);
    if (st == CLLM_OK) st = gguf_writer_write(w, path);
    gguf_writer_destroy(w);
    if (st == CLLM_OK) st = gguf_open(path, own);
    remove(path);
    *out = *own;
    return st;
}

static int64_t vocab_id(const gguf_t *g, const char *key)
{
    int64_t v = -1;
    if (gguf_get_i64_opt(g, key, &v) != CLLM_OK) v = -1;
    return v;
}

static status_t write_hf(const mkmodel_params_t *p, const char *dir, mkmodel_stats_t *stats)
{
    model_builder_t b;
    vocab_source_t vs = { 0 };
    gguf_t *own = NULL, *vocab = NULL;
    struct stat sb;
    int n_shards = p->n_shards > 1 ? p->n_shards : 1;
    int64_t bos, eos;
    status_t st;

    if (mkdir(dir, 0777) != 0 && !(errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return cllm_error(CLLM_ERR_IO, "mkmodel: cannot create directory %s: %s", dir,
                          errno == EEXIST ? "a file is in the way" : strerror(errno));
    if ((st = builder_init(&b, p)) != CLLM_OK) goto out_free;
    if ((st = vocab_source_open(&vs, p)) != CLLM_OK) goto out_free;
    if ((st = vocab_gguf(&vs, p, dir, &own, &vocab)) != CLLM_OK) goto out_free;
    if ((st = hf_tokenizer_write(vocab, p->chat_template, dir)) != CLLM_OK) goto out_free;
    bos = vocab_id(vocab, "tokenizer.ggml.bos_token_id");
    eos = vocab_id(vocab, "tokenizer.ggml.eos_token_id");
    if ((st = write_config(p, dir, vs.n_vocab, bos, eos)) != CLLM_OK) goto out_free;
    if ((st = write_generation_config(p, dir, bos, eos, vocab_id(vocab, "tokenizer.ggml.eot_token_id"))) != CLLM_OK)
        goto out_free;
    if ((st = safetensors_writer_set_metadata(b.sw, "format", "pt")) != CLLM_OK) goto out_free;
    if ((st = add_weights(&b, vs.n_vocab)) != CLLM_OK) goto out_free;
    if ((st = safetensors_writer_write_dir(b.sw, dir, n_shards)) != CLLM_OK) goto out_free;
    if (stats) {
        char path[PATH_MAX];
        stats->n_params = b.n_elements;
        stats->n_tensors = (int64_t)safetensors_writer_n_tensors(b.sw);
        stats->n_vocab = vs.n_vocab;
        stats->n_bytes = 0;
        for (int k = 1; k <= n_shards; k++) {
            if (n_shards == 1) snprintf(path, sizeof(path), "%s/model.safetensors", dir);
            else snprintf(path, sizeof(path), "%s/model-%05d-of-%05d.safetensors", dir, k, n_shards);
            stats->n_bytes += file_size(path);
        }
    }
out_free:
    gguf_close(own);
    vocab_source_close(&vs);
    builder_free(&b);
    return st;
}

status_t mkmodel_write(const mkmodel_params_t *p, const char *path, mkmodel_stats_t *stats)
{
    model_builder_t b;
    vocab_source_t vs = { 0 };
    int64_t n_vocab = 0;
    status_t st;
    if (!p || !path) return cllm_error(CLLM_ERR_INVALID_ARG, "mkmodel: NULL argument");
    if ((st = mkmodel_params_check(p)) != CLLM_OK) return st;
    if (p->format == MKMODEL_FORMAT_HF) return write_hf(p, path, stats);
    if ((st = builder_init(&b, p)) != CLLM_OK) goto out_free;
    /* the vocabulary first: it fixes n_vocab, which the hparams and token_embd need */
    if ((st = vocab_source_open(&vs, p)) != CLLM_OK) goto out_free;
    n_vocab = vs.n_vocab;
    if ((st = set_hparams(b.w, p, n_vocab)) != CLLM_OK) goto out_free;
    if ((st = vocab_source_write(&vs, b.w, p)) != CLLM_OK) goto out_free;
    if (p->chat_template && (st = gguf_writer_set_str(b.w, "tokenizer.chat_template", p->chat_template,
                                                      strlen(p->chat_template))) != CLLM_OK)
        goto out_free;
    if ((st = add_weights(&b, n_vocab)) != CLLM_OK) goto out_free;
    if ((st = gguf_writer_write(b.w, path)) != CLLM_OK) goto out_free;
    if (stats) {
        stats->n_params = gguf_writer_n_elements(b.w);
        stats->n_tensors = gguf_writer_n_tensors(b.w);
        stats->n_vocab = n_vocab;
        stats->n_bytes = file_size(path);
    }
out_free:
    vocab_source_close(&vs);
    builder_free(&b);
    return st;
}

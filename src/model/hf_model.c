/* hf_model.c: Hugging Face checkpoint directory -> model_t (see hf_model.h).
 *
 * Owns nothing past the load: everything it opens or allocates is stored in the model_t (the
 * safetensors mappings in m->st, the permuted Q/K rows in m->owned_qk, the norm/bias copies, the
 * tokenizer, the chat template) and freed by model_destroy. Invariants after a successful load are
 * those of model.c's GGUF path: every matrix is F32/F16/BF16 with the exact shape the graph needs
 * and its data inside a mapping (or owned_qk), aligned to its element size; every norm/bias vector
 * is an owned f32 copy; rope_inv_freq comes from model_rope_init, as for GGUF. */
#include "model/hf_model.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "tokenizer/hf_tokenizer.h"

#define HF_SUPPORTED "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"

static const struct {
    const char *hf;   /* config.json "architectures" entry */
    const char *name; /* model_hparams_t.arch_name, as the GGUF loader names it */
    model_arch_t arch;
} hf_archs[] = {
    { "LlamaForCausalLM", "llama", MODEL_ARCH_LLAMA },
    { "MistralForCausalLM", "mistral", MODEL_ARCH_LLAMA },
    { "Qwen2ForCausalLM", "qwen2", MODEL_ARCH_QWEN2 },
};

/* One load: the checkpoint directory and the parsed config.json. */
typedef struct {
    char dir[PATH_MAX];
    char cfg_path[PATH_MAX]; /* dir/config.json, named in every config error */
    json_t *cfg;
} hf_load_t;

bool hf_model_is_checkpoint(const char *path)
{
    struct stat sb;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return true;
    return strcmp(base, "config.json") == 0;
}

/* ---------------------------------------------------------------- rows and frequencies */

void hf_model_permute_qk(void *dst, const void *src, int64_t n_rows, int64_t head_dim, size_t row_bytes, bool to_hf)
{
    int64_t half = head_dim / 2;
    for (int64_t h = 0; h + head_dim <= n_rows; h += head_dim)
        for (int64_t j = 0; j < half; j++)
            for (int64_t i = 0; i < 2; i++) {
                int64_t pair = h + 2 * j + i, split = h + i * half + j; /* GGUF row, HF row */
                int64_t d = to_hf ? split : pair, s = to_hf ? pair : split;
                memcpy((char *)dst + (size_t)d * row_bytes, (const char *)src + (size_t)s * row_bytes, row_bytes);
            }
}

void hf_model_rope_llama3_factors(float theta, int64_t head_dim, float factor, float low_freq_factor,
                                  float high_freq_factor, float orig_ctx, float *out)
{
    float low_wavelen = orig_ctx / low_freq_factor;
    float high_wavelen = orig_ctx / high_freq_factor;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float wavelen = (float)(2.0 * M_PI) / freq;
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = factor;
        } else {
            float smooth = (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
            out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}

/* ---------------------------------------------------------------- JSON fields */

/* A JSON file as an object; optional files that do not exist give *out = NULL. */
static status_t json_file(const char *path, bool optional, json_t **out)
{
    json_error_t jerr;
    *out = NULL;
    if (access(path, F_OK) != 0) {
        if (optional && errno == ENOENT) return CLLM_OK;
        return cllm_error(CLLM_ERR_IO, "hf: %s: cannot open: %s", path, strerror(errno));
    }
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out) return cllm_error(CLLM_ERR_FORMAT, "hf: %s: line %d: %s", path, jerr.line, jerr.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: not a JSON object", path);
    }
    return CLLM_OK;
}

/* o[key], with JSON null read as absent (Hugging Face writes null for "not set"). */
static json_t *field(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

/* An integer field in [lo, hi]; absent: an error if required, else *out is left as is. prefix
 * names the enclosing object in messages ("" or "rope_scaling."). */
static status_t get_int(const char *file, const json_t *o, const char *prefix, const char *key, bool required,
                        int64_t lo, int64_t hi, int32_t *out)
{
    json_t *v = field(o, key);
    json_int_t n;
    if (!v) {
        if (!required) return CLLM_OK;
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s%s' is missing", file, prefix, key);
    }
    n = json_is_integer(v) ? json_integer_value(v) : lo - 1;
    if (!json_is_integer(v) || n < lo || n > hi)
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s%s' must be an integer in [%lld, %lld]", file, prefix, key,
                          (long long)lo, (long long)hi);
    *out = (int32_t)n;
    return CLLM_OK;
}

/* A finite number > min (or >= min when min_inclusive); absent: as get_int. */
static status_t get_num(const char *file, const json_t *o, const char *prefix, const char *key, bool required,
                        double min, bool min_inclusive, float *out)
{
    json_t *v = field(o, key);
    double d;
    if (!v) {
        if (!required) return CLLM_OK;
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s%s' is missing", file, prefix, key);
    }
    d = json_is_number(v) ? json_number_value(v) : NAN;
    if (!isfinite(d) || !isfinite((float)d) || d < min || (!min_inclusive && d == min))
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s%s' must be a number %s %g", file, prefix, key,
                          min_inclusive ? ">=" : ">", min);
    *out = (float)d;
    return CLLM_OK;
}

static status_t get_bool(const char *file, const json_t *o, const char *key, bool *out)
{
    json_t *v = field(o, key);
    if (!v) return CLLM_OK;
    if (!json_is_boolean(v)) return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s' must be true or false", file, key);
    *out = json_is_true(v);
    return CLLM_OK;
}

/* ---------------------------------------------------------------- config.json */

static status_t config_arch(const hf_load_t *c, model_hparams_t *hp)
{
    json_t *a = field(c->cfg, "architectures"), *first;
    const char *name;
    if (!a) return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field 'architectures' is missing", c->cfg_path);
    first = json_array_get(a, 0);
    if (!json_is_array(a) || !json_is_string(first))
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field 'architectures' must be a non-empty array of names",
                          c->cfg_path);
    name = json_string_value(first);
    for (size_t i = 0; i < sizeof(hf_archs) / sizeof(hf_archs[0]); i++) {
        if (strcmp(name, hf_archs[i].hf)) continue;
        hp->arch = hf_archs[i].arch;
        snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", hf_archs[i].name);
        hp->rope_neox = hp->arch == MODEL_ARCH_QWEN2;
        return CLLM_OK;
    }
    return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: architecture '%.64s' is not supported (supported: %s)", c->cfg_path,
                      name, HF_SUPPORTED);
}

/* Refuses the variants of the architectures the graph does not compute. */
static status_t config_refusals(const hf_load_t *c, const model_hparams_t *hp)
{
    json_t *act = field(c->cfg, "hidden_act");
    bool attention_bias = false, mlp_bias = false, swa = false;
    float partial = 1.0f;
    status_t st;
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
        return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: hidden_act '%.32s' is not supported (only silu)", c->cfg_path,
                          json_is_string(act) ? json_string_value(act) : "?");
    if ((st = get_bool(c->cfg_path, c->cfg, "attention_bias", &attention_bias)) != CLLM_OK) return st;
    if ((st = get_bool(c->cfg_path, c->cfg, "mlp_bias", &mlp_bias)) != CLLM_OK) return st;
    if (hp->arch != MODEL_ARCH_QWEN2 && attention_bias)
        return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: attention_bias true is not supported for %s", c->cfg_path,
                          hp->arch_name);
    if (mlp_bias) return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: mlp_bias true is not supported", c->cfg_path);
    if ((st = get_num(c->cfg_path, c->cfg, "", "partial_rotary_factor", false, 0.0, false, &partial)) != CLLM_OK)
        return st;
    if (partial != 1.0f)
        return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: partial_rotary_factor %g is not supported (only 1)", c->cfg_path,
                          (double)partial);
    /* a sliding window only matters past its length; llama.cpp ignores Mistral's too */
    if ((st = get_bool(c->cfg_path, c->cfg, "use_sliding_window", &swa)) != CLLM_OK) return st;
    if (hp->arch == MODEL_ARCH_QWEN2 ? swa : json_is_integer(field(c->cfg, "sliding_window")))
        log_warn("hf: %s: sliding-window attention is not implemented: every layer attends to the whole context",
                 c->cfg_path);
    return CLLM_OK;
}

static status_t config_hparams(const hf_load_t *c, model_hparams_t *hp)
{
    const char *f = c->cfg_path;
    const json_t *o = c->cfg;
    json_t *rp = field(o, "rope_parameters");
    status_t st;

    if ((st = config_arch(c, hp)) != CLLM_OK) return st;
    if ((st = config_refusals(c, hp)) != CLLM_OK) return st;
    if ((st = get_int(f, o, "", "hidden_size", true, 1, 1 << 20, &hp->n_embd)) != CLLM_OK) return st;
    if ((st = get_int(f, o, "", "num_hidden_layers", true, 1, 4096, &hp->n_layer)) != CLLM_OK) return st;
    if ((st = get_int(f, o, "", "num_attention_heads", true, 1, 4096, &hp->n_head)) != CLLM_OK) return st;
    hp->n_head_kv = hp->n_head;
    if ((st = get_int(f, o, "", "num_key_value_heads", false, 1, hp->n_head, &hp->n_head_kv)) != CLLM_OK) return st;
    if (hp->n_head % hp->n_head_kv)
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: num_attention_heads %d is not a multiple of num_key_value_heads %d", f,
                          hp->n_head, hp->n_head_kv);
    if ((st = get_int(f, o, "", "intermediate_size", true, 1, 1 << 22, &hp->n_ff)) != CLLM_OK) return st;
    if ((st = get_int(f, o, "", "vocab_size", true, 1, 1 << 24, &hp->n_vocab)) != CLLM_OK) return st;
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = get_int(f, o, "", "head_dim", false, 2, 4096, &hp->head_dim)) != CLLM_OK) return st;
    if (hp->head_dim < 2 || hp->head_dim % 2)
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: head dimension %d (head_dim, or hidden_size / num_attention_heads) "
                          "must be even and positive", f, hp->head_dim);
    if ((int64_t)hp->n_head * hp->head_dim > (1 << 20))
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: num_attention_heads x head_dim is too large", f);
    hp->rope_dim = hp->head_dim;
    hp->n_ctx_train = 2048;
    if ((st = get_int(f, o, "", "max_position_embeddings", false, 1, INT32_MAX, &hp->n_ctx_train)) != CLLM_OK) return st;
    hp->rms_eps = 1e-6f; /* transformers' LlamaConfig default */
    if ((st = get_num(f, o, "", "rms_norm_eps", false, 0.0, false, &hp->rms_eps)) != CLLM_OK) return st;
    hp->rope_theta = 10000.0f;
    if (json_is_object(rp) && (st = get_num(f, rp, "rope_parameters.", "rope_theta", false, 0.0, false,
                                            &hp->rope_theta)) != CLLM_OK)
        return st;
    if ((st = get_num(f, o, "", "rope_theta", false, 0.0, false, &hp->rope_theta)) != CLLM_OK) return st;
    hp->tied_output = false; /* the default of LlamaConfig, MistralConfig and Qwen2Config */
    return get_bool(f, o, "tie_word_embeddings", &hp->tied_output);
}

/* rope_scaling (or transformers 5's rope_parameters): none/default, linear or llama3. */
static status_t config_rope(const hf_load_t *c, model_t *m)
{
    const char *f = c->cfg_path, *key = "rope_scaling", *type = "default";
    const model_hparams_t *hp = &m->hp;
    json_t *rs = field(c->cfg, key), *t;
    char prefix[40];
    float linear = 1.0f, *factors = NULL;
    status_t st;

    if (!rs) rs = field(c->cfg, key = "rope_parameters");
    if (rs && !json_is_object(rs)) return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s' must be an object", f, key);
    snprintf(prefix, sizeof(prefix), "%s.", key);
    if (rs) {
        t = field(rs, "rope_type");
        if (!t) t = field(rs, "type");
        if (t && !json_is_string(t))
            return cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%srope_type' must be a string", f, prefix);
        if (t) type = json_string_value(t);
    }
    if (!strcmp(type, "linear")) {
        float factor = 1.0f;
        if ((st = get_num(f, rs, prefix, "factor", true, 0.0, false, &factor)) != CLLM_OK) return st;
        linear = 1.0f / factor;
    } else if (!strcmp(type, "llama3")) {
        float factor = 1.0f, low = 1.0f, high = 4.0f;
        int32_t orig = 8192;
        if ((st = get_num(f, rs, prefix, "factor", true, 0.0, false, &factor)) != CLLM_OK ||
            (st = get_num(f, rs, prefix, "low_freq_factor", true, 0.0, false, &low)) != CLLM_OK ||
            (st = get_num(f, rs, prefix, "high_freq_factor", true, 0.0, false, &high)) != CLLM_OK ||
            (st = get_int(f, rs, prefix, "original_max_position_embeddings", true, 1, INT32_MAX, &orig)) != CLLM_OK)
            return st;
        if (!(high > low))
            return cllm_error(CLLM_ERR_FORMAT, "hf: %s: %shigh_freq_factor must be greater than low_freq_factor", f, prefix);
        factors = malloc((size_t)(hp->rope_dim / 2) * sizeof(float));
        if (!factors) return cllm_error(CLLM_ERR_NOMEM, "hf: out of memory");
        hf_model_rope_llama3_factors(hp->rope_theta, hp->rope_dim, factor, low, high, (float)orig, factors);
    } else if (strcmp(type, "default")) {
        return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: %srope_type '%.32s' is not supported (supported: default, "
                          "linear, llama3)", f, prefix, type);
    }
    st = model_rope_init(m, factors, linear);
    free(factors);
    return st;
}

/* ---------------------------------------------------------------- generation_config.json */

/* Sampling defaults as vLLM takes them (transformers' GenerationConfig.to_diff_dict): a field
 * counts only when it differs from transformers' own default (temperature 1, top_p 1, top_k 50,
 * repetition_penalty 1; min_p has none). End-of-generation ids are the tokenizer's business. */
static status_t load_gen_defaults(const hf_load_t *c, model_t *m)
{
    char path[PATH_MAX + 32];
    model_gen_defaults_t *g = &m->gen_defaults;
    json_t *o;
    float temperature = 1.0f, top_p = 1.0f, min_p = -1.0f, rep = 1.0f;
    int32_t top_k = 50;
    status_t st;

    snprintf(path, sizeof(path), "%s/generation_config.json", c->dir);
    if ((st = json_file(path, true, &o)) != CLLM_OK || !o) return st;
    if ((st = get_num(path, o, "", "temperature", false, 0.0, true, &temperature)) == CLLM_OK &&
        (st = get_num(path, o, "", "top_p", false, 0.0, false, &top_p)) == CLLM_OK &&
        (st = get_int(path, o, "", "top_k", false, -1, INT32_MAX, &top_k)) == CLLM_OK &&
        (st = get_num(path, o, "", "min_p", false, 0.0, true, &min_p)) == CLLM_OK &&
        (st = get_num(path, o, "", "repetition_penalty", false, 0.0, false, &rep)) == CLLM_OK) {
        if (top_p > 1.0f || min_p > 1.0f)
            st = cllm_error(CLLM_ERR_FORMAT, "hf: %s: field '%s' must be at most 1", path, top_p > 1.0f ? "top_p" : "min_p");
    }
    json_decref(o);
    if (st != CLLM_OK) return st;
    g->has_temperature = temperature != 1.0f;
    g->temperature = temperature;
    g->has_top_p = top_p != 1.0f;
    g->top_p = top_p;
    g->has_top_k = top_k != 50;
    g->top_k = top_k;
    g->has_min_p = min_p >= 0.0f;
    g->min_p = g->has_min_p ? min_p : 0.0f;
    g->has_repetition_penalty = rep != 1.0f;
    g->repetition_penalty = rep;
    return CLLM_OK;
}

/* ---------------------------------------------------------------- tensors */

/* Finds name and checks its dtype, alignment and shape: [ne1, ne0] for a matrix, [ne0] for a
 * vector. optional: an absent tensor leaves out zeroed. */
static status_t hf_tensor(const hf_load_t *c, model_t *m, const char *name, int64_t ne0, int64_t ne1, bool vector,
                          bool optional, model_matrix_t *out)
{
    const st_tensor_t *t = safetensors_dir_find(m->st, name);
    bool shape_ok;
    dtype_t type;
    memset(out, 0, sizeof(*out));
    if (!t) {
        if (optional) return CLLM_OK;
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: tensor '%s' is missing", c->dir, name);
    }
    switch (t->dtype) {
    case ST_DTYPE_F32: type = DTYPE_F32; break;
    case ST_DTYPE_F16: type = DTYPE_F16; break;
    case ST_DTYPE_BF16: type = DTYPE_BF16; break;
    default:
        return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: tensor '%s' has dtype %s, which cllm does not support "
                          "(supported: F32, F16, BF16)", c->dir, name, st_dtype_name(t->dtype));
    }
    shape_ok = vector ? t->n_dims == 1 && t->shape[0] == ne0 : t->n_dims == 2 && t->shape[0] == ne1 && t->shape[1] == ne0;
    if (!shape_ok) {
        char got[96] = "[", *p = got + 1;
        for (uint32_t d = 0; d < t->n_dims && p < got + sizeof(got) - 24; d++)
            p += snprintf(p, (size_t)(got + sizeof(got) - p), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        snprintf(p, (size_t)(got + sizeof(got) - p), "]");
        if (vector)
            return cllm_error(CLLM_ERR_FORMAT, "hf: %s: tensor '%s' has shape %s, expected [%lld]", c->dir, name, got,
                              (long long)ne0);
        return cllm_error(CLLM_ERR_FORMAT, "hf: %s: tensor '%s' has shape %s, expected [%lld, %lld]", c->dir, name, got,
                          (long long)ne1, (long long)ne0);
    }
    if ((uintptr_t)t->data % st_dtype_size(t->dtype))
        return cllm_error(CLLM_ERR_UNSUPPORTED, "hf: %s: tensor '%s' is not aligned to its %zu-byte elements in the file",
                          c->dir, name, st_dtype_size(t->dtype));
    out->type = type;
    out->ne0 = ne0;
    out->ne1 = ne1;
    out->data = t->data;
    m->n_params += (uint64_t)(ne0 * ne1);
    m->weight_bytes += t->nbytes;
    return CLLM_OK;
}

/* A vector of n elements as an owned f32 copy (*out NULL if optional and absent). */
static status_t hf_vector(const hf_load_t *c, model_t *m, const char *name, int64_t n, bool optional, float **out)
{
    model_matrix_t v;
    status_t st = hf_tensor(c, m, name, n, 1, true, optional, &v);
    *out = NULL;
    if (st != CLLM_OK || !v.data) return st;
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) return cllm_error(CLLM_ERR_NOMEM, "hf: out of memory for '%s'", name);
    dtype_to_f32_row(v.type, v.data, *out, (size_t)n);
    return CLLM_OK;
}

/* Llama/Mistral: every layer's wq and wk rows from rotate_half order to interleaved pairs, into
 * one owned buffer. */
static status_t permute_qk(model_t *m)
{
    const model_hparams_t *hp = &m->hp;
    size_t total = 0, off = 0;
    for (int l = 0; l < hp->n_layer; l++) {
        const model_layer_t *L = &m->layers[l];
        total += dtype_row_bytes(L->wq.type, (size_t)L->wq.ne0) * (size_t)L->wq.ne1;
        total += dtype_row_bytes(L->wk.type, (size_t)L->wk.ne0) * (size_t)L->wk.ne1;
    }
    m->owned_qk = aligned_alloc(64, (total + 63) & ~(size_t)63);
    if (!m->owned_qk) return cllm_error(CLLM_ERR_NOMEM, "hf: out of memory for the %zu bytes of permuted Q/K rows", total);
    for (int l = 0; l < hp->n_layer; l++) {
        model_matrix_t *mats[2] = { &m->layers[l].wq, &m->layers[l].wk };
        for (int k = 0; k < 2; k++) {
            size_t row = dtype_row_bytes(mats[k]->type, (size_t)mats[k]->ne0);
            char *dst = (char *)m->owned_qk + off;
            hf_model_permute_qk(dst, mats[k]->data, mats[k]->ne1, hp->head_dim, row, false);
            mats[k]->data = dst;
            off += row * (size_t)mats[k]->ne1;
        }
    }
    log_info("hf: wq/wk rows reordered from rotate_half to interleaved pairs: %.1f %s copied (the other weights stay "
             "mapped)", (double)total / (total >= (1u << 20) ? 1048576.0 : 1024.0), total >= (1u << 20) ? "MiB" : "KiB");
    return CLLM_OK;
}

static status_t load_weights(const hf_load_t *c, model_t *m)
{
    const model_hparams_t *hp = &m->hp;
    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    bool bias = hp->arch == MODEL_ARCH_QWEN2;
    size_t expected = 2 + (size_t)hp->n_layer * (bias ? 12 : 9), have;
    char name[128];
    status_t st;

    if ((st = hf_tensor(c, m, "model.embed_tokens.weight", hp->n_embd, hp->n_vocab, false, false, &m->token_embd)) !=
        CLLM_OK)
        return st;
    if ((st = hf_vector(c, m, "model.norm.weight", hp->n_embd, false, &m->output_norm)) != CLLM_OK) return st;
    if (hp->tied_output) {
        m->output = m->token_embd; /* a stored lm_head.weight is ignored, as transformers ties it */
        expected += safetensors_dir_find(m->st, "lm_head.weight") != NULL;
    } else {
        if ((st = hf_tensor(c, m, "lm_head.weight", hp->n_embd, hp->n_vocab, false, false, &m->output)) != CLLM_OK)
            return st;
        expected++;
    }
    m->weight_type = m->token_embd.type;
    m->layers = calloc((size_t)hp->n_layer, sizeof(model_layer_t));
    if (!m->layers) return cllm_error(CLLM_ERR_NOMEM, "hf: out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        model_layer_t *L = &m->layers[l];
#define MAT(field, suffix, ne0, ne1)                                                                  \
    snprintf(name, sizeof(name), "model.layers.%d." suffix, l);                                       \
    if ((st = hf_tensor(c, m, name, ne0, ne1, false, false, &L->field)) != CLLM_OK) return st;
#define VEC(field, suffix, n, opt)                                                                    \
    snprintf(name, sizeof(name), "model.layers.%d." suffix, l);                                       \
    if ((st = hf_vector(c, m, name, n, opt, &L->field)) != CLLM_OK) return st;
        VEC(attn_norm, "input_layernorm.weight", hp->n_embd, false);
        MAT(wq, "self_attn.q_proj.weight", hp->n_embd, q_dim);
        MAT(wk, "self_attn.k_proj.weight", hp->n_embd, kv_dim);
        MAT(wv, "self_attn.v_proj.weight", hp->n_embd, kv_dim);
        MAT(wo, "self_attn.o_proj.weight", q_dim, hp->n_embd);
        VEC(ffn_norm, "post_attention_layernorm.weight", hp->n_embd, false);
        MAT(w_gate, "mlp.gate_proj.weight", hp->n_embd, hp->n_ff);
        MAT(w_up, "mlp.up_proj.weight", hp->n_embd, hp->n_ff);
        MAT(w_down, "mlp.down_proj.weight", hp->n_ff, hp->n_embd);
        if (bias) {
            VEC(bq, "self_attn.q_proj.bias", q_dim, false);
            VEC(bk, "self_attn.k_proj.bias", kv_dim, false);
            VEC(bv, "self_attn.v_proj.bias", kv_dim, false);
        }
#undef MAT
#undef VEC
        if (l == 0) m->weight_type = L->wq.type;
    }
    have = safetensors_dir_n_tensors(m->st);
    if (have > expected) log_warn("hf: %s: %zu of the checkpoint's %zu tensors are not used", c->dir, have - expected, have);
    return hp->arch == MODEL_ARCH_LLAMA ? permute_qk(m) : CLLM_OK;
}

/* ---------------------------------------------------------------- the load */

/* config.json's bos/eos ids, for a tokenizer whose files name none. */
static void check_special_ids(const hf_load_t *c, const model_t *m)
{
    json_t *bos = field(c->cfg, "bos_token_id"), *eos = field(c->cfg, "eos_token_id");
    if (json_is_integer(bos) && tokenizer_bos(m->tok) < 0)
        log_warn("hf: %s: bos_token_id %lld is not used: the tokenizer files name no BOS token", c->cfg_path,
                 (long long)json_integer_value(bos));
    if ((json_is_integer(eos) || json_is_array(eos)) && tokenizer_eos(m->tok) < 0)
        log_warn("hf: %s: eos_token_id is not used: the tokenizer files name no EOS token", c->cfg_path);
}

/* The checkpoint directory of path (path itself, or the directory of DIR/config.json). */
static status_t checkpoint_dir(const char *path, char *dir, size_t cap)
{
    struct stat sb;
    if (strlen(path) >= cap - 16) return cllm_error(CLLM_ERR_INVALID_ARG, "hf: path too long: %.64s...", path);
    snprintf(dir, cap, "%s", path);
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) { /* DIR/config.json: the directory is DIR */
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, cap, ".");
    }
    return CLLM_OK;
}

status_t hf_model_load_tokenizer(const char *path, tokenizer_t **tok)
{
    char dir[PATH_MAX];
    status_t st = checkpoint_dir(path, dir, sizeof(dir));
    return st != CLLM_OK ? st : hf_tokenizer_load(dir, tok, NULL);
}

status_t hf_model_load(model_t *m, const char *path)
{
    hf_load_t c;
    status_t st;
    int32_t n_tok;

    memset(&c, 0, sizeof(c));
    if ((st = checkpoint_dir(path, c.dir, sizeof(c.dir))) != CLLM_OK) return st;
    snprintf(c.cfg_path, sizeof(c.cfg_path), "%.*s/config.json", (int)(sizeof(c.cfg_path) - 16), c.dir);
    if ((st = json_file(c.cfg_path, false, &c.cfg)) != CLLM_OK) return st;
    if ((st = config_hparams(&c, &m->hp)) != CLLM_OK) goto out;
    if ((st = hf_tokenizer_load(c.dir, &m->tok, &m->chat_template)) != CLLM_OK) goto out;
    n_tok = tokenizer_n_vocab(m->tok);
    if (n_tok > m->hp.n_vocab) {
        st = cllm_error(CLLM_ERR_FORMAT, "hf: %s: the tokenizer has %d tokens but vocab_size is %d", c.cfg_path, n_tok,
                        m->hp.n_vocab);
        goto out;
    }
    check_special_ids(&c, m);
    if ((st = config_rope(&c, m)) != CLLM_OK) goto out;
    if ((st = safetensors_dir_open(c.dir, &m->st)) != CLLM_OK) goto out;
    if ((st = load_weights(&c, m)) != CLLM_OK) goto out;
    st = load_gen_defaults(&c, m);
out:
    json_decref(c.cfg);
    return st;
}

/* model.c: loads a Llama-family GGUF into a model_t (see model.h); a Hugging Face checkpoint
 * directory is handed to model/hf_model.c, which fills the same model_t.
 *
 * Invariants after a successful load: every matrix has a supported type, the exact shape the
 * graph needs, and its data inside the mapping (or owned_qk); every norm/bias vector is an owned
 * f32 copy; rope_inv_freq holds rope_dim/2 frequencies with any rope scaling already folded in. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/hf_model.h"

/* Reads "<arch>.<suffix>" as an integer into *out; absent keys are an error unless opt. */
static status_t arch_get_i32(const model_t *m, const char *suffix, int32_t *out, bool opt)
{
    char key[128];
    int64_t v = *out;
    status_t st;
    snprintf(key, sizeof(key), "%s.%s", m->hp.arch_name, suffix);
    st = opt ? gguf_get_i64_opt(m->gguf, key, &v) : gguf_get_i64(m->gguf, key, &v);
    if (st != CLLM_OK) return st;
    if (v < 0 || v > INT32_MAX) return cllm_error(CLLM_ERR_FORMAT, "model: %s = %lld is out of range", key, (long long)v);
    *out = (int32_t)v;
    return CLLM_OK;
}

static status_t arch_get_f32(const model_t *m, const char *suffix, float *out, bool opt)
{
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", m->hp.arch_name, suffix);
    return opt ? gguf_get_f32_opt(m->gguf, key, out) : gguf_get_f32(m->gguf, key, out);
}

/* Finds a 2-D matrix and checks its type and shape (ne0 x ne1). */
static status_t load_matrix(model_t *m, const char *name, int64_t ne0, int64_t ne1, bool optional,
                            model_matrix_t *out)
{
    const gguf_tensor_info_t *t = gguf_find_tensor(m->gguf, name);
    memset(out, 0, sizeof(*out));
    if (!t) {
        if (optional) return CLLM_OK;
        return cllm_error(CLLM_ERR_FORMAT, "model: tensor '%s' is missing", name);
    }
    if (!dtype_is_supported(t->type))
        return cllm_error(CLLM_ERR_UNSUPPORTED, "model: tensor '%s' has type %s (id %u), which cllm does not support "
                          "(supported: f32, f16, bf16, q8_0, q4_0)", name, dtype_name(t->type), t->type);
    if (t->n_dims > 2 || t->ne[0] != ne0 || (t->n_dims == 2 ? t->ne[1] : 1) != ne1)
        return cllm_error(CLLM_ERR_FORMAT, "model: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", name,
                          (long long)t->ne[0], (long long)(t->n_dims == 2 ? t->ne[1] : 1), (long long)ne0,
                          (long long)ne1);
    if (!t->data) return cllm_error(CLLM_ERR_FORMAT, "model: tensor '%s' has no data", name);
    out->type = (dtype_t)t->type;
    out->ne0 = ne0;
    out->ne1 = ne1;
    out->data = t->data;
    m->n_params += (uint64_t)(ne0 * ne1);
    m->weight_bytes += t->nbytes;
    return CLLM_OK;
}

/* Finds a 1-D tensor of n elements and converts it to an owned f32 array (*out; NULL if optional
 * and absent). */
static status_t load_vector(model_t *m, const char *name, int64_t n, bool optional, float **out)
{
    model_matrix_t v;
    status_t st = load_matrix(m, name, n, 1, optional, &v);
    *out = NULL;
    if (st != CLLM_OK || !v.data) return st;
    if (dtype_block_elems(v.type) != 1)
        return cllm_error(CLLM_ERR_UNSUPPORTED, "model: 1-D tensor '%s' is quantized (%s)", name, dtype_name(v.type));
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) return cllm_error(CLLM_ERR_NOMEM, "model: out of memory for '%s'", name);
    dtype_to_f32_row(v.type, v.data, *out, (size_t)n);
    return CLLM_OK;
}

static status_t load_hparams(model_t *m)
{
    model_hparams_t *hp = &m->hp;
    gguf_str_t arch;
    status_t st;

    st = gguf_get_str(m->gguf, "general.architecture", &arch);
    if (st != CLLM_OK) return st;
    if (arch.len >= sizeof(hp->arch_name)) arch.len = sizeof(hp->arch_name) - 1;
    memcpy(hp->arch_name, arch.ptr, arch.len);
    hp->arch_name[arch.len] = '\0';
    if (!strcmp(hp->arch_name, "llama") || !strcmp(hp->arch_name, "mistral")) {
        hp->arch = MODEL_ARCH_LLAMA;
        hp->rope_neox = false;
    } else if (!strcmp(hp->arch_name, "qwen2")) {
        hp->arch = MODEL_ARCH_QWEN2;
        hp->rope_neox = true;
    } else {
        return cllm_error(CLLM_ERR_UNSUPPORTED, "model: architecture '%s' is not supported (supported: llama, mistral, qwen2)",
                          hp->arch_name);
    }

    if ((st = arch_get_i32(m, "embedding_length", &hp->n_embd, false)) != CLLM_OK) return st;
    if ((st = arch_get_i32(m, "block_count", &hp->n_layer, false)) != CLLM_OK) return st;
    if ((st = arch_get_i32(m, "feed_forward_length", &hp->n_ff, false)) != CLLM_OK) return st;
    if ((st = arch_get_i32(m, "attention.head_count", &hp->n_head, false)) != CLLM_OK) return st;
    hp->n_head_kv = hp->n_head;
    if ((st = arch_get_i32(m, "attention.head_count_kv", &hp->n_head_kv, true)) != CLLM_OK) return st;
    hp->n_ctx_train = 2048;
    if ((st = arch_get_i32(m, "context_length", &hp->n_ctx_train, true)) != CLLM_OK) return st;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_ff <= 0 ||
        hp->n_head % hp->n_head_kv != 0)
        return cllm_error(CLLM_ERR_FORMAT, "model: bad shape: n_embd %d, n_layer %d, n_head %d, n_head_kv %d, n_ff %d",
                          hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_ff);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((st = arch_get_i32(m, "attention.key_length", &hp->head_dim, true)) != CLLM_OK) return st;
    {
        int32_t vlen = hp->head_dim;
        if ((st = arch_get_i32(m, "attention.value_length", &vlen, true)) != CLLM_OK) return st;
        if (vlen != hp->head_dim)
            return cllm_error(CLLM_ERR_UNSUPPORTED, "model: key length %d != value length %d", hp->head_dim, vlen);
    }
    if (hp->head_dim <= 0 || hp->head_dim % 2 != 0)
        return cllm_error(CLLM_ERR_FORMAT, "model: head dimension %d must be even and positive", hp->head_dim);
    hp->rms_eps = 1e-5f;
    if ((st = arch_get_f32(m, "attention.layer_norm_rms_epsilon", &hp->rms_eps, true)) != CLLM_OK) return st;
    hp->rope_theta = 10000.0f;
    if ((st = arch_get_f32(m, "rope.freq_base", &hp->rope_theta, true)) != CLLM_OK) return st;
    hp->rope_dim = hp->head_dim;
    if ((st = arch_get_i32(m, "rope.dimension_count", &hp->rope_dim, true)) != CLLM_OK) return st;
    if (hp->rope_dim <= 0 || hp->rope_dim > hp->head_dim || hp->rope_dim % 2 != 0)
        return cllm_error(CLLM_ERR_FORMAT, "model: rope dimension %d does not fit head dimension %d", hp->rope_dim,
                          hp->head_dim);
    return CLLM_OK;
}

/* Frequencies theta^(-2i/d), divided by rope_freqs (Llama 3.x scaling) or a linear factor. */
static status_t load_rope(model_t *m)
{
    const model_hparams_t *hp = &m->hp;
    int n = hp->rope_dim / 2;
    float *factors = NULL, linear = 1.0f;
    char key[128];
    gguf_str_t type;
    status_t st;

    snprintf(key, sizeof(key), "%s.rope.scaling.type", hp->arch_name);
    if (gguf_find_key(m->gguf, key) >= 0) {
        if ((st = gguf_get_str(m->gguf, key, &type)) != CLLM_OK) return st;
        if (type.len == 6 && !memcmp(type.ptr, "linear", 6)) {
            float factor = 1.0f;
            if ((st = arch_get_f32(m, "rope.scaling.factor", &factor, true)) != CLLM_OK) return st;
            if (factor > 0.0f) linear = 1.0f / factor;
        } else if (!(type.len == 4 && !memcmp(type.ptr, "none", 4)) &&
                   !(type.len == 6 && !memcmp(type.ptr, "llama3", 6))) {
            return cllm_error(CLLM_ERR_UNSUPPORTED, "model: rope scaling '%.*s' is not supported", (int)type.len, type.ptr);
        }
    }
    if ((st = load_vector(m, "rope_freqs.weight", n, true, &factors)) != CLLM_OK) return st;
    st = model_rope_init(m, factors, linear);
    free(factors);
    return st;
}

status_t model_rope_init(model_t *m, const float *factors, float linear)
{
    const model_hparams_t *hp = &m->hp;
    int n = hp->rope_dim / 2;
    /* theta^(-2i/d) as a running product of theta^(-2/d) in f32, the way ggml forms it, so
     * angles agree with llama.cpp's to the last bit or two. */
    float theta_scale = powf(hp->rope_theta, -2.0f / (float)hp->rope_dim), f = 1.0f;
    free(m->rope_inv_freq);
    m->rope_inv_freq = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!m->rope_inv_freq) return cllm_error(CLLM_ERR_NOMEM, "model: out of memory");
    for (int i = 0; i < n; i++) {
        float v = f * linear;
        if (factors) v /= factors[i];
        m->rope_inv_freq[i] = v;
        f *= theta_scale;
    }
    return CLLM_OK;
}

static status_t load_weights(model_t *m)
{
    const model_hparams_t *hp = &m->hp;
    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    bool bias = hp->arch == MODEL_ARCH_QWEN2;
    char name[96];
    status_t st;

    if ((st = load_matrix(m, "token_embd.weight", hp->n_embd, hp->n_vocab, false, &m->token_embd)) != CLLM_OK)
        return st;
    if ((st = load_vector(m, "output_norm.weight", hp->n_embd, false, &m->output_norm)) != CLLM_OK) return st;
    if ((st = load_matrix(m, "output.weight", hp->n_embd, hp->n_vocab, true, &m->output)) != CLLM_OK) return st;
    m->hp.tied_output = m->output.data == NULL;
    if (m->hp.tied_output) m->output = m->token_embd;
    m->weight_type = m->token_embd.type;

    /* each block has at least 9 tensors: a block count the file cannot back is refused before
     * anything is allocated for it */
    if (hp->n_layer > gguf_n_tensors(m->gguf) / 9)
        return cllm_error(CLLM_ERR_FORMAT, "model: block_count %d, but the file has only %lld tensors", hp->n_layer,
                          (long long)gguf_n_tensors(m->gguf));
    m->layers = calloc((size_t)hp->n_layer, sizeof(model_layer_t));
    if (!m->layers) return cllm_error(CLLM_ERR_NOMEM, "model: out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        model_layer_t *L = &m->layers[l];
#define MAT(field, suffix, ne0, ne1)                                                       \
    snprintf(name, sizeof(name), "blk.%d." suffix ".weight", l);                           \
    if ((st = load_matrix(m, name, ne0, ne1, false, &L->field)) != CLLM_OK) return st;
#define VEC(field, suffix, kind, n, opt)                                                   \
    snprintf(name, sizeof(name), "blk.%d." suffix "." kind, l);                            \
    if ((st = load_vector(m, name, n, opt, &L->field)) != CLLM_OK) return st;
        VEC(attn_norm, "attn_norm", "weight", hp->n_embd, false);
        MAT(wq, "attn_q", hp->n_embd, q_dim);
        MAT(wk, "attn_k", hp->n_embd, kv_dim);
        MAT(wv, "attn_v", hp->n_embd, kv_dim);
        MAT(wo, "attn_output", q_dim, hp->n_embd);
        VEC(ffn_norm, "ffn_norm", "weight", hp->n_embd, false);
        MAT(w_gate, "ffn_gate", hp->n_embd, hp->n_ff);
        MAT(w_up, "ffn_up", hp->n_embd, hp->n_ff);
        MAT(w_down, "ffn_down", hp->n_ff, hp->n_embd);
        VEC(bq, "attn_q", "bias", q_dim, !bias);
        VEC(bk, "attn_k", "bias", kv_dim, !bias);
        VEC(bv, "attn_v", "bias", kv_dim, !bias);
#undef MAT
#undef VEC
        if (l == 0) m->weight_type = L->wq.type;
    }
    return CLLM_OK;
}

status_t model_load(const char *path, model_t **out)
{
    model_t *m;
    gguf_str_t tmpl;
    status_t st;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (!m) return cllm_error(CLLM_ERR_NOMEM, "model: out of memory");
    if (hf_model_is_checkpoint(path)) {
        if ((st = hf_model_load(m, path)) != CLLM_OK) goto out_free;
        *out = m;
        return CLLM_OK;
    }
    if ((st = gguf_open(path, &m->gguf)) != CLLM_OK) goto out_free;
    if ((st = load_hparams(m)) != CLLM_OK) goto out_free;
    if ((st = tokenizer_create(m->gguf, &m->tok)) != CLLM_OK) goto out_free;
    m->hp.n_vocab = tokenizer_n_vocab(m->tok);
    {
        const gguf_tensor_info_t *te = gguf_find_tensor(m->gguf, "token_embd.weight");
        if (te && te->n_dims == 2 && te->ne[1] != m->hp.n_vocab) {
            st = cllm_error(CLLM_ERR_FORMAT, "model: token_embd.weight has %lld rows but the vocabulary has %d tokens",
                            (long long)te->ne[1], m->hp.n_vocab);
            goto out_free;
        }
    }
    /* weights first: their shapes, checked against the file, bound head_dim and so the RoPE
     * table (a bogus key_length must not allocate gigabytes before a tensor is checked) */
    if ((st = load_weights(m)) != CLLM_OK) goto out_free;
    if ((st = load_rope(m)) != CLLM_OK) goto out_free;
    if (gguf_find_key(m->gguf, "tokenizer.chat_template") >= 0) {
        if ((st = gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl)) != CLLM_OK) goto out_free;
        m->chat_template = strndup(tmpl.ptr, tmpl.len);
        if (!m->chat_template) {
            st = cllm_error(CLLM_ERR_NOMEM, "model: out of memory");
            goto out_free;
        }
    }
    *out = m;
    return CLLM_OK;

out_free:
    {
        /* Prefix the file name so the one error line says which model failed. */
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", cllm_error_message());
        model_destroy(m);
        if (!strstr(msg, path)) return cllm_error(st, "%s: %s", path, msg);
        return cllm_error(st, "%s", msg);
    }
}

void model_destroy(model_t *m)
{
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->hp.n_layer; l++) {
            model_layer_t *L = &m->layers[l];
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->rope_inv_freq);
    free(m->chat_template);
    tokenizer_destroy(m->tok);
    gguf_close(m->gguf);
    safetensors_dir_close(m->st);
    free(m->owned_qk);
    free(m);
}

void model_describe(const model_t *m, char *buf, size_t cap)
{
    const model_hparams_t *hp = &m->hp;
    snprintf(buf, cap,
             "%s: %.1fM params, %s, %.1f MiB, n_embd %d, n_layer %d, n_head %d/%d kv, head_dim %d, n_ff %d, "
             "vocab %d, ctx %d, rope theta %g%s%s",
             hp->arch_name, (double)m->n_params / 1e6, dtype_name(m->weight_type),
             (double)m->weight_bytes / (1024.0 * 1024.0), hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv,
             hp->head_dim, hp->n_ff, hp->n_vocab, hp->n_ctx_train, (double)hp->rope_theta,
             hp->rope_neox ? " neox" : "", hp->tied_output ? ", tied output" : "");
}

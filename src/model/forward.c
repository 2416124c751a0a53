/* forward.c: Llama-family forward pass over a mixed batch (see forward.h).
 *
 * Per layer: RMSNorm -> Q/K/V products for all tokens -> (+bias) -> RoPE -> K/V stored into their
 * block slots -> attention of each token over its sequence through the block table -> output
 * product + residual -> RMSNorm -> SwiGLU FFN + residual. Scratch buffers grow to the largest
 * batch seen and are reused; nothing is allocated per step once warm. The matrices are read
 * through weights_repack_t (built at create: Q8_0/Q4_0 repacked for the AVX-512 kernels), and
 * products that share an input (Q, K, V; gate, up) go to the kernels together. */
#include "model/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/weights_repack.h"

struct forward {
    const model_t *model;
    kv_cache_t *kv;
    threadpool_t *pool;
    weights_repack_t *w; /* the matrices as the kernels read them (repacked at create) */
    int32_t cap_tokens; /* rows the scratch holds */
    float *x;           /* (cap, n_embd) residual stream */
    float *xn;          /* (cap, n_embd) normed input */
    float *q;           /* (cap, n_head * head_dim) */
    float *k;           /* (cap, n_head_kv * head_dim) */
    float *v;           /* (cap, n_head_kv * head_dim) */
    float *att;         /* (cap, n_head * head_dim) attention output */
    float *gate;        /* (cap, n_ff) */
    float *up;          /* (cap, n_ff) */
    float *proj;        /* (cap, n_embd) output of wo / w_down */
};

status_t forward_create(const model_t *model, kv_cache_t *kv, threadpool_t *pool, forward_t **out)
{
    const kv_cache_config_t *c = kv_cache_config(kv);
    forward_t *fw;
    *out = NULL;
    if (c->n_layer != model->hp.n_layer || c->n_head_kv != model->hp.n_head_kv || c->head_dim != model->hp.head_dim)
        return cllm_error(CLLM_ERR_INVALID_ARG, "forward: KV cache shape does not match the model");
    /* kern_rope rotates whole heads */
    if (model->hp.rope_dim != model->hp.head_dim)
        return cllm_error(CLLM_ERR_UNSUPPORTED, "forward: partial rotary embeddings (%d of %d dims) are not supported",
                          model->hp.rope_dim, model->hp.head_dim);
    fw = calloc(1, sizeof(*fw));
    if (!fw) return cllm_error(CLLM_ERR_NOMEM, "forward: out of memory");
    fw->model = model;
    fw->kv = kv;
    fw->pool = pool;
    {
        status_t st = weights_repack_create(model, pool, &fw->w);
        if (st != CLLM_OK) {
            free(fw);
            return st;
        }
    }
    *out = fw;
    return CLLM_OK;
}

static void scratch_free(forward_t *fw)
{
    free(fw->x);
    free(fw->xn);
    free(fw->q);
    free(fw->k);
    free(fw->v);
    free(fw->att);
    free(fw->gate);
    free(fw->up);
    free(fw->proj);
    fw->x = fw->xn = fw->q = fw->k = fw->v = fw->att = fw->gate = fw->up = fw->proj = NULL;
    fw->cap_tokens = 0;
}

void forward_destroy(forward_t *fw)
{
    if (!fw) return;
    scratch_free(fw);
    weights_repack_destroy(fw->w);
    free(fw);
}

static float *alloc_rows(int32_t rows, int32_t cols)
{
    size_t bytes = (size_t)rows * (size_t)cols * sizeof(float);
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

static status_t scratch_reserve(forward_t *fw, int32_t n_tokens)
{
    const model_hparams_t *hp = &fw->model->hp;
    int32_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    int32_t cap;
    if (n_tokens <= fw->cap_tokens) return CLLM_OK;
    cap = fw->cap_tokens ? fw->cap_tokens : 16;
    while (cap < n_tokens) cap *= 2;
    scratch_free(fw);
    fw->x = alloc_rows(cap, hp->n_embd);
    fw->xn = alloc_rows(cap, hp->n_embd);
    fw->q = alloc_rows(cap, q_dim);
    fw->k = alloc_rows(cap, kv_dim);
    fw->v = alloc_rows(cap, kv_dim);
    fw->att = alloc_rows(cap, q_dim);
    fw->gate = alloc_rows(cap, hp->n_ff);
    fw->up = alloc_rows(cap, hp->n_ff);
    fw->proj = alloc_rows(cap, hp->n_embd);
    if (!fw->x || !fw->xn || !fw->q || !fw->k || !fw->v || !fw->att || !fw->gate || !fw->up || !fw->proj) {
        scratch_free(fw);
        return cllm_error(CLLM_ERR_NOMEM, "forward: cannot allocate scratch for %d tokens", n_tokens);
    }
    fw->cap_tokens = cap;
    return CLLM_OK;
}

static status_t batch_check(const forward_t *fw, const forward_batch_t *b)
{
    int32_t bs = kv_cache_config(fw->kv)->block_size, n_blocks_pool = kv_cache_config(fw->kv)->n_blocks;
    if (b->n_tokens <= 0) return cllm_error(CLLM_ERR_INVALID_ARG, "forward: empty batch");
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t s = b->seq[i], p = b->pos[i];
        if (b->tokens[i] < 0 || b->tokens[i] >= fw->model->hp.n_vocab)
            return cllm_error(CLLM_ERR_INVALID_ARG, "forward: token id %d out of the vocabulary (%d)", b->tokens[i],
                              fw->model->hp.n_vocab);
        if (s < 0 || s >= b->n_seqs) return cllm_error(CLLM_ERR_INVALID_ARG, "forward: bad sequence index %d", s);
        if (p < 0 || p / bs >= b->n_blocks[s])
            return cllm_error(CLLM_ERR_INVALID_ARG, "forward: position %d not covered by the block table (%d blocks)", p,
                              b->n_blocks[s]);
    }
    for (int32_t s = 0; s < b->n_seqs; s++)
        for (int32_t j = 0; j < b->n_blocks[s]; j++)
            if (b->block_tables[s][j] < 0 || b->block_tables[s][j] >= n_blocks_pool)
                return cllm_error(CLLM_ERR_INVALID_ARG, "forward: block id %d out of the pool (%d)", b->block_tables[s][j],
                                  n_blocks_pool);
    return CLLM_OK;
}

/* Attention of every token. Tokens are grouped into runs of up to ATTN_RUN consecutive
 * positions of one sequence (a prefill chunk gives long runs, a decode step runs of one); the
 * items (run, KV head) are dealt to the threads cyclically, so that the long late runs of a
 * causal prefill do not all land on the last thread. kern_attention_rows gives each token the
 * same bits as kern_attention, so the grouping cannot change a result. */
#define ATTN_RUN 16

typedef struct {
    forward_t *fw;
    const forward_batch_t *b;
    int layer;
} attn_job_t;

/* Length of the run starting at token t (same sequence, consecutive positions, <= ATTN_RUN). */
static int32_t run_length(const forward_batch_t *b, int32_t t)
{
    int32_t n = 1;
    while (n < ATTN_RUN && t + n < b->n_tokens && b->seq[t + n] == b->seq[t] && b->pos[t + n] == b->pos[t] + n) n++;
    return n;
}

static void attn_worker(void *ctx, int ith, int nth)
{
    const attn_job_t *job = ctx;
    const forward_batch_t *b = job->b;
    const model_hparams_t *hp = &job->fw->model->hp;
    const kv_cache_config_t *c = kv_cache_config(job->fw->kv);
    int32_t q_dim = hp->n_head * hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float scale = 1.0f / sqrtf((float)hp->head_dim);
    const void *kp = kv_cache_k(job->fw->kv, job->layer), *vp = kv_cache_v(job->fw->kv, job->layer);
    int64_t it = 0;

    for (int32_t t = 0; t < b->n_tokens;) {
        int32_t n = run_length(b, t), s = b->seq[t];
        for (int32_t g = 0; g < hp->n_head_kv; g++, it++) {
            if (it % nth != ith) continue;
            kern_attention_rows(job->fw->att + (size_t)t * q_dim, job->fw->q + (size_t)t * q_dim, q_dim, n, b->pos[t],
                                kp, vp, c->dtype, b->block_tables[s], c->block_size, hp->n_head, hp->n_head_kv,
                                hp->head_dim, g * group, (g + 1) * group, scale);
        }
        t += n;
    }
}

static void add_bias(float *rows, const float *bias, int32_t n_rows, int32_t n)
{
    for (int32_t i = 0; i < n_rows; i++) kern_add(rows + (size_t)i * n, rows + (size_t)i * n, bias, n);
}

static void layer_forward(forward_t *fw, const forward_batch_t *b, int l)
{
    const model_t *m = fw->model;
    const model_hparams_t *hp = &m->hp;
    const model_layer_t *L = &m->layers[l];
    const weights_layer_t *W = &fw->w->layers[l];
    int32_t T = b->n_tokens, D = hp->n_embd, F = hp->n_ff;
    int32_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    int32_t bs = kv_cache_config(fw->kv)->block_size;
    attn_job_t job = { fw, b, l };

    /* attention block */
    for (int32_t t = 0; t < T; t++)
        kern_rmsnorm(fw->xn + (size_t)t * D, fw->x + (size_t)t * D, L->attn_norm, D, hp->rms_eps);
    {
        /* one preparation of xn and one hand-off to the pool for the three products */
        float *const ys[3] = { fw->q, fw->k, fw->v };
        const kern_matrix_t *const ws[3] = { &W->wq, &W->wk, &W->wv };
        kern_matmul_mats(fw->pool, 3, ys, fw->xn, ws, T);
    }
    if (L->bq) {
        add_bias(fw->q, L->bq, T, q_dim);
        add_bias(fw->k, L->bk, T, kv_dim);
        add_bias(fw->v, L->bv, T, kv_dim);
    }
    for (int32_t t = 0; t < T; t++) {
        const int32_t *bt = b->block_tables[b->seq[t]];
        int32_t p = b->pos[t];
        kern_rope(fw->q + (size_t)t * q_dim, hp->n_head, hp->head_dim, p, m->rope_inv_freq, hp->rope_neox);
        kern_rope(fw->k + (size_t)t * kv_dim, hp->n_head_kv, hp->head_dim, p, m->rope_inv_freq, hp->rope_neox);
        kv_cache_store(fw->kv, l, bt[p / bs], p % bs, fw->k + (size_t)t * kv_dim, fw->v + (size_t)t * kv_dim);
    }
    threadpool_run(fw->pool, attn_worker, &job);
    kern_matmul_mat(fw->pool, fw->proj, fw->att, &W->wo, T);
    kern_add(fw->x, fw->x, fw->proj, T * D);

    /* feed-forward block */
    for (int32_t t = 0; t < T; t++)
        kern_rmsnorm(fw->xn + (size_t)t * D, fw->x + (size_t)t * D, L->ffn_norm, D, hp->rms_eps);
    {
        float *const ys[2] = { fw->gate, fw->up };
        const kern_matrix_t *const ws[2] = { &W->w_gate, &W->w_up };
        kern_matmul_mats(fw->pool, 2, ys, fw->xn, ws, T);
    }
    kern_silu_mul(fw->gate, fw->gate, fw->up, T * F);
    kern_matmul_mat(fw->pool, fw->proj, fw->gate, &W->w_down, T);
    kern_add(fw->x, fw->x, fw->proj, T * D);
}

status_t forward_run(forward_t *fw, const forward_batch_t *b, float *logits)
{
    const model_t *m = fw->model;
    const model_hparams_t *hp = &m->hp;
    int32_t D = hp->n_embd, n_out = 0;
    status_t st;

    if ((st = batch_check(fw, b)) != CLLM_OK) return st;
    if ((st = scratch_reserve(fw, b->n_tokens)) != CLLM_OK) return st;

    for (int32_t t = 0; t < b->n_tokens; t++)
        dtype_to_f32_row(m->token_embd.type,
                         (const char *)m->token_embd.data + dtype_row_bytes(m->token_embd.type, (size_t)D) * (size_t)b->tokens[t],
                         fw->x + (size_t)t * D, (size_t)D);
    for (int l = 0; l < hp->n_layer; l++) layer_forward(fw, b, l);

    /* final norm of the rows that want logits, gathered to the front of xn */
    for (int32_t t = 0; t < b->n_tokens; t++) {
        int want = b->want_logits ? b->want_logits[t] != 0 : t == b->n_tokens - 1;
        if (!want) continue;
        kern_rmsnorm(fw->xn + (size_t)n_out * D, fw->x + (size_t)t * D, m->output_norm, D, hp->rms_eps);
        n_out++;
    }
    if (n_out > 0) kern_matmul_mat(fw->pool, logits, fw->xn, &fw->w->output, n_out);
    return CLLM_OK;
}

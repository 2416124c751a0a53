/* kv_cache.c: block KV storage (see kv_cache.h). One anonymous mapping per layer and per K/V,
 * sized once at create; nothing is allocated afterwards. The mappings are zero-filled lazily by
 * the kernel, so resident memory grows with the blocks actually written, not with the pool size
 * (an unwritten slot reads as zeros, never NaN). */
#include "kv/kv_cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct kv_cache {
    kv_cache_config_t cfg;
    size_t pool_bytes; /* bytes of one layer's K (or V) pool */
    size_t head_bytes; /* bytes of one head's row of one token */
    void **k;          /* (n_layer) pools */
    void **v;          /* (n_layer) pools */
};

size_t kv_cache_block_bytes(const kv_cache_config_t *cfg)
{
    size_t per_layer;
    if (__builtin_mul_overflow((size_t)cfg->n_head_kv * (size_t)cfg->head_dim, (size_t)cfg->block_size, &per_layer) ||
        __builtin_mul_overflow(per_layer, dtype_block_bytes(cfg->dtype) * 2, &per_layer) ||
        __builtin_mul_overflow(per_layer, (size_t)cfg->n_layer, &per_layer))
        return 0;
    return per_layer;
}

size_t kv_cache_bytes_for(const kv_cache_config_t *cfg)
{
    size_t total;
    if (__builtin_mul_overflow(kv_cache_block_bytes(cfg), (size_t)cfg->n_blocks, &total)) return 0;
    return total;
}

static void *pool_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

status_t kv_cache_create(const kv_cache_config_t *cfg, kv_cache_t **out)
{
    kv_cache_t *kv;
    *out = NULL;
    if (cfg->n_layer <= 0 || cfg->n_head_kv <= 0 || cfg->head_dim <= 0 || cfg->n_blocks <= 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "kv cache: bad shape");
    if (cfg->block_size < 8 || cfg->block_size > 256 || (cfg->block_size & (cfg->block_size - 1)))
        return cllm_error(CLLM_ERR_INVALID_ARG, "kv cache: block size %d must be a power of two from 8 to 256",
                          cfg->block_size);
    if (cfg->dtype != DTYPE_F32 && cfg->dtype != DTYPE_F16 && cfg->dtype != DTYPE_BF16)
        return cllm_error(CLLM_ERR_INVALID_ARG, "kv cache: dtype %s not supported (f32, f16, bf16)", dtype_name(cfg->dtype));
    if (kv_cache_bytes_for(cfg) == 0) return cllm_error(CLLM_ERR_RANGE, "kv cache: size overflows");

    kv = calloc(1, sizeof(*kv));
    if (!kv) return cllm_error(CLLM_ERR_NOMEM, "kv cache: out of memory");
    kv->cfg = *cfg;
    kv->head_bytes = (size_t)cfg->head_dim * dtype_block_bytes(cfg->dtype);
    kv->pool_bytes = kv_cache_bytes_for(cfg) / 2 / (size_t)cfg->n_layer;
    kv->k = calloc((size_t)cfg->n_layer, sizeof(void *));
    kv->v = calloc((size_t)cfg->n_layer, sizeof(void *));
    if (!kv->k || !kv->v) goto out_nomem;
    for (int l = 0; l < cfg->n_layer; l++) {
        /* page-aligned (so 64-byte aligned for the SIMD kernels) */
        kv->k[l] = pool_map(kv->pool_bytes);
        kv->v[l] = pool_map(kv->pool_bytes);
        if (!kv->k[l] || !kv->v[l]) goto out_nomem;
    }
    *out = kv;
    return CLLM_OK;

out_nomem:
    kv_cache_destroy(kv);
    return cllm_error(CLLM_ERR_NOMEM, "kv cache: cannot allocate %zu bytes", kv_cache_bytes_for(cfg));
}

void kv_cache_destroy(kv_cache_t *kv)
{
    if (!kv) return;
    for (int l = 0; l < kv->cfg.n_layer; l++) {
        if (kv->k && kv->k[l]) munmap(kv->k[l], kv->pool_bytes);
        if (kv->v && kv->v[l]) munmap(kv->v[l], kv->pool_bytes);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

const kv_cache_config_t *kv_cache_config(const kv_cache_t *kv)
{
    return &kv->cfg;
}

void *kv_cache_k(kv_cache_t *kv, int layer)
{
    return kv->k[layer];
}

void *kv_cache_v(kv_cache_t *kv, int layer)
{
    return kv->v[layer];
}

void kv_cache_store(kv_cache_t *kv, int layer, int32_t block, int32_t offset, const float *k, const float *v)
{
    const kv_cache_config_t *c = &kv->cfg;
    size_t block_off = (size_t)block * (size_t)c->n_head_kv * (size_t)c->block_size;
    for (int h = 0; h < c->n_head_kv; h++) {
        size_t row = block_off + ((size_t)h * (size_t)c->block_size + (size_t)offset);
        dtype_from_f32_row(c->dtype, k + (size_t)h * c->head_dim, (char *)kv->k[layer] + row * kv->head_bytes,
                           (size_t)c->head_dim);
        dtype_from_f32_row(c->dtype, v + (size_t)h * c->head_dim, (char *)kv->v[layer] + row * kv->head_bytes,
                           (size_t)c->head_dim);
    }
}

status_t kv_cache_copy_slots(kv_cache_t *kv, int32_t src, int32_t dst, int32_t n_slots)
{
    const kv_cache_config_t *c = &kv->cfg;
    size_t block_rows = (size_t)c->n_head_kv * (size_t)c->block_size; /* rows of one block */
    size_t n_bytes = (size_t)n_slots * kv->head_bytes;                 /* one head's slots [0, n) */

    if (src < 0 || src >= c->n_blocks || dst < 0 || dst >= c->n_blocks || n_slots < 0 || n_slots > c->block_size)
        return cllm_error(CLLM_ERR_INVALID_ARG, "kv cache: copy of %d slots from block %d to %d (%d blocks of %d)",
                          n_slots, src, dst, c->n_blocks, c->block_size);
    if (src == dst || n_slots == 0) return CLLM_OK;
    for (int l = 0; l < c->n_layer; l++) {
        for (int h = 0; h < c->n_head_kv; h++) {
            /* head h of a block: block_size contiguous rows of head_dim */
            size_t s_row = (size_t)src * block_rows + (size_t)h * (size_t)c->block_size;
            size_t d_row = (size_t)dst * block_rows + (size_t)h * (size_t)c->block_size;
            memcpy((char *)kv->k[l] + d_row * kv->head_bytes, (char *)kv->k[l] + s_row * kv->head_bytes, n_bytes);
            memcpy((char *)kv->v[l] + d_row * kv->head_bytes, (char *)kv->v[l] + s_row * kv->head_bytes, n_bytes);
        }
    }
    return CLLM_OK;
}

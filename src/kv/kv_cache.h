/* kv_cache.h: the block (paged) KV cache storage.
 *
 * Per layer, K and V each live in a pool of n_blocks blocks of block_size token slots:
 * layout (n_blocks, n_head_kv, block_size, head_dim) of dtype (F32, F16 or BF16), so one head's
 * keys of one block are contiguous for the attention kernel. A token at position p of a sequence
 * with block table bt lives in block bt[p / block_size], slot p % block_size. This module only
 * stores; which block belongs to whom is the block pool's business (src/kv/block_pool.h). */
#ifndef CLLM_KV_KV_CACHE_H
#define CLLM_KV_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "core/dtype.h"

typedef struct {
    int32_t n_layer;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t block_size; /* power of two, 8..256 */
    int32_t n_blocks;
    dtype_t dtype;      /* F32, F16 or BF16 */
} kv_cache_config_t;

typedef struct kv_cache kv_cache_t;

/* Bytes the cache takes for cfg (0 on overflow). */
size_t kv_cache_bytes_for(const kv_cache_config_t *cfg);
/* Bytes of one block across all layers, K and V. */
size_t kv_cache_block_bytes(const kv_cache_config_t *cfg);

status_t kv_cache_create(const kv_cache_config_t *cfg, kv_cache_t **out);
void kv_cache_destroy(kv_cache_t *kv);
const kv_cache_config_t *kv_cache_config(const kv_cache_t *kv);

/* Base of layer l's K or V pool: (n_blocks, n_head_kv, block_size, head_dim) of dtype. */
void *kv_cache_k(kv_cache_t *kv, int layer);
void *kv_cache_v(kv_cache_t *kv, int layer);

/* Stores one token's K and V rows (each (n_head_kv, head_dim) f32) of layer l into slot
 * (block, offset), converting to the cache dtype. */
void kv_cache_store(kv_cache_t *kv, int layer, int32_t block, int32_t offset, const float *k, const float *v);

/* Copies slots [0, n_slots) of block src into the same slots of block dst: every layer, K and
 * V, every kv head (partial-block prefix reuse: the leading tokens of a cached block). Bytes are
 * copied as stored, so the copy is bitwise what recomputing those tokens wrote. src == dst or
 * n_slots == 0 does nothing. CLLM_ERR_INVALID_ARG for a bad block id or n_slots out of
 * 0..block_size. */
status_t kv_cache_copy_slots(kv_cache_t *kv, int32_t src, int32_t dst, int32_t n_slots);

#endif

/* ops_avx512.h: the AVX512 element-wise kernels, rope and attention (signatures as in
 * kernels_impl.h's kern_vtable_t). Plain prototypes: safe to include anywhere, but call only
 * when kern_level_supported() >= KERN_LEVEL_AVX512. */
#ifndef CLLM_KERNELS_X86_OPS_AVX512_H
#define CLLM_KERNELS_X86_OPS_AVX512_H

#include "kernels/kernels_impl.h"

void kern_avx512_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void kern_avx512_silu_mul(float *out, const float *gate, const float *up, int n);
void kern_avx512_add(float *out, const float *a, const float *b, int n);
void kern_avx512_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox);
void kern_avx512_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                           const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                           int head_dim, int h0, int h1, float scale);
void kern_avx512_attention_rows(float *out, const float *q, int ld, int n_q, int pos0, const void *k_pool,
                                const void *v_pool, dtype_t kv_type, const int32_t *block_table, int block_size,
                                int n_head, int n_head_kv, int head_dim, int h0, int h1, float scale);

#endif

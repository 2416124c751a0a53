/* ops_avx2.h: the AVX2 element-wise kernels, rope and attention (signatures as in
 * kernels_impl.h's kern_vtable_t). Plain prototypes: safe to include anywhere, but call only
 * when kern_level_supported() >= KERN_LEVEL_AVX2. */
#ifndef CLLM_KERNELS_X86_OPS_AVX2_H
#define CLLM_KERNELS_X86_OPS_AVX2_H

#include "kernels/kernels_impl.h"

void kern_avx2_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void kern_avx2_silu_mul(float *out, const float *gate, const float *up, int n);
void kern_avx2_add(float *out, const float *a, const float *b, int n);
void kern_avx2_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox);
void kern_avx2_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                         const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                         int head_dim, int h0, int h1, float scale);

#endif

/* kernels_ref.h: the scalar reference kernels (the spec, the fallback, the test oracle).
 *
 * Owns: one plain C11 implementation of every entry of kern_vtable_t. Each computes every
 * output element with a single sequential accumulation in the order of the input (over k, over
 * key positions), so it is trivially batch invariant. See kernels_impl.h for the signatures. */
#ifndef CLLM_KERNELS_REF_KERNELS_REF_H
#define CLLM_KERNELS_REF_KERNELS_REF_H

#include "kernels/kernels_impl.h"

void kern_ref_matmul_f32(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1);
void kern_ref_matmul_f16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1);
void kern_ref_matmul_bf16(float *y, const uint16_t *xb, const void *w, int m, int n, int k, int j0, int j1);
void kern_ref_matmul_q8_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                          int j0, int j1);
void kern_ref_matmul_q4_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                          int j0, int j1);
/* The x16 layout's products (kernels_impl.h), for tests of the packed kernels of other levels. */
void kern_ref_matmul_q8_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1);
void kern_ref_matmul_q4_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1);
void kern_ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void kern_ref_silu_mul(float *out, const float *gate, const float *up, int n);
void kern_ref_add(float *out, const float *a, const float *b, int n);
void kern_ref_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox);
void kern_ref_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                        const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                        int head_dim, int h0, int h1, float scale);
/* Roofline probes (kernels.h: kern_peak_run, kern_read_sum; kind is a kern_peak_t): scalar
 * multiply-adds (f32 and int8; no bf16 at this level) and 64-bit word sums. */
double kern_ref_peak_run(int kind, int64_t n_iter);
uint64_t kern_ref_read_sum(const void *p, size_t n);

extern const kern_vtable_t kern_vtable_ref;

#endif

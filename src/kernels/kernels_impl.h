/* kernels_impl.h: the internal interface between the dispatcher (kernels.c) and the per-level
 * kernel files (ref/, x86/).
 *
 * Owns: the table of kernel entry points one level provides (kern_vtable_t), the range
 * signature of the matmul kernels (all m rows, output columns [j0, j1)), and the format of x
 * quantized for the Q8_0/Q4_0 integer dots (shared by every level, so that the integer part of
 * those dots is exactly the same at every level).
 * Invariants every level keeps:
 *   - matmul: y[i][j] depends only on x row i, W row j and k; the accumulation order over k for
 *     one (i, j) is fixed by the level and does not depend on m, j0, j1 or on the other rows.
 *   - attention: a head's output depends only on q, the cached K/V and n_ctx (not on the block
 *     size, the block ids, h0/h1 or the other heads).
 * Nothing here may use ISA-specific types: this header is included by plain C11 files. */
#ifndef CLLM_KERNELS_KERNELS_IMPL_H
#define CLLM_KERNELS_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

/* x quantized for the integer dots: per row of k elements (k a multiple of 32), blocks of 32
 * int8 values with one f32 scale, x[i] ~= d[i / 32] * qs[i], |qs| <= 127. A block holding a
 * non-finite value gets d = NaN and qs = 0, so the NaN reaches the output. */
void kern_quantize_row_q8(int8_t *qs /* (k) */, float *d /* (k / 32) */, const float *x /* (k) */, int k);

/* The matmul kernels of one level: y (m, n) row-major; only columns [j0, j1) are written.
 * x (m, k) f32; w (n, k) of the kernel's type. Quantized kernels take x quantized by
 * kern_quantize_row_q8: xqs (m, k), xd (m, k / 32). */
typedef void (*kern_matmul_float_fn)(float *y, const float *x, const void *w, int m, int n, int k, int j0,
                                     int j1);
typedef void (*kern_matmul_quant_fn)(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n,
                                     int k, int j0, int j1);

typedef struct {
    kern_matmul_float_fn matmul_f32;
    kern_matmul_float_fn matmul_f16;
    kern_matmul_float_fn matmul_bf16;
    kern_matmul_quant_fn matmul_q8_0;
    kern_matmul_quant_fn matmul_q4_0;
    void (*rmsnorm)(float *out, const float *x, const float *w, int n, float eps);
    void (*silu_mul)(float *out, const float *gate, const float *up, int n);
    void (*add)(float *out, const float *a, const float *b, int n);
    void (*rope)(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox);
    void (*attention)(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                      const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                      int head_dim, int h0, int h1, float scale);
} kern_vtable_t;

/* The table of a level (clamped to the supported one). Tests use it to call a level's kernels
 * on arbitrary column ranges; the engine goes through kernels.h. */
const kern_vtable_t *kern_vtable_for_level(int level);

#endif

/* kernels_impl.h: the internal interface between the dispatcher (kernels.c) and the per-level
 * kernel files (ref/, x86/).
 *
 * Owns: the table of kernel entry points one level provides (kern_vtable_t), the range
 * signature of the matmul kernels (all m rows, output columns [j0, j1)), the format of x
 * quantized for the Q8_0/Q4_0 integer dots and of x rounded to bf16 for BF16 weights (shared by
 * every level, so that the integer part of those dots, and the bf16 products, are exactly the
 * same at every level), and the "x16" layout of repacked Q8_0/Q4_0 weights.
 * Invariants every level keeps:
 *   - matmul: y[i][j] depends only on x row i, W row j and k; the accumulation order over k for
 *     one (i, j) is fixed by the level and does not depend on m, j0, j1 or on the other rows.
 *   - attention: a head's output depends only on q, the cached K/V and n_ctx (not on the block
 *     size, the block ids, h0/h1, the other heads or, for attention_rows, the other queries:
 *     row i of attention_rows is bitwise attention with n_ctx = pos0 + i + 1).
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

/* x rounded to bf16 for BF16 weights (every level computes BF16 products from this, so that
 * their math is the same everywhere): round to nearest even, NaN kept quiet, as f32_to_bf16. */
void kern_round_row_bf16(uint16_t *xb /* (k) */, const float *x /* (k) */, int k);

/* ---- the "x16" layout of Q8_0/Q4_0 products (weights repacked at load, kern_matrix_pack) ----
 * Blocks are taken 16 at a time (a group: 512 elements); a row of k elements has
 * ceil(k / 512) groups, the last one padded with zero blocks (zero scale, zero values).
 * Inside a group, element e of block l (0 <= l < 16, 0 <= e < 32) sits at byte
 * 64 * (e / 4) + 4 * l + e % 4: one 64-byte vector holds 4 consecutive elements of each of the 16
 * blocks, so that one vpdpbusd lane l sums 4 products of block l and 8 of them sum the block.
 *   weights, per group: f16 d[16]; then Q8_0: 512 bytes u8 (q + 128); Q4_0: 256 bytes where byte
 *            64 * p + 4 * l + b is the GGML byte qs[4 * p + b] of block l (its low nibble is
 *            element 4p + b, its high nibble element 16 + 4p + b): 34 / 18 bytes per block as
 *            in GGML.
 *   x, per group: int8 q[512] (kern_quantize_row_q8's values, regrouped), f32 d[16], int32
 *            corr[16]: -128 * sum(q) of the block for Q8_0 weights (undoes the + 128), -8 *
 *            sum(q) for Q4_0 (undoes the nibble offset). 640 bytes.
 * So for each block the integer dot sum(q_x * q_w) is corr + the vpdpbusd sums: exact. */
#define KERN_X16_GROUP 16                          /* blocks per group */
#define KERN_X16_ELEMS (KERN_X16_GROUP * DTYPE_QK) /* 512 */
#define KERN_X16_XBYTES 640                        /* bytes of x per group */
/* Groups of a row of k elements (k a multiple of 32). */
static inline int kern_x16_groups(int k)
{
    return (k / DTYPE_QK + KERN_X16_GROUP - 1) / KERN_X16_GROUP;
}
/* Bytes of a packed weight row / group of weight type t (Q8_0 or Q4_0). */
static inline size_t kern_x16_wgroup_bytes(dtype_t t)
{
    return t == DTYPE_Q8_0 ? 32 + 512 : 32 + 256;
}
/* Packs weight rows [j0, j1) of w (n, k) of type t (Q8_0/Q4_0) into wp (n rows of
 * kern_x16_groups(k) groups). */
void kern_x16_pack_rows(void *wp, const void *w, dtype_t t, int k, int j0, int j1);
/* x row (k) quantized (kern_quantize_row_q8's values) into the x16 layout for weights of type t:
 * xp: kern_x16_groups(k) * KERN_X16_XBYTES bytes. */
void kern_x16_quantize_row(void *xp, const float *x, int k, dtype_t t);

/* The matmul kernels of one level: y (m, n) row-major; only columns [j0, j1) are written.
 * x (m, k) f32; w (n, k) of the kernel's type. Quantized kernels take x quantized by
 * kern_quantize_row_q8: xqs (m, k), xd (m, k / 32); the BF16 kernel takes x rounded by
 * kern_round_row_bf16: xb (m, k); the x16 kernels take x (m rows of kern_x16_groups(k) *
 * KERN_X16_XBYTES bytes) and w (n rows of kern_x16_groups(k) groups) in the x16 layout. */
typedef void (*kern_matmul_float_fn)(float *y, const float *x, const void *w, int m, int n, int k, int j0,
                                     int j1);
typedef void (*kern_matmul_bf16_fn)(float *y, const uint16_t *xb, const void *w, int m, int n, int k, int j0,
                                    int j1);
typedef void (*kern_matmul_quant_fn)(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n,
                                     int k, int j0, int j1);
typedef void (*kern_matmul_x16_fn)(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1);

typedef struct {
    kern_matmul_float_fn matmul_f32;
    kern_matmul_float_fn matmul_f16;
    kern_matmul_bf16_fn matmul_bf16;
    kern_matmul_quant_fn matmul_q8_0;
    kern_matmul_quant_fn matmul_q4_0;
    kern_matmul_x16_fn matmul_q8_0_x16; /* NULL: the level has no x16 kernels (weights stay unpacked) */
    kern_matmul_x16_fn matmul_q4_0_x16;
    /* Same results as kern_quantize_row_q8 / kern_round_row_bf16 / kern_x16_quantize_row, bit
     * for bit (only faster). */
    void (*quantize_row_q8)(int8_t *qs, float *d, const float *x, int k);
    void (*round_row_bf16)(uint16_t *xb, const float *x, int k);
    void (*x16_quantize_row)(void *xp, const float *x, int k, dtype_t t);
    void (*rmsnorm)(float *out, const float *x, const float *w, int n, float eps);
    void (*silu_mul)(float *out, const float *gate, const float *up, int n);
    void (*add)(float *out, const float *a, const float *b, int n);
    void (*rope)(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox);
    void (*attention)(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                      const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                      int head_dim, int h0, int h1, float scale);
    /* NULL: kern_attention_rows calls attention once per query */
    void (*attention_rows)(float *out, const float *q, int ld, int n_q, int pos0, const void *k_pool,
                           const void *v_pool, dtype_t kv_type, const int32_t *block_table, int block_size,
                           int n_head, int n_head_kv, int head_dim, int h0, int h1, float scale);
} kern_vtable_t;

/* The table of a level (clamped to the supported one). Tests use it to call a level's kernels
 * on arbitrary column ranges; the engine goes through kernels.h. */
const kern_vtable_t *kern_vtable_for_level(int level);

#endif

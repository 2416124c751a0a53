/* matmul_avx2.c: AVX2 (+FMA, F16C) matmul kernels, y (m, n) = x (m, k) . W^T, columns [j0, j1).
 *
 * Owns: the register-tiled micro-kernels (up to TILE_R rows of x times tc rows of W, one
 * 8-lane accumulator per output element) and their drivers.
 * Fixed per-element arithmetic (batch invariance): for output (i, j) the accumulator's lane l
 * sums, in k order, the products of elements k = 8 t + l (float weights; the last partial step
 * is zero padded; for BF16 weights x comes rounded to bf16, so every product is exact) or, for Q8_0/Q4_0, lane l of block b is an exact int32 sum of 4 products
 * (maddubs + madd), converted to f32 and fused-multiply-added with d_w * d_x; then the 8 lanes
 * are summed by hsum256_ps. Tiling changes only which registers hold what, never this sequence.
 * Q8_0 uses the sign trick (|w| as u8 times x carrying w's sign), exact for every s8 weight
 * including -128 since |x| <= 127. */
#include "kernels/x86/matmul_avx2.h"

#include <string.h>

#include "kernels/x86/matmul_tile.h"
#include "kernels/x86/simd_avx2.h"

/* 8 elements of a float-type weight row, converted to f32. */
KERN_AI __m256 load_w8(const void *w, size_t i, const int wt)
{
    if (wt == DTYPE_F32) return _mm256_loadu_ps((const float *)w + i);
    if (wt == DTYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i))), 16));
}

/* The last n < 8 elements, zero padded (nothing past them is read). */
KERN_AI __m256 load_w8_tail(const void *w, size_t i, int n, const int wt)
{
    uint16_t buf[8] = { 0 };
    if (wt == DTYPE_F32) return _mm256_maskload_ps((const float *)w + i, lane_mask256(n));
    memcpy(buf, (const uint16_t *)w + i, (size_t)n * sizeof(uint16_t));
    return load_w8(buf, 0, wt);
}

/* 8 elements of x: f32, or for BF16 weights bf16 (kern_round_row_bf16), widened exactly. */
KERN_AI __m256 load_x8(const void *x, size_t i, const int wt)
{
    if (wt != DTYPE_BF16) return _mm256_loadu_ps((const float *)x + i);
    return load_w8(x, i, DTYPE_BF16);
}

/* The last n < 8 elements of x, zero padded. */
KERN_AI __m256 load_x8_tail(const void *x, size_t i, int n, const int wt)
{
    if (wt != DTYPE_BF16) return _mm256_maskload_ps((const float *)x + i, lane_mask256(n));
    return load_w8_tail(x, i, n, DTYPE_BF16);
}

/* y (R, C) with row stride ldy = x (R, k) . w (C, k)^T, float weight type wt (x bf16 for BF16
 * weights, else f32). */
KERN_AI void tile_float(float *y, int ldy, const void *x, const void *w, int k, const int wt, const int R,
                        const int C, int pf)
{
    size_t esz = wt == DTYPE_F32 ? 4 : 2, pf_dist = (size_t)C * k * esz; /* bytes to the next tile */
    __m256 acc[TILE_R][TILE_C];
    int kk = 0;
    KERN_UNROLL
    for (int r = 0; r < TILE_R; r++) {
        KERN_UNROLL
        for (int c = 0; c < TILE_C; c++) acc[r][c] = _mm256_setzero_ps();
    }
    for (; kk + 8 <= k; kk += 8) {
        __m256 wv[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) wv[c] = load_w8(w, (size_t)c * k + kk, wt);
        if (pf) {
            KERN_UNROLL
            for (int c = 0; c < C; c++)
                _mm_prefetch((const char *)w + ((size_t)c * k + kk) * esz + pf_dist, _MM_HINT_T1);
        }
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m256 xv = load_x8(x, (size_t)r * k + kk, wt);
            KERN_UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    if (kk < k) {
        __m256 wv[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) wv[c] = load_w8_tail(w, (size_t)c * k + kk, k - kk, wt);
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m256 xv = load_x8_tail(x, (size_t)r * k + kk, k - kk, wt);
            KERN_UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum256_ps(acc[r][c]);
    }
}

/* y (R, C) = x quantized (xq (R, k), xd (R, nb)) . w (C rows of nb blocks)^T, one block per step. */
KERN_AI void tile_quant(float *y, int ldy, const int8_t *xq, const float *xd, const void *w, int k, const int wt,
                        const int R, const int C, int pf)
{
    size_t bsz = wt == DTYPE_Q8_0 ? sizeof(block_q8_0_t) : sizeof(block_q4_0_t);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc[TILE_R][TILE_C];
    int nb = k / DTYPE_QK;
    size_t pf_dist = (size_t)C * nb * bsz; /* bytes to the same place in the next tile */
    KERN_UNROLL
    for (int r = 0; r < TILE_R; r++) {
        KERN_UNROLL
        for (int c = 0; c < TILE_C; c++) acc[r][c] = _mm256_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        __m256i wq[TILE_C], wa[TILE_C];
        __m256 wd[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) {
            if (wt == DTYPE_Q8_0) {
                const block_q8_0_t *p = (const block_q8_0_t *)w + (size_t)c * nb + b;
                wq[c] = _mm256_loadu_si256((const __m256i *)p->qs);
                wa[c] = _mm256_abs_epi8(wq[c]);
                wd[c] = _mm256_set1_ps(_cvtsh_ss(p->d));
            } else {
                const block_q4_0_t *p = (const block_q4_0_t *)w + (size_t)c * nb + b;
                __m128i v = _mm_loadu_si128((const __m128i *)p->qs);
                __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
                wq[c] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1); /* elements 0..31 */
                wd[c] = _mm256_set1_ps(_cvtsh_ss(p->d));
            }
            if (pf) _mm_prefetch((const char *)w + ((size_t)c * nb + b) * bsz + pf_dist, _MM_HINT_T1);
        }
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (size_t)r * k + (size_t)b * DTYPE_QK));
            __m256 xs = _mm256_set1_ps(xd[(size_t)r * nb + b]);
            if (wt == DTYPE_Q8_0) {
                KERN_UNROLL
                for (int c = 0; c < C; c++) {
                    __m256i d16 = _mm256_maddubs_epi16(wa[c], _mm256_sign_epi8(xv, wq[c]));
                    __m256i d32 = _mm256_madd_epi16(d16, ones);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d32), _mm256_mul_ps(wd[c], xs), acc[r][c]);
                }
            } else {
                __m256i x8 = _mm256_maddubs_epi16(eight, xv);
                KERN_UNROLL
                for (int c = 0; c < C; c++) {
                    __m256i d16 = _mm256_sub_epi16(_mm256_maddubs_epi16(wq[c], xv), x8);
                    __m256i d32 = _mm256_madd_epi16(d16, ones);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d32), _mm256_mul_ps(wd[c], xs), acc[r][c]);
                }
            }
        }
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum256_ps(acc[r][c]);
    }
}

KERN_AI void matmul_float(float *y, const void *x, const void *w, const int wt, int m, int n, int k, int j0,
                          int j1)
{
    size_t esz = wt == DTYPE_F32 ? 4 : 2, xsz = wt == DTYPE_BF16 ? 2 : 4;
    DRIVE((size_t)k * xsz, TILE_R, m <= SMALL_M ? 1 : 2,
          tile_float(y + (size_t)i * n + j, n, (const char *)x + (size_t)i * k * xsz,
                     (const char *)w + (size_t)j * k * esz, k, wt, R, C, pf));
}

KERN_AI void matmul_quant(float *y, const int8_t *xqs, const float *xd, const void *w, const int wt, int m, int n,
                          int k, int j0, int j1)
{
    int nb = k / DTYPE_QK;
    size_t bsz = wt == DTYPE_Q8_0 ? sizeof(block_q8_0_t) : sizeof(block_q4_0_t);
    DRIVE((size_t)k + (size_t)nb * sizeof(float), m <= SMALL_M ? 4 : 2, m <= SMALL_M ? 1 : 2,
          tile_quant(y + (size_t)i * n + j, n, xqs + (size_t)i * k, xd + (size_t)i * nb,
                     (const char *)w + (size_t)j * nb * bsz, k, wt, R, C, pf));
}

void kern_avx2_matmul_f32(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_F32, m, n, k, j0, j1);
}

void kern_avx2_matmul_f16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_F16, m, n, k, j0, j1);
}

void kern_avx2_matmul_bf16(float *y, const uint16_t *xb, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, xb, w, DTYPE_BF16, m, n, k, j0, j1);
}

void kern_avx2_matmul_q8_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                           int j0, int j1)
{
    matmul_quant(y, xqs, xd, w, DTYPE_Q8_0, m, n, k, j0, j1);
}

void kern_avx2_matmul_q4_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                           int j0, int j1)
{
    matmul_quant(y, xqs, xd, w, DTYPE_Q4_0, m, n, k, j0, j1);
}

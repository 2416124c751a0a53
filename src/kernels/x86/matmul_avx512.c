/* matmul_avx512.c: AVX-512 matmul kernels, y (m, n) = x (m, k) . W^T, columns [j0, j1).
 *
 * Owns: the register-tiled micro-kernels (up to TILE_R rows of x times TILE_C rows of W, one
 * 16-lane accumulator per output element) and their drivers.
 * Fixed per-element arithmetic (batch invariance): for output (i, j) the accumulator's lane l
 * sums, in k order, the products of elements k = 16 t + l (F32, F16 weights; a masked last step
 * adds zeros), of elements 32 t + 2 l + 1 then 32 t + 2 l (BF16 weights, x rounded to bf16:
 * vdpbf16ps, see tile_bf16) or, for Q8_0/Q4_0, each step's lanes are exact int32 sums over the elements of
 * one block (4 blocks per step, then 2, then 1, see tile_quant), converted to f32 and
 * fused-multiply-added with that block's d_w * d_x; the step sequence depends only on k; then
 * the 16 lanes are summed by hsum512_ps. Which rows and columns share a tile
 * only changes which registers are used, never this sequence, so y[i][j] is bitwise the same
 * for any m, any neighbours and any column range.
 * Quantized x comes from kern_quantize_row_q8 (|q| <= 127, so q + 128 fits in a u8). */
#include "kernels/x86/matmul_avx512.h"

#include <stddef.h>

#include "kernels/x86/matmul_tile.h"
#include "kernels/x86/simd_avx512.h"

/* 16 elements of a float-type weight row, converted to f32. */
KERN_AI __m512 load_w16(const void *w, size_t i, const int wt)
{
    if (wt == DTYPE_F32) return _mm512_loadu_ps((const float *)w + i);
    if (wt == DTYPE_F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i)));
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i))), 16));
}

/* The same for the last partial step: lanes outside mk are 0 (and nothing outside is read). */
KERN_AI __m512 load_w16_mask(const void *w, size_t i, __mmask16 mk, const int wt)
{
    if (wt == DTYPE_F32) return _mm512_maskz_loadu_ps(mk, (const float *)w + i);
    if (wt == DTYPE_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + i));
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + i)), 16));
}

/* y (R, C) with row stride ldy = x (R, k) . w (C, k)^T, float weight type wt. */
KERN_AI void tile_float(float *y, int ldy, const float *x, const void *w, int k, const int wt, const int R,
                        const int C, int pf)
{
    size_t esz = wt == DTYPE_F32 ? 4 : 2, pf_dist = (size_t)C * k * esz; /* bytes to the next tile */
    __m512 acc[TILE_R][TILE_C];
    int kk = 0;
    KERN_UNROLL
    for (int r = 0; r < TILE_R; r++) {
        KERN_UNROLL
        for (int c = 0; c < TILE_C; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (; kk + 16 <= k; kk += 16) {
        __m512 wv[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) wv[c] = load_w16(w, (size_t)c * k + kk, wt);
        if (pf) {
            KERN_UNROLL
            for (int c = 0; c < C; c++)
                _mm_prefetch((const char *)w + ((size_t)c * k + kk) * esz + pf_dist, _MM_HINT_T1);
        }
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)r * k + kk);
            KERN_UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    if (kk < k) {
        __mmask16 mk = (__mmask16)((1u << (k - kk)) - 1);
        __m512 wv[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) wv[c] = load_w16_mask(w, (size_t)c * k + kk, mk, wt);
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m512 xv = _mm512_maskz_loadu_ps(mk, x + (size_t)r * k + kk);
            KERN_UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum512_ps(acc[r][c]);
    }
}

/* y (R, C) with row stride ldy = x (R, k) bf16 . w (C, k) bf16 ^T with vdpbf16ps: per step of
 * 32 elements, lane l adds the product of elements 32 t + 2 l + 1, then of 32 t + 2 l (the
 * instruction's order; each product of two bf16 is exact in f32); the last partial step loads
 * zeros past k. */
KERN_AI void tile_bf16(float *y, int ldy, const uint16_t *x, const uint16_t *w, int k, const int R, const int C,
                       int pf)
{
    size_t pf_dist = (size_t)C * k * 2; /* bytes to the next tile */
    __m512 acc[TILE_R][TILE_C];
    int kk = 0;
    KERN_UNROLL
    for (int r = 0; r < TILE_R; r++) {
        KERN_UNROLL
        for (int c = 0; c < TILE_C; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (; kk + 32 <= k; kk += 32) {
        __m512i wv[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) wv[c] = _mm512_loadu_si512(w + (size_t)c * k + kk);
        if (pf) {
            KERN_UNROLL
            for (int c = 0; c < C; c++) _mm_prefetch((const char *)(w + (size_t)c * k + kk) + pf_dist, _MM_HINT_T1);
        }
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m512i xv = _mm512_loadu_si512(x + (size_t)r * k + kk);
            KERN_UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)xv, (__m512bh)wv[c]);
        }
    }
    if (kk < k) {
        __mmask32 mk = (__mmask32)((1u << (k - kk)) - 1);
        __m512i wv[TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) wv[c] = _mm512_maskz_loadu_epi16(mk, w + (size_t)c * k + kk);
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            __m512i xv = _mm512_maskz_loadu_epi16(mk, x + (size_t)r * k + kk);
            KERN_UNROLL
            for (int c = 0; c < C; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)xv, (__m512bh)wv[c]);
        }
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum512_ps(acc[r][c]);
    }
}

/* [d0 x 8, d1 x 8] from two f16 block scales. */
KERN_AI __m512 scale_pair(uint16_t d0, uint16_t d1, __m512i idx)
{
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | ((uint32_t)d1 << 16))));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(f));
}

/* Weights of blocks b, b + 1 of a Q8_0 row (pair = 0: block b only, upper half zero). */
KERN_AI void load_q8_0(const block_q8_0_t *p, const int pair, __m512i idx, __m512i *q, __m512 *d)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)p[0].qs);
    if (pair) {
        *q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)p[1].qs), 1);
        *d = scale_pair(p[0].d, p[1].d, idx);
    } else {
        *q = _mm512_zextsi256_si512(lo);
        *d = scale_pair(p[0].d, 0, idx);
    }
}

/* Weights of blocks b, b + 1 of a Q4_0 row as u8 0..15, in element order. */
KERN_AI void load_q4_0(const block_q4_0_t *p, const int pair, __m512i idx, __m512i *q, __m512 *d)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i v, lo, hi;
    __m512i z;
    if (pair) {
        v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p[0].qs)),
                                    _mm_loadu_si128((const __m128i *)p[1].qs), 1);
        *d = scale_pair(p[0].d, p[1].d, idx);
    } else {
        v = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)p[0].qs));
        *d = scale_pair(p[0].d, 0, idx);
    }
    lo = _mm256_and_si256(v, m4);                        /* [b0 elems 0..15, b1 elems 0..15] */
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);  /* [b0 elems 16..31, b1 elems 16..31] */
    z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    *q = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)); /* [b0 lo, b0 hi, b1 lo, b1 hi] */
}

/* One step (two blocks, or the last odd block) of a quantized tile. Q8_0: x + 128 (u8) times
 * w (s8), minus 128 * sum(w); Q4_0: w (u8 0..15) times x (s8), minus 8 * sum(x). Both are the
 * exact int32 sum of x * w over each group of 4 elements. */
KERN_AI void tile_quant_step(__m512 acc[TILE_R][TILE_C], const int8_t *xq, const float *xd, const void *w,
                             int k, int nb, int b, const int wt, const int pair, const int R, const int C, int pf)
{
    size_t bsz = wt == DTYPE_Q8_0 ? sizeof(block_q8_0_t) : sizeof(block_q4_0_t);
    size_t pf_dist = (size_t)C * nb * bsz; /* bytes to the same place in the next tile */
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i off = _mm512_set1_epi8((char)0x80);
    const __m512i eight = _mm512_set1_epi8(8);
    __m512i wq[TILE_C], wc[TILE_C];
    __m512 wd[TILE_C];
    KERN_UNROLL
    for (int c = 0; c < C; c++) {
        if (wt == DTYPE_Q8_0) {
            load_q8_0((const block_q8_0_t *)w + (size_t)c * nb + b, pair, idx, &wq[c], &wd[c]);
            wc[c] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, wq[c]));
        } else {
            load_q4_0((const block_q4_0_t *)w + (size_t)c * nb + b, pair, idx, &wq[c], &wd[c]);
        }
        if (pf) _mm_prefetch((const char *)w + ((size_t)c * nb + b) * bsz + pf_dist, _MM_HINT_T1);
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        const int8_t *xr = xq + (size_t)r * k + (size_t)b * DTYPE_QK;
        const float *dr = xd + (size_t)r * nb + b;
        __m512i xv = pair ? _mm512_loadu_si512(xr) : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)xr));
        __m128 ds = pair ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)dr)) : _mm_load_ss(dr);
        __m512 xs = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(ds));
        if (wt == DTYPE_Q8_0) {
            xv = _mm512_xor_si512(xv, off);
            KERN_UNROLL
            for (int c = 0; c < C; c++) {
                __m512i dot = _mm512_dpbusd_epi32(wc[c], xv, wq[c]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd[c], xs), acc[r][c]);
            }
        } else {
            __m512i xc = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, eight, xv));
            KERN_UNROLL
            for (int c = 0; c < C; c++) {
                __m512i dot = _mm512_dpbusd_epi32(xc, wq[c], xv);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd[c], xs), acc[r][c]);
            }
        }
    }
}

/* Four blocks b..b+3 per step. Each block's elements 0..15 go to one zmm and 16..31 to
 * another, in 128-bit lanes [b0, b1, b2, b3] (Q4_0: the low and the high nibbles of the four
 * 16-byte arrays; Q8_0: the two halves of each 32-byte array); x is regrouped the same way
 * and the two halves are chained into one vpdpbusd sum, so lanes 4g..4g+3 hold block b + g:
 * exact int32 sums of x * w over 8 elements each. Corrections as in tile_quant_step. */
KERN_AI void tile_quant_step4(__m512 acc[TILE_R][TILE_C], const int8_t *xq, const float *xd, const void *w, int k,
                              int nb, int b, const int wt, const int R, const int C, int pf)
{
    const __m512i idx4 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i off = _mm512_set1_epi8((char)0x80);
    const __m512i eight = _mm512_set1_epi8(8);
    size_t bsz = wt == DTYPE_Q8_0 ? sizeof(block_q8_0_t) : sizeof(block_q4_0_t);
    size_t pf_dist = (size_t)C * nb * bsz; /* bytes to the same place in the next tile */
    __m512i lo[TILE_C], hi[TILE_C], wc[TILE_C];
    __m512 wd[TILE_C];
    KERN_UNROLL
    for (int c = 0; c < C; c++) {
        const char *p = (const char *)w + ((size_t)c * nb + b) * bsz; /* block b of W row c */
        const size_t qs = wt == DTYPE_Q8_0 ? offsetof(block_q8_0_t, qs) : offsetof(block_q4_0_t, qs);
        __m128i d = _mm_cvtsi32_si128(*(const uint16_t *)p);
        d = _mm_insert_epi16(d, *(const uint16_t *)(p + bsz), 1);
        d = _mm_insert_epi16(d, *(const uint16_t *)(p + 2 * bsz), 2);
        d = _mm_insert_epi16(d, *(const uint16_t *)(p + 3 * bsz), 3);
        wd[c] = _mm512_permutexvar_ps(idx4, _mm512_castps128_ps512(_mm_cvtph_ps(d)));
        lo[c] = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + qs)));
        lo[c] = _mm512_inserti32x4(lo[c], _mm_loadu_si128((const __m128i *)(p + bsz + qs)), 1);
        lo[c] = _mm512_inserti32x4(lo[c], _mm_loadu_si128((const __m128i *)(p + 2 * bsz + qs)), 2);
        lo[c] = _mm512_inserti32x4(lo[c], _mm_loadu_si128((const __m128i *)(p + 3 * bsz + qs)), 3);
        if (wt == DTYPE_Q8_0) {
            hi[c] = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p + qs + 16)));
            hi[c] = _mm512_inserti32x4(hi[c], _mm_loadu_si128((const __m128i *)(p + bsz + qs + 16)), 1);
            hi[c] = _mm512_inserti32x4(hi[c], _mm_loadu_si128((const __m128i *)(p + 2 * bsz + qs + 16)), 2);
            hi[c] = _mm512_inserti32x4(hi[c], _mm_loadu_si128((const __m128i *)(p + 3 * bsz + qs + 16)), 3);
            wc[c] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, off, lo[c]), off, hi[c]));
        } else {
            hi[c] = _mm512_and_si512(_mm512_srli_epi16(lo[c], 4), m4);
            lo[c] = _mm512_and_si512(lo[c], m4);
        }
        if (pf) _mm_prefetch(p + pf_dist, _MM_HINT_T1);
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        const int8_t *xr = xq + (size_t)r * k + (size_t)b * DTYPE_QK;
        __m512i xa = _mm512_loadu_si512(xr), xb = _mm512_loadu_si512(xr + 64);
        __m512i xlo = _mm512_shuffle_i64x2(xa, xb, _MM_SHUFFLE(2, 0, 2, 0));
        __m512i xhi = _mm512_shuffle_i64x2(xa, xb, _MM_SHUFFLE(3, 1, 3, 1));
        __m512 xs = _mm512_permutexvar_ps(idx4, _mm512_castps128_ps512(_mm_loadu_ps(xd + (size_t)r * nb + b)));
        if (wt == DTYPE_Q8_0) {
            xlo = _mm512_xor_si512(xlo, off);
            xhi = _mm512_xor_si512(xhi, off);
            KERN_UNROLL
            for (int c = 0; c < C; c++) {
                __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(wc[c], xlo, lo[c]), xhi, hi[c]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd[c], xs), acc[r][c]);
            }
        } else {
            __m512i xc = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, eight, xlo), eight, xhi));
            KERN_UNROLL
            for (int c = 0; c < C; c++) {
                __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(xc, lo[c], xlo), hi[c], xhi);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd[c], xs), acc[r][c]);
            }
        }
    }
}

/* y (R, C) = x quantized (R rows: xq (R, k), xd (R, nb)) . w (C rows of nb blocks)^T. The step
 * sequence depends only on nb: four blocks at a time while it can, then a pair, then a last
 * single block. */
KERN_AI void tile_quant(float *y, int ldy, const int8_t *xq, const float *xd, const void *w, int k, const int wt,
                        const int R, const int C, int pf)
{
    __m512 acc[TILE_R][TILE_C];
    int nb = k / DTYPE_QK, b = 0;
    KERN_UNROLL
    for (int r = 0; r < TILE_R; r++) {
        KERN_UNROLL
        for (int c = 0; c < TILE_C; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (; b + 4 <= nb; b += 4) tile_quant_step4(acc, xq, xd, w, k, nb, b, wt, R, C, pf);
    for (; b + 2 <= nb; b += 2) tile_quant_step(acc, xq, xd, w, k, nb, b, wt, 1, R, C, pf);
    if (b < nb) tile_quant_step(acc, xq, xd, w, k, nb, b, wt, 0, R, C, pf);
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum512_ps(acc[r][c]);
    }
}

KERN_AI void matmul_float(float *y, const float *x, const void *w, const int wt, int m, int n, int k, int j0,
                          int j1)
{
    size_t esz = wt == DTYPE_F32 ? 4 : 2;
    DRIVE((size_t)k * sizeof(float), TILE_R, m <= SMALL_M ? 1 : TILE_C,
          tile_float(y + (size_t)i * n + j, n, x + (size_t)i * k, (const char *)w + (size_t)j * k * esz, k, wt,
                     R, C, pf));
}

KERN_AI void matmul_quant(float *y, const int8_t *xqs, const float *xd, const void *w, const int wt, int m, int n,
                          int k, int j0, int j1)
{
    int nb = k / DTYPE_QK;
    size_t bsz = wt == DTYPE_Q8_0 ? sizeof(block_q8_0_t) : sizeof(block_q4_0_t);
    DRIVE((size_t)k + (size_t)nb * sizeof(float), TILE_R, m <= SMALL_M ? 1 : 2,
          tile_quant(y + (size_t)i * n + j, n, xqs + (size_t)i * k, xd + (size_t)i * nb,
                     (const char *)w + (size_t)j * nb * bsz, k, wt, R, C, pf));
}

void kern_avx512_matmul_f32(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_F32, m, n, k, j0, j1);
}

void kern_avx512_matmul_f16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_F16, m, n, k, j0, j1);
}

void kern_avx512_matmul_bf16(float *y, const uint16_t *xb, const void *w, int m, int n, int k, int j0, int j1)
{
    DRIVE((size_t)k * 2, TILE_R, m <= SMALL_M ? 1 : TILE_C,
          tile_bf16(y + (size_t)i * n + j, n, xb + (size_t)i * k, (const uint16_t *)w + (size_t)j * k, k, R, C, pf));
}

void kern_avx512_matmul_q8_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                             int j0, int j1)
{
    matmul_quant(y, xqs, xd, w, DTYPE_Q8_0, m, n, k, j0, j1);
}

void kern_avx512_matmul_q4_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                             int j0, int j1)
{
    matmul_quant(y, xqs, xd, w, DTYPE_Q4_0, m, n, k, j0, j1);
}

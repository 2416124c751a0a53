/* matmul_x16_avx512.c: AVX-512 products of Q8_0/Q4_0 weights repacked into the x16 layout
 * (kernels_impl.h), and the AVX-512 preparation of x for every weight type: quantization per
 * block of 32 (plain and x16) and rounding to bf16.
 *
 * Owns: the x16 micro-kernel and its driver, and vector versions of kern_quantize_row_q8,
 * kern_x16_quantize_row and kern_round_row_bf16 that give the same bits as those scalar
 * definitions (same IEEE operations: |x| max, amax / 127, 1 / scale, x * inv, round half away
 * from zero written as trunc + a correction, the same clamps and NaN rule).
 * Fixed per-element arithmetic (batch invariance): for output (i, j), lane l of the
 * accumulator handles blocks l, l + 16, l + 32, ... of the row: per group of 16 blocks, the
 * exact int32 dot of block l (x's correction plus 8 vpdpbusd of 4 products each; integer sums,
 * so how they are chained cannot matter) is converted to f32 and fused-multiply-added with
 * d_w * d_x; groups in order; then the 16 lanes are summed by hsum512_ps. The step sequence
 * depends only on k; which rows and columns share a tile only changes registers. */
#include "kernels/x86/matmul_x16_avx512.h"

#include <math.h>
#include <string.h>

#include "kernels/x86/matmul_tile.h"
#include "kernels/x86/simd_avx512.h"

/* x16 tiles: most rows of x and packed W rows at once (8 W vectors per column live in registers
 * across the rows: 2 columns x 8 + 4 x 2 accumulators + temporaries fit the 32 zmm). */
#define X16_TILE_R 4
#define X16_TILE_C 2

/* y (R, C) with row stride ldy = x16 rows (R, stride xrow bytes) . packed W rows (C, stride wrow
 * bytes)^T over ng groups; wt: Q8_0 (W as q + 128) or Q4_0 (W as nibbles). */
KERN_AI void tile_x16(float *y, int ldy, const uint8_t *xp, size_t xrow, const uint8_t *wp, size_t wrow, int ng,
                      const int wt, const int R, const int C, int pf)
{
    const size_t gbytes = wt == DTYPE_Q8_0 ? 544 : 288;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[X16_TILE_R][X16_TILE_C];
    KERN_UNROLL
    for (int r = 0; r < X16_TILE_R; r++) {
        KERN_UNROLL
        for (int c = 0; c < X16_TILE_C; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (int g = 0; g < ng; g++) {
        __m512i wv[X16_TILE_C][8];
        __m512 dw[X16_TILE_C];
        KERN_UNROLL
        for (int c = 0; c < C; c++) {
            const uint8_t *wg = wp + (size_t)c * wrow + (size_t)g * gbytes; /* group g of W row c */
            dw[c] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)wg));
            if (wt == DTYPE_Q8_0) {
                KERN_UNROLL8
                for (int j = 0; j < 8; j++) wv[c][j] = _mm512_loadu_si512(wg + 32 + 64 * j);
            } else {
                KERN_UNROLL
                for (int p = 0; p < 4; p++) {
                    __m512i v = _mm512_loadu_si512(wg + 32 + 64 * p);
                    wv[c][p] = _mm512_and_si512(v, m4);
                    wv[c][p + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
            }
            if (pf) {
                const char *next = (const char *)wg + (size_t)C * wrow; /* same group, next tile */
                for (size_t o = 0; o < gbytes; o += 64) _mm_prefetch(next + o, _MM_HINT_T1);
            }
        }
        KERN_UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *xg = xp + (size_t)r * xrow + (size_t)g * KERN_X16_XBYTES; /* group g of x row r */
            __m512 dx = _mm512_load_ps((const float *)(xg + 512));
            __m512i corr = _mm512_load_si512(xg + 576);
            __m512i acc_a[X16_TILE_C], acc_b[X16_TILE_C];
            KERN_UNROLL
            for (int c = 0; c < C; c++) {
                acc_a[c] = corr;
                acc_b[c] = _mm512_setzero_si512();
            }
            KERN_UNROLL8
            for (int j = 0; j < 8; j++) {
                __m512i xv = _mm512_load_si512(xg + 64 * j);
                KERN_UNROLL
                for (int c = 0; c < C; c++) {
                    /* one column: two independent chains hide the instruction's latency */
                    if (C == 1 && (j & 1)) acc_b[c] = _mm512_dpbusd_epi32(acc_b[c], wv[c][j], xv);
                    else acc_a[c] = _mm512_dpbusd_epi32(acc_a[c], wv[c][j], xv);
                }
            }
            KERN_UNROLL
            for (int c = 0; c < C; c++) {
                __m512i dot = C == 1 ? _mm512_add_epi32(acc_a[c], acc_b[c]) : acc_a[c];
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[c], dx), acc[r][c]);
            }
        }
    }
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum512_ps(acc[r][c]);
    }
}

/* Shapes of (R, C) with R <= 4, C <= 2, as compile-time constants. */
#define X16_SWITCH(rr, cc, EXPR)                                      \
    switch ((rr) * 8 + (cc)) {                                        \
    case 1 * 8 + 1: { const int R = 1, C = 1; EXPR; } break;          \
    case 1 * 8 + 2: { const int R = 1, C = 2; EXPR; } break;          \
    case 2 * 8 + 1: { const int R = 2, C = 1; EXPR; } break;          \
    case 2 * 8 + 2: { const int R = 2, C = 2; EXPR; } break;          \
    case 3 * 8 + 1: { const int R = 3, C = 1; EXPR; } break;          \
    case 3 * 8 + 2: { const int R = 3, C = 2; EXPR; } break;          \
    case 4 * 8 + 1: { const int R = 4, C = 1; EXPR; } break;          \
    case 4 * 8 + 2: { const int R = 4, C = 2; EXPR; } break;          \
    default: break;                                                   \
    }

/* The loop nest over y (m, n) columns [j0, j1): x rows in blocks that fit L2; inside, W in
 * tiles of tc packed rows, and for each, x rows in groups of X16_TILE_R. For m <= SMALL_M, W is
 * walked one row at a time (one sequential stream, see matmul_tile.h). */
KERN_AI void matmul_x16(float *y, const void *xp, const void *wp, const int wt, int m, int n, int k, int j0, int j1)
{
    int ng = kern_x16_groups(k), tc = m <= SMALL_M ? 1 : X16_TILE_C;
    size_t xrow = (size_t)ng * KERN_X16_XBYTES, wrow = (size_t)ng * (wt == DTYPE_Q8_0 ? 544 : 288);
    int mb = (int)(X_BLOCK_BYTES / xrow);
    mb = mb < X16_TILE_R ? X16_TILE_R : mb / X16_TILE_R * X16_TILE_R;
    for (int i0 = 0; i0 < m; i0 += mb) {
        int i1 = m - i0 < mb ? m : i0 + mb;
        for (int j = j0; j < j1; j += tc) {
            int cc = j1 - j < tc ? j1 - j : tc;
            for (int i = i0; i < i1; i += X16_TILE_R) {
                int rr = i1 - i < X16_TILE_R ? i1 - i : X16_TILE_R, pf = i == i0 && cc > 1;
                X16_SWITCH(rr, cc,
                           tile_x16(y + (size_t)i * n + j, n, (const uint8_t *)xp + (size_t)i * xrow, xrow,
                                    (const uint8_t *)wp + (size_t)j * wrow, wrow, ng, wt, R, C, pf));
            }
        }
    }
}

void kern_avx512_matmul_q8_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1)
{
    matmul_x16(y, xp, wp, DTYPE_Q8_0, m, n, k, j0, j1);
}

void kern_avx512_matmul_q4_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1)
{
    matmul_x16(y, xp, wp, DTYPE_Q4_0, m, n, k, j0, j1);
}

/* ---- preparation of x ---- */

/* One block of 32 values quantized as kern_quantize_row_q8 does: q (32 int32 in two vectors,
 * |q| <= 127) and the scale (NaN, with q = 0, when the block holds a non-finite value). */
KERN_AI float quantize_block(const float *xb, __m512i *q0, __m512i *q1)
{
    const __m512 big = _mm512_set1_ps(3.402823466e38f), half = _mm512_set1_ps(0.5f);
    const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    __m512 x[2] = { _mm512_loadu_ps(xb), _mm512_loadu_ps(xb + 16) };
    __m512 a0 = _mm512_abs_ps(x[0]), a1 = _mm512_abs_ps(x[1]);
    __mmask16 fin = _mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ);
    float amax, scale, inv;
    __m512 vinv;
    __m512i q[2];
    if (fin != 0xffff) {
        *q0 = *q1 = _mm512_setzero_si512();
        return NAN;
    }
    amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    scale = amax / 127.0f;
    inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    vinv = _mm512_set1_ps(inv);
    for (int h = 0; h < 2; h++) {
        __m512 v = _mm512_mul_ps(x[h], vinv);
        __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        /* roundf: away from zero when the dropped fraction (exact: v - trunc(v)) is >= 1/2 */
        __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
        __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
        t = _mm512_mask_add_ps(t, up, t, one);
        /* clamps as the reference: > 127, < -127, NaN (0 * inf) -> 0 */
        t = _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(t, lim, _CMP_GT_OQ), lim);
        t = _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(t, nlim, _CMP_LT_OQ), nlim);
        t = _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q), _mm512_setzero_ps());
        q[h] = _mm512_cvtps_epi32(t);
    }
    *q0 = q[0];
    *q1 = q[1];
    return scale;
}

void kern_avx512_quantize_row_q8(int8_t *qs, float *d, const float *x, int k)
{
    for (int b = 0; b < k / DTYPE_QK; b++) {
        __m512i q0, q1;
        d[b] = quantize_block(x + (size_t)b * DTYPE_QK, &q0, &q1);
        _mm_storeu_si128((__m128i *)(qs + (size_t)b * DTYPE_QK), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qs + (size_t)b * DTYPE_QK + 16), _mm512_cvtepi32_epi8(q1));
    }
}

void kern_avx512_x16_quantize_row(void *xp, const float *x, int k, dtype_t t)
{
    int nb = k / DTYPE_QK, ng = kern_x16_groups(k);
    int32_t mul = t == DTYPE_Q8_0 ? -128 : -8;
    for (int g = 0; g < ng; g++) {
        uint8_t *grp = (uint8_t *)xp + (size_t)g * KERN_X16_XBYTES;
        _Alignas(64) int8_t q[KERN_X16_GROUP][DTYPE_QK];
        _Alignas(64) float dg[KERN_X16_GROUP];
        _Alignas(64) int32_t corr[KERN_X16_GROUP];
        for (int l = 0; l < KERN_X16_GROUP; l++) {
            int b = g * KERN_X16_GROUP + l;
            __m512i q0, q1;
            if (b >= nb) {
                memset(q[l], 0, DTYPE_QK);
                dg[l] = 0.0f;
                corr[l] = 0;
                continue;
            }
            dg[l] = quantize_block(x + (size_t)b * DTYPE_QK, &q0, &q1);
            corr[l] = mul * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            _mm_store_si128((__m128i *)q[l], _mm512_cvtepi32_epi8(q0));
            _mm_store_si128((__m128i *)(q[l] + 16), _mm512_cvtepi32_epi8(q1));
        }
        /* dword j of block l (elements 4j..4j+3) goes to lane l of vector j */
        for (int j = 0; j < 8; j++) {
            const __m512i idx = _mm512_set_epi32(15 * 8, 14 * 8, 13 * 8, 12 * 8, 11 * 8, 10 * 8, 9 * 8, 8 * 8, 7 * 8,
                                                 6 * 8, 5 * 8, 4 * 8, 3 * 8, 2 * 8, 1 * 8, 0);
            __m512i v = _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(j)), (const void *)q, 4);
            _mm512_store_si512(grp + 64 * j, v);
        }
        memcpy(grp + 512, dg, sizeof(dg));
        memcpy(grp + 576, corr, sizeof(corr));
    }
}

/* f32 -> bf16 as f32_to_bf16: round to nearest even on the bits; NaN -> quiet NaN. */
KERN_AI __m256i round_bf16_16(__m512 x)
{
    __m512i b = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_epu32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000), _MM_CMPINT_NLE);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(64)));
    return _mm512_cvtepi32_epi16(r);
}

void kern_avx512_round_row_bf16(uint16_t *xb, const float *x, int k)
{
    int i = 0;
    for (; i + 16 <= k; i += 16) _mm256_storeu_si256((__m256i *)(xb + i), round_bf16_16(_mm512_loadu_ps(x + i)));
    if (i < k) {
        __mmask16 mk = (__mmask16)((1u << (k - i)) - 1);
        _mm256_mask_storeu_epi16(xb + i, mk, round_bf16_16(_mm512_maskz_loadu_ps(mk, x + i)));
    }
}

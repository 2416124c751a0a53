/* matmul_avx512.c: AVX-512 matmul kernels, y (m, n) = x (m, k) . W^T, columns [j0, j1).
 *
 * Owns: the register-tiled micro-kernels (up to TILE_R rows of x times TILE_C rows of W, one
 * 16-lane accumulator per output element) and their drivers.
 * Fixed per-element arithmetic (batch invariance): for output (i, j) the accumulator's lane l
 * sums, in k order, the products of elements k = 16 t + l (float weights; a masked last step
 * adds zeros) or, for Q8_0/Q4_0, lane l of block pair t is an exact int32 sum of 4 products,
 * converted to f32 and fused-multiply-added with d_w * d_x (an odd last block pairs with a
 * zero block); then the 16 lanes are summed by hsum512_ps. Which rows and columns share a tile
 * only changes which registers are used, never this sequence, so y[i][j] is bitwise the same
 * for any m, any neighbours and any column range.
 * Quantized x comes from kern_quantize_row_q8 (|q| <= 127, so q + 128 fits in a u8). */
#include "kernels/x86/matmul_avx512.h"

#include "kernels/x86/simd_avx512.h"

/* Fully unrolls the loops over the rows and columns of a tile, so that the accumulators live
 * in registers (gcc -O2 does not unroll them by itself). */
#if defined(__clang__)
#define KERN_UNROLL _Pragma("unroll")
#else
#define KERN_UNROLL _Pragma("GCC unroll 4")
#endif
#define TILE_R 4
#define TILE_C 4
/* x rows processed per pass over a tile column of W: about this many bytes of x, so they stay
 * in L2 while every W tile streams past them once. */
#define X_BLOCK_BYTES (256 * 1024)
/* Up to this many rows of x (decode), W is walked one row at a time: a single sequential
 * stream, which the hardware prefetcher follows at full memory bandwidth (tiles of several W
 * rows interleave several short streams and run at about half of it). */
#define SMALL_M 4

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

/* y (R, C) = x quantized (R rows: xq (R, k), xd (R, nb)) . w (C rows of nb blocks)^T. */
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
    for (; b + 2 <= nb; b += 2) tile_quant_step(acc, xq, xd, w, k, nb, b, wt, 1, R, C, pf);
    if (b < nb) tile_quant_step(acc, xq, xd, w, k, nb, b, wt, 0, R, C, pf);
    KERN_UNROLL
    for (int r = 0; r < R; r++) {
        KERN_UNROLL
        for (int c = 0; c < C; c++) y[(size_t)r * ldy + c] = hsum512_ps(acc[r][c]);
    }
}

/* Expands to a switch calling EXPR with compile-time R (1..4) and C (1..4). */
#define TILE_SWITCH(rr, cc, EXPR)                                     \
    switch ((rr) * 8 + (cc)) {                                        \
    case 1 * 8 + 1: { const int R = 1, C = 1; EXPR; } break;          \
    case 1 * 8 + 2: { const int R = 1, C = 2; EXPR; } break;          \
    case 1 * 8 + 3: { const int R = 1, C = 3; EXPR; } break;          \
    case 1 * 8 + 4: { const int R = 1, C = 4; EXPR; } break;          \
    case 2 * 8 + 1: { const int R = 2, C = 1; EXPR; } break;          \
    case 2 * 8 + 2: { const int R = 2, C = 2; EXPR; } break;          \
    case 2 * 8 + 3: { const int R = 2, C = 3; EXPR; } break;          \
    case 2 * 8 + 4: { const int R = 2, C = 4; EXPR; } break;          \
    case 3 * 8 + 1: { const int R = 3, C = 1; EXPR; } break;          \
    case 3 * 8 + 2: { const int R = 3, C = 2; EXPR; } break;          \
    case 3 * 8 + 3: { const int R = 3, C = 3; EXPR; } break;          \
    case 3 * 8 + 4: { const int R = 3, C = 4; EXPR; } break;          \
    case 4 * 8 + 1: { const int R = 4, C = 1; EXPR; } break;          \
    case 4 * 8 + 2: { const int R = 4, C = 2; EXPR; } break;          \
    case 4 * 8 + 3: { const int R = 4, C = 3; EXPR; } break;          \
    case 4 * 8 + 4: { const int R = 4, C = 4; EXPR; } break;          \
    default: break;                                                   \
    }

/* Loop nest shared by all types: x in blocks of rows that fit L2; inside, W in tiles of tc
 * columns, and for each, x rows in groups of TILE_R. tc is smaller when a full tile would not
 * fit the registers (quantized weights with several rows). */
#define DRIVE(row_bytes, tc, CALL)                                                      \
    do {                                                                                \
        int mb_ = (int)(X_BLOCK_BYTES / (row_bytes));                                   \
        mb_ = mb_ < TILE_R ? TILE_R : mb_ / TILE_R * TILE_R;                            \
        for (int i0 = 0; i0 < m; i0 += mb_) {                                           \
            int i1 = m - i0 < mb_ ? m : i0 + mb_;                                       \
            for (int j = j0; j < j1; j += (tc)) {                                       \
                int cc = j1 - j < (tc) ? j1 - j : (tc);                                 \
                for (int i = i0; i < i1; i += TILE_R) {                                 \
                    int rr = i1 - i < TILE_R ? i1 - i : TILE_R;                         \
                    TILE_SWITCH(rr, cc, CALL);                                          \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    } while (0)

KERN_AI void matmul_float(float *y, const float *x, const void *w, const int wt, int m, int n, int k, int j0,
                          int j1)
{
    size_t esz = wt == DTYPE_F32 ? 4 : 2;
    DRIVE((size_t)k * sizeof(float), m <= SMALL_M ? 1 : TILE_C,
          tile_float(y + (size_t)i * n + j, n, x + (size_t)i * k, (const char *)w + (size_t)j * k * esz, k, wt,
                     R, C, i == i0));
}

KERN_AI void matmul_quant(float *y, const int8_t *xqs, const float *xd, const void *w, const int wt, int m, int n,
                          int k, int j0, int j1)
{
    int nb = k / DTYPE_QK;
    size_t bsz = wt == DTYPE_Q8_0 ? sizeof(block_q8_0_t) : sizeof(block_q4_0_t);
    int tc = m <= SMALL_M ? 1 : 2;
    DRIVE((size_t)k + (size_t)nb * sizeof(float), tc,
          tile_quant(y + (size_t)i * n + j, n, xqs + (size_t)i * k, xd + (size_t)i * nb,
                     (const char *)w + (size_t)j * nb * bsz, k, wt, R, C, i == i0));
}

void kern_avx512_matmul_f32(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_F32, m, n, k, j0, j1);
}

void kern_avx512_matmul_f16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_F16, m, n, k, j0, j1);
}

void kern_avx512_matmul_bf16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    matmul_float(y, x, w, DTYPE_BF16, m, n, k, j0, j1);
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

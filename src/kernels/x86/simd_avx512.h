/* simd_avx512.h: small AVX-512 helpers shared by the *_avx512.c kernel files.
 *
 * Owns: the fixed horizontal reduction of 16 lanes (always the same tree, so a sum does not
 * depend on the compiler's choice of reduction) and a vectorized expf.
 * Include only from files compiled with the AVX-512 flags (see CMakeLists.txt). Everything
 * here is static inline: a non-static inline compiled with AVX-512 flags could be merged by
 * the linker into code that runs on older CPUs. */
#ifndef CLLM_KERNELS_X86_SIMD_AVX512_H
#define CLLM_KERNELS_X86_SIMD_AVX512_H

#include <immintrin.h>

#define KERN_AI static inline __attribute__((always_inline))

/* Sum of the 16 lanes: halves added pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1). */
KERN_AI float hsum512_ps(__m512 v)
{
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

/* exp(x) per lane, within about 2 ulp of expf for x in [-87.3, 88.3]; 0 below (where expf is
 * subnormal or 0), about 2.2e38 above 88.3 (expf: up to FLT_MAX, then inf); nan stays nan.
 * exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two so that n * hi
 * is exact), |r| <= ln(2) / 2, exp(r) by its Taylor series to r^7 (truncation < 1e-8). */
KERN_AI __m512 exp512_ps(__m512 x)
{
    const __m512 hi_x = _mm512_set1_ps(88.3f);
    const __m512 lo_x = _mm512_set1_ps(-87.3365447f);
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440054690583e-4f);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo_x, _CMP_LT_OQ);
    __m512 n, r, p;
    x = _mm512_min_ps(hi_x, x); /* second operand returned for nan: keeps nan */
    n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_scalef_ps(p, n));
}

#endif

/* simd_avx2.h: small AVX2 helpers shared by the *_avx2.c kernel files.
 *
 * Owns: the fixed horizontal reduction of 8 lanes, a vectorized expf, and lane masks for
 * partial vectors. Include only from files compiled with the AVX2 flags (see CMakeLists.txt).
 * Everything is static inline (see simd_avx512.h for why). */
#ifndef CLLM_KERNELS_X86_SIMD_AVX2_H
#define CLLM_KERNELS_X86_SIMD_AVX2_H

#include <stdint.h>

#include <immintrin.h>

#define KERN_AI static inline __attribute__((always_inline))

/* Sum of the 8 lanes: halves added pairwise (4 + 4, 2 + 2, 1 + 1). */
KERN_AI float hsum256_ps(__m256 v)
{
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

/* A mask selecting the first n lanes (0 <= n <= 8), for maskload/maskstore. */
KERN_AI __m256i lane_mask256(int n)
{
    static const int32_t tab[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
    return _mm256_loadu_si256((const __m256i *)(tab + 8 - n));
}

/* exp(x) per lane; same method, range and accuracy as exp512_ps in simd_avx512.h. 2^n is built
 * in the exponent field: with x clamped to 88.3 and inputs below -87.34 zeroed, n stays within
 * [-126, 127]. */
KERN_AI __m256 exp256_ps(__m256 x)
{
    const __m256 hi_x = _mm256_set1_ps(88.3f);
    const __m256 lo_x = _mm256_set1_ps(-87.3365447f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
    const __m256 ln2_lo = _mm256_set1_ps(-2.12194440054690583e-4f);
    __m256 under = _mm256_cmp_ps(x, lo_x, _CMP_LT_OQ);
    __m256 n, r, p, pow2n;
    x = _mm256_min_ps(hi_x, x); /* second operand returned for nan: keeps nan */
    x = _mm256_max_ps(_mm256_set1_ps(-88.0f), x); /* keeps n in range; those lanes are zeroed */
    n = _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, ln2_hi, x);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    pow2n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, pow2n));
}

#endif

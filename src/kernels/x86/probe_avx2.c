/* probe_avx2.c: AVX2 machine-ceiling probes for rooflines (see kern_peak_run and
 * kern_read_sum in kernels.h).
 *
 * Owns: register-only loops of the instructions the AVX2 matmul kernels use (vfmadd231ps on
 * ymm; for int8, the vpmaddubsw + vpmaddwd + vpaddd chain that does 32 multiply-adds, one
 * operand made loop-dependent by a vpxor so that the product cannot be hoisted; no bf16
 * instruction at this level) and a streaming read loop. Results go to a volatile sink. */
#include "kernels/x86/probe_avx2.h"

#include "kernels/x86/simd_avx2.h"

#define PROBE_ACC 12

/* Fully unrolled loops over the accumulators, so that they live in registers. */
#if defined(__clang__)
#define PROBE_UNROLL _Pragma("clang loop unroll(full)")
#else
#define PROBE_UNROLL _Pragma("GCC unroll 16")
#endif

static volatile float probe_sink_f;
static volatile int probe_sink_i;

#define OPAQUE(v) __asm__ volatile("" : "+x"(v))

static double peak_fma(int64_t n_iter)
{
    __m256 a[PROBE_ACC], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f), s;
    for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm256_set1_ps((float)i);
    OPAQUE(m);
    for (int64_t it = 0; it < n_iter; it++) {
        PROBE_UNROLL
        for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
    s = a[0];
    for (int i = 1; i < PROBE_ACC; i++) s = _mm256_add_ps(s, a[i]);
    probe_sink_f = hsum256_ps(s);
    return (double)n_iter * PROBE_ACC * 8 * 2;
}

static double peak_int8(int64_t n_iter)
{
    __m256i a[PROBE_ACC], s;
    __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-5), ones = _mm256_set1_epi16(1);
    for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm256_set1_epi32(i);
    OPAQUE(x);
    OPAQUE(y);
    for (int64_t it = 0; it < n_iter; it++) {
        PROBE_UNROLL
        for (int i = 0; i < PROBE_ACC; i++)
            a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x, _mm256_xor_si256(a[i], y)), ones));
    }
    s = a[0];
    for (int i = 1; i < PROBE_ACC; i++) s = _mm256_add_epi32(s, a[i]);
    {
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
        probe_sink_i = _mm_cvtsi128_si32(t);
    }
    return (double)n_iter * PROBE_ACC * 32 * 2;
}

double kern_avx2_peak_run(int kind, int64_t n_iter)
{
    switch (kind) {
    case 0: return peak_fma(n_iter);
    case 2: return peak_int8(n_iter);
    default: return 0.0;
    }
}

uint64_t kern_avx2_read_sum(const void *p, size_t n)
{
    const char *b = p;
    __m256i s[8], t;
    size_t i = 0;
    for (int u = 0; u < 8; u++) s[u] = _mm256_setzero_si256();
    for (; i + 256 <= n; i += 256) {
        PROBE_UNROLL
        for (int u = 0; u < 8; u++) s[u] = _mm256_add_epi64(s[u], _mm256_load_si256((const __m256i *)(b + i + 32 * u)));
    }
    for (; i + 32 <= n; i += 32) s[0] = _mm256_add_epi64(s[0], _mm256_load_si256((const __m256i *)(b + i)));
    for (int u = 1; u < 8; u++) s[0] = _mm256_add_epi64(s[0], s[u]);
    t = _mm256_add_epi64(s[0], _mm256_permute4x64_epi64(s[0], 0x4e));
    return (uint64_t)_mm256_extract_epi64(t, 0) + (uint64_t)_mm256_extract_epi64(t, 1);
}

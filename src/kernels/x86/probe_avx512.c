/* probe_avx512.c: AVX-512 machine-ceiling probes for rooflines (see kern_peak_run and
 * kern_read_sum in kernels.h).
 *
 * Owns: register-only loops of the instructions the AVX-512 matmul kernels spend their time in
 * (vfmadd231ps, vdpbf16ps, vpdpbusd on zmm; 12 independent accumulators, more than latency x
 * throughput needs on any current core) and a streaming read loop (64-byte loads into 8
 * independent 64-bit sums). Nothing here touches memory except kern_avx512_read_sum's input;
 * the loops' results are returned or folded into a volatile sink so that they cannot be removed. */
#include "kernels/x86/probe_avx512.h"

#include "kernels/x86/simd_avx512.h"

#define PROBE_ACC 12

/* Fully unrolled loops over the accumulators, so that they live in registers. */
#if defined(__clang__)
#define PROBE_UNROLL _Pragma("clang loop unroll(full)")
#else
#define PROBE_UNROLL _Pragma("GCC unroll 16")
#endif

static volatile float probe_sink_f;
static volatile int probe_sink_i;

/* An opaque copy: the compiler may not assume anything about v, so the loop body stays. */
#define OPAQUE(v) __asm__ volatile("" : "+v"(v))

static double peak_fma(int64_t n_iter)
{
    __m512 a[PROBE_ACC], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f), s;
    for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm512_set1_ps((float)i);
    OPAQUE(m);
    for (int64_t it = 0; it < n_iter; it++) {
        PROBE_UNROLL
        for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    s = a[0];
    for (int i = 1; i < PROBE_ACC; i++) s = _mm512_add_ps(s, a[i]);
    probe_sink_f = hsum512_ps(s);
    return (double)n_iter * PROBE_ACC * 16 * 2;
}

static double peak_bf16(int64_t n_iter)
{
    __m512 a[PROBE_ACC], s;
    __m512i x = _mm512_set1_epi16(0x3f80), y = _mm512_set1_epi16(0x3c00); /* bf16 1.0, 0.0078 */
    for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm512_set1_ps((float)i);
    OPAQUE(x);
    OPAQUE(y);
    for (int64_t it = 0; it < n_iter; it++) {
        PROBE_UNROLL
        for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm512_dpbf16_ps(a[i], (__m512bh)x, (__m512bh)y);
    }
    s = a[0];
    for (int i = 1; i < PROBE_ACC; i++) s = _mm512_add_ps(s, a[i]);
    probe_sink_f = hsum512_ps(s);
    return (double)n_iter * PROBE_ACC * 32 * 2;
}

static double peak_int8(int64_t n_iter)
{
    __m512i a[PROBE_ACC], s;
    __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-5);
    for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm512_set1_epi32(i);
    OPAQUE(x);
    OPAQUE(y);
    for (int64_t it = 0; it < n_iter; it++) {
        PROBE_UNROLL
        for (int i = 0; i < PROBE_ACC; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
    }
    s = a[0];
    for (int i = 1; i < PROBE_ACC; i++) s = _mm512_add_epi32(s, a[i]);
    {
        /* summed as unsigned (wrapping): gcc's _mm512_reduce_add_epi32 adds signed ints in C,
         * which overflows (UB) after many iterations */
        uint32_t lane[16], sum = 0;
        _mm512_storeu_si512((void *)lane, s);
        for (int i = 0; i < 16; i++) sum += lane[i];
        probe_sink_i = (int32_t)(sum & 0x7fffffffu);
    }
    return (double)n_iter * PROBE_ACC * 64 * 2;
}

double kern_avx512_peak_run(int kind, int64_t n_iter)
{
    switch (kind) {
    case 0: return peak_fma(n_iter);
    case 1: return peak_bf16(n_iter);
    case 2: return peak_int8(n_iter);
    default: return 0.0;
    }
}

uint64_t kern_avx512_read_sum(const void *p, size_t n)
{
    const char *b = p;
    __m512i s[8];
    size_t i = 0;
    for (int u = 0; u < 8; u++) s[u] = _mm512_setzero_si512();
    for (; i + 512 <= n; i += 512) {
        PROBE_UNROLL
        for (int u = 0; u < 8; u++) s[u] = _mm512_add_epi64(s[u], _mm512_load_si512((const void *)(b + i + 64 * u)));
    }
    for (; i + 64 <= n; i += 64) s[0] = _mm512_add_epi64(s[0], _mm512_load_si512((const void *)(b + i)));
    for (int u = 1; u < 8; u++) s[0] = _mm512_add_epi64(s[0], s[u]);
    {
        /* lanes summed as unsigned (wrapping) integers: gcc's _mm512_reduce_add_epi64 adds them
         * as signed long long in C, which overflows (UB) on arbitrary data */
        uint64_t lane[8], sum = 0;
        _mm512_storeu_si512((void *)lane, s[0]);
        for (int u = 0; u < 8; u++) sum += lane[u];
        return sum;
    }
}

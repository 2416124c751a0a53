/* bench_stats.c: seeded random numbers, Poisson arrivals and sample summaries for the serving
 * benchmark (see bench_stats.h for the percentile definition). Pure functions of their
 * inputs: no global state, no I/O. */
#include "benchmark/bench_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void bench_rng_seed(bench_rng_t *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

uint64_t bench_rng_next(bench_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double bench_rng_uniform(bench_rng_t *rng)
{
    return (double)(bench_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t bench_rng_below(bench_rng_t *rng, uint64_t n)
{
    /* reject the top partial range so every residue is equally likely */
    uint64_t limit, x;
    if (n <= 1) return 0;
    limit = UINT64_MAX - UINT64_MAX % n;
    do {
        x = bench_rng_next(rng);
    } while (x >= limit);
    return x % n;
}

double bench_rng_exponential(bench_rng_t *rng, double rate)
{
    /* 1 - u is in (0, 1], so the log is finite */
    return -log(1.0 - bench_rng_uniform(rng)) / rate;
}

void bench_rng_shuffle(bench_rng_t *rng, int32_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)bench_rng_below(rng, i);
        int32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

void bench_stats_arrivals(uint64_t seed, double rate, double *times, size_t n)
{
    bench_rng_t rng;
    double t = 0.0;
    if (!(rate > 0.0) || isinf(rate)) {
        for (size_t i = 0; i < n; i++) times[i] = 0.0;
        return;
    }
    /* a stream of its own, so arrivals do not depend on how many prompts the dataset drew */
    bench_rng_seed(&rng, seed ^ 0xA55A5AA5C3C3F00Full);
    for (size_t i = 0; i < n; i++) {
        t += bench_rng_exponential(&rng, rate);
        times[i] = t;
    }
}

double bench_stats_percentile(const double *sorted, size_t n, double p)
{
    double rank, frac;
    size_t lo;
    if (n == 0 || !(p >= 0.0 && p <= 100.0)) return NAN;
    rank = p / 100.0 * (double)(n - 1);
    lo = (size_t)floor(rank);
    if (lo >= n - 1) return sorted[n - 1];
    frac = rank - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_stats_sort(double *values, size_t n)
{
    qsort(values, n, sizeof(double), cmp_double);
}

status_t bench_stats_summarize(const double *values, size_t n, double scale, bench_summary_t *out)
{
    double *v, sum = 0.0, sq = 0.0;
    size_t m = 0;

    out->n = 0;
    out->mean = out->std = out->min = out->max = out->median = out->p90 = out->p99 = NAN;
    if (n == 0) return CLLM_OK;
    v = malloc(n * sizeof(double));
    if (!v) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory summarizing %zu values", n);
    for (size_t i = 0; i < n; i++)
        if (!isnan(values[i])) v[m++] = values[i] * scale;
    if (m > 0) {
        bench_stats_sort(v, m);
        for (size_t i = 0; i < m; i++) sum += v[i];
        out->mean = sum / (double)m;
        for (size_t i = 0; i < m; i++) sq += (v[i] - out->mean) * (v[i] - out->mean);
        out->std = sqrt(sq / (double)m);
        out->min = v[0];
        out->max = v[m - 1];
        out->median = bench_stats_percentile(v, m, 50.0);
        out->p90 = bench_stats_percentile(v, m, 90.0);
        out->p99 = bench_stats_percentile(v, m, 99.0);
        out->n = m;
    }
    free(v);
    return CLLM_OK;
}

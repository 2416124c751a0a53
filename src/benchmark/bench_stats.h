/* bench_stats.h: the numbers of the serving benchmark: a seeded random generator, Poisson
 * arrival times, and summaries (mean, std, min, max, percentiles) of latency samples.
 *
 * Percentiles use linear interpolation between the two nearest ranks, as numpy's default
 * (np.percentile, method "linear", which vLLM's benchmark uses): for n sorted values and
 * percentile p, rank = p / 100 * (n - 1), and the result is v[floor(rank)] plus the fraction
 * of the way to v[floor(rank) + 1]. So the median of {1, 2, 3, 4} is 2.5 and p90 of 1..10 is
 * 9.1. The std is the population standard deviation (numpy's default ddof 0).
 *
 * The generator is deterministic for a seed (the same seed gives the same workload on any
 * machine); it is splitmix64 feeding xoshiro256**, written here from their published
 * descriptions. No global state: each caller owns its bench_rng_t. */
#ifndef CLLM_BENCHMARK_BENCH_STATS_H
#define CLLM_BENCHMARK_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

typedef struct {
    uint64_t s[4];
} bench_rng_t;

void bench_rng_seed(bench_rng_t *rng, uint64_t seed);
uint64_t bench_rng_next(bench_rng_t *rng);
/* Uniform in [0, 1) with 53 random bits. */
double bench_rng_uniform(bench_rng_t *rng);
/* Uniform integer in [0, n) (n > 0), without modulo bias. */
uint64_t bench_rng_below(bench_rng_t *rng, uint64_t n);
/* Exponentially distributed with the given rate (> 0): mean 1 / rate. */
double bench_rng_exponential(bench_rng_t *rng, double rate);
/* Fisher-Yates shuffle of n indices. */
void bench_rng_shuffle(bench_rng_t *rng, int32_t *idx, size_t n);

/* Arrival times (seconds from the start) of n requests: a Poisson process of `rate` requests
 * per second (exponential gaps, first arrival after the first gap), or all at 0 when rate is
 * not finite or <= 0 ("inf": send as fast as the concurrency limit allows).
 * times: (n,) written in nondecreasing order. */
void bench_stats_arrivals(uint64_t seed, double rate, double *times, size_t n);

/* Summary of a sample. Every field is NaN when n == 0. */
typedef struct {
    size_t n;
    double mean, std, min, max;
    double median, p90, p99;
} bench_summary_t;

/* Percentile p in [0, 100] of n >= 1 sorted values (linear interpolation, see above).
 * sorted: (n,) ascending. Returns NaN for n == 0 or p outside [0, 100]. */
double bench_stats_percentile(const double *sorted, size_t n, double p);

/* Sorts n values ascending in place. values: (n,). */
void bench_stats_sort(double *values, size_t n);

/* Summarizes n values (any order; the input is not modified) scaled by `scale` (e.g. 1000 to
 * turn seconds into milliseconds). NaN values are skipped. values: (n,).
 * Errors: CLLM_ERR_NOMEM. */
status_t bench_stats_summarize(const double *values, size_t n, double scale, bench_summary_t *out);

#endif

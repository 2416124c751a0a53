/* bench_plot.h: SVG charts of benchmark results, written as plain SVG text (no library), so
 * any browser shows them and they can be put in a markdown page.
 *
 * - TTFT distribution: for one or more runs, a histogram (left) and the cumulative
 *   distribution (right) of time to first token, with each run's median marked and a legend
 *   of n / p50 / p90 / p99. The time axis turns logarithmic when the values span more than
 *   30x (a cached and an uncached run side by side).
 * - Speedup against prefix hit rate: TTFT speedup (A / B, median and mean) at each measured
 *   hit rate of a sweep, with the no-speedup line and, for reference, 1 / (1 - hit rate),
 *   the speedup of a server whose TTFT is all prefill work proportional to uncached tokens. */
#ifndef CLLM_BENCHMARK_BENCH_PLOT_H
#define CLLM_BENCHMARK_BENCH_PLOT_H

#include <stddef.h>

#include "cllm/status.h"

typedef struct {
    const char *label;
    const double *values; /* (n,) TTFT in ms, any order; NaN entries are skipped */
    size_t n;
} bench_plot_series_t;

typedef struct {
    double target;        /* the hit rate aimed at, 0..1 */
    double hit_rate;      /* the measured one (x), 0..1; NaN: use target */
    double speedup_p50;   /* median TTFT of A / median TTFT of B */
    double speedup_mean;  /* mean TTFT of A / mean TTFT of B */
} bench_plot_point_t;

/* Up to 6 series. Errors: CLLM_ERR_INVALID_ARG (no values at all), CLLM_ERR_IO, CLLM_ERR_NOMEM. */
status_t bench_plot_ttft_svg(const char *path, const char *title, const bench_plot_series_t *series, size_t n_series);

/* Errors: CLLM_ERR_INVALID_ARG (no points), CLLM_ERR_IO. */
status_t bench_plot_speedup_svg(const char *path, const char *title, const bench_plot_point_t *points, size_t n);

#endif

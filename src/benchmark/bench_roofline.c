/* bench_roofline.c: measures the read bandwidth and the arithmetic peaks (see
 * bench_roofline.h).
 *
 * Owns: the probe buffer (allocated like the weight copies, kern_alloc_huge: huge pages where
 * the OS gives them; first touched by the thread that later reads each slice, so pages sit where
 * that thread reads them; freed before returning) and the timing loops.
 * Invariants: each thread reads only its own 64-byte aligned slice; every pass reads the whole
 * buffer once; the sums of all passes are folded into a volatile sink so no read is elided. */
#include "benchmark/bench_roofline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "kernels/kernels.h"

#define ROOF_MIN_PASSES 3
#define ROOF_MAX_PASSES 1000
/* Peak loops are sized to run about this long per pass. */
#define ROOF_PEAK_PASS_S 0.02

static volatile uint64_t roof_sink;

typedef struct {
    char *buf;         /* (n_threads * slice) bytes, 64-byte aligned */
    size_t slice;      /* bytes per thread, a multiple of 64 */
    uint64_t sums[256]; /* per-thread result of the last pass (index ith) */
    kern_peak_t kind;  /* peak probes */
    int64_t n_iter;
    double ops[256];   /* per-thread operations of the last peak pass */
} roof_job_t;

static void touch_task(void *ctx, int ith, int nth)
{
    roof_job_t *job = ctx;
    (void)nth;
    memset(job->buf + (size_t)ith * job->slice, 1 + ith, job->slice);
}

static void read_task(void *ctx, int ith, int nth)
{
    roof_job_t *job = ctx;
    (void)nth;
    job->sums[ith] = kern_read_sum(job->buf + (size_t)ith * job->slice, job->slice);
}

static void peak_task(void *ctx, int ith, int nth)
{
    roof_job_t *job = ctx;
    (void)nth;
    job->ops[ith] = kern_peak_run(job->kind, job->n_iter);
}

/* Best rate (units / s) of fn over passes for about min_s; units(job) after each pass. */
static double best_rate(threadpool_t *pool, threadpool_fn fn, roof_job_t *job, int nth, double min_s, int is_read)
{
    double best = 0.0, t_end = clock_now_s() + min_s;
    for (int pass = 0; pass < ROOF_MAX_PASSES && (pass < ROOF_MIN_PASSES || clock_now_s() < t_end); pass++) {
        double t0 = clock_now_s(), dt, units = 0.0;
        threadpool_run(pool, fn, job);
        dt = clock_now_s() - t0;
        for (int i = 0; i < nth; i++) {
            if (is_read) roof_sink += job->sums[i];
            units += is_read ? (double)job->slice : job->ops[i];
        }
        if (dt > 0 && units / dt > best) best = units / dt;
    }
    return best;
}

/* Peak of one instruction kind on all threads (0 when the level lacks it). */
static double measure_peak(threadpool_t *pool, roof_job_t *job, int nth, kern_peak_t kind, double min_s)
{
    double t0, dt, ops;
    int64_t n = 1 << 16;
    job->kind = kind;
    /* calibrate on this thread: grow until a run takes a few milliseconds */
    for (;;) {
        t0 = clock_now_s();
        ops = kern_peak_run(kind, n);
        dt = clock_now_s() - t0;
        if (ops <= 0.0) return 0.0;
        if (dt >= 0.002 || n >= ((int64_t)1 << 40)) break;
        n *= 4;
    }
    job->n_iter = (int64_t)((double)n * ROOF_PEAK_PASS_S / (dt > 1e-9 ? dt : 1e-9));
    if (job->n_iter < 1) job->n_iter = 1;
    return best_rate(pool, peak_task, job, nth, min_s, 0);
}

status_t bench_roofline_read(threadpool_t *pool, size_t read_bytes, double min_seconds, double *gbps,
                             size_t *bytes_read)
{
    roof_job_t *job;
    int nth = threadpool_n_threads(pool);
    *gbps = 0.0;
    if (read_bytes == 0) return cllm_error(CLLM_ERR_INVALID_ARG, "roofline: empty read buffer");
    if (nth > 256) return cllm_error(CLLM_ERR_INVALID_ARG, "roofline: more than 256 threads");
    job = calloc(1, sizeof(*job));
    if (!job) return cllm_error(CLLM_ERR_NOMEM, "roofline: out of memory");
    job->slice = (read_bytes / (size_t)nth + 63) / 64 * 64;
    job->buf = kern_alloc_huge(job->slice * (size_t)nth); /* as the weights the kernels read */
    if (!job->buf) {
        free(job);
        return cllm_error(CLLM_ERR_NOMEM, "roofline: cannot allocate %zu bytes for the read probe", read_bytes);
    }
    if (bytes_read) *bytes_read = job->slice * (size_t)nth;
    threadpool_run(pool, touch_task, job);
    threadpool_run(pool, read_task, job); /* warm: page tables, TLB, frequency */
    *gbps = best_rate(pool, read_task, job, nth, min_seconds, 1) * 1e-9;
    free(job->buf);
    free(job);
    return CLLM_OK;
}

status_t bench_roofline_peak(threadpool_t *pool, kern_peak_t kind, double min_seconds, double *gops)
{
    roof_job_t *job;
    int nth = threadpool_n_threads(pool);
    *gops = 0.0;
    if (nth > 256) return cllm_error(CLLM_ERR_INVALID_ARG, "roofline: more than 256 threads");
    job = calloc(1, sizeof(*job));
    if (!job) return cllm_error(CLLM_ERR_NOMEM, "roofline: out of memory");
    *gops = measure_peak(pool, job, nth, kind, min_seconds) * 1e-9;
    free(job);
    return CLLM_OK;
}

status_t bench_roofline_measure(threadpool_t *pool, size_t read_bytes, double min_seconds, bench_roofline_t *out)
{
    status_t st;
    memset(out, 0, sizeof(*out));
    out->n_threads = threadpool_n_threads(pool);
    out->level = kern_level_name(kern_level());
    if ((st = bench_roofline_read(pool, read_bytes, min_seconds, &out->read_gbps, &out->read_bytes)) != CLLM_OK)
        return st;
    if ((st = bench_roofline_peak(pool, KERN_PEAK_F32_FMA, min_seconds, &out->f32_fma_gflops)) != CLLM_OK) return st;
    if ((st = bench_roofline_peak(pool, KERN_PEAK_BF16_DOT, min_seconds, &out->bf16_dot_gflops)) != CLLM_OK) return st;
    return bench_roofline_peak(pool, KERN_PEAK_INT8_DOT, min_seconds, &out->int8_dot_gops);
}

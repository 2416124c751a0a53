/* bench_roofline.h: the machine's ceilings measured on the spot, so that every throughput
 * report carries its own roofline (cllm bench model).
 *
 * Read bandwidth (STREAM-like, read only): every pool thread sums its contiguous slice of one
 * buffer much larger than the last-level cache with the kernels' widest loads
 * (kern_read_sum); bytes / wall time of the slowest thread, best of several passes (as STREAM
 * reports its best). Peaks: every pool thread runs the same register-only loop of one
 * instruction (kern_peak_run: f32 FMA, bf16 pair dot, int8 dot) at the kernel level in use;
 * operations / wall time, best of several runs. A multiply-add counts 2 operations, so the
 * peaks compare directly with "2 * params * tokens" FLOP counts.
 * Measured numbers on a shared machine are lower bounds of what it can do when quiet, and they
 * move with the load: compare a throughput with ceilings measured right before and after it. */
#ifndef CLLM_BENCHMARK_BENCH_ROOFLINE_H
#define CLLM_BENCHMARK_BENCH_ROOFLINE_H

#include <stddef.h>

#include "cllm/status.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"

typedef struct {
    int n_threads;          /* threads that ran the probes (the pool's) */
    const char *level;      /* kernel level the probes ran at ("avx512", ...) */
    size_t read_bytes;      /* size of the buffer read */
    double read_gbps;       /* best read bandwidth, 1e9 bytes/s */
    double f32_fma_gflops;  /* 1e9 f32 operations/s with FMA */
    double bf16_dot_gflops; /* 1e9 f32-accumulated bf16 operations/s (0: no such instruction) */
    double int8_dot_gops;   /* 1e9 int8 operations/s (u8 x s8 -> int32 dots) */
} bench_roofline_t;

/* Measures the ceilings on the pool's threads (pool NULL: the calling thread alone) with a
 * buffer of read_bytes (rounded up to a multiple of 64 per thread; >= 64 MiB is sensible) and
 * about min_seconds per probe (at least 3 passes each). Errors: CLLM_ERR_NOMEM,
 * CLLM_ERR_INVALID_ARG (read_bytes 0). */
status_t bench_roofline_measure(threadpool_t *pool, size_t read_bytes, double min_seconds, bench_roofline_t *out);

/* The read bandwidth alone (1e9 bytes/s into *gbps; the buffer's rounded size into *bytes_read
 * when not NULL), and one peak alone (1e9 operations/s into *gops, 0 when the level lacks the
 * instruction): for ceilings measured right next to each test. Errors as above. */
status_t bench_roofline_read(threadpool_t *pool, size_t read_bytes, double min_seconds, double *gbps,
                             size_t *bytes_read);
status_t bench_roofline_peak(threadpool_t *pool, kern_peak_t kind, double min_seconds, double *gops);

#endif

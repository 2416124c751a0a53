/* bench_kernels.c: throughput of kern_matmul per weight type, level and thread count.
 *
 * Shapes: decode m = 1 (n = 2048, k = 2048 and n = 8192, k = 2048), 16 sequences decoding
 * together m = 16 and prefill m = 128 (n = 2048, k = 2048). For m <= 16, the call cycles
 * through copies of the weights totalling at least COLD_BYTES, more than the last-level cache,
 * so GB/s is DRAM streaming, not cache. Level "avx512+p" is the same weights repacked at load
 * (kern_matrix_pack), where the level has a layout for the type.
 * GFLOP/s counts 2 m n k; GB/s counts the bytes of W, x and y of one call. Both are given for
 * the median call and for the best one (the machine may be shared: the best shows what the
 * kernel can do, the median what it did).
 * Usage: bench_kernels [min_seconds_per_point (default 0.3)] [type ...] (e.g. q8_0 f32). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dtype.h"
#include "core/log.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"
#include "core/clock.h"

#define COLD_BYTES (256u << 20)
#define MAX_REPS 100000

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 16777216.0f * 2.0f - 1.0f;
}

/* Median and best seconds per call of kern_matmul (mats NULL) or kern_matmul_mat on mats[c]
 * over about min_s seconds. */
static double time_matmul(threadpool_t *pool, dtype_t t, char *w, size_t wbytes, const kern_matrix_t *mats,
                          int copies, float *y, const float *x, int m, int n, int k, double min_s, double *best)
{
    static double times[MAX_REPS];
    int reps = 0, c = 0;
    double t_end;
    if (mats) kern_matmul_mat(pool, y, x, &mats[0], m); /* warm-up */
    else kern_matmul(pool, y, x, w, t, m, n, k);
    t_end = clock_now_s() + min_s;
    while (reps < MAX_REPS && (reps < 3 || clock_now_s() < t_end)) {
        double t0 = clock_now_s();
        if (mats) kern_matmul_mat(pool, y, x, &mats[c], m);
        else kern_matmul(pool, y, x, w + (size_t)c * wbytes, t, m, n, k);
        times[reps++] = clock_now_s() - t0;
        c = (c + 1) % copies;
    }
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    *best = times[0];
    return times[reps / 2];
}

int main(int argc, char **argv)
{
    static const int shapes[][3] = { { 1, 2048, 2048 }, { 1, 8192, 2048 }, { 16, 2048, 2048 }, { 128, 2048, 2048 } };
    static const dtype_t all_types[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0 };
    dtype_t types[8];
    int n_types = 0;
    double min_s = argc > 1 ? atof(argv[1]) : 0.3;
    threadpool_t *pools[2];
    kern_level_t supported;
    if (min_s <= 0) min_s = 0.3;
    for (int a = 2; a < argc && n_types < 8; a++) {
        dtype_t t;
        if (dtype_from_name(argv[a], &t) == 0) types[n_types++] = t;
        else fprintf(stderr, "bench_kernels: unknown type %s\n", argv[a]);
    }
    if (!n_types) {
        memcpy(types, all_types, sizeof(all_types));
        n_types = 5;
    }
    log_set_level(LOG_LEVEL_WARN);
    supported = kern_level_supported();
    if (threadpool_create(1, &pools[0]) != CLLM_OK || threadpool_create(2, &pools[1]) != CLLM_OK) {
        fprintf(stderr, "bench_kernels: cannot create thread pools\n");
        return 1;
    }
    printf("%-16s %-5s %-9s %3s %10s %9s %8s %10s %9s\n", "shape (m,n,k)", "type", "level", "thr", "ms/call",
           "GFLOP/s", "GB/s", "best GF/s", "best GB/s");
    for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
        int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
        float *x = malloc(sizeof(float) * (size_t)m * k), *y = malloc(sizeof(float) * (size_t)m * n);
        float *row = malloc(sizeof(float) * (size_t)k);
        if (!x || !y || !row) return 1;
        for (size_t i = 0; i < (size_t)m * k; i++) x[i] = rnd();
        for (int ti = 0; ti < n_types; ti++) {
            dtype_t t = types[ti];
            size_t rb = dtype_row_bytes(t, (size_t)k), wbytes = rb * (size_t)n;
            int copies = m <= 16 ? (int)((COLD_BYTES + wbytes - 1) / wbytes) : 1;
            char *w = malloc(wbytes * (size_t)copies);
            if (!w) {
                fprintf(stderr, "bench_kernels: out of memory\n");
                return 1;
            }
            for (int j = 0; j < n; j++) {
                for (int u = 0; u < k; u++) row[u] = rnd();
                dtype_from_f32_row(t, row, w + rb * (size_t)j, (size_t)k);
            }
            for (int c = 1; c < copies; c++) memcpy(w + (size_t)c * wbytes, w, wbytes);
            for (int lv = KERN_LEVEL_REF; lv <= (int)supported; lv++) {
                kern_matrix_t *mats = NULL;
                kern_set_level((kern_level_t)lv);
                for (int packed = 0; packed < 2; packed++) {
                    if (packed) {
                        /* the same weights repacked at load (kern_matrix_pack), where the level has a layout */
                        mats = calloc((size_t)copies, sizeof(*mats));
                        if (!mats) return 1;
                        for (int c = 0; c < copies; c++) {
                            kern_matrix_init(&mats[c], w + (size_t)c * wbytes, t, n, k);
                            if (kern_matrix_pack(pools[1], &mats[c]) != CLLM_OK) return 1;
                        }
                        if (!mats[0].packed) {
                            free(mats);
                            break;
                        }
                    }
                    for (int p = 0; p < 2; p++) {
                        /* The scalar reference at prefill shape takes seconds per call: one timed call. */
                        double budget = (lv == KERN_LEVEL_REF && m > 16) ? 0.0 : min_s;
                        double b, s = time_matmul(pools[p], t, w, wbytes, mats, copies, y, x, m, n, k, budget, &b);
                        double bytes = (double)wbytes + 4.0 * m * k + 4.0 * m * n, flop = 2.0 * m * n * k;
                        char shape[32], level[16];
                        snprintf(shape, sizeof(shape), "%d,%d,%d", m, n, k);
                        snprintf(level, sizeof(level), "%s%s", kern_level_name((kern_level_t)lv), packed ? "+p" : "");
                        printf("%-16s %-5s %-9s %3d %10.3f %9.1f %8.2f %10.1f %9.2f\n", shape, dtype_name(t), level,
                               p + 1, s * 1e3, flop / s * 1e-9, bytes / s * 1e-9, flop / b * 1e-9, bytes / b * 1e-9);
                        fflush(stdout);
                    }
                    if (packed) {
                        for (int c = 0; c < copies; c++) kern_matrix_release(&mats[c]);
                        free(mats);
                    }
                }
            }
            free(w);
        }
        free(x);
        free(y);
        free(row);
    }
    threadpool_destroy(pools[0]);
    threadpool_destroy(pools[1]);
    return 0;
}

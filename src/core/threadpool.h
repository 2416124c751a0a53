/* threadpool.h: a persistent pool of worker threads for kernels.
 *
 * threadpool_run() runs fn(ctx, ith, nth) on every thread of the pool (the caller is thread 0)
 * and returns when all have finished. Workers spin briefly then sleep between jobs, so back to
 * back runs (one per matrix product) cost about a microsecond of hand-off, not a syscall.
 * One caller at a time (the engine thread owns the pool). */
#ifndef CLLM_CORE_THREADPOOL_H
#define CLLM_CORE_THREADPOOL_H

#include "cllm/status.h"

typedef struct threadpool threadpool_t;
typedef void (*threadpool_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (1: no workers, run() calls fn inline). */
status_t threadpool_create(int n_threads, threadpool_t **out);
void threadpool_destroy(threadpool_t *pool);
int threadpool_n_threads(const threadpool_t *pool);
void threadpool_run(threadpool_t *pool, threadpool_fn fn, void *ctx);

#endif

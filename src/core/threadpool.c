/* threadpool.c: a persistent pool of worker threads (see threadpool.h).
 *
 * Owns: the n_threads - 1 worker threads, the current job (fn, ctx) and the hand-off state.
 * Protocol: threadpool_run() publishes the job, then bumps `generation` (seq_cst). A worker that
 * has finished generation g spins (with pause, yielding now and then) until it sees g + 1, and
 * after SPIN_NS goes to sleep on the condition variable; when the pool has more threads than
 * there are online CPUs nobody spins (a spinner would hold the core a worker needs). Each
 * worker adds 1 to `n_done` (release) when its share is done; the caller, having run share 0
 * itself, waits (acquire) until n_done == n_threads - 1, spinning, then yielding.
 * Invariants:
 *   - fn and ctx are written only while no worker is running a job (before the generation bump
 *     and after the caller has seen every worker's n_done increment), so they need no atomics.
 *   - No lost wake-up: a worker increments n_sleeping and re-reads generation under the mutex
 *     before waiting; run() bumps generation and then reads n_sleeping (all seq_cst), and
 *     broadcasts under the mutex when it is non-zero. In the total order of those four
 *     operations either the worker sees the new generation or run() sees the sleeper.
 *   - stop is set, and the generation bumped, only by destroy(), when no job is running. */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle worker spins before it sleeps, and how long the caller spins at the end
 * of run() before it starts yielding its core (useful when threads outnumber cores). */
#define SPIN_NS 100000L
#define WAIT_SPIN_NS 200000L
#define THREADPOOL_MAX_THREADS 256

typedef struct {
    threadpool_t *pool;
    int ith;
} worker_arg_t;

struct threadpool {
    /* Written by the caller, read by everyone: its own cache line. */
    _Alignas(64) atomic_uint generation;
    atomic_int stop;
    threadpool_fn fn;
    void *ctx;
    /* Written by the workers. */
    _Alignas(64) atomic_int n_done;
    atomic_int n_sleeping;
    _Alignas(64) int n_threads;
    int n_started;            /* workers actually created (== n_threads - 1 once created) */
    int spin;                 /* 1 if idle threads may spin (n_threads <= online CPUs) */
    pthread_t *threads;       /* (n_threads - 1) */
    worker_arg_t *args;       /* (n_threads - 1) */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Returns the first generation different from `seen`: spins (unless the pool has more threads
 * than the machine has CPUs: then a spinner would only hold a core another thread needs), then
 * sleeps. */
static unsigned wait_generation(threadpool_t *pool, unsigned seen)
{
    unsigned g;
    int64_t t0 = 0;
    for (unsigned iter = 0; pool->spin; iter++) {
        g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((iter & 255) == 255) {
            sched_yield(); /* let a thread that shares this core run (busy machine) */
            int64_t t = now_ns();
            if (!t0) {
                t0 = t;
            } else if (t - t0 > SPIN_NS) {
                break;
            }
        }
    }
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->n_sleeping, 1);
    while ((g = atomic_load(&pool->generation)) == seen) pthread_cond_wait(&pool->cond, &pool->mutex);
    atomic_fetch_sub(&pool->n_sleeping, 1);
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

static void *worker_main(void *p)
{
    worker_arg_t *arg = p;
    threadpool_t *pool = arg->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_generation(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) break;
        pool->fn(pool->ctx, arg->ith, pool->n_threads);
        atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_release);
    }
    return NULL;
}

/* Wakes the workers for the generation just published (see the lost wake-up invariant). */
static void wake_workers(threadpool_t *pool)
{
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->mutex);
    }
}

static void stop_workers(threadpool_t *pool)
{
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->generation, 1);
    /* Broadcast unconditionally: cheap, and destroy is not on a hot path. */
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 0; i < pool->n_started; i++) pthread_join(pool->threads[i], NULL);
    pool->n_started = 0;
}

status_t threadpool_create(int n_threads, threadpool_t **out)
{
    threadpool_t *pool;
    int rc;
    *out = NULL;
    if (n_threads < 1 || n_threads > THREADPOOL_MAX_THREADS)
        return cllm_error(CLLM_ERR_INVALID_ARG, "threadpool: n_threads %d not in [1, %d]", n_threads,
                          THREADPOOL_MAX_THREADS);
    pool = aligned_alloc(64, (sizeof(*pool) + 63) / 64 * 64);
    if (!pool) return cllm_error(CLLM_ERR_NOMEM, "threadpool: out of memory");
    memset(pool, 0, sizeof(*pool));
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->n_done, 0);
    atomic_init(&pool->n_sleeping, 0);
    pool->n_threads = n_threads;
    pool->spin = n_threads <= sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof(*pool->threads));
        pool->args = calloc((size_t)n_threads - 1, sizeof(*pool->args));
        if (!pool->threads || !pool->args) {
            free(pool->threads);
            free(pool->args);
            free(pool);
            return cllm_error(CLLM_ERR_NOMEM, "threadpool: out of memory");
        }
    }
    if (pthread_mutex_init(&pool->mutex, NULL) != 0) goto out_free;
    if (pthread_cond_init(&pool->cond, NULL) != 0) goto out_mutex;
    for (int i = 0; i < n_threads - 1; i++) {
        pool->args[i].pool = pool;
        pool->args[i].ith = i + 1;
        rc = pthread_create(&pool->threads[i], NULL, worker_main, &pool->args[i]);
        if (rc != 0) goto out_threads;
        pool->n_started++;
    }
    *out = pool;
    return CLLM_OK;

out_threads:
    stop_workers(pool);
    pthread_cond_destroy(&pool->cond);
out_mutex:
    pthread_mutex_destroy(&pool->mutex);
out_free:
    free(pool->threads);
    free(pool->args);
    free(pool);
    return cllm_error(CLLM_ERR_INTERNAL, "threadpool: cannot create %d threads", n_threads);
}

void threadpool_destroy(threadpool_t *pool)
{
    if (!pool) return;
    stop_workers(pool);
    pthread_cond_destroy(&pool->cond);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool->args);
    free(pool);
}

int threadpool_n_threads(const threadpool_t *pool)
{
    return pool ? pool->n_threads : 1;
}

void threadpool_run(threadpool_t *pool, threadpool_fn fn, void *ctx)
{
    int n_workers;
    int64_t t0 = 0;
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    n_workers = pool->n_threads - 1;
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->n_done, 0, memory_order_relaxed);
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: publishes fn, ctx, n_done = 0 */
    wake_workers(pool);

    fn(ctx, 0, pool->n_threads);

    /* End barrier: spin briefly, then yield so that workers waiting for a core can finish. */
    if (!pool->spin) t0 = -1;
    for (unsigned iter = 0; atomic_load_explicit(&pool->n_done, memory_order_acquire) != n_workers; iter++) {
        if (t0 < 0) {
            sched_yield();
            continue;
        }
        cpu_relax();
        if ((iter & 255) == 255) {
            int64_t t = now_ns();
            sched_yield();
            if (!t0) t0 = t;
            else if (t - t0 > WAIT_SPIN_NS) t0 = -1;
        }
    }
}

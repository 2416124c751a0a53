/* test_threadpool.c: the thread pool runs every share of every job exactly once.
 *
 * Checks, for n_threads 1..4: many runs with a sum check (each thread adds its share of a
 * range, the total must be exact), every ith in [0, nth) seen once per run with the right nth,
 * 100k tiny back-to-back jobs (a lost wake-up would hang or lose a count), runs after the
 * workers have gone to sleep, destroy right after create and destroy while idle/asleep, and
 * bad arguments rejected. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/threadpool.h"
#include "check.h"


typedef struct {
    int64_t n;                 /* sum 0..n-1 split across threads */
    atomic_llong sum;
    atomic_int seen_mask;      /* bit ith set by thread ith */
    atomic_int bad_nth;        /* set if a thread saw a wrong nth */
    int expect_nth;
} sum_job_t;

static void sum_fn(void *ctx, int ith, int nth)
{
    sum_job_t *job = ctx;
    int64_t i0 = job->n * ith / nth, i1 = job->n * (ith + 1) / nth, s = 0;
    for (int64_t i = i0; i < i1; i++) s += i;
    atomic_fetch_add(&job->sum, s);
    atomic_fetch_or(&job->seen_mask, 1 << ith);
    if (nth != job->expect_nth) atomic_store(&job->bad_nth, 1);
}

static void count_fn(void *ctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    atomic_fetch_add((atomic_long *)ctx, 1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void run_sum_checks(threadpool_t *pool, int nth, int n_runs)
{
    for (int r = 0; r < n_runs; r++) {
        sum_job_t job;
        job.n = 1000 + r * 7;
        atomic_init(&job.sum, 0);
        atomic_init(&job.seen_mask, 0);
        atomic_init(&job.bad_nth, 0);
        job.expect_nth = nth;
        threadpool_run(pool, sum_fn, &job);
        CHECK(atomic_load(&job.sum) == job.n * (job.n - 1) / 2, "nth %d run %d: sum %lld != %lld", nth, r,
              (long long)atomic_load(&job.sum), (long long)(job.n * (job.n - 1) / 2));
        CHECK(atomic_load(&job.seen_mask) == (1 << nth) - 1, "nth %d run %d: threads seen 0x%x", nth, r,
              atomic_load(&job.seen_mask));
        CHECK(!atomic_load(&job.bad_nth), "nth %d run %d: wrong nth passed", nth, r);
        if (check_failures) return;
    }
}

int main(void)
{
    threadpool_t *pool = NULL;

    CHECK(threadpool_create(0, &pool) != CLLM_OK && pool == NULL, "n_threads 0 accepted");
    CHECK(threadpool_create(-3, &pool) != CLLM_OK && pool == NULL, "n_threads -3 accepted");
    threadpool_destroy(NULL);

    for (int nth = 1; nth <= 4; nth++) {
        atomic_long count;
        status_t st;

        /* Destroy right after create (workers may not even have started spinning). */
        st = threadpool_create(nth, &pool);
        CHECK(st == CLLM_OK, "create(%d) failed", nth);
        if (st != CLLM_OK) return 1;
        threadpool_destroy(pool);

        st = threadpool_create(nth, &pool);
        CHECK(st == CLLM_OK, "create(%d) failed", nth);
        if (st != CLLM_OK) return 1;
        CHECK(threadpool_n_threads(pool) == nth, "n_threads %d != %d", threadpool_n_threads(pool), nth);

        run_sum_checks(pool, nth, 2000);

        /* 100k tiny jobs back to back: every share of every job must run exactly once. */
        atomic_init(&count, 0);
        for (int r = 0; r < 100000; r++) threadpool_run(pool, count_fn, &count);
        CHECK(atomic_load(&count) == 100000L * nth, "nth %d: %ld shares ran, expected %ld", nth,
              atomic_load(&count), 100000L * nth);

        /* Jobs after the workers went to sleep, alternating with short gaps around the spin time. */
        for (int r = 0; r < 20; r++) {
            sleep_ms(r % 2 ? 5 : 0);
            run_sum_checks(pool, nth, 3);
        }

        /* Destroy while idle (workers asleep). */
        sleep_ms(5);
        threadpool_destroy(pool);
        pool = NULL;
        if (check_failures) break;
    }

    if (check_failures) {
        fprintf(stderr, "test_threadpool: %d failure(s)\n", check_failures);
        return 1;
    }
    printf("test_threadpool: ok\n");
    return 0;
}

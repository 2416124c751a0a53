/* bench_scheduler.c: what cache-aware admission saves, and what a scheduler step costs.
 *
 * Workload: n_req requests arrive at once; each prompt is one of n_prefix shared prefixes
 * (prefix_len tokens, e.g. system prompts) plus a unique suffix (suffix_len tokens), and
 * generates max_new tokens. A simulated engine drives the scheduler (schedule, commit, append a
 * token, finish at max_new) until every request is done, once with FCFS admission and once with
 * cache-aware admission, for arrivals grouped by prefix and shuffled. Reported per run: prompt
 * tokens computed (prefill work; the rest came from the prefix cache), steps, preemptions, and
 * the scheduler's own time per step (sched_schedule + sched_commit + appends, best of 5).
 * Usage: bench_scheduler [n_req n_prefix prefix_len suffix_len max_new budget n_blocks] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/scheduler.h"
#include "core/clock.h"

typedef struct {
    int32_t n_req, n_prefix, prefix_len, suffix_len, max_new;
    int32_t budget, max_seqs, block_size, n_blocks;
    bool shuffled;
} workload_t;

typedef struct {
    uint64_t prompt_tokens; /* prompt positions computed (a recomputation counts again) */
    uint64_t steps;
    uint64_t preemptions;
    double sched_s; /* time inside the scheduler */
} result_t;

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static int run(const workload_t *w, bool cache_aware, result_t *res)
{
    kvm_config_t kcfg = {w->n_blocks, w->block_size, true, 1, 0};
    sched_config_t cfg;
    kvm_t *kvm = NULL;
    sched_t *s = NULL;
    int32_t n_prompt = w->prefix_len + w->suffix_len;
    int32_t cap = n_prompt + w->max_new;
    sched_req_t *reqs = calloc((size_t)w->n_req, sizeof(*reqs));                /* (n_req) */
    int32_t *tokens = calloc((size_t)w->n_req * (size_t)cap, sizeof(int32_t)); /* (n_req, cap) */
    int32_t *order = calloc((size_t)w->n_req, sizeof(int32_t));                 /* (n_req): arrival order */
    int32_t n_done = 0;
    int rc = 1;

    memset(res, 0, sizeof(*res));
    if (!reqs || !tokens || !order) goto out;
    sched_config_default(&cfg);
    cfg.max_num_seqs = w->max_seqs;
    cfg.max_num_batched_tokens = w->budget;
    cfg.max_model_len = cap;
    cfg.cache_aware = cache_aware;
    if (kvm_create(&kcfg, &kvm) != CLLM_OK || sched_create(&cfg, kvm, &s) != CLLM_OK) goto out;

    /* request i uses prefix i / (n_req / n_prefix) (grouped); the arrival order is shuffled or not */
    rng_state = 0x2545f4914f6cdd1dull;
    for (int32_t i = 0; i < w->n_req; i++) order[i] = i;
    if (w->shuffled)
        for (int32_t i = w->n_req - 1; i > 0; i--) {
            int32_t j = (int32_t)rnd((uint32_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    for (int32_t k = 0; k < w->n_req; k++) {
        int32_t i = order[k];
        int32_t p = (int32_t)((int64_t)i * w->n_prefix / w->n_req);
        sched_req_t *r = &reqs[i];
        r->id = (uint64_t)i;
        r->tokens = tokens + (size_t)i * (size_t)cap;
        for (int32_t t = 0; t < w->prefix_len; t++) r->tokens[t] = 1000 * p + t % 997;
        for (int32_t t = w->prefix_len; t < n_prompt; t++) r->tokens[t] = 100000 + i * 131 + t;
        r->n_prompt = r->n_tokens = n_prompt;
        r->cap_tokens = cap;
        if (sched_add(s, r) != CLLM_OK) goto out;
    }
    while (n_done < w->n_req) {
        sched_batch_t b;
        double t0 = clock_now_s();
        if (sched_schedule(s, &b) != CLLM_OK || b.n_items == 0) goto out;
        if (sched_commit(s, &b) != CLLM_OK) goto out;
        for (int32_t i = 0; i < b.n_items; i++) {
            sched_req_t *r = b.items[i].req;
            int32_t end = b.items[i].start + b.items[i].n_new;
            if (b.items[i].start < r->n_prompt)
                res->prompt_tokens += (uint64_t)((end < r->n_prompt ? end : r->n_prompt) - b.items[i].start);
            if (!b.items[i].sample) continue;
            if (sched_append_token(s, r, 7) != CLLM_OK) goto out;
            if (r->n_tokens == r->cap_tokens) {
                sched_finish(s, r);
                n_done++;
            }
        }
        res->sched_s += clock_now_s() - t0;
        res->steps++;
    }
    {
        sched_stats_t st;
        sched_get_stats(s, &st);
        res->preemptions = st.n_preemptions;
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "bench_scheduler: run failed: %s\n", cllm_error_message());
    sched_destroy(s);
    kvm_destroy(kvm);
    free(reqs);
    free(tokens);
    free(order);
    return rc;
}

static int bench(const workload_t *w)
{
    result_t r[2];
    for (int aware = 0; aware < 2; aware++) {
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            if (run(w, aware, &r[aware])) return 1;
            if (r[aware].sched_s < best) best = r[aware].sched_s;
        }
        r[aware].sched_s = best;
    }
    uint64_t ideal = (uint64_t)w->n_prefix * (uint64_t)w->prefix_len + (uint64_t)w->n_req * (uint64_t)w->suffix_len;
    printf("%4d req, %d prefixes x %4d + %3d, budget %5d, %5d blocks, %s arrivals (minimum %llu prompt tokens)\n",
           w->n_req, w->n_prefix, w->prefix_len, w->suffix_len, w->budget, w->n_blocks,
           w->shuffled ? "shuffled" : "grouped ", (unsigned long long)ideal);
    for (int aware = 0; aware < 2; aware++)
        printf("  %-11s prompt tokens computed %8llu, steps %5llu, preemptions %4llu, %6.2f us/step\n",
               aware ? "cache-aware" : "fcfs", (unsigned long long)r[aware].prompt_tokens,
               (unsigned long long)r[aware].steps, (unsigned long long)r[aware].preemptions,
               1e6 * r[aware].sched_s / (double)r[aware].steps);
    printf("  saved: %llu prompt tokens (%.1f%% of FCFS's prefill)\n",
           (unsigned long long)(r[0].prompt_tokens - r[1].prompt_tokens),
           100.0 * (double)(r[0].prompt_tokens - r[1].prompt_tokens) / (double)r[0].prompt_tokens);
    return 0;
}

int main(int argc, char **argv)
{
    workload_t w = {64, 4, 512, 32, 16, 2048, 256, 16, 4096, false};
    if (argc == 8) {
        w.n_req = atoi(argv[1]);
        w.n_prefix = atoi(argv[2]);
        w.prefix_len = atoi(argv[3]);
        w.suffix_len = atoi(argv[4]);
        w.max_new = atoi(argv[5]);
        w.budget = atoi(argv[6]);
        w.n_blocks = atoi(argv[7]);
        if (w.n_req < 1 || w.n_prefix < 1 || w.prefix_len < 0 || w.suffix_len < 1 || w.max_new < 1 ||
            w.budget < 1 || w.n_blocks < 1) {
            fprintf(stderr, "usage: bench_scheduler [n_req n_prefix prefix_len suffix_len max_new budget n_blocks]\n");
            return 2;
        }
        for (int sh = 0; sh < 2; sh++) {
            w.shuffled = sh;
            if (bench(&w)) return 1;
        }
        return 0;
    }
    for (int sh = 0; sh < 2; sh++) {
        w.shuffled = sh;
        w.budget = 2048;
        if (bench(&w)) return 1;
        w.budget = 8192;
        if (bench(&w)) return 1;
    }
    /* a pool too small for everyone: preemption and eviction */
    w.shuffled = true;
    w.budget = 2048;
    w.n_blocks = 150;
    if (bench(&w)) return 1;
    /* more waiting than fcfs_queue_len (128): FCFS until the queue is short */
    w.n_req = 512;
    w.n_blocks = 4096;
    if (bench(&w)) return 1;
    return 0;
}

/* test_scheduler.c: the scheduler's steps, pinned exactly: for each step, which requests are
 * scheduled, from which token, how many, and which sample. Chunked prefill, decodes before new
 * prefills, max_num_seqs, preemption (of the newest, or of the request itself) and the return
 * with a prefix hit, submit refusals, cancel in every state, cache-aware admission
 * (longest prefix first, one computation of a shared new prefix, the starvation bound, the FCFS
 * fallback), misuse errors, and a randomized run (tiny pools, budgets from 1, random cancels,
 * colliding keys) checking the invariants after every step and that everything finishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/scheduler.h"
#include "check.h"


/* ---- fixtures ---- */

static kvm_t *make_kvm(int32_t n_blocks, int32_t block_size, bool caching, int32_t key_bits)
{
    kvm_config_t cfg = {n_blocks, block_size, caching, 0x5c4edu, key_bits};
    kvm_t *kvm = NULL;
    CHECK_OK(kvm_create(&cfg, &kvm));
    if (!kvm) exit(1);
    return kvm;
}

static sched_t *make_sched(kvm_t *kvm, int32_t max_seqs, int32_t budget, bool cache_aware)
{
    sched_config_t cfg;
    sched_t *s = NULL;
    sched_config_default(&cfg);
    cfg.max_num_seqs = max_seqs;
    cfg.max_num_batched_tokens = budget;
    cfg.cache_aware = cache_aware;
    CHECK_OK(sched_create(&cfg, kvm, &s));
    if (!s) exit(1);
    return s;
}

/* A request of prompt (n_prompt) that may generate max_new tokens. */
static sched_req_t *req_new(uint64_t id, const int32_t *prompt, int32_t n_prompt, int32_t max_new)
{
    sched_req_t *r = calloc(1, sizeof(*r));
    int32_t cap = n_prompt + max_new;
    if (!r) exit(1);
    r->tokens = calloc((size_t)(cap > 0 ? cap : 1), sizeof(int32_t));
    if (!r->tokens) exit(1);
    if (n_prompt > 0) memcpy(r->tokens, prompt, (size_t)n_prompt * sizeof(int32_t));
    r->id = id;
    r->n_prompt = r->n_tokens = n_prompt;
    r->cap_tokens = cap;
    return r;
}

/* A request whose prompt is first..first+n_prompt-1. */
static sched_req_t *req_seq(uint64_t id, int32_t first, int32_t n_prompt, int32_t max_new)
{
    int32_t prompt[512];
    for (int32_t i = 0; i < n_prompt && i < 512; i++) prompt[i] = first + i;
    return req_new(id, prompt, n_prompt, max_new);
}

static void req_free(sched_req_t *r)
{
    if (!r) return;
    free(r->tokens);
    free(r);
}

static void free_reqs(sched_req_t *const *reqs, int n)
{
    for (int i = 0; i < n; i++) req_free(reqs[i]);
}
#define FREE_REQS(...)                                                                                                 \
    free_reqs((sched_req_t *const[]){__VA_ARGS__}, (int)(sizeof((sched_req_t *const[]){__VA_ARGS__}) / sizeof(void *)))

static void add(sched_t *s, sched_req_t *r)
{
    CHECK_OK(sched_add(s, r));
}

static void check_invariants(const sched_t *s, int line)
{
    if (sched_check_invariants(s) != CLLM_OK) {
        fprintf(stderr, "line %d: invariants: %s\n", line, cllm_error_message());
        check_failures++;
    }
}
#define INVARIANTS(s) check_invariants(s, __LINE__)

static void do_step(sched_t *s, sched_batch_t *b, int line)
{
    status_t st = sched_schedule(s, b);
    if (st != CLLM_OK) {
        fprintf(stderr, "line %d: sched_schedule: %s: %s\n", line, cllm_status_str(st), cllm_error_message());
        check_failures++;
    }
    check_invariants(s, line);
}
#define STEP(s, b) do_step(s, b, __LINE__)

/* The engine's part: the model ran; every sampled request gets a token (100000 + position) and
 * finishes when it reaches cap_tokens. */
static void run_model(sched_t *s, const sched_batch_t *b)
{
    CHECK_OK(sched_commit(s, b));
    for (int32_t i = 0; i < b->n_items; i++) {
        sched_req_t *r = b->items[i].req;
        if (!b->items[i].sample) continue;
        CHECK_OK(sched_append_token(s, r, 100000 + r->n_tokens));
        if (r->n_tokens == r->cap_tokens) sched_finish(s, r);
    }
}

typedef struct {
    const sched_req_t *req;
    int32_t start;
    int32_t n_new;
    bool sample;
} want_item_t;

static void check_batch(const sched_batch_t *b, const want_item_t *want, int32_t n, int line)
{
    bool same = b->n_items == n;
    int32_t n_tokens = 0;
    for (int32_t i = 0; same && i < n; i++)
        same = b->items[i].req == want[i].req && b->items[i].start == want[i].start &&
               b->items[i].n_new == want[i].n_new && b->items[i].sample == want[i].sample;
    for (int32_t i = 0; i < b->n_items; i++) n_tokens += b->items[i].n_new;
    if (n_tokens != b->n_tokens) {
        fprintf(stderr, "line %d: batch n_tokens %d, items sum to %d\n", line, b->n_tokens, n_tokens);
        check_failures++;
    }
    if (same) return;
    fprintf(stderr, "line %d: batch [", line);
    for (int32_t i = 0; i < b->n_items; i++)
        fprintf(stderr, " {%llu %d+%d%s}", (unsigned long long)b->items[i].req->id, b->items[i].start,
                b->items[i].n_new, b->items[i].sample ? " s" : "");
    fprintf(stderr, " ], expected [");
    for (int32_t i = 0; i < n; i++)
        fprintf(stderr, " {%llu %d+%d%s}", (unsigned long long)want[i].req->id, want[i].start, want[i].n_new,
                want[i].sample ? " s" : "");
    fprintf(stderr, " ]\n");
    check_failures++;
}
#define N_ITEMS(...) ((int32_t)(sizeof((const want_item_t[]){__VA_ARGS__}) / sizeof(want_item_t)))
#define BATCH(b, ...) check_batch(&(b), (const want_item_t[]){__VA_ARGS__}, N_ITEMS(__VA_ARGS__), __LINE__)
#define BATCH_EMPTY(b) check_batch(&(b), NULL, 0, __LINE__)
/* A step that must plan exactly these items, then the model runs it. */
#define STEP_RUN(s, b, ...)                                                                                            \
    do {                                                                                                               \
        STEP(s, &(b));                                                                                                 \
        BATCH(b, __VA_ARGS__);                                                                                         \
        run_model(s, &(b));                                                                                            \
    } while (0)

static int32_t blocks_used(const kvm_t *kvm)
{
    kvm_stats_t st;
    kvm_get_stats(kvm, &st);
    return st.n_blocks_used;
}

/* ---- tests ---- */

/* The KV manager's read-only helpers: peek = what find would hit, without taking anything;
 * block keys are shared by equal prefixes and differ with the salt. */
static void test_kvm_peek(void)
{
    kvm_t *kvm = make_kvm(8, 4, true, 0), *off = make_kvm(8, 4, false, 0);
    kvm_seq_t a, b, c, d;
    int32_t t[16], free_before[8], free_after[8], hit = -1;
    kvm_stats_t st0, st1;
    block_key_t ka, kb, kc;

    for (int32_t i = 0; i < 16; i++) t[i] = i;
    CHECK_OK(kvm_init_seq(kvm, &a, 16, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &b, 16, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &c, 16, "s", 1));
    CHECK_OK(kvm_allocate(kvm, &a, 10));
    CHECK_OK(kvm_commit(kvm, &a, t, 10)); /* blocks 0, 1 cached */
    kvm_free(kvm, &a);
    kvm_get_stats(kvm, &st0);
    CHECK(block_pool_free_list(kvm_block_pool(kvm), free_before, 8) == 8);
    CHECK_OK(kvm_peek_cached_prefix(kvm, &b, t, 16, &hit));
    CHECK(hit == 8);
    CHECK_OK(kvm_peek_cached_prefix(kvm, &b, t, 9, &hit));
    CHECK(hit == 8);
    CHECK_OK(kvm_peek_cached_prefix(kvm, &b, t, 8, &hit)); /* the cap: the last token is computed */
    CHECK(hit == 4);
    CHECK_OK(kvm_peek_cached_prefix(kvm, &c, t, 16, &hit)); /* another salt */
    CHECK(hit == 0);
    kvm_get_stats(kvm, &st1);
    CHECK(block_pool_free_list(kvm_block_pool(kvm), free_after, 8) == 8);
    CHECK(memcmp(free_before, free_after, sizeof(free_before)) == 0 && b.n_blocks == 0 && b.n_computed == 0);
    CHECK(st1.prefix_cache_queries == st0.prefix_cache_queries && st1.prefix_cache_hits == st0.prefix_cache_hits);
    CHECK_OK(kvm_find_cached_prefix(kvm, &b, t, 16, &hit));
    CHECK(hit == 8);
    CHECK_OK(kvm_peek_cached_prefix(kvm, &b, t, 16, &hit)); /* a sequence holding blocks may peek */
    CHECK(hit == 8 && b.n_blocks == 2);
    /* block keys: a and b share blocks 0..3, c's salt changes them all */
    CHECK_OK(kvm_seq_block_key(kvm, &a, t, 16, 3, &ka));
    CHECK_OK(kvm_seq_block_key(kvm, &b, t, 16, 3, &kb));
    CHECK_OK(kvm_seq_block_key(kvm, &c, t, 16, 3, &kc));
    CHECK(block_key_equal(ka, kb) && !block_key_equal(ka, kc));
    CHECK_OK(kvm_seq_block_key(kvm, &a, t, 16, 0, &kc));
    CHECK(!block_key_equal(ka, kc));
    CHECK(kvm_seq_block_key(kvm, &a, t, 15, 3, &ka) == CLLM_ERR_RANGE); /* block 3 not full */
    CHECK(kvm_seq_block_key(kvm, &a, t, 16, -1, &ka) == CLLM_ERR_RANGE);
    CHECK(kvm_peek_cached_prefix(kvm, &a, t, 17, &hit) == CLLM_ERR_RANGE);
    {
        const kvm_seq_t *seqs[3] = {&a, &b, &c};
        CHECK_OK(kvm_check_invariants(kvm, seqs, 3));
    }
    /* without caching: no hit, no keys */
    CHECK_OK(kvm_init_seq(off, &d, 16, NULL, 0));
    CHECK_OK(kvm_peek_cached_prefix(off, &d, t, 16, &hit));
    CHECK(hit == 0);
    CHECK(kvm_seq_block_key(off, &d, t, 16, 0, &ka) == CLLM_ERR_UNSUPPORTED);
    kvm_deinit_seq(off, &d);
    kvm_deinit_seq(kvm, &a);
    kvm_deinit_seq(kvm, &b);
    kvm_deinit_seq(kvm, &c);
    kvm_destroy(kvm);
    kvm_destroy(off);
}

/* One request: a 20-token prompt in chunks of 8 (budget 8), then decodes until cap_tokens. */
static void test_chunked_prefill(void)
{
    kvm_t *kvm = make_kvm(64, 4, true, 0);
    sched_t *s = make_sched(kvm, 4, 8, true);
    sched_req_t *a = req_seq(1, 0, 20, 3);
    sched_batch_t b;
    sched_stats_t st;

    add(s, a);
    CHECK(a->state == SCHED_WAITING && a->arrival == 1);
    STEP(s, &b);
    BATCH(b, {a, 0, 8, false});
    CHECK(a->state == SCHED_RUNNING && a->n_cached_prompt == 0 && blocks_used(kvm) == 2);
    /* without a commit the same work is planned again */
    STEP_RUN(s, b, {a, 0, 8, false});
    CHECK(a->kv.n_computed == 8);
    STEP_RUN(s, b, {a, 8, 8, false});
    STEP_RUN(s, b, {a, 16, 4, true});
    CHECK(a->n_tokens == 21 && a->tokens[20] == 100020);
    STEP_RUN(s, b, {a, 20, 1, true});
    STEP(s, &b);
    BATCH(b, {a, 21, 1, true});
    run_model(s, &b); /* 23 tokens: at cap_tokens, finished */
    CHECK(a->state == SCHED_FINISHED && blocks_used(kvm) == 0);
    STEP(s, &b);
    BATCH_EMPTY(b);
    sched_get_stats(s, &st);
    CHECK(st.n_waiting == 0 && st.n_running == 0 && st.n_steps == 7 && st.n_preemptions == 0);
    INVARIANTS(s);
    sched_destroy(s);
    kvm_destroy(kvm);
    req_free(a);
}

/* Decodes of running requests come first; a long prompt is chunked into what is left of the
 * budget, so the decodes go on every step. */
static void test_decodes_first(void)
{
    kvm_t *kvm = make_kvm(64, 4, true, 0);
    sched_t *s = make_sched(kvm, 8, 8, true);
    sched_req_t *a = req_seq(1, 0, 3, 10), *bq = req_seq(2, 100, 3, 10), *c = req_seq(3, 200, 20, 2);
    sched_batch_t b;

    add(s, a);
    add(s, bq);
    STEP_RUN(s, b, {a, 0, 3, true}, {bq, 0, 3, true});
    add(s, c);
    STEP_RUN(s, b, {a, 3, 1, true}, {bq, 3, 1, true}, {c, 0, 6, false});
    STEP_RUN(s, b, {a, 4, 1, true}, {bq, 4, 1, true}, {c, 6, 6, false});
    STEP_RUN(s, b, {a, 5, 1, true}, {bq, 5, 1, true}, {c, 12, 6, false});
    STEP_RUN(s, b, {a, 6, 1, true}, {bq, 6, 1, true}, {c, 18, 2, true});
    STEP_RUN(s, b, {a, 7, 1, true}, {bq, 7, 1, true}, {c, 20, 1, true});
    CHECK(c->state == SCHED_FINISHED);
    /* a budget of 1: only the oldest running request moves */
    sched_destroy(s);
    CHECK(a->state == SCHED_FINISHED && bq->state == SCHED_FINISHED && blocks_used(kvm) == 0);
    s = make_sched(kvm, 8, 1, true);
    FREE_REQS(a, bq);
    a = req_seq(1, 0, 2, 2);
    bq = req_seq(2, 100, 1, 1);
    add(s, a);
    add(s, bq);
    STEP_RUN(s, b, {a, 0, 1, false});
    STEP_RUN(s, b, {a, 1, 1, true});
    STEP_RUN(s, b, {a, 2, 1, true});
    CHECK(a->state == SCHED_FINISHED);
    STEP_RUN(s, b, {bq, 0, 1, true});
    CHECK(bq->state == SCHED_FINISHED);
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(a, bq, c);
}

/* At most max_num_seqs run; a finished one's seat goes to the next waiting. */
static void test_max_num_seqs(void)
{
    kvm_t *kvm = make_kvm(64, 4, true, 0);
    sched_t *s = make_sched(kvm, 2, 100, true);
    sched_req_t *a = req_seq(1, 0, 2, 5), *bq = req_seq(2, 10, 2, 5), *c = req_seq(3, 20, 2, 5);
    sched_batch_t b;
    sched_stats_t st;

    add(s, a);
    add(s, bq);
    add(s, c);
    STEP_RUN(s, b, {a, 0, 2, true}, {bq, 0, 2, true});
    sched_get_stats(s, &st);
    CHECK(st.n_running == 2 && st.n_waiting == 1 && c->state == SCHED_WAITING);
    STEP_RUN(s, b, {a, 2, 1, true}, {bq, 2, 1, true});
    sched_finish(s, a);
    INVARIANTS(s);
    STEP(s, &b);
    BATCH(b, {bq, 3, 1, true}, {c, 0, 2, true});
    CHECK(c->admitted == 3 && bq->admitted == 2);
    run_model(s, &b);
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(a, bq, c);
}

/* The pool runs out: the newest running request is preempted (back to the front of waiting),
 * admissions stop for that step, and it returns later with a hit of its full blocks. */
static void test_preemption(void)
{
    kvm_t *kvm = make_kvm(6, 4, true, 0);
    sched_t *s = make_sched(kvm, 4, 64, true);
    sched_req_t *a = req_seq(1, 0, 8, 8), *bq = req_seq(2, 100, 8, 8), *c = req_seq(3, 200, 2, 1);
    sched_batch_t b;
    sched_stats_t st;

    add(s, a);
    add(s, bq);
    STEP_RUN(s, b, {a, 0, 8, true}, {bq, 0, 8, true});
    for (int32_t p = 8; p < 12; p++) { /* 4 decodes each: blocks 4 and 5, the pool is full */
        STEP(s, &b);
        BATCH(b, {a, p, 1, true}, {bq, p, 1, true});
        CHECK(b.n_preempted == 0);
        run_model(s, &b);
    }
    CHECK(blocks_used(kvm) == 6 && a->n_tokens == 13 && bq->n_tokens == 13);
    add(s, c); /* waits: no admission in a step that preempts */
    STEP(s, &b);
    BATCH(b, {a, 12, 1, true});
    CHECK(b.n_preempted == 1 && b.preempted[0] == bq);
    CHECK(bq->state == SCHED_WAITING && bq->n_preemptions == 1 && bq->kv.n_computed == 0 && bq->kv.n_blocks == 0);
    CHECK(c->state == SCHED_WAITING && bq->prev == NULL && bq->next == c); /* the front of waiting */
    sched_get_stats(s, &st);
    CHECK(st.n_preemptions == 1 && st.n_running == 1 && st.n_waiting == 2);
    run_model(s, &b);
    /* bq is at the front of waiting; it hits its 2 cached blocks but finds no room for the rest
     * (its 13 tokens need 2 more blocks, 2 are free): admissions stop, c waits behind it */
    STEP(s, &b);
    BATCH(b, {a, 13, 1, true});
    CHECK(bq->state == SCHED_WAITING && bq->kv.n_blocks == 0 && c->state == SCHED_WAITING);
    run_model(s, &b);
    STEP(s, &b);
    BATCH(b, {a, 14, 1, true});
    run_model(s, &b); /* a reaches 16 tokens: finished */
    CHECK(a->state == SCHED_FINISHED);
    /* bq returns: prompt + its 5 generated tokens, 8 of them (its full blocks) from the cache */
    STEP(s, &b);
    BATCH(b, {bq, 8, 5, true}, {c, 0, 2, true});
    CHECK(bq->n_cached_prompt == 0 && bq->kv.n_computed == 8);
    run_model(s, &b);
    CHECK(bq->n_tokens == 14 && c->state == SCHED_FINISHED);
    STEP_RUN(s, b, {bq, 13, 1, true});
    STEP_RUN(s, b, {bq, 14, 1, true});
    CHECK(bq->state == SCHED_FINISHED && blocks_used(kvm) == 0);
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(a, bq, c);
}

/* The request that needs a block is itself the newest: it preempts itself, the older ones go on
 * (also when its item would come after theirs in the same step). */
static void test_self_preemption(void)
{
    kvm_t *kvm = make_kvm(4, 4, false, 0);
    sched_t *s = make_sched(kvm, 4, 64, true);
    sched_req_t *a = req_seq(1, 0, 6, 4), *bq = req_seq(2, 100, 4, 4);
    sched_batch_t b;

    add(s, a);
    add(s, bq);
    STEP_RUN(s, b, {a, 0, 6, true}, {bq, 0, 4, true}); /* a: blocks 0 1, bq: block 2 (full) */
    STEP_RUN(s, b, {a, 6, 1, true}, {bq, 4, 1, true}); /* bq takes block 3: the pool is full */
    STEP_RUN(s, b, {a, 7, 1, true}, {bq, 5, 1, true});
    /* a needs a third block at token 8: bq (newest) goes, and a continues */
    STEP(s, &b);
    BATCH(b, {a, 8, 1, true});
    CHECK(b.n_preempted == 1 && b.preempted[0] == bq && bq->n_tokens == 7);
    run_model(s, &b); /* a at cap_tokens 10: finished */
    CHECK(a->state == SCHED_FINISHED);
    /* no caching: bq recomputes all 7 tokens */
    STEP_RUN(s, b, {bq, 0, 7, true});
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(a, bq);

    /* self: the newest needs a block while the older one does not */
    kvm = make_kvm(3, 4, true, 0);
    s = make_sched(kvm, 4, 64, true);
    a = req_seq(1, 0, 4, 4);    /* 8 tokens: 2 blocks */
    bq = req_seq(2, 100, 2, 10); /* 12 tokens: 3 blocks */
    add(s, a);
    add(s, bq);
    STEP_RUN(s, b, {a, 0, 4, true}, {bq, 0, 2, true}); /* a: block 0 (full), bq: block 1 */
    STEP_RUN(s, b, {a, 4, 1, true}, {bq, 2, 1, true}); /* a takes block 2: the pool is full */
    STEP_RUN(s, b, {a, 5, 1, true}, {bq, 3, 1, true}); /* bq's block 1 is full now */
    STEP(s, &b);
    BATCH(b, {a, 6, 1, true}); /* bq needs a block at token 4: it is the newest, it goes */
    CHECK(b.n_preempted == 1 && b.preempted[0] == bq && bq->state == SCHED_WAITING && bq->n_tokens == 5);
    run_model(s, &b); /* a at cap_tokens: finished */
    CHECK(a->state == SCHED_FINISHED);
    /* bq returns with a hit of its full block (4 tokens) */
    STEP(s, &b);
    BATCH(b, {bq, 4, 1, true});
    CHECK(bq->n_preemptions == 1);
    run_model(s, &b);
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(a, bq);
}

/* Requests that can never run are refused with the numbers. */
static void test_add_refusals(void)
{
    kvm_t *kvm = make_kvm(4, 4, true, 0);
    sched_config_t cfg;
    sched_t *s = NULL;
    sched_req_t *r;
    char salt[KVM_SALT_MAX + 1];

    sched_config_default(&cfg);
    cfg.max_model_len = 32;
    CHECK_OK(sched_create(&cfg, kvm, &s));

    r = req_seq(1, 0, 0, 4);
    CHECK(sched_add(s, r) == CLLM_ERR_RANGE && strstr(cllm_error_message(), "prompt of 0 tokens"));
    req_free(r);
    r = req_seq(2, 0, 40, 0);
    CHECK(sched_add(s, r) == CLLM_ERR_RANGE && strstr(cllm_error_message(), "40") &&
          strstr(cllm_error_message(), "max_model_len 32"));
    req_free(r);
    r = req_seq(3, 0, 20, 13);
    CHECK(sched_add(s, r) == CLLM_ERR_RANGE && strstr(cllm_error_message(), "20 prompt + 13 new tokens = 33") &&
          strstr(cllm_error_message(), "max_model_len 32"));
    req_free(r);
    r = req_seq(4, 0, 10, 7); /* 17 tokens: 5 blocks, the pool has 4 */
    CHECK(sched_add(s, r) == CLLM_ERR_RANGE && strstr(cllm_error_message(), "17 tokens need 5 blocks of 4") &&
          strstr(cllm_error_message(), "pool has 4"));
    CHECK(r->state == SCHED_FINISHED);
    sched_finish(s, r); /* a refused request: nothing to do */
    req_free(r);
    r = req_seq(5, 0, 10, 6); /* 16 tokens: exactly the pool */
    CHECK_OK(sched_add(s, r));
    memset(salt, 'x', sizeof(salt));
    {
        sched_req_t *q = req_seq(6, 0, 4, 0);
        q->salt = salt;
        q->salt_len = sizeof(salt);
        CHECK(sched_add(s, q) == CLLM_ERR_RANGE);
        sched_finish(s, q); /* refused while r waits: r stays queued */
        q->n_tokens = 5; /* more than cap_tokens */
        q->salt_len = 0;
        CHECK(sched_add(s, q) == CLLM_ERR_INVALID_ARG);
        req_free(q);
    }
    CHECK(sched_add(s, NULL) == CLLM_ERR_INVALID_ARG);
    INVARIANTS(s);
    {
        sched_stats_t st;
        sched_get_stats(s, &st);
        CHECK(st.n_waiting == 1);
    }
    sched_destroy(s); /* frees r's sequence */
    CHECK(r->state == SCHED_FINISHED);
    req_free(r);

    cfg.max_num_seqs = 0;
    CHECK(sched_create(&cfg, kvm, &s) == CLLM_ERR_INVALID_ARG && s == NULL);
    sched_config_default(&cfg);
    cfg.max_num_batched_tokens = 0;
    CHECK(sched_create(&cfg, kvm, &s) == CLLM_ERR_INVALID_ARG);
    sched_config_default(&cfg);
    cfg.max_wait_steps = -1;
    CHECK(sched_create(&cfg, kvm, &s) == CLLM_ERR_INVALID_ARG);
    kvm_destroy(kvm);
}

/* Cancel (sched_finish) in every state frees the blocks; misuse of commit/append is refused. */
static void test_cancel_and_misuse(void)
{
    kvm_t *kvm = make_kvm(16, 4, true, 0);
    sched_t *s = make_sched(kvm, 1, 64, true);
    sched_req_t *a = req_seq(1, 0, 10, 4), *bq = req_seq(2, 100, 6, 4), *c = req_seq(3, 200, 6, 4);
    sched_batch_t b, old;
    kvm_stats_t kst;

    add(s, a);
    add(s, bq);
    add(s, c);
    /* appending before the prompt is computed, or to a waiting request */
    CHECK(sched_append_token(s, a, 7) == CLLM_ERR_INVALID_ARG);
    STEP(s, &b);
    BATCH(b, {a, 0, 10, true});
    CHECK(sched_append_token(s, a, 7) == CLLM_ERR_INVALID_ARG); /* not committed yet */
    old = b;
    old.n_items = 0;
    CHECK(sched_commit(s, &old) == CLLM_ERR_INVALID_ARG); /* not the step's batch */
    CHECK_OK(sched_commit(s, &b));
    CHECK(sched_commit(s, &b) == CLLM_ERR_INVALID_ARG); /* twice */
    CHECK(a->kv.n_computed == 10);
    CHECK_OK(sched_append_token(s, a, 7));
    CHECK(sched_append_token(s, a, 8) == CLLM_ERR_INVALID_ARG); /* 7 is not computed yet */

    /* cancel a waiting request: it leaves the queue, holds nothing */
    sched_finish(s, bq);
    CHECK(bq->state == SCHED_FINISHED && bq->kv.block_ids == NULL);
    sched_finish(s, bq); /* again: nothing */
    INVARIANTS(s);
    CHECK(blocks_used(kvm) == 3);
    /* cancel a running request mid-step: its item is skipped at commit */
    STEP(s, &b);
    BATCH(b, {a, 10, 1, true});
    sched_finish(s, a);
    CHECK(a->state == SCHED_FINISHED && blocks_used(kvm) == 0);
    kvm_get_stats(kvm, &kst);
    CHECK(kst.n_blocks_cached == 2); /* a's two full prompt blocks stay cached */
    CHECK_OK(sched_commit(s, &b));
    INVARIANTS(s);
    STEP(s, &b);
    BATCH(b, {c, 0, 6, true});
    CHECK(sched_append_token(s, bq, 1) == CLLM_ERR_INVALID_ARG); /* finished */
    run_model(s, &b);
    /* at cap_tokens appending is refused with CLLM_ERR_RANGE */
    for (int i = 0; i < 3; i++) {
        STEP(s, &b);
        CHECK_OK(sched_commit(s, &b));
        CHECK_OK(sched_append_token(s, c, 5));
    }
    CHECK(c->n_tokens == 10 && c->state == SCHED_RUNNING);
    STEP(s, &b);
    BATCH(b, {c, 9, 1, true});
    CHECK_OK(sched_commit(s, &b));
    CHECK(sched_append_token(s, c, 5) == CLLM_ERR_RANGE);
    sched_destroy(s); /* c still running: its blocks go back */
    CHECK(c->state == SCHED_FINISHED && blocks_used(kvm) == 0);
    kvm_destroy(kvm);
    FREE_REQS(a, bq, c);
}

/* Cache-aware admission: the longest cached prefix first (ties FCFS); with it off, FCFS. */
static void test_longest_prefix_first(void)
{
    for (int aware = 0; aware < 2; aware++) {
        kvm_t *kvm = make_kvm(32, 4, true, 0);
        sched_t *s = make_sched(kvm, 1, 64, aware);
        sched_req_t *p = req_seq(1, 0, 17, 1); /* caches blocks 0..15 of 0,1,2,... */
        sched_req_t *w1 = req_seq(2, 500, 10, 1); /* no hit */
        sched_req_t *w2 = req_seq(3, 0, 10, 1);   /* hit 4 after truncation? 0..9: blocks 0, 1 -> 8 */
        sched_req_t *w3 = req_seq(4, 0, 14, 1);   /* hit 12 */
        sched_req_t *w4 = req_seq(5, 0, 13, 1);   /* hit 12, arrived after w3 */
        sched_batch_t b;

        w2->tokens[4] = 999; /* w2: only block 0 matches: hit 4 */
        add(s, p);
        STEP_RUN(s, b, {p, 0, 17, true});
        CHECK(p->state == SCHED_FINISHED);
        add(s, w1);
        add(s, w2);
        add(s, w3);
        add(s, w4);
        if (aware) {
            sched_req_t *order[4] = {w3, w4, w2, w1};
            int32_t hits[4] = {12, 12, 4, 0};
            for (int i = 0; i < 4; i++) {
                STEP(s, &b);
                BATCH(b, {order[i], hits[i], order[i]->n_prompt - hits[i], true});
                CHECK(order[i]->n_cached_prompt == hits[i]);
                run_model(s, &b);
            }
            /* w1 was passed over three times, w2 twice */
            CHECK(w1->wait_steps == 3 && w2->wait_steps == 2 && w3->wait_steps == 0 && w4->wait_steps == 0);
        } else {
            sched_req_t *order[4] = {w1, w2, w3, w4};
            int32_t hits[4] = {0, 4, 12, 12};
            for (int i = 0; i < 4; i++) {
                STEP_RUN(s, b, {order[i], hits[i], order[i]->n_prompt - hits[i], true});
            }
        }
        STEP(s, &b);
        BATCH_EMPTY(b);
        sched_destroy(s);
        kvm_destroy(kvm);
        FREE_REQS(p, w1, w2, w3, w4);
    }
}

/* 4 requests with the same new 8-token prefix arrive together: cache-aware admission computes it
 * once (the other three are held one step, then hit it); FCFS computes it four times. */
static void test_shared_prefix_once(void)
{
    for (int aware = 0; aware < 2; aware++) {
        kvm_t *kvm = make_kvm(64, 4, true, 0);
        sched_t *s = make_sched(kvm, 8, 64, aware);
        sched_req_t *r[4];
        sched_batch_t b;
        kvm_stats_t kst;
        for (int i = 0; i < 4; i++) {
            r[i] = req_seq((uint64_t)i + 1, 0, 10, 2);
            r[i]->tokens[8] = 1000 + i; /* unique 2-token tails */
            r[i]->tokens[9] = 2000 + i;
            add(s, r[i]);
        }
        STEP(s, &b);
        if (aware) {
            BATCH(b, {r[0], 0, 10, true});
            for (int i = 1; i < 4; i++) CHECK(r[i]->state == SCHED_WAITING);
            run_model(s, &b);
            STEP(s, &b);
            BATCH(b, {r[0], 10, 1, true}, {r[1], 8, 2, true}, {r[2], 8, 2, true}, {r[3], 8, 2, true});
            for (int i = 1; i < 4; i++) CHECK(r[i]->n_cached_prompt == 8 && r[i]->wait_steps == 1);
        } else {
            BATCH(b, {r[0], 0, 10, true}, {r[1], 0, 10, true}, {r[2], 0, 10, true}, {r[3], 0, 10, true});
        }
        run_model(s, &b);
        kvm_get_stats(kvm, &kst);
        CHECK(kst.prefix_cache_hits == (aware ? 24u : 0u));
        while (b.n_items) {
            STEP(s, &b);
            run_model(s, &b);
        }
        for (int i = 0; i < 4; i++) {
            CHECK(r[i]->state == SCHED_FINISHED);
            req_free(r[i]);
        }
        sched_destroy(s);
        kvm_destroy(kvm);
    }

    /* the prefix is long (16 tokens) and chunked (budget 12): when the first request's last
     * chunk leaves budget, the others are held (block 3 is being computed), then hit all 16;
     * FCFS admits the second at once with a hit of 12 and computes block 3 again */
    for (int aware = 0; aware < 2; aware++) {
        kvm_t *kvm = make_kvm(64, 4, true, 0);
        sched_t *s = make_sched(kvm, 8, 12, aware);
        sched_req_t *r[4];
        sched_batch_t b;
        for (int i = 0; i < 4; i++) {
            r[i] = req_seq((uint64_t)i + 1, 0, 18, 2);
            r[i]->tokens[16] = 1000 + i;
            r[i]->tokens[17] = 2000 + i;
            add(s, r[i]);
        }
        STEP_RUN(s, b, {r[0], 0, 12, false});
        STEP(s, &b);
        if (!aware) {
            BATCH(b, {r[0], 12, 6, true}, {r[1], 12, 6, true});
            CHECK(r[1]->n_cached_prompt == 12);
        } else {
            BATCH(b, {r[0], 12, 6, true});
            for (int i = 1; i < 4; i++) CHECK(r[i]->wait_steps == 1);
            run_model(s, &b);
            STEP(s, &b);
            BATCH(b, {r[0], 18, 1, true}, {r[1], 16, 2, true}, {r[2], 16, 2, true}, {r[3], 16, 2, true});
            for (int i = 1; i < 4; i++) CHECK(r[i]->n_cached_prompt == 16);
            run_model(s, &b);
            CHECK(r[0]->state == SCHED_FINISHED);
            STEP(s, &b);
            BATCH(b, {r[1], 18, 1, true}, {r[2], 18, 1, true}, {r[3], 18, 1, true});
        }
        run_model(s, &b);
        sched_destroy(s);
        kvm_destroy(kvm);
        for (int i = 0; i < 4; i++) req_free(r[i]);
    }
}

/* No request is passed over more than max_wait_steps steps: then it goes next, FCFS, even if
 * others hit more or it is held. */
static void test_starvation_bound(void)
{
    kvm_t *kvm = make_kvm(64, 4, true, 0);
    sched_config_t cfg;
    sched_t *s = NULL;
    sched_req_t *p = req_seq(1, 0, 9, 1), *l = req_seq(2, 500, 9, 1), *h[3];
    sched_batch_t b;

    sched_config_default(&cfg);
    cfg.max_num_seqs = 1;
    cfg.max_wait_steps = 2;
    CHECK_OK(sched_create(&cfg, kvm, &s));
    add(s, p);
    STEP(s, &b);
    run_model(s, &b); /* caches blocks 0..7 */
    add(s, l);
    for (int i = 0; i < 3; i++) {
        h[i] = req_seq((uint64_t)i + 3, 0, 9, 1);
        add(s, h[i]);
    }
    STEP_RUN(s, b, {h[0], 8, 1, true});
    CHECK(l->wait_steps == 1);
    STEP_RUN(s, b, {h[1], 8, 1, true});
    CHECK(l->wait_steps == 2);
    STEP_RUN(s, b, {l, 0, 9, true}); /* starved: before h[2], which hits 8 */
    STEP_RUN(s, b, {h[2], 8, 1, true});
    sched_destroy(s);
    FREE_REQS(p, l);
    for (int i = 0; i < 3; i++) req_free(h[i]);

    /* max_wait_steps 0: everyone counts as starved, so held requests are not held: the four
     * requests with one new prefix are all admitted at once, FCFS */
    cfg.max_num_seqs = 8;
    cfg.max_wait_steps = 0;
    CHECK_OK(sched_create(&cfg, kvm, &s));
    for (int i = 0; i < 3; i++) {
        h[i] = req_seq((uint64_t)i + 10, 3000, 10, 1);
        h[i]->tokens[9] = i;
        add(s, h[i]);
    }
    STEP_RUN(s, b, {h[0], 0, 10, true}, {h[1], 0, 10, true}, {h[2], 0, 10, true});
    sched_destroy(s);
    for (int i = 0; i < 3; i++) req_free(h[i]);
    kvm_destroy(kvm);
}

/* More than fcfs_queue_len waiting: plain FCFS. */
static void test_fcfs_queue_len(void)
{
    kvm_t *kvm = make_kvm(64, 4, true, 0);
    sched_config_t cfg;
    sched_t *s = NULL;
    sched_req_t *p = req_seq(1, 0, 9, 1), *w1 = req_seq(2, 500, 9, 1), *w2 = req_seq(3, 0, 9, 1);
    sched_req_t *w3 = req_seq(4, 0, 9, 1);
    sched_batch_t b;

    sched_config_default(&cfg);
    cfg.max_num_seqs = 1;
    cfg.fcfs_queue_len = 2;
    CHECK_OK(sched_create(&cfg, kvm, &s));
    add(s, p);
    STEP(s, &b);
    run_model(s, &b);
    add(s, w1);
    add(s, w2);
    add(s, w3);
    STEP(s, &b); /* 3 waiting > 2: FCFS */
    BATCH(b, {w1, 0, 9, true});
    run_model(s, &b);
    STEP_RUN(s, b, {w2, 8, 1, true});
    STEP_RUN(s, b, {w3, 8, 1, true});
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(p, w1, w2, w3);
}

/* ---- randomized ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

#define RAND_REQS 48

/* Checks a batch against the rules: items of distinct running requests, each from its computed
 * count, within its tokens, the sample flag, the budget and seat limits; preempted requests
 * waiting with nothing computed. Returns false on a failure (reported). */
static bool check_random_batch(const sched_batch_t *b, int32_t budget, int32_t max_seqs, int iter, int step)
{
    int32_t sum = 0;
    for (int32_t i = 0; i < b->n_items; i++) {
        const sched_item_t *it = &b->items[i];
        const sched_req_t *r = it->req;
        bool ok = r->state == SCHED_RUNNING && it->start == r->kv.n_computed && it->n_new >= 1 &&
                  it->start + it->n_new <= r->n_tokens && it->sample == (it->start + it->n_new == r->n_tokens);
        for (int32_t j = 0; j < i; j++) ok = ok && b->items[j].req != r;
        if (!ok) {
            fprintf(stderr, "random %d step %d: bad item %d: request %llu state %d start %d+%d of %d (computed %d)\n",
                    iter, step, i, (unsigned long long)r->id, (int)r->state, it->start, it->n_new, r->n_tokens,
                    r->kv.n_computed);
            check_failures++;
            return false;
        }
        sum += it->n_new;
    }
    for (int32_t i = 0; i < b->n_preempted; i++) {
        const sched_req_t *r = b->preempted[i];
        if (r->state != SCHED_WAITING || r->kv.n_computed != 0) {
            fprintf(stderr, "random %d step %d: preempted request %llu in state %d\n", iter, step,
                    (unsigned long long)r->id, (int)r->state);
            check_failures++;
            return false;
        }
    }
    if (sum != b->n_tokens || sum > budget || b->n_items > max_seqs) {
        fprintf(stderr, "random %d step %d: %d items, %d tokens (sum %d), budget %d, seats %d\n", iter, step,
                b->n_items, b->n_tokens, sum, budget, max_seqs);
        check_failures++;
        return false;
    }
    return true;
}

static void test_random(void)
{
    int64_t total_steps = 0;
    int32_t max_steps = 0;
    uint64_t total_preemptions = 0, total_hits = 0, total_copies = 0;
    for (int iter = 0; iter < 300 && check_failures == 0; iter++) {
        int32_t bs = 1 + (int32_t)rnd(8);
        int32_t max_len = 4 + (int32_t)rnd(60);
        int32_t n_blocks = (max_len + bs - 1) / bs + (int32_t)rnd(8); /* a request fits alone, barely */
        bool caching = rnd(5) != 0;
        int32_t key_bits = rnd(4) == 0 ? 1 + (int32_t)rnd(6) : 0; /* colliding keys */
        kvm_t *kvm = make_kvm(n_blocks, bs, caching, key_bits);
        bool partial = iter % 2 == 1; /* partial-block reuse on every other run */
        sched_config_t cfg;
        sched_t *s = NULL;
        sched_req_t *reqs[RAND_REQS];
        int32_t prefixes[3][64];
        int32_t n_added = 0, n_done = 0, step = 0;
        int32_t step_limit;
        sched_stats_t st;
        kvm_stats_t kst;

        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 64; j++) prefixes[i][j] = (int32_t)rnd(rnd(2) ? 4 : 1000);
        sched_config_default(&cfg);
        cfg.max_num_seqs = 1 + (int32_t)rnd(6);
        cfg.max_num_batched_tokens = rnd(3) == 0 ? 1 + (int32_t)rnd(3) : 1 + (int32_t)rnd(80);
        cfg.max_model_len = max_len;
        cfg.cache_aware = rnd(4) != 0;
        cfg.max_wait_steps = (int32_t)rnd(6);
        cfg.fcfs_queue_len = (int32_t)rnd(12);
        kvm_set_partial_block_reuse(kvm, partial);
        CHECK_OK(sched_create(&cfg, kvm, &s));
        if (!s) return;
        /* livelock guard: runs take at most ~850 steps (budget 1, recomputation after
         * preemption); 20000 means the work stopped converging */
        step_limit = 20000;

        while (n_done < RAND_REQS) {
            sched_batch_t b;
            /* arrivals: bursts, sometimes none for a while */
            while (n_added < RAND_REQS && rnd(3) == 0) {
                int32_t n_prompt = 1 + (int32_t)rnd((uint32_t)max_len);
                int32_t max_new = (int32_t)rnd((uint32_t)(max_len - n_prompt + 1));
                int32_t prompt[64];
                const int32_t *pre = prefixes[rnd(3)];
                int32_t shared = (int32_t)rnd((uint32_t)n_prompt + 1);
                sched_req_t *r;
                for (int32_t j = 0; j < n_prompt; j++) prompt[j] = j < shared ? pre[j] : (int32_t)rnd(1000);
                r = req_new((uint64_t)n_added + 1, prompt, n_prompt, max_new);
                if (rnd(4) == 0) {
                    r->salt = rnd(2) ? "tenant-a" : "tenant-b";
                    r->salt_len = 8;
                }
                reqs[n_added++] = r;
                CHECK_OK(sched_add(s, r));
            }
            /* random cancels, in any state */
            if (rnd(20) == 0 && n_added > 0) {
                sched_req_t *r = reqs[rnd((uint32_t)n_added)];
                if (r->state != SCHED_FINISHED) {
                    sched_finish(s, r);
                    n_done++;
                }
            }
            if (sched_schedule(s, &b) != CLLM_OK) {
                fprintf(stderr, "random %d step %d: schedule: %s\n", iter, step, cllm_error_message());
                check_failures++;
                break;
            }
            if (sched_check_invariants(s) != CLLM_OK) {
                fprintf(stderr, "random %d step %d: invariants: %s\n", iter, step, cllm_error_message());
                check_failures++;
                break;
            }
            if (!check_random_batch(&b, cfg.max_num_batched_tokens, cfg.max_num_seqs, iter, step)) break;
            /* copies: one per admission at most, into the new block at the hit's end */
            for (int32_t c = 0; c < b.n_copies; c++) {
                const sched_copy_t *cp = &b.copies[c];
                bool found = false;
                for (int32_t i = 0; i < b.n_items && !found; i++) {
                    const sched_req_t *r = b.items[i].req;
                    found = b.items[i].start % bs == cp->n_slots && r->kv.n_blocks > b.items[i].start / bs &&
                            r->kv.block_ids[b.items[i].start / bs] == cp->dst_block;
                }
                if (!partial || !caching || !found || b.n_copies > b.n_items || cp->n_slots < 1 || cp->n_slots >= bs ||
                    cp->src_block < 0 || cp->src_block >= n_blocks) {
                    fprintf(stderr, "random %d step %d: bad copy %d -> %d, %d slots\n", iter, step, cp->src_block,
                            cp->dst_block, cp->n_slots);
                    check_failures++;
                }
                total_copies++;
            }
            sched_get_stats(s, &st);
            /* progress: anything live is always worked on (every running request has a token
             * to compute here, and with nothing running nothing can be held) */
            if ((st.n_running > 0 || st.n_waiting > 0) && b.n_items == 0) {
                fprintf(stderr, "random %d step %d: %d running, %d waiting, nothing scheduled\n", iter, step,
                        st.n_running, st.n_waiting);
                check_failures++;
                break;
            }
            /* sometimes a request is cancelled between the step and the commit */
            if (b.n_items > 0 && rnd(30) == 0) {
                sched_req_t *r = b.items[rnd((uint32_t)b.n_items)].req;
                sched_finish(s, r);
                n_done++;
            }
            CHECK_OK(sched_commit(s, &b));
            for (int32_t i = 0; i < b.n_items; i++) {
                sched_req_t *r = b.items[i].req;
                if (!b.items[i].sample || r->state != SCHED_RUNNING) continue;
                if (r->n_tokens == r->cap_tokens || rnd(10) == 0) { /* length or stop */
                    sched_finish(s, r);
                    n_done++;
                    continue;
                }
                CHECK_OK(sched_append_token(s, r, (int32_t)rnd(rnd(2) ? 4 : 1000)));
            }
            if (++step > step_limit) {
                fprintf(stderr, "random %d: %d of %d requests done after %d steps (livelock?)\n", iter, n_done,
                        RAND_REQS, step);
                check_failures++;
                break;
            }
        }
        sched_get_stats(s, &st);
        kvm_get_stats(kvm, &kst);
        if (check_failures == 0) CHECK(st.n_waiting == 0 && st.n_running == 0 && kst.n_blocks_used == 0);
        total_steps += step;
        if (step > max_steps) max_steps = step;
        total_preemptions += st.n_preemptions;
        total_hits += kst.prefix_cache_hits;
        sched_destroy(s);
        for (int32_t i = 0; i < n_added; i++) req_free(reqs[i]);
        kvm_destroy(kvm);
    }
    printf("random: %lld steps (at most %d in a run), %llu preemptions, %llu prefix-hit tokens, %llu copies\n",
           (long long)total_steps, max_steps, (unsigned long long)total_preemptions, (unsigned long long)total_hits,
           (unsigned long long)total_copies);
    CHECK(total_preemptions > 100 && total_hits > 1000 && total_copies > 100); /* the run did exercise them */
}

/* Partial-block reuse: an admission whose hit ends inside a cached block carries the copy in
 * its step's batch (once), its item starts after the copied slots, and the partial tokens
 * count in n_cached_prompt. */
static void test_partial_copy(void)
{
    kvm_t *kvm = make_kvm(16, 4, true, 0);
    sched_t *s = make_sched(kvm, 4, 64, true);
    int32_t pb[9] = {0, 1, 2, 3, 4, 5, 6, 50, 51};
    sched_req_t *a = req_seq(1, 0, 10, 1), *b2 = req_new(2, pb, 9, 1);
    sched_batch_t b;

    kvm_set_partial_block_reuse(kvm, true);
    add(s, a);
    STEP(s, &b);
    BATCH(b, {a, 0, 10, true});
    CHECK(b.n_copies == 0);
    run_model(s, &b); /* a: blocks 0 1 2, 0 and 1 cached; finished: freed 2, 1, 0 */
    CHECK(a->state == SCHED_FINISHED);
    add(s, b2);
    STEP(s, &b);
    /* block 0 in full, then 3 tokens (4 5 6) of block 1 into a new block, 3 (the head) */
    BATCH(b, {b2, 7, 2, true});
    CHECK(b.n_copies == 1 && b.copies[0].src_block == 1 && b.copies[0].dst_block == 3 && b.copies[0].n_slots == 3);
    CHECK(b2->n_cached_prompt == 7);
    /* not committed: the same work is planned again, with no copy (the slots are in place) */
    STEP(s, &b);
    BATCH(b, {b2, 7, 2, true});
    CHECK(b.n_copies == 0);
    run_model(s, &b);
    CHECK(b2->state == SCHED_FINISHED && blocks_used(kvm) == 0);
    INVARIANTS(s);
    sched_destroy(s);
    kvm_destroy(kvm);
    FREE_REQS(a, b2);
}

int main(void)
{
    test_partial_copy();
    test_kvm_peek();
    test_chunked_prefill();
    test_decodes_first();
    test_max_num_seqs();
    test_preemption();
    test_self_preemption();
    test_add_refusals();
    test_cancel_and_misuse();
    test_longest_prefix_first();
    test_shared_prefix_once();
    test_starvation_bound();
    test_fcfs_queue_len();
    test_random();
    if (check_failures) {
        fprintf(stderr, "test_scheduler: %d checks failed\n", check_failures);
        return 1;
    }
    printf("test_scheduler: all passed\n");
    return 0;
}

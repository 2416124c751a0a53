/* test_engine.c: the engine end to end on stories260K.
 *
 * Same answer, any path: random workloads — prompts sharing random prefixes, random lengths and
 * arrival steps, random cancels, a KV pool small enough to force eviction and preemption, token
 * budgets from 1 up, several block sizes, prefix caching and cache-aware scheduling on and off —
 * in which every request's greedy output must equal, token for token, the output of the same
 * request run alone with prefix caching off. The engine checks its KV and scheduler invariants
 * after every step; when all requests are done every block must be free.
 * Also: text prompts, stop strings, the engine thread with concurrent pollers, refusals. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cllm/engine.h"
#include "engine/engine.h"
#include "check.h"

static uint64_t total_preemptions, total_hits; /* over all rounds: the workloads must exercise both */

#define MODEL CLLM_SHARED_DIR "/models/stories260K.gguf"
#define MAX_REQS 24
#define MAX_OUT 40

typedef struct {
    int32_t prompt[128];
    int n_prompt;
    int max_tokens;
    int arrival;      /* step at which it is submitted */
    int cancel_at;    /* step at which it is cancelled, or -1 */
    int32_t alone[MAX_OUT];
    int n_alone;
    int32_t got[MAX_OUT];
    int n_got;
    uint64_t id;
    int done;
} work_t;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void request_for(const work_t *w, cllm_request_t *q)
{
    cllm_request_init(q);
    q->prompt_tokens = w->prompt;
    q->n_prompt_tokens = (size_t)w->n_prompt;
    q->temperature = 0.0f;
    q->max_tokens = w->max_tokens;
    q->ignore_eos = true;
}

/* Collects whatever output id has now; returns 1 when it finished. */
static int drain(cllm_engine_t *e, work_t *w)
{
    cllm_output_t *o = NULL;
    int finished = 0;
    if (cllm_engine_poll(e, w->id, 0, &o) != CLLM_OK) return 1;
    if (!o) return 0;
    for (size_t i = 0; i < o->n_tokens && w->n_got < MAX_OUT; i++) w->got[w->n_got++] = o->tokens[i];
    finished = o->finish != CLLM_FINISH_NONE;
    cllm_output_free(o);
    return finished;
}

static void run_alone(work_t *w)
{
    cllm_engine_config_t cfg;
    cllm_engine_t *e;
    cllm_request_t q;
    int32_t n;

    cllm_engine_config_default(&cfg);
    cfg.model_path = MODEL;
    cfg.n_threads = 1;
    cfg.enable_prefix_caching = false;
    cfg.num_blocks = 64;
    cfg.check_invariants = true;
    if (cllm_engine_create(&cfg, &e) != CLLM_OK) {
        CHECK(0, "create: %s", cllm_error_message());
        return;
    }
    request_for(w, &q);
    CHECK(cllm_engine_submit(e, &q, &w->id) == CLLM_OK, "submit: %s", cllm_error_message());
    w->n_got = 0;
    for (int guard = 0; guard < 1000; guard++) {
        CHECK(cllm_engine_step(e, &n) == CLLM_OK, "step: %s", cllm_error_message());
        if (drain(e, w)) break;
    }
    memcpy(w->alone, w->got, sizeof(w->got));
    w->n_alone = w->n_got;
    CHECK(w->n_alone == w->max_tokens, "alone: %d tokens, wanted %d", w->n_alone, w->max_tokens);
    cllm_engine_destroy(e);
}

static void run_workload(work_t *ws, int n_ws, const cllm_engine_config_t *base, int round)
{
    cllm_engine_t *e;
    cllm_engine_stats_t st;
    int n_done = 0, step;

    if (cllm_engine_create(base, &e) != CLLM_OK) {
        CHECK(0, "create: %s", cllm_error_message());
        return;
    }
    for (int i = 0; i < n_ws; i++) {
        ws[i].n_got = 0;
        ws[i].done = 0;
        ws[i].id = 0;
    }
    for (step = 0; n_done < n_ws && step < 20000; step++) {
        int32_t n;
        for (int i = 0; i < n_ws; i++) {
            work_t *w = &ws[i];
            if (w->arrival == step) {
                cllm_request_t q;
                request_for(w, &q);
                CHECK(cllm_engine_submit(e, &q, &w->id) == CLLM_OK, "submit: %s", cllm_error_message());
            }
            if (w->id && !w->done && w->cancel_at == step) {
                CHECK(cllm_engine_cancel(e, w->id) == CLLM_OK, "cancel: %s", cllm_error_message());
                w->done = 1;
                n_done++;
            }
        }
        if (cllm_engine_step(e, &n) != CLLM_OK) {
            CHECK(0, "round %d step %d: %s", round, step, cllm_error_message());
            break;
        }
        for (int i = 0; i < n_ws; i++) {
            work_t *w = &ws[i];
            if (!w->id || w->done) continue;
            if (drain(e, w)) {
                w->done = 1;
                n_done++;
                CHECK(w->n_got == w->n_alone && !memcmp(w->got, w->alone, sizeof(int32_t) * (size_t)w->n_got),
                      "round %d (block %d, budget %d, blocks %d, caching %d, aware %d): request %d differs from "
                      "its run alone (%d vs %d tokens)",
                      round, base->block_size, base->max_num_batched_tokens, base->num_blocks,
                      base->enable_prefix_caching, base->cache_aware_scheduling, i, w->n_got, w->n_alone);
            }
        }
    }
    CHECK(n_done == n_ws, "round %d: %d of %d requests done after %d steps", round, n_done, n_ws, step);
    {
        int32_t n;
        cllm_engine_step(e, &n); /* let the last cancellations through */
    }
    cllm_engine_get_stats(e, &st);
    total_preemptions += st.n_preemptions;
    total_hits += st.prefix_cache_hits;
    CHECK(st.n_blocks_used == 0 && st.n_blocks_free == st.n_blocks,
          "round %d: %d blocks still in use after every request finished", round, st.n_blocks_used);
    if (round == 0 || getenv("CLLM_TEST_VERBOSE"))
        fprintf(stderr, "round %d: %d steps, %llu preemptions, prefix hits %llu / %llu tokens\n", round, step,
                (unsigned long long)st.n_preemptions, (unsigned long long)st.prefix_cache_hits,
                (unsigned long long)st.prefix_cache_queries);
    cllm_engine_destroy(e);
}

static void test_same_answer_any_path(void)
{
    static work_t ws[MAX_REQS];
    int32_t prefixes[3][96];

    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 96; i++) prefixes[p][i] = (int32_t)(3 + rnd(500));
    for (int i = 0; i < MAX_REQS; i++) {
        work_t *w = &ws[i];
        int shared = (int)rnd(4) < 3 ? (int)rnd(90) : 0, p = (int)rnd(3);
        w->n_prompt = 1 + shared + (int)rnd(20);
        w->prompt[0] = 1; /* BOS */
        for (int j = 1; j < w->n_prompt; j++) w->prompt[j] = j - 1 < shared ? prefixes[p][j - 1] : (int32_t)(3 + rnd(500));
        w->max_tokens = 1 + (int)rnd(MAX_OUT - 10);
        run_alone(w);
    }
    for (int round = 0; round < 24; round++) {
        static const int block_sizes[] = { 8, 16, 32 };
        cllm_engine_config_t cfg;
        int n_ws = 6 + (int)rnd(MAX_REQS - 6);
        cllm_engine_config_default(&cfg);
        cfg.model_path = MODEL;
        cfg.n_threads = 1 + (int)rnd(2);
        cfg.block_size = block_sizes[rnd(3)];
        cfg.max_model_len = 128;
        /* small pools force eviction and preemption; the minimum is one max_model_len sequence */
        cfg.num_blocks = 128 / cfg.block_size + (int)rnd(3 * 128 / cfg.block_size);
        cfg.max_num_seqs = 1 + (int)rnd(8);
        cfg.max_num_batched_tokens = round % 3 == 0 ? 1 + (int)rnd(4) : 1 + (int)rnd(300);
        cfg.enable_prefix_caching = rnd(4) != 0;
        cfg.cache_aware_scheduling = rnd(2) != 0;
        cfg.check_invariants = true;
        for (int i = 0; i < n_ws; i++) {
            ws[i].arrival = (int)rnd(40);
            ws[i].cancel_at = rnd(8) == 0 ? ws[i].arrival + (int)rnd(30) : -1;
        }
        run_workload(ws, n_ws, &cfg, round);
    }
    CHECK(total_preemptions > 0 && total_hits > 0, "the workloads caused %llu preemptions and %llu prefix-hit tokens",
          (unsigned long long)total_preemptions, (unsigned long long)total_hits);
}

/* Text prompt, stop string, usage counts, prefix hit on a repeated prompt. */
static void test_text_and_stop(void)
{
    cllm_engine_config_t cfg;
    cllm_engine_t *e;
    cllm_request_t q;
    cllm_output_t *o;
    uint64_t id;
    int32_t n;
    char text[4096] = "";
    const char *stops[] = { "Lily" };
    int finish = 0, cached = -1;

    cllm_engine_config_default(&cfg);
    cfg.model_path = MODEL;
    cfg.n_threads = 2;
    cfg.block_size = 8;
    cfg.check_invariants = true;
    if (cllm_engine_create(&cfg, &e) != CLLM_OK) {
        CHECK(0, "create: %s", cllm_error_message());
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        cllm_request_init(&q);
        q.prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
        q.prompt_len = strlen(q.prompt);
        q.temperature = 0.0f;
        q.max_tokens = 60;
        q.stop = stops;
        q.n_stop = 1;
        CHECK(cllm_engine_submit(e, &q, &id) == CLLM_OK, "submit: %s", cllm_error_message());
        text[0] = '\0';
        for (int guard = 0; guard < 500 && !finish; guard++) {
            cllm_engine_step(e, &n);
            while (cllm_engine_poll(e, id, 0, &o) == CLLM_OK && o) {
                strncat(text, o->text, sizeof(text) - strlen(text) - 1);
                if (o->finish) {
                    finish = o->finish;
                    cached = o->n_cached_tokens;
                    CHECK(o->n_prompt_tokens > 20, "prompt tokens %d", o->n_prompt_tokens);
                }
                cllm_output_free(o);
                if (finish) break;
            }
        }
        CHECK(finish == CLLM_FINISH_STOP, "pass %d: finish %d, text '%s'", pass, finish, text);
        CHECK(!strstr(text, "Lily"), "pass %d: the stop string was emitted: '%s'", pass, text);
        CHECK(pass == 0 ? cached == 0 : cached > 0, "pass %d: cached prompt tokens %d", pass, cached);
        finish = 0;
    }
    /* refusals: too long, empty, bad token */
    {
        int32_t big[200], bad[2] = { 1, 99999 };
        for (int i = 0; i < 200; i++) big[i] = 5;
        cllm_request_init(&q);
        q.prompt_tokens = big;
        q.n_prompt_tokens = 200;
        CHECK(cllm_engine_submit(e, &q, &id) == CLLM_ERR_RANGE, "a prompt over max_model_len is refused");
        CHECK(strstr(cllm_error_message(), "200"), "the refusal gives the numbers: %s", cllm_error_message());
        q.n_prompt_tokens = 100;
        q.max_tokens = 100;
        CHECK(cllm_engine_submit(e, &q, &id) == CLLM_ERR_RANGE, "prompt + max_tokens over max_model_len is refused");
        q.prompt_tokens = bad;
        q.n_prompt_tokens = 2;
        q.max_tokens = 4;
        CHECK(cllm_engine_submit(e, &q, &id) == CLLM_ERR_INVALID_ARG, "a token outside the vocabulary is refused");
        cllm_request_init(&q);
        q.prompt = "";
        q.add_special = false;
        CHECK(cllm_engine_submit(e, &q, &id) == CLLM_ERR_INVALID_ARG, "an empty prompt is refused");
        CHECK(cllm_engine_poll(e, 12345, 0, &o) == CLLM_ERR_NOT_FOUND, "unknown id");
    }
    /* a KV pool smaller than one max_model_len sequence is refused, with the minimum */
    {
        cllm_engine_config_t small;
        cllm_engine_t *e2 = NULL;
        cllm_engine_config_default(&small);
        small.model_path = MODEL;
        small.block_size = 16;
        small.max_model_len = 128;
        small.num_blocks = 7;
        CHECK(cllm_engine_create(&small, &e2) == CLLM_ERR_RANGE && strstr(cllm_error_message(), "at least 8 blocks"),
              "a pool below one sequence is refused with the minimum: %s", cllm_error_message());
        cllm_engine_destroy(e2);
    }
    cllm_engine_destroy(e);
}

/* The engine thread with several client threads polling at once. */
typedef struct {
    cllm_engine_t *e;
    work_t *w;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    cllm_request_t q;
    cllm_output_t *o;
    request_for(c->w, &q);
    c->w->n_got = 0;
    if (cllm_engine_submit(c->e, &q, &c->w->id) != CLLM_OK) return NULL;
    for (;;) {
        if (cllm_engine_poll(c->e, c->w->id, 1000, &o) != CLLM_OK) break;
        if (!o) continue;
        for (size_t i = 0; i < o->n_tokens && c->w->n_got < MAX_OUT; i++) c->w->got[c->w->n_got++] = o->tokens[i];
        if (o->finish) {
            c->w->done = 1;
            cllm_output_free(o);
            break;
        }
        cllm_output_free(o);
    }
    return NULL;
}

static void test_threaded(void)
{
    static work_t ws[8];
    cllm_engine_config_t cfg;
    cllm_engine_t *e;
    pthread_t th[8];
    client_t cl[8];
    cllm_engine_stats_t st;

    for (int i = 0; i < 8; i++) {
        ws[i].n_prompt = 10 + (int)rnd(40);
        ws[i].prompt[0] = 1;
        for (int j = 1; j < ws[i].n_prompt; j++) ws[i].prompt[j] = (int32_t)(3 + (j * 7 + (j > 20 ? i : 0)) % 500);
        ws[i].max_tokens = 20;
        run_alone(&ws[i]);
    }
    cllm_engine_config_default(&cfg);
    cfg.model_path = MODEL;
    cfg.n_threads = 2;
    cfg.max_num_seqs = 4;
    cfg.check_invariants = true;
    if (cllm_engine_create(&cfg, &e) != CLLM_OK || cllm_engine_start(e) != CLLM_OK) {
        CHECK(0, "create/start: %s", cllm_error_message());
        return;
    }
    for (int i = 0; i < 8; i++) {
        cl[i].e = e;
        cl[i].w = &ws[i];
        ws[i].done = 0;
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++)
        CHECK(ws[i].done && ws[i].n_got == ws[i].n_alone && !memcmp(ws[i].got, ws[i].alone, sizeof(int32_t) * 20),
              "threaded request %d differs from its run alone", i);
    cllm_engine_shutdown(e);
    cllm_engine_get_stats(e, &st);
    CHECK(st.n_blocks_used == 0, "blocks in use after shutdown: %d", st.n_blocks_used);
    cllm_engine_destroy(e);
}

/* Runs w to completion on e (submitted now); returns its usage's cached prompt tokens. */
static int run_one(cllm_engine_t *e, work_t *w)
{
    cllm_request_t q;
    cllm_output_t *o;
    int32_t n;
    int cached = -1, finished = 0;
    request_for(w, &q);
    w->n_got = 0;
    CHECK(cllm_engine_submit(e, &q, &w->id) == CLLM_OK, "submit: %s", cllm_error_message());
    for (int guard = 0; guard < 1000 && !finished; guard++) {
        CHECK(cllm_engine_step(e, &n) == CLLM_OK, "step: %s", cllm_error_message());
        while (!finished && cllm_engine_poll(e, w->id, 0, &o) == CLLM_OK && o) {
            for (size_t i = 0; i < o->n_tokens && w->n_got < MAX_OUT; i++) w->got[w->n_got++] = o->tokens[i];
            if (o->finish) {
                finished = 1;
                cached = o->n_cached_tokens;
            }
            cllm_output_free(o);
        }
    }
    CHECK(finished, "request did not finish");
    return cached;
}

/* Partial-block prefix reuse: B shares A's first 21 tokens (block size 8: 2 full blocks and 5
 * tokens of A's third block). B's hit counts all 21, and its output equals its run alone with
 * caching off, so the 5 copied slots are exactly what recomputation gives. The pool is exactly
 * one 128-token sequence: A's blocks are freed last block first, so B's new block is A's last
 * and B's prefill then takes every other free block, the donor last: the donor is reallocated
 * and written in the very step that copies from it. */
static void test_partial_block_hit(void)
{
    static work_t a, b;
    cllm_engine_config_t cfg;
    cllm_engine_stats_t st;
    cllm_engine_t *e;

    a.n_prompt = b.n_prompt = 124;
    a.max_tokens = b.max_tokens = 4;
    a.prompt[0] = b.prompt[0] = 1;
    for (int j = 1; j < 124; j++) {
        a.prompt[j] = (int32_t)(3 + rnd(500));
        b.prompt[j] = j < 21 ? a.prompt[j] : (int32_t)(3 + (a.prompt[j] + 1 + (int32_t)rnd(400)) % 500);
    }
    run_alone(&b);
    for (int pass = 0; pass < 2; pass++) {
        cllm_engine_config_default(&cfg);
        cfg.model_path = MODEL;
        cfg.n_threads = 1;
        cfg.block_size = 8;
        cfg.max_model_len = 128;
        cfg.num_blocks = 16;
        cfg.enable_prefix_caching = pass == 0;
        cfg.check_invariants = true;
        if (cllm_engine_create(&cfg, &e) != CLLM_OK) {
            CHECK(0, "create: %s", cllm_error_message());
            return;
        }
        CHECK(run_one(e, &a) == 0, "A hits nothing");
        CHECK(run_one(e, &b) == (pass == 0 ? 21 : 0), "pass %d: B's cached prompt tokens", pass);
        CHECK(b.n_got == b.n_alone && !memcmp(b.got, b.alone, sizeof(int32_t) * (size_t)b.n_got),
              "pass %d: B after a partial-block hit differs from its run alone", pass);
        cllm_engine_get_stats(e, &st);
        CHECK(st.prefix_cache_hits == (pass == 0 ? 21u : 0u) && st.n_blocks_used == 0,
              "pass %d: prefix hits %llu, %d blocks used", pass, (unsigned long long)st.prefix_cache_hits,
              st.n_blocks_used);
        cllm_engine_destroy(e);
    }
}

int main(void)
{
    test_partial_block_hit();
    test_text_and_stop();
    test_threaded();
    test_same_answer_any_path();
    if (check_failures) {
        fprintf(stderr, "%d failures\n", check_failures);
        return 1;
    }
    fprintf(stderr, "ok\n");
    return 0;
}

/* test_sampler.c: the sampler against exact expectations and statistics.
 *
 * Greedy and ties, seed determinism, empirical distributions (within 5 sigma) for plain
 * sampling, temperature, top_k, top_p and min_p, exact penalty and bias arithmetic, raw
 * logprobs against a double-precision log-softmax, top logprobs order, large-vocabulary
 * selection against a full sort, and every validation error. Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "check.h"


/* A small LCG for test data (not the sampler's PRNG). */
static uint64_t g_lcg = 12345;
static double test_rand01(void)
{
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_lcg >> 11) * 0x1.0p-53;
}

static sampler_t *make_sampler(const sampler_params_t *p, int32_t n_vocab)
{
    sampler_t *s = NULL;
    status_t st = sampler_create(p, n_vocab, NULL, &s);
    if (st != CLLM_OK) {
        fprintf(stderr, "FATAL: sampler_create: %s\n", cllm_error_message());
        exit(1);
    }
    return s;
}

static int32_t sample_one(sampler_t *s, const float *logits)
{
    sampler_result_t r;
    status_t st = sampler_sample(s, logits, &r);
    CHECK(st == CLLM_OK, "sampler_sample: %s", cllm_error_message());
    return st == CLLM_OK ? r.token : -1;
}

/* Draws n times and checks each token's frequency against expected probabilities (n_vocab)
 * within 5 sigma; tokens with probability 0 must never appear. */
static void check_distribution(const char *what, sampler_t *s, const float *logits, int32_t n_vocab,
                               const double *expect, int n)
{
    int counts[64] = { 0 };
    for (int i = 0; i < n; i++) {
        int32_t t = sample_one(s, logits);
        if (t >= 0 && t < n_vocab)
            counts[t]++;
    }
    for (int32_t t = 0; t < n_vocab; t++) {
        double mean = expect[t] * n;
        double sigma = sqrt(n * expect[t] * (1.0 - expect[t]));
        if (expect[t] == 0.0)
            CHECK(counts[t] == 0, "%s: token %d has p 0 but was drawn %d times", what, t, counts[t]);
        else
            CHECK(fabs(counts[t] - mean) <= 5.0 * sigma + 1.0, "%s: token %d drawn %d times, expected %.1f +- %.1f",
                  what, t, counts[t], mean, sigma);
    }
}

static void test_greedy(void)
{
    sampler_params_t p = sampler_params_default();
    p.temperature = 0.0f;
    sampler_t *s = make_sampler(&p, 6);
    const float ties[6] = { 1.0f, 3.0f, -2.0f, 3.0f, 2.0f, 3.0f };
    CHECK(sample_one(s, ties) == 1, "greedy tie must go to the lowest id");
    const float masked[6] = { -INFINITY, -INFINITY, -5.0f, -INFINITY, -6.0f, -INFINITY };
    CHECK(sample_one(s, masked) == 2, "greedy with -inf entries");
    const float last[6] = { 0, 0, 0, 0, 0, 0.5f };
    CHECK(sample_one(s, last) == 5, "greedy at the last id");
    const float late_tie[6] = { 0, 0, 0, 3.0f, 0, 3.0f };
    CHECK(sample_one(s, late_tie) == 3, "greedy tie between ids 3 and 5 must give 3");
    sampler_destroy(s);

    /* Below SAMPLER_GREEDY_EPS is greedy too. */
    p.temperature = 1e-6f;
    s = make_sampler(&p, 6);
    for (int i = 0; i < 100; i++)
        CHECK(sample_one(s, ties) == 1, "tiny temperature is greedy");
    sampler_destroy(s);
}

static void test_seed_determinism(void)
{
    enum { V = 1000, N = 1000 };
    static float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(test_rand01() * 4.0);
    static int32_t a[N], b[N], c[N];
    sampler_params_t p = sampler_params_default();
    p.has_seed = true;
    p.seed = 42;
    sampler_t *s1 = make_sampler(&p, V), *s2 = make_sampler(&p, V);
    p.seed = 43;
    sampler_t *s3 = make_sampler(&p, V);
    for (int i = 0; i < N; i++) {
        a[i] = sample_one(s1, logits);
        b[i] = sample_one(s2, logits);
        c[i] = sample_one(s3, logits);
    }
    CHECK(memcmp(a, b, sizeof(a)) == 0, "same seed must give the same 1000 tokens");
    int same = 0;
    for (int i = 0; i < N; i++)
        same += a[i] == c[i];
    CHECK(same < N / 10, "different seeds agree on %d of %d draws", same, N);
    sampler_destroy(s1);
    sampler_destroy(s2);
    sampler_destroy(s3);

    /* Two unseeded samplers draw from different OS seeds. */
    p.has_seed = false;
    s1 = make_sampler(&p, V);
    s2 = make_sampler(&p, V);
    same = 0;
    for (int i = 0; i < N; i++)
        same += sample_one(s1, logits) == sample_one(s2, logits);
    CHECK(same < N / 10, "unseeded samplers agree on %d of %d draws", same, N);
    sampler_destroy(s1);
    sampler_destroy(s2);
}

static const double k_probs[4] = { 0.5, 0.25, 0.15, 0.1 };

static void probs_to_logits(const double *probs, int n, float shift, float *logits)
{
    for (int i = 0; i < n; i++)
        logits[i] = (float)log(probs[i]) + shift;
}

static void test_distribution(void)
{
    float logits[4];
    probs_to_logits(k_probs, 4, 3.0f, logits); /* a shift changes nothing */
    sampler_params_t p = sampler_params_default();
    p.has_seed = true;
    p.seed = 7;
    sampler_t *s = make_sampler(&p, 4);
    check_distribution("temperature 1", s, logits, 4, k_probs, 100000);
    sampler_destroy(s);
}

static void test_temperature(void)
{
    const float logits[2] = { 0.0f, 1.0f };
    const float temps[3] = { 0.5f, 2.0f, 1.0f };
    for (int i = 0; i < 3; i++) {
        sampler_params_t p = sampler_params_default();
        p.temperature = temps[i];
        p.has_seed = true;
        p.seed = 100 + (uint64_t)i;
        sampler_t *s = make_sampler(&p, 2);
        double p1 = 1.0 / (1.0 + exp(-1.0 / temps[i]));
        double expect[2] = { 1.0 - p1, p1 };
        char what[64];
        snprintf(what, sizeof(what), "temperature %g", (double)temps[i]);
        check_distribution(what, s, logits, 2, expect, 20000);
        sampler_destroy(s);
    }
}

static void test_top_k(void)
{
    enum { V = 300 };
    static float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(test_rand01() * 6.0 - 3.0);
    int32_t argmax = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[argmax])
            argmax = i;
    sampler_params_t p = sampler_params_default();
    p.top_k = 1;
    p.has_seed = true;
    p.seed = 1;
    sampler_t *s = make_sampler(&p, V);
    for (int i = 0; i < 500; i++)
        CHECK(sample_one(s, logits) == argmax, "top_k 1 must equal greedy");
    sampler_destroy(s);

    /* top_k 2 on the known distribution: tokens 0 and 1 renormalized. */
    float small[4];
    probs_to_logits(k_probs, 4, 0.0f, small);
    p.top_k = 2;
    s = make_sampler(&p, 4);
    const double expect[4] = { 0.5 / 0.75, 0.25 / 0.75, 0.0, 0.0 };
    check_distribution("top_k 2", s, small, 4, expect, 20000);
    sampler_destroy(s);

    /* top_k larger than the vocabulary is no filter. */
    p.top_k = 10;
    s = make_sampler(&p, 4);
    check_distribution("top_k 10 > n_vocab", s, small, 4, k_probs, 20000);
    sampler_destroy(s);
}

static void test_top_p(void)
{
    enum { V = 300 };
    static float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(test_rand01() * 6.0 - 3.0);
    logits[77] = logits[12] = 3.5f; /* a tie at the top: the lower id wins */
    sampler_params_t p = sampler_params_default();
    p.top_p = 1e-6f;
    p.has_seed = true;
    p.seed = 2;
    sampler_t *s = make_sampler(&p, V);
    for (int i = 0; i < 500; i++)
        CHECK(sample_one(s, logits) == 12, "tiny top_p must equal greedy (ties to the lowest id)");
    sampler_destroy(s);

    /* top_p 0.7 on {.5,.25,.15,.1}: mass before token 2 is .75 >= .7, so {0, 1} remain. */
    float small[4];
    probs_to_logits(k_probs, 4, 0.0f, small);
    p.top_p = 0.7f;
    s = make_sampler(&p, 4);
    const double expect[4] = { 0.5 / 0.75, 0.25 / 0.75, 0.0, 0.0 };
    check_distribution("top_p 0.7", s, small, 4, expect, 20000);
    sampler_destroy(s);

    /* top_p 0.8: mass before token 2 is .75 < .8, so it stays; before token 3 .9. */
    p.top_p = 0.8f;
    s = make_sampler(&p, 4);
    const double expect3[4] = { 0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0 };
    check_distribution("top_p 0.8", s, small, 4, expect3, 20000);
    sampler_destroy(s);

    /* Two equal tokens and top_p 0.5: the mass before the second is exactly 0.5, not < 0.5,
     * so only the first (lower id) remains. */
    const float pair[3] = { 0.0f, 0.0f, -1e30f };
    p.top_p = 0.5f;
    s = make_sampler(&p, 3);
    const double expect_pair[3] = { 1.0, 0.0, 0.0 };
    check_distribution("top_p 0.5 on an equal pair", s, pair, 3, expect_pair, 2000);
    sampler_destroy(s);

    /* top_p after top_k renormalizes over the top_k set: top_k 2 then top_p 0.6:
     * {.667, .333}, mass before token 1 is .667 >= .6, so only token 0. */
    p.top_k = 2;
    p.top_p = 0.6f;
    s = make_sampler(&p, 4);
    const double expect1[4] = { 1.0, 0.0, 0.0, 0.0 };
    check_distribution("top_k 2 + top_p 0.6", s, small, 4, expect1, 2000);
    sampler_destroy(s);
}

static void test_min_p(void)
{
    float small[4];
    probs_to_logits(k_probs, 4, 0.0f, small);
    sampler_params_t p = sampler_params_default();
    p.has_seed = true;
    p.seed = 3;
    /* min_p 0.25: keep p >= 0.125, so tokens 0..2. */
    p.min_p = 0.25f;
    sampler_t *s = make_sampler(&p, 4);
    const double expect[4] = { 0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0 };
    check_distribution("min_p 0.25", s, small, 4, expect, 20000);
    sampler_destroy(s);

    /* min_p after top_p: top_p 0.8 keeps 0..2, min_p 0.4 (p >= 0.2) keeps 0..1. */
    p.min_p = 0.4f;
    p.top_p = 0.8f;
    s = make_sampler(&p, 4);
    const double expect2[4] = { 0.5 / 0.75, 0.25 / 0.75, 0.0, 0.0 };
    check_distribution("top_p 0.8 + min_p 0.4", s, small, 4, expect2, 20000);
    sampler_destroy(s);

    /* min_p with top_k: top_k 3 keeps 0..2, min_p 0.4 keeps 0..1. */
    p.top_p = 1.0f;
    p.top_k = 3;
    s = make_sampler(&p, 4);
    check_distribution("top_k 3 + min_p 0.4", s, small, 4, expect2, 20000);
    sampler_destroy(s);
    p.top_k = -1;

    /* min_p 1 keeps only the most likely. */
    p.min_p = 1.0f;
    p.top_p = 1.0f;
    s = make_sampler(&p, 4);
    const double expect1[4] = { 1.0, 0.0, 0.0, 0.0 };
    check_distribution("min_p 1", s, small, 4, expect1, 2000);
    sampler_destroy(s);
}

static void check_processed(const char *what, const sampler_t *s, const float *logits, const float *expect,
                            int n)
{
    float out[8];
    sampler_process_logits(s, logits, out);
    for (int i = 0; i < n; i++)
        CHECK(out[i] == expect[i], "%s: logit %d is %.9g, expected %.9g", what, i, (double)out[i],
              (double)expect[i]);
}

static void test_penalties(void)
{
    const float logits[5] = { 2.0f, -1.0f, 3.0f, -4.0f, 0.5f };
    const int32_t prompt[2] = { 0, 1 };

    /* Repetition: prompt and output tokens; positive / 2, negative * 2. */
    sampler_params_t p = sampler_params_default();
    p.repetition_penalty = 2.0f;
    sampler_t *s = make_sampler(&p, 5);
    CHECK(sampler_set_prompt(s, prompt, 2) == CLLM_OK, "set_prompt");
    CHECK(sampler_accept(s, 3) == CLLM_OK, "accept");
    CHECK(sampler_accept(s, 3) == CLLM_OK, "accept");
    const float rep[5] = { 1.0f, -2.0f, 3.0f, -8.0f, 0.5f };
    check_processed("repetition", s, logits, rep, 5);
    /* A new prompt replaces the old; output history stays. */
    const int32_t prompt2[1] = { 4 };
    CHECK(sampler_set_prompt(s, prompt2, 1) == CLLM_OK, "set_prompt");
    const float rep2[5] = { 2.0f, -1.0f, 3.0f, -8.0f, 0.25f };
    check_processed("repetition, new prompt", s, logits, rep2, 5);
    sampler_reset(s);
    check_processed("after reset", s, logits, logits, 5);
    sampler_destroy(s);

    /* Frequency: output only, count * 0.5. */
    p = sampler_params_default();
    p.frequency_penalty = 0.5f;
    s = make_sampler(&p, 5);
    CHECK(sampler_set_prompt(s, prompt, 2) == CLLM_OK, "set_prompt");
    sampler_accept(s, 2);
    sampler_accept(s, 2);
    sampler_accept(s, 4);
    const float freq[5] = { 2.0f, -1.0f, 2.0f, -4.0f, 0.0f };
    check_processed("frequency", s, logits, freq, 5);
    sampler_destroy(s);

    /* Presence: output only, once. */
    p = sampler_params_default();
    p.presence_penalty = 0.25f;
    s = make_sampler(&p, 5);
    CHECK(sampler_set_prompt(s, prompt, 2) == CLLM_OK, "set_prompt");
    sampler_accept(s, 2);
    sampler_accept(s, 2);
    sampler_accept(s, 4);
    const float pres[5] = { 2.0f, -1.0f, 2.75f, -4.0f, 0.25f };
    check_processed("presence", s, logits, pres, 5);
    /* Negative penalties encourage. */
    sampler_destroy(s);
    p.presence_penalty = -1.0f;
    p.frequency_penalty = -0.5f;
    s = make_sampler(&p, 5);
    sampler_accept(s, 3);
    sampler_accept(s, 3);
    const float neg[5] = { 2.0f, -1.0f, 3.0f, -2.0f, 0.5f };
    check_processed("negative penalties", s, logits, neg, 5);
    sampler_destroy(s);

    /* All three, then bias before penalties: token 1: (-1 + 4) / 2 = 1.5 (penalty first would
     * give -2 + 4 = 2); token 2: 3 / 2 - (2 * 0.5 + 0.25) = 0.25. */
    p = sampler_params_default();
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    const sampler_logit_bias_t bias[2] = { { 1, 4.0f }, { 3, -1.0f } };
    p.logit_bias = bias;
    p.n_logit_bias = 2;
    s = make_sampler(&p, 5);
    CHECK(sampler_set_prompt(s, prompt, 2) == CLLM_OK, "set_prompt");
    sampler_accept(s, 2);
    sampler_accept(s, 2);
    const float all[5] = { 1.0f, 1.5f, 0.25f, -5.0f, 0.5f };
    check_processed("bias + all penalties", s, logits, all, 5);
    /* In place works too. */
    float inplace[5];
    memcpy(inplace, logits, sizeof(inplace));
    sampler_process_logits(s, inplace, inplace);
    CHECK(memcmp(inplace, all, sizeof(all)) == 0, "in-place processing");

    /* Bad tokens are refused and change nothing. */
    const int32_t bad_prompt[2] = { 1, 5 };
    CHECK(sampler_set_prompt(s, bad_prompt, 2) == CLLM_ERR_INVALID_ARG, "prompt token out of range");
    CHECK(sampler_accept(s, -1) == CLLM_ERR_INVALID_ARG, "accept -1");
    CHECK(sampler_accept(s, 5) == CLLM_ERR_INVALID_ARG, "accept n_vocab");
    check_processed("after refused calls", s, logits, all, 5);
    sampler_destroy(s);

    /* The penalties steer sampling: greedy moves off a repeated token. */
    p = sampler_params_default();
    p.temperature = 0.0f;
    p.frequency_penalty = 1.0f;
    s = make_sampler(&p, 2);
    const float two[2] = { 3.0f, 2.5f };
    sampler_result_t r;
    CHECK(sampler_sample(s, two, &r) == CLLM_OK && r.token == 0, "before penalty");
    sampler_accept(s, 0);
    CHECK(sampler_sample(s, two, &r) == CLLM_OK && r.token == 1, "frequency penalty moves greedy");
    /* The logprob stays the raw one. */
    double raw = 2.5 - (3.0 + log(1.0 + exp(-0.5)));
    CHECK(fabs(r.logprob - raw) < 1e-6, "logprob is of the raw logits: %g vs %g", (double)r.logprob, raw);
    sampler_destroy(s);
}

static void test_logit_bias(void)
{
    enum { V = 1000 };
    static float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(test_rand01() * 10.0 - 5.0);
    logits[0] = 20.0f;
    const sampler_logit_bias_t force = { 7, 100.0f };
    const sampler_logit_bias_t ban = { 0, -100.0f };
    sampler_params_t p = sampler_params_default();
    p.has_seed = true;
    p.seed = 9;
    p.logit_bias = &force;
    p.n_logit_bias = 1;
    sampler_t *s = make_sampler(&p, V);
    for (int i = 0; i < 200; i++)
        CHECK(sample_one(s, logits) == 7, "bias +100 forces the token");
    sampler_destroy(s);

    p.logit_bias = &ban;
    s = make_sampler(&p, V);
    for (int i = 0; i < 1000; i++)
        CHECK(sample_one(s, logits) != 0, "bias -100 bans the token");
    sampler_destroy(s);
    p.temperature = 0.0f;
    s = make_sampler(&p, V);
    CHECK(sample_one(s, logits) != 0, "bias -100 bans the token under greedy too");
    sampler_destroy(s);
}

/* Reference: log-softmax in double and the top order by (logprob desc, id asc). */
typedef struct {
    double lp;
    int32_t id;
} ref_lp_t;

static int ref_lp_cmp(const void *pa, const void *pb)
{
    const ref_lp_t *a = pa, *b = pb;
    if (a->lp != b->lp)
        return a->lp > b->lp ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void test_logprobs(void)
{
    enum { V = 1000 };
    static float logits[V];
    static double ref[V];
    static ref_lp_t order[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)(test_rand01() * 16.0 - 8.0);
    logits[500] = logits[100] = 9.0f; /* a tie at the top */
    logits[3] = -INFINITY;             /* a masked token */
    double m = -INFINITY, sum = 0.0;
    for (int i = 0; i < V; i++)
        m = fmax(m, logits[i]);
    for (int i = 0; i < V; i++)
        sum += exp((double)logits[i] - m);
    for (int i = 0; i < V; i++) {
        ref[i] = (double)logits[i] - m - log(sum);
        order[i].lp = ref[i];
        order[i].id = i;
    }
    qsort(order, V, sizeof(order[0]), ref_lp_cmp);

    sampler_params_t p = sampler_params_default();
    p.n_top_logprobs = SAMPLER_MAX_TOP_LOGPROBS;
    p.temperature = 0.7f;
    p.repetition_penalty = 1.3f;
    p.has_seed = true;
    p.seed = 11;
    sampler_t *s = make_sampler(&p, V);
    sampler_accept(s, 100);
    for (int k = 0; k < 50; k++) {
        sampler_result_t r;
        CHECK(sampler_sample(s, logits, &r) == CLLM_OK, "sample");
        CHECK(r.token != 3, "a -inf token was drawn");
        CHECK(fabs(r.logprob - ref[r.token]) <= 1e-5 + 1e-6 * fabs(ref[r.token]),
              "logprob of %d: %.9g vs %.9g", r.token, (double)r.logprob, ref[r.token]);
        CHECK(r.n_top == SAMPLER_MAX_TOP_LOGPROBS, "n_top %d", r.n_top);
        for (int j = 0; j < r.n_top; j++) {
            CHECK(r.top[j].token == order[j].id, "top[%d] is %d, expected %d", j, r.top[j].token, order[j].id);
            CHECK(fabs(r.top[j].logprob - order[j].lp) <= 1e-5, "top[%d] logprob %.9g vs %.9g", j,
                  (double)r.top[j].logprob, order[j].lp);
            if (j > 0)
                CHECK(r.top[j].logprob <= r.top[j - 1].logprob, "top not sorted at %d", j);
        }
    }
    sampler_destroy(s);

    /* n_top_logprobs larger than the vocabulary is clipped; 0 gives none. */
    p = sampler_params_default();
    p.n_top_logprobs = 5;
    s = make_sampler(&p, 3);
    const float three[3] = { 1.0f, 1.0f, 2.0f };
    sampler_result_t r;
    CHECK(sampler_sample(s, three, &r) == CLLM_OK, "sample");
    CHECK(r.n_top == 3 && r.top[0].token == 2 && r.top[1].token == 0 && r.top[2].token == 1,
          "clipped top: n %d, %d %d %d", r.n_top, r.top[0].token, r.top[1].token, r.top[2].token);
    sampler_destroy(s);
    p.n_top_logprobs = 0;
    s = make_sampler(&p, 3);
    CHECK(sampler_sample(s, three, &r) == CLLM_OK && r.n_top == 0, "no top logprobs");
    sampler_destroy(s);
}

static void test_bad_logits(void)
{
    sampler_params_t p = sampler_params_default();
    sampler_t *s = make_sampler(&p, 3);
    sampler_result_t r;
    const float with_nan[3] = { 1.0f, NAN, 0.0f };
    const float with_inf[3] = { 1.0f, INFINITY, 0.0f };
    const float all_masked[3] = { -INFINITY, -INFINITY, -INFINITY };
    CHECK(sampler_sample(s, with_nan, &r) == CLLM_ERR_INVALID_ARG, "NaN logits refused");
    CHECK(sampler_sample(s, with_inf, &r) == CLLM_ERR_INVALID_ARG, "+inf logits refused");
    CHECK(sampler_sample(s, all_masked, &r) == CLLM_ERR_INVALID_ARG, "all -inf refused");
    CHECK(sampler_sample(s, NULL, &r) == CLLM_ERR_INVALID_ARG, "NULL logits refused");
    sampler_destroy(s);
}

/* Draws n times; checks every token lies in want (n_vocab flags) and every wanted token shows
 * up (the tests size n so that each is expected >= 25 times). */
static void check_drawn_set(const char *what, sampler_t *s, const float *logits, int32_t n_vocab,
                            const uint8_t *want, int n)
{
    uint8_t *drawn = calloc((size_t)n_vocab, 1);
    if (!drawn) {
        fprintf(stderr, "FATAL: out of memory\n");
        exit(1);
    }
    int outside = 0, missing = 0, n_want = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = sample_one(s, logits);
        if (t < 0)
            break;
        outside += !want[t];
        drawn[t] = 1;
    }
    for (int32_t t = 0; t < n_vocab; t++) {
        n_want += want[t];
        missing += want[t] && !drawn[t];
    }
    CHECK(outside == 0, "%s: %d draws outside the expected set", what, outside);
    CHECK(missing == 0, "%s: %d of %d expected tokens never drawn", what, missing, n_want);
    free(drawn);
}

/* Large vocabulary: the drawn set must equal the set a full sort gives. */
static void test_large_vocab(void)
{
    enum { V = 128256, K = 40, DRAWS = 1000 };
    float *logits = malloc(V * sizeof(*logits));
    ref_lp_t *order = malloc(V * sizeof(*order));
    uint8_t *want = calloc(V, 1);
    if (!logits || !order || !want) {
        fprintf(stderr, "FATAL: out of memory\n");
        exit(1);
    }

    /* top_k over uniform random logits in [0, 1): the top K are near-equal. */
    for (int i = 0; i < V; i++) {
        logits[i] = (float)test_rand01();
        order[i].lp = logits[i];
        order[i].id = i;
    }
    qsort(order, V, sizeof(order[0]), ref_lp_cmp);
    for (int i = 0; i < K; i++)
        want[order[i].id] = 1;
    sampler_params_t p = sampler_params_default();
    p.top_k = K;
    p.has_seed = true;
    p.seed = 5;
    sampler_t *s = make_sampler(&p, V);
    check_drawn_set("top_k 40", s, logits, V, want, DRAWS);
    sampler_destroy(s);

    /* Ascending logits (every token enters the heap). */
    for (int i = 0; i < V; i++) {
        logits[i] = (float)i * 1e-4f;
        want[i] = i >= V - 20;
    }
    p.top_k = 20;
    s = make_sampler(&p, V);
    check_drawn_set("top_k 20, ascending", s, logits, V, want, 500);
    sampler_destroy(s);

    /* top_p 0.5 over 80 near-equal tokens (spread over several histogram buckets) above a
     * floor of -20: about 40 remain. The boundary must not be a near tie for the reference
     * to be exact. */
    memset(want, 0, V);
    for (int i = 0; i < V; i++)
        logits[i] = -20.0f;
    for (int i = 0; i < 80; i++)
        logits[(int64_t)i * 1601 % V] = (float)(test_rand01() * 0.3);
    double m = -INFINITY, z = 0.0;
    for (int i = 0; i < V; i++)
        m = fmax(m, logits[i]);
    for (int i = 0; i < V; i++) {
        order[i].lp = exp((double)logits[i] - m);
        order[i].id = i;
        z += order[i].lp;
    }
    qsort(order, V, sizeof(order[0]), ref_lp_cmp);
    double acc = 0.0;
    int cut = 0;
    while (acc < 0.5 * z) {
        acc += order[cut].lp;
        want[order[cut].id] = 1;
        cut++;
    }
    CHECK(acc - 0.5 * z > 1e-4 * z && 0.5 * z - (acc - order[cut - 1].lp) > 1e-4 * z,
          "test setup: top_p boundary too close to call");
    CHECK(cut > 20 && cut < 60, "test setup: nucleus of %d", cut);
    p = sampler_params_default();
    p.top_p = 0.5f;
    p.has_seed = true;
    p.seed = 6;
    s = make_sampler(&p, V);
    check_drawn_set("top_p 0.5", s, logits, V, want, DRAWS);
    sampler_destroy(s);

    /* The same after a top_k of 1000 (the 80 and 920 floor tokens: their mass is tiny). */
    p.top_k = 1000;
    s = make_sampler(&p, V);
    check_drawn_set("top_k 1000 + top_p 0.5", s, logits, V, want, DRAWS);
    sampler_destroy(s);

    free(logits);
    free(order);
    free(want);
}

static void expect_invalid(const sampler_params_t *p, int32_t n_vocab, const char *field)
{
    status_t st = sampler_params_validate(p, n_vocab);
    CHECK(st == CLLM_ERR_INVALID_ARG, "%s: validate returned %d", field, (int)st);
    CHECK(strstr(cllm_error_message(), field) != NULL, "%s: message '%s' does not name it", field,
          cllm_error_message());
    sampler_t *s = (sampler_t *)&st; /* any non-NULL value: create must reset it */
    CHECK(sampler_create(p, n_vocab, NULL, &s) == CLLM_ERR_INVALID_ARG && s == NULL, "%s: create accepted", field);
}

static void test_validation(void)
{
    const sampler_params_t d = sampler_params_default();
    CHECK(sampler_params_validate(&d, 10) == CLLM_OK, "defaults: %s", cllm_error_message());
    CHECK(d.temperature == 1.0f && d.top_k == -1 && d.top_p == 1.0f && d.min_p == 0.0f && !d.has_seed &&
              d.repetition_penalty == 1.0f && d.frequency_penalty == 0.0f && d.presence_penalty == 0.0f &&
              d.n_logit_bias == 0 && d.n_top_logprobs == 0,
          "defaults are not the OpenAI/vLLM ones");

    sampler_params_t p;
#define BAD(field_name, assign)         \
    do {                                \
        p = d;                          \
        assign;                         \
        expect_invalid(&p, 10, field_name); \
    } while (0)
    BAD("temperature", p.temperature = -0.1f);
    BAD("temperature", p.temperature = NAN);
    BAD("temperature", p.temperature = INFINITY);
    BAD("top_k", p.top_k = -2);
    BAD("top_p", p.top_p = 0.0f);
    BAD("top_p", p.top_p = 1.01f);
    BAD("top_p", p.top_p = NAN);
    BAD("min_p", p.min_p = -0.01f);
    BAD("min_p", p.min_p = 1.5f);
    BAD("repetition_penalty", p.repetition_penalty = 0.0f);
    BAD("repetition_penalty", p.repetition_penalty = -1.0f);
    BAD("frequency_penalty", p.frequency_penalty = 2.5f);
    BAD("frequency_penalty", p.frequency_penalty = -2.01f);
    BAD("presence_penalty", p.presence_penalty = 3.0f);
    BAD("presence_penalty", p.presence_penalty = -2.5f);
    BAD("n_top_logprobs", p.n_top_logprobs = -1);
    BAD("n_top_logprobs", p.n_top_logprobs = SAMPLER_MAX_TOP_LOGPROBS + 1);
    BAD("logit_bias", p.n_logit_bias = 1);
    const sampler_logit_bias_t bad_tok[2] = { { 0, 1.0f }, { 10, 1.0f } };
    const sampler_logit_bias_t neg_tok = { -1, 1.0f };
    const sampler_logit_bias_t big = { 2, 100.5f };
    const sampler_logit_bias_t small = { 2, -101.0f };
    BAD("logit_bias[1] token", (p.logit_bias = bad_tok, p.n_logit_bias = 2));
    BAD("logit_bias[0] token", (p.logit_bias = &neg_tok, p.n_logit_bias = 1));
    BAD("logit_bias[0] bias", (p.logit_bias = &big, p.n_logit_bias = 1));
    BAD("logit_bias[0] bias", (p.logit_bias = &small, p.n_logit_bias = 1));
#undef BAD
    expect_invalid(&d, 0, "n_vocab");

    /* Edges that are allowed. */
    p = d;
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.frequency_penalty = -2.0f;
    p.presence_penalty = 2.0f;
    p.repetition_penalty = 0.01f;
    p.n_top_logprobs = SAMPLER_MAX_TOP_LOGPROBS;
    const sampler_logit_bias_t edge[2] = { { 0, -100.0f }, { 9, 100.0f } };
    p.logit_bias = edge;
    p.n_logit_bias = 2;
    CHECK(sampler_params_validate(&p, 10) == CLLM_OK, "edge values refused: %s", cllm_error_message());
}

/* Samplers sharing one scratch, interleaved, draw what samplers with their own draw, with and
 * without penalties (whose history each keeps for itself); a too small scratch is refused. */
static void test_shared_scratch(void)
{
    enum { V = 777, N = 300 };
    static float logits[V];
    static int32_t own[2][N], shared[2][N];
    sampler_scratch_t *sc = NULL, *small = NULL;
    sampler_t *s[2], *t[2], *x = NULL;
    sampler_params_t p[2] = { sampler_params_default(), sampler_params_default() };
    for (int i = 0; i < V; i++)
        logits[i] = (float)(test_rand01() * 6.0);
    p[0].has_seed = p[1].has_seed = true;
    p[0].seed = 7;
    p[1].seed = 8;
    p[0].top_k = 50;
    p[1].top_p = 0.9f;
    p[1].frequency_penalty = 0.5f;
    p[1].repetition_penalty = 1.3f;
    CHECK(sampler_scratch_create(V, &sc) == CLLM_OK && sampler_scratch_create(V - 1, &small) == CLLM_OK,
          "sampler_scratch_create: %s", cllm_error_message());
    if (!sc || !small)
        return;
    for (int k = 0; k < 2; k++) {
        s[k] = make_sampler(&p[k], V);
        t[k] = NULL;
        CHECK(sampler_create(&p[k], V, sc, &t[k]) == CLLM_OK, "sampler_create with a shared scratch: %s",
              cllm_error_message());
    }
    if (t[0] && t[1]) {
        for (int i = 0; i < N; i++)
            for (int k = 0; k < 2; k++) {
                own[k][i] = sample_one(s[k], logits);
                shared[k][i] = sample_one(t[k], logits);
                sampler_accept(s[k], own[k][i]);
                sampler_accept(t[k], shared[k][i]);
            }
        CHECK(memcmp(own, shared, sizeof(own)) == 0, "a shared scratch changed the tokens drawn");
    }
    CHECK(sampler_create(&p[0], V, small, &x) == CLLM_ERR_INVALID_ARG && x == NULL,
          "a scratch for %d logits was accepted for a vocabulary of %d", V - 1, V);
    for (int k = 0; k < 2; k++) {
        sampler_destroy(s[k]);
        sampler_destroy(t[k]);
    }
    sampler_scratch_destroy(sc);
    sampler_scratch_destroy(small);
}

int main(void)
{
    test_greedy();
    test_seed_determinism();
    test_distribution();
    test_temperature();
    test_top_k();
    test_top_p();
    test_min_p();
    test_penalties();
    test_logit_bias();
    test_logprobs();
    test_bad_logits();
    test_large_vocab();
    test_validation();
    test_shared_scratch();
    if (check_failures) {
        fprintf(stderr, "test_sampler: %d failure(s)\n", check_failures);
        return 1;
    }
    printf("test_sampler: all passed\n");
    return 0;
}

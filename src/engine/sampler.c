/* sampler.c: logit processing and token sampling for one request (see sampler.h).
 *
 * Owns: a copy of the parameters and logit biases, the PRNG state (xoshiro256**, seeded by
 * splitmix64), the penalty history and the per-token scratch, all sized once in create.
 *
 * Per token the work is a few linear passes over the vocabulary and no full sort:
 * - max and argmax (vectorized), raw log-sum-exp (vectorized exp; shared with the weights
 *   when they are the raw softmax's), top logprobs (a sorted array of <= 20);
 * - weights w = exp((x - max) / T) into a vocabulary-indexed array (vectorized), min_p folded
 *   in as a mask when top_p does not need the full mass;
 * - top_k: one pass over the logits with a heap of k candidates (most tokens cost one
 *   comparison), weights for those k only;
 * - top_p: a histogram of mass over buckets of 1/16 of the scaled logit finds the bucket
 *   where the cumulative mass crosses top_p; only that bucket's tokens are sorted;
 * - the draw: block sums of 64 weights, then one block scanned.
 *
 * Invariants:
 * - seen[0..n_seen) lists, once each, the tokens with in_prompt[t] != 0 or out_count[t] > 0,
 *   so the penalties cost O(distinct tokens seen), not O(n_vocab). Without a penalty the
 *   three history arrays are not allocated (n_seen stays 0).
 * - The step buffers (x, w, block, cand) hold nothing between steps, so samplers may share one
 *   sampler_scratch_t (the engine's) as long as they sample from one thread at a time.
 * - Candidates are ordered by (processed logit x desc, id asc), a total order since ids are
 *   unique: every selection, sort and tie-break gives the same answer for the same input.
 *   The scaled logit s = (x - max) * (1 / T) is computed by the same float operations
 *   everywhere, so every threshold on s (min_p, top_p buckets) agrees with that order.
 * - A token can be drawn iff its weight is > 0 in float (s >= SAMPLER_EXP_MIN): tokens less
 *   likely than e^-87 times the best never are. The best token (s = 0, w = 1) survives
 *   top_k, top_p and min_p, so the candidate set is never empty.
 * - sampler_sample() allocates nothing and only reads the caller's logits. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, getrandom */
#endif
#include "engine/sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* A candidate token: its processed logit x and weight w = exp((x - max) / temperature). */
typedef struct {
    float x;
    float w;
    int32_t id;
} sampler_cand_t;

/* The draw sums weights in blocks of this many, then scans one block. */
#define SAMPLER_DRAW_BLOCK 64
/* top_p histogram: buckets of 1/16 of s (weights e^(1/16) ~ 6% apart) down to s = -32
 * (e^-32 ~ 1e-14 of the best); the last bucket takes the rest. */
#define SAMPLER_BUCKETS_PER_UNIT 16.0f
#define SAMPLER_N_BUCKETS 512u
/* exp() of anything below this is taken as 0 (e^-87 is near FLT_MIN). */
#define SAMPLER_EXP_MIN (-87.0f)

struct sampler {
    sampler_params_t p;         /* p.logit_bias points at bias below */
    sampler_logit_bias_t *bias; /* (p.n_logit_bias) */
    int32_t n_vocab;
    uint64_t rng[4];            /* xoshiro256** state, never all zero */

    sampler_scratch_t *own;     /* the scratch this sampler allocated, or NULL when shared */
    /* Step-local buffers, from own or the shared scratch (nothing survives a step in them): */
    float *x;                   /* (n_vocab) processed logits of the current step */
    float *w;                   /* (n_vocab) weights exp(s) by token id; later by candidate */
    double *block;              /* (n_vocab / SAMPLER_DRAW_BLOCK + 1) block sums of the draw */
    sampler_cand_t *cand;       /* (n_vocab) candidates of the current step */

    /* History, allocated only when a penalty is on (NULL otherwise: nothing to remember): */
    int32_t *out_count;         /* (n_vocab) times each token was generated */
    uint8_t *in_prompt;         /* (n_vocab) 1 if the token is in the prompt */
    int32_t *seen;              /* (n_vocab) distinct tokens with in_prompt or out_count > 0 */
    int32_t n_seen;
};

/* ---- PRNG ---------------------------------------------------------------------------- */

static uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t v, int k)
{
    return (v << k) | (v >> (64 - k));
}

static uint64_t rng_next(uint64_t st[4])
{
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t st[4])
{
    return (double)(rng_next(st) >> 11) * 0x1.0p-53;
}

static void rng_seed(uint64_t st[4], uint64_t seed)
{
    /* splitmix64's output is a bijection of its counter, so four successive outputs are
     * distinct and never all zero, as xoshiro requires. */
    for (int i = 0; i < 4; i++)
        st[i] = splitmix64_next(&seed);
}

/* A seed from the OS; if getrandom fails (very old kernel, seccomp), the clock and an address. */
static uint64_t seed_from_os(const void *salt)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), 0) == (ssize_t)sizeof(seed))
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)salt;
    return splitmix64_next(&mix);
}

/* ---- parameters ---------------------------------------------------------------------- */

sampler_params_t sampler_params_default(void)
{
    sampler_params_t p;
    memset(&p, 0, sizeof(p));
    p.temperature = 1.0f;
    p.top_k = -1;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.has_seed = false;
    p.repetition_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.logit_bias = NULL;
    p.n_logit_bias = 0;
    p.n_top_logprobs = 0;
    return p;
}

/* Comparisons are written so that NaN fails them (!(x >= lo) is true for NaN). */
status_t sampler_params_validate(const sampler_params_t *p, int32_t n_vocab)
{
    if (!p)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: params is NULL");
    if (n_vocab < 1)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: n_vocab must be >= 1, got %d", n_vocab);
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: temperature must be finite and >= 0, got %g",
                          (double)p->temperature);
    if (p->top_k < -1)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: top_k must be -1 (or 0) to disable or >= 1, got %d",
                          p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: top_p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: min_p must be in [0, 1], got %g", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: repetition_penalty must be finite and > 0, got %g",
                          (double)p->repetition_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: frequency_penalty must be in [-2, 2], got %g",
                          (double)p->frequency_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: presence_penalty must be in [-2, 2], got %g",
                          (double)p->presence_penalty);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: logit_bias is NULL but n_logit_bias is %zu",
                          p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const sampler_logit_bias_t *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: logit_bias[%zu] token must be in [0, %d), got %d",
                              i, n_vocab, b->token);
        if (!(b->bias >= -100.0f && b->bias <= 100.0f))
            return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: logit_bias[%zu] bias must be in [-100, 100], got %g",
                              i, (double)b->bias);
    }
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: n_top_logprobs must be in [0, %d], got %d",
                          SAMPLER_MAX_TOP_LOGPROBS, p->n_top_logprobs);
    return CLLM_OK;
}

/* ---- lifetime and history ------------------------------------------------------------ */

struct sampler_scratch {
    int32_t n_vocab;
    float *x;              /* (n_vocab) */
    float *w;              /* (n_vocab) */
    double *block;         /* (n_vocab / SAMPLER_DRAW_BLOCK + 1) */
    sampler_cand_t *cand;  /* (n_vocab) */
};

status_t sampler_scratch_create(int32_t n_vocab, sampler_scratch_t **out)
{
    sampler_scratch_t *sc;
    size_t n = (size_t)n_vocab;
    if (!out || n_vocab < 1)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: scratch needs n_vocab >= 1, got %d", n_vocab);
    *out = NULL;
    sc = calloc(1, sizeof(*sc));
    if (!sc)
        return cllm_error(CLLM_ERR_NOMEM, "sampler: out of memory");
    sc->n_vocab = n_vocab;
    sc->x = malloc(n * sizeof(*sc->x));
    sc->w = malloc(n * sizeof(*sc->w));
    sc->block = malloc((n / SAMPLER_DRAW_BLOCK + 1) * sizeof(*sc->block));
    sc->cand = malloc(n * sizeof(*sc->cand));
    if (!sc->x || !sc->w || !sc->block || !sc->cand) {
        sampler_scratch_destroy(sc);
        return cllm_error(CLLM_ERR_NOMEM, "sampler: out of memory for n_vocab %d", n_vocab);
    }
    *out = sc;
    return CLLM_OK;
}

void sampler_scratch_destroy(sampler_scratch_t *sc)
{
    if (!sc)
        return;
    free(sc->x);
    free(sc->w);
    free(sc->block);
    free(sc->cand);
    free(sc);
}

static bool params_have_penalties(const sampler_params_t *p)
{
    return p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

status_t sampler_create(const sampler_params_t *p, int32_t n_vocab, sampler_scratch_t *scratch, sampler_t **out)
{
    if (!out)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    status_t st = sampler_params_validate(p, n_vocab);
    if (st != CLLM_OK)
        return st;
    if (scratch && scratch->n_vocab < n_vocab)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: the shared scratch holds %d logits, the vocabulary %d",
                          scratch->n_vocab, n_vocab);

    sampler_t *s = calloc(1, sizeof(*s));
    if (!s)
        return cllm_error(CLLM_ERR_NOMEM, "sampler: out of memory");
    size_t n = (size_t)n_vocab;
    s->p = *p;
    s->n_vocab = n_vocab;
    if (!scratch) {
        if ((st = sampler_scratch_create(n_vocab, &s->own)) != CLLM_OK) {
            free(s);
            return st;
        }
        scratch = s->own;
    }
    s->x = scratch->x;
    s->w = scratch->w;
    s->block = scratch->block;
    s->cand = scratch->cand;
    bool history = params_have_penalties(p);
    if (history) {
        s->out_count = calloc(n, sizeof(*s->out_count));
        s->in_prompt = calloc(n, sizeof(*s->in_prompt));
        s->seen = malloc(n * sizeof(*s->seen));
    }
    if (p->n_logit_bias > 0) {
        s->bias = malloc(p->n_logit_bias * sizeof(*s->bias));
        if (s->bias)
            memcpy(s->bias, p->logit_bias, p->n_logit_bias * sizeof(*s->bias));
    }
    s->p.logit_bias = s->bias;
    if ((history && (!s->out_count || !s->in_prompt || !s->seen)) || (p->n_logit_bias > 0 && !s->bias)) {
        sampler_destroy(s);
        return cllm_error(CLLM_ERR_NOMEM, "sampler: out of memory for n_vocab %d", n_vocab);
    }
    rng_seed(s->rng, p->has_seed ? p->seed : seed_from_os(s));
    *out = s;
    return CLLM_OK;
}

void sampler_destroy(sampler_t *s)
{
    if (!s)
        return;
    sampler_scratch_destroy(s->own);
    free(s->out_count);
    free(s->in_prompt);
    free(s->seen);
    free(s->bias);
    free(s);
}

static void seen_add(sampler_t *s, int32_t t)
{
    if (!s->in_prompt[t] && s->out_count[t] == 0)
        s->seen[s->n_seen++] = t;
}

status_t sampler_set_prompt(sampler_t *s, const int32_t *tokens, size_t n)
{
    if (!s || (n > 0 && !tokens))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: set_prompt: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->n_vocab)
            return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: prompt token %zu is %d, outside [0, %d)", i,
                              tokens[i], s->n_vocab);
    if (!s->out_count)
        return CLLM_OK; /* no penalty: no history to keep */
    /* Drop the old prompt, keeping the tokens the output still holds. */
    int32_t kept = 0;
    for (int32_t i = 0; i < s->n_seen; i++) {
        int32_t t = s->seen[i];
        s->in_prompt[t] = 0;
        if (s->out_count[t] > 0)
            s->seen[kept++] = t;
    }
    s->n_seen = kept;
    for (size_t i = 0; i < n; i++) {
        seen_add(s, tokens[i]);
        s->in_prompt[tokens[i]] = 1;
    }
    return CLLM_OK;
}

status_t sampler_accept(sampler_t *s, int32_t token)
{
    if (!s)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: accept: sampler is NULL");
    if (token < 0 || token >= s->n_vocab)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: accepted token %d is outside [0, %d)", token,
                          s->n_vocab);
    if (!s->out_count)
        return CLLM_OK;
    seen_add(s, token);
    if (s->out_count[token] < INT32_MAX)
        s->out_count[token]++;
    return CLLM_OK;
}

void sampler_reset(sampler_t *s)
{
    if (!s || !s->out_count)
        return;
    for (int32_t i = 0; i < s->n_seen; i++) {
        s->in_prompt[s->seen[i]] = 0;
        s->out_count[s->seen[i]] = 0;
    }
    s->n_seen = 0;
}

/* ---- logit processing ---------------------------------------------------------------- */

static bool sampler_has_penalties(const sampler_t *s)
{
    return s->n_seen > 0 && (s->p.repetition_penalty != 1.0f || s->p.frequency_penalty != 0.0f ||
                             s->p.presence_penalty != 0.0f);
}

void sampler_process_logits(const sampler_t *s, const float *logits, float *out)
{
    if (out != logits)
        memcpy(out, logits, (size_t)s->n_vocab * sizeof(*out));
    for (size_t i = 0; i < s->p.n_logit_bias; i++)
        out[s->bias[i].token] += s->bias[i].bias;
    if (!sampler_has_penalties(s))
        return;
    const float rep = s->p.repetition_penalty;
    const float freq = s->p.frequency_penalty;
    const float pres = s->p.presence_penalty;
    for (int32_t i = 0; i < s->n_seen; i++) {
        int32_t t = s->seen[i];
        float v = out[t];
        if (rep != 1.0f)
            v = v > 0.0f ? v / rep : v * rep;
        int32_t count = s->out_count[t];
        if (count > 0)
            v -= (float)count * freq + pres;
        out[t] = v;
    }
}

/* ---- vectorized exp ------------------------------------------------------------------ */

/* Four floats: GCC/clang generic vectors, plain SSE2 on x86-64 and NEON on arm64, no ISA flags. */
typedef float sampler_vf __attribute__((vector_size(16)));
typedef int32_t sampler_vi __attribute__((vector_size(16)));
#define SAMPLER_VLEN 4

static inline sampler_vf vf_load(const float *p)
{
    sampler_vf v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Loads the m < SAMPLER_VLEN floats at p, the other lanes -inf (weight 0). */
static inline sampler_vf vf_load_tail(const float *p, size_t m)
{
    float tmp[SAMPLER_VLEN] = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
    memcpy(tmp, p, m * sizeof(*p));
    return vf_load(tmp);
}

static inline sampler_vf vf_select(sampler_vi mask, sampler_vf a, sampler_vf b)
{
    return (sampler_vf)(((sampler_vi)a & mask) | ((sampler_vi)b & ~mask));
}

/* Max of x (n >= 1) and the first index holding it (ties go to the lowest id); false if x
 * holds NaN or +inf (-inf entries are allowed). Each lane keeps its first maximum; across
 * lanes the lowest index among the lanes holding the max wins. */
static bool logits_max(const float *x, size_t n, float *max, size_t *argmax)
{
    sampler_vf m = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
    sampler_vi bad = { 0, 0, 0, 0 };
    sampler_vi idx = { 0, 1, 2, 3 }, best = { 0, 1, 2, 3 };
    size_t i = 0;
    for (; i < n; i += SAMPLER_VLEN, idx += SAMPLER_VLEN) {
        const sampler_vf v = i + SAMPLER_VLEN <= n ? vf_load(x + i) : vf_load_tail(x + i, n - i);
        bad |= ~(v <= FLT_MAX); /* NaN and +inf */
        const sampler_vi gt = v > m;
        m = vf_select(gt, v, m);
        best = (idx & gt) | (best & ~gt);
    }
    float mx = m[0];
    int32_t at = best[0];
    for (int l = 1; l < SAMPLER_VLEN; l++) {
        if (m[l] > mx || (m[l] == mx && best[l] < at)) {
            mx = m[l];
            at = best[l];
        }
    }
    *max = mx;
    *argmax = (size_t)at;
    return !(bad[0] | bad[1] | bad[2] | bad[3]);
}

/* exp(x) per lane for x <= 0; lanes below SAMPLER_EXP_MIN (-inf included) give 0.
 * Cody-Waite reduction x = n ln2 + r, |r| <= 0.35, then e^r = 1 + r q(r) with q of degree 5
 * fitted at Chebyshev nodes on [-0.35, 0.35] (max relative error ~1e-7 in float, exp(0) = 1
 * exactly), and 2^n built in the exponent bits (n >= -126: always a normal float). */
static inline sampler_vf vf_exp_nonpos(sampler_vf x)
{
    const sampler_vf zero = { 0.0f, 0.0f, 0.0f, 0.0f };
    const sampler_vi keep = x >= SAMPLER_EXP_MIN;
    x = vf_select(keep, x, zero + SAMPLER_EXP_MIN);
    const sampler_vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x/ln2) */
    sampler_vf r = x - n * 0.693359375f;                                         /* exact product */
    r = r + n * 2.12194440e-4f;                                                  /* ln2 remainder */
    sampler_vf q = r * 0.001393453218f + 0.008369861171f;
    q = q * r + 0.04166645557f;
    q = q * r + 0.1666649878f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    const sampler_vf p = r * q + 1.0f;
    const sampler_vi bits = (__builtin_convertvector(n, sampler_vi) + 127) << 23;
    const sampler_vf y = p * (sampler_vf)bits;
    return (sampler_vf)((sampler_vi)y & keep);
}

/* Sum of the weights exp(s), s = (x - max) * inv_t, of x (n), a weight being 0 where
 * s < floor_s or s < SAMPLER_EXP_MIN; also stores them in w (n) unless w is NULL. Float lanes
 * over blocks of 256, then double across blocks: ~1e-7 relative accuracy at any n. */
static double weights_sum(const float *x, size_t n, float max, float inv_t, float floor_s, float *w)
{
    double total = 0.0;
    size_t i = 0;
    while (i < n) {
        sampler_vf acc = { 0.0f, 0.0f, 0.0f, 0.0f };
        const size_t end = n - i > 256 ? i + 256 : n;
        for (; i < end; i += SAMPLER_VLEN) {
            const size_t m = end - i < SAMPLER_VLEN ? end - i : SAMPLER_VLEN;
            const sampler_vf sv = ((m == SAMPLER_VLEN ? vf_load(x + i) : vf_load_tail(x + i, m)) - max) * inv_t;
            const sampler_vf e = (sampler_vf)((sampler_vi)vf_exp_nonpos(sv) & (sv >= floor_s));
            acc += e;
            if (w)
                memcpy(w + i, &e, m * sizeof(*w));
        }
        total += ((double)acc[0] + (double)acc[1]) + ((double)acc[2] + (double)acc[3]);
    }
    return total;
}

/* ---- candidates ---------------------------------------------------------------------- */

/* The candidate order: higher processed logit first, then lower id. */
static inline bool cand_before(const sampler_cand_t *a, const sampler_cand_t *b)
{
    return a->x > b->x || (a->x == b->x && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const sampler_cand_t *a = pa, *b = pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

static inline void cand_swap(sampler_cand_t *c, size_t i, size_t j)
{
    sampler_cand_t t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* top_k: the k first tokens in cand order among those with x > -inf, into s->cand
 * (unsorted, weights not set). A heap whose root is the last of the kept ones: a token
 * below the root costs one float compare. Returns the count (< k only if fewer tokens). */
static size_t cand_top_k(sampler_t *s, const float *x, size_t k)
{
    sampler_cand_t *h = s->cand; /* (k) heap: no child comes after its parent */
    const size_t n_vocab = (size_t)s->n_vocab;
    size_t n = 0, i = 0;
    for (; i < n_vocab && n < k; i++) {
        if (x[i] == -INFINITY)
            continue;
        const sampler_cand_t c = { x[i], 0.0f, (int32_t)i };
        size_t j = n++; /* sift up: a parent must not come before its child */
        while (j > 0 && cand_before(&h[(j - 1) / 2], &c)) {
            h[j] = h[(j - 1) / 2];
            j = (j - 1) / 2;
        }
        h[j] = c;
    }
    for (; i < n_vocab; i++) {
        if (x[i] < h[0].x)
            continue;
        const sampler_cand_t c = { x[i], 0.0f, (int32_t)i };
        if (!cand_before(&c, &h[0]))
            continue;
        size_t j = 0; /* replace the root, sift down towards the child that comes later */
        for (;;) {
            const size_t l = 2 * j + 1;
            if (l >= n)
                break;
            const size_t m = l + 1 < n && cand_before(&h[l], &h[l + 1]) ? l + 1 : l;
            if (!cand_before(&c, &h[m]))
                break;
            h[j] = h[m];
            j = m;
        }
        h[j] = c;
    }
    return n;
}

/* Sets the weights of s->cand (n) with the same arithmetic as weights_sum and drops those
 * of weight 0. Returns the kept count. */
static size_t cand_weigh(sampler_t *s, size_t n, float max, float inv_t)
{
    for (size_t i = 0; i < n; i++)
        s->w[i] = s->cand[i].x;
    weights_sum(s->w, n, max, inv_t, -INFINITY, s->w); /* in place: element i only */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->w[i] > 0.0f) {
            s->cand[kept] = s->cand[i];
            s->cand[kept++].w = s->w[i];
        }
    }
    return kept;
}

/* The top_p histogram bucket of a scaled logit s <= 0: floor(-s * 16), the last bucket
 * taking everything below. Monotone in s, which is monotone in x: a lower bucket holds only
 * tokens that come earlier in cand order. */
static inline uint32_t top_p_bucket(float sc)
{
    const float b = -sc * SAMPLER_BUCKETS_PER_UNIT;
    return b < (float)(SAMPLER_N_BUCKETS - 1) ? (uint32_t)b : SAMPLER_N_BUCKETS - 1;
}

/* Histogram of weight mass per bucket, kept in four interleaved copies (token i goes to copy
 * i % 4) so that runs of tokens in one bucket do not serialize on one memory add. */
typedef struct {
    double part[4][SAMPLER_N_BUCKETS];
} top_p_hist_t;

static inline void top_p_hist_add(top_p_hist_t *h, size_t i, float sc, float w)
{
    h->part[i % 4][top_p_bucket(sc)] += w;
}

static void top_p_hist_merge(const top_p_hist_t *h, double mass[SAMPLER_N_BUCKETS])
{
    for (size_t b = 0; b < SAMPLER_N_BUCKETS; b++)
        mass[b] = (h->part[0][b] + h->part[1][b]) + (h->part[2][b] + h->part[3][b]);
}

/* The first bucket at which the cumulative mass reaches need (the last if rounding never
 * gets there). */
static uint32_t top_p_find_bucket(const double *mass, double need)
{
    double acc = 0.0;
    for (uint32_t b = 0; b < SAMPLER_N_BUCKETS - 1; b++) {
        acc += mass[b];
        if (acc >= need)
            return b;
    }
    return SAMPLER_N_BUCKETS - 1;
}

/* top_p on the candidates s->cand (n), in place: keeps a token while the mass before it in
 * cand order is < need (vLLM/HF semantics; need = top_p times the mass of the distribution
 * top_p applies to). The candidates must include every token that comes before the cut.
 * A histogram finds the bucket where the cumulative mass crosses need: the buckets before it
 * are kept whole, only the crossing bucket is sorted. Returns the kept count (>= 1). */
static size_t top_p_apply(sampler_t *s, size_t n, float max, float inv_t, double need)
{
    sampler_cand_t *c = s->cand;
    top_p_hist_t hist;
    double mass[SAMPLER_N_BUCKETS];
    memset(&hist, 0, sizeof(hist));
    for (size_t i = 0; i < n; i++)
        top_p_hist_add(&hist, i, (c[i].x - max) * inv_t, c[i].w);
    top_p_hist_merge(&hist, mass);
    const uint32_t cross = top_p_find_bucket(mass, need);

    /* Keep the buckets up to the crossing one (branch-free compaction), then move the
     * crossing bucket, usually a small part, behind the earlier ones: c[0..n0) earlier
     * buckets with weight a, c[n0..kept) the crossing bucket. */
    size_t kept = 0, n0 = 0, i;
    for (i = 0; i < n; i++) {
        c[kept] = c[i];
        kept += top_p_bucket((c[i].x - max) * inv_t) <= cross;
    }
    double a = 0.0;
    for (i = 0; i < kept; i++) {
        if (top_p_bucket((c[i].x - max) * inv_t) < cross) {
            a += c[i].w;
            cand_swap(c, i, n0++);
        }
    }
    qsort(c + n0, kept - n0, sizeof(*c), cand_cmp);
    for (i = n0; i < kept; i++) {
        if (a >= need)
            return i;
        a += c[i].w;
    }
    return kept;
}

/* The tokens with s = (x - max) * inv_t > s_lo and weight > 0 (in s->w by token id), into
 * s->cand in id order (a branch-free compaction: random data would defeat a branch);
 * *mass: their total weight. Returns the count. */
static size_t cand_collect(sampler_t *s, const float *x, float max, float inv_t, float s_lo, double *mass)
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)s->n_vocab; i++) {
        s->cand[n].x = x[i];
        s->cand[n].w = s->w[i];
        s->cand[n].id = (int32_t)i;
        n += ((x[i] - max) * inv_t > s_lo) & (s->w[i] > 0.0f);
    }
    double m[4] = { 0.0, 0.0, 0.0, 0.0 };
    for (size_t i = 0; i < n; i++)
        m[i % 4] += s->cand[i].w;
    *mass = (m[0] + m[1]) + (m[2] + m[3]);
    return n;
}

/* min_p: keeps the candidates with s = (x - max) * inv_t >= min_p_s (as weights_sum masks),
 * in order. Returns the kept count. */
static size_t cand_min_p(sampler_cand_t *c, size_t n, float max, float inv_t, float min_p_s)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if ((c[i].x - max) * inv_t >= min_p_s)
            c[kept++] = c[i];
    return kept;
}

/* An index of w (n, some weight > 0) drawn with probability w[i] / sum(w), u uniform in
 * [0, 1). Block sums first (four accumulators: no long dependency chain), then one block. */
static size_t weights_draw(const float *w, size_t n, double u, double *block)
{
    const size_t nb = (n + SAMPLER_DRAW_BLOCK - 1) / SAMPLER_DRAW_BLOCK;
    double total = 0.0;
    for (size_t b = 0; b < nb; b++) {
        const size_t i0 = b * SAMPLER_DRAW_BLOCK;
        const size_t i1 = n - i0 > SAMPLER_DRAW_BLOCK ? i0 + SAMPLER_DRAW_BLOCK : n;
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
        size_t i = i0;
        for (; i + 4 <= i1; i += 4) {
            a0 += w[i];
            a1 += w[i + 1];
            a2 += w[i + 2];
            a3 += w[i + 3];
        }
        for (; i < i1; i++)
            a0 += w[i];
        block[b] = (a0 + a1) + (a2 + a3);
        total += block[b];
    }
    double target = u * total;
    size_t b = 0, last_b = 0;
    for (; b < nb; b++) {
        if (block[b] > 0.0) {
            last_b = b;
            if (target < block[b])
                break;
        }
        target -= block[b];
    }
    if (b == nb) /* rounding: u * total reached the end */
        b = last_b, target = block[b];
    const size_t i0 = b * SAMPLER_DRAW_BLOCK;
    const size_t i1 = n - i0 > SAMPLER_DRAW_BLOCK ? i0 + SAMPLER_DRAW_BLOCK : n;
    size_t last = i0;
    for (size_t i = i0; i < i1; i++) {
        if (w[i] > 0.0f) {
            last = i;
            if (target < w[i])
                return i;
            target -= w[i];
        }
    }
    return last;
}

/* ---- sampling ------------------------------------------------------------------------ */

/* The res->n_top most likely raw tokens, sorted, ties by lower id (ids are scanned in
 * increasing order and an equal logit never displaces an earlier one). Once the list is
 * full, four logits at a time are skipped when none beats its last entry. */
static void raw_top_logprobs(const float *logits, size_t n_vocab, double lse, sampler_result_t *res)
{
    const int32_t nt = res->n_top;
    if (nt == 0)
        return;
    float top_v[SAMPLER_MAX_TOP_LOGPROBS];
    int32_t count = 0;
    for (size_t i = 0; i < n_vocab; i++) {
        if (count == nt && i % SAMPLER_VLEN == 0 && i + SAMPLER_VLEN <= n_vocab) {
            const sampler_vi gt = vf_load(logits + i) > top_v[nt - 1];
            if (!(gt[0] | gt[1] | gt[2] | gt[3])) {
                i += SAMPLER_VLEN - 1;
                continue;
            }
        }
        const float v = logits[i];
        if (count == nt && !(v > top_v[nt - 1]))
            continue;
        int32_t j = count < nt ? count++ : nt - 1;
        while (j > 0 && top_v[j - 1] < v) {
            top_v[j] = top_v[j - 1];
            res->top[j].token = res->top[j - 1].token;
            j--;
        }
        top_v[j] = v;
        res->top[j].token = (int32_t)i;
    }
    for (int32_t j = 0; j < nt; j++)
        res->top[j].logprob = (float)((double)top_v[j] - lse);
}

/* Temperature, top_k, top_p, min_p and one draw over the processed logits x (n_vocab),
 * whose max is max (finite). *unmasked_sum: the sum of the weights of all tokens when the
 * draw computed it without a min_p mask (the softmax denominator at temperature T), else -1. */
static int32_t sampler_draw(sampler_t *s, const float *x, float max, double *unmasked_sum)
{
    const size_t n_vocab = (size_t)s->n_vocab;
    const float inv_t = 1.0f / s->p.temperature;
    const bool use_top_k = s->p.top_k > 0 && (size_t)s->p.top_k < n_vocab;
    const bool use_top_p = s->p.top_p < 1.0f;
    const float min_p_s = s->p.min_p > 0.0f ? logf(s->p.min_p) : -INFINITY;
    const double u = rng_uniform(s->rng);
    size_t n;
    *unmasked_sum = -1.0;
    if (use_top_k) {
        /* Weights for the k survivors only; min_p commutes with top_k. */
        n = cand_top_k(s, x, (size_t)s->p.top_k);
        n = cand_weigh(s, n, max, inv_t);
        if (use_top_p) {
            double z = 0.0;
            for (size_t i = 0; i < n; i++)
                z += s->cand[i].w;
            n = top_p_apply(s, n, max, inv_t, (double)s->p.top_p * z);
        }
    } else {
        /* min_p can be a mask on the weights right away unless top_p needs the mass of the
         * tokens it removes. */
        const float floor_s = use_top_p ? -INFINITY : min_p_s;
        const double z = weights_sum(x, n_vocab, max, inv_t, floor_s, s->w);
        if (floor_s == -INFINITY)
            *unmasked_sum = z;
        if (!use_top_p)
            return (int32_t)weights_draw(s->w, n_vocab, u, s->block);
        /* top_p only needs the tokens before its cut. Those with s <= s_lo weigh at most
         * n_vocab * e^s_lo = (1 - top_p) z / 2 together, so the ones above hold more than
         * top_p of the mass; if rounding says otherwise, take every token. */
        const double need = (double)s->p.top_p * z;
        const float s_lo = (float)log(0.5 * (1.0 - (double)s->p.top_p) * z / (double)n_vocab);
        double mass;
        n = cand_collect(s, x, max, inv_t, s_lo, &mass);
        if (mass < need)
            n = cand_collect(s, x, max, inv_t, -INFINITY, &mass);
        n = top_p_apply(s, n, max, inv_t, need);
    }
    if (s->p.min_p > 0.0f)
        n = cand_min_p(s->cand, n, max, inv_t, min_p_s);
    for (size_t i = 0; i < n; i++) /* s->w now holds the candidates' weights */
        s->w[i] = s->cand[i].w;
    return s->cand[weights_draw(s->w, n, u, s->block)].id;
}

status_t sampler_sample(sampler_t *s, const float *logits, sampler_result_t *res)
{
    if (!s || !logits || !res)
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: sample: NULL argument");
    const size_t n_vocab = (size_t)s->n_vocab;

    /* Bias and penalties, on a copy only when they change anything. */
    float raw_max, max;
    size_t raw_argmax, argmax;
    if (!logits_max(logits, n_vocab, &raw_max, &raw_argmax))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: logits hold NaN or +inf");
    if (isinf(raw_max))
        return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: every logit is -inf");
    const float *x = logits;
    max = raw_max;
    argmax = raw_argmax;
    if (s->p.n_logit_bias > 0 || sampler_has_penalties(s)) {
        sampler_process_logits(s, logits, s->x);
        x = s->x;
        if (!logits_max(x, n_vocab, &max, &argmax) || isinf(max))
            return cllm_error(CLLM_ERR_INVALID_ARG, "sampler: penalties overflowed the logits (max %g)",
                              (double)max);
    }

    int32_t token;
    double sum = -1.0; /* the raw softmax denominator, when the draw computed it */
    if (s->p.temperature < SAMPLER_GREEDY_EPS) {
        token = (int32_t)argmax;
    } else {
        token = sampler_draw(s, x, max, &sum);
        if (x != logits || s->p.temperature != 1.0f)
            sum = -1.0;
    }

    /* Logprobs of the raw distribution. */
    if (sum < 0.0)
        sum = weights_sum(logits, n_vocab, raw_max, 1.0f, -INFINITY, NULL);
    const double lse = (double)raw_max + log(sum);
    res->n_top = s->p.n_top_logprobs < s->n_vocab ? s->p.n_top_logprobs : s->n_vocab;
    raw_top_logprobs(logits, n_vocab, lse, res);
    res->token = token;
    res->logprob = (float)((double)logits[token] - lse);
    return CLLM_OK;
}

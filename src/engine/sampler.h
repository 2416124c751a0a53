/* sampler.h: turns one row of logits into the next token of one request.
 *
 * A sampler belongs to one request: it keeps that request's sampling parameters, its PRNG
 * state and the token history the penalties need (which tokens the prompt holds, how often
 * each token was generated). Parameters follow OpenAI's API and vLLM's SamplingParams.
 *
 * Per token, sampler_sample() runs, in this order, without modifying the caller's logits:
 *   1. logit_bias is added;
 *   2. repetition_penalty (tokens of the prompt and of the output; vLLM/HF: a positive logit is
 *      divided by the penalty, a non-positive one multiplied), then frequency_penalty and
 *      presence_penalty (output tokens only; OpenAI: logit -= count * freq + (count > 0) * pres);
 *   3. greedy (temperature < SAMPLER_GREEDY_EPS, as vLLM): the argmax, ties to the lowest id;
 *   4. otherwise: temperature; top_k (the k highest, ties to the lower id); top_p (in that
 *      order, a token is kept while the probability mass before it is < top_p, renormalized
 *      after top_k); min_p (p >= min_p * p_max); softmax; one draw from the seeded PRNG.
 *      Tokens less likely than e^-87 times the most likely one are never drawn.
 * The returned logprob and top logprobs describe the RAW logits (log-softmax before any of the
 * above), as vLLM returns them by default.
 *
 * Invariants: the same parameters, seed, history and logits give the same tokens; sample()
 * never allocates and never modifies logits. Memory: the step buffers (about 17 bytes per
 * vocabulary entry, 2.2 MB at 128256) live in a sampler_scratch_t that an engine shares among
 * all its requests (or that a sampler allocates for itself); the penalty history (9 bytes per
 * entry) only exists when a penalty is on. A sampler is used by one thread at a time, and the
 * samplers sharing a scratch sample from one thread at a time. */
#ifndef CLLM_ENGINE_SAMPLER_H
#define CLLM_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

/* Most top logprobs one result carries (vLLM's default max_logprobs, OpenAI's top_logprobs). */
#define SAMPLER_MAX_TOP_LOGPROBS 20
/* A temperature below this samples greedily (vLLM's _SAMPLING_EPS). */
#define SAMPLER_GREEDY_EPS 1e-5f

typedef struct {
    int32_t token;
    float bias; /* added to the logit; in [-100, 100] */
} sampler_logit_bias_t;

typedef struct {
    int32_t token;
    float logprob;
} sampler_logprob_t;

typedef struct {
    float temperature;        /* >= 0; below SAMPLER_GREEDY_EPS: greedy. Default 1 */
    int32_t top_k;            /* -1 or 0: off; >= 1 keeps the k most likely. Default -1 */
    float top_p;              /* (0, 1]; 1: off. Default 1 */
    float min_p;              /* [0, 1]; keeps p >= min_p * p_max; 0: off. Default 0 */
    uint64_t seed;            /* used only when has_seed */
    bool has_seed;            /* false: a random seed from the OS. Default false */
    float repetition_penalty; /* > 0; 1: off. Default 1 */
    float frequency_penalty;  /* [-2, 2]; 0: off. Default 0 */
    float presence_penalty;   /* [-2, 2]; 0: off. Default 0 */
    const sampler_logit_bias_t *logit_bias; /* (n_logit_bias); copied by create; a token listed
                                               twice gets the sum of its biases */
    size_t n_logit_bias;
    int32_t n_top_logprobs; /* [0, SAMPLER_MAX_TOP_LOGPROBS]. Default 0 */
} sampler_params_t;

typedef struct {
    int32_t token;   /* the sampled token */
    float logprob;   /* log-softmax of the raw logits at token */
    int32_t n_top;   /* = n_top_logprobs (or n_vocab if smaller) */
    sampler_logprob_t top[SAMPLER_MAX_TOP_LOGPROBS]; /* (n_top): the raw distribution's most
                                                        likely tokens, logprob desc, ties by id */
} sampler_result_t;

typedef struct sampler sampler_t;

/* The OpenAI/vLLM defaults (listed above). */
sampler_params_t sampler_params_default(void);

/* CLLM_OK, or CLLM_ERR_INVALID_ARG with a message naming the field and its allowed range. */
status_t sampler_params_validate(const sampler_params_t *p, int32_t n_vocab);

/* Step buffers for n_vocab (>= 1) logits, to share among samplers (see above). */
typedef struct sampler_scratch sampler_scratch_t;
status_t sampler_scratch_create(int32_t n_vocab, sampler_scratch_t **out);
void sampler_scratch_destroy(sampler_scratch_t *sc);

/* Validates p and copies it. scratch: a shared one (for at least n_vocab logits; it must
 * outlive the sampler), or NULL to allocate the sampler's own. CLLM_ERR_INVALID_ARG (bad
 * params, too small a scratch), CLLM_ERR_NOMEM. */
status_t sampler_create(const sampler_params_t *p, int32_t n_vocab, sampler_scratch_t *scratch, sampler_t **out);
void sampler_destroy(sampler_t *s);

/* Replaces the prompt the repetition penalty looks at (tokens: (n)). Output history is kept.
 * CLLM_ERR_INVALID_ARG if a token id is outside [0, n_vocab) (nothing is changed then). */
status_t sampler_set_prompt(sampler_t *s, const int32_t *tokens, size_t n);

/* Records one generated token for the penalties. CLLM_ERR_INVALID_ARG if out of range. */
status_t sampler_accept(sampler_t *s, int32_t token);

/* Forgets prompt and output history (the PRNG state is kept). */
void sampler_reset(sampler_t *s);

/* Steps 1-2 above (logit bias, then penalties) alone: out (n_vocab) = processed logits (n_vocab).
 * out may equal logits. What sample() runs first; exposed for tests and for callers that want
 * the processed distribution. */
void sampler_process_logits(const sampler_t *s, const float *logits, float *out);

/* Samples the next token from logits (n_vocab), which are not modified.
 * CLLM_ERR_INVALID_ARG if the logits hold NaN or +inf, no finite value at all (every token
 * masked to -inf), or if the penalties overflow them. Does not record the token: call
 * sampler_accept() with it. */
status_t sampler_sample(sampler_t *s, const float *logits, sampler_result_t *res);

#endif

/* engine.h: the cllm inference engine: submit requests, step, poll outputs.
 *
 * One engine owns a model, its block KV cache with automatic prefix caching, a continuous-
 * batching scheduler and the kernels' thread pool. One thread steps it (either the caller, with
 * cllm_engine_step(), or the engine's own thread, after cllm_engine_start()); submit, cancel,
 * poll and stats are safe from any other thread. Each step runs one forward pass over a batch
 * that mixes prefill chunks and decode tokens of many requests under a token budget.
 *
 * Same answer, any path: a request's greedy output does not depend on what else is running, on
 * prefix-cache hits, on chunking or on preemption (the kernels are batch-invariant).
 *
 * Returns: CLLM_OK; CLLM_ERR_INVALID_ARG / CLLM_ERR_RANGE with a message for a bad request (it is
 * then not queued); CLLM_ERR_NOT_FOUND for an unknown or already finished request id. */
#ifndef CLLM_ENGINE_H
#define CLLM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cllm_engine cllm_engine_t;

typedef struct {
    const char *model_path;         /* GGUF file */
    int32_t n_threads;              /* kernel threads; 0: all online cores */
    int32_t block_size;             /* tokens per KV block: power of two, 8..256 (32) */
    int32_t num_blocks;             /* KV blocks; 0: as many as kv_cache_memory holds, at most 4x
                                       max_num_seqs x max_model_len / block_size */
    uint64_t kv_cache_memory;       /* bytes of K/V when num_blocks is 0 (4 GiB) */
    const char *kv_cache_dtype;     /* "auto" (f32 for f32 weights, else f16), "f32", "f16", "bf16" */
    int32_t max_model_len;          /* prompt + output tokens; 0: the model's context length */
    int32_t max_num_seqs;           /* running requests at most (16) */
    int32_t max_num_batched_tokens; /* tokens per step at most (2048) */
    bool enable_prefix_caching;     /* (true) */
    bool cache_aware_scheduling;    /* longest cached prefix first, shared prefixes computed once (true) */
    bool check_invariants;          /* verify KV and scheduler invariants after every step (false) */
} cllm_engine_config_t;

typedef struct {
    int32_t token;
    float bias;
} cllm_logit_bias_t;

typedef struct {
    /* the prompt: text, or token ids (then prompt is NULL) */
    const char *prompt;
    size_t prompt_len;
    const int32_t *prompt_tokens;
    size_t n_prompt_tokens;
    bool add_special;   /* text: add BOS as the vocabulary says (true) */
    bool parse_special; /* text: special-token text becomes its id, for rendered chat templates (false) */
    const char *cache_salt; /* requests with different salts never share cached blocks (NULL) */
    size_t cache_salt_len;

    /* sampling (OpenAI / vLLM semantics and defaults) */
    float temperature;  /* 1; 0 = greedy */
    int32_t top_k;      /* -1 = off */
    float top_p;        /* 1 = off */
    float min_p;        /* 0 = off */
    uint64_t seed;
    bool has_seed;      /* false: a random seed */
    float repetition_penalty; /* 1 = off */
    float frequency_penalty;  /* 0 = off */
    float presence_penalty;   /* 0 = off */
    const cllm_logit_bias_t *logit_bias;
    size_t n_logit_bias;
    int32_t logprobs;   /* -1: none; 0..20: the chosen token's logprob and this many top ones */

    /* stopping */
    int32_t max_tokens; /* <= 0: until max_model_len */
    bool ignore_eos;
    const char *const *stop; /* stop strings (n_stop) */
    size_t n_stop;
    const int32_t *stop_token_ids;
    size_t n_stop_token_ids;
} cllm_request_t;

typedef enum {
    CLLM_FINISH_NONE = 0, /* still running */
    CLLM_FINISH_STOP,     /* EOS/EOG, stop token or stop string */
    CLLM_FINISH_LENGTH,   /* max_tokens or max_model_len */
    CLLM_FINISH_ABORT,    /* cancelled, or the engine shut down */
} cllm_finish_t;

typedef struct {
    int32_t token;
    float logprob;
    int32_t n_top;
    struct {
        int32_t token;
        float logprob;
    } top[20];
} cllm_logprob_t;

/* What a request produced since the last poll. */
typedef struct {
    uint64_t id;
    int32_t *tokens;          /* (n_tokens) new tokens */
    size_t n_tokens;
    cllm_logprob_t *logprobs; /* (n_tokens) when asked for, else NULL */
    char *text;               /* (text_len) new text, whole UTF-8, NUL-terminated */
    size_t text_len;
    cllm_finish_t finish;     /* set on a request's last output */
    int32_t stop_token;       /* the token that stopped it, or -1 */
    int32_t stop_string;      /* index of the stop string that matched, or -1 */
    int32_t n_prompt_tokens;
    int32_t n_cached_tokens;  /* prompt tokens found in the prefix cache */
    int32_t n_output_tokens;  /* generated so far */
    double ttft;              /* seconds from submit to the first token (0 before it) */
} cllm_output_t;

typedef struct {
    int32_t n_blocks;          /* KV blocks in all */
    int32_t n_blocks_free;     /* allocatable, cached ones included */
    int32_t n_blocks_cached;   /* free but holding a cached prefix */
    int32_t n_blocks_used;     /* held by requests */
    int32_t block_size;
    uint64_t prefix_cache_queries; /* prompt tokens looked up in the cache */
    uint64_t prefix_cache_hits;    /* of those, found */
    uint64_t n_evictions;          /* cached prefix blocks dropped to reuse their block */
    uint64_t n_preemptions;
    int32_t n_running;
    int32_t n_waiting;
    uint64_t n_prompt_tokens;      /* computed prompt tokens (cache hits excluded) */
    uint64_t n_generation_tokens;
    uint64_t n_finished[4];        /* by cllm_finish_t */
    uint64_t n_steps;
} cllm_engine_stats_t;

void cllm_engine_config_default(cllm_engine_config_t *cfg);
void cllm_request_init(cllm_request_t *req);

/* Loads the model and sizes the KV cache. Errors name the problem (a KV cache too small for one
 * max_model_len sequence gives the minimum). */
status_t cllm_engine_create(const cllm_engine_config_t *cfg, cllm_engine_t **out);
/* Stops the engine thread if started; unfinished requests are dropped. */
void cllm_engine_destroy(cllm_engine_t *e);

/* Validates, tokenizes and queues a request; *id identifies it. */
status_t cllm_engine_submit(cllm_engine_t *e, const cllm_request_t *req, uint64_t *id);
/* Aborts a request at any time: its blocks are freed at the next step and it is forgotten (a
 * later poll says CLLM_ERR_NOT_FOUND). */
status_t cllm_engine_cancel(cllm_engine_t *e, uint64_t id);

/* Runs one step on the calling thread (not with cllm_engine_start). *n_scheduled: tokens computed
 * (0: nothing to do). */
status_t cllm_engine_step(cllm_engine_t *e, int32_t *n_scheduled);
/* Runs steps on the engine's own thread until cllm_engine_shutdown / destroy. */
status_t cllm_engine_start(cllm_engine_t *e);
/* Stops the engine thread after the current step; running requests finish with ABORT. */
void cllm_engine_shutdown(cllm_engine_t *e);

/* Waits up to timeout_ms (< 0: forever) for new output of request id. *out: NULL on timeout,
 * else an output to free with cllm_output_free. After the output with finish set, the id is
 * forgotten. */
status_t cllm_engine_poll(cllm_engine_t *e, uint64_t id, int timeout_ms, cllm_output_t **out);
void cllm_output_free(cllm_output_t *out);

void cllm_engine_get_stats(cllm_engine_t *e, cllm_engine_stats_t *stats);

#ifdef __cplusplus
}
#endif
#endif

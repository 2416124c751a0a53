/* engine.c: the inference engine (include/cllm/engine.h).
 *
 * Owns the model, the KV storage (kv_cache), the block bookkeeping (kv_manager), the scheduler,
 * the forward pass and the thread pool, plus one engine_req_t per live request (its sampler,
 * stop checker, streaming decoder and the output not yet polled).
 *
 * Threads: exactly one thread steps the engine and it alone touches the scheduler, the KV cache,
 * the model state and each request's sampler/stop/stream. Everything other threads see — the
 * request registry, the cancel flags and the pending outputs — is guarded by e->mu; pollers wait
 * on e->out_cond, the engine thread waits on e->work_cond when idle.
 *
 * A request's life: submit (validated and tokenized on the caller's thread, registered) ->
 * picked up by the next step (sched_add) -> scheduled, computed, sampled step by step, its output
 * appended under the lock -> finished (sched_finish frees its blocks) -> freed when its final
 * output is polled, or at once if it was cancelled (nobody will poll it). */
#include "engine/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/threadpool.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "kernels/kernels.h"
#include "kv/kv_cache.h"
#include "kv/kv_manager.h"
#include "model/forward.h"
#include "sched/scheduler.h"

typedef struct engine_req {
    sched_req_t sr; /* the scheduler's view; sr.tokens (cap_tokens) is owned here */
    sampler_t *smp;
    stop_checker_t *stop;
    tokenizer_stream_t stream;
    int32_t logprobs; /* -1: none */
    double t_submit;
    double t_first;   /* 0 until the first token */
    bool in_sched;    /* engine thread: sched_add done */

    /* guarded by e->mu */
    bool cancelled;
    bool finished;    /* the final output is pending (or was delivered) */
    int32_t *out_tokens; /* (n_out, cap_out) */
    cllm_logprob_t *out_lp;
    size_t n_out, cap_out;
    strbuf_t out_text; /* new text not yet polled */
    cllm_finish_t finish;
    int32_t stop_token, stop_string;
    int32_t n_output;
    char *salt;
} engine_req_t;

struct cllm_engine {
    cllm_engine_config_t cfg;
    model_t *model;
    threadpool_t *pool;
    kv_cache_t *kv;
    kvm_t *kvm;
    sched_t *sched;
    forward_t *fw;
    int32_t n_vocab;

    /* per-step scratch (engine thread) */
    int32_t *b_tokens, *b_pos, *b_seq; /* (max_num_batched_tokens) */
    uint8_t *b_want;                   /* (max_num_batched_tokens) */
    const int32_t **b_tables;          /* (max_num_seqs) */
    int32_t *b_ntables;                /* (max_num_seqs) */
    float *logits;                     /* (max_num_seqs, n_vocab) */
    sampler_scratch_t *smp_scratch;    /* step buffers every request's sampler shares (sampling
                                          runs on the one thread that steps the engine) */
    char text_buf[4096];

    /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t out_cond;  /* outputs appended / requests finished */
    pthread_cond_t work_cond; /* new request or cancel for an idle engine thread */
    engine_req_t **reqs;      /* (n_reqs, cap_reqs) live requests */
    size_t n_reqs, cap_reqs;
    uint64_t next_id;
    bool has_news;            /* a submit or cancel since the engine thread last looked */
    cllm_engine_stats_t stats;
    bool stopping;

    pthread_t thread;
    bool thread_started;
};

void cllm_engine_config_default(cllm_engine_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->block_size = 32;
    cfg->kv_cache_memory = 4ull << 30;
    cfg->kv_cache_dtype = "auto";
    cfg->max_num_seqs = 16;
    cfg->max_num_batched_tokens = 2048;
    cfg->enable_prefix_caching = true;
    cfg->cache_aware_scheduling = true;
}

void cllm_request_init(cllm_request_t *r)
{
    memset(r, 0, sizeof(*r));
    r->add_special = true;
    r->temperature = 1.0f;
    r->top_k = -1;
    r->top_p = 1.0f;
    r->repetition_penalty = 1.0f;
    r->logprobs = -1;
}

const model_t *engine_model(const cllm_engine_t *e)
{
    return e->model;
}

const cllm_engine_config_t *engine_config(const cllm_engine_t *e)
{
    return &e->cfg;
}

size_t engine_kv_bytes(const cllm_engine_t *e)
{
    return kv_cache_bytes_for(kv_cache_config(e->kv));
}

const char *engine_kv_dtype_name(const cllm_engine_t *e)
{
    return dtype_name(kv_cache_config(e->kv)->dtype);
}

/* ---- creation ---- */

static status_t resolve_config(cllm_engine_t *e, kv_cache_config_t *kc)
{
    cllm_engine_config_t *c = &e->cfg;
    const model_hparams_t *hp = &e->model->hp;
    size_t block_bytes;
    int64_t min_blocks;

    if (c->n_threads <= 0) c->n_threads = (int32_t)(sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1);
    if (c->max_model_len <= 0) c->max_model_len = hp->n_ctx_train;
    if (c->max_num_seqs <= 0 || c->max_num_batched_tokens <= 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "engine: max_num_seqs and max_num_batched_tokens must be positive");
    if (c->block_size < 8 || c->block_size > 256 || (c->block_size & (c->block_size - 1)))
        return cllm_error(CLLM_ERR_INVALID_ARG, "engine: --block-size must be a power of two from 8 to 256, got %d",
                          c->block_size);

    kc->n_layer = hp->n_layer;
    kc->n_head_kv = hp->n_head_kv;
    kc->head_dim = hp->head_dim;
    kc->block_size = c->block_size;
    if (!c->kv_cache_dtype || !strcmp(c->kv_cache_dtype, "auto")) {
        kc->dtype = e->model->weight_type == DTYPE_F32 ? DTYPE_F32 : DTYPE_F16;
    } else if (dtype_from_name(c->kv_cache_dtype, &kc->dtype) ||
               (kc->dtype != DTYPE_F32 && kc->dtype != DTYPE_F16 && kc->dtype != DTYPE_BF16)) {
        return cllm_error(CLLM_ERR_INVALID_ARG, "engine: --kv-cache-dtype must be auto, f32, f16 or bf16, got '%s'",
                          c->kv_cache_dtype);
    }
    kc->n_blocks = 1;
    block_bytes = kv_cache_block_bytes(kc);
    min_blocks = ((int64_t)c->max_model_len + c->block_size - 1) / c->block_size;
    if (c->num_blocks <= 0) {
        /* what the memory holds, but no more than 4x the seed's sizing rule: beyond that the blocks
         * only serve as prefix cache, and a small model would get millions of them */
        uint64_t n = c->kv_cache_memory / block_bytes;
        uint64_t cap = 4 * (uint64_t)c->max_num_seqs * (uint64_t)c->max_model_len / (uint64_t)c->block_size;
        if (cap < (uint64_t)min_blocks) cap = (uint64_t)min_blocks;
        if (n > cap) n = cap;
        if (n > INT32_MAX / 2) n = INT32_MAX / 2;
        c->num_blocks = (int32_t)n;
        if (c->num_blocks < min_blocks)
            return cllm_error(CLLM_ERR_RANGE,
                              "engine: --kv-cache-memory %.1f MiB holds %d blocks of %d tokens, but one %d-token sequence "
                              "needs %lld blocks (%.1f MiB): raise it or lower --max-model-len",
                              (double)c->kv_cache_memory / 1048576.0, c->num_blocks, c->block_size, c->max_model_len,
                              (long long)min_blocks, (double)min_blocks * (double)block_bytes / 1048576.0);
    } else if (c->num_blocks < min_blocks) {
        return cllm_error(CLLM_ERR_RANGE,
                          "engine: --num-blocks %d is too small: one %d-token sequence (max_model_len) needs at least %lld "
                          "blocks of %d tokens",
                          c->num_blocks, c->max_model_len, (long long)min_blocks, c->block_size);
    }
    kc->n_blocks = c->num_blocks;
    return CLLM_OK;
}

static status_t alloc_scratch(cllm_engine_t *e)
{
    size_t T = (size_t)e->cfg.max_num_batched_tokens, S = (size_t)e->cfg.max_num_seqs;
    e->b_tokens = malloc(T * sizeof(int32_t));
    e->b_pos = malloc(T * sizeof(int32_t));
    e->b_seq = malloc(T * sizeof(int32_t));
    e->b_want = malloc(T);
    e->b_tables = malloc(S * sizeof(*e->b_tables));
    e->b_ntables = malloc(S * sizeof(int32_t));
    e->logits = malloc(S * (size_t)e->n_vocab * sizeof(float));
    status_t st = sampler_scratch_create(e->n_vocab, &e->smp_scratch);
    if (st != CLLM_OK) return st;
    if (!e->b_tokens || !e->b_pos || !e->b_seq || !e->b_want || !e->b_tables || !e->b_ntables || !e->logits)
        return cllm_error(CLLM_ERR_NOMEM, "engine: out of memory");
    return CLLM_OK;
}

status_t cllm_engine_create(const cllm_engine_config_t *cfg, cllm_engine_t **out)
{
    cllm_engine_t *e;
    kv_cache_config_t kc;
    kvm_config_t mc;
    sched_config_t sc;
    status_t st;
    char desc[512];

    *out = NULL;
    if (!cfg || !cfg->model_path) return cllm_error(CLLM_ERR_INVALID_ARG, "engine: no model path");
    e = calloc(1, sizeof(*e));
    if (!e) return cllm_error(CLLM_ERR_NOMEM, "engine: out of memory");
    e->cfg = *cfg;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->out_cond, NULL);
    pthread_cond_init(&e->work_cond, NULL);
    e->next_id = 1;

    if ((st = model_load(cfg->model_path, &e->model)) != CLLM_OK) goto out_fail;
    e->n_vocab = e->model->hp.n_vocab;
    model_describe(e->model, desc, sizeof(desc));
    log_info("model %s", desc);
    if ((st = resolve_config(e, &kc)) != CLLM_OK) goto out_fail;
    if ((st = kv_cache_create(&kc, &e->kv)) != CLLM_OK) goto out_fail;
    {
        int64_t rule = (int64_t)e->cfg.max_num_seqs * e->cfg.max_model_len / e->cfg.block_size;
        log_info("KV cache: %d blocks of %d tokens (%s, %.1f MiB, %.1f KiB/block) = %lld tokens; sizing rule "
                 "max_num_seqs x max_model_len / block_size = %d x %d / %d = %lld blocks%s",
                 kc.n_blocks, kc.block_size, dtype_name(kc.dtype), (double)kv_cache_bytes_for(&kc) / 1048576.0,
                 (double)kv_cache_block_bytes(&kc) / 1024.0, (long long)kc.n_blocks * kc.block_size,
                 e->cfg.max_num_seqs, e->cfg.max_model_len, e->cfg.block_size, (long long)rule,
                 kc.n_blocks < rule ? " (fewer: long requests may be preempted)" : "");
    }
    memset(&mc, 0, sizeof(mc));
    mc.n_blocks = kc.n_blocks;
    mc.block_size = kc.block_size;
    mc.enable_prefix_caching = e->cfg.enable_prefix_caching;
    /* model identity: weights' size and shape; keys of different models never mix */
    mc.cache_namespace = e->model->weight_bytes * 1000003u ^ (uint64_t)e->model->hp.n_vocab * 31u ^
                         (uint64_t)e->model->hp.n_layer;
    if ((st = kvm_create(&mc, &e->kvm)) != CLLM_OK) goto out_fail;
    kvm_set_partial_block_reuse(e->kvm, true); /* a no-op without prefix caching */
    sched_config_default(&sc);
    sc.max_num_seqs = e->cfg.max_num_seqs;
    sc.max_num_batched_tokens = e->cfg.max_num_batched_tokens;
    sc.max_model_len = e->cfg.max_model_len;
    sc.cache_aware = e->cfg.cache_aware_scheduling;
    if ((st = sched_create(&sc, e->kvm, &e->sched)) != CLLM_OK) goto out_fail;
    if ((st = threadpool_create(e->cfg.n_threads, &e->pool)) != CLLM_OK) goto out_fail;
    if ((st = forward_create(e->model, e->kv, e->pool, &e->fw)) != CLLM_OK) goto out_fail;
    if ((st = alloc_scratch(e)) != CLLM_OK) goto out_fail;
    log_info("engine: %d threads, kernels %s, max_model_len %d, max_num_seqs %d, max_num_batched_tokens %d, "
             "prefix caching %s%s",
             e->cfg.n_threads, kern_level_name(kern_level()), e->cfg.max_model_len, e->cfg.max_num_seqs,
             e->cfg.max_num_batched_tokens, e->cfg.enable_prefix_caching ? "on" : "off",
             e->cfg.cache_aware_scheduling ? ", cache-aware scheduling" : "");
    *out = e;
    return CLLM_OK;

out_fail:
    {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", cllm_error_message());
        cllm_engine_destroy(e);
        return cllm_error(st, "%s", msg);
    }
}

static void req_free(engine_req_t *r)
{
    if (!r) return;
    sampler_destroy(r->smp);
    stop_checker_destroy(r->stop);
    free(r->sr.tokens);
    free(r->out_tokens);
    free(r->out_lp);
    free(r->out_text.p);
    free(r->salt);
    free(r);
}

/* Removes r from the registry (under mu). */
static void registry_remove(cllm_engine_t *e, engine_req_t *r)
{
    for (size_t i = 0; i < e->n_reqs; i++) {
        if (e->reqs[i] == r) {
            e->reqs[i] = e->reqs[--e->n_reqs];
            return;
        }
    }
}

void cllm_engine_destroy(cllm_engine_t *e)
{
    if (!e) return;
    cllm_engine_shutdown(e);
    for (size_t i = 0; i < e->n_reqs; i++) {
        engine_req_t *r = e->reqs[i];
        if (r->in_sched && !r->finished) sched_finish(e->sched, &r->sr);
        req_free(r);
    }
    free(e->reqs);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_want);
    free(e->b_tables);
    free(e->b_ntables);
    free(e->logits);
    sampler_scratch_destroy(e->smp_scratch);
    forward_destroy(e->fw);
    threadpool_destroy(e->pool);
    sched_destroy(e->sched);
    kvm_destroy(e->kvm);
    kv_cache_destroy(e->kv);
    model_destroy(e->model);
    pthread_cond_destroy(&e->out_cond);
    pthread_cond_destroy(&e->work_cond);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* ---- submit / cancel / poll (any thread) ---- */

void engine_request_sampler_params(const cllm_request_t *q, sampler_params_t *sp)
{
    *sp = sampler_params_default();
    sp->temperature = q->temperature;
    sp->top_k = q->top_k;
    sp->top_p = q->top_p;
    sp->min_p = q->min_p;
    sp->seed = q->seed;
    sp->has_seed = q->has_seed;
    sp->repetition_penalty = q->repetition_penalty;
    sp->frequency_penalty = q->frequency_penalty;
    sp->presence_penalty = q->presence_penalty;
    sp->logit_bias = (const sampler_logit_bias_t *)q->logit_bias;
    sp->n_logit_bias = q->n_logit_bias;
    sp->n_top_logprobs = q->logprobs > 0 ? q->logprobs : 0;
}

void engine_request_stop_params(const cllm_request_t *q, int32_t max_new, stop_params_t *pp)
{
    memset(pp, 0, sizeof(*pp));
    pp->strings = q->stop;
    pp->n_strings = q->n_stop;
    pp->token_ids = q->stop_token_ids;
    pp->n_token_ids = q->n_stop_token_ids;
    pp->ignore_eos = q->ignore_eos;
    pp->max_tokens = max_new;
}

static status_t req_build(cllm_engine_t *e, const cllm_request_t *q, engine_req_t **out)
{
    const tokenizer_t *tok = e->model->tok;
    engine_req_t *r;
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    int64_t max_new, cap;
    sampler_params_t sp;
    stop_params_t pp;
    status_t st;

    *out = NULL;
    if (q->prompt && q->prompt_tokens)
        return cllm_error(CLLM_ERR_INVALID_ARG, "request: give the prompt as text or as token ids, not both");
    if (q->prompt) {
        st = tokenizer_encode(tok, q->prompt, q->prompt_len, q->add_special, q->parse_special, &prompt, &n_prompt);
        if (st != CLLM_OK) return st;
    } else if (q->prompt_tokens) {
        for (size_t i = 0; i < q->n_prompt_tokens; i++)
            if (q->prompt_tokens[i] < 0 || q->prompt_tokens[i] >= e->n_vocab)
                return cllm_error(CLLM_ERR_INVALID_ARG, "request: prompt token %d at index %zu is outside the vocabulary (0..%d)",
                                  q->prompt_tokens[i], i, e->n_vocab - 1);
        n_prompt = q->n_prompt_tokens;
    }
    if (n_prompt == 0) {
        free(prompt);
        return cllm_error(CLLM_ERR_INVALID_ARG, "request: the prompt is empty");
    }
    if ((int64_t)n_prompt >= e->cfg.max_model_len) {
        free(prompt);
        return cllm_error(CLLM_ERR_RANGE,
                          "request: the prompt has %zu tokens, but this model's maximum context length is %d tokens "
                          "(prompt + at least 1 generated token must fit)",
                          n_prompt, e->cfg.max_model_len);
    }
    max_new = q->max_tokens > 0 ? q->max_tokens : e->cfg.max_model_len - (int64_t)n_prompt;
    cap = (int64_t)n_prompt + max_new;
    if (cap > e->cfg.max_model_len) {
        free(prompt);
        return cllm_error(CLLM_ERR_RANGE,
                          "request: this model's maximum context length is %d tokens, but %lld were requested "
                          "(%zu in the prompt + %d max_tokens)",
                          e->cfg.max_model_len, (long long)cap, n_prompt, q->max_tokens);
    }
    if (q->logprobs > SAMPLER_MAX_TOP_LOGPROBS) {
        free(prompt);
        return cllm_error(CLLM_ERR_RANGE, "request: logprobs %d is over the maximum of %d", q->logprobs,
                          SAMPLER_MAX_TOP_LOGPROBS);
    }
    if (q->cache_salt_len > KVM_SALT_MAX) {
        free(prompt);
        return cllm_error(CLLM_ERR_RANGE, "request: cache_salt has %zu bytes, at most %d allowed", q->cache_salt_len,
                          KVM_SALT_MAX);
    }

    r = calloc(1, sizeof(*r));
    if (!r) {
        free(prompt);
        return cllm_error(CLLM_ERR_NOMEM, "request: out of memory");
    }
    r->sr.tokens = malloc((size_t)cap * sizeof(int32_t));
    if (!r->sr.tokens) {
        free(prompt);
        req_free(r);
        return cllm_error(CLLM_ERR_NOMEM, "request: out of memory");
    }
    memcpy(r->sr.tokens, prompt ? prompt : q->prompt_tokens, n_prompt * sizeof(int32_t));
    free(prompt);
    r->sr.n_tokens = r->sr.n_prompt = (int32_t)n_prompt;
    r->sr.cap_tokens = (int32_t)cap;
    if (q->cache_salt && q->cache_salt_len) {
        r->salt = malloc(q->cache_salt_len);
        if (!r->salt) {
            req_free(r);
            return cllm_error(CLLM_ERR_NOMEM, "request: out of memory");
        }
        memcpy(r->salt, q->cache_salt, q->cache_salt_len);
        r->sr.salt = r->salt;
        r->sr.salt_len = q->cache_salt_len;
    }

    engine_request_sampler_params(q, &sp);
    if ((st = sampler_create(&sp, e->n_vocab, e->smp_scratch, &r->smp)) != CLLM_OK ||
        (st = sampler_set_prompt(r->smp, r->sr.tokens, n_prompt)) != CLLM_OK) {
        req_free(r);
        return st;
    }
    engine_request_stop_params(q, (int32_t)max_new, &pp);
    if ((st = stop_checker_create(&pp, &r->stop)) != CLLM_OK) {
        req_free(r);
        return st;
    }
    tokenizer_stream_init(&r->stream, false);
    r->stream.started = true; /* generated text continues the prompt: keep its first space */
    r->logprobs = q->logprobs;
    r->stop_token = r->stop_string = -1;
    r->t_submit = clock_now_s();
    *out = r;
    return CLLM_OK;
}

_Static_assert(sizeof(cllm_logit_bias_t) == sizeof(sampler_logit_bias_t), "logit bias layouts match");

status_t cllm_engine_submit(cllm_engine_t *e, const cllm_request_t *q, uint64_t *id)
{
    engine_req_t *r;
    status_t st = req_build(e, q, &r);
    if (st != CLLM_OK) return st;
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        req_free(r);
        return cllm_error(CLLM_ERR_INVALID_ARG, "engine: shutting down");
    }
    if (e->n_reqs == e->cap_reqs) {
        size_t cap = e->cap_reqs ? e->cap_reqs * 2 : 64;
        engine_req_t **n = realloc(e->reqs, cap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&e->mu);
            req_free(r);
            return cllm_error(CLLM_ERR_NOMEM, "engine: out of memory");
        }
        e->reqs = n;
        e->cap_reqs = cap;
    }
    r->sr.id = e->next_id++;
    e->reqs[e->n_reqs++] = r;
    e->has_news = true;
    *id = r->sr.id;
    pthread_cond_signal(&e->work_cond);
    pthread_mutex_unlock(&e->mu);
    return CLLM_OK;
}

static engine_req_t *registry_find(cllm_engine_t *e, uint64_t id)
{
    for (size_t i = 0; i < e->n_reqs; i++)
        if (e->reqs[i]->sr.id == id) return e->reqs[i];
    return NULL;
}

status_t cllm_engine_cancel(cllm_engine_t *e, uint64_t id)
{
    engine_req_t *r;
    pthread_mutex_lock(&e->mu);
    r = registry_find(e, id);
    if (!r || r->cancelled) {
        pthread_mutex_unlock(&e->mu);
        return cllm_error(CLLM_ERR_NOT_FOUND, "engine: no request %llu", (unsigned long long)id);
    }
    if (r->finished) {
        /* the engine thread is done with it: forget it now */
        registry_remove(e, r);
        req_free(r);
    } else {
        r->cancelled = true;
        e->has_news = true;
        pthread_cond_signal(&e->work_cond);
    }
    pthread_cond_broadcast(&e->out_cond);
    pthread_mutex_unlock(&e->mu);
    return CLLM_OK;
}

void cllm_output_free(cllm_output_t *o)
{
    if (!o) return;
    free(o->tokens);
    free(o->logprobs);
    free(o->text);
    free(o);
}

/* Moves r's pending output into a new cllm_output_t (under mu). */
static status_t take_output(engine_req_t *r, cllm_output_t **out)
{
    cllm_output_t *o = calloc(1, sizeof(*o));
    if (!o) return cllm_error(CLLM_ERR_NOMEM, "engine: out of memory");
    o->id = r->sr.id;
    o->tokens = r->out_tokens;
    o->n_tokens = r->n_out;
    o->logprobs = r->out_lp;
    o->text = r->out_text.p ? r->out_text.p : calloc(1, 1);
    o->text_len = r->out_text.len;
    o->finish = r->finished ? r->finish : CLLM_FINISH_NONE;
    o->stop_token = r->stop_token;
    o->stop_string = r->stop_string;
    o->n_prompt_tokens = r->sr.n_prompt;
    o->n_cached_tokens = r->sr.n_cached_prompt;
    o->n_output_tokens = r->n_output;
    o->ttft = r->t_first > 0 ? r->t_first - r->t_submit : 0.0;
    r->out_tokens = NULL;
    r->out_lp = NULL;
    memset(&r->out_text, 0, sizeof(r->out_text));
    r->n_out = r->cap_out = 0;
    *out = o;
    return o->text ? CLLM_OK : CLLM_ERR_NOMEM;
}

status_t cllm_engine_poll(cllm_engine_t *e, uint64_t id, int timeout_ms, cllm_output_t **out)
{
    struct timespec deadline;
    engine_req_t *r;
    status_t st = CLLM_OK;

    *out = NULL;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&e->mu);
    for (;;) {
        r = registry_find(e, id);
        if (!r || r->cancelled) {
            st = cllm_error(CLLM_ERR_NOT_FOUND, "engine: no request %llu", (unsigned long long)id);
            break;
        }
        if (r->n_out > 0 || r->out_text.len > 0 || r->finished) {
            st = take_output(r, out);
            if (st == CLLM_OK && r->finished) {
                registry_remove(e, r);
                req_free(r);
            }
            break;
        }
        if (timeout_ms == 0) break;
        if (timeout_ms < 0) {
            pthread_cond_wait(&e->out_cond, &e->mu);
        } else if (pthread_cond_timedwait(&e->out_cond, &e->mu, &deadline) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

void cllm_engine_get_stats(cllm_engine_t *e, cllm_engine_stats_t *stats)
{
    pthread_mutex_lock(&e->mu);
    *stats = e->stats;
    pthread_mutex_unlock(&e->mu);
}

/* ---- the step (engine thread) ---- */

/* Appends one token (and its logprobs) and text to r's pending output (under mu). */
static status_t output_append(engine_req_t *r, int32_t token, const sampler_result_t *res, const char *text,
                              size_t len)
{
    if (token >= 0) {
        if (r->n_out == r->cap_out) {
            size_t cap = r->cap_out ? r->cap_out * 2 : 16;
            int32_t *t = realloc(r->out_tokens, cap * sizeof(int32_t));
            if (!t) return CLLM_ERR_NOMEM;
            r->out_tokens = t;
            if (r->logprobs >= 0) {
                cllm_logprob_t *lp = realloc(r->out_lp, cap * sizeof(cllm_logprob_t));
                if (!lp) return CLLM_ERR_NOMEM;
                r->out_lp = lp;
            }
            r->cap_out = cap;
        }
        if (r->logprobs >= 0 && res) {
            cllm_logprob_t *lp = &r->out_lp[r->n_out];
            lp->token = token;
            lp->logprob = res->logprob;
            lp->n_top = res->n_top;
            for (int32_t i = 0; i < res->n_top && i < 20; i++) {
                lp->top[i].token = res->top[i].token;
                lp->top[i].logprob = res->top[i].logprob;
            }
        }
        r->out_tokens[r->n_out++] = token;
        r->n_output++;
    }
    if (len > 0) {
        if (!strbuf_append(&r->out_text, text, len)) return CLLM_ERR_NOMEM;
    }
    return CLLM_OK;
}

/* Finishes r: out of the scheduler, final output marked (under mu). */
static void req_finish_locked(cllm_engine_t *e, engine_req_t *r, cllm_finish_t why)
{
    if (r->in_sched) sched_finish(e->sched, &r->sr);
    r->in_sched = false;
    r->finished = true;
    r->finish = why;
    e->stats.n_finished[why]++;
}

/* Takes in new requests and cancellations (under mu). */
static void intake_locked(cllm_engine_t *e)
{
    for (size_t i = 0; i < e->n_reqs;) {
        engine_req_t *r = e->reqs[i];
        if (r->cancelled) {
            if (!r->finished) req_finish_locked(e, r, CLLM_FINISH_ABORT);
            registry_remove(e, r);
            req_free(r);
            continue; /* registry_remove moved the last entry into slot i */
        }
        if (!r->in_sched && !r->finished) {
            if (sched_add(e->sched, &r->sr) == CLLM_OK) {
                r->in_sched = true;
            } else {
                log_warn("engine: request %llu refused by the scheduler: %s", (unsigned long long)r->sr.id,
                         cllm_error_message());
                req_finish_locked(e, r, CLLM_FINISH_ABORT);
            }
        }
        i++;
    }
    e->has_news = false;
}

/* Samples the next token of r from logits and handles stop conditions (under mu). */
static status_t req_sample_locked(cllm_engine_t *e, engine_req_t *r, const float *logits, double t)
{
    sampler_result_t res;
    stop_result_t sres;
    size_t len;
    status_t st;

    if ((st = sampler_sample(r->smp, logits, &res)) != CLLM_OK) return st;
    sampler_accept(r->smp, res.token);
    if (r->t_first == 0.0) r->t_first = t;
    len = tokenizer_stream_push(e->model->tok, &r->stream, res.token, e->text_buf, sizeof(e->text_buf));
    if ((st = stop_check_push(r->stop, res.token, tokenizer_is_eog(e->model->tok, res.token), e->text_buf, len,
                              &sres)) != CLLM_OK)
        return st;
    /* the token counts (as vLLM's usage does, EOS included); its text is what the checker released */
    if ((st = output_append(r, res.token, &res, sres.text, sres.len)) != CLLM_OK)
        return cllm_error(st, "engine: out of memory");
    e->stats.n_generation_tokens++;
    if (sres.reason != STOP_REASON_NONE) {
        len = tokenizer_stream_flush(e->model->tok, &r->stream, e->text_buf, sizeof(e->text_buf));
        if (len && sres.reason == STOP_REASON_LENGTH) output_append(r, -1, NULL, e->text_buf, len);
        r->stop_token = sres.stop_token;
        r->stop_string = sres.stop_string;
        req_finish_locked(e, r, sres.reason == STOP_REASON_STOP ? CLLM_FINISH_STOP : CLLM_FINISH_LENGTH);
        return CLLM_OK;
    }
    return sched_append_token(e->sched, &r->sr, res.token);
}

status_t cllm_engine_step(cllm_engine_t *e, int32_t *n_scheduled)
{
    sched_batch_t b;
    forward_batch_t fb;
    int32_t n = 0;
    kvm_stats_t ks;
    sched_stats_t ss;
    status_t st;
    double t;

    *n_scheduled = 0;
    pthread_mutex_lock(&e->mu);
    intake_locked(e);
    pthread_mutex_unlock(&e->mu);

    if ((st = sched_schedule(e->sched, &b)) != CLLM_OK) return st;
    /* partial-block prefix reuse: cached slots go into the admitted requests' new blocks now,
     * in order, before forward_run writes any K/V (a donor reallocated in this step is intact) */
    for (int32_t i = 0; i < b.n_copies; i++)
        if ((st = kv_cache_copy_slots(e->kv, b.copies[i].src_block, b.copies[i].dst_block, b.copies[i].n_slots)) !=
            CLLM_OK)
            return st;
    if (b.n_items > 0) {
        /* one flat batch: each item's tokens in order, logits for the items that sample */
        for (int32_t i = 0; i < b.n_items; i++) {
            const sched_item_t *it = &b.items[i];
            const int32_t *ids;
            int32_t nb;
            kvm_block_table(&it->req->kv, &ids, &nb);
            e->b_tables[i] = ids;
            e->b_ntables[i] = nb;
            for (int32_t j = 0; j < it->n_new; j++, n++) {
                e->b_tokens[n] = it->req->tokens[it->start + j];
                e->b_pos[n] = it->start + j;
                e->b_seq[n] = i;
                e->b_want[n] = it->sample && j == it->n_new - 1;
            }
        }
        memset(&fb, 0, sizeof(fb));
        fb.n_tokens = n;
        fb.tokens = e->b_tokens;
        fb.pos = e->b_pos;
        fb.seq = e->b_seq;
        fb.n_seqs = b.n_items;
        fb.block_tables = e->b_tables;
        fb.n_blocks = e->b_ntables;
        fb.want_logits = e->b_want;
        if ((st = forward_run(e->fw, &fb, e->logits)) != CLLM_OK) return st;
        if ((st = sched_commit(e->sched, &b)) != CLLM_OK) return st;

        t = clock_now_s();
        pthread_mutex_lock(&e->mu);
        for (int32_t i = 0, k = 0; i < b.n_items; i++) {
            engine_req_t *r = (engine_req_t *)b.items[i].req;
            int32_t p0 = b.items[i].start, p1 = b.items[i].start + b.items[i].n_new;
            if (p0 < r->sr.n_prompt) e->stats.n_prompt_tokens += (uint64_t)((p1 < r->sr.n_prompt ? p1 : r->sr.n_prompt) - p0);
            if (!b.items[i].sample) continue;
            if (!r->cancelled && !r->finished) {
                st = req_sample_locked(e, r, e->logits + (size_t)k * e->n_vocab, t);
                if (st != CLLM_OK) {
                    log_error("engine: request %llu: %s", (unsigned long long)r->sr.id, cllm_error_message());
                    req_finish_locked(e, r, CLLM_FINISH_ABORT);
                    st = CLLM_OK;
                }
            }
            k++;
        }
        pthread_mutex_unlock(&e->mu);
        *n_scheduled = n;
    }

    kvm_get_stats(e->kvm, &ks);
    sched_get_stats(e->sched, &ss);
    pthread_mutex_lock(&e->mu);
    e->stats.n_blocks = ks.n_blocks;
    e->stats.n_blocks_free = ks.n_blocks_free;
    e->stats.n_blocks_cached = ks.n_blocks_cached;
    e->stats.n_blocks_used = ks.n_blocks_used;
    e->stats.block_size = e->cfg.block_size;
    e->stats.prefix_cache_queries = ks.prefix_cache_queries;
    e->stats.prefix_cache_hits = ks.prefix_cache_hits;
    e->stats.n_evictions = ks.n_evictions;
    e->stats.n_preemptions = ss.n_preemptions;
    e->stats.n_running = ss.n_running;
    e->stats.n_waiting = ss.n_waiting;
    e->stats.n_steps = ss.n_steps;
    if (b.n_items > 0) pthread_cond_broadcast(&e->out_cond);
    pthread_mutex_unlock(&e->mu);

#ifdef CLLM_DEBUG
    /* debug builds (CMAKE_BUILD_TYPE=Debug) check every step, whatever the configuration says */
    if ((st = sched_check_invariants(e->sched)) != CLLM_OK) return st;
#else
    if (e->cfg.check_invariants && (st = sched_check_invariants(e->sched)) != CLLM_OK) return st;
#endif
    return CLLM_OK;
}

/* ---- the engine thread ---- */

static void *engine_thread_main(void *arg)
{
    cllm_engine_t *e = arg;
    for (;;) {
        int32_t n = 0;
        status_t st;
        pthread_mutex_lock(&e->mu);
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        pthread_mutex_unlock(&e->mu);
        st = cllm_engine_step(e, &n);
        if (st != CLLM_OK) log_error("engine: step failed: %s", cllm_error_message());
        if (n == 0) {
            /* idle: sleep until a submit or cancel arrives */
            pthread_mutex_lock(&e->mu);
            while (!e->has_news && !e->stopping) pthread_cond_wait(&e->work_cond, &e->mu);
            pthread_mutex_unlock(&e->mu);
        }
    }
    return NULL;
}

status_t cllm_engine_start(cllm_engine_t *e)
{
    if (e->thread_started) return cllm_error(CLLM_ERR_INVALID_ARG, "engine: already started");
    if (pthread_create(&e->thread, NULL, engine_thread_main, e) != 0)
        return cllm_error(CLLM_ERR_NOMEM, "engine: cannot start the engine thread");
    e->thread_started = true;
    return CLLM_OK;
}

void cllm_engine_shutdown(cllm_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->work_cond);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) {
        pthread_join(e->thread, NULL);
        e->thread_started = false;
    }
    /* whatever is still running ends with ABORT; pollers see it */
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_reqs; i++)
        if (!e->reqs[i]->finished) req_finish_locked(e, e->reqs[i], CLLM_FINISH_ABORT);
    pthread_cond_broadcast(&e->out_cond);
    pthread_mutex_unlock(&e->mu);
}

/* generate.h: the two generation endpoints, POST /v1/chat/completions and /v1/completions,
 * over libmicrohttpd: request -> prompt -> cllm_engine_submit -> polled output -> JSON or SSE.
 *
 * Owns each generation's state (gen_t, private): the parsed request, its cache salt, the engine
 * request id, the text and logprobs gathered so far, the SSE bytes not yet sent, per-request
 * timings for the metrics. A non-streaming request is served inside the access handler (it
 * blocks on cllm_engine_poll, 100 ms at a time, checking for a vanished client); a streaming one
 * hands its gen_t to a callback response whose reader blocks the same way and whose free
 * callback cancels the engine request if it has not finished (the client went away).
 *
 * Invariants: every submitted engine request is polled to its end or cancelled exactly once;
 * in_flight counts submitted requests whose gen_t is still alive; after `aborting` is set
 * every waiting handler cancels its request within about 100 ms. */
#ifndef CLLM_SERVER_GENERATE_H
#define CLLM_SERVER_GENERATE_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cllm/engine.h"
#include "model/model.h"
#include "server/auth.h"
#include "server/chat_template.h"
#include "server/metrics.h"
#include "server/openai.h"

/* What the handlers share, owned by the server. */
typedef struct {
    cllm_engine_t *engine;
    const model_t *model;        /* its tokenizer (thread-safe) */
    const chat_template_t *tmpl; /* NULL: chat is refused with a 400 */
    const char *tmpl_error;      /* why the model's template is unusable, or NULL */
    const char *bos_text;        /* text of BOS/EOS for templates ("" if none) */
    const char *eos_text;
    const char *served_name;
    int32_t max_model_len;
    metrics_t *metrics;
    const auth_t *auth;          /* API keys and tenants: each request's cache salt */
    const model_gen_defaults_t *gen_defaults; /* the model's sampling defaults, or NULL (vllm) */
    atomic_int in_flight;        /* submitted and not yet freed */
    atomic_bool aborting;        /* shutdown's grace is over: cancel and end everything */
} gen_env_t;

/* The limits openai_request_parse checks against. */
void gen_limits(const gen_env_t *env, openai_limits_t *lim);

/* Renders a chat request's prompt: *text (malloc'd, *len bytes) and whether BOS is to be added.
 * CLLM_ERR_INVALID_ARG with err filled (no template, template error). */
status_t gen_chat_prompt(const gen_env_t *env, const openai_request_t *r, char **text, size_t *len,
                         bool *add_special, openai_error_t *err);

/* Serves one whole request body (kind OPENAI_CHAT or OPENAI_COMPLETION) that arrived at
 * t_arrival (CLOCK_MONOTONIC seconds), authenticated with key index key (-1: no keys
 * configured; auth.h): queues the response on c. The model's sampling defaults fill the fields
 * the body left out; the engine request's cache salt comes from auth_cache_salt. MHD_NO closes
 * the connection (the client is gone). */
enum MHD_Result gen_handle(gen_env_t *env, struct MHD_Connection *c, openai_kind_t kind, const char *body, size_t len,
                           double t_arrival, int key);

#endif

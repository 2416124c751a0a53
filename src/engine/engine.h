/* engine/engine.h: engine internals shared with the server and the tools (the public API is
 * include/cllm/engine.h). */
#ifndef CLLM_ENGINE_ENGINE_INTERNAL_H
#define CLLM_ENGINE_ENGINE_INTERNAL_H

#include "cllm/engine.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "model/model.h"

/* The engine's model (immutable: its tokenizer and chat template may be used from any thread). */
const model_t *engine_model(const cllm_engine_t *e);
/* The configuration in effect (defaults resolved: threads, blocks, max_model_len...). */
const cllm_engine_config_t *engine_config(const cllm_engine_t *e);
/* Bytes of the KV cache and its element type name. */
size_t engine_kv_bytes(const cllm_engine_t *e);
const char *engine_kv_dtype_name(const cllm_engine_t *e);

/* The sampler and stop-checker parameters of request q, as cllm_engine_submit makes them (the
 * fuzzers check that a parsed body gives parameters these modules accept). *sp and *pp point
 * into q (logit bias, stop strings and ids): q must outlive them. max_new is the number of
 * tokens the request may generate (its max_tokens, or what the context leaves). */
void engine_request_sampler_params(const cllm_request_t *q, sampler_params_t *sp);
void engine_request_stop_params(const cllm_request_t *q, int32_t max_new, stop_params_t *pp);

#endif

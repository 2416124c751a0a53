/* engine/engine.h: engine internals shared with the server and the tools (the public API is
 * include/cllm/engine.h). */
#ifndef CLLM_ENGINE_ENGINE_INTERNAL_H
#define CLLM_ENGINE_ENGINE_INTERNAL_H

#include "cllm/engine.h"
#include "model/model.h"

/* The engine's model (immutable: its tokenizer and chat template may be used from any thread). */
const model_t *engine_model(const cllm_engine_t *e);
/* The configuration in effect (defaults resolved: threads, blocks, max_model_len...). */
const cllm_engine_config_t *engine_config(const cllm_engine_t *e);
/* Bytes of the KV cache and its element type name. */
size_t engine_kv_bytes(const cllm_engine_t *e);
const char *engine_kv_dtype_name(const cllm_engine_t *e);

#endif

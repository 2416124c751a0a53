/* openai_response.h: engine output -> OpenAI / vLLM response JSON.
 *
 * Owns the shapes of every JSON body the server sends for generation and tokenization:
 * chat.completion and text_completion objects, their streaming chunks (SSE "data: ...\n\n"
 * events), usage, logprobs in both dialects (chat: content[{token, logprob, bytes,
 * top_logprobs}]; completions: tokens / token_logprobs / top_logprobs / text_offset), the
 * /v1/models list and the /tokenize answer. No HTTP, no engine threads: tests call it directly.
 *
 * Invariants: every string put into JSON is valid UTF-8 (invalid bytes of a token piece become
 * U+FFFD; its raw bytes go to "bytes"); a finish_reason is only ever "stop", "length" or null
 * (an aborted request never shows "abort"); functions that take a json_t * argument steal its
 * reference whether they succeed or not; they return NULL only when out of memory. */
#ifndef CLLM_SERVER_OPENAI_RESPONSE_H
#define CLLM_SERVER_OPENAI_RESPONSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/engine.h"
#include "server/openai.h"
#include "tokenizer/tokenizer.h"

/* Identity of one response: the same in every chunk of a stream. */
typedef struct {
    openai_kind_t kind; /* OPENAI_CHAT or OPENAI_COMPLETION */
    const char *id;     /* "chatcmpl-<hex>" / "cmpl-<hex>" */
    int64_t created;    /* unix seconds */
    const char *model;  /* the served model name */
} openai_meta_t;

typedef struct {
    int32_t prompt_tokens;
    int32_t completion_tokens;
    int32_t cached_tokens; /* prompt tokens served from the prefix cache */
} openai_usage_t;

/* Writes "chatcmpl-" (chat) or "cmpl-" (completions) and 32 random hex digits into buf
 * (cap >= 48). */
void openai_response_id(openai_kind_t kind, char *buf, size_t cap);

/* A JSON string of len arbitrary bytes: invalid UTF-8 is replaced by U+FFFD. */
json_t *openai_json_text(const char *s, size_t len);

/* {"error": {"message", "type", "param", "code"}} for e (code: the HTTP status). */
json_t *openai_error_json(const openai_error_t *e);

/* "stop", "length", or NULL (none yet, or an abort: never reported as a reason). */
const char *openai_finish_reason(cllm_finish_t f);

/* vLLM's stop_reason: the matched stop string, the stop_token_ids entry that stopped it
 * (an integer), or null (EOS, length, still running). */
json_t *openai_stop_reason_json(const openai_request_t *r, const cllm_output_t *o, const tokenizer_t *tok);

/* {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details": {"cached_tokens"}} */
json_t *openai_usage_json(const openai_usage_t *u);

/* The logprobs object for n generated tokens (tokens, lps: (n)), n_top alternatives each.
 * Chat: {"content": [...]}; completions: {"text_offset", "token_logprobs", "tokens",
 * "top_logprobs"}, where *text_offset (characters of text before the first token) is advanced
 * past these tokens so that chunks continue where the last one ended. */
json_t *openai_logprobs_json(openai_kind_t kind, const tokenizer_t *tok, const int32_t *tokens,
                             const cllm_logprob_t *lps, size_t n, int32_t n_top, int64_t *text_offset);

/* The whole non-streaming answer: chat.completion or text_completion with one choice.
 * stop_reason and logprobs (NULL: null) are stolen. */
json_t *openai_response_json(const openai_meta_t *m, const char *text, size_t len, const char *finish_reason,
                             json_t *stop_reason, json_t *logprobs, const openai_usage_t *u);

/* One streaming chunk with one choice. role: chat's first delta ({"role": "assistant",
 * "content": ""}). usage: NULL for none (continuous usage stats otherwise). stop_reason and
 * logprobs are stolen. */
json_t *openai_chunk_json(const openai_meta_t *m, bool role, const char *text, size_t len, const char *finish_reason,
                          json_t *stop_reason, json_t *logprobs, const openai_usage_t *usage);
/* The last chunk of stream_options.include_usage: empty choices and the usage. */
json_t *openai_usage_chunk_json(const openai_meta_t *m, const openai_usage_t *u);

/* {"object": "list", "data": [{"id", "object": "model", "created", "owned_by", "root",
 * "parent", "max_model_len"}]} */
json_t *openai_models_json(const char *name, const char *root, int64_t created, int32_t max_model_len);

/* vLLM's /tokenize answer: {"count", "max_model_len", "tokens", "token_strs"}. */
json_t *openai_tokenize_json(const tokenizer_t *tok, const int32_t *tokens, size_t n, int32_t max_model_len,
                             bool token_strs);

/* "data: <compact json>\n\n" as a malloc'd string (*len bytes); steals j. NULL without memory. */
char *openai_sse_event(json_t *j, size_t *len);

#endif

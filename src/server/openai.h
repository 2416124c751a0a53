/* openai.h: OpenAI-compatible request bodies (vLLM's dialect) -> validated engine requests.
 *
 * Owns the parsing and validation of the JSON bodies of POST /v1/chat/completions,
 * /v1/completions, /tokenize and /detokenize, the OpenAI-style error object every endpoint
 * answers with, and the chat prompt (template rendering, continue_final_message, whether BOS is
 * added). It knows nothing of HTTP or of the running engine: tests drive it directly.
 *
 * Semantics follow vLLM's OpenAI server: null means "not given" for every optional field;
 * numbers must be JSON numbers and booleans JSON booleans (a mistyped field is a 400 naming
 * it); integer fields accept integral reals (1.0); unknown fields are ignored; max_completion_tokens
 * wins over max_tokens; n must be 1; logit_bias biases are clamped to [-100, 100]; chat
 * content is a string or a list of {"type": "text", "text": ...} parts joined with "\n".
 *
 * Invariants: after a successful parse, every pointer in openai_request_t (and in its engine
 * request `req`) points into memory the openai_request_t owns, valid until openai_request_free;
 * every value in `req` was range-checked, so the engine's own checks can only fail on what
 * needs the tokenizer (prompt length vs max_model_len). */
#ifndef CLLM_SERVER_OPENAI_H
#define CLLM_SERVER_OPENAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/engine.h"
#include "cllm/status.h"
#include "model/model.h"
#include "server/chat_template.h"

/* Most top logprobs a request may ask for (vLLM's default max_logprobs). */
#define OPENAI_MAX_LOGPROBS 20

typedef enum {
    OPENAI_CHAT = 0,       /* POST /v1/chat/completions */
    OPENAI_COMPLETION = 1, /* POST /v1/completions */
    OPENAI_TOKENIZE = 2,   /* POST /tokenize: {"prompt"} or {"messages"} */
    OPENAI_DETOKENIZE = 3, /* POST /detokenize: {"tokens"} */
} openai_kind_t;

/* An error as the API reports it: HTTP status and {"error": {message, type, param, code}}. */
typedef struct {
    int status;        /* 400, 401, 404, 405, 413, 500, 503 */
    char param[64];    /* the offending field, "" when none (JSON null) */
    char message[768];
} openai_error_t;

/* What validation needs to know about the served model. */
typedef struct {
    const char *served_model_name; /* "model" must equal it when given */
    int32_t n_vocab;               /* token ids must be in [0, n_vocab) */
    int32_t max_model_len;         /* max_tokens above it is rejected early */
} openai_limits_t;

typedef struct {
    openai_kind_t kind;
    json_t *root;          /* the parsed body; the strings below point into it */
    const char *model;     /* as requested, or NULL */
    bool stream;
    bool include_usage;    /* stream_options.include_usage: a last chunk with usage */
    bool continuous_usage; /* stream_options.continuous_usage_stats: usage on every chunk */
    bool echo;             /* completions: the prompt is prepended to the output */

    /* completions / tokenize: the prompt as text (prompt_text) or ids (prompt_tokens) */
    const char *prompt_text;
    size_t prompt_text_len;
    int32_t *prompt_tokens; /* (n_prompt_tokens) */
    size_t n_prompt_tokens;

    /* chat / tokenize with messages */
    chat_message_t *messages; /* (n_messages); content flattened into message_text */
    char **message_text;      /* (n_messages) owned flattened contents, NULL for none */
    char **message_tool_calls; /* (n_messages) owned JSON text of tool_calls, or NULL */
    size_t n_messages;
    bool add_generation_prompt;  /* (true) */
    bool continue_final_message; /* (false) */
    int add_special_tokens;      /* -1: not given (chat: decided by the BOS rule; completions: true) */
    char *template_kwargs_json;  /* chat_template_kwargs as JSON text, or NULL */
    char *tools_json;            /* tools as JSON text (only with tool_choice "none"), or NULL */
    bool return_token_strs;      /* tokenize */

    /* sampling and stopping, ready for cllm_engine_submit (prompt fields left unset) */
    cllm_request_t req;
    struct {
        bool temperature, top_p, top_k, min_p, repetition_penalty;
    } given; /* which sampling fields the body set (absent or null: false), for the model's defaults */
    const char **stop;        /* (n_stop) pointing into root */
    int32_t *stop_token_ids;  /* (n_stop_token_ids) */
    cllm_logit_bias_t *logit_bias; /* (n_logit_bias) */
    int32_t top_logprobs;     /* chat: top_logprobs with logprobs true; completions: logprobs; -1 none */
} openai_request_t;

/* Fills e (status 400 -> BadRequestError and so on) with a printf-style message. */
void openai_error_set(openai_error_t *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The "type" string of a status: "BadRequestError", "NotFoundError", ... */
const char *openai_error_type(int status);

/* Parses and validates a body of len bytes. CLLM_OK, or CLLM_ERR_INVALID_ARG with err filled
 * (400 malformed/mistyped/out of range, 404 unknown model). On error *r is already freed. */
status_t openai_request_parse(openai_kind_t kind, const char *body, size_t len, const openai_limits_t *lim,
                              openai_request_t *r, openai_error_t *err);
void openai_request_free(openai_request_t *r);

/* vLLM's --generation-config auto: each sampling field in d (the model's generation_config.json)
 * that the request left out takes d's value; fields the request gave keep theirs. d NULL: none.
 * d's values must already be in range (the server checks them once at start). */
void openai_request_apply_defaults(openai_request_t *r, const model_gen_defaults_t *d);

/* Renders r's messages with the chat template t into a malloc'd prompt (*out, *out_len).
 * bos/eos: the texts of the model's BOS/EOS tokens (NULL: none). With continue_final_message
 * the text is cut right after the last message's content, so the model continues it.
 * t NULL (no template) gives a 400 telling how to pass one. Errors fill err (400). */
status_t openai_chat_render(const chat_template_t *t, const openai_request_t *r, const char *bos, const char *eos,
                            char **out, size_t *out_len, openai_error_t *err);

/* Whether to let the tokenizer add BOS to a rendered chat prompt: the request's
 * add_special_tokens when given, else only when the text does not already start with the BOS
 * text (templates such as Llama 3's write <|begin_of_text|> themselves). */
bool openai_chat_add_special(const openai_request_t *r, const char *rendered, const char *bos);

#endif

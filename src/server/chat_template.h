/* chat_template.h: turns a chat (a list of messages) into a prompt by rendering the model's
 * Jinja chat template (GGUF `tokenizer.chat_template`, Hugging Face `chat_template`), the way
 * transformers' apply_chat_template() and vLLM do.
 *
 * The interpreter (jinja_*.c) implements the Jinja subset the common families use (Llama 2/3.x,
 * ChatML/Qwen, Mistral, Gemma, Phi, DeepSeek): {{ }}, if/elif/else, for (with loop.*, else,
 * an `if` filter, break/continue), set (also `set ns.x` and block sets), macro, raw, comments,
 * whitespace control with HF's trim_blocks=True and lstrip_blocks=True; expressions with
 * literals, lists, dicts, attribute/item access, slices, arithmetic, ~, comparisons, and/or/not,
 * in, `is` tests, filters, string/dict methods, and the globals raise_exception(),
 * strftime_now(), range(), namespace(). Differences from Python Jinja: case mapping and
 * whitespace are ASCII; integers are 64-bit (overflow is an error); dict keys are strings;
 * no printf-style `%` formatting, call blocks, recursive loops, include/extends/import.
 *
 * Render variables: messages (list of {role, content[, tool_calls, tool_call_id, name]}),
 * bos_token, eos_token, add_generation_prompt, tools (none unless given), documents (none),
 * plus any from vars->extra_json.
 *
 * Invariants: a chat_template_t is immutable after create, so any number of threads may render
 * it at once; each render uses its own arena and frees it before returning; rendering is
 * bounded in memory, time and recursion (jinja_value.h limits) whatever the template says.
 * The deepest template the limits admit needs about 256 KiB of stack (384 KiB unoptimised):
 * render on threads with the default 8 MiB stack or at least 512 KiB. */
#ifndef CLLM_SERVER_CHAT_TEMPLATE_H
#define CLLM_SERVER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

typedef struct chat_template chat_template_t;

typedef struct {
    const char *role;            /* "system", "user", "assistant", "tool", ...; required */
    const char *content;         /* text (the caller flattens content parts); NULL renders as none */
    const char *tool_calls_json; /* NULL, or a JSON array: message.tool_calls (key absent when NULL) */
    const char *tool_call_id;    /* NULL, or message.tool_call_id */
    const char *name;            /* NULL, or message.name */
} chat_message_t;

typedef struct {
    const char *bos_token;      /* NULL renders as "" */
    const char *eos_token;      /* NULL renders as "" */
    bool add_generation_prompt; /* end with the assistant header, ready for the reply */
    const char *tools_json;     /* NULL (tools is none), or a JSON array of tool schemas */
    const char *extra_json;     /* NULL, or a JSON object of more variables (e.g. {"date_string": ...}) */
    int64_t now;                /* seconds since the epoch for strftime_now(); 0 = the current time */
} chat_template_vars_t;

/* Parses source (len bytes, UTF-8) once. Errors: CLLM_ERR_INVALID_ARG for a syntax error,
 * unknown tag/filter/test, with "line N" in the message; CLLM_ERR_RANGE (too large or too
 * deeply nested); CLLM_ERR_NOMEM. */
status_t chat_template_create(const char *source, size_t len, chat_template_t **out);
void chat_template_destroy(chat_template_t *t);

/* Renders the template. On success *out is a malloc'd NUL-terminated string of *out_len bytes
 * (free() it). Errors: CLLM_ERR_INVALID_ARG for a runtime error of the template (including its
 * raise_exception("..."), whose text is in the message), a bad argument or malformed JSON;
 * CLLM_ERR_RANGE when a limit is hit (output over 16 MiB, too many steps or iterations, too
 * deep); CLLM_ERR_NOMEM. */
status_t chat_template_render(const chat_template_t *t, const chat_message_t *msgs, size_t n_msgs,
                              const chat_template_vars_t *vars, char **out, size_t *out_len);

#endif

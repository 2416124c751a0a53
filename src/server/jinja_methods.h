/* jinja_methods.h: what templates can call — methods of strings, dicts and the loop object
 * (`s.strip()`, `d.items()`, `loop.cycle()`), the global functions (raise_exception, range,
 * namespace, strftime_now, dict), and the Python string operations they share with filters.
 *
 * Only read-only methods exist: as in Hugging Face's ImmutableSandboxedEnvironment, a template
 * cannot mutate a list or dict it was given (append, pop, update fail as unknown methods).
 * Case mapping and whitespace are ASCII (bytes >= 0x80 pass through unchanged); lengths and
 * indices count code points. Every result is allocated in the runtime's arena. */
#ifndef CLLM_SERVER_JINJA_METHODS_H
#define CLLM_SERVER_JINJA_METHODS_H

#include <stdbool.h>

#include "cllm/status.h"
#include "server/jinja_value.h"

typedef enum {
    JINJA_CASE_UPPER,
    JINJA_CASE_LOWER,
    JINJA_CASE_CAPITALIZE, /* str.capitalize(): first character upper, the rest lower */
    JINJA_CASE_TITLE_PY,   /* str.title(): upper after every non-letter */
    JINJA_CASE_TITLE_WORDS,/* Jinja's |title: upper after whitespace, - ( { [ < */
} jinja_case_t;

/* obj.name(args). Errors: unknown method (CLLM_ERR_INVALID_ARG), bad arguments, limits. */
status_t jinja_method_call(jinja_rt_t *rt, int line, jinja_value_t obj, jinja_str_t name, const jinja_args_t *args,
                           jinja_value_t *out);
/* A global function. raise_exception always fails, with its argument as the message. */
status_t jinja_func_call(jinja_rt_t *rt, int line, jinja_func_t f, const jinja_args_t *args, jinja_value_t *out);

/* ---- string operations shared with filters ---- */

bool jinja_is_space(char c);
status_t jinja_str_case(jinja_rt_t *rt, int line, jinja_str_t s, jinja_case_t mode, jinja_value_t *out);
/* str.strip(chars): chars undefined/none strips whitespace. */
status_t jinja_str_strip(jinja_rt_t *rt, int line, jinja_str_t s, jinja_value_t chars, bool left, bool right,
                         jinja_value_t *out);
/* str.replace(old, new, count); count < 0 replaces all. */
status_t jinja_str_replace(jinja_rt_t *rt, int line, jinja_str_t s, jinja_str_t old, jinja_str_t new_s, int64_t count,
                           jinja_value_t *out);
/* str.split(sep, maxsplit); sep undefined/none splits on runs of whitespace. */
status_t jinja_str_split(jinja_rt_t *rt, int line, jinja_str_t s, jinja_value_t sep, int64_t maxsplit,
                         jinja_value_t *out);
/* Concatenates str() of the items with sep between them. */
status_t jinja_join(jinja_rt_t *rt, int line, const jinja_list_t *items, jinja_str_t sep, jinja_value_t *out);
/* Integer argument (int or bool), or def when undefined/none; fails for other types. */
status_t jinja_int_arg(jinja_value_t v, int64_t def, int line, const char *what, int64_t *out);

#endif

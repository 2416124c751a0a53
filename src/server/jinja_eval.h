/* jinja_eval.h: renders a parsed template (jinja_parser.h) against a dict of variables.
 *
 * Scoping follows Jinja: top-level `set` writes the template's global frame; each for-loop
 * iteration gets a fresh frame (assignments inside a loop do not leak out, hence namespace());
 * a macro call runs in a frame whose parent is the global frame. Undefined names, keys and
 * attributes evaluate to undefined (prints "", falsy, iterable as empty, `is defined` false),
 * while reading an attribute or item of undefined, calling it or doing arithmetic on it fails,
 * as with Jinja's default Undefined.
 * Invariants: the parse tree is only read, so renders can run concurrently on one tree; all
 * values of a render live in rt->arena; evaluation depth, macro-call depth, loop iterations,
 * steps and output size are bounded (jinja_value.h), so every render terminates. */
#ifndef CLLM_SERVER_JINJA_EVAL_H
#define CLLM_SERVER_JINJA_EVAL_H

#include <stddef.h>

#include "cllm/status.h"
#include "server/jinja_parser.h"
#include "server/jinja_value.h"

/* Renders root with the variables of globals (a dict; the built-in functions are added
 * underneath them). *out (malloc'd, NUL-terminated, *out_len bytes) is the caller's to free().
 * Errors: CLLM_ERR_INVALID_ARG (runtime error or raise_exception, with the line),
 * CLLM_ERR_RANGE (a limit), CLLM_ERR_NOMEM. */
status_t jinja_eval_render(const jinja_node_t *root, jinja_rt_t *rt, const jinja_dict_t *globals, char **out,
                           size_t *out_len);

#endif

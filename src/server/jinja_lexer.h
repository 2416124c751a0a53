/* jinja_lexer.h: splits a Jinja template into text and tag tokens, applying whitespace control
 * as Hugging Face renders chat templates (trim_blocks=True, lstrip_blocks=True,
 * keep_trailing_newline=False).
 *
 * Text between tags becomes one JT_TEXT token, already trimmed by `{%-`/`-%}` (all whitespace),
 * lstrip_blocks (spaces and tabs before a block or comment tag that starts its line, unless
 * `{%+`) and trim_blocks (the first newline after a block or comment tag, unless `+%}`).
 * Comments vanish; `{% raw %}...{% endraw %}` becomes text. Inside tags the expression tokens
 * follow, then JT_BLOCK_END / JT_VAR_END. Newlines are normalised to "\n" first.
 * Invariants: tokens point into the normalised source held by the arena given to the lexer;
 * string literals are decoded (Python escapes) into that arena; every token knows its line;
 * the array always ends with one JT_EOF. */
#ifndef CLLM_SERVER_JINJA_LEXER_H
#define CLLM_SERVER_JINJA_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "server/jinja_value.h"

typedef enum {
    JT_EOF = 0,
    JT_TEXT,        /* s: literal output */
    JT_VAR_BEGIN,   /* {{ */
    JT_VAR_END,     /* }} */
    JT_BLOCK_BEGIN, /* {% */
    JT_BLOCK_END,   /* %} */
    JT_NAME,        /* s: identifier */
    JT_STRING,      /* s: decoded literal */
    JT_INT,         /* i */
    JT_FLOAT,       /* f */
    JT_OP,          /* s: operator or punctuation: == != <= >= // ** + - * / % ~ ( ) [ ] { } , . : | = < > */
} jinja_token_type_t;

typedef struct {
    jinja_token_type_t type;
    int line;
    jinja_str_t s;
    int64_t i;
    double f;
} jinja_token_t;

/* Lexes src (len bytes). On success *toks (arena-owned, *n_toks entries, the last JT_EOF).
 * Errors: CLLM_ERR_INVALID_ARG (unterminated tag/comment/string, bad character) with the line,
 * CLLM_ERR_RANGE (source too large), CLLM_ERR_NOMEM. */
status_t jinja_lex(const char *src, size_t len, jinja_arena_t *arena, jinja_token_t **toks, size_t *n_toks);

#endif

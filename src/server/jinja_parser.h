/* jinja_parser.h: the parse tree of a Jinja template, built from jinja_lexer tokens.
 *
 * One node type serves statements and expressions; what each field means depends on `kind`
 * (listed below). Nodes live in the template's arena and are never modified after parsing, so
 * one parsed template can be rendered by many threads at once.
 * Invariants: nesting of blocks and parenthesised expressions is at most
 * JINJA_MAX_PARSE_DEPTH; `break`/`continue` appear only inside a for-loop; every node keeps
 * the line it starts on, for error messages. */
#ifndef CLLM_SERVER_JINJA_PARSER_H
#define CLLM_SERVER_JINJA_PARSER_H

#include <stddef.h>

#include "cllm/status.h"
#include "server/jinja_lexer.h"
#include "server/jinja_value.h"

typedef enum {
    /* statements */
    JN_BODY,     /* list: statements */
    JN_TEXT,     /* name: the text */
    JN_OUTPUT,   /* a: expression to print */
    JN_IF,       /* a: condition, list: then-body, list2: else-body (elif = an else-body of one JN_IF) */
    JN_FOR,      /* names: targets (1 or more), a: iterable, b: filter (`if`) or NULL, list: body,
                    list2: else-body */
    JN_SET,      /* a: value; names: targets (n_names > 1 unpacks); or, when name.n > 0,
                    names[0] is a namespace and name its attribute (`set ns.x = ...`) */
    JN_SET_BLOCK,/* names[0]: target, list: body whose output is assigned */
    JN_MACRO,    /* name, names: parameters, list2: their defaults (NULL entries: none), list: body */
    JN_BREAK,
    JN_CONTINUE,
    JN_DO,       /* a: expression evaluated for nothing */
    /* expressions */
    JE_LITERAL,  /* lit */
    JE_NAME,     /* name */
    JE_LIST,     /* list: items; op: 1 for a tuple */
    JE_DICT,     /* list: keys, list2: values */
    JE_GETATTR,  /* a: object, name: attribute */
    JE_GETITEM,  /* a: object, b: key */
    JE_SLICE,    /* a: object, b/c/d: start/stop/step, each NULL when absent */
    JE_CALL,     /* a: callee, list: positional args, names + list2: keyword args */
    JE_FILTER,   /* a: input, name: filter, list: positional args, names + list2: keyword args */
    JE_TEST,     /* a: input, name: test, list: args, op: 1 for `is not` */
    JE_UNARY,    /* op: JOP_NOT / JOP_NEG / JOP_POS, a */
    JE_BINARY,   /* op, a, b */
    JE_COND,     /* a: value if b is true, c: value otherwise (NULL: undefined) */
} jinja_node_kind_t;

typedef enum {
    JOP_NONE = 0,
    JOP_OR, JOP_AND, JOP_NOT, JOP_NEG, JOP_POS,
    JOP_EQ, JOP_NE, JOP_LT, JOP_LE, JOP_GT, JOP_GE, JOP_IN, JOP_NOT_IN,
    JOP_ADD, JOP_SUB, JOP_CONCAT, JOP_MUL, JOP_DIV, JOP_FLOORDIV, JOP_MOD, JOP_POW,
} jinja_op_t;

typedef struct jinja_node jinja_node_t;
struct jinja_node {
    jinja_node_kind_t kind;
    int line;
    int op;
    jinja_str_t name;
    jinja_value_t lit;
    const jinja_node_t *a, *b, *c, *d;
    const jinja_node_t **list;  /* (n_list,) */
    size_t n_list;
    const jinja_node_t **list2; /* (n_list2,) */
    size_t n_list2;
    jinja_str_t *names;         /* (n_names,) */
    size_t n_names;
};

/* Parses tokens (from jinja_lex) into a JN_BODY root allocated in arena.
 * Errors: CLLM_ERR_INVALID_ARG (syntax, unknown tag, unclosed block) with the line,
 * CLLM_ERR_RANGE (nesting too deep), CLLM_ERR_NOMEM. */
status_t jinja_parse(const jinja_token_t *toks, size_t n_toks, jinja_arena_t *arena, const jinja_node_t **root);

#endif

/* jinja_parser.c: recursive-descent parser from tokens to the parse tree (jinja_parser.h).
 *
 * Operator precedence follows Jinja2's parser, loosest first: `a if c else b`, or, and, not,
 * comparisons (chained as in Python), + -, ~, * / // %, **, unary - +, then postfix
 * (.attr, [index], [a:b:c], (call)) and filters/tests (| f, is t). So `a ~ b + c` is
 * `(a ~ b) + c` and `-x | f` is `f(-x)`, as in Jinja.
 * Invariants: recursion is bounded by depth counters (JINJA_MAX_PARSE_DEPTH); every node and
 * vector lives in the arena, so an error needs no cleanup. */
#include "server/jinja_parser.h"

#include <stdio.h>
#include <string.h>

#include "server/jinja_filters.h"

typedef struct {
    const jinja_token_t *t; /* (n,) ending in JT_EOF */
    size_t n, pos;
    jinja_arena_t *arena;
    int depth;
    int loop_depth; /* for-loops enclosing the current statement (break/continue allowed) */
} parser_t;

typedef struct {
    const jinja_node_t **v; /* (cap,) arena-backed */
    size_t n, cap;
} nvec_t;

#define MAX_DICT_LITERAL 10000

static const jinja_token_t *cur(const parser_t *p)
{
    return &p->t[p->pos];
}

static const jinja_token_t *peek(const parser_t *p, size_t k)
{
    size_t i = p->pos + k;
    return &p->t[i < p->n ? i : p->n - 1];
}

static void advance(parser_t *p)
{
    if (p->pos + 1 < p->n) p->pos++;
}

static bool tok_is_op(const jinja_token_t *t, const char *op)
{
    return t->type == JT_OP && jinja_str_eq(t->s, op);
}

static bool tok_is_name(const jinja_token_t *t, const char *name)
{
    return t->type == JT_NAME && jinja_str_eq(t->s, name);
}

static void tok_desc(const jinja_token_t *t, char *buf, size_t size)
{
    switch (t->type) {
    case JT_EOF: snprintf(buf, size, "end of template"); break;
    case JT_TEXT: snprintf(buf, size, "text"); break;
    case JT_VAR_BEGIN: snprintf(buf, size, "'{{'"); break;
    case JT_VAR_END: snprintf(buf, size, "'}}'"); break;
    case JT_BLOCK_BEGIN: snprintf(buf, size, "'{%%'"); break;
    case JT_BLOCK_END: snprintf(buf, size, "'%%}'"); break;
    case JT_STRING: snprintf(buf, size, "a string"); break;
    case JT_INT:
    case JT_FLOAT: snprintf(buf, size, "a number"); break;
    case JT_NAME:
    case JT_OP: snprintf(buf, size, "'%.*s'", (int)(t->s.n > 40 ? 40 : t->s.n), t->s.p); break;
    }
}

static status_t unexpected(const parser_t *p, const char *wanted)
{
    char d[64];
    tok_desc(cur(p), d, sizeof(d));
    return jinja_fail(cur(p)->line, CLLM_ERR_INVALID_ARG, "syntax error: expected %s, found %s", wanted, d);
}

static status_t expect_op(parser_t *p, const char *op)
{
    char want[16];
    if (!tok_is_op(cur(p), op)) {
        snprintf(want, sizeof(want), "'%s'", op);
        return unexpected(p, want);
    }
    advance(p);
    return CLLM_OK;
}

static status_t expect_type(parser_t *p, jinja_token_type_t type, const char *what)
{
    if (cur(p)->type != type) return unexpected(p, what);
    advance(p);
    return CLLM_OK;
}

static status_t nomem(void)
{
    (void)cllm_error(CLLM_ERR_NOMEM, "chat_template: out of memory while parsing");
    return CLLM_ERR_NOMEM;
}

static jinja_node_t *new_node(parser_t *p, jinja_node_kind_t kind, int line)
{
    jinja_node_t *n = jinja_arena_alloc(p->arena, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->line = line;
    }
    return n;
}

static bool nvec_push(parser_t *p, nvec_t *v, const jinja_node_t *n)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        const jinja_node_t **a = jinja_arena_alloc(p->arena, cap * sizeof(*a));
        if (!a) return false;
        if (v->n) memcpy(a, v->v, v->n * sizeof(*a));
        v->v = a;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return true;
}

static bool names_push(parser_t *p, jinja_str_t **names, size_t *n, size_t *cap, jinja_str_t s)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        jinja_str_t *a = jinja_arena_alloc(p->arena, c * sizeof(*a));
        if (!a) return false;
        if (*n) memcpy(a, *names, *n * sizeof(*a));
        *names = a;
        *cap = c;
    }
    (*names)[(*n)++] = s;
    return true;
}

static status_t enter(parser_t *p)
{
    if (++p->depth > JINJA_MAX_PARSE_DEPTH)
        return jinja_fail(cur(p)->line, CLLM_ERR_RANGE, "template nested more than %d levels deep",
                          JINJA_MAX_PARSE_DEPTH);
    return CLLM_OK;
}

static status_t parse_expr(parser_t *p, const jinja_node_t **out);
static status_t parse_or(parser_t *p, const jinja_node_t **out);
static status_t parse_unary(parser_t *p, bool with_filter, const jinja_node_t **out);
static status_t parse_primary(parser_t *p, const jinja_node_t **out);
static status_t parse_postfix(parser_t *p, const jinja_node_t **node);

#define TRY(x)                                 \
    do {                                       \
        status_t st_ = (x);                    \
        if (st_ != CLLM_OK) return st_;        \
    } while (0)

static status_t make_binary(parser_t *p, int op, int line, const jinja_node_t *a, const jinja_node_t *b,
                            const jinja_node_t **out)
{
    jinja_node_t *n = new_node(p, JE_BINARY, line);
    if (!n) return nomem();
    n->op = op;
    n->a = a;
    n->b = b;
    *out = n;
    return CLLM_OK;
}

/* (args) after a callee/filter/test: positional and name=value arguments. */
static status_t parse_call_args(parser_t *p, jinja_node_t *n)
{
    nvec_t pos = { 0 }, kwv = { 0 };
    size_t cap = 0;

    TRY(expect_op(p, "("));
    while (!tok_is_op(cur(p), ")")) {
        const jinja_node_t *e;
        if (tok_is_op(cur(p), "*") || tok_is_op(cur(p), "**"))
            return jinja_fail(cur(p)->line, CLLM_ERR_INVALID_ARG, "*args and **kwargs are not supported");
        if (cur(p)->type == JT_NAME && tok_is_op(peek(p, 1), "=")) {
            jinja_str_t name = cur(p)->s;
            advance(p);
            advance(p);
            TRY(parse_expr(p, &e));
            if (!names_push(p, &n->names, &n->n_names, &cap, name) || !nvec_push(p, &kwv, e)) return nomem();
        } else {
            if (kwv.n)
                return jinja_fail(cur(p)->line, CLLM_ERR_INVALID_ARG, "positional argument after keyword argument");
            TRY(parse_expr(p, &e));
            if (!nvec_push(p, &pos, e)) return nomem();
        }
        if (!tok_is_op(cur(p), ",")) break;
        advance(p);
    }
    TRY(expect_op(p, ")"));
    n->list = pos.v;
    n->n_list = pos.n;
    n->list2 = kwv.v;
    n->n_list2 = kwv.n;
    return CLLM_OK;
}

static status_t parse_filter_expr(parser_t *p, const jinja_node_t **node)
{
    for (;;) {
        const jinja_token_t *t = cur(p);
        if (tok_is_op(t, "|")) {
            jinja_node_t *f = new_node(p, JE_FILTER, t->line);
            if (!f) return nomem();
            advance(p);
            if (cur(p)->type != JT_NAME) return unexpected(p, "a filter name");
            if (!jinja_filter_exists(cur(p)->s))
                return jinja_fail(cur(p)->line, CLLM_ERR_INVALID_ARG, "unknown filter '%.*s'",
                                  (int)(cur(p)->s.n > 40 ? 40 : cur(p)->s.n), cur(p)->s.p);
            f->name = cur(p)->s;
            f->a = *node;
            advance(p);
            if (tok_is_op(cur(p), "(")) TRY(parse_call_args(p, f));
            *node = f;
        } else if (tok_is_name(t, "is")) {
            jinja_node_t *n = new_node(p, JE_TEST, t->line);
            const jinja_token_t *c;
            if (!n) return nomem();
            advance(p);
            if (tok_is_name(cur(p), "not")) {
                n->op = 1;
                advance(p);
            }
            if (cur(p)->type != JT_NAME) return unexpected(p, "a test name");
            if (!jinja_test_exists(cur(p)->s))
                return jinja_fail(cur(p)->line, CLLM_ERR_INVALID_ARG, "unknown test '%.*s'",
                                  (int)(cur(p)->s.n > 40 ? 40 : cur(p)->s.n), cur(p)->s.p);
            n->name = cur(p)->s;
            n->a = *node;
            advance(p);
            c = cur(p);
            if (tok_is_op(c, "(")) {
                TRY(parse_call_args(p, n));
            } else if ((c->type == JT_NAME || c->type == JT_STRING || c->type == JT_INT || c->type == JT_FLOAT ||
                        tok_is_op(c, "[") || tok_is_op(c, "{")) &&
                       !tok_is_name(c, "else") && !tok_is_name(c, "or") && !tok_is_name(c, "and") &&
                       !tok_is_name(c, "is")) {
                /* one argument without parentheses: `x is divisibleby 3`, `x is sameas false` */
                const jinja_node_t *arg;
                nvec_t args = { 0 };
                TRY(parse_primary(p, &arg));
                TRY(parse_postfix(p, &arg));
                if (!nvec_push(p, &args, arg)) return nomem();
                n->list = args.v;
                n->n_list = args.n;
            }
            *node = n;
        } else if (tok_is_op(t, "(")) {
            jinja_node_t *call = new_node(p, JE_CALL, t->line);
            if (!call) return nomem();
            call->a = *node;
            TRY(parse_call_args(p, call));
            *node = call;
        } else {
            return CLLM_OK;
        }
    }
}

static status_t parse_subscript(parser_t *p, const jinja_node_t **node)
{
    int line = cur(p)->line;
    const jinja_node_t *start = NULL, *stop = NULL, *step = NULL;
    jinja_node_t *n;

    advance(p); /* [ */
    if (!tok_is_op(cur(p), ":")) TRY(parse_expr(p, &start));
    if (!tok_is_op(cur(p), ":")) {
        TRY(expect_op(p, "]"));
        if (!(n = new_node(p, JE_GETITEM, line))) return nomem();
        n->a = *node;
        n->b = start;
        *node = n;
        return CLLM_OK;
    }
    advance(p); /* : */
    if (!tok_is_op(cur(p), ":") && !tok_is_op(cur(p), "]")) TRY(parse_expr(p, &stop));
    if (tok_is_op(cur(p), ":")) {
        advance(p);
        if (!tok_is_op(cur(p), "]")) TRY(parse_expr(p, &step));
    }
    TRY(expect_op(p, "]"));
    if (!(n = new_node(p, JE_SLICE, line))) return nomem();
    n->a = *node;
    n->b = start;
    n->c = stop;
    n->d = step;
    *node = n;
    return CLLM_OK;
}

static status_t parse_postfix(parser_t *p, const jinja_node_t **node)
{
    for (;;) {
        const jinja_token_t *t = cur(p);
        if (tok_is_op(t, ".")) {
            jinja_node_t *n;
            advance(p);
            if (cur(p)->type == JT_NAME) {
                if (!(n = new_node(p, JE_GETATTR, t->line))) return nomem();
                n->name = cur(p)->s;
            } else if (cur(p)->type == JT_INT) { /* foo.0 is foo[0] */
                jinja_node_t *k = new_node(p, JE_LITERAL, t->line);
                if (!k || !(n = new_node(p, JE_GETITEM, t->line))) return nomem();
                k->lit = jv_int(cur(p)->i);
                n->b = k;
            } else {
                return unexpected(p, "an attribute name");
            }
            n->a = *node;
            advance(p);
            *node = n;
        } else if (tok_is_op(t, "[")) {
            TRY(parse_subscript(p, node));
        } else if (tok_is_op(t, "(")) {
            jinja_node_t *call = new_node(p, JE_CALL, t->line);
            if (!call) return nomem();
            call->a = *node;
            TRY(parse_call_args(p, call));
            *node = call;
        } else {
            return CLLM_OK;
        }
    }
}

/* Items of a list, tuple or dict literal up to the closing bracket `close`. */
static status_t parse_sequence(parser_t *p, const char *close, bool is_dict, nvec_t *keys, nvec_t *vals)
{
    while (!tok_is_op(cur(p), close)) {
        const jinja_node_t *e;
        TRY(parse_expr(p, &e));
        if (!nvec_push(p, keys, e)) return nomem();
        if (is_dict) {
            if (keys->n > MAX_DICT_LITERAL)
                return jinja_fail(cur(p)->line, CLLM_ERR_RANGE, "dict literal with more than %d items",
                                  MAX_DICT_LITERAL);
            TRY(expect_op(p, ":"));
            TRY(parse_expr(p, &e));
            if (!nvec_push(p, vals, e)) return nomem();
        }
        if (!tok_is_op(cur(p), ",")) break;
        advance(p);
    }
    return expect_op(p, close);
}

static status_t parse_primary(parser_t *p, const jinja_node_t **out)
{
    const jinja_token_t *t = cur(p);
    jinja_node_t *n;

    if (t->type == JT_NAME) {
        if (!(n = new_node(p, JE_LITERAL, t->line))) return nomem();
        if (tok_is_name(t, "true") || tok_is_name(t, "True")) n->lit = jv_bool(true);
        else if (tok_is_name(t, "false") || tok_is_name(t, "False")) n->lit = jv_bool(false);
        else if (tok_is_name(t, "none") || tok_is_name(t, "None")) n->lit = jv_none();
        else {
            n->kind = JE_NAME;
            n->name = t->s;
        }
        advance(p);
    } else if (t->type == JT_STRING) {
        jinja_buf_t b; /* adjacent literals concatenate: "a" "b" */
        jinja_value_t v = jv_undefined();
        if (!(n = new_node(p, JE_LITERAL, t->line))) return nomem();
        if (peek(p, 1)->type != JT_STRING) {
            n->lit = jv_str(t->s.p, t->s.n);
            advance(p);
        } else {
            jinja_buf_init(&b);
            while (cur(p)->type == JT_STRING) {
                jinja_buf_put(&b, cur(p)->s.p, cur(p)->s.n);
                advance(p);
            }
            if (b.failed || !jv_str_copy(p->arena, b.p ? b.p : "", b.n, &v)) {
                jinja_buf_free(&b);
                return nomem();
            }
            jinja_buf_free(&b);
            n->lit = v;
        }
    } else if (t->type == JT_INT || t->type == JT_FLOAT) {
        if (!(n = new_node(p, JE_LITERAL, t->line))) return nomem();
        n->lit = t->type == JT_INT ? jv_int(t->i) : jv_float(t->f);
        advance(p);
    } else if (tok_is_op(t, "(")) {
        const jinja_node_t *e;
        nvec_t items = { 0 };
        advance(p);
        if (tok_is_op(cur(p), ")")) { /* () is the empty tuple */
            advance(p);
            if (!(n = new_node(p, JE_LIST, t->line))) return nomem();
            n->op = 1;
            *out = n;
            return CLLM_OK;
        }
        TRY(parse_expr(p, &e));
        if (!tok_is_op(cur(p), ",")) {
            TRY(expect_op(p, ")"));
            *out = e;
            return CLLM_OK;
        }
        advance(p);
        if (!nvec_push(p, &items, e)) return nomem();
        TRY(parse_sequence(p, ")", false, &items, NULL));
        if (!(n = new_node(p, JE_LIST, t->line))) return nomem();
        n->op = 1;
        n->list = items.v;
        n->n_list = items.n;
    } else if (tok_is_op(t, "[") || tok_is_op(t, "{")) {
        bool is_dict = tok_is_op(t, "{");
        nvec_t keys = { 0 }, vals = { 0 };
        advance(p);
        TRY(parse_sequence(p, is_dict ? "}" : "]", is_dict, &keys, &vals));
        if (!(n = new_node(p, is_dict ? JE_DICT : JE_LIST, t->line))) return nomem();
        n->list = keys.v;
        n->n_list = keys.n;
        n->list2 = vals.v;
        n->n_list2 = vals.n;
    } else {
        return unexpected(p, "an expression");
    }
    *out = n;
    return CLLM_OK;
}

static status_t parse_unary(parser_t *p, bool with_filter, const jinja_node_t **out)
{
    const jinja_token_t *t = cur(p);
    const jinja_node_t *node;

    if (tok_is_op(t, "-") || tok_is_op(t, "+")) {
        jinja_node_t *u = new_node(p, JE_UNARY, t->line);
        if (!u) return nomem();
        u->op = tok_is_op(t, "-") ? JOP_NEG : JOP_POS;
        advance(p);
        TRY(enter(p));
        TRY(parse_unary(p, false, &u->a));
        p->depth--;
        node = u;
    } else {
        TRY(parse_primary(p, &node));
    }
    TRY(parse_postfix(p, &node));
    if (with_filter) TRY(parse_filter_expr(p, &node));
    *out = node;
    return CLLM_OK;
}

static status_t parse_pow(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL;
    TRY(parse_unary(p, true, &left));
    while (tok_is_op(cur(p), "**")) {
        int line = cur(p)->line;
        advance(p);
        TRY(parse_unary(p, true, &right));
        TRY(make_binary(p, JOP_POW, line, left, right, &left));
    }
    *out = left;
    return CLLM_OK;
}

static status_t parse_math2(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL;
    TRY(parse_pow(p, &left));
    for (;;) {
        const jinja_token_t *t = cur(p);
        int op = tok_is_op(t, "*") ? JOP_MUL : tok_is_op(t, "/") ? JOP_DIV : tok_is_op(t, "//") ? JOP_FLOORDIV
                 : tok_is_op(t, "%") ? JOP_MOD : JOP_NONE;
        if (op == JOP_NONE) break;
        advance(p);
        TRY(parse_pow(p, &right));
        TRY(make_binary(p, op, t->line, left, right, &left));
    }
    *out = left;
    return CLLM_OK;
}

static status_t parse_concat(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL;
    TRY(parse_math2(p, &left));
    while (tok_is_op(cur(p), "~")) {
        int line = cur(p)->line;
        advance(p);
        TRY(parse_math2(p, &right));
        TRY(make_binary(p, JOP_CONCAT, line, left, right, &left));
    }
    *out = left;
    return CLLM_OK;
}

static status_t parse_math1(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL;
    TRY(parse_concat(p, &left));
    for (;;) {
        const jinja_token_t *t = cur(p);
        int op = tok_is_op(t, "+") ? JOP_ADD : tok_is_op(t, "-") ? JOP_SUB : JOP_NONE;
        if (op == JOP_NONE) break;
        advance(p);
        TRY(parse_concat(p, &right));
        TRY(make_binary(p, op, t->line, left, right, &left));
    }
    *out = left;
    return CLLM_OK;
}

static int compare_op(const parser_t *p)
{
    const jinja_token_t *t = cur(p);
    if (tok_is_op(t, "==")) return JOP_EQ;
    if (tok_is_op(t, "!=")) return JOP_NE;
    if (tok_is_op(t, "<")) return JOP_LT;
    if (tok_is_op(t, "<=")) return JOP_LE;
    if (tok_is_op(t, ">")) return JOP_GT;
    if (tok_is_op(t, ">=")) return JOP_GE;
    if (tok_is_name(t, "in")) return JOP_IN;
    if (tok_is_name(t, "not") && tok_is_name(peek(p, 1), "in")) return JOP_NOT_IN;
    return JOP_NONE;
}

/* a < b < c means (a < b) and (b < c), as in Python. */
static status_t parse_compare(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL, *result = NULL, *cmp = NULL;
    int op;

    TRY(parse_math1(p, &left));
    while ((op = compare_op(p)) != JOP_NONE) {
        int line = cur(p)->line;
        advance(p);
        if (op == JOP_NOT_IN) advance(p);
        TRY(parse_math1(p, &right));
        TRY(make_binary(p, op, line, left, right, &cmp));
        if (result) TRY(make_binary(p, JOP_AND, line, result, cmp, &result));
        else result = cmp;
        left = right;
    }
    *out = result ? result : left;
    return CLLM_OK;
}

static status_t parse_not(parser_t *p, const jinja_node_t **out)
{
    if (tok_is_name(cur(p), "not")) {
        jinja_node_t *u = new_node(p, JE_UNARY, cur(p)->line);
        if (!u) return nomem();
        u->op = JOP_NOT;
        advance(p);
        TRY(enter(p));
        TRY(parse_not(p, &u->a));
        p->depth--;
        *out = u;
        return CLLM_OK;
    }
    return parse_compare(p, out);
}

static status_t parse_and(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL;
    TRY(parse_not(p, &left));
    while (tok_is_name(cur(p), "and")) {
        int line = cur(p)->line;
        advance(p);
        TRY(parse_not(p, &right));
        TRY(make_binary(p, JOP_AND, line, left, right, &left));
    }
    *out = left;
    return CLLM_OK;
}

static status_t parse_or(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *left = NULL, *right = NULL;
    TRY(parse_and(p, &left));
    while (tok_is_name(cur(p), "or")) {
        int line = cur(p)->line;
        advance(p);
        TRY(parse_and(p, &right));
        TRY(make_binary(p, JOP_OR, line, left, right, &left));
    }
    *out = left;
    return CLLM_OK;
}

/* A full expression: `a if cond else b` chains over `or`. */
static status_t parse_expr(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *e;

    TRY(enter(p));
    TRY(parse_or(p, &e));
    while (tok_is_name(cur(p), "if")) {
        jinja_node_t *c = new_node(p, JE_COND, cur(p)->line);
        if (!c) return nomem();
        advance(p);
        c->a = e;
        TRY(parse_or(p, &c->b));
        if (tok_is_name(cur(p), "else")) {
            advance(p);
            TRY(parse_expr(p, &c->c));
        }
        e = c;
    }
    p->depth--;
    *out = e;
    return CLLM_OK;
}

/* An expression, or a tuple without parentheses: `{{ a, b }}`, `set x = 1, 2`. */
static status_t parse_tuple_expr(parser_t *p, const jinja_node_t **out)
{
    const jinja_node_t *e;
    jinja_node_t *n;
    nvec_t items = { 0 };
    int line = cur(p)->line;

    TRY(parse_expr(p, &e));
    if (!tok_is_op(cur(p), ",")) {
        *out = e;
        return CLLM_OK;
    }
    if (!nvec_push(p, &items, e)) return nomem();
    while (tok_is_op(cur(p), ",")) {
        advance(p);
        if (cur(p)->type == JT_VAR_END || cur(p)->type == JT_BLOCK_END) break;
        TRY(parse_expr(p, &e));
        if (!nvec_push(p, &items, e)) return nomem();
    }
    if (!(n = new_node(p, JE_LIST, line))) return nomem();
    n->op = 1;
    n->list = items.v;
    n->n_list = items.n;
    *out = n;
    return CLLM_OK;
}

/* ---- statements ---- */

static status_t parse_body(parser_t *p, const char *const *ends, size_t n_ends, int open_line, const char *open_tag,
                           nvec_t *body);

/* Consumes `{% name %}` (an end tag) at the current position. */
static status_t expect_end_tag(parser_t *p)
{
    advance(p); /* {% */
    advance(p); /* name */
    return expect_type(p, JT_BLOCK_END, "'%}'");
}

static bool at_tag(const parser_t *p, const char *name)
{
    return cur(p)->type == JT_BLOCK_BEGIN && tok_is_name(peek(p, 1), name);
}

static status_t parse_if(parser_t *p, int line, jinja_node_t **out)
{
    static const char *const ends[] = { "elif", "else", "endif" };
    jinja_node_t *root = NULL, *node = NULL;

    for (;;) { /* the `if` and each `elif`: an else-body holding one JN_IF */
        jinja_node_t *n = new_node(p, JN_IF, cur(p)->line);
        nvec_t body = { 0 };
        if (!n) return nomem();
        TRY(parse_expr(p, &n->a));
        TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
        TRY(parse_body(p, ends, 3, line, "if", &body));
        n->list = body.v;
        n->n_list = body.n;
        if (node) {
            const jinja_node_t **one = jinja_arena_alloc(p->arena, sizeof(*one));
            if (!one) return nomem();
            one[0] = n;
            node->list2 = one;
            node->n_list2 = 1;
        } else {
            root = n;
        }
        node = n;
        if (!at_tag(p, "elif")) break;
        advance(p);
        advance(p);
    }
    if (at_tag(p, "else")) {
        nvec_t body = { 0 };
        TRY(expect_end_tag(p));
        TRY(parse_body(p, ends + 2, 1, line, "if", &body));
        node->list2 = body.v;
        node->n_list2 = body.n;
    }
    TRY(expect_end_tag(p)); /* endif */
    *out = root;
    return CLLM_OK;
}

static status_t parse_targets(parser_t *p, jinja_node_t *n)
{
    size_t cap = 0;
    bool paren = tok_is_op(cur(p), "(");

    if (paren) advance(p);
    for (;;) {
        if (cur(p)->type != JT_NAME) return unexpected(p, "a variable name");
        if (!names_push(p, &n->names, &n->n_names, &cap, cur(p)->s)) return nomem();
        advance(p);
        if (!tok_is_op(cur(p), ",")) break;
        advance(p);
    }
    return paren ? expect_op(p, ")") : CLLM_OK;
}

static status_t parse_for(parser_t *p, int line, jinja_node_t **out)
{
    static const char *const ends[] = { "else", "endfor" };
    jinja_node_t *n = new_node(p, JN_FOR, line);
    nvec_t body = { 0 }, else_body = { 0 };

    if (!n) return nomem();
    TRY(parse_targets(p, n));
    if (!tok_is_name(cur(p), "in")) return unexpected(p, "'in'");
    advance(p);
    TRY(parse_or(p, &n->a)); /* no `x if c else y` here: `if` starts the loop filter */
    if (tok_is_name(cur(p), "if")) {
        advance(p);
        TRY(parse_expr(p, &n->b));
    }
    if (tok_is_name(cur(p), "recursive"))
        return jinja_fail(cur(p)->line, CLLM_ERR_UNSUPPORTED, "recursive loops are not supported");
    TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
    p->loop_depth++;
    TRY(parse_body(p, ends, 2, line, "for", &body));
    p->loop_depth--;
    if (at_tag(p, "else")) {
        TRY(expect_end_tag(p));
        TRY(parse_body(p, ends + 1, 1, line, "for", &else_body));
    }
    TRY(expect_end_tag(p));
    n->list = body.v;
    n->n_list = body.n;
    n->list2 = else_body.v;
    n->n_list2 = else_body.n;
    *out = n;
    return CLLM_OK;
}

static status_t parse_set(parser_t *p, int line, jinja_node_t **out)
{
    static const char *const ends[] = { "endset" };
    jinja_node_t *n = new_node(p, JN_SET, line);

    if (!n) return nomem();
    if (cur(p)->type == JT_NAME && tok_is_op(peek(p, 1), ".")) { /* set ns.attr = value */
        size_t cap = 0;
        if (!names_push(p, &n->names, &n->n_names, &cap, cur(p)->s)) return nomem();
        advance(p);
        advance(p);
        if (cur(p)->type != JT_NAME) return unexpected(p, "an attribute name");
        n->name = cur(p)->s;
        advance(p);
    } else {
        TRY(parse_targets(p, n));
    }
    if (cur(p)->type == JT_BLOCK_END && n->n_names == 1 && n->name.n == 0) { /* {% set x %}...{% endset %} */
        nvec_t body = { 0 };
        advance(p);
        TRY(parse_body(p, ends, 1, line, "set", &body));
        TRY(expect_end_tag(p));
        n->kind = JN_SET_BLOCK;
        n->list = body.v;
        n->n_list = body.n;
        *out = n;
        return CLLM_OK;
    }
    TRY(expect_op(p, "="));
    TRY(parse_tuple_expr(p, &n->a));
    TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
    *out = n;
    return CLLM_OK;
}

static status_t parse_macro(parser_t *p, int line, jinja_node_t **out)
{
    static const char *const ends[] = { "endmacro" };
    jinja_node_t *n = new_node(p, JN_MACRO, line);
    nvec_t defaults = { 0 }, body = { 0 };
    size_t cap = 0;
    int saved_loops = p->loop_depth;

    if (!n) return nomem();
    if (cur(p)->type != JT_NAME) return unexpected(p, "a macro name");
    n->name = cur(p)->s;
    advance(p);
    TRY(expect_op(p, "("));
    while (!tok_is_op(cur(p), ")")) {
        const jinja_node_t *def = NULL;
        if (cur(p)->type != JT_NAME) return unexpected(p, "a parameter name");
        if (!names_push(p, &n->names, &n->n_names, &cap, cur(p)->s)) return nomem();
        advance(p);
        if (tok_is_op(cur(p), "=")) {
            advance(p);
            TRY(parse_expr(p, &def));
        }
        if (!nvec_push(p, &defaults, def)) return nomem();
        if (!tok_is_op(cur(p), ",")) break;
        advance(p);
    }
    TRY(expect_op(p, ")"));
    TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
    p->loop_depth = 0; /* a loop outside the macro is not the macro's */
    TRY(parse_body(p, ends, 1, line, "macro", &body));
    p->loop_depth = saved_loops;
    TRY(expect_end_tag(p));
    n->list = body.v;
    n->n_list = body.n;
    n->list2 = defaults.v;
    n->n_list2 = defaults.n;
    *out = n;
    return CLLM_OK;
}

/* At `{% name`: parses one block statement. */
static status_t parse_statement(parser_t *p, const jinja_node_t **out)
{
    const jinja_token_t *kw = peek(p, 1);
    int line = kw->line;
    jinja_node_t *n = NULL;

    if (kw->type != JT_NAME) {
        advance(p);
        return unexpected(p, "a tag name");
    }
    advance(p);
    advance(p);
    if (jinja_str_eq(kw->s, "if")) {
        TRY(parse_if(p, line, &n));
    } else if (jinja_str_eq(kw->s, "for")) {
        TRY(parse_for(p, line, &n));
    } else if (jinja_str_eq(kw->s, "set")) {
        TRY(parse_set(p, line, &n));
    } else if (jinja_str_eq(kw->s, "macro")) {
        TRY(parse_macro(p, line, &n));
    } else if (jinja_str_eq(kw->s, "break") || jinja_str_eq(kw->s, "continue")) {
        if (p->loop_depth == 0)
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "'%.*s' outside a for-loop", (int)kw->s.n, kw->s.p);
        if (!(n = new_node(p, jinja_str_eq(kw->s, "break") ? JN_BREAK : JN_CONTINUE, line))) return nomem();
        TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
    } else if (jinja_str_eq(kw->s, "do")) {
        if (!(n = new_node(p, JN_DO, line))) return nomem();
        TRY(parse_tuple_expr(p, &n->a));
        TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
    } else if (jinja_str_eq(kw->s, "generation")) { /* HF's assistant-mask marker: renders its body */
        static const char *const ends[] = { "endgeneration" };
        nvec_t body = { 0 };
        TRY(expect_type(p, JT_BLOCK_END, "'%}'"));
        TRY(parse_body(p, ends, 1, line, "generation", &body));
        TRY(expect_end_tag(p));
        if (!(n = new_node(p, JN_BODY, line))) return nomem();
        n->list = body.v;
        n->n_list = body.n;
    } else {
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unknown or unexpected tag '%.*s'",
                          (int)(kw->s.n > 40 ? 40 : kw->s.n), kw->s.p);
    }
    *out = n;
    return CLLM_OK;
}

/* Statements until EOF (n_ends == 0) or a block tag named in ends (left unconsumed). */
static status_t parse_body(parser_t *p, const char *const *ends, size_t n_ends, int open_line, const char *open_tag,
                           nvec_t *body)
{
    TRY(enter(p));
    for (;;) {
        const jinja_token_t *t = cur(p);
        const jinja_node_t *stmt = NULL;
        if (t->type == JT_EOF) {
            if (n_ends)
                return jinja_fail(open_line, CLLM_ERR_INVALID_ARG, "{%% %s %%} is never closed (expected {%% %s %%})",
                                  open_tag, ends[n_ends - 1]);
            break;
        }
        if (t->type == JT_BLOCK_BEGIN) {
            bool is_end = false;
            for (size_t i = 0; i < n_ends; i++)
                if (tok_is_name(peek(p, 1), ends[i])) is_end = true;
            if (is_end) break;
            TRY(parse_statement(p, &stmt));
        } else if (t->type == JT_TEXT) {
            jinja_node_t *n = new_node(p, JN_TEXT, t->line);
            if (!n) return nomem();
            n->name = t->s;
            advance(p);
            stmt = n;
        } else if (t->type == JT_VAR_BEGIN) {
            jinja_node_t *n = new_node(p, JN_OUTPUT, t->line);
            if (!n) return nomem();
            advance(p);
            TRY(parse_tuple_expr(p, &n->a));
            TRY(expect_type(p, JT_VAR_END, "'}}'"));
            stmt = n;
        } else {
            return unexpected(p, "text or a tag");
        }
        if (!nvec_push(p, body, stmt)) return nomem();
    }
    p->depth--;
    return CLLM_OK;
}

status_t jinja_parse(const jinja_token_t *toks, size_t n_toks, jinja_arena_t *arena, const jinja_node_t **root)
{
    parser_t p;
    nvec_t body = { 0 };
    jinja_node_t *n;

    *root = NULL;
    if (n_toks == 0 || toks[n_toks - 1].type != JT_EOF)
        return cllm_error(CLLM_ERR_INTERNAL, "chat_template: token stream without end");
    memset(&p, 0, sizeof(p));
    p.t = toks;
    p.n = n_toks;
    p.arena = arena;
    TRY(parse_body(&p, NULL, 0, 1, "", &body));
    if (!(n = new_node(&p, JN_BODY, 1))) return nomem();
    n->list = body.v;
    n->n_list = body.n;
    *root = n;
    return CLLM_OK;
}

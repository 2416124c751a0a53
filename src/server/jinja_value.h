/* jinja_value.h: values, the arena that owns them, string buffers and the runtime limits of the
 * Jinja-subset interpreter behind chat templates (chat_template.h).
 *
 * A jinja_value_t is a small tagged union passed by value. Scalars live inside it; strings,
 * lists and dicts point into a jinja_arena_t that is freed whole when a render (or a parsed
 * template) is destroyed, so values carry no refcounts and are never freed one by one.
 * Invariants: lists and dicts are immutable once built (templates run in an immutable sandbox
 * as in Hugging Face's renderer), except a namespace (JV_NAMESPACE), whose attributes `set
 * ns.x = ...` assigns in place, and the loop object (JV_LOOP), which the for-loop updates.
 * Strings are UTF-8 byte ranges, not NUL-terminated; lengths and indices of strings count code
 * points, as Python does. Every allocation is bounded: the arena refuses to grow past its cap,
 * a buffer past JINJA_MAX_OUTPUT, and the evaluator charges work against jinja_rt_t's budgets,
 * so no template can use unbounded memory or time. */
#ifndef CLLM_SERVER_JINJA_VALUE_H
#define CLLM_SERVER_JINJA_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

/* Limits that keep hostile templates bounded (sizes in bytes). */
#define JINJA_MAX_SOURCE (1u << 20)      /* template source (real ones are < 64 KiB) */
#define JINJA_MAX_OUTPUT (16u << 20)     /* any one string or rendered output */
#define JINJA_MAX_ARENA (128u << 20)     /* all values of one render, or one parsed template */
#define JINJA_MAX_PARSE_DEPTH 100        /* nested blocks / parenthesised expressions */
#define JINJA_MAX_EVAL_DEPTH 400         /* nested evaluation frames (expressions, blocks, calls) */
#define JINJA_MAX_CALL_DEPTH 40          /* nested macro calls */
#define JINJA_MAX_ITERATIONS 1000000     /* for-loop iterations of one render */
#define JINJA_MAX_OPS 10000000           /* evaluation steps of one render (nodes + scanning work) */
#define JINJA_MAX_SERIAL_DEPTH 64        /* nesting of values printed, compared or converted */

typedef struct {
    const char *p; /* (n,) UTF-8 bytes, not NUL-terminated */
    size_t n;
} jinja_str_t;

typedef enum {
    JV_UNDEFINED = 0, /* a missing variable, key or attribute: falsy, prints as "" */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STRING,
    JV_LIST,      /* also tuples (list->tuple) */
    JV_DICT,      /* ordered, string keys */
    JV_NAMESPACE, /* namespace(): a dict whose attributes can be set */
    JV_LOOP,      /* the `loop` variable of a for-loop */
    JV_FUNC,      /* a built-in global function (jinja_func_t) */
    JV_MACRO,     /* a {% macro %}: points at its parse-tree node */
} jinja_type_t;

typedef enum {
    JINJA_FUNC_RAISE_EXCEPTION = 0,
    JINJA_FUNC_RANGE,
    JINJA_FUNC_NAMESPACE,
    JINJA_FUNC_STRFTIME_NOW,
    JINJA_FUNC_DICT,
} jinja_func_t;

typedef struct jinja_list jinja_list_t;
typedef struct jinja_dict jinja_dict_t;
typedef struct jinja_loop jinja_loop_t;

typedef struct {
    jinja_type_t type;
    union {
        bool b;
        int64_t i;
        double f;
        jinja_str_t s;
        jinja_list_t *list;
        jinja_dict_t *dict; /* JV_DICT and JV_NAMESPACE */
        jinja_loop_t *loop;
        jinja_func_t func;
        const void *macro; /* a const jinja_node_t * of kind JN_MACRO */
    } u;
} jinja_value_t;

struct jinja_list {
    size_t n, cap;
    bool tuple;           /* printed as (a, b) */
    jinja_value_t *items; /* (cap,), first n used */
};

struct jinja_dict {
    size_t n, cap;
    jinja_str_t *keys;    /* (cap,), first n used, unique */
    jinja_value_t *vals;  /* (cap,) */
};

struct jinja_loop {
    int64_t index0, length;
    const jinja_list_t *items; /* what is iterated (after the loop's `if` filter) */
};

/* ---- arena ---- */

typedef struct jinja_arena jinja_arena_t;

/* An arena that refuses to hold more than cap_bytes. Returns CLLM_ERR_NOMEM on failure. */
status_t jinja_arena_create(size_t cap_bytes, jinja_arena_t **out);
void jinja_arena_destroy(jinja_arena_t *a);
/* n bytes, 8-aligned, zeroed; NULL when the cap is reached or malloc fails. */
void *jinja_arena_alloc(jinja_arena_t *a, size_t n);
/* true once an allocation was refused because of the cap (not malloc). */
bool jinja_arena_over_cap(const jinja_arena_t *a);

/* ---- runtime context: arena + budgets + error reporting ---- */

typedef struct {
    jinja_arena_t *arena;
    int64_t now;          /* seconds since the epoch for strftime_now() */
    uint64_t ops;         /* evaluation steps so far */
    uint64_t iterations;  /* loop iterations so far */
    int depth;            /* current evaluation depth */
    int call_depth;       /* current macro-call depth */
} jinja_rt_t;

/* Sets "chat_template: line N: <message>" as this thread's error. */
void jinja_set_error(status_t st, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets the error and evaluates to st (a macro, so that callers and analysers see the status). */
#define jinja_fail(line, st, ...) (jinja_set_error((st), (line), __VA_ARGS__), (st))
/* The error for a refused arena allocation: the limit reached, or out of memory. */
static inline status_t jinja_fail_alloc(const jinja_rt_t *rt, int line)
{
    if (rt && rt->arena && jinja_arena_over_cap(rt->arena))
        return jinja_fail(line, CLLM_ERR_RANGE, "template uses more than %u MiB of memory", JINJA_MAX_ARENA >> 20);
    return jinja_fail(line, CLLM_ERR_NOMEM, "out of memory");
}
/* Adds n steps of work; fails with CLLM_ERR_RANGE once the budget is spent. */
status_t jinja_rt_charge(jinja_rt_t *rt, int line, uint64_t n);
/* Steps that scanning v once costs: long strings and big dicts and lists are not free, so a
 * loop over them cannot run unbounded time within the step budget. */
uint64_t jinja_value_cost(jinja_value_t v);

/* ---- growable byte buffer (malloc'd, capped at JINJA_MAX_OUTPUT) ---- */

typedef struct {
    char *p;    /* (cap,) NUL-terminated when p != NULL */
    size_t n, cap;
    bool failed; /* an append was refused: too large or out of memory */
    bool too_large;
} jinja_buf_t;

void jinja_buf_init(jinja_buf_t *b);
void jinja_buf_free(jinja_buf_t *b);
void jinja_buf_put(jinja_buf_t *b, const char *p, size_t n);
void jinja_buf_putc(jinja_buf_t *b, char c);
void jinja_buf_puts(jinja_buf_t *b, const char *s);
void jinja_buf_printf(jinja_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The error for a failed buffer (CLLM_ERR_RANGE when too large, else CLLM_ERR_NOMEM). */
status_t jinja_buf_error(const jinja_buf_t *b, int line);
/* Copies the buffer's bytes into the arena as a string value. */
status_t jinja_buf_to_value(jinja_rt_t *rt, int line, const jinja_buf_t *b, jinja_value_t *out);

/* ---- constructors ---- */

jinja_value_t jv_undefined(void);
jinja_value_t jv_none(void);
jinja_value_t jv_bool(bool b);
jinja_value_t jv_int(int64_t i);
jinja_value_t jv_float(double f);
jinja_value_t jv_str(const char *p, size_t n);      /* no copy: p must outlive the value */
jinja_value_t jv_cstr(const char *s);                /* no copy */
/* Copies n bytes into the arena; returns false when the arena refuses. */
bool jv_str_copy(jinja_arena_t *a, const char *p, size_t n, jinja_value_t *out);

/* ---- lists and dicts (built, then read-only except namespaces) ---- */

jinja_list_t *jinja_list_new(jinja_arena_t *a, size_t cap);
bool jinja_list_push(jinja_arena_t *a, jinja_list_t *l, jinja_value_t v);
jinja_value_t jv_list(jinja_list_t *l);
jinja_dict_t *jinja_dict_new(jinja_arena_t *a, size_t cap);
/* Replaces the value of an existing key or appends. The key bytes are not copied. */
bool jinja_dict_set(jinja_arena_t *a, jinja_dict_t *d, jinja_str_t key, jinja_value_t v);
/* Appends without looking for a duplicate (the caller knows keys are unique). */
bool jinja_dict_append(jinja_arena_t *a, jinja_dict_t *d, jinja_str_t key, jinja_value_t v);
const jinja_value_t *jinja_dict_get(const jinja_dict_t *d, const char *key, size_t key_len);
jinja_value_t jv_dict(jinja_dict_t *d);

/* ---- call arguments (of filters, tests, methods, functions and macros) ---- */

typedef struct {
    const jinja_value_t *pos;     /* (n_pos,) positional arguments */
    size_t n_pos;
    const jinja_str_t *kw_names;  /* (n_kw,) keyword argument names */
    const jinja_value_t *kw_vals; /* (n_kw,) */
    size_t n_kw;
} jinja_args_t;

/* Argument i if given positionally, else the keyword argument `name` (NULL: positional only),
 * else undefined. */
jinja_value_t jinja_arg(const jinja_args_t *a, size_t i, const char *name);

/* ---- queries and conversions ---- */

const char *jinja_type_name(jinja_value_t v);
bool jinja_truthy(jinja_value_t v);
bool jinja_is_number(jinja_value_t v); /* int, float or bool */
double jinja_as_double(jinja_value_t v);
bool jinja_str_eq(jinja_str_t s, const char *lit);
/* Number of characters (code points) of a UTF-8 string; invalid stray continuation bytes count
 * with the character before them (or as one character at the start). */
size_t jinja_utf8_len(const char *p, size_t n);
/* Byte offset of character k (k <= length: the length gives n). */
size_t jinja_utf8_offset(const char *p, size_t n, size_t k);
/* Python-style equality (1 == 1.0 == true; deep for lists and dicts). Bounded depth. */
bool jinja_equal(jinja_value_t a, jinja_value_t b);
/* Ordering of numbers, strings and lists: *cmp < 0, 0, > 0. Fails if not comparable. */
status_t jinja_compare(jinja_value_t a, jinja_value_t b, int line, int *cmp);

/* `item in container`: substring, list member, dict key; false for undefined. */
status_t jinja_contains(jinja_value_t container, jinja_value_t item, int line, bool *out);

/* Appends str(v) (Python's str(): strings raw, None, True, 1.0, [1, 'a'], {'k': 1}). */
status_t jinja_write_str(jinja_buf_t *b, jinja_value_t v, int line);
/* Appends repr(v) ('a' quoted). */
status_t jinja_write_repr(jinja_buf_t *b, jinja_value_t v, int line);
/* Appends json.dumps(v, ensure_ascii=False, indent=indent (< 0: none), sort_keys), with
 * separators item_sep / key_sep (NULL: Python's defaults for the indent). */
status_t jinja_write_json(jinja_buf_t *b, jinja_value_t v, int indent, bool sort_keys, const char *item_sep,
                          const char *key_sep, int line);
/* Appends the shortest repr of a double that round-trips, as Python prints floats. */
void jinja_write_float(jinja_buf_t *b, double f);
/* The items a for-loop or a list filter sees: a list or tuple itself, a string's characters,
 * a dict's keys, nothing for undefined. Other types fail ("not iterable"). */
status_t jinja_iterate(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_list_t **out);
/* str(v) as a string value in the arena (strings are returned as they are). */
status_t jinja_to_string(jinja_rt_t *rt, jinja_value_t v, int line, jinja_value_t *out);

#endif

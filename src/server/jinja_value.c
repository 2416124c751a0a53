/* jinja_value.c: the arena, byte buffers, value constructors, comparisons and the Python-style
 * printing (str, repr, json.dumps) of template values (see jinja_value.h).
 *
 * Invariants: the arena never hands out more than its cap in total; a buffer never grows past
 * JINJA_MAX_OUTPUT and, once failed, ignores further appends; printers and comparisons recurse
 * at most JINJA_MAX_SERIAL_DEPTH levels (a namespace can contain itself). */
#include "server/jinja_value.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    max_align_t data[]; /* (size,) bytes */
} arena_chunk_t;

struct jinja_arena {
    arena_chunk_t *head;
    size_t total, cap;
    bool over_cap;
};

#define ARENA_CHUNK_MIN (64u << 10)

status_t jinja_arena_create(size_t cap_bytes, jinja_arena_t **out)
{
    jinja_arena_t *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (!a) return cllm_error(CLLM_ERR_NOMEM, "chat_template: out of memory");
    a->cap = cap_bytes;
    *out = a;
    return CLLM_OK;
}

void jinja_arena_destroy(jinja_arena_t *a)
{
    arena_chunk_t *c, *next;

    if (!a) return;
    for (c = a->head; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

void *jinja_arena_alloc(jinja_arena_t *a, size_t n)
{
    arena_chunk_t *c = a->head;
    size_t need = (n + 7) & ~(size_t)7;
    void *p;

    if (n > a->cap) {
        a->over_cap = true;
        return NULL;
    }
    if (!c || c->size - c->used < need) {
        size_t size = need > ARENA_CHUNK_MIN ? need : ARENA_CHUNK_MIN;
        if (a->total + size > a->cap) {
            a->over_cap = true;
            return NULL;
        }
        c = malloc(sizeof(*c) + size);
        if (!c) return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += size;
    }
    p = (char *)c->data + c->used;
    c->used += need;
    memset(p, 0, n);
    return p;
}

bool jinja_arena_over_cap(const jinja_arena_t *a)
{
    return a->over_cap;
}

/* ---- errors and budgets ---- */

void jinja_set_error(status_t st, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* one line: control characters (from raise_exception texts) become spaces */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    (void)cllm_error(st, "chat_template: line %d: %s", line, msg);
}

status_t jinja_rt_charge(jinja_rt_t *rt, int line, uint64_t n)
{
    rt->ops += n;
    if (rt->ops > JINJA_MAX_OPS)
        return jinja_fail(line, CLLM_ERR_RANGE, "template runs more than %u steps", JINJA_MAX_OPS);
    return CLLM_OK;
}

uint64_t jinja_value_cost(jinja_value_t v)
{
    switch (v.type) {
    case JV_STRING: return v.u.s.n / 16;
    case JV_LIST: return v.u.list->n / 16;
    case JV_DICT:
    case JV_NAMESPACE: return v.u.dict->n / 8; /* lookups are linear */
    default: return 0;
    }
}

/* ---- buffers ---- */

void jinja_buf_init(jinja_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void jinja_buf_free(jinja_buf_t *b)
{
    free(b->p);
    jinja_buf_init(b);
}

void jinja_buf_put(jinja_buf_t *b, const char *p, size_t n)
{
    if (b->failed) return;
    if (n > JINJA_MAX_OUTPUT || b->n + n > JINJA_MAX_OUTPUT) {
        b->failed = b->too_large = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *q = NULL;
        while (cap < b->n + n + 1) cap *= 2;
        q = realloc(b->p, cap);
        if (!q) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void jinja_buf_putc(jinja_buf_t *b, char c)
{
    jinja_buf_put(b, &c, 1);
}

void jinja_buf_puts(jinja_buf_t *b, const char *s)
{
    jinja_buf_put(b, s, strlen(s));
}

void jinja_buf_printf(jinja_buf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    jinja_buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

status_t jinja_buf_error(const jinja_buf_t *b, int line)
{
    if (b->too_large)
        return jinja_fail(line, CLLM_ERR_RANGE, "rendered text longer than %u MiB", JINJA_MAX_OUTPUT >> 20);
    return jinja_fail(line, CLLM_ERR_NOMEM, "out of memory");
}

status_t jinja_buf_to_value(jinja_rt_t *rt, int line, const jinja_buf_t *b, jinja_value_t *out)
{
    if (b->failed) return jinja_buf_error(b, line);
    if (!jv_str_copy(rt->arena, b->p ? b->p : "", b->n, out)) return jinja_fail_alloc(rt, line);
    return CLLM_OK;
}

/* ---- constructors ---- */

jinja_value_t jv_undefined(void)
{
    jinja_value_t v;
    memset(&v, 0, sizeof(v));
    v.type = JV_UNDEFINED;
    return v;
}

jinja_value_t jv_none(void)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_NONE;
    return v;
}

jinja_value_t jv_bool(bool b)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_BOOL;
    v.u.b = b;
    return v;
}

jinja_value_t jv_int(int64_t i)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_INT;
    v.u.i = i;
    return v;
}

jinja_value_t jv_float(double f)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_FLOAT;
    v.u.f = f;
    return v;
}

jinja_value_t jv_str(const char *p, size_t n)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_STRING;
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

jinja_value_t jv_cstr(const char *s)
{
    return jv_str(s, strlen(s));
}

bool jv_str_copy(jinja_arena_t *a, const char *p, size_t n, jinja_value_t *out)
{
    char *q = jinja_arena_alloc(a, n + 1);
    if (!q) return false;
    if (n) memcpy(q, p, n);
    *out = jv_str(q, n);
    return true;
}

/* ---- lists and dicts ---- */

jinja_list_t *jinja_list_new(jinja_arena_t *a, size_t cap)
{
    jinja_list_t *l = jinja_arena_alloc(a, sizeof(*l));
    if (!l) return NULL;
    if (cap) {
        if (cap > SIZE_MAX / sizeof(jinja_value_t)) return NULL;
        l->items = jinja_arena_alloc(a, cap * sizeof(jinja_value_t));
        if (!l->items) return NULL;
        l->cap = cap;
    }
    return l;
}

bool jinja_list_push(jinja_arena_t *a, jinja_list_t *l, jinja_value_t v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jinja_value_t *items;
        if (cap > SIZE_MAX / sizeof(jinja_value_t)) return false;
        items = jinja_arena_alloc(a, cap * sizeof(jinja_value_t));
        if (!items) return false;
        if (l->n) memcpy(items, l->items, l->n * sizeof(jinja_value_t));
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return true;
}

jinja_value_t jv_list(jinja_list_t *l)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_LIST;
    v.u.list = l;
    return v;
}

jinja_dict_t *jinja_dict_new(jinja_arena_t *a, size_t cap)
{
    jinja_dict_t *d = jinja_arena_alloc(a, sizeof(*d));
    if (!d) return NULL;
    if (cap) {
        d->keys = jinja_arena_alloc(a, cap * sizeof(jinja_str_t));
        d->vals = jinja_arena_alloc(a, cap * sizeof(jinja_value_t));
        if (!d->keys || !d->vals) return NULL;
        d->cap = cap;
    }
    return d;
}

bool jinja_dict_append(jinja_arena_t *a, jinja_dict_t *d, jinja_str_t key, jinja_value_t v)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jinja_str_t *keys = jinja_arena_alloc(a, cap * sizeof(jinja_str_t));
        jinja_value_t *vals = jinja_arena_alloc(a, cap * sizeof(jinja_value_t));
        if (!keys || !vals) return false;
        if (d->n) {
            memcpy(keys, d->keys, d->n * sizeof(jinja_str_t));
            memcpy(vals, d->vals, d->n * sizeof(jinja_value_t));
        }
        d->keys = keys;
        d->vals = vals;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = v;
    d->n++;
    return true;
}

bool jinja_dict_set(jinja_arena_t *a, jinja_dict_t *d, jinja_str_t key, jinja_value_t v)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->keys[i].n == key.n && memcmp(d->keys[i].p, key.p, key.n) == 0) {
            d->vals[i] = v;
            return true;
        }
    }
    return jinja_dict_append(a, d, key, v);
}

const jinja_value_t *jinja_dict_get(const jinja_dict_t *d, const char *key, size_t key_len)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].n == key_len && memcmp(d->keys[i].p, key, key_len) == 0) return &d->vals[i];
    return NULL;
}

jinja_value_t jv_dict(jinja_dict_t *d)
{
    jinja_value_t v = jv_undefined();
    v.type = JV_DICT;
    v.u.dict = d;
    return v;
}

/* ---- call arguments ---- */

jinja_value_t jinja_arg(const jinja_args_t *a, size_t i, const char *name)
{
    if (i < a->n_pos) return a->pos[i];
    if (name)
        for (size_t k = 0; k < a->n_kw; k++)
            if (jinja_str_eq(a->kw_names[k], name)) return a->kw_vals[k];
    return jv_undefined();
}

/* ---- queries ---- */

const char *jinja_type_name(jinja_value_t v)
{
    switch (v.type) {
    case JV_UNDEFINED: return "undefined";
    case JV_NONE: return "none";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STRING: return "string";
    case JV_LIST: return v.u.list->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NAMESPACE: return "namespace";
    case JV_LOOP: return "loop";
    case JV_FUNC: return "function";
    case JV_MACRO: return "macro";
    }
    return "value";
}

bool jinja_truthy(jinja_value_t v)
{
    switch (v.type) {
    case JV_UNDEFINED:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STRING: return v.u.s.n != 0;
    case JV_LIST: return v.u.list->n != 0;
    case JV_DICT: return v.u.dict->n != 0;
    default: return true;
    }
}

bool jinja_is_number(jinja_value_t v)
{
    return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL;
}

double jinja_as_double(jinja_value_t v)
{
    switch (v.type) {
    case JV_INT: return (double)v.u.i;
    case JV_FLOAT: return v.u.f;
    case JV_BOOL: return v.u.b ? 1.0 : 0.0;
    default: return 0.0;
    }
}

bool jinja_str_eq(jinja_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* A character starts at byte 0 and at every byte that is not a UTF-8 continuation byte, so
 * stray continuation bytes (invalid UTF-8) stay attached to the character before them. */
static bool char_start(const char *p, size_t i)
{
    return i == 0 || ((unsigned char)p[i] & 0xC0) != 0x80;
}

size_t jinja_utf8_len(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (char_start(p, i)) k++;
    return k;
}

size_t jinja_utf8_offset(const char *p, size_t n, size_t k)
{
    size_t i = 0;
    while (i < n) {
        if (char_start(p, i)) {
            if (k == 0) return i;
            k--;
        }
        i++;
    }
    return n;
}

static int64_t as_int_exact(jinja_value_t v)
{
    return v.type == JV_BOOL ? (int64_t)v.u.b : v.u.i;
}

static bool equal_depth(jinja_value_t a, jinja_value_t b, int depth)
{
    if (depth > JINJA_MAX_SERIAL_DEPTH) return false;
    if (jinja_is_number(a) && jinja_is_number(b)) {
        if (a.type != JV_FLOAT && b.type != JV_FLOAT) return as_int_exact(a) == as_int_exact(b);
        return jinja_as_double(a) == jinja_as_double(b);
    }
    if (a.type != b.type) return false;
    switch (a.type) {
    case JV_UNDEFINED:
    case JV_NONE: return true;
    case JV_STRING: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case JV_LIST:
        if (a.u.list->n != b.u.list->n || a.u.list->tuple != b.u.list->tuple) return false;
        for (size_t i = 0; i < a.u.list->n; i++)
            if (!equal_depth(a.u.list->items[i], b.u.list->items[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a.u.dict->n != b.u.dict->n) return false;
        for (size_t i = 0; i < a.u.dict->n; i++) {
            const jinja_value_t *o = jinja_dict_get(b.u.dict, a.u.dict->keys[i].p, a.u.dict->keys[i].n);
            if (!o || !equal_depth(a.u.dict->vals[i], *o, depth + 1)) return false;
        }
        return true;
    case JV_NAMESPACE: return a.u.dict == b.u.dict;
    case JV_LOOP: return a.u.loop == b.u.loop;
    case JV_FUNC: return a.u.func == b.u.func;
    case JV_MACRO: return a.u.macro == b.u.macro;
    default: return false;
    }
}

bool jinja_equal(jinja_value_t a, jinja_value_t b)
{
    return equal_depth(a, b, 0);
}

static status_t compare_depth(jinja_value_t a, jinja_value_t b, int line, int *cmp, int depth)
{
    if (depth > JINJA_MAX_SERIAL_DEPTH) return jinja_fail(line, CLLM_ERR_RANGE, "values nested too deeply");
    if (jinja_is_number(a) && jinja_is_number(b)) {
        if (a.type != JV_FLOAT && b.type != JV_FLOAT) {
            int64_t x = as_int_exact(a), y = as_int_exact(b);
            *cmp = x < y ? -1 : x > y;
        } else {
            double x = jinja_as_double(a), y = jinja_as_double(b);
            *cmp = x < y ? -1 : x > y;
        }
        return CLLM_OK;
    }
    if (a.type == JV_STRING && b.type == JV_STRING) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = n ? memcmp(a.u.s.p, b.u.s.p, n) : 0;
        *cmp = c ? (c < 0 ? -1 : 1) : (a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n);
        return CLLM_OK;
    }
    if (a.type == JV_LIST && b.type == JV_LIST) {
        size_t n = a.u.list->n < b.u.list->n ? a.u.list->n : b.u.list->n;
        for (size_t i = 0; i < n; i++) {
            status_t st = compare_depth(a.u.list->items[i], b.u.list->items[i], line, cmp, depth + 1);
            if (st != CLLM_OK || *cmp != 0) return st;
        }
        *cmp = a.u.list->n < b.u.list->n ? -1 : a.u.list->n > b.u.list->n;
        return CLLM_OK;
    }
    return jinja_fail(line, CLLM_ERR_INVALID_ARG, "cannot order %s and %s", jinja_type_name(a), jinja_type_name(b));
}

status_t jinja_compare(jinja_value_t a, jinja_value_t b, int line, int *cmp)
{
    return compare_depth(a, b, line, cmp, 0);
}

status_t jinja_contains(jinja_value_t container, jinja_value_t item, int line, bool *out)
{
    *out = false;
    switch (container.type) {
    case JV_UNDEFINED: return CLLM_OK;
    case JV_STRING:
        if (item.type != JV_STRING)
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "'in <string>' needs a string on the left, not a %s",
                              jinja_type_name(item));
        *out = item.u.s.n == 0 || memmem(container.u.s.p, container.u.s.n, item.u.s.p, item.u.s.n) != NULL;
        return CLLM_OK;
    case JV_LIST:
        for (size_t i = 0; i < container.u.list->n && !*out; i++) *out = jinja_equal(container.u.list->items[i], item);
        return CLLM_OK;
    case JV_DICT:
    case JV_NAMESPACE:
        *out = item.type == JV_STRING && jinja_dict_get(container.u.dict, item.u.s.p, item.u.s.n) != NULL;
        return CLLM_OK;
    default:
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "'in' needs a container on the right, not a %s",
                          jinja_type_name(container));
    }
}

/* ---- printing ---- */

void jinja_write_float(jinja_buf_t *b, double f)
{
    char tmp[40], digits[24];
    int prec, exp10, nd = 0;
    char *e = NULL;

    if (isnan(f)) {
        jinja_buf_puts(b, "nan");
        return;
    }
    if (isinf(f)) {
        jinja_buf_puts(b, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0.0) {
        jinja_buf_puts(b, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    /* the fewest significant digits that read back as the same double */
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    if (f < 0) jinja_buf_putc(b, '-');
    /* tmp = "[-]d[.ddd]e[+-]xx": collect the digits and the exponent */
    for (char *p = tmp; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof(digits) - 1) digits[nd++] = *p;
    digits[nd] = '\0';
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
    e = strchr(tmp, 'e');
    exp10 = e ? atoi(e + 1) : 0;
    if (exp10 >= -4 && exp10 < 16) { /* Python switches to exponents outside [1e-4, 1e16) */
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++) jinja_buf_putc(b, i < nd ? digits[i] : '0');
            jinja_buf_putc(b, '.');
            if (nd > exp10 + 1) jinja_buf_puts(b, digits + exp10 + 1);
            else jinja_buf_putc(b, '0');
        } else {
            jinja_buf_puts(b, "0.");
            for (int i = 0; i < -exp10 - 1; i++) jinja_buf_putc(b, '0');
            jinja_buf_puts(b, digits);
        }
    } else {
        jinja_buf_putc(b, digits[0]);
        if (nd > 1) {
            jinja_buf_putc(b, '.');
            jinja_buf_puts(b, digits + 1);
        }
        jinja_buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
}

static void write_repr_str(jinja_buf_t *b, jinja_str_t s)
{
    bool has_sq = memchr(s.p, '\'', s.n) != NULL, has_dq = memchr(s.p, '"', s.n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';

    jinja_buf_putc(b, q);
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '\\' || c == (unsigned char)q) {
            jinja_buf_putc(b, '\\');
            jinja_buf_putc(b, (char)c);
        } else if (c == '\n') jinja_buf_puts(b, "\\n");
        else if (c == '\r') jinja_buf_puts(b, "\\r");
        else if (c == '\t') jinja_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f) jinja_buf_printf(b, "\\x%02x", c);
        else jinja_buf_putc(b, (char)c);
    }
    jinja_buf_putc(b, q);
}

static status_t write_py(jinja_buf_t *b, jinja_value_t v, bool repr, int line, int depth)
{
    status_t st;

    if (depth > JINJA_MAX_SERIAL_DEPTH) return jinja_fail(line, CLLM_ERR_RANGE, "values nested too deeply to print");
    switch (v.type) {
    case JV_UNDEFINED: break;
    case JV_NONE: jinja_buf_puts(b, "None"); break;
    case JV_BOOL: jinja_buf_puts(b, v.u.b ? "True" : "False"); break;
    case JV_INT: jinja_buf_printf(b, "%lld", (long long)v.u.i); break;
    case JV_FLOAT: jinja_write_float(b, v.u.f); break;
    case JV_STRING:
        if (repr) write_repr_str(b, v.u.s);
        else jinja_buf_put(b, v.u.s.p, v.u.s.n);
        break;
    case JV_LIST: {
        const jinja_list_t *l = v.u.list;
        jinja_buf_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) jinja_buf_puts(b, ", ");
            if ((st = write_py(b, l->items[i], true, line, depth + 1)) != CLLM_OK) return st;
        }
        if (l->tuple && l->n == 1) jinja_buf_putc(b, ',');
        jinja_buf_putc(b, l->tuple ? ')' : ']');
        break;
    }
    case JV_DICT:
    case JV_NAMESPACE: {
        const jinja_dict_t *d = v.u.dict;
        jinja_buf_puts(b, v.type == JV_NAMESPACE ? "<Namespace {" : "{");
        for (size_t i = 0; i < d->n; i++) {
            if (i) jinja_buf_puts(b, ", ");
            write_repr_str(b, d->keys[i]);
            jinja_buf_puts(b, ": ");
            if ((st = write_py(b, d->vals[i], true, line, depth + 1)) != CLLM_OK) return st;
        }
        jinja_buf_puts(b, v.type == JV_NAMESPACE ? "}>" : "}");
        break;
    }
    case JV_LOOP: jinja_buf_puts(b, "<LoopContext>"); break;
    case JV_FUNC: jinja_buf_puts(b, "<function>"); break;
    case JV_MACRO: jinja_buf_puts(b, "<Macro>"); break;
    }
    return CLLM_OK;
}

status_t jinja_write_str(jinja_buf_t *b, jinja_value_t v, int line)
{
    return write_py(b, v, false, line, 0);
}

status_t jinja_write_repr(jinja_buf_t *b, jinja_value_t v, int line)
{
    return write_py(b, v, true, line, 0);
}

static void write_json_str(jinja_buf_t *b, jinja_str_t s)
{
    size_t run = 0;

    jinja_buf_putc(b, '"');
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        const char *esc = NULL;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c >= 0x20) continue;
        jinja_buf_put(b, s.p + run, i - run);
        run = i + 1;
        if (esc) jinja_buf_puts(b, esc);
        else jinja_buf_printf(b, "\\u%04x", c);
    }
    jinja_buf_put(b, s.p + run, s.n - run);
    jinja_buf_putc(b, '"');
}

typedef struct {
    int indent;
    bool sort_keys;
    const char *item_sep, *key_sep;
    int line;
} json_opts_t;

static void json_newline(jinja_buf_t *b, const json_opts_t *o, int level)
{
    jinja_buf_putc(b, '\n');
    for (int i = 0; i < o->indent * level; i++) jinja_buf_putc(b, ' ');
}

static int key_cmp(jinja_str_t a, jinja_str_t b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c ? c : (a.n < b.n ? -1 : a.n > b.n);
}

static status_t write_json(jinja_buf_t *b, jinja_value_t v, const json_opts_t *o, int depth)
{
    status_t st;

    if (depth > JINJA_MAX_SERIAL_DEPTH)
        return jinja_fail(o->line, CLLM_ERR_RANGE, "values nested too deeply for tojson");
    switch (v.type) {
    case JV_NONE: jinja_buf_puts(b, "null"); break;
    case JV_BOOL: jinja_buf_puts(b, v.u.b ? "true" : "false"); break;
    case JV_INT: jinja_buf_printf(b, "%lld", (long long)v.u.i); break;
    case JV_FLOAT:
        if (isnan(v.u.f)) jinja_buf_puts(b, "NaN");
        else if (isinf(v.u.f)) jinja_buf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else jinja_write_float(b, v.u.f);
        break;
    case JV_STRING: write_json_str(b, v.u.s); break;
    case JV_LIST: {
        const jinja_list_t *l = v.u.list;
        jinja_buf_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) jinja_buf_puts(b, o->item_sep);
            if (o->indent >= 0) json_newline(b, o, depth + 1);
            if ((st = write_json(b, l->items[i], o, depth + 1)) != CLLM_OK) return st;
        }
        if (o->indent >= 0 && l->n) json_newline(b, o, depth);
        jinja_buf_putc(b, ']');
        break;
    }
    case JV_DICT: {
        const jinja_dict_t *d = v.u.dict;
        size_t last = SIZE_MAX; /* sort_keys: index of the previous key printed */
        jinja_buf_putc(b, '{');
        for (size_t k = 0; k < d->n; k++) {
            size_t i = k;
            if (o->sort_keys) { /* selection of the next key in order: dicts here are small */
                i = SIZE_MAX;
                for (size_t j = 0; j < d->n; j++) {
                    if (last != SIZE_MAX && key_cmp(d->keys[j], d->keys[last]) <= 0) continue;
                    if (i == SIZE_MAX || key_cmp(d->keys[j], d->keys[i]) < 0) i = j;
                }
                if (i == SIZE_MAX) break;
                last = i;
            }
            if (k) jinja_buf_puts(b, o->item_sep);
            if (o->indent >= 0) json_newline(b, o, depth + 1);
            write_json_str(b, d->keys[i]);
            jinja_buf_puts(b, o->key_sep);
            if ((st = write_json(b, d->vals[i], o, depth + 1)) != CLLM_OK) return st;
        }
        if (o->indent >= 0 && d->n) json_newline(b, o, depth);
        jinja_buf_putc(b, '}');
        break;
    }
    default:
        return jinja_fail(o->line, CLLM_ERR_INVALID_ARG, "tojson: a %s is not JSON serializable", jinja_type_name(v));
    }
    return CLLM_OK;
}

status_t jinja_write_json(jinja_buf_t *b, jinja_value_t v, int indent, bool sort_keys, const char *item_sep,
                          const char *key_sep, int line)
{
    json_opts_t o;

    o.indent = indent;
    o.sort_keys = sort_keys;
    o.item_sep = item_sep ? item_sep : (indent >= 0 ? "," : ", ");
    o.key_sep = key_sep ? key_sep : ": ";
    o.line = line;
    return write_json(b, v, &o, 0);
}

status_t jinja_iterate(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_list_t **out)
{
    static const jinja_list_t empty = { 0, 0, false, NULL };
    jinja_list_t *l = NULL;

    switch (v.type) {
    case JV_UNDEFINED: *out = &empty; return CLLM_OK;
    case JV_LIST: *out = v.u.list; return CLLM_OK;
    case JV_STRING: {
        size_t n = jinja_utf8_len(v.u.s.p, v.u.s.n), i = 0;
        if (!(l = jinja_list_new(rt->arena, n))) return jinja_fail_alloc(rt, line);
        while (i < v.u.s.n && l->n < n) { /* each character points into the string */
            size_t j = i + 1;
            while (j < v.u.s.n && ((unsigned char)v.u.s.p[j] & 0xC0) == 0x80) j++;
            l->items[l->n++] = jv_str(v.u.s.p + i, j - i);
            i = j;
        }
        break;
    }
    case JV_DICT: {
        const jinja_dict_t *d = v.u.dict;
        if (!(l = jinja_list_new(rt->arena, d->n))) return jinja_fail_alloc(rt, line);
        for (size_t i = 0; i < d->n; i++) l->items[l->n++] = jv_str(d->keys[i].p, d->keys[i].n);
        break;
    }
    default:
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "a %s is not iterable", jinja_type_name(v));
    }
    *out = l;
    return CLLM_OK;
}

status_t jinja_to_string(jinja_rt_t *rt, jinja_value_t v, int line, jinja_value_t *out)
{
    jinja_buf_t b;
    status_t st;

    if (v.type == JV_STRING) {
        *out = v;
        return CLLM_OK;
    }
    if (v.type == JV_UNDEFINED) {
        *out = jv_str("", 0);
        return CLLM_OK;
    }
    jinja_buf_init(&b);
    st = jinja_write_str(&b, v, line);
    if (st == CLLM_OK) st = jinja_buf_to_value(rt, line, &b, out);
    jinja_buf_free(&b);
    return st;
}

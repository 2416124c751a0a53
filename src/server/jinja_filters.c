/* jinja_filters.c: filters and tests (see jinja_filters.h for the lists).
 *
 * Semantics follow Jinja2 3.x with Hugging Face's tojson. String filters first convert their
 * input with str() (as Jinja's soft_str), so `1 | replace('1', '2')` works. sort, dictsort,
 * unique, min and max compare strings case-insensitively unless case_sensitive=true.
 * Invariants: inputs are never modified; work proportional to the input is charged to the
 * runtime's step budget (unique is quadratic and charged so). */
#include "server/jinja_filters.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/jinja_methods.h"

typedef status_t (*filter_fn)(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out);
typedef status_t (*test_fn)(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, bool *out);

/* ---- helpers ---- */

static status_t soft_str(jinja_rt_t *rt, int line, jinja_value_t v, jinja_str_t *out)
{
    jinja_value_t s = jv_undefined();
    status_t st = jinja_to_string(rt, v, line, &s);
    if (st == CLLM_OK) *out = s.u.s;
    return st;
}

static bool arg_true(const jinja_args_t *a, size_t i, const char *name)
{
    return jinja_truthy(jinja_arg(a, i, name));
}

/* Attribute path "a.b.0" of v: dict keys, list indices; undefined when missing. */
static jinja_value_t attr_path(jinja_value_t v, jinja_str_t path)
{
    size_t i = 0;
    while (i <= path.n) {
        size_t j = i;
        while (j < path.n && path.p[j] != '.') j++;
        if (v.type == JV_DICT || v.type == JV_NAMESPACE) {
            const jinja_value_t *x = jinja_dict_get(v.u.dict, path.p + i, j - i);
            v = x ? *x : jv_undefined();
        } else if (v.type == JV_LIST && j > i && path.p[i] >= '0' && path.p[i] <= '9') {
            size_t k = (size_t)strtoull(path.p + i, NULL, 10);
            v = k < v.u.list->n ? v.u.list->items[k] : jv_undefined();
        } else {
            return jv_undefined();
        }
        i = j + 1;
    }
    return v;
}

static status_t attr_arg(jinja_value_t v, int line, jinja_str_t *out)
{
    if (v.type != JV_STRING)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "attribute name must be a string, not a %s", jinja_type_name(v));
    *out = v.u.s;
    return CLLM_OK;
}

/* Ordering for sort/min/max/unique: strings ignore ASCII case unless case_sensitive. */
static status_t order(jinja_value_t a, jinja_value_t b, bool case_sensitive, int line, int *cmp)
{
    if (!case_sensitive && a.type == JV_STRING && b.type == JV_STRING) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        for (size_t i = 0; i < n; i++) {
            unsigned char x = (unsigned char)a.u.s.p[i], y = (unsigned char)b.u.s.p[i];
            if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
            if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
            if (x != y) {
                *cmp = x < y ? -1 : 1;
                return CLLM_OK;
            }
        }
        *cmp = a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
        return CLLM_OK;
    }
    return jinja_compare(a, b, line, cmp);
}

typedef struct {
    bool case_sensitive, reverse;
    jinja_str_t attr; /* sort by this attribute path when attr.n > 0 */
    int key_index;    /* >= 0: sort (key, value) tuples by this element */
    int line;
} sort_opts_t;

static jinja_value_t sort_key(jinja_value_t v, const sort_opts_t *o)
{
    if (o->key_index >= 0 && v.type == JV_LIST && v.u.list->n > (size_t)o->key_index)
        return v.u.list->items[o->key_index];
    return o->attr.n ? attr_path(v, o->attr) : v;
}

/* Stable merge sort of items (n) using tmp (n) as scratch. */
static status_t merge_sort(jinja_value_t *items, jinja_value_t *tmp, size_t n, const sort_opts_t *o)
{
    status_t st;
    size_t mid = n / 2, i = 0, j, k = 0;

    if (n < 2) return CLLM_OK;
    if ((st = merge_sort(items, tmp, mid, o)) != CLLM_OK) return st;
    if ((st = merge_sort(items + mid, tmp, n - mid, o)) != CLLM_OK) return st;
    j = mid;
    while (i < mid && j < n) {
        int c;
        if ((st = order(sort_key(items[j], o), sort_key(items[i], o), o->case_sensitive, o->line, &c)) != CLLM_OK)
            return st;
        if (o->reverse) c = -c;
        tmp[k++] = c < 0 ? items[j++] : items[i++]; /* take the right one only when strictly smaller */
    }
    while (i < mid) tmp[k++] = items[i++];
    while (j < n) tmp[k++] = items[j++];
    memcpy(items, tmp, n * sizeof(*items));
    return CLLM_OK;
}

static status_t sorted_copy(jinja_rt_t *rt, int line, const jinja_list_t *in, const sort_opts_t *o, jinja_value_t *out)
{
    jinja_list_t *l = jinja_list_new(rt->arena, in->n);
    jinja_value_t *tmp = in->n ? jinja_arena_alloc(rt->arena, in->n * sizeof(*tmp)) : NULL;
    status_t st;

    if (!l || (in->n && !tmp)) return jinja_fail_alloc(rt, line);
    if ((st = jinja_rt_charge(rt, line, in->n * 8)) != CLLM_OK) return st;
    if (in->n) memcpy(l->items, in->items, in->n * sizeof(*tmp));
    l->n = in->n;
    if ((st = merge_sort(l->items, tmp, l->n, o)) != CLLM_OK) return st;
    *out = jv_list(l);
    return CLLM_OK;
}

/* ---- filters ---- */

static status_t f_abs(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)rt, (void)a;
    if (v.type == JV_INT || v.type == JV_BOOL) {
        int64_t i = v.type == JV_BOOL ? v.u.b : v.u.i;
        if (i == INT64_MIN) return jinja_fail(line, CLLM_ERR_RANGE, "integer overflow in abs");
        *out = jv_int(i < 0 ? -i : i);
    } else if (v.type == JV_FLOAT) {
        *out = jv_float(fabs(v.u.f));
    } else {
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "abs needs a number, not a %s", jinja_type_name(v));
    }
    return CLLM_OK;
}

static status_t case_filter(jinja_rt_t *rt, int line, jinja_value_t v, jinja_case_t mode, jinja_value_t *out)
{
    jinja_str_t s = { NULL, 0 };
    status_t st = soft_str(rt, line, v, &s);
    return st != CLLM_OK ? st : jinja_str_case(rt, line, s, mode, out);
}

static status_t f_capitalize(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return case_filter(rt, line, v, JINJA_CASE_CAPITALIZE, out);
}

static status_t f_upper(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return case_filter(rt, line, v, JINJA_CASE_UPPER, out);
}

static status_t f_lower(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return case_filter(rt, line, v, JINJA_CASE_LOWER, out);
}

static status_t f_title(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return case_filter(rt, line, v, JINJA_CASE_TITLE_WORDS, out);
}

static status_t f_length(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)rt, (void)a;
    switch (v.type) {
    case JV_UNDEFINED: *out = jv_int(0); break;
    case JV_STRING: *out = jv_int((int64_t)jinja_utf8_len(v.u.s.p, v.u.s.n)); break;
    case JV_LIST: *out = jv_int((int64_t)v.u.list->n); break;
    case JV_DICT: *out = jv_int((int64_t)v.u.dict->n); break;
    default: return jinja_fail(line, CLLM_ERR_INVALID_ARG, "a %s has no length", jinja_type_name(v));
    }
    return CLLM_OK;
}

static status_t f_default(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_value_t def = jinja_arg(a, 0, "default_value");
    (void)rt, (void)line;
    if (def.type == JV_UNDEFINED) def = jv_str("", 0);
    *out = v.type == JV_UNDEFINED || (arg_true(a, 1, "boolean") && !jinja_truthy(v)) ? def : v;
    return CLLM_OK;
}

static status_t f_escape(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_str_t s = { NULL, 0 };
    jinja_buf_t b;
    status_t st = soft_str(rt, line, v, &s);

    (void)a;
    if (st != CLLM_OK) return st;
    jinja_buf_init(&b);
    for (size_t i = 0; i < s.n; i++) {
        switch (s.p[i]) {
        case '&': jinja_buf_puts(&b, "&amp;"); break;
        case '<': jinja_buf_puts(&b, "&lt;"); break;
        case '>': jinja_buf_puts(&b, "&gt;"); break;
        case '"': jinja_buf_puts(&b, "&#34;"); break;
        case '\'': jinja_buf_puts(&b, "&#39;"); break;
        default: jinja_buf_putc(&b, s.p[i]);
        }
    }
    st = jinja_buf_to_value(rt, line, &b, out);
    jinja_buf_free(&b);
    return st;
}

static status_t f_safe(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)rt, (void)line, (void)a;
    *out = v;
    return CLLM_OK;
}

static status_t f_first_last(jinja_rt_t *rt, int line, jinja_value_t v, bool last, jinja_value_t *out)
{
    const jinja_list_t *l = NULL;
    status_t st = jinja_iterate(rt, line, v, &l);
    if (st != CLLM_OK) return st;
    *out = l->n ? l->items[last ? l->n - 1 : 0] : jv_undefined();
    return CLLM_OK;
}

static status_t f_first(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return f_first_last(rt, line, v, false, out);
}

static status_t f_last(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return f_first_last(rt, line, v, true, out);
}

/* Parses a whole string (surrounding whitespace allowed) as a double. */
static bool parse_double(jinja_str_t s, double *out)
{
    char buf[128], *end;
    size_t a = 0, b = s.n;
    while (a < b && jinja_is_space(s.p[a])) a++;
    while (b > a && jinja_is_space(s.p[b - 1])) b--;
    if (b == a || b - a >= sizeof(buf)) return false;
    memcpy(buf, s.p + a, b - a);
    buf[b - a] = '\0';
    if ((buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) || strchr(buf, 'x') || strchr(buf, 'X')) return false;
    errno = 0;
    *out = strtod(buf, &end);
    return *end == '\0';
}

static status_t f_int(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_value_t def = jinja_arg(a, 0, "default");
    double d;
    (void)rt;
    if (def.type == JV_UNDEFINED) def = jv_int(0);
    switch (v.type) {
    case JV_INT: *out = v; return CLLM_OK;
    case JV_BOOL: *out = jv_int(v.u.b); return CLLM_OK;
    case JV_FLOAT: d = v.u.f; break;
    case JV_STRING: {
        char buf[64], *end;
        size_t i = 0, n = v.u.s.n;
        while (i < n && jinja_is_space(v.u.s.p[i])) i++;
        while (n > i && jinja_is_space(v.u.s.p[n - 1])) n--;
        if (n > i && n - i < sizeof(buf)) {
            long long x;
            memcpy(buf, v.u.s.p + i, n - i);
            buf[n - i] = '\0';
            errno = 0;
            x = strtoll(buf, &end, 10);
            if (*end == '\0' && errno == 0) {
                *out = jv_int(x);
                return CLLM_OK;
            }
        }
        if (!parse_double(v.u.s, &d)) {
            *out = def;
            return CLLM_OK;
        }
        break;
    }
    default: *out = def; return CLLM_OK;
    }
    if (!(d > -9.2e18 && d < 9.2e18)) return jinja_fail(line, CLLM_ERR_RANGE, "int: %g out of range", d);
    *out = jv_int((int64_t)d);
    return CLLM_OK;
}

static status_t f_float(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_value_t def = jinja_arg(a, 0, "default");
    double d;
    (void)rt, (void)line;
    if (def.type == JV_UNDEFINED) def = jv_float(0.0);
    if (jinja_is_number(v)) *out = jv_float(jinja_as_double(v));
    else if (v.type == JV_STRING && parse_double(v.u.s, &d)) *out = jv_float(d);
    else *out = def;
    return CLLM_OK;
}

static status_t make_items(jinja_rt_t *rt, int line, const jinja_dict_t *d, jinja_list_t **out)
{
    jinja_list_t *l = jinja_list_new(rt->arena, d->n);
    if (!l) return jinja_fail_alloc(rt, line);
    for (size_t i = 0; i < d->n; i++) {
        jinja_list_t *pair = jinja_list_new(rt->arena, 2);
        if (!pair) return jinja_fail_alloc(rt, line);
        pair->tuple = true;
        pair->items[0] = jv_str(d->keys[i].p, d->keys[i].n);
        pair->items[1] = d->vals[i];
        pair->n = 2;
        l->items[l->n++] = jv_list(pair);
    }
    *out = l;
    return jinja_rt_charge(rt, line, d->n);
}

static status_t f_items(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_list_t *l = NULL;
    status_t st;
    (void)a;
    if (v.type == JV_UNDEFINED) {
        if (!(l = jinja_list_new(rt->arena, 0))) return jinja_fail_alloc(rt, line);
    } else if (v.type == JV_DICT) {
        if ((st = make_items(rt, line, v.u.dict, &l)) != CLLM_OK) return st;
    } else {
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "items needs a mapping, not a %s", jinja_type_name(v));
    }
    *out = jv_list(l);
    return CLLM_OK;
}

static status_t f_dictsort(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_list_t *l = NULL;
    jinja_value_t by = jinja_arg(a, 1, "by");
    sort_opts_t o = { arg_true(a, 0, "case_sensitive"), arg_true(a, 2, "reverse"), { NULL, 0 }, 0, line };
    status_t st;

    if (v.type != JV_DICT)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "dictsort needs a mapping, not a %s", jinja_type_name(v));
    if (by.type == JV_STRING && jinja_str_eq(by.u.s, "value")) o.key_index = 1;
    if ((st = make_items(rt, line, v.u.dict, &l)) != CLLM_OK) return st;
    return sorted_copy(rt, line, l, &o, out);
}

static status_t f_join(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_value_t sep = jinja_arg(a, 0, "d"), attr = jinja_arg(a, 1, "attribute");
    jinja_str_t sep_s = { "", 0 };
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (sep.type != JV_UNDEFINED && (st = soft_str(rt, line, sep, &sep_s)) != CLLM_OK) return st;
    if (attr.type != JV_UNDEFINED) {
        jinja_str_t path = { NULL, 0 };
        jinja_list_t *l = jinja_list_new(rt->arena, items->n);
        if ((st = attr_arg(attr, line, &path)) != CLLM_OK) return st;
        if (!l) return jinja_fail_alloc(rt, line);
        for (size_t i = 0; i < items->n; i++) l->items[l->n++] = attr_path(items->items[i], path);
        items = l;
    }
    return jinja_join(rt, line, items, sep_s, out);
}

static status_t f_list(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_list_t *l = NULL;
    status_t st;
    (void)a;
    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (v.type == JV_LIST && !items->tuple) {
        *out = v;
        return CLLM_OK;
    }
    if (!(l = jinja_list_new(rt->arena, items->n))) return jinja_fail_alloc(rt, line);
    if (items->n) memcpy(l->items, items->items, items->n * sizeof(jinja_value_t));
    l->n = items->n;
    *out = jv_list(l);
    return CLLM_OK;
}

static status_t f_replace(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_str_t s = { NULL, 0 }, old = { NULL, 0 }, new_s = { NULL, 0 };
    int64_t count = 0;
    status_t st;
    if ((st = soft_str(rt, line, v, &s)) != CLLM_OK) return st;
    if ((st = soft_str(rt, line, jinja_arg(a, 0, "old"), &old)) != CLLM_OK) return st;
    if ((st = soft_str(rt, line, jinja_arg(a, 1, "new"), &new_s)) != CLLM_OK) return st;
    if ((st = jinja_int_arg(jinja_arg(a, 2, "count"), -1, line, "replace: count", &count)) != CLLM_OK) return st;
    return jinja_str_replace(rt, line, s, old, new_s, count, out);
}

static status_t f_reverse(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    status_t st;
    (void)a;
    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (v.type == JV_STRING) {
        char *o = jinja_arena_alloc(rt->arena, v.u.s.n + 1);
        size_t k = v.u.s.n;
        if (!o) return jinja_fail_alloc(rt, line);
        for (size_t i = 0; i < items->n; i++) { /* characters in reverse order */
            k -= items->items[i].u.s.n;
            memcpy(o + k, items->items[i].u.s.p, items->items[i].u.s.n);
        }
        *out = jv_str(o, v.u.s.n);
    } else {
        jinja_list_t *l = jinja_list_new(rt->arena, items->n);
        if (!l) return jinja_fail_alloc(rt, line);
        for (size_t i = 0; i < items->n; i++) l->items[i] = items->items[items->n - 1 - i];
        l->n = items->n;
        *out = jv_list(l);
    }
    return jinja_rt_charge(rt, line, items->n);
}

static status_t f_round(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    int64_t prec = 0;
    jinja_value_t method = jinja_arg(a, 1, "method");
    double x, scale, r;
    status_t st;
    (void)rt;
    if (!jinja_is_number(v))
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "round needs a number, not a %s", jinja_type_name(v));
    if ((st = jinja_int_arg(jinja_arg(a, 0, "precision"), 0, line, "round: precision", &prec)) != CLLM_OK) return st;
    if (prec < -20 || prec > 20) return jinja_fail(line, CLLM_ERR_RANGE, "round: precision out of range");
    x = jinja_as_double(v);
    scale = pow(10.0, (double)prec);
    if (method.type == JV_STRING && jinja_str_eq(method.u.s, "ceil")) r = ceil(x * scale) / scale;
    else if (method.type == JV_STRING && jinja_str_eq(method.u.s, "floor")) r = floor(x * scale) / scale;
    else r = nearbyint(x * scale) / scale; /* Python's round(): halves to even */
    *out = jv_float(r);
    return CLLM_OK;
}

static status_t f_string(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    (void)a;
    return jinja_to_string(rt, v, line, out);
}

static status_t f_trim(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_str_t s = { NULL, 0 };
    status_t st = soft_str(rt, line, v, &s);
    return st != CLLM_OK ? st : jinja_str_strip(rt, line, s, jinja_arg(a, 0, "chars"), true, true, out);
}

static status_t f_tojson(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    jinja_value_t seps = jinja_arg(a, 2, "separators");
    int64_t indent = 0;
    char item_sep[32], key_sep[32];
    bool have_seps = false;
    jinja_buf_t b;
    status_t st;

    /* HF: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
    if ((st = jinja_int_arg(jinja_arg(a, 1, "indent"), -1, line, "tojson: indent", &indent)) != CLLM_OK) return st;
    if (indent > 64) return jinja_fail(line, CLLM_ERR_RANGE, "tojson: indent too large");
    if (seps.type == JV_LIST && seps.u.list->n == 2 && seps.u.list->items[0].type == JV_STRING &&
        seps.u.list->items[1].type == JV_STRING && seps.u.list->items[0].u.s.n < sizeof(item_sep) &&
        seps.u.list->items[1].u.s.n < sizeof(key_sep)) {
        jinja_str_t s0 = seps.u.list->items[0].u.s, s1 = seps.u.list->items[1].u.s;
        memcpy(item_sep, s0.p, s0.n);
        item_sep[s0.n] = '\0';
        memcpy(key_sep, s1.p, s1.n);
        key_sep[s1.n] = '\0';
        have_seps = true;
    } else if (seps.type != JV_UNDEFINED && seps.type != JV_NONE) {
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "tojson: separators must be two short strings");
    }
    jinja_buf_init(&b);
    st = jinja_write_json(&b, v, (int)indent, arg_true(a, 3, "sort_keys"), have_seps ? item_sep : NULL,
                          have_seps ? key_sep : NULL, line);
    if (st == CLLM_OK) st = jinja_buf_to_value(rt, line, &b, out);
    jinja_buf_free(&b);
    return st;
}

static status_t f_sort(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_value_t attr = jinja_arg(a, 2, "attribute");
    sort_opts_t o = { arg_true(a, 1, "case_sensitive"), arg_true(a, 0, "reverse"), { NULL, 0 }, -1, line };
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (attr.type != JV_UNDEFINED && (st = attr_arg(attr, line, &o.attr)) != CLLM_OK) return st;
    return sorted_copy(rt, line, items, &o, out);
}

static status_t f_unique(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_list_t *l = NULL;
    bool cs = arg_true(a, 0, "case_sensitive");
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if ((st = jinja_rt_charge(rt, line, (uint64_t)items->n * items->n / 2)) != CLLM_OK) return st;
    if (!(l = jinja_list_new(rt->arena, items->n))) return jinja_fail_alloc(rt, line);
    for (size_t i = 0; i < items->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < l->n && !seen; j++) {
            int c;
            if (items->items[i].type == JV_STRING && l->items[j].type == JV_STRING) {
                if ((st = order(items->items[i], l->items[j], cs, line, &c)) != CLLM_OK) return st;
                seen = c == 0;
            } else {
                seen = jinja_equal(items->items[i], l->items[j]);
            }
        }
        if (!seen) l->items[l->n++] = items->items[i];
    }
    *out = jv_list(l);
    return CLLM_OK;
}

static status_t min_max(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, bool want_max,
                        jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    bool cs = arg_true(a, 0, "case_sensitive");
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    *out = jv_undefined();
    for (size_t i = 0; i < items->n; i++) {
        int c = 0;
        if (i && (st = order(items->items[i], *out, cs, line, &c)) != CLLM_OK) return st;
        if (i == 0 || (want_max ? c > 0 : c < 0)) *out = items->items[i];
    }
    return jinja_rt_charge(rt, line, items->n);
}

static status_t f_max(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    return min_max(rt, line, v, a, true, out);
}

static status_t f_min(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    return min_max(rt, line, v, a, false, out);
}

static status_t f_sum(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_value_t attr = jinja_arg(a, 0, "attribute"), acc = jinja_arg(a, 1, "start");
    jinja_str_t path = { NULL, 0 };
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (attr.type != JV_UNDEFINED && (st = attr_arg(attr, line, &path)) != CLLM_OK) return st;
    if (acc.type == JV_UNDEFINED) acc = jv_int(0);
    for (size_t i = 0; i < items->n; i++) {
        jinja_value_t x = path.n ? attr_path(items->items[i], path) : items->items[i];
        if (!jinja_is_number(x) || !jinja_is_number(acc))
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "sum needs numbers, not a %s", jinja_type_name(x));
        if (x.type == JV_FLOAT || acc.type == JV_FLOAT) {
            acc = jv_float(jinja_as_double(acc) + jinja_as_double(x));
        } else {
            int64_t r, xi = x.type == JV_BOOL ? x.u.b : x.u.i, ai = acc.type == JV_BOOL ? acc.u.b : acc.u.i;
            if (__builtin_add_overflow(ai, xi, &r)) return jinja_fail(line, CLLM_ERR_RANGE, "integer overflow in sum");
            acc = jv_int(r);
        }
    }
    *out = acc;
    return jinja_rt_charge(rt, line, items->n);
}

/* select/reject (attr == false) and selectattr/rejectattr (attr == true). */
static status_t select_common(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, bool attr, bool keep,
                              jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_list_t *l = NULL;
    jinja_str_t path = { NULL, 0 };
    size_t first = attr ? 1 : 0; /* index of the test name */
    jinja_value_t test = first < a->n_pos ? a->pos[first] : jv_undefined();
    jinja_args_t targs = { NULL, 0, NULL, NULL, 0 };
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (attr && (st = attr_arg(jinja_arg(a, 0, NULL), line, &path)) != CLLM_OK) return st;
    if (test.type != JV_UNDEFINED) {
        if (test.type != JV_STRING || !jinja_test_exists(test.u.s))
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "select: unknown test");
        targs.pos = a->pos + first + 1;
        targs.n_pos = a->n_pos - first - 1;
    }
    if (!(l = jinja_list_new(rt->arena, items->n))) return jinja_fail_alloc(rt, line);
    for (size_t i = 0; i < items->n; i++) {
        jinja_value_t x = attr ? attr_path(items->items[i], path) : items->items[i];
        bool r = false;
        if (test.type == JV_UNDEFINED) r = jinja_truthy(x);
        else if ((st = jinja_test_apply(rt, line, test.u.s, x, &targs, &r)) != CLLM_OK) return st;
        if (r == keep) l->items[l->n++] = items->items[i];
    }
    *out = jv_list(l);
    return jinja_rt_charge(rt, line, items->n);
}

static status_t f_select(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    return select_common(rt, line, v, a, false, true, out);
}

static status_t f_reject(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    return select_common(rt, line, v, a, false, false, out);
}

static status_t f_selectattr(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    return select_common(rt, line, v, a, true, true, out);
}

static status_t f_rejectattr(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    return select_common(rt, line, v, a, true, false, out);
}

static status_t f_map(jinja_rt_t *rt, int line, jinja_value_t v, const jinja_args_t *a, jinja_value_t *out)
{
    const jinja_list_t *items = NULL;
    jinja_list_t *l = NULL;
    jinja_value_t attr = jinja_arg(a, SIZE_MAX, "attribute"), def = jinja_arg(a, SIZE_MAX, "default");
    jinja_value_t fname = jinja_arg(a, 0, NULL);
    jinja_args_t fargs = { NULL, 0, NULL, NULL, 0 };
    jinja_str_t path = { NULL, 0 };
    status_t st;

    if ((st = jinja_iterate(rt, line, v, &items)) != CLLM_OK) return st;
    if (attr.type != JV_UNDEFINED) {
        if ((st = attr_arg(attr, line, &path)) != CLLM_OK) return st;
    } else if (fname.type != JV_STRING || !jinja_filter_exists(fname.u.s)) {
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "map: needs attribute= or a filter name");
    } else {
        fargs.pos = a->pos + 1;
        fargs.n_pos = a->n_pos - 1;
    }
    if (!(l = jinja_list_new(rt->arena, items->n))) return jinja_fail_alloc(rt, line);
    for (size_t i = 0; i < items->n; i++) {
        jinja_value_t x = jv_undefined();
        if (attr.type != JV_UNDEFINED) {
            x = attr_path(items->items[i], path);
            if (x.type == JV_UNDEFINED && def.type != JV_UNDEFINED) x = def;
        } else if ((st = jinja_filter_apply(rt, line, fname.u.s, items->items[i], &fargs, &x)) != CLLM_OK) {
            return st;
        }
        l->items[l->n++] = x;
    }
    *out = jv_list(l);
    return jinja_rt_charge(rt, line, items->n);
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    { "abs", f_abs },         { "capitalize", f_capitalize }, { "count", f_length },    { "d", f_default },
    { "default", f_default }, { "dictsort", f_dictsort },     { "e", f_escape },        { "escape", f_escape },
    { "first", f_first },     { "float", f_float },           { "int", f_int },         { "items", f_items },
    { "join", f_join },       { "last", f_last },             { "length", f_length },   { "list", f_list },
    { "lower", f_lower },     { "map", f_map },               { "max", f_max },         { "min", f_min },
    { "reject", f_reject },   { "rejectattr", f_rejectattr }, { "replace", f_replace }, { "reverse", f_reverse },
    { "round", f_round },     { "safe", f_safe },             { "select", f_select },   { "selectattr", f_selectattr },
    { "sort", f_sort },       { "string", f_string },         { "sum", f_sum },         { "title", f_title },
    { "tojson", f_tojson },   { "trim", f_trim },             { "unique", f_unique },   { "upper", f_upper },
};

static filter_fn find_filter(jinja_str_t name)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (jinja_str_eq(name, filters[i].name)) return filters[i].fn;
    return NULL;
}

bool jinja_filter_exists(jinja_str_t name)
{
    return find_filter(name) != NULL;
}

status_t jinja_filter_apply(jinja_rt_t *rt, int line, jinja_str_t name, jinja_value_t v, const jinja_args_t *args,
                            jinja_value_t *out)
{
    filter_fn fn = find_filter(name);
    status_t st;
    if (!fn) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unknown filter '%.*s'", (int)name.n, name.p);
    if ((st = jinja_rt_charge(rt, line, 1 + jinja_value_cost(v))) != CLLM_OK) return st;
    return fn(rt, line, v, args, out);
}

/* ---- tests ---- */

static bool all_cased(jinja_str_t s, bool upper)
{
    bool any = false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            if ((c >= 'A' && c <= 'Z') != upper) return false;
            any = true;
        }
    }
    return any;
}

static status_t t_compare(int line, jinja_value_t v, jinja_value_t other, int op, bool *out)
{
    int c;
    status_t st;
    if (op == 0) {
        *out = jinja_equal(v, other);
        return CLLM_OK;
    }
    if (op == 1) {
        *out = !jinja_equal(v, other);
        return CLLM_OK;
    }
    if ((st = jinja_compare(v, other, line, &c)) != CLLM_OK) return st;
    *out = op == 2 ? c < 0 : op == 3 ? c <= 0 : op == 4 ? c > 0 : c >= 0;
    return CLLM_OK;
}

static status_t number_mod(int line, jinja_value_t v, jinja_value_t d, bool *zero)
{
    if (!jinja_is_number(v) || !jinja_is_number(d))
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "odd/even/divisibleby need numbers, not a %s",
                          jinja_type_name(v));
    if (v.type != JV_FLOAT && d.type != JV_FLOAT) {
        int64_t x = v.type == JV_BOOL ? v.u.b : v.u.i, y = d.type == JV_BOOL ? d.u.b : d.u.i;
        if (y == 0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "division by zero");
        *zero = y == -1 || x % y == 0;
    } else {
        double y = jinja_as_double(d);
        if (y == 0.0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "division by zero");
        *zero = fmod(jinja_as_double(v), y) == 0.0;
    }
    return CLLM_OK;
}

static const char *const test_names[] = {
    "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping",
    "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt",
    "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "lower", "upper", "sameas",
};

bool jinja_test_exists(jinja_str_t name)
{
    for (size_t i = 0; i < sizeof(test_names) / sizeof(test_names[0]); i++)
        if (jinja_str_eq(name, test_names[i])) return true;
    return false;
}

status_t jinja_test_apply(jinja_rt_t *rt, int line, jinja_str_t name, jinja_value_t v, const jinja_args_t *a, bool *out)
{
    jinja_type_t t = v.type;
    jinja_value_t arg = jinja_arg(a, 0, NULL);
    bool z = false;
    status_t st;

    if ((st = jinja_rt_charge(rt, line, 1 + jinja_value_cost(v) + jinja_value_cost(arg))) != CLLM_OK) return st;
    if (jinja_str_eq(name, "defined")) *out = t != JV_UNDEFINED;
    else if (jinja_str_eq(name, "undefined")) *out = t == JV_UNDEFINED;
    else if (jinja_str_eq(name, "none")) *out = t == JV_NONE;
    else if (jinja_str_eq(name, "boolean")) *out = t == JV_BOOL;
    else if (jinja_str_eq(name, "true")) *out = t == JV_BOOL && v.u.b;
    else if (jinja_str_eq(name, "false")) *out = t == JV_BOOL && !v.u.b;
    else if (jinja_str_eq(name, "integer")) *out = t == JV_INT;
    else if (jinja_str_eq(name, "float")) *out = t == JV_FLOAT;
    else if (jinja_str_eq(name, "number")) *out = jinja_is_number(v);
    else if (jinja_str_eq(name, "string")) *out = t == JV_STRING;
    else if (jinja_str_eq(name, "mapping")) *out = t == JV_DICT;
    else if (jinja_str_eq(name, "iterable") || jinja_str_eq(name, "sequence"))
        *out = t == JV_STRING || t == JV_LIST || t == JV_DICT || t == JV_UNDEFINED;
    else if (jinja_str_eq(name, "callable")) *out = t == JV_FUNC || t == JV_MACRO;
    else if (jinja_str_eq(name, "odd") || jinja_str_eq(name, "even")) {
        if ((st = number_mod(line, v, jv_int(2), &z)) != CLLM_OK) return st;
        *out = jinja_str_eq(name, "even") ? z : !z;
    } else if (jinja_str_eq(name, "divisibleby")) {
        if ((st = number_mod(line, v, arg, &z)) != CLLM_OK) return st;
        *out = z;
    } else if (jinja_str_eq(name, "eq") || jinja_str_eq(name, "equalto") || jinja_str_eq(name, "=="))
        return t_compare(line, v, arg, 0, out);
    else if (jinja_str_eq(name, "ne") || jinja_str_eq(name, "!=")) return t_compare(line, v, arg, 1, out);
    else if (jinja_str_eq(name, "lt") || jinja_str_eq(name, "lessthan") || jinja_str_eq(name, "<"))
        return t_compare(line, v, arg, 2, out);
    else if (jinja_str_eq(name, "le") || jinja_str_eq(name, "<=")) return t_compare(line, v, arg, 3, out);
    else if (jinja_str_eq(name, "gt") || jinja_str_eq(name, "greaterthan") || jinja_str_eq(name, ">"))
        return t_compare(line, v, arg, 4, out);
    else if (jinja_str_eq(name, "ge") || jinja_str_eq(name, ">=")) return t_compare(line, v, arg, 5, out);
    else if (jinja_str_eq(name, "in")) return jinja_contains(arg, v, line, out);
    else if (jinja_str_eq(name, "lower") || jinja_str_eq(name, "upper"))
        *out = t == JV_STRING && all_cased(v.u.s, jinja_str_eq(name, "upper"));
    else if (jinja_str_eq(name, "sameas")) {
        if (t != arg.type) *out = false;
        else if (t == JV_LIST) *out = v.u.list == arg.u.list;
        else if (t == JV_DICT || t == JV_NAMESPACE) *out = v.u.dict == arg.u.dict;
        else *out = jinja_equal(v, arg);
    } else
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unknown test '%.*s'", (int)name.n, name.p);
    return CLLM_OK;
}

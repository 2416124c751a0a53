/* jinja_methods.c: methods of strings, dicts and loops, the global functions, and the Python
 * string operations shared with filters (see jinja_methods.h).
 *
 * Invariants: nothing here modifies its inputs; results are new arena values (or point into
 * the inputs, which outlive them in the same arena or template); every string built is
 * bounded by JINJA_MAX_OUTPUT and every list by the arena cap. */
#include "server/jinja_methods.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

bool jinja_is_space(char c)
{
    /* Python's str.isspace() on ASCII: also the separators 0x1c..0x1f */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

status_t jinja_int_arg(jinja_value_t v, int64_t def, int line, const char *what, int64_t *out)
{
    if (v.type == JV_UNDEFINED || v.type == JV_NONE) *out = def;
    else if (v.type == JV_INT) *out = v.u.i;
    else if (v.type == JV_BOOL) *out = v.u.b;
    else return jinja_fail(line, CLLM_ERR_INVALID_ARG, "%s must be an integer, not a %s", what, jinja_type_name(v));
    return CLLM_OK;
}

static status_t str_arg(jinja_value_t v, int line, const char *what, jinja_str_t *out)
{
    if (v.type != JV_STRING)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "%s must be a string, not a %s", what, jinja_type_name(v));
    *out = v.u.s;
    return CLLM_OK;
}

static status_t new_str(jinja_rt_t *rt, int line, size_t n, char **p)
{
    if (n > JINJA_MAX_OUTPUT)
        return jinja_fail(line, CLLM_ERR_RANGE, "string longer than %u MiB", JINJA_MAX_OUTPUT >> 20);
    if (!(*p = jinja_arena_alloc(rt->arena, n + 1))) return jinja_fail_alloc(rt, line);
    return CLLM_OK;
}

status_t jinja_str_case(jinja_rt_t *rt, int line, jinja_str_t s, jinja_case_t mode, jinja_value_t *out)
{
    char *o = NULL;
    bool prev_cased = false;
    status_t st = new_str(rt, line, s.n, &o);

    if (st != CLLM_OK) return st;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        bool cont = ((unsigned char)c & 0xC0) == 0x80;
        switch (mode) {
        case JINJA_CASE_UPPER: o[i] = to_upper(c); break;
        case JINJA_CASE_LOWER: o[i] = to_lower(c); break;
        case JINJA_CASE_CAPITALIZE: o[i] = i == 0 ? to_upper(c) : to_lower(c); break;
        case JINJA_CASE_TITLE_PY:
            /* non-ASCII bytes count as letters, so "héllo" stays "Héllo" */
            o[i] = prev_cased ? to_lower(c) : to_upper(c);
            prev_cased = is_alpha(c) || (unsigned char)c >= 0x80;
            (void)cont;
            break;
        case JINJA_CASE_TITLE_WORDS:
            o[i] = prev_cased ? to_lower(c) : to_upper(c);
            prev_cased = !(jinja_is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<');
            break;
        }
    }
    *out = jv_str(o, s.n);
    return CLLM_OK;
}

/* Length of the UTF-8 sequence starting at p[i]. */
static size_t cp_len(const char *p, size_t n, size_t i)
{
    size_t j = i + 1;
    while (j < n && ((unsigned char)p[j] & 0xC0) == 0x80) j++;
    return j - i;
}

/* Does the character at s[i..i+len) occur in chars? */
static bool cp_in(jinja_str_t chars, const char *c, size_t len)
{
    for (size_t k = 0; k < chars.n;) {
        size_t l = cp_len(chars.p, chars.n, k);
        if (l == len && memcmp(chars.p + k, c, len) == 0) return true;
        k += l;
    }
    return false;
}

status_t jinja_str_strip(jinja_rt_t *rt, int line, jinja_str_t s, jinja_value_t chars, bool left, bool right,
                         jinja_value_t *out)
{
    size_t a = 0, b = s.n;
    bool ws = chars.type == JV_UNDEFINED || chars.type == JV_NONE;
    (void)rt;

    if (!ws && chars.type != JV_STRING)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "strip: characters must be a string");
    if (left) {
        while (a < b) {
            size_t l = cp_len(s.p, b, a);
            if (ws ? !(l == 1 && jinja_is_space(s.p[a])) : !cp_in(chars.u.s, s.p + a, l)) break;
            a += l;
        }
    }
    if (right) {
        while (b > a) {
            size_t k = b - 1, l;
            while (k > a && ((unsigned char)s.p[k] & 0xC0) == 0x80) k--;
            l = b - k;
            if (ws ? !(l == 1 && jinja_is_space(s.p[k])) : !cp_in(chars.u.s, s.p + k, l)) break;
            b = k;
        }
    }
    *out = jv_str(s.p + a, b - a);
    return CLLM_OK;
}

status_t jinja_str_replace(jinja_rt_t *rt, int line, jinja_str_t s, jinja_str_t old, jinja_str_t new_s, int64_t count,
                           jinja_value_t *out)
{
    jinja_buf_t b;
    size_t i = 0, run = 0;
    int64_t done = 0;
    status_t st;

    jinja_buf_init(&b);
    if (old.n == 0) { /* Python: new before every character and at the end */
        while (i <= s.n && (count < 0 || done < count)) {
            jinja_buf_put(&b, new_s.p, new_s.n);
            done++;
            if (i == s.n) {
                i++;
                break;
            }
            size_t l = cp_len(s.p, s.n, i);
            jinja_buf_put(&b, s.p + i, l);
            i += l;
        }
        if (i < s.n) jinja_buf_put(&b, s.p + i, s.n - i);
    } else {
        while (i + old.n <= s.n && (count < 0 || done < count)) {
            const char *hit = memmem(s.p + i, s.n - i, old.p, old.n);
            if (!hit) break;
            jinja_buf_put(&b, s.p + run, (size_t)(hit - s.p) - run);
            jinja_buf_put(&b, new_s.p, new_s.n);
            i = run = (size_t)(hit - s.p) + old.n;
            done++;
        }
        jinja_buf_put(&b, s.p + run, s.n - run);
    }
    st = jinja_rt_charge(rt, line, (uint64_t)done);
    if (st == CLLM_OK) st = jinja_buf_to_value(rt, line, &b, out);
    jinja_buf_free(&b);
    return st;
}

status_t jinja_str_split(jinja_rt_t *rt, int line, jinja_str_t s, jinja_value_t sep, int64_t maxsplit,
                         jinja_value_t *out)
{
    jinja_list_t *l = jinja_list_new(rt->arena, 0);
    size_t i = 0;

    if (!l) return jinja_fail_alloc(rt, line);
    if (sep.type == JV_UNDEFINED || sep.type == JV_NONE) {
        for (;;) {
            size_t a;
            while (i < s.n && jinja_is_space(s.p[i])) i++;
            if (i >= s.n) break;
            a = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) { /* the rest, trailing spaces kept */
                i = s.n;
            } else {
                while (i < s.n && !jinja_is_space(s.p[i])) i++;
            }
            if (!jinja_list_push(rt->arena, l, jv_str(s.p + a, i - a))) return jinja_fail_alloc(rt, line);
        }
    } else {
        jinja_str_t d = { NULL, 0 };
        status_t st = str_arg(sep, line, "split: separator", &d);
        if (st != CLLM_OK) return st;
        if (d.n == 0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "split: empty separator");
        for (;;) {
            const char *hit = NULL;
            if (maxsplit < 0 || (int64_t)l->n < maxsplit) hit = memmem(s.p + i, s.n - i, d.p, d.n);
            if (!hit) {
                if (!jinja_list_push(rt->arena, l, jv_str(s.p + i, s.n - i))) return jinja_fail_alloc(rt, line);
                break;
            }
            if (!jinja_list_push(rt->arena, l, jv_str(s.p + i, (size_t)(hit - (s.p + i)))))
                return jinja_fail_alloc(rt, line);
            i = (size_t)(hit - s.p) + d.n;
        }
    }
    *out = jv_list(l);
    return jinja_rt_charge(rt, line, l->n);
}

status_t jinja_join(jinja_rt_t *rt, int line, const jinja_list_t *items, jinja_str_t sep, jinja_value_t *out)
{
    jinja_buf_t b;
    status_t st = jinja_rt_charge(rt, line, items->n);

    if (st != CLLM_OK) return st;
    jinja_buf_init(&b);
    for (size_t i = 0; i < items->n && st == CLLM_OK; i++) {
        if (i) jinja_buf_put(&b, sep.p, sep.n);
        st = jinja_write_str(&b, items->items[i], line);
    }
    if (st == CLLM_OK) st = jinja_buf_to_value(rt, line, &b, out);
    jinja_buf_free(&b);
    return st;
}

/* startswith/endswith with a string or a tuple of strings. */
static status_t affix_test(jinja_str_t s, jinja_value_t arg, bool suffix, int line, bool *out)
{
    const jinja_value_t *cands = &arg;
    size_t n = 1;

    if (arg.type == JV_LIST) {
        cands = arg.u.list->items;
        n = arg.u.list->n;
    }
    *out = false;
    for (size_t i = 0; i < n; i++) {
        jinja_str_t a = { NULL, 0 };
        status_t st = str_arg(cands[i], line, suffix ? "endswith: suffix" : "startswith: prefix", &a);
        if (st != CLLM_OK) return st;
        if (a.n <= s.n && memcmp(suffix ? s.p + s.n - a.n : s.p, a.p, a.n) == 0) *out = true;
    }
    return CLLM_OK;
}

static status_t string_method(jinja_rt_t *rt, int line, jinja_str_t s, jinja_str_t name, const jinja_args_t *args,
                              jinja_value_t *out)
{
    jinja_value_t a0 = jinja_arg(args, 0, NULL), a1 = jinja_arg(args, 1, NULL);
    status_t st;

    if (jinja_str_eq(name, "strip")) return jinja_str_strip(rt, line, s, a0, true, true, out);
    if (jinja_str_eq(name, "lstrip")) return jinja_str_strip(rt, line, s, a0, true, false, out);
    if (jinja_str_eq(name, "rstrip")) return jinja_str_strip(rt, line, s, a0, false, true, out);
    if (jinja_str_eq(name, "upper")) return jinja_str_case(rt, line, s, JINJA_CASE_UPPER, out);
    if (jinja_str_eq(name, "lower")) return jinja_str_case(rt, line, s, JINJA_CASE_LOWER, out);
    if (jinja_str_eq(name, "title")) return jinja_str_case(rt, line, s, JINJA_CASE_TITLE_PY, out);
    if (jinja_str_eq(name, "capitalize")) return jinja_str_case(rt, line, s, JINJA_CASE_CAPITALIZE, out);
    if (jinja_str_eq(name, "startswith") || jinja_str_eq(name, "endswith")) {
        bool r = false;
        if ((st = affix_test(s, a0, jinja_str_eq(name, "endswith"), line, &r)) != CLLM_OK) return st;
        *out = jv_bool(r);
        return CLLM_OK;
    }
    if (jinja_str_eq(name, "split")) {
        int64_t maxsplit = 0;
        jinja_value_t sep = jinja_arg(args, 0, "sep");
        if ((st = jinja_int_arg(jinja_arg(args, 1, "maxsplit"), -1, line, "split: maxsplit", &maxsplit)) != CLLM_OK)
            return st;
        return jinja_str_split(rt, line, s, sep, maxsplit, out);
    }
    if (jinja_str_eq(name, "replace")) {
        jinja_str_t old = { NULL, 0 }, new_s = { NULL, 0 };
        int64_t count = 0;
        if ((st = str_arg(a0, line, "replace: old", &old)) != CLLM_OK) return st;
        if ((st = str_arg(a1, line, "replace: new", &new_s)) != CLLM_OK) return st;
        if ((st = jinja_int_arg(jinja_arg(args, 2, "count"), -1, line, "replace: count", &count)) != CLLM_OK) return st;
        return jinja_str_replace(rt, line, s, old, new_s, count, out);
    }
    if (jinja_str_eq(name, "find") || jinja_str_eq(name, "count")) {
        jinja_str_t sub = { NULL, 0 };
        const char *hit;
        if ((st = str_arg(a0, line, "find: substring", &sub)) != CLLM_OK) return st;
        if (jinja_str_eq(name, "find")) {
            hit = sub.n ? memmem(s.p, s.n, sub.p, sub.n) : s.p;
            *out = jv_int(hit ? (int64_t)jinja_utf8_len(s.p, (size_t)(hit - s.p)) : -1);
        } else {
            int64_t k = 0;
            size_t i = 0;
            if (sub.n == 0) k = (int64_t)jinja_utf8_len(s.p, s.n) + 1;
            else
                while ((hit = memmem(s.p + i, s.n - i, sub.p, sub.n)) != NULL) {
                    k++;
                    i = (size_t)(hit - s.p) + sub.n;
                }
            *out = jv_int(k);
        }
        return CLLM_OK;
    }
    if (jinja_str_eq(name, "join")) {
        const jinja_list_t *items = NULL;
        if ((st = jinja_iterate(rt, line, a0, &items)) != CLLM_OK) return st;
        return jinja_join(rt, line, items, s, out);
    }
    if (jinja_str_eq(name, "isdigit") || jinja_str_eq(name, "isspace") || jinja_str_eq(name, "isalpha")) {
        bool r = s.n > 0;
        for (size_t i = 0; i < s.n; i++) {
            char c = s.p[i];
            if (name.p[2] == 'd' ? !(c >= '0' && c <= '9') : name.p[2] == 's' ? !jinja_is_space(c) : !is_alpha(c))
                r = false;
        }
        *out = jv_bool(r);
        return CLLM_OK;
    }
    return jinja_fail(line, CLLM_ERR_INVALID_ARG, "a string has no method '%.*s'", (int)name.n, name.p);
}

static status_t dict_method(jinja_rt_t *rt, int line, const jinja_dict_t *d, jinja_str_t name, const jinja_args_t *args,
                            jinja_value_t *out)
{
    jinja_list_t *l = NULL;

    if (jinja_str_eq(name, "get")) {
        jinja_value_t k = jinja_arg(args, 0, NULL);
        const jinja_value_t *v = k.type == JV_STRING ? jinja_dict_get(d, k.u.s.p, k.u.s.n) : NULL;
        jinja_value_t def = jinja_arg(args, 1, NULL);
        *out = v ? *v : (def.type == JV_UNDEFINED ? jv_none() : def);
        return CLLM_OK;
    }
    if (!jinja_str_eq(name, "items") && !jinja_str_eq(name, "keys") && !jinja_str_eq(name, "values"))
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "a dict has no method '%.*s'", (int)name.n, name.p);
    if (!(l = jinja_list_new(rt->arena, d->n))) return jinja_fail_alloc(rt, line);
    for (size_t i = 0; i < d->n; i++) {
        jinja_value_t key = jv_str(d->keys[i].p, d->keys[i].n);
        if (jinja_str_eq(name, "items")) {
            jinja_list_t *pair = jinja_list_new(rt->arena, 2);
            if (!pair) return jinja_fail_alloc(rt, line);
            pair->tuple = true;
            pair->items[0] = key;
            pair->items[1] = d->vals[i];
            pair->n = 2;
            l->items[i] = jv_list(pair);
        } else {
            l->items[i] = jinja_str_eq(name, "keys") ? key : d->vals[i];
        }
    }
    l->n = d->n;
    *out = jv_list(l);
    return jinja_rt_charge(rt, line, d->n);
}

status_t jinja_method_call(jinja_rt_t *rt, int line, jinja_value_t obj, jinja_str_t name, const jinja_args_t *args,
                           jinja_value_t *out)
{
    status_t st = jinja_rt_charge(rt, line, 1 + jinja_value_cost(obj));

    if (st != CLLM_OK) return st;
    switch (obj.type) {
    case JV_STRING: return string_method(rt, line, obj.u.s, name, args, out);
    case JV_DICT: return dict_method(rt, line, obj.u.dict, name, args, out);
    case JV_LOOP:
        if (jinja_str_eq(name, "cycle")) {
            if (args->n_pos == 0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "loop.cycle() needs arguments");
            *out = args->pos[obj.u.loop->index0 % (int64_t)args->n_pos];
            return CLLM_OK;
        }
        break;
    case JV_UNDEFINED:
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "cannot call '%.*s' on an undefined value", (int)name.n, name.p);
    default: break;
    }
    return jinja_fail(line, CLLM_ERR_INVALID_ARG, "a %s has no method '%.*s'", jinja_type_name(obj), (int)name.n,
                      name.p);
}

/* ---- global functions ---- */

static status_t func_range(jinja_rt_t *rt, int line, const jinja_args_t *args, jinja_value_t *out)
{
    int64_t start = 0, stop = 0, step = 1, n = 0;
    uint64_t un;
    jinja_list_t *l = NULL;
    status_t st;

    if (args->n_pos == 0 || args->n_pos > 3)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "range() takes 1 to 3 arguments");
    for (size_t i = 0; i < args->n_pos; i++)
        if (args->pos[i].type != JV_INT && args->pos[i].type != JV_BOOL)
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "range() needs integers, not a %s",
                              jinja_type_name(args->pos[i]));
    if (args->n_pos == 1) {
        (void)jinja_int_arg(args->pos[0], 0, line, "range", &stop);
    } else {
        (void)jinja_int_arg(args->pos[0], 0, line, "range", &start);
        (void)jinja_int_arg(args->pos[1], 0, line, "range", &stop);
        if (args->n_pos == 3) (void)jinja_int_arg(args->pos[2], 1, line, "range", &step);
    }
    if (step == 0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "range() step must not be zero");
    /* the length in unsigned arithmetic, which cannot overflow for any int64 bounds */
    if (step > 0) un = stop > start ? ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1 : 0;
    else un = start > stop ? ((uint64_t)start - (uint64_t)stop - 1) / (0 - (uint64_t)step) + 1 : 0;
    if (un > JINJA_MAX_ITERATIONS)
        return jinja_fail(line, CLLM_ERR_RANGE, "range() of more than %d items", JINJA_MAX_ITERATIONS);
    n = (int64_t)un;
    if ((st = jinja_rt_charge(rt, line, un)) != CLLM_OK) return st;
    if (!(l = jinja_list_new(rt->arena, (size_t)n))) return jinja_fail_alloc(rt, line);
    for (int64_t i = 0; i < n; i++) /* wraps like Python's exact arithmetic for values in range */
        l->items[i] = jv_int((int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)step));
    l->n = (size_t)n;
    *out = jv_list(l);
    return CLLM_OK;
}

static status_t func_strftime(jinja_rt_t *rt, int line, const jinja_args_t *args, jinja_value_t *out)
{
    jinja_value_t fmt_v = jinja_arg(args, 0, "format");
    char fmt[256], res[512];
    time_t t = (time_t)rt->now;
    struct tm tm;
    size_t n;
    jinja_str_t f = { NULL, 0 };
    status_t st = str_arg(fmt_v, line, "strftime_now: format", &f);

    if (st != CLLM_OK) return st;
    if (f.n >= sizeof(fmt)) return jinja_fail(line, CLLM_ERR_RANGE, "strftime_now: format too long");
    memcpy(fmt, f.p, f.n);
    fmt[f.n] = '\0';
    if (!localtime_r(&t, &tm)) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "strftime_now: bad time");
    n = strftime(res, sizeof(res), fmt, &tm);
    if (n == 0 && f.n > 0) res[0] = '\0'; /* empty result or too long: Python would give text; keep "" */
    if (!jv_str_copy(rt->arena, res, n, out)) return jinja_fail_alloc(rt, line);
    return CLLM_OK;
}

status_t jinja_func_call(jinja_rt_t *rt, int line, jinja_func_t f, const jinja_args_t *args, jinja_value_t *out)
{
    switch (f) {
    case JINJA_FUNC_RAISE_EXCEPTION: {
        jinja_buf_t b;
        status_t st;
        jinja_buf_init(&b);
        st = jinja_write_str(&b, jinja_arg(args, 0, "message"), line);
        if (st == CLLM_OK)
            st = jinja_fail(line, CLLM_ERR_INVALID_ARG, "raise_exception: %.600s", b.p ? b.p : "");
        jinja_buf_free(&b);
        return st;
    }
    case JINJA_FUNC_RANGE: return func_range(rt, line, args, out);
    case JINJA_FUNC_STRFTIME_NOW: return func_strftime(rt, line, args, out);
    case JINJA_FUNC_NAMESPACE:
    case JINJA_FUNC_DICT: {
        jinja_dict_t *d = jinja_dict_new(rt->arena, args->n_kw);
        if (!d) return jinja_fail_alloc(rt, line);
        for (size_t i = 0; i < args->n_pos; i++) { /* namespace({'a': 1}) / dict({'a': 1}) */
            const jinja_dict_t *src = NULL;
            if (args->pos[i].type != JV_DICT)
                return jinja_fail(line, CLLM_ERR_INVALID_ARG, "namespace()/dict() takes a dict, not a %s",
                                  jinja_type_name(args->pos[i]));
            src = args->pos[i].u.dict;
            for (size_t k = 0; k < src->n; k++)
                if (!jinja_dict_set(rt->arena, d, src->keys[k], src->vals[k])) return jinja_fail_alloc(rt, line);
        }
        for (size_t i = 0; i < args->n_kw; i++)
            if (!jinja_dict_set(rt->arena, d, args->kw_names[i], args->kw_vals[i])) return jinja_fail_alloc(rt, line);
        *out = jv_dict(d);
        if (f == JINJA_FUNC_NAMESPACE) out->type = JV_NAMESPACE;
        return CLLM_OK;
    }
    }
    return jinja_fail(line, CLLM_ERR_INTERNAL, "unknown function");
}

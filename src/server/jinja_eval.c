/* jinja_eval.c: the tree-walking evaluator (see jinja_eval.h for scoping and limits).
 *
 * Invariants: every exec/eval goes through a wrapper that counts depth and charges one step,
 * so recursion (nested expressions, macro calls) and work are bounded; a pending break or
 * continue (loop_ctl) unwinds only up to the innermost loop (the parser rejects them outside
 * loops); output goes to the current buffer, which a macro call or `{% set x %}` block swaps
 * for its own and restores on every path. */
#include "server/jinja_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/jinja_filters.h"
#include "server/jinja_methods.h"

typedef struct frame {
    struct frame *parent;
    jinja_dict_t *vars;
} frame_t;

typedef struct {
    jinja_rt_t *rt;
    jinja_buf_t *out;  /* where text goes now */
    frame_t *global;   /* top-level assignments and the caller's variables */
    frame_t *scope;    /* innermost frame */
    int loop_ctl;      /* JN_BREAK or JN_CONTINUE pending, else 0 */
} eval_t;

#define ARGS_ON_STACK 6

static status_t eval(eval_t *ev, const jinja_node_t *n, jinja_value_t *out);
static status_t exec(eval_t *ev, const jinja_node_t *n);

static frame_t *frame_new(eval_t *ev, frame_t *parent, size_t cap)
{
    frame_t *f = jinja_arena_alloc(ev->rt->arena, sizeof(*f));
    if (!f || !(f->vars = jinja_dict_new(ev->rt->arena, cap))) return NULL;
    f->parent = parent;
    return f;
}

static status_t frame_set(eval_t *ev, frame_t *f, jinja_str_t name, jinja_value_t v, int line)
{
    if (!jinja_dict_set(ev->rt->arena, f->vars, name, v)) return jinja_fail_alloc(ev->rt, line);
    return CLLM_OK;
}

static jinja_value_t lookup(const eval_t *ev, jinja_str_t name)
{
    for (const frame_t *f = ev->scope; f; f = f->parent) {
        const jinja_value_t *v = jinja_dict_get(f->vars, name.p, name.n);
        if (v) return *v;
    }
    return jv_undefined();
}

/* ---- attribute and item access ---- */

static jinja_value_t loop_attr(const jinja_loop_t *l, jinja_str_t name)
{
    int64_t i = l->index0, n = l->length;
    if (jinja_str_eq(name, "index")) return jv_int(i + 1);
    if (jinja_str_eq(name, "index0")) return jv_int(i);
    if (jinja_str_eq(name, "first")) return jv_bool(i == 0);
    if (jinja_str_eq(name, "last")) return jv_bool(i == n - 1);
    if (jinja_str_eq(name, "length")) return jv_int(n);
    if (jinja_str_eq(name, "revindex")) return jv_int(n - i);
    if (jinja_str_eq(name, "revindex0")) return jv_int(n - i - 1);
    if (jinja_str_eq(name, "previtem")) return i > 0 ? l->items->items[i - 1] : jv_undefined();
    if (jinja_str_eq(name, "nextitem")) return i + 1 < n ? l->items->items[i + 1] : jv_undefined();
    if (jinja_str_eq(name, "depth")) return jv_int(1);
    if (jinja_str_eq(name, "depth0")) return jv_int(0);
    return jv_undefined();
}

static jinja_value_t get_attr(jinja_value_t obj, jinja_str_t name)
{
    if (obj.type == JV_DICT || obj.type == JV_NAMESPACE) {
        const jinja_value_t *v = jinja_dict_get(obj.u.dict, name.p, name.n);
        return v ? *v : jv_undefined();
    }
    if (obj.type == JV_LOOP) return loop_attr(obj.u.loop, name);
    return jv_undefined();
}

static jinja_value_t get_item(jinja_value_t obj, jinja_value_t key)
{
    int64_t i = 0;

    if (key.type == JV_STRING) return get_attr(obj, key.u.s);
    if (key.type != JV_INT && key.type != JV_BOOL) return jv_undefined();
    i = key.type == JV_BOOL ? key.u.b : key.u.i;
    if (obj.type == JV_LIST) {
        int64_t n = (int64_t)obj.u.list->n;
        if (i < 0) i += n;
        return i >= 0 && i < n ? obj.u.list->items[i] : jv_undefined();
    }
    if (obj.type == JV_STRING) {
        int64_t n = (int64_t)jinja_utf8_len(obj.u.s.p, obj.u.s.n);
        size_t a, b;
        if (i < 0) i += n;
        if (i < 0 || i >= n) return jv_undefined();
        a = jinja_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)i);
        b = jinja_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
        return jv_str(obj.u.s.p + a, b - a);
    }
    return jv_undefined();
}

/* Python's slice index normalisation for a sequence of n items. */
static int64_t slice_bound(jinja_value_t v, int64_t n, int64_t step, bool is_start)
{
    int64_t i = 0;
    if (v.type != JV_INT && v.type != JV_BOOL) return is_start ? (step < 0 ? n - 1 : 0) : (step < 0 ? -1 : n);
    i = v.type == JV_BOOL ? v.u.b : v.u.i;
    if (i < 0) {
        i += n;
        if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
        i = step < 0 ? n - 1 : n;
    }
    return i;
}

static status_t slice(eval_t *ev, const jinja_node_t *n, jinja_value_t obj, jinja_value_t *out)
{
    jinja_value_t vs = jv_undefined(), ve = jv_undefined(), vp = jv_undefined();
    int64_t len = 0, step = 1, start = 0, stop = 0, count = 0;
    status_t st;

    if ((n->b && (st = eval(ev, n->b, &vs)) != CLLM_OK) || (n->c && (st = eval(ev, n->c, &ve)) != CLLM_OK) ||
        (n->d && (st = eval(ev, n->d, &vp)) != CLLM_OK))
        return st;
    for (int k = 0; k < 3; k++) {
        jinja_value_t v = k == 0 ? vs : k == 1 ? ve : vp;
        if (v.type != JV_UNDEFINED && v.type != JV_NONE && v.type != JV_INT && v.type != JV_BOOL)
            return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "slice indices must be integers, not a %s",
                              jinja_type_name(v));
    }
    if ((st = jinja_int_arg(vp, 1, n->line, "slice step", &step)) != CLLM_OK) return st;
    if (step == 0) return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    if (obj.type == JV_LIST) len = (int64_t)obj.u.list->n;
    else if (obj.type == JV_STRING) len = (int64_t)jinja_utf8_len(obj.u.s.p, obj.u.s.n);
    else return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "a %s cannot be sliced", jinja_type_name(obj));
    start = slice_bound(vs, len, step, true);
    stop = slice_bound(ve, len, step, false);
    if (step > 0) count = stop > start ? (stop - start - 1) / step + 1 : 0;
    else count = start > stop ? (start - stop - 1) / -step + 1 : 0;
    if ((st = jinja_rt_charge(ev->rt, n->line, (uint64_t)count)) != CLLM_OK) return st;

    if (obj.type == JV_LIST) {
        jinja_list_t *l = jinja_arena_alloc(ev->rt->arena, sizeof(*l));
        if (!l) return jinja_fail_alloc(ev->rt, n->line);
        l->tuple = obj.u.list->tuple;
        if (step == 1) { /* lists are immutable: share the items */
            l->items = count ? obj.u.list->items + start : NULL;
            l->n = l->cap = (size_t)count;
        } else {
            if (count && !(l->items = jinja_arena_alloc(ev->rt->arena, (size_t)count * sizeof(jinja_value_t))))
                return jinja_fail_alloc(ev->rt, n->line);
            for (int64_t k = 0; k < count; k++) l->items[k] = obj.u.list->items[start + k * step];
            l->n = l->cap = (size_t)count;
        }
        *out = jv_list(l);
        return CLLM_OK;
    }
    if (step == 1) {
        size_t a = jinja_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)start);
        size_t b = jinja_utf8_offset(obj.u.s.p, obj.u.s.n, (size_t)(start + count));
        *out = jv_str(obj.u.s.p + a, b - a);
        return CLLM_OK;
    }
    {
        const jinja_list_t *chars = NULL;
        jinja_buf_t b;
        if ((st = jinja_iterate(ev->rt, n->line, obj, &chars)) != CLLM_OK) return st;
        jinja_buf_init(&b);
        for (int64_t k = 0; k < count; k++) {
            jinja_str_t c = chars->items[start + k * step].u.s;
            jinja_buf_put(&b, c.p, c.n);
        }
        st = jinja_buf_to_value(ev->rt, n->line, &b, out);
        jinja_buf_free(&b);
        return st;
    }
}

/* ---- operators ---- */

static status_t bad_operands(int line, const char *op, jinja_value_t a, jinja_value_t b)
{
    return jinja_fail(line, CLLM_ERR_INVALID_ARG, "unsupported operand types for %s: %s and %s", op, jinja_type_name(a),
                      jinja_type_name(b));
}

static status_t int_pow(int line, int64_t x, int64_t y, int64_t *out)
{
    int64_t r = 1;
    while (y > 0) {
        if ((y & 1) && __builtin_mul_overflow(r, x, &r)) return jinja_fail(line, CLLM_ERR_RANGE, "integer overflow");
        y >>= 1;
        if (y && __builtin_mul_overflow(x, x, &x)) return jinja_fail(line, CLLM_ERR_RANGE, "integer overflow");
    }
    *out = r;
    return CLLM_OK;
}

static status_t num_op(int line, int op, jinja_value_t a, jinja_value_t b, jinja_value_t *out)
{
    static const char *const names[] = { [JOP_ADD] = "+", [JOP_SUB] = "-", [JOP_MUL] = "*", [JOP_DIV] = "/",
                                         [JOP_FLOORDIV] = "//", [JOP_MOD] = "%", [JOP_POW] = "**" };

    if (!jinja_is_number(a) || !jinja_is_number(b)) return bad_operands(line, names[op], a, b);
    if (a.type != JV_FLOAT && b.type != JV_FLOAT && op != JOP_DIV) {
        int64_t x = a.type == JV_BOOL ? a.u.b : a.u.i, y = b.type == JV_BOOL ? b.u.b : b.u.i, r = 0;
        bool ovf = false;
        switch (op) {
        case JOP_ADD: ovf = __builtin_add_overflow(x, y, &r); break;
        case JOP_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
        case JOP_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
        case JOP_FLOORDIV:
        case JOP_MOD:
            if (y == 0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "integer division or modulo by zero");
            if (y == -1) { /* avoids INT64_MIN / -1 */
                r = op == JOP_MOD ? 0 : -x;
                ovf = op == JOP_FLOORDIV && x == INT64_MIN;
                break;
            }
            if (op == JOP_FLOORDIV) {
                r = x / y;
                if (x % y != 0 && ((x < 0) != (y < 0))) r--;
            } else {
                r = x % y;
                if (r != 0 && ((r < 0) != (y < 0))) r += y;
            }
            break;
        case JOP_POW:
            if (y < 0) {
                *out = jv_float(pow((double)x, (double)y));
                return CLLM_OK;
            }
            {
                status_t st = int_pow(line, x, y, &r);
                if (st != CLLM_OK) return st;
            }
            break;
        }
        if (ovf) return jinja_fail(line, CLLM_ERR_RANGE, "integer overflow");
        *out = jv_int(r);
        return CLLM_OK;
    }
    {
        double x = jinja_as_double(a), y = jinja_as_double(b), r = 0.0;
        switch (op) {
        case JOP_ADD: r = x + y; break;
        case JOP_SUB: r = x - y; break;
        case JOP_MUL: r = x * y; break;
        case JOP_DIV:
        case JOP_FLOORDIV:
        case JOP_MOD:
            if (y == 0.0) return jinja_fail(line, CLLM_ERR_INVALID_ARG, "division by zero");
            if (op == JOP_DIV) r = x / y;
            else if (op == JOP_FLOORDIV) r = floor(x / y);
            else {
                r = fmod(x, y);
                if (r != 0.0 && ((r < 0) != (y < 0))) r += y;
            }
            break;
        case JOP_POW:
            if (x < 0 && y != floor(y))
                return jinja_fail(line, CLLM_ERR_INVALID_ARG, "fractional power of a negative number");
            r = pow(x, y);
            break;
        }
        *out = jv_float(r);
        return CLLM_OK;
    }
}

static status_t repeat(eval_t *ev, int line, jinja_value_t seq, int64_t times, jinja_value_t *out)
{
    size_t unit = seq.type == JV_STRING ? seq.u.s.n : seq.u.list->n;
    size_t k = times > 0 && unit > 0 ? (size_t)times : 0; /* '' * 10**9 is '' at once */
    status_t st;

    if (unit && k > JINJA_MAX_OUTPUT / (unit * (seq.type == JV_STRING ? 1 : sizeof(jinja_value_t))))
        return jinja_fail(line, CLLM_ERR_RANGE, "repetition result larger than %u MiB", JINJA_MAX_OUTPUT >> 20);
    if ((st = jinja_rt_charge(ev->rt, line, unit * k / 16)) != CLLM_OK) return st;
    if (seq.type == JV_STRING) {
        char *p = jinja_arena_alloc(ev->rt->arena, unit * k + 1);
        if (!p) return jinja_fail_alloc(ev->rt, line);
        for (size_t i = 0; i < k; i++) memcpy(p + i * unit, seq.u.s.p, unit);
        *out = jv_str(p, unit * k);
    } else {
        jinja_list_t *l = jinja_list_new(ev->rt->arena, unit * k);
        if (!l) return jinja_fail_alloc(ev->rt, line);
        for (size_t i = 0; i < k; i++)
            memcpy(l->items + i * unit, seq.u.list->items, unit * sizeof(jinja_value_t));
        l->n = unit * k;
        *out = jv_list(l);
    }
    return CLLM_OK;
}

static status_t arith(eval_t *ev, int line, int op, jinja_value_t a, jinja_value_t b, jinja_value_t *out)
{
    if (op == JOP_ADD && a.type == JV_STRING && b.type == JV_STRING) {
        char *p = NULL;
        if (a.u.s.n + b.u.s.n > JINJA_MAX_OUTPUT)
            return jinja_fail(line, CLLM_ERR_RANGE, "string longer than %u MiB", JINJA_MAX_OUTPUT >> 20);
        if (!(p = jinja_arena_alloc(ev->rt->arena, a.u.s.n + b.u.s.n + 1))) return jinja_fail_alloc(ev->rt, line);
        if (a.u.s.n) memcpy(p, a.u.s.p, a.u.s.n);
        if (b.u.s.n) memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
        *out = jv_str(p, a.u.s.n + b.u.s.n);
        return CLLM_OK;
    }
    if (op == JOP_ADD && a.type == JV_LIST && b.type == JV_LIST) {
        size_t na = a.u.list->n, nb = b.u.list->n;
        jinja_list_t *l = jinja_list_new(ev->rt->arena, na + nb);
        status_t st = jinja_rt_charge(ev->rt, line, (na + nb) / 16);
        if (st != CLLM_OK) return st;
        if (!l) return jinja_fail_alloc(ev->rt, line);
        if (na) memcpy(l->items, a.u.list->items, na * sizeof(jinja_value_t));
        if (nb) memcpy(l->items + na, b.u.list->items, nb * sizeof(jinja_value_t));
        l->n = na + nb;
        l->tuple = a.u.list->tuple && b.u.list->tuple;
        *out = jv_list(l);
        return CLLM_OK;
    }
    if (op == JOP_MUL) {
        bool a_seq = a.type == JV_STRING || a.type == JV_LIST, b_seq = b.type == JV_STRING || b.type == JV_LIST;
        bool a_int = a.type == JV_INT || a.type == JV_BOOL, b_int = b.type == JV_INT || b.type == JV_BOOL;
        if (a_seq && b_int) return repeat(ev, line, a, b.type == JV_BOOL ? b.u.b : b.u.i, out);
        if (b_seq && a_int) return repeat(ev, line, b, a.type == JV_BOOL ? a.u.b : a.u.i, out);
    }
    if (op == JOP_MOD && a.type == JV_STRING)
        return jinja_fail(line, CLLM_ERR_UNSUPPORTED, "printf-style '%%' string formatting is not supported");
    return num_op(line, op, a, b, out);
}

static status_t binary(eval_t *ev, const jinja_node_t *n, jinja_value_t *out)
{
    jinja_value_t a = jv_undefined(), b = jv_undefined();
    status_t st;
    int c;
    bool r = false;

    if ((st = eval(ev, n->a, &a)) != CLLM_OK) return st;
    if (n->op == JOP_AND || n->op == JOP_OR) { /* short-circuit, returning an operand as Python */
        if (jinja_truthy(a) == (n->op == JOP_OR)) {
            *out = a;
            return CLLM_OK;
        }
        return eval(ev, n->b, out);
    }
    if ((st = eval(ev, n->b, &b)) != CLLM_OK) return st;
    /* comparisons, `in` and concatenation scan their operands */
    if ((st = jinja_rt_charge(ev->rt, n->line, jinja_value_cost(a) + jinja_value_cost(b))) != CLLM_OK) return st;
    switch (n->op) {
    case JOP_EQ: *out = jv_bool(jinja_equal(a, b)); return CLLM_OK;
    case JOP_NE: *out = jv_bool(!jinja_equal(a, b)); return CLLM_OK;
    case JOP_LT:
    case JOP_LE:
    case JOP_GT:
    case JOP_GE:
        if ((st = jinja_compare(a, b, n->line, &c)) != CLLM_OK) return st;
        *out = jv_bool(n->op == JOP_LT ? c < 0 : n->op == JOP_LE ? c <= 0 : n->op == JOP_GT ? c > 0 : c >= 0);
        return CLLM_OK;
    case JOP_IN:
    case JOP_NOT_IN:
        if ((st = jinja_contains(b, a, n->line, &r)) != CLLM_OK) return st;
        *out = jv_bool(n->op == JOP_IN ? r : !r);
        return CLLM_OK;
    case JOP_CONCAT: {
        jinja_buf_t buf;
        jinja_buf_init(&buf);
        st = jinja_write_str(&buf, a, n->line);
        if (st == CLLM_OK) st = jinja_write_str(&buf, b, n->line);
        if (st == CLLM_OK) st = jinja_buf_to_value(ev->rt, n->line, &buf, out);
        jinja_buf_free(&buf);
        return st;
    }
    default:
        if (a.type == JV_UNDEFINED || b.type == JV_UNDEFINED)
            return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "arithmetic on an undefined value");
        return arith(ev, n->line, n->op, a, b, out);
    }
}

static status_t unary(eval_t *ev, const jinja_node_t *n, jinja_value_t *out)
{
    jinja_value_t a = jv_undefined();
    status_t st = eval(ev, n->a, &a);

    if (st != CLLM_OK) return st;
    if (n->op == JOP_NOT) {
        *out = jv_bool(!jinja_truthy(a));
    } else if (a.type == JV_INT || a.type == JV_BOOL) {
        int64_t i = a.type == JV_BOOL ? a.u.b : a.u.i;
        if (n->op == JOP_NEG && i == INT64_MIN) return jinja_fail(n->line, CLLM_ERR_RANGE, "integer overflow");
        *out = jv_int(n->op == JOP_NEG ? -i : i);
    } else if (a.type == JV_FLOAT) {
        *out = jv_float(n->op == JOP_NEG ? -a.u.f : a.u.f);
    } else {
        return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "bad operand for unary %c: %s", n->op == JOP_NEG ? '-' : '+',
                          jinja_type_name(a));
    }
    return CLLM_OK;
}

/* ---- calls ---- */

/* Evaluates the arguments of a call, filter or test node into args (storage: stack or arena). */
static status_t eval_args(eval_t *ev, const jinja_node_t *n, jinja_value_t *stack, jinja_args_t *args)
{
    size_t total = n->n_list + n->n_list2;
    jinja_value_t *vals = stack;
    status_t st;

    if (total > ARGS_ON_STACK && !(vals = jinja_arena_alloc(ev->rt->arena, total * sizeof(*vals))))
        return jinja_fail_alloc(ev->rt, n->line);
    for (size_t i = 0; i < n->n_list; i++)
        if ((st = eval(ev, n->list[i], &vals[i])) != CLLM_OK) return st;
    for (size_t i = 0; i < n->n_list2; i++)
        if ((st = eval(ev, n->list2[i], &vals[n->n_list + i])) != CLLM_OK) return st;
    args->pos = vals;
    args->n_pos = n->n_list;
    args->kw_names = n->names;
    args->kw_vals = vals + n->n_list;
    args->n_kw = n->n_list2;
    return CLLM_OK;
}

static status_t exec_body(eval_t *ev, const jinja_node_t *const *list, size_t n);

/* Runs body in frame f with its own output buffer; the text becomes *out. */
static status_t capture(eval_t *ev, frame_t *f, const jinja_node_t *const *body, size_t n, int line, jinja_value_t *out)
{
    jinja_buf_t buf, *saved_out = ev->out;
    frame_t *saved_scope = ev->scope;
    status_t st;

    jinja_buf_init(&buf);
    ev->out = &buf;
    ev->scope = f;
    st = exec_body(ev, body, n);
    ev->out = saved_out;
    ev->scope = saved_scope;
    if (st == CLLM_OK) st = jinja_buf_to_value(ev->rt, line, &buf, out);
    jinja_buf_free(&buf);
    return st;
}

static bool same_name(jinja_str_t a, jinja_str_t b)
{
    return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

static status_t call_macro(eval_t *ev, int line, const jinja_node_t *m, const jinja_args_t *args, jinja_value_t *out)
{
    frame_t *f, *saved = ev->scope;
    status_t st = CLLM_OK;

    if (ev->rt->call_depth >= JINJA_MAX_CALL_DEPTH)
        return jinja_fail(line, CLLM_ERR_RANGE, "macro calls nested more than %d deep", JINJA_MAX_CALL_DEPTH);
    if (args->n_pos > m->n_names)
        return jinja_fail(line, CLLM_ERR_INVALID_ARG, "macro '%.*s' takes %zu arguments, %zu given", (int)m->name.n,
                          m->name.p, m->n_names, args->n_pos);
    for (size_t k = 0; k < args->n_kw; k++) {
        bool known = false;
        for (size_t i = 0; i < m->n_names; i++) known |= same_name(m->names[i], args->kw_names[k]);
        if (!known)
            return jinja_fail(line, CLLM_ERR_INVALID_ARG, "macro '%.*s' has no parameter '%.*s'", (int)m->name.n,
                              m->name.p, (int)args->kw_names[k].n, args->kw_names[k].p);
    }
    if (!(f = frame_new(ev, ev->global, m->n_names + 1))) return jinja_fail_alloc(ev->rt, line);
    ev->scope = f; /* defaults see the parameters before them */
    for (size_t i = 0; i < m->n_names && st == CLLM_OK; i++) {
        jinja_value_t v = jv_undefined();
        bool given = i < args->n_pos;
        if (given) v = args->pos[i];
        for (size_t k = 0; k < args->n_kw && !given; k++)
            if (same_name(args->kw_names[k], m->names[i])) {
                v = args->kw_vals[k];
                given = true;
            }
        if (!given && m->list2[i]) st = eval(ev, m->list2[i], &v);
        if (st == CLLM_OK) st = frame_set(ev, f, m->names[i], v, line);
    }
    ev->scope = saved;
    if (st != CLLM_OK) return st;
    ev->rt->call_depth++;
    st = capture(ev, f, m->list, m->n_list, line, out);
    ev->rt->call_depth--;
    return st;
}

static status_t call(eval_t *ev, const jinja_node_t *n, jinja_value_t *out)
{
    const jinja_node_t *callee = n->a;
    jinja_value_t stack[ARGS_ON_STACK], fn = jv_undefined(), obj = jv_undefined();
    jinja_args_t args = { 0 };
    status_t st;

    if (callee->kind == JE_GETATTR) { /* obj.method(...) */
        if ((st = eval(ev, callee->a, &obj)) != CLLM_OK) return st;
        fn = get_attr(obj, callee->name);
        if ((st = eval_args(ev, n, stack, &args)) != CLLM_OK) return st;
        if (fn.type == JV_MACRO) return call_macro(ev, n->line, fn.u.macro, &args, out);
        if (fn.type == JV_FUNC) return jinja_func_call(ev->rt, n->line, fn.u.func, &args, out);
        return jinja_method_call(ev->rt, n->line, obj, callee->name, &args, out);
    }
    if ((st = eval(ev, callee, &fn)) != CLLM_OK) return st;
    if ((st = eval_args(ev, n, stack, &args)) != CLLM_OK) return st;
    if (fn.type == JV_FUNC) return jinja_func_call(ev->rt, n->line, fn.u.func, &args, out);
    if (fn.type == JV_MACRO) return call_macro(ev, n->line, fn.u.macro, &args, out);
    if (fn.type == JV_UNDEFINED && callee->kind == JE_NAME)
        return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "'%.*s' is undefined", (int)callee->name.n, callee->name.p);
    return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "a %s is not callable", jinja_type_name(fn));
}

/* ---- expressions ---- */

/* Jinja's default Undefined: reading an attribute, item or slice of it is an error. */
static status_t undefined_access(const jinja_node_t *n)
{
    const jinja_node_t *obj = n->a;
    if (obj->kind == JE_NAME)
        return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "'%.*s' is undefined", (int)obj->name.n, obj->name.p);
    if (obj->kind == JE_GETATTR)
        return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "'%.*s' is undefined (no such attribute or key)",
                          (int)obj->name.n, obj->name.p);
    return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "indexing an undefined value (no such element or key)");
}

static status_t eval_inner(eval_t *ev, const jinja_node_t *n, jinja_value_t *out)
{
    jinja_value_t a, b, stack[ARGS_ON_STACK];
    jinja_args_t args = { 0 };
    status_t st;

    switch (n->kind) {
    case JE_LITERAL: *out = n->lit; return CLLM_OK;
    case JE_NAME: *out = lookup(ev, n->name); return CLLM_OK;
    case JE_LIST: {
        jinja_list_t *l = jinja_list_new(ev->rt->arena, n->n_list);
        if (!l) return jinja_fail_alloc(ev->rt, n->line);
        for (size_t i = 0; i < n->n_list; i++)
            if ((st = eval(ev, n->list[i], &l->items[i])) != CLLM_OK) return st;
        l->n = n->n_list;
        l->tuple = n->op == 1;
        *out = jv_list(l);
        return CLLM_OK;
    }
    case JE_DICT: {
        jinja_dict_t *d = jinja_dict_new(ev->rt->arena, n->n_list);
        if (!d) return jinja_fail_alloc(ev->rt, n->line);
        for (size_t i = 0; i < n->n_list; i++) {
            if ((st = eval(ev, n->list[i], &a)) != CLLM_OK || (st = eval(ev, n->list2[i], &b)) != CLLM_OK) return st;
            if (a.type != JV_STRING)
                return jinja_fail(n->line, CLLM_ERR_UNSUPPORTED, "dict keys must be strings, not a %s",
                                  jinja_type_name(a));
            if (!jinja_dict_set(ev->rt->arena, d, a.u.s, b)) return jinja_fail_alloc(ev->rt, n->line);
        }
        *out = jv_dict(d);
        return CLLM_OK;
    }
    case JE_GETATTR:
        if ((st = eval(ev, n->a, &a)) != CLLM_OK) return st;
        if (a.type == JV_UNDEFINED) return undefined_access(n);
        if ((st = jinja_rt_charge(ev->rt, n->line, jinja_value_cost(a))) != CLLM_OK) return st;
        *out = get_attr(a, n->name);
        return CLLM_OK;
    case JE_GETITEM:
        if ((st = eval(ev, n->a, &a)) != CLLM_OK || (st = eval(ev, n->b, &b)) != CLLM_OK) return st;
        if (a.type == JV_UNDEFINED) return undefined_access(n);
        if (a.type != JV_LIST && (st = jinja_rt_charge(ev->rt, n->line, jinja_value_cost(a))) != CLLM_OK) return st;
        *out = get_item(a, b);
        return CLLM_OK;
    case JE_SLICE:
        if ((st = eval(ev, n->a, &a)) != CLLM_OK) return st;
        if (a.type == JV_UNDEFINED) return undefined_access(n);
        if (a.type == JV_STRING && (st = jinja_rt_charge(ev->rt, n->line, jinja_value_cost(a))) != CLLM_OK) return st;
        return slice(ev, n, a, out);
    case JE_CALL: return call(ev, n, out);
    case JE_FILTER:
        if ((st = eval(ev, n->a, &a)) != CLLM_OK || (st = eval_args(ev, n, stack, &args)) != CLLM_OK) return st;
        return jinja_filter_apply(ev->rt, n->line, n->name, a, &args, out);
    case JE_TEST: {
        bool r = false;
        if ((st = eval(ev, n->a, &a)) != CLLM_OK || (st = eval_args(ev, n, stack, &args)) != CLLM_OK) return st;
        if ((st = jinja_test_apply(ev->rt, n->line, n->name, a, &args, &r)) != CLLM_OK) return st;
        *out = jv_bool(n->op ? !r : r);
        return CLLM_OK;
    }
    case JE_UNARY: return unary(ev, n, out);
    case JE_BINARY: return binary(ev, n, out);
    case JE_COND:
        if ((st = eval(ev, n->b, &a)) != CLLM_OK) return st;
        if (jinja_truthy(a)) return eval(ev, n->a, out);
        if (n->c) return eval(ev, n->c, out);
        *out = jv_undefined();
        return CLLM_OK;
    default: return jinja_fail(n->line, CLLM_ERR_INTERNAL, "statement used as an expression");
    }
}

static status_t eval(eval_t *ev, const jinja_node_t *n, jinja_value_t *out)
{
    status_t st;
    if (++ev->rt->depth > JINJA_MAX_EVAL_DEPTH) {
        ev->rt->depth--;
        return jinja_fail(n->line, CLLM_ERR_RANGE, "expression nested more than %d levels deep", JINJA_MAX_EVAL_DEPTH);
    }
    st = jinja_rt_charge(ev->rt, n->line, 1);
    if (st == CLLM_OK) st = eval_inner(ev, n, out);
    ev->rt->depth--;
    return st;
}

/* ---- statements ---- */

static status_t bind_targets(eval_t *ev, frame_t *f, const jinja_node_t *n, jinja_value_t v)
{
    const jinja_list_t *parts = NULL;
    status_t st;

    if (n->n_names == 1) return frame_set(ev, f, n->names[0], v, n->line);
    if ((st = jinja_iterate(ev->rt, n->line, v, &parts)) != CLLM_OK) return st;
    if (parts->n != n->n_names)
        return jinja_fail(n->line, CLLM_ERR_INVALID_ARG, "cannot unpack %zu values into %zu names", parts->n,
                          n->n_names);
    for (size_t i = 0; i < n->n_names; i++)
        if ((st = frame_set(ev, f, n->names[i], parts->items[i], n->line)) != CLLM_OK) return st;
    return CLLM_OK;
}

static status_t exec_for(eval_t *ev, const jinja_node_t *n)
{
    jinja_value_t iter = jv_undefined(), keep = jv_undefined();
    const jinja_list_t *items = NULL;
    jinja_loop_t *loop = NULL;
    frame_t *f, *saved = ev->scope;
    jinja_value_t loop_v = jv_undefined();
    static const jinja_str_t loop_name = { "loop", 4 };
    status_t st;

    if ((st = eval(ev, n->a, &iter)) != CLLM_OK) return st;
    if ((st = jinja_iterate(ev->rt, n->line, iter, &items)) != CLLM_OK) return st;
    if (!(f = frame_new(ev, ev->scope, n->n_names + 2))) return jinja_fail_alloc(ev->rt, n->line);
    if (n->b) { /* `for x in xs if cond`: filter first, so loop.length counts what is kept */
        jinja_list_t *kept = jinja_list_new(ev->rt->arena, items->n);
        if (!kept) return jinja_fail_alloc(ev->rt, n->line);
        for (size_t i = 0; i < items->n; i++) {
            if (++ev->rt->iterations > JINJA_MAX_ITERATIONS)
                return jinja_fail(n->line, CLLM_ERR_RANGE, "more than %d loop iterations", JINJA_MAX_ITERATIONS);
            f->vars->n = 0;
            if ((st = bind_targets(ev, f, n, items->items[i])) != CLLM_OK) return st;
            ev->scope = f;
            st = eval(ev, n->b, &keep);
            ev->scope = saved;
            if (st != CLLM_OK) return st;
            if (jinja_truthy(keep)) kept->items[kept->n++] = items->items[i];
        }
        items = kept;
    }
    if (items->n == 0) return exec_body(ev, n->list2, n->n_list2);
    if (!(loop = jinja_arena_alloc(ev->rt->arena, sizeof(*loop)))) return jinja_fail_alloc(ev->rt, n->line);
    loop->length = (int64_t)items->n;
    loop->items = items;
    loop_v.type = JV_LOOP;
    loop_v.u.loop = loop;
    for (size_t i = 0; i < items->n; i++) {
        if (++ev->rt->iterations > JINJA_MAX_ITERATIONS)
            return jinja_fail(n->line, CLLM_ERR_RANGE, "more than %d loop iterations", JINJA_MAX_ITERATIONS);
        loop->index0 = (int64_t)i;
        f->vars->n = 0; /* a fresh frame per iteration, as Jinja: sets do not survive it */
        if ((st = bind_targets(ev, f, n, items->items[i])) != CLLM_OK) return st;
        if ((st = frame_set(ev, f, loop_name, loop_v, n->line)) != CLLM_OK) return st;
        ev->scope = f;
        st = exec_body(ev, n->list, n->n_list);
        ev->scope = saved;
        if (st != CLLM_OK) return st;
        if (ev->loop_ctl == JN_BREAK) {
            ev->loop_ctl = 0;
            break;
        }
        ev->loop_ctl = 0;
    }
    return CLLM_OK;
}

static status_t exec_set(eval_t *ev, const jinja_node_t *n)
{
    jinja_value_t v = jv_undefined(), ns;
    status_t st;

    if (n->kind == JN_SET_BLOCK) {
        if ((st = capture(ev, ev->scope, n->list, n->n_list, n->line, &v)) != CLLM_OK) return st;
        return frame_set(ev, ev->scope, n->names[0], v, n->line);
    }
    if ((st = eval(ev, n->a, &v)) != CLLM_OK) return st;
    if (n->name.n) { /* set ns.attr = v */
        ns = lookup(ev, n->names[0]);
        if (ns.type != JV_NAMESPACE)
            return jinja_fail(n->line, CLLM_ERR_INVALID_ARG,
                              "cannot set an attribute of '%.*s' (a %s, not a namespace)", (int)n->names[0].n,
                              n->names[0].p, jinja_type_name(ns));
        if (!jinja_dict_set(ev->rt->arena, ns.u.dict, n->name, v)) return jinja_fail_alloc(ev->rt, n->line);
        return CLLM_OK;
    }
    return bind_targets(ev, ev->scope, n, v);
}

static status_t exec_inner(eval_t *ev, const jinja_node_t *n)
{
    jinja_value_t v = jv_undefined();
    status_t st;

    switch (n->kind) {
    case JN_BODY: return exec_body(ev, n->list, n->n_list);
    case JN_TEXT:
        jinja_buf_put(ev->out, n->name.p, n->name.n);
        return ev->out->failed ? jinja_buf_error(ev->out, n->line) : CLLM_OK;
    case JN_OUTPUT:
        if ((st = eval(ev, n->a, &v)) != CLLM_OK || (st = jinja_write_str(ev->out, v, n->line)) != CLLM_OK) return st;
        return ev->out->failed ? jinja_buf_error(ev->out, n->line) : CLLM_OK;
    case JN_IF:
        if ((st = eval(ev, n->a, &v)) != CLLM_OK) return st;
        return jinja_truthy(v) ? exec_body(ev, n->list, n->n_list) : exec_body(ev, n->list2, n->n_list2);
    case JN_FOR: return exec_for(ev, n);
    case JN_SET:
    case JN_SET_BLOCK: return exec_set(ev, n);
    case JN_MACRO:
        v = jv_undefined();
        v.type = JV_MACRO;
        v.u.macro = n;
        return frame_set(ev, ev->scope, n->name, v, n->line);
    case JN_BREAK:
    case JN_CONTINUE: ev->loop_ctl = (int)n->kind; return CLLM_OK;
    case JN_DO: return eval(ev, n->a, &v);
    default: return jinja_fail(n->line, CLLM_ERR_INTERNAL, "expression used as a statement");
    }
}

static status_t exec(eval_t *ev, const jinja_node_t *n)
{
    status_t st;
    if (++ev->rt->depth > JINJA_MAX_EVAL_DEPTH) {
        ev->rt->depth--;
        return jinja_fail(n->line, CLLM_ERR_RANGE, "template nested more than %d levels deep", JINJA_MAX_EVAL_DEPTH);
    }
    st = jinja_rt_charge(ev->rt, n->line, 1);
    if (st == CLLM_OK) st = exec_inner(ev, n);
    ev->rt->depth--;
    return st;
}

static status_t exec_body(eval_t *ev, const jinja_node_t *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        status_t st = exec(ev, list[i]);
        if (st != CLLM_OK) return st;
        if (ev->loop_ctl) return CLLM_OK;
    }
    return CLLM_OK;
}

status_t jinja_eval_render(const jinja_node_t *root, jinja_rt_t *rt, const jinja_dict_t *globals, char **out,
                           size_t *out_len)
{
    static const struct {
        const char *name;
        jinja_func_t f;
    } funcs[] = { { "raise_exception", JINJA_FUNC_RAISE_EXCEPTION },
                  { "range", JINJA_FUNC_RANGE },
                  { "namespace", JINJA_FUNC_NAMESPACE },
                  { "strftime_now", JINJA_FUNC_STRFTIME_NOW },
                  { "dict", JINJA_FUNC_DICT } };
    eval_t ev;
    frame_t *builtins = NULL;
    jinja_buf_t buf;
    status_t st;

    *out = NULL;
    *out_len = 0;
    memset(&ev, 0, sizeof(ev));
    ev.rt = rt;
    if (!(builtins = frame_new(&ev, NULL, 8)) || !(ev.global = frame_new(&ev, builtins, globals ? globals->n + 8 : 8)))
        return jinja_fail_alloc(rt, 1);
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
        jinja_value_t v = jv_undefined();
        v.type = JV_FUNC;
        v.u.func = funcs[i].f;
        if (!jinja_dict_append(rt->arena, builtins->vars, (jinja_str_t){ funcs[i].name, strlen(funcs[i].name) }, v))
            return jinja_fail_alloc(rt, 1);
    }
    for (size_t i = 0; globals && i < globals->n; i++) /* a copy: top-level sets never touch the caller's dict */
        if (!jinja_dict_append(rt->arena, ev.global->vars, globals->keys[i], globals->vals[i]))
            return jinja_fail_alloc(rt, 1);
    ev.scope = ev.global;
    jinja_buf_init(&buf);
    ev.out = &buf;
    st = exec(&ev, root);
    if (st == CLLM_OK && buf.failed) st = jinja_buf_error(&buf, 1);
    if (st == CLLM_OK && !buf.p && !(buf.p = calloc(1, 1))) /* nothing rendered: still a string */
        st = jinja_fail(1, CLLM_ERR_NOMEM, "out of memory");
    if (st != CLLM_OK) {
        jinja_buf_free(&buf);
        return st;
    }
    *out = buf.p;
    *out_len = buf.n;
    return CLLM_OK;
}

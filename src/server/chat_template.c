/* chat_template.c: the chat-template API over the Jinja interpreter (see chat_template.h).
 *
 * A chat_template_t owns one arena holding the normalised source, its tokens and the parse
 * tree; nothing in it changes after chat_template_create(). A render builds its variables
 * (messages, tokens, tools, extra JSON) in a fresh arena, runs jinja_eval_render() and frees
 * the arena, so renders share no mutable state.
 * Invariants: JSON inputs are converted to values at most JINJA_MAX_SERIAL_DEPTH deep and
 * their strings copied into the render arena; the caller's strings (role, content, tokens)
 * are referenced, not copied, as they outlive the render. */
#include "server/chat_template.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/jinja_eval.h"
#include "server/jinja_lexer.h"
#include "server/jinja_parser.h"
#include "server/jinja_value.h"

/* Variables of extra_json: every name lookup may scan them, so keep them few. */
#define MAX_EXTRA_VARS 1024

struct chat_template {
    jinja_arena_t *arena;     /* source, tokens, parse tree */
    const jinja_node_t *root; /* JN_BODY */
};

status_t chat_template_create(const char *source, size_t len, chat_template_t **out)
{
    chat_template_t *t;
    jinja_token_t *toks;
    size_t n_toks;
    status_t st;

    if (!out || (!source && len)) return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: NULL argument");
    *out = NULL;
    if (len > JINJA_MAX_SOURCE)
        return cllm_error(CLLM_ERR_RANGE, "chat_template: template larger than %u MiB", JINJA_MAX_SOURCE >> 20);
    if (!(t = calloc(1, sizeof(*t)))) return cllm_error(CLLM_ERR_NOMEM, "chat_template: out of memory");
    if ((st = jinja_arena_create(JINJA_MAX_ARENA, &t->arena)) != CLLM_OK) goto out_free;
    if ((st = jinja_lex(source ? source : "", len, t->arena, &toks, &n_toks)) != CLLM_OK) goto out_free;
    if ((st = jinja_parse(toks, n_toks, t->arena, &t->root)) != CLLM_OK) goto out_free;
    *out = t;
    return CLLM_OK;

out_free:
    chat_template_destroy(t);
    return st;
}

void chat_template_destroy(chat_template_t *t)
{
    if (!t) return;
    jinja_arena_destroy(t->arena);
    free(t);
}

/* ---- JSON -> values ---- */

static status_t from_json(jinja_rt_t *rt, const json_t *j, int depth, jinja_value_t *out)
{
    status_t st;

    if (depth > JINJA_MAX_SERIAL_DEPTH)
        return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: JSON nested more than %d levels",
                          JINJA_MAX_SERIAL_DEPTH);
    switch (json_typeof(j)) {
    case JSON_NULL: *out = jv_none(); return CLLM_OK;
    case JSON_TRUE: *out = jv_bool(true); return CLLM_OK;
    case JSON_FALSE: *out = jv_bool(false); return CLLM_OK;
    case JSON_INTEGER: *out = jv_int((int64_t)json_integer_value(j)); return CLLM_OK;
    case JSON_REAL: *out = jv_float(json_real_value(j)); return CLLM_OK;
    case JSON_STRING:
        if (!jv_str_copy(rt->arena, json_string_value(j), json_string_length(j), out)) return jinja_fail_alloc(rt, 0);
        return CLLM_OK;
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        jinja_list_t *l = jinja_list_new(rt->arena, n);
        if (!l) return jinja_fail_alloc(rt, 0);
        for (size_t i = 0; i < n; i++)
            if ((st = from_json(rt, json_array_get(j, i), depth + 1, &l->items[i])) != CLLM_OK) return st;
        l->n = n;
        *out = jv_list(l);
        return CLLM_OK;
    }
    case JSON_OBJECT: {
        jinja_dict_t *d = jinja_dict_new(rt->arena, json_object_size(j));
        const char *key;
        json_t *val;
        if (!d) return jinja_fail_alloc(rt, 0);
        json_object_foreach((json_t *)j, key, val) {
            jinja_value_t k = jv_undefined(), v = jv_undefined();
            if (!jv_str_copy(rt->arena, key, strlen(key), &k)) return jinja_fail_alloc(rt, 0);
            if ((st = from_json(rt, val, depth + 1, &v)) != CLLM_OK) return st;
            if (!jinja_dict_append(rt->arena, d, k.u.s, v)) return jinja_fail_alloc(rt, 0); /* keys are unique */
        }
        *out = jv_dict(d);
        return CLLM_OK;
    }
    }
    return cllm_error(CLLM_ERR_INTERNAL, "chat_template: unknown JSON type");
}

/* Parses text (an array when want_array, else an object) into a value. */
static status_t parse_json(jinja_rt_t *rt, const char *what, const char *text, bool want_array, jinja_value_t *out)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    status_t st;

    if (!j) return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: %s: bad JSON: %s", what, err.text);
    if (want_array ? !json_is_array(j) : !json_is_object(j)) {
        json_decref(j);
        return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: %s must be a JSON %s", what,
                          want_array ? "array" : "object");
    }
    st = from_json(rt, j, 0, out);
    json_decref(j);
    return st;
}

static bool put(jinja_rt_t *rt, jinja_dict_t *d, const char *key, jinja_value_t v)
{
    return jinja_dict_set(rt->arena, d, (jinja_str_t){ key, strlen(key) }, v);
}

static status_t build_messages(jinja_rt_t *rt, const chat_message_t *msgs, size_t n_msgs, jinja_value_t *out)
{
    jinja_list_t *l = jinja_list_new(rt->arena, n_msgs);
    status_t st;

    if (!l) return jinja_fail_alloc(rt, 0);
    for (size_t i = 0; i < n_msgs; i++) {
        const chat_message_t *m = &msgs[i];
        jinja_dict_t *d = jinja_dict_new(rt->arena, 5);
        if (!m->role) return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: message %zu has no role", i);
        if (!d || !put(rt, d, "role", jv_cstr(m->role)) ||
            !put(rt, d, "content", m->content ? jv_cstr(m->content) : jv_none()))
            return jinja_fail_alloc(rt, 0);
        if (m->tool_calls_json) {
            jinja_value_t calls = jv_undefined();
            if ((st = parse_json(rt, "tool_calls_json", m->tool_calls_json, true, &calls)) != CLLM_OK) return st;
            if (!put(rt, d, "tool_calls", calls)) return jinja_fail_alloc(rt, 0);
        }
        if (m->tool_call_id && !put(rt, d, "tool_call_id", jv_cstr(m->tool_call_id))) return jinja_fail_alloc(rt, 0);
        if (m->name && !put(rt, d, "name", jv_cstr(m->name))) return jinja_fail_alloc(rt, 0);
        l->items[l->n++] = jv_dict(d);
    }
    *out = jv_list(l);
    return CLLM_OK;
}

static status_t build_globals(jinja_rt_t *rt, const chat_message_t *msgs, size_t n_msgs,
                              const chat_template_vars_t *vars, jinja_dict_t **out)
{
    jinja_dict_t *g = jinja_dict_new(rt->arena, 16);
    jinja_value_t v = jv_undefined();
    status_t st;

    if (!g) return jinja_fail_alloc(rt, 0);
    if ((st = build_messages(rt, msgs, n_msgs, &v)) != CLLM_OK) return st;
    if (!put(rt, g, "messages", v) || !put(rt, g, "bos_token", jv_cstr(vars->bos_token ? vars->bos_token : "")) ||
        !put(rt, g, "eos_token", jv_cstr(vars->eos_token ? vars->eos_token : "")) ||
        !put(rt, g, "add_generation_prompt", jv_bool(vars->add_generation_prompt)) ||
        !put(rt, g, "documents", jv_none()))
        return jinja_fail_alloc(rt, 0);
    v = jv_none();
    if (vars->tools_json && (st = parse_json(rt, "tools_json", vars->tools_json, true, &v)) != CLLM_OK) return st;
    if (!put(rt, g, "tools", v)) return jinja_fail_alloc(rt, 0);
    if (vars->extra_json) {
        const jinja_dict_t *extra = NULL;
        if ((st = parse_json(rt, "extra_json", vars->extra_json, false, &v)) != CLLM_OK) return st;
        extra = v.u.dict;
        if (extra->n > MAX_EXTRA_VARS)
            return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: extra_json has more than %d variables",
                              MAX_EXTRA_VARS);
        for (size_t i = 0; i < extra->n; i++)
            if (!jinja_dict_set(rt->arena, g, extra->keys[i], extra->vals[i])) return jinja_fail_alloc(rt, 0);
    }
    *out = g;
    return CLLM_OK;
}

status_t chat_template_render(const chat_template_t *t, const chat_message_t *msgs, size_t n_msgs,
                              const chat_template_vars_t *vars, char **out, size_t *out_len)
{
    static const chat_template_vars_t no_vars = { NULL, NULL, false, NULL, NULL, 0 };
    jinja_rt_t rt;
    jinja_dict_t *globals = NULL;
    size_t len = 0;
    status_t st;

    if (!out || !t || (!msgs && n_msgs)) return cllm_error(CLLM_ERR_INVALID_ARG, "chat_template: NULL argument");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!vars) vars = &no_vars;
    memset(&rt, 0, sizeof(rt));
    rt.now = vars->now ? vars->now : (int64_t)time(NULL);
    if ((st = jinja_arena_create(JINJA_MAX_ARENA, &rt.arena)) != CLLM_OK) return st;
    st = build_globals(&rt, msgs, n_msgs, vars, &globals);
    if (st == CLLM_OK) st = jinja_eval_render(t->root, &rt, globals, out, &len);
    jinja_arena_destroy(rt.arena);
    if (st == CLLM_OK && out_len) *out_len = len;
    return st;
}

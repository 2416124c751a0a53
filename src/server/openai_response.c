/* openai_response.c: building the JSON answers of the OpenAI-compatible API (openai_response.h).
 *
 * Every builder returns a new json_t (or NULL when out of memory) and steals the json_t
 * arguments it is given, so a caller never leaks on an error path. Token pieces come from the
 * tokenizer with special tokens rendered (as vLLM shows them in logprobs). */
#include "server/openai_response.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "tokenizer/unicode.h"

/* ---- ids and text ---- */

void openai_response_id(openai_kind_t kind, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16];
    const char *prefix = kind == OPENAI_CHAT ? "chatcmpl-" : "cmpl-";
    size_t p;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* no entropy source: the clock and the buffer's address still make ids unique enough */
        struct timespec ts;
        uint64_t x;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)buf;
        for (size_t i = 0; i < sizeof(rnd); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = (unsigned char)x;
        }
    }
    if (cap == 0) return;
    p = (size_t)snprintf(buf, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof(rnd) && p + 2 < cap; i++) {
        buf[p++] = hex[rnd[i] >> 4];
        buf[p++] = hex[rnd[i] & 15];
    }
    buf[p < cap ? p : cap - 1] = '\0';
}

json_t *openai_json_text(const char *s, size_t len)
{
    json_t *j;
    char *fixed;
    size_t o = 0;
    if (!s) return json_string("");
    j = json_stringn(s, len);
    if (j) return j;
    /* invalid UTF-8: each maximal ill-formed part becomes U+FFFD (3 bytes), as the tokenizer's
     * streaming decoder does */
    fixed = malloc(len * 3 + 1);
    if (!fixed) return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        if (unicode_utf8_check((const uint8_t *)s + i, len - i, &k) == UTF8_VALID) {
            memcpy(fixed + o, s + i, k);
            o += k;
        } else {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        i += k ? k : 1;
    }
    j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

/* Characters (code points, as Python counts them) in valid UTF-8 text. */
static int64_t utf8_chars(const char *s, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) n++;
    return n;
}

json_t *openai_error_json(const openai_error_t *e)
{
    json_t *inner = json_object(), *root = json_object();
    if (!inner || !root) {
        json_decref(inner);
        json_decref(root);
        return NULL;
    }
    /* the message may quote the client's bytes, or be cut inside a character by its buffer */
    json_object_set_new(inner, "message", openai_json_text(e->message, strlen(e->message)));
    json_object_set_new(inner, "type", json_string(openai_error_type(e->status)));
    json_object_set_new(inner, "param", e->param[0] ? openai_json_text(e->param, strlen(e->param)) : json_null());
    json_object_set_new(inner, "code", json_integer(e->status));
    json_object_set_new(root, "error", inner);
    return root;
}

const char *openai_finish_reason(cllm_finish_t f)
{
    switch (f) {
    case CLLM_FINISH_STOP: return "stop";
    case CLLM_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

json_t *openai_stop_reason_json(const openai_request_t *r, const cllm_output_t *o, const tokenizer_t *tok)
{
    if (!o || o->finish != CLLM_FINISH_STOP) return json_null();
    if (o->stop_string >= 0 && (size_t)o->stop_string < r->req.n_stop) return json_string(r->stop[o->stop_string]);
    if (o->stop_token >= 0 && (r->req.ignore_eos || !tokenizer_is_eog(tok, o->stop_token)))
        for (size_t i = 0; i < r->req.n_stop_token_ids; i++)
            if (r->stop_token_ids[i] == o->stop_token) return json_integer(o->stop_token);
    return json_null();
}

json_t *openai_usage_json(const openai_usage_t *u)
{
    json_t *j = json_object(), *d = json_object();
    if (!j || !d) {
        json_decref(j);
        json_decref(d);
        return NULL;
    }
    json_object_set_new(j, "prompt_tokens", json_integer(u->prompt_tokens));
    json_object_set_new(j, "completion_tokens", json_integer(u->completion_tokens));
    json_object_set_new(j, "total_tokens", json_integer((json_int_t)u->prompt_tokens + u->completion_tokens));
    json_object_set_new(d, "cached_tokens", json_integer(u->cached_tokens));
    json_object_set_new(j, "prompt_tokens_details", d);
    return j;
}

/* ---- logprobs ---- */

/* The token's text (special tokens rendered) into buf; returns its length (clipped to cap). */
static size_t token_piece(const tokenizer_t *tok, int32_t id, char *buf, size_t cap)
{
    size_t n = tokenizer_token_to_bytes(tok, id, true, buf, cap);
    return n < cap ? n : cap;
}

static json_t *bytes_json(const char *s, size_t len)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < len; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

/* vLLM reports -inf as -9999.0 (JSON has no infinity). */
static json_t *logprob_value(float lp)
{
    return json_real(isfinite(lp) ? (double)lp : -9999.0);
}

static json_t *chat_logprob_entry(const tokenizer_t *tok, int32_t id, float lp, char *buf, size_t cap)
{
    size_t n = token_piece(tok, id, buf, cap);
    json_t *e = json_object();
    if (!e) return NULL;
    json_object_set_new(e, "token", openai_json_text(buf, n));
    json_object_set_new(e, "logprob", logprob_value(lp));
    json_object_set_new(e, "bytes", bytes_json(buf, n));
    return e;
}

json_t *openai_logprobs_json(openai_kind_t kind, const tokenizer_t *tok, const int32_t *tokens,
                             const cllm_logprob_t *lps, size_t n, int32_t n_top, int64_t *text_offset)
{
    char buf[512];
    json_t *root = json_object();
    if (!root) return NULL;
    if (n_top > OPENAI_MAX_LOGPROBS) n_top = OPENAI_MAX_LOGPROBS;

    if (kind == OPENAI_CHAT) {
        json_t *content = json_array();
        for (size_t i = 0; content && i < n; i++) {
            json_t *e = chat_logprob_entry(tok, tokens[i], lps[i].logprob, buf, sizeof(buf));
            json_t *tops = json_array();
            for (int32_t k = 0; e && tops && k < lps[i].n_top && k < n_top; k++)
                json_array_append_new(tops, chat_logprob_entry(tok, lps[i].top[k].token, lps[i].top[k].logprob, buf,
                                                               sizeof(buf)));
            if (e) json_object_set_new(e, "top_logprobs", tops ? tops : json_array());
            else json_decref(tops);
            json_array_append_new(content, e);
        }
        json_object_set_new(root, "content", content ? content : json_array());
        return root;
    }

    {
        json_t *offs = json_array(), *tlp = json_array(), *toks = json_array(), *tops = json_array();
        for (size_t i = 0; i < n; i++) {
            size_t len = token_piece(tok, tokens[i], buf, sizeof(buf));
            json_t *text = openai_json_text(buf, len), *d = json_object();
            json_array_append_new(offs, json_integer(*text_offset));
            json_array_append_new(tlp, logprob_value(lps[i].logprob));
            json_array_append_new(toks, text ? json_incref(text) : json_string(""));
            if (d) {
                for (int32_t k = 0; k < lps[i].n_top && k < n_top; k++) {
                    size_t l2 = token_piece(tok, lps[i].top[k].token, buf, sizeof(buf));
                    json_t *key = openai_json_text(buf, l2);
                    if (key) json_object_set_new(d, json_string_value(key), logprob_value(lps[i].top[k].logprob));
                    json_decref(key);
                }
                /* the sampled token is always among them, as vLLM returns it */
                if (text) json_object_set_new(d, json_string_value(text), logprob_value(lps[i].logprob));
            }
            json_array_append_new(tops, d);
            if (text) *text_offset += utf8_chars(json_string_value(text), json_string_length(text));
            json_decref(text);
        }
        json_object_set_new(root, "text_offset", offs ? offs : json_array());
        json_object_set_new(root, "token_logprobs", tlp ? tlp : json_array());
        json_object_set_new(root, "tokens", toks ? toks : json_array());
        json_object_set_new(root, "top_logprobs", tops ? tops : json_array());
    }
    return root;
}

/* ---- completions and chunks ---- */

static json_t *meta_object(const openai_meta_t *m, const char *object)
{
    json_t *j = json_object();
    if (!j) return NULL;
    json_object_set_new(j, "id", json_string(m->id));
    json_object_set_new(j, "object", json_string(object));
    json_object_set_new(j, "created", json_integer(m->created));
    json_object_set_new(j, "model", openai_json_text(m->model, strlen(m->model)));
    return j;
}

static json_t *finish_json(const char *finish_reason)
{
    return finish_reason ? json_string(finish_reason) : json_null();
}

json_t *openai_response_json(const openai_meta_t *m, const char *text, size_t len, const char *finish_reason,
                             json_t *stop_reason, json_t *logprobs, const openai_usage_t *u)
{
    bool chat = m->kind == OPENAI_CHAT;
    json_t *j = meta_object(m, chat ? "chat.completion" : "text_completion");
    json_t *choices = json_array(), *c = json_object();
    if (!j || !choices || !c) {
        json_decref(j);
        json_decref(choices);
        json_decref(c);
        json_decref(stop_reason);
        json_decref(logprobs);
        return NULL;
    }
    json_object_set_new(c, "index", json_integer(0));
    if (chat) {
        json_t *msg = json_object();
        if (msg) {
            json_object_set_new(msg, "role", json_string("assistant"));
            json_object_set_new(msg, "content", openai_json_text(text, len));
            json_object_set_new(msg, "tool_calls", json_array());
        }
        json_object_set_new(c, "message", msg ? msg : json_null());
    } else {
        json_object_set_new(c, "text", openai_json_text(text, len));
    }
    json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(c, "finish_reason", finish_json(finish_reason));
    json_object_set_new(c, "stop_reason", stop_reason ? stop_reason : json_null());
    json_array_append_new(choices, c);
    json_object_set_new(j, "choices", choices);
    json_object_set_new(j, "usage", openai_usage_json(u));
    return j;
}

json_t *openai_chunk_json(const openai_meta_t *m, bool role, const char *text, size_t len, const char *finish_reason,
                          json_t *stop_reason, json_t *logprobs, const openai_usage_t *usage)
{
    bool chat = m->kind == OPENAI_CHAT;
    json_t *j = meta_object(m, chat ? "chat.completion.chunk" : "text_completion");
    json_t *choices = json_array(), *c = json_object();
    if (!j || !choices || !c) {
        json_decref(j);
        json_decref(choices);
        json_decref(c);
        json_decref(stop_reason);
        json_decref(logprobs);
        return NULL;
    }
    json_object_set_new(c, "index", json_integer(0));
    if (chat) {
        json_t *delta = json_object();
        if (delta) {
            if (role) json_object_set_new(delta, "role", json_string("assistant"));
            if (role || len > 0) json_object_set_new(delta, "content", openai_json_text(text, len));
        }
        json_object_set_new(c, "delta", delta ? delta : json_object());
    } else {
        json_object_set_new(c, "text", openai_json_text(text, len));
    }
    json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(c, "finish_reason", finish_json(finish_reason));
    if (finish_reason) json_object_set_new(c, "stop_reason", stop_reason ? stop_reason : json_null());
    else json_decref(stop_reason);
    json_array_append_new(choices, c);
    json_object_set_new(j, "choices", choices);
    if (usage) json_object_set_new(j, "usage", openai_usage_json(usage));
    return j;
}

json_t *openai_usage_chunk_json(const openai_meta_t *m, const openai_usage_t *u)
{
    json_t *j = meta_object(m, m->kind == OPENAI_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!j) return NULL;
    json_object_set_new(j, "choices", json_array());
    json_object_set_new(j, "usage", openai_usage_json(u));
    return j;
}

/* ---- models, tokenize, SSE ---- */

json_t *openai_models_json(const char *name, const char *root, int64_t created, int32_t max_model_len)
{
    json_t *j = json_object(), *data = json_array(), *m = json_object();
    if (!j || !data || !m) {
        json_decref(j);
        json_decref(data);
        json_decref(m);
        return NULL;
    }
    json_object_set_new(m, "id", openai_json_text(name, strlen(name)));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(created));
    json_object_set_new(m, "owned_by", json_string("cllm"));
    json_object_set_new(m, "root", openai_json_text(root, strlen(root)));
    json_object_set_new(m, "parent", json_null());
    json_object_set_new(m, "max_model_len", json_integer(max_model_len));
    json_array_append_new(data, m);
    json_object_set_new(j, "object", json_string("list"));
    json_object_set_new(j, "data", data);
    return j;
}

json_t *openai_tokenize_json(const tokenizer_t *tok, const int32_t *tokens, size_t n, int32_t max_model_len,
                             bool token_strs)
{
    json_t *j = json_object(), *ids = json_array(), *strs = token_strs ? json_array() : json_null();
    char buf[512];
    if (!j || !ids || !strs) {
        json_decref(j);
        json_decref(ids);
        json_decref(strs);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ids, json_integer(tokens[i]));
        if (token_strs) {
            size_t len = token_piece(tok, tokens[i], buf, sizeof(buf));
            json_array_append_new(strs, openai_json_text(buf, len));
        }
    }
    json_object_set_new(j, "count", json_integer((json_int_t)n));
    json_object_set_new(j, "max_model_len", json_integer(max_model_len));
    json_object_set_new(j, "tokens", ids);
    json_object_set_new(j, "token_strs", strs);
    return j;
}

char *openai_sse_event(json_t *j, size_t *len)
{
    char *body, *ev;
    size_t n;
    *len = 0;
    if (!j) return NULL;
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body) return NULL;
    n = strlen(body);
    ev = malloc(n + 9);
    if (ev) {
        memcpy(ev, "data: ", 6);
        memcpy(ev + 6, body, n);
        memcpy(ev + 6 + n, "\n\n", 3);
        *len = n + 8;
    }
    free(body);
    return ev;
}

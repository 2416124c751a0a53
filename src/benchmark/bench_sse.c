/* bench_sse.c: the SSE splitter and the streamed-chunk parser (see bench_sse.h).
 *
 * Invariants: s->line holds only the bytes of the current line (no line-end bytes);
 * s->data is NUL-terminated at data_len whenever it is handed out; neither buffer ever
 * grows past max_bytes + 1. */
#include "benchmark/bench_sse.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX (16u << 20)

void bench_sse_init(bench_sse_t *s, size_t max_bytes)
{
    memset(s, 0, sizeof(*s));
    s->max_bytes = max_bytes ? max_bytes : SSE_DEFAULT_MAX;
}

void bench_sse_free(bench_sse_t *s)
{
    free(s->line);
    free(s->data);
    memset(s, 0, sizeof(*s));
}

/* Makes room for need + 1 bytes (the + 1 for a NUL). */
static status_t grow(char **buf, size_t *cap, size_t need, size_t max_bytes)
{
    size_t ncap;
    char *p;
    if (need > max_bytes) return cllm_error(CLLM_ERR_RANGE, "sse: a line or event is over %zu bytes", max_bytes);
    if (need + 1 <= *cap) return CLLM_OK;
    ncap = *cap ? *cap : 256;
    while (ncap < need + 1) ncap *= 2;
    p = realloc(*buf, ncap);
    if (!p) return cllm_error(CLLM_ERR_NOMEM, "sse: out of memory (%zu bytes)", ncap);
    *buf = p;
    *cap = ncap;
    return CLLM_OK;
}

static status_t dispatch(bench_sse_t *s, bench_sse_event_fn fn, void *user)
{
    status_t st = CLLM_OK;
    if (s->has_data) {
        if ((st = grow(&s->data, &s->data_cap, s->data_len, s->max_bytes)) != CLLM_OK) return st;
        s->data[s->data_len] = '\0';
        st = fn(s->data, s->data_len, user);
    }
    s->data_len = 0;
    s->has_data = false;
    return st;
}

/* One complete line (without its end). */
static status_t process_line(bench_sse_t *s, const char *line, size_t len, bench_sse_event_fn fn, void *user)
{
    const char *colon, *val;
    size_t field_len, val_len;
    status_t st;

    if (len == 0) return dispatch(s, fn, user);
    if (line[0] == ':') return CLLM_OK; /* comment */
    colon = memchr(line, ':', len);
    field_len = colon ? (size_t)(colon - line) : len;
    if (field_len != 4 || memcmp(line, "data", 4)) return CLLM_OK;
    val = colon ? colon + 1 : line + len;
    val_len = (size_t)(line + len - val);
    if (val_len && val[0] == ' ') {
        val++;
        val_len--;
    }
    if ((st = grow(&s->data, &s->data_cap, s->data_len + val_len + 1, s->max_bytes)) != CLLM_OK) return st;
    if (s->has_data) s->data[s->data_len++] = '\n';
    memcpy(s->data + s->data_len, val, val_len);
    s->data_len += val_len;
    s->has_data = true;
    return CLLM_OK;
}

status_t bench_sse_feed(bench_sse_t *s, const char *bytes, size_t n, bench_sse_event_fn fn, void *user)
{
    size_t i = 0;
    status_t st;
    while (i < n) {
        size_t j = i;
        if (s->skip_lf) {
            s->skip_lf = false;
            if (bytes[i] == '\n') {
                i++;
                continue;
            }
        }
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r') j++;
        if (j > i) {
            if ((st = grow(&s->line, &s->line_cap, s->line_len + (j - i), s->max_bytes)) != CLLM_OK) return st;
            memcpy(s->line + s->line_len, bytes + i, j - i);
            s->line_len += j - i;
        }
        if (j == n) break;
        /* a line end: process the line, then start a new one */
        s->skip_lf = bytes[j] == '\r';
        st = process_line(s, s->line ? s->line : "", s->line_len, fn, user);
        s->line_len = 0;
        if (st != CLLM_OK) return st;
        i = j + 1;
    }
    return CLLM_OK;
}

status_t bench_sse_finish(bench_sse_t *s, bench_sse_event_fn fn, void *user)
{
    status_t st = CLLM_OK;
    s->skip_lf = false;
    if (s->line_len) {
        st = process_line(s, s->line, s->line_len, fn, user);
        s->line_len = 0;
        if (st != CLLM_OK) return st;
    }
    return dispatch(s, fn, user);
}

/* ---- chunk parsing ---- */

static int64_t int_or(json_t *obj, const char *key, int64_t dflt)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static bool take_string(json_t *v, bench_sse_chunk_t *out)
{
    if (!json_is_string(v)) return false;
    out->content = json_string_value(v);
    out->content_len = json_string_length(v);
    return true;
}

status_t bench_sse_parse_chunk(const char *data, size_t len, bench_sse_chunk_t *out)
{
    json_error_t jerr;
    json_t *root, *choices, *usage, *err;
    size_t a = 0, b = len;

    memset(out, 0, sizeof(*out));
    out->prompt_tokens = out->completion_tokens = out->cached_tokens = -1;
    while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\n' || data[a] == '\r')) a++;
    while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\n' || data[b - 1] == '\r')) b--;
    if (b - a == 6 && !memcmp(data + a, "[DONE]", 6)) {
        out->done = true;
        return CLLM_OK;
    }
    root = json_loadb(data + a, b - a, JSON_DECODE_ANY, &jerr);
    if (!root)
        return cllm_error(CLLM_ERR_FORMAT, "sse: a chunk is not JSON (%s): '%.60s'", jerr.text, data + a);
    out->json_ = root;
    if (!json_is_object(root)) return CLLM_OK;

    if ((err = json_object_get(root, "error")) && !json_is_null(err)) {
        const char *msg = json_is_string(err) ? json_string_value(err)
                                              : json_string_value(json_object_get(err, "message"));
        snprintf(out->error, sizeof(out->error), "%s", msg ? msg : "error without a message");
    }
    choices = json_object_get(root, "choices");
    if (json_is_array(choices) && json_array_size(choices) > 0) {
        json_t *c = json_array_get(choices, 0), *delta, *fr;
        out->has_choice = true;
        delta = json_object_get(c, "delta");
        if (json_is_object(delta)) {
            if (!take_string(json_object_get(delta, "content"), out))
                take_string(json_object_get(delta, "reasoning_content"), out);
        } else if (!take_string(json_object_get(c, "text"), out)) {
            json_t *msg = json_object_get(c, "message");
            if (json_is_object(msg)) take_string(json_object_get(msg, "content"), out);
        }
        fr = json_object_get(c, "finish_reason");
        out->finished = fr && !json_is_null(fr);
    }
    usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        out->prompt_tokens = int_or(usage, "prompt_tokens", -1);
        out->completion_tokens = int_or(usage, "completion_tokens", -1);
        out->cached_tokens = int_or(json_object_get(usage, "prompt_tokens_details"), "cached_tokens", -1);
    }
    if (out->cached_tokens < 0) out->cached_tokens = int_or(json_object_get(root, "timings"), "cache_n", -1);
    return CLLM_OK;
}

void bench_sse_chunk_free(bench_sse_chunk_t *c)
{
    if (c->json_) json_decref((json_t *)c->json_);
    c->json_ = NULL;
    c->content = NULL;
}

/* generate.c: chat and text completions over HTTP (generate.h).
 *
 * A gen_t lives from a request's parse to its last byte: inside gen_handle for a
 * non-streaming request, inside the callback response (freed by its free callback) for a
 * streaming one. gen_free is the only place that cancels an unfinished engine request and the
 * only place in_flight goes down, so neither can be missed or doubled. */
#include "server/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "server/http.h"
#include "server/openai_response.h"
#include "core/clock.h"

#define POLL_MS 100              /* how often a waiting handler checks its client and shutdown */
#define STREAM_BLOCK_BYTES 16384 /* libmicrohttpd buffer per reader call */

typedef struct {
    gen_env_t *env;
    openai_request_t req;
    openai_meta_t meta;
    char id[64];
    int key;            /* the API key's index (auth.h), -1 without keys */
    uint8_t salt[AUTH_SALT_BYTES]; /* the engine's cache salt (tenant + client's cache_salt) */
    uint64_t eid;
    bool submitted;
    bool finished;      /* the engine gave the final output (or forgot the id): nothing to cancel */
    cllm_finish_t finish;
    json_t *stop_reason; /* from the final output */
    int fd;             /* the client's socket, to notice it leaving */
    double t_arrival, t_submit, t_last;
    double t_checked;   /* last look at the client's socket */
    bool got_first;
    int32_t n_prompt, n_cached, n_output;

    char *echo;         /* completions with echo: the prompt's text (echo_len bytes) */
    size_t echo_len;
    char *text;         /* non-streaming: the generated text (text_len, text_cap) */
    size_t text_len, text_cap;
    int32_t *tokens;    /* (n_tok, cap_tok) generated tokens, when logprobs are wanted */
    cllm_logprob_t *lps; /* (n_tok, cap_tok) */
    size_t n_tok, cap_tok;
    int64_t text_offset; /* completions logprobs: characters before the next token */

    char *pend;         /* streaming: SSE bytes not yet handed to libmicrohttpd */
    size_t pend_len, pend_off, pend_cap;
    bool started, done;
} gen_t;

void gen_limits(const gen_env_t *env, openai_limits_t *lim)
{
    lim->served_model_name = env->served_name;
    lim->n_vocab = tokenizer_n_vocab(env->model->tok);
    lim->max_model_len = env->max_model_len;
}

status_t gen_chat_prompt(const gen_env_t *env, const openai_request_t *r, char **text, size_t *len,
                         bool *add_special, openai_error_t *err)
{
    status_t st;
    if (!env->tmpl && env->tmpl_error) {
        openai_error_set(err, 400, "messages", "the model's chat template cannot be used (%s): start the server with "
                         "--chat-template NAME|FILE, or use /v1/completions", env->tmpl_error);
        return CLLM_ERR_INVALID_ARG;
    }
    st = openai_chat_render(env->tmpl, r, env->bos_text, env->eos_text, text, len, err);
    if (st != CLLM_OK) return st;
    *add_special = openai_chat_add_special(r, *text, env->bos_text);
    return CLLM_OK;
}

/* ---- gen_t ---- */

static void gen_free(gen_t *g)
{
    if (!g) return;
    if (g->submitted) {
        if (!g->finished) {
            /* the client went away (or the response could not be sent): free the blocks */
            log_info("%s: %s, request cancelled", g->id,
                     atomic_load(&g->env->aborting) ? "server shutting down" : "client disconnected");
            cllm_engine_cancel(g->env->engine, g->eid);
        }
        atomic_fetch_sub(&g->env->in_flight, 1);
    }
    openai_request_free(&g->req);
    json_decref(g->stop_reason);
    free(g->echo);
    free(g->text);
    free(g->tokens);
    free(g->lps);
    free(g->pend);
    free(g);
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        char *b;
        while (c < *len + n + 1) c *= 2;
        b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b;
        *cap = c;
    }
    if (n) memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Keeps o's tokens and logprobs when the response needs them. */
static int gen_keep_tokens(gen_t *g, const cllm_output_t *o)
{
    if (g->req.top_logprobs < 0 || !o->logprobs || o->n_tokens == 0) return 0;
    if (g->n_tok + o->n_tokens > g->cap_tok) {
        size_t c = g->cap_tok ? g->cap_tok : 64;
        int32_t *t;
        cllm_logprob_t *l;
        while (c < g->n_tok + o->n_tokens) c *= 2;
        t = realloc(g->tokens, c * sizeof(*t));
        if (!t) return -1;
        g->tokens = t;
        l = realloc(g->lps, c * sizeof(*l));
        if (!l) return -1;
        g->lps = l;
        g->cap_tok = c;
    }
    memcpy(g->tokens + g->n_tok, o->tokens, o->n_tokens * sizeof(int32_t));
    memcpy(g->lps + g->n_tok, o->logprobs, o->n_tokens * sizeof(cllm_logprob_t));
    g->n_tok += o->n_tokens;
    return 0;
}

/* Counts and times one output for usage and the metrics. */
static void gen_account(gen_t *g, const cllm_output_t *o)
{
    gen_env_t *env = g->env;
    double t = clock_now_s();
    g->n_prompt = o->n_prompt_tokens;
    g->n_cached = o->n_cached_tokens;
    g->n_output = o->n_output_tokens;
    if (o->n_tokens > 0) {
        size_t first = 0;
        if (!g->got_first) {
            double t_first = o->ttft > 0 ? g->t_submit + o->ttft : t;
            metrics_observe(env->metrics, METRICS_TTFT, t_first - g->t_arrival);
            metrics_add_prompt_tokens(env->metrics, o->n_prompt_tokens);
            g->got_first = true;
            g->t_last = t_first;
            first = 1;
        }
        /* tokens that arrived together share the time since the previous one */
        for (size_t i = first; i < o->n_tokens; i++)
            metrics_observe(env->metrics, METRICS_ITL, (t - g->t_last) / (double)(o->n_tokens - first));
        g->t_last = t;
    }
    if (o->finish != CLLM_FINISH_NONE) {
        g->finished = true;
        g->finish = o->finish;
        json_decref(g->stop_reason);
        g->stop_reason = openai_stop_reason_json(&g->req, o, env->model->tok);
        metrics_observe(env->metrics, METRICS_E2E, t - g->t_arrival);
        log_info("%s: %d prompt tokens (%d cached), %d generated, finished: %s, %.3f s", g->id, g->n_prompt,
                 g->n_cached, g->n_output,
                 o->finish == CLLM_FINISH_STOP ? "stop" : o->finish == CLLM_FINISH_LENGTH ? "length" : "abort",
                 t - g->t_arrival);
    }
}

/* Whether the client has gone away; looks at the socket at most every POLL_MS (a request
 * that produces tokens all the time never waits out a poll timeout). */
static bool gen_client_gone(gen_t *g)
{
    double t = clock_now_s();
    if (t - g->t_checked < POLL_MS * 1e-3) return false;
    g->t_checked = t;
    return http_client_gone(g->fd);
}

static openai_usage_t gen_usage(const gen_t *g)
{
    openai_usage_t u = { g->n_prompt, g->n_output, g->n_cached };
    return u;
}

/* Maps a failed submit to an API error. */
static void submit_error(gen_t *g, status_t st, openai_error_t *err)
{
    const char *msg = cllm_error_message();
    if (!strncmp(msg, "request: ", 9)) msg += 9;
    if (atomic_load(&g->env->aborting) || strstr(msg, "shutting down"))
        openai_error_set(err, 503, NULL, "the server is shutting down");
    else if (st == CLLM_ERR_INVALID_ARG || st == CLLM_ERR_RANGE)
        openai_error_set(err, 400, NULL, "%s", msg);
    else
        openai_error_set(err, 500, NULL, "%s", msg[0] ? msg : cllm_status_str(st));
}

/* Builds the prompt and submits; fills err on failure. */
static status_t gen_submit(gen_t *g, openai_error_t *err)
{
    gen_env_t *env = g->env;
    cllm_request_t q = g->req.req;
    char *rendered = NULL;
    size_t rlen = 0;
    bool add_special = true;
    status_t st;

    if (g->req.kind == OPENAI_CHAT) {
        if ((st = gen_chat_prompt(env, &g->req, &rendered, &rlen, &add_special, err)) != CLLM_OK) return st;
        q.prompt = rendered;
        q.prompt_len = rlen;
    } else if (g->req.prompt_text) {
        q.prompt = g->req.prompt_text;
        q.prompt_len = g->req.prompt_text_len;
        add_special = g->req.add_special_tokens != 0;
    } else {
        q.prompt_tokens = g->req.prompt_tokens;
        q.n_prompt_tokens = g->req.n_prompt_tokens;
    }
    q.add_special = add_special;
    q.parse_special = true; /* as HF tokenizers (and so vLLM) read special-token text in prompts */
    /* the client's cache_salt is never used as is: mixed with the tenant's, it can only split */
    if (auth_cache_salt(env->auth, g->key, g->req.req.cache_salt, g->req.req.cache_salt_len, g->salt)) {
        q.cache_salt = (const char *)g->salt;
        q.cache_salt_len = sizeof(g->salt);
    } else {
        q.cache_salt = NULL;
        q.cache_salt_len = 0;
    }

    if (g->req.echo) {
        if (g->req.prompt_text) {
            g->echo = malloc(g->req.prompt_text_len + 1);
            if (g->echo) {
                memcpy(g->echo, g->req.prompt_text, g->req.prompt_text_len + 1);
                g->echo_len = g->req.prompt_text_len;
            }
        } else if (tokenizer_decode(env->model->tok, g->req.prompt_tokens, g->req.n_prompt_tokens, false, &g->echo,
                                    &g->echo_len) != CLLM_OK) {
            g->echo = NULL;
        }
        if (!g->echo) {
            free(rendered);
            openai_error_set(err, 500, NULL, "out of memory");
            return CLLM_ERR_NOMEM;
        }
        /* logprobs' text_offset counts characters from the start of the echoed prompt */
        for (size_t i = 0; i < g->echo_len; i++)
            if (((unsigned char)g->echo[i] & 0xc0) != 0x80) g->text_offset++;
    }

    g->t_submit = clock_now_s();
    st = cllm_engine_submit(env->engine, &q, &g->eid);
    free(rendered);
    if (st != CLLM_OK) {
        submit_error(g, st, err);
        return st;
    }
    g->submitted = true;
    atomic_fetch_add(&env->in_flight, 1);
    return CLLM_OK;
}

/* An error body for a request the engine ended without finishing it. */
static void abort_error(const gen_t *g, openai_error_t *err)
{
    if (atomic_load(&g->env->aborting))
        openai_error_set(err, 503, NULL, "the server is shutting down: the request was cancelled");
    else
        openai_error_set(err, 500, NULL, "the engine aborted the request (see the server log)");
}

/* ---- non-streaming ---- */

static enum MHD_Result serve_whole(gen_t *g, struct MHD_Connection *c)
{
    gen_env_t *env = g->env;
    openai_error_t err;
    openai_usage_t u;
    json_t *lp = NULL, *resp;
    enum MHD_Result ret;

    while (!g->finished) {
        cllm_output_t *o = NULL;
        status_t st = cllm_engine_poll(env->engine, g->eid, POLL_MS, &o);
        if (st != CLLM_OK) {
            g->finished = true; /* the engine no longer knows it */
            g->finish = CLLM_FINISH_ABORT;
            break;
        }
        if (gen_client_gone(g)) {
            cllm_output_free(o);
            gen_free(g);
            return MHD_NO;
        }
        if (o) {
            gen_account(g, o);
            if (buf_append(&g->text, &g->text_len, &g->text_cap, o->text, o->text_len) || gen_keep_tokens(g, o)) {
                cllm_output_free(o);
                openai_error_set(&err, 500, NULL, "out of memory");
                gen_free(g);
                return http_respond_error(c, &err);
            }
            cllm_output_free(o);
        }
        if (!g->finished && atomic_load(&env->aborting)) {
            cllm_engine_cancel(env->engine, g->eid);
            g->finished = true;
            g->finish = CLLM_FINISH_ABORT;
        }
    }
    if (g->finish == CLLM_FINISH_ABORT) {
        abort_error(g, &err);
        gen_free(g);
        return http_respond_error(c, &err);
    }
    if (g->echo) {
        /* the prompt comes first */
        char *all = NULL;
        size_t len = 0, cap = 0;
        if (buf_append(&all, &len, &cap, g->echo, g->echo_len) || buf_append(&all, &len, &cap, g->text, g->text_len)) {
            free(all);
            gen_free(g);
            return http_respond_status(c, 500, "out of memory");
        }
        free(g->text);
        g->text = all;
        g->text_len = len;
        g->text_cap = cap;
    }
    if (g->req.top_logprobs >= 0)
        lp = openai_logprobs_json(g->meta.kind, env->model->tok, g->tokens, g->lps, g->n_tok, g->req.top_logprobs,
                                  &g->text_offset);
    u = gen_usage(g);
    resp = openai_response_json(&g->meta, g->text ? g->text : "", g->text_len, openai_finish_reason(g->finish),
                                json_incref(g->stop_reason), lp, &u);
    ret = http_respond_json(c, 200, resp);
    gen_free(g);
    return ret;
}

/* ---- streaming ---- */

static int emit(gen_t *g, json_t *j)
{
    size_t n;
    char *ev = openai_sse_event(j, &n);
    int rc;
    if (!ev) return -1;
    rc = buf_append(&g->pend, &g->pend_len, &g->pend_cap, ev, n);
    free(ev);
    return rc;
}

static int emit_done(gen_t *g)
{
    g->done = true;
    return buf_append(&g->pend, &g->pend_len, &g->pend_cap, "data: [DONE]\n\n", 14);
}

static int emit_error(gen_t *g, const openai_error_t *err)
{
    if (emit(g, openai_error_json(err))) return -1;
    return emit_done(g);
}

/* Shutdown's grace is over: cancel, and end the stream with an error event. */
static int stream_abort(gen_t *g)
{
    openai_error_t err;
    cllm_engine_cancel(g->env->engine, g->eid);
    g->finished = true;
    abort_error(g, &err);
    return emit_error(g, &err);
}

/* Produces the next SSE bytes into g->pend (possibly none after a poll timeout). -1: stop
 * with an error (client gone, out of memory). */
static int stream_step(gen_t *g)
{
    gen_env_t *env = g->env;
    const openai_usage_t *cu;
    openai_usage_t u;
    cllm_output_t *o = NULL;
    openai_error_t err;
    status_t st;
    int rc = 0;

    if (!g->started) {
        g->started = true;
        u = gen_usage(g);
        cu = g->req.continuous_usage ? &u : NULL;
        if (g->meta.kind == OPENAI_CHAT) return emit(g, openai_chunk_json(&g->meta, true, "", 0, NULL, NULL, NULL, cu));
        if (g->echo) return emit(g, openai_chunk_json(&g->meta, false, g->echo, g->echo_len, NULL, NULL, NULL, cu));
    }
    st = cllm_engine_poll(env->engine, g->eid, POLL_MS, &o);
    if (st != CLLM_OK) {
        g->finished = true;
        abort_error(g, &err);
        return emit_error(g, &err);
    }
    if (gen_client_gone(g)) {
        cllm_output_free(o);
        return -1;
    }
    if (!o) {
        if (atomic_load(&env->aborting)) return stream_abort(g);
        return 0;
    }
    gen_account(g, o);
    if (o->finish == CLLM_FINISH_ABORT) {
        cllm_output_free(o);
        abort_error(g, &err);
        return emit_error(g, &err);
    }
    {
        const char *fr = openai_finish_reason(o->finish);
        json_t *lp = NULL;
        u = gen_usage(g);
        cu = g->req.continuous_usage ? &u : NULL;
        if (g->req.top_logprobs >= 0 && o->logprobs && o->n_tokens > 0)
            lp = openai_logprobs_json(g->meta.kind, env->model->tok, o->tokens, o->logprobs, o->n_tokens,
                                      g->req.top_logprobs, &g->text_offset);
        if (o->text_len > 0 || lp || fr)
            rc = emit(g, openai_chunk_json(&g->meta, false, o->text, o->text_len, fr,
                                           fr ? json_incref(g->stop_reason) : NULL, lp, cu));
        if (!rc && fr) {
            if (g->req.include_usage) rc = emit(g, openai_usage_chunk_json(&g->meta, &u));
            if (!rc) rc = emit_done(g);
        }
    }
    cllm_output_free(o);
    if (!rc && !g->finished && atomic_load(&env->aborting)) rc = stream_abort(g);
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    gen_t *g = cls;
    size_t n;
    (void)pos;
    while (g->pend_off >= g->pend_len) {
        if (g->done) return MHD_CONTENT_READER_END_OF_STREAM;
        g->pend_off = g->pend_len = 0;
        if (stream_step(g) != 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    n = g->pend_len - g->pend_off;
    if (n > max) n = max;
    memcpy(buf, g->pend + g->pend_off, n);
    g->pend_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    gen_free(cls);
}

static enum MHD_Result serve_stream(gen_t *g, struct MHD_Connection *c)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES, stream_read, g,
                                                               stream_free);
    enum MHD_Result ret;
    if (!r) {
        gen_free(g);
        return http_respond_status(c, 500, "out of memory");
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r); /* the connection holds it now; stream_free runs when it is done */
    return ret;
}

enum MHD_Result gen_handle(gen_env_t *env, struct MHD_Connection *c, openai_kind_t kind, const char *body, size_t len,
                           double t_arrival, int key)
{
    openai_limits_t lim;
    openai_error_t err;
    gen_t *g = calloc(1, sizeof(*g));

    if (!g) return http_respond_status(c, 500, "out of memory");
    g->env = env;
    g->t_arrival = t_arrival;
    g->key = key;
    g->fd = http_connection_fd(c);
    gen_limits(env, &lim);
    if (openai_request_parse(kind, body, len, &lim, &g->req, &err) != CLLM_OK) {
        free(g);
        return http_respond_error(c, &err);
    }
    openai_request_apply_defaults(&g->req, env->gen_defaults);
    openai_response_id(kind, g->id, sizeof(g->id));
    g->meta.kind = kind;
    g->meta.id = g->id;
    g->meta.created = (int64_t)time(NULL);
    g->meta.model = env->served_name;
    if (gen_submit(g, &err) != CLLM_OK) {
        gen_free(g);
        return http_respond_error(c, &err);
    }
    return g->req.stream ? serve_stream(g, c) : serve_whole(g, c);
}

/* server.c: the HTTP server of `cllm serve` (server.h): libmicrohttpd daemon, routing, API keys,
 * connection limits and deadlines, request bodies, the small endpoints, and graceful shutdown.
 *
 * Owns the daemon, the connection guard, the compiled chat template, the metrics, the checked
 * copy of the model's sampling defaults, an empty auth_t when the caller gives none (for the
 * client cache salts), and the gen_env_t the generation handlers (generate.c) share.
 * libmicrohttpd runs one thread per connection; each connection's conn_guard entry lives from
 * its start to its close notification (libmicrohttpd's socket context), each request's state
 * (conn_t: route, key, body so far, arrival time) from its first access callback to the
 * request-completed callback.
 *
 * Invariants: a request is answered exactly once: early (503 over the connection limit,
 * 401/404/405/413/503 on its first callback, before any body is read) or when its body is
 * complete; only a complete body reaches a handler (so the engine), and only then is the
 * connection's deadline off; bodies never grow past max_request_bytes; every endpoint but
 * /health checks the key when keys exist; once `draining` is set no new request reaches the
 * engine. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "engine/engine.h"
#include "server/conn_guard.h"
#include "server/generate.h"
#include "server/http.h"
#include "server/openai_response.h"
#include "core/clock.h"
#include "core/strbuf.h"

struct server {
    server_config_t cfg; /* strings point into the copies below */
    char *host, *name, *model_path;
    const auth_t *auth;  /* cfg.auth, or own_auth */
    auth_t *own_auth;
    conn_guard_t *guard;
    model_gen_defaults_t gen_defaults; /* the model's, checked (--generation-config auto) */
    cllm_engine_t *engine;
    const model_t *model;
    chat_template_t *tmpl;
    char *tmpl_error;
    char bos_text[256], eos_text[256];
    metrics_t *metrics;
    gen_env_t env;
    struct MHD_Daemon *daemon;
    int port;
    atomic_bool draining;
    int64_t created;
};

typedef enum { ROUTE_CHAT, ROUTE_COMPLETIONS, ROUTE_MODELS, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_TOKENIZE,
               ROUTE_DETOKENIZE, ROUTE_VERSION } route_id_t;

typedef struct {
    const char *path;
    const char *method; /* "GET" (HEAD too) or "POST" */
    route_id_t id;
} route_t;

static const route_t routes[] = {
    { "/v1/chat/completions", "POST", ROUTE_CHAT },
    { "/v1/completions", "POST", ROUTE_COMPLETIONS },
    { "/v1/models", "GET", ROUTE_MODELS },
    { "/health", "GET", ROUTE_HEALTH },
    { "/metrics", "GET", ROUTE_METRICS },
    { "/tokenize", "POST", ROUTE_TOKENIZE },
    { "/detokenize", "POST", ROUTE_DETOKENIZE },
    { "/version", "GET", ROUTE_VERSION },
};

/* Per-request state (libmicrohttpd's con_cls). */
typedef struct {
    const route_t *route; /* NULL: answered early */
    int key;              /* the API key's index, -1 when no keys are configured */
    strbuf_t body;        /* the body so far */
    bool too_large;
    double t_arrival;
} conn_t;

void server_config_default(server_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = 8000;
    cfg->max_request_bytes = 16u << 20;
    cfg->max_connections = 1024;
    cfg->timeout_s = 60;
    cfg->use_model_gen_defaults = true;
}

int server_port(const server_t *s)
{
    return s ? s->port : 0;
}

int server_in_flight(const server_t *s)
{
    return s ? atomic_load(&s->env.in_flight) : 0;
}

int server_connections(const server_t *s)
{
    return s && s->guard ? conn_guard_open_count(s->guard) : 0;
}

/* ---- small endpoints ---- */

static enum MHD_Result handle_models(server_t *s, struct MHD_Connection *c)
{
    return http_respond_json(c, 200, openai_models_json(s->name, s->model_path, s->created, s->env.max_model_len));
}

static enum MHD_Result handle_version(struct MHD_Connection *c)
{
    json_t *j = json_object();
    if (j) json_object_set_new(j, "version", json_string(CLLM_SERVER_VERSION));
    return http_respond_json(c, 200, j);
}

static enum MHD_Result handle_metrics(server_t *s, struct MHD_Connection *c)
{
    cllm_engine_stats_t st;
    size_t len;
    char *text;
    enum MHD_Result ret;
    cllm_engine_get_stats(s->engine, &st);
    if (st.block_size == 0) {
        /* no step has run yet: the configuration still says how big the cache is */
        st.block_size = engine_config(s->engine)->block_size;
        st.n_blocks = engine_config(s->engine)->num_blocks;
    }
    text = metrics_render(s->metrics, &st, engine_config(s->engine)->enable_prefix_caching, &len);
    if (!text) return http_respond_status(c, 500, "out of memory");
    ret = http_respond_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return ret;
}

static enum MHD_Result handle_tokenize(server_t *s, struct MHD_Connection *c, const conn_t *cn)
{
    openai_limits_t lim;
    openai_request_t r;
    openai_error_t err;
    char *rendered = NULL;
    const char *text;
    size_t len;
    bool add_special;
    int32_t *ids = NULL;
    size_t n = 0;
    enum MHD_Result ret;

    gen_limits(&s->env, &lim);
    if (openai_request_parse(OPENAI_TOKENIZE, cn->body.p, cn->body.len, &lim, &r, &err) != CLLM_OK)
        return http_respond_error(c, &err);
    if (r.n_messages > 0) {
        if (gen_chat_prompt(&s->env, &r, &rendered, &len, &add_special, &err) != CLLM_OK) {
            openai_request_free(&r);
            return http_respond_error(c, &err);
        }
        text = rendered;
    } else {
        text = r.prompt_text;
        len = r.prompt_text_len;
        add_special = r.add_special_tokens != 0;
    }
    if (tokenizer_encode(s->model->tok, text, len, add_special, true, &ids, &n) != CLLM_OK) {
        openai_error_set(&err, 400, "prompt", "%s", cllm_error_message());
        ret = http_respond_error(c, &err);
    } else {
        ret = http_respond_json(c, 200, openai_tokenize_json(s->model->tok, ids, n, s->env.max_model_len,
                                                             r.return_token_strs));
    }
    free(ids);
    free(rendered);
    openai_request_free(&r);
    return ret;
}

static enum MHD_Result handle_detokenize(server_t *s, struct MHD_Connection *c, const conn_t *cn)
{
    openai_limits_t lim;
    openai_request_t r;
    openai_error_t err;
    char *text = NULL;
    size_t len = 0;
    json_t *j;

    gen_limits(&s->env, &lim);
    if (openai_request_parse(OPENAI_DETOKENIZE, cn->body.p, cn->body.len, &lim, &r, &err) != CLLM_OK)
        return http_respond_error(c, &err);
    if (tokenizer_decode(s->model->tok, r.prompt_tokens, r.n_prompt_tokens, true, &text, &len) != CLLM_OK) {
        openai_request_free(&r);
        return http_respond_status(c, 500, cllm_error_message());
    }
    j = json_object();
    if (j) json_object_set_new(j, "prompt", openai_json_text(text, len));
    free(text);
    openai_request_free(&r);
    return http_respond_json(c, 200, j);
}

/* ---- dispatch ---- */

/* The first callback of a request: everything decided from the request line and headers.
 * Returns a route to continue with (and the key's index in *key), or NULL after queuing an
 * answer in *ret. */
static const route_t *admit(server_t *s, struct MHD_Connection *c, const char *url, const char *method, int *key,
                            enum MHD_Result *ret)
{
    const route_t *rt = NULL;
    const char *cl;
    char msg[192];
    bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

    /* every path but /health, unknown ones included (a 404 would tell which paths exist) */
    *key = -1;
    if (auth_key_count(s->auth) > 0 && strcmp(url, "/health") != 0) {
        *key = auth_check(s->auth, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
        if (*key < 0) {
            *ret = http_respond_status(c, 401, "Unauthorized: a valid API key is required (Authorization: Bearer KEY)");
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!strcmp(url, routes[i].path)) rt = &routes[i];
    if (!rt) {
        snprintf(msg, sizeof(msg), "Not Found: no endpoint %.120s", url);
        *ret = http_respond_status(c, 404, msg);
        return NULL;
    }
    if (strcmp(method, rt->method) != 0 && !(is_get && !strcmp(rt->method, "GET"))) {
        snprintf(msg, sizeof(msg), "Method Not Allowed: %s takes %s, not %.16s", rt->path, rt->method, method);
        *ret = http_respond_status(c, 405, msg);
        return NULL;
    }
    if (atomic_load(&s->draining)) {
        *ret = http_respond_status(c, 503, "the server is shutting down");
        return NULL;
    }
    cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->cfg.max_request_bytes) {
        snprintf(msg, sizeof(msg), "the request body (%s bytes) is over the limit of %zu bytes", cl,
                 s->cfg.max_request_bytes);
        *ret = http_respond_status(c, 413, msg);
        return NULL;
    }
    return rt;
}

static enum MHD_Result dispatch(server_t *s, struct MHD_Connection *c, conn_t *cn)
{
    if (atomic_load(&s->draining)) return http_respond_status(c, 503, "the server is shutting down");
    switch (cn->route->id) {
    case ROUTE_CHAT: return gen_handle(&s->env, c, OPENAI_CHAT, cn->body.p, cn->body.len, cn->t_arrival, cn->key);
    case ROUTE_COMPLETIONS:
        return gen_handle(&s->env, c, OPENAI_COMPLETION, cn->body.p, cn->body.len, cn->t_arrival, cn->key);
    case ROUTE_MODELS: return handle_models(s, c);
    case ROUTE_HEALTH: return http_respond_text(c, 200, NULL, "", 0);
    case ROUTE_METRICS: return handle_metrics(s, c);
    case ROUTE_TOKENIZE: return handle_tokenize(s, c, cn);
    case ROUTE_DETOKENIZE: return handle_detokenize(s, c, cn);
    case ROUTE_VERSION: return handle_version(c);
    }
    return http_respond_status(c, 500, "unknown route");
}

/* The connection's conn_guard entry (libmicrohttpd's socket context), or NULL. */
static conn_guard_entry_t *connection_entry(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? (conn_guard_entry_t *)ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    server_t *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        bool admitted = true;
        *socket_context = conn_guard_open(s->guard, http_connection_fd(c), &admitted);
        if (*socket_context && !admitted)
            log_warn("http: over --max-connections %d: a new connection will be answered 503", s->cfg.max_connections);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_guard_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* At accept: past the overflow band above max_connections, the connection is closed unread. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    server_t *s = cls;
    (void)addr;
    (void)addrlen;
    if (conn_guard_can_accept(s->guard)) return MHD_YES;
    log_warn("http: %d connections open: refusing a new one", conn_guard_open_count(s->guard));
    return MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    server_t *s = cls;
    conn_t *cn = *con_cls;
    (void)version;

    if (!cn) {
        enum MHD_Result ret = MHD_YES;
        const conn_guard_entry_t *ge = connection_entry(c);
        if (!ge) return MHD_NO; /* not tracked (no memory): not served */
        cn = calloc(1, sizeof(*cn));
        if (!cn) return MHD_NO;
        cn->t_arrival = clock_now_s();
        cn->key = -1;
        *con_cls = cn;
        if (!conn_guard_admitted(ge)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "too many connections: this server serves %d at once; retry later",
                     s->cfg.max_connections);
            return http_respond_status_close(c, 503, msg);
        }
        cn->route = admit(s, c, url, method, &cn->key, &ret);
        return ret;
    }
    if (!cn->route) {
        /* answered early: drop whatever body still arrives */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cn->too_large) return MHD_YES;
        if (cn->body.len + n > s->cfg.max_request_bytes) {
            cn->too_large = true;
            free(cn->body.p);
            memset(&cn->body, 0, sizeof(cn->body));
            return MHD_YES;
        }
        if (!strbuf_append(&cn->body, upload_data, n)) return MHD_NO;
        return MHD_YES;
    }
    if (cn->too_large) {
        char msg[128];
        cn->route = NULL;
        snprintf(msg, sizeof(msg), "the request body is over the limit of %zu bytes", s->cfg.max_request_bytes);
        return http_respond_status(c, 413, msg);
    }
    {
        enum MHD_Result ret;
        /* the request is whole: no deadline and no idle timeout while it is served (a long
         * generation is not a slow client) */
        conn_guard_serving(s->guard, connection_entry(c));
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
        ret = dispatch(s, c, cn);
        cn->route = NULL; /* answered: later callbacks (if any) only drain */
        return ret;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    server_t *s = cls;
    conn_t *cn = *con_cls;
    (void)toe;
    /* back to waiting: the next request on a keep-alive connection has its own deadline */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s->cfg.timeout_s);
    conn_guard_waiting(s->guard, connection_entry(c));
    if (!cn) return;
    free(cn->body.p);
    free(cn);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n;
    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
    log_debug("http: %s", buf);
}

/* ---- life cycle ---- */

/* Appends "name=value" to the list of defaults being logged (list_cap bytes). */
static void gen_default_note(char *list, size_t cap, const char *name, double value)
{
    size_t n = strlen(list);
    if (n < cap) snprintf(list + n, cap - n, "%s%s=%g", n ? ", " : "", name, value);
}

/* Whether the model's default for name (value) is in range; logs one that is not. */
static bool gen_default_ok(bool ok, const char *name, double value)
{
    if (!ok) log_warn("server: the model's generation config has %s %g, out of range: ignored", name, value);
    return ok;
}

/* Copies the model's sampling defaults that are in range into *out and logs them (as vLLM
 * does); false when none is left. */
static bool check_gen_defaults(const model_gen_defaults_t *m, model_gen_defaults_t *out)
{
    char list[256] = "";
    memset(out, 0, sizeof(*out));
    if (m->has_temperature &&
        gen_default_ok(isfinite(m->temperature) && m->temperature >= 0.0f, "temperature", m->temperature)) {
        out->has_temperature = true;
        out->temperature = m->temperature;
        gen_default_note(list, sizeof(list), "temperature", m->temperature);
    }
    if (m->has_top_p && gen_default_ok(m->top_p > 0.0f && m->top_p <= 1.0f, "top_p", m->top_p)) {
        out->has_top_p = true;
        out->top_p = m->top_p;
        gen_default_note(list, sizeof(list), "top_p", m->top_p);
    }
    if (m->has_top_k && gen_default_ok(m->top_k >= -1, "top_k", m->top_k)) {
        out->has_top_k = true;
        out->top_k = m->top_k;
        gen_default_note(list, sizeof(list), "top_k", m->top_k);
    }
    if (m->has_min_p && gen_default_ok(m->min_p >= 0.0f && m->min_p <= 1.0f, "min_p", m->min_p)) {
        out->has_min_p = true;
        out->min_p = m->min_p;
        gen_default_note(list, sizeof(list), "min_p", m->min_p);
    }
    if (m->has_repetition_penalty &&
        gen_default_ok(isfinite(m->repetition_penalty) && m->repetition_penalty > 0.0f, "repetition_penalty",
                       m->repetition_penalty)) {
        out->has_repetition_penalty = true;
        out->repetition_penalty = m->repetition_penalty;
        gen_default_note(list, sizeof(list), "repetition_penalty", m->repetition_penalty);
    }
    if (!list[0]) return false;
    log_warn("server: default sampling parameters have been overridden by the model's Hugging Face generation "
             "config recommended by the model creator (%s). If this is not intended, start the server with "
             "--generation-config vllm", list);
    return true;
}

static char *dup_or_null(const char *s)
{
    char *d;
    if (!s) return NULL;
    d = strdup(s);
    return d;
}

status_t server_create(const server_config_t *cfg, cllm_engine_t *e, server_t **out)
{
    server_t *s;
    const char *src;
    const tokenizer_t *tok;
    status_t st;

    *out = NULL;
    if (!cfg || !e || !cfg->served_model_name || !cfg->served_model_name[0])
        return cllm_error(CLLM_ERR_INVALID_ARG, "server: a served model name and an engine are required");
    s = calloc(1, sizeof(*s));
    if (!s) return cllm_error(CLLM_ERR_NOMEM, "server: out of memory");
    s->cfg = *cfg;
    s->host = dup_or_null(cfg->host ? cfg->host : "127.0.0.1");
    s->name = dup_or_null(cfg->served_model_name);
    s->model_path = dup_or_null(cfg->model_path ? cfg->model_path : cfg->served_model_name);
    if (!s->host || !s->name || !s->model_path) {
        server_destroy(s);
        return cllm_error(CLLM_ERR_NOMEM, "server: out of memory");
    }
    s->cfg.host = s->host;
    s->cfg.served_model_name = s->name;
    s->cfg.model_path = s->model_path;
    s->cfg.chat_template = NULL;
    if (s->cfg.max_request_bytes == 0) s->cfg.max_request_bytes = 16u << 20;
    if (s->cfg.max_connections <= 0) s->cfg.max_connections = 1024;
    if (s->cfg.max_connections_per_ip < 0) s->cfg.max_connections_per_ip = 0;
    s->auth = cfg->auth;
    if (!s->auth) {
        /* no keys: still the secret that client cache salts are hashed with */
        if ((st = auth_create(&s->own_auth)) != CLLM_OK) {
            server_destroy(s);
            return st;
        }
        s->auth = s->own_auth;
    }
    s->cfg.auth = s->auth;
    if ((st = conn_guard_create(s->cfg.max_connections, s->cfg.timeout_s, &s->guard)) != CLLM_OK) {
        server_destroy(s);
        return st;
    }
    s->engine = e;
    s->model = engine_model(e);
    s->created = (int64_t)time(NULL);
    tok = s->model->tok;

    if (tokenizer_bos(tok) >= 0) {
        size_t n = tokenizer_token_to_bytes(tok, tokenizer_bos(tok), true, s->bos_text, sizeof(s->bos_text) - 1);
        s->bos_text[n < sizeof(s->bos_text) ? n : sizeof(s->bos_text) - 1] = '\0';
    }
    if (tokenizer_eos(tok) >= 0) {
        size_t n = tokenizer_token_to_bytes(tok, tokenizer_eos(tok), true, s->eos_text, sizeof(s->eos_text) - 1);
        s->eos_text[n < sizeof(s->eos_text) ? n : sizeof(s->eos_text) - 1] = '\0';
    }
    src = cfg->chat_template ? cfg->chat_template : s->model->chat_template;
    if (src) {
        st = chat_template_create(src, strlen(src), &s->tmpl);
        if (st != CLLM_OK) {
            if (cfg->chat_template) {
                char msg[512];
                snprintf(msg, sizeof(msg), "%s", cllm_error_message());
                server_destroy(s);
                return cllm_error(st, "server: the chat template does not parse: %s", msg);
            }
            s->tmpl_error = strdup(cllm_error_message());
            log_warn("server: the model's chat template does not parse (%s): chat requests will be refused",
                     cllm_error_message());
        }
    }
    if ((st = metrics_create(s->name, &s->metrics)) != CLLM_OK) {
        server_destroy(s);
        return st;
    }
    s->env.engine = e;
    s->env.model = s->model;
    s->env.tmpl = s->tmpl;
    s->env.tmpl_error = s->tmpl_error;
    s->env.bos_text = s->bos_text;
    s->env.eos_text = s->eos_text;
    s->env.served_name = s->name;
    s->env.max_model_len = engine_config(e)->max_model_len;
    s->env.metrics = s->metrics;
    s->env.auth = s->auth;
    s->env.gen_defaults = cfg->use_model_gen_defaults && check_gen_defaults(&s->model->gen_defaults, &s->gen_defaults)
                              ? &s->gen_defaults
                              : NULL;
    if (auth_key_count(s->auth) > 0)
        log_info("server: %zu API key(s) of %zu tenant(s) required on every endpoint but /health; the prefix cache "
                 "is isolated per tenant", auth_key_count(s->auth), auth_tenant_count(s->auth));
    atomic_init(&s->env.in_flight, 0);
    atomic_init(&s->env.aborting, false);
    atomic_init(&s->draining, false);
    *out = s;
    return CLLM_OK;
}

status_t server_start(server_t *s)
{
    struct addrinfo hints, *ai = NULL;
    char port[16];
    const union MHD_DaemonInfo *di;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    int rc;

    if (s->daemon) return cllm_error(CLLM_ERR_INVALID_ARG, "server: already started");
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", s->cfg.port);
    rc = getaddrinfo(s->host, port, &hints, &ai);
    if (rc != 0 || !ai)
        return cllm_error(CLLM_ERR_IO, "server: cannot resolve host '%s': %s", s->host, gai_strerror(rc));
    if (ai->ai_family == AF_INET6) {
        /* "::" listens on IPv4 too, as it does for most servers */
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ai->ai_addr;
        flags |= IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    }

    /* probe the address first so that "address in use" is reported as such */
    {
        int fd = socket(ai->ai_family, SOCK_STREAM, 0), one = 1;
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                int e = errno;
                close(fd);
                freeaddrinfo(ai);
                return cllm_error(CLLM_ERR_IO, "server: cannot listen on %s:%d: %s", s->host, s->cfg.port, strerror(e));
            }
            close(fd);
        }
    }
    /* libmicrohttpd's own limit stays above the guard's band, so that on_accept decides */
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->cfg.port, on_accept, s, on_access, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)s->cfg.max_connections + CONN_GUARD_OVERFLOW + 16u,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections_per_ip,
                                 MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon)
        return cllm_error(CLLM_ERR_IO, "server: cannot listen on %s:%d (libmicrohttpd refused to start)", s->host,
                          s->cfg.port);
    di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : s->cfg.port;
    return CLLM_OK;
}

void server_shutdown(server_t *s, double grace_s)
{
    double deadline;
    if (!s || !s->daemon) return;
    atomic_store(&s->draining, true);
    deadline = clock_now_s() + (grace_s > 0 ? grace_s : 0);
    while (atomic_load(&s->env.in_flight) > 0 && clock_now_s() < deadline) usleep(20000);
    if (atomic_load(&s->env.in_flight) > 0) {
        log_info("server: cancelling %d unfinished request(s)", atomic_load(&s->env.in_flight));
        atomic_store(&s->env.aborting, true);
        deadline = clock_now_s() + 2.0;
        while (atomic_load(&s->env.in_flight) > 0 && clock_now_s() < deadline) usleep(20000);
    }
    atomic_store(&s->env.aborting, true);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void server_destroy(server_t *s)
{
    if (!s) return;
    server_shutdown(s, 0.0);
    conn_guard_destroy(s->guard);
    auth_destroy(s->own_auth);
    chat_template_destroy(s->tmpl);
    metrics_destroy(s->metrics);
    free(s->tmpl_error);
    free(s->host);
    free(s->name);
    free(s->model_path);
    free(s);
}

/* server.h: the OpenAI-compatible HTTP server of `cllm serve` (vLLM's API), on libmicrohttpd.
 *
 * Endpoints: POST /v1/chat/completions, POST /v1/completions (streaming SSE or not),
 * GET /v1/models, GET /health, GET /metrics (Prometheus), POST /tokenize, POST /detokenize,
 * GET /version. Errors are OpenAI-style JSON: 400 bad request, 401 API key, 404 unknown model or
 * path, 405 wrong method, 413 body too large, 503 shutting down or over the connection limit,
 * 500 internal. Error bodies never quote the prompt.
 *
 * Security (README "Security and isolation"): with API keys configured (auth.h) every endpoint
 * but /health needs one (vLLM guards only the /v1 paths), and each request's prefix-cache salt is
 * derived from its key's tenant, so tenants never share KV blocks. Limits: body size, the
 * connection count (conn_guard.h), a deadline for each whole request to arrive (a client
 * trickling bytes is dropped; a body reaches the engine only once whole).
 *
 * Threads: one HTTP thread per connection (libmicrohttpd); they parse, tokenize (chat
 * templates, /tokenize) and wait on cllm_engine_poll, but never run the model: the engine
 * steps on its own thread. A client that disconnects mid-request or mid-stream cancels its
 * engine request, which frees its KV blocks at the next step.
 *
 * Invariants: the server borrows the engine (the caller creates, starts, shuts down and
 * destroys it, around the server's life); every submitted engine request is either polled to
 * its end or cancelled, never left behind; after server_shutdown no HTTP thread remains. */
#ifndef CLLM_SERVER_SERVER_H
#define CLLM_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/engine.h"
#include "cllm/status.h"
#include "server/auth.h"

#define CLLM_SERVER_VERSION "0.1.0"

typedef struct server server_t;

typedef struct {
    const char *host;              /* address to bind ("127.0.0.1"; "0.0.0.0" / "::" for all) */
    int port;                      /* 8000; 0: any free port (see server_port) */
    const char *served_model_name; /* the "model" clients send and see; required */
    const char *model_path;        /* shown as "root" in /v1/models */
    const auth_t *auth;            /* API keys (borrowed: it must outlive the server); NULL or no
                                      keys: no authentication */
    size_t max_request_bytes;      /* request bodies above it get 413 (16 MiB) */
    const char *chat_template;     /* Jinja source overriding the model's, or NULL */
    int max_connections;           /* connections served at once (1024); the next
                                      CONN_GUARD_OVERFLOW get 503, more are refused */
    int max_connections_per_ip;    /* connections from one address at most; 0: no limit */
    unsigned timeout_s;            /* each whole request must arrive within it, and an idle
                                      keep-alive connection is closed after it (60); 0: never */
    bool use_model_gen_defaults;   /* --generation-config auto (true): the model's sampling
                                      defaults fill omitted fields; false: vllm (ignored) */
} server_config_t;

void server_config_default(server_config_t *cfg);

/* Prepares the server for engine e (borrowed; it must outlive the server): compiles the chat
 * template (the configured one, else the model's; a broken model template only disables chat,
 * a broken configured one is an error). Does not listen yet. */
status_t server_create(const server_config_t *cfg, cllm_engine_t *e, server_t **out);
/* Binds and starts serving. CLLM_ERR_IO with the reason (address in use, bad host). */
status_t server_start(server_t *s);
/* The port actually bound (useful with port 0), or 0 before server_start. */
int server_port(const server_t *s);
/* Graceful stop: new requests get 503 at once; in-flight requests get up to grace_s seconds to
 * finish, then are cancelled (streams end with an error event, others get 503); then the
 * listener and every connection are closed. Safe to call more than once. */
void server_shutdown(server_t *s, double grace_s);
/* Requests currently being generated (submitted and not yet finished or cancelled). */
int server_in_flight(const server_t *s);
/* HTTP connections open now. */
int server_connections(const server_t *s);
/* Shuts down (grace 0) if still running and frees the server (not the engine). */
void server_destroy(server_t *s);

#endif

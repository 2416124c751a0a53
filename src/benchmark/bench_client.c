/* bench_client.c: the libcurl multi-interface load generator (see bench_client.h).
 *
 * Invariants: every easy handle in the multi handle belongs to exactly one xfer_t in the
 * `slots` array and is removed and cleaned up when its transfer completes; a slot is either
 * busy (easy != NULL) or on the free_slots stack, never both; a record is
 * written only by its own transfer; request bodies are all built before the clock starts. */
#include "benchmark/bench_client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchmark/bench_sse.h"
#include "benchmark/bench_stats.h"
#include "core/clock.h"
#include "core/strbuf.h"

#define MAX_RAW_BODY (1u << 20) /* a non-streamed or error body kept at most */
/* never through an http_proxy from the environment: a proxy would distort local timings */
#define LOOPBACK_HOSTS "localhost,127.0.0.1,::1"

static status_t curl_init_once(void)
{
    static bool done;
    if (!done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return cllm_error(CLLM_ERR_IO, "bench: libcurl failed to initialize");
        done = true;
    }
    return CLLM_OK;
}

void bench_client_config_default(bench_client_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->base_url = "http://127.0.0.1:8000";
    cfg->endpoint = BENCH_ENDPOINT_CHAT;
    cfg->request_rate = INFINITY;
    cfg->max_tokens = -1;
    cfg->temperature = 0.0;
}

status_t bench_client_body(const bench_client_config_t *cfg, const bench_prompt_t *p, char **out)
{
    json_t *root = json_object(), *so = json_object();
    int32_t max_tokens = p->max_tokens >= 0 ? p->max_tokens : cfg->max_tokens;
    status_t st = CLLM_OK;

    *out = NULL;
    if (!root || !so) {
        json_decref(root);
        json_decref(so);
        return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    }
    json_object_set_new(root, "model", json_string(cfg->model ? cfg->model : ""));
    if (cfg->endpoint == BENCH_ENDPOINT_CHAT) {
        json_t *msgs;
        if (p->token_ids) {
            st = cllm_error(CLLM_ERR_INVALID_ARG, "bench: token-id prompts need --endpoint completions");
            goto out;
        }
        if (p->messages_json) {
            msgs = json_loads(p->messages_json, 0, NULL);
        } else {
            msgs = json_array();
            json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", p->text ? p->text : ""));
        }
        json_object_set_new(root, "messages", msgs);
    } else {
        if (p->messages_json) {
            st = cllm_error(CLLM_ERR_INVALID_ARG, "bench: a message list needs --endpoint chat");
            goto out;
        }
        if (p->token_ids) {
            json_t *ids = json_array();
            for (int32_t i = 0; i < p->n_token_ids; i++) json_array_append_new(ids, json_integer(p->token_ids[i]));
            json_object_set_new(root, "prompt", ids);
        } else {
            json_object_set_new(root, "prompt", json_string(p->text ? p->text : ""));
        }
    }
    json_object_set_new(root, "stream", json_true());
    json_object_set_new(so, "include_usage", json_true());
    json_object_set_new(root, "stream_options", so);
    so = NULL;
    if (max_tokens >= 0) json_object_set_new(root, "max_tokens", json_integer(max_tokens));
    if (cfg->temperature >= 0) json_object_set_new(root, "temperature", json_real(cfg->temperature));
    if (cfg->ignore_eos) json_object_set_new(root, "ignore_eos", json_true());
    if (cfg->extra_body && *cfg->extra_body) {
        json_error_t jerr;
        json_t *extra = json_loads(cfg->extra_body, 0, &jerr);
        if (!json_is_object(extra)) {
            json_decref(extra);
            st = cllm_error(CLLM_ERR_INVALID_ARG, "bench: --extra-body must be a JSON object");
            goto out;
        }
        json_object_update(root, extra);
        json_decref(extra);
    }
    if (!(*out = json_dumps(root, JSON_COMPACT)))
        st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory (or a prompt that is not valid UTF-8)");
out:
    json_decref(so);
    json_decref(root);
    return st;
}

/* ---- one transfer ---- */

/* Appends up to the max bytes a record keeps (the rest is dropped, not an error). */
static bool buf_add(strbuf_t *b, const char *s, size_t n, size_t max)
{
    if (b->len + n > max) n = max > b->len ? max - b->len : 0;
    return strbuf_append(b, s, n);
}

typedef struct {
    CURL *easy;
    bench_record_t *rec;   /* NULL for a warmup request */
    bench_record_t scratch; /* the record of a warmup request */
    const bench_client_config_t *cfg;
    bench_sse_t sse;
    strbuf_t raw;             /* body of a non-SSE response */
    strbuf_t text;            /* generated text (keep_text) */
    size_t itl_cap;
    double t_send, t_last, t_first_choice;
    bool checked;          /* status and content type looked at */
    bool is_sse, got_content;
    char errbuf[CURL_ERROR_SIZE];
} xfer_t;

static void rec_fail(bench_record_t *r, const char *msg)
{
    if (r->error) return; /* keep the first */
    r->error = strdup(msg && *msg ? msg : "unknown error");
    r->ok = false;
}

/* Takes what a chunk (or a non-streamed body) says into the transfer's record. */
static void take_chunk(xfer_t *x, const bench_sse_chunk_t *c, double t)
{
    bench_record_t *r = x->rec;
    if (c->error[0]) rec_fail(r, c->error);
    if (c->has_choice && isnan(x->t_first_choice)) x->t_first_choice = t;
    if (c->content && c->content_len > 0) {
        if (!x->got_content) {
            r->ttft_s = t - x->t_send;
            x->got_content = true;
        } else {
            if (r->n_itl == x->itl_cap) {
                size_t cap = x->itl_cap ? x->itl_cap * 2 : 64;
                double *p = realloc(r->itl_s, cap * sizeof(double));
                if (!p) {
                    rec_fail(r, "out of memory");
                    return;
                }
                r->itl_s = p;
                x->itl_cap = cap;
            }
            r->itl_s[r->n_itl++] = t - x->t_last;
        }
        x->t_last = t;
        r->n_chunks++;
        if (x->cfg->keep_text && !buf_add(&x->text, c->content, c->content_len, SIZE_MAX / 2)) rec_fail(r, "out of memory");
    }
    if (c->prompt_tokens >= 0) r->prompt_tokens = c->prompt_tokens;
    if (c->completion_tokens >= 0) r->output_tokens = c->completion_tokens;
    if (c->cached_tokens >= 0) r->cached_tokens = c->cached_tokens;
}

static status_t on_event(const char *data, size_t len, void *user)
{
    xfer_t *x = user;
    bench_sse_chunk_t c;
    double t = clock_now_s();
    status_t st = bench_sse_parse_chunk(data, len, &c);
    if (st == CLLM_OK) take_chunk(x, &c, t);
    else rec_fail(x->rec, cllm_error_message());
    bench_sse_chunk_free(&c);
    return st;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *user)
{
    xfer_t *x = user;
    size_t n = size * nmemb;
    if (!x->checked) {
        char *ct = NULL;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->rec->http_status);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
        /* SSE by its content type, or by its first bytes for servers that mislabel it */
        x->is_sse = x->rec->http_status == 200 &&
                    ((ct && strstr(ct, "text/event-stream")) || (n >= 5 && !memcmp(ptr, "data:", 5)) ||
                     (n >= 1 && ptr[0] == ':'));
        x->checked = true;
    }
    if (!x->is_sse) {
        if (!buf_add(&x->raw, ptr, n, MAX_RAW_BODY)) return 0;
        return n;
    }
    return bench_sse_feed(&x->sse, ptr, n, on_event, x) == CLLM_OK ? n : 0;
}

/* The message of a JSON error body ({"error": {"message": ...}} or {"error": "..."}), or the
 * body's first bytes. */
static void http_error(bench_record_t *r, const strbuf_t *raw)
{
    char msg[320];
    json_t *root = raw->p ? json_loads(raw->p, 0, NULL) : NULL, *e = json_object_get(root, "error");
    const char *m = json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    if (!m) m = json_string_value(json_object_get(root, "message"));
    if (m) snprintf(msg, sizeof(msg), "HTTP %ld: %.280s", r->http_status, m);
    else snprintf(msg, sizeof(msg), "HTTP %ld: %.200s", r->http_status, raw->p ? raw->p : "(empty body)");
    for (char *q = msg; *q; q++)
        if (*q == '\n' || *q == '\r') *q = ' ';
    rec_fail(r, msg);
    json_decref(root);
}

/* The transfer ended with curl's result `res` at time t: finish its record. */
static void xfer_finish(xfer_t *x, CURLcode res, double t)
{
    bench_record_t *r = x->rec;
    r->e2e_s = t - x->t_send;
    if (res != CURLE_OK) {
        char msg[CURL_ERROR_SIZE + 64];
        if (!r->error) {
            snprintf(msg, sizeof(msg), "%s%s%s", curl_easy_strerror(res), x->errbuf[0] ? ": " : "", x->errbuf);
            rec_fail(r, msg);
        }
    } else {
        if (!x->checked) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->http_status);
        if (r->http_status != 200) {
            http_error(r, &x->raw);
        } else if (x->is_sse) {
            if (bench_sse_finish(&x->sse, on_event, x) != CLLM_OK) rec_fail(r, cllm_error_message());
        } else {
            bench_sse_chunk_t c;
            if (bench_sse_parse_chunk(x->raw.p ? x->raw.p : "", x->raw.len, &c) == CLLM_OK) take_chunk(x, &c, t);
            else rec_fail(r, cllm_error_message());
            bench_sse_chunk_free(&c);
        }
    }
    if (!r->error) r->ok = true;
    if (r->ok) {
        if (!x->got_content) r->ttft_s = (isnan(x->t_first_choice) ? t : x->t_first_choice) - x->t_send;
        if (r->output_tokens < 0) r->output_tokens = r->n_chunks;
        r->tpot_s = r->output_tokens > 1 ? (r->e2e_s - r->ttft_s) / (double)(r->output_tokens - 1) : NAN;
    } else {
        r->ttft_s = r->tpot_s = NAN;
    }
    if (x->cfg->keep_text) {
        r->text = x->text.p ? x->text.p : strdup("");
        x->text.p = NULL;
    }
}

static void xfer_release(xfer_t *x, CURLM *multi)
{
    if (x->easy) {
        curl_multi_remove_handle(multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    bench_sse_free(&x->sse);
    free(x->raw.p);
    free(x->text.p);
    if (x->rec == &x->scratch) {
        free(x->scratch.error);
        free(x->scratch.itl_s);
        free(x->scratch.text);
    }
    memset(x, 0, sizeof(*x));
}

static void record_init(bench_record_t *r, const bench_prompt_t *p)
{
    memset(r, 0, sizeof(*r));
    r->ttft_s = r->e2e_s = r->tpot_s = NAN;
    r->prompt_tokens = p->prompt_len > 0 ? p->prompt_len : -1;
    r->output_tokens = -1;
    r->cached_tokens = -1;
}

/* ---- the progress bar ---- */

typedef struct {
    const char *label;
    bool tty, enabled;
    double t_drawn;
    int last_decile;   /* not a terminal: a line at each tenth done */
    size_t last_done;
} progress_t;

static void progress_draw(progress_t *pg, size_t done, size_t failed, size_t n, double elapsed, bool final)
{
    char bar[41];
    int w = (int)sizeof(bar) - 1, fill = n ? (int)((double)done / (double)n * w) : w;
    int decile = n ? (int)(done * 10 / n) : 10;
    if (!pg->enabled) return;
    if (pg->tty) {
        if (!final && elapsed - pg->t_drawn < 0.1) return;
    } else if (final ? done == pg->last_done : decile <= pg->last_decile) {
        return;
    }
    pg->t_drawn = elapsed;
    pg->last_decile = decile;
    pg->last_done = done;
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    fprintf(stderr, "%s%s%s[%s] %zu/%zu", pg->tty ? "\r" : "", pg->label ? pg->label : "", pg->label ? " " : "", bar,
            done, n);
    if (failed) fprintf(stderr, " (%zu failed)", failed);
    fprintf(stderr, " %.1f s%s", elapsed, pg->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* ---- the driver ---- */

/* Sends `count` requests (bodies[i], recs[i] or NULL for unrecorded ones) released at
 * arrivals[i] (seconds after the call), at most maxc at once. Returns the elapsed time. */
static status_t run_batch(const bench_client_config_t *cfg, const char *url, struct curl_slist *headers,
                          char *const *bodies, const bench_prompt_t *prompts, bench_record_t *recs,
                          const double *arrivals, size_t count, int32_t maxc, const char *label, double *elapsed,
                          size_t *n_failed, char *first_error, size_t first_error_cap)
{
    CURLM *multi = curl_multi_init();
    xfer_t *slots;
    size_t *free_slots, n_free = 0;
    size_t n_slots = maxc > 0 && (size_t)maxc < count ? (size_t)maxc : count, next = 0, done = 0, in_flight = 0;
    double t0 = clock_now_s();
    progress_t pg = { label, isatty(2) != 0, cfg->progress, -1.0, 0, 0 };
    status_t st = CLLM_OK;

    *n_failed = 0;
    if (!multi) return cllm_error(CLLM_ERR_IO, "bench: libcurl multi handle failed");
    slots = calloc(n_slots ? n_slots : 1, sizeof(xfer_t));
    free_slots = malloc((n_slots ? n_slots : 1) * sizeof(size_t));
    if (!slots || !free_slots) {
        free(slots);
        free(free_slots);
        curl_multi_cleanup(multi);
        return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    }
    /* a stack of idle slots: taking and returning one is O(1) however many run at once */
    for (size_t s = 0; s < n_slots; s++) free_slots[n_free++] = n_slots - 1 - s;
    progress_draw(&pg, 0, 0, count, 0.0, false);
    while (done < count) {
        double t = clock_now_s() - t0;
        int running = 0, left = 0;
        long wait_ms = 100;
        CURLMsg *m;

        /* release every request whose time has come while there is a free slot */
        while (next < count && in_flight < n_slots && arrivals[next] <= t) {
            xfer_t *x = &slots[free_slots[--n_free]];
            x->cfg = cfg;
            x->rec = recs ? &recs[next] : &x->scratch;
            record_init(x->rec, &prompts[next]);
            x->t_first_choice = NAN;
            bench_sse_init(&x->sse, 0);
            if (!(x->easy = curl_easy_init())) {
                st = cllm_error(CLLM_ERR_IO, "bench: libcurl easy handle failed");
                break;
            }
            curl_easy_setopt(x->easy, CURLOPT_URL, url);
            curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, bodies[next]);
            curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(bodies[next]));
            curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_write);
            curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
            curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
            curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
            curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(x->easy, CURLOPT_NOPROXY, LOOPBACK_HOSTS);
            curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
            if (cfg->timeout_s > 0) curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_s * 1000.0));
            x->t_send = clock_now_s();
            x->rec->start_s = x->t_send - t0;
            if (curl_multi_add_handle(multi, x->easy) != CURLM_OK) {
                st = cllm_error(CLLM_ERR_IO, "bench: libcurl could not add a transfer");
                break;
            }
            next++;
            in_flight++;
        }
        if (st != CLLM_OK) break;
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            st = cllm_error(CLLM_ERR_IO, "bench: libcurl transfer loop failed");
            break;
        }
        while ((m = curl_multi_info_read(multi, &left))) {
            xfer_t *x;
            char *priv = NULL;
            if (m->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            if (!(x = (xfer_t *)priv)) continue;
            xfer_finish(x, m->data.result, clock_now_s());
            if (!x->rec->ok) {
                if (!*n_failed && first_error_cap)
                    snprintf(first_error, first_error_cap, "%s", x->rec->error ? x->rec->error : "unknown error");
                (*n_failed)++;
            }
            xfer_release(x, multi);
            free_slots[n_free++] = (size_t)(x - slots);
            in_flight--;
            done++;
        }
        progress_draw(&pg, done, *n_failed, count, clock_now_s() - t0, false);
        if (done >= count) break;
        if (next < count && in_flight < n_slots) {
            double until = (arrivals[next] - (clock_now_s() - t0)) * 1000.0;
            if (until < (double)wait_ms) wait_ms = until > 0 ? (long)until : 0;
        }
        if (wait_ms > 0) curl_multi_poll(multi, NULL, 0, (int)wait_ms, NULL);
    }
    *elapsed = clock_now_s() - t0;
    progress_draw(&pg, done, *n_failed, count, *elapsed, true);
    for (size_t s = 0; s < n_slots; s++)
        if (slots[s].easy) xfer_release(&slots[s], multi);
    free(slots);
    free(free_slots);
    curl_multi_cleanup(multi);
    return st;
}

/* base_url without a trailing "/" or "/v1", then the endpoint path. */
static char *endpoint_url(const char *base, bench_endpoint_t ep)
{
    size_t n = strlen(base);
    const char *path = ep == BENCH_ENDPOINT_CHAT ? "/v1/chat/completions" : "/v1/completions";
    char *url;
    while (n && base[n - 1] == '/') n--;
    if (n >= 3 && !memcmp(base + n - 3, "/v1", 3)) n -= 3;
    if (!(url = malloc(n + strlen(path) + 1))) return NULL;
    memcpy(url, base, n);
    strcpy(url + n, path);
    return url;
}

status_t bench_client_run(const bench_client_config_t *cfg, const bench_dataset_t *ds, bench_run_t *out)
{
    size_t total = (size_t)ds->n_warmup + (size_t)ds->n, n_failed = 0;
    char **bodies = NULL, *url = NULL;
    double *arrivals = NULL, elapsed = 0.0;
    char first_error[256] = "";
    struct curl_slist *headers = NULL;
    status_t st;
    time_t wall;
    struct tm tm;

    memset(out, 0, sizeof(*out));
    if (!cfg->base_url || !*cfg->base_url || ds->n < 1) return cllm_error(CLLM_ERR_INVALID_ARG, "bench: nothing to run");
    if ((st = curl_init_once()) != CLLM_OK) return st;
    bodies = calloc(total, sizeof(char *));
    arrivals = calloc(total, sizeof(double));
    out->records = calloc((size_t)ds->n, sizeof(bench_record_t));
    url = endpoint_url(cfg->base_url, cfg->endpoint);
    headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!bodies || !arrivals || !out->records || !url || !headers) {
        st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        goto out;
    }
    out->n = (size_t)ds->n;
    if (cfg->api_key && *cfg->api_key) {
        char auth[1024];
        struct curl_slist *h;
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->api_key);
        if (!(h = curl_slist_append(headers, auth))) {
            st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
            goto out;
        }
        headers = h;
    }
    for (size_t i = 0; i < total; i++)
        if ((st = bench_client_body(cfg, &ds->prompts[i], &bodies[i])) != CLLM_OK) goto out;

    if (ds->n_warmup > 0) {
        /* one at a time, back to back, unrecorded */
        st = run_batch(cfg, url, headers, bodies, ds->prompts, NULL, arrivals, (size_t)ds->n_warmup, 1, "warmup",
                       &out->warmup_s, &n_failed, first_error, sizeof(first_error));
        out->warmup_failed = (int32_t)n_failed;
        if (st != CLLM_OK) goto out;
        if (n_failed == (size_t)ds->n_warmup) {
            st = cllm_error(CLLM_ERR_IO, "bench: every warmup request to %s failed; the first: %s", url, first_error);
            goto out;
        }
    }
    bench_stats_arrivals(cfg->seed, cfg->request_rate, arrivals + ds->n_warmup, (size_t)ds->n);
    wall = time(NULL);
    gmtime_r(&wall, &tm);
    strftime(out->started_at, sizeof(out->started_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    st = run_batch(cfg, url, headers, bodies + ds->n_warmup, ds->prompts + ds->n_warmup, out->records,
                   arrivals + ds->n_warmup, (size_t)ds->n, cfg->max_concurrency, cfg->label, &elapsed, &n_failed,
                   first_error, 0);
    /* the run lasts until the last response ended */
    out->duration_s = 0.0;
    for (size_t i = 0; i < out->n; i++) {
        bench_record_t *r = &out->records[i];
        if (!isnan(r->e2e_s) && r->start_s + r->e2e_s > out->duration_s) out->duration_s = r->start_s + r->e2e_s;
    }
    if (out->duration_s <= 0.0) out->duration_s = elapsed;
out:
    if (bodies)
        for (size_t i = 0; i < total; i++) free(bodies[i]);
    free(bodies);
    free(arrivals);
    free(url);
    curl_slist_free_all(headers);
    if (st != CLLM_OK) bench_run_free(out);
    return st;
}

void bench_run_free(bench_run_t *run)
{
    if (run->records)
        for (size_t i = 0; i < run->n; i++) {
            free(run->records[i].error);
            free(run->records[i].itl_s);
            free(run->records[i].text);
        }
    free(run->records);
    memset(run, 0, sizeof(*run));
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *user)
{
    (void)ptr;
    (void)user;
    return size * nmemb;
}

status_t bench_client_get(const char *url, double timeout_s, long *http_status)
{
    CURL *e;
    status_t st;
    *http_status = 0;
    if ((st = curl_init_once()) != CLLM_OK) return st;
    if (!(e = curl_easy_init())) return cllm_error(CLLM_ERR_IO, "bench: libcurl easy handle failed");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, LOOPBACK_HOSTS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000.0));
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, http_status);
    curl_easy_cleanup(e);
    return CLLM_OK;
}

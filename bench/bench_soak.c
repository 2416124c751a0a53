/* bench_soak.c: the soak test of `cllm serve` (issue 7, point 3): many requests at high
 * concurrency against a server whose KV pool is small enough to force eviction and preemption,
 * with clients that disconnect mid-stream and bad requests mixed in. Options: see usage().
 *
 * 1. Workload (from --seed): K shared prefixes made of words, of several lengths (shorter than a
 *    KV block to several blocks), and distinct well-formed requests = a prefix + a random suffix,
 *    on /v1/completions (one prompt) or /v1/chat/completions (prefix as the system message),
 *    streamed or not, with logprobs or not, some with a stop string, max_tokens 8..24, temperature 0.
 * 2. Reference: each distinct request alone (concurrency 1) against the same server. The server
 *    cannot return token ids, so a request's tokens are compared as its text, completion token
 *    count, finish reason and, with logprobs, the bytes of every generated token. Each reference
 *    run leaves every full block of its prompt cached, so a later run of the same request that
 *    reports fewer cached tokens proves an eviction (the server exports no eviction counter).
 * 3. Soak: every distinct request at least once plus random repeats, a fraction of the streamed
 *    ones leaving after a random number of chunks (or time), and bad requests each expecting its
 *    own 4xx with an OpenAI error body; shuffled, sent at --concurrency.
 * 4. Checks: a well-formed request that was not cut equals its reference; a cut one's text is a
 *    prefix of it; each bad one got its status; nothing hung; the server's VmRSS after
 *    --rss-after requests and at the end differ by < --rss-tolerance percent; afterwards /metrics
 *    shows nothing running or waiting and KV usage 0, the engine's finished/aborted counts match
 *    the answers, /health answers 200; requests were preempted and cached blocks evicted.
 * Exit status: 0 all held, 1 a check failed (each printed), 2 bad usage or setup.
 *
 * Invariants: every easy handle in the multi handle belongs to exactly one busy xfer_t slot and
 * is removed and cleaned up exactly once (at its end, or when its client leaves); a job's result
 * is written only by its own transfer. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchmark/bench_sse.h"
#include "core/clock.h"
#include "core/strbuf.h"

#define MAX_RAW (1u << 20)    /* bytes of a non-streamed body kept */
#define MAX_FAIL_LINES 25     /* failures printed in detail */

typedef struct {
    const char *url;          /* http://host:port */
    int pid;                  /* server process for VmRSS; 0: no RSS check */
    int n_requests, concurrency;
    uint64_t seed;
    size_t max_request_bytes; /* the server's --max-request-bytes */
    double timeout_s;         /* per request: longer is a hang */
    double bad_frac, cut_frac, repeat_frac;
    int n_prefixes;
    int rss_after;
    double rss_tolerance;     /* percent */
    bool rss_report_only, allow_no_preemption, allow_no_eviction;
} opts_t;

/* What one HTTP exchange gave. */
typedef struct {
    long http;                /* 0: no response */
    CURLcode curl;
    bool is_sse, done_event, cut, timed_out;
    strbuf_t text;            /* generated text */
    strbuf_t pieces;          /* each generated token's bytes as (uint16 length, bytes), from logprobs */
    strbuf_t raw;             /* a non-SSE body (first MAX_RAW bytes) */
    int32_t n_pieces, n_chunks;
    int64_t completion_tokens, prompt_tokens, cached_tokens; /* usage */
    bool has_usage;
    char finish[16];
    char error[200];          /* first error seen in the body or the transport */
} result_t;

typedef enum { EP_COMPLETIONS, EP_CHAT } endpoint_t;

typedef struct {              /* one distinct well-formed request */
    char *body;               /* its JSON */
    endpoint_t ep;
    bool stream, logprobs;
    result_t ref;             /* alone at concurrency 1 */
} good_t;

/* The bad requests, each with the status it must get. how: c POST /v1/completions, h POST
 * /v1/chat/completions, k the same as c but chunked (no Content-Length), G GET and P PUT on chat,
 * e POST /v1/embeddings. In a body, @M is the model's name, @L more words than max_model_len
 * tokens, @H text longer than --max-request-bytes, @N max_model_len. */
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
static const struct {
    const char *name;
    long status;
    char how;
    const char *body;
} bad_info[] = {
    { "truncated JSON", 400, 'c', "{\"model\":@M,\"prompt\":\"hello" },
    { "truncated JSON", 400, 'h', "{\"model\":@M,\"messages\":[{\"role\":" },
    { "JSON without a comma", 400, 'c', "{\"model\":@M \"prompt\":\"x\"}" },
    { "single-quoted JSON", 400, 'h', "{'model': 'x', 'messages': []}" },
    { "a JSON list", 400, 'c', "[{\"prompt\":\"hi\"}]" },
    { "max_tokens a string", 400, 'c', "{\"model\":@M,\"prompt\":\"hi\",\"max_tokens\":\"ten\"}" },
    { "temperature a string", 400, 'h', "{\"model\":@M," MSGS ",\"temperature\":\"warm\"}" },
    { "messages a string", 400, 'h', "{\"model\":@M,\"messages\":\"hello\"}" },
    { "prompt an object", 400, 'c', "{\"model\":@M,\"prompt\":{\"text\":\"hello\"}}" },
    { "missing messages", 400, 'h', "{\"model\":@M,\"max_tokens\":8}" },
    { "missing prompt", 400, 'c', "{\"model\":@M,\"max_tokens\":8}" },
    { "prompt over max-model-len", 400, 'c', "{\"model\":@M,\"prompt\":\"@L\",\"max_tokens\":8,\"stream\":true}" },
    { "chat over max-model-len", 400, 'h', "{\"model\":@M,\"messages\":[{\"role\":\"user\",\"content\":\"@L\"}]}" },
    { "max_tokens too large", 400, 'c', "{\"model\":@M,\"prompt\":\"Tell me a story\",\"max_tokens\":@N}" },
    { "max_tokens 0", 400, 'h', "{\"model\":@M," MSGS ",\"max_tokens\":0}" },
    { "unknown model", 404, 'h', "{\"model\":\"no-such-model\"," MSGS "}" },
    { "body over the limit", 413, 'c', "{\"model\":@M,\"prompt\":\"@H\",\"max_tokens\":8}" },
    { "chunked body over the limit", 413, 'k', "{\"model\":@M,\"prompt\":\"@H\",\"max_tokens\":8}" },
    { "invalid UTF-8", 400, 'c', "{\"model\":@M,\"prompt\":\"caf\xc3\x28 \xff\xfe\",\"max_tokens\":8}" },
    { "n > 1", 400, 'h', "{\"model\":@M," MSGS ",\"n\":2}" },
    { "empty body", 400, 'c', "" },
    { "GET", 405, 'G', "" },
    { "PUT", 405, 'P', "{\"model\":@M," MSGS "}" },
    { "unknown path", 404, 'e', "{\"model\":@M,\"input\":\"hi\"}" },
};
#define N_BAD ((int)(sizeof(bad_info) / sizeof(bad_info[0])))

typedef enum { JOB_GOOD, JOB_CUT, JOB_BAD } job_kind_t;

typedef struct {
    job_kind_t kind;
    int32_t good;             /* GOOD / CUT: index of the distinct request */
    int bad;                  /* BAD: index in bad_info */
    char *bad_body;           /* BAD: owned */
    size_t bad_len;
    int32_t cut_chunks;       /* CUT: disconnect after this many content chunks; 0: by time */
    double cut_after_s;       /* CUT by time: disconnect this long after the send */
    result_t res;
} job_t;

typedef struct {
    const opts_t *o;
    good_t *goods;            /* (n_goods) the distinct well-formed requests */
    size_t n_goods;
    char *model;
    int32_t max_model_len;
    int block_size;           /* with prefix caching on, else 0 */
    int fail_lines, n_fail;
} ctx_t;

static void fail(ctx_t *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(ctx_t *cx, const char *fmt, ...)
{
    va_list ap;
    cx->n_fail++;
    if (cx->fail_lines++ >= MAX_FAIL_LINES) return;
    va_start(ap, fmt);
    fputs("soak: FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* ---- deterministic random numbers (splitmix64) ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return n ? (uint32_t)(rng_next(s) % n) : 0;
}

/* ---- the workload ---- */

static const char *words[] = {
    "the", "river", "morning", "quiet", "engine", "garden", "silver", "mountain", "letter", "window", "yellow",
    "forest", "market", "winter", "answer", "bridge", "candle", "doctor", "island", "kitchen", "ladder", "mirror",
    "number", "orange", "pencil", "rabbit", "sudden", "ticket", "valley", "wonder", "anchor", "basket", "castle",
    "dragon", "empire", "feather", "gentle", "harbor", "jungle", "kettle", "lantern", "meadow", "needle", "ocean",
    "planet", "quarter", "ribbon", "shadow", "thunder", "umbrella", "velvet", "whisper", "blanket", "compass",
    "diamond", "elephant", "festival", "glacier", "horizon", "invisible", "journey", "kingdom", "library",
    "machine", "notebook", "orchestra", "parade", "question", "rainbow", "sandwich", "telescope", "universe",
    "volcano", "waterfall", "and", "of", "to", "in", "with", "under", "over", "after", "before", "because",
    "while", "never", "always", "slowly", "brightly", "carefully", "seven", "twelve", "forty", "hundred", "blue",
    "green", "ancient", "modern", "tiny", "enormous", "broken", "golden", "hidden", "frozen", "electric", "wooden",
    "Paris", "Tokyo", "Nairobi", "Lima", "Oslo", "Alice", "Bob", "Carmen", "Dmitri", "Esther", "runs", "sings",
    "builds", "forgets", "carries", "watches", "opens", "remembers", "paints", "counts", "3.14", "2024", "#42",
    "e-mail", "well-known", "co-op", "naïve", "café", "über", "日本", "données", "(maybe)", "[note]", "x+y=z",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

/* n random words into b, sentence-like: a capital after a period, a period now and then. */
static void add_words(strbuf_t *b, uint64_t *rng, int n)
{
    bool cap = b->len == 0;
    for (int i = 0; i < n; i++) {
        const char *w = words[rng_below(rng, N_WORDS)];
        if (b->len) strbuf_append(b, " ", 1);
        if (cap && w[0] >= 'a' && w[0] <= 'z') {
            char c = (char)(w[0] - 'a' + 'A');
            strbuf_append(b, &c, 1);
            strbuf_append(b, w + 1, strlen(w + 1));
        } else {
            strbuf_append(b, w, strlen(w));
        }
        cap = rng_below(rng, 9) == 0;
        if (cap) strbuf_append(b, rng_below(rng, 4) ? "." : ",", 1);
    }
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static json_t *chat_messages(const char *system, const char *user)
{
    return json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", system, "role", "user", "content", user);
}

/* The distinct well-formed requests. Word counts stay far enough below max_model_len (a word is
 * 1-3 tokens) for prompt + max_tokens to fit. */
static int make_goods(ctx_t *cx, uint64_t *rng, size_t n)
{
    static const int prefix_words[] = { 4, 12, 30, 55, 85 };
    int max_words = (cx->max_model_len - 24 - 40) / 2, n_pre = cx->o->n_prefixes;
    strbuf_t *pre = calloc((size_t)n_pre, sizeof(strbuf_t));
    if (!pre || max_words < 8 || !(cx->goods = calloc(n, sizeof(good_t)))) {
        free(pre);
        fprintf(stderr, "soak: max_model_len %d is too small (or out of memory)\n", cx->max_model_len);
        return -1;
    }
#define PREFIX_WORDS(k) (prefix_words[(k) % 5] < max_words * 3 / 4 ? prefix_words[(k) % 5] : max_words * 3 / 4)
    for (int k = 0; k < n_pre; k++) add_words(&pre[k], rng, PREFIX_WORDS(k));
    for (size_t i = 0; i < n; i++) {
        good_t *g = &cx->goods[i];
        strbuf_t suf = { 0 };
        int k = (int)rng_below(rng, (uint32_t)n_pre), room = max_words - PREFIX_WORDS(k);
        int max_tokens = 8 + (int)rng_below(rng, 17);
        bool chat;
        const char *key;
        json_t *body, *input;
        add_words(&suf, rng, 1 + (int)rng_below(rng, (uint32_t)(room < 25 ? room : 25)));
        chat = rng_below(rng, 2) != 0;
        g->ep = chat ? EP_CHAT : EP_COMPLETIONS;
        g->stream = rng_below(rng, 4) != 0;
        g->logprobs = rng_below(rng, 2) != 0;
        /* chat: the prefix is the system message; completions: one prompt */
        input = chat ? chat_messages(pre[k].p, suf.p) : json_sprintf("%s %s", pre[k].p, suf.p);
        key = chat ? "messages" : "prompt";
        body = json_pack("{s:s, s:O, s:i, s:f}", "model", cx->model, key, input, "max_tokens", max_tokens,
                         "temperature", 0.0);
        if (g->logprobs) json_object_set_new(body, "logprobs", chat ? json_true() : json_integer(0));
        if (rng_below(rng, 6) == 0) /* a stop string the text soon contains: the stop path, streamed or not */
            json_object_set_new(body, "stop",
                                json_pack("[s]", (const char *[]){ "e", "an", "o", " t" }[rng_below(rng, 4)]));
        if (g->stream) {
            json_object_set_new(body, "stream", json_true());
            json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
        }
        g->body = dump(body);
        json_decref(input);
        free(suf.p);
        if (!g->body) return -1;
    }
#undef PREFIX_WORDS
    for (int k = 0; k < n_pre; k++) free(pre[k].p);
    free(pre);
    cx->n_goods = n;
    return 0;
}

/* bad_info[k]'s body with its placeholders filled in (malloc'd, *len bytes). */
static char *bad_body(ctx_t *cx, int k, uint64_t *rng, size_t *len)
{
    strbuf_t b = { 0 };
    json_t *jm = json_string(cx->model);
    char *model = json_dumps(jm, JSON_ENCODE_ANY), num[16];
    json_decref(jm);
    for (const char *p = bad_info[k].body; *p; p++) {
        strbuf_t w = { 0 };
        if (*p != '@' || !p[1]) {
            strbuf_append(&b, p, 1);
            continue;
        }
        switch (*++p) {
        case 'M': strbuf_append(&b, model, strlen(model)); break;
        case 'L': add_words(&w, rng, cx->max_model_len + 20); break;
        case 'H': while (w.len <= cx->o->max_request_bytes) add_words(&w, rng, 200); break;
        default: strbuf_append(&b, num, (size_t)snprintf(num, sizeof(num), "%d", cx->max_model_len)); break;
        }
        strbuf_append(&b, w.p ? w.p : "", w.len);
        free(w.p);
    }
    free(model);
    *len = b.len;
    return b.p ? b.p : strdup("");
}

/* ---- one HTTP exchange ---- */

typedef struct {
    CURL *easy;
    job_t *job;
    endpoint_t ep;
    bool chunked;             /* the body goes by a read callback, chunked */
    const char *body;
    size_t body_len, body_off;
    struct curl_slist *headers;
    bench_sse_t sse;
    double t_send;
    bool checked;
    char errbuf[CURL_ERROR_SIZE];
} xfer_t;

static void set_error(result_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(result_t *r, const char *fmt, ...)
{
    va_list ap;
    if (r->error[0]) return; /* keep the first */
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
}

static void add_piece(result_t *r, const char *s, size_t n)
{
    unsigned char len[2] = { (unsigned char)(n & 0xff), (unsigned char)(n >> 8 & 0xff) };
    strbuf_append(&r->pieces, len, 2);
    strbuf_append(&r->pieces, s, n);
    r->n_pieces++;
}

/* Takes a streamed chunk or a whole response into r. */
static void take_json(result_t *r, json_t *root, endpoint_t ep, bool stream)
{
    json_t *e = json_object_get(root, "error"), *c0 = json_array_get(json_object_get(root, "choices"), 0);
    json_t *usage = json_object_get(root, "usage");
    if (e) {
        json_t *msg = json_is_object(e) ? json_object_get(e, "message") : e;
        set_error(r, "error in the body: %.150s", json_is_string(msg) ? json_string_value(msg) : "?");
    }
    if (c0) {
        json_t *content = ep == EP_CHAT ? json_object_get(json_object_get(c0, stream ? "delta" : "message"), "content")
                                        : json_object_get(c0, "text");
        json_t *fr = json_object_get(c0, "finish_reason"), *lp = json_object_get(c0, "logprobs"), *v;
        size_t i;
        if (json_is_string(content) && json_string_length(content) > 0) {
            strbuf_append(&r->text, json_string_value(content), json_string_length(content));
            r->n_chunks++;
        }
        if (json_is_string(fr)) snprintf(r->finish, sizeof(r->finish), "%s", json_string_value(fr));
        if (ep == EP_CHAT) {
            json_array_foreach(json_object_get(lp, "content"), i, v) {
                json_t *bytes = json_object_get(v, "bytes"), *x;
                char buf[512];
                size_t k, n = 0;
                json_array_foreach(bytes, k, x) if (n < sizeof(buf)) buf[n++] = (char)json_integer_value(x);
                add_piece(r, buf, n);
            }
        } else {
            json_array_foreach(json_object_get(lp, "tokens"), i, v)
                add_piece(r, json_string_value(v), json_string_length(v));
        }
    }
    if (json_is_object(usage)) {
        r->completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
        r->prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
        r->cached_tokens = json_integer_value(json_object_get(json_object_get(usage, "prompt_tokens_details"),
                                                              "cached_tokens"));
        r->has_usage = true;
    }
}

static status_t on_event(const char *data, size_t len, void *user)
{
    xfer_t *x = user;
    result_t *r = &x->job->res;
    json_t *root;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        r->done_event = true;
        return CLLM_OK;
    }
    if (r->done_event) set_error(r, "an event after [DONE]");
    if (!(root = json_loadb(data, len, 0, NULL))) {
        set_error(r, "a chunk that is not JSON: %.60s", data);
        return CLLM_ERR_FORMAT;
    }
    take_json(r, root, x->ep, true);
    json_decref(root);
    return CLLM_OK;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *user)
{
    xfer_t *x = user;
    result_t *r = &x->job->res;
    size_t n = size * nmemb;
    if (!x->checked) {
        char *ct = NULL;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->http);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
        r->is_sse = r->http == 200 && ct && strstr(ct, "text/event-stream");
        x->checked = true;
    }
    if (!r->is_sse) {
        if (r->raw.len < MAX_RAW) strbuf_append(&r->raw, p, r->raw.len + n > MAX_RAW ? MAX_RAW - r->raw.len : n);
        return n;
    }
    if (bench_sse_feed(&x->sse, p, n, on_event, x) != CLLM_OK) return 0;
    if (x->job->kind == JOB_CUT && x->job->cut_chunks > 0 && r->n_chunks >= x->job->cut_chunks) {
        r->cut = true; /* the client goes away: curl closes the connection */
        return 0;
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *user)
{
    xfer_t *x = user;
    size_t n = size * nitems, left = x->body_len - x->body_off;
    if (n > left) n = left;
    if (n > 4096) n = 4096; /* many chunks */
    memcpy(buf, x->body + x->body_off, n);
    x->body_off += n;
    return n;
}

/* The transfer is over (res: curl's result): finish its result. */
static void xfer_finish(xfer_t *x, CURLcode res)
{
    result_t *r = &x->job->res;
    r->curl = res;
    if (!x->checked) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->http);
    if (r->cut) return;
    if (res == CURLE_OPERATION_TIMEDOUT) r->timed_out = true;
    if (res != CURLE_OK) {
        set_error(r, "transport: %s%s%s", curl_easy_strerror(res), x->errbuf[0] ? ": " : "", x->errbuf);
        return;
    }
    if (r->is_sse) {
        if (bench_sse_finish(&x->sse, on_event, x) != CLLM_OK) set_error(r, "bad end of stream");
    } else if (r->http != 200 && x->job->kind != JOB_BAD) {
        set_error(r, "HTTP %ld: %.150s", r->http, r->raw.p ? r->raw.p : "(no body)");
    } else if (x->job->kind != JOB_BAD) {
        json_t *root = json_loadb(r->raw.p ? r->raw.p : "", r->raw.len, 0, NULL);
        if (!root) set_error(r, "a response that is not JSON: %.60s", r->raw.p ? r->raw.p : "");
        else take_json(r, root, x->ep, false);
        json_decref(root);
    }
}

static void xfer_release(xfer_t *x, CURLM *multi)
{
    if (x->easy) curl_multi_remove_handle(multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    bench_sse_free(&x->sse);
    memset(x, 0, sizeof(*x));
}

/* A field of /proc/PID/status ("VmRSS:", "VmHWM:") in KiB; 0: unreadable (no such process). */
static long rss_kib(int pid, const char *field)
{
    char path[64], line[256];
    long v = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (!(f = fopen(path, "r"))) return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, strlen(field))) v = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    return v;
}

typedef struct {
    long rss_first, rss_peak; /* KiB: after rss_after requests; the highest seen */
    double duration_s;
} run_stats_t;

/* An easy handle for base + path: headers h, a timeout, the body to fn(data); no proxy, no signals. */
static CURL *easy_new(const char *base, const char *path, struct curl_slist *h, double timeout_s,
                      curl_write_callback fn, void *data)
{
    char url[512];
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fn);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, data);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000.0));
    return e;
}

/* Starts job j in slot x; false if libcurl could not make a handle. */
static bool xfer_start(ctx_t *cx, xfer_t *x, job_t *j)
{
    const char *path = "/v1/completions", *method = "POST";
    char how = j->kind == JOB_BAD ? bad_info[j->bad].how : cx->goods[j->good].ep == EP_CHAT ? 'h' : 'c';
    bool chat = how == 'h' || how == 'G' || how == 'P';
    x->job = j;
    x->ep = chat ? EP_CHAT : EP_COMPLETIONS;
    x->body = j->kind == JOB_BAD ? j->bad_body : cx->goods[j->good].body;
    x->body_len = j->kind == JOB_BAD ? j->bad_len : strlen(x->body);
    x->chunked = how == 'k';
    if (chat) path = "/v1/chat/completions";
    if (how == 'e') path = "/v1/embeddings";
    if (how == 'G' || how == 'P') method = how == 'G' ? "GET" : "PUT";
    bench_sse_init(&x->sse, 0);
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (x->chunked) curl_slist_append(x->headers, "Transfer-Encoding: chunked");
    if (!(x->easy = easy_new(cx->o->url, path, x->headers, cx->o->timeout_s, on_write, x))) return false;
    if (!strcmp(method, "GET")) {
        curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
    } else if (x->chunked) {
        curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(x->easy, CURLOPT_READDATA, x);
    } else {
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        if (strcmp(method, "POST") != 0) curl_easy_setopt(x->easy, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
    x->t_send = clock_now_s();
    return true;
}

/* Runs jobs[0..n) with at most conc in flight. With stats: samples the server's RSS after
 * o->rss_after jobs ended, and its peak every quarter second. */
static int run_jobs(ctx_t *cx, job_t *jobs, size_t n, int conc, const char *label, run_stats_t *stats)
{
    CURLM *multi = curl_multi_init();
    size_t n_slots = (size_t)conc < n ? (size_t)conc : n, next = 0, done = 0;
    xfer_t *slots = calloc(n_slots ? n_slots : 1, sizeof(xfer_t)); /* (n_slots) transfers, busy if easy */
    double t0 = clock_now_s(), t_rss = 0.0, t_last_end = t0;
    if (!multi || !slots) {
        free(slots);
        curl_multi_cleanup(multi);
        return -1;
    }
    while (done < n) {
        int running, left;
        CURLMsg *msg;
        double now = clock_now_s();
        for (size_t s = 0; s < n_slots && next < n; s++) {
            if (slots[s].easy) continue;
            if (xfer_start(cx, &slots[s], &jobs[next++]) && curl_multi_add_handle(multi, slots[s].easy) == CURLM_OK)
                continue;
            set_error(&jobs[next - 1].res, "libcurl could not start the transfer");
            xfer_release(&slots[s], multi);
            done++;
        }
        /* clients that leave after a time: removing the handle closes their connection */
        for (size_t s = 0; s < n_slots; s++) {
            xfer_t *x = &slots[s];
            if (x->easy && x->job->kind == JOB_CUT && x->job->cut_chunks == 0 &&
                now - x->t_send >= x->job->cut_after_s) {
                x->job->res.cut = true;
                xfer_release(x, multi);
                done++;
            }
        }
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left))) {
            char *priv = NULL;
            if (msg->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            xfer_finish((xfer_t *)priv, msg->data.result);
            if (!((xfer_t *)priv)->job->res.timed_out) t_last_end = now;
            xfer_release((xfer_t *)priv, multi);
            done++;
        }
        /* the first RSS sample: as soon as rss_after requests have ended */
        if (stats && cx->o->pid && !stats->rss_first && done >= (size_t)cx->o->rss_after)
            stats->rss_first = rss_kib(cx->o->pid, "VmRSS:");
        if (now - t_last_end > cx->o->timeout_s + 10.0) {
            /* nothing ended in time for longer than a request may take: the server hangs; give up */
            fail(cx, "%s: no request ended in time for %.0f s, %zu still to go: the server hangs", label,
                 now - t_last_end, n - done);
            for (size_t s = 0; s < n_slots; s++)
                if (slots[s].easy) {
                    slots[s].job->res.timed_out = true;
                    set_error(&slots[s].job->res, "abandoned: the server stopped answering");
                    xfer_release(&slots[s], multi);
                }
            for (; next < n; next++) {
                jobs[next].res.timed_out = true;
                set_error(&jobs[next].res, "never sent: the server stopped answering");
            }
            break;
        }
        if (stats && cx->o->pid && now - t_rss >= 0.25) {
            long r = rss_kib(cx->o->pid, "VmRSS:");
            if (r > stats->rss_peak) stats->rss_peak = r;
            t_rss = now;
        }
        if (done < n) curl_multi_poll(multi, NULL, 0, 20, NULL);
    }
    if (stats) stats->duration_s = clock_now_s() - t0;
    free(slots);
    curl_multi_cleanup(multi);
    return 0;
}

/* ---- plain requests: /metrics, /health, /v1/models ---- */

static size_t to_buf(char *p, size_t size, size_t nmemb, void *user)
{
    return strbuf_append(user, p, size * nmemb) ? size * nmemb : 0;
}

/* GET (body NULL) or POST path; returns the status (0: no answer) and the body in *out. */
static long http_simple(const opts_t *o, const char *path, const char *body, strbuf_t *out)
{
    long code = 0;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *e = easy_new(o->url, path, h, 10.0, to_buf, out);
    memset(out, 0, sizeof(*out));
    if (e && body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    if (e && curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return code;
}

typedef struct {
    double running, waiting, usage, preemptions, aborts, finished, hits, queries;
    int block_size, n_blocks;
    bool prefix_caching, ok;
} metrics_t;

/* The value of the first sample line whose name and labels start with `prefix`; NAN if none. */
static double metric(const char *text, const char *prefix)
{
    for (const char *l = text; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (!strncmp(l, prefix, strlen(prefix)) && strchr(l, ' ')) return strtod(strchr(l, ' ') + 1, NULL);
    return NAN;
}

static void read_metrics(const opts_t *o, metrics_t *m)
{
    strbuf_t b;
    const char *bs, *nb;
    memset(m, 0, sizeof(*m));
    if (http_simple(o, "/metrics", NULL, &b) != 200 || !b.p) {
        free(b.p);
        return;
    }
    m->running = metric(b.p, "cllm:num_requests_running{");
    m->waiting = metric(b.p, "cllm:num_requests_waiting{");
    m->usage = metric(b.p, "cllm:kv_cache_usage_perc{");
    m->preemptions = metric(b.p, "cllm:num_preemptions_total{");
    m->aborts = metric(b.p, "cllm:request_success_total{finished_reason=\"abort\"");
    m->finished = metric(b.p, "cllm:request_success_total{finished_reason=\"length\"") +
                  metric(b.p, "cllm:request_success_total{finished_reason=\"stop\"");
    m->hits = metric(b.p, "cllm:prefix_cache_hits_total{");
    m->queries = metric(b.p, "cllm:prefix_cache_queries_total{");
    m->block_size = (bs = strstr(b.p, "block_size=\"")) ? atoi(bs + 12) : 0; /* labels of cache_config_info */
    m->n_blocks = (nb = strstr(b.p, "num_gpu_blocks=\"")) ? atoi(nb + 16) : 0;
    m->prefix_caching = strstr(b.p, "enable_prefix_caching=\"True\"") != NULL;
    m->ok = !isnan(m->running) && !isnan(m->waiting) && !isnan(m->usage) && m->block_size > 0;
    free(b.p);
}

/* ---- checks ---- */

static const char *good_name(const ctx_t *cx, int32_t i)
{
    static char buf[96];
    const good_t *g = &cx->goods[i];
    snprintf(buf, sizeof(buf), "request %d (%s%s%s)", i, g->ep == EP_CHAT ? "chat" : "completions",
             g->stream ? ", stream" : "", g->logprobs ? ", logprobs" : "");
    return buf;
}

/* A completed well-formed exchange: 200, no error, a finish reason, a complete stream. */
static bool result_ok(const result_t *r, const good_t *g)
{
    return r->http == 200 && r->curl == CURLE_OK && !r->error[0] && r->finish[0] && (!g->stream || r->done_event) &&
           r->has_usage && (!g->logprobs || r->n_pieces == r->completion_tokens);
}

static void describe(const result_t *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "HTTP %ld, %s%s%s, %d tokens, finish '%s'", r->http, r->error[0] ? "error: " : "no error event",
             r->error, r->timed_out ? " (TIMED OUT: a hang?)" : "", (int)r->completion_tokens, r->finish);
}

static bool same_bytes(const strbuf_t *a, const strbuf_t *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len));
}

/* Up to 40 bytes of b from byte `from`, control characters as '?', for a failure line. */
static const char *excerpt(const strbuf_t *b, size_t from, char *out)
{
    size_t n = 0;
    for (size_t i = from; b->p && i < b->len && n < 40; i++) out[n++] = (unsigned char)b->p[i] < 0x20 ? '?' : b->p[i];
    out[n] = '\0';
    return out;
}

/* The first byte where two texts differ, for the failure line. */
static size_t first_diff(const strbuf_t *a, const strbuf_t *b)
{
    size_t i = 0;
    while (i < a->len && i < b->len && a->p[i] == b->p[i]) i++;
    return i;
}

typedef struct {
    int ok, cut, cut_late, bad_ok, bad, timed_out, evicted; /* evicted: answers that missed cached prompt blocks */
} tally_t;

static void check_job(ctx_t *cx, const job_t *j, tally_t *t)
{
    const result_t *r = &j->res;
    char d[320];
    describe(r, d, sizeof(d));
    if (r->timed_out) t->timed_out++;
    if (j->kind == JOB_BAD) {
        json_t *root = r->raw.p ? json_loadb(r->raw.p, r->raw.len, 0, NULL) : NULL, *e = json_object_get(root, "error");
        long want = bad_info[j->bad].status;
        bool body_ok = json_is_string(json_object_get(e, "message")) &&
                       json_integer_value(json_object_get(e, "code")) == want;
        t->bad++;
        if (r->http == want && body_ok) t->bad_ok++;
        else fail(cx, "bad request '%s': want %ld with an OpenAI error body, got %s: %.120s", bad_info[j->bad].name,
                  want, d, r->raw.p ? r->raw.p : "");
        json_decref(root);
        return;
    }
    {
        const good_t *g = &cx->goods[j->good];
        const result_t *ref = &g->ref;
        if (j->kind == JOB_CUT && r->cut) {
            t->cut++;
            if (r->error[0] && strncmp(r->error, "transport", 9) != 0)
                fail(cx, "%s, client left after %d chunks: %s", good_name(cx, j->good), r->n_chunks, d);
            else if (r->text.len > ref->text.len || (r->text.len && memcmp(r->text.p, ref->text.p, r->text.len)))
                fail(cx, "%s, client left after %d chunks: its text is not a prefix of the reference (differs at "
                     "byte %zu)", good_name(cx, j->good), r->n_chunks, first_diff(&r->text, &ref->text));
            return;
        }
        if (j->kind == JOB_CUT) t->cut_late++; /* it ended before its client left: a full check */
        if (!result_ok(r, g)) {
            fail(cx, "%s: %s", good_name(cx, j->good), d);
        } else if (!same_bytes(&r->text, &ref->text) || !same_bytes(&r->pieces, &ref->pieces) ||
                   r->completion_tokens != ref->completion_tokens || strcmp(r->finish, ref->finish) != 0) {
            size_t at = first_diff(&r->text, &ref->text);
            char e1[41], e2[41];
            fail(cx, "%s differs from its reference alone: %d vs %d tokens (%d vs %d logprob pieces), finish '%s' vs "
                 "'%s', text differs at byte %zu of %zu/%zu: \"%s\" vs \"%s\"", good_name(cx, j->good),
                 (int)r->completion_tokens, (int)ref->completion_tokens, r->n_pieces, ref->n_pieces, r->finish,
                 ref->finish, at, r->text.len, ref->text.len, excerpt(&r->text, at, e1), excerpt(&ref->text, at, e2));
        } else {
            t->ok++;
            /* every full block of its prompt was cached by its reference run (the last token is
             * always computed): a miss now means eviction */
            if (cx->block_size && r->cached_tokens < (r->prompt_tokens - 1) / cx->block_size * cx->block_size)
                t->evicted++;
        }
    }
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_soak --url http://127.0.0.1:PORT [--server-pid PID (RSS checked)]\n"
                    "  [-n REQUESTS (1000)] [-c CONCURRENCY (32)] [--seed S (1)] [--timeout S (per request, 60)]\n"
                    "  [--max-request-bytes N (the server's; 16777216)] [--bad-frac F (0.1)] [--repeat-frac F (0.5)]\n"
                    "  [--disconnect-frac F (0.1)] [--prefixes K (8)] [--rss-after N (100)] [--rss-tolerance PCT (5)]\n"
                    "  [--rss-report-only] [--allow-no-preemption] [--allow-no-eviction]\n");
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){ .n_requests = 1000, .concurrency = 32, .seed = 1, .max_request_bytes = 16u << 20,
                   .timeout_s = 60, .bad_frac = 0.1, .cut_frac = 0.1, .repeat_frac = 0.5, .n_prefixes = 8,
                   .rss_after = 100, .rss_tolerance = 5.0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool val = true;
        if (!strcmp(a, "--rss-report-only")) o->rss_report_only = true, val = false;
        else if (!strcmp(a, "--allow-no-preemption")) o->allow_no_preemption = true, val = false;
        else if (!strcmp(a, "--allow-no-eviction")) o->allow_no_eviction = true, val = false;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(), -1;
        else if (!v) return fprintf(stderr, "soak: %s needs a value\n", a), usage(), -1;
        else if (!strcmp(a, "--url")) o->url = v;
        else if (!strcmp(a, "--server-pid")) o->pid = atoi(v);
        else if (!strcmp(a, "-n") || !strcmp(a, "--requests")) o->n_requests = atoi(v);
        else if (!strcmp(a, "-c") || !strcmp(a, "--concurrency")) o->concurrency = atoi(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--max-request-bytes")) o->max_request_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--timeout")) o->timeout_s = atof(v);
        else if (!strcmp(a, "--bad-frac")) o->bad_frac = atof(v);
        else if (!strcmp(a, "--disconnect-frac")) o->cut_frac = atof(v);
        else if (!strcmp(a, "--repeat-frac")) o->repeat_frac = atof(v);
        else if (!strcmp(a, "--prefixes")) o->n_prefixes = atoi(v);
        else if (!strcmp(a, "--rss-after")) o->rss_after = atoi(v);
        else if (!strcmp(a, "--rss-tolerance")) o->rss_tolerance = atof(v);
        else return fprintf(stderr, "soak: unknown option %s\n", a), usage(), -1;
        if (val) i++;
    }
    if (!o->url || o->n_requests < 1 || o->concurrency < 1 || o->n_prefixes < 1 || o->timeout_s <= 0 ||
        o->bad_frac < 0 || o->cut_frac < 0 || o->bad_frac + o->cut_frac >= 1 || o->repeat_frac < 0 ||
        o->repeat_frac >= 1 || o->max_request_bytes < 64)
        return fprintf(stderr, "soak: bad or missing options\n"), usage(), -1;
    return 0;
}

/* The soak's job list, shuffled: n_bad bad requests, n_cut clients that leave (among the
 * streamed), the rest well-formed; every distinct request appears at least once. */
static job_t *make_jobs(ctx_t *cx, uint64_t *rng, size_t n, size_t n_bad, size_t *n_cut)
{
    job_t *jobs = calloc(n, sizeof(job_t));
    size_t n_rest = n - n_bad, cuts = 0;
    if (!jobs) return NULL;
    for (size_t i = 0; i < n_rest; i++) {
        jobs[i].kind = JOB_GOOD;
        jobs[i].good = (int32_t)(i < cx->n_goods ? i : rng_below(rng, (uint32_t)cx->n_goods));
    }
    /* the cut ones: random streamed jobs, beyond the first copy of each distinct request */
    for (size_t tries = 0; cuts < *n_cut && tries < 100 * n; tries++) {
        job_t *j = &jobs[rng_below(rng, (uint32_t)n_rest)];
        if (j->kind != JOB_GOOD || !cx->goods[j->good].stream || (size_t)(j - jobs) < cx->n_goods) continue;
        j->kind = JOB_CUT;
        if (rng_below(rng, 4)) j->cut_chunks = 1 + (int32_t)rng_below(rng, 12);
        else j->cut_after_s = rng_below(rng, 300) / 1000.0;
        cuts++;
    }
    *n_cut = cuts;
    for (size_t i = n_rest; i < n; i++) {
        jobs[i].kind = JOB_BAD;
        jobs[i].bad = (int)((i - n_rest) % N_BAD);
        if (!(jobs[i].bad_body = bad_body(cx, jobs[i].bad, rng, &jobs[i].bad_len))) {
            while (i-- > n_rest) free(jobs[i].bad_body);
            free(jobs);
            return NULL;
        }
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t k = rng_below(rng, (uint32_t)(i + 1));
        job_t tmp = jobs[i];
        jobs[i] = jobs[k];
        jobs[k] = tmp;
    }
    return jobs;
}

static void result_free(result_t *r)
{
    free(r->text.p);
    free(r->pieces.p);
    free(r->raw.p);
}

/* The served model and its max_model_len, from /v1/models. */
static bool read_model(ctx_t *cx)
{
    strbuf_t b;
    json_t *root = http_simple(cx->o, "/v1/models", NULL, &b) == 200 && b.p ? json_loads(b.p, 0, NULL) : NULL;
    json_t *d0 = json_array_get(json_object_get(root, "data"), 0);
    const char *id = json_string_value(json_object_get(d0, "id"));
    cx->max_model_len = (int32_t)json_integer_value(json_object_get(d0, "max_model_len"));
    cx->model = id ? strdup(id) : NULL;
    json_decref(root);
    free(b.p);
    return cx->model && cx->max_model_len > 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    ctx_t cx = { .o = &o };
    metrics_t m0, m1, m2;
    run_stats_t rs = { 0 };
    tally_t t = { 0 };
    job_t *ref = NULL, *jobs = NULL;
    strbuf_t b;
    uint64_t rng;
    size_t n_bad, n_cut, n_goods;
    long rss_end, health;
    double t_ref, fin, ab;

    if (parse_args(argc, argv, &o) || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 2;
    signal(SIGPIPE, SIG_IGN);
    rng = o.seed;
    read_metrics(&o, &m0);
    cx.block_size = m0.prefix_caching ? m0.block_size : 0;
    if (!read_model(&cx) || !m0.ok) {
        fprintf(stderr, "soak: %s does not answer /v1/models and /metrics as cllm serve does\n", o.url);
        return 2;
    }
    n_bad = (size_t)lround(o.bad_frac * o.n_requests);
    n_cut = (size_t)lround(o.cut_frac * o.n_requests);
    n_goods = (size_t)lround((double)((size_t)o.n_requests - n_bad - n_cut) * (1.0 - o.repeat_frac));
    n_goods = n_goods ? n_goods : 1;
    if (make_goods(&cx, &rng, n_goods) || !(jobs = make_jobs(&cx, &rng, (size_t)o.n_requests, n_bad, &n_cut)) ||
        !(ref = calloc(n_goods, sizeof(job_t)))) {
        fprintf(stderr, "soak: out of memory making the workload\n");
        return 2;
    }
    printf("soak: %s serving '%s' (max_model_len %d, %d KV blocks of %d tokens, prefix caching %s); %d requests at "
           "concurrency %d, seed %llu: %zu distinct well-formed, %zu bad, %zu clients leaving early\n", o.url,
           cx.model, cx.max_model_len, m0.n_blocks, m0.block_size, m0.prefix_caching ? "on" : "off", o.n_requests,
           o.concurrency, (unsigned long long)o.seed, n_goods, n_bad, n_cut);
    fflush(stdout);

    /* the reference: each distinct request alone */
    for (size_t i = 0; i < n_goods; i++) ref[i] = (job_t){ .kind = JOB_GOOD, .good = (int32_t)i };
    t_ref = clock_now_s();
    run_jobs(&cx, ref, n_goods, 1, "reference", NULL);
    t_ref = clock_now_s() - t_ref;
    for (size_t i = 0; i < n_goods; i++) {
        char d[320];
        cx.goods[i].ref = ref[i].res;
        describe(&ref[i].res, d, sizeof(d));
        if (!result_ok(&ref[i].res, &cx.goods[i])) fail(&cx, "reference %s: %s", good_name(&cx, (int32_t)i), d);
    }
    free(ref);
    read_metrics(&o, &m1);

    /* the soak; then the server must go idle with every block free, answer and be alive */
    run_jobs(&cx, jobs, (size_t)o.n_requests, o.concurrency, "soak", &rs);
    for (int i = 0; i < o.n_requests; i++) check_job(&cx, &jobs[i], &t);
    for (int i = 0; i < 150; i++) {
        read_metrics(&o, &m2);
        if (m2.ok && m2.running == 0 && m2.waiting == 0 && m2.usage == 0) break;
        nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
    }
    health = http_simple(&o, "/health", NULL, &b);
    free(b.p);
    rss_end = o.pid ? rss_kib(o.pid, "VmRSS:") : 0;
    fin = m2.finished - m1.finished;
    ab = m2.aborts - m1.aborts;

    printf("soak: reference: %zu distinct requests alone in %.1f s\n", n_goods, t_ref);
    printf("soak: %d requests in %.1f s (%.1f req/s): %d well-formed equal to their reference alone (%d of them "
           "clients that meant to leave but got everything first), %d clients left mid-stream (text so far checked "
           "against the reference), %d/%d bad requests got their 4xx, %d timed out\n", o.n_requests, rs.duration_s,
           o.n_requests / (rs.duration_s > 0 ? rs.duration_s : 1), t.ok, t.cut_late, t.cut, t.bad_ok, t.bad,
           t.timed_out);
    printf("soak: engine: %.0f requests finished, %.0f aborted, %.0f preemptions (reference pass %.0f), prefix cache "
           "hits %.0f of %.0f queried prompt tokens\n", fin, ab, m2.preemptions - m1.preemptions,
           m1.preemptions - m0.preemptions, m2.hits - m1.hits, m2.queries - m1.queries);
    printf("soak: evictions (not exported by /metrics): %d of the %d complete answers found blocks of their prompt, "
           "all cached by their reference run, evicted\n", t.evicted, t.ok);
    if (o.pid)
        printf("soak: server RSS after %d requests %.1f MiB, at the end %.1f MiB (%+.2f%%), peak %.1f MiB, high-water "
               "%.1f MiB\n", o.rss_after, rs.rss_first / 1024.0, rss_end / 1024.0,
               rs.rss_first ? 100.0 * (double)(rss_end - rs.rss_first) / (double)rs.rss_first : 0.0,
               rs.rss_peak / 1024.0, rss_kib(o.pid, "VmHWM:") / 1024.0);
    printf("soak: after: %g running, %g waiting, KV usage %g, /health %ld\n", m2.running, m2.waiting, m2.usage, health);

    if (!m2.ok || m2.running != 0 || m2.waiting != 0 || m2.usage != 0)
        fail(&cx, "15 s after the soak /metrics says %g running, %g waiting, KV usage %g (want 0, 0, 0)", m2.running,
             m2.waiting, m2.usage);
    if (health != 200) fail(&cx, "/health after the soak: HTTP %ld", health);
    if (o.pid && !rss_end) fail(&cx, "the server (pid %d) is gone", o.pid);
    /* the engine's books: each well-formed request ends once; only a client that left is aborted */
    if (m1.aborts != m0.aborts || m1.finished - m0.finished != (double)n_goods)
        fail(&cx, "reference pass: the engine counted %.0f finished and %.0f aborted requests for %zu sent alone",
             m1.finished - m0.finished, m1.aborts - m0.aborts, n_goods);
    if (fin < t.ok || ab > t.cut || fin + ab > t.ok + t.cut)
        fail(&cx, "soak: the engine counted %.0f finished and %.0f aborted requests for %d complete answers and %d "
             "clients that left", fin, ab, t.ok, t.cut);
    if (!o.allow_no_preemption && m2.preemptions - m1.preemptions < 1)
        fail(&cx, "no request was preempted: the KV pool is too large for this load");
    if (!o.allow_no_eviction && cx.block_size && t.evicted < 1)
        fail(&cx, "no request found its cached prompt blocks evicted: the KV pool is too large for this load");
    if (o.pid && o.n_requests >= o.rss_after && !rs.rss_first) fail(&cx, "could not read the server's VmRSS");
    if (o.pid && rs.rss_first && rss_end && !o.rss_report_only &&
        (double)(rss_end - rs.rss_first) >= o.rss_tolerance / 100.0 * (double)rs.rss_first)
        fail(&cx, "server RSS grew from %ld KiB after %d requests to %ld KiB (>= %.1f%%)", rs.rss_first, o.rss_after,
             rss_end, o.rss_tolerance);
    if (cx.n_fail) printf("soak: FAILED: %d check(s) failed%s\n", cx.n_fail, cx.n_fail > MAX_FAIL_LINES ? " (the first "
                          "printed)" : "");
    else printf("soak: PASS\n");

    for (int i = 0; i < o.n_requests; i++) {
        result_free(&jobs[i].res);
        free(jobs[i].bad_body);
    }
    for (size_t i = 0; i < cx.n_goods; i++) {
        result_free(&cx.goods[i].ref);
        free(cx.goods[i].body);
    }
    free(jobs);
    free(cx.goods);
    free(cx.model);
    curl_global_cleanup();
    return cx.n_fail ? 1 : 0;
}

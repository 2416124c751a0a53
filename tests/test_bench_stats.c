/* test_bench_stats.c: the pieces of `cllm bench serve` that need no server.
 *
 * Checks: percentiles (linear interpolation, numpy's default) and summaries on synthetic
 * latencies with hand-computed answers; the aggregates of a made-up run (counts, token sums,
 * throughputs, hit rate, pooled ITL, first error); the seeded generator and the Poisson
 * arrivals (mean and spread of the gaps, determinism, infinite rate); the SSE splitter on a
 * stream cut at every byte position and with every line ending, and the chunk parser on
 * cllm/vLLM/llama-server chunks; request bodies; the datasets: table-qa equals the prompt
 * send_request.sh sends (its own make_request, run by bash with a stand-in curl that
 * records the body), prefix-repetition / random structure and exact token counts with a
 * tokenizer, jsonl parsing and errors; shell-style flag splitting; SVG output. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchmark/bench_client.h"
#include "benchmark/bench_dataset.h"
#include "benchmark/bench_launch.h"
#include "benchmark/bench_plot.h"
#include "benchmark/bench_report.h"
#include "benchmark/bench_sse.h"
#include "benchmark/bench_stats.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"
#include "check.h"


#define CHECK_NEAR(a, b, tol)                                                                                  \
    do {                                                                                                       \
        double a_ = (a), b_ = (b);                                                                             \
        if (!(fabs(a_ - b_) <= (tol))) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, want %.9g\n", __FILE__, __LINE__, #a, a_, b_); \
            check_failures++;                                                                                          \
        }                                                                                                      \
    } while (0)

static char tmpdir[256];

/* ---- percentiles and summaries ---- */

static void test_percentiles(void)
{
    const double four[] = { 1, 2, 3, 4 }, ten[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, five[] = { 15, 20, 35, 40, 50 };
    const double one[] = { 7 };
    /* numpy.percentile(x, p) with the default linear method */
    CHECK_NEAR(bench_stats_percentile(four, 4, 50), 2.5, 1e-12);
    CHECK_NEAR(bench_stats_percentile(four, 4, 0), 1.0, 1e-12);
    CHECK_NEAR(bench_stats_percentile(four, 4, 100), 4.0, 1e-12);
    CHECK_NEAR(bench_stats_percentile(four, 4, 25), 1.75, 1e-12);
    CHECK_NEAR(bench_stats_percentile(ten, 10, 90), 9.1, 1e-12);
    CHECK_NEAR(bench_stats_percentile(ten, 10, 99), 9.91, 1e-12);
    CHECK_NEAR(bench_stats_percentile(ten, 10, 50), 5.5, 1e-12);
    CHECK_NEAR(bench_stats_percentile(five, 5, 40), 29.0, 1e-12);
    CHECK_NEAR(bench_stats_percentile(five, 5, 90), 46.0, 1e-12);
    CHECK_NEAR(bench_stats_percentile(one, 1, 99), 7.0, 1e-12);
    CHECK(isnan(bench_stats_percentile(four, 0, 50)));
    CHECK(isnan(bench_stats_percentile(four, 4, 101)));
    CHECK(isnan(bench_stats_percentile(four, 4, -1)));
}

static void test_summary(void)
{
    /* seconds, any order, a NaN to skip; scaled to ms */
    const double v[] = { 0.4, 0.1, NAN, 0.3, 0.2 };
    bench_summary_t s;
    CHECK_OK(bench_stats_summarize(v, 5, 1000.0, &s));
    CHECK(s.n == 4);
    CHECK_NEAR(s.mean, 250.0, 1e-9);
    CHECK_NEAR(s.median, 250.0, 1e-9);
    CHECK_NEAR(s.std, sqrt(12500.0), 1e-9); /* population std: deviations 150, 50, 50, 150 */
    CHECK_NEAR(s.min, 100.0, 1e-9);
    CHECK_NEAR(s.max, 400.0, 1e-9);
    CHECK_NEAR(s.p90, 370.0, 1e-9); /* rank 2.7 */
    CHECK_NEAR(s.p99, 397.0, 1e-9); /* rank 2.97 */
    CHECK(v[0] == 0.4 && v[1] == 0.1); /* input untouched */
    CHECK_OK(bench_stats_summarize(v, 0, 1.0, &s));
    CHECK(s.n == 0 && isnan(s.mean) && isnan(s.p99));
}

/* A made-up run: 4 successes (one from a server that does not report cached tokens), 1 failure. */
static void test_aggregates(void)
{
    bench_record_t rec[5];
    double itl0[] = { 0.010, 0.020 }, itl1[] = { 0.030 };
    bench_run_t run;
    bench_result_t r;
    memset(rec, 0, sizeof(rec));
    for (int i = 0; i < 5; i++) {
        rec[i].ok = i != 4;
        rec[i].ttft_s = 0.1 * (i + 1);
        rec[i].e2e_s = 1.0 + i;
        rec[i].tpot_s = 0.01 * (i + 1);
        rec[i].prompt_tokens = 100;
        rec[i].output_tokens = 10;
        rec[i].cached_tokens = i == 3 ? -1 : 50 + 10 * i;
    }
    rec[0].itl_s = itl0;
    rec[0].n_itl = 2;
    rec[1].itl_s = itl1;
    rec[1].n_itl = 1;
    rec[4].error = "HTTP 500: boom";
    rec[4].ttft_s = rec[4].tpot_s = NAN;
    memset(&run, 0, sizeof(run));
    run.records = rec;
    run.n = 5;
    run.duration_s = 8.0;
    CHECK_OK(bench_report_compute(&run, &r));
    CHECK(r.completed == 4 && r.failed == 1);
    CHECK(!strcmp(r.first_error, "HTTP 500: boom"));
    CHECK(r.total_input_tokens == 400 && r.total_output_tokens == 40);
    CHECK(r.n_cache_reported == 3);
    CHECK(r.total_cached_tokens == 50 + 60 + 70 && r.cached_prompt_tokens == 300);
    CHECK_NEAR(r.prefix_hit_rate, 180.0 / 300.0, 1e-12);
    CHECK_NEAR(r.request_throughput, 0.5, 1e-12);
    CHECK_NEAR(r.output_throughput, 5.0, 1e-12);
    CHECK_NEAR(r.total_token_throughput, 55.0, 1e-12);
    CHECK_NEAR(r.ttft_ms.mean, 250.0, 1e-9);
    CHECK_NEAR(r.ttft_ms.median, 250.0, 1e-9);
    CHECK_NEAR(r.e2el_ms.mean, 2500.0, 1e-9);
    CHECK_NEAR(r.tpot_ms.max, 40.0, 1e-9);
    CHECK(r.itl_ms.n == 3);
    CHECK_NEAR(r.itl_ms.mean, 20.0, 1e-9);
    CHECK_NEAR(r.itl_ms.median, 20.0, 1e-9);
    /* no cached tokens reported at all: unknown, not 0% */
    for (int i = 0; i < 5; i++) rec[i].cached_tokens = -1;
    CHECK_OK(bench_report_compute(&run, &r));
    CHECK(isnan(r.prefix_hit_rate));
}

/* ---- random numbers and arrivals ---- */

static void test_arrivals(void)
{
    enum { N = 200000 };
    double *t = malloc(N * sizeof(double)), *t2 = malloc(N * sizeof(double)), sum = 0, sq = 0, prev = 0;
    const double rate = 5.0;
    bench_rng_t rng;
    int32_t perm[100], seen[100] = { 0 };
    size_t counts[10] = { 0 };
    bool sorted = true;

    bench_stats_arrivals(42, rate, t, N);
    for (size_t i = 0; i < N; i++) {
        double gap = t[i] - prev;
        if (gap < 0) sorted = false;
        sum += gap;
        sq += gap * gap;
        prev = t[i];
    }
    CHECK(sorted);
    /* exponential gaps: mean 1/rate, std 1/rate (the mean's own std is 0.2% here) */
    CHECK_NEAR(sum / N, 1.0 / rate, 0.01 / rate);
    CHECK_NEAR(sqrt(sq / N - (sum / N) * (sum / N)), 1.0 / rate, 0.02 / rate);
    bench_stats_arrivals(42, rate, t2, N);
    CHECK(!memcmp(t, t2, N * sizeof(double)));
    bench_stats_arrivals(43, rate, t2, N);
    CHECK(memcmp(t, t2, N * sizeof(double)) != 0);
    bench_stats_arrivals(42, INFINITY, t2, 10);
    for (int i = 0; i < 10; i++) CHECK(t2[i] == 0.0);
    bench_stats_arrivals(42, 0.0, t2, 10);
    CHECK(t2[9] == 0.0);

    bench_rng_seed(&rng, 7);
    for (int i = 0; i < 100000; i++) counts[bench_rng_below(&rng, 10)]++;
    for (int i = 0; i < 10; i++) CHECK(counts[i] > 9500 && counts[i] < 10500);
    for (int i = 0; i < 1000; i++) {
        double u = bench_rng_uniform(&rng);
        CHECK(u >= 0.0 && u < 1.0);
    }
    CHECK(bench_rng_below(&rng, 1) == 0 && bench_rng_below(&rng, 0) == 0);
    for (int i = 0; i < 100; i++) perm[i] = i;
    bench_rng_shuffle(&rng, perm, 100);
    for (int i = 0; i < 100; i++) seen[perm[i]]++;
    for (int i = 0; i < 100; i++) CHECK(seen[i] == 1);
    free(t);
    free(t2);
}

/* ---- SSE ---- */

typedef struct {
    char events[16][128];
    int n;
} events_t;

static status_t collect(const char *data, size_t len, void *user)
{
    events_t *e = user;
    CHECK(strlen(data) == len);
    if (e->n < 16) snprintf(e->events[e->n], sizeof(e->events[0]), "%s", data);
    e->n++;
    return CLLM_OK;
}

static status_t stop_at_two(const char *data, size_t len, void *user)
{
    int *n = user;
    (void)data;
    (void)len;
    return ++*n == 2 ? cllm_error(CLLM_ERR_FORMAT, "stop") : CLLM_OK;
}

static void check_stream(const char *stream, const char *const *want, int n_want, const char *what)
{
    size_t len = strlen(stream);
    /* every two-way split, and byte by byte */
    for (size_t cut = 0; cut <= len + 1; cut++) {
        bench_sse_t s;
        events_t e = { .n = 0 };
        bench_sse_init(&s, 0);
        if (cut <= len) {
            CHECK_OK(bench_sse_feed(&s, stream, cut, collect, &e));
            CHECK_OK(bench_sse_feed(&s, stream + cut, len - cut, collect, &e));
        } else {
            for (size_t i = 0; i < len; i++) CHECK_OK(bench_sse_feed(&s, stream + i, 1, collect, &e));
        }
        CHECK_OK(bench_sse_finish(&s, collect, &e));
        if (e.n != n_want) {
            fprintf(stderr, "sse %s, cut %zu: %d events, want %d\n", what, cut, e.n, n_want);
            check_failures++;
        } else {
            for (int i = 0; i < n_want; i++)
                if (strcmp(e.events[i], want[i])) {
                    fprintf(stderr, "sse %s, cut %zu: event %d is '%s', want '%s'\n", what, cut, i, e.events[i], want[i]);
                    check_failures++;
                }
        }
        bench_sse_free(&s);
    }
}

static void test_sse(void)
{
    const char *want[] = { "{\"a\":1}", "{\"b\":2}", "line1\nline2", "", "[DONE]" };
    const char *lf = ": keep-alive comment\n"
                     "data: {\"a\":1}\n\n"
                     "event: message\nid: 7\ndata:{\"b\":2}\n\n"
                     "data: line1\ndata: line2\n\n"
                     "data\n\n"
                     "retry: 10\n\n" /* no data: no event */
                     "data: [DONE]\n\n";
    char crlf[512], cr[512];
    size_t j = 0, k = 0;
    for (const char *p = lf; *p; p++) {
        if (*p == '\n') {
            crlf[j++] = '\r';
            crlf[j++] = '\n';
            cr[k++] = '\r';
        } else {
            crlf[j++] = *p;
            cr[k++] = *p;
        }
    }
    crlf[j] = cr[k] = '\0';
    check_stream(lf, want, 5, "LF");
    check_stream(crlf, want, 5, "CRLF");
    check_stream(cr, want, 5, "CR");
    /* the last event without its blank line (or its newline) still counts */
    {
        const char *w1[] = { "x", "tail" };
        check_stream("data: x\n\ndata: tail", w1, 2, "no final newline");
    }
    /* a callback's error stops the feed */
    {
        bench_sse_t s;
        int n = 0;
        bench_sse_init(&s, 0);
        CHECK(bench_sse_feed(&s, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, stop_at_two, &n) == CLLM_ERR_FORMAT);
        CHECK(n == 2);
        bench_sse_free(&s);
    }
    /* an over-long line is an error, not unbounded growth */
    {
        bench_sse_t s;
        events_t e = { .n = 0 };
        char big[300];
        memset(big, 'x', sizeof(big));
        bench_sse_init(&s, 64);
        CHECK(bench_sse_feed(&s, big, sizeof(big), collect, &e) == CLLM_ERR_RANGE);
        bench_sse_free(&s);
    }
}

static void test_chunks(void)
{
    bench_sse_chunk_t c;
    const char *chat = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}";
    const char *role = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}";
    const char *cmpl = "{\"choices\":[{\"index\":0,\"text\":\" there\",\"finish_reason\":\"length\"}]}";
    const char *usage = "{\"choices\":[],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":3,\"total_tokens\":17,"
                        "\"prompt_tokens_details\":{\"cached_tokens\":12}}}";
    const char *llama = "{\"choices\":[],\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":46},"
                        "\"timings\":{\"cache_n\":32,\"prompt_n\":14}}";
    const char *err = "{\"error\":{\"message\":\"The model `nope` does not exist.\",\"code\":404}}";
    const char *full = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Hi!\"},\"finish_reason\":\"stop\"}]}";

    CHECK_OK(bench_sse_parse_chunk(chat, strlen(chat), &c));
    CHECK(c.has_choice && !c.finished && c.content_len == 3 && !memcmp(c.content, "Hel", 3) && c.prompt_tokens == -1);
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(role, strlen(role), &c));
    CHECK(c.has_choice && c.content_len == 0);
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(cmpl, strlen(cmpl), &c));
    CHECK(c.finished && c.content_len == 6 && !memcmp(c.content, " there", 6));
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(usage, strlen(usage), &c));
    CHECK(!c.has_choice && c.prompt_tokens == 14 && c.completion_tokens == 3 && c.cached_tokens == 12);
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(llama, strlen(llama), &c));
    CHECK(c.prompt_tokens == 46 && c.cached_tokens == 32);
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(err, strlen(err), &c));
    CHECK(!strcmp(c.error, "The model `nope` does not exist."));
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(full, strlen(full), &c));
    CHECK(c.content_len == 3 && c.finished);
    bench_sse_chunk_free(&c);
    CHECK_OK(bench_sse_parse_chunk(" [DONE] ", 8, &c));
    CHECK(c.done);
    bench_sse_chunk_free(&c);
    CHECK(bench_sse_parse_chunk("{\"choices\": [", 13, &c) == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_error_message(), "not JSON") != NULL);
    bench_sse_chunk_free(&c);
}

/* ---- request bodies ---- */

static void test_body(void)
{
    bench_client_config_t cfg;
    bench_prompt_t p;
    json_t *j;
    char *body;
    int32_t ids[] = { 1, 2, 3 };

    bench_client_config_default(&cfg);
    cfg.model = "m";
    cfg.max_tokens = 16;
    cfg.ignore_eos = true;
    cfg.extra_body = "{\"top_k\": 1, \"temperature\": 0.5}";
    memset(&p, 0, sizeof(p));
    p.text = "hello \"world\"";
    p.max_tokens = -1;
    CHECK_OK(bench_client_body(&cfg, &p, &body));
    j = json_loads(body, 0, NULL);
    CHECK(j != NULL);
    CHECK(!strcmp(json_string_value(json_object_get(j, "model")), "m"));
    CHECK(json_is_true(json_object_get(j, "stream")));
    CHECK(json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")));
    CHECK(json_integer_value(json_object_get(j, "max_tokens")) == 16);
    CHECK(json_is_true(json_object_get(j, "ignore_eos")));
    CHECK(json_integer_value(json_object_get(j, "top_k")) == 1);
    CHECK(json_real_value(json_object_get(j, "temperature")) == 0.5); /* extra body wins */
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content")),
                  "hello \"world\""));
    json_decref(j);
    free(body);

    /* a jsonl line's max_tokens wins over the flag; no flag and no line: not sent */
    p.max_tokens = 3;
    cfg.extra_body = NULL;
    cfg.endpoint = BENCH_ENDPOINT_COMPLETIONS;
    CHECK_OK(bench_client_body(&cfg, &p, &body));
    j = json_loads(body, 0, NULL);
    CHECK(json_integer_value(json_object_get(j, "max_tokens")) == 3);
    CHECK(!strcmp(json_string_value(json_object_get(j, "prompt")), "hello \"world\""));
    CHECK(json_real_value(json_object_get(j, "temperature")) == 0.0);
    json_decref(j);
    free(body);
    p.max_tokens = -1;
    cfg.max_tokens = -1;
    p.text = NULL;
    p.token_ids = ids;
    p.n_token_ids = 3;
    CHECK_OK(bench_client_body(&cfg, &p, &body));
    j = json_loads(body, 0, NULL);
    CHECK(json_object_get(j, "max_tokens") == NULL);
    CHECK(json_array_size(json_object_get(j, "prompt")) == 3);
    json_decref(j);
    free(body);
    /* misuse */
    cfg.endpoint = BENCH_ENDPOINT_CHAT;
    CHECK(bench_client_body(&cfg, &p, &body) == CLLM_ERR_INVALID_ARG);
    p.token_ids = NULL;
    p.messages_json = "[{\"role\":\"user\",\"content\":\"x\"}]";
    cfg.endpoint = BENCH_ENDPOINT_COMPLETIONS;
    CHECK(bench_client_body(&cfg, &p, &body) == CLLM_ERR_INVALID_ARG);
    cfg.endpoint = BENCH_ENDPOINT_CHAT;
    cfg.extra_body = "[1]";
    CHECK(bench_client_body(&cfg, &p, &body) == CLLM_ERR_INVALID_ARG);
}

/* ---- datasets ---- */

/* The bodies send_request.sh's own make_request sends for its 10 questions: bash runs the
 * script's definitions (everything before its first request) with a `curl` function that
 * saves each -d body. Returns how many were captured. */
static int seed_bodies(char bodies[10][300])
{
    char cmd[2048];
    int n = 0;
    snprintf(cmd, sizeof(cmd),
             "cd %s && bash -c '"
             "curl() { while [ $# -gt 0 ]; do if [ \"$1\" = -d ]; then printf %%s \"$2\" > \"body_$N.json\"; fi; "
             "shift; done; echo \"{}\"; }; "
             "eval \"$(sed -n \"1,/^# Make first request/p\" \"$1\")\"; "
             "N=0; for q in \"${questions[@]}\"; do make_request \"$q\" > /dev/null; N=$((N+1)); done' _ %s/seed/send_request.sh",
             tmpdir, CLLM_SHARED_DIR);
    if (system(cmd) != 0) return 0;
    for (int i = 0; i < 10; i++) {
        struct stat st;
        snprintf(bodies[i], 300, "%s/body_%d.json", tmpdir, i);
        if (stat(bodies[i], &st) == 0) n++;
    }
    return n;
}

static void test_table_qa(void)
{
    bench_dataset_config_t cfg;
    bench_dataset_t ds;
    char bodies[10][300];
    int n_bodies = seed_bodies(bodies);
    char q[512];

    bench_dataset_config_default(&cfg);
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    CHECK(ds.n == 10 && ds.n_warmup == 0);
    if (n_bodies != 10) {
        fprintf(stderr, "could not run send_request.sh's make_request (bash and jq needed): %d bodies\n", n_bodies);
        check_failures++;
    }
    for (int i = 0; i < n_bodies && i < ds.n; i++) {
        json_error_t jerr;
        json_t *j = json_load_file(bodies[i], 0, &jerr);
        const char *want = json_string_value(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content"));
        if (!want || strcmp(want, ds.prompts[i].text)) {
            const char *got = ds.prompts[i].text;
            size_t k = 0;
            while (want && want[k] && want[k] == got[k]) k++;
            fprintf(stderr, "table-qa prompt %d differs from send_request.sh's at byte %zu: '%.40s' vs '%.40s'\n", i, k,
                    want ? want + k : "(no body)", got + k);
            check_failures++;
        }
        json_decref(j);
        unlink(bodies[i]);
    }
    bench_dataset_free(&ds);

    /* cycling questions, warmup first; a bigger table keeps the seed's rows and layout */
    cfg.num_prompts = 25;
    cfg.num_warmup = 2;
    cfg.rows = 100;
    cfg.questions = 20;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    CHECK(ds.n == 25 && ds.n_warmup == 2);
    if (ds.n == 25) {
        CHECK(!strcmp(ds.prompts[2].text, ds.prompts[2 + 20].text));
        CHECK(strcmp(ds.prompts[2].text, ds.prompts[3].text) != 0);
        CHECK(strstr(ds.prompts[2].text, "| 30  | Ben Black     |") != NULL);
        CHECK(strstr(ds.prompts[2].text, "\n| 100 | ") != NULL);
        CHECK(strstr(ds.prompts[2].text, "\n| 101 | ") == NULL);
    }
    bench_dataset_table_question(100, 15, q, sizeof(q));
    CHECK(!strncmp(q, "Question: ", 10) && strstr(q, "Your answer: ") != NULL);
    bench_dataset_free(&ds);
    /* a small table gets questions about its own people */
    cfg.rows = 3;
    cfg.questions = 8;
    cfg.num_prompts = 8;
    cfg.num_warmup = 0;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    for (int i = 0; i < ds.n; i++) {
        CHECK(strstr(ds.prompts[i].text, "Zack Blue") == NULL);
        CHECK(strstr(ds.prompts[i].text, "| 3   | Alice Johnson |") != NULL);
    }
    bench_dataset_free(&ds);
}

static int count_words(const char *s)
{
    int n = 0;
    bool in = false;
    for (; *s; s++) {
        if (*s == ' ') in = false;
        else if (!in) {
            in = true;
            n++;
        }
    }
    return n;
}

static void test_prefix_repetition(void)
{
    bench_dataset_config_t cfg;
    bench_dataset_t ds, ds2;
    int used[2] = { 0, 0 };
    char *pre[2] = { NULL, NULL };
    gguf_t *g = NULL;
    tokenizer_t *tok = NULL;
    char path[512];

    bench_dataset_config_default(&cfg);
    cfg.kind = BENCH_DATASET_PREFIX_REPETITION;
    cfg.num_prefixes = 2;
    cfg.prefix_len = 16;
    cfg.suffix_len = 8;
    cfg.num_prompts = 6;
    cfg.num_warmup = 2;
    cfg.seed = 5;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    CHECK(ds.n == 6 && ds.n_warmup == 2);
    for (int i = 0; i < ds.n_warmup + ds.n; i++) {
        const char *t = ds.prompts[i].text;
        const char *cut = t;
        int p;
        for (int w = 0; w < 16 && cut; w++) cut = strchr(cut + 1, ' ');
        CHECK(count_words(t) == 24);
        CHECK(ds.prompts[i].prompt_len == 24);
        if (!cut) continue;
        /* the warmup requests bring the prefixes in order */
        if (i < 2) {
            pre[i] = strndup(t, (size_t)(cut - t));
            continue;
        }
        p = pre[0] && !strncmp(t, pre[0], strlen(pre[0])) ? 0 : pre[1] && !strncmp(t, pre[1], strlen(pre[1])) ? 1 : -1;
        CHECK(p >= 0);
        if (p >= 0) used[p]++;
    }
    CHECK(used[0] == 3 && used[1] == 3);
    CHECK(pre[0] && pre[1] && strcmp(pre[0], pre[1]) != 0);
    /* same seed: same prompts; another seed: others */
    CHECK_OK(bench_dataset_create(&cfg, &ds2));
    CHECK(!strcmp(ds.prompts[4].text, ds2.prompts[4].text));
    bench_dataset_free(&ds2);
    cfg.seed = 6;
    CHECK_OK(bench_dataset_create(&cfg, &ds2));
    CHECK(strcmp(ds.prompts[4].text, ds2.prompts[4].text) != 0);
    bench_dataset_free(&ds2);
    bench_dataset_free(&ds);
    free(pre[0]);
    free(pre[1]);

    /* random: no two prompts share a start */
    cfg.kind = BENCH_DATASET_RANDOM;
    cfg.input_len = 40;
    cfg.num_prompts = 20;
    cfg.num_warmup = 0;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    for (int i = 0; i < ds.n; i++) {
        CHECK(count_words(ds.prompts[i].text) == 40);
        for (int k = 0; k < i; k++) CHECK(strncmp(ds.prompts[i].text, ds.prompts[k].text, 40) != 0);
    }
    bench_dataset_free(&ds);

    /* with the Llama 3 vocabulary the token counts are exact, and token ids work */
    snprintf(path, sizeof(path), "%s/reference/tokenizer/ggml-vocab-llama-bpe.gguf", CLLM_SHARED_DIR);
    CHECK_OK(gguf_open(path, &g));
    if (g) CHECK_OK(tokenizer_create(g, &tok));
    gguf_close(g);
    if (!tok) return;
    cfg.kind = BENCH_DATASET_PREFIX_REPETITION;
    cfg.tokenizer = tok;
    cfg.num_prefixes = 1;
    cfg.prefix_len = 300;
    cfg.suffix_len = 57;
    cfg.num_prompts = 4;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    for (int i = 0; i < ds.n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(tokenizer_encode(tok, ds.prompts[i].text, strlen(ds.prompts[i].text), false, false, &ids, &n));
        CHECK(n == 357);
        free(ids);
    }
    bench_dataset_free(&ds);
    cfg.token_ids = true;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    for (int i = 0; i < ds.n; i++) {
        CHECK(ds.prompts[i].text == NULL && ds.prompts[i].n_token_ids == 358); /* with BOS */
        if (i) CHECK(!memcmp(ds.prompts[i].token_ids, ds.prompts[0].token_ids, 301 * sizeof(int32_t)));
    }
    bench_dataset_free(&ds);
    cfg.tokenizer = NULL;
    CHECK(bench_dataset_create(&cfg, &ds) == CLLM_ERR_INVALID_ARG);
    tokenizer_destroy(tok);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_jsonl(void)
{
    bench_dataset_config_t cfg;
    bench_dataset_t ds;
    char path[300];
    snprintf(path, sizeof(path), "%s/prompts.jsonl", tmpdir);
    write_file(path, "\"plain prompt\"\n"
                     "\n"
                     "{\"prompt\": \"object prompt\", \"max_tokens\": 5}\n"
                     "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"hi\"}]}\n"
                     "{\"prompt\": [1, 2, 3], \"output_len\": 2}\n");
    bench_dataset_config_default(&cfg);
    cfg.kind = BENCH_DATASET_JSONL;
    cfg.path = path;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    CHECK(ds.n == 4);
    if (ds.n == 4) {
        CHECK(!strcmp(ds.prompts[0].text, "plain prompt") && ds.prompts[0].max_tokens == -1);
        CHECK(!strcmp(ds.prompts[1].text, "object prompt") && ds.prompts[1].max_tokens == 5);
        CHECK(ds.prompts[2].messages_json && strstr(ds.prompts[2].messages_json, "be brief"));
        CHECK(ds.prompts[3].n_token_ids == 3 && ds.prompts[3].token_ids[2] == 3 && ds.prompts[3].max_tokens == 2);
    }
    bench_dataset_free(&ds);
    cfg.num_prompts = 10;
    cfg.num_warmup = 1;
    CHECK_OK(bench_dataset_create(&cfg, &ds));
    CHECK(ds.n == 10 && !strcmp(ds.prompts[1 + 8].text, "plain prompt") && !strcmp(ds.prompts[0].text, "plain prompt"));
    bench_dataset_free(&ds);

    write_file(path, "\"ok\"\n{\"nothing\": 1}\n");
    CHECK(bench_dataset_create(&cfg, &ds) == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_error_message(), ":2:") != NULL);
    write_file(path, "\"ok\"\n{broken\n");
    CHECK(bench_dataset_create(&cfg, &ds) == CLLM_ERR_FORMAT);
    write_file(path, "\n\n");
    CHECK(bench_dataset_create(&cfg, &ds) == CLLM_ERR_FORMAT);
    cfg.path = "/nonexistent/prompts.jsonl";
    CHECK(bench_dataset_create(&cfg, &ds) == CLLM_ERR_IO);
    unlink(path);
}

/* ---- flags and plots ---- */

static void test_split(void)
{
    char **argv = NULL;
    int argc = 0;
    CHECK_OK(bench_launch_split("  -t 2 --chat-template 'my file.jinja' \"a \\\"q\\\"\" b\\ c  ", &argv, &argc));
    CHECK(argc == 6 && argv[6] == NULL);
    if (argc == 6) {
        CHECK(!strcmp(argv[0], "-t") && !strcmp(argv[1], "2") && !strcmp(argv[2], "--chat-template"));
        CHECK(!strcmp(argv[3], "my file.jinja") && !strcmp(argv[4], "a \"q\"") && !strcmp(argv[5], "b c"));
    }
    /* appending to what is there */
    CHECK_OK(bench_launch_split("", &argv, &argc));
    CHECK_OK(bench_launch_push(&argv, &argc, "last"));
    CHECK(argc == 7 && !strcmp(argv[6], "last") && argv[7] == NULL);
    bench_launch_free_argv(argv, argc);
    argv = NULL;
    argc = 0;
    CHECK(bench_launch_split("--a 'open", &argv, &argc) == CLLM_ERR_INVALID_ARG);
    bench_launch_free_argv(argv, argc);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static void test_plots(void)
{
    double a[50], b[50];
    bench_plot_series_t s[2] = { { "A <no cache>", a, 50 }, { "B & cache", b, 50 } };
    bench_plot_point_t pts[4] = { { 0, 0.01, 1.0, 0.98 }, { 0.25, 0.26, 1.3, 1.25 }, { 0.5, NAN, 1.9, 1.8 },
                                  { 0.9, 0.93, 9.5, 8.0 } };
    char path[300], *svg;
    for (int i = 0; i < 50; i++) {
        a[i] = 1000.0 + 20.0 * i;
        b[i] = 15.0 + (i % 7);
    }
    snprintf(path, sizeof(path), "%s/ttft.svg", tmpdir);
    CHECK_OK(bench_plot_ttft_svg(path, "TTFT <test>", s, 2));
    svg = slurp(path);
    CHECK(svg && !strncmp(svg, "<?xml", 5) && strstr(svg, "<svg") && strstr(svg, "</svg>\n"));
    CHECK(svg && strstr(svg, "TTFT &lt;test&gt;") && strstr(svg, "A &lt;no cache&gt;") && strstr(svg, "B &amp; cache"));
    CHECK(svg && strstr(svg, "log scale")); /* 15 ms vs 2 s: a log axis */
    CHECK(svg && strstr(svg, "<path"));
    free(svg);
    a[0] = NAN;
    CHECK_OK(bench_plot_ttft_svg(path, "one run", s, 1));
    svg = slurp(path);
    CHECK(svg && !strstr(svg, "log scale") && strstr(svg, "n=49"));
    free(svg);
    s[0].n = 0;
    CHECK(bench_plot_ttft_svg(path, "empty", s, 1) == CLLM_ERR_INVALID_ARG);
    snprintf(path, sizeof(path), "%s/speedup.svg", tmpdir);
    CHECK_OK(bench_plot_speedup_svg(path, "speedup", pts, 4));
    svg = slurp(path);
    CHECK(svg && strstr(svg, "9.50x") && strstr(svg, "</svg>"));
    free(svg);
    CHECK(bench_plot_speedup_svg(path, "none", pts, 0) == CLLM_ERR_INVALID_ARG);
    CHECK(bench_plot_speedup_svg("/nonexistent/dir/x.svg", "x", pts, 4) == CLLM_ERR_IO);
    unlink(path);
    snprintf(path, sizeof(path), "%s/ttft.svg", tmpdir);
    unlink(path);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_bench_stats_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_percentiles();
    test_summary();
    test_aggregates();
    test_arrivals();
    test_sse();
    test_chunks();
    test_body();
    test_table_qa();
    test_prefix_repetition();
    test_jsonl();
    test_split();
    test_plots();
    rmdir(tmpdir);
    if (check_failures) {
        fprintf(stderr, "test_bench_stats: %d check(s) failed\n", check_failures);
        return 1;
    }
    printf("test_bench_stats: all checks passed\n");
    return 0;
}

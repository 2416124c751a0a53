/* metrics.c: Prometheus metrics of the server (metrics.h).
 *
 * Histograms keep per-bucket (non-cumulative) counts plus sum and count under one mutex; the
 * renderer turns them cumulative. Bucket boundaries are vLLM's, so dashboards built for vLLM
 * read these the same way. */
#include "server/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double ttft_buckets[] = { 0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                       1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0 };
static const double itl_buckets[] = { 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                      0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0 };
static const double e2e_buckets[] = { 0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,    10.0,   15.0,  20.0,
                                      30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0 };

#define MAX_BUCKETS 32

typedef struct {
    const char *name;
    const char *help;
    const double *bounds; /* (n_bounds) ascending upper bounds; +Inf is implicit */
    int n_bounds;
    uint64_t counts[MAX_BUCKETS + 1]; /* (n_bounds + 1) observations per bucket, last: above all */
    uint64_t count;
    double sum;
} histogram_t;

struct metrics {
    pthread_mutex_t mu;
    char *label;      /* model_name="..." with the value escaped */
    histogram_t hist[METRICS_N_HIST];
    uint64_t prompt_tokens;
};

/* model_name="VALUE" with \, " and newline escaped as the text format requires. */
static char *make_label(const char *value)
{
    size_t n = strlen(value), o = 0;
    char *s = malloc(n * 2 + 16);
    if (!s) return NULL;
    o += (size_t)sprintf(s, "model_name=\"");
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (c == '\\' || c == '"') {
            s[o++] = '\\';
            s[o++] = c;
        } else if (c == '\n') {
            s[o++] = '\\';
            s[o++] = 'n';
        } else {
            s[o++] = c;
        }
    }
    s[o++] = '"';
    s[o] = '\0';
    return s;
}

status_t metrics_create(const char *model_name, metrics_t **out)
{
    metrics_t *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m) return cllm_error(CLLM_ERR_NOMEM, "metrics: out of memory");
    m->label = make_label(model_name ? model_name : "");
    if (!m->label) {
        free(m);
        return cllm_error(CLLM_ERR_NOMEM, "metrics: out of memory");
    }
    pthread_mutex_init(&m->mu, NULL);
    m->hist[METRICS_TTFT] = (histogram_t){ .name = "cllm:time_to_first_token_seconds",
                                           .help = "Histogram of time to first token in seconds.",
                                           .bounds = ttft_buckets,
                                           .n_bounds = (int)(sizeof(ttft_buckets) / sizeof(ttft_buckets[0])) };
    m->hist[METRICS_ITL] = (histogram_t){ .name = "cllm:inter_token_latency_seconds",
                                          .help = "Histogram of inter-token latency in seconds.",
                                          .bounds = itl_buckets,
                                          .n_bounds = (int)(sizeof(itl_buckets) / sizeof(itl_buckets[0])) };
    m->hist[METRICS_E2E] = (histogram_t){ .name = "cllm:e2e_request_latency_seconds",
                                          .help = "Histogram of e2e request latency in seconds.",
                                          .bounds = e2e_buckets,
                                          .n_bounds = (int)(sizeof(e2e_buckets) / sizeof(e2e_buckets[0])) };
    *out = m;
    return CLLM_OK;
}

void metrics_destroy(metrics_t *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->label);
    free(m);
}

void metrics_observe(metrics_t *m, metrics_hist_t h, double seconds)
{
    histogram_t *hg;
    int b = 0;
    if (!m || h < 0 || h >= METRICS_N_HIST || !(seconds >= 0.0)) return;
    hg = &m->hist[h];
    while (b < hg->n_bounds && seconds > hg->bounds[b]) b++;
    pthread_mutex_lock(&m->mu);
    hg->counts[b]++;
    hg->count++;
    hg->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_add_prompt_tokens(metrics_t *m, int64_t n)
{
    if (!m || n <= 0) return;
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)n;
    pthread_mutex_unlock(&m->mu);
}

/* A bound as Python prints floats ("1.0", "0.025"), so `le` labels match vLLM's. */
static void fmt_bound(char *buf, size_t cap, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, cap, "%.1f", v);
    else snprintf(buf, cap, "%g", v);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *f, const char *label, const char *name, const char *help, uint64_t v)
{
    header(f, name, "counter", help);
    fprintf(f, "%s{%s} %llu\n", name, label, (unsigned long long)v);
}

static void gauge(FILE *f, const char *label, const char *name, const char *help, double v)
{
    header(f, name, "gauge", help);
    fprintf(f, "%s{%s} %.17g\n", name, label, v);
}

char *metrics_render(metrics_t *m, const cllm_engine_stats_t *st, int enable_prefix_caching, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f;
    const char *L = m->label;
    static const char *reasons[3] = { "stop", "length", "abort" };
    static const cllm_finish_t reason_ids[3] = { CLLM_FINISH_STOP, CLLM_FINISH_LENGTH, CLLM_FINISH_ABORT };

    *len = 0;
    f = open_memstream(&buf, &size);
    if (!f) return NULL;

    gauge(f, L, "cllm:num_requests_running", "Number of requests in model execution batches.", st->n_running);
    gauge(f, L, "cllm:num_requests_waiting", "Number of requests waiting to be processed.", st->n_waiting);
    gauge(f, L, "cllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          st->n_blocks > 0 ? (double)st->n_blocks_used / (double)st->n_blocks : 0.0);
    counter(f, L, "cllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.", st->prefix_cache_queries);
    counter(f, L, "cllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
            st->prefix_cache_hits);
    counter(f, L, "cllm:prefix_cache_evictions_total",
            "Cached prefix blocks evicted (least recently used first) to reuse their memory.", st->n_evictions);
    gauge(f, L, "cllm:prefix_cache_blocks", "KV blocks that hold a cached prefix and no running request.",
          st->n_blocks_cached);
    counter(f, L, "cllm:num_preemptions_total", "Cumulative number of preemption from the engine.", st->n_preemptions);
    pthread_mutex_lock(&m->mu);
    counter(f, L, "cllm:prompt_tokens_total", "Number of prefill tokens processed.", m->prompt_tokens);
    pthread_mutex_unlock(&m->mu);
    counter(f, L, "cllm:generation_tokens_total", "Number of generation tokens processed.", st->n_generation_tokens);
    header(f, "cllm:request_success_total", "counter", "Count of successfully processed requests.");
    for (int i = 0; i < 3; i++)
        fprintf(f, "cllm:request_success_total{finished_reason=\"%s\",%s} %llu\n", reasons[i], L,
                (unsigned long long)st->n_finished[reason_ids[i]]);
    header(f, "cllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig");
    fprintf(f, "cllm:cache_config_info{block_size=\"%d\",enable_prefix_caching=\"%s\",num_gpu_blocks=\"%d\",%s} 1.0\n",
            st->block_size, enable_prefix_caching ? "True" : "False", st->n_blocks, L);

    pthread_mutex_lock(&m->mu);
    for (int h = 0; h < METRICS_N_HIST; h++) {
        const histogram_t *hg = &m->hist[h];
        uint64_t cum = 0;
        char b[32];
        header(f, hg->name, "histogram", hg->help);
        for (int i = 0; i < hg->n_bounds; i++) {
            cum += hg->counts[i];
            fmt_bound(b, sizeof(b), hg->bounds[i]);
            fprintf(f, "%s_bucket{le=\"%s\",%s} %llu\n", hg->name, b, L, (unsigned long long)cum);
        }
        fprintf(f, "%s_bucket{le=\"+Inf\",%s} %llu\n", hg->name, L, (unsigned long long)hg->count);
        fprintf(f, "%s_count{%s} %llu\n", hg->name, L, (unsigned long long)hg->count);
        fprintf(f, "%s_sum{%s} %.17g\n", hg->name, L, hg->sum);
    }
    pthread_mutex_unlock(&m->mu);

    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

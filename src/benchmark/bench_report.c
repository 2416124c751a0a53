/* bench_report.c: aggregates, text tables and the JSON of a benchmark run (see
 * bench_report.h). The field table below is the single description of the JSON: the writer
 * and the --help text both follow it, and the tests check a saved file against it. */
#include "benchmark/bench_report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_FIELDS(m, what)                                                         \
    { "mean_" m "_ms", "mean " what " (ms)" }, { "median_" m "_ms", "median " what " (ms)" }, \
    { "std_" m "_ms", "standard deviation of " what " (ms)" },                         \
    { "min_" m "_ms", "smallest " what " (ms)" }, { "max_" m "_ms", "largest " what " (ms)" }, \
    { "p90_" m "_ms", "90th percentile of " what " (ms)" }, { "p99_" m "_ms", "99th percentile of " what " (ms)" }

static const struct {
    const char *name, *doc;
} fields[] = {
    { "date", "when the measured run started (ISO 8601, UTC)" },
    { "label", "the run's name in a comparison (\"A\", \"B\"), or null" },
    { "base_url", "the server's base URL" },
    { "endpoint", "the API path the requests went to" },
    { "model_id", "the model name sent in the requests" },
    { "dataset", "the workload: table-qa, prefix-repetition, random or jsonl" },
    { "dataset_params", "the workload's settings (rows, questions, num_prefixes, prefix_len, suffix_len, input_len, path)" },
    { "num_prompts", "measured requests" },
    { "num_warmups", "warmup requests sent one at a time before measuring (not in the numbers)" },
    { "warmup_failed", "warmup requests that failed" },
    { "max_concurrency", "requests in flight at most (null: no limit)" },
    { "request_rate", "Poisson arrival rate in requests/s (null: infinite, all at once)" },
    { "max_tokens", "max_tokens of every request (null: not sent)" },
    { "ignore_eos", "whether ignore_eos was sent" },
    { "temperature", "sampling temperature sent (null: not sent)" },
    { "seed", "seed of the workload and the arrival times" },
    { "duration", "seconds from the start of the measured run to the end of the last response" },
    { "completed", "successful requests" },
    { "failed", "failed requests" },
    { "first_error", "the first failed request's error (null if none failed)" },
    { "total_input_tokens", "prompt tokens of the successful requests (usage, else the workload's target)" },
    { "total_output_tokens", "generated tokens of the successful requests (usage, else content chunks)" },
    { "total_cached_tokens", "cached prompt tokens over the requests whose server reported them" },
    { "prefix_cache_hit_rate", "total_cached_tokens / their requests' prompt tokens (null: never reported)" },
    { "request_throughput", "completed / duration (requests/s)" },
    { "output_throughput", "total_output_tokens / duration (tokens/s)" },
    { "total_token_throughput", "(total_input_tokens + total_output_tokens) / duration (tokens/s)" },
    METRIC_FIELDS("ttft", "time to first token"),
    METRIC_FIELDS("tpot", "time per output token after the first"),
    METRIC_FIELDS("itl", "inter-token latency (gaps between streamed chunks)"),
    METRIC_FIELDS("e2el", "end-to-end request latency"),
    { "requests", "one record per measured request, in workload order:" },
    { "requests[].index", "position in the workload" },
    { "requests[].ok", "whether it succeeded" },
    { "requests[].http_status", "HTTP status (0: no response)" },
    { "requests[].error", "the error, or null" },
    { "requests[].start_time", "when it was sent, seconds after the start of the measured run" },
    { "requests[].ttft_ms", "time to first token (null if failed)" },
    { "requests[].tpot_ms", "time per output token (null with fewer than 2 tokens)" },
    { "requests[].e2el_ms", "end-to-end latency" },
    { "requests[].itl_ms", "list of the gaps between content chunks (ms)" },
    { "requests[].prompt_tokens", "prompt tokens (usage, else the workload's target, else null)" },
    { "requests[].output_tokens", "generated tokens (usage, else content chunks)" },
    { "requests[].cached_tokens", "prompt tokens served from the prefix cache (null: not reported)" },
    { "requests[].chunks", "streamed chunks that carried content" },
    { "requests[].generated_text", "the generated text (only with --save-detailed)" },
};

bool bench_report_field_doc(size_t i, const char **name, const char **doc)
{
    if (i >= sizeof(fields) / sizeof(fields[0])) return false;
    *name = fields[i].name;
    *doc = fields[i].doc;
    return true;
}

json_t *bench_report_real(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

status_t bench_report_compute(const bench_run_t *run, bench_result_t *out)
{
    double *ttft = NULL, *tpot = NULL, *e2e = NULL, *itl = NULL;
    size_t n_itl = 0, k = 0, m = 0;
    status_t st = CLLM_OK;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < run->n; i++) n_itl += run->records[i].ok ? run->records[i].n_itl : 0;
    ttft = malloc((run->n + 1) * sizeof(double));
    tpot = malloc((run->n + 1) * sizeof(double));
    e2e = malloc((run->n + 1) * sizeof(double));
    itl = malloc((n_itl + 1) * sizeof(double));
    if (!ttft || !tpot || !e2e || !itl) {
        st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        goto out;
    }
    for (size_t i = 0; i < run->n; i++) {
        const bench_record_t *r = &run->records[i];
        if (!r->ok) {
            out->failed++;
            if (!out->first_error[0] && r->error) snprintf(out->first_error, sizeof(out->first_error), "%s", r->error);
            continue;
        }
        out->completed++;
        ttft[k] = r->ttft_s;
        tpot[k] = r->tpot_s;
        e2e[k] = r->e2e_s;
        k++;
        for (size_t j = 0; j < r->n_itl; j++) itl[m++] = r->itl_s[j];
        if (r->prompt_tokens > 0) out->total_input_tokens += r->prompt_tokens;
        if (r->output_tokens > 0) out->total_output_tokens += r->output_tokens;
        if (r->cached_tokens >= 0 && r->prompt_tokens > 0) {
            out->n_cache_reported++;
            out->total_cached_tokens += r->cached_tokens;
            out->cached_prompt_tokens += r->prompt_tokens;
        }
    }
    out->duration_s = run->duration_s;
    if (run->duration_s > 0) {
        out->request_throughput = out->completed / run->duration_s;
        out->output_throughput = (double)out->total_output_tokens / run->duration_s;
        out->total_token_throughput = (double)(out->total_input_tokens + out->total_output_tokens) / run->duration_s;
    }
    out->prefix_hit_rate =
        out->cached_prompt_tokens > 0 ? (double)out->total_cached_tokens / (double)out->cached_prompt_tokens : NAN;
    if ((st = bench_stats_summarize(ttft, k, 1000.0, &out->ttft_ms)) != CLLM_OK ||
        (st = bench_stats_summarize(tpot, k, 1000.0, &out->tpot_ms)) != CLLM_OK ||
        (st = bench_stats_summarize(itl, m, 1000.0, &out->itl_ms)) != CLLM_OK ||
        (st = bench_stats_summarize(e2e, k, 1000.0, &out->e2el_ms)) != CLLM_OK)
        goto out;
out:
    free(ttft);
    free(tpot);
    free(e2e);
    free(itl);
    return st;
}

void bench_report_dataset_desc(const bench_dataset_config_t *d, const bench_dataset_t *ds, char *buf, size_t cap)
{
    switch (d->kind) {
    case BENCH_DATASET_TABLE_QA:
        snprintf(buf, cap, "table-qa: %d-row table, %d questions", d->rows, d->questions);
        break;
    case BENCH_DATASET_PREFIX_REPETITION:
        snprintf(buf, cap, "prefix-repetition: %d prefix(es) x %d + %d tokens", d->num_prefixes, d->prefix_len,
                 d->suffix_len);
        break;
    case BENCH_DATASET_RANDOM: snprintf(buf, cap, "random: %d tokens", d->input_len); break;
    default: snprintf(buf, cap, "jsonl: %s", d->path ? d->path : "?"); break;
    }
    if (ds && ds->n_warmup) {
        size_t n = strlen(buf);
        if (n < cap) snprintf(buf + n, cap - n, " (+%d warmup)", ds->n_warmup);
    }
}

/* "1,234,567" */
static const char *grouped(int64_t v, char *buf, size_t cap)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)(v < 0 ? -v : v)), o = 0;
    if (v < 0 && (size_t)o + 1 < cap) buf[o++] = '-';
    for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

static void row_s(FILE *f, const char *k, const char *v)
{
    fprintf(f, "%-40s %s\n", k, v);
}

static void row_f(FILE *f, const char *k, const char *fmt, double v)
{
    char b[64];
    if (isnan(v)) snprintf(b, sizeof(b), "n/a");
    else snprintf(b, sizeof(b), fmt, v);
    row_s(f, k, b);
}

static void print_latency(FILE *f, const char *name, const bench_summary_t *s)
{
    if (s->n == 0) {
        fprintf(f, "%-8s %11s %11s %11s %11s\n", name, "n/a", "n/a", "n/a", "n/a");
        return;
    }
    fprintf(f, "%-8s %11.2f %11.2f %11.2f %11.2f\n", name, s->mean, s->median, s->p90, s->p99);
}

void bench_report_print(FILE *f, const bench_report_meta_t *meta, const bench_result_t *r)
{
    const bench_client_config_t *c = meta->client;
    char b[512], g1[32], g2[32];
    fprintf(f, "============ Serving Benchmark Result%s%s ============\n", meta->label ? ": " : "",
            meta->label ? meta->label : "");
    row_s(f, "Server:", c->base_url);
    row_s(f, "Model:", c->model ? c->model : "");
    bench_report_dataset_desc(meta->dataset, meta->ds, b, sizeof(b));
    row_s(f, "Workload:", b);
    if (c->max_concurrency > 0) snprintf(b, sizeof(b), "%d", c->max_concurrency);
    else snprintf(b, sizeof(b), "no limit");
    row_s(f, "Max concurrency:", b);
    if (isfinite(c->request_rate) && c->request_rate > 0) snprintf(b, sizeof(b), "%g (Poisson)", c->request_rate);
    else snprintf(b, sizeof(b), "inf");
    row_s(f, "Request rate (req/s):", b);
    snprintf(b, sizeof(b), "%d", r->completed);
    row_s(f, "Successful requests:", b);
    snprintf(b, sizeof(b), "%d%s%s", r->failed, r->failed ? "  first error: " : "", r->failed ? r->first_error : "");
    row_s(f, "Failed requests:", b);
    row_f(f, "Benchmark duration (s):", "%.2f", r->duration_s);
    row_s(f, "Total input tokens:", grouped(r->total_input_tokens, g1, sizeof(g1)));
    row_s(f, "Total generated tokens:", grouped(r->total_output_tokens, g1, sizeof(g1)));
    if (isnan(r->prefix_hit_rate)) {
        row_s(f, "Prefix cache hit rate:", "n/a (the server reports no cached tokens)");
    } else {
        snprintf(b, sizeof(b), "%.1f%% (%s of %s prompt tokens cached)", 100.0 * r->prefix_hit_rate,
                 grouped(r->total_cached_tokens, g1, sizeof(g1)), grouped(r->cached_prompt_tokens, g2, sizeof(g2)));
        row_s(f, "Prefix cache hit rate:", b);
    }
    row_f(f, "Request throughput (req/s):", "%.3f", r->request_throughput);
    row_f(f, "Output token throughput (tok/s):", "%.2f", r->output_throughput);
    row_f(f, "Total token throughput (tok/s):", "%.2f", r->total_token_throughput);
    row_f(f, "Mean response time (s):", "%.3f", r->e2el_ms.mean / 1000.0);
    fprintf(f, "--------------------------------------------------------\n");
    fprintf(f, "%-8s %11s %11s %11s %11s\n", "(ms)", "mean", "median", "p90", "p99");
    print_latency(f, "TTFT", &r->ttft_ms);
    print_latency(f, "TPOT", &r->tpot_ms);
    print_latency(f, "ITL", &r->itl_ms);
    print_latency(f, "E2E", &r->e2el_ms);
    fprintf(f, "========================================================\n");
}

static void pair_row(FILE *f, const char *name, const char *fmt, double a, double b)
{
    char sa[32], sb[32], sr[32];
    if (isnan(a)) snprintf(sa, sizeof(sa), "n/a");
    else snprintf(sa, sizeof(sa), fmt, a);
    if (isnan(b)) snprintf(sb, sizeof(sb), "n/a");
    else snprintf(sb, sizeof(sb), fmt, b);
    if (isnan(a) || isnan(b) || a == 0.0) snprintf(sr, sizeof(sr), "-");
    else snprintf(sr, sizeof(sr), "%.3fx", b / a);
    fprintf(f, "%-34s %14s %14s %10s\n", name, sa, sb, sr);
}

void bench_report_print_pair(FILE *f, const char *name_a, const bench_result_t *a, const char *name_b,
                             const bench_result_t *b)
{
    fprintf(f, "================== A vs B ==================\n");
    fprintf(f, "A: %s\nB: %s\n", name_a, name_b);
    fprintf(f, "%-34s %14s %14s %10s\n", "", "A", "B", "B/A");
    pair_row(f, "Successful requests", "%.0f", a->completed, b->completed);
    pair_row(f, "Failed requests", "%.0f", a->failed, b->failed);
    pair_row(f, "Benchmark duration (s)", "%.2f", a->duration_s, b->duration_s);
    pair_row(f, "Prefix cache hit rate (%)", "%.1f", 100.0 * a->prefix_hit_rate, 100.0 * b->prefix_hit_rate);
    pair_row(f, "Request throughput (req/s)", "%.3f", a->request_throughput, b->request_throughput);
    pair_row(f, "Output token throughput (tok/s)", "%.2f", a->output_throughput, b->output_throughput);
    pair_row(f, "Mean response time (s)", "%.3f", a->e2el_ms.mean / 1000.0, b->e2el_ms.mean / 1000.0);
    pair_row(f, "Mean TTFT (ms)", "%.2f", a->ttft_ms.mean, b->ttft_ms.mean);
    pair_row(f, "Median TTFT (ms)", "%.2f", a->ttft_ms.median, b->ttft_ms.median);
    pair_row(f, "P90 TTFT (ms)", "%.2f", a->ttft_ms.p90, b->ttft_ms.p90);
    pair_row(f, "P99 TTFT (ms)", "%.2f", a->ttft_ms.p99, b->ttft_ms.p99);
    pair_row(f, "Mean TPOT (ms)", "%.2f", a->tpot_ms.mean, b->tpot_ms.mean);
    pair_row(f, "Median TPOT (ms)", "%.2f", a->tpot_ms.median, b->tpot_ms.median);
    pair_row(f, "Mean ITL (ms)", "%.2f", a->itl_ms.mean, b->itl_ms.mean);
    pair_row(f, "Median ITL (ms)", "%.2f", a->itl_ms.median, b->itl_ms.median);
    pair_row(f, "Mean E2E latency (ms)", "%.2f", a->e2el_ms.mean, b->e2el_ms.mean);
    pair_row(f, "Median E2E latency (ms)", "%.2f", a->e2el_ms.median, b->e2el_ms.median);
    pair_row(f, "P99 E2E latency (ms)", "%.2f", a->e2el_ms.p99, b->e2el_ms.p99);
    fprintf(f, "============================================\n");
}

static void set_metric(json_t *o, const char *m, const bench_summary_t *s)
{
    char k[64];
    struct {
        const char *pfx;
        double v;
    } v[] = { { "mean", s->mean }, { "median", s->median }, { "std", s->std }, { "min", s->min },
              { "max", s->max },   { "p90", s->p90 },       { "p99", s->p99 } };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        snprintf(k, sizeof(k), "%s_%s_ms", v[i].pfx, m);
        json_object_set_new(o, k, bench_report_real(v[i].v));
    }
}

static json_t *int_or_null(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *bench_report_json(const bench_report_meta_t *meta, const bench_result_t *r, const bench_run_t *run)
{
    const bench_client_config_t *c = meta->client;
    const bench_dataset_config_t *d = meta->dataset;
    json_t *o = json_object(), *dp = json_object(), *reqs = json_array();
    if (!o || !dp || !reqs) {
        json_decref(o);
        json_decref(dp);
        json_decref(reqs);
        return NULL;
    }
    json_object_set_new(o, "date", json_string(run->started_at));
    json_object_set_new(o, "label", str_or_null(meta->label));
    json_object_set_new(o, "base_url", json_string(c->base_url));
    json_object_set_new(o, "endpoint",
                        json_string(c->endpoint == BENCH_ENDPOINT_CHAT ? "/v1/chat/completions" : "/v1/completions"));
    json_object_set_new(o, "model_id", json_string(c->model ? c->model : ""));
    json_object_set_new(o, "dataset", json_string(bench_dataset_kind_name(d->kind)));
    switch (d->kind) {
    case BENCH_DATASET_TABLE_QA:
        json_object_set_new(dp, "rows", json_integer(d->rows));
        json_object_set_new(dp, "questions", json_integer(d->questions));
        break;
    case BENCH_DATASET_PREFIX_REPETITION:
        json_object_set_new(dp, "num_prefixes", json_integer(d->num_prefixes));
        json_object_set_new(dp, "prefix_len", json_integer(d->prefix_len));
        json_object_set_new(dp, "suffix_len", json_integer(d->suffix_len));
        break;
    case BENCH_DATASET_RANDOM: json_object_set_new(dp, "input_len", json_integer(d->input_len)); break;
    default: json_object_set_new(dp, "path", str_or_null(d->path)); break;
    }
    json_object_set_new(o, "dataset_params", dp);
    json_object_set_new(o, "num_prompts", json_integer((json_int_t)run->n));
    json_object_set_new(o, "num_warmups", json_integer(meta->ds ? meta->ds->n_warmup : 0));
    json_object_set_new(o, "warmup_failed", json_integer(run->warmup_failed));
    json_object_set_new(o, "max_concurrency", c->max_concurrency > 0 ? json_integer(c->max_concurrency) : json_null());
    json_object_set_new(o, "request_rate", c->request_rate > 0 ? bench_report_real(c->request_rate) : json_null());
    json_object_set_new(o, "max_tokens", int_or_null(c->max_tokens));
    json_object_set_new(o, "ignore_eos", json_boolean(c->ignore_eos));
    json_object_set_new(o, "temperature", c->temperature >= 0 ? json_real(c->temperature) : json_null());
    json_object_set_new(o, "seed", json_integer((json_int_t)d->seed));
    json_object_set_new(o, "duration", bench_report_real(r->duration_s));
    json_object_set_new(o, "completed", json_integer(r->completed));
    json_object_set_new(o, "failed", json_integer(r->failed));
    json_object_set_new(o, "first_error", r->first_error[0] ? json_string(r->first_error) : json_null());
    json_object_set_new(o, "total_input_tokens", json_integer(r->total_input_tokens));
    json_object_set_new(o, "total_output_tokens", json_integer(r->total_output_tokens));
    json_object_set_new(o, "total_cached_tokens", json_integer(r->total_cached_tokens));
    json_object_set_new(o, "prefix_cache_hit_rate", bench_report_real(r->prefix_hit_rate));
    json_object_set_new(o, "request_throughput", bench_report_real(r->request_throughput));
    json_object_set_new(o, "output_throughput", bench_report_real(r->output_throughput));
    json_object_set_new(o, "total_token_throughput", bench_report_real(r->total_token_throughput));
    set_metric(o, "ttft", &r->ttft_ms);
    set_metric(o, "tpot", &r->tpot_ms);
    set_metric(o, "itl", &r->itl_ms);
    set_metric(o, "e2el", &r->e2el_ms);
    for (size_t i = 0; i < run->n; i++) {
        const bench_record_t *q = &run->records[i];
        json_t *e = json_object(), *itl = json_array();
        for (size_t j = 0; j < q->n_itl; j++) json_array_append_new(itl, bench_report_real(q->itl_s[j] * 1000.0));
        json_object_set_new(e, "index", json_integer((json_int_t)i));
        json_object_set_new(e, "ok", json_boolean(q->ok));
        json_object_set_new(e, "http_status", json_integer(q->http_status));
        json_object_set_new(e, "error", str_or_null(q->error));
        json_object_set_new(e, "start_time", bench_report_real(q->start_s));
        json_object_set_new(e, "ttft_ms", bench_report_real(q->ttft_s * 1000.0));
        json_object_set_new(e, "tpot_ms", bench_report_real(q->tpot_s * 1000.0));
        json_object_set_new(e, "e2el_ms", bench_report_real(q->e2e_s * 1000.0));
        json_object_set_new(e, "itl_ms", itl);
        json_object_set_new(e, "prompt_tokens", int_or_null(q->prompt_tokens));
        json_object_set_new(e, "output_tokens", int_or_null(q->output_tokens));
        json_object_set_new(e, "cached_tokens", int_or_null(q->cached_tokens));
        json_object_set_new(e, "chunks", json_integer(q->n_chunks));
        if (q->text) json_object_set_new(e, "generated_text", json_string(q->text));
        json_array_append_new(reqs, e);
    }
    json_object_set_new(o, "requests", reqs);
    return o;
}

status_t bench_report_save(const char *path, const json_t *doc)
{
    if (json_dump_file(doc, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) != 0)
        return cllm_error(CLLM_ERR_IO, "bench: cannot write '%s': %s", path, strerror(errno));
    return CLLM_OK;
}

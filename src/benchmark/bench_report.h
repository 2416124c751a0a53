/* bench_report.h: what a benchmark run measured, as aggregates, a text table and JSON.
 *
 * Aggregates follow vLLM's `vllm bench serve` (and its JSON key names, so its tooling reads
 * ours): successful requests only; duration from the start of the measured run to the end
 * of the last response; request throughput = completed / duration; output throughput =
 * output tokens / duration; total token throughput = (input + output) / duration; TTFT, TPOT,
 * ITL (every inter-chunk gap of every request pooled) and E2E latency ("e2el") summarized as
 * mean, median, std, min, max, p90 and p99 in milliseconds (linear-interpolation
 * percentiles, see bench_stats.h). Prefix cache hit rate = sum of cached prompt tokens / sum
 * of prompt tokens over the successful requests whose server reported cached tokens (the
 * other requests are left out of both sums); none reported: unknown (JSON null).
 *
 * The --save-result JSON: every field is listed, with its meaning, by
 * bench_report_field_doc (the --help text prints the same list). */
#ifndef CLLM_BENCHMARK_BENCH_REPORT_H
#define CLLM_BENCHMARK_BENCH_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "benchmark/bench_client.h"
#include "benchmark/bench_dataset.h"
#include "benchmark/bench_stats.h"
#include "cllm/status.h"

typedef struct {
    int32_t completed, failed;
    double duration_s;
    int64_t total_input_tokens, total_output_tokens;
    int64_t total_cached_tokens;   /* over requests that reported it */
    int64_t cached_prompt_tokens;  /* prompt tokens of those requests */
    int32_t n_cache_reported;      /* successful requests that reported cached tokens */
    double request_throughput, output_throughput, total_token_throughput;
    double prefix_hit_rate;        /* NaN when no request reported cached tokens */
    bench_summary_t ttft_ms, tpot_ms, itl_ms, e2el_ms;
    char first_error[256];         /* the first failed request's error ("" if none) */
} bench_result_t;

/* What ran, for the report's header and the JSON (pointers are borrowed). */
typedef struct {
    const bench_client_config_t *client;
    const bench_dataset_config_t *dataset;
    const bench_dataset_t *ds;
    const char *label;   /* a name for this run in comparisons ("A", "B"), or NULL */
} bench_report_meta_t;

/* Errors: CLLM_ERR_NOMEM. */
status_t bench_report_compute(const bench_run_t *run, bench_result_t *out);

/* One run as a table (to stdout in `cllm bench serve`). */
void bench_report_print(FILE *f, const bench_report_meta_t *meta, const bench_result_t *r);
/* Two runs side by side with the ratio B/A of each number. */
void bench_report_print_pair(FILE *f, const char *name_a, const bench_result_t *a, const char *name_b,
                             const bench_result_t *b);

/* The JSON document of one run: configuration, aggregates and per-request records
 * (generated text only when it was kept). NULL when out of memory. */
json_t *bench_report_json(const bench_report_meta_t *meta, const bench_result_t *r, const bench_run_t *run);
/* Writes a JSON document to path (pretty-printed). Errors: CLLM_ERR_IO. */
status_t bench_report_save(const char *path, const json_t *doc);

/* The documented fields of the JSON: i in [0, count). Names of per-request fields start
 * with "requests[]." . Returns false past the end. */
bool bench_report_field_doc(size_t i, const char **name, const char **doc);

/* A short description of the dataset ("prefix-repetition: 4 prefixes x 256 + 256 tokens"). */
void bench_report_dataset_desc(const bench_dataset_config_t *d, const bench_dataset_t *ds, char *buf, size_t cap);

/* JSON number, or null for NaN/inf (jansson refuses non-finite reals). */
json_t *bench_report_real(double x);

#endif

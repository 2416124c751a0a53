/* bench_client.h: the load generator of `cllm bench serve`: sends a dataset's prompts to an
 * OpenAI-compatible server (cllm serve, llama.cpp's llama-server, vLLM, ...) and times every
 * streamed response.
 *
 * One thread drives every transfer through libcurl's multi interface. Requests are released
 * at Poisson arrival times (or all at once for an infinite rate) and at most max_concurrency
 * are in flight; a request that arrives while all slots are busy waits for one, and its
 * clock starts when it is sent. Each request asks for a stream with usage
 * (stream_options.include_usage) and is timed from its send:
 * - TTFT: until the first chunk with non-empty content (no content at all: the first chunk
 *   with a choice, else the end);
 * - ITL: the gaps between successive content chunks (one chunk may hold several tokens);
 * - E2E: until the response ends; TPOT = (E2E - TTFT) / (output_tokens - 1);
 * - tokens: usage.prompt_tokens / completion_tokens and
 *   usage.prompt_tokens_details.cached_tokens (llama-server: timings.cache_n) when reported.
 * A request fails on a transport error, a non-200 status, an "error" event or a malformed
 * chunk; its record keeps the first error line. A server that ignores "stream" and answers
 * with one JSON body is still measured (TTFT = E2E).
 * Warmup requests (the dataset's first n_warmup) go one at a time before the measured run
 * and are not recorded. */
#ifndef CLLM_BENCHMARK_BENCH_CLIENT_H
#define CLLM_BENCHMARK_BENCH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "benchmark/bench_dataset.h"
#include "cllm/status.h"

typedef enum { BENCH_ENDPOINT_CHAT = 0, BENCH_ENDPOINT_COMPLETIONS } bench_endpoint_t;

typedef struct {
    const char *base_url;     /* http://host:port (a trailing "/" or "/v1" is dropped) */
    bench_endpoint_t endpoint; /* /v1/chat/completions or /v1/completions */
    const char *model;
    const char *api_key;      /* sent as "Authorization: Bearer KEY"; NULL or "": none */
    int32_t max_concurrency;  /* requests in flight at most; 0: no limit */
    double request_rate;      /* requests per second (Poisson); inf or <= 0: all at once */
    uint64_t seed;            /* of the arrival times */
    int32_t max_tokens;       /* max_tokens of every request (a jsonl line's own wins); -1: not sent */
    bool ignore_eos;          /* send "ignore_eos": true (vLLM, llama-server and cllm know it) */
    double temperature;       /* < 0: not sent */
    const char *extra_body;   /* a JSON object merged into every request body, or NULL */
    double timeout_s;         /* per request; 0: none */
    bool progress;            /* a progress bar on stderr */
    const char *label;        /* progress bar prefix, or NULL */
    bool keep_text;           /* keep the generated text in the records */
} bench_client_config_t;

/* One measured request. Times are seconds; NaN where not measured. */
typedef struct {
    bool ok;
    long http_status;       /* 0: no response */
    char *error;            /* first error line, NULL when ok */
    double start_s;         /* when it was sent, after the start of the measured run */
    double ttft_s, e2e_s, tpot_s;
    double *itl_s;          /* (n_itl,) gaps between content chunks */
    size_t n_itl;
    int64_t prompt_tokens;  /* usage.prompt_tokens, else the dataset's target length, else -1 */
    int64_t output_tokens;  /* usage.completion_tokens, else the number of content chunks */
    int64_t cached_tokens;  /* -1: the server did not say */
    int32_t n_chunks;       /* chunks with content */
    char *text;             /* the generated text when keep_text, else NULL */
} bench_record_t;

typedef struct {
    bench_record_t *records; /* (n,): the dataset's measured prompts, in dataset order */
    size_t n;
    double duration_s;       /* from the start of the measured run to the last response's end */
    double warmup_s;         /* time the warmup requests took */
    int32_t warmup_failed;
    char started_at[32];     /* wall-clock start, ISO 8601 UTC */
} bench_run_t;

void bench_client_config_default(bench_client_config_t *cfg);

/* The JSON body of one request (malloc'd text into *out). Errors: CLLM_ERR_INVALID_ARG (a
 * message list for the completions endpoint, token ids for chat, extra_body not an object). */
status_t bench_client_body(const bench_client_config_t *cfg, const bench_prompt_t *p, char **out);

/* Runs the dataset. A request that fails is recorded, not an error; errors are setup
 * failures (CLLM_ERR_INVALID_ARG: a bad config or body; CLLM_ERR_NOMEM; CLLM_ERR_IO: libcurl
 * could not start) and every warmup request failing (CLLM_ERR_IO, with the first error).
 * On success call bench_run_free. */
status_t bench_client_run(const bench_client_config_t *cfg, const bench_dataset_t *ds, bench_run_t *out);
void bench_run_free(bench_run_t *run);

/* Every time in the records is CLOCK_MONOTONIC seconds (core/clock.h). */

/* GET url with a timeout; *http_status = the status, 0 if nothing answered (not an error).
 * Errors: CLLM_ERR_IO (libcurl could not start). */
status_t bench_client_get(const char *url, double timeout_s, long *http_status);

#endif

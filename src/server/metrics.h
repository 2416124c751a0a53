/* metrics.h: the server's Prometheus metrics (GET /metrics), named and defined as vLLM's
 * (`cllm:` instead of `vllm:`; README.md "## Metrics" documents each).
 *
 * Owns the per-request latency histograms the HTTP threads feed (time to first token,
 * inter-token latency, end-to-end latency, with vLLM's bucket boundaries) and the prompt token
 * counter; the engine's own counters and gauges (cllm_engine_stats_t) are rendered next to
 * them. Every series carries the label model_name.
 *
 * Invariants: thread-safe (one mutex); histogram buckets are cumulative when rendered and
 * +Inf equals _count; counters only grow. */
#ifndef CLLM_SERVER_METRICS_H
#define CLLM_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cllm/engine.h"
#include "cllm/status.h"

typedef struct metrics metrics_t;

typedef enum {
    METRICS_TTFT = 0, /* cllm:time_to_first_token_seconds */
    METRICS_ITL,      /* cllm:inter_token_latency_seconds */
    METRICS_E2E,      /* cllm:e2e_request_latency_seconds */
    METRICS_N_HIST
} metrics_hist_t;

/* model_name: the label value (copied). CLLM_ERR_NOMEM. */
status_t metrics_create(const char *model_name, metrics_t **out);
void metrics_destroy(metrics_t *m);

/* Adds one observation of seconds to a histogram. */
void metrics_observe(metrics_t *m, metrics_hist_t h, double seconds);
/* Prompt tokens of a request that started generating (cached ones included, as vLLM counts). */
void metrics_add_prompt_tokens(metrics_t *m, int64_t n);

/* The Prometheus text exposition (format 0.0.4) of everything, with the engine's stats st and
 * its block size / block count / prefix caching setting for cllm:cache_config_info. Returns a
 * malloc'd NUL-terminated string (*len bytes), NULL without memory. */
char *metrics_render(metrics_t *m, const cllm_engine_stats_t *st, int enable_prefix_caching, size_t *len);

#endif

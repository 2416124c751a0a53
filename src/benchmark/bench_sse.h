/* bench_sse.h: reading an OpenAI-style streaming response: a Server-Sent Events line
 * splitter that takes the body in arbitrary pieces (as the network delivers it), and the
 * parser of one streamed chunk's JSON (content text, usage, error).
 *
 * The splitter follows the SSE format: lines end with "\n", "\r\n" or "\r" (a "\r\n" split
 * across two pieces counts once); "data:" lines (one optional space after the colon) are
 * joined with "\n" into the event's data, which is delivered at the blank line that ends the
 * event (or by bench_sse_finish at the end of the body); comment lines (":...") and other
 * fields (event:, id:, retry:) are ignored. An event whose data exceeds max_bytes is an
 * error, never unbounded growth. */
#ifndef CLLM_BENCHMARK_BENCH_SSE_H
#define CLLM_BENCHMARK_BENCH_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

/* Called with each event's data (NUL-terminated, len bytes). A status other than CLLM_OK stops
 * bench_sse_feed / bench_sse_finish, which return it. */
typedef status_t (*bench_sse_event_fn)(const char *data, size_t len, void *user);

typedef struct {
    char *line;       /* the current, incomplete line: (line_len,) bytes */
    size_t line_len, line_cap;
    char *data;       /* the current event's data so far: (data_len,) bytes */
    size_t data_len, data_cap;
    bool has_data;    /* a data: line was seen since the last dispatch */
    bool skip_lf;     /* the last piece ended with "\r": a leading "\n" of the next ends nothing */
    size_t max_bytes; /* limit on one line and on one event's data */
} bench_sse_t;

/* max_bytes 0 means 16 MiB. */
void bench_sse_init(bench_sse_t *s, size_t max_bytes);
void bench_sse_free(bench_sse_t *s);

/* Feeds n bytes of the body; calls fn for each event completed by them.
 * Errors: CLLM_ERR_RANGE (a line or event over max_bytes), CLLM_ERR_NOMEM, or fn's status. */
status_t bench_sse_feed(bench_sse_t *s, const char *bytes, size_t n, bench_sse_event_fn fn, void *user);
/* End of the body: a last line without its newline and an event without its blank line are
 * delivered. Same errors. */
status_t bench_sse_finish(bench_sse_t *s, bench_sse_event_fn fn, void *user);

/* What one streamed chunk (or a whole non-streamed response) says. */
typedef struct {
    bool done;               /* the data was "[DONE]" */
    bool has_choice;         /* it carried at least one choice */
    const char *content;     /* the new text (chat: delta.content, else delta.reasoning_content;
                                completions: text; non-streamed: message.content) or NULL;
                                points into the chunk object (valid until bench_sse_chunk_free) */
    size_t content_len;
    bool finished;           /* a choice had a non-null finish_reason */
    int64_t prompt_tokens;   /* usage.prompt_tokens, or -1 */
    int64_t completion_tokens; /* usage.completion_tokens, or -1 */
    int64_t cached_tokens;   /* usage.prompt_tokens_details.cached_tokens, else llama-server's
                                timings.cache_n, or -1 */
    char error[256];         /* an "error" object's message ("" if none) */
    void *json_;             /* the parsed document (private) */
} bench_sse_chunk_t;

/* Parses one event's data. "[DONE]" sets done. Text that is not JSON is CLLM_ERR_FORMAT
 * (message names the first bytes); a JSON value without choices/usage/error is fine (all
 * fields empty). Call bench_sse_chunk_free afterwards in every case. */
status_t bench_sse_parse_chunk(const char *data, size_t len, bench_sse_chunk_t *out);
void bench_sse_chunk_free(bench_sse_chunk_t *c);

#endif

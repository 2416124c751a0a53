/* bench_dataset.h: the workloads of `cllm bench serve`: lists of prompts to send.
 *
 * Kinds:
 * - table-qa: the seed's workload (shared/seed/send_request.sh): one markdown table of `rows`
 *   people shared by every prompt, then one question. The user message is exactly the
 *   script's: TABLE_PROMPT "\n\nBased on the table above, please answer this question:\n"
 *   QUESTION "\n" (the script's `echo` adds the final newline). Rows 1..30 are the seed's
 *   table byte for byte (its column widths included); rows past 30 are generated in the same
 *   layout. Questions 1..10 are the seed's when the table has its 30 people, further ones (or
 *   all, for a smaller table) are generated about people in the table. Measured request i
 *   asks question i % questions, in order, as the script does.
 * - prefix-repetition: vLLM's: num_prefixes random prefixes of prefix_len tokens, each
 *   followed by a random suffix of suffix_len tokens; prompt i uses prefix i % num_prefixes
 *   and the order is shuffled with the seed.
 * - random: every prompt is input_len tokens of fresh random text (no shared prefix: the
 *   0%-hit control). Same as prefix-repetition with prefix_len 0.
 * - jsonl: one request per line of a file: a JSON string (the prompt), or an object with
 *   "prompt" (a string, or a list of token ids) or "messages" (a chat message list), and
 *   optionally "max_tokens" (or "output_len"). Blank lines are skipped. Lines are used in
 *   order, repeated when num_prompts is larger than the file.
 *
 * Random text is space-separated common English words, each one token (with its leading
 * space) in Llama-3-style BPE vocabularies, so a prompt of N words is about N tokens for
 * such tokenizers. With a tokenizer given, the words that are not one token are dropped from
 * the list and texts are checked by encoding them, so lengths are exact for BPE vocabularies
 * (SentencePiece vocabularies with few whole words get close to the target instead).
 *
 * Warmup requests (num_warmup) come first in the list and are made like the others: table-qa
 * asks a random question, prefix-repetition uses prefix i % num_prefixes with a fresh suffix
 * (so that, with num_warmup >= num_prefixes, every prefix is cached before measuring), random
 * makes fresh prompts, jsonl repeats its first lines. */
#ifndef CLLM_BENCHMARK_BENCH_DATASET_H
#define CLLM_BENCHMARK_BENCH_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "tokenizer/tokenizer.h"

typedef enum {
    BENCH_DATASET_TABLE_QA = 0,
    BENCH_DATASET_PREFIX_REPETITION,
    BENCH_DATASET_RANDOM,
    BENCH_DATASET_JSONL,
} bench_dataset_kind_t;

typedef struct {
    bench_dataset_kind_t kind;
    int32_t num_prompts;  /* measured requests; jsonl: <= 0 means one per line */
    int32_t num_warmup;   /* extra requests made first, for warmup */
    uint64_t seed;
    int32_t rows, questions;                      /* table-qa */
    int32_t num_prefixes, prefix_len, suffix_len; /* prefix-repetition (tokens) */
    int32_t input_len;                            /* random (tokens) */
    const char *path;                             /* jsonl */
    const tokenizer_t *tokenizer; /* optional: exact random-text lengths; needed for token_ids */
    bool token_ids;               /* prefix-repetition/random: prompts as token ids (completions) */
} bench_dataset_config_t;

/* One request's input. Exactly one of text, messages_json and token_ids is set. */
typedef struct {
    char *text;           /* chat: the user message; completions: the prompt (NUL-terminated) */
    char *messages_json;  /* a chat message list as JSON text */
    int32_t *token_ids;   /* (n_token_ids,) a token-id prompt */
    int32_t n_token_ids;
    int32_t prompt_len;   /* tokens the generator aimed for (without chat template); 0: unknown */
    int32_t max_tokens;   /* from a jsonl line; -1: not set */
} bench_prompt_t;

typedef struct {
    bench_prompt_t *prompts; /* (n_warmup + n): the warmup requests, then the measured ones */
    int32_t n_warmup, n;
} bench_dataset_t;

/* Sets the defaults: table-qa, 30 rows, 10 questions, num_prompts 0 (= questions for
 * table-qa), 1 prefix, prefix 256 / suffix 256 / input 1024 tokens, seed 0. */
void bench_dataset_config_default(bench_dataset_config_t *cfg);

/* Parses a kind name ("table-qa", "prefix-repetition", "random", "jsonl").
 * Errors: CLLM_ERR_INVALID_ARG. */
status_t bench_dataset_parse_kind(const char *name, bench_dataset_kind_t *out);
const char *bench_dataset_kind_name(bench_dataset_kind_t kind);

/* Builds the prompts. Errors: CLLM_ERR_INVALID_ARG (a bad count or length, token_ids without
 * a tokenizer), CLLM_ERR_IO / CLLM_ERR_FORMAT (jsonl: the message names file and line),
 * CLLM_ERR_NOMEM. On error *out is empty. */
status_t bench_dataset_create(const bench_dataset_config_t *cfg, bench_dataset_t *out);
void bench_dataset_free(bench_dataset_t *ds);

/* The table-qa pieces, for tests and for reuse: the table prompt of `rows` people (malloc'd,
 * NULL if out of memory) and question q (0-based) about that table, written into buf (cap
 * bytes; returns the full length like snprintf). */
char *bench_dataset_table_prompt(int32_t rows);
size_t bench_dataset_table_question(int32_t rows, int32_t q, char *buf, size_t cap);

#endif

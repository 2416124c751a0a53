/* cmd_bench.c: `cllm bench serve` (drive any OpenAI-compatible server with a workload and
 * report its latencies and throughput, like vLLM's `vllm bench serve`) and `cllm bench
 * compare` (start `cllm serve` twice on one model with two flag sets, run the same workload
 * on each, and report the ratios; or sweep the prefix hit rate and plot the TTFT speedup).
 *
 * The work is in src/benchmark/: datasets, the libcurl driver, statistics, the report and
 * JSON, SVG plots and the server launcher. This file parses flags and puts them together.
 * stdout carries the reports; progress and errors go to stderr. Exit status: 0 when every
 * measured request succeeded, 1 when any failed or the run could not be done, 2 for a bad
 * command line. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
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
#include "benchmark/bench_stats.h"
#include "commands.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_SWEEP 16

typedef enum {
    O_BASE_URL, O_HOST, O_PORT, O_MODEL, O_SERVED_NAME, O_DATASET, O_DATASET_PATH, O_ROWS, O_QUESTIONS,
    O_NUM_PREFIXES, O_PREFIX_LEN, O_SUFFIX_LEN, O_INPUT_LEN, O_NUM_PROMPTS, O_MAX_CONC, O_RATE, O_MAX_TOKENS,
    O_IGNORE_EOS, O_SEED, O_WARMUP, O_ENDPOINT, O_API_KEY, O_TEMPERATURE, O_EXTRA_BODY, O_TIMEOUT, O_TOKENIZER,
    O_TOKEN_IDS, O_SAVE_RESULT, O_SAVE_DETAILED, O_PLOT, O_NO_PROGRESS, O_A, O_B, O_COMMON, O_SWEEP, O_SWEEP_POINTS,
    O_SERVER_TIMEOUT, O_LOG_DIR, O_ROUNDS, O_HELP
} opt_id_t;

enum { FOR_SERVE = 1, FOR_COMPARE = 2, FOR_BOTH = 3 };

typedef struct {
    const char *name, *alias;
    bool has_value;
    opt_id_t id;
    int where;
} opt_t;

static const opt_t opts[] = {
    { "--base-url", NULL, true, O_BASE_URL, FOR_SERVE },
    { "--host", NULL, true, O_HOST, FOR_SERVE },
    { "--port", NULL, true, O_PORT, FOR_SERVE },
    { "--model", "-m", true, O_MODEL, FOR_BOTH },
    { "--served-model-name", NULL, true, O_SERVED_NAME, FOR_COMPARE },
    { "--dataset", "--dataset-name", true, O_DATASET, FOR_BOTH },
    { "--dataset-path", NULL, true, O_DATASET_PATH, FOR_BOTH },
    { "--rows", NULL, true, O_ROWS, FOR_BOTH },
    { "--questions", NULL, true, O_QUESTIONS, FOR_BOTH },
    { "--num-prefixes", NULL, true, O_NUM_PREFIXES, FOR_BOTH },
    { "--prefix-len", NULL, true, O_PREFIX_LEN, FOR_BOTH },
    { "--suffix-len", NULL, true, O_SUFFIX_LEN, FOR_BOTH },
    { "--input-len", NULL, true, O_INPUT_LEN, FOR_BOTH },
    { "--num-prompts", NULL, true, O_NUM_PROMPTS, FOR_BOTH },
    { "--max-concurrency", NULL, true, O_MAX_CONC, FOR_BOTH },
    { "--request-rate", NULL, true, O_RATE, FOR_BOTH },
    { "--max-tokens", "--output-len", true, O_MAX_TOKENS, FOR_BOTH },
    { "--ignore-eos", NULL, false, O_IGNORE_EOS, FOR_BOTH },
    { "--seed", NULL, true, O_SEED, FOR_BOTH },
    { "--warmup", "--num-warmups", true, O_WARMUP, FOR_BOTH },
    { "--endpoint", NULL, true, O_ENDPOINT, FOR_BOTH },
    { "--api-key", NULL, true, O_API_KEY, FOR_BOTH },
    { "--temperature", NULL, true, O_TEMPERATURE, FOR_BOTH },
    { "--extra-body", NULL, true, O_EXTRA_BODY, FOR_BOTH },
    { "--timeout", NULL, true, O_TIMEOUT, FOR_BOTH },
    { "--tokenizer", NULL, true, O_TOKENIZER, FOR_BOTH },
    { "--token-ids", NULL, false, O_TOKEN_IDS, FOR_BOTH },
    { "--save-result", NULL, true, O_SAVE_RESULT, FOR_BOTH },
    { "--save-detailed", NULL, false, O_SAVE_DETAILED, FOR_BOTH },
    { "--plot", NULL, true, O_PLOT, FOR_BOTH },
    { "--no-progress", NULL, false, O_NO_PROGRESS, FOR_BOTH },
    { "--a", NULL, true, O_A, FOR_COMPARE },
    { "--b", NULL, true, O_B, FOR_COMPARE },
    { "--common", "--serve-args", true, O_COMMON, FOR_COMPARE },
    { "--sweep-hit-rate", NULL, false, O_SWEEP, FOR_COMPARE },
    { "--sweep-points", NULL, true, O_SWEEP_POINTS, FOR_COMPARE },
    { "--server-timeout", NULL, true, O_SERVER_TIMEOUT, FOR_COMPARE },
    { "--log-dir", NULL, true, O_LOG_DIR, FOR_COMPARE },
    { "--rounds", NULL, true, O_ROUNDS, FOR_COMPARE },
    { "--help", "-h", false, O_HELP, FOR_BOTH },
};

typedef struct {
    bool compare;
    bench_client_config_t client;
    bench_dataset_config_t data;
    bool max_tokens_set, warmup_set, base_url_set;
    const char *host;
    long port;
    const char *tokenizer_path;
    const char *save_result, *plot;
    bool save_detailed;
    const char *model_path, *served_name, *flags_a, *flags_b, *common;
    bool sweep;
    double sweep_pts[MAX_SWEEP];
    int n_sweep;
    double server_timeout;
    const char *log_dir;
    long rounds;
    char base_url_buf[256];
} bench_args_t;

static const char *cmd_name(const bench_args_t *a)
{
    return a->compare ? "cllm bench compare" : "cllm bench serve";
}

static int bad(const bench_args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const bench_args_t *a, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cmd_name(a));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", cmd_name(a));
    return 2;
}

static const char workload_help[] =
    "workload:\n"
    "  --dataset NAME [FILE]     table-qa (default; the seed's send_request.sh workload), prefix-repetition,\n"
    "                            random (no shared prefix: the 0%-hit control) or jsonl FILE (one prompt string,\n"
    "                            {\"prompt\": ...} or {\"messages\": [...]} per line)\n"
    "  --rows N, --questions N   table-qa: people in the table (default 30: the seed's table, ~1,400 Llama 3\n"
    "                            tokens) and distinct questions (default 10: the seed's)\n"
    "  --num-prefixes N          prefix-repetition: distinct shared prefixes (default 1)\n"
    "  --prefix-len N            prefix-repetition: prefix tokens (default 256)\n"
    "  --suffix-len N            prefix-repetition: tokens after the prefix, fresh per prompt (default 256)\n"
    "  --input-len N             random: prompt tokens (default 1024); sweep: prefix + suffix tokens\n"
    "  --tokenizer GGUF          make random text exactly N tokens for this vocabulary (default: common\n"
    "                            English words, about one token each in Llama-3-style vocabularies)\n"
    "  --token-ids               send prefix-repetition/random prompts as token ids (completions; --tokenizer)\n"
    "  --num-prompts N           measured requests (default: --questions for table-qa, 100 otherwise, the\n"
    "                            file's lines for jsonl)\n"
    "  --warmup N                requests sent one at a time first, not measured (default 0; the seed: 1)\n"
    "  --seed N                  seed of the workload and the arrival times (default 0)\n"
    "load:\n"
    "  --max-concurrency N       requests in flight at most (default: no limit; the seed: 1)\n"
    "  --request-rate R          Poisson arrivals of R requests/s, or inf (default: all at once)\n"
    "  --max-tokens N            max_tokens of each request (alias --output-len; default 128 for\n"
    "                            prefix-repetition and random, none for table-qa and jsonl)\n"
    "  --ignore-eos              ask the server to generate max_tokens tokens (\"ignore_eos\": true)\n"
    "  --temperature T           (default 0; negative: not sent)\n"
    "  --endpoint chat|completions  /v1/chat/completions (default) or /v1/completions\n"
    "  --extra-body JSON         a JSON object merged into every request\n"
    "  --timeout S               per-request timeout in seconds (default: none)\n"
    "output:\n"
    "  --save-result FILE.json   aggregates and per-request records (fields below)\n"
    "  --save-detailed           keep the generated texts in the JSON\n"
    "  --plot FILE.svg           TTFT histogram and CDF (compare --sweep-hit-rate: speedup against hit rate)\n"
    "  --no-progress             no progress bar on stderr\n";

static void serve_usage(FILE *f)
{
    const char *name, *doc;
    fprintf(f,
            "usage: cllm bench serve --base-url URL --model NAME [options]\n"
            "Sends a workload to an OpenAI-compatible server (cllm serve, llama-server, vLLM, ...) over streaming\n"
            "HTTP and reports TTFT, TPOT, ITL and end-to-end latency (mean, median, p90, p99; percentiles by\n"
            "linear interpolation, as numpy and vLLM), request and token throughput and the prefix cache hit\n"
            "rate (cached / prompt tokens, from usage.prompt_tokens_details.cached_tokens).\n\n"
            "server:\n"
            "  --base-url URL            e.g. http://127.0.0.1:8000 (default: http://HOST:PORT)\n"
            "  --host HOST, --port N     (default 127.0.0.1 and 8000)\n"
            "  -m, --model NAME          the model name to send (the server's served model name)\n"
            "  --api-key KEY             Authorization: Bearer KEY (default: env OPENAI_API_KEY)\n"
            "%s\nExit status: 0 if every measured request succeeded, 1 if any failed, 2 for a bad command line.\n"
            "\nfields of the --save-result JSON (vLLM's names where it has them; times in ms unless said):\n",
            workload_help);
    for (size_t i = 0; bench_report_field_doc(i, &name, &doc); i++) fprintf(f, "  %-28s %s\n", name, doc);
}

static void compare_usage(FILE *f)
{
    fprintf(f,
            "usage: cllm bench compare --model MODEL.gguf [--a \"FLAGS\"] [--b \"FLAGS\"] [options]\n"
            "Starts `cllm serve` on MODEL with flags A, runs the workload, stops it, does the same with flags B,\n"
            "and prints both reports side by side with the ratios B/A. The servers run one after the other on\n"
            "127.0.0.1 (any free port) with their logs in --log-dir.\n\n"
            "servers:\n"
            "  -m, --model PATH          the GGUF model both servers load\n"
            "  --served-model-name NAME  (default: the model path)\n"
            "  --a \"FLAGS\"               flags of server A (default: --no-enable-prefix-caching)\n"
            "  --b \"FLAGS\"               flags of server B (default: --enable-prefix-caching)\n"
            "  --common \"FLAGS\"          flags for both, e.g. \"-t 2 --max-model-len 4096\"\n"
            "  --api-key KEY             the key the clients send (give the servers --api-key in --common)\n"
            "  --server-timeout S        wait at most S seconds for a server to be ready (default 600)\n"
            "  --log-dir DIR             keep the server logs there (default: a temporary directory, removed\n"
            "                            unless something failed)\n"
            "  --rounds N                for a noisy machine: keep both servers up (the idle one sleeps) and run\n"
            "                            the workload N times, A then B each round, pooling the records of all\n"
            "                            rounds, so that load from other processes hits A and B alike (default 1:\n"
            "                            A's server runs and stops before B's starts). Each round after the first\n"
            "                            uses a fresh --seed (new random text, so B's cache never holds a whole\n"
            "                            prompt of an earlier round); table-qa's questions repeat, so from the\n"
            "                            second round on B finds them cached too\n"
            "  --sweep-hit-rate          instead of one workload, run prefix-repetition at each --sweep-points\n"
            "                            hit rate: --num-prefixes prefixes (default 1) of hit x --input-len tokens\n"
            "                            plus a fresh suffix to --input-len, each prefix cached by a warmup\n"
            "                            request; report the TTFT speedup A/B against B's measured hit rate\n"
            "  --sweep-points LIST       target hit rates (default 0,0.25,0.5,0.95: about 0%%, 25%%, 50%% and\n"
            "                            over 90%% measured once the chat template is counted)\n"
            "%s\n"
            "The --save-result JSON holds {\"a\": RESULT, \"b\": RESULT, \"ratios\": {...}}, or with a sweep\n"
            "{\"sweep\": [{\"target\", \"prefix_len\", \"suffix_len\", \"hit_rate\", \"speedup_p50\", \"speedup_mean\",\n"
            "\"a\": RESULT, \"b\": RESULT}, ...]}, where RESULT has the fields of `cllm bench serve --help`.\n"
            "Exit status: 0 if every measured request succeeded, 1 if any failed, 2 for a bad command line.\n",
            workload_help);
}

static int parse_long(const bench_args_t *a, const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return bad(a, "%s expects an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

static int parse_double(const bench_args_t *a, const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return bad(a, "%s expects a number in [%g, %g], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

static int parse_sweep(bench_args_t *a, const char *s)
{
    const char *p = s;
    a->n_sweep = 0;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0 && v <= 100) || a->n_sweep == MAX_SWEEP)
            return bad(a, "--sweep-points expects up to %d hit rates in [0, 1] (or percentages), got '%s'", MAX_SWEEP, s);
        a->sweep_pts[a->n_sweep++] = v > 1.0 ? v / 100.0 : v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (a->n_sweep == 0) return bad(a, "--sweep-points is empty");
    return 0;
}

/* Returns 0 to run, 1 after --help, 2 for a bad command line. */
static int parse_args(int argc, char **argv, bench_args_t *a)
{
    long v;
    double d;
    int where = a->compare ? FOR_COMPARE : FOR_SERVE;

    bench_client_config_default(&a->client);
    bench_dataset_config_default(&a->data);
    a->host = "127.0.0.1";
    a->port = 8000;
    a->client.progress = true;
    a->client.api_key = getenv("OPENAI_API_KEY");
    a->server_timeout = 600;
    a->sweep_pts[0] = 0.0;
    a->sweep_pts[1] = 0.25;
    a->sweep_pts[2] = 0.5;
    a->sweep_pts[3] = 0.95;
    a->n_sweep = 4;
    a->rounds = 1;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        char name[64];
        const opt_t *o = NULL;
        eq = arg[0] == '-' && arg[1] == '-' ? strchr(arg, '=') : NULL;
        snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
            if (!strcmp(name, opts[k].name) || (opts[k].alias && !strcmp(name, opts[k].alias))) o = &opts[k];
        if (!o) {
            if (arg[0] != '-') return bad(a, "unexpected argument '%s'", arg);
            return bad(a, "unknown option '%s'", name);
        }
        if (!(o->where & where)) return bad(a, "%s is not an option of %s", name, cmd_name(a));
        if (o->has_value) {
            if (eq) val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else return bad(a, "%s needs a value", name);
        } else if (eq) {
            return bad(a, "%s takes no value", name);
        }
        switch (o->id) {
        case O_BASE_URL:
            a->client.base_url = val;
            a->base_url_set = true;
            break;
        case O_HOST: a->host = val; break;
        case O_PORT:
            if (parse_long(a, name, val, 1, 65535, &a->port)) return 2;
            break;
        case O_MODEL: a->model_path = val; break;
        case O_SERVED_NAME: a->served_name = val; break;
        case O_DATASET:
            if (bench_dataset_parse_kind(val, &a->data.kind) != CLLM_OK) return bad(a, "%s", cllm_error_message());
            /* "--dataset jsonl FILE" */
            if (a->data.kind == BENCH_DATASET_JSONL && !eq && i + 1 < argc && argv[i + 1][0] != '-')
                a->data.path = argv[++i];
            break;
        case O_DATASET_PATH: a->data.path = val; break;
        case O_ROWS:
            if (parse_long(a, name, val, 1, 100000, &v)) return 2;
            a->data.rows = (int32_t)v;
            break;
        case O_QUESTIONS:
            if (parse_long(a, name, val, 1, 1000000, &v)) return 2;
            a->data.questions = (int32_t)v;
            break;
        case O_NUM_PREFIXES:
            if (parse_long(a, name, val, 1, 1000000, &v)) return 2;
            a->data.num_prefixes = (int32_t)v;
            break;
        case O_PREFIX_LEN:
            if (parse_long(a, name, val, 0, 10000000, &v)) return 2;
            a->data.prefix_len = (int32_t)v;
            break;
        case O_SUFFIX_LEN:
            if (parse_long(a, name, val, 0, 10000000, &v)) return 2;
            a->data.suffix_len = (int32_t)v;
            break;
        case O_INPUT_LEN:
            if (parse_long(a, name, val, 1, 10000000, &v)) return 2;
            a->data.input_len = (int32_t)v;
            break;
        case O_NUM_PROMPTS:
            if (parse_long(a, name, val, 1, 10000000, &v)) return 2;
            a->data.num_prompts = (int32_t)v;
            break;
        case O_MAX_CONC:
            if (parse_long(a, name, val, 1, 100000, &v)) return 2;
            a->client.max_concurrency = (int32_t)v;
            break;
        case O_RATE:
            if (!strcmp(val, "inf")) a->client.request_rate = INFINITY;
            else if (parse_double(a, name, val, 1e-6, 1e9, &a->client.request_rate)) return 2;
            break;
        case O_MAX_TOKENS:
            if (parse_long(a, name, val, 0, INT32_MAX, &v)) return 2;
            a->client.max_tokens = (int32_t)v;
            a->max_tokens_set = true;
            break;
        case O_IGNORE_EOS: a->client.ignore_eos = true; break;
        case O_SEED:
            if (parse_long(a, name, val, 0, LONG_MAX, &v)) return 2;
            a->data.seed = (uint64_t)v;
            a->client.seed = (uint64_t)v;
            break;
        case O_WARMUP:
            if (parse_long(a, name, val, 0, 1000000, &v)) return 2;
            a->data.num_warmup = (int32_t)v;
            a->warmup_set = true;
            break;
        case O_ENDPOINT:
            if (!strcmp(val, "chat")) a->client.endpoint = BENCH_ENDPOINT_CHAT;
            else if (!strcmp(val, "completions")) a->client.endpoint = BENCH_ENDPOINT_COMPLETIONS;
            else return bad(a, "%s must be chat or completions, got '%s'", name, val);
            break;
        case O_API_KEY: a->client.api_key = val; break;
        case O_TEMPERATURE:
            if (parse_double(a, name, val, -1e9, 1e9, &d)) return 2;
            a->client.temperature = d < 0 ? -1.0 : d;
            break;
        case O_EXTRA_BODY: a->client.extra_body = val; break;
        case O_TIMEOUT:
            if (parse_double(a, name, val, 0, 1e7, &a->client.timeout_s)) return 2;
            break;
        case O_TOKENIZER: a->tokenizer_path = val; break;
        case O_TOKEN_IDS: a->data.token_ids = true; break;
        case O_SAVE_RESULT: a->save_result = val; break;
        case O_SAVE_DETAILED: a->save_detailed = true; break;
        case O_PLOT: a->plot = val; break;
        case O_NO_PROGRESS: a->client.progress = false; break;
        case O_A: a->flags_a = val; break;
        case O_B: a->flags_b = val; break;
        case O_COMMON: a->common = val; break;
        case O_SWEEP: a->sweep = true; break;
        case O_SWEEP_POINTS:
            if (parse_sweep(a, val)) return 2;
            break;
        case O_SERVER_TIMEOUT:
            if (parse_double(a, name, val, 1, 1e6, &a->server_timeout)) return 2;
            break;
        case O_LOG_DIR: a->log_dir = val; break;
        case O_ROUNDS:
            if (parse_long(a, name, val, 1, 1000, &a->rounds)) return 2;
            break;
        case O_HELP:
            if (a->compare) compare_usage(stdout);
            else serve_usage(stdout);
            return 1;
        }
    }
    if (!a->model_path || !*a->model_path)
        return bad(a, a->compare ? "--model MODEL.gguf is required" : "--model NAME is required (the served model name)");
    if (a->data.kind == BENCH_DATASET_JSONL && !a->data.path) return bad(a, "--dataset jsonl needs a FILE");
    if (a->data.token_ids && !a->tokenizer_path) return bad(a, "--token-ids needs --tokenizer GGUF");
    if (a->data.token_ids && a->client.endpoint != BENCH_ENDPOINT_COMPLETIONS)
        return bad(a, "--token-ids needs --endpoint completions");
    if (!a->max_tokens_set && (a->data.kind == BENCH_DATASET_PREFIX_REPETITION || a->data.kind == BENCH_DATASET_RANDOM ||
                               a->sweep))
        a->client.max_tokens = 128;
    if (!a->compare) {
        if (!a->base_url_set) {
            snprintf(a->base_url_buf, sizeof(a->base_url_buf), "http://%s:%ld", a->host, a->port);
            a->client.base_url = a->base_url_buf;
        }
        a->client.model = a->model_path;
    } else {
        a->client.model = a->served_name ? a->served_name : a->model_path;
    }
    a->client.keep_text = a->save_detailed;
    return 0;
}

static status_t load_tokenizer(const char *path, tokenizer_t **out)
{
    gguf_t *g = NULL;
    status_t st;
    *out = NULL;
    if (!path) return CLLM_OK;
    if ((st = gguf_open(path, &g)) != CLLM_OK) return st;
    st = tokenizer_create(g, out);
    gguf_close(g);
    return st;
}

/* Runs one workload and computes its result. */
static status_t run_workload(const bench_client_config_t *cc, const bench_dataset_t *ds, bench_run_t *run,
                             bench_result_t *res)
{
    status_t st = bench_client_run(cc, ds, run);
    if (st != CLLM_OK) return st;
    if ((st = bench_report_compute(run, res)) != CLLM_OK) bench_run_free(run);
    return st;
}

/* The TTFTs (ms) of a run's successful requests: (n,) malloc'd. */
static double *ttfts_ms(const bench_run_t *run, size_t *n)
{
    double *v = malloc((run->n + 1) * sizeof(double));
    *n = 0;
    if (!v) return NULL;
    for (size_t i = 0; i < run->n; i++)
        if (run->records[i].ok) v[(*n)++] = run->records[i].ttft_s * 1000.0;
    return v;
}

static void plot_title(char *buf, size_t cap, const bench_args_t *a, const bench_dataset_t *ds)
{
    char desc[200];
    bench_report_dataset_desc(&a->data, ds, desc, sizeof(desc));
    snprintf(buf, cap, "Time to first token: %s, %s", a->client.model, desc);
}

static int cmd_bench_serve(bench_args_t *a)
{
    tokenizer_t *tok = NULL;
    bench_dataset_t ds;
    bench_run_t run;
    bench_result_t res;
    bench_report_meta_t meta;
    status_t st;
    int rc = 1;

    memset(&ds, 0, sizeof(ds));
    memset(&run, 0, sizeof(run));
    if ((st = load_tokenizer(a->tokenizer_path, &tok)) != CLLM_OK) goto fail;
    a->data.tokenizer = tok;
    if ((st = bench_dataset_create(&a->data, &ds)) != CLLM_OK) goto fail;
    if ((st = run_workload(&a->client, &ds, &run, &res)) != CLLM_OK) goto fail;
    meta.client = &a->client;
    meta.dataset = &a->data;
    meta.ds = &ds;
    meta.label = NULL;
    bench_report_print(stdout, &meta, &res);
    fflush(stdout);
    rc = res.failed ? 1 : 0;
    if (res.failed)
        fprintf(stderr, "cllm bench serve: %d of %d requests failed; the first: %s\n", res.failed,
                res.failed + res.completed, res.first_error);
    if (a->save_result) {
        json_t *doc = bench_report_json(&meta, &res, &run);
        st = doc ? bench_report_save(a->save_result, doc) : cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        json_decref(doc);
        if (st != CLLM_OK) goto fail;
        fprintf(stderr, "cllm bench: wrote %s\n", a->save_result);
    }
    if (a->plot) {
        size_t n;
        double *v = ttfts_ms(&run, &n);
        char title[320];
        bench_plot_series_t s = { a->client.model, v, n };
        plot_title(title, sizeof(title), a, &ds);
        st = v ? bench_plot_ttft_svg(a->plot, title, &s, 1) : cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        free(v);
        if (st != CLLM_OK) goto fail;
        fprintf(stderr, "cllm bench: wrote %s\n", a->plot);
    }
    goto out;
fail:
    fprintf(stderr, "cllm bench serve: %s\n", cllm_error_message());
    rc = 1;
out:
    bench_run_free(&run);
    bench_dataset_free(&ds);
    tokenizer_destroy(tok);
    return rc;
}

/* ---- compare ---- */

typedef struct {
    double target;
    int32_t prefix_len, suffix_len;
    bench_dataset_config_t cfg;
    bench_dataset_t ds;
    bench_run_t run[2];
    bench_result_t res[2];
    bool done[2];
} point_t;

/* argv of `cllm serve` for side 0 (A) or 1 (B). */
static status_t server_argv(const bench_args_t *a, const char *exe, int side, char ***argv, int *argc)
{
    const char *fixed[] = { "serve", "--model", a->model_path, "--host", "127.0.0.1", "--port", "0" };
    const char *flags = side == 0 ? (a->flags_a ? a->flags_a : "--no-enable-prefix-caching")
                                  : (a->flags_b ? a->flags_b : "--enable-prefix-caching");
    status_t st = bench_launch_push(argv, argc, exe);
    for (size_t i = 0; st == CLLM_OK && i < sizeof(fixed) / sizeof(fixed[0]); i++) st = bench_launch_push(argv, argc, fixed[i]);
    if (st == CLLM_OK && a->served_name) st = bench_launch_push(argv, argc, "--served-model-name");
    if (st == CLLM_OK && a->served_name) st = bench_launch_push(argv, argc, a->served_name);
    if (st == CLLM_OK && a->common) st = bench_launch_split(a->common, argv, argc);
    if (st == CLLM_OK) st = bench_launch_split(flags, argv, argc);
    return st;
}

static void side_name(const bench_args_t *a, int side, char *buf, size_t cap)
{
    const char *flags = side == 0 ? (a->flags_a ? a->flags_a : "--no-enable-prefix-caching")
                                  : (a->flags_b ? a->flags_b : "--enable-prefix-caching");
    snprintf(buf, cap, "cllm serve%s%s %s", a->common ? " " : "", a->common ? a->common : "", flags);
}

static double ratio(double num, double den)
{
    return isfinite(num) && isfinite(den) && den != 0.0 ? num / den : NAN;
}

static json_t *pair_ratios(const bench_result_t *a, const bench_result_t *b)
{
    json_t *r = json_object();
    json_object_set_new(r, "mean_ttft", bench_report_real(ratio(b->ttft_ms.mean, a->ttft_ms.mean)));
    json_object_set_new(r, "median_ttft", bench_report_real(ratio(b->ttft_ms.median, a->ttft_ms.median)));
    json_object_set_new(r, "mean_e2el", bench_report_real(ratio(b->e2el_ms.mean, a->e2el_ms.mean)));
    json_object_set_new(r, "median_e2el", bench_report_real(ratio(b->e2el_ms.median, a->e2el_ms.median)));
    json_object_set_new(r, "request_throughput", bench_report_real(ratio(b->request_throughput, a->request_throughput)));
    json_object_set_new(r, "output_throughput", bench_report_real(ratio(b->output_throughput, a->output_throughput)));
    return r;
}

/* Starts side's server (0: A, 1: B), its log in log_dir; names[side] gets its description. */
static status_t start_side(const bench_args_t *a, const char *exe, const char *log_dir, int side,
                           char names[2][512], bench_launch_t **srv)
{
    char **argv = NULL, log_path[PATH_MAX + 16];
    int argc = 0;
    status_t st;
    side_name(a, side, names[side], 512);
    snprintf(log_path, sizeof(log_path), "%s/%s.log", log_dir, side ? "b" : "a");
    if ((st = server_argv(a, exe, side, &argv, &argc)) != CLLM_OK) {
        bench_launch_free_argv(argv, argc);
        return st;
    }
    fprintf(stderr, "cllm bench: starting %c: %s (log %s)\n", 'A' + side, names[side], log_path);
    st = bench_launch_start(argv, log_path, a->server_timeout, srv);
    bench_launch_free_argv(argv, argc);
    return st;
}

/* The progress label of a run: side, round (r < 0: none) and sweep point. */
static void point_label(const bench_args_t *a, int side, long r, double target, char *buf, size_t cap)
{
    char rs[32] = "";
    if (r >= 0) snprintf(rs, sizeof(rs), " r%ld", r + 1);
    if (a->sweep) snprintf(buf, cap, "%c%s %.0f%%", 'A' + side, rs, 100.0 * target);
    else snprintf(buf, cap, "%c%s", 'A' + side, rs);
}

/* Moves src's records to the end of dst's (src is left empty); durations add up. */
static status_t run_append(bench_run_t *dst, bench_run_t *src)
{
    bench_record_t *recs;
    if (!dst->records) {
        *dst = *src;
        memset(src, 0, sizeof(*src));
        return CLLM_OK;
    }
    recs = realloc(dst->records, (dst->n + src->n) * sizeof(*recs));
    if (!recs) return cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
    memcpy(recs + dst->n, src->records, src->n * sizeof(*recs));
    dst->records = recs;
    dst->n += src->n;
    dst->duration_s += src->duration_s;
    dst->warmup_s += src->warmup_s;
    dst->warmup_failed += src->warmup_failed;
    free(src->records);
    memset(src, 0, sizeof(*src));
    return CLLM_OK;
}

/* --rounds N: both servers up; per round, per point, A then B on the same prompts (a fresh
 * seed per round after the first); records pooled per side and point, then summarized. */
static status_t compare_rounds(const bench_args_t *a, const char *exe, const char *log_dir, point_t *pts, int n_pts,
                               char names[2][512], bool *any_failed)
{
    bench_launch_t *srv[2] = { NULL, NULL };
    status_t st = CLLM_OK;
    for (int side = 0; side < 2 && st == CLLM_OK; side++) st = start_side(a, exe, log_dir, side, names, &srv[side]);
    for (long r = 0; r < a->rounds && st == CLLM_OK; r++)
        for (int p = 0; p < n_pts && st == CLLM_OK; p++) {
            bench_dataset_t ds_r, *ds = &pts[p].ds;
            if (r > 0) { /* the point's workload with a fresh seed */
                bench_dataset_config_t cfg = pts[p].cfg;
                cfg.seed += 7919ull * (uint64_t)r;
                if ((st = bench_dataset_create(&cfg, &ds_r)) != CLLM_OK) break;
                ds = &ds_r;
            }
            for (int side = 0; side < 2 && st == CLLM_OK; side++) {
                char label[64];
                bench_client_config_t cc = a->client;
                bench_run_t run;
                cc.base_url = bench_launch_url(srv[side]);
                point_label(a, side, r, pts[p].target, label, sizeof(label));
                cc.label = label;
                if ((st = bench_client_run(&cc, ds, &run)) != CLLM_OK) break;
                if ((st = run_append(&pts[p].run[side], &run)) != CLLM_OK) bench_run_free(&run);
            }
            if (r > 0) bench_dataset_free(&ds_r);
        }
    for (int side = 0; side < 2; side++)
        if (srv[side] && bench_launch_stop(srv[side], 30.0) != 0)
            fprintf(stderr, "cllm bench: server %c did not stop cleanly\n", 'A' + side);
    for (int p = 0; p < n_pts && st == CLLM_OK; p++)
        for (int side = 0; side < 2 && st == CLLM_OK; side++) {
            if ((st = bench_report_compute(&pts[p].run[side], &pts[p].res[side])) != CLLM_OK) break;
            pts[p].done[side] = true;
            if (pts[p].res[side].failed) *any_failed = true;
        }
    return st;
}

static int cmd_bench_compare(bench_args_t *a)
{
    char exe[PATH_MAX], log_dir[PATH_MAX], names[2][512];
    tokenizer_t *tok = NULL;
    point_t *pts = NULL;
    int n_pts = a->sweep ? a->n_sweep : 1, rc = 1;
    bool tmp_logs = false, any_failed = false;
    bench_report_meta_t meta;
    status_t st = CLLM_OK;
    ssize_t n;

    if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0) {
        fprintf(stderr, "cllm bench compare: cannot find the cllm binary (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    exe[n] = '\0';
    if (a->log_dir) {
        snprintf(log_dir, sizeof(log_dir), "%s", a->log_dir);
        /* made if missing (its parent must exist); an existing directory is used as it is */
        if (mkdir(log_dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "cllm bench compare: cannot make the log directory %s: %s\n", log_dir, strerror(errno));
            return 1;
        }
    } else {
        snprintf(log_dir, sizeof(log_dir), "/tmp/cllm-bench-XXXXXX");
        if (!mkdtemp(log_dir)) {
            fprintf(stderr, "cllm bench compare: cannot make a log directory: %s\n", strerror(errno));
            return 1;
        }
        tmp_logs = true;
    }
    if (!(pts = calloc((size_t)n_pts, sizeof(point_t)))) {
        st = cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
        goto fail;
    }
    if ((st = load_tokenizer(a->tokenizer_path, &tok)) != CLLM_OK) goto fail;
    a->data.tokenizer = tok;
    /* the workloads, made once so that A and B get the same prompts */
    for (int p = 0; p < n_pts; p++) {
        point_t *pt = &pts[p];
        pt->cfg = a->data;
        pt->target = a->sweep ? a->sweep_pts[p] : NAN;
        if (a->sweep) {
            int32_t total = a->data.input_len;
            pt->cfg.kind = BENCH_DATASET_PREFIX_REPETITION;
            pt->prefix_len = (int32_t)lround(a->sweep_pts[p] * total);
            if (pt->prefix_len >= total) pt->prefix_len = total - 1;
            pt->suffix_len = total - pt->prefix_len;
            pt->cfg.prefix_len = pt->prefix_len;
            pt->cfg.suffix_len = pt->suffix_len;
            /* every prefix cached before measuring; a fresh seed per point so that no point
             * hits another's prefixes */
            if (pt->cfg.num_warmup < pt->cfg.num_prefixes) pt->cfg.num_warmup = pt->cfg.num_prefixes;
            pt->cfg.seed = a->data.seed + 1000003ull * (uint64_t)(p + 1);
        }
        if ((st = bench_dataset_create(&pt->cfg, &pt->ds)) != CLLM_OK) goto fail;
    }
    if (a->rounds > 1) {
        if ((st = compare_rounds(a, exe, log_dir, pts, n_pts, names, &any_failed)) != CLLM_OK) goto fail;
    } else {
        for (int side = 0; side < 2; side++) {
            char label[64];
            bench_launch_t *srv = NULL;
            bench_client_config_t cc = a->client;
            if ((st = start_side(a, exe, log_dir, side, names, &srv)) != CLLM_OK) goto fail;
            cc.base_url = bench_launch_url(srv);
            for (int p = 0; p < n_pts && st == CLLM_OK; p++) {
                point_label(a, side, -1, pts[p].target, label, sizeof(label));
                cc.label = label;
                st = run_workload(&cc, &pts[p].ds, &pts[p].run[side], &pts[p].res[side]);
                pts[p].done[side] = st == CLLM_OK;
                if (st == CLLM_OK && pts[p].res[side].failed) any_failed = true;
            }
            if (bench_launch_stop(srv, 30.0) != 0)
                fprintf(stderr, "cllm bench: server %c did not stop cleanly\n", 'A' + side);
            if (st != CLLM_OK) goto fail;
        }
    }

    meta.client = &a->client;
    meta.dataset = &a->data;
    if (!a->sweep) {
        meta.ds = &pts[0].ds;
        for (int side = 0; side < 2; side++) {
            meta.label = side ? "B" : "A";
            fprintf(stdout, "%c: %s\n", 'A' + side, names[side]);
            bench_report_print(stdout, &meta, &pts[0].res[side]);
            fputc('\n', stdout);
        }
        bench_report_print_pair(stdout, names[0], &pts[0].res[0], names[1], &pts[0].res[1]);
    } else {
        fprintf(stdout, "A: %s\nB: %s\n", names[0], names[1]);
        fprintf(stdout, "prefix-repetition sweep: %d prompt(s) of %d tokens, %d prefix(es), max_tokens %d\n",
                pts[0].ds.n, a->data.input_len, a->data.num_prefixes, a->client.max_tokens);
        fprintf(stdout, "%8s %8s %8s %12s %12s %9s %12s %12s %9s\n", "target", "hit A", "hit B", "p50 TTFT A",
                "p50 TTFT B", "speedup", "mean TTFT A", "mean TTFT B", "speedup");
        for (int p = 0; p < n_pts; p++) {
            const bench_result_t *ra = &pts[p].res[0], *rb = &pts[p].res[1];
            fprintf(stdout, "%7.0f%% %7.1f%% %7.1f%% %9.1f ms %9.1f ms %8.2fx %9.1f ms %9.1f ms %8.2fx\n",
                    100.0 * pts[p].target, 100.0 * ra->prefix_hit_rate, 100.0 * rb->prefix_hit_rate, ra->ttft_ms.median,
                    rb->ttft_ms.median, ratio(ra->ttft_ms.median, rb->ttft_ms.median), ra->ttft_ms.mean,
                    rb->ttft_ms.mean, ratio(ra->ttft_ms.mean, rb->ttft_ms.mean));
        }
    }
    fflush(stdout);

    if (a->save_result) {
        json_t *doc = json_object();
        if (!a->sweep) {
            meta.ds = &pts[0].ds;
            meta.label = "A";
            json_object_set_new(doc, "a", bench_report_json(&meta, &pts[0].res[0], &pts[0].run[0]));
            meta.label = "B";
            json_object_set_new(doc, "b", bench_report_json(&meta, &pts[0].res[1], &pts[0].run[1]));
            json_object_set_new(doc, "ratios", pair_ratios(&pts[0].res[0], &pts[0].res[1]));
        } else {
            json_t *arr = json_array();
            for (int p = 0; p < n_pts; p++) {
                json_t *e = json_object();
                bench_report_meta_t m = meta;
                m.dataset = &pts[p].cfg;
                m.ds = &pts[p].ds;
                json_object_set_new(e, "target", json_real(pts[p].target));
                json_object_set_new(e, "prefix_len", json_integer(pts[p].prefix_len));
                json_object_set_new(e, "suffix_len", json_integer(pts[p].suffix_len));
                json_object_set_new(e, "hit_rate", bench_report_real(pts[p].res[1].prefix_hit_rate));
                json_object_set_new(e, "speedup_p50",
                                    bench_report_real(ratio(pts[p].res[0].ttft_ms.median, pts[p].res[1].ttft_ms.median)));
                json_object_set_new(e, "speedup_mean",
                                    bench_report_real(ratio(pts[p].res[0].ttft_ms.mean, pts[p].res[1].ttft_ms.mean)));
                m.label = "A";
                json_object_set_new(e, "a", bench_report_json(&m, &pts[p].res[0], &pts[p].run[0]));
                m.label = "B";
                json_object_set_new(e, "b", bench_report_json(&m, &pts[p].res[1], &pts[p].run[1]));
                json_array_append_new(arr, e);
            }
            json_object_set_new(doc, "sweep", arr);
        }
        json_object_set_new(doc, "a_server", json_string(names[0]));
        json_object_set_new(doc, "b_server", json_string(names[1]));
        json_object_set_new(doc, "rounds", json_integer(a->rounds));
        st = bench_report_save(a->save_result, doc);
        json_decref(doc);
        if (st != CLLM_OK) goto fail;
        fprintf(stderr, "cllm bench: wrote %s\n", a->save_result);
    }
    if (a->plot) {
        char title[400];
        if (!a->sweep) {
            size_t na, nb;
            double *va = ttfts_ms(&pts[0].run[0], &na), *vb = ttfts_ms(&pts[0].run[1], &nb);
            bench_plot_series_t s[2] = { { names[0], va, na }, { names[1], vb, nb } };
            plot_title(title, sizeof(title), a, &pts[0].ds);
            st = va && vb ? bench_plot_ttft_svg(a->plot, title, s, 2) : cllm_error(CLLM_ERR_NOMEM, "bench: out of memory");
            free(va);
            free(vb);
        } else {
            bench_plot_point_t pp[MAX_SWEEP];
            for (int p = 0; p < n_pts; p++) {
                pp[p].target = pts[p].target;
                pp[p].hit_rate = pts[p].res[1].prefix_hit_rate;
                pp[p].speedup_p50 = ratio(pts[p].res[0].ttft_ms.median, pts[p].res[1].ttft_ms.median);
                pp[p].speedup_mean = ratio(pts[p].res[0].ttft_ms.mean, pts[p].res[1].ttft_ms.mean);
            }
            snprintf(title, sizeof(title), "TTFT speedup from prefix caching: %s, %d-token prompts", a->client.model,
                     a->data.input_len);
            st = bench_plot_speedup_svg(a->plot, title, pp, (size_t)n_pts);
        }
        if (st != CLLM_OK) goto fail;
        fprintf(stderr, "cllm bench: wrote %s\n", a->plot);
    }
    rc = any_failed ? 1 : 0;
    goto out;
fail:
    fprintf(stderr, "cllm bench compare: %s\n", cllm_error_message());
    rc = 1;
out:
    if (pts)
        for (int p = 0; p < n_pts; p++) {
            bench_run_free(&pts[p].run[0]);
            bench_run_free(&pts[p].run[1]);
            bench_dataset_free(&pts[p].ds);
        }
    free(pts);
    tokenizer_destroy(tok);
    if (tmp_logs && rc == 0) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/a.log", log_dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/b.log", log_dir);
        unlink(path);
        rmdir(log_dir);
    } else if (rc != 0) {
        fprintf(stderr, "cllm bench compare: server logs are in %s\n", log_dir);
    }
    return rc;
}

/* `cllm bench model` (cmd_bench_model.c): the forward pass timed directly, like llama-bench. */
int cmd_bench_model(int argc, char **argv);

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: cllm bench serve [options]     benchmark a running OpenAI-compatible server\n"
               "       cllm bench compare [options]   start cllm serve with two flag sets and compare them\n"
               "       cllm bench model [options]     time a model's forward pass (like llama-bench)\n"
               "(cllm bench serve --help, cllm bench compare --help, cllm bench model --help for the options)\n");
}

int cmd_bench(int argc, char **argv)
{
    bench_args_t a;
    int rc;
    if (argc < 2) {
        bench_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        bench_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "model")) return cmd_bench_model(argc - 1, argv + 1);
    memset(&a, 0, sizeof(a));
    if (!strcmp(argv[1], "compare")) a.compare = true;
    else if (strcmp(argv[1], "serve")) {
        fprintf(stderr, "cllm bench: unknown subcommand '%s' (serve, compare or model)\n", argv[1]);
        return 2;
    }
    rc = parse_args(argc - 1, argv + 1, &a);
    if (rc) return rc == 1 ? 0 : 2;
    return a.compare ? cmd_bench_compare(&a) : cmd_bench_serve(&a);
}

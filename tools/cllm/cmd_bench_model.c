/* cmd_bench_model.c: `cllm bench model`: the model's forward pass timed directly (no engine
 * scheduling, no HTTP), like llama.cpp's llama-bench, with a roofline measured in the same run.
 *
 * Tests (each repeated -r times after one untimed warmup run, llama-bench's protocol):
 *   ppN      one prefill of N tokens of one sequence, in forward passes of -ub tokens (default
 *            512, so pp512 is one 512-token batch as in llama-bench); logits of the last token
 *            of each pass; t/s = N / time.
 *   tgN      N decode steps of one sequence, one token per step, logits every step; t/s = N /
 *            time. Warmup: one step.
 *   tgN xS   S sequences decoding together: each step is one batch of S tokens (one per
 *            sequence); t/s = N * S / time (aggregate, as llama-batched-bench's S_TG).
 *   "@ dD"   with -d D: every sequence already holds D tokens (prefilled once, untimed, before
 *            the warmup; the runs write only positions >= D, so that context stays valid).
 * Token ids are pseudo-random (fixed seed); speed does not depend on them.
 * Achieved rates: decode GB/s = (weight bytes read per step: every layer matrix and the output
 * matrix once per step, shared by the batch; plus each sequence's K and V cache up to its
 * position) / time; prefill GFLOP/s = (2 * layer matrix params per token + 2 * n_embd * n_vocab
 * per logits row + attention: 4 * n_layer * n_head * head_dim * (pos + 1) per token) / time.
 * "roof %" compares them with the test's ceiling: the read bandwidth (decode) or the arithmetic
 * peak of the instruction the weight type's matmul uses (prefill, kern_matmul_peak_kind),
 * measured right before and right after the test (bench_roofline.h), the better of the two: on a
 * shared machine the ceilings move with the load of other processes, so a test is compared with
 * what the machine gave around it. The roofline printed (and in the JSON) is the best of every
 * measurement, including a full one before the first test and after the last. The table is
 * printed at the end.
 * stdout: a markdown table (or --json); progress and errors on stderr. Exit 0 on success, 1 when
 * a model cannot be loaded or run, 2 for a bad command line. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchmark/bench_report.h"
#include "benchmark/bench_roofline.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"
#include "kv/kv_cache.h"
#include "model/forward.h"
#include "model/model.h"
#include "cli_args.h"

#define BM_MAX_LIST 16
#define BM_MAX_MODELS 8
#define BM_MAX_REPS 1000

typedef struct {
    const char *models[BM_MAX_MODELS];
    int n_models;
    long prompts[BM_MAX_LIST], gens[BM_MAX_LIST], seqs[BM_MAX_LIST];
    int n_prompts, n_gens, n_seqs;
    long depth, ubatch, threads, reps, block_size, roof_mib;
    dtype_t kv_dtype;
    bool roofline, json;
} bm_args_t;

/* One test's result (with what the output needs of its model, which is freed before output). */
typedef struct {
    const char *model_path;
    char arch[32];
    dtype_t wtype;
    uint64_t weight_bytes, n_params;
    kern_peak_t peak_kind;          /* the prefill ceiling: the weight type's matmul instruction */
    char test[64];
    long n_prompt, n_gen, n_seqs, n_depth;
    int reps;
    double samples_ts[BM_MAX_REPS]; /* tokens/s of each repetition */
    double mean_ts, stddev_ts, median_ts, mean_s;
    double bytes;                   /* bytes read by one repetition (decode), else 0 */
    double flops;                   /* operations of one repetition (prefill), else 0 */
    double gbps, gflops, roof_frac; /* from the median repetition; NaN when not applicable */
    double ceiling;                 /* the test's ceiling (GB/s or GFLOP/s) measured next to it, 0: none */
    bool done;
} bm_result_t;

static void bm_usage(FILE *f)
{
    fprintf(f,
            "usage: cllm bench model -m MODEL [options]\n"
            "Times the forward pass directly (no server), like llama-bench: prefill (ppN) and decode (tgN)\n"
            "tokens/s as mean +- stddev and median over repetitions, with the achieved GB/s (decode) and\n"
            "GFLOP/s (prefill) against ceilings measured on the spot (read bandwidth and arithmetic peaks).\n\n"
            "  -m, --model PATH        GGUF model (repeat for several)\n"
            "  -p, --n-prompt N[,N..]  prefill tests of N tokens (default 512; 0: none)\n"
            "  -n, --n-gen N[,N..]     decode tests of N steps (default 128; 0: none)\n"
            "  -b, --seqs S[,S..]      sequences decoding together in each decode test (default 1)\n"
            "  -d, --n-depth D         tokens already in every sequence's context (default 0)\n"
            "  -ub, --ubatch-size N    tokens per prefill forward pass (default 512)\n"
            "  -t, --threads N         threads (default: all cores)\n"
            "  -r, --repetitions N     timed repetitions per test (default 5; one warmup run before)\n"
            "      --kv-cache-dtype T  f16 (default, as llama.cpp), bf16 or f32\n"
            "      --block-size N      KV block size in tokens (default 32)\n"
            "      --roofline-mib N    read-bandwidth probe buffer in MiB (default 512)\n"
            "      --no-roofline       skip the ceilings (roof %% and the roofline are then absent)\n"
            "  -o, --output md|json    markdown table (default) or JSON; --json = -o json\n"
            "  -h, --help              this help\n\n"
            "JSON: {\"build\": {kernel_level, n_threads}, \"roofline\": {read_gbps, read_bytes, f32_fma_gflops,\n"
            "bf16_dot_gflops, int8_dot_gops, measurements} or null, \"results\": [{model_filename, model_type, model_size,\n"
            "model_n_params, test, n_prompt, n_gen, n_seqs, n_depth, n_ubatch, n_threads, kv_type, reps,\n"
            "samples_ts, avg_ts, stddev_ts, median_ts, avg_s, gbps, gflops, roof_kind, roof_ceiling, roof_frac}]}\n"
            "(gbps: decode tests; gflops: prefill tests; null where not applicable).\n");
}

static int bm_bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "cllm bench model: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (try --help)\n");
    return 2;
}

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out)
{
    return cli_parse_long("cllm bench model", flag, s, lo, hi, out);
}

/* "a,b,c" -> out (at most BM_MAX_LIST values, each in [lo, hi]). */
static int parse_list(const char *flag, const char *s, long lo, long hi, long *out, int *n)
{
    char buf[256];
    char *save = NULL, *tok;
    if (strlen(s) >= sizeof(buf)) return bm_bad("%s: list too long: '%s'", flag, s);
    snprintf(buf, sizeof(buf), "%s", s);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= BM_MAX_LIST) return bm_bad("%s: more than 16 values in '%s'", flag, s);
        if (parse_long(flag, tok, lo, hi, &out[*n])) return 2;
        (*n)++;
    }
    if (*n == 0) return bm_bad("%s: empty list '%s'", flag, s);
    return 0;
}

/* Returns 0 to run, 1 for --help (printed), 2 for a bad command line (reported). */
static int bm_parse(int argc, char **argv, bm_args_t *a)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    memset(a, 0, sizeof(*a));
    a->prompts[0] = 512;
    a->n_prompts = 1;
    a->gens[0] = 128;
    a->n_gens = 1;
    a->seqs[0] = 1;
    a->n_seqs = 1;
    a->ubatch = 512;
    a->threads = ncpu > 0 ? ncpu : 1;
    a->reps = 5;
    a->block_size = 32;
    a->roof_mib = 512;
    a->kv_dtype = DTYPE_F16;
    a->roofline = true;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
#define FLAG(s, l) (!strcmp(f, s) || !strcmp(f, l))
#define NEED_VALUE                                                                   \
    do {                                                                             \
        if (!v) return bm_bad("%s needs a value%s", f, "");                          \
        i++;                                                                         \
    } while (0)
        if (FLAG("-h", "--help")) {
            bm_usage(stdout);
            return 1;
        } else if (FLAG("-m", "--model")) {
            NEED_VALUE;
            if (a->n_models >= BM_MAX_MODELS) return bm_bad("at most 8 models%s%s", "", "");
            a->models[a->n_models++] = v;
        } else if (FLAG("-p", "--n-prompt")) {
            NEED_VALUE;
            rc = parse_list(f, v, 0, 1 << 20, a->prompts, &a->n_prompts);
        } else if (FLAG("-n", "--n-gen")) {
            NEED_VALUE;
            rc = parse_list(f, v, 0, 1 << 20, a->gens, &a->n_gens);
        } else if (FLAG("-b", "--seqs")) {
            NEED_VALUE;
            rc = parse_list(f, v, 1, 1024, a->seqs, &a->n_seqs);
        } else if (FLAG("-d", "--n-depth")) {
            NEED_VALUE;
            rc = parse_long(f, v, 0, 1 << 20, &a->depth) ? 2 : 0;
        } else if (FLAG("-ub", "--ubatch-size")) {
            NEED_VALUE;
            rc = parse_long(f, v, 1, 1 << 16, &a->ubatch) ? 2 : 0;
        } else if (FLAG("-t", "--threads")) {
            NEED_VALUE;
            rc = parse_long(f, v, 1, 256, &a->threads) ? 2 : 0;
        } else if (FLAG("-r", "--repetitions")) {
            NEED_VALUE;
            rc = parse_long(f, v, 1, BM_MAX_REPS, &a->reps) ? 2 : 0;
        } else if (!strcmp(f, "--block-size")) {
            NEED_VALUE;
            rc = parse_long(f, v, 8, 256, &a->block_size) ? 2 : 0;
            if (!rc && (a->block_size & (a->block_size - 1))) return bm_bad("%s must be a power of two, got %s", f, v);
        } else if (!strcmp(f, "--roofline-mib")) {
            NEED_VALUE;
            rc = parse_long(f, v, 1, 1 << 16, &a->roof_mib) ? 2 : 0;
        } else if (!strcmp(f, "--kv-cache-dtype")) {
            NEED_VALUE;
            if (dtype_from_name(v, &a->kv_dtype) ||
                (a->kv_dtype != DTYPE_F16 && a->kv_dtype != DTYPE_BF16 && a->kv_dtype != DTYPE_F32))
                return bm_bad("%s must be f16, bf16 or f32, got '%s'", f, v);
        } else if (!strcmp(f, "--no-roofline")) {
            a->roofline = false;
        } else if (!strcmp(f, "--json")) {
            a->json = true;
        } else if (FLAG("-o", "--output")) {
            NEED_VALUE;
            if (!strcmp(v, "json")) a->json = true;
            else if (!strcmp(v, "md")) a->json = false;
            else return bm_bad("%s must be md or json, got '%s'", f, v);
        } else {
            return bm_bad("unknown option '%s'%s", f, "");
        }
        if (rc) return 2;
#undef FLAG
#undef NEED_VALUE
    }
    if (a->n_models == 0) return bm_bad("-m MODEL is required%s%s", "", "");
    return 0;
}

/* ---- one model ---- */

typedef struct {
    const bm_args_t *args;
    const char *path;
    model_t *model;
    kv_cache_t *kv;
    threadpool_t *pool;
    forward_t *fw;
    int32_t max_seqs, blocks_per_seq;
    int32_t *tables;          /* (max_seqs, blocks_per_seq) block ids: sequence s owns a fixed range */
    const int32_t **table_ptrs; /* (max_seqs) */
    int32_t *n_blocks;        /* (max_seqs) */
    int32_t cap;              /* rows of the batch arrays */
    int32_t *tokens, *pos, *seq; /* (cap) */
    uint8_t *want;            /* (cap) */
    float *logits;            /* (cap, n_vocab) */
    uint64_t rng;
} bm_ctx_t;

static int32_t bm_token(bm_ctx_t *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (int32_t)(c->rng % (uint64_t)c->model->hp.n_vocab);
}

static status_t bm_run(bm_ctx_t *c, int32_t n_tokens, int32_t n_seqs)
{
    forward_batch_t b;
    memset(&b, 0, sizeof(b));
    b.n_tokens = n_tokens;
    b.tokens = c->tokens;
    b.pos = c->pos;
    b.seq = c->seq;
    b.n_seqs = n_seqs;
    b.block_tables = c->table_ptrs;
    b.n_blocks = c->n_blocks;
    b.want_logits = c->want;
    return forward_run(c->fw, &b, c->logits);
}

/* Prefill of n tokens of sequence s from position p0, in passes of ubatch tokens. */
static status_t bm_prefill(bm_ctx_t *c, int32_t s, int32_t p0, int32_t n)
{
    for (int32_t done = 0; done < n;) {
        int32_t chunk = n - done < c->cap ? n - done : c->cap;
        status_t st;
        if (chunk > c->args->ubatch) chunk = (int32_t)c->args->ubatch;
        for (int32_t i = 0; i < chunk; i++) {
            c->tokens[i] = bm_token(c);
            c->pos[i] = p0 + done + i;
            c->seq[i] = s;
            c->want[i] = i == chunk - 1;
        }
        if ((st = bm_run(c, chunk, s + 1)) != CLLM_OK) return st;
        done += chunk;
    }
    return CLLM_OK;
}

/* n decode steps of sequences [0, n_seqs), the first at position p0. */
static status_t bm_decode(bm_ctx_t *c, int32_t n_seqs, int32_t p0, int32_t n)
{
    for (int32_t step = 0; step < n; step++) {
        status_t st;
        for (int32_t s = 0; s < n_seqs; s++) {
            c->tokens[s] = bm_token(c);
            c->pos[s] = p0 + step;
            c->seq[s] = s;
            c->want[s] = 1;
        }
        if ((st = bm_run(c, n_seqs, n_seqs)) != CLLM_OK) return st;
    }
    return CLLM_OK;
}

static double matrix_bytes(const model_matrix_t *m)
{
    return (double)dtype_row_bytes(m->type, (size_t)m->ne0) * (double)m->ne1;
}

/* Bytes of every matrix one forward step reads once (the layers and the output projection). */
static double weight_bytes_per_step(const model_t *m)
{
    double b = matrix_bytes(&m->output);
    for (int l = 0; l < m->hp.n_layer; l++) {
        const model_layer_t *L = &m->layers[l];
        b += matrix_bytes(&L->wq) + matrix_bytes(&L->wk) + matrix_bytes(&L->wv) + matrix_bytes(&L->wo) +
             matrix_bytes(&L->w_gate) + matrix_bytes(&L->w_up) + matrix_bytes(&L->w_down);
    }
    return b;
}

/* Multiply-adds per token of the layer matrices. */
static double layer_params(const model_t *m)
{
    double p = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const model_layer_t *L = &m->layers[l];
        const model_matrix_t *mats[7] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
        for (int i = 0; i < 7; i++) p += (double)mats[i]->ne0 * (double)mats[i]->ne1;
    }
    return p;
}

/* K and V bytes a token at position pos reads (positions [0, pos]). */
static double kv_bytes_at(const model_t *m, const kv_cache_config_t *kc, int64_t pos)
{
    return 2.0 * m->hp.n_layer * m->hp.n_head_kv * m->hp.head_dim * (double)dtype_block_bytes(kc->dtype) *
           (double)(pos + 1);
}

/* Attention operations of a token at position pos (scores and weighted sum of V). */
static double attn_flops_at(const model_t *m, int64_t pos)
{
    return 4.0 * m->hp.n_layer * m->hp.n_head * m->hp.head_dim * (double)(pos + 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(bm_result_t *r, const double *secs, double tokens)
{
    double sum = 0, ss = 0, sorted[BM_MAX_REPS], tsum = 0;
    for (int i = 0; i < r->reps; i++) {
        r->samples_ts[i] = tokens / secs[i];
        sum += r->samples_ts[i];
        tsum += secs[i];
    }
    r->mean_ts = sum / r->reps;
    r->mean_s = tsum / r->reps;
    for (int i = 0; i < r->reps; i++) ss += (r->samples_ts[i] - r->mean_ts) * (r->samples_ts[i] - r->mean_ts);
    r->stddev_ts = r->reps > 1 ? sqrt(ss / (r->reps - 1)) : 0.0; /* sample stddev, as llama-bench */
    memcpy(sorted, r->samples_ts, sizeof(double) * (size_t)r->reps);
    qsort(sorted, (size_t)r->reps, sizeof(double), cmp_double);
    r->median_ts = r->reps % 2 ? sorted[r->reps / 2] : 0.5 * (sorted[r->reps / 2 - 1] + sorted[r->reps / 2]);
}

/* Runs one test (n_prompt > 0: prefill; else n_gen decode steps of n_seqs sequences). */
static status_t bm_test(bm_ctx_t *c, long n_prompt, long n_gen, long n_seqs, bm_result_t *r)
{
    const bm_args_t *a = c->args;
    const model_t *m = c->model;
    const kv_cache_config_t *kc = kv_cache_config(c->kv);
    int32_t depth = (int32_t)a->depth;
    double secs[BM_MAX_REPS], median_s;
    status_t st;

    memset(r, 0, sizeof(*r));
    r->model_path = c->path;
    snprintf(r->arch, sizeof(r->arch), "%s", m->hp.arch_name);
    r->wtype = m->weight_type;
    r->weight_bytes = m->weight_bytes;
    r->n_params = m->n_params;
    r->peak_kind = kern_matmul_peak_kind(m->weight_type);
    r->n_prompt = n_prompt;
    r->n_gen = n_gen;
    r->n_seqs = n_prompt > 0 ? 1 : n_seqs;
    r->n_depth = depth;
    r->reps = (int)a->reps;
    if (n_prompt > 0) snprintf(r->test, sizeof(r->test), "pp%ld", n_prompt);
    else if (n_seqs > 1) snprintf(r->test, sizeof(r->test), "tg%ld x%ld", n_gen, n_seqs);
    else snprintf(r->test, sizeof(r->test), "tg%ld", n_gen);
    if (depth > 0) {
        size_t len = strlen(r->test);
        snprintf(r->test + len, sizeof(r->test) - len, " @ d%d", depth);
    }
    fprintf(stderr, "cllm bench model: %s: %s (%ld reps)\n", c->path, r->test, a->reps);

    /* The context of depth D is written once: the runs only write positions >= D. */
    c->rng = 0x9e3779b97f4a7c15ull;
    for (int32_t s = 0; s < (int32_t)r->n_seqs && depth > 0; s++)
        if ((st = bm_prefill(c, s, 0, depth)) != CLLM_OK) return st;
    for (int rep = -1; rep < r->reps; rep++) { /* rep -1: the warmup */
        double t0;
        c->rng = 0x2545f4914f6cdd1dull + (uint64_t)rep;
        t0 = clock_now_s();
        if (n_prompt > 0) st = bm_prefill(c, 0, depth, (int32_t)n_prompt);
        else st = bm_decode(c, (int32_t)n_seqs, depth, rep < 0 ? 1 : (int32_t)n_gen);
        if (st != CLLM_OK) return st;
        if (rep >= 0) secs[rep] = clock_now_s() - t0;
    }
    summarize(r, secs, (double)(n_prompt > 0 ? n_prompt : n_gen * n_seqs));
    median_s = (n_prompt > 0 ? n_prompt : n_gen * n_seqs) / r->median_ts;
    r->gbps = r->gflops = r->roof_frac = NAN;
    if (n_prompt > 0) {
        int64_t n_passes = (n_prompt + a->ubatch - 1) / a->ubatch;
        r->flops = 2.0 * layer_params(m) * (double)n_prompt +
                   2.0 * (double)m->hp.n_embd * m->hp.n_vocab * (double)n_passes;
        for (int64_t p = depth; p < depth + n_prompt; p++) r->flops += attn_flops_at(m, p);
        r->gflops = r->flops / median_s * 1e-9;
    } else {
        r->bytes = weight_bytes_per_step(m) * (double)n_gen;
        for (int64_t p = depth; p < depth + n_gen; p++) r->bytes += (double)n_seqs * kv_bytes_at(m, kc, p);
        r->gbps = r->bytes / median_s * 1e-9;
    }
    r->done = true;
    return CLLM_OK;
}

static void bm_ctx_free(bm_ctx_t *c)
{
    forward_destroy(c->fw);
    kv_cache_destroy(c->kv);
    model_destroy(c->model);
    free(c->tables);
    free(c->table_ptrs);
    free(c->n_blocks);
    free(c->tokens);
    free(c->pos);
    free(c->seq);
    free(c->want);
    free(c->logits);
}

static status_t bm_ctx_init(bm_ctx_t *c, const bm_args_t *a, const char *path, threadpool_t *pool)
{
    kv_cache_config_t kc;
    long max_len = 0, max_seqs = 1;
    status_t st;
    char desc[512];

    memset(c, 0, sizeof(*c));
    c->args = a;
    c->path = path;
    c->pool = pool;
    if ((st = model_load(path, &c->model)) != CLLM_OK) return st;
    model_describe(c->model, desc, sizeof(desc));
    fprintf(stderr, "cllm bench model: %s\n", desc);
    for (int i = 0; i < a->n_prompts; i++) max_len = a->prompts[i] > max_len ? a->prompts[i] : max_len;
    for (int i = 0; i < a->n_gens; i++) max_len = a->gens[i] > max_len ? a->gens[i] : max_len;
    for (int i = 0; i < a->n_seqs; i++) max_seqs = a->seqs[i] > max_seqs ? a->seqs[i] : max_seqs;
    max_len += a->depth;
    c->max_seqs = (int32_t)max_seqs;
    c->blocks_per_seq = (int32_t)((max_len + a->block_size - 1) / a->block_size);
    if (c->blocks_per_seq < 1) c->blocks_per_seq = 1;
    if ((int64_t)c->max_seqs * c->blocks_per_seq > INT32_MAX / 2)
        return cllm_error(CLLM_ERR_RANGE, "bench model: %d sequences of %ld tokens need too many KV blocks", c->max_seqs,
                          max_len);
    memset(&kc, 0, sizeof(kc));
    kc.n_layer = c->model->hp.n_layer;
    kc.n_head_kv = c->model->hp.n_head_kv;
    kc.head_dim = c->model->hp.head_dim;
    kc.block_size = (int32_t)a->block_size;
    kc.n_blocks = c->max_seqs * c->blocks_per_seq;
    kc.dtype = a->kv_dtype;
    if ((st = kv_cache_create(&kc, &c->kv)) != CLLM_OK) return st;
    if ((st = forward_create(c->model, c->kv, pool, &c->fw)) != CLLM_OK) return st;
    c->cap = (int32_t)(a->ubatch > max_seqs ? a->ubatch : max_seqs);
    c->tables = malloc(sizeof(int32_t) * (size_t)kc.n_blocks);
    c->table_ptrs = malloc(sizeof(*c->table_ptrs) * (size_t)c->max_seqs);
    c->n_blocks = malloc(sizeof(int32_t) * (size_t)c->max_seqs);
    c->tokens = malloc(sizeof(int32_t) * (size_t)c->cap);
    c->pos = malloc(sizeof(int32_t) * (size_t)c->cap);
    c->seq = malloc(sizeof(int32_t) * (size_t)c->cap);
    c->want = malloc((size_t)c->cap);
    c->logits = malloc(sizeof(float) * (size_t)c->cap * (size_t)c->model->hp.n_vocab);
    if (!c->tables || !c->table_ptrs || !c->n_blocks || !c->tokens || !c->pos || !c->seq || !c->want || !c->logits)
        return cllm_error(CLLM_ERR_NOMEM, "bench model: out of memory");
    for (int32_t i = 0; i < kc.n_blocks; i++) c->tables[i] = i;
    for (int32_t s = 0; s < c->max_seqs; s++) {
        c->table_ptrs[s] = c->tables + (size_t)s * c->blocks_per_seq;
        c->n_blocks[s] = c->blocks_per_seq;
    }
    return CLLM_OK;
}

/* ---- output ---- */

static const char *peak_kind_name(kern_peak_t k)
{
    switch (k) {
    case KERN_PEAK_F32_FMA: return "f32_fma";
    case KERN_PEAK_BF16_DOT: return "bf16_dot";
    case KERN_PEAK_INT8_DOT: return "int8_dot";
    }
    return "?";
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_roofline(FILE *f, const bench_roofline_t *roof)
{
    fprintf(f,
            "roofline (%d threads, %s, best of all measurements; roof %% compares each test with its own ceiling "
            "measured right before and after it): read %.1f GB/s (%.0f MiB), f32 FMA %.1f GFLOP/s, bf16 dot %.1f "
            "GFLOP/s, int8 dot %.1f GOP/s\n\n",
            roof->n_threads, roof->level, roof->read_gbps, (double)roof->read_bytes / 1048576.0, roof->f32_fma_gflops,
            roof->bf16_dot_gflops, roof->int8_dot_gops);
}

static void print_header(FILE *f)
{
    fprintf(f, "| %-30s | %10s | %8s | %-10s | %7s | %-14s | %20s | %10s | %8s | %8s | %6s |\n", "model", "size",
            "params", "backend", "threads", "test", "t/s", "median t/s", "GB/s", "GFLOP/s", "roof");
    fprintf(f, "| ------------------------------ | ---------: | -------: | ---------- | ------: | -------------- | "
               "-------------------: | ---------: | -------: | -------: | -----: |\n");
}

static void print_row(FILE *f, const bm_result_t *r, int n_threads)
{
    char model[128], size[32], params[32], backend[32], ts[48], gb[16], gf[16], roof[16];
    double np = (double)r->n_params, sz = (double)r->weight_bytes;
    if (np >= 1e9) snprintf(params, sizeof(params), "%.2f B", np / 1e9);
    else snprintf(params, sizeof(params), "%.2f M", np / 1e6);
    snprintf(model, sizeof(model), "%s %s %s", r->arch, params, dtype_name(r->wtype));
    if (sz >= 1073741824.0) snprintf(size, sizeof(size), "%.2f GiB", sz / 1073741824.0);
    else snprintf(size, sizeof(size), "%.2f MiB", sz / 1048576.0);
    snprintf(backend, sizeof(backend), "CPU %s", kern_level_name(kern_level()));
    snprintf(ts, sizeof(ts), "%.2f ± %.2f", r->mean_ts, r->stddev_ts);
    snprintf(gb, sizeof(gb), isnan(r->gbps) ? "-" : "%.1f", r->gbps);
    snprintf(gf, sizeof(gf), isnan(r->gflops) ? "-" : "%.1f", r->gflops);
    snprintf(roof, sizeof(roof), isnan(r->roof_frac) ? "-" : "%.0f%%", r->roof_frac * 100.0);
    fprintf(f, "| %-30s | %10s | %8s | %-10s | %7d | %-14s | %21s | %10.2f | %8s | %8s | %6s |\n", model, size, params,
            backend, n_threads, r->test, ts, r->median_ts, gb, gf, roof);
}

static json_t *result_json(const bm_result_t *r, const bm_args_t *a)
{
    json_t *o = json_object(), *samples = json_array();
    for (int i = 0; i < r->reps; i++) json_array_append_new(samples, json_real(r->samples_ts[i]));
    json_object_set_new(o, "model_filename", json_string(base_name(r->model_path)));
    json_object_set_new(o, "model_type", json_string(dtype_name(r->wtype)));
    json_object_set_new(o, "model_size", json_integer((json_int_t)r->weight_bytes));
    json_object_set_new(o, "model_n_params", json_integer((json_int_t)r->n_params));
    json_object_set_new(o, "test", json_string(r->test));
    json_object_set_new(o, "n_prompt", json_integer(r->n_prompt));
    json_object_set_new(o, "n_gen", json_integer(r->n_gen));
    json_object_set_new(o, "n_seqs", json_integer(r->n_seqs));
    json_object_set_new(o, "n_depth", json_integer(r->n_depth));
    json_object_set_new(o, "n_ubatch", json_integer(a->ubatch));
    json_object_set_new(o, "n_threads", json_integer(a->threads));
    json_object_set_new(o, "kv_type", json_string(dtype_name(a->kv_dtype)));
    json_object_set_new(o, "reps", json_integer(r->reps));
    json_object_set_new(o, "samples_ts", samples);
    json_object_set_new(o, "avg_ts", json_real(r->mean_ts));
    json_object_set_new(o, "stddev_ts", json_real(r->stddev_ts));
    json_object_set_new(o, "median_ts", json_real(r->median_ts));
    json_object_set_new(o, "avg_s", json_real(r->mean_s));
    json_object_set_new(o, "gbps", bench_report_real(r->gbps));
    json_object_set_new(o, "gflops", bench_report_real(r->gflops));
    json_object_set_new(o, "roof_kind", !a->roofline ? json_null()
                                        : r->n_prompt > 0 ? json_string(peak_kind_name(r->peak_kind))
                                                          : json_string("read"));
    json_object_set_new(o, "roof_ceiling", a->roofline ? json_real(r->ceiling) : json_null());
    json_object_set_new(o, "roof_frac", bench_report_real(r->roof_frac));
    return o;
}

static json_t *roofline_json(const bench_roofline_t *roof)
{
    json_t *r = json_object();
    json_object_set_new(r, "n_threads", json_integer(roof->n_threads));
    json_object_set_new(r, "read_gbps", json_real(roof->read_gbps));
    json_object_set_new(r, "read_bytes", json_integer((json_int_t)roof->read_bytes));
    json_object_set_new(r, "f32_fma_gflops", json_real(roof->f32_fma_gflops));
    json_object_set_new(r, "bf16_dot_gflops", json_real(roof->bf16_dot_gflops));
    json_object_set_new(r, "int8_dot_gops", json_real(roof->int8_dot_gops));
    json_object_set_new(r, "measurements", json_integer(2));
    return r;
}

/* The ceilings are the best seen: each field the larger of the two measurements. */
static void roofline_merge(bench_roofline_t *a, const bench_roofline_t *b)
{
    if (b->read_gbps > a->read_gbps) a->read_gbps = b->read_gbps;
    if (b->f32_fma_gflops > a->f32_fma_gflops) a->f32_fma_gflops = b->f32_fma_gflops;
    if (b->bf16_dot_gflops > a->bf16_dot_gflops) a->bf16_dot_gflops = b->bf16_dot_gflops;
    if (b->int8_dot_gops > a->int8_dot_gops) a->int8_dot_gops = b->int8_dot_gops;
}

static void set_roof_frac(bm_result_t *r)
{
    if (r->ceiling > 0) r->roof_frac = (r->n_prompt > 0 ? r->gflops : r->gbps) / r->ceiling;
}

/* The ceiling of one test (read bandwidth for decode, the peak of kind for prefill), measured
 * now, and folded into roof (each field the best seen). */
static status_t measure_ceiling(const bm_args_t *a, threadpool_t *pool, bool decode, kern_peak_t kind,
                                bench_roofline_t *roof, double *out)
{
    status_t st;
    if (decode) {
        st = bench_roofline_read(pool, (size_t)a->roof_mib << 20, 0.2, out, NULL);
        if (st == CLLM_OK && *out > roof->read_gbps) roof->read_gbps = *out;
        return st;
    }
    st = bench_roofline_peak(pool, kind, 0.2, out);
    if (st != CLLM_OK) return st;
    switch (kind) {
    case KERN_PEAK_F32_FMA: if (*out > roof->f32_fma_gflops) roof->f32_fma_gflops = *out; break;
    case KERN_PEAK_BF16_DOT: if (*out > roof->bf16_dot_gflops) roof->bf16_dot_gflops = *out; break;
    case KERN_PEAK_INT8_DOT: if (*out > roof->int8_dot_gops) roof->int8_dot_gops = *out; break;
    }
    return CLLM_OK;
}

/* Measures the roofline into roof (or merges a second measurement into it). */
static status_t measure_roofline(const bm_args_t *a, threadpool_t *pool, bench_roofline_t *roof, bool merge)
{
    bench_roofline_t m;
    status_t st;
    fprintf(stderr, "cllm bench model: measuring the roofline (%ld threads)\n", a->threads);
    if ((st = bench_roofline_measure(pool, (size_t)a->roof_mib << 20, 0.3, &m)) != CLLM_OK) return st;
    if (merge) roofline_merge(roof, &m);
    else *roof = m;
    return CLLM_OK;
}

int cmd_bench_model(int argc, char **argv)
{
    bm_args_t a;
    threadpool_t *pool = NULL;
    bench_roofline_t roof;
    bm_result_t *res = NULL;
    int rc, n_res = 0, cap = 0;
    status_t st = CLLM_OK;

    rc = bm_parse(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : 2;
    if ((st = threadpool_create((int)a.threads, &pool)) != CLLM_OK) {
        fprintf(stderr, "cllm bench model: %s\n", cllm_error_message());
        return 1;
    }
    memset(&roof, 0, sizeof(roof));
    rc = 0;
    if (a.roofline && (st = measure_roofline(&a, pool, &roof, false)) != CLLM_OK) {
        fprintf(stderr, "cllm bench model: %s\n", cllm_error_message());
        rc = 1;
    }
    for (int mi = 0; mi < a.n_models && rc == 0; mi++) {
        bm_ctx_t c;
        /* tests in llama-bench's order: prefill sizes, then decode sizes x sequence counts */
        long tests[2 * BM_MAX_LIST * BM_MAX_LIST][3];
        int n_tests = 0;
        for (int pi = 0; pi < a.n_prompts; pi++)
            if (a.prompts[pi] > 0) {
                tests[n_tests][0] = a.prompts[pi];
                tests[n_tests][1] = 0;
                tests[n_tests++][2] = 1;
            }
        for (int gi = 0; gi < a.n_gens; gi++)
            for (int si = 0; si < a.n_seqs && a.gens[gi] > 0; si++) {
                tests[n_tests][0] = 0;
                tests[n_tests][1] = a.gens[gi];
                tests[n_tests++][2] = a.seqs[si];
            }
        if (n_res + n_tests > cap) {
            bm_result_t *grown = realloc(res, sizeof(*res) * (size_t)(n_res + n_tests + 1));
            if (!grown) {
                fprintf(stderr, "cllm bench model: out of memory\n");
                rc = 1;
                break;
            }
            res = grown;
            cap = n_res + n_tests + 1;
        }
        st = bm_ctx_init(&c, &a, a.models[mi], pool);
        for (int ti = 0; ti < n_tests && st == CLLM_OK; ti++) {
            /* the test's ceiling right before and right after it: the better of the two */
            bool decode = tests[ti][0] == 0;
            kern_peak_t kind = kern_matmul_peak_kind(c.model->weight_type);
            double before = 0, after = 0;
            if (a.roofline && (st = measure_ceiling(&a, pool, decode, kind, &roof, &before)) != CLLM_OK) break;
            if ((st = bm_test(&c, tests[ti][0], tests[ti][1], tests[ti][2], &res[n_res])) != CLLM_OK) break;
            if (a.roofline && (st = measure_ceiling(&a, pool, decode, kind, &roof, &after)) != CLLM_OK) break;
            res[n_res++].ceiling = before > after ? before : after;
        }
        if (st != CLLM_OK) {
            fprintf(stderr, "cllm bench model: %s: %s\n", a.models[mi], cllm_error_message());
            rc = 1;
        }
        bm_ctx_free(&c);
    }
    if (rc == 0 && a.roofline && n_res > 0 && (st = measure_roofline(&a, pool, &roof, true)) != CLLM_OK) {
        fprintf(stderr, "cllm bench model: %s\n", cllm_error_message());
        rc = 1;
    }
    if (rc == 0) {
        for (int i = 0; i < n_res; i++) {
            res[i].roof_frac = NAN;
            if (a.roofline) set_roof_frac(&res[i]);
        }
        if (a.json) {
            json_t *doc = json_object(), *build = json_object(), *results = json_array();
            char *text;
            json_object_set_new(build, "kernel_level", json_string(kern_level_name(kern_level())));
            json_object_set_new(build, "n_threads", json_integer(a.threads));
            json_object_set_new(doc, "build", build);
            json_object_set_new(doc, "roofline", a.roofline ? roofline_json(&roof) : json_null());
            for (int i = 0; i < n_res; i++) json_array_append_new(results, result_json(&res[i], &a));
            json_object_set_new(doc, "results", results);
            text = json_dumps(doc, JSON_INDENT(2));
            json_decref(doc);
            if (!text) {
                fprintf(stderr, "cllm bench model: out of memory\n");
                rc = 1;
            } else {
                printf("%s\n", text);
                free(text);
            }
        } else {
            if (a.roofline) print_roofline(stdout, &roof);
            print_header(stdout);
            for (int i = 0; i < n_res; i++) print_row(stdout, &res[i], (int)a.threads);
        }
        fflush(stdout);
        if (n_res == 0) fprintf(stderr, "cllm bench model: no tests (-p 0 and -n 0)\n");
    }
    free(res);
    threadpool_destroy(pool);
    return rc;
}

/* cmd_generate.c: `cllm generate`: load a model, encode the prompt, prefill it, then sample and
 * stream tokens to stdout until EOS, -n tokens or the context ends. stdout carries only the
 * generated text; the configuration and the timing line go to stderr. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "core/log.h"
#include "core/threadpool.h"
#include "engine/sampler.h"
#include "kernels/kernels.h"
#include "kv/kv_cache.h"
#include "model/forward.h"
#include "model/model.h"

#define PREFILL_CHUNK 512

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: cllm generate -m MODEL -p PROMPT [options]\n"
            "  -m, --model PATH        GGUF model file\n"
            "  -p, --prompt TEXT       prompt (the generated text alone goes to stdout)\n"
            "  -f, --file PATH         read the prompt from a file\n"
            "  -n, --n-predict N       tokens to generate (default 128; -1: until EOS or context end)\n"
            "      --temp T            temperature (default 0.8; 0 = greedy)\n"
            "      --top-k K           top-k (default 40; 0 = off)\n"
            "      --top-p P           top-p (default 0.95; 1 = off)\n"
            "      --min-p P           min-p (default 0.05; 0 = off)\n"
            "      --repeat-penalty F  repetition penalty (default 1 = off)\n"
            "      --seed S            sampling seed (default: random)\n"
            "      --ignore-eos        keep generating past end-of-sequence tokens\n"
            "  -c, --ctx-size N        context length (default: prompt + N; with -n -1 the model's)\n"
            "      --kv-cache-dtype T  auto|f32|f16|bf16 (default auto: f32 for f32 models, else f16)\n"
            "      --block-size N      KV block size in tokens (default 32)\n"
            "  -t, --threads N         threads (default: all cores)\n"
            "      --no-bos            do not add the BOS token\n"
            "  -h, --help              this help\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "cllm generate: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, float *out)
{
    char *end;
    float v;
    errno = 0;
    v = strtof(s, &end);
    if (errno || end == s || *end) {
        fprintf(stderr, "cllm generate: %s expects a number, got '%s'\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

typedef struct {
    const char *model_path;
    const char *prompt;
    char *prompt_owned;
    long n_predict;
    long n_ctx;
    long n_threads;
    long block_size;
    const char *kv_dtype;
    bool ignore_eos;
    bool no_bos;
    sampler_params_t sp;
} generate_args_t;

/* Returns 0 to run, 1 to exit 0 (help), 2 on a bad flag. */
static int generate_parse(int argc, char **argv, generate_args_t *a)
{
    long v;
    memset(a, 0, sizeof(*a));
    a->n_predict = 128;
    a->block_size = 32;
    a->kv_dtype = "auto";
    a->n_threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    a->sp = sampler_params_default();
    a->sp.temperature = 0.8f;
    a->sp.top_k = 40;
    a->sp.top_p = 0.95f;
    a->sp.min_p = 0.05f;

    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL()                                                                  \
    do {                                                                            \
        if (!val) {                                                                 \
            fprintf(stderr, "cllm generate: %s needs a value (see --help)\n", f);   \
            return 2;                                                               \
        }                                                                           \
        i++;                                                                        \
    } while (0)
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            generate_usage(stdout);
            return 1;
        } else if (!strcmp(f, "-m") || !strcmp(f, "--model")) {
            NEED_VAL();
            a->model_path = val;
        } else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) {
            NEED_VAL();
            a->prompt = val;
        } else if (!strcmp(f, "-f") || !strcmp(f, "--file")) {
            NEED_VAL();
            free(a->prompt_owned);
            a->prompt_owned = read_file(val);
            if (!a->prompt_owned) {
                fprintf(stderr, "cllm generate: cannot read prompt file '%s': %s\n", val, strerror(errno));
                return 2;
            }
            a->prompt = a->prompt_owned;
        } else if (!strcmp(f, "-n") || !strcmp(f, "--n-predict")) {
            NEED_VAL();
            if (parse_long(f, val, -1, 1L << 30, &a->n_predict)) return 2;
        } else if (!strcmp(f, "-c") || !strcmp(f, "--ctx-size")) {
            NEED_VAL();
            if (parse_long(f, val, 0, 1L << 24, &a->n_ctx)) return 2;
        } else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) {
            NEED_VAL();
            if (parse_long(f, val, 1, 1024, &a->n_threads)) return 2;
        } else if (!strcmp(f, "--block-size")) {
            NEED_VAL();
            if (parse_long(f, val, 8, 256, &a->block_size)) return 2;
        } else if (!strcmp(f, "--kv-cache-dtype")) {
            NEED_VAL();
            a->kv_dtype = val;
        } else if (!strcmp(f, "--temp") || !strcmp(f, "--temperature")) {
            NEED_VAL();
            if (parse_float(f, val, &a->sp.temperature)) return 2;
        } else if (!strcmp(f, "--top-k")) {
            NEED_VAL();
            if (parse_long(f, val, -1, 1L << 30, &v)) return 2;
            a->sp.top_k = (int32_t)v;
        } else if (!strcmp(f, "--top-p")) {
            NEED_VAL();
            if (parse_float(f, val, &a->sp.top_p)) return 2;
        } else if (!strcmp(f, "--min-p")) {
            NEED_VAL();
            if (parse_float(f, val, &a->sp.min_p)) return 2;
        } else if (!strcmp(f, "--repeat-penalty")) {
            NEED_VAL();
            if (parse_float(f, val, &a->sp.repetition_penalty)) return 2;
        } else if (!strcmp(f, "--seed") || !strcmp(f, "-s")) {
            NEED_VAL();
            errno = 0;
            {
                char *end;
                unsigned long long s = strtoull(val, &end, 10);
                if (errno || end == val || *end) {
                    fprintf(stderr, "cllm generate: --seed expects a non-negative integer, got '%s'\n", val);
                    return 2;
                }
                a->sp.seed = s;
                a->sp.has_seed = true;
            }
        } else if (!strcmp(f, "--ignore-eos")) {
            a->ignore_eos = true;
        } else if (!strcmp(f, "--no-bos")) {
            a->no_bos = true;
        } else {
            fprintf(stderr, "cllm generate: unknown option '%s' (see cllm generate --help)\n", f);
            return 2;
        }
#undef NEED_VAL
    }
    if (!a->model_path) {
        fprintf(stderr, "cllm generate: -m MODEL is required (see --help)\n");
        return 2;
    }
    if (!a->prompt) {
        fprintf(stderr, "cllm generate: -p PROMPT or -f FILE is required (see --help)\n");
        return 2;
    }
    if (a->block_size & (a->block_size - 1)) {
        fprintf(stderr, "cllm generate: --block-size must be a power of two from 8 to 256, got %ld\n", a->block_size);
        return 2;
    }
    return 0;
}

/* "auto": f32 KV for f32 weights (exact comparisons with references), f16 otherwise. */
static int kv_dtype_choose(const char *name, const model_t *m, dtype_t *out)
{
    if (!strcmp(name, "auto")) {
        *out = m->weight_type == DTYPE_F32 ? DTYPE_F32 : DTYPE_F16;
        return 0;
    }
    if (dtype_from_name(name, out) || (*out != DTYPE_F32 && *out != DTYPE_F16 && *out != DTYPE_BF16)) {
        fprintf(stderr, "cllm generate: --kv-cache-dtype must be auto, f32, f16 or bf16, got '%s'\n", name);
        return -1;
    }
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    generate_args_t a;
    model_t *model = NULL;
    threadpool_t *pool = NULL;
    kv_cache_t *kv = NULL;
    forward_t *fw = NULL;
    sampler_t *smp = NULL;
    int32_t *prompt = NULL, *block_table = NULL, *tokens = NULL;
    float *logits = NULL;
    size_t n_prompt = 0;
    int rc = 1, pr;
    status_t st;
    char desc[512];
    kv_cache_config_t kc;
    long n_ctx, n_gen = 0;
    double t0, t_prefill = 0.0, t_gen = 0.0;
    tokenizer_stream_t stream;
    char text[1024];

    pr = generate_parse(argc, argv, &a);
    if (pr) {
        free(a.prompt_owned);
        return pr == 1 ? 0 : 2;
    }
    if ((st = model_load(a.model_path, &model)) != CLLM_OK) {
        fprintf(stderr, "cllm generate: %s\n", cllm_error_message());
        goto out;
    }
    model_describe(model, desc, sizeof(desc));
    log_info("model %s", desc);
    if ((st = sampler_create(&a.sp, model->hp.n_vocab, &smp)) != CLLM_OK) {
        fprintf(stderr, "cllm generate: %s\n", cllm_error_message());
        goto out;
    }
    if ((st = tokenizer_encode(model->tok, a.prompt, strlen(a.prompt), !a.no_bos, false, &prompt, &n_prompt)) != CLLM_OK) {
        fprintf(stderr, "cllm generate: %s\n", cllm_error_message());
        goto out;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "cllm generate: the prompt encodes to no tokens\n");
        goto out;
    }
    n_ctx = a.n_ctx ? a.n_ctx : (a.n_predict < 0 ? model->hp.n_ctx_train : (long)n_prompt + a.n_predict);
    if (n_ctx > model->hp.n_ctx_train)
        log_warn("context %ld is longer than the model was trained for (%d): quality may drop", n_ctx,
                 model->hp.n_ctx_train);
    if ((long)n_prompt >= n_ctx) {
        fprintf(stderr, "cllm generate: the prompt has %zu tokens but the context holds %ld; raise -c\n", n_prompt, n_ctx);
        goto out;
    }

    kc.n_layer = model->hp.n_layer;
    kc.n_head_kv = model->hp.n_head_kv;
    kc.head_dim = model->hp.head_dim;
    kc.block_size = (int32_t)a.block_size;
    kc.n_blocks = (int32_t)((n_ctx + a.block_size - 1) / a.block_size);
    if (kv_dtype_choose(a.kv_dtype, model, &kc.dtype)) goto out;
    if ((st = kv_cache_create(&kc, &kv)) != CLLM_OK || (st = threadpool_create((int)a.n_threads, &pool)) != CLLM_OK ||
        (st = forward_create(model, kv, pool, &fw)) != CLLM_OK) {
        fprintf(stderr, "cllm generate: %s\n", cllm_error_message());
        goto out;
    }
    log_info("context %ld tokens in %d blocks of %d (%s KV, %.1f MiB), %ld threads, kernels %s", n_ctx, kc.n_blocks,
             kc.block_size, dtype_name(kc.dtype), (double)kv_cache_bytes_for(&kc) / (1024.0 * 1024.0), a.n_threads,
             kern_level_name(kern_level()));

    block_table = malloc((size_t)kc.n_blocks * sizeof(int32_t));
    tokens = malloc((size_t)n_ctx * sizeof(int32_t));
    logits = malloc((size_t)model->hp.n_vocab * sizeof(float));
    if (!block_table || !tokens || !logits) {
        fprintf(stderr, "cllm generate: out of memory\n");
        goto out;
    }
    for (int32_t i = 0; i < kc.n_blocks; i++) block_table[i] = i;
    memcpy(tokens, prompt, n_prompt * sizeof(int32_t));
    sampler_set_prompt(smp, prompt, n_prompt);

    {
        int32_t *pos = malloc((size_t)n_ctx * sizeof(int32_t)), *seq = calloc((size_t)n_ctx, sizeof(int32_t));
        const int32_t *bts[1] = { block_table };
        int32_t nbs[1] = { kc.n_blocks };
        long n_cur = (long)n_prompt;
        forward_batch_t b;
        sampler_result_t res;

        if (!pos || !seq) {
            free(pos);
            free(seq);
            fprintf(stderr, "cllm generate: out of memory\n");
            goto out;
        }
        for (long i = 0; i < n_ctx; i++) pos[i] = (int32_t)i;
        memset(&b, 0, sizeof(b));
        b.n_seqs = 1;
        b.block_tables = bts;
        b.n_blocks = nbs;
        b.seq = seq;

        /* prefill in chunks; only the last chunk's last token needs logits */
        t0 = now_s();
        for (long i0 = 0; i0 < (long)n_prompt; i0 += PREFILL_CHUNK) {
            long n = (long)n_prompt - i0 < PREFILL_CHUNK ? (long)n_prompt - i0 : PREFILL_CHUNK;
            b.n_tokens = (int32_t)n;
            b.tokens = tokens + i0;
            b.pos = pos + i0;
            if ((st = forward_run(fw, &b, logits)) != CLLM_OK) break;
        }
        t_prefill = now_s() - t0;

        tokenizer_stream_init(&stream, false);
        stream.started = true; /* the text continues the prompt: keep the first token's space */
        t0 = now_s();
        while (st == CLLM_OK && (a.n_predict < 0 || n_gen < a.n_predict) && n_cur < n_ctx) {
            size_t len;
            if ((st = sampler_sample(smp, logits, &res)) != CLLM_OK) break;
            if (!a.ignore_eos && tokenizer_is_eog(model->tok, res.token)) break;
            sampler_accept(smp, res.token);
            tokens[n_cur] = res.token;
            n_gen++;
            len = tokenizer_stream_push(model->tok, &stream, res.token, text, sizeof(text));
            fwrite(text, 1, len, stdout);
            fflush(stdout);
            if ((a.n_predict >= 0 && n_gen >= a.n_predict) || n_cur + 1 >= n_ctx) {
                n_cur++;
                break;
            }
            b.n_tokens = 1;
            b.tokens = tokens + n_cur;
            b.pos = pos + n_cur;
            st = forward_run(fw, &b, logits);
            n_cur++;
        }
        t_gen = now_s() - t0;
        fwrite(text, 1, tokenizer_stream_flush(model->tok, &stream, text, sizeof(text)), stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(pos);
        free(seq);
        if (st != CLLM_OK) {
            fprintf(stderr, "cllm generate: %s\n", cllm_error_message());
            goto out;
        }
    }
    fprintf(stderr, "cllm generate: prompt %zu tokens in %.3f s (%.2f tok/s), generation %ld tokens in %.3f s (%.2f tok/s)\n",
            n_prompt, t_prefill, t_prefill > 0 ? (double)n_prompt / t_prefill : 0.0, n_gen, t_gen,
            t_gen > 0 ? (double)n_gen / t_gen : 0.0);
    rc = 0;

out:
    free(logits);
    free(tokens);
    free(block_table);
    free(prompt);
    sampler_destroy(smp);
    forward_destroy(fw);
    threadpool_destroy(pool);
    kv_cache_destroy(kv);
    model_destroy(model);
    free(a.prompt_owned);
    return rc;
}

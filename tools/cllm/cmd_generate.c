/* cmd_generate.c: `cllm generate`: one request through the engine (include/cllm/engine.h),
 * stepped on this thread: the prompt is prefilled, then tokens are sampled and streamed to stdout
 * until EOS, -n tokens or the context ends. stdout carries only the generated text; the
 * configuration and the timing line go to stderr. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cllm/engine.h"
#include "cli_args.h"
#include "commands.h"
#include "core/log.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "core/clock.h"
#include "core/file.h"

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: cllm generate -m MODEL -p PROMPT [options]\n"
            "  -m, --model PATH        GGUF file or Hugging Face checkpoint directory\n"
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

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out)
{
    return cli_parse_long("cllm generate", flag, s, lo, hi, out);
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
            a->prompt_owned = file_read_all(val, (size_t)1 << 30, NULL);
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

int cmd_generate(int argc, char **argv)
{
    generate_args_t a;
    cllm_engine_config_t cfg;
    cllm_engine_t *e = NULL;
    cllm_request_t q;
    cllm_output_t *o = NULL;
    uint64_t id;
    int rc = 1, pr;
    int32_t n_prompt = 0, n_out = 0;
    double t0, t_first = 0.0, t_end;
    status_t st;

    pr = generate_parse(argc, argv, &a);
    if (pr) {
        free(a.prompt_owned);
        return pr == 1 ? 0 : 2;
    }
    cllm_engine_config_default(&cfg);
    cfg.model_path = a.model_path;
    cfg.n_threads = (int32_t)a.n_threads;
    cfg.block_size = (int32_t)a.block_size;
    cfg.kv_cache_dtype = a.kv_dtype;
    cfg.max_num_seqs = 1;
    /* the context: -c, else room for the prompt (at most one token per byte, plus BOS) and -n
     * tokens — the model's trained length is no limit (as in llama.cpp), only a warning */
    if (a.n_ctx)
        cfg.max_model_len = (int32_t)a.n_ctx;
    else if (a.n_predict > 0)
        cfg.max_model_len = (int32_t)(strlen(a.prompt) + 2 + (size_t)a.n_predict);
    if ((st = cllm_engine_create(&cfg, &e)) != CLLM_OK) goto out_err;
    if (engine_config(e)->max_model_len > engine_model(e)->hp.n_ctx_train)
        log_warn("context %d is longer than the model was trained for (%d): quality may drop",
                 engine_config(e)->max_model_len, engine_model(e)->hp.n_ctx_train);

    cllm_request_init(&q);
    q.prompt = a.prompt;
    q.prompt_len = strlen(a.prompt);
    q.add_special = !a.no_bos;
    q.temperature = a.sp.temperature;
    q.top_k = a.sp.top_k;
    q.top_p = a.sp.top_p;
    q.min_p = a.sp.min_p;
    q.repetition_penalty = a.sp.repetition_penalty;
    q.seed = a.sp.seed;
    q.has_seed = a.sp.has_seed;
    q.ignore_eos = a.ignore_eos;
    q.max_tokens = a.n_predict > 0 ? (int32_t)a.n_predict : 0;
    t0 = clock_now_s();
    if ((st = cllm_engine_submit(e, &q, &id)) != CLLM_OK) goto out_err;
    for (;;) {
        int32_t n;
        if ((st = cllm_engine_step(e, &n)) != CLLM_OK) goto out_err;
        while ((st = cllm_engine_poll(e, id, 0, &o)) == CLLM_OK && o) {
            int fin = o->finish != CLLM_FINISH_NONE;
            if (o->n_tokens && t_first == 0.0) t_first = clock_now_s();
            fwrite(o->text, 1, o->text_len, stdout);
            fflush(stdout);
            n_prompt = o->n_prompt_tokens;
            n_out = o->n_output_tokens;
            cllm_output_free(o);
            o = NULL;
            if (fin) goto done;
        }
        if (st != CLLM_OK) goto out_err;
    }
done:
    t_end = clock_now_s();
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "cllm generate: prompt %d tokens in %.3f s (%.2f tok/s), generation %d tokens in %.3f s (%.2f tok/s)\n",
            n_prompt, t_first - t0, t_first > t0 ? n_prompt / (t_first - t0) : 0.0, n_out, t_end - t_first,
            n_out > 1 && t_end > t_first ? (n_out - 1) / (t_end - t_first) : 0.0);
    rc = 0;
    goto out;

out_err:
    fprintf(stderr, "cllm generate: %s\n", cllm_error_message());
out:
    cllm_engine_destroy(e);
    free(a.prompt_owned);
    return rc;
}

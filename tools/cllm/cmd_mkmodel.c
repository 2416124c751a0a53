/* cmd_mkmodel.c: `cllm mkmodel`: writes a llama GGUF, or a Hugging Face checkpoint directory,
 * with random weights (model/mkmodel.h).
 *
 * Parses flags into mkmodel_params_t (a named --shape first, then explicit flags override it),
 * writes the model and reports what was written on stderr. Bad flags get one line on stderr
 * and exit code 2; a failed write exits 1. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model/mkmodel.h"

#define MAX_TEMPLATE_BYTES (1u << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cllm mkmodel (--shape NAME | --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N)\n"
            "                    -o FILE|DIR [options]\n"
            "Writes a llama-architecture GGUF (or, with --format hf, a Hugging Face checkpoint\n"
            "directory) with random weights N(0, 0.02) (norms 1.0).\n\n"
            "  --shape NAME          llama3-1b (Llama 3.2 1B), demo (n_embd 512, 4 layers) or tiny\n"
            "                        (n_embd 64, 2 layers); the flags below override its fields\n"
            "  --n-embd N            embedding width\n"
            "  --n-layer N           number of blocks\n"
            "  --n-head N            query heads\n"
            "  --n-head-kv N         key/value heads (divides --n-head)\n"
            "  --n-ff N              feed-forward width\n"
            "  --head-dim N          head size (default n_embd / n_head)\n"
            "  --rope-theta F        RoPE base (default 10000, or the shape's)\n"
            "  --ctx N               context_length to write (default 2048, or the shape's)\n"
            "  --tied | --untied     share token_embd as the output matrix (default tied)\n"
            "  --vocab-size N        pad the built-in vocabulary with reserved tokens up to N\n"
            "  -o, --output PATH     where to write: a file (gguf) or a directory, created (hf)\n"
            "  --format F            gguf (default) or hf: config.json, generation_config.json,\n"
            "                        model.safetensors and tokenizer files; the same seed gives\n"
            "                        the same model in both formats\n"
            "  --shards N            hf: N safetensors files + model.safetensors.index.json\n"
            "  --gen-defaults S      hf: sampling defaults for generation_config.json, e.g.\n"
            "                        \"temperature=0.6,top_p=0.9\" (temperature, top_p, top_k,\n"
            "                        min_p, repetition_penalty; default: bos/eos ids only)\n"
            "  --dtype T             f32 (default), f16, bf16, q8_0 or q4_0 (gguf only) for the\n"
            "                        2-D weights\n"
            "  --vocab-from GGUF     copy every tokenizer.* key (vocabulary, chat template) from GGUF\n"
            "                        (default: a built-in byte-level BPE vocabulary, Llama 3 specials)\n"
            "  --chat-template T     a built-in template (%s) or a file with\n"
            "                        the Jinja text; overrides the one of --vocab-from\n"
            "  --name NAME           general.name\n"
            "  --seed S              PRNG seed (default 1): same seed, same file, byte for byte\n"
            "  -h, --help            this text\n",
            mkmodel_chat_template_names());
}

/* Prints one line for a bad command line and returns exit code 2. */
static int bad_flag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_flag(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cllm mkmodel: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try: cllm mkmodel --help)\n");
    return 2;
}

static int parse_i64(const char *flag, const char *s, int64_t *out)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1) return bad_flag("%s needs a positive integer, not '%s'", flag, s);
    *out = v;
    return 0;
}

static int parse_f32(const char *flag, const char *s, float *out)
{
    char *end;
    float v;
    errno = 0;
    v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || !(v > 0.0f))
        return bad_flag("%s needs a positive number, not '%s'", flag, s);
    *out = v;
    return 0;
}

static int parse_u64(const char *flag, const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-') return bad_flag("%s needs a non-negative integer, not '%s'", flag, s);
    *out = v;
    return 0;
}

/* The flags that take a value (all but --tied, --untied and --help). */
static int takes_value(const char *a)
{
    static const char *const flags[] = {
        "--shape", "-o", "--output", "--n-embd", "--n-layer", "--n-head", "--n-head-kv", "--n-ff", "--head-dim",
        "--ctx", "--vocab-size", "--rope-theta", "--seed", "--dtype", "--vocab-from", "--chat-template", "--name",
        "--format", "--shards", "--gen-defaults",
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (!strcmp(a, flags[i])) return 1;
    return 0;
}

/* Reads a chat template file (at most MAX_TEMPLATE_BYTES); NULL if it cannot. */
static char *read_template(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    if (!f) return NULL;
    buf = malloc(MAX_TEMPLATE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, MAX_TEMPLATE_BYTES + 1, f);
    if (ferror(f) || n > MAX_TEMPLATE_BYTES || n == 0) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

int cmd_mkmodel(int argc, char **argv)
{
    mkmodel_params_t p;
    mkmodel_stats_t stats;
    const char *out = NULL, *shape = NULL, *tmpl = NULL;
    char *tmpl_file = NULL;
    int have[5] = { 0 }; /* n_embd, n_layer, n_head, n_head_kv, n_ff given */
    int i, rc = 0;
    status_t st;

    mkmodel_params_default(&p);
    /* the shape first, so that explicit flags override it wherever they stand */
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
    }
    if (shape && mkmodel_params_shape(&p, shape) != CLLM_OK)
        return bad_flag("unknown shape '%s' (known: %s)", shape, mkmodel_shape_names());
    if (!shape) {
        p.name = "cllm-random";
        p.head_dim = 0;
    }
    for (i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--tied") || !strcmp(a, "--untied")) {
            p.tied = !strcmp(a, "--tied");
            continue;
        }
        if (!takes_value(a)) return bad_flag(a[0] == '-' ? "unknown flag '%s'" : "unexpected argument '%s'", a);
        if (i + 1 >= argc) return bad_flag("%s needs a value", a);
        v = argv[++i];
        if (!strcmp(a, "--shape")) { /* applied above */
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else if (!strcmp(a, "--n-embd")) {
            rc = parse_i64(a, v, &p.n_embd), have[0] = 1;
        } else if (!strcmp(a, "--n-layer")) {
            rc = parse_i64(a, v, &p.n_layer), have[1] = 1;
        } else if (!strcmp(a, "--n-head")) {
            rc = parse_i64(a, v, &p.n_head), have[2] = 1;
        } else if (!strcmp(a, "--n-head-kv")) {
            rc = parse_i64(a, v, &p.n_head_kv), have[3] = 1;
        } else if (!strcmp(a, "--n-ff")) {
            rc = parse_i64(a, v, &p.n_ff), have[4] = 1;
        } else if (!strcmp(a, "--head-dim")) {
            rc = parse_i64(a, v, &p.head_dim);
        } else if (!strcmp(a, "--ctx")) {
            rc = parse_i64(a, v, &p.n_ctx);
        } else if (!strcmp(a, "--vocab-size")) {
            rc = parse_i64(a, v, &p.vocab_size);
        } else if (!strcmp(a, "--rope-theta")) {
            rc = parse_f32(a, v, &p.rope_theta);
        } else if (!strcmp(a, "--seed")) {
            rc = parse_u64(a, v, &p.seed);
        } else if (!strcmp(a, "--dtype")) {
            if (dtype_from_name(v, &p.dtype) != 0)
                return bad_flag("unknown dtype '%s' (use f32, f16, bf16, q8_0 or q4_0)", v);
        } else if (!strcmp(a, "--vocab-from")) {
            p.vocab_from = v;
        } else if (!strcmp(a, "--chat-template")) {
            tmpl = v;
        } else if (!strcmp(a, "--name")) {
            p.name = v;
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "gguf") && strcmp(v, "hf")) return bad_flag("--format is gguf or hf, not '%s'", v);
            p.format = !strcmp(v, "hf") ? MKMODEL_FORMAT_HF : MKMODEL_FORMAT_GGUF;
        } else if (!strcmp(a, "--shards")) {
            int64_t n = 1;
            rc = parse_i64(a, v, &n);
            p.n_shards = n > 99999 ? 100000 : (int)n; /* out of range: refused by mkmodel_params_check */
        } else if (!strcmp(a, "--gen-defaults")) {
            p.gen_defaults = v;
        }
    }
    if (rc) return rc;
    if (!shape && !(have[0] && have[1] && have[2] && have[3] && have[4]))
        return bad_flag("give --shape NAME, or all of --n-embd --n-layer --n-head --n-head-kv --n-ff");
    if (!out) return bad_flag(p.format == MKMODEL_FORMAT_HF ? "missing -o DIR" : "missing -o FILE");
    if (p.format != MKMODEL_FORMAT_HF && (p.n_shards || p.gen_defaults))
        return bad_flag("--shards and --gen-defaults need --format hf");
    if (tmpl) {
        p.chat_template = mkmodel_chat_template(tmpl);
        if (!p.chat_template) {
            p.chat_template = tmpl_file = read_template(tmpl);
            if (!tmpl_file)
                return bad_flag("--chat-template '%s' is neither a built-in template (%s) nor a readable non-empty file",
                                tmpl, mkmodel_chat_template_names());
        }
    }
    if (mkmodel_params_check(&p) != CLLM_OK) {
        fprintf(stderr, "cllm %s\n", cllm_error_message());
        free(tmpl_file);
        return 2;
    }
    st = mkmodel_write(&p, out, &stats);
    free(tmpl_file);
    if (st != CLLM_OK) {
        fprintf(stderr, "cllm mkmodel: %s\n", cllm_error_message());
        return 1;
    }
    fprintf(stderr,
            "cllm mkmodel: wrote %s%s: llama, n_embd %lld, %lld layers, %lld/%lld heads, n_ff %lld, vocab %lld, %s, "
            "%s; %.2fM params in %lld tensors, %llu bytes (%.1f MiB)\n",
            out, p.format == MKMODEL_FORMAT_HF ? " (Hugging Face checkpoint)" : "", (long long)p.n_embd,
            (long long)p.n_layer, (long long)p.n_head, (long long)p.n_head_kv, (long long)p.n_ff,
            (long long)stats.n_vocab, dtype_name((uint32_t)p.dtype), p.tied ? "tied" : "untied",
            (double)stats.n_params / 1e6, (long long)stats.n_tensors, (unsigned long long)stats.n_bytes,
            (double)stats.n_bytes / (1024.0 * 1024.0));
    return 0;
}

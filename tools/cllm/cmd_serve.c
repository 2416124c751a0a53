/* cmd_serve.c: `cllm serve`: the OpenAI-compatible server (src/server/server.h), with vLLM's
 * command line (`cllm serve MODEL` or `--model MODEL`, the same flag names).
 *
 * Parses flags (an unknown one gets the closest known name as a hint), prints the
 * configuration, loads the model with a progress line, starts the engine thread and the HTTP
 * server, prints one `cllm: ready: serving MODEL on http://HOST:PORT` line, then waits for
 * SIGINT/SIGTERM and shuts down gracefully (exit 0). SIGINT/SIGTERM are blocked in every
 * thread and taken with sigwait here, so no signal handler runs inside library code.
 *
 * API keys (--api-key, repeatable; --api-key-file; else env CLLM_API_KEY or VLLM_API_KEY) are
 * read and checked before the model loads, so a bad key file fails at once. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cllm/engine.h"
#include "commands.h"
#include "core/log.h"
#include "engine/engine.h"
#include "server/auth.h"
#include "server/chat_template_builtin.h"
#include "server/server.h"
#include "core/clock.h"
#include "core/file.h"

#define MAX_TEMPLATE_BYTES (4u << 20)

typedef enum {
    OPT_MODEL, OPT_HOST, OPT_PORT, OPT_SERVED_NAME, OPT_MAX_MODEL_LEN, OPT_MAX_NUM_SEQS, OPT_MAX_BATCHED,
    OPT_BLOCK_SIZE, OPT_NUM_BLOCKS, OPT_KV_MEMORY, OPT_PREFIX_ON, OPT_PREFIX_OFF, OPT_KV_DTYPE, OPT_API_KEY,
    OPT_CHAT_TEMPLATE, OPT_THREADS, OPT_NO_CACHE_AWARE, OPT_MAX_REQUEST_BYTES, OPT_SHUTDOWN_GRACE,
    OPT_CHECK_INVARIANTS, OPT_API_KEY_FILE, OPT_MAX_CONNECTIONS, OPT_MAX_CONNECTIONS_PER_IP, OPT_TIMEOUT,
    OPT_GENERATION_CONFIG, OPT_HELP
} opt_id_t;

typedef struct {
    const char *name;
    const char *alias; /* or NULL */
    bool has_value;
    opt_id_t id;
} opt_t;

static const opt_t opts[] = {
    { "--model", "-m", true, OPT_MODEL },
    { "--host", NULL, true, OPT_HOST },
    { "--port", NULL, true, OPT_PORT },
    { "--served-model-name", NULL, true, OPT_SERVED_NAME },
    { "--max-model-len", NULL, true, OPT_MAX_MODEL_LEN },
    { "--max-num-seqs", NULL, true, OPT_MAX_NUM_SEQS },
    { "--max-num-batched-tokens", NULL, true, OPT_MAX_BATCHED },
    { "--block-size", NULL, true, OPT_BLOCK_SIZE },
    { "--num-blocks", "--num-gpu-blocks-override", true, OPT_NUM_BLOCKS },
    { "--kv-cache-memory", NULL, true, OPT_KV_MEMORY },
    { "--enable-prefix-caching", NULL, false, OPT_PREFIX_ON },
    { "--no-enable-prefix-caching", NULL, false, OPT_PREFIX_OFF },
    { "--kv-cache-dtype", NULL, true, OPT_KV_DTYPE },
    { "--api-key", NULL, true, OPT_API_KEY },
    { "--api-key-file", NULL, true, OPT_API_KEY_FILE },
    { "--max-connections", NULL, true, OPT_MAX_CONNECTIONS },
    { "--max-connections-per-ip", NULL, true, OPT_MAX_CONNECTIONS_PER_IP },
    { "--timeout", NULL, true, OPT_TIMEOUT },
    { "--generation-config", NULL, true, OPT_GENERATION_CONFIG },
    { "--chat-template", NULL, true, OPT_CHAT_TEMPLATE },
    { "--threads", "-t", true, OPT_THREADS },
    { "--no-cache-aware-scheduling", NULL, false, OPT_NO_CACHE_AWARE },
    { "--max-request-bytes", NULL, true, OPT_MAX_REQUEST_BYTES },
    { "--shutdown-grace", NULL, true, OPT_SHUTDOWN_GRACE },
    { "--check-invariants", NULL, false, OPT_CHECK_INVARIANTS },
    { "--help", "-h", false, OPT_HELP },
};

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: cllm serve MODEL [options]   (or: cllm serve --model MODEL [options])\n"
            "Serves MODEL (a GGUF file or a Hugging Face checkpoint directory) with an\n"
            "OpenAI-compatible API (vLLM's): /v1/chat/completions,\n"
            "/v1/completions, /v1/models, /health, /metrics, /tokenize, /detokenize, /version.\n\n"
            "  -m, --model PATH               GGUF file or Hugging Face checkpoint directory\n"
            "      --host HOST                address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
            "      --port N                   port (default 8000; 0: any free port)\n"
            "      --served-model-name NAME   the model name clients use (default: the --model argument)\n"
            "      --max-model-len N          prompt + output tokens per request (default: the model's\n"
            "                                 context length; 16k = 16000, 16K = 16384)\n"
            "      --max-num-seqs N           requests running at once (default 16)\n"
            "      --max-num-batched-tokens N tokens per engine step (default 2048)\n"
            "      --block-size N             tokens per KV block, power of two 8..256 (default 32)\n"
            "      --num-blocks N             KV blocks (alias --num-gpu-blocks-override; default: as many\n"
            "                                 as --kv-cache-memory holds)\n"
            "      --kv-cache-memory BYTES    KV cache size when --num-blocks is not given, e.g. 4G, 512M\n"
            "                                 (default 4G)\n"
            "      --enable-prefix-caching    reuse the KV of shared prompt prefixes (default)\n"
            "      --no-enable-prefix-caching\n"
            "      --kv-cache-dtype T         auto|f32|f16|bf16 (default auto: f32 for f32 models, else f16)\n"
            "      --api-key KEY              require Authorization: Bearer KEY on every endpoint but\n"
            "                                 /health; repeat for several keys, each its own tenant\n"
            "                                 (default: env CLLM_API_KEY, else VLLM_API_KEY, else none)\n"
            "      --api-key-file FILE        more keys, one per line: KEY or KEY TENANT (keys of one\n"
            "                                 tenant share its prefix cache; # comments)\n"
            "      --chat-template NAME|FILE  a built-in chat template (see below) or a Jinja file;\n"
            "                                 default: the model's tokenizer.chat_template\n"
            "  -t, --threads N                compute threads (default: all cores)\n"
            "      --no-cache-aware-scheduling  plain FCFS admission instead of longest-cached-prefix first\n"
            "      --max-request-bytes N      largest request body (default 16M); larger gets 413\n"
            "      --max-connections N        connections served at once (default 1024); the next 64\n"
            "                                 get 503, more are refused\n"
            "      --max-connections-per-ip N connections from one address at most (default: no limit)\n"
            "      --timeout SECONDS          each whole request (headers and body) must arrive within it,\n"
            "                                 and idle connections close after it (default 60; 0: never)\n"
            "      --generation-config auto|vllm  auto (default): the model's generation_config.json\n"
            "                                 sampling defaults fill fields a request omits; vllm: ignore\n"
            "      --shutdown-grace SECONDS   on SIGINT/SIGTERM, time given to running requests (default 5)\n"
            "      --check-invariants         verify KV-cache and scheduler invariants after every step (slow)\n"
            "  -h, --help                     this text\n"
            "\nbuilt-in chat templates:");
    for (size_t i = 0; i < chat_template_builtin_count(); i++) fprintf(f, " %s", chat_template_builtin_name(i));
    fprintf(f, "\n");
}

/* Edit distance of two short strings (for "did you mean"). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]), del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

static const char *closest_flag(const char *f)
{
    const char *best = NULL;
    size_t best_d = 99;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        size_t d = edit_distance(f, opts[i].name);
        if (d < best_d) {
            best_d = d;
            best = opts[i].name;
        }
        if (opts[i].alias && (d = edit_distance(f, opts[i].alias)) < best_d) {
            best_d = d;
            best = opts[i].alias;
        }
        /* a flag that is a prefix of a known one ("--max-num") is a strong hint */
        if (strlen(f) > 4 && !strncmp(opts[i].name, f, strlen(f)) && best_d > 1) {
            best_d = 1;
            best = opts[i].name;
        }
    }
    return best_d <= strlen(f) / 2 + 1 ? best : NULL;
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cllm serve: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see cllm serve --help)\n");
    return 2;
}

/* An integer with an optional size suffix: k/m/g are powers of 1000 when decimal_lower, else
 * (and K/M/G/T always) powers of 1024; "i", "iB" or "B" may follow ("4GiB", "512MB"). */
static int parse_size(const char *flag, const char *s, bool decimal_lower, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    double v;
    uint64_t mul = 1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0) return bad("%s expects a number, got '%s'", flag, s);
    if (*end) {
        char c = *end++;
        bool lower = c >= 'a' && c <= 'z';
        int p;
        switch (c) {
        case 'k': case 'K': p = 1; break;
        case 'm': case 'M': p = 2; break;
        case 'g': case 'G': p = 3; break;
        case 't': case 'T': p = 4; break;
        default: return bad("%s: unknown size suffix in '%s' (use K, M, G or T)", flag, s);
        }
        while (p-- > 0) mul *= (decimal_lower && lower) ? 1000u : 1024u;
        if (!strcmp(end, "i") || !strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "b")) end += strlen(end);
        if (*end) return bad("%s: cannot read '%s' as a size", flag, s);
    }
    v *= (double)mul;
    if (v != (double)(uint64_t)v) return bad("%s expects a whole number, got '%s'", flag, s);
    if (v < (double)lo || v > (double)hi)
        return bad("%s must be in [%llu, %llu], got '%s'", flag, (unsigned long long)lo, (unsigned long long)hi, s);
    *out = (uint64_t)v;
    return 0;
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return bad("%s expects an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

typedef struct {
    cllm_engine_config_t ec;
    server_config_t sc;
    const char **api_keys; /* (n_api_keys) from --api-key, pointing into argv */
    size_t n_api_keys;
    const char *api_key_file;
    auth_t *auth; /* owned; outlives the server */
    const char *chat_template_arg;
    char *chat_template_owned; /* read from a file */
    double grace_s;
} serve_args_t;

/* Builds a->sc.auth from the keys given; 0, or 2 after printing why not. */
static int serve_auth(serve_args_t *a)
{
    auth_t *auth = NULL;
    status_t st = auth_create(&auth);
    for (size_t i = 0; st == CLLM_OK && i < a->n_api_keys; i++) st = auth_add_key(auth, a->api_keys[i], NULL);
    if (st == CLLM_OK && a->api_key_file) st = auth_load_key_file(auth, a->api_key_file);
    if (st != CLLM_OK) {
        auth_destroy(auth);
        fprintf(stderr, "cllm serve: API keys: %s\n", cllm_error_message());
        return 2;
    }
    a->auth = auth;
    a->sc.auth = auth;
    return 0;
}

/* Returns 0 to run, 1 for --help, 2 for a bad command line. */
static int serve_parse(int argc, char **argv, serve_args_t *a)
{
    const char *model = NULL;
    cllm_engine_config_default(&a->ec);
    server_config_default(&a->sc);
    a->grace_s = 5.0;
    a->api_keys = calloc((size_t)argc + 1, sizeof(*a->api_keys));
    if (!a->api_keys) return bad("out of memory");

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        char name[64];
        const opt_t *o = NULL;
        long v;
        uint64_t u;

        if (arg[0] != '-' || !arg[1]) {
            if (model) return bad("unexpected argument '%s' (the model is already '%s')", arg, model);
            model = arg;
            continue;
        }
        /* --flag=value */
        eq = strchr(arg, '=');
        snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
            if (!strcmp(name, opts[k].name) || (opts[k].alias && !strcmp(name, opts[k].alias))) o = &opts[k];
        if (!o) {
            const char *hint = closest_flag(name);
            if (hint) return bad("unknown option '%s'; did you mean '%s'?", name, hint);
            return bad("unknown option '%s'", name);
        }
        if (o->has_value) {
            if (eq) val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else return bad("%s needs a value", name);
        } else if (eq) {
            return bad("%s takes no value", name);
        }
        switch (o->id) {
        case OPT_MODEL: model = val; break;
        case OPT_HOST: a->sc.host = val; break;
        case OPT_PORT:
            if (parse_int(name, val, 0, 65535, &v)) return 2;
            a->sc.port = (int)v;
            break;
        case OPT_SERVED_NAME:
            if (!*val) return bad("%s must not be empty", name);
            a->sc.served_model_name = val;
            break;
        case OPT_MAX_MODEL_LEN:
            if (parse_size(name, val, true, 1, 1u << 24, &u)) return 2;
            a->ec.max_model_len = (int32_t)u;
            break;
        case OPT_MAX_NUM_SEQS:
            if (parse_int(name, val, 1, 4096, &v)) return 2;
            a->ec.max_num_seqs = (int32_t)v;
            break;
        case OPT_MAX_BATCHED:
            if (parse_size(name, val, true, 1, 1u << 24, &u)) return 2;
            a->ec.max_num_batched_tokens = (int32_t)u;
            break;
        case OPT_BLOCK_SIZE:
            if (parse_int(name, val, 8, 256, &v)) return 2;
            if (v & (v - 1)) return bad("%s must be a power of two from 8 to 256, got %ld", name, v);
            a->ec.block_size = (int32_t)v;
            break;
        case OPT_NUM_BLOCKS:
            if (parse_int(name, val, 1, INT32_MAX / 2, &v)) return 2;
            a->ec.num_blocks = (int32_t)v;
            break;
        case OPT_KV_MEMORY:
            if (parse_size(name, val, false, 1, UINT64_MAX / 2, &u)) return 2;
            a->ec.kv_cache_memory = u;
            break;
        case OPT_PREFIX_ON: a->ec.enable_prefix_caching = true; break;
        case OPT_PREFIX_OFF: a->ec.enable_prefix_caching = false; break;
        case OPT_KV_DTYPE:
            if (strcmp(val, "auto") && strcmp(val, "f32") && strcmp(val, "f16") && strcmp(val, "bf16"))
                return bad("%s must be auto, f32, f16 or bf16, got '%s'", name, val);
            a->ec.kv_cache_dtype = val;
            break;
        case OPT_API_KEY: a->api_keys[a->n_api_keys++] = val; break;
        case OPT_API_KEY_FILE: a->api_key_file = val; break;
        case OPT_MAX_CONNECTIONS:
            if (parse_int(name, val, 1, 65536, &v)) return 2;
            a->sc.max_connections = (int)v;
            break;
        case OPT_MAX_CONNECTIONS_PER_IP:
            if (parse_int(name, val, 0, 65536, &v)) return 2;
            a->sc.max_connections_per_ip = (int)v;
            break;
        case OPT_TIMEOUT:
            if (parse_int(name, val, 0, 86400, &v)) return 2;
            a->sc.timeout_s = (unsigned)v;
            break;
        case OPT_GENERATION_CONFIG:
            if (!strcmp(val, "auto")) a->sc.use_model_gen_defaults = true;
            else if (!strcmp(val, "vllm")) a->sc.use_model_gen_defaults = false;
            else return bad("%s must be auto (the model's sampling defaults) or vllm (none), got '%s'", name, val);
            break;
        case OPT_CHAT_TEMPLATE: a->chat_template_arg = val; break;
        case OPT_THREADS:
            if (parse_int(name, val, 1, 1024, &v)) return 2;
            a->ec.n_threads = (int32_t)v;
            break;
        case OPT_NO_CACHE_AWARE: a->ec.cache_aware_scheduling = false; break;
        case OPT_MAX_REQUEST_BYTES:
            if (parse_size(name, val, false, 1024, 1ull << 32, &u)) return 2;
            a->sc.max_request_bytes = (size_t)u;
            break;
        case OPT_SHUTDOWN_GRACE: {
            char *end;
            double g = strtod(val, &end);
            if (end == val || *end || !(g >= 0 && g <= 3600))
                return bad("%s expects seconds in [0, 3600], got '%s'", name, val);
            a->grace_s = g;
            break;
        }
        case OPT_CHECK_INVARIANTS: a->ec.check_invariants = true; break;
        case OPT_HELP: serve_usage(stdout); return 1;
        }
    }
    if (!model) return bad("a model is required: cllm serve MODEL.gguf");
    if (a->n_api_keys == 0 && !a->api_key_file) {
        /* as vLLM: the environment only when the command line names no key */
        const char *env = getenv("CLLM_API_KEY");
        if (!env || !*env) env = getenv("VLLM_API_KEY");
        if (env && *env) a->api_keys[a->n_api_keys++] = env;
    }
    if (serve_auth(a)) return 2;
    a->ec.model_path = model;
    a->sc.model_path = model;
    if (!a->sc.served_model_name) a->sc.served_model_name = model;
    if (a->chat_template_arg) {
        const char *builtin = chat_template_builtin(a->chat_template_arg);
        if (builtin) {
            a->sc.chat_template = builtin;
        } else {
            a->chat_template_owned = file_read_all(a->chat_template_arg, MAX_TEMPLATE_BYTES, NULL);
            if (!a->chat_template_owned) {
                struct stat stt;
                if (stat(a->chat_template_arg, &stt) == 0)
                    return bad("--chat-template: cannot read '%s' (or it is over %u bytes)", a->chat_template_arg,
                               MAX_TEMPLATE_BYTES);
                return bad("--chat-template: '%s' is neither a built-in template nor a readable file",
                           a->chat_template_arg);
            }
            a->sc.chat_template = a->chat_template_owned;
        }
    }
    return 0;
}

/* Whether host names only this machine (a loopback address or "localhost"). */
static bool is_loopback(const char *host)
{
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

/* ---- loading progress ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
} progress_t;

static void *progress_main(void *arg)
{
    progress_t *p = arg;
    struct timespec t0, dl;
    int n = 0;
    clock_gettime(CLOCK_REALTIME, &t0);
    pthread_mutex_lock(&p->mu);
    while (!p->done) {
        dl = t0;
        dl.tv_sec += ++n;
        while (!p->done && pthread_cond_timedwait(&p->cond, &p->mu, &dl) == 0) {
        }
        if (!p->done) fprintf(stderr, "cllm: loading... %d s\n", n);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int cmd_serve(int argc, char **argv)
{
    serve_args_t a;
    cllm_engine_t *engine = NULL;
    server_t *srv = NULL;
    sigset_t sigs;
    progress_t prog;
    pthread_t prog_thread;
    bool prog_started;
    struct stat st_model;
    status_t st;
    double t0;
    int rc = 1, sig = 0;

    memset(&a, 0, sizeof(a));
    rc = serve_parse(argc, argv, &a);
    if (rc) {
        free(a.chat_template_owned);
        free(a.api_keys);
        auth_destroy(a.auth);
        return rc == 1 ? 0 : 2;
    }
    rc = 1;

    /* every thread created from here on inherits the blocked set; sigwait takes them below */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    fprintf(stderr, "cllm: serve %s as '%s' on %s:%d\n", a.ec.model_path, a.sc.served_model_name, a.sc.host,
            a.sc.port);
    fprintf(stderr, "cllm: config: max_model_len ");
    if (a.ec.max_model_len) fprintf(stderr, "%d", a.ec.max_model_len);
    else fprintf(stderr, "auto (the model's context)");
    fprintf(stderr, ", max_num_seqs %d, max_num_batched_tokens %d, block_size %d, ", a.ec.max_num_seqs,
            a.ec.max_num_batched_tokens, a.ec.block_size);
    if (a.ec.num_blocks) fprintf(stderr, "num_blocks %d, ", a.ec.num_blocks);
    else fprintf(stderr, "kv_cache_memory %.1f MiB, ", (double)a.ec.kv_cache_memory / 1048576.0);
    fprintf(stderr, "kv_cache_dtype %s, prefix caching %s, cache-aware scheduling %s, threads ", a.ec.kv_cache_dtype,
            a.ec.enable_prefix_caching ? "on" : "off", a.ec.cache_aware_scheduling ? "on" : "off");
    if (a.ec.n_threads) fprintf(stderr, "%d", a.ec.n_threads);
    else fprintf(stderr, "all cores");
    fprintf(stderr, ", api keys ");
    if (auth_key_count(a.auth)) fprintf(stderr, "%zu (%zu tenants)", auth_key_count(a.auth), auth_tenant_count(a.auth));
    else fprintf(stderr, "none");
    fprintf(stderr, ", chat template %s, generation config %s, max request %zu bytes, max connections %d",
            a.chat_template_arg ? a.chat_template_arg : "the model's", a.sc.use_model_gen_defaults ? "auto" : "vllm",
            a.sc.max_request_bytes, a.sc.max_connections);
    if (a.sc.max_connections_per_ip) fprintf(stderr, " (%d per address)", a.sc.max_connections_per_ip);
    fprintf(stderr, ", timeout %u s, shutdown grace %.1f s\n", a.sc.timeout_s, a.grace_s);
    if (!auth_key_count(a.auth) && !is_loopback(a.sc.host))
        fprintf(stderr, "cllm: warning: listening on %s without an API key: anyone who can reach it can use the "
                "server (--api-key / --api-key-file)\n", a.sc.host);
    if (stat(a.ec.model_path, &st_model) != 0) {
        fprintf(stderr, "cllm serve: cannot open model '%s': %s\n", a.ec.model_path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st_model.st_mode))
        fprintf(stderr, "cllm: loading %s (a checkpoint directory)...\n", a.ec.model_path);
    else
        fprintf(stderr, "cllm: loading %s (%.1f MiB)...\n", a.ec.model_path, (double)st_model.st_size / 1048576.0);

    memset(&prog, 0, sizeof(prog));
    pthread_mutex_init(&prog.mu, NULL);
    pthread_cond_init(&prog.cond, NULL);
    prog_started = pthread_create(&prog_thread, NULL, progress_main, &prog) == 0;
    t0 = clock_now_s();
    st = cllm_engine_create(&a.ec, &engine);
    pthread_mutex_lock(&prog.mu);
    prog.done = true;
    pthread_cond_signal(&prog.cond);
    pthread_mutex_unlock(&prog.mu);
    if (prog_started) pthread_join(prog_thread, NULL);
    pthread_cond_destroy(&prog.cond);
    pthread_mutex_destroy(&prog.mu);
    if (st != CLLM_OK) {
        fprintf(stderr, "cllm serve: %s\n", cllm_error_message());
        goto out;
    }
    {
        const cllm_engine_config_t *ec = engine_config(engine);
        fprintf(stderr, "cllm: loaded in %.2f s: max_model_len %d, KV cache %d blocks x %d tokens (%s, %.1f MiB)\n",
                clock_now_s() - t0, ec->max_model_len, ec->num_blocks, ec->block_size, engine_kv_dtype_name(engine),
                (double)engine_kv_bytes(engine) / 1048576.0);
    }
    if ((st = server_create(&a.sc, engine, &srv)) != CLLM_OK || (st = cllm_engine_start(engine)) != CLLM_OK ||
        (st = server_start(srv)) != CLLM_OK) {
        fprintf(stderr, "cllm serve: %s\n", cllm_error_message());
        goto out;
    }
    fprintf(stderr, "cllm: ready: serving %s on http://%s%s%s:%d\n", a.sc.served_model_name,
            strchr(a.sc.host, ':') ? "[" : "", a.sc.host, strchr(a.sc.host, ':') ? "]" : "", server_port(srv));

    while (sigwait(&sigs, &sig) != 0) {
    }
    fprintf(stderr, "cllm: %s: shutting down (%d request(s) in flight, grace %.1f s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", server_in_flight(srv), a.grace_s);
    server_shutdown(srv, a.grace_s);
    rc = 0;

out:
    server_destroy(srv);
    if (engine) {
        cllm_engine_shutdown(engine);
        cllm_engine_destroy(engine);
    }
    free(a.chat_template_owned);
    free(a.api_keys);
    auth_destroy(a.auth);
    if (rc == 0) fprintf(stderr, "cllm: stopped\n");
    return rc;
}

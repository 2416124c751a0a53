/* test_hf_model.c: Hugging Face checkpoint directories, written by mkmodel and loaded by
 * model_load, against the same random weights as GGUF.
 *
 *   - logits: the same seed/shape/dtype as GGUF and as a checkpoint give bitwise identical logits
 *     (memcmp of every row) for several prompts, one of them longer than a KV block: f32 with the
 *     Llama 3 vocabulary and with the built-in one, bf16 untied, f16 with an explicit head_dim,
 *     GQA 4:1 and Llama 3 RoPE scaling, a checkpoint in 3 shards, and the path of config.json
 *     instead of the directory;
 *   - qwen2: the checkpoint relabelled Qwen2ForCausalLM with zero QKV biases (no Q/K permutation,
 *     NeoX RoPE) gives the Llama logits within float error; non-zero biases change them;
 *   - refusals: a missing field, a bad architecture, a mis-shaped tensor, a missing tensor, an
 *     unsupported dtype, RoPE scaling and JSON each give one error naming the field/tensor;
 *   - generation_config.json: sampling defaults as vLLM reads them;
 *   - the safetensors writer (padding, shards, index) and the Q/K row permutation. */
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "kv/kv_cache.h"
#include "model/forward.h"
#include "model/hf_model.h"
#include "model/mkmodel.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "check.h"

#define VOCAB_BPE CLLM_SHARED_DIR "/reference/tokenizer/ggml-vocab-llama-bpe.gguf"
#define BLOCK 16
#define MAX_TOK 40

static char tmp_root[] = "/tmp/cllm-test-hf.XXXXXX";

static const char *tmp_path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", tmp_root, name);
    return b;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* ---------------------------------------------------------------- forward harness */

/* Logits of every position of tokens[0..n) (rows of n_vocab), into a malloc'd array. */
static float *run_logits(const model_t *m, const int32_t *tokens, int n)
{
    int32_t pos[MAX_TOK], seq[MAX_TOK] = { 0 }, bt[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    uint8_t want[MAX_TOK];
    const int32_t *bts[1] = { bt };
    int32_t nbs[1] = { (n + BLOCK - 1) / BLOCK };
    kv_cache_config_t kc = { m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, BLOCK, 8, DTYPE_F32 };
    kv_cache_t *kv = NULL;
    forward_t *fw = NULL;
    threadpool_t *pool = NULL;
    float *out = malloc((size_t)n * (size_t)m->hp.n_vocab * sizeof(float));
    int ok = out != NULL;
    for (int i = 0; i < n; i++) pos[i] = i, want[i] = 1;
    ok = ok && threadpool_create(2, &pool) == CLLM_OK && kv_cache_create(&kc, &kv) == CLLM_OK &&
         forward_create(m, kv, pool, &fw) == CLLM_OK;
    if (ok) {
        forward_batch_t b = { n, tokens, pos, seq, 1, bts, nbs, want };
        ok = forward_run(fw, &b, out) == CLLM_OK;
    }
    if (!ok) fprintf(stderr, "forward: %s\n", cllm_error_message());
    forward_destroy(fw);
    kv_cache_destroy(kv);
    threadpool_destroy(pool);
    if (!ok) free(out);
    return ok ? out : NULL;
}

static const int32_t prompt_a[1] = { 1 };
static const int32_t prompt_b[7] = { 5, 17, 200, 3, 99, 42, 7 };
static int32_t prompt_c[MAX_TOK]; /* > 2 blocks: filled in main */

typedef struct {
    const int32_t *tokens;
    int n;
} prompt_t;

/* Compares the logits of two models bitwise on the three prompts (tol < 0) or within tol. */
static void compare_models(const char *what, const char *path_a, const char *path_b, float tol)
{
    model_t *a = NULL, *b = NULL;
    prompt_t prompts[3] = { { prompt_a, 1 }, { prompt_b, 7 }, { prompt_c, MAX_TOK } };
    CHECK_OK(model_load(path_a, &a));
    CHECK_OK(model_load(path_b, &b));
    if (!a || !b) goto out;
    CHECK(a->hp.n_vocab == b->hp.n_vocab && a->hp.n_embd == b->hp.n_embd && a->hp.head_dim == b->hp.head_dim &&
              a->hp.tied_output == b->hp.tied_output && a->weight_type == b->weight_type,
          "%s: hyper-parameters differ", what);
    if (tol < 0) {
        /* a GGUF counts rope_freqs.weight, which a checkpoint has as config.json's rope_scaling */
        uint64_t rope = gguf_find_tensor(a->gguf, "rope_freqs.weight") ? (uint64_t)a->hp.rope_dim / 2 : 0;
        CHECK(a->n_params == b->n_params + rope, "%s: n_params %llu vs %llu", what, (unsigned long long)a->n_params,
              (unsigned long long)b->n_params);
    }
    CHECK(!memcmp(a->rope_inv_freq, b->rope_inv_freq, (size_t)(a->hp.rope_dim / 2) * sizeof(float)),
          "%s: RoPE frequencies differ", what);
    for (int p = 0; p < 3; p++) {
        float *la = run_logits(a, prompts[p].tokens, prompts[p].n), *lb = run_logits(b, prompts[p].tokens, prompts[p].n);
        size_t n = (size_t)prompts[p].n * (size_t)a->hp.n_vocab;
        CHECK(la && lb, "%s: forward pass failed", what);
        if (la && lb && tol < 0) {
            CHECK(!memcmp(la, lb, n * sizeof(float)), "%s: prompt %d (%d tokens): logits differ", what, p, prompts[p].n);
        } else if (la && lb) {
            float worst = 0.0f;
            for (size_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(la[i] - lb[i]));
            CHECK(worst <= tol, "%s: prompt %d: logits differ by %g (> %g)", what, p, (double)worst, (double)tol);
        }
        free(la);
        free(lb);
    }
out:
    model_destroy(a);
    model_destroy(b);
}

/* ---------------------------------------------------------------- making models */

static int make_pair(const mkmodel_params_t *base, const char *gguf, const char *hf, int shards)
{
    mkmodel_params_t p = *base;
    mkmodel_stats_t stats;
    int ok;
    p.format = MKMODEL_FORMAT_GGUF;
    ok = mkmodel_write(&p, tmp_path(gguf), NULL) == CLLM_OK;
    CHECK(ok, "mkmodel %s: %s", gguf, cllm_error_message());
    p.format = MKMODEL_FORMAT_HF;
    p.n_shards = shards;
    ok = ok && mkmodel_write(&p, tmp_path(hf), &stats) == CLLM_OK;
    CHECK(ok, "mkmodel %s: %s", hf, cllm_error_message());
    if (ok) CHECK(stats.n_tensors == base->n_layer * 9 + 2 + !base->tied && stats.n_bytes > 0, "%s stats", hf);
    return ok;
}

static void test_same_logits(void)
{
    mkmodel_params_t p;
    char cfg[600];

    mkmodel_params_default(&p); /* tiny, tied, f32 */
    p.vocab_from = VOCAB_BPE;
    p.seed = 7;
    p.chat_template = mkmodel_chat_template("llama3");
    if (make_pair(&p, "f32.gguf", "f32", 0)) {
        compare_models("f32 tied, Llama 3 vocabulary", tmp_path("f32.gguf"), tmp_path("f32"), -1.0f);
        snprintf(cfg, sizeof(cfg), "%s/config.json", tmp_path("f32"));
        compare_models("path of config.json", tmp_path("f32.gguf"), cfg, -1.0f);
    }

    mkmodel_params_default(&p); /* built-in vocabulary: small and fast, the base of the edits below */
    p.seed = 3;
    if (make_pair(&p, "small.gguf", "small", 0)) compare_models("f32, built-in vocabulary", tmp_path("small.gguf"),
                                                                tmp_path("small"), -1.0f);
    if (make_pair(&p, "small2.gguf", "small-3shards", 3)) {
        struct stat sb;
        CHECK(stat(tmp_path("small-3shards/model-00003-of-00003.safetensors"), &sb) == 0 &&
                  stat(tmp_path("small-3shards/model.safetensors.index.json"), &sb) == 0,
              "3 shards and an index");
        compare_models("3 shards", tmp_path("small.gguf"), tmp_path("small-3shards"), -1.0f);
    }

    mkmodel_params_default(&p); /* built-in vocabulary */
    p.dtype = DTYPE_BF16;
    p.tied = false;
    p.seed = 11;
    if (make_pair(&p, "bf16.gguf", "bf16", 1))
        compare_models("bf16 untied, built-in vocabulary", tmp_path("bf16.gguf"), tmp_path("bf16"), -1.0f);

    mkmodel_params_default(&p);
    p.dtype = DTYPE_F16;
    p.n_head = 4;
    p.n_head_kv = 1;
    p.head_dim = 32; /* q_dim 128 != n_embd 64 */
    p.rope_theta = 500000.0f;
    p.rope_llama3 = true;
    p.rope_factor = 32.0f;
    p.rope_low_freq_factor = 1.0f;
    p.rope_high_freq_factor = 4.0f;
    p.rope_orig_ctx = 64; /* short, so the blend region covers some of the 16 frequencies */
    if (make_pair(&p, "f16.gguf", "f16", 1))
        compare_models("f16, head_dim 32, GQA 4:1, llama3 RoPE", tmp_path("f16.gguf"), tmp_path("f16"), -1.0f);
}

/* ---------------------------------------------------------------- editing checkpoints */

/* Links every file of src but model*.safetensors* and the JSON configs into dst (created). */
static void link_dir(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    struct dirent *e;
    char a[1024], b[1024];
    mkdir(dst, 0777);
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strncmp(e->d_name, "model", 5) || !strcmp(e->d_name, "config.json") ||
            !strcmp(e->d_name, "generation_config.json"))
            continue;
        snprintf(a, sizeof(a), "%s/%s", src, e->d_name);
        snprintf(b, sizeof(b), "%s/%s", dst, e->d_name);
        CHECK(symlink(a, b) == 0, "link %s", a);
    }
    if (d) closedir(d);
}

/* Writes src's config.json with one change into dst: key set to the JSON text val (NULL: the key
 * removed). raw: the whole file instead. */
static void write_config(const char *src, const char *dst, const char *key, const char *val, const char *raw)
{
    char path[1024];
    json_t *cfg;
    snprintf(path, sizeof(path), "%s/config.json", dst);
    if (raw) {
        FILE *f = fopen(path, "w");
        if (f) fputs(raw, f), fclose(f);
        return;
    }
    snprintf(path, sizeof(path), "%s/config.json", src);
    cfg = json_load_file(path, 0, NULL);
    CHECK(cfg != NULL, "read %s", path);
    if (!cfg) return;
    if (val) json_object_set_new(cfg, key, json_loads(val, JSON_DECODE_ANY, NULL));
    else json_object_del(cfg, key);
    snprintf(path, sizeof(path), "%s/config.json", dst);
    CHECK(json_dump_file(cfg, path, JSON_INDENT(2)) == 0, "write %s", path);
    json_decref(cfg);
}

typedef struct {
    const char *drop;      /* tensor left out */
    const char *as_i32;    /* tensor relabelled I32 (same bytes) */
    float bias;            /* qwen2: value of every q/k/v_proj bias; NAN: none */
} st_edit_t;

/* Rewrites src/model.safetensors into dst/model.safetensors with the edit applied. */
static void write_weights(const char *src, const char *dst, const st_edit_t *ed)
{
    char path[1024], name[128];
    safetensors_t *st = NULL;
    safetensors_writer_t *w = safetensors_writer_create();
    float *biases[64];
    int n_bias = 0;
    snprintf(path, sizeof(path), "%s/model.safetensors", src);
    CHECK_OK(safetensors_open(path, &st));
    for (size_t i = 0; st && w && i < safetensors_n_tensors(st); i++) {
        const st_tensor_t *t = safetensors_tensor(st, i);
        size_t len = strlen(t->name);
        bool qkv = len > 14 && (strstr(t->name, "q_proj.weight") || strstr(t->name, "k_proj.weight") ||
                                strstr(t->name, "v_proj.weight"));
        if (ed->drop && !strcmp(t->name, ed->drop)) continue;
        CHECK_OK(safetensors_writer_add_tensor(w, t->name, ed->as_i32 && !strcmp(t->name, ed->as_i32) ? ST_DTYPE_I32 : t->dtype,
                                               t->n_dims, t->shape, t->data, t->nbytes));
        if (qkv && !isnan(ed->bias) && n_bias < 64) {
            float *b = malloc((size_t)t->shape[0] * sizeof(float));
            for (int64_t j = 0; j < t->shape[0]; j++) b[j] = ed->bias;
            biases[n_bias++] = b;
            snprintf(name, sizeof(name), "%.*s.bias", (int)(len - 7), t->name);
            CHECK_OK(safetensors_writer_add_tensor(w, name, ST_DTYPE_F32, 1, t->shape, b,
                                                   (size_t)t->shape[0] * sizeof(float)));
        }
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dst);
    CHECK_OK(safetensors_writer_write(w, path));
    safetensors_writer_destroy(w);
    safetensors_close(st);
    for (int i = 0; i < n_bias; i++) free(biases[i]);
}

static const st_edit_t no_edit = { NULL, NULL, NAN };

/* A copy of the small checkpoint with one edit of config.json and/or the weights. */
static const char *variant(const char *name, const char *key, const char *val, const char *raw, const st_edit_t *ed)
{
    const char *src = tmp_path("small"), *dst = tmp_path(name);
    link_dir(src, dst);
    write_config(src, dst, key, val, raw);
    write_weights(src, dst, ed ? ed : &no_edit);
    return dst;
}

static void test_qwen2(void)
{
    st_edit_t zero = { NULL, NULL, 0.0f }, some = { NULL, NULL, 0.5f };
    const char *q0 = variant("qwen2-zero", "architectures", "[\"Qwen2ForCausalLM\"]", NULL, &zero);
    const char *q1 = variant("qwen2-bias", "architectures", "[\"Qwen2ForCausalLM\"]", NULL, &some);
    model_t *m = NULL;
    compare_models("qwen2 relabelled, zero biases", tmp_path("small.gguf"), q0, 1e-4f);
    CHECK_OK(model_load(q1, &m));
    if (m) {
        float *l0, *l1;
        model_t *m0 = NULL;
        CHECK(m->hp.arch == MODEL_ARCH_QWEN2 && m->hp.rope_neox && m->layers[0].bq && !m->owned_qk, "qwen2 load");
        CHECK_OK(model_load(q0, &m0));
        l0 = m0 ? run_logits(m0, prompt_b, 7) : NULL;
        l1 = run_logits(m, prompt_b, 7);
        CHECK(l0 && l1 && memcmp(l0, l1, (size_t)m->hp.n_vocab * 7 * sizeof(float)) != 0, "biases change the logits");
        free(l0);
        free(l1);
        model_destroy(m0);
        model_destroy(m);
    }
}

/* model_load(dir) must fail with status want and a message containing word (and no model). */
static void expect_refusal(const char *what, const char *dir, status_t want, const char *word)
{
    model_t *m = (model_t *)1;
    status_t st = model_load(dir, &m);
    const char *msg = cllm_error_message();
    CHECK(st == want && m == NULL && strstr(msg, word) != NULL, "%s: status %s (want %s), message '%s' lacks '%s'", what,
          cllm_status_str(st), cllm_status_str(want), msg, word);
    if (st == CLLM_OK) model_destroy(m);
    else printf("refused as expected: %s: %s\n", what, msg);
}

static void test_refusals(void)
{
    st_edit_t drop = { "model.layers.1.self_attn.v_proj.weight", NULL, NAN };
    st_edit_t i32 = { NULL, "model.norm.weight", NAN };
    expect_refusal("missing field", variant("no-hidden", "hidden_size", NULL, NULL, NULL), CLLM_ERR_FORMAT,
                   "'hidden_size' is missing");
    expect_refusal("mistyped field", variant("str-layers", "num_hidden_layers", "\"two\"", NULL, NULL), CLLM_ERR_FORMAT,
                   "'num_hidden_layers' must be an integer");
    expect_refusal("bad architecture", variant("gpt2", "architectures", "[\"GPT2LMHeadModel\"]", NULL, NULL),
                   CLLM_ERR_UNSUPPORTED, "'GPT2LMHeadModel' is not supported");
    expect_refusal("no architectures", variant("no-arch", "architectures", NULL, NULL, NULL), CLLM_ERR_FORMAT,
                   "'architectures' is missing");
    expect_refusal("wrong shape", variant("ff96", "intermediate_size", "96", NULL, NULL), CLLM_ERR_FORMAT,
                   "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [128, 64], expected [96, 64]");
    expect_refusal("missing tensor", variant("no-v", NULL, NULL, NULL, &drop), CLLM_ERR_FORMAT,
                   "tensor 'model.layers.1.self_attn.v_proj.weight' is missing");
    expect_refusal("unsupported dtype", variant("i32", NULL, NULL, NULL, &i32), CLLM_ERR_UNSUPPORTED,
                   "'model.norm.weight' has dtype I32");
    expect_refusal("rope scaling", variant("yarn", "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", NULL, NULL),
                   CLLM_ERR_UNSUPPORTED, "rope_type 'yarn'");
    expect_refusal("llama3 rope without its fields", variant("l3", "rope_scaling", "{\"rope_type\": \"llama3\"}", NULL, NULL),
                   CLLM_ERR_FORMAT, "'rope_scaling.factor' is missing");
    expect_refusal("activation", variant("gelu", "hidden_act", "\"gelu\"", NULL, NULL), CLLM_ERR_UNSUPPORTED,
                   "hidden_act 'gelu'");
    expect_refusal("vocab_size beyond the embeddings", variant("vocab", "vocab_size", "600", NULL, NULL),
                   CLLM_ERR_FORMAT, "tensor 'model.embed_tokens.weight' has shape [579, 64], expected [600, 64]");
    expect_refusal("vocab_size below the tokenizer's", variant("vocab2", "vocab_size", "500", NULL, NULL),
                   CLLM_ERR_FORMAT, "the tokenizer has 579 tokens but vocab_size is 500");
    expect_refusal("not JSON", variant("notjson", NULL, NULL, "{\"hidden_size\": 64,", NULL), CLLM_ERR_FORMAT,
                   "config.json");
    {
        const char *d = variant("badgen", NULL, NULL, NULL, NULL);
        char path[1024];
        FILE *f;
        snprintf(path, sizeof(path), "%s/generation_config.json", d);
        f = fopen(path, "w");
        if (f) fputs("{\"top_p\": 2.0}", f), fclose(f);
        expect_refusal("generation_config top_p 2", d, CLLM_ERR_FORMAT, "'top_p' must be at most 1");
    }
    mkdir(tmp_path("empty"), 0777);
    expect_refusal("no config.json", tmp_path("empty"), CLLM_ERR_IO, "config.json");
}

/* ---------------------------------------------------------------- generation_config.json */

static void test_gen_defaults(void)
{
    mkmodel_params_t p;
    model_t *m = NULL;
    mkmodel_params_default(&p);
    p.format = MKMODEL_FORMAT_HF;
    p.gen_defaults = "temperature=0.6,top_p=0.9";
    CHECK_OK(mkmodel_write(&p, tmp_path("gen"), NULL));
    CHECK_OK(model_load(tmp_path("gen"), &m));
    if (m) {
        const model_gen_defaults_t *g = &m->gen_defaults;
        CHECK(g->has_temperature && g->temperature == 0.6f && g->has_top_p && g->top_p == 0.9f, "temperature, top_p");
        CHECK(!g->has_top_k && !g->has_min_p && !g->has_repetition_penalty, "no other defaults");
        model_destroy(m);
    }
    {
        /* transformers' own defaults do not count (vLLM reads to_diff_dict); min_p has none */
        FILE *f = fopen(tmp_path("gen/generation_config.json"), "w");
        if (f) fputs("{\"temperature\": 1.0, \"top_k\": 50, \"top_p\": 1.0, \"min_p\": 0.0, \"repetition_penalty\": 1.1}", f),
            fclose(f);
        m = NULL;
        CHECK_OK(model_load(tmp_path("gen"), &m));
        if (m) {
            const model_gen_defaults_t *g = &m->gen_defaults;
            CHECK(!g->has_temperature && !g->has_top_k && !g->has_top_p, "defaults equal to transformers' are not applied");
            CHECK(g->has_min_p && g->min_p == 0.0f && g->has_repetition_penalty && g->repetition_penalty == 1.1f,
                  "min_p 0 and repetition_penalty 1.1 are");
            model_destroy(m);
        }
    }
    m = NULL;
    CHECK_OK(model_load(tmp_path("f32.gguf"), &m));
    if (m) CHECK(!m->gen_defaults.has_temperature && !m->gen_defaults.has_top_p, "GGUF: no defaults");
    model_destroy(m);
    {
        /* config.json reads back as written: 1e-05, not 9.99999975e-06 */
        char *text = NULL;
        size_t n = 0;
        FILE *f = fopen(tmp_path("gen/config.json"), "r");
        if (f) {
            text = calloc(1, 1 << 16);
            n = fread(text, 1, (1 << 16) - 1, f);
            fclose(f);
        }
        CHECK(text && n > 0 && (strstr(text, "\"rms_norm_eps\": 1e-05") || strstr(text, "\"rms_norm_eps\": 1e-5")) &&
                  strstr(text, "\"LlamaForCausalLM\"") &&
                  strstr(text, "\"tie_word_embeddings\": true"),
              "config.json text: %s", text ? text : "(unreadable)");
        free(text);
    }
}

/* ---------------------------------------------------------------- writer and helpers */

static void test_mkmodel_refusals(void)
{
    mkmodel_params_t p;
    mkmodel_params_default(&p);
    p.format = MKMODEL_FORMAT_HF;
    p.dtype = DTYPE_Q8_0;
    CHECK(mkmodel_write(&p, tmp_path("q8"), NULL) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "safetensors"),
          "q8_0 as hf: %s", cllm_error_message());
    p.dtype = DTYPE_F32;
    p.gen_defaults = "temperature=0.6,top_q=0.9";
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "'top_q'"), "bad key: %s",
          cllm_error_message());
    p.gen_defaults = "top_p=1.5";
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "top_p"), "bad value");
    p.gen_defaults = NULL;
    p.n_shards = 100;
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG, "more shards than tensors");
    p.n_shards = 2;
    p.format = MKMODEL_FORMAT_GGUF;
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG, "shards need hf");
}

static void test_writer(void)
{
    safetensors_writer_t *w = safetensors_writer_create();
    float a[6] = { 1, 2, 3, 4, 5, 6 };
    uint16_t b[3] = { 0x3f80, 0x4000, 0x4040 };
    int64_t sa[2] = { 2, 3 }, sb[1] = { 3 };
    safetensors_t *st = NULL;
    safetensors_dir_t *d = NULL;
    unsigned char head[8];
    uint64_t hlen = 0;
    FILE *f;

    CHECK_OK(safetensors_writer_set_metadata(w, "format", "pt"));
    CHECK_OK(safetensors_writer_add_tensor(w, "b", ST_DTYPE_BF16, 1, sb, b, sizeof(b)));
    CHECK_OK(safetensors_writer_add_tensor(w, "a", ST_DTYPE_F32, 2, sa, a, sizeof(a)));
    CHECK(safetensors_writer_add_tensor(w, "a", ST_DTYPE_F32, 2, sa, a, sizeof(a)) == CLLM_ERR_INVALID_ARG, "duplicate");
    CHECK(safetensors_writer_add_tensor(w, "c", ST_DTYPE_F32, 2, sa, a, 20) == CLLM_ERR_INVALID_ARG, "size mismatch");
    CHECK(safetensors_writer_write_dir(w, tmp_root, 3) == CLLM_ERR_INVALID_ARG, "3 shards of 2 tensors");
    CHECK_OK(safetensors_writer_write(w, tmp_path("w.safetensors")));
    f = fopen(tmp_path("w.safetensors"), "rb");
    if (f) {
        char *hdr;
        CHECK(fread(head, 1, 8, f) == 8, "read header length");
        for (int i = 0; i < 8; i++) hlen |= (uint64_t)head[i] << (8 * i);
        CHECK(hlen % 8 == 0 && hlen < 4096, "header length %llu is a multiple of 8", (unsigned long long)hlen);
        hdr = calloc(1, hlen + 1);
        if (hdr && fread(hdr, 1, hlen, f) == hlen)
            CHECK(hdr[0] == '{' && strspn(strrchr(hdr, '}') + 1, " ") == strlen(strrchr(hdr, '}') + 1),
                  "padded with spaces: '%s'", hdr);
        free(hdr);
        fclose(f);
    }
    CHECK_OK(safetensors_open(tmp_path("w.safetensors"), &st));
    if (st) {
        const st_tensor_t *ta = safetensors_find(st, "a"), *tb = safetensors_find(st, "b");
        CHECK(ta && ta->dtype == ST_DTYPE_F32 && ta->shape[0] == 2 && ta->shape[1] == 3 && !memcmp(ta->data, a, sizeof(a)),
              "a reads back");
        CHECK(tb && tb->dtype == ST_DTYPE_BF16 && !memcmp(tb->data, b, sizeof(b)), "b reads back");
        safetensors_close(st);
    }
    mkdir(tmp_path("sharded"), 0777);
    CHECK_OK(safetensors_writer_write_dir(w, tmp_path("sharded"), 2));
    CHECK_OK(safetensors_dir_open(tmp_path("sharded"), &d));
    if (d) {
        CHECK(safetensors_dir_n_tensors(d) == 2 && safetensors_dir_find(d, "a") && safetensors_dir_find(d, "b"), "2 shards");
        safetensors_dir_close(d);
    }
    {
        json_t *idx = json_load_file(tmp_path("sharded/model.safetensors.index.json"), 0, NULL);
        CHECK(idx && json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")) == 30 &&
                  !strcmp(json_string_value(json_object_get(json_object_get(idx, "weight_map"), "a")),
                          "model-00002-of-00002.safetensors"),
              "index.json");
        json_decref(idx);
    }
    {
        /* rewritten as one file: the old index must go, or readers would keep the old shards */
        struct stat sb;
        CHECK_OK(safetensors_writer_write_dir(w, tmp_path("sharded"), 1));
        CHECK(stat(tmp_path("sharded/model.safetensors.index.json"), &sb) != 0 &&
                  stat(tmp_path("sharded/model.safetensors"), &sb) == 0,
              "one file replaces the index");
    }
    safetensors_writer_destroy(w);
}

static void test_permute(void)
{
    /* head_dim 4: HF row i*2 + j holds GGUF row 2j + i */
    int32_t gguf[8] = { 0, 1, 2, 3, 10, 11, 12, 13 }, hf[8], back[8];
    const int32_t want[8] = { 0, 2, 1, 3, 10, 12, 11, 13 };
    hf_model_permute_qk(hf, gguf, 8, 4, sizeof(int32_t), true);
    CHECK(!memcmp(hf, want, sizeof(want)), "to_hf: %d %d %d %d", hf[0], hf[1], hf[2], hf[3]);
    hf_model_permute_qk(back, hf, 8, 4, sizeof(int32_t), false);
    CHECK(!memcmp(back, gguf, sizeof(gguf)), "round trip");
    CHECK(hf_model_is_checkpoint(tmp_root) && hf_model_is_checkpoint("x/config.json") &&
              !hf_model_is_checkpoint(VOCAB_BPE),
          "is_checkpoint");
}

int main(void)
{
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    for (int i = 0; i < MAX_TOK; i++) prompt_c[i] = (int32_t)((i * 7919 + 13) % 250);
    test_permute();
    test_writer();
    test_mkmodel_refusals();
    test_same_logits();
    test_qwen2();
    test_refusals();
    test_gen_defaults();
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary();
}

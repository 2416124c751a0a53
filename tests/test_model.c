/* test_model.c: the model loader's architectures and its refusals.
 *
 *   - qwen2: a Qwen2 GGUF made from a tiny Llama one (keys renamed, zero QKV biases, and the rows
 *     of attn_q / attn_k permuted within each head from the interleaved pairs Llama's rotation uses
 *     to the half-split pairs NeoX rotation uses) must give the Llama model's logits; with non-zero
 *     biases the logits must change (the biases are really added);
 *   - mistral: the same file with architecture "mistral" loads as the Llama graph;
 *   - an unknown architecture and a tensor of an unsupported type are refused with one clear
 *     message naming them;
 *   - hyperparameters the tensors cannot back (found by tests/fuzz/fuzz_gguf) are refused before
 *     anything is allocated for them: a 2e9 block_count, a huge key_length (the RoPE table). */
#include <math.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include "core/threadpool.h"
#include "kv/kv_cache.h"
#include "model/forward.h"
#include "model/gguf.h"
#include "model/mkmodel.h"
#include "model/model.h"
#include "check.h"


#define N_TOK 12

/* Logits of the last token of a fixed sequence. */
static int model_logits(const char *path, float *out, int *n_vocab)
{
    static const int32_t toks[N_TOK] = { 1, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100 };
    int32_t pos[N_TOK], seq[N_TOK] = { 0 }, bt[4] = { 0, 1, 2, 3 };
    const int32_t *bts[1] = { bt };
    int32_t nbs[1] = { 4 };
    model_t *m;
    kv_cache_t *kv;
    forward_t *fw;
    threadpool_t *pool;
    kv_cache_config_t kc;
    int ok;

    if (model_load(path, &m) != CLLM_OK) {
        fprintf(stderr, "load %s: %s\n", path, cllm_error_message());
        return 0;
    }
    kc = (kv_cache_config_t){ m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, 8, 4, DTYPE_F32 };
    for (int i = 0; i < N_TOK; i++) pos[i] = i;
    threadpool_create(1, &pool);
    kv_cache_create(&kc, &kv);
    forward_create(m, kv, pool, &fw);
    {
        forward_batch_t b = { N_TOK, toks, pos, seq, 1, bts, nbs, NULL };
        ok = forward_run(fw, &b, out) == CLLM_OK;
    }
    *n_vocab = m->hp.n_vocab;
    forward_destroy(fw);
    kv_cache_destroy(kv);
    threadpool_destroy(pool);
    model_destroy(m);
    return ok;
}

typedef struct {
    const gguf_t *src;
    float *buf; /* scratch for permuted / bias tensors, owned by the caller */
} conv_t;

/* Rewrites a tiny llama GGUF as arch (qwen2 or mistral); bias: value of every QKV bias (qwen2). */
static int convert(const char *src_path, const char *dst_path, const char *arch, float bias)
{
    gguf_t *g;
    gguf_writer_t *w;
    int ok = 1, head_dim = 0, n_head = 0, n_head_kv = 0;
    int64_t v;
    float *bufs[64];
    int n_bufs = 0;
    bool qwen2 = !strcmp(arch, "qwen2");

    if (gguf_open(src_path, &g) != CLLM_OK) return 0;
    gguf_get_i64(g, "llama.attention.head_count", &v);
    n_head = (int)v;
    gguf_get_i64(g, "llama.attention.head_count_kv", &v);
    n_head_kv = (int)v;
    gguf_get_i64(g, "llama.embedding_length", &v);
    head_dim = (int)v / n_head;
    w = gguf_writer_create();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_key_name(g, i);
        const void *raw;
        size_t nbytes;
        if (!strcmp(key, "general.architecture")) {
            ok &= gguf_writer_set_str(w, key, arch, strlen(arch)) == CLLM_OK;
        } else if (!strncmp(key, "llama.", 6)) {
            char nk[128];
            snprintf(nk, sizeof(nk), "%s.%s", arch, key + 6);
            ok &= gguf_kv_raw(g, i, &raw, &nbytes) == CLLM_OK &&
                  gguf_writer_set_raw(w, nk, gguf_kv_type(g, i), raw, nbytes) == CLLM_OK;
        } else {
            ok &= gguf_writer_copy_kv(w, g, i) == CLLM_OK;
        }
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info_t *t = gguf_tensor(g, i);
        const void *data = t->data;
        bool is_q = strstr(t->name, "attn_q.weight") != NULL, is_k = strstr(t->name, "attn_k.weight") != NULL;
        if (qwen2 && (is_q || is_k)) {
            /* output row h*d + j of NeoX layout = row h*d + (j < d/2 ? 2j : 2(j - d/2) + 1) of Llama's */
            int64_t rows = t->ne[1], cols = t->ne[0];
            float *p = malloc((size_t)(rows * cols) * sizeof(float));
            const float *s = t->data;
            for (int64_t r = 0; r < rows; r++) {
                int64_t h = r / head_dim, j = r % head_dim;
                int64_t src = h * head_dim + (j < head_dim / 2 ? 2 * j : 2 * (j - head_dim / 2) + 1);
                memcpy(p + r * cols, s + src * cols, (size_t)cols * sizeof(float));
            }
            bufs[n_bufs++] = p;
            data = p;
        }
        ok &= gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data, t->nbytes) == CLLM_OK;
        if (qwen2 && (is_q || is_k || strstr(t->name, "attn_v.weight"))) {
            char name[96];
            int64_t ne[1] = { t->ne[1] };
            float *b = malloc((size_t)t->ne[1] * sizeof(float));
            for (int64_t j = 0; j < t->ne[1]; j++) b[j] = bias;
            bufs[n_bufs++] = b;
            snprintf(name, sizeof(name), "%.*s.bias", (int)(strlen(t->name) - 7), t->name);
            ok &= gguf_writer_add_tensor(w, name, 0, 1, ne, b, (size_t)t->ne[1] * sizeof(float)) == CLLM_OK;
        }
    }
    (void)n_head_kv;
    ok &= gguf_writer_write(w, dst_path) == CLLM_OK;
    if (!ok) fprintf(stderr, "convert: %s\n", cllm_error_message());
    gguf_writer_destroy(w);
    for (int i = 0; i < n_bufs; i++) free(bufs[i]);
    gguf_close(g);
    return ok;
}

/* Copies the GGUF src to dst with u32 key set to v (drop: a key left out, or NULL). */
static int with_u32(const char *src, const char *dst, const char *key, uint32_t v, const char *drop)
{
    gguf_t *g = NULL;
    gguf_writer_t *w = gguf_writer_create();
    int ok = w && gguf_open(src, &g) == CLLM_OK;
    for (int64_t i = 0; ok && i < gguf_n_kv(g); i++)
        if (strcmp(gguf_key_name(g, i), key) && (!drop || strcmp(gguf_key_name(g, i), drop)))
            ok = gguf_writer_copy_kv(w, g, i) == CLLM_OK;
    ok = ok && gguf_writer_set_u32(w, key, v) == CLLM_OK;
    for (int64_t i = 0; ok && i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info_t *t = gguf_tensor(g, i);
        ok = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes) == CLLM_OK;
    }
    ok = ok && gguf_writer_write(w, dst) == CLLM_OK;
    gguf_writer_destroy(w);
    gguf_close(g);
    return ok;
}

static long max_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

/* Overwrites the first occurrence of pat (n bytes) in a file with rep (n bytes). */
static int patch_file(const char *path, const void *pat, const void *rep, size_t n, size_t skip)
{
    FILE *f = fopen(path, "r+b");
    char *buf;
    long size;
    int ok = 0;
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size);
    if (fread(buf, 1, (size_t)size, f) == (size_t)size) {
        for (long i = 0; i + (long)(n + skip) <= size; i++) {
            if (!memcmp(buf + i, pat, n)) {
                fseek(f, i + (long)skip, SEEK_SET);
                ok = fwrite(rep, 1, n - skip, f) == n - skip;
                break;
            }
        }
    }
    free(buf);
    fclose(f);
    return ok;
}

int main(void)
{
    const char *dir = CLLM_BINARY_DIR;
    char llama[512], qwen[512], qwen_b[512], mistral[512], bad[512];
    mkmodel_params_t p;
    float *a, *b;
    int n_vocab = 0, n2 = 0;
    model_t *m = NULL;

    snprintf(llama, sizeof(llama), "%s/test_model_llama.gguf", dir);
    snprintf(qwen, sizeof(qwen), "%s/test_model_qwen2.gguf", dir);
    snprintf(qwen_b, sizeof(qwen_b), "%s/test_model_qwen2_bias.gguf", dir);
    snprintf(mistral, sizeof(mistral), "%s/test_model_mistral.gguf", dir);
    snprintf(bad, sizeof(bad), "%s/test_model_bad.gguf", dir);
    mkmodel_params_default(&p);
    if (mkmodel_params_shape(&p, "tiny") != CLLM_OK || mkmodel_write(&p, llama, NULL) != CLLM_OK) {
        fprintf(stderr, "mkmodel: %s\n", cllm_error_message());
        return 1;
    }
    a = malloc(1 << 20);
    b = malloc(1 << 20);
    CHECK(model_logits(llama, a, &n_vocab), "llama runs");

    /* qwen2 with zero biases == llama */
    CHECK(convert(llama, qwen, "qwen2", 0.0f), "convert to qwen2");
    CHECK(model_logits(qwen, b, &n2) && n2 == n_vocab, "qwen2 runs");
    {
        double max_diff = 0, max_abs = 0;
        for (int i = 0; i < n_vocab; i++) {
            max_diff = fmax(max_diff, fabs((double)a[i] - b[i]));
            max_abs = fmax(max_abs, fabs((double)a[i]));
        }
        CHECK(max_diff <= 1e-4 * (max_abs + 1e-3), "qwen2 (NeoX, zero biases) differs from llama by %g (max |logit| %g)",
              max_diff, max_abs);
    }
    CHECK(model_load(qwen, &m) == CLLM_OK && m->hp.rope_neox && m->layers[0].bq, "qwen2: NeoX rope and biases");
    model_destroy(m);
    CHECK(convert(llama, qwen_b, "qwen2", 0.05f), "convert to qwen2 with biases");
    CHECK(model_logits(qwen_b, b, &n2), "qwen2 with biases runs");
    CHECK(memcmp(a, b, (size_t)n_vocab * sizeof(float)) != 0, "qwen2 biases change the logits");

    /* mistral: the llama graph */
    CHECK(convert(llama, mistral, "mistral", 0.0f), "convert to mistral");
    CHECK(model_logits(mistral, b, &n2) && !memcmp(a, b, (size_t)n_vocab * sizeof(float)), "mistral == llama");

    /* an unknown architecture */
    CHECK(convert(llama, bad, "bloom", 0.0f), "convert to bloom");
    CHECK(model_load(bad, &m) == CLLM_ERR_UNSUPPORTED && strstr(cllm_error_message(), "bloom"),
          "unknown architecture refused: %s", cllm_error_message());

    /* hyperparameters the tensors cannot back are refused before anything is allocated for them */
    CHECK(with_u32(llama, bad, "llama.block_count", 2000000000u, NULL), "write block_count 2e9");
    CHECK(model_load(bad, &m) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "block_count"),
          "a block count the tensors cannot back is refused: %s", cllm_error_message());
    {
        /* key_length 2^28 (no rope.dimension_count: it follows) asked for a 512 MiB RoPE table,
         * filled before the first tensor was checked */
        long rss0 = max_rss_kb();
        CHECK(with_u32(llama, bad, "llama.attention.key_length", 1u << 28, "llama.rope.dimension_count") &&
                  with_u32(bad, qwen, "llama.attention.value_length", 1u << 28, NULL),
              "write key_length 2^28");
        CHECK(model_load(qwen, &m) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "attn_q"),
              "a head dimension the tensors cannot back is refused: %s", cllm_error_message());
        CHECK(max_rss_kb() - rss0 < 128 * 1024, "refusing a huge key_length took %ld MiB",
              (max_rss_kb() - rss0) / 1024);
    }

    /* a tensor type cllm does not handle (q4_k = 12): patch the type of blk.0.attn_q.weight */
    {
        const char name[] = "blk.0.attn_q.weight";
        unsigned char pat[sizeof(name) - 1 + 4 + 16 + 4], rep[sizeof(pat)];
        uint32_t n_dims = 2, type = 0;
        int64_t ne[2] = { 64, 64 };
        memcpy(pat, name, sizeof(name) - 1);
        memcpy(pat + sizeof(name) - 1, &n_dims, 4);
        memcpy(pat + sizeof(name) - 1 + 4, ne, 16);
        memcpy(pat + sizeof(name) - 1 + 20, &type, 4);
        memcpy(rep, pat, sizeof(pat));
        type = 12;
        memcpy(rep + sizeof(name) - 1 + 20, &type, 4);
        CHECK(patch_file(llama, pat, rep, sizeof(pat), 0), "patch the tensor type");
        CHECK(model_load(llama, &m) != CLLM_OK && strstr(cllm_error_message(), "blk.0.attn_q.weight") &&
                  strstr(cllm_error_message(), "q4_k"),
              "unsupported tensor type refused: %s", cllm_error_message());
    }
    free(a);
    free(b);
    remove(llama);
    remove(qwen);
    remove(qwen_b);
    remove(mistral);
    remove(bad);
    if (check_failures) {
        fprintf(stderr, "%d failures\n", check_failures);
        return 1;
    }
    fprintf(stderr, "ok\n");
    return 0;
}

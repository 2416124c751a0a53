/* test_mkmodel.c: random-weight model files (model/mkmodel.h), read back with the GGUF reader.
 *
 * Checks: the tiny shape in every dtype has llama.cpp's keys, tensor names, shapes and types
 * (1-D norms F32 and 1.0, weights ~N(0, 0.02)); a tensor's values are the same whatever its
 * dtype; same seed -> identical bytes, another seed -> different bytes; untied output; the
 * built-in vocabulary is a consistent BPE (unique tokens, every merge's parts and result are
 * tokens, specials are control tokens) and pads to --vocab-size; --vocab-from copies the
 * tokenizer keys of the shared vocab files; chat templates; llama3 RoPE frequency factors;
 * parameter checks. Files are written under CLLM_BINARY_DIR and removed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "model/gguf.h"
#include "model/mkmodel.h"
#include "check.h"


static void out_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/test_mkmodel_%s.gguf", CLLM_BINARY_DIR, name);
}

static int str_is(gguf_str_t s, const char *want)
{
    return s.ptr && s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

static int64_t get_i64(const gguf_t *g, const char *key)
{
    int64_t v = -1;
    CHECK_OK(gguf_get_i64(g, key, &v));
    return v;
}

/* The tensor's values as f32 (caller frees); NULL if absent. */
static float *tensor_f32(const gguf_t *g, const char *name, int64_t *n)
{
    const gguf_tensor_info_t *t = gguf_find_tensor(g, name);
    float *out;
    int64_t rows;
    size_t row_bytes;
    if (!t || !t->data) return NULL;
    *n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    rows = t->ne[0] ? *n / t->ne[0] : 0;
    row_bytes = dtype_row_bytes((dtype_t)t->type, (size_t)t->ne[0]);
    out = malloc((size_t)(*n ? *n : 1) * sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        dtype_to_f32_row((dtype_t)t->type, (const uint8_t *)t->data + r * row_bytes, out + r * t->ne[0],
                         (size_t)t->ne[0]);
    return out;
}

static void check_tensor(const gguf_t *g, const char *name, uint32_t type, int64_t ne0, int64_t ne1)
{
    const gguf_tensor_info_t *t = gguf_find_tensor(g, name);
    if (!t) {
        fprintf(stderr, "tensor '%s' missing\n", name);
        check_failures++;
        return;
    }
    if (t->type != type || t->ne[0] != ne0 || t->ne[1] != ne1 || t->n_dims != (ne1 > 1 ? 2u : 1u) || !t->data) {
        fprintf(stderr, "tensor '%s': type %s ne {%lld, %lld} n_dims %u, wanted %s {%lld, %lld}\n", name,
                dtype_name(t->type), (long long)t->ne[0], (long long)t->ne[1], t->n_dims, dtype_name(type),
                (long long)ne0, (long long)ne1);
        check_failures++;
    }
}

/* Mean ~0 and standard deviation ~0.02 (quantization adds a little noise). */
static void check_normal(const gguf_t *g, const char *name)
{
    int64_t n = 0;
    float *x = tensor_f32(g, name, &n);
    double sum = 0, sq = 0, mean, sd;
    CHECK(x != NULL && n > 1000);
    if (!x) return;
    for (int64_t i = 0; i < n; i++) {
        sum += x[i];
        sq += (double)x[i] * x[i];
    }
    mean = sum / (double)n;
    sd = sqrt(sq / (double)n - mean * mean);
    if (fabs(mean) > 0.003 || sd < 0.017 || sd > 0.023) {
        fprintf(stderr, "tensor '%s': mean %g sd %g, wanted ~N(0, 0.02)\n", name, mean, sd);
        check_failures++;
    }
    free(x);
}

static void check_ones(const gguf_t *g, const char *name)
{
    int64_t n = 0;
    float *x = tensor_f32(g, name, &n);
    int ok = x != NULL;
    for (int64_t i = 0; x && i < n; i++) ok &= x[i] == 1.0f;
    CHECK(ok);
    free(x);
}

/* The built-in vocabulary: unique tokens, consistent merges, control specials. */
static void check_builtin_vocab(const gguf_t *g, int64_t n_vocab)
{
    int64_t tok = gguf_find_key(g, "tokenizer.ggml.tokens"), ty = gguf_find_key(g, "tokenizer.ggml.token_type");
    int64_t mg = gguf_find_key(g, "tokenizer.ggml.merges");
    const int32_t *types = gguf_arr_data(g, ty);
    gguf_str_t s;
    uint32_t bos = 0, eos = 0, eot = 0;
    bool add_bos = false;
    CHECK((int64_t)gguf_arr_n(g, tok) == n_vocab && (int64_t)gguf_arr_n(g, ty) == n_vocab);
    CHECK(gguf_arr_type(g, ty) == GGUF_TYPE_INT32 && types);
    CHECK(mg >= 0 && gguf_arr_type(g, mg) == GGUF_TYPE_STRING && gguf_arr_n(g, mg) >= 200);
    CHECK_OK(gguf_get_str(g, "tokenizer.ggml.model", &s)); CHECK(str_is(s, "gpt2"));
    CHECK_OK(gguf_get_str(g, "tokenizer.ggml.pre", &s)); CHECK(str_is(s, "llama-bpe"));
    CHECK_OK(gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos));
    CHECK_OK(gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos));
    CHECK_OK(gguf_get_u32(g, "tokenizer.ggml.eot_token_id", &eot));
    CHECK_OK(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos)); CHECK(add_bos);
    CHECK(str_is(gguf_arr_str(g, tok, bos), "<|begin_of_text|>"));
    CHECK(str_is(gguf_arr_str(g, tok, eos), "<|end_of_text|>"));
    CHECK(str_is(gguf_arr_str(g, tok, eot), "<|eot_id|>"));
    CHECK(str_is(gguf_arr_str(g, tok, bos + 2), "<|start_header_id|>"));
    CHECK(str_is(gguf_arr_str(g, tok, bos + 3), "<|end_header_id|>"));
    /* GPT-2's byte order: '!' first; the space byte is U+0120 'Ġ', newline U+010A 'Ċ' */
    CHECK(str_is(gguf_arr_str(g, tok, 0), "!"));
    if (types) {
        int64_t n_ctrl = 0;
        CHECK(types[bos] == 3 && types[eos] == 3 && types[eot] == 3 && types[0] == 1);
        for (int64_t i = 0; i < n_vocab; i++) n_ctrl += types[i] == 3;
        CHECK(n_ctrl == 5 + (n_vocab - (int64_t)bos - 5));
    }
    /* every token unique; every merge "a b" has a, b and ab in the vocabulary */
    {
        int ok_unique = 1, ok_merges = 1, have_space = 0, have_nl = 0;
        for (int64_t i = 0; i < n_vocab; i++) {
            gguf_str_t a = gguf_arr_str(g, tok, (uint64_t)i);
            have_space |= str_is(a, "\xc4\xa0");
            have_nl |= str_is(a, "\xc4\x8a");
            for (int64_t j = i + 1; j < n_vocab && j < i + 2000; j++) {
                gguf_str_t b = gguf_arr_str(g, tok, (uint64_t)j);
                if (a.len == b.len && !memcmp(a.ptr, b.ptr, a.len)) ok_unique = 0;
            }
        }
        for (uint64_t m = 0; m < gguf_arr_n(g, mg); m++) {
            gguf_str_t ms = gguf_arr_str(g, mg, m);
            const char *sp = memchr(ms.ptr, ' ', ms.len);
            int found[3] = { 0, 0, 0 };
            size_t la = sp ? (size_t)(sp - ms.ptr) : 0, lb = sp ? ms.len - la - 1 : 0;
            for (int64_t i = 0; sp && i < n_vocab; i++) {
                gguf_str_t t = gguf_arr_str(g, tok, (uint64_t)i);
                found[0] |= t.len == la && !memcmp(t.ptr, ms.ptr, la);
                found[1] |= t.len == lb && !memcmp(t.ptr, sp + 1, lb);
                found[2] |= t.len == la + lb && !memcmp(t.ptr, ms.ptr, la) && !memcmp(t.ptr + la, sp + 1, lb);
            }
            ok_merges &= found[0] && found[1] && found[2];
        }
        CHECK(ok_unique && ok_merges && have_space && have_nl);
    }
}

/* The tiny shape in one dtype: keys, tensors, values. Returns the open file (caller closes). */
static gguf_t *check_tiny(const char *path, dtype_t dt, bool tied)
{
    static const uint32_t ftypes[] = { [DTYPE_F32] = 0, [DTYPE_F16] = 1, [DTYPE_Q4_0] = 2, [DTYPE_Q8_0] = 7,
                                       [DTYPE_BF16] = 32 };
    gguf_t *g = NULL;
    gguf_str_t s;
    float f = 0;
    int64_t n_vocab;
    CHECK_OK(gguf_open(path, &g));
    if (!g) return NULL;
    CHECK_OK(gguf_get_str(g, "general.architecture", &s)); CHECK(str_is(s, "llama"));
    CHECK_OK(gguf_get_str(g, "general.name", &s)); CHECK(s.len > 0);
    CHECK(get_i64(g, "general.file_type") == ftypes[dt]);
    CHECK(get_i64(g, "llama.context_length") == 2048);
    CHECK(get_i64(g, "llama.embedding_length") == 64);
    CHECK(get_i64(g, "llama.block_count") == 2);
    CHECK(get_i64(g, "llama.feed_forward_length") == 128);
    CHECK(get_i64(g, "llama.attention.head_count") == 4);
    CHECK(get_i64(g, "llama.attention.head_count_kv") == 2);
    CHECK(get_i64(g, "llama.rope.dimension_count") == 16);
    CHECK(gguf_find_key(g, "llama.attention.key_length") < 0);
    CHECK_OK(gguf_get_f32(g, "llama.rope.freq_base", &f)); CHECK(f == 10000.0f);
    CHECK_OK(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f)); CHECK(f == 1e-5f);
    CHECK(gguf_kv_type(g, gguf_find_key(g, "llama.block_count")) == GGUF_TYPE_UINT32);
    n_vocab = get_i64(g, "llama.vocab_size");
    CHECK(n_vocab > 256 + 200 + 5);
    check_builtin_vocab(g, n_vocab);
    CHECK(gguf_n_tensors(g) == 2 + 9 * 2 + !tied);
    check_tensor(g, "token_embd.weight", dt, 64, n_vocab);
    for (int l = 0; l < 2; l++) {
        char name[64];
#define T(suffix, type, ne0, ne1)                                               \
    snprintf(name, sizeof(name), "blk.%d." suffix ".weight", l);                 \
    check_tensor(g, name, type, ne0, ne1)
        T("attn_norm", DTYPE_F32, 64, 1);
        T("attn_q", dt, 64, 64);
        T("attn_k", dt, 64, 32);
        T("attn_v", dt, 64, 32);
        T("attn_output", dt, 64, 64);
        T("ffn_norm", DTYPE_F32, 64, 1);
        T("ffn_gate", dt, 64, 128);
        T("ffn_up", dt, 64, 128);
        T("ffn_down", dt, 128, 64);
#undef T
        snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
        check_ones(g, name);
        snprintf(name, sizeof(name), "blk.%d.ffn_norm.weight", l);
        check_ones(g, name);
    }
    check_tensor(g, "output_norm.weight", DTYPE_F32, 64, 1);
    check_ones(g, "output_norm.weight");
    CHECK((gguf_find_tensor(g, "output.weight") != NULL) == !tied);
    if (!tied) check_tensor(g, "output.weight", dt, 64, n_vocab);
    CHECK(gguf_find_tensor(g, "rope_freqs.weight") == NULL);
    check_normal(g, "token_embd.weight");
    check_normal(g, "blk.1.ffn_up.weight");
    {
        /* each tensor has its own stream: no two start with the same values */
        static const char *names[] = { "token_embd.weight", "blk.0.attn_q.weight", "blk.1.attn_q.weight",
                                       "blk.0.attn_k.weight", "blk.0.ffn_down.weight" };
        float *x[5];
        int64_t n = 0;
        for (int i = 0; i < 5; i++) x[i] = tensor_f32(g, names[i], &n);
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++)
                CHECK(x[i] && x[j] && memcmp(x[i], x[j], 64 * sizeof(float)) != 0);
        for (int i = 0; i < 5; i++) free(x[i]);
    }
    return g;
}

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    void *p = NULL;
    long len;
    *n = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = malloc((size_t)len);
        *n = fread(p, 1, (size_t)len, f);
    }
    fclose(f);
    return p;
}

static void test_dtypes(void)
{
    static const dtype_t dts[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0 };
    float *ref = NULL;
    int64_t n_ref = 0;
    for (size_t k = 0; k < sizeof(dts) / sizeof(dts[0]); k++) {
        mkmodel_params_t p;
        mkmodel_stats_t stats;
        char path[512];
        gguf_t *g;
        mkmodel_params_default(&p);
        p.dtype = dts[k];
        out_path(path, sizeof(path), dtype_name(dts[k]));
        CHECK_OK(mkmodel_write(&p, path, &stats));
        CHECK(stats.n_tensors == 20 && stats.n_vocab > 256 && stats.n_bytes > 0);
        CHECK(stats.n_params == 64 * stats.n_vocab + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 64 * 128 * 3 + 128) + 64);
        g = check_tiny(path, dts[k], true);
        if (g) {
            /* the same values whatever the dtype: f16/bf16 round them, q8_0 within its step */
            int64_t n = 0;
            float *x = tensor_f32(g, "blk.0.attn_q.weight", &n);
            double tol = dts[k] == DTYPE_F32 ? 0 : dts[k] == DTYPE_F16 ? 1e-3 : dts[k] == DTYPE_BF16 ? 8e-3 : 0.1;
            if (dts[k] == DTYPE_F32) {
                ref = x;
                n_ref = n;
                x = NULL;
            } else if (x && ref && n == n_ref && dts[k] != DTYPE_Q4_0) {
                int ok = 1;
                for (int64_t i = 0; i < n; i++) ok &= fabs(x[i] - ref[i]) <= tol * fabs(ref[i]) + 2e-3;
                if (!ok) fprintf(stderr, "attn_q values differ between f32 and %s\n", dtype_name(dts[k]));
                CHECK(ok);
            }
            free(x);
            CHECK(stats.n_bytes == gguf_file_size(g));
            gguf_close(g);
        }
        remove(path);
    }
    free(ref);
}

static void test_determinism_and_untied(void)
{
    mkmodel_params_t p;
    char a[512], b[512], c[512];
    void *da, *db, *dc;
    size_t na, nb, nc;
    gguf_t *g;
    mkmodel_params_default(&p);
    p.seed = 1234;
    p.dtype = DTYPE_Q8_0;
    out_path(a, sizeof(a), "seed_a");
    out_path(b, sizeof(b), "seed_b");
    out_path(c, sizeof(c), "seed_c");
    CHECK_OK(mkmodel_write(&p, a, NULL));
    CHECK_OK(mkmodel_write(&p, b, NULL));
    p.seed = 1235;
    CHECK_OK(mkmodel_write(&p, c, NULL));
    da = slurp(a, &na);
    db = slurp(b, &nb);
    dc = slurp(c, &nc);
    CHECK(da && db && dc && na == nb && nb == nc);
    CHECK(da && db && na == nb && !memcmp(da, db, na));
    CHECK(da && dc && na == nc && memcmp(da, dc, na) != 0);
    free(da);
    free(db);
    free(dc);

    p.tied = false;
    p.dtype = DTYPE_F16;
    CHECK_OK(mkmodel_write(&p, a, NULL));
    g = check_tiny(a, DTYPE_F16, false);
    if (g) {
        check_normal(g, "output.weight");
        gguf_close(g);
    }
    remove(a);
    remove(b);
    remove(c);
}

/* Llama 3.x RoPE scaling as in llama.cpp's converter, in double precision as a reference. */
static double rope_factor_ref(int64_t i, int64_t hd, double theta)
{
    double freq = 1.0 / pow(theta, (double)(2 * i) / (double)hd), wavelen = 2.0 * M_PI / freq;
    if (wavelen < 8192.0 / 4.0) return 1.0;
    if (wavelen > 8192.0 / 1.0) return 32.0;
    {
        double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
        return 1.0 / ((1.0 - smooth) / 32.0 + smooth);
    }
}

static void test_shapes_and_rope(void)
{
    mkmodel_params_t p;
    char path[512];
    gguf_t *g = NULL;
    mkmodel_params_default(&p);
    CHECK_OK(mkmodel_params_shape(&p, "llama3-1b"));
    CHECK(p.n_embd == 2048 && p.n_layer == 16 && p.n_head == 32 && p.n_head_kv == 8 && p.head_dim == 64);
    CHECK(p.n_ff == 8192 && p.rope_theta == 500000.0f && p.n_ctx == 8192 && p.tied && p.rope_llama3);
    CHECK(p.rope_factor == 32.0f && p.rope_low_freq_factor == 1.0f && p.rope_high_freq_factor == 4.0f);
    CHECK(p.rope_orig_ctx == 8192 && p.rms_eps == 1e-5f);
    CHECK_OK(mkmodel_params_check(&p));
    CHECK_OK(mkmodel_params_shape(&p, "demo"));
    CHECK(p.n_embd == 512 && p.n_layer == 4 && p.n_head == 8 && p.n_head_kv == 4 && p.n_ff == 1408);
    CHECK(p.rope_theta == 500000.0f && p.n_ctx == 8192 && p.tied && !p.rope_llama3 && p.head_dim == 0);
    p.dtype = DTYPE_Q4_0;
    CHECK_OK(mkmodel_params_check(&p));
    CHECK(mkmodel_params_shape(&p, "nope") == CLLM_ERR_NOT_FOUND);

    /* llama3-1b's RoPE scaling and head_dim 64 on a small model (a full 1B file is too big for a test);
     * head_dim != n_embd / n_head, so key_length/value_length are written */
    mkmodel_params_default(&p);
    CHECK_OK(mkmodel_params_shape(&p, "llama3-1b"));
    p.n_embd = 128; p.n_layer = 1; p.n_head = 4; p.n_head_kv = 2; p.n_ff = 64; p.dtype = DTYPE_Q8_0;
    out_path(path, sizeof(path), "rope");
    CHECK_OK(mkmodel_write(&p, path, NULL));
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        int64_t n = 0;
        float *rf = tensor_f32(g, "rope_freqs.weight", &n);
        const gguf_tensor_info_t *t = gguf_find_tensor(g, "rope_freqs.weight");
        CHECK(t && t->type == DTYPE_F32 && t->n_dims == 1 && t->ne[0] == 32);
        CHECK(get_i64(g, "llama.attention.key_length") == 64 && get_i64(g, "llama.attention.value_length") == 64);
        CHECK(get_i64(g, "llama.rope.dimension_count") == 64 && get_i64(g, "llama.context_length") == 8192);
        check_tensor(g, "blk.0.attn_q.weight", DTYPE_Q8_0, 128, 256);
        check_tensor(g, "blk.0.attn_k.weight", DTYPE_Q8_0, 128, 128);
        check_tensor(g, "blk.0.attn_output.weight", DTYPE_Q8_0, 256, 128);
        if (rf && n == 32) {
            int ok = rf[0] == 1.0f && rf[31] == 32.0f;
            for (int64_t i = 0; i < n; i++) ok &= fabs(rf[i] - rope_factor_ref(i, 64, 500000.0)) < 1e-4 * rope_factor_ref(i, 64, 500000.0);
            for (int64_t i = 1; i < n; i++) ok &= rf[i] >= rf[i - 1];
            if (!ok) fprintf(stderr, "rope_freqs values differ from the llama3 formula\n");
            CHECK(ok);
        }
        free(rf);
        gguf_close(g);
    }
    remove(path);
}

static void test_vocab(void)
{
    mkmodel_params_t p;
    char path[512], src[512];
    gguf_t *g = NULL;
    gguf_str_t s;

    /* padding the built-in vocabulary */
    mkmodel_params_default(&p);
    p.vocab_size = 1000;
    p.chat_template = mkmodel_chat_template("llama3");
    out_path(path, sizeof(path), "vocab_pad");
    CHECK_OK(mkmodel_write(&p, path, NULL));
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        int64_t tok = gguf_find_key(g, "tokenizer.ggml.tokens");
        CHECK(gguf_arr_n(g, tok) == 1000 && get_i64(g, "llama.vocab_size") == 1000);
        CHECK(gguf_arr_str(g, tok, 999).len > 0 && !memcmp(gguf_arr_str(g, tok, 999).ptr, "<|reserved_special_token_", 25));
        check_builtin_vocab(g, 1000);
        check_tensor(g, "token_embd.weight", DTYPE_F32, 64, 1000);
        CHECK_OK(gguf_get_str(g, "tokenizer.chat_template", &s));
        CHECK(str_is(s, mkmodel_chat_template("llama3")));
        gguf_close(g);
    }
    p.vocab_size = 10;
    CHECK(mkmodel_write(&p, path, NULL) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "vocab"));

    /* --vocab-from: stories260K (SentencePiece, 512) with a chat template given */
    mkmodel_params_default(&p);
    snprintf(src, sizeof(src), "%s/models/stories260K.gguf", CLLM_SHARED_DIR);
    p.vocab_from = src;
    p.chat_template = mkmodel_chat_template("chatml");
    CHECK_OK(mkmodel_write(&p, path, NULL));
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == 512);
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.scores")) == 512);
        CHECK(get_i64(g, "llama.vocab_size") == 512 && get_i64(g, "tokenizer.ggml.bos_token_id") == 1);
        CHECK_OK(gguf_get_str(g, "tokenizer.ggml.model", &s)); CHECK(str_is(s, "llama"));
        CHECK_OK(gguf_get_str(g, "tokenizer.chat_template", &s)); CHECK(str_is(s, mkmodel_chat_template("chatml")));
        CHECK(gguf_find_key(g, "tokenizer.ggml.merges") < 0);
        check_tensor(g, "token_embd.weight", DTYPE_F32, 64, 512);
        CHECK_OK(gguf_get_str(g, "general.architecture", &s)); CHECK(str_is(s, "llama"));
        CHECK_OK(gguf_get_str(g, "general.name", &s)); CHECK(!str_is(s, "llama"));
        gguf_close(g);
    }
    p.vocab_size = 600;
    CHECK(mkmodel_write(&p, path, NULL) == CLLM_ERR_INVALID_ARG);

    /* --vocab-from: the Llama 3 vocabulary */
    mkmodel_params_default(&p);
    snprintf(src, sizeof(src), "%s/reference/tokenizer/ggml-vocab-llama-bpe.gguf", CLLM_SHARED_DIR);
    p.vocab_from = src;
    p.n_layer = 1;
    p.dtype = DTYPE_Q4_0;
    CHECK_OK(mkmodel_write(&p, path, NULL));
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == 128256);
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.merges")) == 280147);
        CHECK(get_i64(g, "llama.vocab_size") == 128256 && get_i64(g, "tokenizer.ggml.eos_token_id") == 128001);
        CHECK(gguf_find_key(g, "tokenizer.chat_template") < 0);
        check_tensor(g, "token_embd.weight", DTYPE_Q4_0, 64, 128256);
        gguf_close(g);
    }
    snprintf(src, sizeof(src), "%s/no-such-file.gguf", CLLM_SHARED_DIR);
    p.vocab_from = src;
    CHECK(mkmodel_write(&p, path, NULL) == CLLM_ERR_NOT_FOUND);
    remove(path);
}

static void test_templates_and_checks(void)
{
    static const struct { const char *name, *marker; } tm[] = {
        { "llama3", "<|start_header_id|>" }, { "llama2", "<<SYS>>" }, { "chatml", "<|im_start|>" },
        { "mistral", "[INST]" }, { "gemma", "<start_of_turn>" },
    };
    mkmodel_params_t p;
    for (size_t i = 0; i < sizeof(tm) / sizeof(tm[0]); i++) {
        const char *t = mkmodel_chat_template(tm[i].name);
        CHECK(t && strstr(t, tm[i].marker) && strstr(mkmodel_chat_template_names(), tm[i].name));
    }
    CHECK(mkmodel_chat_template("nope") == NULL);
    CHECK(mkmodel_file_type(DTYPE_Q8_0) == 7 && mkmodel_file_type(DTYPE_BF16) == 32);

    mkmodel_params_default(&p);
    p.n_head_kv = 3;
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "n_head"));
    mkmodel_params_default(&p);
    p.n_embd = 48;
    p.n_head = 4;
    p.dtype = DTYPE_Q8_0;
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "multiples of 32"));
    p.dtype = DTYPE_F32;
    CHECK_OK(mkmodel_params_check(&p));
    p.n_layer = 0;
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "n_layer"));
    mkmodel_params_default(&p);
    p.head_dim = 15;
    CHECK(mkmodel_params_check(&p) == CLLM_ERR_INVALID_ARG);
    mkmodel_params_default(&p);
    CHECK(mkmodel_write(&p, "/nonexistent-dir/m.gguf", NULL) == CLLM_ERR_IO);
}

int main(void)
{
    test_dtypes();
    test_determinism_and_untied();
    test_shapes_and_rope();
    test_vocab();
    test_templates_and_checks();
    if (check_failures) {
        fprintf(stderr, "test_mkmodel: %d check(s) failed\n", check_failures);
        return 1;
    }
    printf("test_mkmodel: all checks passed\n");
    return 0;
}

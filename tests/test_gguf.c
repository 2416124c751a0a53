/* test_gguf.c: the GGUF reader and writer.
 *
 * Checks: a writer -> reader round trip of every value type, nested and string arrays, and
 * tensors of every supported type (from memory and through fill callbacks, with the default
 * and a custom alignment); copying every kv reproduces the file byte for byte; the shared
 * models and vocab files read with their known keys; hand-made malformed buffers are each
 * rejected with one error naming the problem; every strict prefix of a valid file is rejected
 * and the whole file accepted; a file ending before an empty data section's padding reads with
 * its data offset inside the file; writer misuse and I/O failures are reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "model/gguf.h"
#include "check.h"


static int str_eq(gguf_str_t s, const char *want)
{
    return s.ptr && s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

/* ---------------------------------------------------------------- a byte builder for hand-made files */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static void buf_bytes(buf_t *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void buf_u32(buf_t *b, uint32_t v) { buf_bytes(b, &v, 4); }
static void buf_u64(buf_t *b, uint64_t v) { buf_bytes(b, &v, 8); }

static void buf_str(buf_t *b, const char *s)
{
    buf_u64(b, strlen(s));
    buf_bytes(b, s, strlen(s));
}

static void buf_pad(buf_t *b, size_t align)
{
    static const uint8_t z[64];
    buf_bytes(b, z, (align - b->n % align) % align);
}

static void hdr(buf_t *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    buf_bytes(b, "GGUF", 4);
    buf_u32(b, version);
    buf_u64(b, n_tensors);
    buf_u64(b, n_kv);
}

static void kv_u32(buf_t *b, const char *key, uint32_t v)
{
    buf_str(b, key);
    buf_u32(b, GGUF_TYPE_UINT32);
    buf_u32(b, v);
}

static void tinfo(buf_t *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off)
{
    buf_str(b, name);
    buf_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) buf_u64(b, (uint64_t)ne[d]);
    buf_u32(b, type);
    buf_u64(b, off);
}

/* Opens an exact-size copy of data (so a sanitizer sees any read past its end); the caller
 * frees *copy after gguf_close. */
static status_t open_copy(const void *data, size_t n, gguf_t **g, void **copy)
{
    *copy = malloc(n ? n : 1);
    if (!*copy) abort();
    if (n) memcpy(*copy, data, n);
    return gguf_open_memory(*copy, n, g);
}

/* The buffer must be rejected with CLLM_ERR_FORMAT and a message containing word. */
static void expect_reject(const char *label, buf_t *b, const char *word)
{
    gguf_t *g = (gguf_t *)1;
    void *copy;
    status_t st = open_copy(b->p, b->n, &g, &copy);
    const char *msg = cllm_error_message();
    if (st != CLLM_ERR_FORMAT || g != NULL || !strstr(msg, word) || !strstr(msg, "gguf: ")) {
        fprintf(stderr, "FAIL %s: status %s, message '%s' (wanted a format error containing '%s')\n", label,
                cllm_status_str(st), msg, word);
        check_failures++;
    } else if (getenv("TEST_VERBOSE")) {
        fprintf(stderr, "ok %-28s %s\n", label, msg);
    }
    if (st == CLLM_OK) gguf_close(g);
    free(copy);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------- round trip */

typedef struct {
    uint8_t seed;
    int calls;
} fill_ctx_t;

static status_t fill_pattern(void *ctx, void *dst, size_t nbytes)
{
    fill_ctx_t *f = ctx;
    for (size_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = (uint8_t)(f->seed + i * 7);
    f->calls++;
    return CLLM_OK;
}

static status_t fill_fail(void *ctx, void *dst, size_t nbytes)
{
    (void)ctx, (void)dst, (void)nbytes;
    return cllm_error(CLLM_ERR_INTERNAL, "fill refused on purpose");
}

/* Encoding of an array of arrays: [[1,2,3] u32, ["a","bc"], [[-5] i8], []] (4 elements). */
static void encode_nested(buf_t *b)
{
    buf_u32(b, GGUF_TYPE_ARRAY);
    buf_u64(b, 4);
    buf_u32(b, GGUF_TYPE_UINT32); buf_u64(b, 3); buf_u32(b, 1); buf_u32(b, 2); buf_u32(b, 3);
    buf_u32(b, GGUF_TYPE_STRING); buf_u64(b, 2); buf_str(b, "a"); buf_str(b, "bc");
    buf_u32(b, GGUF_TYPE_ARRAY); buf_u64(b, 1);
    buf_u32(b, GGUF_TYPE_INT8); buf_u64(b, 1); buf_bytes(b, "\xfb", 1);
    buf_u32(b, GGUF_TYPE_FLOAT32); buf_u64(b, 0);
}

#define N_TYPES 5
static const dtype_t tensor_types[N_TYPES] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0 };

typedef struct {
    void *data[N_TYPES]; /* per type: a (64, 3) tensor's bytes */
    size_t nbytes[N_TYPES];
    uint8_t u8s[5];
    float f32s[3];
    double f64s[2];
    bool bools[3];
    int64_t i64s[2];
    float rows[64 * 3]; /* (3, 64) source values; also the data of tensor v.1d */
    fill_ctx_t fill;
} round_trip_t;

static gguf_writer_t *build_writer(round_trip_t *rt, uint32_t alignment)
{
    gguf_writer_t *w = gguf_writer_create();
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    double f64 = 3.141592653589793;
    int64_t i64 = -1234567890123ll;
    bool b = true;
    gguf_str_t strs[4] = { { "hello", 5 }, { "", 0 }, { "w\0rld", 5 }, { "\xc4\xa0the", 5 } };
    buf_t nested = { 0 };
    float *rows = rt->rows;
    int64_t ne2[2] = { 64, 3 }, ne1[1] = { 32 }, ne4[4] = { 32, 2, 2, 2 }, ne3[3] = { 8, 1, 2 };
    CHECK(w != NULL);
    if (alignment != GGUF_DEFAULT_ALIGNMENT) CHECK_OK(gguf_writer_set_u32(w, "general.alignment", alignment));
    CHECK_OK(gguf_writer_set_val(w, "t.u8", GGUF_TYPE_UINT8, &u8));
    CHECK_OK(gguf_writer_set_val(w, "t.i8", GGUF_TYPE_INT8, &i8));
    CHECK_OK(gguf_writer_set_val(w, "t.u16", GGUF_TYPE_UINT16, &u16));
    CHECK_OK(gguf_writer_set_val(w, "t.i16", GGUF_TYPE_INT16, &i16));
    CHECK_OK(gguf_writer_set_u32(w, "t.u32", 4000000000u));
    CHECK_OK(gguf_writer_set_i32(w, "t.i32", -2000000000));
    CHECK_OK(gguf_writer_set_f32(w, "t.f32", 0.25f));
    CHECK_OK(gguf_writer_set_bool(w, "t.bool", true));
    CHECK_OK(gguf_writer_set_val(w, "t.bool2", GGUF_TYPE_BOOL, &b));
    CHECK_OK(gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo", 6));
    CHECK_OK(gguf_writer_set_str(w, "t.empty_str", "", 0));
    CHECK_OK(gguf_writer_set_u64(w, "t.u64", 18000000000000000000ull));
    CHECK_OK(gguf_writer_set_val(w, "t.i64", GGUF_TYPE_INT64, &i64));
    CHECK_OK(gguf_writer_set_val(w, "t.f64", GGUF_TYPE_FLOAT64, &f64));
    CHECK_OK(gguf_writer_set_arr(w, "a.u8", GGUF_TYPE_UINT8, rt->u8s, 5));
    CHECK_OK(gguf_writer_set_arr(w, "a.f32", GGUF_TYPE_FLOAT32, rt->f32s, 3));
    CHECK_OK(gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, rt->f64s, 2));
    CHECK_OK(gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, rt->bools, 3));
    CHECK_OK(gguf_writer_set_arr(w, "a.i64", GGUF_TYPE_INT64, rt->i64s, 2));
    CHECK_OK(gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_INT32, NULL, 0));
    CHECK_OK(gguf_writer_set_arr_str(w, "a.str", strs, 4));
    encode_nested(&nested);
    CHECK_OK(gguf_writer_set_raw(w, "a.nested", GGUF_TYPE_ARRAY, nested.p, nested.n));
    free(nested.p);

    for (int i = 0; i < 64 * 3; i++) rows[i] = (float)((i * 37) % 101 - 50) / 25.0f;
    for (int k = 0; k < N_TYPES; k++) {
        char name[32];
        rt->nbytes[k] = dtype_row_bytes(tensor_types[k], 64) * 3;
        rt->data[k] = malloc(rt->nbytes[k]);
        for (int r = 0; r < 3; r++)
            dtype_from_f32_row(tensor_types[k], rows + 64 * r,
                               (uint8_t *)rt->data[k] + r * dtype_row_bytes(tensor_types[k], 64), 64);
        snprintf(name, sizeof(name), "w.%s", dtype_name(tensor_types[k]));
        CHECK_OK(gguf_writer_add_tensor(w, name, tensor_types[k], 2, ne2, rt->data[k], rt->nbytes[k]));
    }
    CHECK_OK(gguf_writer_add_tensor(w, "v.1d", DTYPE_F32, 1, ne1, rows, 32 * 4));
    CHECK_OK(gguf_writer_add_tensor_fill(w, "v.4d.q8", DTYPE_Q8_0, 4, ne4, fill_pattern, &rt->fill));
    CHECK_OK(gguf_writer_add_tensor_fill(w, "v.3d.f16", DTYPE_F16, 3, ne3, fill_pattern, &rt->fill));
    return w;
}

static void check_round_trip(const gguf_t *g, const round_trip_t *rt, uint32_t alignment, const void *base)
{
    int64_t i64 = 0, idx;
    uint64_t u64 = 0;
    uint32_t u32 = 0;
    float f = 0;
    double d = 0;
    bool b = false;
    gguf_str_t s;
    gguf_arr_t a, sub;
    const gguf_tensor_info_t *t;

    CHECK(gguf_version(g) == 3);
    CHECK(gguf_alignment(g) == alignment);
    CHECK_OK(gguf_get_i64(g, "t.u8", &i64)); CHECK(i64 == 200);
    CHECK(gguf_kv_type(g, gguf_find_key(g, "t.u8")) == GGUF_TYPE_UINT8);
    CHECK_OK(gguf_get_i64(g, "t.i8", &i64)); CHECK(i64 == -100);
    CHECK_OK(gguf_get_i64(g, "t.u16", &i64)); CHECK(i64 == 60000);
    CHECK_OK(gguf_get_i64(g, "t.i16", &i64)); CHECK(i64 == -30000);
    CHECK_OK(gguf_get_u32(g, "t.u32", &u32)); CHECK(u32 == 4000000000u);
    CHECK_OK(gguf_get_i64(g, "t.i32", &i64)); CHECK(i64 == -2000000000);
    CHECK(gguf_get_u32(g, "t.i32", &u32) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "does not fit"));
    CHECK_OK(gguf_get_f32(g, "t.f32", &f)); CHECK(f == 0.25f);
    CHECK_OK(gguf_get_bool(g, "t.bool", &b)); CHECK(b);
    b = false;
    CHECK_OK(gguf_get_bool(g, "t.bool2", &b)); CHECK(b);
    CHECK_OK(gguf_get_str(g, "t.str", &s)); CHECK(str_eq(s, "h\xc3\xa9llo"));
    CHECK_OK(gguf_get_str(g, "t.empty_str", &s)); CHECK(s.len == 0);
    CHECK_OK(gguf_get_u64(g, "t.u64", &u64)); CHECK(u64 == 18000000000000000000ull);
    CHECK(gguf_get_i64(g, "t.u64", &i64) == CLLM_ERR_FORMAT);
    CHECK_OK(gguf_get_i64(g, "t.i64", &i64)); CHECK(i64 == -1234567890123ll);
    CHECK_OK(gguf_get_f64(g, "t.f64", &d)); CHECK(d == 3.141592653589793);
    CHECK(gguf_get_i64(g, "t.str", &i64) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "t.str"));
    CHECK(gguf_get_str(g, "t.f32", &s) == CLLM_ERR_FORMAT);
    CHECK(gguf_get_i64(g, "no.such.key", &i64) == CLLM_ERR_NOT_FOUND && strstr(cllm_error_message(), "no.such.key"));
    i64 = 77;
    CHECK_OK(gguf_get_i64_opt(g, "no.such.key", &i64)); CHECK(i64 == 77);
    CHECK(gguf_get_f32_opt(g, "t.str", &f) == CLLM_ERR_FORMAT);

    idx = gguf_find_key(g, "a.u8");
    CHECK(gguf_kv_type(g, idx) == GGUF_TYPE_ARRAY && gguf_arr_type(g, idx) == GGUF_TYPE_UINT8);
    CHECK(gguf_arr_n(g, idx) == 5 && !memcmp(gguf_arr_data(g, idx), rt->u8s, 5));
    idx = gguf_find_key(g, "a.f32");
    CHECK(gguf_arr_n(g, idx) == 3 && !memcmp(gguf_arr_data(g, idx), rt->f32s, sizeof(rt->f32s)));
    idx = gguf_find_key(g, "a.f64");
    CHECK(gguf_arr_n(g, idx) == 2 && !memcmp(gguf_arr_data(g, idx), rt->f64s, sizeof(rt->f64s)));
    idx = gguf_find_key(g, "a.bool");
    CHECK(gguf_arr_n(g, idx) == 3 && !memcmp(gguf_arr_data(g, idx), "\x01\x00\x01", 3));
    idx = gguf_find_key(g, "a.i64");
    CHECK(gguf_arr_n(g, idx) == 2 && !memcmp(gguf_arr_data(g, idx), rt->i64s, sizeof(rt->i64s)));
    idx = gguf_find_key(g, "a.empty");
    CHECK(idx >= 0 && gguf_arr_n(g, idx) == 0 && gguf_arr_type(g, idx) == GGUF_TYPE_INT32);
    idx = gguf_find_key(g, "a.str");
    CHECK(gguf_arr_type(g, idx) == GGUF_TYPE_STRING && gguf_arr_n(g, idx) == 4);
    CHECK(gguf_arr_data(g, idx) == NULL);
    CHECK(str_eq(gguf_arr_str(g, idx, 0), "hello"));
    CHECK(gguf_arr_str(g, idx, 1).len == 0 && gguf_arr_str(g, idx, 1).ptr != NULL);
    s = gguf_arr_str(g, idx, 2);
    CHECK(s.len == 5 && !memcmp(s.ptr, "w\0rld", 5));
    CHECK(str_eq(gguf_arr_str(g, idx, 3), "\xc4\xa0the"));
    CHECK(gguf_arr_str(g, idx, 4).ptr == NULL);
    CHECK(str_eq(gguf_arr_sub_str(gguf_kv_arr(g, idx), 3), "\xc4\xa0the"));

    idx = gguf_find_key(g, "a.nested");
    a = gguf_kv_arr(g, idx);
    CHECK(a.type == GGUF_TYPE_ARRAY && a.n == 4);
    sub = gguf_arr_sub(a, 0);
    CHECK(sub.type == GGUF_TYPE_UINT32 && sub.n == 3 && sub.nbytes == 12);
    if (sub.data) CHECK(!memcmp(sub.data, "\x01\0\0\0\x02\0\0\0\x03\0\0\0", 12));
    sub = gguf_arr_sub(a, 1);
    CHECK(sub.type == GGUF_TYPE_STRING && sub.n == 2 && str_eq(gguf_arr_sub_str(sub, 1), "bc"));
    sub = gguf_arr_sub(gguf_arr_sub(a, 2), 0);
    CHECK(sub.type == GGUF_TYPE_INT8 && sub.n == 1 && sub.data && *(const int8_t *)sub.data == -5);
    sub = gguf_arr_sub(a, 3);
    CHECK(sub.type == GGUF_TYPE_FLOAT32 && sub.n == 0);
    CHECK(gguf_arr_sub(a, 4).type == GGUF_TYPE_COUNT);
    CHECK(gguf_arr_sub(gguf_kv_arr(g, gguf_find_key(g, "a.u8")), 0).type == GGUF_TYPE_COUNT);
    CHECK(gguf_kv_arr(g, gguf_find_key(g, "t.u8")).type == GGUF_TYPE_COUNT);
    CHECK(gguf_kv_type(g, -1) == GGUF_TYPE_COUNT && gguf_key_name(g, gguf_n_kv(g)) == NULL);

    CHECK(gguf_n_tensors(g) == N_TYPES + 3);
    for (int k = 0; k < N_TYPES; k++) {
        char name[32];
        snprintf(name, sizeof(name), "w.%s", dtype_name(tensor_types[k]));
        t = gguf_find_tensor(g, name);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(t == gguf_tensor(g, k));
        CHECK(!strcmp(t->name, name) && t->type == (uint32_t)tensor_types[k] && t->n_dims == 2);
        CHECK(t->ne[0] == 64 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1);
        CHECK(t->nbytes == rt->nbytes[k] && t->data && !memcmp(t->data, rt->data[k], t->nbytes));
        CHECK(t->offset % alignment == 0);
        if (base) CHECK(((const uint8_t *)t->data - (const uint8_t *)base) % alignment == 0);
    }
    t = gguf_find_tensor(g, "v.4d.q8");
    CHECK(t && t->n_dims == 4 && t->ne[3] == 2 && t->nbytes == 8 * sizeof(block_q8_0_t));
    if (t && t->data) {
        int ok = 1;
        for (size_t i = 0; i < t->nbytes; i++) ok &= ((const uint8_t *)t->data)[i] == (uint8_t)(rt->fill.seed + i * 7);
        CHECK(ok);
    }
    t = gguf_find_tensor(g, "v.3d.f16");
    CHECK(t && t->n_dims == 3 && t->ne[0] == 8 && t->ne[1] == 1 && t->ne[2] == 2 && t->nbytes == 32);
    CHECK(gguf_find_tensor(g, "w.nope") == NULL && gguf_tensor(g, 99) == NULL);
}

static void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    void *p;
    long len;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

static void test_round_trip(uint32_t alignment)
{
    round_trip_t rt = { .u8s = { 0, 1, 127, 128, 255 }, .f32s = { 1.5f, -2.0f, 1e-30f },
                        .f64s = { -1e300, 0.1 }, .bools = { true, false, true },
                        .i64s = { INT64_MIN, INT64_MAX }, .fill = { 9, 0 } };
    char path[256], path2[256];
    gguf_writer_t *w = build_writer(&rt, alignment), *w2;
    gguf_t *g = NULL, *gm = NULL;
    void *mem, *mem2;
    size_t n, n2;

    snprintf(path, sizeof(path), "test_gguf_rt_%u.gguf", alignment);
    snprintf(path2, sizeof(path2), "test_gguf_rt_%u_copy.gguf", alignment);
    CHECK_OK(gguf_writer_write(w, path));
    CHECK(rt.fill.calls == 2);
    CHECK(gguf_writer_n_tensors(w) == N_TYPES + 3);
    CHECK(gguf_writer_n_elements(w) == N_TYPES * 64 * 3 + 32 + 256 + 16);
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        check_round_trip(g, &rt, alignment, NULL);
        /* copying every kv and tensor reproduces the file byte for byte */
        w2 = gguf_writer_create();
        for (int64_t i = 0; i < gguf_n_kv(g); i++) CHECK_OK(gguf_writer_copy_kv(w2, g, i));
        for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
            const gguf_tensor_info_t *t = gguf_tensor(g, i);
            CHECK_OK(gguf_writer_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
        }
        CHECK_OK(gguf_writer_write(w2, path2));
        gguf_writer_destroy(w2);
        mem = read_file(path, &n);
        mem2 = read_file(path2, &n2);
        CHECK(mem && mem2 && n == n2 && !memcmp(mem, mem2, n));
        CHECK(n == gguf_file_size(g) && gguf_data_offset(g) % alignment == 0);
        /* the last tensor is padded to the alignment, as llama.cpp writes */
        CHECK(n % alignment == 0);
        if (mem) {
            CHECK_OK(gguf_open_memory(mem, n, &gm));
            if (gm) check_round_trip(gm, &rt, alignment, mem);
            gguf_close(gm);
        }
        free(mem);
        free(mem2);
        /* the same data written as v2 reads the same */
        mem = read_file(path, &n);
        if (mem) {
            ((uint8_t *)mem)[4] = 2;
            gm = NULL;
            CHECK_OK(gguf_open_memory(mem, n, &gm));
            CHECK(gm && gguf_version(gm) == 2 && gguf_n_kv(gm) == gguf_n_kv(g));
            gguf_close(gm);
            free(mem);
        }
    }
    gguf_close(g);
    gguf_writer_destroy(w);
    for (int k = 0; k < N_TYPES; k++) free(rt.data[k]);
    remove(path);
    remove(path2);
}

/* ---------------------------------------------------------------- shared files */

static void test_shared_files(void)
{
    const char *dir = CLLM_SHARED_DIR;
    char path[512];
    gguf_t *g = NULL;
    gguf_str_t s;
    int64_t v = 0;
    uint32_t u = 0;
    float f = 0;

    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", dir);
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        const gguf_tensor_info_t *t = gguf_find_tensor(g, "token_embd.weight");
        size_t n = 0;
        char *bin;
        CHECK_OK(gguf_get_str(g, "general.architecture", &s)); CHECK(str_eq(s, "llama"));
        CHECK_OK(gguf_get_i64(g, "llama.embedding_length", &v)); CHECK(v == 64);
        CHECK_OK(gguf_get_u32(g, "llama.block_count", &u)); CHECK(u == 5);
        CHECK_OK(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f)); CHECK(f > 0.9e-5f && f < 1.1e-5f);
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == 512);
        CHECK(str_eq(gguf_arr_str(g, gguf_find_key(g, "tokenizer.ggml.tokens"), 1), "<s>"));
        CHECK(gguf_n_tensors(g) == 48 && gguf_alignment(g) == 32);
        CHECK(t && t->type == DTYPE_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512);
        CHECK(t && t->nbytes == 64 * 512 * 4);
        CHECK(gguf_find_tensor(g, "output.weight") != NULL);
        /* zero copy of the same weights llama2.c's .bin holds (after its 7-int header) */
        snprintf(path, sizeof(path), "%s/models/stories260K.bin", dir);
        bin = read_file(path, &n);
        CHECK(bin && t && n >= 28 + t->nbytes && !memcmp(bin + 28, t->data, t->nbytes));
        free(bin);
        gguf_close(g);
    }

    snprintf(path, sizeof(path), "%s/models/tiny-llama3shape-tok512-random-f32.gguf", dir);
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        CHECK_OK(gguf_get_str(g, "general.architecture", &s)); CHECK(str_eq(s, "llama"));
        CHECK_OK(gguf_get_i64(g, "llama.embedding_length", &v)); CHECK(v == 256);
        CHECK_OK(gguf_get_f32(g, "llama.rope.freq_base", &f)); CHECK(f == 500000.0f);
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == 512);
        CHECK(gguf_find_tensor(g, "output.weight") == NULL && gguf_n_tensors(g) == 20);
        gguf_close(g);
    }

    snprintf(path, sizeof(path), "%s/reference/tokenizer/ggml-vocab-llama-bpe.gguf", dir);
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        int64_t tok = gguf_find_key(g, "tokenizer.ggml.tokens");
        CHECK_OK(gguf_get_str(g, "tokenizer.ggml.model", &s)); CHECK(str_eq(s, "gpt2"));
        CHECK(gguf_arr_n(g, tok) == 128256);
        CHECK(str_eq(gguf_arr_str(g, tok, 0), "!"));
        CHECK(str_eq(gguf_arr_str(g, tok, 128000), "<|begin_of_text|>"));
        CHECK(str_eq(gguf_arr_str(g, tok, 128009), "<|eot_id|>"));
        CHECK(str_eq(gguf_arr_str(g, tok, 128255), "<|reserved_special_token_250|>"));
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.merges")) == 280147);
        CHECK_OK(gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u)); CHECK(u == 128000);
        CHECK(gguf_n_tensors(g) == 0);
        gguf_close(g);
    }

    snprintf(path, sizeof(path), "%s/reference/tokenizer/ggml-vocab-llama-spm.gguf", dir);
    CHECK_OK(gguf_open(path, &g));
    if (g) {
        bool b = false;
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")) == 32000);
        CHECK(gguf_arr_n(g, gguf_find_key(g, "tokenizer.ggml.scores")) == 32000);
        CHECK_OK(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b)); CHECK(b);
        gguf_close(g);
    }
}

/* ---------------------------------------------------------------- malformed input */

static void test_malformed(void)
{
    buf_t b = { 0 };
    int64_t ne1[1] = { 8 }, ne2[2] = { 8, 2 }, big[2] = { (int64_t)1 << 32, (int64_t)1 << 32 };
    int64_t max2[2] = { INT64_MAX, 2 }, five[5] = { 1, 1, 1, 1, 1 }, neg[2] = { 8, -1 };
    int64_t big31[2] = { (int64_t)1 << 31, (int64_t)1 << 31 };
    gguf_t *g = NULL;
    void *copy;

    buf_bytes(&b, "GGUX", 4); buf_u32(&b, 3); buf_u64(&b, 0); buf_u64(&b, 0);
    expect_reject("bad magic", &b, "magic");
    hdr(&b, 1, 0, 0);
    expect_reject("version 1", &b, "version 1");
    hdr(&b, 7, 0, 0);
    expect_reject("bad version", &b, "version");
    hdr(&b, 0x03000000, 0, 0);
    expect_reject("big-endian version", &b, "big-endian");
    hdr(&b, 3, (uint64_t)1 << 62, 0);
    expect_reject("huge tensor count", &b, "tensor count");
    hdr(&b, 3, UINT64_MAX, 1);
    kv_u32(&b, "a", 1);
    expect_reject("tensor count -1", &b, "tensor count");
    hdr(&b, 3, 0, (uint64_t)1 << 60);
    expect_reject("huge kv count", &b, "key count");
    hdr(&b, 3, 0, 2);
    kv_u32(&b, "a", 1);
    expect_reject("kv count past the data", &b, "key count");

    hdr(&b, 3, 0, 1);
    buf_str(&b, "s"); buf_u32(&b, GGUF_TYPE_STRING); buf_u64(&b, 1000); buf_bytes(&b, "abcdefghijklmnop", 16);
    expect_reject("string length past end", &b, "past end");
    hdr(&b, 3, 0, 1);
    buf_u64(&b, 5000); buf_bytes(&b, "key", 3); buf_u32(&b, 0); buf_bytes(&b, "0123456789", 10);
    expect_reject("key length past end", &b, "past end");
    hdr(&b, 3, 0, 1);
    buf_str(&b, "arr"); buf_u32(&b, GGUF_TYPE_ARRAY); buf_u32(&b, GGUF_TYPE_UINT64); buf_u64(&b, (uint64_t)1 << 61);
    buf_u64(&b, 0);
    expect_reject("array size overflow", &b, "past end");
    hdr(&b, 3, 0, 1);
    buf_str(&b, "arr"); buf_u32(&b, GGUF_TYPE_ARRAY); buf_u32(&b, GGUF_TYPE_STRING); buf_u64(&b, 2);
    buf_str(&b, "ok"); buf_u64(&b, 99); buf_bytes(&b, "shortstringbytes", 16);
    expect_reject("string array past end", &b, "past end");
    hdr(&b, 3, 0, 1);
    buf_str(&b, "x"); buf_u32(&b, 13); buf_u32(&b, 0); buf_u64(&b, 0);
    expect_reject("bad value type id", &b, "type id 13");
    hdr(&b, 3, 0, 1);
    buf_str(&b, "x"); buf_u32(&b, GGUF_TYPE_ARRAY); buf_u32(&b, 99); buf_u64(&b, 0);
    expect_reject("bad array element type", &b, "type id 99");
    hdr(&b, 3, 0, 1);
    buf_str(&b, "x"); buf_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < GGUF_MAX_NESTING + 1; i++) { buf_u32(&b, GGUF_TYPE_ARRAY); buf_u64(&b, 1); }
    buf_u32(&b, GGUF_TYPE_UINT8); buf_u64(&b, 0);
    expect_reject("arrays nested too deep", &b, "nested");
    hdr(&b, 3, 0, 2);
    kv_u32(&b, "dup.key", 1); kv_u32(&b, "dup.key", 2);
    expect_reject("duplicate keys", &b, "duplicate key");
    hdr(&b, 3, 0, 1);
    buf_u64(&b, 3); buf_bytes(&b, "a\0b", 3); buf_u32(&b, GGUF_TYPE_UINT8); buf_bytes(&b, "\x01", 1);
    expect_reject("NUL in key", &b, "NUL");
    hdr(&b, 3, 0, 1);
    buf_u64(&b, 0); buf_u32(&b, GGUF_TYPE_UINT32); buf_u32(&b, 0);
    expect_reject("empty key", &b, "empty");
    hdr(&b, 3, 0, 1);
    buf_str(&b, "general.alignment"); buf_u32(&b, GGUF_TYPE_INT32); buf_u32(&b, 32);
    expect_reject("alignment not u32", &b, "general.alignment");
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_reject("alignment not a power of 2", &b, "power of two");
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect_reject("alignment 0", &b, "power of two");

    /* tensor infos; a valid layout has 32 bytes of data per f32[8] */
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, ne2, DTYPE_F32, 1024);
    buf_pad(&b, 32); buf_bytes(&b, "0123456789abcdef0123456789abcdef", 32);
    expect_reject("tensor offset past end", &b, "past end of file");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, ne2, DTYPE_F32, UINT64_MAX - 31);
    buf_pad(&b, 32);
    expect_reject("tensor offset overflow", &b, "past end of file");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, big, DTYPE_F32, 0);
    buf_pad(&b, 32);
    expect_reject("element count overflow", &b, "element count overflows");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, big31, DTYPE_F32, 0);
    buf_pad(&b, 32);
    expect_reject("byte size overflow", &b, "byte size overflows");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, max2, DTYPE_F32, 0);
    buf_pad(&b, 32);
    expect_reject("ne product overflow", &b, "element count overflows");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 5, five, DTYPE_F32, 0);
    buf_pad(&b, 32);
    expect_reject("n_dims 5", &b, "n_dims 5");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 0, five, DTYPE_F32, 0);
    buf_pad(&b, 32);
    expect_reject("n_dims 0", &b, "n_dims 0");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, neg, DTYPE_F32, 0);
    buf_pad(&b, 32);
    expect_reject("negative dim", &b, "negative");
    hdr(&b, 3, 2, 0);
    tinfo(&b, "same", 1, ne1, DTYPE_F32, 0);
    tinfo(&b, "same", 1, ne1, DTYPE_F32, 32);
    buf_pad(&b, 32); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16);
    expect_reject("duplicate tensor names", &b, "duplicate tensor");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne1, DTYPE_F32, 4);
    buf_pad(&b, 32); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16);
    expect_reject("unaligned offset", &b, "not aligned");
    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 2, ne2, DTYPE_F32, 0);
    tinfo(&b, "b", 1, ne1, DTYPE_F32, 32);
    buf_pad(&b, 32); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16);
    expect_reject("overlapping tensors", &b, "overlap");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "q", 2, ne2, DTYPE_Q8_0, 0);
    buf_pad(&b, 32); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16);
    expect_reject("row not a block multiple", &b, "block size");
    hdr(&b, 3, 1, 0);
    buf_u64(&b, 100); buf_bytes(&b, "tensor", 6); buf_bytes(&b, five, 40);
    expect_reject("tensor name past end", &b, "past end");
    hdr(&b, 3, 0, 0);
    b.n = 10;
    expect_reject("truncated header", &b, "truncated");
    expect_reject("empty buffer", &b, "truncated");

    /* tensor types we do not know are kept, with no size and no data, for the loader to name */
    hdr(&b, 3, 3, 0);
    tinfo(&b, "k", 2, ne2, 12 /* q4_k */, 0);
    tinfo(&b, "x", 1, ne1, 9999, 0);
    tinfo(&b, "f", 1, ne1, DTYPE_F32, 0);
    buf_pad(&b, 32); buf_bytes(&b, big, 16); buf_bytes(&b, big, 16);
    CHECK_OK(open_copy(b.p, b.n, &g, &copy));
    if (g) {
        const gguf_tensor_info_t *t = gguf_find_tensor(g, "k");
        CHECK(t && t->type == 12 && t->nbytes == 0 && t->data == NULL && t->ne[1] == 2);
        t = gguf_find_tensor(g, "x");
        CHECK(t && t->type == 9999 && t->nbytes == 0 && t->data == NULL);
        t = gguf_find_tensor(g, "f");
        CHECK(t && t->nbytes == 32 && t->data != NULL);
        gguf_close(g);
    }
    free(copy);
    free(b.p);

    /* files */
    CHECK(gguf_open("/nonexistent/model.gguf", &g) == CLLM_ERR_NOT_FOUND && g == NULL &&
          strstr(cllm_error_message(), "/nonexistent/model.gguf"));
    CHECK(gguf_open(".", &g) != CLLM_OK && g == NULL);
}

/* Every strict prefix of a small valid file is rejected cleanly; the whole file is accepted. */
static void test_truncation(void)
{
    const char *path = "test_gguf_trunc.gguf";
    gguf_writer_t *w = gguf_writer_create();
    float data[16];
    int64_t ne8[1] = { 8 }, ne32[2] = { 32, 1 };
    uint8_t q8[sizeof(block_q8_0_t)];
    gguf_str_t strs[3] = { { "ab", 2 }, { "", 0 }, { "cde", 3 } };
    uint32_t nums[3] = { 7, 8, 9 };
    buf_t nested = { 0 };
    size_t n = 0, n_rejected = 0;
    uint8_t *file;

    for (int i = 0; i < 16; i++) data[i] = (float)i;
    memset(q8, 3, sizeof(q8));
    encode_nested(&nested);
    CHECK_OK(gguf_writer_set_str(w, "general.architecture", "llama", 5));
    CHECK_OK(gguf_writer_set_arr(w, "n", GGUF_TYPE_UINT32, nums, 3));
    CHECK_OK(gguf_writer_set_arr_str(w, "s", strs, 3));
    CHECK_OK(gguf_writer_set_raw(w, "nested", GGUF_TYPE_ARRAY, nested.p, nested.n));
    CHECK_OK(gguf_writer_add_tensor(w, "q", DTYPE_Q8_0, 2, ne32, q8, sizeof(q8)));
    /* the last tensor is 32 bytes, so the file ends with no padding after it */
    CHECK_OK(gguf_writer_add_tensor(w, "f", DTYPE_F32, 1, ne8, data, 32));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_destroy(w);
    free(nested.p);
    file = read_file(path, &n);
    CHECK(file && n > 100);
    for (size_t len = 0; file && len <= n; len++) {
        gguf_t *g = NULL;
        void *copy;
        status_t st = open_copy(file, len, &g, &copy);
        if (len < n) {
            if (st != CLLM_ERR_FORMAT || g || !strstr(cllm_error_message(), "gguf: ")) {
                fprintf(stderr, "FAIL prefix %zu of %zu: status %s, '%s'\n", len, n, cllm_status_str(st),
                        cllm_error_message());
                check_failures++;
            }
            n_rejected += st != CLLM_OK;
        } else {
            CHECK(st == CLLM_OK && g && gguf_n_tensors(g) == 2);
        }
        gguf_close(g);
        free(copy);
    }
    CHECK(n_rejected == n);
    free(file);
    remove(path);
}

/* A file that ends right after its tensor infos, before the alignment padding of an empty data
 * section (found by tests/fuzz/fuzz_gguf): it reads, and its data section starts at the end of
 * the file, not past it. */
static void test_short_data_section(void)
{
    buf_t b = { 0 };
    gguf_t *g = NULL;
    void *copy;
    hdr(&b, 3, 0, 1);
    kv_u32(&b, "a", 7); /* 24 + 17 bytes: not a multiple of 32 */
    CHECK(b.n % GGUF_DEFAULT_ALIGNMENT != 0);
    CHECK_OK(open_copy(b.p, b.n, &g, &copy));
    if (g) CHECK(gguf_data_offset(g) == b.n, "data offset %zu, file size %zu", gguf_data_offset(g), b.n);
    gguf_close(g);
    free(copy);
    free(b.p);
}

/* ---------------------------------------------------------------- writer misuse and I/O errors */

static void test_writer_errors(void)
{
    gguf_writer_t *w = gguf_writer_create();
    float data[32] = { 0 };
    int64_t ne[2] = { 32, 1 }, ne_bad[1] = { 33 };
    buf_t bad = { 0 };
    struct stat sb;
    fill_ctx_t fc = { 0, 0 };

    CHECK_OK(gguf_writer_set_u32(w, "k", 1));
    CHECK(gguf_writer_set_u32(w, "k", 2) == CLLM_ERR_INVALID_ARG && strstr(cllm_error_message(), "duplicate key"));
    CHECK(gguf_writer_set_u32(w, "", 2) == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 48) == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_i32(w, "general.alignment", 64) == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_val(w, "s", GGUF_TYPE_STRING, "x") == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_set_arr(w, "a", GGUF_TYPE_STRING, data, 1) == CLLM_ERR_INVALID_ARG);
    buf_u32(&bad, GGUF_TYPE_UINT32); buf_u64(&bad, 5); buf_u32(&bad, 1);
    CHECK(gguf_writer_set_raw(w, "raw", GGUF_TYPE_ARRAY, bad.p, bad.n) == CLLM_ERR_FORMAT);
    CHECK(gguf_writer_set_raw(w, "raw", GGUF_TYPE_UINT8, "ab", 2) == CLLM_ERR_FORMAT);
    free(bad.p);
    CHECK_OK(gguf_writer_add_tensor(w, "t", DTYPE_F32, 2, ne, data, sizeof(data)));
    CHECK(gguf_writer_add_tensor(w, "t", DTYPE_F32, 2, ne, data, sizeof(data)) == CLLM_ERR_INVALID_ARG &&
          strstr(cllm_error_message(), "duplicate tensor"));
    CHECK(gguf_writer_add_tensor(w, "u", DTYPE_F32, 2, ne, data, 4) == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "u", 12, 2, ne, data, sizeof(data)) == CLLM_ERR_UNSUPPORTED);
    CHECK(gguf_writer_add_tensor(w, "u", DTYPE_Q8_0, 1, ne_bad, data, 34) == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_add_tensor(w, "u", DTYPE_F32, 5, ne, data, sizeof(data)) == CLLM_ERR_INVALID_ARG);
    CHECK(gguf_writer_n_tensors(w) == 1);

    CHECK(gguf_writer_write(w, "/nonexistent-dir/x.gguf") == CLLM_ERR_IO);
    if (stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode)) {
        status_t st = gguf_writer_write(w, "/dev/full");
        CHECK(st == CLLM_ERR_IO && strstr(cllm_error_message(), "/dev/full"));
        CHECK(stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode)); /* a device is never removed */
    }
    /* a failing fill callback's error comes back and no partial file is left */
    CHECK_OK(gguf_writer_add_tensor_fill(w, "filled", DTYPE_F32, 2, ne, fill_fail, &fc));
    CHECK(gguf_writer_write(w, "test_gguf_fillfail.gguf") == CLLM_ERR_INTERNAL &&
          strstr(cllm_error_message(), "on purpose"));
    CHECK(access("test_gguf_fillfail.gguf", F_OK) != 0);
    gguf_writer_destroy(w);
}

int main(void)
{
    test_round_trip(GGUF_DEFAULT_ALIGNMENT);
    test_round_trip(64);
    test_shared_files();
    test_malformed();
    test_truncation();
    test_short_data_section();
    test_writer_errors();
    if (check_failures) {
        fprintf(stderr, "test_gguf: %d check(s) failed\n", check_failures);
        return 1;
    }
    printf("test_gguf: all checks passed\n");
    return 0;
}

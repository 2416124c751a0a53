/* fuzz_gguf.c: libFuzzer target for the GGUF reader (model/gguf.h), the tokenizer's metadata
 * parsing (tokenizer_create) and the model loader's checks (model_load).
 *
 * Each input is one GGUF file. When gguf_open_memory accepts it, everything the reader promises
 * is checked: every key, value, (nested) array element and tensor can be read and lies inside
 * the buffer (ASan sees each byte read), keys and tensor names are unique and found again by
 * name, tensors are aligned and do not overlap, the typed getters never fail with anything but a
 * status, and the file copied through the writer (to a memfd) reads back identical. Then the
 * tokenizer is built from it (and used), and model_load reads it from a memfd path. A refused
 * file must come with an error message. Nothing is kept between inputs. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How many elements of an array are walked (gguf_arr_sub is O(i): keep the walk linear). */
#define WALK_MAX 32

static uint64_t walk_arr(gguf_arr_t a, const uint8_t *base, size_t size, int depth)
{
    uint64_t sum = 0;
    FUZZ_REQUIRE(depth <= GGUF_MAX_NESTING, "array nesting %d", depth);
    if (a.type == GGUF_TYPE_COUNT) return 0;
    FUZZ_REQUIRE(a.nbytes == 0 ||
                     ((const uint8_t *)a.data >= base && (const uint8_t *)a.data + a.nbytes <= base + size),
                 "array elements outside the buffer");
    sum += fuzz_touch(a.data, a.nbytes);
    if (a.type == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < a.n && i < WALK_MAX; i++) {
            gguf_arr_t sub = gguf_arr_sub(a, i);
            FUZZ_REQUIRE(sub.type != GGUF_TYPE_COUNT, "element %llu of an array of arrays missing",
                         (unsigned long long)i);
            sum += walk_arr(sub, base, size, depth + 1);
        }
    } else if (a.type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a.n && i < WALK_MAX; i++) {
            gguf_str_t s = gguf_arr_sub_str(a, i);
            FUZZ_REQUIRE(s.ptr || s.len == 0, "string %llu missing", (unsigned long long)i);
            sum += fuzz_touch(s.ptr, s.len);
        }
    } else {
        FUZZ_REQUIRE(gguf_type_size(a.type) * a.n == a.nbytes, "numeric array size");
    }
    FUZZ_REQUIRE(gguf_arr_sub(a, a.n).type == GGUF_TYPE_COUNT, "element past the end");
    FUZZ_REQUIRE(gguf_arr_sub_str(a, a.n).ptr == NULL, "string past the end");
    return sum;
}

/* Every typed getter on key: any status is fine, a crash or a wrong-typed success is not. */
static uint64_t try_getters(const gguf_t *g, const char *key, gguf_type_t t)
{
    int64_t i64 = 0;
    uint64_t u64 = 0;
    uint32_t u32 = 0;
    float f32 = 0;
    double f64 = 0;
    bool b = false;
    gguf_str_t s = { NULL, 0 };
    uint64_t sum = 0;

    sum += gguf_get_i64(g, key, &i64) == CLLM_OK;
    sum += gguf_get_u64(g, key, &u64) == CLLM_OK;
    sum += gguf_get_u32(g, key, &u32) == CLLM_OK;
    sum += gguf_get_f32(g, key, &f32) == CLLM_OK;
    sum += gguf_get_f64(g, key, &f64) == CLLM_OK;
    sum += gguf_get_bool(g, key, &b) == CLLM_OK;
    sum += gguf_get_i64_opt(g, key, &i64) == CLLM_OK;
    sum += gguf_get_u32_opt(g, key, &u32) == CLLM_OK;
    sum += gguf_get_f32_opt(g, key, &f32) == CLLM_OK;
    sum += gguf_get_bool_opt(g, key, &b) == CLLM_OK;
    if (gguf_get_str(g, key, &s) == CLLM_OK) {
        FUZZ_REQUIRE(t == GGUF_TYPE_STRING, "gguf_get_str succeeded on a %s", gguf_type_name(t));
        sum += fuzz_touch(s.ptr, s.len);
    }
    return sum + (uint64_t)i64 + u64 + u32 + (uint64_t)b;
}

static uint64_t walk_kvs(const gguf_t *g, const uint8_t *base, size_t size)
{
    uint64_t sum = 0;
    int64_t n = gguf_n_kv(g);

    for (int64_t i = 0; i < n; i++) {
        const char *key = gguf_key_name(g, i);
        gguf_type_t t = gguf_kv_type(g, i);
        const void *raw;
        size_t nraw, nchk;

        FUZZ_REQUIRE(key != NULL, "key %lld has no name", (long long)i);
        FUZZ_REQUIRE(gguf_find_key(g, key) == i, "key '%s' not found at its index", key);
        FUZZ_REQUIRE(t < GGUF_TYPE_COUNT, "key '%s': type %d", key, (int)t);
        FUZZ_REQUIRE(gguf_kv_raw(g, i, &raw, &nraw) == CLLM_OK, "key '%s': no raw value", key);
        FUZZ_REQUIRE((const uint8_t *)raw >= base && (const uint8_t *)raw + nraw <= base + size,
                     "key '%s': value outside the buffer", key);
        FUZZ_REQUIRE(gguf_value_check(t, raw, nraw, &nchk) == CLLM_OK && nchk == nraw,
                     "key '%s': the stored value does not check", key);
        sum += fuzz_touch(raw, nraw);
        if (t == GGUF_TYPE_ARRAY) {
            gguf_type_t et = gguf_arr_type(g, i);
            uint64_t an = gguf_arr_n(g, i);
            gguf_arr_t a = gguf_kv_arr(g, i);
            FUZZ_REQUIRE(a.type == et && a.n == an, "key '%s': array views disagree", key);
            if (et == GGUF_TYPE_STRING) {
                for (uint64_t k = 0; k < an; k++) {
                    gguf_str_t s = gguf_arr_str(g, i, k);
                    FUZZ_REQUIRE(s.ptr || s.len == 0, "key '%s': string %llu missing", key, (unsigned long long)k);
                    sum += fuzz_touch(s.ptr, s.len);
                }
                FUZZ_REQUIRE(gguf_arr_str(g, i, an).ptr == NULL, "key '%s': string past the end", key);
                FUZZ_REQUIRE(gguf_arr_data(g, i) == NULL, "key '%s': string array has numeric data", key);
            } else if (et != GGUF_TYPE_ARRAY) {
                FUZZ_REQUIRE(an == 0 || gguf_arr_data(g, i) != NULL, "key '%s': numeric array without data", key);
            }
            sum += walk_arr(a, base, size, 1);
        } else {
            FUZZ_REQUIRE(gguf_kv_arr(g, i).type == GGUF_TYPE_COUNT, "key '%s': scalar seen as an array", key);
        }
        sum += try_getters(g, key, t);
    }
    /* out-of-range indexes answer "nothing" */
    FUZZ_REQUIRE(gguf_key_name(g, n) == NULL && gguf_key_name(g, -1) == NULL, "key name out of range");
    FUZZ_REQUIRE(gguf_kv_type(g, n) == GGUF_TYPE_COUNT && gguf_kv_type(g, -1) == GGUF_TYPE_COUNT, "type out of range");
    FUZZ_REQUIRE(gguf_arr_n(g, n) == 0 && gguf_arr_data(g, -1) == NULL, "array out of range");
    FUZZ_REQUIRE(gguf_find_key(g, "cllm.fuzz.absent key") == -1, "absent key found");
    return sum;
}

static uint64_t walk_tensors(const gguf_t *g, const uint8_t *base, size_t size, bool *all_known)
{
    uint64_t sum = 0;
    int64_t n = gguf_n_tensors(g);
    size_t align = gguf_alignment(g);

    *all_known = true;
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor_info_t *t = gguf_tensor(g, i);
        const uint8_t *d;
        FUZZ_REQUIRE(t && t->name, "tensor %lld missing", (long long)i);
        FUZZ_REQUIRE(gguf_find_tensor(g, t->name) == t, "tensor '%s' not found by name", t->name);
        FUZZ_REQUIRE(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS, "tensor '%s': %u dims", t->name, t->n_dims);
        if (!t->data) {
            *all_known = false;
            continue;
        }
        d = t->data;
        FUZZ_REQUIRE(d >= base && d + t->nbytes <= base + size, "tensor '%s' outside the buffer", t->name);
        FUZZ_REQUIRE(t->nbytes == 0 || (size_t)(d - base) % align == 0, "tensor '%s' not aligned to %zu", t->name,
                     align);
        FUZZ_REQUIRE((size_t)(d - base) == gguf_data_offset(g) + t->offset, "tensor '%s' offset", t->name);
        sum += fuzz_touch(d, t->nbytes);
        for (int64_t k = 0; k < i && k < 4096; k++) {
            const gguf_tensor_info_t *o = gguf_tensor(g, k);
            const uint8_t *od = o->data;
            if (!od || !o->nbytes || !t->nbytes) continue;
            FUZZ_REQUIRE(d + t->nbytes <= od || od + o->nbytes <= d, "tensors '%s' and '%s' overlap", t->name, o->name);
        }
    }
    FUZZ_REQUIRE(gguf_tensor(g, n) == NULL && gguf_tensor(g, -1) == NULL, "tensor out of range");
    return sum;
}

/* Copies g through the writer into the memfd and checks the copy reads back the same. The
 * writer may refuse what the reader accepted (then nothing is compared); it must not crash. */
static void check_rewrite(const gguf_t *g)
{
    gguf_writer_t *w = gguf_writer_create();
    gguf_t *g2 = NULL;
    char path[64];
    void *copy = NULL;
    size_t copy_size = 0;
    status_t st = w ? CLLM_OK : CLLM_ERR_NOMEM;

    for (int64_t i = 0; st == CLLM_OK && i < gguf_n_kv(g); i++) st = gguf_writer_copy_kv(w, g, i);
    for (int64_t i = 0; st == CLLM_OK && i < gguf_n_tensors(g); i++) {
        const gguf_tensor_info_t *t = gguf_tensor(g, i);
        st = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    if (st == CLLM_OK && fuzz_memfd_set("", 0, path, sizeof(path)) == 0 && gguf_writer_write(w, path) == CLLM_OK &&
        (copy = fuzz_memfd_get(&copy_size)) != NULL) {
        FUZZ_REQUIRE(gguf_open_memory(copy, copy_size, &g2) == CLLM_OK, "the writer's copy does not read back");
        FUZZ_REQUIRE(gguf_n_kv(g2) == gguf_n_kv(g) && gguf_n_tensors(g2) == gguf_n_tensors(g), "copy counts differ");
        for (int64_t i = 0; i < gguf_n_kv(g); i++) {
            const void *a, *b;
            size_t na, nb;
            int64_t j = gguf_find_key(g2, gguf_key_name(g, i));
            FUZZ_REQUIRE(j >= 0 && gguf_kv_type(g2, j) == gguf_kv_type(g, i), "copy of key '%s'", gguf_key_name(g, i));
            FUZZ_REQUIRE(gguf_kv_raw(g, i, &a, &na) == CLLM_OK && gguf_kv_raw(g2, j, &b, &nb) == CLLM_OK && na == nb &&
                             !memcmp(a, b, na),
                         "copy of key '%s' has another value", gguf_key_name(g, i));
        }
        for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
            const gguf_tensor_info_t *t = gguf_tensor(g, i), *t2 = gguf_find_tensor(g2, t->name);
            FUZZ_REQUIRE(t2 && t2->type == t->type && t2->n_dims == t->n_dims &&
                             !memcmp(t2->ne, t->ne, sizeof(t->ne)) && t2->nbytes == t->nbytes &&
                             (t->nbytes == 0 || !memcmp(t2->data, t->data, t->nbytes)),
                         "copy of tensor '%s' differs", t->name);
        }
        gguf_close(g2);
    }
    free(copy);
    gguf_writer_destroy(w);
}

/* A tokenizer built from the metadata must encode and decode without trouble. */
static void check_tokenizer(const gguf_t *g, const uint8_t *data, size_t size)
{
    tokenizer_t *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    char *text = NULL, piece[64];
    const char *sample = "Hello world! <s></s><|begin_of_text|> \xe2\x96\x81 12345 \xff";

    if (tokenizer_create(g, &tok) != CLLM_OK) {
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "tokenizer_create failed without a message");
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *s = pass ? (const char *)data : sample;
        size_t len = pass ? (size < 256 ? size : 256) : strlen(sample);
        if (tokenizer_encode(tok, s, len, true, pass == 0, &ids, &n) != CLLM_OK) continue;
        for (size_t i = 0; i < n; i++)
            FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < tokenizer_n_vocab(tok), "encode gave id %d", ids[i]);
        if (tokenizer_decode(tok, ids, n, pass == 0, &text, NULL) == CLLM_OK) free(text);
        free(ids);
    }
    for (int32_t id = -1; id <= tokenizer_n_vocab(tok) && id < 64; id++) {
        size_t len = tokenizer_token_to_bytes(tok, id, true, piece, sizeof(piece));
        FUZZ_REQUIRE(len <= tokenizer_max_piece_len(tok), "piece of %d longer than max_piece_len", id);
    }
    tokenizer_destroy(tok);
}

/* model_load takes a path: the bytes go through a memfd. */
static void check_model_load(const uint8_t *data, size_t size)
{
    char path[64];
    model_t *m = NULL;
    if (fuzz_memfd_set(data, size, path, sizeof(path)) != 0) return;
    if (model_load(path, &m) == CLLM_OK) {
        char line[256];
        model_describe(m, line, sizeof(line));
        model_destroy(m);
    } else {
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "model_load failed without a message");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_t *g = NULL;
    bool all_known;
    volatile uint64_t sink = 0;

    cllm_error_clear();
    if (gguf_open_memory(data, size, &g) != CLLM_OK) {
        FUZZ_REQUIRE(g == NULL, "failed open left a context");
        FUZZ_REQUIRE(cllm_error_message()[0] != '\0', "refused without a message");
        return 0;
    }
    FUZZ_REQUIRE(gguf_file_size(g) == size && gguf_data_offset(g) <= size, "sizes");
    FUZZ_REQUIRE(gguf_alignment(g) > 0 && (gguf_alignment(g) & (gguf_alignment(g) - 1)) == 0, "alignment %zu",
                 gguf_alignment(g));
    FUZZ_REQUIRE(gguf_version(g) == 2 || gguf_version(g) == 3, "version %u", gguf_version(g));
    sink += walk_kvs(g, data, size);
    sink += walk_tensors(g, data, size, &all_known);
    if (all_known) check_rewrite(g);
    check_tokenizer(g, data, size);
    gguf_close(g);
    check_model_load(data, size);
    (void)sink;
    return 0;
}

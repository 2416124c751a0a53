/* test_safetensors.c: the safetensors reader on good and hand-broken files, and sharded
 * checkpoint directories. Every broken case must be refused with a message containing a word the
 * test names, never a crash; every truncation of a good file must be refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "check.h"


/* header + data_len bytes of data (value i & 0xff) into a malloc'd buffer */
static unsigned char *make_file(const char *header, size_t data_len, size_t *size)
{
    uint64_t hlen = strlen(header);
    unsigned char *buf;
    *size = 8 + hlen + data_len;
    buf = malloc(*size);
    memcpy(buf, &hlen, 8);
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < data_len; i++) buf[8 + hlen + i] = (unsigned char)i;
    return buf;
}

static const char *good_header =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"b.weight\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [24, 32]},"
    " \"a.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}}";

static void test_good(void)
{
    size_t size;
    unsigned char *buf = make_file(good_header, 32, &size);
    safetensors_t *st = NULL;
    const st_tensor_t *a, *b;
    CHECK(safetensors_open_memory(buf, size, "good", &st) == CLLM_OK, "good file: %s", cllm_error_message());
    if (st) {
        CHECK(safetensors_n_tensors(st) == 2, "two tensors");
        a = safetensors_find(st, "a.weight");
        b = safetensors_find(st, "b.weight");
        CHECK(a && a->dtype == ST_DTYPE_F32 && a->n_dims == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->nbytes == 24,
              "a.weight");
        CHECK(b && b->dtype == ST_DTYPE_BF16 && b->nbytes == 8 && ((const unsigned char *)b->data)[0] == 24, "b.weight");
        CHECK(!safetensors_find(st, "c.weight"), "absent tensor");
        safetensors_close(st);
    }
    /* every truncation is refused */
    for (size_t n = 0; n < size; n++) {
        st = NULL;
        CHECK(safetensors_open_memory(buf, n, "cut", &st) == CLLM_ERR_FORMAT && !st, "truncated at %zu accepted", n);
    }
    free(buf);
}

static void expect_bad(const char *what, const char *header, size_t data_len, const char *word)
{
    size_t size;
    unsigned char *buf = make_file(header, data_len, &size);
    safetensors_t *st = NULL;
    status_t err = safetensors_open_memory(buf, size, "bad", &st);
    CHECK(err == CLLM_ERR_FORMAT && !st && strstr(cllm_error_message(), word), "%s: status %d, message '%s'", what, err,
          cllm_error_message());
    safetensors_close(st);
    free(buf);
}

static void test_bad(void)
{
    unsigned char small[8];
    uint64_t huge = 1ull << 40;
    safetensors_t *st = NULL;
    memcpy(small, &huge, 8);
    CHECK(safetensors_open_memory(small, 8, "huge", &st) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "past the end"),
          "header length past the end: %s", cllm_error_message());
    expect_bad("not JSON", "{\"a\": ", 0, "JSON");
    expect_bad("not an object", "[1, 2]", 0, "object");
    expect_bad("missing dtype", "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "dtype");
    expect_bad("unknown dtype", "{\"a\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "F7");
    expect_bad("negative dim", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "dimension");
    expect_bad("too many dims",
               "{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4, "dimensions");
    expect_bad("offsets past the end", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4,
               "outside");
    expect_bad("begin after end", "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 0]}}", 4, "outside");
    expect_bad("size mismatch", "{\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, "need");
    expect_bad("shape overflow",
               "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 8]}}", 8,
               "overflow");
    expect_bad("overlap",
               "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
               " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
               12, "overlap");
    expect_bad("duplicate names",
               "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
               " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
               8, "JSON");
    expect_bad("offsets not integers", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", 4]}}", 4,
               "integers");
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_dir(void)
{
    char dir[512], path[600];
    size_t size;
    unsigned char *s1 = make_file("{\"x\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4, &size);
    safetensors_dir_t *d = NULL;
    const char *index = "{\"metadata\": {}, \"weight_map\": {\"x\": \"model-00001-of-00002.safetensors\","
                        " \"y\": \"model-00002-of-00002.safetensors\"}}";

    snprintf(dir, sizeof(dir), "%s/test_safetensors_dir", CLLM_BINARY_DIR);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/model-00001-of-00002.safetensors", dir);
    write_file(path, s1, size);
    free(s1);
    s1 = make_file("{\"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, &size);
    snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors", dir);
    write_file(path, s1, size);
    free(s1);
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    write_file(path, index, strlen(index));
    CHECK(safetensors_dir_open(dir, &d) == CLLM_OK, "sharded dir: %s", cllm_error_message());
    if (d) {
        CHECK(safetensors_dir_n_tensors(d) == 2 && safetensors_dir_find(d, "x") && safetensors_dir_find(d, "y") &&
                  safetensors_dir_find(d, "x")->dtype == ST_DTYPE_F16,
              "both shards' tensors");
        safetensors_dir_close(d);
    }
    /* the index names a tensor its shard lacks */
    index = "{\"weight_map\": {\"x\": \"model-00001-of-00002.safetensors\", \"z\": \"model-00001-of-00002.safetensors\"}}";
    write_file(path, index, strlen(index));
    CHECK(safetensors_dir_open(dir, &d) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "'z'"),
          "missing tensor: %s", cllm_error_message());
    /* a shard name that leaves the directory */
    index = "{\"weight_map\": {\"x\": \"../x.safetensors\"}}";
    write_file(path, index, strlen(index));
    CHECK(safetensors_dir_open(dir, &d) == CLLM_ERR_FORMAT && strstr(cllm_error_message(), "plain file"),
          "path in shard name: %s", cllm_error_message());
    /* a missing shard */
    index = "{\"weight_map\": {\"x\": \"model-00009.safetensors\"}}";
    write_file(path, index, strlen(index));
    CHECK(safetensors_dir_open(dir, &d) == CLLM_ERR_IO && strstr(cllm_error_message(), "model-00009"),
          "missing shard: %s", cllm_error_message());
    remove(path);
    snprintf(path, sizeof(path), "%s/model-00001-of-00002.safetensors", dir);
    remove(path);
    snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors", dir);
    remove(path);
    /* no index and no model.safetensors */
    CHECK(safetensors_dir_open(dir, &d) == CLLM_ERR_IO, "empty dir");
    rmdir(dir);
}

int main(void)
{
    test_good();
    test_bad();
    test_dir();
    if (check_failures) {
        fprintf(stderr, "%d failures\n", check_failures);
        return 1;
    }
    fprintf(stderr, "ok\n");
    return 0;
}

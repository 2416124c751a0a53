/* safetensors_write.c: streaming safetensors writer (see safetensors.h).
 *
 * Owns the list of planned tensors (names and shapes copied; data referenced or produced by a
 * fill callback at write time) and the "__metadata__" pairs. Invariants: names are unique and
 * non-empty; every tensor's nbytes equals its shape's element count times its dtype size (checked
 * at add time, with overflow-safe products); a write lays tensors out in the order added, so a
 * tensor's data offset is the sum of the sizes before it in its file. */
#include "model/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *name;
    st_dtype_t dtype;
    uint32_t n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t nbytes;
    const void *data;          /* or NULL with fill set */
    safetensors_fill_fn fill;
    void *fill_ctx;
} planned_tensor_t;

struct safetensors_writer {
    planned_tensor_t *tensors; /* (n) in write order */
    size_t n, cap;
    json_t *metadata;          /* string -> string object */
};

safetensors_writer_t *safetensors_writer_create(void)
{
    safetensors_writer_t *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->metadata = json_object();
    if (!w->metadata) {
        free(w);
        return NULL;
    }
    return w;
}

void safetensors_writer_destroy(safetensors_writer_t *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->tensors[i].name);
    free(w->tensors);
    json_decref(w->metadata);
    free(w);
}

status_t safetensors_writer_set_metadata(safetensors_writer_t *w, const char *key, const char *value)
{
    json_t *v;
    if (!w || !key || !value) return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: NULL metadata argument");
    v = json_string(value);
    if (!v || json_object_set_new(w->metadata, key, v) != 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: metadata '%s' is not valid UTF-8 (or out of memory)", key);
    return CLLM_OK;
}

static status_t add(safetensors_writer_t *w, const char *name, st_dtype_t dtype, uint32_t n_dims, const int64_t *shape,
                    const void *data, size_t nbytes, safetensors_fill_fn fill, void *fill_ctx)
{
    planned_tensor_t *t;
    size_t count = 1, bytes;
    if (!w || !name || !name[0] || (n_dims && !shape))
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: a tensor needs a writer, a non-empty name and a shape");
    if (!strcmp(name, "__metadata__"))
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: '__metadata__' is not a tensor name");
    if (dtype >= ST_DTYPE_COUNT) return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': bad dtype", name);
    if (n_dims > SAFETENSORS_MAX_DIMS)
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': %u dimensions (at most %d)", name, n_dims,
                          SAFETENSORS_MAX_DIMS);
    for (uint32_t d = 0; d < n_dims; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(count, (size_t)shape[d], &count))
            return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': bad shape", name);
    }
    if (__builtin_mul_overflow(count, st_dtype_size(dtype), &bytes))
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': size overflows", name);
    if (!fill && nbytes != bytes)
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': %zu bytes given, its shape needs %zu", name,
                          nbytes, bytes);
    if (!fill && bytes && !data) return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': no data", name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->tensors[i].name, name))
            return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        planned_tensor_t *nt = realloc(w->tensors, cap * sizeof(*nt));
        if (!nt) return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
        w->tensors = nt;
        w->cap = cap;
    }
    t = &w->tensors[w->n];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name) return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    t->nbytes = bytes;
    t->data = data;
    t->fill = fill;
    t->fill_ctx = fill_ctx;
    w->n++;
    return CLLM_OK;
}

status_t safetensors_writer_add_tensor(safetensors_writer_t *w, const char *name, st_dtype_t dtype, uint32_t n_dims,
                                       const int64_t *shape, const void *data, size_t nbytes)
{
    return add(w, name, dtype, n_dims, shape, data, nbytes, NULL, NULL);
}

status_t safetensors_writer_add_tensor_fill(safetensors_writer_t *w, const char *name, st_dtype_t dtype,
                                            uint32_t n_dims, const int64_t *shape, safetensors_fill_fn fill,
                                            void *fill_ctx)
{
    if (!fill) return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: tensor '%s': NULL fill callback", name ? name : "");
    return add(w, name, dtype, n_dims, shape, NULL, 0, fill, fill_ctx);
}

size_t safetensors_writer_n_tensors(const safetensors_writer_t *w)
{
    return w ? w->n : 0;
}

uint64_t safetensors_writer_data_bytes(const safetensors_writer_t *w)
{
    uint64_t total = 0;
    for (size_t i = 0; w && i < w->n; i++) total += w->tensors[i].nbytes;
    return total;
}

/* The JSON header of tensors [i0, i1), without padding; malloc'd text in *out. */
static status_t header_json(const safetensors_writer_t *w, size_t i0, size_t i1, char **out)
{
    json_t *root = json_object();
    uint64_t off = 0;
    int err = !root;
    *out = NULL;
    if (!err && json_object_size(w->metadata)) err = json_object_set(root, "__metadata__", w->metadata) != 0;
    for (size_t i = i0; i < i1 && !err; i++) {
        const planned_tensor_t *t = &w->tensors[i];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        err = !e || !shape || !offs;
        for (uint32_t d = 0; d < t->n_dims && !err; d++) err = json_array_append_new(shape, json_integer(t->shape[d])) != 0;
        if (!err) err = json_array_append_new(offs, json_integer((json_int_t)off)) != 0;
        if (!err) err = json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes))) != 0;
        if (!err) err = json_object_set_new(e, "dtype", json_string(st_dtype_name(t->dtype))) != 0;
        if (!err) {
            err = json_object_set_new(e, "shape", shape) != 0;
            shape = NULL;
        }
        if (!err) {
            err = json_object_set_new(e, "data_offsets", offs) != 0;
            offs = NULL;
        }
        if (!err) {
            /* set_new takes e even when it fails */
            err = json_object_set_new(root, t->name, e) != 0;
            e = NULL;
        }
        json_decref(e);
        json_decref(shape);
        json_decref(offs);
        off += t->nbytes;
    }
    if (!err) *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (err || !*out)
        return cllm_error(CLLM_ERR_INVALID_ARG,
                          "safetensors: cannot build the header (a name that is not UTF-8, or out of memory)");
    return CLLM_OK;
}

/* Writes tensors [i0, i1) as one file. */
static status_t write_file(safetensors_writer_t *w, size_t i0, size_t i1, const char *path)
{
    char *header = NULL;
    unsigned char len_le[8];
    uint64_t hlen, padded;
    size_t buf_cap = 0;
    void *buf = NULL;
    FILE *f = NULL;
    status_t st;
    int io_ok;
    struct stat sb;

    if ((st = header_json(w, i0, i1, &header)) != CLLM_OK) return st;
    hlen = strlen(header);
    padded = (hlen + 7) & ~(uint64_t)7; /* data starts at 8 + padded: a multiple of 8 */
    for (int b = 0; b < 8; b++) len_le[b] = (unsigned char)(padded >> (8 * b));
    for (size_t i = i0; i < i1; i++)
        if (w->tensors[i].fill && w->tensors[i].nbytes > buf_cap) buf_cap = w->tensors[i].nbytes;
    if (buf_cap && !(buf = malloc(buf_cap))) {
        free(header);
        return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory for a %zu-byte tensor", buf_cap);
    }
    f = fopen(path, "wb");
    if (!f) {
        st = cllm_error(CLLM_ERR_IO, "safetensors: %s: cannot create: %s", path, strerror(errno));
        free(header);
        free(buf);
        return st;
    }
    io_ok = fwrite(len_le, 1, 8, f) == 8 && fwrite(header, 1, (size_t)hlen, f) == hlen;
    for (uint64_t p = hlen; p < padded && io_ok; p++) io_ok = fputc(' ', f) != EOF;
    free(header);
    for (size_t i = i0; i < i1 && io_ok && st == CLLM_OK; i++) {
        const planned_tensor_t *t = &w->tensors[i];
        const void *data = t->data;
        if (t->fill) {
            if ((st = t->fill(t->fill_ctx, buf, t->nbytes)) != CLLM_OK) break;
            data = buf;
        }
        if (t->nbytes) io_ok = fwrite(data, 1, t->nbytes, f) == t->nbytes;
    }
    if (fclose(f) != 0) io_ok = 0;
    free(buf);
    if (st == CLLM_OK && !io_ok) st = cllm_error(CLLM_ERR_IO, "safetensors: %s: write failed: %s", path, strerror(errno));
    if (st != CLLM_OK && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) remove(path);
    return st;
}

status_t safetensors_writer_write(safetensors_writer_t *w, const char *path)
{
    if (!w || !path) return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: NULL argument");
    return write_file(w, 0, w->n, path);
}

/* dir/model.safetensors.index.json for the shard boundaries first[0..n_shards]. */
static status_t write_index(const safetensors_writer_t *w, const char *dir, const size_t *first, int n_shards)
{
    char path[PATH_MAX], file[64];
    json_t *root = json_object(), *meta = json_object(), *map = json_object();
    int err = !root || !meta || !map;
    status_t st = CLLM_OK;
    if (!err) err = json_object_set_new(meta, "total_size", json_integer((json_int_t)safetensors_writer_data_bytes(w)));
    for (int s = 0; s < n_shards && !err; s++) {
        snprintf(file, sizeof(file), "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        for (size_t i = first[s]; i < first[s + 1] && !err; i++)
            err = json_object_set_new(map, w->tensors[i].name, json_string(file)) != 0;
    }
    if (!err) {
        err = json_object_set_new(root, "metadata", meta) != 0;
        meta = NULL;
    }
    if (!err) {
        err = json_object_set_new(root, "weight_map", map) != 0;
        map = NULL;
    }
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (err) st = cllm_error(CLLM_ERR_NOMEM, "safetensors: cannot build %s", path);
    else if (json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
        st = cllm_error(CLLM_ERR_IO, "safetensors: %s: cannot write", path);
    json_decref(root);
    json_decref(meta);
    json_decref(map);
    return st;
}

status_t safetensors_writer_write_dir(safetensors_writer_t *w, const char *dir, int n_shards)
{
    char path[PATH_MAX];
    size_t *first;
    uint64_t total, target, bytes = 0;
    int s = 0;
    status_t st = CLLM_OK;

    if (!w || !dir) return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: NULL argument");
    if (n_shards < 1 || (size_t)n_shards > w->n || n_shards > 99999)
        return cllm_error(CLLM_ERR_INVALID_ARG, "safetensors: %d shards for %zu tensors (1 to %zu)", n_shards, w->n,
                          w->n < 99999 ? w->n : 99999);
    if (n_shards == 1) {
        /* an index left by an earlier sharded write would win over the new file */
        snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
        if (remove(path) != 0 && errno != ENOENT)
            return cllm_error(CLLM_ERR_IO, "safetensors: %s: cannot remove the stale index: %s", path, strerror(errno));
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        return write_file(w, 0, w->n, path);
    }
    /* first[s]: index of shard s's first tensor; a shard closes once it holds about 1/n of the
     * bytes, or when exactly one tensor is left for each shard still to fill */
    first = calloc((size_t)n_shards + 1, sizeof(*first));
    if (!first) return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    total = safetensors_writer_data_bytes(w);
    target = (total + (uint64_t)n_shards - 1) / (uint64_t)n_shards;
    for (size_t i = 0; i < w->n; i++) {
        bool started = i > first[s];
        bool must_move = w->n - i == (size_t)(n_shards - 1 - s);
        if (s < n_shards - 1 && started && (bytes + w->tensors[i].nbytes > target || must_move)) {
            first[++s] = i;
            bytes = 0;
        }
        bytes += w->tensors[i].nbytes;
    }
    first[n_shards] = w->n;
    for (int k = 0; k < n_shards && st == CLLM_OK; k++) {
        snprintf(path, sizeof(path), "%s/model-%05d-of-%05d.safetensors", dir, k + 1, n_shards);
        st = write_file(w, first[k], first[k + 1], path);
    }
    if (st == CLLM_OK) st = write_index(w, dir, first, n_shards);
    free(first);
    return st;
}

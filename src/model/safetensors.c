/* safetensors.c: safetensors reader (see safetensors.h).
 *
 * Invariants after a successful open: tensors are sorted by name (binary search), names are
 * unique, every tensor's bytes lie inside the data section, match shape x dtype size exactly, and
 * no two tensors overlap. */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header over this is refused (the format's own limit is 100 MB). */
#define SAFETENSORS_MAX_HEADER (100u << 20)

struct safetensors {
    char *label;          /* file name for messages */
    void *map;            /* whole file when opened from a path, else NULL */
    size_t map_size;
    st_tensor_t *tensors; /* (n), sorted by name */
    size_t n;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_DTYPE_F32] = { "F32", 4 },  [ST_DTYPE_F16] = { "F16", 2 },          [ST_DTYPE_BF16] = { "BF16", 2 },
    [ST_DTYPE_F64] = { "F64", 8 },  [ST_DTYPE_I64] = { "I64", 8 },          [ST_DTYPE_I32] = { "I32", 4 },
    [ST_DTYPE_I16] = { "I16", 2 },  [ST_DTYPE_I8] = { "I8", 1 },            [ST_DTYPE_U8] = { "U8", 1 },
    [ST_DTYPE_BOOL] = { "BOOL", 1 }, [ST_DTYPE_F8_E4M3] = { "F8_E4M3", 1 }, [ST_DTYPE_F8_E5M2] = { "F8_E5M2", 1 },
};

const char *st_dtype_name(st_dtype_t t)
{
    return t < ST_DTYPE_COUNT ? dtypes[t].name : "unknown";
}

size_t st_dtype_size(st_dtype_t t)
{
    return t < ST_DTYPE_COUNT ? dtypes[t].size : 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor_t *)a)->name, ((const st_tensor_t *)b)->name);
}

static int cmp_data(const void *a, const void *b)
{
    const char *x = ((const st_tensor_t *)a)->data, *y = ((const st_tensor_t *)b)->data;
    return (x > y) - (x < y);
}

void safetensors_close(safetensors_t *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
    free(st->tensors);
    if (st->map) munmap(st->map, st->map_size);
    free(st->label);
    free(st);
}

/* Parses one tensor entry; data_base/data_size: the data section. */
static status_t parse_tensor(const safetensors_t *st, const char *name, json_t *e, const char *data_base,
                             size_t data_size, st_tensor_t *t)
{
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"), *jo = json_object_get(e, "data_offsets");
    const char *dn;
    json_int_t begin, end;
    size_t count = 1, bytes;

    if (!json_is_object(e) || !json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2)
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': needs \"dtype\", \"shape\" and two \"data_offsets\"",
                          st->label, name);
    dn = json_string_value(jd);
    t->dtype = ST_DTYPE_COUNT;
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(dn, dtypes[i].name)) t->dtype = (st_dtype_t)i;
    if (t->dtype == ST_DTYPE_COUNT)
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': unknown dtype '%s'", st->label, name, dn);
    if (json_array_size(js) > SAFETENSORS_MAX_DIMS)
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': %zu dimensions (at most %d)", st->label, name,
                          json_array_size(js), SAFETENSORS_MAX_DIMS);
    t->n_dims = (uint32_t)json_array_size(js);
    for (uint32_t d = 0; d < t->n_dims; d++) {
        json_t *v = json_array_get(js, d);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        if (n < 0)
            return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': dimension %u is not a non-negative integer",
                              st->label, name, d);
        t->shape[d] = (int64_t)n;
        if (__builtin_mul_overflow(count, (size_t)n, &count))
            return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': shape overflows", st->label, name);
    }
    if (__builtin_mul_overflow(count, dtypes[t->dtype].size, &bytes))
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': size overflows", st->label, name);
    if (!json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1)))
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': data_offsets are not integers", st->label, name);
    begin = json_integer_value(json_array_get(jo, 0));
    end = json_integer_value(json_array_get(jo, 1));
    if (begin < 0 || end < begin || (uint64_t)end > data_size)
        return cllm_error(CLLM_ERR_FORMAT,
                          "safetensors: %s: tensor '%s': data_offsets [%lld, %lld] outside the data section (%zu bytes)",
                          st->label, name, (long long)begin, (long long)end, data_size);
    if ((uint64_t)(end - begin) != bytes)
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s': %lld bytes of data, its shape and dtype need %zu",
                          st->label, name, (long long)(end - begin), bytes);
    t->data = data_base + begin;
    t->nbytes = bytes;
    return CLLM_OK;
}

static status_t parse(safetensors_t *st, const unsigned char *buf, size_t size)
{
    uint64_t hlen;
    json_t *root;
    json_error_t jerr;
    const char *key;
    json_t *val;
    const char *data_base;
    size_t data_size, i = 0;
    status_t err = CLLM_OK;

    if (size < 8) return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: %zu bytes is too short for a header", st->label, size);
    memcpy(&hlen, buf, 8); /* little-endian host (x86-64) */
    if (hlen > SAFETENSORS_MAX_HEADER || hlen > size - 8)
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: header length %llu past the end of the file (%zu bytes)",
                          st->label, (unsigned long long)hlen, size);
    root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: header is not valid JSON: %s", st->label, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: header is not a JSON object", st->label);
    }
    data_base = (const char *)buf + 8 + hlen;
    data_size = size - 8 - (size_t)hlen;
    st->tensors = calloc(json_object_size(root) + 1, sizeof(st_tensor_t));
    if (!st->tensors) {
        json_decref(root);
        return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    }
    json_object_foreach(root, key, val) {
        st_tensor_t *t;
        if (!strcmp(key, "__metadata__")) continue;
        t = &st->tensors[i];
        if ((err = parse_tensor(st, key, val, data_base, data_size, t)) != CLLM_OK) break;
        t->name = strdup(key);
        if (!t->name) {
            err = cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
            break;
        }
        i++;
    }
    st->n = i;
    json_decref(root);
    if (err != CLLM_OK) return err;

    /* no two tensors may share bytes */
    qsort(st->tensors, st->n, sizeof(st_tensor_t), cmp_data);
    for (i = 1; i < st->n; i++) {
        const st_tensor_t *a = &st->tensors[i - 1], *b = &st->tensors[i];
        if ((const char *)a->data + a->nbytes > (const char *)b->data && a->nbytes && b->nbytes)
            return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensors '%s' and '%s' overlap", st->label, a->name, b->name);
    }
    qsort(st->tensors, st->n, sizeof(st_tensor_t), cmp_name);
    return CLLM_OK;
}

status_t safetensors_open_memory(const void *data, size_t size, const char *name, safetensors_t **out)
{
    safetensors_t *st = calloc(1, sizeof(*st));
    status_t err;
    *out = NULL;
    if (!st || !(st->label = strdup(name ? name : "(memory)"))) {
        free(st);
        return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    }
    if ((err = parse(st, data, size)) != CLLM_OK) {
        safetensors_close(st);
        return err;
    }
    *out = st;
    return CLLM_OK;
}

status_t safetensors_open(const char *path, safetensors_t **out)
{
    safetensors_t *st;
    struct stat sb;
    status_t err;
    int fd;

    *out = NULL;
    fd = open(path, O_RDONLY);
    if (fd < 0) return cllm_error(CLLM_ERR_IO, "safetensors: %s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        close(fd);
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: too short for a header", path);
    }
    st = calloc(1, sizeof(*st));
    if (!st || !(st->label = strdup(path))) {
        free(st);
        close(fd);
        return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    }
    st->map_size = (size_t)sb.st_size;
    st->map = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        safetensors_close(st);
        return cllm_error(CLLM_ERR_IO, "safetensors: %s: cannot map: %s", path, strerror(errno));
    }
    if ((err = parse(st, st->map, st->map_size)) != CLLM_OK) {
        safetensors_close(st);
        return err;
    }
    *out = st;
    return CLLM_OK;
}

size_t safetensors_n_tensors(const safetensors_t *st)
{
    return st->n;
}

const st_tensor_t *safetensors_tensor(const safetensors_t *st, size_t i)
{
    return i < st->n ? &st->tensors[i] : NULL;
}

const st_tensor_t *safetensors_find(const safetensors_t *st, const char *name)
{
    st_tensor_t key;
    key.name = name;
    return bsearch(&key, st->tensors, st->n, sizeof(st_tensor_t), cmp_name);
}

/* ---- checkpoint directories ---- */

struct safetensors_dir {
    safetensors_t **shards; /* (n_shards) */
    size_t n_shards;
};

void safetensors_dir_close(safetensors_dir_t *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_shards; i++) safetensors_close(d->shards[i]);
    free(d->shards);
    free(d);
}

static status_t dir_add(safetensors_dir_t *d, const char *dir, const char *file)
{
    char path[PATH_MAX];
    safetensors_t **n;
    status_t err;
    if (strchr(file, '/') || !strcmp(file, "..") || !*file)
        return cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: shard name '%s' is not a plain file name", dir, file);
    for (size_t i = 0; i < d->n_shards; i++) {
        const char *label = d->shards[i]->label, *base = strrchr(label, '/');
        if (!strcmp(base ? base + 1 : label, file)) return CLLM_OK;
    }
    n = realloc(d->shards, (d->n_shards + 1) * sizeof(*n));
    if (!n) return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    d->shards = n;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if ((err = safetensors_open(path, &d->shards[d->n_shards])) != CLLM_OK) return err;
    d->n_shards++;
    return CLLM_OK;
}

status_t safetensors_dir_open(const char *dir, safetensors_dir_t **out)
{
    safetensors_dir_t *d = calloc(1, sizeof(*d));
    char path[PATH_MAX];
    json_error_t jerr;
    json_t *index, *map, *val;
    const char *key;
    status_t err = CLLM_OK;

    *out = NULL;
    if (!d) return cllm_error(CLLM_ERR_NOMEM, "safetensors: out of memory");
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (access(path, R_OK) != 0) {
        err = dir_add(d, dir, "model.safetensors");
    } else {
        index = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        map = index ? json_object_get(index, "weight_map") : NULL;
        if (!json_is_object(map)) {
            err = cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: no \"weight_map\" object%s%s", path, index ? "" : ": ",
                             index ? "" : jerr.text);
        } else {
            json_object_foreach(map, key, val) {
                if (!json_is_string(val)) {
                    err = cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: weight_map['%s'] is not a file name", path, key);
                    break;
                }
                if ((err = dir_add(d, dir, json_string_value(val))) != CLLM_OK) break;
            }
            /* every tensor the index names must be in the shard it names */
            if (err == CLLM_OK) {
                json_object_foreach(map, key, val) {
                    if (!safetensors_dir_find(d, key)) {
                        err = cllm_error(CLLM_ERR_FORMAT, "safetensors: %s: tensor '%s' is not in shard '%s'", path, key,
                                         json_string_value(val));
                        break;
                    }
                }
            }
        }
        json_decref(index);
    }
    if (err != CLLM_OK) {
        safetensors_dir_close(d);
        return err;
    }
    *out = d;
    return CLLM_OK;
}

const st_tensor_t *safetensors_dir_find(const safetensors_dir_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_shards; i++) {
        const st_tensor_t *t = safetensors_find(d->shards[i], name);
        if (t) return t;
    }
    return NULL;
}

size_t safetensors_dir_n_tensors(const safetensors_dir_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_shards; i++) n += d->shards[i]->n;
    return n;
}

/* gguf.c: the GGUF reader (v2, v3) (see gguf.h; values are checked by gguf_value.c).
 *
 * Owns: the mapping of an opened file (or a borrowed buffer), the NUL-terminated copies of
 * keys and tensor names, the offsets index of every string array, and two hash indexes
 * (key -> kv, name -> tensor).
 * Invariants after a successful open: every kv value and tensor info was checked against the
 * buffer size with overflow-safe arithmetic, so any later read of a value (including walks
 * through nested arrays) stays inside the buffer; keys and tensor names are unique; each known
 * type tensor's [data, data + nbytes) lies inside the buffer and overlaps no other tensor.
 * Allocations are bounded by what the buffer size allows (a count is checked against the
 * smallest encoding of one element before anything is allocated for it).
 * Layout assumption: the host is little-endian, as GGUF files are. */
#include "model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "gguf reader assumes a little-endian host");

#define GGUF_MAGIC "GGUF"
/* Smallest encodings, used to bound counts before allocating: a kv is a key length (8), a
 * 1-byte key, a type id (4) and at least a 1-byte value; a tensor info is a name length (8), a
 * 1-byte name, n_dims (4), one dim (8), a type (4) and an offset (8). */
#define GGUF_MIN_KV_BYTES 14
#define GGUF_MIN_TENSOR_INFO_BYTES 33
#define GGUF_MAX_NAME_LEN 65535

typedef struct {
    char *key;             /* NUL-terminated copy */
    gguf_type_t type;
    const uint8_t *val;    /* the encoded value (after the type id), into the buffer */
    size_t val_size;       /* its encoded length */
    gguf_arr_t arr;        /* arrays: element type, count, element bytes; else type COUNT */
    uint64_t *str_off;     /* string arrays: (arr.n) offsets from arr.data of each length prefix */
} gguf_kv_t;

/* Open-addressing hash index from a name to an index into kvs or tensors; -1 = empty slot. */
typedef struct {
    int64_t *slots; /* (mask + 1) */
    size_t mask;
} name_index_t;

struct gguf {
    const uint8_t *base;  /* (size) the file bytes */
    size_t size;
    void *map;            /* the mmap'd region, or NULL for gguf_open_memory */
    char *name;           /* path (or "<memory>") for messages */
    uint32_t version;
    size_t alignment;
    size_t data_start;    /* file offset of the data section (may equal size with no tensors) */
    gguf_kv_t *kvs;       /* (n_kv) */
    int64_t n_kv;
    gguf_tensor_info_t *tensors; /* (n_tensors); names malloc'd */
    int64_t n_tensors;
    name_index_t key_index;
    name_index_t tensor_index;
};

/* ---------------------------------------------------------------- little-endian reads */

static uint32_t rd_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ---------------------------------------------------------------- name index */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static status_t index_init(name_index_t *ix, int64_t n)
{
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    ix->slots = malloc(cap * sizeof(*ix->slots));
    if (!ix->slots) return cllm_error(CLLM_ERR_NOMEM, "gguf: out of memory for a name index of %zu slots", cap);
    memset(ix->slots, 0xff, cap * sizeof(*ix->slots)); /* all -1 */
    ix->mask = cap - 1;
    return CLLM_OK;
}

/* Inserts idx under name (names(i) gives the name of entry i). Returns -1 when inserted, or
 * the index already stored under the same name. */
typedef const char *(*name_of_fn)(const gguf_t *g, int64_t i);

static int64_t index_insert(name_index_t *ix, const gguf_t *g, name_of_fn name_of, const char *name, int64_t idx)
{
    size_t s = (size_t)hash_name(name) & ix->mask;
    while (ix->slots[s] >= 0) {
        if (!strcmp(name_of(g, ix->slots[s]), name)) return ix->slots[s];
        s = (s + 1) & ix->mask;
    }
    ix->slots[s] = idx;
    return -1;
}

static int64_t index_find(const name_index_t *ix, const gguf_t *g, name_of_fn name_of, const char *name)
{
    size_t s;
    if (!ix->slots) return -1;
    s = (size_t)hash_name(name) & ix->mask;
    while (ix->slots[s] >= 0) {
        if (!strcmp(name_of(g, ix->slots[s]), name)) return ix->slots[s];
        s = (s + 1) & ix->mask;
    }
    return -1;
}

static const char *kv_name_of(const gguf_t *g, int64_t i)
{
    return g->kvs[i].key;
}

static const char *tensor_name_of(const gguf_t *g, int64_t i)
{
    return g->tensors[i].name;
}

/* ---------------------------------------------------------------- parsing */

typedef struct {
    gguf_t *g;
    size_t pos; /* next byte to read */
} cursor_t;

/* Sets the one-line error "gguf: NAME: <message>" and returns st. */
static status_t fail(const gguf_t *g, status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static status_t fail(const gguf_t *g, status_t st, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cllm_error(st, "gguf: %s: %s", g->name, msg);
}

static status_t need(cursor_t *c, size_t n, const char *what)
{
    if (c->g->size - c->pos < n)
        return fail(c->g, CLLM_ERR_FORMAT, "truncated file: %s at offset %zu needs %zu bytes, file size %zu",
                    what, c->pos, n, c->g->size);
    return CLLM_OK;
}

static status_t read_u32(cursor_t *c, uint32_t *v, const char *what)
{
    status_t st = need(c, 4, what);
    if (st != CLLM_OK) return st;
    *v = rd_u32(c->g->base + c->pos);
    c->pos += 4;
    return CLLM_OK;
}

static status_t read_u64(cursor_t *c, uint64_t *v, const char *what)
{
    status_t st = need(c, 8, what);
    if (st != CLLM_OK) return st;
    *v = rd_u64(c->g->base + c->pos);
    c->pos += 8;
    return CLLM_OK;
}

/* Reads a key or tensor name into a new NUL-terminated string: non-empty, at most
 * GGUF_MAX_NAME_LEN bytes, no embedded NUL. what names it for messages ("key 3"). */
static status_t read_name(cursor_t *c, char **out, const char *what)
{
    uint64_t len;
    const char *p;
    status_t st = read_u64(c, &len, what);
    if (st != CLLM_OK) return st;
    if (len > c->g->size - c->pos)
        return fail(c->g, CLLM_ERR_FORMAT, "%s: string length %" PRIu64 " past end of file (offset %zu, file size %zu)",
                    what, len, c->pos, c->g->size);
    if (len == 0) return fail(c->g, CLLM_ERR_FORMAT, "%s: empty name at offset %zu", what, c->pos);
    if (len > GGUF_MAX_NAME_LEN)
        return fail(c->g, CLLM_ERR_FORMAT, "%s: name length %" PRIu64 " exceeds %d", what, len, GGUF_MAX_NAME_LEN);
    p = (const char *)c->g->base + c->pos;
    if (memchr(p, 0, (size_t)len))
        return fail(c->g, CLLM_ERR_FORMAT, "%s: name has an embedded NUL byte (offset %zu)", what, c->pos);
    *out = malloc((size_t)len + 1);
    if (!*out) return fail(c->g, CLLM_ERR_NOMEM, "%s: out of memory", what);
    memcpy(*out, p, (size_t)len);
    (*out)[len] = '\0';
    c->pos += (size_t)len;
    return CLLM_OK;
}

static status_t parse_header(cursor_t *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    gguf_t *g = c->g;
    status_t st;
    uint64_t left;
    if (g->size < 4)
        return fail(g, CLLM_ERR_FORMAT, "truncated file: %zu bytes, too short for the GGUF magic", g->size);
    if (memcmp(g->base, GGUF_MAGIC, 4))
        return fail(g, CLLM_ERR_FORMAT, "bad magic %02x %02x %02x %02x (not a GGUF file)", g->base[0], g->base[1],
                    g->base[2], g->base[3]);
    c->pos = 4;
    if ((st = read_u32(c, &g->version, "version")) != CLLM_OK) return st;
    if (g->version == 1)
        return fail(g, CLLM_ERR_FORMAT, "GGUF version 1 is not supported (only versions 2 and 3)");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0)
            return fail(g, CLLM_ERR_FORMAT, "bad version 0x%08" PRIx32 " (a big-endian GGUF? only little-endian v2/v3 are supported)",
                        g->version);
        return fail(g, CLLM_ERR_FORMAT, "bad version %" PRIu32 " (only versions 2 and 3 are supported)", g->version);
    }
    if ((st = read_u64(c, n_tensors, "tensor count")) != CLLM_OK) return st;
    if ((st = read_u64(c, n_kv, "key count")) != CLLM_OK) return st;
    left = g->size - c->pos;
    if (*n_kv > left / GGUF_MIN_KV_BYTES)
        return fail(g, CLLM_ERR_FORMAT, "key count %" PRIu64 " too large for a file of %zu bytes", *n_kv, g->size);
    if (*n_tensors > (left - *n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TENSOR_INFO_BYTES)
        return fail(g, CLLM_ERR_FORMAT, "tensor count %" PRIu64 " too large for a file of %zu bytes", *n_tensors,
                    g->size);
    return CLLM_OK;
}

static status_t parse_kv(cursor_t *c, int64_t i)
{
    gguf_t *g = c->g;
    gguf_kv_t *kv = &g->kvs[i];
    char what[64], msg[768];
    uint32_t type;
    int64_t dup;
    size_t size;
    status_t st;
    snprintf(what, sizeof(what), "key %" PRId64, i);
    if ((st = read_name(c, &kv->key, what)) != CLLM_OK) return st;
    g->n_kv = i + 1; /* kv->key is now owned by g (freed by gguf_close) */
    dup = index_insert(&g->key_index, g, kv_name_of, kv->key, i);
    if (dup >= 0) return fail(g, CLLM_ERR_FORMAT, "duplicate key '%s' (entries %" PRId64 " and %" PRId64 ")", kv->key, dup, i);
    snprintf(what, sizeof(what), "key '%.40s' value type", kv->key);
    if ((st = read_u32(c, &type, what)) != CLLM_OK) return st;
    if (type >= GGUF_TYPE_COUNT)
        return fail(g, CLLM_ERR_FORMAT, "key '%s': value type id %" PRIu32 " out of range (0..%d)", kv->key, type,
                    GGUF_TYPE_COUNT - 1);
    kv->type = (gguf_type_t)type;
    kv->val = g->base + c->pos;
    if (gguf_value_check((gguf_type_t)type, kv->val, g->size - c->pos, &size) != CLLM_OK) {
        snprintf(msg, sizeof(msg), "%s", cllm_error_message());
        return fail(g, CLLM_ERR_FORMAT, "key '%s' (value at offset %zu): %s", kv->key, c->pos, msg);
    }
    kv->val_size = size;
    c->pos += size;
    kv->arr.type = GGUF_TYPE_COUNT;
    if (kv->type != GGUF_TYPE_ARRAY) return CLLM_OK;
    kv->arr.type = (gguf_type_t)rd_u32(kv->val);
    kv->arr.n = rd_u64(kv->val + 4);
    kv->arr.data = kv->val + 12;
    kv->arr.nbytes = size - 12;
    if (kv->arr.type == GGUF_TYPE_STRING && kv->arr.n > 0) {
        /* index of string starts, so gguf_arr_str is O(1); n <= nbytes / 8 was checked */
        const uint8_t *p = kv->arr.data;
        uint64_t off = 0, j;
        kv->str_off = malloc((size_t)kv->arr.n * sizeof(*kv->str_off));
        if (!kv->str_off) return fail(g, CLLM_ERR_NOMEM, "key '%s': out of memory for %" PRIu64 " string offsets",
                                      kv->key, kv->arr.n);
        for (j = 0; j < kv->arr.n; j++) {
            kv->str_off[j] = off;
            off += 8 + rd_u64(p + off);
        }
    }
    return CLLM_OK;
}

static status_t parse_alignment(gguf_t *g)
{
    int64_t idx = gguf_find_key(g, "general.alignment");
    uint32_t a;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (idx < 0) return CLLM_OK;
    if (g->kvs[idx].type != GGUF_TYPE_UINT32)
        return fail(g, CLLM_ERR_FORMAT, "general.alignment has type %s, expected u32",
                    gguf_type_name(g->kvs[idx].type));
    a = rd_u32(g->kvs[idx].val);
    if (a == 0 || (a & (a - 1)))
        return fail(g, CLLM_ERR_FORMAT, "general.alignment %" PRIu32 " is not a power of two", a);
    g->alignment = a;
    return CLLM_OK;
}

static status_t parse_tensor_info(cursor_t *c, int64_t i)
{
    gguf_t *g = c->g;
    gguf_tensor_info_t *t = &g->tensors[i];
    char what[64], *name = NULL;
    int64_t nelem = 1, dup;
    uint32_t d;
    status_t st;
    snprintf(what, sizeof(what), "tensor %" PRId64 " name", i);
    if ((st = read_name(c, &name, what)) != CLLM_OK) return st;
    t->name = name;
    g->n_tensors = i + 1; /* the name is now owned by g */
    dup = index_insert(&g->tensor_index, g, tensor_name_of, name, i);
    if (dup >= 0)
        return fail(g, CLLM_ERR_FORMAT, "duplicate tensor name '%s' (tensors %" PRId64 " and %" PRId64 ")", name, dup, i);
    snprintf(what, sizeof(what), "tensor '%.40s' info", name);
    if ((st = read_u32(c, &t->n_dims, what)) != CLLM_OK) return st;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return fail(g, CLLM_ERR_FORMAT, "tensor '%s': n_dims %" PRIu32 " out of range (1..%d)", name, t->n_dims,
                    GGUF_MAX_DIMS);
    for (d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if ((st = read_u64(c, &v, what)) != CLLM_OK) return st;
        t->ne[d] = (int64_t)v;
        if (t->ne[d] < 0)
            return fail(g, CLLM_ERR_FORMAT, "tensor '%s': dimension %" PRIu32 " is negative (%" PRId64 ")", name, d,
                        t->ne[d]);
        if (__builtin_mul_overflow(nelem, t->ne[d], &nelem))
            return fail(g, CLLM_ERR_FORMAT, "tensor '%s': element count overflows (ne = %" PRId64 " x %" PRId64 " x %" PRId64 " x %" PRId64 ")",
                        name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    }
    if ((st = read_u32(c, &t->type, what)) != CLLM_OK) return st;
    if ((st = read_u64(c, &t->offset, what)) != CLLM_OK) return st;
    if (t->offset % g->alignment)
        return fail(g, CLLM_ERR_FORMAT, "tensor '%s': data offset %" PRIu64 " not aligned to %zu", name, t->offset,
                    g->alignment);
    t->nbytes = 0;
    t->data = NULL;
    if (dtype_is_supported(t->type)) {
        dtype_t dt = (dtype_t)t->type;
        size_t blk = dtype_block_elems(dt);
        uint64_t row_bytes, nbytes;
        if (t->ne[0] % (int64_t)blk)
            return fail(g, CLLM_ERR_FORMAT, "tensor '%s': row length %" PRId64 " is not a multiple of the block size %zu of type %s",
                        name, t->ne[0], blk, dtype_name(t->type));
        row_bytes = (uint64_t)t->ne[0] / blk * dtype_block_bytes(dt);
        if (__builtin_mul_overflow(row_bytes, (uint64_t)(t->ne[0] ? nelem / t->ne[0] : 0), &nbytes) ||
            nbytes > SIZE_MAX)
            return fail(g, CLLM_ERR_FORMAT, "tensor '%s': byte size overflows", name);
        t->nbytes = (size_t)nbytes;
    }
    return CLLM_OK;
}

/* A tensor's data extent, for the overlap check. */
typedef struct {
    uint64_t offset;
    int64_t idx;
} extent_t;

static int cmp_extent(const void *a, const void *b)
{
    uint64_t oa = ((const extent_t *)a)->offset, ob = ((const extent_t *)b)->offset;
    return oa < ob ? -1 : oa > ob;
}

/* Places every tensor in the data section: in bounds, and no two overlapping. */
static status_t place_tensors(gguf_t *g, size_t infos_end)
{
    int64_t i, n_data = 0;
    extent_t *ext;
    status_t st = CLLM_OK;
    size_t pad = (g->alignment - infos_end % g->alignment) % g->alignment;
    if (__builtin_add_overflow(infos_end, pad, &g->data_start))
        return fail(g, CLLM_ERR_FORMAT, "data section start overflows");
    /* a file may end before the padding of an empty data section: that section starts (and
     * ends) at the end of the file, so gguf_data_offset() never points past it */
    if (g->data_start > g->size) g->data_start = g->size;
    for (i = 0; i < g->n_tensors; i++) {
        gguf_tensor_info_t *t = &g->tensors[i];
        uint64_t start, end;
        if (!dtype_is_supported(t->type)) continue; /* size unknown: the loader rejects its type */
        if (__builtin_add_overflow((uint64_t)g->data_start, t->offset, &start) ||
            __builtin_add_overflow(start, (uint64_t)t->nbytes, &end) || end > g->size)
            return fail(g, CLLM_ERR_FORMAT, "tensor '%s': data offset %" PRIu64 " + size %zu past end of file (size %zu)",
                        t->name, t->offset, t->nbytes, g->size);
        t->data = g->base + start;
        if (t->nbytes) n_data++;
    }
    if (n_data < 2) return CLLM_OK;
    ext = malloc((size_t)n_data * sizeof(*ext));
    if (!ext) return fail(g, CLLM_ERR_NOMEM, "out of memory sorting %" PRId64 " tensors", n_data);
    n_data = 0;
    for (i = 0; i < g->n_tensors; i++) {
        if (!g->tensors[i].nbytes) continue;
        ext[n_data].offset = g->tensors[i].offset;
        ext[n_data++].idx = i;
    }
    qsort(ext, (size_t)n_data, sizeof(*ext), cmp_extent);
    for (i = 0; i + 1 < n_data; i++) {
        const gguf_tensor_info_t *a = &g->tensors[ext[i].idx], *b = &g->tensors[ext[i + 1].idx];
        /* both lie inside the file, so the sum cannot overflow */
        if (a->offset + a->nbytes > b->offset) {
            st = fail(g, CLLM_ERR_FORMAT, "tensors '%s' (offset %" PRIu64 ", %zu bytes) and '%s' (offset %" PRIu64 ") overlap",
                      a->name, a->offset, a->nbytes, b->name, b->offset);
            break;
        }
    }
    free(ext);
    return st;
}

static status_t parse(gguf_t *g)
{
    cursor_t c = { g, 0 };
    uint64_t n_tensors = 0, n_kv = 0;
    int64_t i;
    status_t st;
    if ((st = parse_header(&c, &n_tensors, &n_kv)) != CLLM_OK) return st;
    /* both counts are bounded by the file size now, so these allocations are too */
    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof(*g->kvs));
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof(*g->tensors));
    if (!g->kvs || !g->tensors) return fail(g, CLLM_ERR_NOMEM, "out of memory for %" PRIu64 " keys and %" PRIu64 " tensors",
                                            n_kv, n_tensors);
    if ((st = index_init(&g->key_index, (int64_t)n_kv)) != CLLM_OK) return st;
    if ((st = index_init(&g->tensor_index, (int64_t)n_tensors)) != CLLM_OK) return st;
    for (i = 0; i < (int64_t)n_kv; i++)
        if ((st = parse_kv(&c, i)) != CLLM_OK) return st;
    if ((st = parse_alignment(g)) != CLLM_OK) return st;
    for (i = 0; i < (int64_t)n_tensors; i++)
        if ((st = parse_tensor_info(&c, i)) != CLLM_OK) return st;
    return place_tensors(g, c.pos);
}

static status_t open_buffer(const void *data, size_t size, void *map, const char *name, gguf_t **out)
{
    gguf_t *g = calloc(1, sizeof(*g));
    status_t st;
    *out = NULL;
    if (!g) return cllm_error(CLLM_ERR_NOMEM, "gguf: %s: out of memory", name);
    g->base = data;
    g->size = size;
    g->map = map;
    g->name = strdup(name);
    if (!g->name) {
        free(g);
        return cllm_error(CLLM_ERR_NOMEM, "gguf: %s: out of memory", name);
    }
    st = parse(g);
    if (st != CLLM_OK) {
        gguf_close(g); /* unmaps too */
        return st;
    }
    *out = g;
    return CLLM_OK;
}

status_t gguf_open_memory(const void *data, size_t size, gguf_t **out)
{
    if (!out) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf: open_memory: NULL out");
    *out = NULL;
    if (!data && size) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf: <memory>: NULL buffer of %zu bytes", size);
    return open_buffer(data ? data : "", size, NULL, "<memory>", out);
}

status_t gguf_open(const char *path, gguf_t **out)
{
    struct stat sb;
    void *map;
    int fd;
    if (!out || !path) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf: open: NULL argument");
    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cllm_error(errno == ENOENT ? CLLM_ERR_NOT_FOUND : CLLM_ERR_IO, "gguf: %s: cannot open: %s", path,
                          strerror(errno));
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return cllm_error(CLLM_ERR_IO, "gguf: %s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cllm_error(CLLM_ERR_IO, "gguf: %s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return cllm_error(CLLM_ERR_FORMAT, "gguf: %s: truncated file: empty (0 bytes)", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return cllm_error(CLLM_ERR_RANGE, "gguf: %s: file too large to map", path);
    }
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file open */
    if (map == MAP_FAILED) return cllm_error(CLLM_ERR_IO, "gguf: %s: mmap failed: %s", path, strerror(errno));
    return open_buffer(map, (size_t)sb.st_size, map, path, out);
}

void gguf_close(gguf_t *g)
{
    int64_t i;
    if (!g) return;
    for (i = 0; i < g->n_kv; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str_off);
    }
    for (i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->key_index.slots);
    free(g->tensor_index.slots);
    if (g->map) munmap(g->map, g->size);
    free(g->name);
    free(g);
}

/* ---------------------------------------------------------------- accessors */

uint32_t gguf_version(const gguf_t *g) { return g->version; }
size_t gguf_alignment(const gguf_t *g) { return g->alignment; }
size_t gguf_data_offset(const gguf_t *g) { return g->data_start; }
size_t gguf_file_size(const gguf_t *g) { return g->size; }
int64_t gguf_n_kv(const gguf_t *g) { return g->n_kv; }
int64_t gguf_n_tensors(const gguf_t *g) { return g->n_tensors; }

static const gguf_kv_t *kv_at(const gguf_t *g, int64_t idx)
{
    return (idx >= 0 && idx < g->n_kv) ? &g->kvs[idx] : NULL;
}

int64_t gguf_find_key(const gguf_t *g, const char *key)
{
    return index_find(&g->key_index, g, kv_name_of, key);
}

const char *gguf_key_name(const gguf_t *g, int64_t idx)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    return kv ? kv->key : NULL;
}

gguf_type_t gguf_kv_type(const gguf_t *g, int64_t idx)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    return kv ? kv->type : GGUF_TYPE_COUNT;
}

gguf_type_t gguf_arr_type(const gguf_t *g, int64_t idx)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    return kv ? kv->arr.type : GGUF_TYPE_COUNT;
}

uint64_t gguf_arr_n(const gguf_t *g, int64_t idx)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    return kv && kv->type == GGUF_TYPE_ARRAY ? kv->arr.n : 0;
}

const void *gguf_arr_data(const gguf_t *g, int64_t idx)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || !gguf_type_size(kv->arr.type)) return NULL;
    return kv->arr.data;
}

gguf_str_t gguf_arr_str(const gguf_t *g, int64_t idx, uint64_t i)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    gguf_str_t s = { NULL, 0 };
    const uint8_t *p;
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr.type != GGUF_TYPE_STRING || i >= kv->arr.n) return s;
    p = (const uint8_t *)kv->arr.data + kv->str_off[i];
    s.len = (size_t)rd_u64(p);
    s.ptr = (const char *)p + 8;
    return s;
}

gguf_arr_t gguf_kv_arr(const gguf_t *g, int64_t idx)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    gguf_arr_t none = { GGUF_TYPE_COUNT, 0, NULL, 0 };
    return kv && kv->type == GGUF_TYPE_ARRAY ? kv->arr : none;
}

status_t gguf_kv_raw(const gguf_t *g, int64_t idx, const void **data, size_t *nbytes)
{
    const gguf_kv_t *kv = kv_at(g, idx);
    if (!kv) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf: %s: key index %" PRId64 " out of range", g->name, idx);
    *data = kv->val;
    *nbytes = kv->val_size;
    return CLLM_OK;
}

/* ---------------------------------------------------------------- typed getters */

static status_t find_kv(const gguf_t *g, const char *key, const gguf_kv_t **kv)
{
    int64_t idx = gguf_find_key(g, key);
    if (idx < 0) return cllm_error(CLLM_ERR_NOT_FOUND, "gguf: %s: key '%s' not found", g->name, key);
    *kv = &g->kvs[idx];
    return CLLM_OK;
}

static status_t wrong_type(const gguf_t *g, const gguf_kv_t *kv, const char *wanted)
{
    return cllm_error(CLLM_ERR_FORMAT, "gguf: %s: key '%s' has type %s, expected %s", g->name, kv->key,
                      gguf_type_name(kv->type), wanted);
}

/* Reads an integer value as sign + magnitude: *neg set for negative signed values. */
static int kv_int(const gguf_kv_t *kv, bool *neg, uint64_t *mag)
{
    int64_t s;
    *neg = false;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: *mag = kv->val[0]; return 1;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, kv->val, 2); *mag = v; return 1; }
    case GGUF_TYPE_UINT32: *mag = rd_u32(kv->val); return 1;
    case GGUF_TYPE_UINT64: *mag = rd_u64(kv->val); return 1;
    case GGUF_TYPE_INT8: s = (int8_t)kv->val[0]; break;
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, kv->val, 2); s = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, kv->val, 4); s = v; break; }
    case GGUF_TYPE_INT64: memcpy(&s, kv->val, 8); break;
    default: return 0;
    }
    *neg = s < 0;
    *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return 1;
}

static status_t get_int(const gguf_t *g, const char *key, bool *neg, uint64_t *mag)
{
    const gguf_kv_t *kv = NULL;
    status_t st = find_kv(g, key, &kv);
    if (st != CLLM_OK) return st;
    if (!kv_int(kv, neg, mag)) return wrong_type(g, kv, "an integer");
    return CLLM_OK;
}

static status_t out_of_range(const gguf_t *g, const char *key, bool neg, uint64_t mag, const char *type)
{
    return cllm_error(CLLM_ERR_FORMAT, "gguf: %s: key '%s' value %s%" PRIu64 " does not fit in %s", g->name, key,
                      neg ? "-" : "", mag, type);
}

status_t gguf_get_i64(const gguf_t *g, const char *key, int64_t *out)
{
    bool neg = false;
    uint64_t mag = 0;
    status_t st = get_int(g, key, &neg, &mag);
    if (st != CLLM_OK) return st;
    if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX) return out_of_range(g, key, neg, mag, "i64");
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return CLLM_OK;
}

status_t gguf_get_u64(const gguf_t *g, const char *key, uint64_t *out)
{
    bool neg = false;
    uint64_t mag = 0;
    status_t st = get_int(g, key, &neg, &mag);
    if (st != CLLM_OK) return st;
    if (neg && mag) return out_of_range(g, key, neg, mag, "u64");
    *out = mag;
    return CLLM_OK;
}

status_t gguf_get_u32(const gguf_t *g, const char *key, uint32_t *out)
{
    bool neg = false;
    uint64_t mag = 0;
    status_t st = get_int(g, key, &neg, &mag);
    if (st != CLLM_OK) return st;
    if ((neg && mag) || mag > UINT32_MAX) return out_of_range(g, key, neg, mag, "u32");
    *out = (uint32_t)mag;
    return CLLM_OK;
}

status_t gguf_get_f64(const gguf_t *g, const char *key, double *out)
{
    const gguf_kv_t *kv = NULL;
    status_t st = find_kv(g, key, &kv);
    if (st != CLLM_OK) return st;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        float f;
        memcpy(&f, kv->val, 4);
        *out = f;
    } else if (kv->type == GGUF_TYPE_FLOAT64) {
        memcpy(out, kv->val, 8);
    } else {
        return wrong_type(g, kv, "f32 or f64");
    }
    return CLLM_OK;
}

status_t gguf_get_f32(const gguf_t *g, const char *key, float *out)
{
    double d;
    status_t st = gguf_get_f64(g, key, &d);
    if (st == CLLM_OK) *out = (float)d;
    return st;
}

status_t gguf_get_bool(const gguf_t *g, const char *key, bool *out)
{
    const gguf_kv_t *kv = NULL;
    status_t st = find_kv(g, key, &kv);
    if (st != CLLM_OK) return st;
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->val[0] != 0;
    return CLLM_OK;
}

status_t gguf_get_str(const gguf_t *g, const char *key, gguf_str_t *out)
{
    const gguf_kv_t *kv = NULL;
    status_t st = find_kv(g, key, &kv);
    if (st != CLLM_OK) return st;
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(g, kv, "string");
    out->len = (size_t)rd_u64(kv->val);
    out->ptr = (const char *)kv->val + 8;
    return CLLM_OK;
}

status_t gguf_get_i64_opt(const gguf_t *g, const char *key, int64_t *out)
{
    return gguf_find_key(g, key) < 0 ? CLLM_OK : gguf_get_i64(g, key, out);
}

status_t gguf_get_u32_opt(const gguf_t *g, const char *key, uint32_t *out)
{
    return gguf_find_key(g, key) < 0 ? CLLM_OK : gguf_get_u32(g, key, out);
}

status_t gguf_get_f32_opt(const gguf_t *g, const char *key, float *out)
{
    return gguf_find_key(g, key) < 0 ? CLLM_OK : gguf_get_f32(g, key, out);
}

status_t gguf_get_bool_opt(const gguf_t *g, const char *key, bool *out)
{
    return gguf_find_key(g, key) < 0 ? CLLM_OK : gguf_get_bool(g, key, out);
}

/* ---------------------------------------------------------------- tensors */

const gguf_tensor_info_t *gguf_tensor(const gguf_t *g, int64_t i)
{
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const gguf_tensor_info_t *gguf_find_tensor(const gguf_t *g, const char *name)
{
    int64_t i = index_find(&g->tensor_index, g, tensor_name_of, name);
    return i >= 0 ? &g->tensors[i] : NULL;
}

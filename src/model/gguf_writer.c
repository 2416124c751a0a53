/* gguf_writer.c: the streaming GGUF v3 writer (see gguf.h), to a file or (gguf_writer_write_memory)
 * to a malloc'd buffer through open_memstream, with the same bytes.
 *
 * Owns: copies of keys, tensor names and encoded metadata values; it only references tensor
 * data (or a fill callback) until gguf_writer_write.
 * Invariants: keys and tensor names are unique and non-empty; every stored value is a valid
 * GGUF encoding of its type; every tensor has a supported type, 1..4 dims >= 0, ne[0] a
 * multiple of its block size and nbytes equal to its computed size; alignment is a power of
 * two (32 unless general.alignment was set).
 * Output layout: header, kvs, tensor infos, zero padding to the alignment, then each tensor in
 * the order added at offsets padded to the alignment, each followed by zero padding (as
 * llama.cpp and gguf-py write, and as llama.cpp's reader requires). */
#include "model/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dtype.h"

#define WRITER_FILE_BUFFER (4u << 20) /* stdio buffer: few large writes even for small values */

typedef struct {
    char *key;
    gguf_type_t type;
    uint8_t *val;   /* (val_size) the encoded value */
    size_t val_size;
} wkv_t;

typedef struct {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t nbytes;
    const void *data;  /* (nbytes) caller's bytes, or NULL when fill is set */
    gguf_fill_fn fill;
    void *fill_ctx;
} wtensor_t;

struct gguf_writer {
    wkv_t *kvs;          /* (n_kv) */
    size_t n_kv, cap_kv;
    wtensor_t *tensors;  /* (n_tensors) */
    size_t n_tensors, cap_tensors;
    size_t alignment;
};

gguf_writer_t *gguf_writer_create(void)
{
    gguf_writer_t *w = calloc(1, sizeof(*w));
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_destroy(gguf_writer_t *w)
{
    size_t i;
    if (!w) return;
    for (i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

static status_t check_name(const char *what, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: empty %s", what);
    if (len > 65535) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: %s of %zu bytes is too long", what, len);
    return CLLM_OK;
}

/* Grows an array of elem-sized items to hold one more; 0 on success. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    size_t new_cap;
    void *p;
    if (n < *cap) return 0;
    new_cap = *cap ? *cap * 2 : 16;
    p = realloc(*arr, new_cap * elem);
    if (!p) return -1;
    *arr = p;
    *cap = new_cap;
    return 0;
}

/* Stores key = (type, encoded value of val_size bytes, copied). The one place kvs are added. */
static status_t add_kv(gguf_writer_t *w, const char *key, gguf_type_t type, const void *val, size_t val_size)
{
    wkv_t *kv;
    size_t i;
    status_t st;
    if (!w) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: NULL writer");
    if ((st = check_name("key", key)) != CLLM_OK) return st;
    for (i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kvs[i].key, key))
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: duplicate key '%s'", key);
    if (!strcmp(key, "general.alignment")) {
        uint32_t a;
        if (type != GGUF_TYPE_UINT32)
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: general.alignment must be a u32, not %s",
                              gguf_type_name(type));
        memcpy(&a, val, 4);
        if (a == 0 || (a & (a - 1)))
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: general.alignment %u is not a power of two", a);
        w->alignment = a;
    }
    if (grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof(*w->kvs)))
        return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory adding key '%s'", key);
    kv = &w->kvs[w->n_kv];
    kv->key = strdup(key);
    kv->val = malloc(val_size ? val_size : 1);
    if (!kv->key || !kv->val) {
        free(kv->key);
        free(kv->val);
        return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory adding key '%s'", key);
    }
    memcpy(kv->val, val, val_size);
    kv->type = type;
    kv->val_size = val_size;
    w->n_kv++;
    return CLLM_OK;
}

status_t gguf_writer_set_val(gguf_writer_t *w, const char *key, gguf_type_t t, const void *val)
{
    size_t size = gguf_type_size(t);
    if (!size || !val)
        return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': %s is not a numeric scalar type",
                          key ? key : "", gguf_type_name(t));
    if (t == GGUF_TYPE_BOOL) {
        uint8_t b = *(const bool *)val ? 1 : 0;
        return add_kv(w, key, t, &b, 1);
    }
    return add_kv(w, key, t, val, size);
}

status_t gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v)
{
    return gguf_writer_set_val(w, key, GGUF_TYPE_UINT32, &v);
}

status_t gguf_writer_set_i32(gguf_writer_t *w, const char *key, int32_t v)
{
    return gguf_writer_set_val(w, key, GGUF_TYPE_INT32, &v);
}

status_t gguf_writer_set_u64(gguf_writer_t *w, const char *key, uint64_t v)
{
    return gguf_writer_set_val(w, key, GGUF_TYPE_UINT64, &v);
}

status_t gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v)
{
    return gguf_writer_set_val(w, key, GGUF_TYPE_FLOAT32, &v);
}

status_t gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v)
{
    return gguf_writer_set_val(w, key, GGUF_TYPE_BOOL, &v);
}

status_t gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *v, size_t len)
{
    uint64_t n = len;
    uint8_t *buf;
    status_t st;
    if (!v && len) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
    buf = malloc(8 + len);
    if (!buf) return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory for a string of %zu bytes", len);
    memcpy(buf, &n, 8);
    if (len) memcpy(buf + 8, v, len);
    st = add_kv(w, key, GGUF_TYPE_STRING, buf, 8 + len);
    free(buf);
    return st;
}

status_t gguf_writer_set_arr(gguf_writer_t *w, const char *key, gguf_type_t t, const void *data, uint64_t n)
{
    size_t es = gguf_type_size(t), bytes;
    uint32_t t32 = (uint32_t)t;
    uint8_t *buf;
    status_t st;
    if (!es) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': array of %s needs set_arr_str/set_raw",
                               key ? key : "", gguf_type_name(t));
    if (__builtin_mul_overflow(n, (uint64_t)es, &bytes) || bytes > SIZE_MAX - 12 || (!data && n))
        return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': bad array of %llu elements", key ? key : "",
                          (unsigned long long)n);
    buf = malloc(12 + bytes);
    if (!buf) return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory for an array of %zu bytes", bytes);
    memcpy(buf, &t32, 4);
    memcpy(buf + 4, &n, 8);
    if (t == GGUF_TYPE_BOOL) { /* normalize C bools to 0/1 bytes */
        const bool *b = data;
        for (uint64_t i = 0; i < n; i++) buf[12 + i] = b[i] ? 1 : 0;
    } else if (bytes) {
        memcpy(buf + 12, data, bytes);
    }
    st = add_kv(w, key, GGUF_TYPE_ARRAY, buf, 12 + bytes);
    free(buf);
    return st;
}

status_t gguf_writer_set_arr_str(gguf_writer_t *w, const char *key, const gguf_str_t *strs, uint64_t n)
{
    size_t bytes = 12, pos;
    uint32_t t32 = GGUF_TYPE_STRING;
    uint8_t *buf;
    uint64_t i;
    status_t st;
    if (!strs && n) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL strings", key ? key : "");
    for (i = 0; i < n; i++) {
        if (!strs[i].ptr && strs[i].len)
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL string %llu", key ? key : "",
                              (unsigned long long)i);
        if (__builtin_add_overflow(bytes, 8 + strs[i].len, &bytes))
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': strings too long", key ? key : "");
    }
    buf = malloc(bytes);
    if (!buf) return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory for a string array of %zu bytes", bytes);
    memcpy(buf, &t32, 4);
    memcpy(buf + 4, &n, 8);
    pos = 12;
    for (i = 0; i < n; i++) {
        uint64_t len = strs[i].len;
        memcpy(buf + pos, &len, 8);
        if (len) memcpy(buf + pos + 8, strs[i].ptr, strs[i].len);
        pos += 8 + strs[i].len;
    }
    st = add_kv(w, key, GGUF_TYPE_ARRAY, buf, bytes);
    free(buf);
    return st;
}

status_t gguf_writer_set_raw(gguf_writer_t *w, const char *key, gguf_type_t t, const void *data, size_t nbytes)
{
    size_t size = 0;
    status_t st;
    if (!data) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: key '%s': NULL value", key ? key : "");
    st = gguf_value_check(t, data, nbytes, &size);
    if (st != CLLM_OK || size != nbytes) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", st != CLLM_OK ? cllm_error_message() : "trailing bytes after the value");
        return cllm_error(CLLM_ERR_FORMAT, "gguf writer: key '%s': bad %s encoding: %s", key ? key : "",
                          gguf_type_name(t), msg);
    }
    return add_kv(w, key, t, data, nbytes);
}

status_t gguf_writer_copy_kv(gguf_writer_t *w, const gguf_t *src, int64_t idx)
{
    const void *data;
    size_t nbytes;
    status_t st = gguf_kv_raw(src, idx, &data, &nbytes);
    if (st != CLLM_OK) return st;
    return add_kv(w, gguf_key_name(src, idx), gguf_kv_type(src, idx), data, nbytes);
}

static status_t add_tensor(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                           const void *data, size_t nbytes, gguf_fill_fn fill, void *fill_ctx)
{
    wtensor_t *t;
    uint64_t nelem = 1, row_bytes, total;
    size_t i, blk;
    status_t st;
    if (!w) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: NULL writer");
    if ((st = check_name("tensor name", name)) != CLLM_OK) return st;
    for (i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", name);
    if (!dtype_is_supported(type))
        return cllm_error(CLLM_ERR_UNSUPPORTED, "gguf writer: tensor '%s': type %s (%u) is not supported", name,
                          dtype_name(type), type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': n_dims %u out of range (1..%d)", name,
                          n_dims, GGUF_MAX_DIMS);
    for (i = 0; i < n_dims; i++)
        if (ne[i] < 0 || __builtin_mul_overflow(nelem, (uint64_t)ne[i], &nelem) || nelem > INT64_MAX)
            return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': bad dimension %zu (%lld)", name, i,
                              (long long)ne[i]);
    blk = dtype_block_elems((dtype_t)type);
    if (ne[0] % (int64_t)blk)
        return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': row length %lld is not a multiple of %zu for %s",
                          name, (long long)ne[0], blk, dtype_name(type));
    row_bytes = (uint64_t)ne[0] / blk * dtype_block_bytes((dtype_t)type);
    if (__builtin_mul_overflow(row_bytes, ne[0] ? nelem / (uint64_t)ne[0] : 0, &total) || total > SIZE_MAX)
        return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': size overflows", name);
    if (!fill && (total != nbytes || (!data && nbytes)))
        return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': %zu bytes given, its shape and type need %llu",
                          name, nbytes, (unsigned long long)total);
    if (grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof(*w->tensors)))
        return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory adding tensor '%s'", name);
    t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name) return cllm_error(CLLM_ERR_NOMEM, "gguf writer: out of memory adding tensor '%s'", name);
    t->type = type;
    t->n_dims = n_dims;
    for (i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = i < n_dims ? ne[i] : 1;
    t->nbytes = (size_t)total;
    t->data = data;
    t->fill = fill;
    t->fill_ctx = fill_ctx;
    w->n_tensors++;
    return CLLM_OK;
}

status_t gguf_writer_add_tensor(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, const void *data, size_t nbytes)
{
    return add_tensor(w, name, type, n_dims, ne, data, nbytes, NULL, NULL);
}

status_t gguf_writer_add_tensor_fill(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const int64_t *ne, gguf_fill_fn fill, void *fill_ctx)
{
    if (!fill) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL fill callback", name ? name : "");
    return add_tensor(w, name, type, n_dims, ne, NULL, 0, fill, fill_ctx);
}

int64_t gguf_writer_n_tensors(const gguf_writer_t *w)
{
    return (int64_t)w->n_tensors;
}

int64_t gguf_writer_n_elements(const gguf_writer_t *w)
{
    int64_t n = 0;
    for (size_t i = 0; i < w->n_tensors; i++)
        n += w->tensors[i].ne[0] * w->tensors[i].ne[1] * w->tensors[i].ne[2] * w->tensors[i].ne[3];
    return n;
}

/* ---------------------------------------------------------------- output */

typedef struct {
    FILE *f;
    const char *path;
    uint64_t pos;   /* bytes written so far */
    int err;        /* errno of the first failed write, or 0 */
} out_t;

static void put(out_t *o, const void *p, size_t n)
{
    if (o->err || !n) return;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}

static void put_u32(out_t *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(out_t *o, uint64_t v) { put(o, &v, 8); }

static void put_str(out_t *o, const char *s)
{
    size_t len = strlen(s);
    put_u64(o, len);
    put(o, s, len);
}

static void put_pad(out_t *o, size_t alignment)
{
    static const uint8_t zeros[256];
    size_t pad = (size_t)((alignment - o->pos % alignment) % alignment);
    while (pad) {
        size_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
        put(o, zeros, n);
        pad -= n;
    }
}

static uint64_t padded(uint64_t n, size_t alignment)
{
    return (n + alignment - 1) / alignment * alignment;
}

static void write_header(gguf_writer_t *w, out_t *o)
{
    uint64_t offset = 0;
    size_t i;
    put(o, "GGUF", 4);
    put_u32(o, 3);
    put_u64(o, w->n_tensors);
    put_u64(o, w->n_kv);
    for (i = 0; i < w->n_kv; i++) {
        put_str(o, w->kvs[i].key);
        put_u32(o, (uint32_t)w->kvs[i].type);
        put(o, w->kvs[i].val, w->kvs[i].val_size);
    }
    for (i = 0; i < w->n_tensors; i++) {
        const wtensor_t *t = &w->tensors[i];
        put_str(o, t->name);
        put_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(o, (uint64_t)t->ne[d]);
        put_u32(o, t->type);
        put_u64(o, offset);
        offset += padded(t->nbytes, w->alignment);
    }
    put_pad(o, w->alignment);
}

/* Writes each tensor's data, filling through one buffer as large as the largest filled tensor. */
static status_t write_data(gguf_writer_t *w, out_t *o)
{
    size_t i, max_fill = 0;
    void *buf = NULL;
    status_t st = CLLM_OK;
    for (i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].fill && w->tensors[i].nbytes > max_fill) max_fill = w->tensors[i].nbytes;
    if (max_fill && !(buf = malloc(max_fill)))
        return cllm_error(CLLM_ERR_NOMEM, "gguf writer: %s: out of memory for a %zu-byte tensor buffer", o->path,
                          max_fill);
    for (i = 0; i < w->n_tensors && !o->err; i++) {
        const wtensor_t *t = &w->tensors[i];
        if (t->fill && t->nbytes) {
            if ((st = t->fill(t->fill_ctx, buf, t->nbytes)) != CLLM_OK) break;
            put(o, buf, t->nbytes);
        } else {
            put(o, t->data, t->nbytes);
        }
        put_pad(o, w->alignment);
    }
    free(buf);
    return st;
}

status_t gguf_writer_write(gguf_writer_t *w, const char *path)
{
    out_t o = { NULL, path, 0, 0 };
    struct stat sb;
    char *fbuf;
    status_t st;
    int is_reg;
    if (!w || !path) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    o.f = fopen(path, "wb");
    if (!o.f) return cllm_error(CLLM_ERR_IO, "gguf writer: %s: cannot create: %s", path, strerror(errno));
    is_reg = fstat(fileno(o.f), &sb) == 0 && S_ISREG(sb.st_mode);
    fbuf = malloc(WRITER_FILE_BUFFER);
    if (fbuf) setvbuf(o.f, fbuf, _IOFBF, WRITER_FILE_BUFFER);
    errno = 0;
    write_header(w, &o);
    st = o.err ? CLLM_OK : write_data(w, &o);
    if (!o.err && fflush(o.f) != 0) o.err = errno ? errno : EIO;
    if (fclose(o.f) != 0 && !o.err) o.err = errno ? errno : EIO;
    free(fbuf);
    if (st == CLLM_OK && o.err)
        st = cllm_error(CLLM_ERR_IO, "gguf writer: %s: write failed after %llu bytes: %s", path,
                        (unsigned long long)o.pos, strerror(o.err));
    if (st != CLLM_OK && is_reg) remove(path); /* never leave a half-written model behind */
    return st;
}

status_t gguf_writer_write_memory(gguf_writer_t *w, void **data, size_t *size)
{
    out_t o = { NULL, "<memory>", 0, 0 };
    char *buf = NULL;
    size_t len = 0;
    status_t st;
    if (!w || !data || !size) return cllm_error(CLLM_ERR_INVALID_ARG, "gguf writer: NULL argument");
    *data = NULL;
    *size = 0;
    o.f = open_memstream(&buf, &len);
    if (!o.f) return cllm_error(CLLM_ERR_NOMEM, "gguf writer: cannot open a memory stream: %s", strerror(errno));
    errno = 0;
    write_header(w, &o);
    st = o.err ? CLLM_OK : write_data(w, &o);
    if (fclose(o.f) != 0 && !o.err) o.err = errno ? errno : ENOMEM;
    if (st == CLLM_OK && o.err)
        st = cllm_error(CLLM_ERR_NOMEM, "gguf writer: in-memory file failed after %llu bytes: %s",
                        (unsigned long long)o.pos, strerror(o.err));
    if (st != CLLM_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = len;
    return CLLM_OK;
}

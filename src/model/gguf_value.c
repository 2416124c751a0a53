/* gguf_value.c: GGUF value encodings, shared by the reader and the writer (see gguf.h): type
 * sizes and names, the bounds-checked checker of one encoded value, and walks through array views.
 *
 * Owns no memory. Invariant: nothing here reads a byte outside [p, p + avail) (or a view's
 * [data, data + nbytes)), whatever the bytes say; every count is checked against the bytes
 * left before a loop runs over it, and nesting is bounded by GGUF_MAX_NESTING. */
#include "model/gguf.h"

#include <inttypes.h>
#include <string.h>

size_t gguf_type_size(gguf_type_t t)
{
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_type_name(gguf_type_t t)
{
    static const char *names[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
    };
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "invalid";
}

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

static status_t check_value(uint32_t t, const uint8_t *p, size_t avail, size_t *nbytes, int depth)
{
    size_t es = gguf_type_size((gguf_type_t)t);
    if (t >= GGUF_TYPE_COUNT)
        return cllm_error(CLLM_ERR_FORMAT, "value type id %" PRIu32 " out of range (0..%d)", t,
                          GGUF_TYPE_COUNT - 1);
    if (es) {
        if (avail < es)
            return cllm_error(CLLM_ERR_FORMAT, "%s value truncated: needs %zu bytes, %zu left before end of file",
                              gguf_type_name((gguf_type_t)t), es, avail);
        *nbytes = es;
        return CLLM_OK;
    }
    if (t == GGUF_TYPE_STRING) {
        uint64_t len;
        if (avail < 8)
            return cllm_error(CLLM_ERR_FORMAT, "string length truncated: %zu bytes left before end of file", avail);
        len = rd_u64(p);
        if (len > avail - 8)
            return cllm_error(CLLM_ERR_FORMAT, "string length %" PRIu64 " past end of file (%zu bytes left)",
                              len, avail - 8);
        *nbytes = 8 + (size_t)len;
        return CLLM_OK;
    }
    /* array: element type (4), count (8), elements */
    {
        uint32_t et;
        uint64_t n, i;
        size_t rest, used = 0, elem_bytes;
        if (depth >= GGUF_MAX_NESTING)
            return cllm_error(CLLM_ERR_FORMAT, "arrays nested deeper than %d levels", GGUF_MAX_NESTING);
        if (avail < 12)
            return cllm_error(CLLM_ERR_FORMAT, "array header truncated: %zu bytes left before end of file", avail);
        et = rd_u32(p);
        n = rd_u64(p + 4);
        rest = avail - 12;
        if (et >= GGUF_TYPE_COUNT)
            return cllm_error(CLLM_ERR_FORMAT, "array element type id %" PRIu32 " out of range (0..%d)", et,
                              GGUF_TYPE_COUNT - 1);
        es = gguf_type_size((gguf_type_t)et);
        if (es) {
            if (__builtin_mul_overflow(n, (uint64_t)es, &elem_bytes) || elem_bytes > rest)
                return cllm_error(CLLM_ERR_FORMAT, "array of %" PRIu64 " %s past end of file (%zu bytes left)",
                                  n, gguf_type_name((gguf_type_t)et), rest);
            *nbytes = 12 + elem_bytes;
            return CLLM_OK;
        }
        /* strings take at least 8 bytes each, arrays at least 12: bounds the loop by the size */
        if (n > rest / (et == GGUF_TYPE_STRING ? 8 : 12))
            return cllm_error(CLLM_ERR_FORMAT, "array count %" PRIu64 " of %s past end of file (%zu bytes left)",
                              n, gguf_type_name((gguf_type_t)et), rest);
        for (i = 0; i < n; i++) {
            size_t sz;
            status_t st = check_value(et, p + 12 + used, rest - used, &sz, depth + 1);
            if (st != CLLM_OK) return st;
            used += sz;
        }
        *nbytes = 12 + used;
        return CLLM_OK;
    }
}

status_t gguf_value_check(gguf_type_t t, const void *p, size_t avail, size_t *nbytes)
{
    return check_value((uint32_t)t, p, avail, nbytes, 0);
}

/* ---------------------------------------------------------------- array views */

/* Walks to element i of an array of strings or arrays; returns its offset in a.data and its
 * encoded size, or -1. The sizes are re-read with bounds checks against a.nbytes, so a view
 * built by hand cannot make this read outside it. */
static int64_t arr_walk(gguf_arr_t a, uint64_t i, size_t *size)
{
    size_t off = 0;
    uint64_t k;
    if (i >= a.n || !a.data) return -1;
    for (k = 0;; k++) {
        if (check_value(a.type, (const uint8_t *)a.data + off, a.nbytes - off, size, 1) != CLLM_OK) return -1;
        if (k == i) return (int64_t)off;
        off += *size;
    }
}

gguf_arr_t gguf_arr_sub(gguf_arr_t a, uint64_t i)
{
    gguf_arr_t r = { GGUF_TYPE_COUNT, 0, NULL, 0 };
    size_t size = 0;
    int64_t off;
    if (a.type != GGUF_TYPE_ARRAY || (off = arr_walk(a, i, &size)) < 0) return r;
    {
        const uint8_t *p = (const uint8_t *)a.data + off;
        r.type = (gguf_type_t)rd_u32(p);
        r.n = rd_u64(p + 4);
        r.data = p + 12;
        r.nbytes = size - 12;
    }
    return r;
}

gguf_str_t gguf_arr_sub_str(gguf_arr_t a, uint64_t i)
{
    gguf_str_t s = { NULL, 0 };
    size_t size = 0;
    int64_t off;
    if (a.type != GGUF_TYPE_STRING || (off = arr_walk(a, i, &size)) < 0) return s;
    s.ptr = (const char *)a.data + off + 8;
    s.len = size - 8;
    return s;
}

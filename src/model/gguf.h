/* gguf.h: GGUF (v2, v3) reader, mmap'd and zero-copy, and a writer.
 *
 * The reader trusts nothing: every count, length and offset is checked against the file size
 * with overflow-safe arithmetic before it is used; a malformed file gets one clear error
 * (cllm_error_message(), naming the problem and the key/tensor) and never a crash.
 * After a successful open the context is immutable, so it is safe to read from many threads.
 * Tensor data pointers point into the mapping and stay valid until gguf_close().
 *
 * Strings in GGUF are length-prefixed and not NUL-terminated; keys and tensor names are
 * copied once into NUL-terminated form, string values are returned as (pointer, length). */
#ifndef CLLM_MODEL_GGUF_H
#define CLLM_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type_t;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf gguf_t;

typedef struct {
    const char *name;          /* NUL-terminated */
    uint32_t n_dims;           /* 1..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS]; /* elements per dim, ne[0] innermost (row length); unused dims are 1 */
    uint32_t type;             /* GGML type id (see core/dtype.h); may be one we do not support */
    uint64_t offset;           /* from the start of the data section */
    const void *data;          /* into the mapping, aligned to the file's alignment; NULL for types
                                  not in core/dtype.h (their size cannot be computed) */
    size_t nbytes;             /* row bytes * rows for known types; 0 for unknown types */
} gguf_tensor_info_t;

typedef struct {
    const char *ptr; /* not NUL-terminated */
    size_t len;
} gguf_str_t;

/* Opens and validates a file. On error returns the status, *out = NULL, message set. */
status_t gguf_open(const char *path, gguf_t **out);
/* Parses a buffer already in memory (not copied; must outlive the context). For tests/fuzzing. */
status_t gguf_open_memory(const void *data, size_t size, gguf_t **out);
void gguf_close(gguf_t *g);

uint32_t gguf_version(const gguf_t *g);
size_t gguf_alignment(const gguf_t *g);
/* File offset where the data section starts (tensor offsets are relative to it). */
size_t gguf_data_offset(const gguf_t *g);
/* Size of the file or buffer in bytes. */
size_t gguf_file_size(const gguf_t *g);

/* --- metadata --- */
int64_t gguf_n_kv(const gguf_t *g);
/* Index of a key, or -1. */
int64_t gguf_find_key(const gguf_t *g, const char *key);
const char *gguf_key_name(const gguf_t *g, int64_t idx);
/* GGUF_TYPE_COUNT if idx is out of range (as the other by-index getters return NULL/0). */
gguf_type_t gguf_kv_type(const gguf_t *g, int64_t idx);
/* For arrays: the element type and count (GGUF_TYPE_COUNT / 0 for non-arrays). Elements may
 * themselves be arrays: reach them through gguf_kv_arr and gguf_arr_sub below. */
gguf_type_t gguf_arr_type(const gguf_t *g, int64_t idx);
uint64_t gguf_arr_n(const gguf_t *g, int64_t idx);
/* Pointer to the packed elements of a numeric array (may be unaligned: read with memcpy);
 * NULL for arrays of strings or arrays. */
const void *gguf_arr_data(const gguf_t *g, int64_t idx);
/* i-th string of a string array (O(1)); {NULL, 0} if idx is not a string array or i >= n. */
gguf_str_t gguf_arr_str(const gguf_t *g, int64_t idx, uint64_t i);

/* A view of an array value (top-level or nested), into the file: type is the element type,
 * data the packed elements (numeric: n * size; strings and arrays: their encodings back to
 * back), nbytes the length of data. type == GGUF_TYPE_COUNT marks "no array". */
typedef struct {
    gguf_type_t type;
    uint64_t n;
    const void *data;
    size_t nbytes;
} gguf_arr_t;
/* The array value of key idx (a view with type GGUF_TYPE_COUNT if it is not an array). */
gguf_arr_t gguf_kv_arr(const gguf_t *g, int64_t idx);
/* For an array of arrays: the i-th element, found by walking the ones before it (O(i)).
 * Returns a view with type GGUF_TYPE_COUNT if a is not an array of arrays or i >= a.n. */
gguf_arr_t gguf_arr_sub(gguf_arr_t a, uint64_t i);
/* For an array of strings: the i-th string, O(i) ({NULL, 0} if none). On the top level use
 * gguf_arr_str, which is O(1). */
gguf_str_t gguf_arr_sub_str(gguf_arr_t a, uint64_t i);
/* The encoded bytes of key idx's value (what follows the type id in the file), for copying. */
status_t gguf_kv_raw(const gguf_t *g, int64_t idx, const void **data, size_t *nbytes);
/* Size in bytes of one element of a numeric type; 0 for STRING, ARRAY and ids out of range. */
size_t gguf_type_size(gguf_type_t t);
/* Short name of a value type ("u32", "string", "array", ...; "invalid" out of range). */
const char *gguf_type_name(gguf_type_t t);
/* Checks one encoded value of type t (the bytes after the type id) at p, with avail bytes
 * readable, and sets *nbytes to its encoded length. Nested arrays are checked recursively
 * (at most GGUF_MAX_NESTING deep). On error: CLLM_ERR_FORMAT and a message naming the
 * problem, without a file-name prefix. Used by the reader and by gguf_writer_set_raw. */
#define GGUF_MAX_NESTING 8
status_t gguf_value_check(gguf_type_t t, const void *p, size_t avail, size_t *nbytes);

/* Scalar getters by key. They return CLLM_OK, CLLM_ERR_NOT_FOUND if the key is absent (message
 * set), or CLLM_ERR_FORMAT if the value has a type that cannot convert (message names key and
 * types). Integers convert between any integer widths when the value fits; floats accept
 * FLOAT32 and FLOAT64. */
status_t gguf_get_i64(const gguf_t *g, const char *key, int64_t *out);
status_t gguf_get_u64(const gguf_t *g, const char *key, uint64_t *out);
status_t gguf_get_u32(const gguf_t *g, const char *key, uint32_t *out);
status_t gguf_get_f32(const gguf_t *g, const char *key, float *out);
status_t gguf_get_f64(const gguf_t *g, const char *key, double *out);
status_t gguf_get_bool(const gguf_t *g, const char *key, bool *out);
status_t gguf_get_str(const gguf_t *g, const char *key, gguf_str_t *out);
/* As above but an absent key leaves *out unchanged and returns CLLM_OK (a wrong type is still an error). */
status_t gguf_get_i64_opt(const gguf_t *g, const char *key, int64_t *out);
status_t gguf_get_u32_opt(const gguf_t *g, const char *key, uint32_t *out);
status_t gguf_get_f32_opt(const gguf_t *g, const char *key, float *out);
status_t gguf_get_bool_opt(const gguf_t *g, const char *key, bool *out);

/* --- tensors --- */
int64_t gguf_n_tensors(const gguf_t *g);
const gguf_tensor_info_t *gguf_tensor(const gguf_t *g, int64_t i);
/* NULL if absent. */
const gguf_tensor_info_t *gguf_find_tensor(const gguf_t *g, const char *name);

/* --- writer ---
 * Builds a GGUF v3 file in memory order: add metadata and tensors, then write. Tensor data is
 * referenced, not copied, until gguf_writer_write(). Alignment 32, or general.alignment if it
 * is set (must be a u32 power of two). Keys and tensor names must be unique (else
 * CLLM_ERR_INVALID_ARG). Tensors are laid out in the order added, each padded to the alignment,
 * as llama.cpp expects. */
typedef struct gguf_writer gguf_writer_t;

gguf_writer_t *gguf_writer_create(void);
void gguf_writer_destroy(gguf_writer_t *w);
status_t gguf_writer_set_u32(gguf_writer_t *w, const char *key, uint32_t v);
status_t gguf_writer_set_i32(gguf_writer_t *w, const char *key, int32_t v);
status_t gguf_writer_set_u64(gguf_writer_t *w, const char *key, uint64_t v);
status_t gguf_writer_set_f32(gguf_writer_t *w, const char *key, float v);
status_t gguf_writer_set_bool(gguf_writer_t *w, const char *key, bool v);
status_t gguf_writer_set_str(gguf_writer_t *w, const char *key, const char *v, size_t len);
/* Any numeric scalar type t (not STRING/ARRAY); val points at a value of the matching C type
 * (uint8_t, int8_t, ..., float, bool, ..., double). */
status_t gguf_writer_set_val(gguf_writer_t *w, const char *key, gguf_type_t t, const void *val);
/* A value given in its GGUF encoding (the bytes after the type id; checked with
 * gguf_value_check, CLLM_ERR_FORMAT if malformed). Used for nested arrays and copies. */
status_t gguf_writer_set_raw(gguf_writer_t *w, const char *key, gguf_type_t t, const void *data, size_t nbytes);
/* Numeric array of n elements of type t (packed, copied). */
status_t gguf_writer_set_arr(gguf_writer_t *w, const char *key, gguf_type_t t, const void *data, uint64_t n);
/* String array (copied). */
status_t gguf_writer_set_arr_str(gguf_writer_t *w, const char *key, const gguf_str_t *strs, uint64_t n);
/* Copies key idx of an open file (any type, arrays included) into the writer. */
status_t gguf_writer_copy_kv(gguf_writer_t *w, const gguf_t *src, int64_t idx);
/* Adds a tensor; data (nbytes, must match ne and type) must stay valid until write. */
status_t gguf_writer_add_tensor(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, const void *data, size_t nbytes);
/* Adds a tensor whose bytes are produced at write time, one tensor at a time, so a multi-GB
 * model never sits in memory whole: fill(ctx, dst, nbytes) writes the tensor's nbytes bytes. */
typedef status_t (*gguf_fill_fn)(void *ctx, void *dst, size_t nbytes);
status_t gguf_writer_add_tensor_fill(gguf_writer_t *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const int64_t *ne, gguf_fill_fn fill, void *fill_ctx);
/* Writes the file: header, metadata, tensor infos, padding, then each tensor's data (fill
 * callbacks run one tensor at a time into one reusable buffer). I/O failures (disk full...)
 * return CLLM_ERR_IO and remove the partial file if it is a regular file; a fill callback's
 * error is returned as is. The writer can be written again or destroyed afterwards. */
status_t gguf_writer_write(gguf_writer_t *w, const char *path);
/* Writes the same bytes as gguf_writer_write into a malloc'd buffer: *data (free() it) of *size
 * bytes, ready for gguf_open_memory. CLLM_ERR_NOMEM if memory runs out (*data stays NULL); a fill
 * callback's error is returned as is. */
status_t gguf_writer_write_memory(gguf_writer_t *w, void **data, size_t *size);
/* Number of tensors added and the sum of their elements (for "params written" reports). */
int64_t gguf_writer_n_tensors(const gguf_writer_t *w);
int64_t gguf_writer_n_elements(const gguf_writer_t *w);

#endif

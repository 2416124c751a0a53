/* safetensors.h: reader of Hugging Face safetensors files and sharded checkpoints.
 *
 * A file is: u64 (little-endian) header length N, N bytes of JSON
 * {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
 * then the data; offsets are relative to the start of the data. The file is mmap'd and tensor data
 * is never copied. Like the GGUF reader, it trusts nothing: the header length, every shape, every
 * offset pair is checked against the file with overflow-safe arithmetic; tensors may not overlap;
 * shape x dtype size must equal end - begin; duplicate names are refused. A broken file gets one
 * error naming the file and the tensor. Immutable after open: safe to read from many threads.
 *
 * A checkpoint directory holds model.safetensors, or model.safetensors.index.json whose
 * "weight_map" names the shard file of every tensor; safetensors_dir_open handles both.
 *
 * The writer (safetensors_write.c) streams: the header is laid out from the tensors' shapes,
 * then each tensor's bytes are written (or produced by a fill callback) one at a time, so a
 * multi-GB checkpoint never sits in memory whole. The header is padded with spaces to a multiple
 * of 8 bytes, so the data section (and every tensor whose offset is a multiple of 8) is aligned. */
#ifndef CLLM_MODEL_SAFETENSORS_H
#define CLLM_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"

#define SAFETENSORS_MAX_DIMS 8

typedef enum {
    ST_DTYPE_F32 = 0,
    ST_DTYPE_F16,
    ST_DTYPE_BF16,
    ST_DTYPE_F64,
    ST_DTYPE_I64,
    ST_DTYPE_I32,
    ST_DTYPE_I16,
    ST_DTYPE_I8,
    ST_DTYPE_U8,
    ST_DTYPE_BOOL,
    ST_DTYPE_F8_E4M3,
    ST_DTYPE_F8_E5M2,
    ST_DTYPE_COUNT
} st_dtype_t;

typedef struct {
    const char *name;   /* NUL-terminated */
    st_dtype_t dtype;
    uint32_t n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS]; /* outermost first, as in PyTorch: a Linear weight is [out, in] */
    const void *data;   /* into the mapping */
    size_t nbytes;
} st_tensor_t;

typedef struct safetensors safetensors_t;

/* "F32", "BF16", ... */
const char *st_dtype_name(st_dtype_t t);
size_t st_dtype_size(st_dtype_t t);

status_t safetensors_open(const char *path, safetensors_t **out);
/* Parses a buffer in memory (not copied; must outlive the result); name is used in messages. */
status_t safetensors_open_memory(const void *data, size_t size, const char *name, safetensors_t **out);
void safetensors_close(safetensors_t *st);
size_t safetensors_n_tensors(const safetensors_t *st);
const st_tensor_t *safetensors_tensor(const safetensors_t *st, size_t i);
/* NULL if absent. */
const st_tensor_t *safetensors_find(const safetensors_t *st, const char *name);

/* A checkpoint directory: one file or index + shards. */
typedef struct safetensors_dir safetensors_dir_t;
status_t safetensors_dir_open(const char *dir, safetensors_dir_t **out);
void safetensors_dir_close(safetensors_dir_t *d);
const st_tensor_t *safetensors_dir_find(const safetensors_dir_t *d, const char *name);
size_t safetensors_dir_n_tensors(const safetensors_dir_t *d);

/* --- writer ---
 * Tensors are laid out in the order added, back to back. Names must be unique and non-empty
 * (else CLLM_ERR_INVALID_ARG); "__metadata__" holds string pairs only, as the format requires. */
typedef struct safetensors_writer safetensors_writer_t;
/* fill(ctx, dst, nbytes) writes the tensor's nbytes bytes at write time. */
typedef status_t (*safetensors_fill_fn)(void *ctx, void *dst, size_t nbytes);

/* NULL if out of memory. */
safetensors_writer_t *safetensors_writer_create(void);
void safetensors_writer_destroy(safetensors_writer_t *w);
/* A "__metadata__" entry (e.g. "format": "pt"); both strings are copied. */
status_t safetensors_writer_set_metadata(safetensors_writer_t *w, const char *key, const char *value);
/* shape: n_dims sizes, outermost first (a Linear weight is [out, in]). data (nbytes, which must
 * equal the shape's size) is referenced, not copied: it must stay valid until the write. */
status_t safetensors_writer_add_tensor(safetensors_writer_t *w, const char *name, st_dtype_t dtype, uint32_t n_dims,
                                       const int64_t *shape, const void *data, size_t nbytes);
status_t safetensors_writer_add_tensor_fill(safetensors_writer_t *w, const char *name, st_dtype_t dtype,
                                            uint32_t n_dims, const int64_t *shape, safetensors_fill_fn fill,
                                            void *fill_ctx);
/* Writes every tensor into one file. A partial file is removed on failure (CLLM_ERR_IO, or the
 * fill callback's error as is). */
status_t safetensors_writer_write(safetensors_writer_t *w, const char *path);
/* Writes a checkpoint directory (which must exist): n_shards == 1 gives dir/model.safetensors
 * (and removes a model.safetensors.index.json there, which readers would prefer);
 * more give dir/model-0000i-of-0000N.safetensors, the tensors split in order into runs of about
 * equal bytes, plus dir/model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map"}).
 * n_shards must be in 1..number of tensors (CLLM_ERR_INVALID_ARG). */
status_t safetensors_writer_write_dir(safetensors_writer_t *w, const char *dir, int n_shards);
size_t safetensors_writer_n_tensors(const safetensors_writer_t *w);
/* Sum of the tensors' data bytes. */
uint64_t safetensors_writer_data_bytes(const safetensors_writer_t *w);

#endif

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
 * "weight_map" names the shard file of every tensor; safetensors_dir_open handles both. */
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

#endif

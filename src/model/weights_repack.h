/* weights_repack.h: a model's matrices as the kernels read them (kern_matrix_t), copied once at
 * load into memory on transparent huge pages, in the layout the kernel level in use reads
 * fastest (kern_matrix_pack: Q8_0 and Q4_0 at AVX-512 repacked into the x16 layout; F32, F16
 * and BF16 as stored).
 *
 * Owns the copies (one per matrix, each the size of the matrix, so the matrices take twice
 * their size while the mapping is resident; the mapping's pages of copied matrices are not
 * read again, so the OS may reclaim them). The model must outlive it. CLLM_REPACK=0 in the
 * environment keeps every matrix in the mapping, read in place (for comparisons). */
#ifndef CLLM_MODEL_WEIGHTS_REPACK_H
#define CLLM_MODEL_WEIGHTS_REPACK_H

#include <stddef.h>

#include "cllm/status.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"
#include "model/model.h"

typedef struct {
    kern_matrix_t wq, wk, wv, wo, w_gate, w_up, w_down;
} weights_layer_t;

typedef struct {
    int n_layer;
    weights_layer_t *layers; /* (n_layer) */
    kern_matrix_t output;    /* (n_vocab, n_embd), the tied token_embd when tied */
    int n_packed;            /* matrices repacked */
    size_t packed_bytes;     /* their total size */
    double pack_seconds;     /* wall time of the packing */
} weights_repack_t;

/* Views every matrix of m and packs those the level has a layout for, split over pool.
 * Errors: CLLM_ERR_NOMEM. */
status_t weights_repack_create(const model_t *m, threadpool_t *pool, weights_repack_t **out);
void weights_repack_destroy(weights_repack_t *w);

#endif

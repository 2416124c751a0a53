/* forward.h: the transformer forward pass over a batch of tokens from several sequences.
 *
 * A batch is a flat list of tokens; each carries its sequence, its position in that sequence,
 * and (through its sequence's block table) the KV slot its K/V go to. Prefill chunks of one
 * sequence and decode tokens of others mix freely in one batch. Each token attends to positions
 * [0, pos] of its own sequence, reading K/V in place through the block table (no gather, no
 * scatter). Every row's result is independent of the rest of the batch (batch-invariant
 * kernels), so chunking, batching and prefix reuse cannot change an answer.
 * One forward_t is used by one thread (the engine thread); kernels fan out on the pool. */
#ifndef CLLM_MODEL_FORWARD_H
#define CLLM_MODEL_FORWARD_H

#include <stdint.h>

#include "cllm/status.h"
#include "core/threadpool.h"
#include "kv/kv_cache.h"
#include "model/model.h"

typedef struct {
    int32_t n_tokens;
    const int32_t *tokens;              /* (n_tokens) token ids */
    const int32_t *pos;                 /* (n_tokens) position of each token in its sequence */
    const int32_t *seq;                 /* (n_tokens) index of each token's sequence, < n_seqs */
    int32_t n_seqs;
    const int32_t *const *block_tables; /* (n_seqs) block ids of each sequence */
    const int32_t *n_blocks;            /* (n_seqs) length of each block table */
    const uint8_t *want_logits;         /* (n_tokens) 1 = output this token's logits; NULL = last only */
} forward_batch_t;

typedef struct forward forward_t;

status_t forward_create(const model_t *model, kv_cache_t *kv, threadpool_t *pool, forward_t **out);
void forward_destroy(forward_t *fw);

/* Runs the batch. logits: (n_out, n_vocab), one row per token with want_logits set, in batch
 * order. Requirements (checked: CLLM_ERR_INVALID_ARG): token ids in the vocabulary, positions
 * >= 0 and covered by the sequence's block table; positions [0, pos) of a sequence must already
 * be in the cache or earlier in this batch. */
status_t forward_run(forward_t *fw, const forward_batch_t *batch, float *logits);

#endif

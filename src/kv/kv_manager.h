/* kv_manager.h: per-request block tables on top of the block pool, with automatic prefix
 * caching (vLLM V1's KVCacheManager, in C). The scheduler calls it; the engine reads the block
 * tables to run the model (token p of a sequence lives in block table[p / block_size], slot
 * p % block_size of kv_cache.h). Pure bookkeeping: no threads, no I/O, no K/V data.
 *
 * A request owns a kvm_seq_t (embedded in the scheduler's request; kvm_init_seq /
 * kvm_deinit_seq). Its token ids stay with the caller and are passed to the calls that hash
 * them; they are append-only (prompt, then generated tokens), as the running key chain the
 * sequence keeps assumes. The life of a request:
 *   kvm_find_cached_prefix  when it is scheduled from the waiting queue (new or preempted): takes
 *                           the longest chain of cached full blocks of its tokens (references
 *                           taken, blocks appended to its table); n_computed = the hit;
 *   kvm_allocate            each step: the table covers n_computed + n_new tokens (all or
 *                           nothing; CLLM_NO_SPACE is a status for the scheduler, not an error);
 *   kvm_commit              after the model wrote K/V of tokens [n_computed, n): n_computed = n,
 *                           and blocks that became full enter the prefix cache (one key each,
 *                           chained incrementally: nothing is rehashed per step);
 *   kvm_free                when it finishes or is preempted: its table is released tail first,
 *                           so a prompt's last blocks are evicted first; its full blocks stay
 *                           cached and a returning request hits them.
 * Invariants (kvm_check_invariants checks them): a block's ref_cnt is the number of live block
 * tables holding it; free blocks (ref 0) are exactly the free list; cached keys are exact (a hit
 * is verified token for token, see block_pool.h, so a key collision costs a miss, never wrong
 * K/V); with prefix caching disabled nothing is hashed or cached.
 *
 * Partial-block reuse (off at create; kvm_set_partial_block_reuse turns it on, as the engine
 * does with prefix caching). After the chain of full-block hits (h blocks),
 * kvm_find_cached_prefix looks among the cached children of the last matched block (or of the
 * root, for h == 0; see block_pool_find_partial) for the one sharing the longest run L >= 1 of
 * the request's next tokens. If found, a NEW block is allocated at table index h and the request must get the
 * donor's slots [0, L) copied into it (K and V, every layer) before the model writes anything in
 * that step: n_computed = h * block_size + L. The copy is left pending in the sequence
 * (kvm_take_pending_copy); the KV manager touches no K/V. The donor takes no reference: it may
 * be a free cached block, and a later allocation of the same scheduling step may take it (even
 * the new block itself may be the donor, when it was the free list's head: then nothing needs
 * copying). That is safe because every K/V write of a step happens in the forward pass, after
 * the step's copies are done in the order they were made: a donor reallocated in the step still
 * holds its old content when it is copied from. */
#ifndef CLLM_KV_KV_MANAGER_H
#define CLLM_KV_KV_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "kv/block_hash.h"
#include "kv/block_pool.h"

/* Most bytes of a cache salt (derive salts server-side, e.g. a tenant id or its digest). */
#define KVM_SALT_MAX BLOCK_POOL_EXTRA_MAX

typedef struct {
    int32_t n_blocks;           /* >= 1 */
    int32_t block_size;         /* tokens per block, 1..BLOCK_HASH_MAX_TOKENS */
    bool enable_prefix_caching;
    uint64_t cache_namespace;   /* model identity: seeds every key (e.g. a digest of the weights) */
    int32_t debug_key_bits;     /* 0: full 128-bit keys; 1..64: keep that many bits (tests: forces
                                   key collisions, which must never change an answer) */
} kvm_config_t;

/* Per-request state, owned by the caller's request object, filled by kvm_init_seq. Read it
 * through kvm_block_table; the fields belong to kv_manager. */
typedef struct {
    int32_t *block_ids;     /* (cap_blocks): the block table; block i holds tokens [i*bs, (i+1)*bs) */
    int32_t n_blocks;       /* blocks in the table */
    int32_t cap_blocks;     /* ceil(max_tokens / block_size) */
    int32_t max_tokens;
    int32_t n_computed;     /* tokens whose K/V are in the table's blocks */
    int32_t n_linked;       /* leading full blocks already hit or committed to the cache */
    int32_t n_hashed;       /* leading full blocks whose keys are in keys */
    block_key_t *keys;      /* (cap_blocks): the running key chain; NULL without prefix caching */
    block_link_t *links;    /* (cap_blocks): links[i] = the block lifetime standing for the prefix
                               up to block i (parent of block i + 1); NULL without prefix caching */
    block_key_t root_key;   /* the key of the salt: parent of block 0 */
    int32_t copy_src;       /* pending partial-block copy from kvm_find_cached_prefix: slots */
    int32_t copy_dst;       /* [0, copy_n) of block copy_src go to copy_dst (table block */
    int32_t copy_n;         /* n_linked); copy_n 0: none */
    size_t salt_len;
    char salt[KVM_SALT_MAX];
} kvm_seq_t;

typedef struct {
    int32_t n_blocks;             /* total */
    int32_t n_blocks_free;        /* allocatable (cached free blocks included) */
    int32_t n_blocks_cached;      /* free but holding a key (evictable cache entries) */
    int32_t n_blocks_used;        /* referenced by some block table */
    uint64_t prefix_cache_queries; /* tokens looked up (vLLM's prefix_cache_queries) */
    uint64_t prefix_cache_hits;    /* of those, tokens found cached (vLLM's prefix_cache_hits) */
    uint64_t n_evictions;          /* cached keys dropped to reuse their block */
} kvm_stats_t;

typedef struct kvm kvm_t;

/* CLLM_ERR_INVALID_ARG (bad config), CLLM_ERR_NOMEM. */
status_t kvm_create(const kvm_config_t *cfg, kvm_t **out);
void kvm_destroy(kvm_t *kvm);

/* Turns partial-block reuse (above) on or off (off after kvm_create; nothing happens without
 * prefix caching). Affects later prefix lookups only. */
void kvm_set_partial_block_reuse(kvm_t *kvm, bool on);

/* Prepares seq for a request of at most max_tokens (>= 1) tokens with an optional cache salt
 * (salt_len bytes, 0..KVM_SALT_MAX; salt may be NULL when 0): the salt enters the first block's
 * key, so requests with different salts never share blocks. CLLM_ERR_INVALID_ARG,
 * CLLM_ERR_RANGE (salt too long), CLLM_ERR_NOMEM. */
status_t kvm_init_seq(const kvm_t *kvm, kvm_seq_t *seq, int32_t max_tokens, const void *salt, size_t salt_len);
/* Frees seq's blocks (tail first) and its memory. Safe on a zeroed seq. */
void kvm_deinit_seq(kvm_t *kvm, kvm_seq_t *seq);

/* For a sequence holding no blocks, with tokens (n_tokens, 0..max_tokens): the longest chain of
 * cached full blocks equal to its leading tokens, capped so that at least one token remains to
 * compute (at most (n_tokens - 1) / block_size blocks). Takes a reference on each (they can no
 * longer be evicted) and appends them to the table; *n_cached_tokens = n_computed = hit blocks *
 * block_size. Counts n_tokens queried and the hit in the stats. Without prefix caching: 0, no
 * stats. If the request is then not admitted (kvm_allocate says CLLM_NO_SPACE), kvm_free gives
 * the hit blocks back, still cached. CLLM_ERR_INVALID_ARG (seq holds blocks), CLLM_ERR_RANGE.
 * With partial-block reuse on, after the full-block hit (h blocks) the partial step above: the
 * donor is the cached child with the longest common prefix L (ties: the lowest block id), L
 * capped so that the whole hit stays <= n_tokens - 1 (and L <= block_size - 1); it is taken only
 * when a free block exists for the new block (else the hit is the h full blocks). The L tokens
 * count as hit tokens in the stats and in *n_cached_tokens; the copy waits in seq
 * (kvm_take_pending_copy) until taken or kvm_free. */
status_t kvm_find_cached_prefix(kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_tokens,
                                int32_t *n_cached_tokens);

/* The copy kvm_find_cached_prefix left pending for seq, if any: true with slots [0, *n_slots)
 * of block *src to go into block *dst, and the copy is no longer pending; false when none. The
 * scheduler hands it to the engine once the request is admitted. */
bool kvm_take_pending_copy(kvm_seq_t *seq, int32_t *src, int32_t *dst, int32_t *n_slots);

/* Read-only twin of kvm_find_cached_prefix (the scheduler ranks waiting requests with it): the
 * hit, in tokens and with the same cap, that kvm_find_cached_prefix would take now, but no
 * reference is taken, no table or counter changes and no stats are counted. seq may hold blocks.
 * The partial-block part is counted as find would, free block or not.
 * Only seq's running key chain grows (keys are kept: each block is hashed once per sequence);
 * on a miss before the cap the missed block's key is hashed too, so kvm_seq_block_key of that
 * block is then free. Without prefix caching: 0. CLLM_ERR_RANGE (n_tokens out of 0..max_tokens). */
status_t kvm_peek_cached_prefix(const kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_tokens,
                                int32_t *n_cached_tokens);

/* The prefix-cache key of full block i of seq's tokens (n_tokens of them; block i must be full:
 * (i + 1) * block_size <= n_tokens), hashing the chain up to it if not done yet (kept). Two
 * sequences whose block-i keys are equal (almost surely) share tokens [0, (i + 1) * block_size)
 * and salt, so the scheduler uses it to see that a running request is computing a block another
 * request waits for. CLLM_ERR_UNSUPPORTED without prefix caching, CLLM_ERR_RANGE. */
status_t kvm_seq_block_key(const kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_tokens, int32_t i,
                           block_key_t *key);

/* Grows the table to cover n_computed + n_new_tokens tokens. All or nothing: CLLM_NO_SPACE (no
 * block taken) when the free list (cached free blocks included) is too short.
 * CLLM_ERR_INVALID_ARG (n_new_tokens < 0), CLLM_ERR_RANGE (beyond max_tokens). */
status_t kvm_allocate(kvm_t *kvm, kvm_seq_t *seq, int32_t n_new_tokens);

/* The model wrote K/V of tokens [n_computed, n_computed_tokens): n_computed = n_computed_tokens
 * (which the table must cover; it never decreases). Every block that became full is keyed and
 * enters the cache (tokens must hold at least n_computed_tokens ids, equal to those of earlier
 * calls). CLLM_ERR_INVALID_ARG. */
status_t kvm_commit(kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_computed_tokens);

/* Releases seq's table, last block first, and resets n_computed to 0 (finished or preempted).
 * The running key chain is kept, so a returning request does not rehash its tokens. */
void kvm_free(kvm_t *kvm, kvm_seq_t *seq);

/* The block table: *ids (n) block ids in token order. */
void kvm_block_table(const kvm_seq_t *seq, const int32_t **ids, int32_t *n);

void kvm_get_stats(const kvm_t *kvm, kvm_stats_t *stats);

/* Checks the pool's invariants and that each block's ref_cnt equals the number of the given
 * live sequences' tables holding it (with n_seqs 0: every block is free), and each sequence's
 * own counters. CLLM_OK, or CLLM_ERR_INTERNAL with a message naming what broke; CLLM_ERR_NOMEM. */
status_t kvm_check_invariants(const kvm_t *kvm, const kvm_seq_t *const *seqs, int32_t n_seqs);

/* The pool underneath (tests and debugging: free-list order, ref counts). */
const block_pool_t *kvm_block_pool(const kvm_t *kvm);

#endif

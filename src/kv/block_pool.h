/* block_pool.h: the KV blocks' bookkeeping: reference counts, the LRU free list and the
 * prefix-cache map (key -> block). Pure data structure: no threads, no I/O, O(1) per block
 * operation (expected O(1) for the map); only create (and the debug check) allocates.
 *
 * Blocks are ids 0..n_blocks-1, each holding block_size token slots of K/V (kv_cache.h stores
 * them). Every block is either
 *   - free:       ref_cnt == 0 and in the free list exactly once, or
 *   - referenced: ref_cnt > 0 (= the number of block tables holding it), not in the free list.
 * The free list is the eviction order: allocation takes the head (least recently used), a block
 * whose last reference goes is appended to the tail. There are no sentinel blocks: the list ends
 * are -1. A free block may still hold a cache key ("cached"): it stays findable, and a prefix hit
 * takes it out of the middle of the list. Its key is dropped only when allocation takes it
 * (lazy eviction, counted in n_evictions). The map holds at most one block per key and only
 * blocks that hold that key; so it never holds more than n_blocks keys and is sized at create
 * (open addressing, linear probing, load <= 1/2, backward-shift deletion: no tombstones).
 *
 * Exact hits under key collisions. A key only finds a candidate; keys may collide (and do, on
 * purpose, with block_key_truncate in tests). What a cached block's K/V mean is pinned exactly:
 * a block's *lifetime* (id, gen) is one allocation of it (gen counts the allocations of each
 * block, 64-bit, never wraps), and its content is written once in that lifetime. A cached block
 * stores its own tokens and the lifetime of its parent (block_link_t), or, for the first block
 * of a sequence (parent id -1), the salt bytes ("extra"). block_pool_find() accepts a candidate
 * only if its tokens, its parent link (id AND gen) and, for a first block, its extra bytes equal
 * the query's. By induction over the chain: the first block matched holds exactly the query's
 * salt and first tokens; if the block matched at level i-1 holds exactly the query's prefix up to
 * level i-1 and is still in the same lifetime (the caller holds a reference to it, so it cannot
 * be reallocated), a level-i candidate that names that lifetime as its parent was computed on
 * top of that exact prefix, and its own tokens equal the query's: it holds the query's prefix up
 * to level i. A parent named by an older lifetime fails the gen test, so a block whose parent
 * was evicted and reused is never matched through the new content. (Comparing the parent's KEY
 * instead would not be enough: two different prefixes with equal keys could then splice.) A
 * collision therefore costs at most a miss, never a wrong block.
 *
 * Child index (partial-block reuse). Every keyed block whose parent lifetime is current (or
 * whose parent is the root, id -1) is in its parent's child list (intrusive, doubly linked
 * through the children; one list per block for its current lifetime, one for the root): linked
 * by block_pool_cache, unlinked when allocation evicts the block, and a block's whole list is
 * dropped in O(children) when allocation starts its new lifetime (those children name a stale
 * gen and can never match again). block_pool_find_partial walks one list: O(children), never a
 * scan of the pool. */
#ifndef CLLM_KV_BLOCK_POOL_H
#define CLLM_KV_BLOCK_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cllm/status.h"
#include "kv/block_hash.h"

/* Most bytes of extra key (cache salt) a first block stores for exact comparison. */
#define BLOCK_POOL_EXTRA_MAX 64

/* One lifetime of a block: id and its allocation count then. id -1: no parent (a first block). */
typedef struct {
    int32_t id;
    uint64_t gen;
} block_link_t;

typedef struct block_pool block_pool_t;

/* n_blocks (1..2^28) blocks of block_size (1..BLOCK_HASH_MAX_TOKENS) tokens, all free, free list
 * 0, 1, ..., n_blocks-1. CLLM_ERR_INVALID_ARG, CLLM_ERR_NOMEM. */
status_t block_pool_create(int32_t n_blocks, int32_t block_size, block_pool_t **out);
void block_pool_destroy(block_pool_t *pool);

int32_t block_pool_n_blocks(const block_pool_t *pool);
int32_t block_pool_block_size(const block_pool_t *pool);
/* Free blocks (cached ones included): what allocation can take. */
int32_t block_pool_n_free(const block_pool_t *pool);
/* Free blocks that still hold a key (evictable prefix-cache entries). */
int32_t block_pool_n_cached(const block_pool_t *pool);
/* Keys dropped because allocation took a cached free block. */
uint64_t block_pool_n_evictions(const block_pool_t *pool);

/* Takes n blocks from the head of the free list into ids (n), each with ref_cnt 1, dropping the
 * keys they held. All or nothing: CLLM_NO_SPACE (nothing taken) when fewer than n are free.
 * CLLM_ERR_INVALID_ARG for n < 0. */
status_t block_pool_alloc(block_pool_t *pool, int32_t n, int32_t *ids);

/* Adds a reference to block id; a free block leaves the free list (a prefix hit).
 * CLLM_ERR_INVALID_ARG for a bad id. */
status_t block_pool_ref(block_pool_t *pool, int32_t id);

/* Drops a reference; at zero the block goes to the tail of the free list (keeping its key).
 * CLLM_ERR_INVALID_ARG for a bad id or a block that is already free. */
status_t block_pool_unref(block_pool_t *pool, int32_t id);

/* The current lifetime of block id (id must be valid). */
block_link_t block_pool_link(const block_pool_t *pool, int32_t id);

/* The cached block with this key whose content is exactly (parent, tokens (block_size), and for
 * parent.id == -1 the extra bytes), or -1. Takes no reference. */
int32_t block_pool_find(const block_pool_t *pool, block_key_t key, block_link_t parent, const int32_t *tokens,
                        const void *extra, size_t extra_len);

/* Among the cached children of parent (keyed blocks whose parent link is exactly parent, and
 * for parent.id == -1 whose extra bytes equal extra), the one whose stored tokens share the
 * longest common prefix with tokens[0, n_tokens) (n_tokens capped at block_size); ties go to the
 * lowest block id. Returns it with *n_match = that prefix length (>= 1), or -1 with *n_match 0
 * when no child shares even the first token. O(children of parent). Takes no reference: the
 * caller copies the donor's leading *n_match slots before anything can overwrite them. */
int32_t block_pool_find_partial(const block_pool_t *pool, block_link_t parent, const int32_t *tokens,
                                int32_t n_tokens, const void *extra, size_t extra_len, int32_t *n_match);

/* Registers the full, written block id (referenced, holding no key) as the cache entry for key
 * with content (parent, tokens (block_size), extra (parent.id == -1 only; at most
 * BLOCK_POOL_EXTRA_MAX bytes)), and sets *canon to the lifetime that now stands for this content:
 *   - key free in the map: id is inserted; *canon is id's own lifetime;
 *   - key held by a block with exactly this content: that block's lifetime (id stays uncached,
 *     a duplicate, e.g. two requests that computed the same prefix at the same time);
 *   - key held by a block with other content (a collision): id's own lifetime, id uncached.
 * The caller uses *canon as the parent of the next block of its chain. CLLM_ERR_INVALID_ARG
 * (nothing done) for a bad id, a free or already keyed block, or too long extra. */
status_t block_pool_cache(block_pool_t *pool, int32_t id, block_key_t key, block_link_t parent, const int32_t *tokens,
                          const void *extra, size_t extra_len, block_link_t *canon);

/* Debug accessors (tests, invariant checks). */
int32_t block_pool_ref_cnt(const block_pool_t *pool, int32_t id);
bool block_pool_has_key(const block_pool_t *pool, int32_t id);
/* Writes the free list head to tail into ids (at most cap); returns its length (which may be
 * larger than cap). */
int32_t block_pool_free_list(const block_pool_t *pool, int32_t *ids, int32_t cap);

/* Checks every invariant above; with refs (n_blocks) non-NULL also that block b's ref_cnt is
 * refs[b]. CLLM_OK or CLLM_ERR_INTERNAL with a message naming the first broken one. */
status_t block_pool_check(const block_pool_t *pool, const int32_t *refs);

#endif

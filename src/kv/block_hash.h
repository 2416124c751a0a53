/* block_hash.h: the prefix-cache keys of full KV blocks.
 *
 * A full block's key chains everything its K/V depend on:
 *   root      = XXH3-128(cache salt bytes, seed = namespace)
 *   key[0]    = XXH3-128(root   || tokens of block 0, seed = namespace)
 *   key[i]    = XXH3-128(key[i-1] || tokens of block i, seed = namespace)
 * so the salt (vLLM's cache_salt, an extra key of the first block only) and the namespace (the
 * model identity given at create) reach every block through the chain. Keys are computed
 * incrementally, one block at a time, as blocks fill: a request keeps its running chain.
 *
 * Keys only find candidates: they are not trusted to be unique (block_pool.h verifies every hit
 * exactly). block_key_truncate() keeps a few bits of a key so that tests can force collisions.
 * Keys are in native byte order and are not meant to be stored or sent anywhere. */
#ifndef CLLM_KV_BLOCK_HASH_H
#define CLLM_KV_BLOCK_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most tokens one block may hold (the block buffer hashed in one call lives on the stack). */
#define BLOCK_HASH_MAX_TOKENS 256

typedef struct {
    uint64_t lo;
    uint64_t hi;
} block_key_t;

static inline bool block_key_equal(block_key_t a, block_key_t b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

/* The root of a chain: the key of the salt (salt may be NULL when salt_len is 0). */
block_key_t block_hash_root(uint64_t ns, const void *salt, size_t salt_len);

/* The key of a full block of n_tokens (1..BLOCK_HASH_MAX_TOKENS) token ids whose parent key is
 * parent (the root for the first block). */
block_key_t block_hash_chain(uint64_t ns, block_key_t parent, const int32_t *tokens, int32_t n_tokens);

/* key with only its low `bits` bits kept (1..64); bits <= 0 returns key unchanged. Test hook. */
block_key_t block_key_truncate(block_key_t key, int bits);

#endif

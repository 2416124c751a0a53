/* block_hash.c: XXH3-128 chained block keys (see block_hash.h). Stateless; one XXH3 call per
 * full block over a small stack buffer (parent key, then the block's token ids). */
#include "kv/block_hash.h"

#include <string.h>
#include <xxhash.h>

block_key_t block_hash_root(uint64_t ns, const void *salt, size_t salt_len)
{
    XXH128_hash_t h = XXH3_128bits_withSeed(salt_len ? salt : "", salt_len, ns);
    return (block_key_t){h.low64, h.high64};
}

block_key_t block_hash_chain(uint64_t ns, block_key_t parent, const int32_t *tokens, int32_t n_tokens)
{
    /* (16 + 4 * n_tokens) bytes: parent.lo, parent.hi, then the token ids */
    unsigned char buf[2 * sizeof(uint64_t) + BLOCK_HASH_MAX_TOKENS * sizeof(int32_t)];
    size_t n = n_tokens < 0 ? 0 : (size_t)n_tokens;
    if (n > BLOCK_HASH_MAX_TOKENS) n = BLOCK_HASH_MAX_TOKENS;
    memcpy(buf, &parent.lo, sizeof(uint64_t));
    memcpy(buf + sizeof(uint64_t), &parent.hi, sizeof(uint64_t));
    memcpy(buf + 2 * sizeof(uint64_t), tokens, n * sizeof(int32_t));
    XXH128_hash_t h = XXH3_128bits_withSeed(buf, 2 * sizeof(uint64_t) + n * sizeof(int32_t), ns);
    return (block_key_t){h.low64, h.high64};
}

block_key_t block_key_truncate(block_key_t key, int bits)
{
    if (bits <= 0) return key;
    if (bits < 64) key.lo &= ((uint64_t)1 << bits) - 1;
    key.hi = 0;
    return key;
}

/* kv_manager.c: block tables and prefix caching over the block pool (see kv_manager.h).
 * Keeps: per sequence, table blocks [0, n_linked) are full and stand in the cache (hit or
 * committed), keys[0, n_hashed) are the chained keys of its first full blocks, and
 * n_computed <= n_blocks * block_size; a pending partial copy (copy_n > 0, between
 * kvm_find_cached_prefix and kvm_take_pending_copy) targets table block n_linked, the table's
 * last, and n_computed = n_linked * block_size + copy_n; the pool keeps the block invariants. */
#include "kv/kv_manager.h"

#include <stdlib.h>
#include <string.h>

struct kvm {
    kvm_config_t cfg;
    block_pool_t *pool;
    uint64_t n_query_tokens; /* prefix-cache queries, in tokens */
    uint64_t n_hit_tokens;   /* prefix-cache hits, in tokens */
    bool partial_reuse;      /* partial-block reuse after the full-block hit */
};

/* The parent of a sequence's first block: no block, compared through the salt instead. */
static const block_link_t root_link = {-1, 0};

status_t kvm_create(const kvm_config_t *cfg, kvm_t **out)
{
    kvm_t *kvm;
    status_t st;

    *out = NULL;
    if (cfg->debug_key_bits < 0 || cfg->debug_key_bits > 64)
        return cllm_error(CLLM_ERR_INVALID_ARG, "kv manager: debug_key_bits %d out of 0..64", cfg->debug_key_bits);
    kvm = calloc(1, sizeof(*kvm));
    if (!kvm) return cllm_error(CLLM_ERR_NOMEM, "kv manager: out of memory");
    kvm->cfg = *cfg;
    st = block_pool_create(cfg->n_blocks, cfg->block_size, &kvm->pool);
    if (st != CLLM_OK) {
        free(kvm);
        return st;
    }
    *out = kvm;
    return CLLM_OK;
}

void kvm_set_partial_block_reuse(kvm_t *kvm, bool on)
{
    kvm->partial_reuse = on;
}

void kvm_destroy(kvm_t *kvm)
{
    if (!kvm) return;
    block_pool_destroy(kvm->pool);
    free(kvm);
}

status_t kvm_init_seq(const kvm_t *kvm, kvm_seq_t *seq, int32_t max_tokens, const void *salt, size_t salt_len)
{
    int32_t bs = kvm->cfg.block_size;

    memset(seq, 0, sizeof(*seq));
    if (max_tokens < 1) return cllm_error(CLLM_ERR_INVALID_ARG, "kv manager: max_tokens %d must be >= 1", max_tokens);
    if (salt_len > KVM_SALT_MAX)
        return cllm_error(CLLM_ERR_RANGE, "kv manager: cache salt of %zu bytes, at most %d", salt_len, KVM_SALT_MAX);
    if (salt_len && !salt) return cllm_error(CLLM_ERR_INVALID_ARG, "kv manager: NULL salt of %zu bytes", salt_len);

    seq->max_tokens = max_tokens;
    seq->cap_blocks = max_tokens / bs + (max_tokens % bs != 0);
    seq->block_ids = malloc((size_t)seq->cap_blocks * sizeof(int32_t));
    if (!seq->block_ids) goto out_nomem;
    if (kvm->cfg.enable_prefix_caching) {
        seq->keys = malloc((size_t)seq->cap_blocks * sizeof(block_key_t));
        seq->links = malloc((size_t)seq->cap_blocks * sizeof(block_link_t));
        if (!seq->keys || !seq->links) goto out_nomem;
        seq->root_key = block_hash_root(kvm->cfg.cache_namespace, salt, salt_len);
    }
    seq->salt_len = salt_len;
    if (salt_len) memcpy(seq->salt, salt, salt_len);
    return CLLM_OK;

out_nomem:
    free(seq->block_ids);
    free(seq->keys);
    free(seq->links);
    memset(seq, 0, sizeof(*seq));
    return cllm_error(CLLM_ERR_NOMEM, "kv manager: out of memory for a %d-token sequence", max_tokens);
}

void kvm_deinit_seq(kvm_t *kvm, kvm_seq_t *seq)
{
    kvm_free(kvm, seq);
    free(seq->block_ids);
    free(seq->keys);
    free(seq->links);
    memset(seq, 0, sizeof(*seq));
}

/* Makes keys[i] valid (i <= n_hashed): the key of full block i, tokens (block_size) its ids. */
static void seq_hash_block(const kvm_t *kvm, kvm_seq_t *seq, int32_t i, const int32_t *tokens)
{
    if (i < seq->n_hashed) return;
    block_key_t parent = i ? seq->keys[i - 1] : seq->root_key;
    block_key_t key = block_hash_chain(kvm->cfg.cache_namespace, parent, tokens, kvm->cfg.block_size);
    seq->keys[i] = block_key_truncate(key, kvm->cfg.debug_key_bits);
    seq->n_hashed = i + 1;
}

/* The partial-block donor after a full-block hit of h blocks whose last lifetime is parent:
 * the cached child of parent sharing the longest prefix with tokens [h*bs, ...), with the
 * length capped at block_size - 1 and at n_tokens - 1 - h*bs (the last token is computed). */
static int32_t find_partial(const kvm_t *kvm, const kvm_seq_t *seq, block_link_t parent, const int32_t *tokens,
                            int32_t n_tokens, int32_t h, int32_t *n_match)
{
    int32_t bs = kvm->cfg.block_size;
    int32_t cap = n_tokens - 1 - h * bs;
    if (cap > bs - 1) cap = bs - 1;
    *n_match = 0;
    if (!kvm->partial_reuse || cap < 1) return -1;
    return block_pool_find_partial(kvm->pool, parent, tokens + (size_t)h * (size_t)bs, cap, seq->salt,
                                   seq->salt_len, n_match);
}

status_t kvm_find_cached_prefix(kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_tokens,
                                int32_t *n_cached_tokens)
{
    int32_t bs = kvm->cfg.block_size;
    int32_t max_hit, i;
    block_link_t parent = root_link;

    *n_cached_tokens = 0;
    if (seq->n_blocks != 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "kv manager: prefix lookup for a sequence holding %d blocks",
                          seq->n_blocks);
    if (n_tokens < 0 || n_tokens > seq->max_tokens)
        return cllm_error(CLLM_ERR_RANGE, "kv manager: %d tokens, the sequence takes 0..%d", n_tokens, seq->max_tokens);
    seq->n_computed = 0;
    seq->n_linked = 0;
    seq->copy_n = 0;
    if (!kvm->cfg.enable_prefix_caching) return CLLM_OK;

    /* the last token is always computed: its logits are needed */
    max_hit = n_tokens > 0 ? (n_tokens - 1) / bs : 0;
    for (i = 0; i < max_hit; i++) {
        const int32_t *t = tokens + (size_t)i * (size_t)bs;
        int32_t id;
        seq_hash_block(kvm, seq, i, t);
        id = block_pool_find(kvm->pool, seq->keys[i], parent, t, seq->salt, seq->salt_len);
        if (id < 0) break;
        block_pool_ref(kvm->pool, id);
        seq->block_ids[i] = id;
        parent = seq->links[i] = block_pool_link(kvm->pool, id);
    }
    seq->n_blocks = seq->n_linked = i;
    seq->n_computed = i * bs;
    if (i * bs < n_tokens - 1) {
        int32_t n_match, dst;
        int32_t donor = find_partial(kvm, seq, parent, tokens, n_tokens, i, &n_match);
        /* the new block comes from the free list: the donor itself may be what it hands out
         * (then the slots are already in place), see kv_manager.h */
        if (donor >= 0 && block_pool_alloc(kvm->pool, 1, &dst) == CLLM_OK) {
            seq->block_ids[i] = dst;
            seq->n_blocks = i + 1;
            seq->n_computed += n_match;
            seq->copy_src = donor;
            seq->copy_dst = dst;
            seq->copy_n = n_match;
        }
    }
    kvm->n_query_tokens += (uint64_t)n_tokens;
    kvm->n_hit_tokens += (uint64_t)seq->n_computed;
    *n_cached_tokens = seq->n_computed;
    return CLLM_OK;
}

status_t kvm_peek_cached_prefix(const kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_tokens,
                                int32_t *n_cached_tokens)
{
    int32_t bs = kvm->cfg.block_size;
    int32_t max_hit, i;
    block_link_t parent = root_link;

    *n_cached_tokens = 0;
    if (n_tokens < 0 || n_tokens > seq->max_tokens)
        return cllm_error(CLLM_ERR_RANGE, "kv manager: %d tokens, the sequence takes 0..%d", n_tokens, seq->max_tokens);
    if (!kvm->cfg.enable_prefix_caching) return CLLM_OK;

    /* the same walk as kvm_find_cached_prefix; nothing can change the pool during it, so the
     * blocks found need no reference to stay what they are */
    max_hit = n_tokens > 0 ? (n_tokens - 1) / bs : 0;
    for (i = 0; i < max_hit; i++) {
        const int32_t *t = tokens + (size_t)i * (size_t)bs;
        int32_t id;
        seq_hash_block(kvm, seq, i, t);
        id = block_pool_find(kvm->pool, seq->keys[i], parent, t, seq->salt, seq->salt_len);
        if (id < 0) break;
        parent = block_pool_link(kvm->pool, id);
    }
    *n_cached_tokens = i * bs;
    if (i * bs < n_tokens - 1) {
        int32_t n_match;
        find_partial(kvm, seq, parent, tokens, n_tokens, i, &n_match);
        *n_cached_tokens += n_match;
    }
    return CLLM_OK;
}

status_t kvm_seq_block_key(const kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_tokens, int32_t i,
                           block_key_t *key)
{
    int32_t bs = kvm->cfg.block_size;

    if (!kvm->cfg.enable_prefix_caching)
        return cllm_error(CLLM_ERR_UNSUPPORTED, "kv manager: block keys without prefix caching");
    if (n_tokens > seq->max_tokens || i < 0 || ((int64_t)i + 1) * bs > n_tokens)
        return cllm_error(CLLM_ERR_RANGE, "kv manager: block %d is not a full block of %d tokens (at most %d)", i,
                          n_tokens, seq->max_tokens);
    for (int32_t b = seq->n_hashed; b <= i; b++) seq_hash_block(kvm, seq, b, tokens + (size_t)b * (size_t)bs);
    *key = seq->keys[i];
    return CLLM_OK;
}

status_t kvm_allocate(kvm_t *kvm, kvm_seq_t *seq, int32_t n_new_tokens)
{
    int32_t bs = kvm->cfg.block_size;
    int32_t n_tokens, n_need;
    status_t st;

    if (n_new_tokens < 0) return cllm_error(CLLM_ERR_INVALID_ARG, "kv manager: allocate %d tokens", n_new_tokens);
    if (n_new_tokens > seq->max_tokens - seq->n_computed)
        return cllm_error(CLLM_ERR_RANGE, "kv manager: %d + %d tokens exceed the sequence's %d", seq->n_computed,
                          n_new_tokens, seq->max_tokens);
    n_tokens = seq->n_computed + n_new_tokens;
    n_need = n_tokens / bs + (n_tokens % bs != 0) - seq->n_blocks;
    if (n_need <= 0) return CLLM_OK;
    st = block_pool_alloc(kvm->pool, n_need, seq->block_ids + seq->n_blocks);
    if (st == CLLM_OK) seq->n_blocks += n_need;
    return st;
}

status_t kvm_commit(kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n_computed_tokens)
{
    int32_t bs = kvm->cfg.block_size;
    int32_t n_full;

    if (n_computed_tokens < seq->n_computed || n_computed_tokens > (int64_t)seq->n_blocks * bs)
        return cllm_error(CLLM_ERR_INVALID_ARG,
                          "kv manager: commit of %d tokens: the sequence has %d computed and room for %d",
                          n_computed_tokens, seq->n_computed, seq->n_blocks * bs);
    seq->n_computed = n_computed_tokens;
    if (!kvm->cfg.enable_prefix_caching) return CLLM_OK;

    n_full = n_computed_tokens / bs;
    for (int32_t i = seq->n_linked; i < n_full; i++) {
        const int32_t *t = tokens + (size_t)i * (size_t)bs;
        block_link_t parent = i ? seq->links[i - 1] : root_link;
        status_t st;
        seq_hash_block(kvm, seq, i, t);
        st = block_pool_cache(kvm->pool, seq->block_ids[i], seq->keys[i], parent, t, seq->salt, seq->salt_len,
                              &seq->links[i]);
        if (st != CLLM_OK) return CLLM_ERR_INTERNAL; /* a table block was free or keyed: a bug */
        seq->n_linked = i + 1;
    }
    return CLLM_OK;
}

void kvm_free(kvm_t *kvm, kvm_seq_t *seq)
{
    /* tail first: the free list's order makes the prompt's last blocks the first evicted */
    for (int32_t i = seq->n_blocks - 1; i >= 0; i--) block_pool_unref(kvm->pool, seq->block_ids[i]);
    seq->n_blocks = 0;
    seq->n_computed = 0;
    seq->n_linked = 0;
    seq->copy_n = 0; /* a copy into a released block is moot */
}

bool kvm_take_pending_copy(kvm_seq_t *seq, int32_t *src, int32_t *dst, int32_t *n_slots)
{
    if (seq->copy_n <= 0) return false;
    *src = seq->copy_src;
    *dst = seq->copy_dst;
    *n_slots = seq->copy_n;
    seq->copy_n = 0;
    return true;
}

void kvm_block_table(const kvm_seq_t *seq, const int32_t **ids, int32_t *n)
{
    *ids = seq->block_ids;
    *n = seq->n_blocks;
}

void kvm_get_stats(const kvm_t *kvm, kvm_stats_t *stats)
{
    stats->n_blocks = block_pool_n_blocks(kvm->pool);
    stats->n_blocks_free = block_pool_n_free(kvm->pool);
    stats->n_blocks_cached = block_pool_n_cached(kvm->pool);
    stats->n_blocks_used = stats->n_blocks - stats->n_blocks_free;
    stats->prefix_cache_queries = kvm->n_query_tokens;
    stats->prefix_cache_hits = kvm->n_hit_tokens;
    stats->n_evictions = block_pool_n_evictions(kvm->pool);
}

/* One sequence's own counters, and its table's blocks counted into refs (n_blocks); mark
 * (n_blocks) holds the index of the last sequence that named each block, to catch a table that
 * holds a block twice. */
static status_t check_seq(const kvm_t *kvm, const kvm_seq_t *seq, int32_t s, int32_t *refs, int32_t *mark)
{
    int32_t bs = kvm->cfg.block_size;
    if (seq->n_blocks < 0 || seq->n_blocks > seq->cap_blocks || seq->n_computed < 0 ||
        seq->n_computed > (int64_t)seq->n_blocks * bs || seq->n_linked < 0)
        return cllm_error(CLLM_ERR_INTERNAL, "kv manager: sequence %d: %d blocks (cap %d), %d computed, %d linked", s,
                          seq->n_blocks, seq->cap_blocks, seq->n_computed, seq->n_linked);
    /* with caching every full computed block is linked; without, none is */
    if (kvm->cfg.enable_prefix_caching ? seq->n_linked != seq->n_computed / bs || seq->n_linked > seq->n_hashed
                                       : seq->n_linked != 0)
        return cllm_error(CLLM_ERR_INTERNAL, "kv manager: sequence %d: %d blocks linked, %d hashed, %d computed", s,
                          seq->n_linked, seq->n_hashed, seq->n_computed);
    if (seq->copy_n > 0 && (seq->n_blocks != seq->n_linked + 1 || seq->copy_dst != seq->block_ids[seq->n_linked] ||
                            seq->n_computed != seq->n_linked * bs + seq->copy_n || seq->copy_src < 0 ||
                            seq->copy_src >= kvm->cfg.n_blocks))
        return cllm_error(CLLM_ERR_INTERNAL, "kv manager: sequence %d: pending copy %d -> %d (%d slots) out of place",
                          s, seq->copy_src, seq->copy_dst, seq->copy_n);
    for (int32_t i = 0; i < seq->n_blocks; i++) {
        int32_t id = seq->block_ids[i];
        if (id < 0 || id >= kvm->cfg.n_blocks)
            return cllm_error(CLLM_ERR_INTERNAL, "kv manager: sequence %d: table entry %d is block %d", s, i, id);
        if (mark[id] == s)
            return cllm_error(CLLM_ERR_INTERNAL, "kv manager: sequence %d holds block %d twice", s, id);
        mark[id] = s;
        refs[id]++;
    }
    return CLLM_OK;
}

status_t kvm_check_invariants(const kvm_t *kvm, const kvm_seq_t *const *seqs, int32_t n_seqs)
{
    int32_t n = kvm->cfg.n_blocks;
    status_t st = CLLM_OK;
    int32_t *refs = calloc((size_t)n * 2, sizeof(int32_t)); /* (2, n_blocks): refs, then marks */
    if (!refs) return cllm_error(CLLM_ERR_NOMEM, "kv manager: out of memory for the invariant check");
    for (int32_t b = 0; b < n; b++) refs[n + b] = -1;
    for (int32_t s = 0; s < n_seqs && st == CLLM_OK; s++) st = check_seq(kvm, seqs[s], s, refs, refs + n);
    if (st == CLLM_OK) st = block_pool_check(kvm->pool, refs);
    free(refs);
    return st;
}

const block_pool_t *kvm_block_pool(const kvm_t *kvm)
{
    return kvm->pool;
}

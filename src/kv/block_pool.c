/* block_pool.c: reference counts, the intrusive LRU free list, the open-addressing key map
 * and the parent -> cached children index of the KV blocks (see block_pool.h for the
 * invariants and the exact-hit argument). */
#include "kv/block_pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t ref_cnt;     /* block tables holding the block; 0: in the free list */
    int32_t prev;        /* free-list neighbours (block ids, -1 at the ends); valid when free */
    int32_t next;
    bool has_key;        /* holds `key` and is the map's entry for it */
    uint8_t extra_len;   /* bytes of extra (first blocks only) */
    uint64_t gen;        /* allocations of this block so far: (id, gen) names a lifetime */
    block_key_t key;     /* valid when has_key */
    block_link_t parent; /* valid when has_key: the lifetime this block's content extends */
    bool in_children;    /* linked into the child list of parent (has_key and the parent lifetime
                            is current, or parent.id == -1) */
    int32_t child_head;  /* first of this block's current lifetime's cached children, -1 none */
    int32_t sib_prev;    /* child-list neighbours (block ids, -1 at the ends); valid when */
    int32_t sib_next;    /* in_children */
} block_t;

struct block_pool {
    int32_t n_blocks;
    int32_t block_size;
    block_t *blocks;     /* (n_blocks) */
    int32_t *tokens;     /* (n_blocks, block_size): a keyed block's token ids */
    uint8_t *extra;      /* (n_blocks, BLOCK_POOL_EXTRA_MAX): a keyed first block's salt */
    int32_t head;        /* free list: least recently freed first; -1 when empty */
    int32_t tail;
    int32_t n_free;
    int32_t n_cached;    /* free blocks with has_key */
    int32_t *map;        /* (map_mask + 1) block ids, -1 empty; slot of a key: key.lo & map_mask */
    uint32_t map_mask;
    int32_t root_child_head; /* cached first blocks (parent id -1), any salt; -1 none */
    uint64_t n_evictions;
};

status_t block_pool_create(int32_t n_blocks, int32_t block_size, block_pool_t **out)
{
    block_pool_t *pool;
    uint32_t map_cap = 1;

    *out = NULL;
    if (n_blocks < 1 || n_blocks > (1 << 28))
        return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: n_blocks %d out of 1..%d", n_blocks, 1 << 28);
    if (block_size < 1 || block_size > BLOCK_HASH_MAX_TOKENS)
        return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: block_size %d out of 1..%d", block_size,
                          BLOCK_HASH_MAX_TOKENS);
    while (map_cap < 2u * (uint32_t)n_blocks) map_cap <<= 1;

    pool = calloc(1, sizeof(*pool));
    if (!pool) return cllm_error(CLLM_ERR_NOMEM, "block pool: out of memory");
    pool->n_blocks = n_blocks;
    pool->block_size = block_size;
    pool->blocks = calloc((size_t)n_blocks, sizeof(block_t));
    pool->tokens = malloc((size_t)n_blocks * (size_t)block_size * sizeof(int32_t));
    pool->extra = malloc((size_t)n_blocks * BLOCK_POOL_EXTRA_MAX);
    pool->map = malloc((size_t)map_cap * sizeof(int32_t));
    if (!pool->blocks || !pool->tokens || !pool->extra || !pool->map) {
        block_pool_destroy(pool);
        return cllm_error(CLLM_ERR_NOMEM, "block pool: out of memory for %d blocks", n_blocks);
    }
    pool->map_mask = map_cap - 1;
    memset(pool->map, 0xff, (size_t)map_cap * sizeof(int32_t));
    pool->root_child_head = -1;
    for (int32_t i = 0; i < n_blocks; i++) {
        pool->blocks[i].child_head = -1;
        pool->blocks[i].prev = i - 1;
        pool->blocks[i].next = i + 1 < n_blocks ? i + 1 : -1;
    }
    pool->head = 0;
    pool->tail = n_blocks - 1;
    pool->n_free = n_blocks;
    *out = pool;
    return CLLM_OK;
}

void block_pool_destroy(block_pool_t *pool)
{
    if (!pool) return;
    free(pool->blocks);
    free(pool->tokens);
    free(pool->extra);
    free(pool->map);
    free(pool);
}

int32_t block_pool_n_blocks(const block_pool_t *pool) { return pool->n_blocks; }
int32_t block_pool_block_size(const block_pool_t *pool) { return pool->block_size; }
int32_t block_pool_n_free(const block_pool_t *pool) { return pool->n_free; }
int32_t block_pool_n_cached(const block_pool_t *pool) { return pool->n_cached; }
uint64_t block_pool_n_evictions(const block_pool_t *pool) { return pool->n_evictions; }

static bool pool_valid_id(const block_pool_t *pool, int32_t id)
{
    return id >= 0 && id < pool->n_blocks;
}

/* ---- free list ---- */

static void free_list_remove(block_pool_t *pool, int32_t id)
{
    block_t *b = &pool->blocks[id];
    if (b->prev >= 0) pool->blocks[b->prev].next = b->next;
    else pool->head = b->next;
    if (b->next >= 0) pool->blocks[b->next].prev = b->prev;
    else pool->tail = b->prev;
    b->prev = b->next = -1;
    pool->n_free--;
    if (b->has_key) pool->n_cached--;
}

static void free_list_append(block_pool_t *pool, int32_t id)
{
    block_t *b = &pool->blocks[id];
    b->prev = pool->tail;
    b->next = -1;
    if (pool->tail >= 0) pool->blocks[pool->tail].next = id;
    else pool->head = id;
    pool->tail = id;
    pool->n_free++;
    if (b->has_key) pool->n_cached++;
}

/* ---- key map ---- */

static uint32_t map_home(const block_pool_t *pool, block_key_t key)
{
    return (uint32_t)key.lo & pool->map_mask;
}

/* The map slot holding key, or the empty slot where it would go. */
static uint32_t map_probe(const block_pool_t *pool, block_key_t key)
{
    uint32_t s = map_home(pool, key);
    while (pool->map[s] >= 0 && !block_key_equal(pool->blocks[pool->map[s]].key, key))
        s = (s + 1) & pool->map_mask;
    return s;
}

/* Empties slot s and moves later members of its probe run back so that every key stays
 * reachable from its home slot without tombstones. */
static void map_delete_slot(block_pool_t *pool, uint32_t s)
{
    uint32_t mask = pool->map_mask;
    uint32_t j = s;
    for (;;) {
        j = (j + 1) & mask;
        if (pool->map[j] < 0) break;
        uint32_t home = map_home(pool, pool->blocks[pool->map[j]].key);
        /* the entry at j may fill the hole at s unless its home lies cyclically in (s, j] */
        bool home_in_gap = s <= j ? (s < home && home <= j) : (s < home || home <= j);
        if (!home_in_gap) {
            pool->map[s] = pool->map[j];
            s = j;
        }
    }
    pool->map[s] = -1;
}

/* ---- child index: parent lifetime -> its cached children ---- */

static int32_t *child_head_of(block_pool_t *pool, int32_t parent_id)
{
    return parent_id >= 0 ? &pool->blocks[parent_id].child_head : &pool->root_child_head;
}

/* Links keyed block id at the head of its parent's child list. */
static void children_link(block_pool_t *pool, int32_t id)
{
    block_t *b = &pool->blocks[id];
    int32_t *head = child_head_of(pool, b->parent.id);
    b->sib_prev = -1;
    b->sib_next = *head;
    if (*head >= 0) pool->blocks[*head].sib_prev = id;
    *head = id;
    b->in_children = true;
}

/* Takes block id out of its parent's child list (nothing when it is in none). */
static void children_unlink(block_pool_t *pool, int32_t id)
{
    block_t *b = &pool->blocks[id];
    if (!b->in_children) return;
    if (b->sib_prev >= 0) pool->blocks[b->sib_prev].sib_next = b->sib_next;
    else *child_head_of(pool, b->parent.id) = b->sib_next;
    if (b->sib_next >= 0) pool->blocks[b->sib_next].sib_prev = b->sib_prev;
    b->sib_prev = b->sib_next = -1;
    b->in_children = false;
}

/* Block id starts a new lifetime: its children (named by the old one) can never match again
 * (their parent gen is stale), so they leave the index, O(children). They stay keyed until
 * evicted; their own children keep their lists (unreachable, evicted in time). */
static void children_detach_all(block_pool_t *pool, int32_t id)
{
    int32_t c = pool->blocks[id].child_head;
    while (c >= 0) {
        block_t *cb = &pool->blocks[c];
        int32_t next = cb->sib_next;
        cb->sib_prev = cb->sib_next = -1;
        cb->in_children = false;
        c = next;
    }
    pool->blocks[id].child_head = -1;
}

/* ---- blocks ---- */

status_t block_pool_alloc(block_pool_t *pool, int32_t n, int32_t *ids)
{
    if (n < 0) return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: cannot allocate %d blocks", n);
    if (n > pool->n_free) return CLLM_NO_SPACE;
    for (int32_t i = 0; i < n; i++) {
        int32_t id = pool->head;
        block_t *b = &pool->blocks[id];
        free_list_remove(pool, id);
        children_detach_all(pool, id);
        if (b->has_key) { /* lazy eviction: the key goes only now */
            children_unlink(pool, id);
            map_delete_slot(pool, map_probe(pool, b->key));
            b->has_key = false;
            pool->n_evictions++;
        }
        b->gen++;
        b->ref_cnt = 1;
        ids[i] = id;
    }
    return CLLM_OK;
}

status_t block_pool_ref(block_pool_t *pool, int32_t id)
{
    if (!pool_valid_id(pool, id)) return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: bad block id %d", id);
    if (pool->blocks[id].ref_cnt == 0) free_list_remove(pool, id);
    pool->blocks[id].ref_cnt++;
    return CLLM_OK;
}

status_t block_pool_unref(block_pool_t *pool, int32_t id)
{
    if (!pool_valid_id(pool, id)) return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: bad block id %d", id);
    if (pool->blocks[id].ref_cnt == 0)
        return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: block %d freed twice", id);
    if (--pool->blocks[id].ref_cnt == 0) free_list_append(pool, id);
    return CLLM_OK;
}

block_link_t block_pool_link(const block_pool_t *pool, int32_t id)
{
    return (block_link_t){id, pool->blocks[id].gen};
}

/* Whether keyed block id's content is exactly (parent, tokens, extra). */
static bool block_content_equal(const block_pool_t *pool, int32_t id, block_link_t parent, const int32_t *tokens,
                                const void *extra, size_t extra_len)
{
    const block_t *b = &pool->blocks[id];
    size_t bs = (size_t)pool->block_size;
    if (b->parent.id != parent.id || b->parent.gen != parent.gen) return false;
    if (memcmp(pool->tokens + (size_t)id * bs, tokens, bs * sizeof(int32_t)) != 0) return false;
    if (parent.id >= 0) return true;
    return b->extra_len == extra_len &&
           (extra_len == 0 || memcmp(pool->extra + (size_t)id * BLOCK_POOL_EXTRA_MAX, extra, extra_len) == 0);
}

int32_t block_pool_find(const block_pool_t *pool, block_key_t key, block_link_t parent, const int32_t *tokens,
                        const void *extra, size_t extra_len)
{
    int32_t id = pool->map[map_probe(pool, key)];
    if (id < 0 || !block_content_equal(pool, id, parent, tokens, extra, extra_len)) return -1;
    return id;
}

status_t block_pool_cache(block_pool_t *pool, int32_t id, block_key_t key, block_link_t parent, const int32_t *tokens,
                          const void *extra, size_t extra_len, block_link_t *canon)
{
    size_t bs = (size_t)pool->block_size;
    uint32_t s;
    block_t *b;

    if (!pool_valid_id(pool, id)) return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: bad block id %d", id);
    b = &pool->blocks[id];
    if (b->ref_cnt == 0 || b->has_key)
        return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: block %d is %s", id, b->has_key ? "already cached" : "free");
    if (parent.id >= 0) extra_len = 0;
    if (extra_len > BLOCK_POOL_EXTRA_MAX)
        return cllm_error(CLLM_ERR_INVALID_ARG, "block pool: %zu bytes of extra key, at most %d", extra_len,
                          BLOCK_POOL_EXTRA_MAX);

    s = map_probe(pool, key);
    if (pool->map[s] >= 0) {
        int32_t other = pool->map[s];
        bool same = block_content_equal(pool, other, parent, tokens, extra, extra_len);
        *canon = block_pool_link(pool, same ? other : id);
        return CLLM_OK;
    }
    pool->map[s] = id;
    b->has_key = true;
    b->key = key;
    b->parent = parent;
    b->extra_len = (uint8_t)extra_len;
    memcpy(pool->tokens + (size_t)id * bs, tokens, bs * sizeof(int32_t));
    if (extra_len) memcpy(pool->extra + (size_t)id * BLOCK_POOL_EXTRA_MAX, extra, extra_len);
    /* a parent named by an older lifetime has no list for it: such a child can never match */
    if (parent.id < 0 || (pool_valid_id(pool, parent.id) && pool->blocks[parent.id].gen == parent.gen))
        children_link(pool, id);
    *canon = block_pool_link(pool, id);
    return CLLM_OK;
}

int32_t block_pool_find_partial(const block_pool_t *pool, block_link_t parent, const int32_t *tokens,
                                int32_t n_tokens, const void *extra, size_t extra_len, int32_t *n_match)
{
    int32_t best = -1, best_len = 0;
    size_t bs = (size_t)pool->block_size;
    int32_t c;

    *n_match = 0;
    if (n_tokens > pool->block_size) n_tokens = pool->block_size;
    if (n_tokens < 1) return -1;
    if (parent.id >= 0) {
        if (!pool_valid_id(pool, parent.id) || pool->blocks[parent.id].gen != parent.gen) return -1;
        c = pool->blocks[parent.id].child_head;
    } else {
        c = pool->root_child_head;
    }
    for (; c >= 0; c = pool->blocks[c].sib_next) {
        const block_t *b = &pool->blocks[c];
        const int32_t *t = pool->tokens + (size_t)c * bs;
        int32_t len = 0;
        if (b->parent.id != parent.id || b->parent.gen != parent.gen) continue;
        if (parent.id < 0 && (b->extra_len != extra_len ||
                              (extra_len && memcmp(pool->extra + (size_t)c * BLOCK_POOL_EXTRA_MAX, extra, extra_len))))
            continue;
        while (len < n_tokens && t[len] == tokens[len]) len++;
        if (len > best_len || (len == best_len && len > 0 && c < best)) {
            best = c;
            best_len = len;
        }
    }
    *n_match = best_len;
    return best;
}

int32_t block_pool_ref_cnt(const block_pool_t *pool, int32_t id)
{
    return pool_valid_id(pool, id) ? pool->blocks[id].ref_cnt : -1;
}

bool block_pool_has_key(const block_pool_t *pool, int32_t id)
{
    return pool_valid_id(pool, id) && pool->blocks[id].has_key;
}

int32_t block_pool_free_list(const block_pool_t *pool, int32_t *ids, int32_t cap)
{
    int32_t n = 0;
    /* bounded by n_blocks so that a corrupted (cyclic) list cannot hang a debug dump */
    for (int32_t id = pool->head; id >= 0 && n < pool->n_blocks; id = pool->blocks[id].next) {
        if (n < cap) ids[n] = id;
        n++;
    }
    return n;
}

/* The child index: every list's members are keyed, name its owner's current lifetime as parent
 * and link back; a keyed block is listed exactly when its parent lifetime is current. */
static status_t check_children(const block_pool_t *pool)
{
    int32_t n_listed = 0, n_should = 0;
    for (int32_t owner = -1; owner < pool->n_blocks; owner++) {
        int32_t prev = -1;
        int32_t c = owner >= 0 ? pool->blocks[owner].child_head : pool->root_child_head;
        for (; c >= 0; prev = c, c = pool->blocks[c].sib_next) {
            const block_t *b;
            if (c >= pool->n_blocks || ++n_listed > pool->n_blocks)
                return cllm_error(CLLM_ERR_INTERNAL, "block pool: child list of %d is cyclic or names block %d", owner,
                                  c);
            b = &pool->blocks[c];
            if (!b->has_key || !b->in_children || b->parent.id != owner || b->sib_prev != prev ||
                (owner >= 0 && b->parent.gen != pool->blocks[owner].gen))
                return cllm_error(CLLM_ERR_INTERNAL, "block pool: block %d does not belong in the child list of %d", c,
                                  owner);
        }
    }
    for (int32_t id = 0; id < pool->n_blocks; id++) {
        const block_t *b = &pool->blocks[id];
        bool current = b->has_key && (b->parent.id < 0 || (b->parent.id < pool->n_blocks &&
                                                             pool->blocks[b->parent.id].gen == b->parent.gen));
        if (b->in_children != current)
            return cllm_error(CLLM_ERR_INTERNAL, "block pool: block %d is %s the child index", id,
                              b->in_children ? "wrongly in" : "missing from");
        n_should += current;
    }
    if (n_should != n_listed)
        return cllm_error(CLLM_ERR_INTERNAL, "block pool: child lists hold %d blocks, %d should", n_listed, n_should);
    return CLLM_OK;
}

status_t block_pool_check(const block_pool_t *pool, const int32_t *refs)
{
    int32_t n_zero = 0, n_keyed = 0, n_cached = 0, n_listed = 0, map_entries = 0;
    int32_t prev = -1;
    status_t st = CLLM_OK;
    uint8_t *seen = calloc((size_t)pool->n_blocks, 1);
    if (!seen) return cllm_error(CLLM_ERR_NOMEM, "block pool check: out of memory");

    for (int32_t id = 0; id < pool->n_blocks; id++) {
        const block_t *b = &pool->blocks[id];
        if (b->ref_cnt < 0) {
            st = cllm_error(CLLM_ERR_INTERNAL, "block pool: block %d has ref_cnt %d", id, b->ref_cnt);
            goto out;
        }
        if (refs && b->ref_cnt != refs[id]) {
            st = cllm_error(CLLM_ERR_INTERNAL, "block pool: block %d has ref_cnt %d but %d block tables hold it", id,
                            b->ref_cnt, refs[id]);
            goto out;
        }
        n_zero += b->ref_cnt == 0;
        n_keyed += b->has_key;
        n_cached += b->has_key && b->ref_cnt == 0;
    }
    for (int32_t id = pool->head; id >= 0; id = pool->blocks[id].next) {
        if (id >= pool->n_blocks || seen[id]) {
            st = cllm_error(CLLM_ERR_INTERNAL, "block pool: free list visits block %d twice (or a bad id)", id);
            goto out;
        }
        seen[id] = 1;
        if (pool->blocks[id].ref_cnt != 0) {
            st = cllm_error(CLLM_ERR_INTERNAL, "block pool: block %d is in the free list with ref_cnt %d", id,
                            pool->blocks[id].ref_cnt);
            goto out;
        }
        if (pool->blocks[id].prev != prev) {
            st = cllm_error(CLLM_ERR_INTERNAL, "block pool: block %d's prev is %d, expected %d", id,
                            pool->blocks[id].prev, prev);
            goto out;
        }
        prev = id;
        n_listed++;
    }
    if (pool->tail != prev || n_listed != pool->n_free || n_zero != pool->n_free) {
        st = cllm_error(CLLM_ERR_INTERNAL, "block pool: free list has %d blocks (tail %d), n_free %d, %d with ref 0",
                        n_listed, pool->tail, pool->n_free, n_zero);
        goto out;
    }
    if (n_cached != pool->n_cached) {
        st = cllm_error(CLLM_ERR_INTERNAL, "block pool: %d cached free blocks, counter says %d", n_cached,
                        pool->n_cached);
        goto out;
    }
    for (uint32_t s = 0; s <= pool->map_mask; s++) {
        int32_t id = pool->map[s];
        if (id < 0) continue;
        map_entries++;
        if (id >= pool->n_blocks || !pool->blocks[id].has_key || map_probe(pool, pool->blocks[id].key) != s) {
            st = cllm_error(CLLM_ERR_INTERNAL, "block pool: map slot %u names block %d, which does not hold that key",
                            s, id);
            goto out;
        }
    }
    if (map_entries != n_keyed) {
        st = cllm_error(CLLM_ERR_INTERNAL, "block pool: map has %d keys, %d blocks hold one", map_entries, n_keyed);
        goto out;
    }
    st = check_children(pool);
out:
    free(seen);
    return st;
}

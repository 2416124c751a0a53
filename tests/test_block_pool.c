/* test_block_pool.c: the block pool alone: allocation order, the LRU free list (exact order
 * after each operation), lazy eviction of keys, exact hit verification (tokens, parent lifetime,
 * salt) including the collision case that key-only parent checks get wrong, and the key map's
 * backward-shift deletion under heavy collisions (randomized, against a shadow map). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/block_pool.h"
#include "check.h"


/* Checks that the free list is exactly want (n), head first, and that the pool is consistent. */
static void check_free_list(const block_pool_t *pool, const int32_t *want, int32_t n, int line)
{
    int32_t got[64];
    int32_t len = block_pool_free_list(pool, got, 64);
    bool same = len == n && block_pool_n_free(pool) == n;
    for (int32_t i = 0; same && i < n; i++) same = got[i] == want[i];
    if (!same) {
        fprintf(stderr, "line %d: free list [", line);
        for (int32_t i = 0; i < len && i < 64; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, " ], expected [");
        for (int32_t i = 0; i < n; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, " ]\n");
        check_failures++;
    }
    if (block_pool_check(pool, NULL) != CLLM_OK) {
        fprintf(stderr, "line %d: %s\n", line, cllm_error_message());
        check_failures++;
    }
}

#define FREE_LIST(pool, ...)                                                                                           \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        check_free_list(pool, want_, (int32_t)(sizeof(want_) / sizeof(want_[0])), __LINE__);                           \
    } while (0)

static block_key_t key_of(uint64_t lo, uint64_t hi)
{
    return (block_key_t){lo, hi};
}

static void test_create_args(void)
{
    block_pool_t *pool = (block_pool_t *)1;
    CHECK(block_pool_create(0, 4, &pool) == CLLM_ERR_INVALID_ARG && pool == NULL);
    CHECK(block_pool_create(4, 0, &pool) == CLLM_ERR_INVALID_ARG);
    CHECK(block_pool_create(4, BLOCK_HASH_MAX_TOKENS + 1, &pool) == CLLM_ERR_INVALID_ARG);
    CHECK_OK(block_pool_create(1, BLOCK_HASH_MAX_TOKENS, &pool));
    block_pool_destroy(pool);
    block_pool_destroy(NULL);
}

static void test_alloc_free_order(void)
{
    block_pool_t *pool;
    int32_t ids[8];
    CHECK_OK(block_pool_create(8, 4, &pool));
    FREE_LIST(pool, 0, 1, 2, 3, 4, 5, 6, 7);

    CHECK_OK(block_pool_alloc(pool, 3, ids));
    CHECK(ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    CHECK(block_pool_ref_cnt(pool, 0) == 1 && block_pool_ref_cnt(pool, 3) == 0);
    FREE_LIST(pool, 3, 4, 5, 6, 7);

    /* all or nothing: 6 > 5 free, nothing taken */
    ids[0] = -7;
    CHECK(block_pool_alloc(pool, 6, ids) == CLLM_NO_SPACE);
    CHECK(ids[0] == -7);
    FREE_LIST(pool, 3, 4, 5, 6, 7);
    CHECK(block_pool_alloc(pool, -1, ids) == CLLM_ERR_INVALID_ARG);
    CHECK_OK(block_pool_alloc(pool, 0, ids));

    /* freed blocks go to the tail in the order released */
    CHECK_OK(block_pool_unref(pool, 2));
    CHECK_OK(block_pool_unref(pool, 1));
    CHECK_OK(block_pool_unref(pool, 0));
    FREE_LIST(pool, 3, 4, 5, 6, 7, 2, 1, 0);

    /* a reference to a free block takes it out of the middle */
    CHECK_OK(block_pool_ref(pool, 1));
    CHECK(block_pool_ref_cnt(pool, 1) == 1);
    FREE_LIST(pool, 3, 4, 5, 6, 7, 2, 0);
    CHECK_OK(block_pool_ref(pool, 1));
    CHECK(block_pool_ref_cnt(pool, 1) == 2);
    CHECK_OK(block_pool_unref(pool, 1));
    FREE_LIST(pool, 3, 4, 5, 6, 7, 2, 0);
    CHECK_OK(block_pool_unref(pool, 1));
    FREE_LIST(pool, 3, 4, 5, 6, 7, 2, 0, 1);
    /* head and tail removal */
    CHECK_OK(block_pool_ref(pool, 3));
    CHECK_OK(block_pool_ref(pool, 1));
    FREE_LIST(pool, 4, 5, 6, 7, 2, 0);

    CHECK_OK(block_pool_alloc(pool, 6, ids));
    CHECK(ids[0] == 4 && ids[1] == 5 && ids[2] == 6 && ids[3] == 7 && ids[4] == 2 && ids[5] == 0);
    CHECK(block_pool_n_free(pool) == 0 && block_pool_free_list(pool, ids, 8) == 0);
    CHECK(block_pool_alloc(pool, 1, ids) == CLLM_NO_SPACE);
    CHECK(block_pool_check(pool, NULL) == CLLM_OK);

    /* misuse is an argument error, not a crash */
    CHECK(block_pool_unref(pool, 8) == CLLM_ERR_INVALID_ARG);
    CHECK(block_pool_unref(pool, -1) == CLLM_ERR_INVALID_ARG);
    CHECK(block_pool_ref(pool, 99) == CLLM_ERR_INVALID_ARG);
    CHECK_OK(block_pool_unref(pool, 4));
    CHECK(block_pool_unref(pool, 4) == CLLM_ERR_INVALID_ARG);
    CHECK(block_pool_ref_cnt(pool, 4) == 0);
    FREE_LIST(pool, 4);
    block_pool_destroy(pool);
}

static void test_cache_and_evict(void)
{
    block_pool_t *pool;
    int32_t ids[4];
    const int32_t toks_a[4] = {1, 2, 3, 4}, toks_b[4] = {1, 2, 3, 5};
    const block_link_t root = {-1, 0};
    block_link_t canon, la;
    block_key_t k0 = key_of(0x1234, 7), k1 = key_of(0x5678, 9);

    CHECK_OK(block_pool_create(4, 4, &pool));
    CHECK_OK(block_pool_alloc(pool, 2, ids)); /* 0, 1 */
    CHECK(block_pool_find(pool, k0, root, toks_a, "s", 1) == -1);

    /* block 0: a first block (root parent) with salt "s" */
    CHECK_OK(block_pool_cache(pool, 0, k0, root, toks_a, "s", 1, &canon));
    la = block_pool_link(pool, 0);
    CHECK(canon.id == 0 && canon.gen == la.gen && la.gen == 1);
    CHECK(block_pool_has_key(pool, 0) && !block_pool_has_key(pool, 1));
    CHECK(block_pool_find(pool, k0, root, toks_a, "s", 1) == 0);
    CHECK(block_pool_find(pool, k0, root, toks_b, "s", 1) == -1);  /* other tokens */
    CHECK(block_pool_find(pool, k0, root, toks_a, "t", 1) == -1);  /* other salt */
    CHECK(block_pool_find(pool, k0, root, toks_a, "s!", 2) == -1); /* longer salt */
    CHECK(block_pool_find(pool, k0, root, toks_a, NULL, 0) == -1); /* no salt */
    CHECK(block_pool_find(pool, k1, root, toks_a, "s", 1) == -1);  /* other key */
    /* caching twice or a free block is refused */
    CHECK(block_pool_cache(pool, 0, k1, root, toks_a, NULL, 0, &canon) == CLLM_ERR_INVALID_ARG);
    CHECK(block_pool_cache(pool, 2, k1, root, toks_a, NULL, 0, &canon) == CLLM_ERR_INVALID_ARG);
    CHECK(block_pool_cache(pool, 1, k1, root, toks_a, "0123456789012345678901234567890123456789012345678901234567890123456789",
                           70, &canon) == CLLM_ERR_INVALID_ARG);

    /* block 1: same key and same content as block 0: a duplicate; canon is block 0 */
    CHECK_OK(block_pool_cache(pool, 1, k0, root, toks_a, "s", 1, &canon));
    CHECK(canon.id == 0 && canon.gen == la.gen && !block_pool_has_key(pool, 1));
    /* same key, other content (a collision): block 1 stays uncached and stands for itself */
    CHECK_OK(block_pool_cache(pool, 1, k0, root, toks_b, "s", 1, &canon));
    CHECK(canon.id == 1 && canon.gen == 1 && !block_pool_has_key(pool, 1));
    /* a child of block 0's lifetime; the salt is not part of a child's content */
    CHECK_OK(block_pool_cache(pool, 1, k1, la, toks_b, "ignored", 7, &canon));
    CHECK(canon.id == 1 && block_pool_has_key(pool, 1));
    CHECK(block_pool_find(pool, k1, la, toks_b, NULL, 0) == 1);
    CHECK(block_pool_find(pool, k1, (block_link_t){0, 2}, toks_b, NULL, 0) == -1); /* other lifetime */
    CHECK(block_pool_find(pool, k1, root, toks_b, NULL, 0) == -1);

    /* freed, the blocks stay cached and findable */
    CHECK_OK(block_pool_unref(pool, 1));
    CHECK_OK(block_pool_unref(pool, 0));
    FREE_LIST(pool, 2, 3, 1, 0);
    CHECK(block_pool_n_cached(pool) == 2 && block_pool_n_evictions(pool) == 0);
    CHECK(block_pool_find(pool, k0, root, toks_a, "s", 1) == 0);

    /* a hit takes block 0 out of the list; freed again it goes to the tail */
    CHECK_OK(block_pool_ref(pool, 0));
    FREE_LIST(pool, 2, 3, 1);
    CHECK(block_pool_n_cached(pool) == 1);
    CHECK_OK(block_pool_unref(pool, 0));
    FREE_LIST(pool, 2, 3, 1, 0);

    /* allocation evicts lazily from the head: 2 and 3 hold no key, then block 1 loses its key */
    CHECK_OK(block_pool_alloc(pool, 3, ids));
    CHECK(ids[0] == 2 && ids[1] == 3 && ids[2] == 1);
    CHECK(block_pool_n_evictions(pool) == 1 && block_pool_n_cached(pool) == 1);
    CHECK(!block_pool_has_key(pool, 1) && block_pool_link(pool, 1).gen == 2);
    CHECK(block_pool_find(pool, k1, la, toks_b, NULL, 0) == -1);
    CHECK(block_pool_find(pool, k0, root, toks_a, "s", 1) == 0); /* the other cached block still hits */
    FREE_LIST(pool, 0);
    block_pool_destroy(pool);
}

/* Two different first blocks X (tokens x) and Z (tokens z) whose keys collide, and a child Y of X.
 * Once X is evicted and Z cached under the same key, a query for z + (Y's tokens) must not hit
 * Y: Y's parent is X's lifetime, not Z's, although the parent KEYS are equal. */
static void test_collision_splice(void)
{
    block_pool_t *pool;
    int32_t ids[3];
    const int32_t x[2] = {10, 11}, y[2] = {12, 13}, z[2] = {20, 21};
    const block_link_t root = {-1, 0};
    const block_key_t k0 = key_of(3, 0), k1 = key_of(5, 0);
    block_link_t lx, lz, canon;

    CHECK_OK(block_pool_create(3, 2, &pool));
    CHECK_OK(block_pool_alloc(pool, 2, ids)); /* X = 0, Y = 1 */
    CHECK_OK(block_pool_cache(pool, 0, k0, root, x, NULL, 0, &lx));
    CHECK_OK(block_pool_cache(pool, 1, k1, lx, y, NULL, 0, &canon));
    CHECK(canon.id == 1);
    /* Y stays referenced (in use); X is freed and evicted by the next allocations */
    CHECK_OK(block_pool_unref(pool, 0));
    FREE_LIST(pool, 2, 0);
    CHECK_OK(block_pool_alloc(pool, 2, ids));
    CHECK(ids[0] == 2 && ids[1] == 0 && !block_pool_has_key(pool, 0));
    /* Z reuses block 0 under the colliding key k0 */
    CHECK_OK(block_pool_cache(pool, 0, k0, root, z, NULL, 0, &lz));
    CHECK(lz.id == 0 && lz.gen == 2);
    CHECK(block_pool_find(pool, k0, root, z, NULL, 0) == 0);
    CHECK(block_pool_find(pool, k0, root, x, NULL, 0) == -1);
    CHECK(block_pool_find(pool, k1, lz, y, NULL, 0) == -1); /* the splice a key check would allow */
    CHECK(block_pool_find(pool, k1, lx, y, NULL, 0) == 1);  /* X's old lifetime still names Y */
    CHECK(block_pool_check(pool, NULL) == CLLM_OK);
    block_pool_destroy(pool);
}

/* Random cache / evict traffic with keys crowded into a few map slots (so probe runs wrap
 * around the table end), checked against a shadow copy of which block holds which key. */
static void test_map_stress(void)
{
    enum { N = 16, BS = 1, STEPS = 20000 };
    block_pool_t *pool;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    bool held[N] = {false};
    bool keyed[N] = {false};
    block_key_t keys[N];
    int32_t shadow_ref[N] = {0};
    int n_hits = 0;

    CHECK_OK(block_pool_create(N, BS, &pool));
    for (int step = 0; step < STEPS && check_failures == 0; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int op = (int)(rng % 4);
        int32_t b = (int32_t)((rng >> 8) % N);
        block_key_t key = key_of(29 + (rng >> 20) % 4, (rng >> 32) % 5); /* homes 29..31, 0 of 32 slots */
        int32_t tok = (int32_t)((rng >> 40) % 3);
        const block_link_t root = {-1, 0};
        if (op == 0) { /* allocate one block: may evict the head's key */
            int32_t head;
            if (block_pool_free_list(pool, &head, 1) == 0) continue;
            int32_t id;
            CHECK_OK(block_pool_alloc(pool, 1, &id));
            CHECK(id == head);
            keyed[id] = false;
            held[id] = true;
            shadow_ref[id] = 1;
        } else if (op == 1 && held[b] && !keyed[b]) { /* cache a held block */
            int32_t other = -1;
            for (int32_t i = 0; i < N; i++)
                if (keyed[i] && block_key_equal(keys[i], key)) other = i;
            block_link_t canon;
            CHECK_OK(block_pool_cache(pool, b, key, root, &tok, NULL, 0, &canon));
            if (other < 0) {
                keyed[b] = true;
                keys[b] = key;
                CHECK(canon.id == b);
            }
            CHECK(block_pool_has_key(pool, b) == keyed[b]);
        } else if (op == 2 && held[b]) { /* release */
            CHECK_OK(block_pool_unref(pool, b));
            held[b] = false;
            shadow_ref[b] = 0;
        } else if (op == 3) { /* look every shadow key up */
            for (int32_t i = 0; i < N; i++) {
                if (!keyed[i]) continue;
                int found = 0;
                for (int32_t t = 0; t < 3; t++) { /* exactly the token it was cached with matches */
                    int32_t r = block_pool_find(pool, keys[i], root, &t, NULL, 0);
                    CHECK(r == i || r == -1);
                    found += r == i;
                }
                CHECK(found == 1);
                n_hits += found;
            }
            /* a key nobody holds is never found */
            bool taken = false;
            for (int32_t i = 0; i < N; i++) taken |= keyed[i] && block_key_equal(keys[i], key);
            if (!taken)
                for (int32_t t = 0; t < 3; t++) CHECK(block_pool_find(pool, key, root, &t, NULL, 0) == -1);
        }
        if (block_pool_check(pool, shadow_ref) != CLLM_OK) {
            fprintf(stderr, "map stress step %d: %s\n", step, cllm_error_message());
            check_failures++;
        }
    }
    CHECK(n_hits > 1000);
    CHECK(block_pool_n_evictions(pool) > 100);
    block_pool_destroy(pool);
}

/* The child index behind block_pool_find_partial: longest common prefix, ties to the lowest id,
 * salts for first blocks, exact parent lifetimes, and the index kept across eviction and a
 * parent's new lifetime (block_pool_check verifies it at every FREE_LIST). */
static void test_child_index(void)
{
    block_pool_t *pool;
    int32_t ids[4], n = -1;
    const block_link_t root = {-1, 0};
    const int32_t t12[2] = {1, 2}, t34[2] = {3, 4}, t35[2] = {3, 5}, t19[2] = {1, 9};
    block_link_t canon, l0, stale;

    CHECK_OK(block_pool_create(4, 2, &pool));
    CHECK_OK(block_pool_alloc(pool, 4, ids));
    CHECK_OK(block_pool_cache(pool, 0, key_of(1, 0), root, t12, NULL, 0, &canon));
    l0 = block_pool_link(pool, 0);
    CHECK(block_pool_find_partial(pool, l0, t34, 2, NULL, 0, &n) == -1 && n == 0); /* no children yet */
    CHECK_OK(block_pool_cache(pool, 1, key_of(2, 0), l0, t34, NULL, 0, &canon));
    CHECK_OK(block_pool_cache(pool, 2, key_of(3, 0), l0, t35, NULL, 0, &canon));
    CHECK_OK(block_pool_cache(pool, 3, key_of(4, 0), root, t19, "s", 1, &canon));
    check_free_list(pool, NULL, 0, __LINE__); /* empty, pool consistent */

    CHECK(block_pool_find_partial(pool, l0, t34, 2, NULL, 0, &n) == 1 && n == 2);
    CHECK(block_pool_find_partial(pool, l0, t35, 2, NULL, 0, &n) == 2 && n == 2);
    CHECK(block_pool_find_partial(pool, l0, (const int32_t[]){3, 7}, 2, NULL, 0, &n) == 1 && n == 1); /* tie */
    CHECK(block_pool_find_partial(pool, l0, t35, 1, NULL, 0, &n) == 1 && n == 1); /* n_tokens caps L */
    CHECK(block_pool_find_partial(pool, l0, (const int32_t[]){8, 3}, 2, NULL, 0, &n) == -1 && n == 0);
    CHECK(block_pool_find_partial(pool, l0, t34, 0, NULL, 0, &n) == -1 && n == 0);
    /* first blocks: the salt must match */
    CHECK(block_pool_find_partial(pool, root, t19, 2, NULL, 0, &n) == 0 && n == 1);
    CHECK(block_pool_find_partial(pool, root, t19, 2, "s", 1, &n) == 3 && n == 2);
    CHECK(block_pool_find_partial(pool, root, t19, 2, "t", 1, &n) == -1);
    /* another lifetime of the parent: nothing */
    stale = (block_link_t){0, l0.gen + 1};
    CHECK(block_pool_find_partial(pool, stale, t34, 2, NULL, 0, &n) == -1);

    /* block 1 evicted: it leaves the index, block 2 is what is left */
    CHECK_OK(block_pool_unref(pool, 1));
    CHECK_OK(block_pool_alloc(pool, 1, ids));
    CHECK(ids[0] == 1 && !block_pool_has_key(pool, 1));
    check_free_list(pool, NULL, 0, __LINE__); /* empty, pool consistent */
    CHECK(block_pool_find_partial(pool, l0, t34, 2, NULL, 0, &n) == 2 && n == 1);

    /* block 0 evicted and reallocated: its children (2) leave the index though still keyed */
    CHECK_OK(block_pool_unref(pool, 1));
    CHECK_OK(block_pool_unref(pool, 0));
    FREE_LIST(pool, 1, 0);
    CHECK_OK(block_pool_alloc(pool, 2, ids));
    check_free_list(pool, NULL, 0, __LINE__); /* empty, pool consistent */
    CHECK(block_pool_has_key(pool, 2) && !block_pool_has_key(pool, 0));
    CHECK(block_pool_find_partial(pool, l0, t35, 2, NULL, 0, &n) == -1);
    CHECK(block_pool_find_partial(pool, block_pool_link(pool, 0), t35, 2, NULL, 0, &n) == -1);
    CHECK(block_pool_find_partial(pool, root, t12, 2, NULL, 0, &n) == -1); /* only 3 ("s") is left */
    /* the orphan 2 is evicted in turn (it was in no list) */
    CHECK_OK(block_pool_unref(pool, 2));
    CHECK_OK(block_pool_alloc(pool, 1, ids));
    CHECK(ids[0] == 2 && !block_pool_has_key(pool, 2));
    check_free_list(pool, NULL, 0, __LINE__); /* empty, pool consistent */
    block_pool_destroy(pool);
}

int main(void)
{
    test_child_index();
    test_create_args();
    test_alloc_free_order();
    test_cache_and_evict();
    test_collision_splice();
    test_map_stress();
    if (check_failures) {
        fprintf(stderr, "test_block_pool: %d checks failed\n", check_failures);
        return 1;
    }
    printf("test_block_pool: ok\n");
    return 0;
}

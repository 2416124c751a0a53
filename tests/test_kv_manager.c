/* test_kv_manager.c: block tables and prefix caching, pinned exactly (as vLLM's
 * test_prefix_caching.py): after each operation the exact block ids of the tables, the exact
 * free-list order, ref counts and stats. Then: the hit cap, partial blocks, tail-first freeing,
 * LRU eviction, sharing, cache salts, disabled caching, NO_SPACE (all or nothing), forced key
 * collisions, argument errors, and a randomized scheduler-like stress that checks the
 * invariants after every operation and that every hit block holds exactly the asked prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_manager.h"
#include "check.h"


static void check_ids(const char *what, const int32_t *got, int32_t n_got, const int32_t *want, int32_t n, int line)
{
    bool same = n_got == n;
    for (int32_t i = 0; same && i < n; i++) same = got[i] == want[i];
    if (same) return;
    fprintf(stderr, "line %d: %s [", line, what);
    for (int32_t i = 0; i < n_got && i < 256; i++) fprintf(stderr, " %d", got[i]);
    fprintf(stderr, " ], expected [");
    for (int32_t i = 0; i < n; i++) fprintf(stderr, " %d", want[i]);
    fprintf(stderr, " ]\n");
    check_failures++;
}

static void check_free_list(const kvm_t *kvm, const int32_t *want, int32_t n, int line)
{
    int32_t got[256];
    int32_t len = block_pool_free_list(kvm_block_pool(kvm), got, 256);
    check_ids("free list", got, len, want, n, line);
}

static void check_table(const kvm_seq_t *seq, const int32_t *want, int32_t n, int line)
{
    const int32_t *ids;
    int32_t len;
    kvm_block_table(seq, &ids, &len);
    check_ids("block table", ids, len, want, n, line);
}

#define N_ARGS(...) ((int32_t)(sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)))
#define FREE_LIST(kvm, ...) check_free_list(kvm, (const int32_t[]){__VA_ARGS__}, N_ARGS(__VA_ARGS__), __LINE__)
#define FREE_LIST_EMPTY(kvm) check_free_list(kvm, NULL, 0, __LINE__)
#define TABLE(seq, ...) check_table(seq, (const int32_t[]){__VA_ARGS__}, N_ARGS(__VA_ARGS__), __LINE__)
#define TABLE_EMPTY(seq) check_table(seq, NULL, 0, __LINE__)

static void check_invariants(const kvm_t *kvm, const kvm_seq_t *const *seqs, int32_t n, int line)
{
    if (kvm_check_invariants(kvm, seqs, n) != CLLM_OK) {
        fprintf(stderr, "line %d: invariants: %s\n", line, cllm_error_message());
        check_failures++;
    }
}
#define INVARIANTS(kvm, ...)                                                                                           \
    check_invariants(kvm, (const kvm_seq_t *const[]){__VA_ARGS__},                                                     \
                     (int32_t)(sizeof((const kvm_seq_t *const[]){__VA_ARGS__}) / sizeof(kvm_seq_t *)), __LINE__)
#define INVARIANTS_NONE(kvm) check_invariants(kvm, NULL, 0, __LINE__)

static kvm_t *make_kvm(int32_t n_blocks, int32_t block_size, bool caching, int32_t key_bits)
{
    kvm_config_t cfg = {n_blocks, block_size, caching, 0xc11au, key_bits};
    kvm_t *kvm = NULL;
    CHECK_OK(kvm_create(&cfg, &kvm));
    if (!kvm) exit(1);
    return kvm;
}

static int32_t find_prefix(kvm_t *kvm, kvm_seq_t *seq, const int32_t *tokens, int32_t n)
{
    int32_t n_cached = -1;
    CHECK_OK(kvm_find_cached_prefix(kvm, seq, tokens, n, &n_cached));
    return n_cached;
}

static int32_t ref_cnt(const kvm_t *kvm, int32_t id)
{
    return block_pool_ref_cnt(kvm_block_pool(kvm), id);
}

static bool has_key(const kvm_t *kvm, int32_t id)
{
    return block_pool_has_key(kvm_block_pool(kvm), id);
}

static void fill(int32_t *tokens, int32_t n, int32_t first)
{
    for (int32_t i = 0; i < n; i++) tokens[i] = first + i;
}

/* Prefill, sharing, tail-first freeing, cap, partial blocks, decode, duplicates. */
static void test_prefill_share_free(void)
{
    kvm_t *kvm = make_kvm(10, 4, true, 0);
    kvm_seq_t a, b, c, d;
    int32_t ta[16], tb[17];
    kvm_stats_t st;

    fill(ta, 16, 0); /* a: 15-token prompt 0..14: 3 full blocks + 3 tokens */
    CHECK_OK(kvm_init_seq(kvm, &a, 64, NULL, 0));
    CHECK(find_prefix(kvm, &a, ta, 15) == 0);
    TABLE_EMPTY(&a);
    CHECK_OK(kvm_allocate(kvm, &a, 15));
    TABLE(&a, 0, 1, 2, 3);
    FREE_LIST(kvm, 4, 5, 6, 7, 8, 9);
    CHECK(!has_key(kvm, 0));
    CHECK_OK(kvm_commit(kvm, &a, ta, 15));
    CHECK(has_key(kvm, 0) && has_key(kvm, 1) && has_key(kvm, 2) && !has_key(kvm, 3)); /* partial: no key */
    CHECK(a.n_hashed == 3 && a.n_computed == 15);
    INVARIANTS(kvm, &a);

    /* b shares a's first 3 blocks, then differs: hit 12 tokens, blocks 0..2 at ref 2 */
    memcpy(tb, ta, 12 * sizeof(int32_t));
    fill(tb + 12, 5, 100);
    CHECK_OK(kvm_init_seq(kvm, &b, 64, NULL, 0));
    CHECK(find_prefix(kvm, &b, tb, 17) == 12);
    TABLE(&b, 0, 1, 2);
    CHECK(ref_cnt(kvm, 0) == 2 && ref_cnt(kvm, 1) == 2 && ref_cnt(kvm, 2) == 2 && ref_cnt(kvm, 3) == 1);
    CHECK_OK(kvm_allocate(kvm, &b, 5));
    TABLE(&b, 0, 1, 2, 4, 5);
    FREE_LIST(kvm, 6, 7, 8, 9);
    CHECK_OK(kvm_commit(kvm, &b, tb, 17));
    CHECK(has_key(kvm, 4) && !has_key(kvm, 5));
    INVARIANTS(kvm, &a, &b);
    kvm_get_stats(kvm, &st);
    CHECK(st.prefix_cache_queries == 32 && st.prefix_cache_hits == 12);
    CHECK(st.n_blocks == 10 && st.n_blocks_free == 4 && st.n_blocks_used == 6 && st.n_blocks_cached == 0);

    /* a decodes one token: block 3 becomes full and is keyed, hashing only that block */
    ta[15] = 15;
    CHECK_OK(kvm_allocate(kvm, &a, 1));
    TABLE(&a, 0, 1, 2, 3);
    CHECK_OK(kvm_commit(kvm, &a, ta, 16));
    CHECK(has_key(kvm, 3) && a.n_hashed == 4);
    /* the next token needs a new block */
    CHECK_OK(kvm_allocate(kvm, &a, 1));
    TABLE(&a, 0, 1, 2, 3, 6);
    FREE_LIST(kvm, 7, 8, 9);

    /* freeing is tail first; shared blocks stay referenced */
    kvm_free(kvm, &a);
    TABLE_EMPTY(&a);
    FREE_LIST(kvm, 7, 8, 9, 6, 3);
    CHECK(ref_cnt(kvm, 0) == 1 && ref_cnt(kvm, 1) == 1 && ref_cnt(kvm, 2) == 1);
    INVARIANTS(kvm, &a, &b);
    kvm_free(kvm, &b);
    FREE_LIST(kvm, 7, 8, 9, 6, 3, 5, 4, 2, 1, 0);
    INVARIANTS_NONE(kvm);
    kvm_get_stats(kvm, &st);
    CHECK(st.n_blocks_free == 10 && st.n_blocks_used == 0 && st.n_blocks_cached == 5); /* 0 1 2 3 4 */

    /* a returns (preempted): its key chain is kept, nothing rehashed; 16 tokens: cap 3 blocks */
    CHECK(find_prefix(kvm, &a, ta, 16) == 12);
    TABLE(&a, 0, 1, 2);
    CHECK(a.n_hashed == 4);
    FREE_LIST(kvm, 7, 8, 9, 6, 3, 5, 4);
    kvm_free(kvm, &a);
    FREE_LIST(kvm, 7, 8, 9, 6, 3, 5, 4, 2, 1, 0);
    /* 17 tokens: all four full blocks hit */
    {
        int32_t t17[17];
        memcpy(t17, ta, 16 * sizeof(int32_t));
        t17[16] = 16;
        CHECK_OK(kvm_init_seq(kvm, &c, 64, NULL, 0));
        CHECK(find_prefix(kvm, &c, t17, 17) == 16);
        TABLE(&c, 0, 1, 2, 3);
        FREE_LIST(kvm, 7, 8, 9, 6, 5, 4);
        kvm_free(kvm, &c);
        FREE_LIST(kvm, 7, 8, 9, 6, 5, 4, 3, 2, 1, 0);
    }

    /* the cap: a prompt of exactly 3 cached full blocks hits 2; recomputing block 2 into a new
     * block makes a duplicate, which stays uncached, and a later 13-token prompt hits block 2 */
    CHECK_OK(kvm_init_seq(kvm, &d, 64, NULL, 0));
    CHECK(find_prefix(kvm, &d, ta, 12) == 8);
    TABLE(&d, 0, 1);
    FREE_LIST(kvm, 7, 8, 9, 6, 5, 4, 3, 2);
    CHECK_OK(kvm_allocate(kvm, &d, 4));
    TABLE(&d, 0, 1, 7);
    CHECK_OK(kvm_commit(kvm, &d, ta, 12));
    CHECK(!has_key(kvm, 7) && has_key(kvm, 2));
    INVARIANTS(kvm, &d);
    kvm_free(kvm, &d);
    FREE_LIST(kvm, 8, 9, 6, 5, 4, 3, 2, 7, 1, 0);
    CHECK(find_prefix(kvm, &d, ta, 13) == 12);
    TABLE(&d, 0, 1, 2);
    kvm_free(kvm, &d);
    FREE_LIST(kvm, 8, 9, 6, 5, 4, 3, 7, 2, 1, 0);

    /* hits of 0 and 1 blocks (other tokens: other sequences, as a sequence's tokens only grow) */
    {
        int32_t t[9];
        kvm_seq_t e, f;
        fill(t, 9, 500);
        CHECK_OK(kvm_init_seq(kvm, &e, 64, NULL, 0));
        CHECK_OK(kvm_init_seq(kvm, &f, 64, NULL, 0));
        CHECK(find_prefix(kvm, &e, t, 9) == 0);
        TABLE_EMPTY(&e);
        memcpy(t, ta, 4 * sizeof(int32_t));
        CHECK(find_prefix(kvm, &f, t, 9) == 4);
        TABLE(&f, 0);
        FREE_LIST(kvm, 8, 9, 6, 5, 4, 3, 7, 2, 1);
        kvm_deinit_seq(kvm, &f);
        FREE_LIST(kvm, 8, 9, 6, 5, 4, 3, 7, 2, 1, 0);
        /* an empty or one-token prompt hits nothing */
        CHECK(find_prefix(kvm, &d, ta, 1) == 0);
        CHECK(find_prefix(kvm, &d, ta, 0) == 0);
        kvm_deinit_seq(kvm, &e);
    }
    kvm_get_stats(kvm, &st);
    CHECK(st.prefix_cache_queries == 32 + 16 + 17 + 12 + 13 + 9 + 9 + 1);
    CHECK(st.prefix_cache_hits == 12 + 12 + 16 + 8 + 12 + 4);
    CHECK(st.n_evictions == 0);

    kvm_deinit_seq(kvm, &a);
    kvm_deinit_seq(kvm, &b);
    kvm_deinit_seq(kvm, &c);
    kvm_deinit_seq(kvm, &d);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);
}

/* LRU eviction: the head goes first, its key with it; other cached blocks still hit. */
static void test_eviction(void)
{
    kvm_t *kvm = make_kvm(6, 2, true, 0);
    kvm_seq_t p, q, r;
    int32_t tp[6], tq[4], tr[6];
    kvm_stats_t st;

    fill(tp, 6, 10);
    fill(tq, 4, 20);
    fill(tr, 6, 30);
    CHECK_OK(kvm_init_seq(kvm, &p, 32, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &q, 32, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &r, 32, NULL, 0));

    CHECK_OK(kvm_allocate(kvm, &p, 6));
    CHECK_OK(kvm_commit(kvm, &p, tp, 6));
    TABLE(&p, 0, 1, 2);
    kvm_free(kvm, &p);
    FREE_LIST(kvm, 3, 4, 5, 2, 1, 0);
    CHECK_OK(kvm_allocate(kvm, &q, 4));
    CHECK_OK(kvm_commit(kvm, &q, tq, 4));
    TABLE(&q, 3, 4);
    kvm_free(kvm, &q);
    FREE_LIST(kvm, 5, 2, 1, 0, 4, 3);
    kvm_get_stats(kvm, &st);
    CHECK(st.n_blocks_cached == 5 && st.n_evictions == 0);

    /* r takes 5 (no key), then evicts p's last two blocks (2, then 1) */
    CHECK_OK(kvm_allocate(kvm, &r, 6));
    TABLE(&r, 5, 2, 1);
    FREE_LIST(kvm, 0, 4, 3);
    CHECK(!has_key(kvm, 2) && !has_key(kvm, 1) && has_key(kvm, 0));
    kvm_get_stats(kvm, &st);
    CHECK(st.n_evictions == 2 && st.n_blocks_cached == 3);
    CHECK_OK(kvm_commit(kvm, &r, tr, 6));
    INVARIANTS(kvm, &p, &q, &r);

    /* p: block 0 still hits, its evicted second block misses */
    CHECK(find_prefix(kvm, &p, tp, 6) == 2);
    TABLE(&p, 0);
    /* q: both blocks still cached; cap (4 - 1) / 2 = 1 block */
    CHECK(find_prefix(kvm, &q, tq, 4) == 2);
    TABLE(&q, 3);
    FREE_LIST(kvm, 4);
    INVARIANTS(kvm, &p, &q, &r);
    kvm_free(kvm, &r);
    kvm_free(kvm, &q);
    kvm_free(kvm, &p);
    FREE_LIST(kvm, 4, 1, 2, 5, 3, 0);
    INVARIANTS_NONE(kvm);
    kvm_deinit_seq(kvm, &p);
    kvm_deinit_seq(kvm, &q);
    kvm_deinit_seq(kvm, &r);
    kvm_destroy(kvm);
}

/* Cache salts separate requests; the salt changes the first key and, chained, every key. */
static void test_salt(void)
{
    kvm_t *kvm = make_kvm(12, 4, true, 0);
    kvm_seq_t s1, s2, s3, s4;
    int32_t t[9];
    fill(t, 9, 7);
    CHECK_OK(kvm_init_seq(kvm, &s1, 16, "alice", 5));
    CHECK_OK(kvm_init_seq(kvm, &s2, 16, "bob", 3));
    CHECK_OK(kvm_init_seq(kvm, &s3, 16, "alice", 5));
    CHECK_OK(kvm_init_seq(kvm, &s4, 16, NULL, 0));

    CHECK(find_prefix(kvm, &s1, t, 9) == 0);
    CHECK_OK(kvm_allocate(kvm, &s1, 9));
    CHECK_OK(kvm_commit(kvm, &s1, t, 9));
    TABLE(&s1, 0, 1, 2);
    CHECK(find_prefix(kvm, &s2, t, 9) == 0); /* same tokens, other salt */
    CHECK(find_prefix(kvm, &s4, t, 9) == 0); /* no salt */
    CHECK(find_prefix(kvm, &s3, t, 9) == 8); /* same salt */
    TABLE(&s3, 0, 1);
    CHECK_OK(kvm_allocate(kvm, &s2, 9));
    CHECK_OK(kvm_commit(kvm, &s2, t, 9));
    TABLE(&s2, 3, 4, 5);
    CHECK(has_key(kvm, 3) && has_key(kvm, 4)); /* bob's blocks are cached apart from alice's */
    /* every key of the chain differs with the salt, equal for equal salts */
    for (int i = 0; i < 2; i++) {
        CHECK(!block_key_equal(s1.keys[i], s2.keys[i]));
        CHECK(i >= s4.n_hashed || !block_key_equal(s1.keys[i], s4.keys[i]));
        CHECK(block_key_equal(s1.keys[i], s3.keys[i]));
    }
    INVARIANTS(kvm, &s1, &s2, &s3, &s4);

    /* a salt longer than KVM_SALT_MAX is refused */
    {
        char longsalt[KVM_SALT_MAX + 1];
        kvm_seq_t bad;
        memset(longsalt, 'x', sizeof(longsalt));
        CHECK(kvm_init_seq(kvm, &bad, 16, longsalt, sizeof(longsalt)) == CLLM_ERR_RANGE);
        CHECK(bad.block_ids == NULL);
        CHECK_OK(kvm_init_seq(kvm, &bad, 16, longsalt, KVM_SALT_MAX));
        kvm_deinit_seq(kvm, &bad);
    }
    kvm_deinit_seq(kvm, &s1);
    kvm_deinit_seq(kvm, &s2);
    kvm_deinit_seq(kvm, &s3);
    kvm_deinit_seq(kvm, &s4);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);
}

/* Without prefix caching nothing is hashed, cached or hit; tables work the same. */
static void test_disabled(void)
{
    kvm_t *kvm = make_kvm(8, 4, false, 0);
    kvm_seq_t a, b;
    int32_t t[13];
    kvm_stats_t st;
    fill(t, 13, 1);
    CHECK_OK(kvm_init_seq(kvm, &a, 32, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &b, 32, NULL, 0));
    CHECK(a.keys == NULL && a.links == NULL);
    CHECK(find_prefix(kvm, &a, t, 13) == 0);
    CHECK_OK(kvm_allocate(kvm, &a, 13));
    CHECK_OK(kvm_commit(kvm, &a, t, 13));
    TABLE(&a, 0, 1, 2, 3);
    kvm_free(kvm, &a);
    FREE_LIST(kvm, 4, 5, 6, 7, 3, 2, 1, 0);
    CHECK(find_prefix(kvm, &b, t, 13) == 0);
    TABLE_EMPTY(&b);
    for (int32_t i = 0; i < 8; i++) CHECK(!has_key(kvm, i));
    CHECK(a.n_hashed == 0);
    kvm_get_stats(kvm, &st);
    CHECK(st.prefix_cache_queries == 0 && st.prefix_cache_hits == 0 && st.n_blocks_cached == 0);
    INVARIANTS(kvm, &a, &b);
    kvm_deinit_seq(kvm, &a);
    kvm_deinit_seq(kvm, &b);
    kvm_destroy(kvm);
}

/* Out of blocks is a status; allocation is all or nothing; argument errors. */
static void test_no_space_and_args(void)
{
    kvm_t *kvm = make_kvm(4, 4, true, 0);
    kvm_seq_t x, y;
    int32_t t[16];
    int32_t n_cached;
    fill(t, 16, 40);
    CHECK_OK(kvm_init_seq(kvm, &x, 16, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &y, 16, NULL, 0));

    CHECK_OK(kvm_allocate(kvm, &x, 12));
    TABLE(&x, 0, 1, 2);
    CHECK_OK(kvm_commit(kvm, &x, t, 8));
    CHECK(kvm_allocate(kvm, &y, 8) == CLLM_NO_SPACE);
    TABLE_EMPTY(&y);
    FREE_LIST(kvm, 3);
    INVARIANTS(kvm, &x, &y);
    CHECK_OK(kvm_allocate(kvm, &y, 4));
    TABLE(&y, 3);
    CHECK(kvm_allocate(kvm, &x, 8) == CLLM_NO_SPACE); /* x: 8 computed + 8 = 4 blocks, holds 3 */
    TABLE(&x, 0, 1, 2);
    kvm_free(kvm, &y);

    /* a hit, then NO_SPACE for the rest: kvm_free gives the hit back, still cached */
    {
        kvm_seq_t z;
        CHECK_OK(kvm_init_seq(kvm, &z, 16, NULL, 0));
        kvm_free(kvm, &x);
        FREE_LIST(kvm, 3, 2, 1, 0);
        CHECK_OK(kvm_allocate(kvm, &y, 8)); /* y takes 3 and 2 */
        TABLE(&y, 3, 2);
        CHECK(find_prefix(kvm, &z, t, 16) == 8);
        TABLE(&z, 0, 1);
        FREE_LIST_EMPTY(kvm);
        CHECK(kvm_allocate(kvm, &z, 8) == CLLM_NO_SPACE);
        TABLE(&z, 0, 1);
        INVARIANTS(kvm, &x, &y, &z);
        kvm_free(kvm, &z);
        FREE_LIST(kvm, 1, 0);
        CHECK(has_key(kvm, 0) && has_key(kvm, 1));
        CHECK(find_prefix(kvm, &z, t, 16) == 8);
        kvm_deinit_seq(kvm, &z);
        kvm_free(kvm, &y);
    }

    /* argument errors leave everything as it was */
    CHECK(kvm_allocate(kvm, &x, -1) == CLLM_ERR_INVALID_ARG);
    CHECK(kvm_allocate(kvm, &x, 17) == CLLM_ERR_RANGE); /* max_tokens 16 */
    CHECK_OK(kvm_allocate(kvm, &x, 16));
    CHECK(kvm_commit(kvm, &x, t, 17) == CLLM_ERR_INVALID_ARG);
    CHECK_OK(kvm_commit(kvm, &x, t, 5));
    CHECK(kvm_commit(kvm, &x, t, 4) == CLLM_ERR_INVALID_ARG); /* never decreases */
    CHECK(kvm_find_cached_prefix(kvm, &x, t, 8, &n_cached) == CLLM_ERR_INVALID_ARG && n_cached == 0);
    CHECK(kvm_find_cached_prefix(kvm, &y, t, 17, &n_cached) == CLLM_ERR_RANGE);
    {
        kvm_seq_t w;
        CHECK(kvm_init_seq(kvm, &w, 0, NULL, 0) == CLLM_ERR_INVALID_ARG);
        kvm_deinit_seq(kvm, &w); /* safe on the zeroed seq a failed init leaves */
    }
    INVARIANTS(kvm, &x);
    {
        kvm_config_t bad = {0, 4, true, 0, 0};
        kvm_t *k = (kvm_t *)1;
        CHECK(kvm_create(&bad, &k) == CLLM_ERR_INVALID_ARG && k == NULL);
        bad = (kvm_config_t){4, 0, true, 0, 0};
        CHECK(kvm_create(&bad, &k) == CLLM_ERR_INVALID_ARG);
        bad = (kvm_config_t){4, 4, true, 0, 65};
        CHECK(kvm_create(&bad, &k) == CLLM_ERR_INVALID_ARG);
    }
    kvm_deinit_seq(kvm, &x);
    kvm_deinit_seq(kvm, &y);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);
}

/* With 1-bit keys, two different first blocks share a key (and so, chained, do their second
 * blocks): only one chain can be cached, and the other never hits it. */
static void test_forced_collision(void)
{
    const uint64_t ns = 0xc11au;
    kvm_t *kvm = make_kvm(8, 2, true, 1);
    kvm_seq_t p, q;
    int32_t tp[5] = {1, 2, 3, 4, 5}, tq[5] = {0, 0, 3, 4, 5};
    block_key_t root = block_hash_root(ns, NULL, 0);
    block_key_t kp = block_key_truncate(block_hash_chain(ns, root, tp, 2), 1);
    /* p's two blocks get different 1-bit keys, so both are cached */
    for (int32_t v = 3; v < 100; v++) {
        tp[2] = tq[2] = v;
        if (!block_key_equal(block_key_truncate(block_hash_chain(ns, kp, tp + 2, 2), 1), kp)) break;
    }
    /* q's first block gets the same 1-bit key as p's */
    for (int32_t v = 100; v < 200; v++) {
        tq[0] = v;
        if (block_key_equal(block_key_truncate(block_hash_chain(ns, root, tq, 2), 1), kp)) break;
    }
    CHECK(block_key_equal(block_key_truncate(block_hash_chain(ns, root, tq, 2), 1), kp));

    CHECK_OK(kvm_init_seq(kvm, &p, 8, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &q, 8, NULL, 0));
    CHECK_OK(kvm_allocate(kvm, &p, 5));
    CHECK_OK(kvm_commit(kvm, &p, tp, 5));
    TABLE(&p, 0, 1, 2);
    CHECK(has_key(kvm, 0) && has_key(kvm, 1));
    CHECK(block_key_equal(p.keys[1], block_key_truncate(block_hash_chain(ns, kp, tp + 2, 2), 1)));
    kvm_free(kvm, &p);

    CHECK(find_prefix(kvm, &q, tq, 5) == 0); /* same key as p's block 0, other tokens */
    CHECK(block_key_equal(q.keys[0], p.keys[0]));
    CHECK_OK(kvm_allocate(kvm, &q, 5));
    TABLE(&q, 3, 4, 5);
    CHECK_OK(kvm_commit(kvm, &q, tq, 5));
    CHECK(block_key_equal(q.keys[1], p.keys[1])); /* equal parent keys, equal tokens */
    CHECK(!has_key(kvm, 3) && !has_key(kvm, 4));  /* both collide: not cached */
    INVARIANTS(kvm, &p, &q);
    kvm_free(kvm, &q);
    CHECK(find_prefix(kvm, &q, tq, 5) == 0);
    kvm_free(kvm, &q);
    CHECK(find_prefix(kvm, &p, tp, 5) == 4);
    TABLE(&p, 0, 1);
    kvm_deinit_seq(kvm, &p);
    kvm_deinit_seq(kvm, &q);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);
}

/* ---- partial-block reuse ---- */

/* The pending copy of seq must be exactly (src, dst, n); it is consumed. */
static void check_copy(kvm_seq_t *seq, int32_t src, int32_t dst, int32_t n, int line)
{
    int32_t s_ = -1, d_ = -1, n_ = -1;
    bool got = kvm_take_pending_copy(seq, &s_, &d_, &n_);
    if (n == 0 ? got : !got || s_ != src || d_ != dst || n_ != n) {
        fprintf(stderr, "line %d: pending copy %d: %d -> %d, %d slots; expected %d -> %d, %d slots\n", line, got, s_,
                d_, n_, src, dst, n);
        check_failures++;
    }
    CHECK(!kvm_take_pending_copy(seq, &s_, &d_, &n_)); /* taken once */
}
#define COPY(seq, src, dst, n) check_copy(seq, src, dst, n, __LINE__)

/* Donor choice (longest common prefix, ties to the lowest block id), the cap, the root's
 * children, salts, ref counts untouched, stats, and duplicates when the new block fills. */
static void test_partial_reuse(void)
{
    kvm_t *kvm = make_kvm(12, 4, true, 0);
    kvm_seq_t a, x, y, z, c, r;
    int32_t ta[13], tx[9] = {0, 1, 2, 3, 4, 5, 90, 91, 92}, ty[9] = {0, 1, 2, 3, 4, 5, 90, 7, 8};
    int32_t tz[9] = {0, 1, 2, 3, 4, 5, 50, 8, 9}, tr[5] = {0, 1, 77, 78, 79};
    kvm_stats_t st;

    kvm_set_partial_block_reuse(kvm, true);
    fill(ta, 13, 0);
    CHECK_OK(kvm_init_seq(kvm, &a, 64, NULL, 0));
    CHECK(find_prefix(kvm, &a, ta, 13) == 0); /* nothing cached: no donor, no copy */
    COPY(&a, 0, 0, 0);
    CHECK_OK(kvm_allocate(kvm, &a, 13));
    CHECK_OK(kvm_commit(kvm, &a, ta, 13));
    TABLE(&a, 0, 1, 2, 3);
    CHECK(has_key(kvm, 0) && has_key(kvm, 1) && has_key(kvm, 2) && !has_key(kvm, 3));

    /* x: block 0 hits; block 1 (4 5 6 7) is block 0's only child and shares 4 5: a new block
     * (the free list's head, 4) gets its slots [0, 2); the donor's ref count does not move */
    CHECK_OK(kvm_init_seq(kvm, &x, 64, NULL, 0));
    CHECK(find_prefix(kvm, &x, tx, 9) == 6);
    TABLE(&x, 0, 4);
    COPY(&x, 1, 4, 2);
    CHECK(x.n_computed == 6 && x.n_linked == 1);
    CHECK(ref_cnt(kvm, 1) == 1 && ref_cnt(kvm, 0) == 2 && ref_cnt(kvm, 4) == 1);
    INVARIANTS(kvm, &a, &x);
    CHECK_OK(kvm_allocate(kvm, &x, 3));
    TABLE(&x, 0, 4, 5);
    CHECK_OK(kvm_commit(kvm, &x, tx, 9)); /* block 4 is full: (4 5 90 91), a second child of 0 */
    CHECK(has_key(kvm, 4) && !has_key(kvm, 5));
    INVARIANTS(kvm, &a, &x);

    /* y: children 1 (L 2) and 4 (L 3): the longest wins */
    CHECK_OK(kvm_init_seq(kvm, &y, 64, NULL, 0));
    CHECK(find_prefix(kvm, &y, ty, 9) == 7);
    TABLE(&y, 0, 6);
    COPY(&y, 4, 6, 3);
    CHECK(ref_cnt(kvm, 4) == 1);
    INVARIANTS(kvm, &a, &x, &y);

    /* z: both children share 4 5 only: a tie goes to the lowest block id */
    CHECK_OK(kvm_init_seq(kvm, &z, 64, NULL, 0));
    CHECK(find_prefix(kvm, &z, tz, 9) == 6);
    TABLE(&z, 0, 7);
    COPY(&z, 1, 7, 2);
    INVARIANTS(kvm, &a, &x, &y, &z);
    kvm_free(kvm, &z);
    FREE_LIST(kvm, 8, 9, 10, 11, 7);

    /* the cap: a's first 8 tokens: the full hit stops at 1 block (one token must be computed),
     * the partial takes 3 (n_tokens - 1 in all); 6 tokens: the partial takes 1 */
    CHECK_OK(kvm_init_seq(kvm, &c, 64, NULL, 0));
    CHECK(find_prefix(kvm, &c, ta, 8) == 7);
    TABLE(&c, 0, 8);
    COPY(&c, 1, 8, 3);
    /* once full, block 8 holds what the donor holds: a duplicate, left uncached */
    CHECK_OK(kvm_allocate(kvm, &c, 1));
    CHECK_OK(kvm_commit(kvm, &c, ta, 8));
    CHECK(!has_key(kvm, 8) && has_key(kvm, 1) && c.links[1].id == 1);
    INVARIANTS(kvm, &a, &x, &y, &z, &c);
    kvm_free(kvm, &c);
    CHECK(find_prefix(kvm, &c, ta, 6) == 5);
    TABLE(&c, 0, 9);
    COPY(&c, 1, 9, 1);
    kvm_free(kvm, &c);
    CHECK(find_prefix(kvm, &c, ta, 5) == 4); /* 1 full block, nothing left for a partial */
    TABLE(&c, 0);
    COPY(&c, 0, 0, 0);
    kvm_free(kvm, &c);
    CHECK(find_prefix(kvm, &c, ta, 1) == 0 && find_prefix(kvm, &c, ta, 0) == 0);
    COPY(&c, 0, 0, 0);
    FREE_LIST(kvm, 10, 11, 7, 8, 9);
    INVARIANTS(kvm, &a, &x, &y, &z, &c);

    /* h = 0: the root's children (first blocks of the same salt); another salt finds none */
    CHECK_OK(kvm_init_seq(kvm, &r, 64, NULL, 0));
    CHECK(find_prefix(kvm, &r, tr, 5) == 2);
    TABLE(&r, 10);
    COPY(&r, 0, 10, 2);
    CHECK(ref_cnt(kvm, 0) == 3);
    kvm_deinit_seq(kvm, &r);
    CHECK_OK(kvm_init_seq(kvm, &r, 64, "s", 1));
    CHECK(find_prefix(kvm, &r, tr, 5) == 0);
    TABLE_EMPTY(&r);
    COPY(&r, 0, 0, 0);
    /* peek counts the partial as find does, and changes nothing */
    {
        int32_t peek = -1;
        kvm_seq_t p;
        CHECK_OK(kvm_init_seq(kvm, &p, 64, NULL, 0));
        CHECK_OK(kvm_peek_cached_prefix(kvm, &p, ty, 9, &peek));
        CHECK(peek == 7 && p.n_blocks == 0 && !kvm_take_pending_copy(&p, &(int32_t){0}, &(int32_t){0}, &(int32_t){0}));
        kvm_deinit_seq(kvm, &p);
    }

    /* y fills its new block with (4 5 90 7): a new child; a preempted y comes back and reuses
     * its own block as the donor (equal content: nothing is duplicated in the index) */
    CHECK_OK(kvm_allocate(kvm, &y, 2));
    TABLE(&y, 0, 6, 11);
    CHECK_OK(kvm_commit(kvm, &y, ty, 9));
    CHECK(has_key(kvm, 6));
    INVARIANTS(kvm, &a, &x, &y, &r);
    kvm_free(kvm, &y);
    CHECK(find_prefix(kvm, &y, ty, 9) == 8); /* blocks 0 and 6 hit in full */
    TABLE(&y, 0, 6);
    COPY(&y, 0, 0, 0);
    kvm_get_stats(kvm, &st);
    CHECK(st.prefix_cache_hits == 0 + 6 + 7 + 6 + 7 + 5 + 4 + 0 + 0 + 2 + 0 + 8);
    CHECK(st.prefix_cache_queries == 13 + 9 + 9 + 9 + 8 + 6 + 5 + 1 + 0 + 5 + 5 + 9);
    kvm_deinit_seq(kvm, &a);
    kvm_deinit_seq(kvm, &x);
    kvm_deinit_seq(kvm, &y);
    kvm_deinit_seq(kvm, &z);
    kvm_deinit_seq(kvm, &c);
    kvm_deinit_seq(kvm, &r);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);

    /* off (the default) or without prefix caching: full blocks only, never a copy */
    for (int caching = 0; caching < 2; caching++) {
        kvm = make_kvm(8, 4, caching, 0);
        kvm_set_partial_block_reuse(kvm, !caching);
        CHECK_OK(kvm_init_seq(kvm, &a, 64, NULL, 0));
        CHECK_OK(kvm_init_seq(kvm, &x, 64, NULL, 0));
        CHECK(find_prefix(kvm, &a, ta, 13) == 0);
        CHECK_OK(kvm_allocate(kvm, &a, 13));
        CHECK_OK(kvm_commit(kvm, &a, ta, 13));
        CHECK(find_prefix(kvm, &x, tx, 9) == (caching ? 4 : 0));
        COPY(&x, 0, 0, 0);
        INVARIANTS(kvm, &a, &x);
        kvm_deinit_seq(kvm, &a);
        kvm_deinit_seq(kvm, &x);
        kvm_destroy(kvm);
    }
}

/* A donor that is a free cached block takes no reference, so the same scheduling step may hand
 * it out again: as the new block itself (the slots are already in place), or to a later
 * allocation (the engine copies before the forward pass writes, so it is still intact). Its key
 * leaves the map and the child index. */
static void test_partial_donor_reallocated(void)
{
    int32_t t8[8] = {0, 1, 2, 3, 4, 5, 6, 7}, tb[10] = {0, 1, 2, 3, 4, 5, 99, 98, 97, 96};
    kvm_t *kvm = make_kvm(2, 4, true, 0);
    kvm_seq_t a, b;
    kvm_stats_t st;

    kvm_set_partial_block_reuse(kvm, true);
    CHECK_OK(kvm_init_seq(kvm, &a, 16, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &b, 16, NULL, 0));
    CHECK_OK(kvm_allocate(kvm, &a, 8));
    CHECK_OK(kvm_commit(kvm, &a, t8, 8));
    kvm_free(kvm, &a);
    FREE_LIST(kvm, 1, 0);
    /* b hits block 0; the donor, block 1, is the head of the free list: it becomes b's block */
    CHECK(find_prefix(kvm, &b, tb, 8) == 6);
    TABLE(&b, 0, 1);
    COPY(&b, 1, 1, 2);
    CHECK(!has_key(kvm, 1) && has_key(kvm, 0));
    FREE_LIST_EMPTY(kvm);
    kvm_get_stats(kvm, &st);
    CHECK(st.n_evictions == 1);
    INVARIANTS(kvm, &b);
    CHECK_OK(kvm_allocate(kvm, &b, 2));
    CHECK_OK(kvm_commit(kvm, &b, tb, 8)); /* block 1 now (4 5 99 98): keyed, a child of 0 */
    CHECK(has_key(kvm, 1));
    INVARIANTS(kvm, &b);
    kvm_deinit_seq(kvm, &a);
    kvm_deinit_seq(kvm, &b);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);

    /* three blocks: the new block is 2; the donor, 1, is taken by b's next allocation */
    kvm = make_kvm(3, 4, true, 0);
    kvm_set_partial_block_reuse(kvm, true);
    CHECK_OK(kvm_init_seq(kvm, &a, 16, NULL, 0));
    CHECK_OK(kvm_init_seq(kvm, &b, 16, NULL, 0));
    CHECK_OK(kvm_allocate(kvm, &a, 8));
    CHECK_OK(kvm_commit(kvm, &a, t8, 8));
    kvm_free(kvm, &a);
    FREE_LIST(kvm, 2, 1, 0);
    CHECK(find_prefix(kvm, &b, tb, 10) == 6);
    TABLE(&b, 0, 2);
    COPY(&b, 1, 2, 2);
    CHECK(ref_cnt(kvm, 1) == 0 && has_key(kvm, 1)); /* no reference taken */
    FREE_LIST(kvm, 1);
    CHECK_OK(kvm_allocate(kvm, &b, 4));
    TABLE(&b, 0, 2, 1);
    CHECK(!has_key(kvm, 1));
    INVARIANTS(kvm, &b);
    kvm_free(kvm, &b);
    CHECK(find_prefix(kvm, &b, t8, 8) == 4); /* block 1's key is gone: no child of 0 left */
    COPY(&b, 0, 0, 0);
    kvm_free(kvm, &b);
    CHECK_OK(kvm_allocate(kvm, &a, 8));
    CHECK_OK(kvm_commit(kvm, &a, t8, 8)); /* blocks 1 (a duplicate of 0) and 2, a child of 0 */
    TABLE(&a, 1, 2);
    FREE_LIST(kvm, 0);
    /* b hits the last free block, 0: no block is left for a partial, so none is taken */
    CHECK(find_prefix(kvm, &b, tb, 10) == 4);
    COPY(&b, 0, 0, 0);
    CHECK(kvm_allocate(kvm, &b, 6) == CLLM_NO_SPACE);
    kvm_free(kvm, &b);
    kvm_free(kvm, &a);
    FREE_LIST(kvm, 0, 2, 1);
    /* now the partial is taken: the donor, 2, is the head once 0 is hit: the new block itself;
     * a lookup given back (admission refused) drops its copy with its blocks */
    CHECK(find_prefix(kvm, &b, tb, 10) == 6);
    TABLE(&b, 0, 2);
    kvm_free(kvm, &b);
    COPY(&b, 0, 0, 0);
    INVARIANTS(kvm, &a, &b);
    kvm_deinit_seq(kvm, &a);
    kvm_deinit_seq(kvm, &b);
    INVARIANTS_NONE(kvm);
    kvm_destroy(kvm);
}

/* ---- randomized stress ---- */

enum { ST_MAX_TOKENS = 96, ST_N_REQ = 10, ST_N_BLOCKS = 48, ST_N_FAMILIES = 4 };

typedef struct {
    bool active;   /* has a request (waiting or running) */
    bool running;  /* holds blocks */
    int salt;      /* 0: none, 1: "a", 2: "b" */
    int32_t n_tokens, n_target;
    int32_t tokens[ST_MAX_TOKENS];
    kvm_seq_t seq;
} st_req_t;

typedef struct {
    int salt;
    int32_t len; /* tokens of the prefix whose K/V the block's slots hold; -1: garbage */
    int32_t prefix[ST_MAX_TOKENS];
} st_block_t;

typedef struct {
    uint64_t rng;
    kvm_t *kvm;
    int32_t bs;
    st_req_t req[ST_N_REQ];
    st_block_t blk[ST_N_BLOCKS];
    int32_t family[ST_N_FAMILIES][ST_MAX_TOKENS];
    bool partial; /* partial-block reuse on */
    long n_partial; /* admissions that reused a partial block */
    long n_hit_tokens, n_admits, n_preempts, n_finished, n_no_space;
} stress_t;

static uint32_t rnd(stress_t *s, uint32_t n)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (uint32_t)((s->rng >> 11) % n);
}

static const char *salt_str(int salt)
{
    return salt == 1 ? "a" : salt == 2 ? "b" : NULL;
}

static void stress_check(stress_t *s, const char *what, int step)
{
    const kvm_seq_t *live[ST_N_REQ];
    int32_t n = 0;
    kvm_stats_t st;
    for (int i = 0; i < ST_N_REQ; i++)
        if (s->req[i].active) live[n++] = &s->req[i].seq;
    if (kvm_check_invariants(s->kvm, live, n) != CLLM_OK) {
        fprintf(stderr, "stress step %d (%s): %s\n", step, what, cllm_error_message());
        check_failures++;
    }
    kvm_get_stats(s->kvm, &st);
    if (st.n_blocks_free + st.n_blocks_used != ST_N_BLOCKS || st.n_blocks_cached > st.n_blocks_free) {
        fprintf(stderr, "stress step %d (%s): stats %d free + %d used, %d cached\n", step, what, st.n_blocks_free,
                st.n_blocks_used, st.n_blocks_cached);
        check_failures++;
    }
}

/* A waiting request is scheduled: prefix lookup (every hit block must hold exactly this salt
 * and prefix), then its first chunk. */
static void stress_admit(stress_t *s, st_req_t *r, int step)
{
    int32_t n_cached = find_prefix(s->kvm, &r->seq, r->tokens, r->n_tokens);
    const int32_t *ids;
    int32_t n_ids;
    int32_t n_full = n_cached / s->bs, n_part = n_cached % s->bs, src = -1, dst = -1, n_slots = 0;
    bool copy = kvm_take_pending_copy(&r->seq, &src, &dst, &n_slots);
    kvm_block_table(&r->seq, &ids, &n_ids);
    if ((n_part && !s->partial) || n_cached > r->n_tokens - 1 || n_ids != n_full + (n_part != 0) ||
        copy != (n_part != 0) || (copy && (n_slots != n_part || dst != ids[n_full]))) {
        fprintf(stderr, "stress step %d: bad hit %d for %d tokens (%d blocks, copy %d: %d -> %d, %d slots)\n", step,
                n_cached, r->n_tokens, n_ids, copy, src, dst, n_slots);
        check_failures++;
        return;
    }
    if (copy) {
        /* the donor is a full cached block extending exactly this salt and prefix for n_part
         * tokens; the engine copies its slots: model that */
        const st_block_t *d = &s->blk[src];
        if (d->len != (n_full + 1) * s->bs || d->salt != r->salt ||
            memcmp(d->prefix, r->tokens, (size_t)n_cached * sizeof(int32_t)) != 0) {
            fprintf(stderr, "stress step %d: WRONG PARTIAL HIT: donor %d holds %d tokens (salt %d)\n", step, src,
                    d->len, d->salt);
            check_failures++;
        }
        s->blk[dst].salt = r->salt;
        s->blk[dst].len = n_cached;
        memcpy(s->blk[dst].prefix, r->tokens, (size_t)n_cached * sizeof(int32_t));
        s->n_partial++;
    }
    for (int32_t j = 0; j < n_full; j++) {
        const st_block_t *b = &s->blk[ids[j]];
        int32_t end = (j + 1) * s->bs;
        if (b->len != end || b->salt != r->salt || memcmp(b->prefix, r->tokens, (size_t)end * sizeof(int32_t)) != 0) {
            fprintf(stderr, "stress step %d: WRONG HIT: table entry %d is block %d holding %d tokens (salt %d)\n",
                    step, j, ids[j], b->len, b->salt);
            check_failures++;
        }
    }
    s->n_hit_tokens += n_cached;
    s->n_admits++;
    r->running = true;
}

/* One model step of a running request: chunked prefill or decode. Returns false on NO_SPACE. */
static bool stress_step(stress_t *s, st_req_t *r)
{
    kvm_seq_t *q = &r->seq;
    int32_t c0 = q->n_computed;
    int32_t n_new = r->n_tokens - c0;
    int32_t old_blocks = q->n_blocks;
    const int32_t *ids;
    int32_t n_ids;
    if (n_new > 1) n_new = 1 + (int32_t)rnd(s, (uint32_t)n_new); /* a chunk of the rest */
    status_t st = kvm_allocate(s->kvm, q, n_new);
    if (st == CLLM_NO_SPACE) {
        s->n_no_space++;
        return false;
    }
    CHECK_OK(st);
    kvm_block_table(q, &ids, &n_ids);
    for (int32_t j = old_blocks; j < n_ids; j++) s->blk[ids[j]].len = -1; /* fresh: garbage */
    /* the model writes K/V of tokens [c0, c0 + n_new) into their blocks */
    for (int32_t j = c0 / s->bs; j * s->bs < c0 + n_new; j++) {
        st_block_t *b = &s->blk[ids[j]];
        int32_t end = (j + 1) * s->bs < c0 + n_new ? (j + 1) * s->bs : c0 + n_new;
        if (j * s->bs < c0 && (b->len != c0 || b->salt != r->salt)) {
            fprintf(stderr, "stress: block %d was written by someone else (holds %d, expected %d)\n", ids[j], b->len,
                    c0);
            check_failures++;
        }
        b->salt = r->salt;
        b->len = end;
        memcpy(b->prefix, r->tokens, (size_t)end * sizeof(int32_t));
    }
    CHECK_OK(kvm_commit(s->kvm, q, r->tokens, c0 + n_new));
    /* sampled the next token once the whole sequence is computed */
    if (q->n_computed == r->n_tokens && r->n_tokens < r->n_target)
        r->tokens[r->n_tokens++] = (int32_t)rnd(s, 4);
    return true;
}

static void stress_new_request(stress_t *s, st_req_t *r)
{
    const int32_t *fam = s->family[rnd(s, ST_N_FAMILIES)];
    int32_t n_prefix = (int32_t)rnd(s, 48);
    int32_t n_prompt = n_prefix + 1 + (int32_t)rnd(s, 16);
    r->salt = rnd(s, 4) == 0 ? 1 + (int)rnd(s, 2) : 0;
    CHECK_OK(kvm_init_seq(s->kvm, &r->seq, ST_MAX_TOKENS, salt_str(r->salt), r->salt ? 1 : 0));
    memcpy(r->tokens, fam, (size_t)n_prefix * sizeof(int32_t));
    for (int32_t i = n_prefix; i < n_prompt; i++) r->tokens[i] = (int32_t)rnd(s, 3); /* tiny vocab: repeats */
    r->n_tokens = n_prompt;
    r->n_target = n_prompt + 1 + (int32_t)rnd(s, 24);
    r->active = true;
    r->running = false;
}

static void stress_run(int32_t bs, bool caching, int32_t key_bits, bool partial, int n_steps, uint64_t seed)
{
    static stress_t s; /* large: keep it off the stack */
    memset(&s, 0, sizeof(s));
    s.rng = seed;
    s.bs = bs;
    s.partial = partial;
    s.kvm = make_kvm(ST_N_BLOCKS, bs, caching, key_bits);
    kvm_set_partial_block_reuse(s.kvm, partial);
    for (int f = 0; f < ST_N_FAMILIES; f++)
        for (int i = 0; i < ST_MAX_TOKENS; i++) s.family[f][i] = (int32_t)rnd(&s, 1000);
    for (int b = 0; b < ST_N_BLOCKS; b++) s.blk[b].len = -1;

    for (int step = 0; step < n_steps && check_failures == 0; step++) {
        st_req_t *r = &s.req[rnd(&s, ST_N_REQ)];
        const char *what;
        uint32_t op = rnd(&s, 10);
        if (!r->active) {
            stress_new_request(&s, r);
            what = "new request";
        } else if (!r->running) {
            stress_admit(&s, r, step);
            what = "admit";
            if (op < 2) { /* not admitted after all: give the hits back */
                kvm_free(s.kvm, &r->seq);
                r->running = false;
                what = "admit, then back to waiting";
            }
        } else if (op == 0) { /* preempt: everything freed, comes back later */
            kvm_free(s.kvm, &r->seq);
            r->running = false;
            s.n_preempts++;
            what = "preempt";
        } else if (op == 1 || r->n_tokens == r->n_target) { /* finish (or abort) */
            kvm_deinit_seq(s.kvm, &r->seq);
            r->active = r->running = false;
            s.n_finished++;
            what = "finish";
        } else {
            what = "step";
            if (!stress_step(&s, r)) { /* no space: preempt it (recompute later) */
                kvm_free(s.kvm, &r->seq);
                r->running = false;
                s.n_preempts++;
            }
        }
        stress_check(&s, what, step);
    }
    for (int i = 0; i < ST_N_REQ; i++)
        if (s.req[i].active) kvm_deinit_seq(s.kvm, &s.req[i].seq);
    memset(s.req, 0, sizeof(s.req));
    stress_check(&s, "all freed", n_steps);
    {
        kvm_stats_t st;
        kvm_get_stats(s.kvm, &st);
        printf("stress bs %d caching %d key_bits %d partial %d: %ld admits (%ld partial), %ld hit tokens, "
               "%ld preempts, %ld no-space, %ld finished, %llu evictions\n",
               bs, caching, key_bits, partial, s.n_admits, s.n_partial, s.n_hit_tokens, s.n_preempts, s.n_no_space,
               s.n_finished, (unsigned long long)st.n_evictions);
        CHECK(partial && caching && bs > 1 ? s.n_partial > 100 : s.n_partial == 0);
        CHECK(st.prefix_cache_hits == (uint64_t)s.n_hit_tokens);
        CHECK(s.n_admits > 500 && s.n_finished > 100 && s.n_preempts > 50);
        if (caching) CHECK(s.n_hit_tokens > 1000 && st.n_evictions > 100);
        else CHECK(s.n_hit_tokens == 0 && st.n_evictions == 0);
    }
    kvm_destroy(s.kvm);
}

int main(void)
{
    test_prefill_share_free();
    test_eviction();
    test_salt();
    test_disabled();
    test_no_space_and_args();
    test_forced_collision();
    test_partial_reuse();
    test_partial_donor_reallocated();
    stress_run(4, true, 0, false, 20000, 0x1234567ull);
    stress_run(4, true, 2, false, 20000, 0x2345678ull);
    stress_run(1, true, 3, false, 20000, 0x3456789ull);
    stress_run(3, true, 0, false, 20000, 0x456789aull);
    stress_run(4, false, 0, false, 20000, 0x56789abull);
    stress_run(4, true, 0, true, 20000, 0x6789abcull);
    stress_run(4, true, 2, true, 20000, 0x789abcdull);
    stress_run(3, true, 0, true, 20000, 0x89abcdeull);
    stress_run(8, true, 3, true, 20000, 0x9abcdefull);
    stress_run(4, false, 0, true, 20000, 0xabcdef0ull);
    if (check_failures) {
        fprintf(stderr, "test_kv_manager: %d checks failed\n", check_failures);
        return 1;
    }
    printf("test_kv_manager: ok\n");
    return 0;
}

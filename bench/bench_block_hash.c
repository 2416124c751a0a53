/* bench_block_hash.c: what prefix caching costs the scheduler, per token.
 *   1. block_hash_chain alone (XXH3-128 chained keys) at several block sizes;
 *   2. a request's bookkeeping (find_cached_prefix + allocate + commit + free) for a prompt
 *      that never hits (caching on vs off: the overhead at 0% hits), and for one that always
 *      hits (all but the last block found).
 * Best of several repetitions, ns per prompt token. Usage: bench_block_hash [n_prompt_tokens] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kv/block_hash.h"
#include "kv/kv_manager.h"
#include "core/clock.h"

static uint64_t rng_state = 88172645463325252ull;
static int32_t rnd_token(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (int32_t)(rng_state % 128256);
}

static volatile uint64_t sink;

static void bench_hash(int32_t block_size, const int32_t *tokens, int32_t n_tokens)
{
    double best = 1e30;
    int32_t n_blocks = n_tokens / block_size;
    for (int rep = 0; rep < 7; rep++) {
        block_key_t key = block_hash_root(1, NULL, 0);
        double t0 = clock_now_s();
        for (int32_t b = 0; b < n_blocks; b++) key = block_hash_chain(1, key, tokens + (size_t)b * block_size, block_size);
        double dt = clock_now_s() - t0;
        sink += key.lo;
        if (dt < best) best = dt;
    }
    printf("hash   block_size %3d: %6.3f ns/token\n", block_size, best * 1e9 / ((double)n_blocks * block_size));
}

/* One request's bookkeeping over a prompt of n tokens, repeated; fresh_tokens: new tokens per
 * repetition (0% hits) or the same prompt (hits). Returns the best ns per prompt token. */
static double bench_request(bool caching, bool fresh_tokens, int32_t block_size, int32_t *tokens, int32_t n)
{
    kvm_config_t cfg = {4 * (n / block_size + 1), block_size, caching, 7, 0};
    kvm_t *kvm;
    kvm_seq_t seq;
    double best = 1e30;
    int32_t n_cached;
    if (kvm_create(&cfg, &kvm) != CLLM_OK) return -1;
    for (int rep = 0; rep < 20; rep++) {
        if (fresh_tokens)
            for (int32_t i = 0; i < n; i++) tokens[i] = rnd_token();
        double t0 = clock_now_s();
        if (kvm_init_seq(kvm, &seq, n, NULL, 0) != CLLM_OK ||
            kvm_find_cached_prefix(kvm, &seq, tokens, n, &n_cached) != CLLM_OK ||
            kvm_allocate(kvm, &seq, n - n_cached) != CLLM_OK || kvm_commit(kvm, &seq, tokens, n) != CLLM_OK) {
            fprintf(stderr, "bench: %s\n", cllm_error_message());
            exit(1);
        }
        kvm_deinit_seq(kvm, &seq);
        double dt = clock_now_s() - t0;
        if (rep > 0 && dt < best) best = dt; /* the first run warms the cache it then hits */
    }
    kvm_destroy(kvm);
    return best * 1e9 / n;
}

int main(int argc, char **argv)
{
    int32_t n = argc > 1 ? atoi(argv[1]) : 8192;
    int32_t n_hash = 1 << 20;
    int32_t *tokens = malloc((size_t)(n > n_hash ? n : n_hash) * sizeof(int32_t));
    if (!tokens || n < 256) {
        fprintf(stderr, "usage: bench_block_hash [n_prompt_tokens >= 256]\n");
        return 1;
    }
    for (int32_t i = 0; i < n_hash; i++) tokens[i] = rnd_token();
    printf("chained XXH3-128 over %d tokens:\n", n_hash);
    const int32_t sizes[] = {8, 16, 32, 64, 128, 256};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) bench_hash(sizes[i], tokens, n_hash);

    printf("request bookkeeping (find + allocate + commit + free), %d-token prompt:\n", n);
    for (int32_t bs = 16; bs <= 32; bs *= 2) {
        double off = bench_request(false, true, bs, tokens, n);
        double on_miss = bench_request(true, true, bs, tokens, n);
        double on_hit = bench_request(true, false, bs, tokens, n);
        printf("block_size %2d: caching off %6.2f ns/token, on at 0%% hits %6.2f ns/token, on at ~100%% hits "
               "%6.2f ns/token\n",
               bs, off, on_miss, on_hit);
    }
    free(tokens);
    return 0;
}

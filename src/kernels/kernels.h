/* kernels.h: the compute kernels the forward pass uses, with runtime dispatch.
 *
 * Every kernel has a scalar reference in ref/ (the spec, the fallback, the test oracle) and
 * SIMD variants in x86/ (one ISA per file: *_avx2.c, *_avx512.c, later *_amx.c). The variant is
 * chosen once, at first use, from CPUID *and* XCR0 (the OS saves the registers); the environment
 * variable CLLM_KERNELS=ref|avx2|avx512 forces a level (never above what the CPU supports).
 *
 * Batch invariance (the engine's "same answer, any path" rests on it): the result for one row
 * (one token) is bitwise the same whatever other rows share the call, however many there are,
 * and however the work is split across threads. Reductions run in a fixed order over k and over
 * key positions; work is split across output columns or heads, never across a reduction. */
#ifndef CLLM_KERNELS_KERNELS_H
#define CLLM_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/threadpool.h"

typedef enum { KERN_LEVEL_REF = 0, KERN_LEVEL_AVX2 = 1, KERN_LEVEL_AVX512 = 2 } kern_level_t;

/* Level in use (selects on first call) and its name ("ref", "avx2", "avx512"). */
kern_level_t kern_level(void);
const char *kern_level_name(kern_level_t level);
/* Highest level this CPU + OS support (CPUID and XCR0). */
kern_level_t kern_level_supported(void);
/* Forces a level (clamped to the supported one); for tests and benchmarks. */
void kern_set_level(kern_level_t level);

/* y (m, n) = x (m, k) . W^T, W: n rows of k elements of wtype, row-major, GGML layout (k a
 * multiple of 32 for Q8_0/Q4_0). Split across pool threads over n. For Q8_0/Q4_0 weights the
 * rows of x are first quantized to 8 bits per block of 32 (as ggml does), then integer dots. */
void kern_matmul(threadpool_t *pool, float *y, const float *x, const void *w, dtype_t wtype,
                 int m, int n, int k);

/* out (n) = x / sqrt(mean(x^2) + eps) * w. out may alias x. */
void kern_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* out (n) = silu(gate) * up. out may alias gate. */
void kern_silu_mul(float *out, const float *gate, const float *up, int n);

/* out (n) = a + b. out may alias a. */
void kern_add(float *out, const float *a, const float *b, int n);

/* Rotary embedding, in place, of x (n_heads, head_dim) at position pos.
 * inv_freq: (head_dim / 2) angular frequencies (theta^(-2i/d), already llama3-scaled if so).
 * neox = 0: rotate pairs (x[2i], x[2i+1]) (GGML "normal", Llama); 1: pairs (x[i], x[i + d/2]) (NeoX, Qwen2). */
void kern_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox);

/* Attention of one query token over positions [0, n_ctx) of its sequence, for heads [h0, h1).
 * q: (n_head, head_dim) f32, rotated; out: (n_head, head_dim), only heads [h0, h1) written.
 * k_pool, v_pool: this layer's KV pools, (n_blocks, n_head_kv, block_size, head_dim) of kv_type
 * (F32, F16 or BF16). block_table: (ceil(n_ctx / block_size)) block ids; position p lives in
 * block block_table[p / block_size] at slot p % block_size. GQA: head h reads KV head
 * h / (n_head / n_head_kv). scale: usually 1/sqrt(head_dim). Keys are visited in position order
 * with an online softmax, so chunking and batching cannot change a row's result. */
void kern_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                    const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                    int head_dim, int h0, int h1, float scale);

#endif

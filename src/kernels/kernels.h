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

#include "cllm/status.h"
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
 * rows of x are first quantized to 8 bits per block of 32 (as ggml does), then integer dots;
 * for BF16 weights x is first rounded to bf16 (as ggml does), then bf16 products summed in f32.
 * F32 and F16 weights multiply x as is, in f32. */
void kern_matmul(threadpool_t *pool, float *y, const float *x, const void *w, dtype_t wtype,
                 int m, int n, int k);

/* A weight matrix as the forward pass holds it: the GGML data (not owned, e.g. in the model's
 * mapping) and, once kern_matrix_pack has run, a copy for the level in use, in memory backed by
 * transparent huge pages where the OS allows (kern_alloc_huge: fewer TLB misses; a streaming
 * read measured 24 -> 28 GB/s on one core of the development machine).
 * Q8_0 and Q4_0 at the AVX-512 level are repacked into the x16 layout of kernels_impl.h, the
 * same bytes per block as GGML (34 / 18) plus at most 15 padding blocks a row; F32, F16 and
 * BF16 are copied as they are (same layout); Q8_0/Q4_0 at levels without x16 kernels are read
 * in place. The copy costs its size in memory (the mapping's pages of a copied matrix are not
 * read again, so the OS may drop them) and one pass over the data at load (split over the pool). */
typedef struct {
    dtype_t type;
    int n, k;                  /* n rows (outputs) of k elements (inputs) */
    const void *data;          /* (n, k) of type, GGML layout */
    void *packed;              /* repacked copy (owned) or NULL */
    size_t packed_bytes;
    kern_level_t packed_level; /* the level whose kernels read packed */
} kern_matrix_t;

void kern_matrix_init(kern_matrix_t *mat, const void *data, dtype_t type, int n, int k);
/* 64-byte aligned memory for big read-mostly arrays (free() releases it): from 2 MiB up,
 * 2 MiB aligned and advised to use transparent huge pages (a hint; NULL only when out of memory). */
void *kern_alloc_huge(size_t bytes);
/* Makes mat's copy for the level in use (see kern_matrix_t; a no-op, CLLM_OK, for Q8_0/Q4_0
 * where the level has no x16 kernels). Errors: CLLM_ERR_NOMEM (mat is left as it was, usable). */
status_t kern_matrix_pack(threadpool_t *pool, kern_matrix_t *mat);
/* Frees the packed copy (the matrix stays usable unpacked). */
void kern_matrix_release(kern_matrix_t *mat);

/* y (m, w->n) = x (m, w->k) . W^T as kern_matmul, through the packed copy when the level in
 * use is the one it was packed for. A packed and an unpacked product agree within rounding, not
 * bitwise (other summation order); each is batch invariant. */
void kern_matmul_mat(threadpool_t *pool, float *y, const float *x, const kern_matrix_t *w, int m);
/* y[i] (m, w[i]->n) = x (m, k) . W[i]^T for i < n_mats: consecutive products with the same k and
 * type share one preparation of x and one hand-off to the pool (their columns are split over
 * the threads together), e.g. Q, K and V, or gate and up. Results as kern_matmul_mat. */
void kern_matmul_mats(threadpool_t *pool, int n_mats, float *const *y, const float *x,
                      const kern_matrix_t *const *w, int m);

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

/* Attention of n_q query tokens of one sequence at positions pos0 .. pos0 + n_q - 1 (token i
 * attends to positions [0, pos0 + i]; e.g. a prefill chunk), heads [h0, h1): row i is bitwise
 * kern_attention(out + i * ld, q + i * ld, ..., n_ctx = pos0 + i + 1, ...), but each chunk of
 * keys and values is read and converted once for a block of queries instead of once per query.
 * q, out: (n_q rows of ld floats), each row (n_head, head_dim) as in kern_attention. */
void kern_attention_rows(float *out, const float *q, int ld, int n_q, int pos0, const void *k_pool,
                         const void *v_pool, dtype_t kv_type, const int32_t *block_table, int block_size,
                         int n_head, int n_head_kv, int head_dim, int h0, int h1, float scale);

/* ---- machine ceilings, for rooflines (cllm bench model) ---- */

/* The instruction a peak loop repeats: f32 fused multiply-add, bf16 pair dot (vdpbf16ps),
 * int8 dot (u8 x s8 summed into int32: vpdpbusd, or AVX2's maddubs chain). */
typedef enum { KERN_PEAK_F32_FMA = 0, KERN_PEAK_BF16_DOT = 1, KERN_PEAK_INT8_DOT = 2 } kern_peak_t;

/* Runs n_iter steps of a register-only loop of that instruction at the level in use (12
 * independent accumulators) on the calling thread and returns the operations done (a
 * multiply-add counts 2), or 0 when the level has no such instruction (bf16 below AVX-512). */
double kern_peak_run(kern_peak_t kind, int64_t n_iter);

/* The instruction kern_matmul's inner loop spends its time in for weights of type wtype at the
 * level in use: the ceiling its prefill throughput is compared with. */
kern_peak_t kern_matmul_peak_kind(dtype_t wtype);

/* Reads the n bytes at p (64-byte aligned; n a multiple of 64) with the level's widest loads and
 * returns their sum as 64-bit words, so that the reads cannot be optimized away. */
uint64_t kern_read_sum(const void *p, size_t n);

#endif

/* matmul_x16_avx512.h: the AVX-512 products of x16-packed Q8_0/Q4_0 weights
 * (kern_matmul_x16_fn in kernels_impl.h) and the AVX-512 preparation of x (same bits as
 * kern_quantize_row_q8, kern_x16_quantize_row and kern_round_row_bf16). Plain prototypes: safe
 * to include anywhere, but call only when kern_level_supported() >= KERN_LEVEL_AVX512. */
#ifndef CLLM_KERNELS_X86_MATMUL_X16_AVX512_H
#define CLLM_KERNELS_X86_MATMUL_X16_AVX512_H

#include "kernels/kernels_impl.h"

void kern_avx512_matmul_q8_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1);
void kern_avx512_matmul_q4_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1);
void kern_avx512_quantize_row_q8(int8_t *qs, float *d, const float *x, int k);
void kern_avx512_x16_quantize_row(void *xp, const float *x, int k, dtype_t t);
void kern_avx512_round_row_bf16(uint16_t *xb, const float *x, int k);

#endif

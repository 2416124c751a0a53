/* matmul_avx2.h: the AVX2 matmul kernels (signatures: kern_matmul_float_fn and
 * kern_matmul_quant_fn in kernels_impl.h). Plain prototypes: safe to include anywhere, but
 * call only when kern_level_supported() >= KERN_LEVEL_AVX2. */
#ifndef CLLM_KERNELS_X86_MATMUL_AVX2_H
#define CLLM_KERNELS_X86_MATMUL_AVX2_H

#include "kernels/kernels_impl.h"

void kern_avx2_matmul_f32(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1);
void kern_avx2_matmul_f16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1);
void kern_avx2_matmul_bf16(float *y, const uint16_t *xb, const void *w, int m, int n, int k, int j0, int j1);
void kern_avx2_matmul_q8_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                           int j0, int j1);
void kern_avx2_matmul_q4_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                           int j0, int j1);

#endif

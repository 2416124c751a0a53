/* probe_avx2.h: the AVX2 roofline probes (see kern_peak_run and kern_read_sum in kernels.h;
 * kind is a kern_peak_t). Plain prototypes: call only when kern_level_supported() >=
 * KERN_LEVEL_AVX2. */
#ifndef CLLM_KERNELS_X86_PROBE_AVX2_H
#define CLLM_KERNELS_X86_PROBE_AVX2_H

#include <stddef.h>
#include <stdint.h>

double kern_avx2_peak_run(int kind, int64_t n_iter);
uint64_t kern_avx2_read_sum(const void *p, size_t n);

#endif

/* dtype.h: element types of tensors and KV caches, with GGML's numbering and block layouts.
 *
 * Quantized types store blocks of DTYPE_QK (32) elements:
 *   Q8_0: { f16 d; int8 qs[32]; }            x[i] = d * qs[i]
 *   Q4_0: { f16 d; uint8 qs[16]; }           x[i] = d * ((qs[i] & 15) - 8), x[i+16] = d * ((qs[i] >> 4) - 8)
 * Rows of a quantized tensor must hold a multiple of 32 elements.
 * The row conversions here are the scalar reference ("the spec"); they match ggml bit for bit. */
#ifndef CLLM_CORE_DTYPE_H
#define CLLM_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    DTYPE_F32 = 0,
    DTYPE_F16 = 1,
    DTYPE_Q4_0 = 2,
    DTYPE_Q8_0 = 8,
    DTYPE_BF16 = 30,
} dtype_t;

#define DTYPE_QK 32

typedef struct {
    uint16_t d;          /* f16 scale */
    int8_t qs[DTYPE_QK];
} block_q8_0_t;

typedef struct {
    uint16_t d;              /* f16 scale */
    uint8_t qs[DTYPE_QK / 2]; /* low nibbles: elements 0..15, high nibbles: 16..31 */
} block_q4_0_t;

_Static_assert(sizeof(block_q8_0_t) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(block_q4_0_t) == 18, "q4_0 block is 18 bytes");

/* 1 if t is one of the types above (a GGML type id we handle), else 0. */
int dtype_is_supported(uint32_t t);
/* "f32", "f16", "q4_0", "q8_0", "bf16"; for other GGML ids their GGML name or "unknown". */
const char *dtype_name(uint32_t t);
/* Parses a name as above; returns 0 and sets *out, or -1. */
int dtype_from_name(const char *name, dtype_t *out);
/* Elements per block (1 for float types, 32 for quantized) and bytes per block. */
size_t dtype_block_elems(dtype_t t);
size_t dtype_block_bytes(dtype_t t);
/* Bytes of a row of n elements (n must be a multiple of dtype_block_elems). */
size_t dtype_row_bytes(dtype_t t, size_t n);

/* Converts n elements of type t at src to f32 (dst: (n)). */
void dtype_to_f32_row(dtype_t t, const void *src, float *dst, size_t n);
/* Converts n f32 values to type t (quantizing for Q8_0/Q4_0; n a multiple of 32 for those). */
void dtype_from_f32_row(dtype_t t, const float *src, void *dst, size_t n);

/* IEEE half <-> float, round to nearest even (as F16C's vcvtps2ph with rounding mode 0). */
static inline float fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    float f;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t f32_to_fp16(float f)
{
    uint32_t x;
    uint32_t sign, mant;
    int32_t exp;
    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000;
    exp = (int32_t)((x >> 23) & 0xff);
    mant = x & 0x7fffff;
    if (exp == 0xff) /* inf or nan (keep a quiet nan) */
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
    exp = exp - 127 + 15;
    if (exp >= 31) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (exp <= 0) {                                   /* subnormal or zero */
        uint32_t m, shift, r, half;
        if (exp < -10) return (uint16_t)sign;
        m = mant | 0x800000;
        shift = (uint32_t)(14 - exp);
        r = m >> shift;
        half = 1u << (shift - 1);
        if ((m & ((1u << shift) - 1)) > half || ((m & ((1u << shift) - 1)) == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    {
        uint32_t r = ((uint32_t)exp << 10) | (mant >> 13);
        uint32_t rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++; /* may carry into exp: correct */
        return (uint16_t)(sign | r);
    }
}

/* bfloat16 <-> float; f32 -> bf16 rounds to nearest even and keeps NaN quiet (as ggml). */
static inline float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64);
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif

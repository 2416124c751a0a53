/* dtype.c: type names and sizes, and the scalar reference row conversions (see dtype.h). */
#include "core/dtype.h"

#include <math.h>

int dtype_is_supported(uint32_t t)
{
    return t == DTYPE_F32 || t == DTYPE_F16 || t == DTYPE_Q4_0 || t == DTYPE_Q8_0 || t == DTYPE_BF16;
}

const char *dtype_name(uint32_t t)
{
    /* GGML's names for the ids it defines, so an error can say which type a file has. */
    static const char *ggml_names[] = {
        "f32", "f16", "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", "q8_0", "q8_1",
        "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k", "iq2_xxs", "iq2_xs", "iq3_xxs",
        "iq1_s", "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64",
        "iq1_m", "bf16", "q4_0_4_4", "q4_0_4_8", "q4_0_8_8", "tq1_0", "tq2_0",
        "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8", "mxfp4",
    };
    if (t < sizeof(ggml_names) / sizeof(ggml_names[0])) return ggml_names[t];
    return "unknown";
}

int dtype_from_name(const char *name, dtype_t *out)
{
    static const struct { const char *name; dtype_t t; } names[] = {
        { "f32", DTYPE_F32 }, { "f16", DTYPE_F16 }, { "bf16", DTYPE_BF16 },
        { "q8_0", DTYPE_Q8_0 }, { "q4_0", DTYPE_Q4_0 },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(name, names[i].name)) {
            *out = names[i].t;
            return 0;
        }
    }
    return -1;
}

size_t dtype_block_elems(dtype_t t)
{
    return (t == DTYPE_Q8_0 || t == DTYPE_Q4_0) ? DTYPE_QK : 1;
}

size_t dtype_block_bytes(dtype_t t)
{
    switch (t) {
    case DTYPE_F32: return 4;
    case DTYPE_F16: return 2;
    case DTYPE_BF16: return 2;
    case DTYPE_Q8_0: return sizeof(block_q8_0_t);
    case DTYPE_Q4_0: return sizeof(block_q4_0_t);
    }
    return 0;
}

size_t dtype_row_bytes(dtype_t t, size_t n)
{
    return n / dtype_block_elems(t) * dtype_block_bytes(t);
}

void dtype_to_f32_row(dtype_t t, const void *src, float *dst, size_t n)
{
    size_t i, j;
    switch (t) {
    case DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case DTYPE_F16: {
        const uint16_t *s = src;
        for (i = 0; i < n; i++) dst[i] = fp16_to_f32(s[i]);
        break;
    }
    case DTYPE_BF16: {
        const uint16_t *s = src;
        for (i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
        break;
    }
    case DTYPE_Q8_0: {
        const block_q8_0_t *b = src;
        for (i = 0; i < n / DTYPE_QK; i++) {
            float d = fp16_to_f32(b[i].d);
            for (j = 0; j < DTYPE_QK; j++) dst[i * DTYPE_QK + j] = d * (float)b[i].qs[j];
        }
        break;
    }
    case DTYPE_Q4_0: {
        const block_q4_0_t *b = src;
        for (i = 0; i < n / DTYPE_QK; i++) {
            float d = fp16_to_f32(b[i].d);
            for (j = 0; j < DTYPE_QK / 2; j++) {
                dst[i * DTYPE_QK + j] = d * (float)((b[i].qs[j] & 15) - 8);
                dst[i * DTYPE_QK + j + DTYPE_QK / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    }
}

void dtype_from_f32_row(dtype_t t, const float *src, void *dst, size_t n)
{
    size_t i, j;
    switch (t) {
    case DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case DTYPE_F16: {
        uint16_t *d = dst;
        for (i = 0; i < n; i++) d[i] = f32_to_fp16(src[i]);
        break;
    }
    case DTYPE_BF16: {
        uint16_t *d = dst;
        for (i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
        break;
    }
    case DTYPE_Q8_0: {
        block_q8_0_t *b = dst;
        for (i = 0; i < n / DTYPE_QK; i++) {
            const float *x = src + i * DTYPE_QK;
            float amax = 0.0f, d, id;
            for (j = 0; j < DTYPE_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
            d = amax / 127.0f;
            id = d ? 1.0f / d : 0.0f;
            b[i].d = f32_to_fp16(d);
            for (j = 0; j < DTYPE_QK; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
        }
        break;
    }
    case DTYPE_Q4_0: {
        block_q4_0_t *b = dst;
        for (i = 0; i < n / DTYPE_QK; i++) {
            const float *x = src + i * DTYPE_QK;
            float amax = 0.0f, max = 0.0f, d, id;
            for (j = 0; j < DTYPE_QK; j++) {
                if (amax < fabsf(x[j])) {
                    amax = fabsf(x[j]);
                    max = x[j];
                }
            }
            d = max / -8.0f;
            id = d ? 1.0f / d : 0.0f;
            b[i].d = f32_to_fp16(d);
            for (j = 0; j < DTYPE_QK / 2; j++) {
                float x0 = x[j] * id + 8.5f, x1 = x[j + DTYPE_QK / 2] * id + 8.5f;
                uint8_t q0 = (uint8_t)(x0 < 15.0f ? (int)x0 : 15);
                uint8_t q1 = (uint8_t)(x1 < 15.0f ? (int)x1 : 15);
                b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
        break;
    }
    }
}

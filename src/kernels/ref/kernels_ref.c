/* kernels_ref.c: the scalar reference kernels (see kernels_ref.h) and the x quantizer shared by
 * every level.
 *
 * Owns: the definition of each kernel's math. Every output element is one sequential float
 * accumulation in input order (matmul: over k; quantized matmul: per block an exact int32 dot,
 * then sum += (float)isum * (d_w * d_x) over blocks in order; attention: online softmax over
 * positions in order). Arguments were validated by kernels.c. */
#include "kernels/ref/kernels_ref.h"

#include <math.h>
#include <string.h>

/* Elements of a weight row converted to f32 at a time (a stack buffer, no allocation). */
#define REF_CHUNK 256
/* Rotation angles computed at a time by rope. */
#define REF_ROPE_CHUNK 64

void kern_quantize_row_q8(int8_t *qs, float *d, const float *x, int k)
{
    for (int b = 0; b < k / DTYPE_QK; b++) {
        const float *xb = x + (size_t)b * DTYPE_QK;
        int8_t *qb = qs + (size_t)b * DTYPE_QK;
        float amax = 0.0f, scale, inv;
        int finite = 1;
        for (int t = 0; t < DTYPE_QK; t++) {
            float a = fabsf(xb[t]);
            if (!(a <= 3.402823466e38f)) finite = 0; /* inf or nan */
            else if (a > amax) amax = a;
        }
        if (!finite) {
            d[b] = NAN;
            for (int t = 0; t < DTYPE_QK; t++) qb[t] = 0;
            continue;
        }
        scale = amax / 127.0f;
        inv = scale != 0.0f ? 1.0f / scale : 0.0f;
        d[b] = scale;
        for (int t = 0; t < DTYPE_QK; t++) {
            float v = roundf(xb[t] * inv);
            /* |x| <= amax makes |v| <= 127; clamp anyway (inv overflows to inf for subnormal
             * amax: inf or 0 * inf = nan) so that the cast is always defined. */
            if (v > 127.0f) v = 127.0f;
            else if (v < -127.0f) v = -127.0f;
            else if (v != v) v = 0.0f;
            qb[t] = (int8_t)v;
        }
    }
}

void kern_round_row_bf16(uint16_t *xb, const float *x, int k)
{
    for (int i = 0; i < k; i++) xb[i] = f32_to_bf16(x[i]);
}

/* Byte of element e of block l inside an x16 group (see kernels_impl.h). */
static inline size_t x16_at(int l, int e)
{
    return (size_t)64 * (size_t)(e / 4) + (size_t)4 * (size_t)l + (size_t)(e % 4);
}

void kern_x16_pack_rows(void *wp, const void *w, dtype_t t, int k, int j0, int j1)
{
    int nb = k / DTYPE_QK, ng = kern_x16_groups(k);
    size_t gbytes = kern_x16_wgroup_bytes(t);
    for (int j = j0; j < j1; j++) {
        uint8_t *row = (uint8_t *)wp + (size_t)j * ng * gbytes; /* (ng groups) */
        for (int g = 0; g < ng; g++) {
            uint8_t *grp = row + (size_t)g * gbytes;
            uint16_t d[KERN_X16_GROUP];
            for (int l = 0; l < KERN_X16_GROUP; l++) {
                int b = g * KERN_X16_GROUP + l;
                /* 4 elements (bytes) at a time: q + 128 is q ^ 0x80 on each byte of an int8 */
                if (t == DTYPE_Q8_0) {
                    const block_q8_0_t *src = (const block_q8_0_t *)w + (size_t)j * nb + b;
                    d[l] = b < nb ? src->d : 0;
                    for (int u = 0; u < 8; u++) {
                        uint32_t v = 0;
                        if (b < nb) {
                            memcpy(&v, src->qs + 4 * u, 4);
                            v ^= 0x80808080u;
                        }
                        memcpy(grp + 32 + 64 * u + 4 * l, &v, 4);
                    }
                } else {
                    const block_q4_0_t *src = (const block_q4_0_t *)w + (size_t)j * nb + b;
                    d[l] = b < nb ? src->d : 0;
                    for (int p = 0; p < 4; p++) {
                        uint32_t v = 0x88888888u; /* padding: value 0 (never read: its scale and x are 0) */
                        if (b < nb) memcpy(&v, src->qs + 4 * p, 4);
                        memcpy(grp + 32 + 64 * p + 4 * l, &v, 4);
                    }
                }
            }
            memcpy(grp, d, sizeof(d));
        }
    }
}

void kern_x16_quantize_row(void *xp, const float *x, int k, dtype_t t)
{
    int nb = k / DTYPE_QK, ng = kern_x16_groups(k);
    int8_t qs[DTYPE_QK];
    float d;
    for (int g = 0; g < ng; g++) {
        uint8_t *grp = (uint8_t *)xp + (size_t)g * KERN_X16_XBYTES;
        float dg[KERN_X16_GROUP];
        int32_t corr[KERN_X16_GROUP];
        for (int l = 0; l < KERN_X16_GROUP; l++) {
            int b = g * KERN_X16_GROUP + l, sum = 0;
            if (b < nb) {
                kern_quantize_row_q8(qs, &d, x + (size_t)b * DTYPE_QK, DTYPE_QK);
            } else {
                memset(qs, 0, sizeof(qs));
                d = 0.0f;
            }
            for (int e = 0; e < DTYPE_QK; e++) {
                grp[x16_at(l, e)] = (uint8_t)qs[e];
                sum += qs[e];
            }
            dg[l] = d;
            corr[l] = (t == DTYPE_Q8_0 ? -128 : -8) * sum;
        }
        memcpy(grp + 512, dg, sizeof(dg));
        memcpy(grp + 576, corr, sizeof(corr));
    }
}

/* y[:, j] for float weight types: W row j converted REF_CHUNK elements at a time; each y
 * element keeps one sequential sum over k (stored in y between chunks, which is exact). */
static void ref_matmul_float(float *y, const float *x, const void *w, dtype_t wt, int m, int n, int k, int j0,
                             int j1)
{
    float wbuf[REF_CHUNK];
    size_t esz = dtype_block_bytes(wt);
    for (int j = j0; j < j1; j++) {
        const char *wrow = (const char *)w + (size_t)j * (size_t)k * esz;
        for (int i = 0; i < m; i++) y[(size_t)i * n + j] = 0.0f;
        for (int k0 = 0; k0 < k; k0 += REF_CHUNK) {
            int kn = k - k0 < REF_CHUNK ? k - k0 : REF_CHUNK;
            dtype_to_f32_row(wt, wrow + (size_t)k0 * esz, wbuf, (size_t)kn);
            for (int i = 0; i < m; i++) {
                const float *xr = x + (size_t)i * k + k0; /* (kn) */
                float s = y[(size_t)i * n + j];
                for (int t = 0; t < kn; t++) s += xr[t] * wbuf[t];
                y[(size_t)i * n + j] = s;
            }
        }
    }
}

void kern_ref_matmul_f32(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    ref_matmul_float(y, x, w, DTYPE_F32, m, n, k, j0, j1);
}

void kern_ref_matmul_f16(float *y, const float *x, const void *w, int m, int n, int k, int j0, int j1)
{
    ref_matmul_float(y, x, w, DTYPE_F16, m, n, k, j0, j1);
}

/* BF16 weights: x already rounded to bf16 (kern_round_row_bf16); each product of two bf16
 * values is exact in f32, summed sequentially over k. */
void kern_ref_matmul_bf16(float *y, const uint16_t *xb, const void *w, int m, int n, int k, int j0, int j1)
{
    for (int j = j0; j < j1; j++) {
        const uint16_t *wrow = (const uint16_t *)w + (size_t)j * k; /* (k) */
        for (int i = 0; i < m; i++) {
            const uint16_t *xr = xb + (size_t)i * k; /* (k) */
            float s = 0.0f;
            for (int t = 0; t < k; t++) s += bf16_to_f32(xr[t]) * bf16_to_f32(wrow[t]);
            y[(size_t)i * n + j] = s;
        }
    }
}

void kern_ref_matmul_q8_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                          int j0, int j1)
{
    int nb = k / DTYPE_QK;
    for (int j = j0; j < j1; j++) {
        const block_q8_0_t *wr = (const block_q8_0_t *)w + (size_t)j * nb; /* (nb) */
        for (int i = 0; i < m; i++) {
            const int8_t *xq = xqs + (size_t)i * k; /* (k) */
            const float *xs = xd + (size_t)i * nb;  /* (nb) */
            float s = 0.0f;
            for (int b = 0; b < nb; b++) {
                int isum = 0;
                for (int t = 0; t < DTYPE_QK; t++) isum += wr[b].qs[t] * xq[b * DTYPE_QK + t];
                s += (float)isum * (fp16_to_f32(wr[b].d) * xs[b]);
            }
            y[(size_t)i * n + j] = s;
        }
    }
}

void kern_ref_matmul_q4_0(float *y, const int8_t *xqs, const float *xd, const void *w, int m, int n, int k,
                          int j0, int j1)
{
    int nb = k / DTYPE_QK;
    for (int j = j0; j < j1; j++) {
        const block_q4_0_t *wr = (const block_q4_0_t *)w + (size_t)j * nb; /* (nb) */
        for (int i = 0; i < m; i++) {
            const int8_t *xq = xqs + (size_t)i * k; /* (k) */
            const float *xs = xd + (size_t)i * nb;  /* (nb) */
            float s = 0.0f;
            for (int b = 0; b < nb; b++) {
                const int8_t *xb = xq + b * DTYPE_QK;
                int isum = 0;
                for (int t = 0; t < DTYPE_QK / 2; t++) {
                    isum += ((wr[b].qs[t] & 15) - 8) * xb[t];
                    isum += ((wr[b].qs[t] >> 4) - 8) * xb[t + DTYPE_QK / 2];
                }
                s += (float)isum * (fp16_to_f32(wr[b].d) * xs[b]);
            }
            y[(size_t)i * n + j] = s;
        }
    }
}

/* x16 layout (weights from kern_x16_pack_rows, x from kern_x16_quantize_row): per block the
 * exact integer dot, then s += isum * (d_w * d_x) over blocks in order, as the unpacked kernels
 * (padding blocks add 0 * 0). */
static void ref_matmul_x16(float *y, const void *xp, const void *wp, dtype_t t, int m, int n, int k, int j0, int j1)
{
    int ng = kern_x16_groups(k);
    size_t gbytes = kern_x16_wgroup_bytes(t);
    for (int j = j0; j < j1; j++) {
        const uint8_t *wrow = (const uint8_t *)wp + (size_t)j * ng * gbytes; /* (ng groups) */
        for (int i = 0; i < m; i++) {
            const uint8_t *xrow = (const uint8_t *)xp + (size_t)i * ng * KERN_X16_XBYTES; /* (ng groups) */
            float s = 0.0f;
            for (int g = 0; g < ng; g++) {
                const uint8_t *wg = wrow + (size_t)g * gbytes, *xg = xrow + (size_t)g * KERN_X16_XBYTES;
                for (int l = 0; l < KERN_X16_GROUP; l++) {
                    uint16_t dw;
                    float dx;
                    int32_t isum;
                    memcpy(&dw, wg + 2 * l, 2);
                    memcpy(&dx, xg + 512 + 4 * l, 4);
                    memcpy(&isum, xg + 576 + 4 * l, 4);
                    for (int e = 0; e < DTYPE_QK; e++) {
                        int xq = (int8_t)xg[x16_at(l, e)], wq;
                        if (t == DTYPE_Q8_0) wq = wg[32 + x16_at(l, e)];
                        else wq = (wg[32 + 64 * ((e % 16) / 4) + 4 * l + e % 4] >> (e < 16 ? 0 : 4)) & 15;
                        isum += wq * xq;
                    }
                    s += (float)isum * (fp16_to_f32(dw) * dx);
                }
            }
            y[(size_t)i * n + j] = s;
        }
    }
}

void kern_ref_matmul_q8_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1)
{
    ref_matmul_x16(y, xp, wp, DTYPE_Q8_0, m, n, k, j0, j1);
}

void kern_ref_matmul_q4_0_x16(float *y, const void *xp, const void *wp, int m, int n, int k, int j0, int j1)
{
    ref_matmul_x16(y, xp, wp, DTYPE_Q4_0, m, n, k, j0, j1);
}

void kern_ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0.0;
    float scale;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

void kern_ref_silu_mul(float *out, const float *gate, const float *up, int n)
{
    for (int i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void kern_ref_add(float *out, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void kern_ref_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox)
{
    float c[REF_ROPE_CHUNK], s[REF_ROPE_CHUNK];
    int half = head_dim / 2;
    for (int i0 = 0; i0 < half; i0 += REF_ROPE_CHUNK) {
        int ni = half - i0 < REF_ROPE_CHUNK ? half - i0 : REF_ROPE_CHUNK;
        for (int i = 0; i < ni; i++) {
            float theta = (float)pos * inv_freq[i0 + i];
            c[i] = cosf(theta);
            s[i] = sinf(theta);
        }
        for (int h = 0; h < n_heads; h++) {
            float *xh = x + (size_t)h * head_dim; /* (head_dim) */
            for (int i = 0; i < ni; i++) {
                int a = neox ? i0 + i : 2 * (i0 + i);
                int b = neox ? i0 + i + half : 2 * (i0 + i) + 1;
                float x0 = xh[a], x1 = xh[b];
                xh[a] = x0 * c[i] - x1 * s[i];
                xh[b] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

static inline float kv_at(const void *pool, dtype_t t, size_t i)
{
    if (t == DTYPE_F32) return ((const float *)pool)[i];
    if (t == DTYPE_F16) return fp16_to_f32(((const uint16_t *)pool)[i]);
    return bf16_to_f32(((const uint16_t *)pool)[i]);
}

void kern_ref_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                        const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                        int head_dim, int h0, int h1, float scale)
{
    int group = n_head / n_head_kv;
    size_t head_stride = (size_t)block_size * head_dim;  /* elements per (block, kv head) */
    size_t block_stride = (size_t)n_head_kv * head_stride;
    for (int h = h0; h < h1; h++) {
        const float *qh = q + (size_t)h * head_dim; /* (head_dim) */
        float *o = out + (size_t)h * head_dim;      /* (head_dim), the running weighted sum of V */
        float mx = -INFINITY, l = 0.0f;
        int kvh = h / group;
        for (int d = 0; d < head_dim; d++) o[d] = 0.0f;
        for (int p = 0; p < n_ctx; p++) {
            size_t off = (size_t)block_table[p / block_size] * block_stride + (size_t)kvh * head_stride +
                         (size_t)(p % block_size) * head_dim;
            float s = 0.0f, mnew, corr, e;
            for (int d = 0; d < head_dim; d++) s += qh[d] * kv_at(k_pool, kv_type, off + (size_t)d);
            s *= scale;
            mnew = s > mx ? s : mx;
            corr = expf(mx - mnew);
            e = expf(s - mnew);
            l = l * corr + e;
            for (int d = 0; d < head_dim; d++) o[d] = o[d] * corr + e * kv_at(v_pool, kv_type, off + (size_t)d);
            mx = mnew;
        }
        if (n_ctx > 0)
            for (int d = 0; d < head_dim; d++) o[d] /= l;
    }
}

/* 8 independent scalar multiply-add chains (the compiler may vectorize them; it is a ceiling
 * for this level's code either way). */
static volatile float ref_probe_sink_f;
static volatile int32_t ref_probe_sink_i;

double kern_ref_peak_run(int kind, int64_t n_iter)
{
    if (kind == 0) {
        float a[8], m = 0.999999f, c = 1e-7f, s = 0.0f;
        for (int i = 0; i < 8; i++) a[i] = (float)i;
        for (int64_t it = 0; it < n_iter; it++)
            for (int i = 0; i < 8; i++) a[i] = a[i] * m + c;
        for (int i = 0; i < 8; i++) s += a[i];
        ref_probe_sink_f = s;
        return (double)n_iter * 8 * 2;
    }
    if (kind == 2) {
        int32_t a[8], s = 0;
        int8_t y = -5;
        for (int i = 0; i < 8; i++) a[i] = i;
        for (int64_t it = 0; it < n_iter; it++)
            for (int i = 0; i < 8; i++) a[i] += (int8_t)a[i] * y; /* a dependent chain: not folded */
        for (int i = 0; i < 8; i++) s += a[i];
        ref_probe_sink_i = s;
        return (double)n_iter * 8 * 2;
    }
    return 0.0;
}

uint64_t kern_ref_read_sum(const void *p, size_t n)
{
    const uint64_t *w = p; /* 64-byte aligned: words are aligned */
    uint64_t s[8] = { 0 };
    size_t nw = n / 8, i = 0;
    for (; i + 8 <= nw; i += 8)
        for (int u = 0; u < 8; u++) s[u] += w[i + (size_t)u];
    for (; i < nw; i++) s[0] += w[i];
    for (int u = 1; u < 8; u++) s[0] += s[u];
    return s[0];
}

const kern_vtable_t kern_vtable_ref = {
    .matmul_f32 = kern_ref_matmul_f32,
    .matmul_f16 = kern_ref_matmul_f16,
    .matmul_bf16 = kern_ref_matmul_bf16,
    .matmul_q8_0 = kern_ref_matmul_q8_0,
    .matmul_q4_0 = kern_ref_matmul_q4_0,
    .matmul_q8_0_x16 = NULL, /* weights stay unpacked at this level (tests call the x16 ones directly) */
    .matmul_q4_0_x16 = NULL,
    .quantize_row_q8 = kern_quantize_row_q8,
    .round_row_bf16 = kern_round_row_bf16,
    .x16_quantize_row = kern_x16_quantize_row,
    .rmsnorm = kern_ref_rmsnorm,
    .silu_mul = kern_ref_silu_mul,
    .add = kern_ref_add,
    .rope = kern_ref_rope,
    .attention = kern_ref_attention,
};

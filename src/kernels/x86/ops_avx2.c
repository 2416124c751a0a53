/* ops_avx2.c: AVX2 rmsnorm, silu_mul, add, rope and paged attention.
 *
 * Owns: the 8-lane versions of the element-wise kernels and of attention, with the same
 * structure as ops_avx512.c (see there): sums in 8 lanes in input order then hsum256_ps, exp
 * by exp256_ps, rope without fused multiply-adds (bitwise equal to the reference), attention in
 * chunks of ATT_CHUNK positions counted from 0, so a head's result depends only on q, the K/V
 * values and n_ctx. Partial vectors are masked (maskload/maskstore) or zero padded. */
#include "kernels/x86/ops_avx2.h"

#include <math.h>
#include <string.h>

#include "kernels/ref/kernels_ref.h"
#include "kernels/x86/simd_avx2.h"

#define ATT_CHUNK 8       /* key positions per online-softmax step (one score vector) */
#define ATT_MAX_DIM 256   /* larger head_dim: the reference kernel */
#define ATT_MAX_GROUP 8   /* query heads processed together per KV head */
#define ROPE_MAX_DIM 1024 /* larger head_dim: the reference kernel */

void kern_avx2_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    __m256 acc = _mm256_setzero_ps(), vs;
    float scale;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    if (i < n) {
        __m256 v = _mm256_maskload_ps(x + i, lane_mask256(n - i));
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    scale = 1.0f / sqrtf(hsum256_ps(acc) / (float)n + eps);
    vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
    if (i < n) {
        __m256i mk = lane_mask256(n - i);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, mk), vs);
        _mm256_maskstore_ps(out + i, mk, _mm256_mul_ps(v, _mm256_maskload_ps(w + i, mk)));
    }
}

KERN_AI __m256 silu_mul8(__m256 g, __m256 u)
{
    __m256 e = exp256_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void kern_avx2_silu_mul(float *out, const float *gate, const float *up, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        __m256i mk = lane_mask256(n - i);
        _mm256_maskstore_ps(out + i, mk, silu_mul8(_mm256_maskload_ps(gate + i, mk), _mm256_maskload_ps(up + i, mk)));
    }
}

void kern_avx2_add(float *out, const float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    if (i < n) {
        __m256i mk = lane_mask256(n - i);
        _mm256_maskstore_ps(out + i, mk, _mm256_add_ps(_mm256_maskload_ps(a + i, mk), _mm256_maskload_ps(b + i, mk)));
    }
}

void kern_avx2_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox)
{
    /* As in ops_avx512.c: neox keeps c, s per frequency; normal duplicates c and signs s. */
    _Alignas(32) float c[ROPE_MAX_DIM], s[ROPE_MAX_DIM];
    int half = head_dim / 2;
    if (head_dim > ROPE_MAX_DIM) {
        kern_ref_rope(x, n_heads, head_dim, pos, inv_freq, neox);
        return;
    }
    for (int i = 0; i < half; i++) {
        float theta = (float)pos * inv_freq[i], ci = cosf(theta), si = sinf(theta);
        if (neox) {
            c[i] = ci;
            s[i] = si;
        } else {
            c[2 * i] = c[2 * i + 1] = ci;
            s[2 * i] = -si;
            s[2 * i + 1] = si;
        }
    }
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * head_dim; /* (head_dim) */
        if (neox) {
            for (int i = 0; i < half; i += 8) {
                __m256i mk = lane_mask256(half - i >= 8 ? 8 : half - i);
                __m256 a = _mm256_maskload_ps(xh + i, mk), b = _mm256_maskload_ps(xh + half + i, mk);
                __m256 cv = _mm256_maskload_ps(c + i, mk), sv = _mm256_maskload_ps(s + i, mk);
                _mm256_maskstore_ps(xh + i, mk, _mm256_sub_ps(_mm256_mul_ps(a, cv), _mm256_mul_ps(b, sv)));
                _mm256_maskstore_ps(xh + half + i, mk, _mm256_add_ps(_mm256_mul_ps(a, sv), _mm256_mul_ps(b, cv)));
            }
        } else {
            for (int i = 0; i < head_dim; i += 8) {
                __m256i mk = lane_mask256(head_dim - i >= 8 ? 8 : head_dim - i);
                __m256 v = _mm256_maskload_ps(xh + i, mk);
                __m256 sw = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)); /* (x1, x0) per pair */
                __m256 r = _mm256_add_ps(_mm256_mul_ps(v, _mm256_maskload_ps(c + i, mk)),
                                         _mm256_mul_ps(sw, _mm256_maskload_ps(s + i, mk)));
                _mm256_maskstore_ps(xh + i, mk, r);
            }
        }
    }
}

/* 8 bf16 values to f32 (exact: the bits move to the upper half). */
KERN_AI __m256 bf16x8_to_f32(__m128i h)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* n elements of a K or V row of type t at src, to f32 at dst (hdp elements, zero padded). */
KERN_AI void kv_row_to_f32(float *dst, const void *src, dtype_t t, int n, int hdp)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v;
        if (t == DTYPE_F32) {
            v = _mm256_loadu_ps((const float *)src + i);
        } else {
            __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)src + i));
            v = t == DTYPE_F16 ? _mm256_cvtph_ps(h) : bf16x8_to_f32(h);
        }
        _mm256_store_ps(dst + i, v);
    }
    if (i < n) {
        uint16_t buf[8] = { 0 };
        __m256 v;
        if (t == DTYPE_F32) {
            v = _mm256_maskload_ps((const float *)src + i, lane_mask256(n - i));
        } else {
            __m128i h;
            memcpy(buf, (const uint16_t *)src + i, (size_t)(n - i) * sizeof(uint16_t));
            h = _mm_loadu_si128((const __m128i *)buf);
            v = t == DTYPE_F16 ? _mm256_cvtph_ps(h) : bf16x8_to_f32(h);
        }
        _mm256_store_ps(dst + i, v);
        i += 8;
    }
    for (; i < hdp; i += 8) _mm256_store_ps(dst + i, _mm256_setzero_ps());
}

/* The largest of the 8 lanes (exact: max does not round). */
KERN_AI float hmax256_ps(__m256 v)
{
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

void kern_avx2_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                         const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                         int head_dim, int h0, int h1, float scale)
{
    _Alignas(32) float kbuf[ATT_CHUNK * ATT_MAX_DIM];    /* (ATT_CHUNK, hdp) this chunk's keys */
    _Alignas(32) float vbuf[ATT_CHUNK * ATT_MAX_DIM];    /* (ATT_CHUNK, hdp) this chunk's values */
    _Alignas(32) float qbuf[ATT_MAX_GROUP * ATT_MAX_DIM]; /* (ng, hdp) the group's queries */
    _Alignas(32) float acc[ATT_MAX_GROUP * ATT_MAX_DIM];  /* (ng, hdp) running sums of p * V */
    float mx[ATT_MAX_GROUP], l[ATT_MAX_GROUP];
    int group = n_head / n_head_kv, hdp = (head_dim + 7) / 8 * 8, nv = hdp / 8;
    size_t head_stride = (size_t)block_size * head_dim, block_stride = (size_t)n_head_kv * head_stride;
    size_t esz = kv_type == DTYPE_F32 ? 4 : 2;
    if (head_dim > ATT_MAX_DIM) {
        kern_ref_attention(out, q, k_pool, v_pool, kv_type, block_table, n_ctx, block_size, n_head, n_head_kv,
                           head_dim, h0, h1, scale);
        return;
    }
    for (int h = h0; h < h1;) {
        int kvh = h / group, he = (kvh + 1) * group, ng;
        if (he > h1) he = h1;
        if (he > h + ATT_MAX_GROUP) he = h + ATT_MAX_GROUP;
        ng = he - h;
        for (int g = 0; g < ng; g++) {
            kv_row_to_f32(qbuf + (size_t)g * hdp, q + (size_t)(h + g) * head_dim, DTYPE_F32, head_dim, hdp);
            for (int i = 0; i < hdp; i += 8) _mm256_store_ps(acc + (size_t)g * hdp + i, _mm256_setzero_ps());
            mx[g] = -INFINITY;
            l[g] = 0.0f;
        }
        for (int p0 = 0; p0 < n_ctx; p0 += ATT_CHUNK) {
            int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
            for (int j = 0; j < np; j++) {
                int p = p0 + j;
                size_t off = ((size_t)block_table[p / block_size] * block_stride + (size_t)kvh * head_stride +
                              (size_t)(p % block_size) * head_dim) * esz;
                kv_row_to_f32(kbuf + (size_t)j * hdp, (const char *)k_pool + off, kv_type, head_dim, hdp);
                kv_row_to_f32(vbuf + (size_t)j * hdp, (const char *)v_pool + off, kv_type, head_dim, hdp);
            }
            for (int g = 0; g < ng; g++) {
                _Alignas(32) float sc[ATT_CHUNK], pj[ATT_CHUNK];
                const float *qg = qbuf + (size_t)g * hdp;
                float *ag = acc + (size_t)g * hdp;
                float mc, mnew, corr;
                __m256 sv, pv, cv;
                for (int j = 0; j < ATT_CHUNK; j++) sc[j] = -INFINITY;
                for (int j = 0; j < np; j++) {
                    const float *kj = kbuf + (size_t)j * hdp; /* (hdp) */
                    __m256 d = _mm256_setzero_ps();
                    for (int v = 0; v < nv; v++)
                        d = _mm256_fmadd_ps(_mm256_load_ps(qg + v * 8), _mm256_load_ps(kj + v * 8), d);
                    sc[j] = hsum256_ps(d) * scale;
                }
                sv = _mm256_load_ps(sc);
                mc = hmax256_ps(sv);
                mnew = mc > mx[g] ? mc : mx[g];
                corr = expf(mx[g] - mnew);
                pv = exp256_ps(_mm256_sub_ps(sv, _mm256_set1_ps(mnew))); /* 0 in lanes >= np */
                l[g] = l[g] * corr + hsum256_ps(pv);
                _mm256_store_ps(pj, pv);
                cv = _mm256_set1_ps(corr);
                for (int v = 0; v < nv; v++) {
                    __m256 a = _mm256_mul_ps(_mm256_load_ps(ag + v * 8), cv);
                    for (int j = 0; j < np; j++)
                        a = _mm256_fmadd_ps(_mm256_set1_ps(pj[j]), _mm256_load_ps(vbuf + (size_t)j * hdp + v * 8), a);
                    _mm256_store_ps(ag + v * 8, a);
                }
                mx[g] = mnew;
            }
        }
        for (int g = 0; g < ng; g++) {
            float *o = out + (size_t)(h + g) * head_dim; /* (head_dim) */
            __m256 lv = _mm256_set1_ps(n_ctx > 0 ? l[g] : 1.0f);
            for (int i = 0; i < hdp; i += 8) {
                __m256i mk = lane_mask256(head_dim - i >= 8 ? 8 : head_dim - i);
                _mm256_maskstore_ps(o + i, mk, _mm256_div_ps(_mm256_load_ps(acc + (size_t)g * hdp + i), lv));
            }
        }
        h = he;
    }
}

/* ops_avx512.c: AVX-512 rmsnorm, silu_mul, add, rope and paged attention.
 *
 * Owns: the vector versions of the element-wise kernels and of attention. Each computes the
 * same formula as the reference (kernels_ref.c); sums use 16 lanes in input order and the fixed
 * hsum512_ps tree, exp uses exp512_ps (about 2 ulp), so results match the reference within
 * rounding. add is exact; rope does the reference's multiplications and additions one by one
 * (no fused multiply-add), so it matches the reference bitwise.
 * Attention walks positions in chunks of ATT_CHUNK counted from position 0 (online softmax per
 * chunk), converting each chunk's K and V rows to f32 once for all the query heads of a KV
 * head; a head's result depends only on q, the K/V values and n_ctx, never on the block size,
 * the block ids or which other heads share the call. */
#include "kernels/x86/ops_avx512.h"

#include <math.h>

#include "kernels/ref/kernels_ref.h"
#include "kernels/x86/simd_avx512.h"

#define ATT_CHUNK 16     /* key positions per online-softmax step (one score vector) */
#define ATT_MAX_DIM 256  /* larger head_dim: the reference kernel */
#define ATT_MAX_GROUP 8  /* query heads processed together per KV head */
#define ROPE_MAX_DIM 1024 /* larger head_dim: the reference kernel */

KERN_AI __mmask16 tail_mask(int n)
{
    return (__mmask16)((1u << n) - 1);
}

void kern_avx512_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    __m512 acc = _mm512_setzero_ps(), vs;
    float scale;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    if (i < n) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    scale = 1.0f / sqrtf(hsum512_ps(acc) / (float)n + eps);
    vs = _mm512_set1_ps(scale);
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(w + i)));
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, mk,
                              _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), vs),
                                            _mm512_maskz_loadu_ps(mk, w + i)));
    }
}

KERN_AI __m512 silu_mul16(__m512 g, __m512 u)
{
    __m512 e = exp512_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

void kern_avx512_silu_mul(float *out, const float *gate, const float *up, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, mk,
                              silu_mul16(_mm512_maskz_loadu_ps(mk, gate + i), _mm512_maskz_loadu_ps(mk, up + i)));
    }
}

void kern_avx512_add(float *out, const float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        __m512 va = _mm512_maskz_loadu_ps(mk, a + i), vb = _mm512_maskz_loadu_ps(mk, b + i);
        _mm512_mask_storeu_ps(out + i, mk, _mm512_add_ps(va, vb));
    }
}

void kern_avx512_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox)
{
    /* neox: c, s per frequency i; normal: per element, c duplicated and s signed (-s, +s) so
     * that a vector of interleaved pairs rotates as x * c + swap(x) * s. */
    _Alignas(64) float c[ROPE_MAX_DIM], s[ROPE_MAX_DIM];
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
            for (int i = 0; i < half; i += 16) {
                __mmask16 mk = half - i >= 16 ? (__mmask16)0xffff : tail_mask(half - i);
                __m512 a = _mm512_maskz_loadu_ps(mk, xh + i), b = _mm512_maskz_loadu_ps(mk, xh + half + i);
                __m512 cv = _mm512_maskz_loadu_ps(mk, c + i), sv = _mm512_maskz_loadu_ps(mk, s + i);
                __m512 na = _mm512_sub_ps(_mm512_mul_ps(a, cv), _mm512_mul_ps(b, sv));
                __m512 nb = _mm512_add_ps(_mm512_mul_ps(a, sv), _mm512_mul_ps(b, cv));
                _mm512_mask_storeu_ps(xh + i, mk, na);
                _mm512_mask_storeu_ps(xh + half + i, mk, nb);
            }
        } else {
            for (int i = 0; i < head_dim; i += 16) {
                __mmask16 mk = head_dim - i >= 16 ? (__mmask16)0xffff : tail_mask(head_dim - i);
                __m512 v = _mm512_maskz_loadu_ps(mk, xh + i);
                __m512 sw = _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)); /* (x1, x0) per pair */
                __m512 r = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(mk, c + i)),
                                         _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(mk, s + i)));
                _mm512_mask_storeu_ps(xh + i, mk, r);
            }
        }
    }
}

/* n elements of a K or V row of type t at src, to f32 at dst (hdp elements, zero padded). */
KERN_AI void kv_row_to_f32(float *dst, const void *src, dtype_t t, int n, int hdp)
{
    for (int i = 0; i < hdp; i += 16) {
        __mmask16 mk = n - i >= 16 ? (__mmask16)0xffff : (n > i ? tail_mask(n - i) : 0);
        __m512 v;
        if (t == DTYPE_F32) {
            v = _mm512_maskz_loadu_ps(mk, (const float *)src + i);
        } else {
            __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)src + i);
            v = t == DTYPE_F16 ? _mm512_cvtph_ps(h)
                               : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        }
        _mm512_store_ps(dst + i, v);
    }
}

void kern_avx512_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                           const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                           int head_dim, int h0, int h1, float scale)
{
    _Alignas(64) float kbuf[ATT_CHUNK * ATT_MAX_DIM];    /* (ATT_CHUNK, hdp) this chunk's keys */
    _Alignas(64) float vbuf[ATT_CHUNK * ATT_MAX_DIM];    /* (ATT_CHUNK, hdp) this chunk's values */
    _Alignas(64) float qbuf[ATT_MAX_GROUP * ATT_MAX_DIM]; /* (ng, hdp) the group's queries */
    _Alignas(64) float acc[ATT_MAX_GROUP * ATT_MAX_DIM];  /* (ng, hdp) running sums of p * V */
    float mx[ATT_MAX_GROUP], l[ATT_MAX_GROUP];
    int group = n_head / n_head_kv, hdp = (head_dim + 15) / 16 * 16, nv = hdp / 16;
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
            for (int i = 0; i < hdp; i += 16) _mm512_store_ps(acc + (size_t)g * hdp + i, _mm512_setzero_ps());
            mx[g] = -INFINITY;
            l[g] = 0.0f;
        }
        for (int p0 = 0; p0 < n_ctx; p0 += ATT_CHUNK) {
            int np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
            __mmask16 pm = tail_mask(np);
            for (int j = 0; j < np; j++) {
                int p = p0 + j;
                size_t off = ((size_t)block_table[p / block_size] * block_stride + (size_t)kvh * head_stride +
                              (size_t)(p % block_size) * head_dim) * esz;
                kv_row_to_f32(kbuf + (size_t)j * hdp, (const char *)k_pool + off, kv_type, head_dim, hdp);
                kv_row_to_f32(vbuf + (size_t)j * hdp, (const char *)v_pool + off, kv_type, head_dim, hdp);
            }
            for (int g = 0; g < ng; g++) {
                _Alignas(64) float sc[ATT_CHUNK], pj[ATT_CHUNK];
                const float *qg = qbuf + (size_t)g * hdp;
                float *ag = acc + (size_t)g * hdp;
                float mc, mnew, corr;
                __m512 sv, pv, cv;
                for (int j = 0; j < np; j++) {
                    const float *kj = kbuf + (size_t)j * hdp; /* (hdp) */
                    __m512 d = _mm512_setzero_ps();
                    for (int v = 0; v < nv; v++)
                        d = _mm512_fmadd_ps(_mm512_load_ps(qg + v * 16), _mm512_load_ps(kj + v * 16), d);
                    sc[j] = hsum512_ps(d) * scale;
                }
                sv = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), pm, sc);
                mc = _mm512_reduce_max_ps(sv);
                mnew = mc > mx[g] ? mc : mx[g];
                corr = expf(mx[g] - mnew);
                pv = exp512_ps(_mm512_sub_ps(sv, _mm512_set1_ps(mnew))); /* 0 in lanes >= np */
                l[g] = l[g] * corr + hsum512_ps(pv);
                _mm512_store_ps(pj, pv);
                cv = _mm512_set1_ps(corr);
                for (int v = 0; v < nv; v++) {
                    __m512 a = _mm512_mul_ps(_mm512_load_ps(ag + v * 16), cv);
                    for (int j = 0; j < np; j++)
                        a = _mm512_fmadd_ps(_mm512_set1_ps(pj[j]), _mm512_load_ps(vbuf + (size_t)j * hdp + v * 16), a);
                    _mm512_store_ps(ag + v * 16, a);
                }
                mx[g] = mnew;
            }
        }
        for (int g = 0; g < ng; g++) {
            float *o = out + (size_t)(h + g) * head_dim; /* (head_dim) */
            __m512 lv = _mm512_set1_ps(n_ctx > 0 ? l[g] : 1.0f);
            for (int i = 0; i < hdp; i += 16) {
                __mmask16 mk = head_dim - i >= 16 ? (__mmask16)0xffff : tail_mask(head_dim - i);
                _mm512_mask_storeu_ps(o + i, mk, _mm512_div_ps(_mm512_load_ps(acc + (size_t)g * hdp + i), lv));
            }
        }
        h = he;
    }
}

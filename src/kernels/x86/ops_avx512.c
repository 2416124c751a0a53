/* ops_avx512.c: AVX-512 rmsnorm, silu_mul, add, rope and paged attention.
 *
 * Owns: the vector versions of the element-wise kernels and of attention. Each computes the
 * same formula as the reference (kernels_ref.c); sums use 16 lanes in input order and the fixed
 * hsum512_ps tree, exp uses exp512_ps (about 2 ulp), so results match the reference within
 * rounding. add is exact; rope does the reference's multiplications and additions one by one
 * (no fused multiply-add), so it matches the reference bitwise.
 * Attention walks positions in chunks of ATT_CHUNK counted from position 0 (online softmax per
 * chunk), converting each chunk's K and V rows to f32 once for all the query heads
 * of a KV head and, through kern_avx512_attention_rows, for a block of queries of one sequence;
 * a (query, head)'s result depends only on q, the K/V values and its n_ctx, never on the block
 * size, the block ids or which other heads and queries share the call (see attention_block). */
#include "kernels/x86/ops_avx512.h"

#include <math.h>

#include "kernels/ref/kernels_ref.h"
#include "kernels/x86/simd_avx512.h"

#define ATT_CHUNK 16     /* key positions per online-softmax step (one score vector) */
#define ATT_MAX_DIM 256  /* larger head_dim: the reference kernel */
#define ATT_MAX_GROUP 8  /* query heads processed together per KV head */
#define ATT_MAX_PAIRS 32 /* (query, head) pairs whose running sums a block keeps */

#if defined(__clang__)
#define ATT_UNROLL16 _Pragma("clang loop unroll(full)")
#else
#define ATT_UNROLL16 _Pragma("GCC unroll 16")
#endif
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

/* out[j] = the sum of the 16 lanes of p[j], for j < 16, by a fixed tree: lanes paired within
 * 128-bit quarters (unpack lo/hi of floats, then of pairs), then quarters paired across (two
 * shuffles of 128-bit lanes). Each score's rounding depends only on its own p[j]. */
KERN_AI __m512 hsum16x16(const __m512 p[16])
{
    __m512 t[8], u[4], x0, x1;
    ATT_UNROLL16
    for (int i = 0; i < 8; i++)
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(p[2 * i], p[2 * i + 1]), _mm512_unpackhi_ps(p[2 * i], p[2 * i + 1]));
    ATT_UNROLL16
    for (int i = 0; i < 4; i++) {
        __m512d c = _mm512_castps_pd(t[2 * i]), d = _mm512_castps_pd(t[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(c, d)), _mm512_castpd_ps(_mm512_unpackhi_pd(c, d)));
    }
    /* u[i], quarter q: the quarter-q partial sums of keys 4i .. 4i + 3 */
    x0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xdd));
    x1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, 0x88), _mm512_shuffle_f32x4(x0, x1, 0xdd));
}

/* acc[v * 16 ..] = acc * corr + sum over j < np of p[j] * vbuf row j, for the NV vectors of
 * one (query, head): j outer, so the NV chains (each in j order) run side by side. */
KERN_AI void pv_accumulate(float *acc, const float *vbuf, const float *p, int np, __m512 corr, int hdp, const int NV)
{
    __m512 a[4];
    ATT_UNROLL16
    for (int v = 0; v < NV; v++) a[v] = _mm512_mul_ps(_mm512_load_ps(acc + v * 16), corr);
    for (int j = 0; j < np; j++) {
        __m512 pj = _mm512_set1_ps(p[j]);
        ATT_UNROLL16
        for (int v = 0; v < NV; v++) a[v] = _mm512_fmadd_ps(pj, _mm512_load_ps(vbuf + (size_t)j * hdp + v * 16), a[v]);
    }
    ATT_UNROLL16
    for (int v = 0; v < NV; v++) _mm512_store_ps(acc + v * 16, a[v]);
}

/* Attention of n_q queries of one sequence, query i over keys [0, n_ctx0 + i), heads [h0, h1);
 * q and out rows (n_head, head_dim) with stride ld floats; n_ctx0 >= 1, head_dim <= ATT_MAX_DIM.
 * Per KV head and block of queries, each chunk of ATT_CHUNK positions (counted from 0) is
 * converted once (K and V rows to f32). Then for every (query, head) that reaches the chunk:
 * for each key j a 16-lane vector of partial products (lane l: q[l] k_j[l] + q[16 + l]
 * k_j[16 + l] + ..., in d order, FMA), the 16 vectors summed into one vector of 16 scores by
 * hsum16x16, times scale, lanes past the query's position set to -inf; the online-softmax step;
 * the weighted V rows added in position order. That sequence is the same whatever other
 * queries and heads share the block. */
static void attention_block(float *out, const float *q, size_t ld, int n_q, int n_ctx0, const void *k_pool,
                            const void *v_pool, dtype_t kv_type, const int32_t *block_table, int block_size,
                            int n_head, int n_head_kv, int head_dim, int h0, int h1, float scale)
{
    _Alignas(64) float vbuf[ATT_CHUNK * ATT_MAX_DIM];      /* (ATT_CHUNK, hdp) this chunk's values */
    _Alignas(64) float krow[ATT_CHUNK * ATT_MAX_DIM];      /* (ATT_CHUNK, hdp) this chunk's keys, rows */
    _Alignas(64) float acc[ATT_MAX_PAIRS * ATT_MAX_DIM];   /* (pairs, hdp) running sums of p * V */
    _Alignas(64) float sc[ATT_MAX_PAIRS * ATT_CHUNK];      /* (pairs, ATT_CHUNK) this chunk's raw scores */
    float mx[ATT_MAX_PAIRS], l[ATT_MAX_PAIRS];
    int group = n_head / n_head_kv, hdp = (head_dim + 15) / 16 * 16, nv = hdp / 16;
    size_t head_stride = (size_t)block_size * head_dim, block_stride = (size_t)n_head_kv * head_stride;
    size_t esz = kv_type == DTYPE_F32 ? 4 : 2;
    const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    for (int h = h0; h < h1;) {
        int kvh = h / group, he = (kvh + 1) * group, ng, qb;
        if (he > h1) he = h1;
        if (he > h + ATT_MAX_GROUP) he = h + ATT_MAX_GROUP;
        ng = he - h;
        qb = ATT_MAX_PAIRS / ng; /* queries per block */
        for (int i0 = 0; i0 < n_q; i0 += qb) {
            int nqb = n_q - i0 < qb ? n_q - i0 : qb, max_ctx = n_ctx0 + i0 + nqb - 1;
            for (int s = 0; s < nqb * ng; s++) {
                for (int i = 0; i < hdp; i += 16) _mm512_store_ps(acc + (size_t)s * hdp + i, _mm512_setzero_ps());
                mx[s] = -INFINITY;
                l[s] = 0.0f;
            }
            for (int p0 = 0; p0 < max_ctx; p0 += ATT_CHUNK) {
                int npc = max_ctx - p0 < ATT_CHUNK ? max_ctx - p0 : ATT_CHUNK;
                for (int j = 0; j < ATT_CHUNK; j++) {
                    if (j < npc) {
                        int p = p0 + j;
                        size_t off = ((size_t)block_table[p / block_size] * block_stride + (size_t)kvh * head_stride +
                                      (size_t)(p % block_size) * head_dim) * esz;
                        kv_row_to_f32(krow + (size_t)j * hdp, (const char *)k_pool + off, kv_type, head_dim, hdp);
                        kv_row_to_f32(vbuf + (size_t)j * hdp, (const char *)v_pool + off, kv_type, head_dim, hdp);
                    } else {
                        for (int i = 0; i < hdp; i += 16) _mm512_store_ps(krow + (size_t)j * hdp + i, _mm512_setzero_ps());
                    }
                }
                /* scores of the (query, head) pairs that reach this chunk */
                {
                    int first = 0;
                    while (first < nqb && n_ctx0 + i0 + first <= p0) first++; /* queries before the chunk */
                    for (int st = first * ng; st < nqb * ng; st++) {
                        const float *qg = q + (size_t)(i0 + st / ng) * ld + (size_t)(h + st % ng) * head_dim;
                        __m512 part[ATT_CHUNK], qv;
                        /* v outer, keys inner: 16 independent chains (each key's own is in v order) */
                        qv = _mm512_maskz_loadu_ps(head_dim >= 16 ? (__mmask16)0xffff : tail_mask(head_dim), qg);
                        ATT_UNROLL16
                        for (int j = 0; j < ATT_CHUNK; j++) part[j] = _mm512_mul_ps(qv, _mm512_load_ps(krow + (size_t)j * hdp));
                        for (int v = 1; v < nv; v++) {
                            __mmask16 mk = head_dim - v * 16 >= 16 ? (__mmask16)0xffff : tail_mask(head_dim - v * 16);
                            qv = _mm512_maskz_loadu_ps(mk, qg + v * 16);
                            ATT_UNROLL16
                            for (int j = 0; j < ATT_CHUNK; j++)
                                part[j] = _mm512_fmadd_ps(qv, _mm512_load_ps(krow + (size_t)j * hdp + v * 16), part[j]);
                        }
                        _mm512_store_ps(sc + (size_t)st * ATT_CHUNK, hsum16x16(part));
                    }
                }
                for (int i = 0; i < nqb; i++) {
                    int n_ctx = n_ctx0 + i0 + i, np;
                    __mmask16 pm;
                    if (n_ctx <= p0) continue;
                    np = n_ctx - p0 < ATT_CHUNK ? n_ctx - p0 : ATT_CHUNK;
                    pm = tail_mask(np);
                    for (int g = 0; g < ng; g++) {
                        int st = i * ng + g;
                        float *ag = acc + (size_t)st * hdp;
                        _Alignas(64) float pj[ATT_CHUNK];
                        __m512 sv = _mm512_load_ps(sc + (size_t)st * ATT_CHUNK), pv, cv;
                        float mc, mnew, corr;
                        sv = _mm512_mask_mov_ps(ninf, pm, _mm512_mul_ps(sv, vscale));
                        mc = _mm512_reduce_max_ps(sv);
                        mnew = mc > mx[st] ? mc : mx[st];
                        corr = expf(mx[st] - mnew);
                        pv = exp512_ps(_mm512_sub_ps(sv, _mm512_set1_ps(mnew))); /* 0 in lanes >= np */
                        l[st] = l[st] * corr + hsum512_ps(pv);
                        _mm512_store_ps(pj, pv);
                        cv = _mm512_set1_ps(corr);
                        if (nv == 4) /* head_dim 49..64 (Llama 3.2 1B/3B: 64): accumulators in registers */
                            pv_accumulate(ag, vbuf, pj, np, cv, hdp, 4);
                        else {
                            int v = 0;
                            for (; v + 2 <= nv; v += 2) pv_accumulate(ag + v * 16, vbuf + v * 16, pj, np, cv, hdp, 2);
                            if (v < nv) pv_accumulate(ag + v * 16, vbuf + v * 16, pj, np, cv, hdp, 1);
                        }
                        mx[st] = mnew;
                    }
                }
            }
            for (int i = 0; i < nqb; i++)
                for (int g = 0; g < ng; g++) {
                    float *o = out + (size_t)(i0 + i) * ld + (size_t)(h + g) * head_dim; /* (head_dim) */
                    const float *ag = acc + (size_t)(i * ng + g) * hdp;
                    __m512 lv = _mm512_set1_ps(l[i * ng + g]);
                    for (int d = 0; d < hdp; d += 16) {
                        __mmask16 mk = head_dim - d >= 16 ? (__mmask16)0xffff : tail_mask(head_dim - d);
                        _mm512_mask_storeu_ps(o + d, mk, _mm512_div_ps(_mm512_load_ps(ag + d), lv));
                    }
                }
        }
        h = he;
    }
}

void kern_avx512_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                           const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                           int head_dim, int h0, int h1, float scale)
{
    if (head_dim > ATT_MAX_DIM) {
        kern_ref_attention(out, q, k_pool, v_pool, kv_type, block_table, n_ctx, block_size, n_head, n_head_kv,
                           head_dim, h0, h1, scale);
        return;
    }
    if (n_ctx == 0) { /* no keys: zeros, as the reference */
        for (int h = h0; h < h1; h++)
            for (int d = 0; d < head_dim; d++) out[(size_t)h * head_dim + d] = 0.0f;
        return;
    }
    attention_block(out, q, 0, 1, n_ctx, k_pool, v_pool, kv_type, block_table, block_size, n_head, n_head_kv,
                    head_dim, h0, h1, scale);
}

void kern_avx512_attention_rows(float *out, const float *q, int ld, int n_q, int pos0, const void *k_pool,
                                const void *v_pool, dtype_t kv_type, const int32_t *block_table, int block_size,
                                int n_head, int n_head_kv, int head_dim, int h0, int h1, float scale)
{
    if (head_dim > ATT_MAX_DIM) {
        for (int i = 0; i < n_q; i++)
            kern_ref_attention(out + (size_t)i * ld, q + (size_t)i * ld, k_pool, v_pool, kv_type, block_table,
                               pos0 + i + 1, block_size, n_head, n_head_kv, head_dim, h0, h1, scale);
        return;
    }
    attention_block(out, q, (size_t)ld, n_q, pos0 + 1, k_pool, v_pool, kv_type, block_table, block_size, n_head,
                    n_head_kv, head_dim, h0, h1, scale);
}

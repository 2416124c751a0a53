/* test_kernels.c: every kernel at every level this CPU supports, against the scalar reference
 * and against an independent double-precision oracle; batch invariance; dispatch.
 *
 * Tolerances (|got - want| <= tol, "mag" = sum of |products| of the dot, so the bound scales
 * with the cancellation-free size of the sum):
 *   matmul, float weights:   1e-5 * mag (vs the double oracle and vs the reference level); for
 *                            BF16 weights the oracle multiplies x rounded to bf16, as the kernels
 *   matmul, Q8_0/Q4_0:       1e-6 * mag, where the oracle uses the same quantized x and exact
 *                            integer block dots (only float rounding differs); and the whole
 *                            product vs the unquantized x within the quantization bound
 *                            sum_b (d_x,b / 2) * sum |w| + 1e-5 * mag; the same for weights
 *                            repacked at load (kern_matrix_pack) and for the scalar x16 kernel
 *   rmsnorm:                 1e-6 * |want| + 1e-7 * max|want|
 *   silu_mul:                1e-6 * |want| + 1e-30
 *   add, rope:               bitwise equal to the reference (same operations, no FMA);
 *                            rope vs a double oracle: 2e-6 * max|x| (|x| <= 2)
 *   attention:               5e-6 * max|V| vs a naive oracle (scores, softmax, weighted sum,
 *                            in double) and between levels
 * (observed errors are 10-30x below these on random data)
 * Bitwise: matmul row i alone == row i inside batches of other sizes with other neighbours ==
 * with 1, 2 or 3 threads == columns computed in arbitrary ranges (also for packed weights, and
 * kern_matmul_mats == one product at a time); attention repeated, split by heads, other block
 * size, scrambled block table (unused pool slots hold NaN) == same bits; kern_attention_rows
 * row i == kern_attention at n_ctx = pos0 + i + 1; each level's x preparation (quantization per
 * block, x16 layout, bf16 rounding; with NaN, inf, subnormal and exact-half inputs) == the
 * scalar definition's bits. Roofline probes: the read sum is the exact sum, the peak loops run.
 * Levels the CPU lacks are skipped (and said so). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/log.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"
#include "kernels/ref/kernels_ref.h"

static int n_failed;
static const char *cur_level = "?";

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "FAIL [%s] %s:%d: ", cur_level, __FILE__, __LINE__);   \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        n_failed++;                                                            \
    } while (0)

/* ---- deterministic random numbers ---- */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32() >> 8) / 16777216.0f;
}

static void fill_uniform(float *a, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) a[i] = rng_uniform(lo, hi);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_kernels: out of memory\n");
        exit(2);
    }
    return p;
}

static int is_quant(dtype_t t)
{
    return t == DTYPE_Q8_0 || t == DTYPE_Q4_0;
}

/* ---- matmul ---- */

/* Weights of type t for n rows of k random values; also their exact f32 values. */
static void *make_weights(dtype_t t, int n, int k, float *wf /* (n, k) out */)
{
    size_t rb = dtype_row_bytes(t, (size_t)k);
    char *w = xmalloc(rb * (size_t)n);
    float *tmp = xmalloc(sizeof(float) * (size_t)k);
    for (int j = 0; j < n; j++) {
        fill_uniform(tmp, (size_t)k, -1.0f, 1.0f);
        dtype_from_f32_row(t, tmp, w + rb * j, (size_t)k);
        dtype_to_f32_row(t, w + rb * j, wf + (size_t)j * k, (size_t)k);
    }
    free(tmp);
    return w;
}

/* Double oracle for y[i][j]: want, mag (sum of |products|) and, for quantized weights, the
 * bound on the error due to quantizing x (qbound). */
static void matmul_oracle(const float *x, const float *wf, dtype_t t, int i, int j, int k, double *want, double *mag,
                          double *qbound)
{
    const float *xr = x + (size_t)i * k, *wr = wf + (size_t)j * k;
    double s = 0, a = 0, qb = 0;
    if (!is_quant(t)) {
        for (int t2 = 0; t2 < k; t2++) {
            /* BF16 weights multiply x rounded to bf16 (as ggml) */
            double xv = t == DTYPE_BF16 ? (double)bf16_to_f32(f32_to_bf16(xr[t2])) : (double)xr[t2];
            s += xv * wr[t2];
            a += fabs(xv * wr[t2]);
        }
        *want = s;
        *mag = a;
        *qbound = 0;
        return;
    }
    {
        int nb = k / DTYPE_QK;
        int8_t *qs = xmalloc((size_t)k);
        float *d = xmalloc(sizeof(float) * (size_t)nb);
        kern_quantize_row_q8(qs, d, xr, k);
        for (int b = 0; b < nb; b++) {
            double wabs = 0;
            for (int u = 0; u < DTYPE_QK; u++) {
                int e = b * DTYPE_QK + u;
                double xv = (double)d[b] * qs[e];
                s += xv * wr[e]; /* wr = d_w * q_w exactly in f32; the product is exact in double */
                a += fabs(xv * wr[e]);
                wabs += fabs(wr[e]);
            }
            qb += 0.5 * d[b] * wabs * (1 + 1e-6);
        }
        free(qs);
        free(d);
        *want = s;
        *mag = a;
        *qbound = qb;
    }
}

static void check_matmul_case(threadpool_t *pool, dtype_t t, int m, int n, int k)
{
    float *x = xmalloc(sizeof(float) * (size_t)m * k);
    float *wf = xmalloc(sizeof(float) * (size_t)n * k);
    float *y = xmalloc(sizeof(float) * (size_t)m * n), *yref = xmalloc(sizeof(float) * (size_t)m * n);
    void *w;
    kern_level_t level = kern_level();
    int bad = 0;
    fill_uniform(x, (size_t)m * k, -1.0f, 1.0f);
    w = make_weights(t, n, k, wf);
    kern_set_level(KERN_LEVEL_REF);
    kern_matmul(pool, yref, x, w, t, m, n, k);
    kern_set_level(level);
    kern_matmul(pool, y, x, w, t, m, n, k);
    for (int i = 0; i < m && !bad; i++) {
        for (int j = 0; j < n && !bad; j++) {
            double want, mag, qb, exact = 0;
            float got = y[(size_t)i * n + j], ref = yref[(size_t)i * n + j];
            double tol;
            matmul_oracle(x, wf, t, i, j, k, &want, &mag, &qb);
            tol = (is_quant(t) ? 1e-6 : 1e-5) * mag + 1e-30;
            if (!(fabs(got - want) <= tol) || !(fabs(ref - want) <= tol) || !(fabs((double)got - ref) <= tol)) {
                FAIL("matmul %s m %d n %d k %d at (%d, %d): got %.9g ref %.9g oracle %.9g tol %.3g", dtype_name(t), m,
                     n, k, i, j, got, ref, want, tol);
                bad = 1;
            }
            if (is_quant(t)) {
                for (int u = 0; u < k; u++) exact += (double)x[(size_t)i * k + u] * wf[(size_t)j * k + u];
                if (!(fabs(got - exact) <= qb + tol)) {
                    FAIL("matmul %s m %d n %d k %d at (%d, %d): got %.9g, unquantized %.9g, bound %.3g", dtype_name(t),
                         m, n, k, i, j, got, exact, qb + tol);
                    bad = 1;
                }
            }
        }
    }
    free(x);
    free(wf);
    free(y);
    free(yref);
    free(w);
}

static void test_matmul_accuracy(threadpool_t *pool)
{
    static const dtype_t types[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0 };
    static const int ms[] = { 1, 2, 3, 5, 8, 17 };
    static const int kf[] = { 1, 3, 7, 15, 17, 33, 64, 127, 256, 1000 };
    static const int kq[] = { 32, 64, 96, 160, 256, 320, 512, 736, 1024 };
    static const int ns[] = { 1, 3, 7, 15, 17, 33, 127, 257 };
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        dtype_t t = types[ti];
        const int *ks = is_quant(t) ? kq : kf;
        int nk = is_quant(t) ? (int)(sizeof(kq) / sizeof(kq[0])) : (int)(sizeof(kf) / sizeof(kf[0]));
        for (int ki = 0; ki < nk; ki++)
            for (int ni = 0; ni < (int)(sizeof(ns) / sizeof(ns[0])); ni++)
                check_matmul_case(pool, t, ms[(ki + ni) % 6], ns[ni], ks[ki]);
    }
}

/* The level's kernel called on arbitrary column ranges [j0, j1) (cut at random points, so a
 * column falls in tiles of other widths than in one call) gives the same bits as yfull. */
static void check_column_ranges(dtype_t t, const float *x, const void *w, const float *yfull, int m, int n, int k)
{
    const kern_vtable_t *vt = kern_vtable_for_level(kern_level());
    float *y = xmalloc(sizeof(float) * (size_t)m * n);
    int8_t *qs = xmalloc((size_t)m * k);
    float *qd = xmalloc(sizeof(float) * (size_t)m * (k / DTYPE_QK + 1));
    uint16_t *xb = xmalloc(sizeof(uint16_t) * (size_t)m * k);
    for (int i = 0; i < m && is_quant(t); i++)
        kern_quantize_row_q8(qs + (size_t)i * k, qd + (size_t)i * (k / DTYPE_QK), x + (size_t)i * k, k);
    kern_round_row_bf16(xb, x, m * k);
    for (int trial = 0; trial < 4; trial++) {
        int j0 = 0;
        memset(y, 0, sizeof(float) * (size_t)m * n);
        while (j0 < n) {
            int j1 = j0 + 1 + (int)(rng_u32() % (trial == 0 ? 3u : 40u));
            if (j1 > n) j1 = n;
            switch (t) {
            case DTYPE_F32: vt->matmul_f32(y, x, w, m, n, k, j0, j1); break;
            case DTYPE_F16: vt->matmul_f16(y, x, w, m, n, k, j0, j1); break;
            case DTYPE_BF16: vt->matmul_bf16(y, xb, w, m, n, k, j0, j1); break;
            case DTYPE_Q8_0: vt->matmul_q8_0(y, qs, qd, w, m, n, k, j0, j1); break;
            case DTYPE_Q4_0: vt->matmul_q4_0(y, qs, qd, w, m, n, k, j0, j1); break;
            }
            j0 = j1;
        }
        if (memcmp(y, yfull, sizeof(float) * (size_t)m * n)) {
            FAIL("matmul %s m %d n %d k %d: columns computed in other ranges differ", dtype_name(t), m, n, k);
            break;
        }
    }
    free(y);
    free(qs);
    free(qd);
    free(xb);
}

/* Row i of a product must not depend on m, on the other rows, the thread count or the column
 * ranges the columns are computed in. */
static void test_matmul_invariance(threadpool_t **pools, int n_pools)
{
    static const dtype_t types[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_Q8_0, DTYPE_Q4_0 };
    static const int batch_sizes[] = { 2, 3, 4, 5, 7, 9 };
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        dtype_t t = types[ti];
        for (int cfg = 0; cfg < 2; cfg++) {
            int m = 17, n = cfg ? 35 : 259, k = is_quant(t) ? (cfg ? 96 : 352) : (cfg ? 40 : 203);
            float *x = xmalloc(sizeof(float) * (size_t)m * k), *wf = xmalloc(sizeof(float) * (size_t)n * k);
            float *yfull = xmalloc(sizeof(float) * (size_t)m * n), *y2 = xmalloc(sizeof(float) * (size_t)m * n);
            float *xb = xmalloc(sizeof(float) * 9 * (size_t)k), *yb = xmalloc(sizeof(float) * 9 * (size_t)n);
            void *w;
            fill_uniform(x, (size_t)m * k, -2.0f, 2.0f);
            w = make_weights(t, n, k, wf);
            kern_matmul(pools[0], yfull, x, w, t, m, n, k);
            for (int p = 1; p < n_pools; p++) {
                kern_matmul(pools[p], y2, x, w, t, m, n, k);
                if (memcmp(y2, yfull, sizeof(float) * (size_t)m * n))
                    FAIL("matmul %s m %d n %d k %d: %d threads differ from 1 thread", dtype_name(t), m, n, k,
                         threadpool_n_threads(pools[p]));
            }
            check_column_ranges(t, x, w, yfull, m, n, k);
            for (int i = 0; i < m; i++) {
                /* Alone, and as row `pos` of batches of several sizes with fresh neighbours. */
                kern_matmul(pools[i % n_pools], yb, x + (size_t)i * k, w, t, 1, n, k);
                if (memcmp(yb, yfull + (size_t)i * n, sizeof(float) * (size_t)n))
                    FAIL("matmul %s n %d k %d: row %d alone differs from the batch of %d", dtype_name(t), n, k, i, m);
                for (size_t bi = 0; bi < sizeof(batch_sizes) / sizeof(batch_sizes[0]); bi++) {
                    int s = batch_sizes[bi], pos = (i * 3 + (int)bi) % s;
                    fill_uniform(xb, (size_t)s * k, -3.0f, 3.0f);
                    memcpy(xb + (size_t)pos * k, x + (size_t)i * k, sizeof(float) * (size_t)k);
                    kern_matmul(pools[(i + (int)bi) % n_pools], yb, xb, w, t, s, n, k);
                    if (memcmp(yb + (size_t)pos * n, yfull + (size_t)i * n, sizeof(float) * (size_t)n))
                        FAIL("matmul %s n %d k %d: row %d as row %d of a batch of %d differs", dtype_name(t), n, k, i,
                             pos, s);
                }
            }
            free(x);
            free(wf);
            free(yfull);
            free(y2);
            free(xb);
            free(yb);
            free(w);
        }
    }
}

/* ---- element-wise kernels and rope ---- */

static void test_elementwise(void)
{
    static const int sizes[] = { 1, 2, 7, 8, 9, 15, 16, 17, 33, 100, 4096, 4099 };
    kern_level_t level = kern_level();
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int n = sizes[si];
        float *a = xmalloc(sizeof(float) * (size_t)n), *b = xmalloc(sizeof(float) * (size_t)n);
        float *o = xmalloc(sizeof(float) * (size_t)n), *r = xmalloc(sizeof(float) * (size_t)n);
        float *al = xmalloc(sizeof(float) * (size_t)n);
        double ss = 0, maxw = 0;
        fill_uniform(a, (size_t)n, -3.0f, 3.0f);
        fill_uniform(b, (size_t)n, -2.0f, 2.0f);
        if (n > 3) {
            a[0] = -100.0f;
            a[1] = 100.0f;
            a[2] = 0.0f;
        }

        /* rmsnorm vs the reference and a double oracle; out may alias x. */
        for (int i = 0; i < n; i++) ss += (double)a[i] * a[i];
        kern_set_level(KERN_LEVEL_REF);
        kern_rmsnorm(r, a, b, n, 1e-5f);
        kern_set_level(level);
        kern_rmsnorm(o, a, b, n, 1e-5f);
        for (int i = 0; i < n; i++) {
            double want = a[i] / sqrt(ss / n + 1e-5) * b[i];
            if (fabs(want) > maxw) maxw = fabs(want);
        }
        for (int i = 0; i < n; i++) {
            double want = a[i] / sqrt(ss / n + 1e-5) * b[i], tol = 1e-6 * fabs(want) + 1e-7 * maxw;
            if (!(fabs(o[i] - want) <= tol) || !(fabs(r[i] - want) <= tol)) {
                FAIL("rmsnorm n %d at %d: got %.9g ref %.9g oracle %.9g", n, i, o[i], r[i], want);
                break;
            }
        }
        memcpy(al, a, sizeof(float) * (size_t)n);
        kern_rmsnorm(al, al, b, n, 1e-5f);
        if (memcmp(al, o, sizeof(float) * (size_t)n)) FAIL("rmsnorm n %d: in place differs", n);

        /* silu_mul */
        kern_set_level(KERN_LEVEL_REF);
        kern_silu_mul(r, a, b, n);
        kern_set_level(level);
        kern_silu_mul(o, a, b, n);
        for (int i = 0; i < n; i++) {
            double want = a[i] / (1.0 + exp(-(double)a[i])) * b[i], tol = 1e-6 * fabs(want) + 1e-30;
            if (!(fabs(o[i] - want) <= tol) || !(fabs(r[i] - want) <= tol)) {
                FAIL("silu_mul n %d at %d (gate %g): got %.9g ref %.9g oracle %.9g", n, i, a[i], o[i], r[i], want);
                break;
            }
        }
        memcpy(al, a, sizeof(float) * (size_t)n);
        kern_silu_mul(al, al, b, n);
        if (memcmp(al, o, sizeof(float) * (size_t)n)) FAIL("silu_mul n %d: in place differs", n);

        /* add: exact */
        kern_add(o, a, b, n);
        for (int i = 0; i < n; i++) {
            if (o[i] != a[i] + b[i]) {
                FAIL("add n %d at %d: %.9g != %.9g", n, i, o[i], a[i] + b[i]);
                break;
            }
        }
        memcpy(al, a, sizeof(float) * (size_t)n);
        kern_add(al, al, b, n);
        if (memcmp(al, o, sizeof(float) * (size_t)n)) FAIL("add n %d: in place differs", n);
        free(a);
        free(b);
        free(o);
        free(r);
        free(al);
    }
}

static void test_rope(void)
{
    static const int dims[] = { 2, 8, 14, 34, 64, 128 };
    static const int heads[] = { 1, 3, 8 };
    static const int positions[] = { 0, 1, 17, 5000 };
    kern_level_t level = kern_level();
    for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
        for (size_t hi = 0; hi < sizeof(heads) / sizeof(heads[0]); hi++) {
            for (size_t pi = 0; pi < sizeof(positions) / sizeof(positions[0]); pi++) {
                for (int neox = 0; neox < 2; neox++) {
                    int d = dims[di], nh = heads[hi], pos = positions[pi], half = d / 2;
                    size_t n = (size_t)nh * d;
                    float *x = xmalloc(sizeof(float) * n), *o = xmalloc(sizeof(float) * n);
                    float *r = xmalloc(sizeof(float) * n), *f = xmalloc(sizeof(float) * (size_t)half);
                    float theta = (pi & 1) ? 500000.0f : 10000.0f;
                    fill_uniform(x, n, -2.0f, 2.0f);
                    for (int i = 0; i < half; i++) f[i] = powf(theta, -2.0f * (float)i / (float)d);
                    memcpy(o, x, sizeof(float) * n);
                    memcpy(r, x, sizeof(float) * n);
                    kern_set_level(KERN_LEVEL_REF);
                    kern_rope(r, nh, d, pos, f, neox);
                    kern_set_level(level);
                    kern_rope(o, nh, d, pos, f, neox);
                    if (memcmp(o, r, sizeof(float) * n))
                        FAIL("rope d %d heads %d pos %d neox %d: differs from the reference", d, nh, pos, neox);
                    for (int h = 0; h < nh; h++) {
                        for (int i = 0; i < half; i++) {
                            int ia = h * d + (neox ? i : 2 * i), ib = h * d + (neox ? i + half : 2 * i + 1);
                            double ang = (double)((float)pos * f[i]), c = cos(ang), s = sin(ang);
                            double wa = x[ia] * c - x[ib] * s, wb = x[ia] * s + x[ib] * c;
                            if (!(fabs(o[ia] - wa) <= 4e-6) || !(fabs(o[ib] - wb) <= 4e-6)) {
                                FAIL("rope d %d pos %d neox %d head %d pair %d: (%g, %g) vs (%g, %g)", d, pos, neox, h,
                                     i, o[ia], o[ib], wa, wb);
                                h = nh;
                                break;
                            }
                        }
                    }
                    free(x);
                    free(o);
                    free(r);
                    free(f);
                }
            }
        }
    }
}

/* ---- attention ---- */

typedef struct {
    int n_ctx, block_size, n_head, n_head_kv, head_dim;
    dtype_t kv_type;
    float q_gain; /* scales q: larger = peakier softmax */
} att_cfg_t;

/* A paged pool holding logical K, V (n_head_kv, n_ctx, head_dim) in blocks of block_size,
 * block ids from `perm`; every other slot is NaN so that a stray read shows. */
typedef struct {
    void *k, *v;
    int32_t *table;
    int n_blocks;
} att_pool_t;

static void store_elem(void *pool, dtype_t t, size_t i, float v)
{
    if (t == DTYPE_F32) ((float *)pool)[i] = v;
    else if (t == DTYPE_F16) ((uint16_t *)pool)[i] = f32_to_fp16(v);
    else ((uint16_t *)pool)[i] = f32_to_bf16(v);
}

static att_pool_t att_pool_make(const att_cfg_t *c, const float *kl, const float *vl, int scramble)
{
    att_pool_t p;
    int used = (c->n_ctx + c->block_size - 1) / c->block_size;
    size_t per_block = (size_t)c->n_head_kv * c->block_size * c->head_dim, total;
    p.n_blocks = used + 3;
    total = per_block * (size_t)p.n_blocks;
    p.k = xmalloc(total * 4);
    p.v = xmalloc(total * 4);
    p.table = xmalloc(sizeof(int32_t) * (size_t)(used + 1));
    for (size_t i = 0; i < total; i++) {
        store_elem(p.k, c->kv_type, i, NAN);
        store_elem(p.v, c->kv_type, i, NAN);
    }
    for (int b = 0; b < used; b++) p.table[b] = scramble ? (int32_t)((b * 7 + 2) % p.n_blocks) : b;
    if (scramble) { /* make sure it is a permutation prefix: 7 is coprime with n_blocks unless not */
        for (int b = 0; b < used; b++) {
            for (int b2 = 0; b2 < b; b2++) {
                if (p.table[b2] == p.table[b]) {
                    for (int b3 = 0; b3 < used; b3++) p.table[b3] = used - 1 - b3 + 2;
                    b = used;
                    break;
                }
            }
        }
    }
    for (int h = 0; h < c->n_head_kv; h++) {
        for (int pos = 0; pos < c->n_ctx; pos++) {
            size_t base = (size_t)p.table[pos / c->block_size] * per_block +
                          ((size_t)h * c->block_size + (size_t)(pos % c->block_size)) * c->head_dim;
            for (int d = 0; d < c->head_dim; d++) {
                size_t li = ((size_t)h * c->n_ctx + pos) * c->head_dim + d;
                store_elem(p.k, c->kv_type, base + d, kl[li]);
                store_elem(p.v, c->kv_type, base + d, vl[li]);
            }
        }
    }
    return p;
}

static void att_pool_free(att_pool_t *p)
{
    free(p->k);
    free(p->v);
    free(p->table);
}

static float round_to(dtype_t t, float v)
{
    if (t == DTYPE_F16) return fp16_to_f32(f32_to_fp16(v));
    if (t == DTYPE_BF16) return bf16_to_f32(f32_to_bf16(v));
    return v;
}

static void check_attention_case(const att_cfg_t *c)
{
    int hd = c->head_dim, group = c->n_head / c->n_head_kv;
    size_t nkv = (size_t)c->n_head_kv * c->n_ctx * hd, nq = (size_t)c->n_head * hd;
    float *kl = xmalloc(sizeof(float) * nkv), *vl = xmalloc(sizeof(float) * nkv), *q = xmalloc(sizeof(float) * nq);
    float *out = xmalloc(sizeof(float) * nq), *out2 = xmalloc(sizeof(float) * nq), *oref = xmalloc(sizeof(float) * nq);
    double *sc = xmalloc(sizeof(double) * (size_t)(c->n_ctx + 1));
    float scale = 1.0f / sqrtf((float)hd), vmax = 0;
    kern_level_t level = kern_level();
    att_pool_t ps, pc, pb;
    att_cfg_t cb = *c;
    fill_uniform(q, nq, -c->q_gain, c->q_gain);
    for (size_t i = 0; i < nkv; i++) {
        kl[i] = round_to(c->kv_type, rng_uniform(-1.0f, 1.0f));
        vl[i] = round_to(c->kv_type, rng_uniform(-1.0f, 1.0f));
        if (fabsf(vl[i]) > vmax) vmax = fabsf(vl[i]);
    }
    ps = att_pool_make(c, kl, vl, 1);
    pc = att_pool_make(c, kl, vl, 0);
    cb.block_size = c->block_size == 256 ? 8 : 256;
    pb = att_pool_make(&cb, kl, vl, 1);

    for (size_t i = 0; i < nq; i++) out[i] = out2[i] = -7.0f; /* sentinel: heads outside [h0, h1) */
    kern_attention(out, q, ps.k, ps.v, c->kv_type, ps.table, c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd, 1,
                   c->n_head, scale);
    for (int d = 0; d < hd; d++) {
        if (out[d] != -7.0f) {
            FAIL("attention: head 0 written though h0 = 1");
            break;
        }
    }
    kern_attention(out, q, ps.k, ps.v, c->kv_type, ps.table, c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd, 0,
                   1, scale);
    kern_set_level(KERN_LEVEL_REF);
    kern_attention(oref, q, ps.k, ps.v, c->kv_type, ps.table, c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd,
                   0, c->n_head, scale);
    kern_set_level(level);

    for (int h = 0; h < c->n_head; h++) {
        int kvh = h / group;
        double mx = -INFINITY, sum = 0;
        for (int p = 0; p < c->n_ctx; p++) {
            double s = 0;
            for (int d = 0; d < hd; d++) s += (double)q[(size_t)h * hd + d] * kl[((size_t)kvh * c->n_ctx + p) * hd + d];
            sc[p] = s * scale;
            if (sc[p] > mx) mx = sc[p];
        }
        for (int p = 0; p < c->n_ctx; p++) {
            sc[p] = exp(sc[p] - mx);
            sum += sc[p];
        }
        for (int d = 0; d < hd; d++) {
            double want = 0, tol = 5e-6 * vmax;
            float got = out[(size_t)h * hd + d], ref = oref[(size_t)h * hd + d];
            for (int p = 0; p < c->n_ctx; p++) want += sc[p] / sum * vl[((size_t)kvh * c->n_ctx + p) * hd + d];
            if (!(fabs(got - want) <= tol) || !(fabs(ref - want) <= tol) || !(fabs(got - ref) <= tol)) {
                FAIL("attention n_ctx %d bs %d heads %d/%d dim %d %s: head %d dim %d got %.9g ref %.9g oracle %.9g",
                     c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd, dtype_name(c->kv_type), h, d, got, ref,
                     want);
                h = c->n_head;
                break;
            }
        }
    }

    /* Same bits: repeated, all heads at once, contiguous table, other block size. */
    kern_attention(out2, q, ps.k, ps.v, c->kv_type, ps.table, c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd,
                   0, c->n_head, scale);
    if (memcmp(out, out2, sizeof(float) * nq)) FAIL("attention: all heads at once differs from split heads");
    kern_attention(out2, q, ps.k, ps.v, c->kv_type, ps.table, c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd,
                   0, c->n_head, scale);
    if (memcmp(out, out2, sizeof(float) * nq)) FAIL("attention: repeated call differs");
    kern_attention(out2, q, pc.k, pc.v, c->kv_type, pc.table, c->n_ctx, c->block_size, c->n_head, c->n_head_kv, hd,
                   0, c->n_head, scale);
    if (memcmp(out, out2, sizeof(float) * nq)) FAIL("attention: contiguous block table differs from scrambled");
    kern_attention(out2, q, pb.k, pb.v, c->kv_type, pb.table, c->n_ctx, cb.block_size, c->n_head, c->n_head_kv, hd,
                   0, c->n_head, scale);
    if (memcmp(out, out2, sizeof(float) * nq)) FAIL("attention: block size %d differs from %d", cb.block_size,
                                                    c->block_size);
    att_pool_free(&ps);
    att_pool_free(&pc);
    att_pool_free(&pb);
    free(kl);
    free(vl);
    free(q);
    free(out);
    free(out2);
    free(oref);
    free(sc);
}

static void test_attention(void)
{
    static const int ctxs[] = { 1, 7, 33, 100, 300 };
    static const int bss[] = { 8, 16, 32, 256 };
    static const dtype_t kvs[] = { DTYPE_F32, DTYPE_F16, DTYPE_BF16 };
    static const int shapes[][3] = { { 4, 4, 64 }, { 8, 2, 8 }, { 6, 1, 128 }, { 4, 2, 80 }, { 16, 2, 32 } };
    int idx = 0;
    for (size_t ci = 0; ci < sizeof(ctxs) / sizeof(ctxs[0]); ci++)
        for (size_t bi = 0; bi < sizeof(bss) / sizeof(bss[0]); bi++)
            for (size_t ki = 0; ki < sizeof(kvs) / sizeof(kvs[0]); ki++, idx++) {
                const int *sh = shapes[idx % 5];
                att_cfg_t c = { ctxs[ci], bss[bi], sh[0], sh[1], sh[2], kvs[ki], (idx % 3 == 0) ? 6.0f : 1.0f };
                check_attention_case(&c);
            }
}

/* kern_attention_rows: row i is bitwise kern_attention with n_ctx = pos0 + i + 1, for blocks of
 * queries of several sizes and starting positions, head sub-ranges and a row stride > a row. */
static void check_attention_rows_case(const att_cfg_t *c)
{
    int hd = c->head_dim, n = c->n_ctx, ld = c->n_head * hd + 3;
    size_t nkv = (size_t)c->n_head_kv * n * hd, nq = (size_t)n * ld;
    float *kl = xmalloc(sizeof(float) * nkv), *vl = xmalloc(sizeof(float) * nkv), *q = xmalloc(sizeof(float) * nq);
    float *o1 = xmalloc(sizeof(float) * nq), *o2 = xmalloc(sizeof(float) * nq);
    float scale = 1.0f / sqrtf((float)hd);
    const int starts[] = { 0, 5, n / 2, n - 1 }, counts[] = { 1, 3, 9, 40, 1000 };
    att_pool_t ps;
    fill_uniform(q, nq, -c->q_gain, c->q_gain);
    for (size_t i = 0; i < nkv; i++) {
        kl[i] = round_to(c->kv_type, rng_uniform(-1.0f, 1.0f));
        vl[i] = round_to(c->kv_type, rng_uniform(-1.0f, 1.0f));
    }
    ps = att_pool_make(c, kl, vl, 1);
    for (int si = 0; si < 4; si++)
        for (int ni = 0; ni < 5; ni++) {
            int pos0 = starts[si], nqr = counts[ni], h0 = (si + ni) % 2, h1 = c->n_head - (ni % 2);
            if (pos0 < 0 || pos0 >= n) continue;
            if (nqr > n - pos0) nqr = n - pos0;
            for (size_t i = 0; i < nq; i++) o1[i] = o2[i] = -7.0f;
            kern_attention_rows(o1, q + (size_t)pos0 * ld, ld, nqr, pos0, ps.k, ps.v, c->kv_type, ps.table,
                                c->block_size, c->n_head, c->n_head_kv, hd, h0, h1, scale);
            for (int i = 0; i < nqr; i++)
                kern_attention(o2 + (size_t)i * ld, q + (size_t)(pos0 + i) * ld, ps.k, ps.v, c->kv_type, ps.table,
                               pos0 + i + 1, c->block_size, c->n_head, c->n_head_kv, hd, h0, h1, scale);
            if (memcmp(o1, o2, sizeof(float) * nq)) {
                FAIL("attention_rows n_ctx %d bs %d heads %d/%d dim %d %s: %d rows from %d (heads %d..%d) differ from "
                     "one call per row", n, c->block_size, c->n_head, c->n_head_kv, hd, dtype_name(c->kv_type), nqr,
                     pos0, h0, h1);
                si = 4;
                break;
            }
        }
    att_pool_free(&ps);
    free(kl);
    free(vl);
    free(q);
    free(o1);
    free(o2);
}

static void test_attention_rows(void)
{
    static const int shapes[][3] = { { 32, 8, 64 }, { 8, 2, 8 }, { 6, 1, 128 }, { 4, 2, 80 }, { 32, 2, 16 } };
    static const dtype_t kvs[] = { DTYPE_F16, DTYPE_BF16, DTYPE_F32 };
    static const int ctxs[] = { 1, 17, 70 };
    for (int si = 0; si < 5; si++)
        for (int ci = 0; ci < 3; ci++) {
            att_cfg_t c = { ctxs[ci], si % 2 ? 16 : 8, shapes[si][0], shapes[si][1], shapes[si][2], kvs[(si + ci) % 3],
                            si == 0 ? 6.0f : 1.0f };
            check_attention_rows_case(&c);
        }
}

/* ---- preparation of x: each level's version gives the scalar definition's bits ---- */

/* Random values with the cases the rounding rules care about planted in some blocks. */
static void fill_special(float *x, int k)
{
    fill_uniform(x, (size_t)k, -3.0f, 3.0f);
    for (int b = 0; b < k / DTYPE_QK; b++) {
        float *xb = x + (size_t)b * DTYPE_QK;
        switch (b % 8) {
        case 1: /* amax 127: inv 1, exact halves round away from zero */
            xb[0] = 127.0f;
            xb[1] = 2.5f;
            xb[2] = -3.5f;
            xb[3] = 0.5f;
            xb[4] = -0.5f;
            xb[5] = 0.49999997f;
            break;
        case 2: xb[7] = NAN; break;
        case 3: xb[9] = -INFINITY; break;
        case 4: /* subnormal amax: 1 / scale overflows */
            for (int t = 0; t < DTYPE_QK; t++) xb[t] = (t & 1 ? -1e-44f : 1e-45f);
            break;
        case 5:
            for (int t = 0; t < DTYPE_QK; t++) xb[t] = 0.0f;
            xb[3] = -0.0f;
            break;
        case 6: xb[0] = 3.0e38f; break;
        default: break;
        }
    }
}

static void test_prep_bitwise(void)
{
    static const int ks[] = { 32, 64, 96, 480, 512, 544, 1056, 2048 };
    const kern_vtable_t *vt = kern_vtable_for_level(kern_level());
    for (size_t ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++) {
        int k = ks[ki], nb = k / DTYPE_QK, ng = kern_x16_groups(k);
        float *x = xmalloc(sizeof(float) * (size_t)k);
        int8_t *q1 = xmalloc((size_t)k), *q2 = xmalloc((size_t)k);
        float *d1 = xmalloc(sizeof(float) * (size_t)nb), *d2 = xmalloc(sizeof(float) * (size_t)nb);
        uint8_t *p1 = aligned_alloc(64, (size_t)ng * KERN_X16_XBYTES), *p2 = aligned_alloc(64, (size_t)ng * KERN_X16_XBYTES);
        uint16_t *b1 = xmalloc(sizeof(uint16_t) * (size_t)k), *b2 = xmalloc(sizeof(uint16_t) * (size_t)k);
        if (!p1 || !p2) exit(2);
        fill_special(x, k);
        kern_quantize_row_q8(q1, d1, x, k);
        vt->quantize_row_q8(q2, d2, x, k);
        if (memcmp(q1, q2, (size_t)k) || memcmp(d1, d2, sizeof(float) * (size_t)nb))
            FAIL("quantize_row_q8 k %d: not the reference's bits", k);
        for (int ti = 0; ti < 2; ti++) {
            dtype_t t = ti ? DTYPE_Q4_0 : DTYPE_Q8_0;
            memset(p1, 0xa5, (size_t)ng * KERN_X16_XBYTES);
            memset(p2, 0x5a, (size_t)ng * KERN_X16_XBYTES);
            kern_x16_quantize_row(p1, x, k, t);
            vt->x16_quantize_row(p2, x, k, t);
            if (memcmp(p1, p2, (size_t)ng * KERN_X16_XBYTES))
                FAIL("x16_quantize_row %s k %d: not the reference's bits", dtype_name(t), k);
            /* the layout holds the plain quantization's values: element e of block b */
            for (int b = 0; b < nb; b++) {
                const uint8_t *grp = p1 + (size_t)(b / KERN_X16_GROUP) * KERN_X16_XBYTES;
                int l = b % KERN_X16_GROUP, sum = 0, bad = 0;
                int32_t corr;
                float d;
                for (int e = 0; e < DTYPE_QK; e++) {
                    int8_t v = (int8_t)grp[64 * (e / 4) + 4 * l + e % 4];
                    bad |= v != q1[b * DTYPE_QK + e];
                    sum += v;
                }
                memcpy(&d, grp + 512 + 4 * l, 4);
                memcpy(&corr, grp + 576 + 4 * l, 4);
                if (bad || memcmp(&d, &d1[b], 4) || corr != (t == DTYPE_Q8_0 ? -128 : -8) * sum) {
                    FAIL("x16 layout %s k %d block %d: values, scale or correction wrong", dtype_name(t), k, b);
                    break;
                }
            }
        }
        /* bf16 rounding on random bit patterns (NaN, inf, subnormal included) and on x */
        for (int i = 0; i < k; i++) {
            uint32_t bits = rng_u32();
            if (i % 3 == 0) memcpy(&x[i], &bits, 4);
        }
        kern_round_row_bf16(b1, x, k);
        vt->round_row_bf16(b2, x, k);
        for (int i = 0; i < k; i++)
            if (b1[i] != f32_to_bf16(x[i])) {
                FAIL("kern_round_row_bf16 differs from f32_to_bf16 at %d", i);
                break;
            }
        if (memcmp(b1, b2, sizeof(uint16_t) * (size_t)k)) FAIL("round_row_bf16 k %d: not the reference's bits", k);
        free(x);
        free(q1);
        free(q2);
        free(d1);
        free(d2);
        free(p1);
        free(p2);
        free(b1);
        free(b2);
    }
}

/* ---- weights repacked at load (kern_matrix_t) ---- */

static void check_packed_case(threadpool_t **pools, int n_pools, dtype_t t, int m, int n, int k)
{
    const kern_vtable_t *vt = kern_vtable_for_level(kern_level());
    kern_matmul_x16_fn x16 = t == DTYPE_Q8_0 ? vt->matmul_q8_0_x16 : vt->matmul_q4_0_x16;
    int ng = kern_x16_groups(k), bad = 0;
    float *x = xmalloc(sizeof(float) * (size_t)m * k), *wf = xmalloc(sizeof(float) * (size_t)n * k);
    float *y = xmalloc(sizeof(float) * (size_t)m * n), *y2 = xmalloc(sizeof(float) * (size_t)m * n);
    float *yref = xmalloc(sizeof(float) * (size_t)m * n), *yx = xmalloc(sizeof(float) * (size_t)m * n);
    float *xb = xmalloc(sizeof(float) * 9 * (size_t)k), *yb = xmalloc(sizeof(float) * 9 * (size_t)n);
    size_t wbytes = (size_t)n * ng * kern_x16_wgroup_bytes(t);
    uint8_t *wp = aligned_alloc(64, (wbytes + 63) / 64 * 64), *xp = aligned_alloc(64, (size_t)m * ng * KERN_X16_XBYTES);
    kern_matrix_t mat;
    void *w;
    kern_level_t level = kern_level();
    if (!wp || !xp) exit(2);
    fill_uniform(x, (size_t)m * k, -1.0f, 1.0f);
    w = make_weights(t, n, k, wf);
    kern_set_level(KERN_LEVEL_REF);
    kern_matmul(NULL, yref, x, w, t, m, n, k);
    kern_set_level(level);

    /* the layout itself, through the scalar x16 kernel */
    kern_x16_pack_rows(wp, w, t, k, 0, n);
    for (int i = 0; i < m; i++) kern_x16_quantize_row(xp + (size_t)i * ng * KERN_X16_XBYTES, x + (size_t)i * k, k, t);
    (t == DTYPE_Q8_0 ? kern_ref_matmul_q8_0_x16 : kern_ref_matmul_q4_0_x16)(yx, xp, wp, m, n, k, 0, n);

    kern_matrix_init(&mat, w, t, n, k);
    if (kern_matrix_pack(pools[1], &mat) != CLLM_OK) FAIL("kern_matrix_pack %s: %s", dtype_name(t), cllm_error_message());
    if (x16 && (!mat.packed || mat.packed_bytes != wbytes || mat.packed_level != level || memcmp(mat.packed, wp, wbytes)))
        FAIL("kern_matrix_pack %s n %d k %d: not packed as kern_x16_pack_rows (%zu bytes)", dtype_name(t), n, k,
             mat.packed_bytes);
    if (!x16 && mat.packed) FAIL("kern_matrix_pack %s packed at a level without x16 kernels", dtype_name(t));
    kern_matmul_mat(pools[1], y, x, &mat, m);
    for (int i = 0; i < m && !bad; i++)
        for (int j = 0; j < n && !bad; j++) {
            double want, mag, qb, tol;
            size_t at = (size_t)i * n + j;
            matmul_oracle(x, wf, t, i, j, k, &want, &mag, &qb);
            tol = 1e-6 * mag + 1e-30;
            if (!(fabs(y[at] - want) <= tol) || !(fabs(yx[at] - want) <= tol) || !(fabs((double)y[at] - yref[at]) <= tol)) {
                FAIL("packed %s m %d n %d k %d at (%d, %d): got %.9g scalar x16 %.9g ref %.9g oracle %.9g tol %.3g",
                     dtype_name(t), m, n, k, i, j, y[at], yx[at], yref[at], want, tol);
                bad = 1;
            }
        }
    /* batch invariance: threads, rows alone and among other rows, column ranges */
    for (int p = 0; p < n_pools; p++) {
        kern_matmul_mat(pools[p], y2, x, &mat, m);
        if (memcmp(y2, y, sizeof(float) * (size_t)m * n))
            FAIL("packed %s m %d n %d k %d: %d threads differ", dtype_name(t), m, n, k, threadpool_n_threads(pools[p]));
    }
    for (int i = 0; i < m; i++) {
        static const int sizes[] = { 2, 4, 5, 9 };
        kern_matmul_mat(pools[i % n_pools], yb, x + (size_t)i * k, &mat, 1);
        if (memcmp(yb, y + (size_t)i * n, sizeof(float) * (size_t)n))
            FAIL("packed %s n %d k %d: row %d alone differs from the batch of %d", dtype_name(t), n, k, i, m);
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            int sz = sizes[si], pos = (i + (int)si) % sz;
            fill_uniform(xb, (size_t)sz * k, -3.0f, 3.0f);
            memcpy(xb + (size_t)pos * k, x + (size_t)i * k, sizeof(float) * (size_t)k);
            kern_matmul_mat(pools[(i + (int)si) % n_pools], yb, xb, &mat, sz);
            if (memcmp(yb + (size_t)pos * n, y + (size_t)i * n, sizeof(float) * (size_t)n))
                FAIL("packed %s n %d k %d: row %d as row %d of %d differs", dtype_name(t), n, k, i, pos, sz);
        }
    }
    if (x16 && mat.packed) {
        for (int i = 0; i < m; i++) vt->x16_quantize_row(xp + (size_t)i * ng * KERN_X16_XBYTES, x + (size_t)i * k, k, t);
        for (int trial = 0; trial < 3; trial++) {
            int j0 = 0;
            memset(y2, 0, sizeof(float) * (size_t)m * n);
            while (j0 < n) {
                int j1 = j0 + 1 + (int)(rng_u32() % (trial == 0 ? 3u : 37u));
                if (j1 > n) j1 = n;
                x16(y2, xp, mat.packed, m, n, k, j0, j1);
                j0 = j1;
            }
            if (memcmp(y2, y, sizeof(float) * (size_t)m * n)) {
                FAIL("packed %s m %d n %d k %d: columns computed in other ranges differ", dtype_name(t), m, n, k);
                break;
            }
        }
    }
    kern_matrix_release(&mat);
    if (mat.packed) FAIL("kern_matrix_release left the copy");
    free(x);
    free(wf);
    free(y);
    free(y2);
    free(yref);
    free(yx);
    free(xb);
    free(yb);
    free(wp);
    free(xp);
    free(w);
}

/* kern_matmul_mats == one kern_matmul_mat per product, bitwise, for products that share a job
 * (same k and type) and for mixed ones (other k, other type, unpacked). */
static void test_matmul_mats(threadpool_t *pool)
{
    enum { M = 5, K = 544, K2 = 96 };
    static const struct { dtype_t t; int n, k; } specs[] = {
        { DTYPE_Q8_0, 37, K }, { DTYPE_Q8_0, 16, K }, { DTYPE_Q8_0, 3, K }, { DTYPE_Q4_0, 20, K },
        { DTYPE_BF16, 9, K },  { DTYPE_Q8_0, 7, K2 }, { DTYPE_F32, 5, K },  { DTYPE_Q8_0, 33, K },
    };
    enum { N_MATS = sizeof(specs) / sizeof(specs[0]) };
    kern_matrix_t mats[N_MATS];
    const kern_matrix_t *mp[N_MATS];
    float *ys[N_MATS], *x = xmalloc(sizeof(float) * M * K), *y1 = xmalloc(sizeof(float) * M * 64);
    void *ws[N_MATS];
    fill_uniform(x, (size_t)M * K, -1.0f, 1.0f);
    for (int i = 0; i < N_MATS; i++) {
        float *wf = xmalloc(sizeof(float) * (size_t)specs[i].n * specs[i].k);
        ws[i] = make_weights(specs[i].t, specs[i].n, specs[i].k, wf);
        free(wf);
        kern_matrix_init(&mats[i], ws[i], specs[i].t, specs[i].n, specs[i].k);
        if (kern_matrix_pack(pool, &mats[i]) != CLLM_OK) FAIL("kern_matrix_pack");
        mp[i] = &mats[i];
        ys[i] = xmalloc(sizeof(float) * M * (size_t)specs[i].n);
    }
    /* x rows of K elements; the K2 product reads the first K2 of each of its own rows */
    kern_matmul_mats(pool, N_MATS - 3, ys, x, mp, M); /* the first 5: Q8_0 x3, Q4_0, BF16 */
    kern_matmul_mats(pool, 1, ys + 5, x, mp + 5, M);
    kern_matmul_mats(pool, 2, ys + 6, x, mp + 6, M);
    for (int i = 0; i < N_MATS; i++) {
        kern_matmul_mat(pool, y1, x, &mats[i], M);
        if (memcmp(y1, ys[i], sizeof(float) * M * (size_t)specs[i].n))
            FAIL("kern_matmul_mats: product %d (%s n %d k %d) differs from kern_matmul_mat", i, dtype_name(specs[i].t),
                 specs[i].n, specs[i].k);
        if (!is_quant(specs[i].t)) { /* float types are copied as stored: the same bits as in place */
            if (!mats[i].packed) FAIL("kern_matrix_pack did not copy a %s matrix", dtype_name(specs[i].t));
            kern_matmul(pool, y1, x, ws[i], specs[i].t, M, specs[i].n, specs[i].k);
            if (memcmp(y1, ys[i], sizeof(float) * M * (size_t)specs[i].n))
                FAIL("kern_matmul_mat on a copied %s matrix differs from kern_matmul in place", dtype_name(specs[i].t));
        }
        kern_matrix_release(&mats[i]);
        free(ws[i]);
        free(ys[i]);
    }
    free(x);
    free(y1);
}

static void test_packed(threadpool_t **pools, int n_pools)
{
    static const int ms[] = { 1, 2, 3, 5, 17 };
    static const int ns[] = { 1, 3, 17, 33, 127 };
    static const int ks[] = { 32, 96, 512, 544, 1056 };
    for (int ti = 0; ti < 2; ti++)
        for (int ki = 0; ki < 5; ki++)
            for (int ni = 0; ni < 5; ni += 2)
                check_packed_case(pools, n_pools, ti ? DTYPE_Q4_0 : DTYPE_Q8_0, ms[(ki + ni) % 5], ns[(ni + ki) % 5],
                                  ks[ki]);
    test_matmul_mats(pools[1]);
}

/* ---- roofline probes ---- */

static void test_probes(void)
{
    enum { N = 4096 };
    uint64_t *buf = aligned_alloc(64, N * sizeof(uint64_t)), want = 0;
    if (!buf) exit(2);
    for (int i = 0; i < N; i++) {
        buf[i] = ((uint64_t)rng_u32() << 32) | rng_u32();
        want += buf[i];
    }
    if (kern_read_sum(buf, N * sizeof(uint64_t)) != want) FAIL("kern_read_sum: wrong sum");
    if (kern_read_sum(buf, 64) != buf[0] + buf[1] + buf[2] + buf[3] + buf[4] + buf[5] + buf[6] + buf[7])
        FAIL("kern_read_sum of 64 bytes");
    if (!(kern_peak_run(KERN_PEAK_F32_FMA, 1000) > 0) || !(kern_peak_run(KERN_PEAK_INT8_DOT, 1000) > 0))
        FAIL("kern_peak_run: f32 or int8 loop did nothing");
    if ((kern_peak_run(KERN_PEAK_BF16_DOT, 1000) > 0) != (kern_level() >= KERN_LEVEL_AVX512))
        FAIL("kern_peak_run: bf16 loop present iff AVX-512");
    free(buf);
}

/* ---- dispatch and bad arguments ---- */

static void test_bad_args(void)
{
    float x[64] = { 0 }, y[4];
    block_q8_0_t wq[4];
    int32_t table[1] = { 0 };
    memset(wq, 0, sizeof(wq));
    log_set_level(LOG_LEVEL_OFF);
    kern_matmul(NULL, y, x, wq, DTYPE_Q8_0, 1, 2, 33); /* k not a multiple of 32 */
    if (!isnan(y[0]) || !isnan(y[1])) FAIL("matmul with k %% 32 != 0 for q8_0 did not produce NaN");
    kern_matmul(NULL, y, x, wq, (dtype_t)7, 1, 2, 32); /* unsupported type */
    if (!isnan(y[0])) FAIL("matmul with an unsupported type did not produce NaN");
    kern_matmul(NULL, y, x, wq, DTYPE_F32, 2, 2, 0); /* k = 0: zeros */
    if (y[0] != 0.0f || y[3] != 0.0f) FAIL("matmul with k = 0 did not produce zeros");
    kern_attention(y, x, x, x, DTYPE_F32, table, 1, 8, 3, 2, 1, 0, 3, 1.0f); /* 3 heads, 2 kv heads */
    if (!isnan(y[0]) || !isnan(y[2])) FAIL("attention with n_head %% n_head_kv != 0 did not produce NaN");
    kern_attention(y, x, x, x, DTYPE_Q8_0, table, 1, 8, 2, 2, 1, 0, 2, 1.0f);
    if (!isnan(y[0])) FAIL("attention with a q8_0 KV cache did not produce NaN");
    y[0] = y[1] = 0.0f;
    kern_attention_rows(y, x, 2, 1, 0, x, x, DTYPE_Q8_0, table, 8, 2, 2, 1, 0, 2, 1.0f);
    if (!isnan(y[0]) || !isnan(y[1])) FAIL("attention_rows with a q8_0 KV cache did not produce NaN");
    log_set_level(LOG_LEVEL_INFO);
}

int main(void)
{
    threadpool_t *pools[3] = { NULL, NULL, NULL };
    kern_level_t supported;

    /* First call: CLLM_KERNELS picks the level, clamped to what the CPU supports. */
    setenv("CLLM_KERNELS", "avx2", 1);
    supported = kern_level_supported();
    if (kern_level() != (supported < KERN_LEVEL_AVX2 ? supported : KERN_LEVEL_AVX2))
        FAIL("CLLM_KERNELS=avx2 gave level %s (supported %s)", kern_level_name(kern_level()),
             kern_level_name(supported));
    if (strcmp(kern_level_name(KERN_LEVEL_REF), "ref") || strcmp(kern_level_name(KERN_LEVEL_AVX2), "avx2") ||
        strcmp(kern_level_name(KERN_LEVEL_AVX512), "avx512"))
        FAIL("kern_level_name");
    log_set_level(LOG_LEVEL_ERROR);
    kern_set_level(KERN_LEVEL_AVX512);
    log_set_level(LOG_LEVEL_INFO);
    if (kern_level() != supported) FAIL("kern_set_level(avx512) not clamped to %s", kern_level_name(supported));

    for (int p = 0; p < 3; p++) {
        if (threadpool_create(p + 1, &pools[p]) != CLLM_OK) {
            fprintf(stderr, "test_kernels: cannot create a pool of %d threads\n", p + 1);
            return 1;
        }
    }
    for (int lv = KERN_LEVEL_REF; lv <= KERN_LEVEL_AVX512; lv++) {
        int before = n_failed;
        if ((kern_level_t)lv > supported) {
            printf("test_kernels: level %s skipped: this CPU/OS does not support it\n", kern_level_name(lv));
            continue;
        }
        kern_set_level((kern_level_t)lv);
        cur_level = kern_level_name(lv);
        test_matmul_accuracy(pools[1]);
        test_matmul_invariance(pools, 3);
        test_prep_bitwise();
        test_packed(pools, 3);
        test_probes();
        test_elementwise();
        test_rope();
        test_attention();
        test_attention_rows();
        test_bad_args();
        printf("test_kernels: level %s: %s\n", cur_level, n_failed == before ? "ok" : "FAILED");
    }
    for (int p = 0; p < 3; p++) threadpool_destroy(pools[p]);
    if (n_failed) {
        fprintf(stderr, "test_kernels: %d failure(s)\n", n_failed);
        return 1;
    }
    printf("test_kernels: ok\n");
    return 0;
}

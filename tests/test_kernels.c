/* test_kernels.c: every kernel at every level this CPU supports, against the scalar reference
 * and against an independent double-precision oracle; batch invariance; dispatch.
 *
 * Tolerances (|got - want| <= tol, "mag" = sum of |products| of the dot, so the bound scales
 * with the cancellation-free size of the sum):
 *   matmul, float weights:   1e-5 * mag (vs the double oracle and vs the reference level)
 *   matmul, Q8_0/Q4_0:       1e-6 * mag, where the oracle uses the same quantized x and exact
 *                            integer block dots (only float rounding differs); and the whole
 *                            product vs the unquantized x within the quantization bound
 *                            sum_b (d_x,b / 2) * sum |w| + 1e-5 * mag
 *   rmsnorm:                 1e-6 * |want| + 1e-7 * max|want|
 *   silu_mul:                1e-6 * |want| + 1e-30
 *   add, rope:               bitwise equal to the reference (same operations, no FMA);
 *                            rope vs a double oracle: 2e-6 * max|x| (|x| <= 2)
 *   attention:               5e-6 * max|V| vs a naive oracle (scores, softmax, weighted sum,
 *                            in double) and between levels
 * (observed errors are 10-30x below these on random data)
 * Bitwise: matmul row i alone == row i inside batches of other sizes with other neighbours ==
 * with 1, 2 or 3 threads == columns computed in arbitrary ranges; attention repeated, split by
 * heads, other block size, scrambled block table (unused pool slots hold NaN) == same bits.
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
            s += (double)xr[t2] * wr[t2];
            a += fabs((double)xr[t2] * wr[t2]);
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
    for (int i = 0; i < m && is_quant(t); i++)
        kern_quantize_row_q8(qs + (size_t)i * k, qd + (size_t)i * (k / DTYPE_QK), x + (size_t)i * k, k);
    for (int trial = 0; trial < 4; trial++) {
        int j0 = 0;
        memset(y, 0, sizeof(float) * (size_t)m * n);
        while (j0 < n) {
            int j1 = j0 + 1 + (int)(rng_u32() % (trial == 0 ? 3u : 40u));
            if (j1 > n) j1 = n;
            switch (t) {
            case DTYPE_F32: vt->matmul_f32(y, x, w, m, n, k, j0, j1); break;
            case DTYPE_F16: vt->matmul_f16(y, x, w, m, n, k, j0, j1); break;
            case DTYPE_BF16: vt->matmul_bf16(y, x, w, m, n, k, j0, j1); break;
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
        test_elementwise();
        test_rope();
        test_attention();
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

/* kernels.c: runtime dispatch of the compute kernels and the threaded matmul wrapper.
 *
 * Owns: the detected CPU level (CPUID and XCR0, once, under pthread_once), the level in use
 * (CLLM_KERNELS or kern_set_level, never above the detected one), the table of entry points per
 * level, argument validation (bad arguments log an error and fill the output with NaN rather
 * than crash), the per-thread scratch buffer holding x quantized for Q8_0/Q4_0 weights, and
 * the split of kern_matmul over the pool: contiguous ranges of output columns, never k.
 * Invariants: a call reads the level once and uses that level's table throughout, so a
 * concurrent kern_set_level cannot mix levels inside one product; the per-element math never
 * depends on the thread count, the column range or m (see kernels_impl.h).
 * A further level (AMX) is one more enum value in kernels.h, one more table here whose entries
 * default to the AVX-512 ones, and its detection: CPUID leaf 7 EDX (AMX-TILE, -INT8, -BF16),
 * XCR0 bits 17-18, and arch_prctl(ARCH_REQ_XCOMP_PERM) granted before the first tile use. */
#include "kernels/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kernels/kernels_impl.h"
#include "kernels/ref/kernels_ref.h"
#include "kernels/x86/matmul_avx2.h"
#include "kernels/x86/matmul_avx512.h"
#include "kernels/x86/ops_avx2.h"
#include "kernels/x86/ops_avx512.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KERN_X86 1
#else
#define KERN_X86 0
#endif

/* Below this many multiply-adds a product runs on the calling thread: the hand-off to the
 * workers (about a microsecond) would cost more than it saves. */
#define KERN_MATMUL_MIN_PARALLEL 16384
/* Output columns are handed to threads in units of this many (whole tiles, aligned rows). */
#define KERN_MATMUL_COL_UNIT 16
/* Stack buffer for quantized x when the heap scratch cannot be had (bytes). */
#define KERN_STACK_SCRATCH 16384

static const kern_vtable_t kern_vtable_avx2 = {
    .matmul_f32 = kern_avx2_matmul_f32,
    .matmul_f16 = kern_avx2_matmul_f16,
    .matmul_bf16 = kern_avx2_matmul_bf16,
    .matmul_q8_0 = kern_avx2_matmul_q8_0,
    .matmul_q4_0 = kern_avx2_matmul_q4_0,
    .rmsnorm = kern_avx2_rmsnorm,
    .silu_mul = kern_avx2_silu_mul,
    .add = kern_avx2_add,
    .rope = kern_avx2_rope,
    .attention = kern_avx2_attention,
};

static const kern_vtable_t kern_vtable_avx512 = {
    .matmul_f32 = kern_avx512_matmul_f32,
    .matmul_f16 = kern_avx512_matmul_f16,
    .matmul_bf16 = kern_avx512_matmul_bf16,
    .matmul_q8_0 = kern_avx512_matmul_q8_0,
    .matmul_q4_0 = kern_avx512_matmul_q4_0,
    .rmsnorm = kern_avx512_rmsnorm,
    .silu_mul = kern_avx512_silu_mul,
    .add = kern_avx512_add,
    .rope = kern_avx512_rope,
    .attention = kern_avx512_attention,
};

static const kern_vtable_t *const kern_vtables[] = { &kern_vtable_ref, &kern_vtable_avx2, &kern_vtable_avx512 };
static const char *const kern_level_names[] = { "ref", "avx2", "avx512" };

static pthread_once_t kern_once = PTHREAD_ONCE_INIT;
static kern_level_t kern_supported = KERN_LEVEL_REF;
static atomic_int kern_current = KERN_LEVEL_REF;
static pthread_key_t kern_scratch_key;
static int kern_scratch_key_ok;

#if KERN_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* CPUID says what the CPU has; XCR0 says whether the OS saves the registers on a context
 * switch (bits 1, 2: SSE and AVX state; 5, 6, 7: opmask and the upper zmm halves). */
static kern_level_t detect_level(void)
{
#if KERN_X86
    unsigned a, b, c, d, max_sub;
    uint64_t xcr0;
    int avx512;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return KERN_LEVEL_REF;
    if (!((c >> 12) & 1) || !((c >> 27) & 1) || !((c >> 28) & 1) || !((c >> 29) & 1))
        return KERN_LEVEL_REF; /* FMA, OSXSAVE, AVX, F16C */
    xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return KERN_LEVEL_REF;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return KERN_LEVEL_REF;
    if (!((b >> 5) & 1)) return KERN_LEVEL_REF; /* AVX2 */
    max_sub = a;
    avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) /* F DQ BW VL */
             && ((c >> 11) & 1)                                                        /* VNNI */
             && (xcr0 & 0xe6) == 0xe6;
    if (avx512 && max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1)) /* BF16 */
        return KERN_LEVEL_AVX512;
    return KERN_LEVEL_AVX2;
#else
    return KERN_LEVEL_REF;
#endif
}

/* A thread's buffer for quantized x, kept between calls (freed when the thread exits). */
typedef struct {
    void *buf;  /* 64-byte aligned */
    size_t cap; /* bytes */
} kern_scratch_t;

static void scratch_release(void *p)
{
    kern_scratch_t *s = p;
    free(s->buf);
    free(s);
}

static void kern_init(void)
{
    const char *env = getenv("CLLM_KERNELS");
    kern_level_t level;
    kern_supported = detect_level();
    level = kern_supported;
    if (env && *env) {
        int found = 0;
        for (int i = 0; i <= KERN_LEVEL_AVX512; i++) {
            if (!strcmp(env, kern_level_names[i])) {
                found = 1;
                level = (kern_level_t)i;
            }
        }
        if (!found) {
            log_warn("kernels: CLLM_KERNELS=%s is not ref, avx2 or avx512; using %s", env,
                     kern_level_names[kern_supported]);
            level = kern_supported;
        } else if (level > kern_supported) {
            log_warn("kernels: CLLM_KERNELS=%s but this CPU/OS supports only %s; using %s", env,
                     kern_level_names[kern_supported], kern_level_names[kern_supported]);
            level = kern_supported;
        }
    }
    atomic_store(&kern_current, (int)level);
    kern_scratch_key_ok = pthread_key_create(&kern_scratch_key, scratch_release) == 0;
    log_info("kernels: using %s (supported: %s)", kern_level_names[level], kern_level_names[kern_supported]);
}

kern_level_t kern_level(void)
{
    pthread_once(&kern_once, kern_init);
    return (kern_level_t)atomic_load_explicit(&kern_current, memory_order_relaxed);
}

const char *kern_level_name(kern_level_t level)
{
    if ((int)level < 0 || level > KERN_LEVEL_AVX512) return "unknown";
    return kern_level_names[level];
}

kern_level_t kern_level_supported(void)
{
    pthread_once(&kern_once, kern_init);
    return kern_supported;
}

void kern_set_level(kern_level_t level)
{
    pthread_once(&kern_once, kern_init);
    if ((int)level < 0) level = KERN_LEVEL_REF;
    if (level > kern_supported) {
        log_warn("kernels: level %s requested but only %s is supported", kern_level_name(level),
                 kern_level_names[kern_supported]);
        level = kern_supported;
    }
    atomic_store(&kern_current, (int)level);
}

static const kern_vtable_t *kern_vt(void)
{
    return kern_vtables[kern_level()];
}

const kern_vtable_t *kern_vtable_for_level(int level)
{
    kern_level_t supported = kern_level_supported();
    if (level < KERN_LEVEL_REF) level = KERN_LEVEL_REF;
    if (level > (int)supported) level = (int)supported;
    return kern_vtables[level];
}

/* The calling thread's scratch buffer of at least `bytes` (64-byte aligned), or NULL. */
static void *scratch_get(size_t bytes)
{
    kern_scratch_t *s;
    if (!kern_scratch_key_ok) return NULL;
    s = pthread_getspecific(kern_scratch_key);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) return NULL;
        if (pthread_setspecific(kern_scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < bytes) {
        size_t cap = (bytes + 4095) / 4096 * 4096;
        free(s->buf);
        s->cap = 0;
        s->buf = aligned_alloc(64, cap);
        if (!s->buf) return NULL;
        s->cap = cap;
    }
    return s->buf;
}

static void fill_nan(float *y, size_t n)
{
    if (!y) return;
    for (size_t i = 0; i < n; i++) y[i] = NAN;
}

typedef struct {
    const kern_vtable_t *vt;
    float *y;           /* (m, n) */
    const float *x;     /* (m, k) */
    const void *w;      /* (n, k) of wtype */
    dtype_t wtype;
    int m, n, k;
    int8_t *xqs;        /* (m, k) x quantized (Q8_0/Q4_0 weights only) */
    float *xd;          /* (m, k / 32) its block scales */
} matmul_job_t;

static void matmul_columns(const matmul_job_t *job, int j0, int j1)
{
    const kern_vtable_t *vt = job->vt;
    switch (job->wtype) {
    case DTYPE_F32: vt->matmul_f32(job->y, job->x, job->w, job->m, job->n, job->k, j0, j1); break;
    case DTYPE_F16: vt->matmul_f16(job->y, job->x, job->w, job->m, job->n, job->k, j0, j1); break;
    case DTYPE_BF16: vt->matmul_bf16(job->y, job->x, job->w, job->m, job->n, job->k, j0, j1); break;
    case DTYPE_Q8_0:
        vt->matmul_q8_0(job->y, job->xqs, job->xd, job->w, job->m, job->n, job->k, j0, j1);
        break;
    case DTYPE_Q4_0:
        vt->matmul_q4_0(job->y, job->xqs, job->xd, job->w, job->m, job->n, job->k, j0, j1);
        break;
    }
}

static void matmul_task(void *ctx, int ith, int nth)
{
    const matmul_job_t *job = ctx;
    int64_t units = (job->n + KERN_MATMUL_COL_UNIT - 1) / KERN_MATMUL_COL_UNIT;
    int64_t j0 = units * ith / nth * KERN_MATMUL_COL_UNIT, j1 = units * (ith + 1) / nth * KERN_MATMUL_COL_UNIT;
    if (j1 > job->n) j1 = job->n;
    if (j0 < j1) matmul_columns(job, (int)j0, (int)j1);
}

static void quantize_task(void *ctx, int ith, int nth)
{
    const matmul_job_t *job = ctx;
    int i0 = (int)((int64_t)job->m * ith / nth), i1 = (int)((int64_t)job->m * (ith + 1) / nth);
    for (int i = i0; i < i1; i++)
        kern_quantize_row_q8(job->xqs + (size_t)i * job->k, job->xd + (size_t)i * (job->k / DTYPE_QK),
                             job->x + (size_t)i * job->k, job->k);
}

/* Quantizes x if needed, then splits the columns over the pool. */
static void matmul_run(threadpool_t *pool, matmul_job_t *job)
{
    int parallel = pool && threadpool_n_threads(pool) > 1 &&
                   (int64_t)job->m * job->n * job->k >= KERN_MATMUL_MIN_PARALLEL;
    if (job->xqs) {
        if (parallel && job->m > 1 && (int64_t)job->m * job->k >= 65536) threadpool_run(pool, quantize_task, job);
        else quantize_task(job, 0, 1);
    }
    if (parallel) threadpool_run(pool, matmul_task, job);
    else matmul_task(job, 0, 1);
}

void kern_matmul(threadpool_t *pool, float *y, const float *x, const void *w, dtype_t wtype, int m, int n, int k)
{
    matmul_job_t job;
    int quant = wtype == DTYPE_Q8_0 || wtype == DTYPE_Q4_0;
    if (m <= 0 || n <= 0) return;
    if (!y || !x || !w || k < 0 || !dtype_is_supported(wtype) || (quant && k % DTYPE_QK != 0)) {
        log_error("kern_matmul: bad arguments (y %p x %p w %p type %s m %d n %d k %d)", (void *)y, (const void *)x,
                  w, dtype_name(wtype), m, n, k);
        fill_nan(y, (size_t)m * n);
        return;
    }
    if (k == 0) {
        memset(y, 0, (size_t)m * n * sizeof(float));
        return;
    }
    memset(&job, 0, sizeof(job));
    job.vt = kern_vt();
    job.y = y;
    job.x = x;
    job.w = w;
    job.wtype = wtype;
    job.n = n;
    job.k = k;
    if (!quant) {
        job.m = m;
        matmul_run(pool, &job);
        return;
    }
    {
        size_t nb = (size_t)k / DTYPE_QK, row_bytes = (size_t)k + nb * sizeof(float);
        size_t qs_bytes = ((size_t)m * k + 63) / 64 * 64;
        char *buf = scratch_get(qs_bytes + (size_t)m * nb * sizeof(float));
        if (buf) {
            job.m = m;
            job.xqs = (int8_t *)buf;
            job.xd = (float *)(buf + qs_bytes);
            matmul_run(pool, &job);
            return;
        }
        /* No heap scratch: a few rows at a time through a stack buffer. Same results (each
         * row's math does not depend on the other rows), more passes over W. */
        {
            _Alignas(64) char stack_buf[KERN_STACK_SCRATCH];
            int rows = (int)(sizeof(stack_buf) / row_bytes);
            if (rows < 1) {
                log_error("kern_matmul: out of memory for quantized x (m %d, k %d)", m, k);
                fill_nan(y, (size_t)m * n);
                return;
            }
            for (int i0 = 0; i0 < m; i0 += rows) {
                int mr = m - i0 < rows ? m - i0 : rows;
                job.m = mr;
                job.x = x + (size_t)i0 * k;
                job.y = y + (size_t)i0 * n;
                job.xqs = (int8_t *)stack_buf;
                job.xd = (float *)(stack_buf + (size_t)rows * k);
                matmul_run(pool, &job);
            }
        }
    }
}

void kern_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    if (n <= 0) return;
    kern_vt()->rmsnorm(out, x, w, n, eps);
}

void kern_silu_mul(float *out, const float *gate, const float *up, int n)
{
    if (n <= 0) return;
    kern_vt()->silu_mul(out, gate, up, n);
}

void kern_add(float *out, const float *a, const float *b, int n)
{
    if (n <= 0) return;
    kern_vt()->add(out, a, b, n);
}

void kern_rope(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int neox)
{
    if (n_heads <= 0) return;
    if (!x || !inv_freq || head_dim <= 0 || head_dim % 2 != 0) {
        log_error("kern_rope: bad arguments (x %p inv_freq %p head_dim %d: must be even and positive)", (void *)x,
                  (const void *)inv_freq, head_dim);
        fill_nan(x, head_dim > 0 ? (size_t)n_heads * head_dim : 0);
        return;
    }
    kern_vt()->rope(x, n_heads, head_dim, pos, inv_freq, neox);
}

void kern_attention(float *out, const float *q, const void *k_pool, const void *v_pool, dtype_t kv_type,
                    const int32_t *block_table, int n_ctx, int block_size, int n_head, int n_head_kv,
                    int head_dim, int h0, int h1, float scale)
{
    if (h0 >= h1) return;
    if (!out || !q || n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 || h0 < 0 || h1 > n_head ||
        head_dim <= 0 || block_size <= 0 || n_ctx < 0 || (n_ctx > 0 && (!k_pool || !v_pool || !block_table)) ||
        (kv_type != DTYPE_F32 && kv_type != DTYPE_F16 && kv_type != DTYPE_BF16)) {
        log_error("kern_attention: bad arguments (kv %s n_ctx %d block %d heads %d/%d dim %d range [%d, %d))",
                  dtype_name(kv_type), n_ctx, block_size, n_head, n_head_kv, head_dim, h0, h1);
        /* Only heads that are surely inside out (n_head, head_dim). */
        if (out && head_dim > 0 && h0 >= 0 && h1 <= n_head)
            fill_nan(out + (size_t)h0 * head_dim, (size_t)(h1 - h0) * head_dim);
        return;
    }
    kern_vt()->attention(out, q, k_pool, v_pool, kv_type, block_table, n_ctx, block_size, n_head, n_head_kv,
                         head_dim, h0, h1, scale);
}

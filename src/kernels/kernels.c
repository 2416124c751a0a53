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
#include <sys/mman.h>

#include "core/log.h"
#include "kernels/kernels_impl.h"
#include "kernels/ref/kernels_ref.h"
#include "kernels/x86/matmul_avx2.h"
#include "kernels/x86/matmul_avx512.h"
#include "kernels/x86/matmul_x16_avx512.h"
#include "kernels/x86/ops_avx2.h"
#include "kernels/x86/ops_avx512.h"
#include "kernels/x86/probe_avx2.h"
#include "kernels/x86/probe_avx512.h"

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
/* Stack buffer for prepared x when the heap scratch cannot be had (bytes). */
#define KERN_STACK_SCRATCH 16384
/* Most products one kern_matmul_mats job runs together. */
#define KERN_MATMUL_MAX_PARTS 8

static const kern_vtable_t kern_vtable_avx2 = {
    .matmul_f32 = kern_avx2_matmul_f32,
    .matmul_f16 = kern_avx2_matmul_f16,
    .matmul_bf16 = kern_avx2_matmul_bf16,
    .matmul_q8_0 = kern_avx2_matmul_q8_0,
    .matmul_q4_0 = kern_avx2_matmul_q4_0,
    .matmul_q8_0_x16 = NULL, /* Q8_0/Q4_0 weights stay unpacked at this level */
    .matmul_q4_0_x16 = NULL,
    .quantize_row_q8 = kern_quantize_row_q8,
    .round_row_bf16 = kern_round_row_bf16,
    .x16_quantize_row = kern_x16_quantize_row,
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
    .matmul_q8_0_x16 = kern_avx512_matmul_q8_0_x16,
    .matmul_q4_0_x16 = kern_avx512_matmul_q4_0_x16,
    .quantize_row_q8 = kern_avx512_quantize_row_q8,
    .round_row_bf16 = kern_avx512_round_row_bf16,
    .x16_quantize_row = kern_avx512_x16_quantize_row,
    .rmsnorm = kern_avx512_rmsnorm,
    .silu_mul = kern_avx512_silu_mul,
    .add = kern_avx512_add,
    .rope = kern_avx512_rope,
    .attention = kern_avx512_attention,
    .attention_rows = kern_avx512_attention_rows,
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

/* How x is prepared for a weight type: as is (F32, F16), rounded to bf16 (BF16), quantized per
 * block (Q8_0/Q4_0 unpacked) or quantized into the x16 layout (packed Q8_0, packed Q4_0). */
typedef enum { PREP_F32, PREP_BF16, PREP_Q8, PREP_X16_Q8, PREP_X16_Q4 } prep_t;

typedef struct {
    float *y;      /* (m, n) */
    const void *w; /* (n, k) of wtype, or its x16 packing */
    dtype_t wtype;
    int n;
    int64_t unit0; /* first column unit of this product in the job's concatenated columns */
} matmul_part_t;

typedef struct {
    const kern_vtable_t *vt;
    prep_t prep;
    int n_parts;
    matmul_part_t part[KERN_MATMUL_MAX_PARTS];
    int64_t n_units;    /* column units of all parts */
    const float *x;     /* (m, k) */
    int m, k;
    void *xp;           /* x prepared: PREP_BF16 (m, k) bf16; PREP_Q8 (m, k) int8; PREP_X16_* (m, x16 row) */
    float *xd;          /* PREP_Q8: (m, k / 32) block scales */
    size_t xp_row;      /* bytes of one prepared row in xp */
} matmul_job_t;

static prep_t prep_for(dtype_t wtype, int packed)
{
    switch (wtype) {
    case DTYPE_BF16: return PREP_BF16;
    case DTYPE_Q8_0: return packed ? PREP_X16_Q8 : PREP_Q8;
    case DTYPE_Q4_0: return packed ? PREP_X16_Q4 : PREP_Q8;
    default: return PREP_F32;
    }
}

/* Bytes of one row of x prepared as p (0 for PREP_F32, which uses x itself). */
static size_t prep_row_bytes(prep_t p, int k)
{
    switch (p) {
    case PREP_BF16: return (size_t)k * sizeof(uint16_t);
    case PREP_Q8: return (size_t)k + (size_t)(k / DTYPE_QK) * sizeof(float);
    case PREP_X16_Q8:
    case PREP_X16_Q4: return (size_t)kern_x16_groups(k) * KERN_X16_XBYTES;
    default: return 0;
    }
}

static void part_columns(const matmul_job_t *job, const matmul_part_t *pt, int j0, int j1)
{
    const kern_vtable_t *vt = job->vt;
    int m = job->m, n = pt->n, k = job->k;
    switch (job->prep) {
    case PREP_BF16: vt->matmul_bf16(pt->y, job->xp, pt->w, m, n, k, j0, j1); break;
    case PREP_X16_Q8: vt->matmul_q8_0_x16(pt->y, job->xp, pt->w, m, n, k, j0, j1); break;
    case PREP_X16_Q4: vt->matmul_q4_0_x16(pt->y, job->xp, pt->w, m, n, k, j0, j1); break;
    case PREP_Q8:
        if (pt->wtype == DTYPE_Q8_0) vt->matmul_q8_0(pt->y, job->xp, job->xd, pt->w, m, n, k, j0, j1);
        else vt->matmul_q4_0(pt->y, job->xp, job->xd, pt->w, m, n, k, j0, j1);
        break;
    case PREP_F32:
        if (pt->wtype == DTYPE_F32) vt->matmul_f32(pt->y, job->x, pt->w, m, n, k, j0, j1);
        else vt->matmul_f16(pt->y, job->x, pt->w, m, n, k, j0, j1);
        break;
    }
}

/* Thread ith's share: a contiguous range of column units over the concatenated products. */
static void matmul_task(void *ctx, int ith, int nth)
{
    const matmul_job_t *job = ctx;
    int64_t u0 = job->n_units * ith / nth, u1 = job->n_units * (ith + 1) / nth;
    for (int p = 0; p < job->n_parts && u0 < u1; p++) {
        const matmul_part_t *pt = &job->part[p];
        int64_t pu = (pt->n + KERN_MATMUL_COL_UNIT - 1) / KERN_MATMUL_COL_UNIT;
        int64_t a = u0 > pt->unit0 ? u0 : pt->unit0, b = u1 < pt->unit0 + pu ? u1 : pt->unit0 + pu;
        if (a < b) {
            int64_t j0 = (a - pt->unit0) * KERN_MATMUL_COL_UNIT, j1 = (b - pt->unit0) * KERN_MATMUL_COL_UNIT;
            part_columns(job, pt, (int)j0, (int)(j1 < pt->n ? j1 : pt->n));
        }
    }
}

static void prep_task(void *ctx, int ith, int nth)
{
    const matmul_job_t *job = ctx;
    const kern_vtable_t *vt = job->vt;
    int k = job->k;
    int i0 = (int)((int64_t)job->m * ith / nth), i1 = (int)((int64_t)job->m * (ith + 1) / nth);
    for (int i = i0; i < i1; i++) {
        const float *xr = job->x + (size_t)i * k;
        char *xp = (char *)job->xp + (size_t)i * job->xp_row;
        switch (job->prep) {
        case PREP_BF16: vt->round_row_bf16((uint16_t *)xp, xr, k); break;
        case PREP_Q8:
            vt->quantize_row_q8((int8_t *)job->xp + (size_t)i * k, job->xd + (size_t)i * (k / DTYPE_QK), xr, k);
            break;
        case PREP_X16_Q8: vt->x16_quantize_row(xp, xr, k, DTYPE_Q8_0); break;
        case PREP_X16_Q4: vt->x16_quantize_row(xp, xr, k, DTYPE_Q4_0); break;
        case PREP_F32: break;
        }
    }
}

/* Prepares x if needed, then splits the columns over the pool. */
static void matmul_run(threadpool_t *pool, matmul_job_t *job)
{
    int64_t macs = 0;
    int parallel;
    for (int p = 0; p < job->n_parts; p++) macs += (int64_t)job->m * job->part[p].n * job->k;
    parallel = pool && threadpool_n_threads(pool) > 1 && macs >= KERN_MATMUL_MIN_PARALLEL;
    if (job->prep != PREP_F32) {
        if (parallel && job->m > 1 && (int64_t)job->m * job->k >= 65536) threadpool_run(pool, prep_task, job);
        else prep_task(job, 0, 1);
    }
    if (parallel) threadpool_run(pool, matmul_task, job);
    else matmul_task(job, 0, 1);
}

/* Runs the products of job (parts, prep, k set; x, m given) with x prepared in the calling
 * thread's scratch, or a few rows at a time through a stack buffer when there is none (same
 * results: each row's math does not depend on the other rows; more passes over W). */
static void matmul_exec(threadpool_t *pool, matmul_job_t *job, const float *x, int m)
{
    size_t row = prep_row_bytes(job->prep, job->k), xp_bytes = ((size_t)m * row + 127) / 64 * 64;
    char *buf;
    job->xp_row = job->prep == PREP_Q8 ? (size_t)job->k : row;
    if (job->prep == PREP_F32) {
        job->x = x;
        job->m = m;
        matmul_run(pool, job);
        return;
    }
    buf = scratch_get(xp_bytes);
    if (buf) {
        job->x = x;
        job->m = m;
        job->xp = buf;
        job->xd = (float *)(buf + ((size_t)m * job->k + 63) / 64 * 64);
        matmul_run(pool, job);
        return;
    }
    {
        _Alignas(64) char stack_buf[KERN_STACK_SCRATCH];
        int rows = (int)((sizeof(stack_buf) - 64) / row);
        matmul_part_t saved[KERN_MATMUL_MAX_PARTS];
        if (rows < 1) {
            log_error("kern_matmul: out of memory for prepared x (m %d, k %d)", m, job->k);
            for (int p = 0; p < job->n_parts; p++) fill_nan(job->part[p].y, (size_t)m * job->part[p].n);
            return;
        }
        memcpy(saved, job->part, sizeof(saved));
        for (int i0 = 0; i0 < m; i0 += rows) {
            int mr = m - i0 < rows ? m - i0 : rows;
            job->m = mr;
            job->x = x + (size_t)i0 * job->k;
            for (int p = 0; p < job->n_parts; p++) job->part[p].y = saved[p].y + (size_t)i0 * saved[p].n;
            job->xp = stack_buf;
            job->xd = (float *)(stack_buf + ((size_t)rows * job->k + 63) / 64 * 64);
            matmul_run(pool, job);
        }
        memcpy(job->part, saved, sizeof(saved));
    }
}

static void job_add_part(matmul_job_t *job, float *y, const void *w, dtype_t wtype, int n)
{
    matmul_part_t *pt = &job->part[job->n_parts++];
    pt->y = y;
    pt->w = w;
    pt->wtype = wtype;
    pt->n = n;
    pt->unit0 = job->n_units;
    job->n_units += (n + KERN_MATMUL_COL_UNIT - 1) / KERN_MATMUL_COL_UNIT;
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
    job.k = k;
    job.prep = prep_for(wtype, 0);
    job_add_part(&job, y, w, wtype, n);
    matmul_exec(pool, &job, x, m);
}

/* ---- weight matrices repacked at load ---- */

void kern_matrix_init(kern_matrix_t *mat, const void *data, dtype_t type, int n, int k)
{
    memset(mat, 0, sizeof(*mat));
    mat->type = type;
    mat->n = n;
    mat->k = k;
    mat->data = data;
}

#define KERN_HUGE_PAGE ((size_t)2 << 20)

void *kern_alloc_huge(size_t bytes)
{
    size_t align = bytes >= KERN_HUGE_PAGE ? KERN_HUGE_PAGE : 64;
    void *p;
    /* C11 wants the size a multiple of the alignment: the rounding is address space, never touched */
    bytes = bytes == 0 ? align : (bytes + align - 1) / align * align;
    p = aligned_alloc(align, bytes);
#ifdef MADV_HUGEPAGE
    /* a hint: where transparent huge pages are off it fails, and 4 KiB pages are used */
    if (p && align == KERN_HUGE_PAGE) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

typedef struct {
    kern_matrix_t *mat;
    int x16; /* 1: repack into the x16 layout; 0: copy the rows as they are */
} pack_job_t;

static void pack_task(void *ctx, int ith, int nth)
{
    const pack_job_t *job = ctx;
    kern_matrix_t *mat = job->mat;
    int j0 = (int)((int64_t)mat->n * ith / nth), j1 = (int)((int64_t)mat->n * (ith + 1) / nth);
    size_t row = dtype_row_bytes(mat->type, (size_t)mat->k);
    if (j0 >= j1) return;
    if (job->x16) kern_x16_pack_rows(mat->packed, mat->data, mat->type, mat->k, j0, j1);
    else memcpy((char *)mat->packed + (size_t)j0 * row, (const char *)mat->data + (size_t)j0 * row, (size_t)(j1 - j0) * row);
}

status_t kern_matrix_pack(threadpool_t *pool, kern_matrix_t *mat)
{
    const kern_vtable_t *vt = kern_vt();
    pack_job_t job;
    size_t bytes;
    int quant = mat->type == DTYPE_Q8_0 || mat->type == DTYPE_Q4_0;
    if (mat->packed) return CLLM_OK;
    if (!mat->data || mat->n <= 0 || mat->k <= 0 || !dtype_is_supported(mat->type)) return CLLM_OK;
    if (quant && mat->k % DTYPE_QK != 0) return CLLM_OK;
    job.mat = mat;
    job.x16 = (mat->type == DTYPE_Q8_0 && vt->matmul_q8_0_x16) || (mat->type == DTYPE_Q4_0 && vt->matmul_q4_0_x16);
    if (quant && !job.x16) return CLLM_OK; /* no layout of this level for it: read in place */
    bytes = job.x16 ? (size_t)mat->n * (size_t)kern_x16_groups(mat->k) * kern_x16_wgroup_bytes(mat->type)
                    : (size_t)mat->n * dtype_row_bytes(mat->type, (size_t)mat->k);
    mat->packed = kern_alloc_huge(bytes);
    if (!mat->packed)
        return cllm_error(CLLM_ERR_NOMEM, "kernels: cannot allocate %zu bytes to repack a %s matrix", bytes,
                          dtype_name(mat->type));
    threadpool_run(pool, pack_task, &job);
    mat->packed_bytes = bytes;
    mat->packed_level = kern_level();
    return CLLM_OK;
}

void kern_matrix_release(kern_matrix_t *mat)
{
    if (!mat) return;
    free(mat->packed);
    mat->packed = NULL;
    mat->packed_bytes = 0;
}

/* 1 if w can go through a job as is (the checks kern_matmul makes). */
static int mat_ok(const kern_matrix_t *w)
{
    int quant = w->type == DTYPE_Q8_0 || w->type == DTYPE_Q4_0;
    return w->data && w->n > 0 && w->k > 0 && dtype_is_supported(w->type) && (!quant || w->k % DTYPE_QK == 0);
}

void kern_matmul_mats(threadpool_t *pool, int n_mats, float *const *y, const float *x, const kern_matrix_t *const *w,
                      int m)
{
    matmul_job_t job;
    kern_level_t level = kern_level();
    int i = 0;
    if (m <= 0 || n_mats <= 0) return;
    memset(&job, 0, sizeof(job));
    job.vt = kern_vtables[level];
    /* Consecutive products with the same k and x preparation share one job (one preparation of
     * x, one hand-off to the pool); anything else runs on its own through kern_matmul. */
    while (i < n_mats) {
        const kern_matrix_t *w0 = w[i];
        int packed0 = w0->packed && w0->packed_level == level;
        if (!x || !y[i] || !mat_ok(w0)) {
            kern_matmul(pool, y[i], x, w0->data, w0->type, m, w0->n, w0->k); /* reports, fills NaN */
            i++;
            continue;
        }
        job.n_parts = 0;
        job.n_units = 0;
        job.k = w0->k;
        job.prep = prep_for(w0->type, packed0);
        while (i < n_mats && job.n_parts < KERN_MATMUL_MAX_PARTS) {
            const kern_matrix_t *wi = w[i];
            int packed = wi->packed && wi->packed_level == level;
            if (!y[i] || !mat_ok(wi) || wi->k != job.k || packed != packed0 || prep_for(wi->type, packed) != job.prep)
                break;
            job_add_part(&job, y[i], packed ? wi->packed : wi->data, wi->type, wi->n);
            i++;
        }
        matmul_exec(pool, &job, x, m);
    }
}

void kern_matmul_mat(threadpool_t *pool, float *y, const float *x, const kern_matrix_t *w, int m)
{
    kern_matmul_mats(pool, 1, &y, x, &w, m);
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

void kern_attention_rows(float *out, const float *q, int ld, int n_q, int pos0, const void *k_pool,
                         const void *v_pool, dtype_t kv_type, const int32_t *block_table, int block_size,
                         int n_head, int n_head_kv, int head_dim, int h0, int h1, float scale)
{
    const kern_vtable_t *vt;
    if (n_q <= 0 || h0 >= h1) return;
    if (!out || !q || n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 || h0 < 0 || h1 > n_head ||
        head_dim <= 0 || block_size <= 0 || pos0 < 0 || ld < n_head * head_dim || !k_pool || !v_pool ||
        !block_table || (kv_type != DTYPE_F32 && kv_type != DTYPE_F16 && kv_type != DTYPE_BF16)) {
        log_error("kern_attention_rows: bad arguments (kv %s n_q %d pos0 %d ld %d block %d heads %d/%d dim %d range "
                  "[%d, %d))", dtype_name(kv_type), n_q, pos0, ld, block_size, n_head, n_head_kv, head_dim, h0, h1);
        if (out && head_dim > 0 && h0 >= 0 && h1 <= n_head && ld >= n_head * head_dim)
            for (int i = 0; i < n_q; i++) fill_nan(out + (size_t)i * ld + (size_t)h0 * head_dim, (size_t)(h1 - h0) * head_dim);
        return;
    }
    vt = kern_vt();
    if (vt->attention_rows) {
        vt->attention_rows(out, q, ld, n_q, pos0, k_pool, v_pool, kv_type, block_table, block_size, n_head, n_head_kv,
                           head_dim, h0, h1, scale);
        return;
    }
    for (int i = 0; i < n_q; i++)
        vt->attention(out + (size_t)i * ld, q + (size_t)i * ld, k_pool, v_pool, kv_type, block_table, pos0 + i + 1,
                      block_size, n_head, n_head_kv, head_dim, h0, h1, scale);
}

double kern_peak_run(kern_peak_t kind, int64_t n_iter)
{
    if (n_iter <= 0) return 0.0;
    switch (kern_level()) {
    case KERN_LEVEL_AVX512: return kern_avx512_peak_run((int)kind, n_iter);
    case KERN_LEVEL_AVX2: return kern_avx2_peak_run((int)kind, n_iter);
    default: return kern_ref_peak_run((int)kind, n_iter);
    }
}

kern_peak_t kern_matmul_peak_kind(dtype_t wtype)
{
    if (wtype == DTYPE_Q8_0 || wtype == DTYPE_Q4_0) return KERN_PEAK_INT8_DOT;
    if (wtype == DTYPE_BF16 && kern_level() >= KERN_LEVEL_AVX512) return KERN_PEAK_BF16_DOT;
    return KERN_PEAK_F32_FMA;
}

uint64_t kern_read_sum(const void *p, size_t n)
{
    if (!p || n == 0) return 0;
    switch (kern_level()) {
    case KERN_LEVEL_AVX512: return kern_avx512_read_sum(p, n);
    case KERN_LEVEL_AVX2: return kern_avx2_read_sum(p, n);
    default: return kern_ref_read_sum(p, n);
    }
}

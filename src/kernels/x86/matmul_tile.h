/* matmul_tile.h: the loop structure shared by the SIMD matmul files (matmul_avx2.c,
 * matmul_avx512.c): tile sizes, the dispatch from run-time tile shapes to compile-time ones, and
 * the loop nest over x blocks, W tiles and x row groups.
 * Owns no arithmetic: only preprocessor macros, so it is safe to include from files compiled
 * with any ISA flags. The per-element arithmetic is the includer's micro-kernel; this loop nest
 * only decides which rows and columns share a tile, which never changes a result. */
#ifndef CLLM_KERNELS_X86_MATMUL_TILE_H
#define CLLM_KERNELS_X86_MATMUL_TILE_H

/* Fully unrolls the loops over the rows and columns of a tile, so that the accumulators live
 * in registers (gcc -O2 does not unroll them by itself; clang 14 needs "unroll(full)": its
 * plain "unroll" unrolled them by 2 and left the accumulators in memory, 3x slower). */
#if defined(__clang__)
#define KERN_UNROLL _Pragma("clang loop unroll(full)")
#else
#define KERN_UNROLL _Pragma("GCC unroll 4")
#endif
/* The same for loops of up to 8 or 16 iterations. */
#if defined(__clang__)
#define KERN_UNROLL8 _Pragma("clang loop unroll(full)")
#define KERN_UNROLL16 _Pragma("clang loop unroll(full)")
#else
#define KERN_UNROLL8 _Pragma("GCC unroll 8")
#define KERN_UNROLL16 _Pragma("GCC unroll 16")
#endif

#define TILE_R 4 /* most rows of x in a tile */
#define TILE_C 4 /* most rows of W (output columns) in a tile */
/* x rows processed per pass over W: about this many bytes of x, so that they stay in L2 (1 MiB
 * a core on Zen 4) while every W tile streams past them once. Half of L2 rather than a quarter:
 * for k = 8192 (w_down) a quarter held only 16 rows, and W was read again for every 16 rows. */
#define X_BLOCK_BYTES (512 * 1024)
/* Up to this many rows of x (decode), W is walked one row at a time: a single sequential
 * stream, which the hardware prefetcher follows at full memory bandwidth (tiles of several W
 * rows interleave several short streams and ran at about half of it). */
#define SMALL_M 4

/* Expands to a switch calling EXPR with compile-time R (1..4) and C (1..4). */
#define TILE_SWITCH(rr, cc, EXPR)                                     \
    switch ((rr) * 8 + (cc)) {                                        \
    case 1 * 8 + 1: { const int R = 1, C = 1; EXPR; } break;          \
    case 1 * 8 + 2: { const int R = 1, C = 2; EXPR; } break;          \
    case 1 * 8 + 3: { const int R = 1, C = 3; EXPR; } break;          \
    case 1 * 8 + 4: { const int R = 1, C = 4; EXPR; } break;          \
    case 2 * 8 + 1: { const int R = 2, C = 1; EXPR; } break;          \
    case 2 * 8 + 2: { const int R = 2, C = 2; EXPR; } break;          \
    case 2 * 8 + 3: { const int R = 2, C = 3; EXPR; } break;          \
    case 2 * 8 + 4: { const int R = 2, C = 4; EXPR; } break;          \
    case 3 * 8 + 1: { const int R = 3, C = 1; EXPR; } break;          \
    case 3 * 8 + 2: { const int R = 3, C = 2; EXPR; } break;          \
    case 3 * 8 + 3: { const int R = 3, C = 3; EXPR; } break;          \
    case 3 * 8 + 4: { const int R = 3, C = 4; EXPR; } break;          \
    case 4 * 8 + 1: { const int R = 4, C = 1; EXPR; } break;          \
    case 4 * 8 + 2: { const int R = 4, C = 2; EXPR; } break;          \
    case 4 * 8 + 3: { const int R = 4, C = 3; EXPR; } break;          \
    case 4 * 8 + 4: { const int R = 4, C = 4; EXPR; } break;          \
    default: break;                                                   \
    }

/* The loop nest over y (m, n) columns [j0, j1) (m, j0, j1 in scope): x in blocks of rows that
 * fit L2; inside, W in tiles of tc columns, and for each, x rows in groups of tr (tr <= TILE_R,
 * tc <= TILE_C, chosen by the caller for its register file; tc = 1 for m <= SMALL_M). CALL sees
 * i, j (the tile's first row and column), R, C (its shape) and pf: whether to prefetch the next
 * tile (into L2), true on the first row group of a multi-column tile (one-column tiles are a
 * single stream the hardware prefetches). */
#define DRIVE(row_bytes, tr, tc, CALL)                                                  \
    do {                                                                                \
        int mb_ = (int)(X_BLOCK_BYTES / (row_bytes));                                   \
        mb_ = mb_ < TILE_R ? TILE_R : mb_ / TILE_R * TILE_R;                            \
        for (int i0 = 0; i0 < m; i0 += mb_) {                                           \
            int i1 = m - i0 < mb_ ? m : i0 + mb_;                                       \
            for (int j = j0; j < j1; j += (tc)) {                                       \
                int cc = j1 - j < (tc) ? j1 - j : (tc);                                 \
                for (int i = i0; i < i1; i += (tr)) {                                   \
                    int rr = i1 - i < (tr) ? i1 - i : (tr), pf = i == i0 && cc > 1;     \
                    TILE_SWITCH(rr, cc, CALL);                                          \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    } while (0)

#endif

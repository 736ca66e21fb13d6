/* gemm.c — single-precision matrix product (CBLAS, or the portable blocked GEMM built on the
 * micro-kernel of kernels.h), matmul with its backward rule, and the thread count shared by
 * OpenMP and the BLAS. */
#include "gemm/kernels.h"
#include "core/tensor_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CNNLAB_CBLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- threads */

static int thread_count;

void cl_set_threads(int n) {
  if (n < 1) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 0 ? (int)cores : 1;
  }
  thread_count = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#ifdef CNNLAB_CBLAS
  /* OpenBLAS always runs one thread: its idle workers spin on sched_yield after each call,
   * taking a core from the OpenMP threads (13% of a 2-thread training step, where only the
   * small linear layer called it). cl_gemm splits big products over OpenMP instead. */
  openblas_set_num_threads(1);
#endif
}

int cl_get_threads(void) {
  if (!thread_count) {
    const char *env = getenv("CNNLAB_THREADS");
    cl_set_threads(env ? atoi(env) : 0);
  }
  return thread_count;
}

/* ---------------------------------------------------------------- the micro-kernel */

/* The tile product of kernels.h for an MR×NR tile; MR and NR are constants at every call, so
 * GCC unrolls the i and j loops, keeps the MR×NR accumulators in registers and turns each row
 * update into NR/width vector FMAs with A's value broadcast: per step p, NR/width loads of B,
 * MR broadcasts of A, MR·NR/width FMAs. (For the AVX-512 tile, 8×32: 2 loads, 8 broadcasts,
 * 16 FMAs into 16 zmm accumulators — measured at 98% of the core's peak from L1.)
 * "fused" is a constant too: the baseline instantiation has no FMA instruction, and fmaf
 * would be a library call there. */

/* The sanitizers' checks on every element of a register tile would stop GCC from keeping the
 * accumulators in registers and make the kernel ~80x slower (check-asan's time); the packing
 * around it, which computes every address, stays checked. */
#define CL_UNCHECKED __attribute__((no_sanitize("address", "undefined")))

static inline __attribute__((always_inline)) CL_UNCHECKED void
kernel_tile(const int mr, const int nr, const int fused, int k, const float *restrict a,
            const float *restrict b, int ldb, float *restrict c, int ldc, int accumulate) {
  float acc[CL_KERNEL_MAX_MR][CL_KERNEL_MAX_NR];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++)
      acc[i][j] = 0;
  for (int p = 0; p < k; p++) {
    const float *bp = b + (size_t)p * ldb;
    for (int i = 0; i < mr; i++) {
      float av = a[p * mr + i];
      for (int j = 0; j < nr; j++) /* fmaf: ISO C (-std=c11) forbids fusing a·b + c itself */
        acc[i][j] = fused ? fmaf(av, bp[j], acc[i][j]) : acc[i][j] + av * bp[j];
    }
  }
  if (accumulate) {
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nr; j++)
        c[(size_t)i * ldc + j] += acc[i][j];
  } else {
    for (int i = 0; i < mr; i++)
      for (int j = 0; j < nr; j++)
        c[(size_t)i * ldc + j] = acc[i][j];
  }
}

/* One instantiation per instruction set. Tile shapes measured in L1 on the test machine
 * (GFLOP/s; some shapes GCC 12 compiles with the accumulators spilled to memory):
 *   AVX-512: 8×32 114 (6×32 and 12×32 the same; 6×16 spills: 4)
 *   AVX2:    4×24 116 (3×32 113; 6×16 spills: 4)   baseline: 4×8 31 (6×8 spills: 5)
 * Among equals, MR = 8 or 4 divides the channel counts of common networks. */
static CL_UNCHECKED void kernel_generic(int k, const float *a, const float *b, int ldb, float *c, int ldc,
                           int accumulate) {
  kernel_tile(4, 8, 0, k, a, b, ldb, c, ldc, accumulate); /* no FMA in the baseline */
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86_KERNELS 1
__attribute__((target("arch=x86-64-v4"))) static CL_UNCHECKED void
kernel_avx512(int k, const float *a, const float *b, int ldb, float *c, int ldc, int accumulate) {
  kernel_tile(8, 32, 1, k, a, b, ldb, c, ldc, accumulate);
}

__attribute__((target("arch=x86-64-v3"))) static CL_UNCHECKED void
kernel_avx2(int k, const float *a, const float *b, int ldb, float *c, int ldc, int accumulate) {
  kernel_tile(4, 24, 1, k, a, b, ldb, c, ldc, accumulate);
}
#endif

static const cl_microkernel kernels[] = {
#ifdef HAVE_X86_KERNELS
    {"avx512", 8, 32, kernel_avx512},
    {"avx2", 4, 24, kernel_avx2},
#endif
    {"generic", 4, 8, kernel_generic},
};
#define KERNEL_COUNT ((int)(sizeof kernels / sizeof kernels[0]))

static int cpu_runs(const cl_microkernel *k) {
#ifdef HAVE_X86_KERNELS
  __builtin_cpu_init();
  if (!strcmp(k->isa, "avx512"))
    return __builtin_cpu_supports("x86-64-v4");
  if (!strcmp(k->isa, "avx2"))
    return __builtin_cpu_supports("x86-64-v3");
#endif
  return !strcmp(k->isa, "generic");
}

static const cl_microkernel *kernel_in_use;

int cl_microkernel_select(const char *isa) {
  int automatic = !isa || !strcmp(isa, "auto");
  for (int i = 0; i < KERNEL_COUNT; i++) {
    if (!automatic && strcmp(kernels[i].isa, isa))
      continue;
    if (cpu_runs(&kernels[i])) {
      kernel_in_use = &kernels[i];
      return 0;
    }
    if (!automatic)
      return cl_fail("micro-kernel %s: this CPU (or this build) cannot run it", isa);
  }
  if (!automatic)
    return cl_fail("micro-kernel %s: unknown (avx512, avx2, generic or auto)", isa);
  kernel_in_use = &kernels[KERNEL_COUNT - 1];
  return 0;
}

const cl_microkernel *cl_microkernel_get(void) {
  if (!kernel_in_use) {
    /* CNNLAB_KERNEL=avx2 (say) runs another kernel than the best, to compare them */
    const char *env = getenv("CNNLAB_KERNEL");
    if (!env || cl_microkernel_select(env))
      cl_microkernel_select("auto");
  }
  return kernel_in_use;
}

/* The common case of cl_pack_a: a whole sliver of MR contiguous rows, alpha = 1. With MR a
 * constant GCC turns the loop into vector loads of the MR rows and an in-register interleave
 * (about 0.1 ns a float); with MR a variable it stays scalar, 5× slower. */
static inline __attribute__((always_inline)) void interleave_rows(const int mr, const float *a,
                                                                  int lda, int k, float *out) {
  for (int p = 0; p < k; p++)
    for (int i = 0; i < mr; i++)
      out[(size_t)p * mr + i] = a[(size_t)i * lda + p];
}

void cl_pack_a(const float *a, int lda, int trans, int m, int k, float alpha, int mr, float *out) {
  int full = !trans && alpha == 1 && (mr == 8 || mr == 4) ? m / mr * mr : 0;
  for (int i0 = 0; i0 < full; i0 += mr) {
    if (mr == 8)
      interleave_rows(8, a + (size_t)i0 * lda, lda, k, out + (size_t)i0 * k);
    else
      interleave_rows(4, a + (size_t)i0 * lda, lda, k, out + (size_t)i0 * k);
  }
  for (int i0 = full; i0 < m; i0 += mr) {
    int rows = m - i0 < mr ? m - i0 : mr;
    float *sliver = out + (size_t)i0 * k;
    if (!trans) { /* row i0+i is contiguous: interleave mr rows */
      for (int p = 0; p < k; p++)
        for (int i = 0; i < mr; i++)
          sliver[(size_t)p * mr + i] = i < rows ? alpha * a[(size_t)(i0 + i) * lda + p] : 0.0f;
    } else { /* column i0+i is contiguous: copy runs of mr */
      for (int p = 0; p < k; p++)
        for (int i = 0; i < mr; i++)
          sliver[(size_t)p * mr + i] = i < rows ? alpha * a[(size_t)p * lda + i0 + i] : 0.0f;
    }
  }
}

/* ---------------------------------------------------------------- portable gemm */

/* C = alpha·op(A)·op(B) + beta·C, blocked as in BLIS/GotoBLAS: a KC×NC block of op(B) is
 * packed into NR-wide slivers (kept in L2/L3), an MC×KC block of alpha·op(A) into MR-tall
 * slivers (L2), and the micro-kernel runs over every MR×NR tile of C, adding into it.
 * Threads share out the NR-wide column slivers of a block; every element of C is summed by
 * one thread in the same order (KC blocks in turn, p ascending inside), so the result does not
 * depend on the thread count. Packing buffers are per thread and grow only (they are the
 * GEMM's scratch, outside cl_alloc's counts, because GEMM may run inside parallel regions
 * whose allocator is not thread-safe). */
#define GEMM_KC CL_GEMM_KC
#define GEMM_MC 128
#define GEMM_NC 2048

static _Thread_local float *pack_buf;
static _Thread_local size_t pack_cap; /* floats */

static float *pack_space(size_t floats) {
  if (floats > pack_cap) {
    free(pack_buf);
    pack_buf = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    pack_cap = pack_buf ? floats : 0;
  }
  return pack_buf;
}

/* out[p·stride + i] = a[i·lda + p] for 8 rows i: interleave_rows' loop into a wider sliver
 * (the 8 are a piece of its NR columns). */
static void interleave_8_rows(const float *a, int lda, int k, float *out, int stride) {
  for (int p = 0; p < k; p++)
    for (int i = 0; i < 8; i++)
      out[(size_t)p * stride + i] = a[(size_t)i * lda + p];
}

/* op(B)[p0 .. p0+kc) × [j0 .. j0+nc) → slivers of kc×nr floats, zero columns past nc. A
 * transposed B (a linear layer's input, when C is computed as its transpose) has its columns
 * as rows: whole slivers take them 8 rows at a time, which the vectoriser interleaves in
 * registers (the element-by-element loop below took a fifth of LfF's MLP inference). */
static void pack_b(const float *b, int ldb, int trans, int p0, int kc, int j0, int nc, int nr,
                   float *out) {
  for (int s = 0; s * nr < nc; s++) {
    float *sliver = out + (size_t)s * kc * nr;
    int cols = nc - s * nr < nr ? nc - s * nr : nr;
    if (trans && cols == nr && nr % 8 == 0) {
      for (int i = 0; i < nr; i += 8)
        interleave_8_rows(b + (size_t)(j0 + s * nr + i) * ldb + p0, ldb, kc, sliver + i, nr);
      continue;
    }
    for (int p = 0; p < kc; p++)
      for (int j = 0; j < nr; j++) {
        size_t at = trans ? (size_t)(j0 + s * nr + j) * ldb + (p0 + p)
                          : (size_t)(p0 + p) * ldb + (j0 + s * nr + j);
        sliver[(size_t)p * nr + j] = j < cols ? b[at] : 0.0f;
      }
  }
}

/* C += alpha·op(A)·op(B), C already scaled by beta. */
static void portable_accumulate(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                                int lda, const float *b, int ldb, float *c, int ldc) {
  const cl_microkernel *uk = cl_microkernel_get();
  int mr = uk->mr, nr = uk->nr;
  int mc_max = GEMM_MC / mr * mr;
  size_t b_len = (size_t)GEMM_KC * (((n < GEMM_NC ? n : GEMM_NC) + nr - 1) / nr * nr);
  size_t a_len = (size_t)GEMM_KC * (((m < mc_max ? m : mc_max) + mr - 1) / mr * mr);
  float *bp = pack_space(b_len + a_len);
  if (!bp) { /* out of memory for scratch: the unblocked definition, slow but right */
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        float sum = 0;
        for (int p = 0; p < k; p++)
          sum += (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]) *
                 (tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j]);
        c[(size_t)i * ldc + j] += alpha * sum;
      }
    return;
  }
  float *ap = bp + b_len;
  for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
    int kc = k - p0 < GEMM_KC ? k - p0 : GEMM_KC;
    for (int j0 = 0; j0 < n; j0 += GEMM_NC) {
      int nc = n - j0 < GEMM_NC ? n - j0 : GEMM_NC;
      pack_b(b, ldb, tb, p0, kc, j0, nc, nr, bp);
      for (int i0 = 0; i0 < m; i0 += mc_max) {
        int mc = m - i0 < mc_max ? m - i0 : mc_max;
        cl_pack_a(ta ? a + p0 * (size_t)lda + i0 : a + (size_t)i0 * lda + p0, lda, ta, mc, kc,
                  alpha, mr, ap);
        int slivers = (nc + nr - 1) / nr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)mc * nc * kc > 1e6)
#endif
        for (int s = 0; s < slivers; s++) {
          float tile[CL_KERNEL_MAX_MR * CL_KERNEL_MAX_NR];
          int cols = nc - s * nr < nr ? nc - s * nr : nr;
          const float *bs = bp + (size_t)s * kc * nr;
          for (int i = 0; i < mc; i += mr) {
            int rows = mc - i < mr ? mc - i : mr;
            float *ct = c + (size_t)(i0 + i) * ldc + j0 + s * nr;
            if (rows == mr && cols == nr) {
              uk->run(kc, ap + (size_t)i * kc, bs, nr, ct, ldc, 1);
              continue;
            }
            uk->run(kc, ap + (size_t)i * kc, bs, nr, tile, nr, 0);
            for (int r = 0; r < rows; r++)
              for (int q = 0; q < cols; q++)
                ct[(size_t)r * ldc + q] += tile[r * nr + q];
          }
        }
      }
    }
  }
}

/* Floats the micro-kernel's tiles cover for an m×n C: rows rounded up to MR, columns to NR. */
static double tiled_area(int m, int n, int mr, int nr) {
  return (double)((m + mr - 1) / mr * mr) * ((n + nr - 1) / nr * nr);
}

/* The tiles are MR×NR with NR the wide side (8×32 on AVX-512), so a C with few columns wastes
 * much of each tile: LfF's fc1 (C 128 × 100) fills 100 of every 128 columns. Its transpose
 * (100 × 128) fills 100 of 104 rows and every column, and ran 15% faster. When the transpose
 * tiles at least a tenth fewer floats, Cᵀ = op(B)ᵀ·op(A)ᵀ is computed in scratch, which starts
 * as Cᵀ (after beta) and is copied back at the end. Every element then goes through the same
 * operations in the same order — fmaf(a, b, s) = fmaf(b, a, s), the same K blocks added the same
 * way — so the bits do not change; only with alpha = 1, because alpha is folded into the
 * packed A operand, which the transpose swaps. */
void cl_gemm_portable(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
  if (m <= 0 || n <= 0)
    return;
  for (int i = 0; i < m; i++) { /* beta first (beta = 0 never reads C, as in BLAS) */
    float *ci = c + (size_t)i * ldc;
    if (beta == 0)
      memset(ci, 0, sizeof(float) * (size_t)n);
    else if (beta != 1)
      for (int j = 0; j < n; j++)
        ci[j] *= beta;
  }
  if (k <= 0 || alpha == 0)
    return;
  const cl_microkernel *uk = cl_microkernel_get();
  float *t = NULL;
  if (alpha == 1 && tiled_area(n, m, uk->mr, uk->nr) < 0.9 * tiled_area(m, n, uk->mr, uk->nr))
    t = malloc(sizeof(float) * (size_t)m * (size_t)n);
  if (!t) { /* as asked (or no memory for the transpose) */
    portable_accumulate(ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    return;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++)
      t[(size_t)j * m + i] = c[(size_t)i * ldc + j];
  portable_accumulate(!tb, !ta, n, m, k, 1.0f, b, ldb, a, lda, t, m);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++)
      c[(size_t)i * ldc + j] = t[(size_t)j * m + i];
  free(t);
}

typedef void gemm_fn(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);

static void gemm_one(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
#ifdef CNNLAB_CBLAS
  if (k <= 0) { /* some BLAS builds mishandle K = 0 */
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++)
        c[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * c[(size_t)i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  cl_gemm_portable(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

/* Products below this many multiply-adds run on one thread (the seed network's linear layer,
 * 1.5 M, among them): a parallel region costs more than they do. */
#define GEMM_SPLIT_MIN_WORK (1 << 23)
#define GEMM_SPLIT_ROWS 64 /* rows (or columns) of C per piece, at least */

/* Where big products run. OpenBLAS's kernels are chosen by the core type it detects, or by
 * OPENBLAS_CORETYPE; held to AVX2 ("Haswell") on an AVX-512 CPU, its sgemm ran LfF's fc1
 * (128 × 100 × 2,352) at 89 GFLOP/s on one core where the micro-kernel GEMM above ran it at
 * 123 (and 143 against 120 when OpenBLAS used its own AVX-512 kernels; on the AVX2 path the
 * micro-kernel GEMM was the slower, 68 against 89). So big products go to the micro-kernel
 * exactly when its vectors are wider than OpenBLAS's: our AVX-512 kernel against an OpenBLAS
 * core without AVX-512. CNNLAB_GEMM=openblas or =microkernel fixes the choice, to compare. */
static int big_on_microkernel = -1;

#ifdef CNNLAB_CBLAS
static int openblas_has_avx512(void) {
  static const char *const wide[] = {"skylakex", "cooperlake", "sapphirerapids", "zen4"};
  const char *core = openblas_get_corename();
  char lower[32] = {0};
  for (int i = 0; core && core[i] && i < 31; i++)
    lower[i] = (char)(core[i] >= 'A' && core[i] <= 'Z' ? core[i] + 32 : core[i]);
  for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
    if (!strcmp(lower, wide[i]))
      return 1;
  return 0;
}
#endif

int cl_gemm_big_on_microkernel(int on) {
  int was = big_on_microkernel;
  big_on_microkernel = on;
  return was;
}

static int big_products_on_microkernel(void) {
  if (big_on_microkernel < 0) {
#ifdef CNNLAB_CBLAS
    const char *env = getenv("CNNLAB_GEMM");
    if (env && !strcmp(env, "openblas"))
      big_on_microkernel = 0;
    else if (env && !strcmp(env, "microkernel"))
      big_on_microkernel = 1;
    else
      big_on_microkernel = !strcmp(cl_microkernel_get()->isa, "avx512") && !openblas_has_avx512();
#else
    big_on_microkernel = 1;
#endif
  }
  return big_on_microkernel;
}

/* C (M×N) = alpha·op(A)·op(B) + beta·C, row-major. A big product outside a parallel region is
 * cut into pieces of C's rows (or columns, when C is wide), one single-threaded product each,
 * taken by the OpenMP threads. Every element of C is still one product's, over all of K, and
 * the cut depends on the shape only: the same bits for any thread count. */
void cl_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
  if (m <= 0 || n <= 0)
    return;
  int threads = cl_get_threads();
  int by_rows = m >= n;
  int len = by_rows ? m : n;
  int pieces = len / GEMM_SPLIT_ROWS;
  if (pieces > 16)
    pieces = 16;
#ifdef _OPENMP
  if (omp_in_parallel())
    threads = 1;
#endif
  if (pieces < 2 || (double)m * n * k < GEMM_SPLIT_MIN_WORK) {
    gemm_one(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  /* The micro-kernel GEMM sums every element in the same order however C is cut, so one
   * thread runs it whole (packing the weights once) and more threads take pieces as below: its
   * own sharing of column slivers, one short parallel region per K block, left LfF's MLP slower
   * on two threads than on one. */
  gemm_fn *piece_gemm = gemm_one;
  if (big_products_on_microkernel()) {
    if (threads == 1) {
      cl_gemm_portable(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      return;
    }
    piece_gemm = cl_gemm_portable;
  }
  /* OpenBLAS: cut the same way with one thread, so that the bits do not depend on the count */
  int size = (len + pieces - 1) / pieces;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
#else
  (void)threads;
#endif
  for (int p = 0; p < pieces; p++) {
    int lo = p * size, cnt = len - lo < size ? len - lo : size;
    if (cnt <= 0)
      continue;
    if (by_rows) /* rows lo.. of op(A): A's rows, or its columns when transposed */
      piece_gemm(ta, tb, cnt, n, k, alpha, ta ? a + lo : a + (size_t)lo * lda, lda, b, ldb, beta,
                 c + (size_t)lo * ldc, ldc);
    else /* columns lo.. of op(B) */
      piece_gemm(ta, tb, m, cnt, k, alpha, a, lda, tb ? b + (size_t)lo * ldb : b + lo, ldb, beta,
                 c + lo, ldc);
  }
}

const char *cl_gemm_backend(void) {
#ifdef CNNLAB_CBLAS
  return big_products_on_microkernel() ? "openblas, big products on the micro-kernel" : "openblas";
#else
  return "portable";
#endif
}

/* ---------------------------------------------------------------- matmul */

/* a M×K, b K×N → M×N; backward: ga = g·bᵀ, gb = aᵀ·g. */
static int matmul_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *a = n->saved[0], *b = n->saved[1];
  int m = (int)a->shape[0], k = (int)a->shape[1], nn = (int)b->shape[1];
  if (n->inputs[0]) {
    if (!(gin[0] = cl_empty(CL_FLOAT32, 2, a->shape)))
      return -1;
    cl_gemm(0, 1, m, k, nn, 1, cl_f32(g), nn, cl_f32(b), nn, 0, cl_f32(gin[0]), k);
  }
  if (n->inputs[1]) {
    if (!(gin[1] = cl_empty(CL_FLOAT32, 2, b->shape)))
      return -1;
    cl_gemm(1, 0, k, nn, m, 1, cl_f32(a), k, cl_f32(g), nn, 0, cl_f32(gin[1]), nn);
  }
  return 0;
}

cl_tensor *cl_matmul(cl_tensor *a, cl_tensor *b) {
  char b1[96], b2[96];
  if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0])
    return (void)cl_fail("matmul: expected M×K and K×N matrices, got %s and %s",
                         cl_shape_str(a, b1, sizeof b1), cl_shape_str(b, b2, sizeof b2)),
           NULL;
  if (a->shape[0] > INT32_MAX || a->shape[1] > INT32_MAX || b->shape[1] > INT32_MAX)
    return (void)cl_fail("matmul: matrices beyond 2^31 rows or columns are not supported"), NULL;
  cl_tensor *x = cl_float_contiguous(a), *y = cl_float_contiguous(b);
  int64_t shape[2] = {a->shape[0], b->shape[1]};
  cl_tensor *out = x && y ? cl_empty(CL_FLOAT32, 2, shape) : NULL;
  if (out)
    cl_gemm(0, 0, (int)shape[0], (int)shape[1], (int)a->shape[1], 1, cl_f32(x), (int)a->shape[1],
            cl_f32(y), (int)shape[1], 0, cl_f32(out), (int)shape[1]);
  cl_tensor *in[2] = {a, b}, *saved[2] = {x, y};
  if (out)
    cl_record(&out, NULL, "matmul", matmul_backward, 2, in, 2, saved);
  cl_release(x);
  cl_release(y);
  return out;
}

/* kernels.h — internal to the core and its tests: the register-blocked matrix micro-kernel
 * that the portable GEMM (gemm.c) and the stride-1 convolution (ops/conv_lower.c) are built on.
 *
 * One call computes an MR×NR tile of a product from a packed A sliver and a B block:
 *
 *   c[i·ldc + j] (= or +=) Σ_{p<k} a[p·MR + i] · b[p·ldb + j]        i < MR, j < NR
 *
 * A is packed ("k rows of MR values", see cl_pack_a); B is read in place, NR consecutive
 * floats from each of k rows ldb apart, so a row-major matrix (an im2col buffer, say) serves
 * as it lies. The kernel is plain C that GCC unrolls and vectorises; it is compiled once per
 * instruction set (AVX-512, AVX2+FMA, baseline) and the best one the CPU runs is chosen at
 * start, so one binary runs on any x86-64 (and the baseline one on anything else). */
#ifndef CNNLAB_KERNELS_H
#define CNNLAB_KERNELS_H

/* Loops compiled for AVX-512 and AVX2 as well as the baseline, the best one picked when the
 * program starts (an ifunc). For im2col's and col2im's rows, which work in L1/L2 and were
 * bound by the baseline's 16-byte stores (a training step 2% faster). Not for ReLU or pooling:
 * they stream from memory, and measured no faster (ReLU slower). GCC only; the sanitizer
 * builds keep one version. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define CL_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CL_VECTOR_CLONES
#endif

/* No kernel's tile is larger than this (callers keep a tile buffer of this size). */
#define CL_KERNEL_MAX_MR 8
#define CL_KERNEL_MAX_NR 32

typedef void (*cl_kernel_fn)(int k, const float *a, const float *b, int ldb, float *c, int ldc,
                             int accumulate);

typedef struct cl_microkernel {
  const char *isa; /* "avx512", "avx2" or "generic" */
  int mr, nr;      /* tile: rows from A, columns from B */
  cl_kernel_fn run;
} cl_microkernel;

/* The kernel in use: the best for this CPU unless cl_microkernel_select chose another. */
const cl_microkernel *cl_microkernel_get(void);
/* Selects "avx512", "avx2", "generic", or "auto" (the best this CPU runs). Returns -1 with a
 * message when the CPU cannot run the one asked for. For tests and benchmarks; not
 * thread-safe. */
int cl_microkernel_select(const char *isa);

/* Packs rows [0, m) × columns [0, k) of alpha·op(A) into ⌈m/MR⌉ slivers of k×MR floats
 * (sliver s holds rows s·MR …, zero rows past m): out[s·k·MR + p·MR + i] = alpha·A[s·MR+i, p].
 * A[i, p] is a[i·lda + p], or a[p·lda + i] when trans. out holds cl_packed_a_len(m, k) floats. */
void cl_pack_a(const float *a, int lda, int trans, int m, int k, float alpha, int mr, float *out);
static inline long cl_packed_a_len(int m, int k, int mr) {
  return (long)((m + mr - 1) / mr) * mr * k;
}

/* Depth of the K blocks of the portable GEMM, and of the deep convolutions on the
 * micro-kernel (ops/conv_lower.c): a B panel of KC rows × NR floats (24 KB for AVX2's 4×24
 * tile, 32 KB for AVX-512's 8×32) stays in the core's L1 while the A slivers go past it. */
#define CL_GEMM_KC 256

/* The portable GEMM (what cl_gemm runs when built with BLAS=none), callable in any build so
 * that the tests can hold it against the reference. Same contract as cl_gemm. */
void cl_gemm_portable(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc);

/* Whether cl_gemm runs products big enough to be shared among threads on the micro-kernel
 * GEMM (1) or on the BLAS (0); -1 decides again (CNNLAB_GEMM, else the ISAs). Returns the
 * setting before. For the tests, which check both routes. */
int cl_gemm_big_on_microkernel(int on);

#endif

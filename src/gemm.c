/* gemm.c — single-precision matrix product (CBLAS or a portable kernel), matmul with its
 * backward rule, and the thread count shared by OpenMP and the BLAS. */
#include "tensor_impl.h"

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
  openblas_set_num_threads(n);
#endif
}

int cl_get_threads(void) {
  if (!thread_count) {
    const char *env = getenv("CNNLAB_THREADS");
    cl_set_threads(env ? atoi(env) : 0);
  }
  return thread_count;
}

/* ---------------------------------------------------------------- gemm */

#ifndef CNNLAB_CBLAS
/* Portable kernel: C = alpha·op(A)·op(B) + beta·C. Blocks of B stay in cache while rows of A
 * stream past; the innermost loop runs along contiguous rows so the compiler vectorises it.
 * Each thread owns a band of rows of C, so results do not depend on the thread count. */
#define GEMM_KC 256
#define GEMM_NC 512

static void gemm_portable(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                          int lda, const float *b, int ldb, float beta, float *c, int ldc) {
#pragma omp parallel for schedule(static) if ((long)m * n * k > 32768)
  for (int i = 0; i < m; i++) {
    float *ci = c + (size_t)i * ldc;
    if (beta == 0)
      memset(ci, 0, sizeof(float) * (size_t)n);
    else if (beta != 1)
      for (int j = 0; j < n; j++)
        ci[j] *= beta;
  }
  if (!tb) {
    for (int j0 = 0; j0 < n; j0 += GEMM_NC) {
      int jn = n - j0 < GEMM_NC ? n - j0 : GEMM_NC;
      for (int p0 = 0; p0 < k; p0 += GEMM_KC) {
        int pn = k - p0 < GEMM_KC ? k - p0 : GEMM_KC;
#pragma omp parallel for schedule(static) if ((long)m * jn * pn > 32768)
        for (int i = 0; i < m; i++) {
          float *ci = c + (size_t)i * ldc + j0;
          for (int p = p0; p < p0 + pn; p++) {
            float av = alpha * (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
            const float *bp = b + (size_t)p * ldb + j0;
            for (int j = 0; j < jn; j++)
              ci[j] += av * bp[j];
          }
        }
      }
    }
  } else {
    /* op(B) = Bᵀ: each C element is a dot product of two contiguous rows */
#pragma omp parallel for schedule(static) if ((long)m * n * k > 32768)
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        const float *bj = b + (size_t)j * ldb;
        float s = 0;
        if (!ta) {
          const float *ai = a + (size_t)i * lda;
          for (int p = 0; p < k; p++)
            s += ai[p] * bj[p];
        } else {
          for (int p = 0; p < k; p++)
            s += a[(size_t)p * lda + i] * bj[p];
        }
        c[(size_t)i * ldc + j] += alpha * s;
      }
    }
  }
}
#endif

void cl_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
  if (m <= 0 || n <= 0)
    return;
  (void)cl_get_threads();
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
  gemm_portable(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

const char *cl_gemm_backend(void) {
#ifdef CNNLAB_CBLAS
  return "openblas";
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

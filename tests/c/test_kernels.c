/* test_kernels.c — every optimised kernel against a plain reference:
 *   the micro-kernel of each instruction set this CPU runs, its packing, the portable GEMM and
 *   cl_gemm; the convolution on the micro-kernel and as im2col + GEMM, forward and backward;
 *   the separable max-pool (values and the saved positions, ties, NaN); the ReLU kernels; the
 *   block cache of the allocator.
 * Tolerances: float sums of k products are compared with a double reference within
 * 1e-5·(1 + Σ|a·b|) per element (a few float roundings per term, whatever the order); pooling and
 * ReLU must match exactly (they only move values). */
#include "check.h"
#include "cnnlab.h"
#include "gemm/kernels.h"
#include "ops/conv.h"
#include "ops/pool.h"
#include "random_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *random_floats(cl_rng *r, long n, float lo, float hi) {
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  for (long i = 0; i < n; i++)
    p[i] = lo + (hi - lo) * cl_rng_uniform_f(r);
  return p;
}

/* Worst |got − want| / (1 + scale) over n values. */
static double worst_error(const float *got, const double *want, const double *scale, long n) {
  double worst = 0;
  for (long i = 0; i < n; i++) {
    double e = fabs((double)got[i] - want[i]) / (1 + scale[i]);
    if (e > worst || e != e)
      worst = e != e ? INFINITY : e;
  }
  return worst;
}

static double tensor_diff(const cl_tensor *a, const cl_tensor *b) {
  double worst = 0;
  for (int64_t i = 0; i < cl_numel(a); i++) {
    double d = fabs(cl_item_at(a, i) - cl_item_at(b, i)) / (1 + fabs(cl_item_at(b, i)));
    if (d > worst || d != d)
      worst = d != d ? INFINITY : d;
  }
  return worst;
}

static const char *isas[] = {"avx512", "avx2", "generic"};

/* ---------------------------------------------------------------- micro-kernel and packing */

static void test_microkernels(void) {
  cl_rng r;
  cl_rng_seed(&r, 3, 3);
  int tried = 0;
  for (int s = 0; s < 3; s++) {
    if (cl_microkernel_select(isas[s]))
      continue; /* this CPU or build lacks it */
    tried++;
    const cl_microkernel *uk = cl_microkernel_get();
    int mr = uk->mr, nr = uk->nr, ks[] = {1, 7, 64, 301};
    for (int t = 0; t < 4; t++) {
      int k = ks[t], ldb = nr + 5, ldc = nr + 3;
      float *a = random_floats(&r, (long)k * mr, -1, 1),
            *b = random_floats(&r, (long)k * ldb, -1, 1);
      float *c = random_floats(&r, (long)mr * ldc, -1, 1);
      double want[CL_KERNEL_MAX_MR * CL_KERNEL_MAX_NR], scale[CL_KERNEL_MAX_MR * CL_KERNEL_MAX_NR];
      float got[CL_KERNEL_MAX_MR * CL_KERNEL_MAX_NR];
      for (int accumulate = 0; accumulate < 2; accumulate++) {
        float *cc = malloc(sizeof(float) * (size_t)(mr * ldc));
        memcpy(cc, c, sizeof(float) * (size_t)(mr * ldc));
        for (int i = 0; i < mr; i++)
          for (int j = 0; j < nr; j++) {
            double sum = accumulate ? c[i * ldc + j] : 0, mag = fabs(sum);
            for (int p = 0; p < k; p++) {
              sum += (double)a[p * mr + i] * b[p * ldb + j];
              mag += fabs((double)a[p * mr + i] * b[p * ldb + j]);
            }
            want[i * nr + j] = sum;
            scale[i * nr + j] = mag;
          }
        uk->run(k, a, b, ldb, cc, ldc, accumulate);
        for (int i = 0; i < mr; i++)
          for (int j = 0; j < nr; j++)
            got[i * nr + j] = cc[i * ldc + j];
        double e = worst_error(got, want, scale, (long)mr * nr);
        CHECK(e < 1e-5, "micro-kernel %s %d×%d, k = %d, accumulate %d: error %g", uk->isa, mr, nr,
              k, accumulate, e);
        /* the columns past NR and the rows' padding must be untouched */
        int untouched = 1;
        for (int i = 0; i < mr; i++)
          for (int j = nr; j < ldc; j++)
            untouched &= cc[i * ldc + j] == c[i * ldc + j];
        CHECK(untouched, "micro-kernel %s writes only its tile", uk->isa);
        free(cc);
      }
      free(a), free(b), free(c);
    }
  }
  CHECK(tried >= 1, "at least the generic micro-kernel runs");
  CHECK(cl_microkernel_select("mmx") != 0 && strstr(cl_last_error(), "unknown"),
        "an unknown kernel name is refused: %s", cl_last_error());
  cl_microkernel_select("auto");
}

static void test_pack_a(void) {
  cl_rng r;
  cl_rng_seed(&r, 4, 4);
  int m = 11, k = 9, lda = 13;
  float *a = random_floats(&r, 13L * 13, -1, 1);
  for (int mr = 4; mr <= 8; mr += 4)
    for (int trans = 0; trans < 2; trans++) {
      long len = cl_packed_a_len(m, k, mr);
      float *out = malloc(sizeof(float) * (size_t)len);
      cl_pack_a(a, lda, trans, m, k, 2.0f, mr, out);
      int bad = 0;
      for (int i = 0; i < (m + mr - 1) / mr * mr; i++)
        for (int p = 0; p < k; p++) {
          float want = i < m ? 2.0f * (trans ? a[p * lda + i] : a[i * lda + p]) : 0.0f;
          bad += out[(i / mr) * mr * k + p * mr + i % mr] != want;
        }
      CHECK(bad == 0, "cl_pack_a mr %d trans %d: %d values misplaced", mr, trans, bad);
      free(out);
    }
  free(a);
}

/* ---------------------------------------------------------------- GEMM */

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

/* One GEMM against the double-precision definition. */
static double gemm_error(gemm_fn f, cl_rng *r, int ta, int tb, int m, int n, int k, float alpha,
                         float beta) {
  int lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
  float *a = random_floats(r, (long)(ta ? k : m) * lda, -1, 1);
  float *b = random_floats(r, (long)(tb ? n : k) * ldb, -1, 1);
  float *c = random_floats(r, (long)m * ldc, -1, 1);
  double *want = malloc(sizeof(double) * (size_t)m * n),
         *scale = malloc(sizeof(double) * (size_t)m * n);
  float *got = malloc(sizeof(float) * (size_t)m * n);
  if (beta == 0)
    for (long i = 0; i < (long)m * ldc; i++)
      c[i] = NAN; /* beta = 0 must not read C */
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double sum = 0, mag = 0;
      for (int p = 0; p < k; p++) {
        double v =
            (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
        sum += v;
        mag += fabs(v);
      }
      double cv = beta == 0 ? 0 : (double)beta * c[i * ldc + j];
      want[i * n + j] = alpha * sum + cv;
      scale[i * n + j] = fabs(alpha) * mag + fabs(cv);
    }
  f(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++)
      got[i * n + j] = c[i * ldc + j];
  double e = worst_error(got, want, scale, (long)m * n);
  free(a), free(b), free(c), free(want), free(scale), free(got);
  return e;
}

static void test_gemm(void) {
  cl_rng r;
  cl_rng_seed(&r, 5, 5);
  /* odd rows run with alpha 1; 128×100 and 100×9 among them go through the transpose */
  static const int shapes[][3] = {{1, 1, 1},    {3, 5, 7},     {8, 32, 27},    {33, 65, 300},
                                  {130, 40, 9}, {17, 2100, 5}, {64, 169, 288}, {128, 100, 300},
                                  {50, 50, 50}, {100, 9, 40}};
  for (int s = 0; s < 3; s++) {
    if (cl_microkernel_select(isas[s]))
      continue;
    for (size_t q = 0; q < sizeof shapes / sizeof *shapes; q++)
      for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
          const int *d = shapes[q];
          float alpha = q % 2 ? 1.0f : -0.5f, beta = (float)(ta + tb) * 0.5f; /* 0, 0.5, 1 */
          double e = gemm_error(cl_gemm_portable, &r, ta, tb, d[0], d[1], d[2], alpha, beta);
          CHECK(e < 1e-5, "portable gemm (%s) %s%s %d×%d×%d alpha %g beta %g: error %g", isas[s],
                ta ? "T" : "N", tb ? "T" : "N", d[0], d[1], d[2], alpha, beta, e);
        }
  }
  /* A C with few columns is computed as its transpose: the same bits as the transposed
   * problem computed as asked, C = op(A)·op(B) + C against Cᵀ = op(B)ᵀ·op(A)ᵀ + Cᵀ. */
  for (int s = 0; s < 3; s++) {
    if (cl_microkernel_select(isas[s]))
      continue;
    static const int few[][3] = {{128, 100, 600}, {100, 9, 40}};
    for (int q = 0; q < 2; q++)
      for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
          int m = few[q][0], n = few[q][1], k = few[q][2];
          float *a = random_floats(&r, (long)m * k, -1, 1), *b = random_floats(&r, (long)k * n, -1, 1);
          float *c = random_floats(&r, (long)m * n, -1, 1), *ct = malloc(sizeof(float) * m * n);
          for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
              ct[j * m + i] = c[i * n + j];
          cl_gemm_portable(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 1.0f, c, n);
          cl_gemm_portable(!tb, !ta, n, m, k, 1.0f, b, tb ? k : n, a, ta ? m : k, 1.0f, ct, m);
          int same = 1;
          for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
              same &= !memcmp(&c[i * n + j], &ct[j * m + i], sizeof(float));
          CHECK(same, "portable gemm (%s) %s%s %d×%d×%d: the same bits as its transpose", isas[s],
                ta ? "T" : "N", tb ? "T" : "N", m, n, k);
          free(a), free(b), free(c), free(ct);
        }
  }
  cl_microkernel_select("auto");
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      double e = gemm_error(cl_gemm, &r, ta, tb, 37, 29, 70, 1.0f, ta ? 1.0f : 0.0f);
      CHECK(e < 1e-5, "cl_gemm (%s) %d%d: error %g", cl_gemm_backend(), ta, tb, e);
    }
  /* Big enough to be cut into pieces of C's rows (tall) or columns (wide), run by the threads
   * (on the BLAS, or on the micro-kernel GEMM, which cl_gemm picks by ISA): right, and the same
   * bits with 1 and 2 threads. */
  static const int big[][3] = {{600, 150, 120}, {150, 600, 120}};
  for (int route = 0; route < 2; route++) {
  int route_was = cl_gemm_big_on_microkernel(route);
  const char *route_name = route ? "micro-kernel" : cl_gemm_backend();
  for (int q = 0; q < 2; q++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const int *d = big[q];
        double e = gemm_error(cl_gemm, &r, ta, tb, d[0], d[1], d[2], 1.0f, 0.5f);
        CHECK(e < 1e-5, "cl_gemm %s%s %d×%d×%d (big, on the %s): error %g", ta ? "T" : "N",
              tb ? "T" : "N", d[0], d[1], d[2], route_name, e);
      }
  {
    int m = 600, n = 150, k = 120, threads = cl_get_threads();
    float *a = random_floats(&r, (long)m * k, -1, 1), *b = random_floats(&r, (long)k * n, -1, 1);
    float *c1 = calloc((size_t)m * n, sizeof(float)), *c2 = calloc((size_t)m * n, sizeof(float));
    cl_set_threads(1);
    cl_gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c1, n);
    cl_set_threads(2);
    cl_gemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c2, n);
    cl_set_threads(threads);
    CHECK(!memcmp(c1, c2, sizeof(float) * (size_t)m * n),
          "cl_gemm, big, on the %s: the same bits with 1 and 2 threads", route_name);
    free(a), free(b), free(c1), free(c2);
  }
  cl_gemm_big_on_microkernel(route_was);
  }
  /* k = 0: C = beta·C only */
  float c[4] = {1, 2, 3, 4}, none = 0;
  cl_gemm_portable(0, 0, 2, 2, 0, 1.0f, &none, 1, &none, 2, 2.0f, c, 2);
  CHECK(c[0] == 2 && c[3] == 8, "portable gemm with k = 0 scales C by beta");
}

/* ---------------------------------------------------------------- convolution */

typedef struct {
  int n, c, o, h, w, k, stride, pad;
} conv_case;

/* Forward and every gradient of one convolution against the direct reference. */
static void conv_case_check(const conv_case *q, cl_rng *r, const char *how) {
  int64_t xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->k, q->k}, bs = q->o;
  cl_tensor *x = random_tensor(r, 4, xs, -1, 1), *w = random_tensor(r, 4, ws, -1, 1);
  cl_tensor *b = random_tensor(r, 1, &bs, -1, 1);
  cl_set_requires_grad(x, 1), cl_set_requires_grad(w, 1), cl_set_requires_grad(b, 1);
  cl_tensor *y = cl_conv2d(x, w, b, q->stride, q->pad);
  cl_tensor *ref = cl_conv2d_reference(x, w, b, q->stride, q->pad);
  CHECK(y && ref && cl_same_shape(y, ref), "conv %s: shapes", how);
  if (!y || !ref) {
    cl_release(y), cl_release(ref), cl_release(x), cl_release(w), cl_release(b);
    return;
  }
  /* |values| ≤ 1: a sum of C·K·K + 1 terms; relative to the number of terms */
  double terms = (double)q->c * q->k * q->k + 1;
  double ef = tensor_diff(y, ref);
  CHECK(ef < 1e-6 * terms, "conv %s n%d c%d o%d %dx%d k%d s%d p%d forward: error %g", how, q->n,
        q->c, q->o, q->h, q->w, q->k, q->stride, q->pad, ef);
  cl_tensor *g = random_tensor(r, 4, ref->shape, -1, 1);
  cl_tensor *dx, *dw, *db;
  int rc1 = cl_backward(y, g, 0, NULL, NULL);
  int rc2 = cl_conv2d_reference_backward(x, w, g, q->stride, q->pad, &dx, &dw, &db);
  CHECK(rc1 == 0 && rc2 == 0, "conv %s backward ran: %s", how, cl_last_error());
  if (rc1 == 0 && rc2 == 0) {
    double pixels = (double)q->n * ref->shape[2] * ref->shape[3];
    double ex = tensor_diff(x->grad, dx), ew = tensor_diff(w->grad, dw),
           eb = tensor_diff(b->grad, db);
    CHECK(ex < 1e-6 * q->o * q->k * q->k, "conv %s n%d c%d o%d %dx%d k%d s%d p%d dx: error %g", how,
          q->n, q->c, q->o, q->h, q->w, q->k, q->stride, q->pad, ex);
    CHECK(ew < 1e-6 * pixels, "conv %s n%d c%d o%d %dx%d k%d s%d p%d dw: error %g", how, q->n, q->c,
          q->o, q->h, q->w, q->k, q->stride, q->pad, ew);
    CHECK(eb < 1e-6 * pixels, "conv %s n%d c%d o%d dw: error %g", how, q->n, q->c, q->o, eb);
    cl_release(dx), cl_release(dw), cl_release(db);
  }
  cl_release(g), cl_release(y), cl_release(ref), cl_release(x), cl_release(w), cl_release(b);
}

static void test_conv(void) {
  cl_rng r;
  cl_rng_seed(&r, 6, 6);
  static const conv_case cases[] = {
      {3, 3, 32, 28, 28, 3, 1, 1},  /* the seed network's three layers, small batch */
      {3, 32, 64, 13, 13, 3, 1, 1}, /**/
      {5, 64, 128, 6, 6, 3, 1, 1},  /**/
      {2, 5, 10, 9, 7, 3, 1, 1},    /* O not a multiple of MR or NR, non-square */
      {3, 4, 9, 8, 11, 5, 1, 2},    /* 5×5 same */
      {2, 3, 6, 7, 7, 3, 1, 0},     /* valid (no padding): not "same" */
      {2, 3, 6, 5, 6, 3, 1, 3},     /* padding beyond K − 1: dx the general way */
      {4, 6, 7, 5, 5, 1, 1, 0},     /* 1×1 */
      {2, 1, 1, 4, 4, 2, 1, 1},     /* even kernel */
      {3, 4, 5, 9, 9, 3, 2, 1},     /* strided */
      {1, 2, 3, 1, 1, 1, 1, 0},     /* one pixel */
      {2, 3, 4, 1, 1, 3, 1, 1},     /* one pixel, same 3×3: every tap but the centre is padding */
      {2, 3, 4, 2, 3, 3, 1, 1},     /* planes smaller than the kernel */
      {2, 2, 3, 70, 70, 3, 1, 1},   /* same, plane too big for the shifted-row scratch */
      /* contractions deep enough to run in K blocks (conv_lower.c, above 1,024) */
      {2, 24, 13, 14, 14, 7, 1, 3}, /* 7×7, K = 1,176: 5 blocks, one sample per group */
      {7, 50, 13, 5, 5, 5, 1, 2},   /* K = 1,250 on 5×5 planes: 3 samples a group, tiles
                                       straddling samples, a short group at the end */
      {2, 41, 5, 6, 6, 5, 1, 2},    /* K = 1,025, the first depth that is blocked */
      {2, 3, 1100, 6, 6, 3, 1, 1},  /* O = 1,100: the input gradient's contraction blocked */
  };
  for (int mode = 2; mode >= 0; mode--) { /* micro-kernel always, the default mix, GEMM always */
    int was = cl_conv_use_microkernel(mode);
    for (int s = 0; s < 3; s++) {
      if (cl_microkernel_select(isas[s]))
        continue;
      char how[64];
      snprintf(how, sizeof how, "%s/%s",
               mode == 2 ? "micro-kernel"
               : mode    ? "default"
                         : "im2col+gemm",
               isas[s]);
      for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        conv_case_check(&cases[i], &r, how);
      if (!mode)
        break; /* the GEMM path does not use the micro-kernel choice (with OpenBLAS) */
    }
    cl_conv_use_microkernel(was);
  }
  cl_microkernel_select("auto");
}

static int same_bits(const cl_tensor *a, const cl_tensor *b) {
  return a && b && cl_same_shape(a, b) &&
         !memcmp(cl_f32((cl_tensor *)a), cl_f32((cl_tensor *)b), sizeof(float) * (size_t)cl_numel(a));
}

/* conv2d and its gradients with 1 and with 2 threads: the same bits. The K blocks depend on
 * the shape only; the batches are cut by chunk_plan, the same way for any thread count. */
static void conv_threads_check(const conv_case *q, cl_rng *r, const char *how) {
  int64_t xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->k, q->k}, bs = q->o;
  cl_tensor *x0 = random_tensor(r, 4, xs, -1, 1), *w0 = random_tensor(r, 4, ws, -1, 1);
  cl_tensor *b0 = random_tensor(r, 1, &bs, -1, 1), *g = NULL, *out[2][4] = {{NULL}};
  int threads = cl_get_threads();
  for (int t = 0; t < 2; t++) {
    cl_set_threads(t + 1);
    cl_tensor *x = cl_clone(x0), *w = cl_clone(w0), *b = cl_clone(b0);
    cl_set_requires_grad(x, 1), cl_set_requires_grad(w, 1), cl_set_requires_grad(b, 1);
    cl_tensor *y = cl_conv2d(x, w, b, q->stride, q->pad);
    if (y && !g)
      g = random_tensor(r, 4, y->shape, -1, 1);
    if (y && cl_backward(y, g, 0, NULL, NULL) == 0) {
      out[t][1] = x->grad, out[t][2] = w->grad, out[t][3] = b->grad;
      cl_retain(x->grad), cl_retain(w->grad), cl_retain(b->grad);
    }
    out[t][0] = y;
    cl_release(x), cl_release(w), cl_release(b);
  }
  cl_set_threads(threads);
  const char *what[4] = {"y", "dx", "dw", "db"};
  for (int i = 0; i < 4; i++) {
    CHECK(same_bits(out[0][i], out[1][i]), "conv %s n%d c%d o%d %dx%d k%d: %s differs, 1 and 2 threads",
          how, q->n, q->c, q->o, q->h, q->w, q->k, what[i]);
    cl_release(out[0][i]), cl_release(out[1][i]);
  }
  cl_release(g), cl_release(x0), cl_release(w0), cl_release(b0);
}

static void test_conv_threads(void) {
  cl_rng r;
  cl_rng_seed(&r, 9, 9);
  static const conv_case cases[] = {
      {5, 64, 128, 6, 6, 3, 1, 1},  /* the seed network's conv3: one pass over K */
      {6, 24, 13, 14, 14, 7, 1, 3}, /* K = 1,176: K blocks */
      {9, 50, 13, 5, 5, 5, 1, 2},   /* K = 1,250, groups of 3 samples */
      {4, 3, 1100, 6, 6, 3, 1, 1},  /* O = 1,100: the input gradient in K blocks */
  };
  for (int mode = 2; mode >= 1; mode--) { /* micro-kernel always, the default mix */
    int was = cl_conv_use_microkernel(mode);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
      conv_threads_check(&cases[i], &r, mode == 2 ? "micro-kernel" : "default");
    cl_conv_use_microkernel(was);
  }
}

/* ---------------------------------------------------------------- fused conv → ReLU → max-pool */

typedef struct {
  int n, c, o, h, w, k, stride, pad, pk, ps;
} block_case;

/* One run of the block, fused or as the three ops: y, and with grads the gradients of x, w, b
 * (the ones asked for) from the upstream gradient g. The leaves are fresh clones each run. */
static void block_run(const block_case *q, cl_tensor *x0, cl_tensor *w0, cl_tensor *b0,
                      const int *want, cl_tensor *g, int fused, cl_tensor **out) {
  cl_tensor *x = cl_clone(x0), *w = cl_clone(w0), *b = b0 ? cl_clone(b0) : NULL;
  cl_set_requires_grad(x, want[0]), cl_set_requires_grad(w, want[1]);
  if (b)
    cl_set_requires_grad(b, want[2]);
  cl_tensor *y;
  if (fused)
    y = cl_conv2d_relu_pool(x, w, b, q->stride, q->pad, q->pk, q->ps);
  else {
    cl_tensor *z = cl_conv2d(x, w, b, q->stride, q->pad);
    cl_tensor *r = z ? cl_unary(CL_RELU, z) : NULL;
    y = r ? cl_max_pool2d(r, q->pk, q->ps) : NULL;
    cl_release(z), cl_release(r);
  }
  out[0] = y, out[1] = out[2] = out[3] = NULL;
  if (y && g && y->requires_grad && cl_backward(y, g, 0, NULL, NULL) == 0) {
    if (x->grad)
      out[1] = x->grad, cl_retain(x->grad);
    if (w->grad)
      out[2] = w->grad, cl_retain(w->grad);
    if (b && b->grad)
      out[3] = b->grad, cl_retain(b->grad);
  }
  cl_release(x), cl_release(w), cl_release(b);
}

/* The fused op against conv2d, relu and max_pool2d in a row: the same bits forward and for
 * every gradient, with 1 and 2 threads. fill: 0 uniform in [−1, 1); 1 values from {−1, 0, 1}
 * (ties, zero windows, ReLU's dead zone); 2 a NaN or an infinity in places. */
static void block_case_check(const block_case *q, cl_rng *r, int fill, int with_bias,
                             const int *want, const char *how) {
  int64_t xs[4] = {q->n, q->c, q->h, q->w}, ws[4] = {q->o, q->c, q->k, q->k}, bs = q->o;
  cl_tensor *x = random_tensor(r, 4, xs, -1, 1), *w = random_tensor(r, 4, ws, -1, 1);
  cl_tensor *b = with_bias ? random_tensor(r, 1, &bs, -1, 1) : NULL;
  float *px = cl_f32(x);
  for (int64_t i = 0; i < cl_numel(x); i++) {
    if (fill == 1)
      px[i] = (float)cl_rng_below(r, 3) - 1.0f;
    if (fill == 2 && cl_rng_below(r, 31) == 0)
      px[i] = cl_rng_below(r, 2) ? NAN : -INFINITY;
  }
  if (fill == 1) /* small integer weights: exact sums, so many equal outputs */
    for (int64_t i = 0; i < cl_numel(w); i++)
      cl_f32(w)[i] = (float)cl_rng_below(r, 3) - 1.0f;
  int64_t oh = (q->h + 2 * q->pad - q->k) / q->stride + 1, ow = (q->w + 2 * q->pad - q->k) / q->stride + 1;
  int64_t gs[4] = {q->n, q->o, (oh - q->pk) / q->ps + 1, (ow - q->pk) / q->ps + 1};
  cl_tensor *g = random_tensor(r, 4, gs, -1, 1);
  int threads = cl_get_threads();
  cl_tensor *ref[4], *got[4];
  cl_set_threads(1);
  block_run(q, x, w, b, want, g, 0, ref);
  for (int t = 1; t <= 2; t++) {
    cl_set_threads(t);
    block_run(q, x, w, b, want, g, 1, got);
    const char *what[4] = {"y", "dx", "dw", "db"};
    for (int i = 0; i < 4; i++) {
      int expect = i == 0 || (want[i - 1] && (i < 3 || with_bias));
      CHECK(expect ? same_bits(got[i], ref[i]) : !got[i] && !ref[i],
            "conv_relu_pool %s fill %d n%d c%d o%d %dx%d k%d s%d p%d pool %d/%d, %d thread(s): "
            "%s %s",
            how, fill, q->n, q->c, q->o, q->h, q->w, q->k, q->stride, q->pad, q->pk, q->ps, t,
            what[i], expect ? "differs from the three ops" : "given where none was asked");
      cl_release(got[i]);
    }
  }
  cl_set_threads(threads);
  for (int i = 0; i < 4; i++)
    cl_release(ref[i]);
  cl_release(g), cl_release(x), cl_release(w), cl_release(b);
}

static void test_conv_block(void) {
  cl_rng r;
  cl_rng_seed(&r, 8, 8);
  static const block_case cases[] = {
      {3, 3, 32, 28, 28, 3, 1, 1, 3, 2},  /* the seed network's three blocks, small batch */
      {3, 32, 64, 13, 13, 3, 1, 1, 3, 2}, /**/
      {5, 64, 128, 6, 6, 3, 1, 1, 3, 2},  /**/
      {37, 64, 16, 6, 6, 3, 1, 1, 3, 2},  /* a batch that is no multiple of the group */
      {2, 5, 10, 9, 7, 3, 1, 1, 2, 2},    /* O not a multiple of MR or NR, non-square */
      {3, 4, 9, 8, 11, 5, 1, 2, 3, 3},    /* 5×5 same, pool 3/3 */
      {2, 3, 6, 7, 7, 3, 1, 0, 2, 1},     /* valid convolution, overlapping 2/1 pool */
      {3, 4, 5, 9, 9, 3, 2, 1, 2, 2},     /* strided convolution */
      {2, 3, 4, 5, 5, 3, 1, 1, 5, 5},     /* one window over the whole plane */
      {2, 3, 4, 4, 4, 1, 1, 0, 1, 1},     /* 1×1 everything */
      {2, 3, 4, 7, 6, 3, 1, 1, 4, 3},     /* pool 4/3 (no instantiation of its own) */
      {2, 2, 3, 70, 70, 3, 1, 1, 3, 2},   /* plane too big for the shifted-row scratch */
      {3, 24, 13, 14, 14, 7, 1, 3, 2, 2}, /* K-blocked forward (7×7, K = 1,176) */
      {7, 50, 13, 5, 5, 5, 1, 2, 2, 1},   /* K-blocked, groups of 3 samples, tiles straddling */
      {2, 3, 1100, 6, 6, 3, 1, 1, 3, 2},  /* K-blocked input gradient (O = 1,100) */
  };
  static const int wants[][3] = {{1, 1, 1}, {0, 1, 1}, {1, 0, 0}, {0, 0, 0}};
  for (int mode = 2; mode >= 0; mode--) { /* micro-kernel always, the default mix, GEMM always */
    int was = cl_conv_use_microkernel(mode);
    const char *how = mode == 2 ? "micro-kernel" : mode ? "default" : "im2col+gemm";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
      for (int fill = 0; fill < 3; fill++)
        block_case_check(&cases[i], &r, fill, fill != 1, wants[(i + fill) % 4], how);
    cl_conv_use_microkernel(was);
  }
  { /* no graph under no_grad, and the same values */
    block_case q = {2, 3, 8, 9, 9, 3, 1, 1, 3, 2};
    int64_t xs[4] = {2, 3, 9, 9}, ws[4] = {8, 3, 3, 3};
    cl_tensor *x = random_tensor(&r, 4, xs, -1, 1), *w = random_tensor(&r, 4, ws, -1, 1);
    cl_set_requires_grad(w, 1);
    int was = cl_grad_enabled();
    cl_set_grad_enabled(0);
    cl_tensor *y = cl_conv2d_relu_pool(x, w, NULL, 1, 1, 3, 2), *ref[4];
    cl_set_grad_enabled(was);
    CHECK(y && !y->grad_fn && !y->requires_grad, "conv_relu_pool: no graph under no_grad");
    static const int none[3] = {0, 0, 0};
    block_run(&q, x, w, NULL, none, NULL, 0, ref);
    CHECK(same_bits(y, ref[0]), "conv_relu_pool under no_grad: the three ops' values");
    cl_release(ref[0]), cl_release(y), cl_release(x), cl_release(w);
  }
  { /* arguments */
    int64_t xs[4] = {1, 2, 4, 4}, ws[4] = {3, 2, 3, 3};
    cl_tensor *x = random_tensor(&r, 4, xs, -1, 1), *w = random_tensor(&r, 4, ws, -1, 1);
    CHECK(!cl_conv2d_relu_pool(x, w, NULL, 1, 0, 3, 1) &&
              strstr(cl_last_error(), "does not fit the convolution's output 2×2"),
          "conv_relu_pool: a pool window larger than the convolution's output fails: %s",
          cl_last_error());
    CHECK(!cl_conv2d_relu_pool(x, w, NULL, 1, 1, 0, 1) && strstr(cl_last_error(), ">= 1"),
          "conv_relu_pool: pool kernel 0 fails");
    int64_t w5s[4] = {3, 5, 3, 3};
    cl_tensor *w5 = random_tensor(&r, 4, w5s, -1, 1);
    CHECK(!cl_conv2d_relu_pool(x, w5, NULL, 1, 1, 2, 2) &&
              strstr(cl_last_error(), "conv2d_relu_pool: input must be N×C×H×W with C = 5"),
          "conv_relu_pool: conv2d's checks, under its own name: %s", cl_last_error());
    cl_release(x), cl_release(w), cl_release(w5);
  }
}

/* ---------------------------------------------------------------- max-pool */

/* Values, positions (through the node the op records) and dx, against the reference, for a
 * plane filler: 0 distinct values, 1 many ties (values from {0, 1, 2}), 2 a NaN in places. */
static void pool_case(cl_rng *r, int n, int c, int h, int w, int k, int s, int fill) {
  int64_t xs[4] = {n, c, h, w};
  cl_tensor *x = random_tensor(r, 4, xs, -1, 1);
  float *px = cl_f32(x);
  for (int64_t i = 0; i < cl_numel(x); i++) {
    if (fill == 1) { /* 0, 1 or 2, and zeros of either sign */
      px[i] = (float)cl_rng_below(r, 3);
      if (px[i] == 0 && cl_rng_below(r, 2))
        px[i] = -0.0f;
    }
    if (fill == 2 && cl_rng_below(r, 23) == 0)
      px[i] = NAN;
  }
  cl_set_requires_grad(x, 1);
  cl_tensor *y = cl_max_pool2d(x, k, s), *ry, *rw;
  int rc = cl_max_pool2d_reference(x, k, s, &ry, &rw);
  CHECK(y && rc == 0, "pool k%d s%d ran", k, s);
  if (!y || rc)
    return;
  int same = cl_same_shape(y, ry);
  const int32_t *where = y->grad_fn ? y->grad_fn->ctx : NULL;
  for (int64_t i = 0; same && i < cl_numel(y); i++) {
    uint32_t a, b;
    memcpy(&a, cl_f32(y) + i, 4), memcpy(&b, cl_f32(ry) + i, 4);
    same = (a == b || (isnan(cl_f32(y)[i]) && isnan(cl_f32(ry)[i]))) && where &&
           where[i] == ((int64_t *)cl_data(rw))[i];
  }
  CHECK(same, "pool %d×%d k%d s%d fill %d: values and positions equal the reference", h, w, k, s,
        fill);
  cl_set_grad_enabled(0); /* inference computes no positions, same values */
  cl_tensor *y2 = cl_max_pool2d(x, k, s);
  cl_set_grad_enabled(1);
  CHECK(y2 && !y2->grad_fn && !memcmp(cl_data(y2), cl_data(y), sizeof(float) * (size_t)cl_numel(y)),
        "pool k%d s%d under no_grad gives the same bits", k, s);
  cl_release(y2);
  cl_release(ry), cl_release(rw), cl_release(y), cl_release(x);
}

static void test_pool(void) {
  cl_rng r;
  cl_rng_seed(&r, 7, 7);
  static const int ks[][2] = {{3, 2}, {2, 2}, {3, 3}, {2, 1}, {4, 3}, {1, 1}};
  for (int fill = 0; fill < 3; fill++)
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
      pool_case(&r, 2, 3, 28, 28, ks[i][0], ks[i][1], fill);
      pool_case(&r, 3, 2, 13, 9, ks[i][0], ks[i][1], fill);
      pool_case(&r, 1, 70, 6, 6, ks[i][0], ks[i][1], fill); /* many planes: threads */
    }
}

/* ---------------------------------------------------------------- ReLU */

static void test_relu(void) {
  cl_rng r;
  cl_rng_seed(&r, 8, 8);
  int64_t shape[2] = {300, 1001}; /* past the parallel threshold */
  cl_tensor *x = random_tensor(&r, 2, shape, -1, 1);
  float *px = cl_f32(x);
  px[0] = NAN, px[1] = -0.0f, px[2] = INFINITY, px[3] = -INFINITY, px[4] = 1e-40f, px[5] = 0.0f;
  cl_set_requires_grad(x, 1);
  cl_tensor *y = cl_unary(CL_RELU, x), *g = random_tensor(&r, 2, shape, -1, 1);
  int ok = y != NULL;
  for (int64_t i = 0; ok && i < cl_numel(x); i++) {
    float want = px[i] > 0 ? px[i] : 0.0f; /* the definition: NaN and −0 give +0 */
    uint32_t a, b;
    memcpy(&a, cl_f32(y) + i, 4), memcpy(&b, &want, 4);
    ok = a == b;
  }
  CHECK(ok, "relu forward equals x > 0 ? x : +0 bit for bit");
  CHECK(y && cl_backward(y, g, 0, NULL, NULL) == 0, "relu backward ran");
  ok = x->grad != NULL;
  for (int64_t i = 0; ok && i < cl_numel(x); i++)
    ok = cl_f32(x->grad)[i] == (px[i] > 0 ? cl_f32(g)[i] : 0.0f);
  CHECK(ok, "relu backward equals x > 0 ? g : 0");
  cl_release(y), cl_release(g), cl_release(x);
}

/* ---------------------------------------------------------------- the allocator's cache */

static void test_alloc_cache(void) {
#if defined(__SANITIZE_ADDRESS__)
  return; /* the cache is off under AddressSanitizer, so that it still sees use-after-free */
#endif
  size_t base = cl_mem_in_use();
  size_t big = (size_t)3 << 20;
  void *p = cl_alloc(big);
  CHECK(p && cl_mem_in_use() == base + big, "a big block counts its bytes");
  cl_dealloc(p, big);
  CHECK(cl_mem_in_use() == base, "released: not in use");
  CHECK(cl_mem_cached() >= big, "released: kept in the cache (%zu cached)", cl_mem_cached());
  void *q = cl_alloc(big - 100); /* same size class */
  CHECK(q == p, "the next request of the class reuses the block");
  CHECK(cl_mem_in_use() == base + big - 100, "a reused block counts what was asked");
  cl_dealloc(q, big - 100);
  cl_fail_alloc_after(1);
  void *f = cl_alloc(big);
  CHECK(f == NULL, "fault injection fails an allocation the cache could have served");
  cl_fail_alloc_after(0);
  cl_mem_trim();
  CHECK(cl_mem_cached() == 0, "cl_mem_trim empties the cache");
}

int main(void) {
  test_microkernels();
  test_pack_a();
  test_gemm();
  test_conv();
  test_conv_threads();
  test_conv_block();
  test_pool();
  test_relu();
  test_alloc_cache();
  cl_mem_trim();
  CHECK(cl_mem_in_use() == 0, "every tensor released (%zu bytes in use)", cl_mem_in_use());
  CHECK_DONE();
}

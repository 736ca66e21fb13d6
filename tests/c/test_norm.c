/* test_norm.c — batch_norm, avg_pool2d and adaptive_avg_pool2d: hand-computed values, the
 * running-statistics update by its formula, the kernels against their plain references,
 * gradients against finite differences (training and evaluation), the same bits for one and
 * two threads, and misuse refused with a message. */
#include "check.h"
#include "cnnlab.h"
#include "gradcheck.h"
#include "ops/norm.h"
#include "random_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static cl_rng rng;

static cl_tensor *tensor_f(int ndim, const int64_t *shape, const float *values) {
  return cl_from_data(CL_FLOAT32, ndim, shape, values);
}

static double max_abs_diff(const cl_tensor *a, const cl_tensor *b) {
  double worst = 0;
  for (int64_t i = 0; i < cl_numel(a); i++) {
    double d = fabs(cl_item_at(a, i) - cl_item_at(b, i));
    if (d > worst || d != d)
      worst = d != d ? INFINITY : d;
  }
  return worst;
}

static void check_values(const char *what, const cl_tensor *t, const double *want, int64_t n,
                         double tol) {
  CHECK(t && cl_numel(t) == n, "%s: expected %lld values, got %lld (%s)", what, (long long)n,
        t ? (long long)cl_numel(t) : -1LL, t ? "" : cl_last_error());
  if (!t || cl_numel(t) != n)
    return;
  for (int64_t i = 0; i < n; i++) {
    double got = cl_item_at(t, i);
    CHECK(fabs(got - want[i]) <= tol, "%s[%lld]: got %.9g, want %.9g", what, (long long)i, got,
          want[i]);
  }
}

static int bit_identical(const cl_tensor *a, const cl_tensor *b) {
  return a && b && cl_same_shape(a, b) &&
         memcmp(cl_data(a), cl_data(b), sizeof(float) * (size_t)cl_numel(a)) == 0;
}

#define FAILS_NULL(expr, msg)                                                                      \
  do {                                                                                             \
    cl_tensor *r_ = (expr);                                                                        \
    CHECK(!r_ && strstr(cl_last_error(), msg), "%s: want error containing \"%s\", got \"%s\"",    \
          #expr, msg, r_ ? "(success)" : cl_last_error());                                         \
    cl_release(r_);                                                                                \
  } while (0)

/* ---------------------------------------------------------------- batch_norm */

static void test_bn_hand(void) {
  /* x N=2, C=1, L=2 = {1, 2 | 3, 4}: mean 2.5, biased var 1.25, unbiased 5/3 */
  float xv[4] = {1, 2, 3, 4}, wv[1] = {2}, bv[1] = {0.5f}, rmv[1] = {1}, rvv[1] = {3};
  int64_t xs[3] = {2, 1, 2}, one = 1;
  cl_tensor *x = tensor_f(3, xs, xv), *w = tensor_f(1, &one, wv), *b = tensor_f(1, &one, bv);
  cl_tensor *rm = tensor_f(1, &one, rmv), *rv = tensor_f(1, &one, rvv);
  cl_tensor *y = cl_batch_norm(x, w, b, rm, rv, 1, 0.1, 1e-5);
  double is = 1 / sqrt(1.25 + 1e-5), want[4];
  for (int i = 0; i < 4; i++)
    want[i] = (xv[i] - 2.5) * is * 2 + 0.5;
  check_values("bn train", y, want, 4, 1e-6);
  double want_rm = 0.9 * 1 + 0.1 * 2.5, want_rv = 0.9 * 3 + 0.1 * (5.0 / 3.0);
  check_values("bn running_mean = 0.9·rm + 0.1·mean", rm, &want_rm, 1, 1e-6);
  check_values("bn running_var = 0.9·rv + 0.1·unbiased var", rv, &want_rv, 1, 1e-6);
  cl_release(y);
  /* evaluation: the running statistics, not updated */
  y = cl_batch_norm(x, w, b, rm, rv, 0, 0.1, 1e-5);
  double ie = 1 / sqrt(want_rv + 1e-5);
  for (int i = 0; i < 4; i++)
    want[i] = (xv[i] - want_rm) * ie * 2 + 0.5;
  check_values("bn eval", y, want, 4, 1e-6);
  check_values("bn eval leaves running_mean", rm, &want_rm, 1, 1e-7);
  cl_release(y);
  /* momentum 1 (PyTorch's cumulative average on the first batch): running = the batch's */
  y = cl_batch_norm(x, NULL, NULL, rm, rv, 1, 1.0, 1e-5);
  double m1 = 2.5, v1 = 5.0 / 3.0;
  check_values("bn momentum 1: running_mean", rm, &m1, 1, 1e-6);
  check_values("bn momentum 1: running_var", rv, &v1, 1, 1e-6);
  cl_release(y);
  /* without running statistics: batch statistics even in evaluation (PyTorch's
   * track_running_stats = False) */
  y = cl_batch_norm(x, NULL, NULL, NULL, NULL, 0, 0.1, 1e-5);
  for (int i = 0; i < 4; i++)
    want[i] = (xv[i] - 2.5) * is;
  check_values("bn no running stats", y, want, 4, 1e-6);
  cl_release(y);

  /* backward by hand, training: Σ g = 4 with g = 1 everywhere gives dx = 0, db = 4, dw = 0 */
  cl_set_requires_grad(x, 1), cl_set_requires_grad(w, 1), cl_set_requires_grad(b, 1);
  y = cl_batch_norm(x, w, b, NULL, NULL, 1, 0.1, 1e-5);
  cl_tensor *s = cl_sum(y, CL_ALL_DIMS, 0);
  CHECK(cl_backward(s, NULL, 0, NULL, NULL) == 0, "bn backward runs");
  double zeros[4] = {0, 0, 0, 0}, four = 4, zero = 0;
  check_values("bn dx of a sum is 0", x->grad, zeros, 4, 1e-6);
  check_values("bn db = Σg", b->grad, &four, 1, 1e-6);
  check_values("bn dw = Σ g·x̂ = 0", w->grad, &zero, 1, 1e-6);
  cl_release(s), cl_release(y);
  cl_release(x), cl_release(w), cl_release(b), cl_release(rm), cl_release(rv);
}

typedef struct {
  int training, running;
  cl_tensor *rm, *rv;
} bn_ctx;

static cl_tensor *f_bn(cl_tensor **in, void *ctx) {
  bn_ctx *c = ctx;
  /* momentum 0: the running statistics stay as they are across the finite differences */
  return cl_batch_norm(in[0], in[1], in[2], c->running ? c->rm : NULL,
                       c->running ? c->rv : NULL, c->training, 0.0, 1e-5);
}

static void test_bn_reference_and_grads(void) {
  int64_t shapes[3][4] = {{6, 3}, {4, 3, 5}, {3, 4, 5, 6}};
  int ndims[3] = {2, 3, 4};
  for (int s = 0; s < 3; s++) {
    int64_t c = shapes[s][1];
    cl_tensor *x = random_tensor(&rng, ndims[s], shapes[s], -2, 3);
    cl_tensor *w = random_tensor(&rng, 1, &c, 0.5f, 1.5f), *b = random_tensor(&rng, 1, &c, -1, 1);
    cl_tensor *rm = random_tensor(&rng, 1, &c, -0.5f, 0.5f),
              *rv = random_tensor(&rng, 1, &c, 0.5f, 2);
    for (int training = 0; training <= 1; training++) {
      cl_tensor *y = cl_batch_norm(x, w, b, rm, rv, training, 0.0, 1e-5);
      cl_tensor *ref = cl_batch_norm_reference(x, w, b, rm, rv, training, 1e-5);
      CHECK(y && ref && max_abs_diff(y, ref) < 2e-5, "bn %dd training %d vs reference: %g",
            ndims[s], training, y && ref ? max_abs_diff(y, ref) : -1.0);
      cl_release(y), cl_release(ref);
    }
    cl_set_requires_grad(x, 1), cl_set_requires_grad(w, 1), cl_set_requires_grad(b, 1);
    cl_tensor *in[3] = {x, w, b};
    char name[64];
    for (int mode = 0; mode < 3; mode++) {
      bn_ctx ctx = {mode != 0, mode != 2, rm, rv}; /* eval+running, train+running, train alone */
      snprintf(name, sizeof name, "batch_norm %dd %s", ndims[s],
               mode == 0 ? "eval" : mode == 1 ? "train" : "train, no running stats");
      gradcheck(name, f_bn, &ctx, 3, in, 1e-2, 2e-2);
    }
    cl_release(x), cl_release(w), cl_release(b), cl_release(rm), cl_release(rv);
  }
}

/* One and two threads give the same bits: forward, running statistics and every gradient. */
static void test_bn_threads(void) {
  int64_t xs[4] = {8, 16, 12, 12}, c = 16;
  cl_tensor *y[2], *gx[2], *gw[2], *rms[2];
  for (int t = 0; t < 2; t++) {
    cl_rng r;
    cl_rng_seed(&r, 99, 1);
    cl_tensor *x = random_tensor(&r, 4, xs, -1, 2), *w = random_tensor(&r, 1, &c, 0.5f, 1.5f);
    cl_tensor *b = random_tensor(&r, 1, &c, -1, 1), *rm = cl_zeros(CL_FLOAT32, 1, &c);
    cl_tensor *rv = cl_full(CL_FLOAT32, 1, &c, 1);
    cl_set_requires_grad(x, 1), cl_set_requires_grad(w, 1);
    cl_set_threads(t + 1);
    y[t] = cl_batch_norm(x, w, b, rm, rv, 1, 0.1, 1e-5);
    cl_tensor *sq = cl_unary(CL_SQUARE, y[t]);
    cl_tensor *s = cl_sum(sq, CL_ALL_DIMS, 0);
    cl_backward(s, NULL, 0, NULL, NULL);
    gx[t] = x->grad, gw[t] = w->grad, rms[t] = rv;
    cl_retain(gx[t]), cl_retain(gw[t]);
    cl_release(s), cl_release(sq), cl_release(x), cl_release(w), cl_release(b), cl_release(rm);
  }
  cl_set_threads(2);
  CHECK(bit_identical(y[0], y[1]) && bit_identical(gx[0], gx[1]) &&
            bit_identical(gw[0], gw[1]) && bit_identical(rms[0], rms[1]),
        "batch_norm: 1 and 2 threads give the same bits");
  for (int t = 0; t < 2; t++)
    cl_release(y[t]), cl_release(gx[t]), cl_release(gw[t]), cl_release(rms[t]);
}

static void test_bn_misuse(void) {
  int64_t xs[4] = {2, 3, 4, 4}, three = 3, two = 2, one1[2] = {1, 3};
  cl_tensor *x = cl_zeros(CL_FLOAT32, 4, xs), *w3 = cl_full(CL_FLOAT32, 1, &three, 1);
  cl_tensor *w2 = cl_full(CL_FLOAT32, 1, &two, 1), *x1 = cl_zeros(CL_FLOAT32, 2, one1);
  cl_tensor *xu8 = cl_zeros(CL_UINT8, 4, xs), *x1d = cl_zeros(CL_FLOAT32, 1, &three);
  FAILS_NULL(cl_batch_norm(x, w2, NULL, NULL, NULL, 1, 0.1, 1e-5),
             "batch_norm: weight must be 1-D of size C = 3 (the input's channels), got 2");
  FAILS_NULL(cl_batch_norm(x, NULL, NULL, w3, NULL, 1, 0.1, 1e-5),
             "batch_norm: running_mean and running_var go together");
  FAILS_NULL(cl_batch_norm(x1, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5),
             "batch_norm: expected more than 1 value per channel when training");
  FAILS_NULL(cl_batch_norm(xu8, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5),
             "batch_norm: input must be a float32 tensor");
  FAILS_NULL(cl_batch_norm(x1d, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5),
             "batch_norm: input must be N×C, N×C×L or N×C×H×W, got 3");
  FAILS_NULL(cl_batch_norm(x, NULL, NULL, NULL, NULL, 1, 0.1, 0), "batch_norm: eps must be");
  cl_release(x), cl_release(w3), cl_release(w2), cl_release(x1), cl_release(xu8), cl_release(x1d);
}

/* ---------------------------------------------------------------- average pooling */

static void test_avg_hand(void) {
  float xv[16];
  for (int i = 0; i < 16; i++)
    xv[i] = (float)(i + 1);
  int64_t xs[4] = {1, 1, 4, 4};
  cl_tensor *x = tensor_f(4, xs, xv);
  cl_tensor *y = cl_avg_pool2d(x, 2, 2, 0);
  double want[4] = {3.5, 5.5, 11.5, 13.5};
  check_values("avg_pool2d 2×2", y, want, 4, 1e-6);
  cl_release(y);
  /* kernel 3, stride 2, padding 1: the corner window holds 1, 2, 5, 6 and five zeros of
   * padding, all counted (count_include_pad) */
  y = cl_avg_pool2d(x, 3, 2, 1);
  double want_p[4] = {14.0 / 9, (2 + 3 + 4 + 6 + 7 + 8) / 9.0, (5 + 6 + 9 + 10 + 13 + 14) / 9.0,
                      (6 + 7 + 8 + 10 + 11 + 12 + 14 + 15 + 16) / 9.0};
  check_values("avg_pool2d 3×3 s2 p1", y, want_p, 4, 1e-6);
  cl_release(y);
  y = cl_adaptive_avg_pool2d(x, 1, 1);
  double mean = 8.5;
  check_values("adaptive_avg_pool2d 1×1 is the plane's mean", y, &mean, 1, 1e-6);
  cl_release(y);
  /* 4 → 3: windows [0,2), [1,3), [2,4) in each direction */
  y = cl_adaptive_avg_pool2d(x, 3, 3);
  double want_a[9] = {3.5, 4.5, 5.5, 7.5, 8.5, 9.5, 11.5, 12.5, 13.5};
  check_values("adaptive_avg_pool2d 4→3", y, want_a, 9, 1e-6);
  cl_release(y);
  /* backward by hand: each input of a 2×2 window gets g/4 */
  cl_set_requires_grad(x, 1);
  y = cl_avg_pool2d(x, 2, 2, 0);
  cl_tensor *s = cl_sum(y, CL_ALL_DIMS, 0);
  cl_backward(s, NULL, 0, NULL, NULL);
  double quarter[16];
  for (int i = 0; i < 16; i++)
    quarter[i] = 0.25;
  check_values("avg_pool2d backward", x->grad, quarter, 16, 1e-7);
  cl_release(s), cl_release(y), cl_release(x);
}

typedef struct {
  int kernel, stride, padding, oh, ow;
} avg_ctx;

static cl_tensor *f_avg(cl_tensor **in, void *ctx) {
  avg_ctx *c = ctx;
  return c->kernel ? cl_avg_pool2d(in[0], c->kernel, c->stride, c->padding)
                   : cl_adaptive_avg_pool2d(in[0], c->oh, c->ow);
}

static void test_avg_reference_and_grads(void) {
  avg_ctx cases[] = {{2, 2, 0, 0, 0}, {3, 2, 1, 0, 0}, {3, 1, 1, 0, 0}, {4, 3, 2, 0, 0},
                     {0, 0, 0, 1, 1}, {0, 0, 0, 3, 4}, {0, 0, 0, 5, 7}, {0, 0, 0, 2, 3}};
  int64_t xs[4] = {2, 3, 5, 7};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    avg_ctx *c = &cases[i];
    cl_tensor *x = i % 2 ? gc_input(&rng, 4, xs, 0) : random_tensor(&rng, 4, xs, -1, 1);
    cl_tensor *y = f_avg(&x, c);
    cl_tensor *ref = cl_avg_pool2d_reference(x, c->kernel, c->stride, c->padding, c->oh, c->ow);
    CHECK(y && ref && cl_same_shape(y, ref) && max_abs_diff(y, ref) < 1e-6,
          "avg pool case %zu vs reference: %g", i, y && ref ? max_abs_diff(y, ref) : -1.0);
    cl_set_requires_grad(x, 1);
    char name[64];
    snprintf(name, sizeof name, "avg pool case %zu (k %d s %d p %d / out %d×%d)", i, c->kernel,
             c->stride, c->padding, c->oh, c->ow);
    gradcheck(name, f_avg, c, 1, &x, 1e-2, 1e-2);
    cl_release(y), cl_release(ref), cl_release(x);
  }
  /* threads: the same bits */
  int64_t bs[4] = {16, 32, 14, 14};
  cl_tensor *x = random_tensor(&rng, 4, bs, -1, 1);
  cl_set_threads(1);
  cl_tensor *a1 = cl_avg_pool2d(x, 3, 2, 1), *g1 = cl_adaptive_avg_pool2d(x, 3, 3);
  cl_set_threads(2);
  cl_tensor *a2 = cl_avg_pool2d(x, 3, 2, 1), *g2 = cl_adaptive_avg_pool2d(x, 3, 3);
  CHECK(bit_identical(a1, a2) && bit_identical(g1, g2), "avg pools: 1 and 2 threads agree");
  cl_release(x), cl_release(a1), cl_release(a2), cl_release(g1), cl_release(g2);
}

static void test_avg_misuse(void) {
  int64_t xs[4] = {1, 1, 4, 4}, s3[3] = {1, 4, 4};
  cl_tensor *x = cl_zeros(CL_FLOAT32, 4, xs), *x3 = cl_zeros(CL_FLOAT32, 3, s3);
  FAILS_NULL(cl_avg_pool2d(x, 2, 2, 2), "avg_pool2d: padding must be in [0, kernel/2]");
  FAILS_NULL(cl_avg_pool2d(x, 7, 1, 1), "avg_pool2d: kernel 7×7 is larger than the padded input");
  FAILS_NULL(cl_avg_pool2d(x3, 2, 2, 0), "avg_pool2d: input must be N×C×H×W, got 1×4×4");
  FAILS_NULL(cl_adaptive_avg_pool2d(x, 0, 1), "adaptive_avg_pool2d: output size must be >= 1×1");
  cl_release(x), cl_release(x3);
}

int main(void) {
  cl_rng_seed(&rng, 2024, 11);
  test_bn_hand();
  test_bn_reference_and_grads();
  test_bn_threads();
  test_bn_misuse();
  test_avg_hand();
  test_avg_reference_and_grads();
  test_avg_misuse();
  CHECK(cl_mem_in_use() == 0, "every tensor released (%zu bytes in use)", cl_mem_in_use());
  CHECK_DONE();
}

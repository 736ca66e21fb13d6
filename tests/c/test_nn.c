/* test_nn.c — the neural-network ops and optimizers: hand-computed examples, the optimised
 * convolution against the direct reference, central finite-difference gradient checks for
 * every differentiable input, bad inputs (message checked), fault injection (no leaks) and
 * repeatability under threads. */
#include "check.h"
#include "cnnlab.h"
#include "ops/conv.h"
#include "ops/pool.h"
#include "random_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static cl_tensor *tensor_f(int ndim, const int64_t *shape, const float *values) {
  return cl_from_data(CL_FLOAT32, ndim, shape, values);
}

static cl_tensor *tensor_i64(int64_t n, const int64_t *values) {
  return cl_from_data(CL_INT64, 1, &n, values);
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

static double max_abs(const cl_tensor *a) {
  double m = 0;
  for (int64_t i = 0; i < cl_numel(a); i++)
    m = fmax(m, fabs(cl_item_at(a, i)));
  return m;
}

static int bit_identical(const cl_tensor *a, const cl_tensor *b) {
  return cl_same_shape(a, b) &&
         memcmp(cl_data(a), cl_data(b), sizeof(float) * (size_t)cl_numel(a)) == 0;
}

static void check_values(const char *what, const cl_tensor *t, const double *want, int64_t n,
                         double tol) {
  CHECK(t && cl_numel(t) == n, "%s: expected %lld values, got %lld", what, (long long)n,
        t ? (long long)cl_numel(t) : -1LL);
  if (!t || cl_numel(t) != n)
    return;
  for (int64_t i = 0; i < n; i++) {
    double got = cl_item_at(t, i);
    CHECK(fabs(got - want[i]) <= tol, "%s[%lld]: got %.9g, want %.9g", what, (long long)i, got,
          want[i]);
  }
}

static void check_shape(const char *what, const cl_tensor *t, int ndim, const int64_t *shape) {
  char buf[96];
  int ok = t && t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++)
    ok = t->shape[d] == shape[d];
  CHECK(ok, "%s: wrong shape %s", what, t ? cl_shape_str(t, buf, sizeof buf) : "(null)");
}

/* ---------------------------------------------------------------- gradient checking */

typedef cl_tensor *(*op_fn)(cl_tensor **in, const void *ctx);

/* Σ out·r in double: the scalar whose gradient both sides compute. */
static double weighted_sum(const cl_tensor *out, const cl_tensor *r) {
  double s = 0;
  for (int64_t i = 0; i < cl_numel(out); i++)
    s += cl_item_at(out, i) * cl_item_at(r, i);
  return s;
}

/* Compares backward's gradient of Σ f(in)·r with central differences, for every input that
 * requires grad; inputs must be contiguous float32 leaves. */
static void grad_check(const char *name, op_fn f, cl_tensor **in, int nin, const void *ctx,
                       double eps) {
  const double atol = 2e-3, rtol = 1e-2;
  for (int i = 0; i < nin; i++)
    if (in[i]) {
      cl_release(in[i]->grad);
      in[i]->grad = NULL;
    }
  cl_tensor *out = f(in, ctx);
  CHECK(out != NULL, "%s: forward failed: %s", name, cl_last_error());
  if (!out)
    return;
  cl_rng rng;
  cl_rng_seed(&rng, 99, 7);
  cl_tensor *r = random_tensor(&rng, out->ndim, out->shape, -1, 1);
  cl_tensor *prod = cl_binary(CL_MUL, out, r);
  cl_tensor *loss = cl_sum(prod, CL_ALL_DIMS, 0);
  int rc = cl_backward(loss, NULL, 0, NULL, NULL);
  CHECK(rc == 0, "%s: backward failed: %s", name, cl_last_error());
  cl_release(loss);
  cl_release(prod);
  cl_release(out);
  for (int i = 0; i < nin && rc == 0; i++) {
    if (!in[i] || !in[i]->requires_grad)
      continue;
    cl_tensor *grad = in[i]->grad;
    CHECK(grad && cl_same_shape(grad, in[i]), "%s: input %d has no gradient of its shape", name, i);
    if (!grad || !cl_same_shape(grad, in[i]))
      continue;
    cl_set_grad_enabled(0);
    float *px = cl_f32(in[i]);
    double worst = 0, fd_at = 0, an_at = 0;
    int64_t worst_j = -1;
    for (int64_t j = 0; j < cl_numel(in[i]); j++) {
      float orig = px[j];
      float up = (float)(orig + eps), down = (float)(orig - eps);
      px[j] = up;
      cl_tensor *o1 = f(in, ctx);
      px[j] = down;
      cl_tensor *o2 = f(in, ctx);
      px[j] = orig;
      if (!o1 || !o2) {
        CHECK(0, "%s: forward failed during differencing: %s", name, cl_last_error());
        cl_release(o1);
        cl_release(o2);
        break;
      }
      double fd = (weighted_sum(o1, r) - weighted_sum(o2, r)) / ((double)up - (double)down);
      double an = cl_item_at(grad, j);
      double err = fabs(fd - an) / (atol + rtol * fmax(fabs(fd), fabs(an)));
      if (err > worst || err != err) {
        worst = err != err ? INFINITY : err;
        worst_j = j, fd_at = fd, an_at = an;
      }
      cl_release(o1);
      cl_release(o2);
    }
    cl_set_grad_enabled(1);
    CHECK(worst <= 1,
          "%s: gradient of input %d wrong at element %lld: finite difference %.7g, "
          "backward %.7g",
          name, i, (long long)worst_j, fd_at, an_at);
  }
  cl_release(r);
}

/* ---------------------------------------------------------------- op wrappers for checks */

typedef struct {
  int stride, padding;
} conv_args;

static cl_tensor *op_conv(cl_tensor **in, const void *ctx) {
  const conv_args *a = ctx;
  return cl_conv2d(in[0], in[1], in[2], a->stride, a->padding);
}

static cl_tensor *op_pool(cl_tensor **in, const void *ctx) {
  const int *ks = ctx;
  return cl_max_pool2d(in[0], ks[0], ks[1]);
}

static cl_tensor *op_linear(cl_tensor **in, const void *ctx) {
  (void)ctx;
  return cl_linear(in[0], in[1], in[2]);
}

typedef struct {
  const cl_tensor *targets;
  cl_reduction reduction;
} ce_args;

static cl_tensor *op_ce(cl_tensor **in, const void *ctx) {
  const ce_args *a = ctx;
  return cl_cross_entropy(in[0], a->targets, in[1], a->reduction);
}

static cl_tensor *op_mse(cl_tensor **in, const void *ctx) {
  return cl_mse_loss(in[0], in[1], *(const cl_reduction *)ctx);
}

static cl_tensor *op_upsample(cl_tensor **in, const void *ctx) {
  const int *size = ctx;
  return cl_upsample_bilinear(in[0], size[0], size[1]);
}

static cl_tensor *op_dropout(cl_tensor **in, const void *ctx) {
  cl_rng r;
  cl_rng_seed(&r, 1234, 5); /* the same mask every call */
  return cl_dropout(in[0], *(const double *)ctx, 1, &r);
}

static cl_tensor *grad_leaf(cl_rng *r, int ndim, const int64_t *shape, float lo, float hi) {
  cl_tensor *t = random_tensor(r, ndim, shape, lo, hi);
  cl_set_requires_grad(t, 1);
  return t;
}

/* ---------------------------------------------------------------- conv2d */

static void test_conv_hand(void) {
  float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  int64_t xs[4] = {1, 1, 3, 3};
  cl_tensor *x = tensor_f(4, xs, xv);

  float wv[4] = {1, 2, 3, 4}, bv[1] = {0.5f};
  int64_t ws[4] = {1, 1, 2, 2}, bs[1] = {1};
  cl_tensor *w = tensor_f(4, ws, wv), *b = tensor_f(1, bs, bv);
  cl_tensor *y = cl_conv2d(x, w, b, 1, 0);
  int64_t ys[4] = {1, 1, 2, 2};
  check_shape("conv 2x2", y, 4, ys);
  /* y[0,0] = 1·1 + 2·2 + 3·4 + 4·5 = 37, +0.5 */
  double want[4] = {37.5, 47.5, 67.5, 77.5};
  check_values("conv 2x2", y, want, 4, 1e-5);
  cl_release(y), cl_release(w), cl_release(b);

  /* 3×3 ones, padding 1, stride 2: each output sums the 2×2 corner block of the input */
  float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  int64_t w3s[4] = {1, 1, 3, 3};
  w = tensor_f(4, w3s, ones);
  y = cl_conv2d(x, w, NULL, 2, 1);
  check_shape("conv s2 p1", y, 4, ys);
  double want2[4] = {1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9};
  check_values("conv s2 p1", y, want2, 4, 1e-5);
  cl_release(y), cl_release(w), cl_release(x);

  /* 1×1 kernel mixes channels: out0 = c0, out1 = c1 + 10, out2 = c0 − c1 */
  float x2v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, w2v[6] = {1, 0, 0, 1, 1, -1}, b2v[3] = {0, 10, 0};
  int64_t x2s[4] = {1, 2, 2, 2}, w2s[4] = {3, 2, 1, 1}, b2s[1] = {3};
  x = tensor_f(4, x2s, x2v), w = tensor_f(4, w2s, w2v), b = tensor_f(1, b2s, b2v);
  y = cl_conv2d(x, w, b, 1, 0);
  double want3[12] = {1, 2, 3, 4, 15, 16, 17, 18, -4, -4, -4, -4};
  check_values("conv 1x1", y, want3, 12, 1e-5);
  cl_release(y), cl_release(w), cl_release(b), cl_release(x);
}

/* The seed network's shapes: 28 → 28 (pad 1) → 13 (pool) etc. */
static void test_seed_shapes(void) {
  cl_rng r;
  cl_rng_seed(&r, 3, 0);
  int64_t xs[4] = {2, 3, 28, 28}, ws[4] = {32, 3, 3, 3};
  cl_tensor *x = random_tensor(&r, 4, xs, 0, 1), *w = random_tensor(&r, 4, ws, -0.2f, 0.2f);
  cl_tensor *y = cl_conv2d(x, w, NULL, 1, 1);
  int64_t want[4] = {2, 32, 28, 28};
  check_shape("conv1", y, 4, want);
  cl_tensor *p = cl_max_pool2d(y, 3, 2);
  int64_t wantp[4] = {2, 32, 13, 13};
  check_shape("pool 28→13", p, 4, wantp);
  int64_t s13[4] = {1, 1, 13, 13}, s6[4] = {1, 1, 6, 6};
  cl_tensor *t13 = cl_zeros(CL_FLOAT32, 4, s13), *t6 = cl_zeros(CL_FLOAT32, 4, s6);
  cl_tensor *p6 = cl_max_pool2d(t13, 3, 2), *p2 = cl_max_pool2d(t6, 3, 2);
  CHECK(p6 && p6->shape[2] == 6 && p6->shape[3] == 6, "pool 13→6");
  CHECK(p2 && p2->shape[2] == 2 && p2->shape[3] == 2, "pool 6→2");
  cl_release(x), cl_release(w), cl_release(y), cl_release(p);
  cl_release(t13), cl_release(t6), cl_release(p6), cl_release(p2);
}

/* The im2col + gemm kernel against the direct definition, forward and backward. */
static void test_conv_vs_reference(void) {
  cl_rng r;
  cl_rng_seed(&r, 42, 1);
  int cases = 0, fwd_bad = 0, bwd_bad = 0;
  static const int ks[] = {1, 2, 3, 5};
  for (int n = 1; n <= 3; n += 2)
    for (int c = 1; c <= 4; c += (c == 1 ? 2 : 1))
      for (int o = 1; o <= 5; o += 2)
        for (int ki = 0; ki < 4; ki++)
          for (int stride = 1; stride <= 2; stride++)
            for (int pad = 0; pad <= 1; pad++) {
              int k = ks[ki];
              int64_t h = 4 + cl_rng_below(&r, 6), w = 4 + cl_rng_below(&r, 6);
              if (k > h + 2 * pad || k > w + 2 * pad)
                continue;
              int64_t xs[4] = {n, c, h, w}, wsh[4] = {o, c, k, k}, bs[1] = {o};
              cl_tensor *x = grad_leaf(&r, 4, xs, -1, 1), *wt = grad_leaf(&r, 4, wsh, -1, 1);
              cl_tensor *b = grad_leaf(&r, 1, bs, -1, 1);
              cl_tensor *y = cl_conv2d(x, wt, b, stride, pad);
              cl_tensor *ref = cl_conv2d_reference(x, wt, b, stride, pad);
              cases++;
              if (!y || !ref || !cl_same_shape(y, ref) ||
                  max_abs_diff(y, ref) > 1e-5 * (1 + max_abs(ref))) {
                fwd_bad++;
                fprintf(stderr, "conv vs reference forward: n%d c%d o%d k%d s%d p%d h%lld w%lld\n",
                        n, c, o, k, stride, pad, (long long)h, (long long)w);
              }
              if (y && ref) {
                cl_tensor *g = random_tensor(&r, 4, ref->shape, -1, 1);
                cl_tensor *dx = NULL, *dw = NULL, *db = NULL;
                int rc1 = cl_backward(y, g, 0, NULL, NULL);
                int rc2 = cl_conv2d_reference_backward(x, wt, g, stride, pad, &dx, &dw, &db);
                if (rc1 || rc2 || !x->grad || !wt->grad || !b->grad ||
                    max_abs_diff(x->grad, dx) > 1e-4 * (1 + max_abs(dx)) ||
                    max_abs_diff(wt->grad, dw) > 1e-4 * (1 + max_abs(dw)) ||
                    max_abs_diff(b->grad, db) > 1e-4 * (1 + max_abs(db))) {
                  bwd_bad++;
                  fprintf(stderr, "conv vs reference backward: n%d c%d o%d k%d s%d p%d: %s\n", n, c,
                          o, k, stride, pad, rc1 || rc2 ? cl_last_error() : "values differ");
                }
                cl_release(g), cl_release(dx), cl_release(dw), cl_release(db);
              }
              cl_release(y), cl_release(ref), cl_release(x), cl_release(wt), cl_release(b);
            }
  CHECK(cases > 150, "only %d reference cases ran", cases);
  CHECK(fwd_bad == 0, "%d of %d forward cases differ from the reference", fwd_bad, cases);
  CHECK(bwd_bad == 0, "%d of %d backward cases differ from the reference", bwd_bad, cases);
}

/* Batches large enough to take the parallel path: same answers as the reference, the same
 * bits on a second run, and a strided input handled like its contiguous copy. */
static void test_conv_threads(void) {
  cl_rng r;
  cl_rng_seed(&r, 8, 8);
  int64_t xs[4] = {9, 3, 28, 28}, ws[4] = {16, 3, 3, 3}, bs[1] = {16};
  cl_tensor *x = grad_leaf(&r, 4, xs, 0, 1), *w = grad_leaf(&r, 4, ws, -0.3f, 0.3f);
  cl_tensor *b = grad_leaf(&r, 1, bs, -0.1f, 0.1f);
  cl_tensor *y1 = cl_conv2d(x, w, b, 1, 1), *y2 = cl_conv2d(x, w, b, 1, 1);
  cl_tensor *ref = cl_conv2d_reference(x, w, b, 1, 1);
  CHECK(y1 && y2 && bit_identical(y1, y2), "conv forward repeats bit for bit");
  CHECK(y1 && ref && max_abs_diff(y1, ref) < 1e-4, "big conv matches reference (%g)",
        y1 && ref ? max_abs_diff(y1, ref) : -1.0);
  cl_tensor *g = random_tensor(&r, 4, ref->shape, -1, 1);
  cl_backward(y1, g, 0, NULL, NULL);
  cl_tensor *gx1 = x->grad, *gw1 = w->grad;
  x->grad = w->grad = NULL;
  cl_release(b->grad);
  b->grad = NULL;
  cl_backward(y2, g, 0, NULL, NULL);
  CHECK(gx1 && x->grad && bit_identical(gx1, x->grad), "conv dx repeats bit for bit");
  CHECK(gw1 && w->grad && bit_identical(gw1, w->grad), "conv dw repeats bit for bit");
  cl_tensor *dx, *dw, *db;
  cl_conv2d_reference_backward(x, w, g, 1, 1, &dx, &dw, &db);
  CHECK(max_abs_diff(gw1, dw) < 1e-3 * (1 + max_abs(dw)), "big conv dw matches reference (%g)",
        max_abs_diff(gw1, dw));
  CHECK(max_abs_diff(gx1, dx) < 1e-4 * (1 + max_abs(dx)), "big conv dx matches reference");

  /* One thread and two threads agree to rounding. */
  int threads = cl_get_threads();
  cl_set_threads(1);
  cl_tensor *y3 = cl_conv2d(x, w, b, 1, 1);
  cl_set_threads(threads);
  CHECK(y3 && max_abs_diff(y3, y1) < 1e-5, "conv with 1 thread agrees");

  /* A permuted (non-contiguous) input gives the same result as its contiguous copy. */
  int perm[4] = {0, 1, 3, 2};
  cl_tensor *xt = cl_permute(x, perm), *xtc = cl_contiguous(xt);
  cl_tensor *yt = cl_conv2d(xt, w, b, 2, 0), *ytc = cl_conv2d(xtc, w, b, 2, 0);
  CHECK(yt && ytc && bit_identical(yt, ytc), "conv of a strided view equals conv of its copy");

  cl_release(gx1), cl_release(gw1), cl_release(dx), cl_release(dw), cl_release(db);
  cl_release(y1), cl_release(y2), cl_release(y3), cl_release(ref), cl_release(g);
  cl_release(xt), cl_release(xtc), cl_release(yt), cl_release(ytc);
  cl_release(x), cl_release(w), cl_release(b);
}

static void test_conv_grads(void) {
  cl_rng r;
  cl_rng_seed(&r, 5, 5);
  int64_t xs[4] = {2, 2, 5, 4}, ws[4] = {3, 2, 3, 3}, bs[1] = {3};
  cl_tensor *in[3] = {grad_leaf(&r, 4, xs, -1, 1), grad_leaf(&r, 4, ws, -1, 1),
                      grad_leaf(&r, 1, bs, -1, 1)};
  conv_args a1 = {1, 1}, a2 = {2, 1}, a3 = {2, 0};
  grad_check("conv2d s1 p1 (x, w, b)", op_conv, in, 3, &a1, 1e-2);
  grad_check("conv2d s2 p1 (x, w, b)", op_conv, in, 3, &a2, 1e-2);
  grad_check("conv2d s2 p0 (x, w, b)", op_conv, in, 3, &a3, 1e-2);
  /* only the input needs a gradient: dw and db are skipped */
  cl_set_requires_grad(in[1], 0);
  cl_set_requires_grad(in[2], 0);
  grad_check("conv2d (x only)", op_conv, in, 3, &a1, 1e-2);
  CHECK(in[1]->grad == NULL && in[2]->grad == NULL, "conv2d: no gradient for w, b unless asked");
  for (int i = 0; i < 3; i++)
    cl_release(in[i]);

  int64_t ps[4] = {2, 3, 3, 3}, pws[4] = {4, 3, 1, 1};
  cl_tensor *pin[3] = {grad_leaf(&r, 4, ps, -1, 1), grad_leaf(&r, 4, pws, -1, 1), NULL};
  conv_args ap = {1, 0};
  grad_check("conv2d 1x1 no bias (x, w)", op_conv, pin, 3, &ap, 1e-2);
  cl_release(pin[0]), cl_release(pin[1]);
}

/* ---------------------------------------------------------------- max_pool2d */

static void test_pool(void) {
  float xv[16] = {1, 5, 2, 0, 3, 4, 8, 1, 0, 2, 6, 7, 9, 1, 3, 2};
  int64_t xs[4] = {1, 1, 4, 4};
  cl_tensor *x = tensor_f(4, xs, xv);
  cl_set_requires_grad(x, 1);
  cl_tensor *y = cl_max_pool2d(x, 2, 2);
  double want[4] = {5, 8, 9, 7};
  check_values("pool k2 s2", y, want, 4, 0);
  cl_release(y);
  /* overlapping windows: 8 at (1,2) is the maximum of three of them */
  y = cl_max_pool2d(x, 3, 1);
  double want2[4] = {8, 8, 9, 8};
  check_values("pool k3 s1", y, want2, 4, 0);
  int64_t gs[4] = {1, 1, 2, 2};
  cl_tensor *g = cl_full(CL_FLOAT32, 4, gs, 1);
  CHECK(cl_backward(y, g, 0, NULL, NULL) == 0, "pool backward: %s", cl_last_error());
  double want_dx[16] = {0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0};
  check_values("pool k3 s1 dx", x->grad, want_dx, 16, 0);
  cl_release(y), cl_release(g), cl_release(x);

  /* Gradient check on distinct values (0.1 apart, so ±eps never swaps a maximum). */
  cl_rng r;
  cl_rng_seed(&r, 11, 0);
  int64_t ps[4] = {2, 2, 7, 7};
  cl_tensor *perm = cl_randperm(&r, 2 * 2 * 7 * 7);
  cl_tensor *px = cl_empty(CL_FLOAT32, 4, ps);
  for (int64_t i = 0; i < cl_numel(px); i++)
    cl_f32(px)[i] = 0.1f * (float)cl_item_at(perm, i);
  cl_set_requires_grad(px, 1);
  int k3s2[2] = {3, 2}, k2s2[2] = {2, 2}, k2s3[2] = {2, 3};
  grad_check("max_pool2d k3 s2", op_pool, &px, 1, k3s2, 1e-2);
  grad_check("max_pool2d k2 s2", op_pool, &px, 1, k2s2, 1e-2);
  grad_check("max_pool2d k2 s3", op_pool, &px, 1, k2s3, 1e-2);
  cl_release(px), cl_release(perm);

  /* NaN propagates, like PyTorch */
  float nv[4] = {1, NAN, 3, 2};
  int64_t ns[4] = {1, 1, 2, 2};
  cl_tensor *nx = tensor_f(4, ns, nv), *ny = cl_max_pool2d(nx, 2, 1);
  CHECK(ny && isnan(cl_f32(ny)[0]), "max_pool2d: NaN in a window gives NaN");
  cl_release(nx), cl_release(ny);

  /* a tie sends the gradient to the first maximum in row-major order, as PyTorch does */
  float tv[4] = {2, 5, 5, 1};
  cl_tensor *tx = tensor_f(4, ns, tv);
  cl_set_requires_grad(tx, 1);
  cl_tensor *ty = cl_max_pool2d(tx, 2, 2);
  CHECK(ty && cl_backward(ty, NULL, 0, NULL, NULL) == 0, "pool tie backward");
  check_values("pool tie dx", tx->grad, (double[]){0, 1, 0, 0}, 4, 0);
  cl_release(tx), cl_release(ty);
}

/* ---------------------------------------------------------------- linear */

static void test_linear(void) {
  float xv[6] = {1, 2, 3, 4, 5, 6}, wv[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, bv[2] = {1, -1};
  int64_t xs[2] = {2, 3}, bs[1] = {2};
  cl_tensor *x = tensor_f(2, xs, xv), *w = tensor_f(2, xs, wv), *b = tensor_f(1, bs, bv);
  cl_tensor *y = cl_linear(x, w, b);
  double want[4] = {-1, 2, -1, 6.5};
  check_values("linear", y, want, 4, 1e-6);
  cl_release(y);
  /* a transposed weight view (I×O storage) works like its contiguous copy */
  cl_tensor *wt = cl_transpose(w, 0, 1), *wtc = cl_contiguous(wt);
  cl_tensor *wtt = cl_transpose(wtc, 0, 1);
  y = cl_linear(x, wtt, NULL);
  double want2[4] = {-2, 3, -2, 7.5};
  check_values("linear strided weight", y, want2, 4, 1e-6);
  cl_release(y), cl_release(wt), cl_release(wtc), cl_release(wtt);
  cl_release(x), cl_release(w), cl_release(b);

  cl_rng r;
  cl_rng_seed(&r, 21, 0);
  int64_t gx[2] = {4, 5}, gw[2] = {3, 5}, gb[1] = {3};
  cl_tensor *in[3] = {grad_leaf(&r, 2, gx, -1, 1), grad_leaf(&r, 2, gw, -1, 1),
                      grad_leaf(&r, 1, gb, -1, 1)};
  grad_check("linear (x, w, b)", op_linear, in, 3, NULL, 1e-2);
  for (int i = 0; i < 3; i++)
    cl_release(in[i]);
}

/* ---------------------------------------------------------------- dropout */

static void test_dropout(void) {
  int64_t n = 20000;
  cl_tensor *x = cl_full(CL_FLOAT32, 1, &n, 1);
  cl_rng r;
  cl_rng_seed(&r, 77, 0);
  cl_tensor *y = cl_dropout(x, 0.3, 1, &r);
  int64_t zeros = 0, scaled = 0;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = cl_f32(y)[i];
    zeros += v == 0;
    scaled += fabsf(v - 1.0f / 0.7f) < 1e-6f;
    sum += v;
  }
  double frac = (double)zeros / (double)n; /* sd = √(0.21/20000) ≈ 0.0032 */
  CHECK(fabs(frac - 0.3) < 0.015, "dropout: %.4f of the values dropped, want 0.3", frac);
  CHECK(zeros + scaled == n, "dropout: kept values must be x/(1-p)");
  CHECK(fabs(sum / (double)n - 1) < 0.03, "dropout keeps the mean (%.4f)", sum / (double)n);
  cl_rng_seed(&r, 77, 0);
  cl_tensor *y2 = cl_dropout(x, 0.3, 1, &r);
  CHECK(bit_identical(y, y2), "dropout: same seed, same mask");
  cl_release(y), cl_release(y2);

  /* evaluation, and p = 0: the values pass unchanged (a fresh view of the input) */
  cl_tensor *e = cl_dropout(x, 0.5, 0, &r), *z = cl_dropout(x, 0, 1, &r);
  CHECK(e && e != x && bit_identical(e, x), "dropout eval is the identity");
  CHECK(z && z != x && bit_identical(z, x), "dropout p=0 is the identity");
  cl_release(e), cl_release(z), cl_release(x);

  cl_rng_seed(&r, 3, 3);
  int64_t s[2] = {6, 7};
  cl_tensor *gx = grad_leaf(&r, 2, s, -1, 1);
  double p = 0.4;
  grad_check("dropout", op_dropout, &gx, 1, &p, 1e-2);
  /* eval mode passes gradients through */
  cl_tensor *ev = cl_dropout(gx, 0.4, 0, NULL);
  cl_tensor *sum_ev = cl_sum(ev, CL_ALL_DIMS, 0);
  cl_release(gx->grad);
  gx->grad = NULL;
  cl_backward(sum_ev, NULL, 0, NULL, NULL);
  CHECK(gx->grad && max_abs_diff(gx->grad, gx) >= 0 && cl_item_at(gx->grad, 5) == 1 &&
            cl_item_at(gx->grad, 41) == 1,
        "dropout eval: gradient is 1");
  cl_release(sum_ev), cl_release(ev), cl_release(gx);
}

/* ---------------------------------------------------------------- losses */

static void test_cross_entropy(void) {
  float zv[6] = {1, 2, 3, 1, 1, 1};
  int64_t zs[2] = {2, 3}, tv[2] = {2, 0}, three = 3;
  float wv[3] = {0.5f, 7, 2}; /* per class, as PyTorch's: the samples weigh w[2] = 2, w[0] = 0.5 */
  cl_tensor *z = tensor_f(2, zs, zv), *t = tensor_i64(2, tv), *w = tensor_f(1, &three, wv);
  /* row 0: log(e + e² + e³) − 3; row 1: log 3 */
  const double l0 = 0.40760596444438013, l1 = 1.0986122886681098;
  cl_tensor *none = cl_cross_entropy(z, t, NULL, CL_REDUCE_NONE);
  cl_tensor *mean = cl_cross_entropy(z, t, NULL, CL_REDUCE_MEAN);
  cl_tensor *sum = cl_cross_entropy(z, t, NULL, CL_REDUCE_SUM);
  cl_tensor *wmean = cl_cross_entropy(z, t, w, CL_REDUCE_MEAN);
  cl_tensor *wsum = cl_cross_entropy(z, t, w, CL_REDUCE_SUM);
  double want_none[2] = {l0, l1}, want_mean = (l0 + l1) / 2, want_sum = l0 + l1;
  /* PyTorch's mean divides by the weights used, Σ w[t_i] = 2.5, not by N */
  double want_wsum = 2 * l0 + 0.5 * l1, want_wmean = want_wsum / 2.5;
  check_values("ce none", none, want_none, 2, 1e-6);
  check_values("ce mean", mean, &want_mean, 1, 1e-6);
  check_values("ce sum", sum, &want_sum, 1, 1e-6);
  check_values("ce weighted mean", wmean, &want_wmean, 1, 1e-6);
  check_values("ce weighted sum", wsum, &want_wsum, 1, 1e-6);
  CHECK(mean && mean->ndim == 0, "ce mean is a 0-d tensor");
  cl_release(none), cl_release(mean), cl_release(sum), cl_release(wmean), cl_release(wsum);

  /* large logits stay finite (log-sum-exp) */
  float big[3] = {1000, 0, -1000};
  int64_t bs[2] = {1, 3}, bt[1] = {0};
  cl_tensor *bz = tensor_f(2, bs, big), *btt = tensor_i64(1, bt);
  cl_tensor *bl = cl_cross_entropy(bz, btt, NULL, CL_REDUCE_SUM);
  CHECK(bl && cl_f32(bl)[0] == 0.0f, "ce of a confident right answer is 0, got %g",
        bl ? cl_f32(bl)[0] : -1.0);
  cl_release(bz), cl_release(btt), cl_release(bl);
  cl_release(z), cl_release(t), cl_release(w);

  /* PyTorch 1.13: F.cross_entropy(2·eye(3), [0, 0, 2], weight=[1, 2, 3]) = 0.6395 (the
   * per-sample reading gave 1.8124) */
  float dv[9] = {2, 0, 0, 0, 2, 0, 0, 0, 2}, cw[3] = {1, 2, 3};
  int64_t ds[2] = {3, 3}, dt[3] = {0, 0, 2};
  cl_tensor *dz = tensor_f(2, ds, dv), *dtt = tensor_i64(3, dt), *dw = tensor_f(1, &three, cw);
  cl_tensor *dl = cl_cross_entropy(dz, dtt, dw, CL_REDUCE_MEAN);
  double lse = log(exp(2.0) + 2), want_d = ((lse - 2) + (lse - 0) + 3 * (lse - 2)) / 5;
  check_values("ce class weights (PyTorch's 0.6395)", dl, &want_d, 1, 1e-6);
  CHECK(dl && fabs(cl_f32(dl)[0] - 0.6395) < 1e-4, "ce class weights: got %g, PyTorch 0.6395",
        dl ? cl_f32(dl)[0] : -1.0);
  cl_release(dz), cl_release(dtt), cl_release(dw), cl_release(dl);

  cl_rng r;
  cl_rng_seed(&r, 31, 0);
  int64_t gs[2] = {5, 4}, four = 4, targets[5] = {0, 3, 1, 1, 2};
  cl_tensor *tt = tensor_i64(5, targets);
  cl_tensor *in[2] = {grad_leaf(&r, 2, gs, -2, 2), grad_leaf(&r, 1, &four, 0.2f, 2)};
  ce_args a = {tt, CL_REDUCE_MEAN};
  grad_check("cross_entropy mean (logits, weight)", op_ce, in, 2, &a, 1e-2);
  a.reduction = CL_REDUCE_SUM;
  grad_check("cross_entropy sum (logits, weight)", op_ce, in, 2, &a, 1e-2);
  a.reduction = CL_REDUCE_NONE;
  grad_check("cross_entropy none (logits, weight)", op_ce, in, 2, &a, 1e-2);
  cl_tensor *only[2] = {in[0], NULL};
  a.reduction = CL_REDUCE_MEAN;
  grad_check("cross_entropy mean (logits, no weight)", op_ce, only, 2, &a, 1e-2);
  cl_release(in[0]), cl_release(in[1]), cl_release(tt);
}

static void test_mse(void) {
  float av[3] = {1, 2, 3}, bv[3] = {1, 0, 5};
  int64_t n = 3;
  cl_tensor *a = tensor_f(1, &n, av), *b = tensor_f(1, &n, bv);
  cl_tensor *none = cl_mse_loss(a, b, CL_REDUCE_NONE), *mean = cl_mse_loss(a, b, CL_REDUCE_MEAN),
            *sum = cl_mse_loss(a, b, CL_REDUCE_SUM);
  double want_none[3] = {0, 4, 4}, want_mean = 8.0 / 3, want_sum = 8;
  check_values("mse none", none, want_none, 3, 1e-6);
  check_values("mse mean", mean, &want_mean, 1, 1e-6);
  check_values("mse sum", sum, &want_sum, 1, 1e-6);
  cl_release(none), cl_release(mean), cl_release(sum), cl_release(a), cl_release(b);

  cl_rng r;
  cl_rng_seed(&r, 41, 0);
  int64_t s[3] = {2, 3, 4};
  cl_tensor *in[2] = {grad_leaf(&r, 3, s, -1, 1), grad_leaf(&r, 3, s, -1, 1)};
  cl_reduction reds[3] = {CL_REDUCE_NONE, CL_REDUCE_MEAN, CL_REDUCE_SUM};
  const char *names[3] = {"mse none (a, b)", "mse mean (a, b)", "mse sum (a, b)"};
  for (int i = 0; i < 3; i++)
    grad_check(names[i], op_mse, in, 2, &reds[i], 1e-2);
  cl_release(in[0]), cl_release(in[1]);
}

/* ---------------------------------------------------------------- upsample */

static void test_upsample(void) {
  float xv[4] = {1, 2, 3, 4};
  int64_t xs[4] = {1, 1, 2, 2};
  cl_tensor *x = tensor_f(4, xs, xv);
  cl_tensor *y = cl_upsample_bilinear(x, 4, 4);
  /* align_corners = false: rows sample the input at 0 (clamped), 0.25, 0.75, 1 (clamped) */
  double want[16] = {1,   1.25, 1.75, 2,   1.5, 1.75, 2.25, 2.5,
                     2.5, 2.75, 3.25, 3.5, 3,   3.25, 3.75, 4};
  check_values("upsample 2→4", y, want, 16, 1e-6);
  cl_release(y);
  y = cl_upsample_bilinear(x, 2, 2);
  check_values("upsample same size", y, (double[]){1, 2, 3, 4}, 4, 0);
  cl_release(y);
  y = cl_upsample_bilinear(x, 1, 1); /* samples the centre: src = 0.5 */
  check_values("upsample 2→1", y, (double[]){2.5}, 1, 1e-6);
  cl_release(y), cl_release(x);

  cl_rng r;
  cl_rng_seed(&r, 51, 0);
  int64_t s1[4] = {2, 2, 2, 3}, s2[4] = {1, 2, 6, 5};
  cl_tensor *a = grad_leaf(&r, 4, s1, -1, 1), *b = grad_leaf(&r, 4, s2, -1, 1);
  int up[2] = {5, 7}, down[2] = {3, 2};
  grad_check("upsample_bilinear 2×3→5×7", op_upsample, &a, 1, up, 1e-2);
  grad_check("upsample_bilinear 6×5→3×2", op_upsample, &b, 1, down, 1e-2);
  cl_release(a), cl_release(b);
}

/* ---------------------------------------------------------------- optimizers */

static void test_sgd(void) {
  float pv[2] = {1, -2}, gv[2] = {0.5f, 0.5f};
  int64_t n = 2;
  cl_tensor *p = tensor_f(1, &n, pv), *g = tensor_f(1, &n, gv), *buf = cl_zeros(CL_FLOAT32, 1, &n);
  cl_set_requires_grad(p, 1); /* a parameter: the step writes it anyway */
  uint32_t version = p->storage->version;
  /* d = g + 0.01·p = (0.51, 0.48); buf = d; p −= 0.1·buf */
  CHECK(cl_sgd_step(p, g, buf, 0.1, 0.9, 0.01, 0) == 0, "sgd: %s", cl_last_error());
  check_values("sgd step 1", p, (double[]){0.949, -2.048}, 2, 1e-6);
  check_values("sgd buf 1", buf, (double[]){0.51, 0.48}, 2, 1e-6);
  CHECK(p->storage->version != version, "sgd bumps the parameter's version");
  /* d = (0.50949, 0.47952); buf = 0.9·buf + d = (0.96849, 0.91152) */
  cl_sgd_step(p, g, buf, 0.1, 0.9, 0.01, 0);
  check_values("sgd step 2", p, (double[]){0.852151, -2.139152}, 2, 1e-6);
  cl_release(p), cl_release(buf);

  /* Nesterov: p −= lr·(d + 0.9·buf) = lr·1.9·d on the first step */
  p = tensor_f(1, &n, pv), buf = cl_zeros(CL_FLOAT32, 1, &n);
  cl_sgd_step(p, g, buf, 0.1, 0.9, 0.01, 1);
  check_values("sgd nesterov", p, (double[]){0.9031, -2.0912}, 2, 1e-6);
  cl_release(p), cl_release(buf);
  /* plain SGD needs no buffer */
  p = tensor_f(1, &n, pv);
  CHECK(cl_sgd_step(p, g, NULL, 0.5, 0, 0, 0) == 0, "plain sgd");
  check_values("sgd plain", p, (double[]){0.75, -2.25}, 2, 1e-6);
  cl_release(p), cl_release(g);
}

static void test_adam(void) {
  float pv[2] = {1, 1}, gv[2] = {0.5f, -2};
  int64_t n = 2;
  cl_tensor *g = tensor_f(1, &n, gv);
  /* The first step moves each parameter by lr against the sign of its gradient:
   * m̂ = g, v̂ = g², so m̂/√v̂ = sign(g). */
  for (int variant = 0; variant < 3; variant++) {
    cl_tensor *p = tensor_f(1, &n, pv), *m = cl_zeros(CL_FLOAT32, 1, &n),
              *v = cl_zeros(CL_FLOAT32, 1, &n);
    double wd = variant == 0 ? 0 : 0.1;
    CHECK(cl_adam_step(p, g, m, v, 1, 0.1, 0.9, 0.999, 1e-8, wd, variant == 2) == 0, "adam: %s",
          cl_last_error());
    /* AdamW first shrinks p by (1 − lr·wd) = 0.99 */
    double shrink = variant == 2 ? 0.99 : 1;
    check_values("adam step 1", p, (double[]){shrink - 0.1, shrink + 0.1}, 2, 1e-6);
    double g0 = 0.5 + (variant == 1 ? 0.1 : 0), g1 = -2 + (variant == 1 ? 0.1 : 0);
    check_values("adam m", m, (double[]){0.1 * g0, 0.1 * g1}, 2, 1e-7);
    check_values("adam v", v, (double[]){0.001 * g0 * g0, 0.001 * g1 * g1}, 2, 1e-8);
    if (variant == 0) {
      /* step 2 with the same gradient, by the formula:
       * m = 0.19·g, v = 0.001999·g², m̂ = m/0.19, v̂ = v/0.001999 → again sign(g) */
      cl_adam_step(p, g, m, v, 2, 0.1, 0.9, 0.999, 1e-8, 0, 0);
      check_values("adam step 2", p, (double[]){0.8, 1.2}, 2, 1e-6);
    }
    cl_release(p), cl_release(m), cl_release(v);
  }
  /* A case where bias correction matters: second gradient differs from the first. */
  float g2v[1] = {1};
  int64_t one = 1;
  cl_tensor *p = cl_zeros(CL_FLOAT32, 1, &one), *m = cl_zeros(CL_FLOAT32, 1, &one),
            *v = cl_zeros(CL_FLOAT32, 1, &one), *g1 = tensor_f(1, &one, g2v);
  cl_adam_step(p, g1, m, v, 1, 0.01, 0.9, 0.999, 1e-8, 0, 0); /* p = −0.01 */
  cl_f32(g1)[0] = -3;
  cl_adam_step(p, g1, m, v, 2, 0.01, 0.9, 0.999, 1e-8, 0, 0);
  double m2 = 0.9 * 0.1 + 0.1 * -3, v2 = 0.999 * 0.001 + 0.001 * 9;
  double want = -0.01 - 0.01 / (1 - 0.81) * m2 / (sqrt(v2) / sqrt(1 - 0.998001) + 1e-8);
  check_values("adam step 2 (bias correction)", p, &want, 1, 1e-6);
  cl_release(p), cl_release(m), cl_release(v), cl_release(g1), cl_release(g);
}

/* ---------------------------------------------------------------- bad input */

#define FAILS_NULL(expr, needle) CHECK_FAILS((expr) != NULL, needle)

static void test_bad_input(void) {
  int64_t s3[3] = {2, 28, 28}, s4[4] = {2, 3, 28, 28}, w4[4] = {32, 3, 3, 3}, w3[3] = {32, 3, 3};
  int64_t wc[4] = {32, 2, 3, 3}, b16 = 16, wbig[4] = {4, 3, 7, 7}, tiny[4] = {1, 3, 2, 2};
  int64_t wnonsq[4] = {32, 3, 3, 5}, w0[4] = {4, 3, 0, 0};
  cl_tensor *x3 = cl_zeros(CL_FLOAT32, 3, s3), *x = cl_zeros(CL_FLOAT32, 4, s4);
  cl_tensor *w = cl_zeros(CL_FLOAT32, 4, w4), *wt3 = cl_zeros(CL_FLOAT32, 3, w3);
  cl_tensor *wch = cl_zeros(CL_FLOAT32, 4, wc), *b = cl_zeros(CL_FLOAT32, 1, &b16);
  cl_tensor *wb = cl_zeros(CL_FLOAT32, 4, wbig), *xt = cl_zeros(CL_FLOAT32, 4, tiny);
  cl_tensor *wns = cl_zeros(CL_FLOAT32, 4, wnonsq), *wk0 = cl_zeros(CL_FLOAT32, 4, w0);
  cl_tensor *xu8 = cl_zeros(CL_UINT8, 4, s4);

  FAILS_NULL(cl_conv2d(x3, w, NULL, 1, 1), "conv2d: input must be N×C×H×W with C = 3");
  FAILS_NULL(cl_conv2d(x3, w, NULL, 1, 1), "got 2×28×28");
  FAILS_NULL(cl_conv2d(x, wt3, NULL, 1, 1), "conv2d: weight must be O×C×K×K");
  FAILS_NULL(cl_conv2d(x, wns, NULL, 1, 1), "got 32×3×3×5");
  FAILS_NULL(cl_conv2d(x, wk0, NULL, 1, 1), "conv2d: kernel size must be >= 1");
  FAILS_NULL(cl_conv2d(x, wch, NULL, 1, 1), "with C = 2 (the weight's C), got 2×3×28×28");
  FAILS_NULL(cl_conv2d(x, w, b, 1, 1), "conv2d: bias must be 1-D of size O = 32");
  FAILS_NULL(cl_conv2d(x, w, NULL, 0, 1), "conv2d: stride must be >= 1, got 0");
  FAILS_NULL(cl_conv2d(x, w, NULL, -2, 1), "conv2d: stride must be >= 1, got -2");
  FAILS_NULL(cl_conv2d(x, w, NULL, 1, -1), "conv2d: padding must be >= 0, got -1");
  FAILS_NULL(cl_conv2d(xt, wb, NULL, 1, 2), "conv2d: kernel 7×7 is larger than the padded input "
                                            "6×6");
  FAILS_NULL(cl_conv2d(xu8, w, NULL, 1, 1), "conv2d: input must be a float32 tensor, got uint8");
  FAILS_NULL(cl_conv2d(x, w, xu8, 1, 1), "conv2d: bias must be a float32 tensor");

  FAILS_NULL(cl_max_pool2d(x3, 3, 2), "max_pool2d: input must be N×C×H×W, got 2×28×28");
  FAILS_NULL(cl_max_pool2d(x, 0, 2), "max_pool2d: kernel must be >= 1, got 0");
  FAILS_NULL(cl_max_pool2d(x, 3, 0), "max_pool2d: stride must be >= 1, got 0");
  FAILS_NULL(cl_max_pool2d(xt, 3, 1), "max_pool2d: kernel 3×3 is larger than the input plane 2×2");

  int64_t lx[2] = {4, 512}, lw[2] = {10, 500}, lb = 5;
  cl_tensor *fx = cl_zeros(CL_FLOAT32, 2, lx), *fw = cl_zeros(CL_FLOAT32, 2, lw);
  cl_tensor *fb = cl_zeros(CL_FLOAT32, 1, &lb);
  int64_t lw_ok[2] = {10, 512};
  cl_tensor *fw_ok = cl_zeros(CL_FLOAT32, 2, lw_ok);
  FAILS_NULL(cl_linear(fx, fw, NULL), "linear: input must be N×I with I = 500 (the weight's I), "
                                      "got 4×512");
  FAILS_NULL(cl_linear(fx, fw_ok, fb), "linear: bias must be 1-D of size O = 10");
  FAILS_NULL(cl_linear(fx, w, NULL), "linear: weight must be O×I, got 32×3×3×3");
  FAILS_NULL(cl_linear(x, fw_ok, NULL), "linear: input must be N×I");

  FAILS_NULL(cl_dropout(x, 1.0, 1, NULL), "dropout: p must be in [0, 1), got 1");
  FAILS_NULL(cl_dropout(x, -0.1, 1, NULL), "dropout: p must be in [0, 1), got -0.1");
  FAILS_NULL(cl_dropout(x, NAN, 0, NULL), "dropout: p must be in [0, 1)");
  FAILS_NULL(cl_dropout(xu8, 0.5, 1, NULL), "dropout: input must be a float32 tensor");

  int64_t zs[2] = {4, 3}, t_bad[4] = {0, 3, 1, 2}, t_neg[4] = {0, 1, -1, 2}, t_ok[4] = {0, 1, 2, 0};
  int64_t three = 3;
  cl_tensor *z = cl_zeros(CL_FLOAT32, 2, zs), *tb = tensor_i64(4, t_bad),
            *tn = tensor_i64(4, t_neg);
  cl_tensor *tok = tensor_i64(4, t_ok), *t3 = tensor_i64(3, t_ok);
  cl_tensor *tf = cl_zeros(CL_FLOAT32, 1, (int64_t[]){4}), *w3v = cl_zeros(CL_FLOAT32, 1, &three);
  cl_tensor *z1 = cl_zeros(CL_FLOAT32, 1, &three);
  FAILS_NULL(cl_cross_entropy(z, tb, NULL, CL_REDUCE_MEAN),
             "cross_entropy: target 3 at position 1 is out of range [0, 3)");
  FAILS_NULL(cl_cross_entropy(z, tn, NULL, CL_REDUCE_MEAN),
             "cross_entropy: target -1 at position 2 is out of range");
  FAILS_NULL(cl_cross_entropy(z, tf, NULL, CL_REDUCE_MEAN),
             "cross_entropy: targets must be an int64 tensor of class indices, got float32");
  FAILS_NULL(cl_cross_entropy(z, t3, NULL, CL_REDUCE_MEAN),
             "cross_entropy: targets must be 1-D of size N = 4 (the logits' N), got 3");
  FAILS_NULL(cl_cross_entropy(z, tok, tf, CL_REDUCE_MEAN),
             "cross_entropy: weight must be 1-D of size K = 3 (one per class, as PyTorch's");
  FAILS_NULL(cl_cross_entropy(z1, t3, NULL, CL_REDUCE_MEAN),
             "cross_entropy: logits must be N×K with K >= 1 classes, got 3");
  FAILS_NULL(cl_cross_entropy(z, tok, NULL, (cl_reduction)7), "cross_entropy: reduction must be");

  FAILS_NULL(cl_mse_loss(x, x3, CL_REDUCE_MEAN),
             "mse_loss: input and target must have the same shape, got 2×3×28×28 and 2×28×28");
  FAILS_NULL(cl_mse_loss(x, xu8, CL_REDUCE_MEAN), "mse_loss: target must be a float32 tensor");

  FAILS_NULL(cl_upsample_bilinear(x, 0, 10), "upsample_bilinear: output size must be >= 1×1, "
                                             "got 0×10");
  FAILS_NULL(cl_upsample_bilinear(x3, 10, 10), "upsample_bilinear: input must be N×C×H×W");

  /* optimizers */
  int64_t two = 2;
  cl_tensor *p = cl_zeros(CL_FLOAT32, 1, &two), *g3 = cl_zeros(CL_FLOAT32, 1, &three);
  cl_tensor *g = cl_zeros(CL_FLOAT32, 1, &two), *m = cl_zeros(CL_FLOAT32, 1, &two);
  cl_tensor *v = cl_zeros(CL_FLOAT32, 1, &two), *pi = cl_zeros(CL_INT64, 1, &two);
  int64_t s22[2] = {2, 2};
  cl_tensor *p22 = cl_zeros(CL_FLOAT32, 2, s22), *g22 = cl_zeros(CL_FLOAT32, 2, s22);
  cl_tensor *m22 = cl_zeros(CL_FLOAT32, 2, s22), *v22 = cl_zeros(CL_FLOAT32, 2, s22);
  cl_tensor *m22t = cl_transpose(m22, 0, 1);
  CHECK_FAILS(cl_sgd_step(p, g3, NULL, 0.1, 0, 0, 0) == 0,
              "sgd_step: gradient has shape 3 but the parameter has shape 2");
  CHECK_FAILS(cl_sgd_step(p, g, NULL, 0.1, 0.9, 0, 0) == 0,
              "sgd_step: momentum 0.9 needs a momentum buffer");
  CHECK_FAILS(cl_sgd_step(p, g, NULL, 0.1, 0, 0, 1) == 0, "sgd_step: nesterov needs momentum");
  CHECK_FAILS(cl_sgd_step(p, g, NULL, -0.1, 0, 0, 0) == 0, "sgd_step: lr must be");
  CHECK_FAILS(cl_sgd_step(pi, g, NULL, 0.1, 0, 0, 0) == 0,
              "sgd_step: parameter must be a float32 tensor, got int64");
  CHECK_FAILS(cl_sgd_step(p, g, p, 0.1, 0.9, 0, 0) == 0,
              "sgd_step: momentum buffer shares its storage with the parameter");
  CHECK_FAILS(cl_adam_step(p, g, m, v, 0, 0.1, 0.9, 0.999, 1e-8, 0, 0) == 0,
              "adam_step: step counts from 1, got 0");
  CHECK_FAILS(cl_adam_step(p, g, m, v, 1, 0.1, 1.0, 0.999, 1e-8, 0, 0) == 0,
              "adam_step: beta1 must be in [0, 1), got 1");
  CHECK_FAILS(cl_adam_step(p22, g22, m22t, v22, 1, 0.1, 0.9, 0.999, 1e-8, 0, 0) == 0,
              "adam_step: first moment m must be contiguous");
  CHECK_FAILS(cl_adam_step(p, g, m, m, 1, 0.1, 0.9, 0.999, 1e-8, 0, 0) == 0,
              "adam_step: first moment m shares its storage with the second moment v");
  CHECK_FAILS(cl_adam_step(p, g, m, v, 1, 0.1, 0.9, 0.999, -1, 0, 0) == 0,
              "adam_step: eps must be");
  check_values("a refused step leaves the parameter alone", p, (double[]){0, 0}, 2, 0);

  cl_tensor *all[] = {x3, x,  w,     wt3, wch, b,   wb,  xt,  wns, wk0, xu8, fx,
                      fw, fb, fw_ok, z,   tb,  tn,  tok, t3,  tf,  w3v, z1,  p,
                      g3, g,  m,     v,   pi,  p22, g22, m22, v22, m22t};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    cl_release(all[i]);
}

/* ---------------------------------------------------------------- empty batches */

static void test_empty_batch(void) {
  int64_t xs[4] = {0, 3, 6, 6}, ws[4] = {4, 3, 3, 3}, zs[2] = {0, 5}, none = 0;
  cl_tensor *x = cl_zeros(CL_FLOAT32, 4, xs), *w = cl_zeros(CL_FLOAT32, 4, ws);
  cl_tensor *y = cl_conv2d(x, w, NULL, 1, 1), *p = cl_max_pool2d(x, 3, 2);
  cl_tensor *u = cl_upsample_bilinear(x, 9, 9), *d = cl_dropout(x, 0.5, 1, NULL);
  int64_t want_y[4] = {0, 4, 6, 6}, want_p[4] = {0, 3, 2, 2}, want_u[4] = {0, 3, 9, 9};
  check_shape("conv2d of an empty batch", y, 4, want_y);
  check_shape("max_pool2d of an empty batch", p, 4, want_p);
  check_shape("upsample of an empty batch", u, 4, want_u);
  check_shape("dropout of an empty batch", d, 4, xs);
  cl_tensor *z = cl_zeros(CL_FLOAT32, 2, zs), *t = cl_zeros(CL_INT64, 1, &none);
  cl_tensor *sum = cl_cross_entropy(z, t, NULL, CL_REDUCE_SUM);
  cl_tensor *mean = cl_cross_entropy(z, t, NULL, CL_REDUCE_MEAN);
  CHECK(sum && cl_f32(sum)[0] == 0, "cross_entropy sum over no samples is 0");
  CHECK(mean && isnan(cl_f32(mean)[0]), "cross_entropy mean over no samples is NaN (0/0)");
  cl_tensor *all[] = {x, w, y, p, u, d, z, t, sum, mean};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    cl_release(all[i]);
}

/* ---------------------------------------------------------------- fault injection */

/* One forward and backward of every op, building everything it needs. Returns 0 when all of it
 * succeeded; on any failure it releases what it made and returns -1. */
static int scenario(void) {
  cl_rng r;
  cl_rng_seed(&r, 1, 1);
  int64_t xs[4] = {2, 2, 6, 6}, ws[4] = {3, 2, 3, 3}, bs = 3, ts[2] = {2}, tv[2] = {1, 0};
  int64_t ls[2] = {3, 3 * 3 * 3}; /* fc 27 → 3 after pooling 6×6 → 3×3 with k2 s2 */
  int rc = -1;
  cl_tensor *x = NULL, *w = NULL, *b = NULL, *fw = NULL, *t = NULL, *y = NULL, *p = NULL;
  cl_tensor *d = NULL, *f = NULL, *l = NULL, *u = NULL, *loss = NULL, *m = NULL, *tot = NULL;
  cl_tensor *buf = NULL, *mm = NULL, *vv = NULL;
  int64_t flat[2] = {2, -1};
  if (!(x = cl_rand(&r, 4, xs)) || !(w = cl_rand(&r, 4, ws)) || !(b = cl_rand(&r, 1, &bs)) ||
      !(fw = cl_rand(&r, 2, ls)) || !(t = cl_from_data(CL_INT64, 1, ts, tv)))
    goto done;
  cl_set_requires_grad(x, 1), cl_set_requires_grad(w, 1), cl_set_requires_grad(b, 1);
  cl_set_requires_grad(fw, 1);
  if (!(y = cl_conv2d(x, w, b, 1, 1)) || !(p = cl_max_pool2d(y, 2, 2)) ||
      !(d = cl_dropout(p, 0.25, 1, &r)) || !(f = cl_reshape(d, 2, flat)) ||
      !(l = cl_linear(f, fw, NULL)) || !(loss = cl_cross_entropy(l, t, NULL, CL_REDUCE_MEAN)) ||
      !(u = cl_upsample_bilinear(y, 9, 4)) || !(m = cl_mse_loss(u, u, CL_REDUCE_SUM)) ||
      !(tot = cl_binary(CL_ADD, loss, m)))
    goto done;
  if (cl_backward(tot, NULL, 0, NULL, NULL))
    goto done;
  if (!(buf = cl_zeros_like(w)) || !(mm = cl_zeros_like(w)) || !(vv = cl_zeros_like(w)))
    goto done;
  if (cl_sgd_step(w, w->grad, buf, 0.1, 0.9, 0, 0) ||
      cl_adam_step(w, w->grad, mm, vv, 1, 0.1, 0.9, 0.99, 1e-8, 0, 0))
    goto done;
  rc = 0;
done:;
  cl_tensor *all[] = {x, w, b, fw, t, y, p, d, f, l, u, loss, m, tot, buf, mm, vv};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    cl_release(all[i]);
  return rc;
}

static void test_fault_injection(void) {
  size_t base = cl_mem_in_use();
  long before = cl_alloc_count();
  CHECK(scenario() == 0, "scenario runs: %s", cl_last_error());
  long needed = cl_alloc_count() - before;
  CHECK(cl_mem_in_use() == base, "scenario leaves no memory behind");
  int leaks = 0, succeeded_early = 0;
  for (long k = 1; k <= needed; k++) {
    cl_fail_alloc_after(k);
    int rc = scenario();
    cl_fail_alloc_after(0);
    if (rc == 0)
      succeeded_early++;
    if (cl_mem_in_use() != base) {
      leaks++;
      fprintf(stderr, "allocation %ld failing leaks %zu bytes (%s)\n", k, cl_mem_in_use() - base,
              cl_last_error());
      base = cl_mem_in_use();
    }
  }
  CHECK(leaks == 0, "%d of %ld injected failures leaked", leaks, needed);
  CHECK(succeeded_early == 0, "%d injected failures went unnoticed", succeeded_early);
}

/* ---------------------------------------------------------------- no graph when not needed */

static void test_no_grad(void) {
  cl_rng r;
  cl_rng_seed(&r, 2, 2);
  int64_t xs[4] = {1, 1, 5, 5}, ws[4] = {1, 1, 3, 3};
  cl_tensor *x = grad_leaf(&r, 4, xs, 0, 1), *w = random_tensor(&r, 4, ws, 0, 1);
  cl_set_grad_enabled(0);
  cl_tensor *y = cl_conv2d(x, w, NULL, 1, 0), *p = cl_max_pool2d(x, 2, 2);
  cl_set_grad_enabled(1);
  CHECK(y && !y->grad_fn && !y->requires_grad, "conv2d under no_grad records nothing");
  CHECK(p && !p->grad_fn, "max_pool2d under no_grad records nothing");
  cl_tensor *y2 = cl_conv2d(x, w, NULL, 1, 0);
  CHECK(y2 && y2->grad_fn && !strcmp(cl_grad_fn_name(y2), "conv2d"), "conv2d records its node");
  cl_release(y), cl_release(p), cl_release(y2), cl_release(x), cl_release(w);
}

/* ---------------------------------------------------------------- repeatable training */

/* Two training steps (conv-ReLU-pool twice, linear, cross-entropy, Adam) of a small network
 * from a fixed start, with `threads` threads; leaves the parameters in p[0..5]. Big enough
 * that every kernel takes its parallel path. */
static int two_steps(int threads, cl_tensor **p) {
  cl_set_threads(threads);
  cl_rng r;
  cl_rng_seed(&r, 21, 4);
  int64_t xs[4] = {24, 3, 28, 28}, w1s[4] = {16, 3, 3, 3}, w2s[4] = {32, 16, 3, 3};
  int64_t fs[2] = {10, 32 * 6 * 6}, b1 = 16, b2 = 32, nt = 24, flat[2] = {24, -1};
  cl_tensor *x = random_tensor(&r, 4, xs, 0, 1);
  int64_t labels[24];
  for (int i = 0; i < 24; i++)
    labels[i] = (i * 7) % 10;
  cl_tensor *t = tensor_i64(nt, labels);
  p[0] = grad_leaf(&r, 4, w1s, -0.3f, 0.3f), p[1] = grad_leaf(&r, 1, &b1, -0.1f, 0.1f);
  p[2] = grad_leaf(&r, 4, w2s, -0.1f, 0.1f), p[3] = grad_leaf(&r, 1, &b2, -0.1f, 0.1f);
  p[4] = grad_leaf(&r, 2, fs, -0.05f, 0.05f), p[5] = NULL;
  cl_tensor *m[5], *v[5];
  for (int i = 0; i < 5; i++)
    m[i] = cl_zeros_like(p[i]), v[i] = cl_zeros_like(p[i]);
  int rc = 0;
  for (int step = 1; step <= 2 && !rc; step++) {
    cl_tensor *c1 = cl_conv2d(x, p[0], p[1], 1, 1), *r1 = cl_unary(CL_RELU, c1);
    cl_tensor *q1 = cl_max_pool2d(r1, 3, 2), *c2 = cl_conv2d(q1, p[2], p[3], 1, 1);
    cl_tensor *r2 = cl_unary(CL_RELU, c2), *q2 = cl_max_pool2d(r2, 3, 2);
    cl_tensor *f = cl_reshape(q2, 2, flat), *l = cl_linear(f, p[4], NULL);
    cl_tensor *loss = cl_cross_entropy(l, t, NULL, CL_REDUCE_MEAN);
    rc = !loss || cl_backward(loss, NULL, 0, NULL, NULL);
    for (int i = 0; i < 5 && !rc; i++) {
      rc = cl_adam_step(p[i], p[i]->grad, m[i], v[i], step, 1e-2, 0.9, 0.999, 1e-8, 0, 0);
      cl_release(p[i]->grad);
      p[i]->grad = NULL;
    }
    cl_tensor *all[] = {c1, r1, q1, c2, r2, q2, f, l, loss};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
      cl_release(all[i]);
  }
  for (int i = 0; i < 5; i++)
    cl_release(m[i]), cl_release(v[i]);
  cl_release(x), cl_release(t);
  return rc;
}

/* The same thread count gives the same bits, run after run — and so do 1 and 2 threads: the
 * kernels cut batches into chunks that do not depend on the thread count and sum partials in
 * chunk order (src/nn.c), and the GEMM never splits a sum across threads. */
static void test_training_repeatable(void) {
  int threads = cl_get_threads();
  cl_tensor *a[6], *b[6], *c[6], *d[6];
  CHECK(two_steps(2, a) == 0 && two_steps(2, b) == 0, "two training steps with 2 threads: %s",
        cl_last_error());
  CHECK(two_steps(1, c) == 0 && two_steps(1, d) == 0, "two training steps with 1 thread: %s",
        cl_last_error());
  for (int i = 0; i < 5; i++) {
    CHECK(bit_identical(a[i], b[i]), "2 threads: parameter %d identical on a second run", i);
    CHECK(bit_identical(c[i], d[i]), "1 thread: parameter %d identical on a second run", i);
    CHECK(bit_identical(a[i], c[i]), "1 and 2 threads give the same bits for parameter %d (%g)", i,
          max_abs_diff(a[i], c[i]));
    cl_release(a[i]), cl_release(b[i]), cl_release(c[i]), cl_release(d[i]);
  }
  cl_set_threads(threads);
}

int main(void) {
  test_conv_hand();
  test_seed_shapes();
  test_conv_vs_reference();
  test_conv_threads();
  test_conv_grads();
  test_pool();
  test_linear();
  test_dropout();
  test_cross_entropy();
  test_mse();
  test_upsample();
  test_sgd();
  test_adam();
  test_bad_input();
  test_no_grad();
  test_empty_batch();
  test_training_repeatable();
  test_fault_injection();
  CHECK(cl_mem_in_use() == 0, "every tensor released (%zu bytes in use)", cl_mem_in_use());
  CHECK_DONE();
}

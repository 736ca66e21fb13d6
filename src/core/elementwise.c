/* elementwise.c — broadcasting binary ops, ops with a scalar, unary maths and clamp, each
 * with its backward rule beside it. */
#include "core/tensor_impl.h"

#include <math.h>
#include <string.h>

static const char *binop_name(cl_binop op) {
  static const char *names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[op];
}

static int is_comparison(cl_binop op) { return op >= CL_EQ; }

static double apply(cl_binop op, double a, double b) {
  switch (op) {
  case CL_ADD: return a + b;
  case CL_SUB: return a - b;
  case CL_MUL: return a * b;
  case CL_DIV: return a / b;
  case CL_POW: return pow(a, b);
  case CL_MAXIMUM: return a >= b || b != b ? a : b;
  case CL_MINIMUM: return a <= b || b != b ? a : b;
  case CL_EQ: return a == b;
  case CL_NE: return a != b;
  case CL_LT: return a < b;
  case CL_LE: return a <= b;
  case CL_GT: return a > b;
  case CL_GE: return a >= b;
  }
  return 0;
}

static cl_dtype result_dtype(cl_binop op, cl_dtype a, cl_dtype b) {
  if (is_comparison(op))
    return CL_UINT8;
  if (op == CL_DIV || a == CL_FLOAT32 || b == CL_FLOAT32)
    return CL_FLOAT32;
  if (a == CL_INT64 || b == CL_INT64)
    return CL_INT64;
  return CL_UINT8;
}

/* out[i] = a[i] op b[i] over out's shape, with a and b given by broadcast strides. The last
 * dimension runs in a tight loop; float32 operands skip the double round trip. */
static void binary_loop(cl_binop op, cl_tensor *out, const cl_tensor *a, const int64_t *sa,
                        const cl_tensor *b, const int64_t *sb) {
  int nd = out->ndim;
  int64_t total = cl_numel(out);
  if (total == 0)
    return;
  int64_t inner = nd ? out->shape[nd - 1] : 1;
  int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
  int64_t idx[CL_MAX_DIMS] = {0}, oa = 0, ob = 0;
  const void *pa = cl_data(a), *pb = cl_data(b);
  void *po = cl_data(out);
  int fast = a->dtype == CL_FLOAT32 && b->dtype == CL_FLOAT32 && out->dtype == CL_FLOAT32;
  for (int64_t o = 0; o < total; o += inner) {
    if (fast) {
      const float *x = (const float *)pa + oa, *y = (const float *)pb + ob;
      float *z = (float *)po + o;
      switch (op) {
      case CL_ADD: for (int64_t i = 0; i < inner; i++) z[i] = x[i * ia] + y[i * ib]; break;
      case CL_SUB: for (int64_t i = 0; i < inner; i++) z[i] = x[i * ia] - y[i * ib]; break;
      case CL_MUL: for (int64_t i = 0; i < inner; i++) z[i] = x[i * ia] * y[i * ib]; break;
      case CL_DIV: for (int64_t i = 0; i < inner; i++) z[i] = x[i * ia] / y[i * ib]; break;
      default:
        for (int64_t i = 0; i < inner; i++)
          z[i] = (float)apply(op, x[i * ia], y[i * ib]);
      }
    } else {
      for (int64_t i = 0; i < inner; i++)
        cl_store(out->dtype, po, o + i,
                 apply(op, cl_load(a->dtype, pa, oa + i * ia), cl_load(b->dtype, pb, ob + i * ib)));
    }
    /* advance the multi-index over the outer dimensions */
    for (int d = nd - 2; d >= 0; d--) {
      idx[d]++;
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < out->shape[d])
        break;
      oa -= sa[d] * idx[d];
      ob -= sb[d] * idx[d];
      idx[d] = 0;
    }
  }
}

static int binary_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_binop op = (cl_binop)n->iarg[0];
  cl_tensor *a = n->saved[0], *b = n->saved[1], *ga = NULL, *gb = NULL;
  int rc = 0;
  switch (op) {
  case CL_ADD:
  case CL_SUB:
    ga = g, gb = op == CL_ADD ? g : cl_unary(CL_NEG, g);
    cl_retain(g);
    if (op == CL_ADD)
      cl_retain(g);
    break;
  case CL_MUL:
    ga = cl_binary(CL_MUL, g, b);
    gb = cl_binary(CL_MUL, g, a);
    break;
  case CL_DIV: {
    ga = cl_binary(CL_DIV, g, b);
    cl_tensor *q = ga ? cl_binary(CL_DIV, ga, b) : NULL; /* g / b² */
    cl_tensor *m = q ? cl_binary(CL_MUL, q, a) : NULL;
    gb = m ? cl_unary(CL_NEG, m) : NULL;
    cl_release(q);
    cl_release(m);
    break;
  }
  case CL_POW: { /* d(a^b)/da = b·a^(b−1), d(a^b)/db = a^b·ln a */
    cl_tensor *bm1 = cl_binary_scalar(CL_SUB, b, 1, 0);
    cl_tensor *p = bm1 ? cl_binary(CL_POW, a, bm1) : NULL;
    cl_tensor *t = p ? cl_binary(CL_MUL, p, b) : NULL;
    ga = t ? cl_binary(CL_MUL, g, t) : NULL;
    cl_tensor *ab = cl_binary(CL_POW, a, b), *la = cl_unary(CL_LOG, a);
    cl_tensor *u = ab && la ? cl_binary(CL_MUL, ab, la) : NULL;
    gb = u ? cl_binary(CL_MUL, g, u) : NULL;
    cl_release(bm1), cl_release(p), cl_release(t), cl_release(ab), cl_release(la), cl_release(u);
    break;
  }
  case CL_MAXIMUM:
  case CL_MINIMUM: { /* ties split the gradient half and half, as PyTorch's */
    cl_tensor *wins = cl_binary(op == CL_MAXIMUM ? CL_GT : CL_LT, a, b);
    cl_tensor *tie = wins ? cl_binary(CL_EQ, a, b) : NULL;
    cl_tensor *half = tie ? cl_binary_scalar(CL_MUL, tie, 0.5, 0) : NULL;
    cl_tensor *mask = half ? cl_binary(CL_ADD, half, wins) : NULL; /* 1, 0.5 or 0 */
    cl_tensor *inv = mask ? cl_binary_scalar(CL_SUB, mask, 1, 1) : NULL;
    ga = mask ? cl_binary(CL_MUL, g, mask) : NULL;
    gb = inv ? cl_binary(CL_MUL, g, inv) : NULL;
    cl_release(wins), cl_release(tie), cl_release(half), cl_release(mask), cl_release(inv);
    break;
  }
  default: break;
  }
  if (n->inputs[0] && !(gin[0] = ga ? cl_sum_to(ga, a->ndim, a->shape) : NULL))
    rc = -1;
  if (n->inputs[1] && !(gin[1] = gb ? cl_sum_to(gb, b->ndim, b->shape) : NULL))
    rc = -1;
  cl_release(ga);
  cl_release(gb);
  return rc;
}

cl_tensor *cl_binary(cl_binop op, cl_tensor *a, cl_tensor *b) {
  int nd;
  int64_t shape[CL_MAX_DIMS], sa[CL_MAX_DIMS], sb[CL_MAX_DIMS];
  if (cl_broadcast_shape(binop_name(op), a->ndim, a->shape, b->ndim, b->shape, &nd, shape))
    return NULL;
  cl_tensor *out = cl_empty(result_dtype(op, a->dtype, b->dtype), nd, shape);
  if (!out)
    return NULL;
  cl_broadcast_strides(a, nd, shape, sa);
  cl_broadcast_strides(b, nd, shape, sb);
  binary_loop(op, out, a, sa, b, sb);
  if (is_comparison(op) || out->dtype != CL_FLOAT32)
    return out;
  cl_node *n;
  cl_tensor *in[2] = {a, b};
  if (cl_record(&out, &n, binop_name(op), binary_backward, 2, in, 2, in))
    return NULL;
  if (n)
    n->iarg[0] = op;
  return out;
}

/* ---------------------------------------------------------------- with a scalar */

static int scalar_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_binop op = (cl_binop)n->iarg[0];
  int first = (int)n->iarg[1];
  double s = n->farg[0];
  cl_tensor *x = n->saved[0], *r = NULL;
  switch (op) {
  case CL_ADD: r = g, cl_retain(g); break;
  case CL_SUB: r = first ? cl_unary(CL_NEG, g) : (cl_retain(g), g); break;
  case CL_MUL: r = cl_binary_scalar(CL_MUL, g, s, 0); break;
  case CL_DIV:
    if (!first) {
      r = cl_binary_scalar(CL_MUL, g, 1.0 / s, 0);
    } else { /* d(s/x) = −s/x² */
      cl_tensor *x2 = cl_unary(CL_SQUARE, x);
      cl_tensor *q = x2 ? cl_binary(CL_DIV, g, x2) : NULL;
      r = q ? cl_binary_scalar(CL_MUL, q, -s, 0) : NULL;
      cl_release(x2);
      cl_release(q);
    }
    break;
  case CL_POW:
    if (!first) { /* d(x^s) = s·x^(s−1) */
      cl_tensor *p = cl_binary_scalar(CL_POW, x, s - 1, 0);
      cl_tensor *q = p ? cl_binary(CL_MUL, g, p) : NULL;
      r = q ? cl_binary_scalar(CL_MUL, q, s, 0) : NULL;
      cl_release(p);
      cl_release(q);
    } else { /* d(s^x) = s^x·ln s */
      cl_tensor *p = cl_binary_scalar(CL_POW, x, s, 1);
      cl_tensor *q = p ? cl_binary(CL_MUL, g, p) : NULL;
      r = q ? cl_binary_scalar(CL_MUL, q, log(s), 0) : NULL;
      cl_release(p);
      cl_release(q);
    }
    break;
  case CL_MAXIMUM:
  case CL_MINIMUM: {
    cl_tensor *mask = cl_binary_scalar(op == CL_MAXIMUM ? CL_GE : CL_LE, x, s, 0);
    r = mask ? cl_binary(CL_MUL, g, mask) : NULL;
    cl_release(mask);
    break;
  }
  default: break;
  }
  gin[0] = r;
  return r ? 0 : -1;
}

cl_tensor *cl_binary_scalar(cl_binop op, cl_tensor *t, double s, int scalar_first) {
  int integral = s == floor(s) && fabs(s) < 9e15;
  cl_dtype dt = result_dtype(op, t->dtype, integral ? t->dtype : CL_FLOAT32);
  if (op == CL_POW && t->dtype != CL_FLOAT32 && (!integral || s < 0))
    dt = CL_FLOAT32;
  cl_tensor *out = cl_empty(dt, t->ndim, t->shape);
  if (!out)
    return NULL;
  int64_t total = cl_numel(out);
  if (t->dtype == CL_FLOAT32 && dt == CL_FLOAT32 && cl_is_contiguous(t) && !scalar_first &&
      op <= CL_DIV) {
    const float *x = cl_f32(t);
    float *z = cl_f32(out), v = (float)s;
    switch (op) {
    case CL_ADD: for (int64_t i = 0; i < total; i++) z[i] = x[i] + v; break;
    case CL_SUB: for (int64_t i = 0; i < total; i++) z[i] = x[i] - v; break;
    case CL_MUL: for (int64_t i = 0; i < total; i++) z[i] = x[i] * v; break;
    default: for (int64_t i = 0; i < total; i++) z[i] = x[i] / v; break;
    }
  } else {
    void *po = cl_data(out);
    for (int64_t i = 0; i < total; i++) {
      double x = cl_item_at(t, i);
      cl_store(dt, po, i, scalar_first ? apply(op, s, x) : apply(op, x, s));
    }
  }
  if (is_comparison(op) || dt != CL_FLOAT32)
    return out;
  cl_node *n;
  if (cl_record(&out, &n, binop_name(op), scalar_backward, 1, &t, 1, &t))
    return NULL;
  if (n) {
    n->iarg[0] = op;
    n->iarg[1] = scalar_first;
    n->farg[0] = s;
  }
  return out;
}

/* ---------------------------------------------------------------- unary maths */

static const char *unop_name(cl_unop op) {
  static const char *names[] = {"neg", "exp", "log", "relu", "sigmoid",
                                "tanh", "abs", "sign", "sqrt", "square"};
  return names[op];
}

static float unary_value(cl_unop op, float x) {
  switch (op) {
  case CL_NEG: return -x;
  case CL_EXP: return expf(x);
  case CL_LOG: return logf(x);
  case CL_RELU: return x > 0 ? x : 0;
  case CL_SIGMOID: return x >= 0 ? 1 / (1 + expf(-x)) : expf(x) / (1 + expf(x));
  case CL_TANH: return tanhf(x);
  case CL_ABS: return fabsf(x);
  case CL_SIGN: return (float)((x > 0) - (x < 0));
  case CL_SQRT: return sqrtf(x);
  case CL_SQUARE: return x * x;
  }
  return x;
}

/* Local derivative dy/dx from the input x and the output y. */
static float unary_slope(cl_unop op, float x, float y) {
  switch (op) {
  case CL_NEG: return -1;
  case CL_EXP: return y;
  case CL_LOG: return 1 / x;
  case CL_RELU: return x > 0 ? 1.0f : 0.0f;
  case CL_SIGMOID: return y * (1 - y);
  case CL_TANH: return 1 - y * y;
  case CL_ABS: return (float)((x > 0) - (x < 0));
  case CL_SIGN: return 0;
  case CL_SQRT: return 0.5f / y;
  case CL_SQUARE: return 2 * x;
  }
  return 0;
}

/* ReLU has its own kernels: it runs after every convolution, on the biggest activations of
 * a network, so both directions must stream at memory speed. The loops keep or clear the bits
 * of each value with a mask, which the compiler turns into a vector compare-and-AND (written
 * with "?:" on floats, GCC 12 judged the select unprofitable and left a scalar loop with a
 * branch). Threads take fixed chunks; no sums, so the bits never depend on the thread count.
 *   forward  y[i]  = x[i] > 0 ? x[i] : 0      (NaN → +0, −0 → +0)
 *   backward dx[i] = y[i] > 0 ? g[i] : 0      (y > 0 exactly where x > 0, so only y is kept) */
#define RELU_CHUNK 32768 /* elements per piece of work; 4 pieces or fewer run on one thread */

static void relu_forward_range(const float *restrict x, float *restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= -(uint32_t)(v > 0);
    memcpy(&y[i], &bits, sizeof bits);
  }
}

static void relu_backward_range(const float *restrict y, const float *restrict g,
                                float *restrict dx, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = g[i];
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= -(uint32_t)(y[i] > 0);
    memcpy(&dx[i], &bits, sizeof bits);
  }
}

/* The same over g itself (one pointer, so the compiler needs no overlap check, whose failure
 * would send it to a scalar loop). */
static void relu_backward_range_inplace(const float *restrict y, float *restrict g, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &g[i], sizeof bits);
    bits &= -(uint32_t)(y[i] > 0);
    memcpy(&g[i], &bits, sizeof bits);
  }
}

static void relu_forward_kernel(const float *x, float *y, int64_t n) {
  int64_t chunks = (n + RELU_CHUNK - 1) / RELU_CHUNK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (chunks > 4)
#endif
  for (int64_t c = 0; c < chunks; c++) {
    int64_t lo = c * RELU_CHUNK, len = n - lo < RELU_CHUNK ? n - lo : RELU_CHUNK;
    relu_forward_range(x + lo, y + lo, len);
  }
}

static void relu_backward_kernel(const float *y, const float *g, float *dx, int64_t n) {
  int64_t chunks = (n + RELU_CHUNK - 1) / RELU_CHUNK;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (chunks > 4)
#endif
  for (int64_t c = 0; c < chunks; c++) {
    int64_t lo = c * RELU_CHUNK, len = n - lo < RELU_CHUNK ? n - lo : RELU_CHUNK;
    if (dx == g)
      relu_backward_range_inplace(y + lo, dx + lo, len);
    else
      relu_backward_range(y + lo, g + lo, dx + lo, len);
  }
}

/* When nothing else holds g (no hook kept it, no retained .grad shares it), dx is written over
 * g: it was just read, so the writes hit cache lines already there, and a ReLU after a
 * convolution has a big g (12.8 MB for the seed network's first layer at batch 128). */
static int relu_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  int in_place = g->refcount == 1 && g->storage->refcount == 1;
  cl_tensor *r = in_place ? g : cl_empty_like(g);
  if (!r)
    return -1;
  if (in_place)
    cl_retain(g);
  relu_backward_kernel(cl_f32(n->saved[0]), cl_f32(g), cl_f32(r), cl_numel(g));
  gin[0] = r;
  return 0;
}

static int unary_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_unop op = (cl_unop)n->iarg[0];
  const float *x = cl_f32(n->saved[0]), *y = cl_f32(n->saved[1]), *pg = cl_f32(g);
  cl_tensor *r = cl_empty_like(g);
  if (!r)
    return -1;
  float *pr = cl_f32(r);
  int64_t total = cl_numel(g);
  for (int64_t i = 0; i < total; i++)
    pr[i] = pg[i] * unary_slope(op, x[i], y[i]);
  gin[0] = r;
  return 0;
}

cl_tensor *cl_unary(cl_unop op, cl_tensor *t) {
  cl_tensor *x = cl_float_contiguous(t);
  if (!x)
    return NULL;
  cl_tensor *out = cl_empty(CL_FLOAT32, t->ndim, t->shape);
  if (!out) {
    cl_release(x);
    return NULL;
  }
  const float *px = cl_f32(x);
  float *po = cl_f32(out);
  int64_t total = cl_numel(out);
  if (op == CL_RELU) {
    relu_forward_kernel(px, po, total);
    cl_release(x);
    cl_record(&out, NULL, "relu", relu_backward, 1, &t, 1, &out);
    return out;
  }
  for (int64_t i = 0; i < total; i++)
    po[i] = unary_value(op, px[i]);
  cl_node *n;
  cl_tensor *saved[2] = {x, out};
  cl_record(&out, &n, unop_name(op), unary_backward, 1, &t, 2, saved);
  if (n)
    n->iarg[0] = op;
  cl_release(x);
  return out;
}

static int clamp_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  const float *x = cl_f32(n->saved[0]), *pg = cl_f32(g);
  double lo = n->farg[0], hi = n->farg[1];
  cl_tensor *r = cl_empty_like(g);
  if (!r)
    return -1;
  float *pr = cl_f32(r);
  for (int64_t i = 0; i < cl_numel(g); i++)
    pr[i] = (lo != lo || x[i] >= lo) && (hi != hi || x[i] <= hi) ? pg[i] : 0;
  gin[0] = r;
  return 0;
}

cl_tensor *cl_clamp(cl_tensor *t, double lo, double hi) {
  if (lo == lo && hi == hi && lo > hi)
    return (void)cl_fail("clamp: lower bound %g is above upper bound %g", lo, hi), NULL;
  cl_tensor *x = cl_float_contiguous(t);
  if (!x)
    return NULL;
  cl_tensor *out = cl_empty(CL_FLOAT32, t->ndim, t->shape);
  if (!out) {
    cl_release(x);
    return NULL;
  }
  const float *px = cl_f32(x);
  float *po = cl_f32(out);
  for (int64_t i = 0; i < cl_numel(out); i++) {
    float v = px[i];
    if (lo == lo && v < lo)
      v = (float)lo;
    if (hi == hi && v > hi)
      v = (float)hi;
    po[i] = v;
  }
  cl_node *n;
  cl_record(&out, &n, "clamp", clamp_backward, 1, &t, 1, &x);
  if (n) {
    n->farg[0] = lo;
    n->farg[1] = hi;
  }
  cl_release(x);
  return out;
}

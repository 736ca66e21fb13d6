/* reduce.c — sum, mean, max/min, argmax, softmax and log-softmax along a dimension.
 * A reduced dimension is seen as the middle of [outer × n × inner]; sums accumulate in double
 * so that results do not depend on the order of a thread split. */
#include "core/tensor_impl.h"

#include <math.h>
#include <string.h>

/* Output shape of reducing `dim` (or everything when dim < 0). */
static int reduced_shape(const cl_tensor *t, int dim, int keepdim, int *nd, int64_t *shape) {
  *nd = 0;
  if (dim < 0) {
    if (keepdim)
      for (int d = 0; d < t->ndim; d++)
        shape[(*nd)++] = 1;
    return 0;
  }
  for (int d = 0; d < t->ndim; d++) {
    if (d != dim)
      shape[(*nd)++] = t->shape[d];
    else if (keepdim)
      shape[(*nd)++] = 1;
  }
  return 0;
}

static void split(const cl_tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = 1, *n = 1, *inner = 1;
  if (dim < 0) {
    *n = cl_numel(t);
    return;
  }
  for (int d = 0; d < dim; d++)
    *outer *= t->shape[d];
  *n = t->shape[dim];
  for (int d = dim + 1; d < t->ndim; d++)
    *inner *= t->shape[d];
}

/* Gradient of a sum/mean: g spread back over the reduced dimension, times `scale`. */
static int spread_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0];
  int dim = (int)n->iarg[0];
  double scale = n->farg[0];
  cl_tensor *r = cl_empty(CL_FLOAT32, in->ndim, in->shape);
  if (!r)
    return -1;
  int64_t outer, len, inner;
  split(in, dim, &outer, &len, &inner);
  const float *pg = cl_f32(g);
  float *pr = cl_f32(r);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < len; k++)
      for (int64_t i = 0; i < inner; i++)
        pr[(o * len + k) * inner + i] = (float)(pg[o * inner + i] * scale);
  gin[0] = r;
  return 0;
}

static cl_tensor *sum_or_mean(cl_tensor *t, int dim_arg, int keepdim, int mean) {
  const char *fn = mean ? "mean" : "sum";
  int dim = 0, nd;
  int64_t shape[CL_MAX_DIMS], outer, n, inner;
  dim = -1; /* every dimension */
  if (dim_arg != CL_ALL_DIMS && cl_norm_dim(fn, dim_arg, t->ndim, &dim))
    return NULL;
  reduced_shape(t, dim, keepdim, &nd, shape);
  split(t, dim, &outer, &n, &inner);
  int integer = t->dtype != CL_FLOAT32;
  cl_dtype dt = integer && !mean ? CL_INT64 : CL_FLOAT32;
  cl_tensor *out = cl_empty(dt, nd, shape);
  if (!out)
    return NULL;
  if (!integer) {
    cl_tensor *x = cl_float_contiguous(t);
    if (!x) {
      cl_release(out);
      return NULL;
    }
    const float *px = cl_f32(x);
    float *po = cl_f32(out);
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) {
        double s = 0;
        for (int64_t k = 0; k < n; k++)
          s += px[(o * n + k) * inner + i];
        po[o * inner + i] = (float)(mean ? s / (double)n : s);
      }
    cl_release(x);
  } else {
    /* Exact for int64 (no trip through double); an overflowing sum is refused, not wrapped.
     * Walks a strided view element by element, so it polls for an interrupt. */
    int64_t polled = 0;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t s = 0;
        for (int64_t k = 0; k < n; k++) {
          if (CL_POLL(polled++)) {
            cl_release(out);
            return NULL;
          }
          int64_t lin = (o * n + k) * inner + i;
          int64_t v = t->dtype == CL_INT64 ? cl_item_i64_at(t, lin) : (int64_t)cl_item_at(t, lin);
          if (__builtin_add_overflow(s, v, &s)) {
            cl_release(out);
            return (void)cl_fail("%s: the int64 sum overflows (convert with :float() for an "
                                 "approximate sum)",
                                 fn),
                   NULL;
          }
        }
        if (mean)
          cl_store(dt, cl_data(out), o * inner + i, (double)s / (double)n);
        else
          ((int64_t *)cl_data(out))[o * inner + i] = s;
      }
    return out;
  }
  cl_node *node;
  if (cl_record(&out, &node, fn, spread_backward, 1, &t, 0, NULL))
    return NULL;
  if (node) {
    node->iarg[0] = dim;
    node->farg[0] = mean ? 1.0 / (double)n : 1.0;
  }
  return out;
}

cl_tensor *cl_sum(cl_tensor *t, int dim, int keepdim) { return sum_or_mean(t, dim, keepdim, 0); }
cl_tensor *cl_mean(cl_tensor *t, int dim, int keepdim) { return sum_or_mean(t, dim, keepdim, 1); }

/* ---------------------------------------------------------------- max / min */

static int pick_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0];
  int dim = (int)n->iarg[0];
  const int64_t *where = (const int64_t *)cl_data(n->saved[0]);
  cl_tensor *r = cl_zeros(CL_FLOAT32, in->ndim, in->shape);
  if (!r)
    return -1;
  int64_t outer, len, inner;
  split(in, dim, &outer, &len, &inner);
  const float *pg = cl_f32(g);
  float *pr = cl_f32(r);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++)
      pr[(o * len + where[o * inner + i]) * inner + i] += pg[o * inner + i];
  gin[0] = r;
  return 0;
}

static int extreme(cl_tensor *t, int dim_arg, int keepdim, int want_max, cl_tensor **values,
                   cl_tensor **indices) {
  const char *fn = want_max ? "max" : "min";
  int dim = 0, nd;
  int64_t shape[CL_MAX_DIMS], outer, n, inner;
  if (values)
    *values = NULL;
  if (indices)
    *indices = NULL;
  if (cl_norm_dim(fn, dim_arg, t->ndim, &dim))
    return -1;
  if (t->shape[dim] == 0)
    return cl_fail("%s: dimension %d is empty", fn, dim);
  reduced_shape(t, dim, keepdim, &nd, shape);
  split(t, dim, &outer, &n, &inner);
  cl_tensor *val = cl_empty(t->dtype, nd, shape), *idx = cl_empty(CL_INT64, nd, shape);
  if (!val || !idx) {
    cl_release(val);
    cl_release(idx);
    return -1;
  }
  int64_t *pi = (int64_t *)cl_data(idx);
  int64_t polled = 0;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t best = 0;
      double bv = cl_item_at(t, o * n * inner + i);
      for (int64_t k = 1; k < n; k++) {
        if (CL_POLL(polled++)) {
          cl_release(val);
          cl_release(idx);
          return -1;
        }
        double v = cl_item_at(t, (o * n + k) * inner + i);
        /* NaN wins, as in PyTorch: a NaN must not hide behind a number */
        if (bv == bv && (v != v || (want_max ? v > bv : v < bv))) {
          bv = v;
          best = k;
        }
      }
      pi[o * inner + i] = best;
      cl_store(val->dtype, cl_data(val), o * inner + i, bv);
    }
  if (val->dtype == CL_FLOAT32) {
    cl_node *node;
    if (cl_record(&val, &node, fn, pick_backward, 1, &t, 1, &idx)) {
      cl_release(idx);
      return -1;
    }
    if (node)
      node->iarg[0] = dim;
  }
  if (values)
    *values = val;
  else
    cl_release(val);
  if (indices)
    *indices = idx;
  else
    cl_release(idx);
  return 0;
}

int cl_max(cl_tensor *t, int dim, int keepdim, cl_tensor **values, cl_tensor **indices) {
  return extreme(t, dim, keepdim, 1, values, indices);
}

int cl_min(cl_tensor *t, int dim, int keepdim, cl_tensor **values, cl_tensor **indices) {
  return extreme(t, dim, keepdim, 0, values, indices);
}

/* max()/min() over every element → 0-d. Backward as PyTorch's full reduction: the gradient is
 * shared evenly among all the elements equal to the result (all the NaNs when it is NaN),
 * where max(dim) gives it to one index. */
static int extreme_all_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->saved[0];
  double best = n->farg[0];
  int is_nan = best != best;
  int64_t total = cl_numel(in), count = 0;
  cl_tensor *r = cl_zeros(CL_FLOAT32, in->ndim, in->shape);
  if (!r)
    return -1;
  float *pr = cl_f32(r);
  for (int64_t i = 0; i < total; i++) {
    double v = cl_item_at(in, i);
    if (is_nan ? v != v : v == best)
      count++;
  }
  float share = count ? (float)(cl_f32(g)[0] / (double)count) : 0.0f;
  for (int64_t i = 0; i < total; i++) {
    double v = cl_item_at(in, i);
    if (is_nan ? v != v : v == best)
      pr[i] = share;
  }
  gin[0] = r;
  return 0;
}

static cl_tensor *extreme_all(cl_tensor *t, int want_max) {
  const char *fn = want_max ? "max" : "min";
  int64_t total = cl_numel(t);
  if (total == 0)
    return (void)cl_fail("%s: tensor is empty", fn), NULL;
  cl_tensor *val = cl_empty(t->dtype, 0, NULL);
  if (!val)
    return NULL;
  double bv = cl_item_at(t, 0);
  for (int64_t k = 1; k < total; k++) {
    double v = cl_item_at(t, k);
    if (bv == bv && (v != v || (want_max ? v > bv : v < bv)))
      bv = v;
  }
  cl_store(val->dtype, cl_data(val), 0, bv);
  if (val->dtype == CL_FLOAT32) {
    cl_node *node;
    if (cl_record(&val, &node, fn, extreme_all_backward, 1, &t, 1, &t))
      return NULL;
    if (node)
      node->farg[0] = bv;
  }
  return val;
}

cl_tensor *cl_max_all(cl_tensor *t) { return extreme_all(t, 1); }
cl_tensor *cl_min_all(cl_tensor *t) { return extreme_all(t, 0); }

cl_tensor *cl_argmax(cl_tensor *t, int dim, int keepdim) {
  cl_tensor *idx = NULL;
  int was = cl_grad_enabled();
  cl_set_grad_enabled(0);
  int rc = extreme(t, dim, keepdim, 1, NULL, &idx);
  cl_set_grad_enabled(was);
  return rc ? NULL : idx;
}

/* ---------------------------------------------------------------- softmax */

static int softmax_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  int dim = (int)n->iarg[0], logsm = (int)n->iarg[1];
  cl_tensor *y = n->saved[0];
  int64_t outer, len, inner;
  split(y, dim, &outer, &len, &inner);
  cl_tensor *r = cl_empty_like(y);
  if (!r)
    return -1;
  const float *py = cl_f32(y), *pg = cl_f32(g);
  float *pr = cl_f32(r);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double s = 0;
      for (int64_t k = 0; k < len; k++) {
        int64_t at = (o * len + k) * inner + i;
        s += logsm ? pg[at] : (double)pg[at] * py[at];
      }
      for (int64_t k = 0; k < len; k++) {
        int64_t at = (o * len + k) * inner + i;
        /* softmax: y·(g − Σg·y); log-softmax: g − exp(y)·Σg */
        pr[at] = logsm ? (float)(pg[at] - exp(py[at]) * s) : (float)(py[at] * (pg[at] - s));
      }
    }
  gin[0] = r;
  return 0;
}

static cl_tensor *softmax_impl(cl_tensor *t, int dim_arg, int logsm) {
  const char *fn = logsm ? "log_softmax" : "softmax";
  int dim = 0;
  if (cl_norm_dim(fn, dim_arg, t->ndim, &dim))
    return NULL;
  cl_tensor *x = cl_float_contiguous(t);
  if (!x)
    return NULL;
  cl_tensor *y = cl_empty(CL_FLOAT32, t->ndim, t->shape);
  if (!y) {
    cl_release(x);
    return NULL;
  }
  int64_t outer, len, inner;
  split(t, dim, &outer, &len, &inner);
  const float *px = cl_f32(x);
  float *py = cl_f32(y);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      float m = -INFINITY;
      for (int64_t k = 0; k < len; k++)
        m = fmaxf(m, px[(o * len + k) * inner + i]);
      double s = 0;
      for (int64_t k = 0; k < len; k++)
        s += exp((double)px[(o * len + k) * inner + i] - m);
      double ls = log(s);
      for (int64_t k = 0; k < len; k++) {
        int64_t at = (o * len + k) * inner + i;
        double z = (double)px[at] - m;
        py[at] = (float)(logsm ? z - ls : exp(z) / s);
      }
    }
  cl_release(x);
  cl_node *n;
  if (cl_record(&y, &n, fn, softmax_backward, 1, &t, 1, &y))
    return NULL;
  if (n) {
    n->iarg[0] = dim;
    n->iarg[1] = logsm;
  }
  return y;
}

cl_tensor *cl_softmax(cl_tensor *t, int dim) { return softmax_impl(t, dim, 0); }
cl_tensor *cl_log_softmax(cl_tensor *t, int dim) { return softmax_impl(t, dim, 1); }

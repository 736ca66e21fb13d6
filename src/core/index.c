/* index.c — index_select, gather and cat, with their backward rules (scatter-add, split). */
#include "core/tensor_impl.h"

#include <string.h>

static int check_index_tensor(const char *fn, const cl_tensor *index) {
  if (index->dtype != CL_INT64 && index->dtype != CL_UINT8)
    return cl_fail("%s: index must be an int64 tensor, got %s (convert with :long())", fn,
                   cl_dtype_name(index->dtype));
  return 0;
}

static void split3(const int64_t *shape, int ndim, int dim, int64_t *outer, int64_t *inner) {
  *outer = 1, *inner = 1;
  for (int d = 0; d < dim; d++)
    *outer *= shape[d];
  for (int d = dim + 1; d < ndim; d++)
    *inner *= shape[d];
}

/* ---------------------------------------------------------------- index_select */

static int index_select_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0], *index = n->saved[0];
  int dim = (int)n->iarg[0];
  cl_tensor *r = cl_zeros(CL_FLOAT32, in->ndim, in->shape);
  if (!r)
    return -1;
  int64_t outer, inner, len = in->shape[dim], k = cl_numel(index);
  split3(in->shape, in->ndim, dim, &outer, &inner);
  const float *pg = cl_f32(g);
  float *pr = cl_f32(r);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < k; j++) {
      int64_t src = (int64_t)cl_item_at(index, j);
      for (int64_t i = 0; i < inner; i++)
        pr[(o * len + src) * inner + i] += pg[(o * k + j) * inner + i];
    }
  gin[0] = r;
  return 0;
}

cl_tensor *cl_index_select(cl_tensor *t, int dim_arg, const cl_tensor *index) {
  int dim = 0;
  if (cl_norm_dim("index_select", dim_arg, t->ndim, &dim) ||
      check_index_tensor("index_select", index))
    return NULL;
  if (index->ndim != 1)
    return (void)cl_fail("index_select: index must be 1-D, got %d dimensions", index->ndim), NULL;
  int64_t k = cl_numel(index), len = t->shape[dim];
  for (int64_t j = 0; j < k; j++) {
    int64_t v = (int64_t)cl_item_at(index, j);
    if (v < 0 || v >= len)
      return (void)cl_fail("index_select: index %lld at position %lld is out of range for "
                           "dimension %d of size %lld",
                           (long long)v, (long long)j, dim, (long long)len),
             NULL;
  }
  int64_t shape[CL_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[dim] = k;
  cl_tensor *x = cl_contiguous(t);
  cl_tensor *out = x ? cl_empty(t->dtype, t->ndim, shape) : NULL;
  if (!out) {
    cl_release(x);
    return NULL;
  }
  int64_t outer, inner;
  split3(t->shape, t->ndim, dim, &outer, &inner);
  size_t es = cl_dtype_size(t->dtype);
  const char *px = cl_data(x);
  char *po = cl_data(out);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < k; j++) {
      int64_t src = (int64_t)cl_item_at(index, j);
      memcpy(po + (size_t)((o * k + j) * inner) * es, px + (size_t)((o * len + src) * inner) * es,
             (size_t)inner * es);
    }
  cl_release(x);
  cl_node *n;
  cl_tensor *saved = (cl_tensor *)index;
  if (t->dtype == CL_FLOAT32 &&
      cl_record(&out, &n, "index_select", index_select_backward, 1, &t, 1, &saved))
    return NULL;
  if (t->dtype == CL_FLOAT32 && n)
    n->iarg[0] = dim;
  return out;
}

/* ---------------------------------------------------------------- gather */

static int gather_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0], *index = n->saved[0];
  int dim = (int)n->iarg[0];
  cl_tensor *r = cl_zeros(CL_FLOAT32, in->ndim, in->shape);
  if (!r)
    return -1;
  float *pr = cl_f32(r);
  const float *pg = cl_f32(g);
  int64_t total = cl_numel(index);
  for (int64_t e = 0; e < total; e++) {
    int64_t rem = e, off = 0;
    for (int d = index->ndim - 1; d >= 0; d--) {
      int64_t i = rem % index->shape[d];
      rem /= index->shape[d];
      off += (d == dim ? (int64_t)cl_item_at(index, e) : i) * r->stride[d];
    }
    pr[off] += pg[e];
  }
  gin[0] = r;
  return 0;
}

cl_tensor *cl_gather(cl_tensor *t, int dim_arg, const cl_tensor *index) {
  int dim = 0;
  char b1[96], b2[96];
  if (cl_norm_dim("gather", dim_arg, t->ndim, &dim) || check_index_tensor("gather", index))
    return NULL;
  if (index->ndim != t->ndim)
    return (void)cl_fail("gather: index must have as many dimensions as the input (%d), got %d",
                         t->ndim, index->ndim),
           NULL;
  for (int d = 0; d < t->ndim; d++)
    if (d != dim && index->shape[d] > t->shape[d])
      return (void)cl_fail("gather: index of shape %s does not fit input of shape %s at "
                           "dimension %d",
                           cl_shape_str(index, b1, sizeof b1), cl_shape_str(t, b2, sizeof b2), d),
             NULL;
  int64_t total = cl_numel(index);
  for (int64_t e = 0; e < total; e++) {
    int64_t v = (int64_t)cl_item_at(index, e);
    if (v < 0 || v >= t->shape[dim])
      return (void)cl_fail("gather: index %lld is out of range for dimension %d of size %lld",
                           (long long)v, dim, (long long)t->shape[dim]),
             NULL;
  }
  cl_tensor *out = cl_empty(t->dtype, index->ndim, index->shape);
  if (!out)
    return NULL;
  const void *px = cl_data(t);
  void *po = cl_data(out);
  for (int64_t e = 0; e < total; e++) {
    int64_t rem = e, off = 0;
    for (int d = index->ndim - 1; d >= 0; d--) {
      int64_t i = rem % index->shape[d];
      rem /= index->shape[d];
      off += (d == dim ? (int64_t)cl_item_at(index, e) : i) * t->stride[d];
    }
    cl_store(out->dtype, po, e, cl_load(t->dtype, px, off));
  }
  cl_node *n;
  cl_tensor *saved = (cl_tensor *)index;
  if (t->dtype == CL_FLOAT32 && cl_record(&out, &n, "gather", gather_backward, 1, &t, 1, &saved))
    return NULL;
  if (t->dtype == CL_FLOAT32 && n)
    n->iarg[0] = dim;
  return out;
}

/* ---------------------------------------------------------------- cat */

static int cat_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  int dim = (int)n->iarg[0];
  int64_t start = 0;
  for (int i = 0; i < n->ninputs; i++) {
    int64_t len = n->ctx ? ((int64_t *)n->ctx)[i] : 0;
    if (n->inputs[i]) {
      cl_tensor *part = cl_narrow(g, dim, start, len);
      gin[i] = part ? cl_contiguous(part) : NULL;
      cl_release(part);
      if (!gin[i])
        return -1;
    }
    start += len;
  }
  return 0;
}

cl_tensor *cl_cat(int count, cl_tensor *const *ts, int dim_arg) {
  char b1[96], b2[96];
  if (count < 1)
    return (void)cl_fail("cat: needs at least one tensor"), NULL;
  const cl_tensor *first = ts[0];
  int dim = 0;
  if (cl_norm_dim("cat", dim_arg, first->ndim, &dim))
    return NULL;
  int64_t shape[CL_MAX_DIMS];
  memcpy(shape, first->shape, sizeof shape);
  shape[dim] = 0;
  cl_dtype dt = first->dtype;
  for (int i = 0; i < count; i++) {
    const cl_tensor *t = ts[i];
    if (t->ndim != first->ndim)
      return (void)cl_fail("cat: tensor %d has %d dimensions, tensor 1 has %d", i + 1, t->ndim,
                           first->ndim),
             NULL;
    for (int d = 0; d < t->ndim; d++)
      if (d != dim && t->shape[d] != first->shape[d])
        return (void)cl_fail("cat: tensor %d of shape %s does not match tensor 1 of shape %s "
                             "outside dimension %d",
                             i + 1, cl_shape_str(t, b1, sizeof b1),
                             cl_shape_str(first, b2, sizeof b2), dim),
               NULL;
    if (t->dtype == CL_FLOAT32)
      dt = CL_FLOAT32;
    shape[dim] += t->shape[dim];
  }
  cl_tensor *out = cl_empty(dt, first->ndim, shape);
  if (!out)
    return NULL;
  int64_t start = 0;
  int was = cl_grad_enabled();
  cl_set_grad_enabled(0);
  for (int i = 0; i < count; i++) {
    cl_tensor *part = cl_narrow(out, dim, start, ts[i]->shape[dim]);
    int rc = part ? cl_copy_(part, ts[i]) : -1;
    cl_release(part);
    if (rc) {
      cl_set_grad_enabled(was);
      cl_release(out);
      return NULL;
    }
    start += ts[i]->shape[dim];
  }
  cl_set_grad_enabled(was);
  if (dt != CL_FLOAT32)
    return out;
  cl_node *n;
  if (cl_record(&out, &n, "cat", cat_backward, count, ts, 0, NULL))
    return NULL;
  if (n) {
    n->iarg[0] = dim;
    n->ctx = cl_alloc(sizeof(int64_t) * (size_t)count);
    if (!n->ctx) {
      cl_release(out);
      return NULL;
    }
    n->ctx_bytes = sizeof(int64_t) * (size_t)count;
    for (int i = 0; i < count; i++)
      ((int64_t *)n->ctx)[i] = ts[i]->shape[dim];
  }
  return out;
}

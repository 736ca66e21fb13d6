/* views.c — reshape, narrow, select, transpose, permute, expand and differentiable copies.
 * A view is a new header on the same storage; its backward rule maps the gradient back. */
#include "core/tensor_impl.h"

#include <string.h>

int cl_norm_dim(const char *fn, int dim, int ndim, int *out) {
  int d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= (ndim > 0 ? ndim : 1) || (ndim == 0))
    return cl_fail("%s: dimension %d out of range for a tensor with %d dimension%s (dims count "
                   "from 0)",
                   fn, dim, ndim, ndim == 1 ? "" : "s");
  *out = d;
  return 0;
}

int cl_check_float(const char *fn, const char *arg, const cl_tensor *t) {
  if (t->dtype != CL_FLOAT32)
    return cl_fail("%s: %s must be a float32 tensor, got %s (convert with :float())", fn, arg,
                   cl_dtype_name(t->dtype));
  return 0;
}

/* A plain strided copy into a fresh contiguous tensor of `dtype`. */
static cl_tensor *copy_as(const cl_tensor *t, cl_dtype dtype) {
  cl_tensor *c = cl_empty(dtype, t->ndim, t->shape);
  if (!c)
    return NULL;
  int64_t n = cl_numel(t);
  const void *src = cl_data(t);
  void *dst = cl_data(c);
  if (t->dtype == CL_FLOAT32 && dtype == CL_FLOAT32 && t->ndim >= 1) {
    /* The common case of a transposed or narrowed float view: row by row. */
    int last = t->ndim - 1;
    int64_t rows = n / (t->shape[last] ? t->shape[last] : 1), cols = t->shape[last];
    cl_tensor rowview = *t;
    rowview.ndim = last;
    float *out = dst;
    for (int64_t r = 0; r < rows && cols > 0; r++) {
      if ((r & 0xFF) == 0xFF && cl_check_interrupt()) {
        cl_release(c);
        return NULL;
      }
      const float *in = (const float *)src + cl_offset_of(&rowview, r);
      int64_t st = t->stride[last];
      for (int64_t j = 0; j < cols; j++)
        out[r * cols + j] = in[j * st];
    }
  } else if (t->dtype == CL_UINT8 && dtype == CL_FLOAT32 && cl_is_contiguous(t)) {
    /* Images as bytes to floats (every training batch): a plain loop the compiler vectorises;
     * the generic path below costs a division per dimension and a dtype switch per element. */
    const uint8_t *in = src;
    float *out = dst;
    for (int64_t s = 0; s < n; s += CL_POLL_MASK + 1) {
      if (s > 0 && cl_check_interrupt()) {
        cl_release(c);
        return NULL;
      }
      int64_t e = s + CL_POLL_MASK + 1 < n ? s + CL_POLL_MASK + 1 : n;
      for (int64_t i = s; i < e; i++)
        out[i] = (float)in[i];
    }
  } else {
    int contiguous = cl_is_contiguous(t);
    for (int64_t i = 0; i < n; i++) {
      if (CL_POLL(i)) {
        cl_release(c);
        return NULL;
      }
      cl_move_elem(dtype, dst, i, t->dtype, src, contiguous ? i : cl_offset_of(t, i));
    }
  }
  return c;
}

cl_tensor *cl_float_contiguous(cl_tensor *t) {
  if (t->dtype == CL_FLOAT32 && cl_is_contiguous(t)) {
    cl_retain(t);
    return t;
  }
  return copy_as(t, CL_FLOAT32);
}

/* ---------------------------------------------------------------- copies */

static int identity_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  (void)n;
  cl_retain(g);
  gin[0] = g;
  return 0;
}

cl_tensor *cl_contiguous(cl_tensor *t) {
  if (cl_is_contiguous(t)) {
    cl_retain(t);
    return t;
  }
  return cl_clone(t);
}

cl_tensor *cl_clone(cl_tensor *t) {
  cl_tensor *c = copy_as(t, t->dtype);
  cl_record(&c, NULL, "clone", identity_backward, 1, &t, 0, NULL);
  return c;
}

cl_tensor *cl_to_dtype(cl_tensor *t, cl_dtype dtype) {
  if (t->dtype == dtype) {
    cl_retain(t);
    return t;
  }
  /* Only float→float carries a gradient; conversions to integers cut the graph. */
  return copy_as(t, dtype);
}

/* ---------------------------------------------------------------- views */

static cl_tensor *view_of(cl_tensor *t, int ndim, const int64_t *shape, const int64_t *stride,
                          int64_t offset) {
  cl_tensor *v = cl_header_new(t->storage, t->dtype, ndim, shape);
  if (!v)
    return NULL;
  memcpy(v->stride, stride, sizeof(int64_t) * (size_t)ndim);
  v->offset = offset;
  return v;
}

static int reshape_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0];
  gin[0] = cl_reshape(g, in->ndim, in->shape);
  return gin[0] ? 0 : -1;
}

cl_tensor *cl_reshape(cl_tensor *t, int ndim, const int64_t *shape) {
  char b1[96], b2[96];
  if (ndim < 0 || ndim > CL_MAX_DIMS)
    return (void)cl_fail("reshape: 0 to %d dimensions, got %d", CL_MAX_DIMS, ndim), NULL;
  int64_t dims[CL_MAX_DIMS], known = 1;
  int infer = -1;
  for (int d = 0; d < ndim; d++) {
    dims[d] = shape[d];
    if (shape[d] == -1) {
      if (infer >= 0)
        return (void)cl_fail("reshape: only one dimension can be -1"), NULL;
      infer = d;
    } else if (shape[d] < 0) {
      return (void)cl_fail("reshape: size %lld of dimension %d is negative", (long long)shape[d],
                           d),
             NULL;
    } else if (cl_mul_i64(known, shape[d], &known)) {
      return (void)cl_fail("reshape: shape %s has more elements than a 64-bit count can hold",
                           cl_dims_str(ndim, shape, b1, sizeof b1)),
             NULL;
    }
  }
  int64_t n = cl_numel(t);
  if (infer >= 0) {
    if (known == 0 || n % known)
      return (void)cl_fail("reshape: cannot infer dimension %d: %lld elements into %s", infer,
                           (long long)n, cl_dims_str(ndim, shape, b1, sizeof b1)),
             NULL;
    dims[infer] = n / known;
    known *= dims[infer];
  }
  if (known != n)
    return (void)cl_fail("reshape: shape %s (%lld elements) does not fit a tensor of shape %s "
                         "(%lld elements)",
                         cl_dims_str(ndim, dims, b1, sizeof b1), (long long)known,
                         cl_shape_str(t, b2, sizeof b2), (long long)n),
           NULL;
  cl_tensor *src = cl_contiguous(t);
  if (!src)
    return NULL;
  cl_tensor *v = cl_header_new(src->storage, src->dtype, ndim, dims);
  if (v)
    v->offset = src->offset;
  cl_release(src);
  cl_record(&v, NULL, "reshape", reshape_backward, 1, &t, 0, NULL);
  return v;
}

/* Gradient of a narrow/select: zeros with the slice filled in. */
static int slice_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0];
  int dim = (int)n->iarg[0];
  cl_tensor *z = cl_zeros(CL_FLOAT32, in->ndim, in->shape);
  if (!z)
    return -1;
  cl_tensor *part = n->iarg[2] < 0 ? cl_select(z, dim, n->iarg[1])
                                   : cl_narrow(z, dim, n->iarg[1], n->iarg[2]);
  int rc = part ? cl_copy_(part, g) : -1;
  cl_release(part);
  if (rc) {
    cl_release(z);
    return -1;
  }
  gin[0] = z;
  return 0;
}

cl_tensor *cl_narrow(cl_tensor *t, int dim, int64_t start, int64_t length) {
  int d = 0;
  if (cl_norm_dim("narrow", dim, t->ndim, &d))
    return NULL;
  /* Written so that nothing overflows: start + length could (start near 2^63). */
  if (start < 0 || length < 0 || start > t->shape[d] || length > t->shape[d] - start)
    return (void)cl_fail("narrow: start %lld, length %lld are outside dimension %d of size "
                         "%lld (start must be in 0..%lld, length at most size - start)",
                         (long long)start, (long long)length, d, (long long)t->shape[d],
                         (long long)t->shape[d]),
           NULL;
  int64_t shape[CL_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[d] = length;
  cl_tensor *v = view_of(t, t->ndim, shape, t->stride, t->offset + start * t->stride[d]);
  cl_node *n;
  if (cl_record(&v, &n, "narrow", slice_backward, 1, &t, 0, NULL))
    return NULL;
  if (n) {
    n->iarg[0] = d;
    n->iarg[1] = start;
    n->iarg[2] = length;
  }
  return v;
}

cl_tensor *cl_select(cl_tensor *t, int dim, int64_t index) {
  int d = 0;
  if (cl_norm_dim("select", dim, t->ndim, &d))
    return NULL;
  if (index < 0 || index >= t->shape[d])
    return (void)cl_fail("select: index %lld out of range for dimension %d of size %lld "
                         "(positions count from 0)",
                         (long long)index, d, (long long)t->shape[d]),
           NULL;
  int64_t shape[CL_MAX_DIMS], stride[CL_MAX_DIMS];
  for (int i = 0, j = 0; i < t->ndim; i++)
    if (i != d) {
      shape[j] = t->shape[i];
      stride[j++] = t->stride[i];
    }
  cl_tensor *v = view_of(t, t->ndim - 1, shape, stride, t->offset + index * t->stride[d]);
  cl_node *n;
  if (cl_record(&v, &n, "select", slice_backward, 1, &t, 0, NULL))
    return NULL;
  if (n) {
    n->iarg[0] = d;
    n->iarg[1] = index;
    n->iarg[2] = -1;
  }
  return v;
}

static int permute_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  int inverse[CL_MAX_DIMS];
  for (int i = 0; i < g->ndim; i++)
    inverse[n->iarg[i]] = i;
  cl_tensor *p = cl_permute(g, inverse);
  if (!p)
    return -1;
  gin[0] = cl_contiguous(p);
  cl_release(p);
  return gin[0] ? 0 : -1;
}

cl_tensor *cl_permute(cl_tensor *t, const int *perm) {
  int used[CL_MAX_DIMS] = {0};
  for (int i = 0; i < t->ndim; i++) {
    if (perm[i] < 0 || perm[i] >= t->ndim || used[perm[i]])
      return (void)cl_fail("permute: the order must list each of the %d dimensions 0..%d once",
                           t->ndim, t->ndim - 1),
             NULL;
    used[perm[i]] = 1;
  }
  int64_t shape[CL_MAX_DIMS], stride[CL_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) {
    shape[i] = t->shape[perm[i]];
    stride[i] = t->stride[perm[i]];
  }
  cl_tensor *v = view_of(t, t->ndim, shape, stride, t->offset);
  cl_node *n;
  if (cl_record(&v, &n, "permute", permute_backward, 1, &t, 0, NULL))
    return NULL;
  if (n)
    for (int i = 0; i < t->ndim; i++)
      n->iarg[i] = perm[i];
  return v;
}

cl_tensor *cl_transpose(cl_tensor *t, int dim0, int dim1) {
  int a = 0, b = 0, perm[CL_MAX_DIMS];
  if (cl_norm_dim("transpose", dim0, t->ndim, &a) || cl_norm_dim("transpose", dim1, t->ndim, &b))
    return NULL;
  for (int i = 0; i < t->ndim; i++)
    perm[i] = i;
  perm[a] = b;
  perm[b] = a;
  return cl_permute(t, perm);
}

cl_tensor *cl_unsqueeze(cl_tensor *t, int dim) {
  int d = dim < 0 ? dim + t->ndim + 1 : dim;
  if (d < 0 || d > t->ndim || t->ndim >= CL_MAX_DIMS)
    return (void)cl_fail("unsqueeze: position %d out of range 0..%d", dim, t->ndim), NULL;
  int64_t shape[CL_MAX_DIMS];
  for (int i = 0, j = 0; i <= t->ndim; i++)
    shape[i] = i == d ? 1 : t->shape[j++];
  return cl_reshape(t, t->ndim + 1, shape);
}

cl_tensor *cl_squeeze(cl_tensor *t, int dim) {
  int64_t shape[CL_MAX_DIMS];
  int n = 0, d = -1;
  if (dim >= 0 && cl_norm_dim("squeeze", dim, t->ndim, &d))
    return NULL;
  for (int i = 0; i < t->ndim; i++)
    if (!(t->shape[i] == 1 && (d < 0 || i == d)))
      shape[n++] = t->shape[i];
  return cl_reshape(t, n, shape);
}

static int expand_backward(cl_node *n, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *in = n->inputs[0];
  gin[0] = cl_sum_to(g, in->ndim, in->shape);
  return gin[0] ? 0 : -1;
}

cl_tensor *cl_expand(cl_tensor *t, int ndim, const int64_t *shape) {
  char b1[96], b2[96];
  int lead = ndim - t->ndim;
  if (ndim > CL_MAX_DIMS || lead < 0)
    return (void)cl_fail("expand: cannot expand %s to %s", cl_shape_str(t, b1, sizeof b1),
                         cl_dims_str(ndim, shape, b2, sizeof b2)),
           NULL;
  int64_t stride[CL_MAX_DIMS], dims[CL_MAX_DIMS];
  for (int d = 0; d < ndim; d++) {
    int64_t want = shape[d], have = d < lead ? 1 : t->shape[d - lead];
    if (want == -1 && d >= lead)
      want = have;
    if (want < 0)
      return (void)cl_fail("expand: size %lld of dimension %d is invalid (sizes are >= 0, or -1 "
                           "to keep an existing dimension) in %s",
                           (long long)shape[d], d, cl_dims_str(ndim, shape, b2, sizeof b2)),
             NULL;
    if (have != want && have != 1)
      return (void)cl_fail("expand: cannot expand %s to %s (dimension %d)",
                           cl_shape_str(t, b1, sizeof b1), cl_dims_str(ndim, shape, b2, sizeof b2),
                           d),
             NULL;
    dims[d] = want;
    stride[d] = d < lead || (have == 1 && want != 1) ? 0 : t->stride[d - lead];
  }
  if (cl_check_view_shape("expand", ndim, dims))
    return NULL;
  cl_tensor *v = view_of(t, ndim, dims, stride, t->offset);
  cl_record(&v, NULL, "expand", expand_backward, 1, &t, 0, NULL);
  return v;
}

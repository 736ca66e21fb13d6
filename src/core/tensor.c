/* tensor.c — storage, tensor headers, creation, element access and in-place writes. */
#include "core/tensor_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static uint64_t next_tensor_id = 1;

const char *cl_dtype_name(cl_dtype dtype) {
  switch (dtype) {
  case CL_FLOAT32: return "float32";
  case CL_UINT8: return "uint8";
  case CL_INT64: return "int64";
  }
  return "?";
}

size_t cl_dtype_size(cl_dtype dtype) {
  switch (dtype) {
  case CL_FLOAT32: return 4;
  case CL_UINT8: return 1;
  case CL_INT64: return 8;
  }
  return 1;
}

int cl_dtype_parse(const char *name) {
  if (!strcmp(name, "float32") || !strcmp(name, "float"))
    return CL_FLOAT32;
  if (!strcmp(name, "uint8") || !strcmp(name, "byte"))
    return CL_UINT8;
  if (!strcmp(name, "int64") || !strcmp(name, "long"))
    return CL_INT64;
  return -1;
}

/* ---------------------------------------------------------------- headers */

static cl_storage *storage_new(size_t nbytes) {
  cl_storage *s = cl_alloc(sizeof *s);
  if (!s)
    return NULL;
  s->data = cl_alloc(nbytes);
  if (!s->data) {
    cl_dealloc(s, sizeof *s);
    return NULL;
  }
  s->nbytes = nbytes;
  s->refcount = 1;
  s->version = 0;
  return s;
}

static void storage_release(cl_storage *s) {
  if (s && --s->refcount == 0) {
    cl_dealloc(s->data, s->nbytes);
    cl_dealloc(s, sizeof *s);
  }
}

void cl_set_contiguous_strides(cl_tensor *t) {
  int64_t stride = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    t->stride[d] = stride;
    stride *= t->shape[d];
  }
}

cl_tensor *cl_header_new(cl_storage *storage, cl_dtype dtype, int ndim, const int64_t *shape) {
  /* The last line of defence: callers check with their own name first. */
  if (cl_check_view_shape("tensor", ndim, shape))
    return NULL;
  cl_tensor *t = cl_alloc(sizeof *t);
  if (!t)
    return NULL;
  memset(t, 0, sizeof *t);
  t->storage = storage;
  if (storage)
    storage->refcount++;
  t->dtype = dtype;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++)
    t->shape[d] = shape[d];
  cl_set_contiguous_strides(t);
  t->refcount = 1;
  t->id = next_tensor_id++;
  return t;
}

int cl_check_view_shape(const char *fn, int ndim, const int64_t *shape) {
  char b[200];
  if (ndim < 0 || ndim > CL_MAX_DIMS)
    return cl_fail("%s: a tensor has 0 to %d dimensions, got %d", fn, CL_MAX_DIMS, ndim);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0)
      return cl_fail("%s: size of dimension %d must be >= 0, got %lld (shape %s)", fn, d,
                     (long long)shape[d], cl_dims_str(ndim, shape, b, sizeof b));
    /* A size-0 dimension counts as 1 here: strides multiply the other sizes even when the
     * tensor is empty, so 0×2^32×2^32 would overflow them (found by fuzzing IDX headers). */
    if (cl_mul_i64(n, shape[d] > 0 ? shape[d] : 1, &n))
      return cl_fail("%s: shape %s has more elements than a 64-bit count can hold", fn,
                     cl_dims_str(ndim, shape, b, sizeof b));
  }
  return 0;
}

int cl_check_shape(const char *fn, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > CL_MAX_DIMS)
    return cl_fail("%s: a tensor has 0 to %d dimensions, got %d", fn, CL_MAX_DIMS, ndim);
  int64_t n = 1;
  int over = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0)
      return cl_check_view_shape(fn, ndim, shape); /* names the negative size */
    over |= cl_mul_i64(n, shape[d] > 0 ? shape[d] : 1, &n);
  }
  if (over || n > (INT64_C(1) << 40)) {
    char b[200];
    return cl_fail("%s: shape %s: tensor of more than 2^40 elements refused (size-0 "
                   "dimensions count as 1)",
                   fn, cl_dims_str(ndim, shape, b, sizeof b));
  }
  return 0;
}

cl_tensor *cl_empty(cl_dtype dtype, int ndim, const int64_t *shape) {
  if (cl_check_shape("empty", ndim, shape))
    return NULL;
  int64_t n = 1;
  for (int d = 0; d < ndim; d++)
    n *= shape[d];
  cl_storage *s = storage_new((size_t)n * cl_dtype_size(dtype));
  if (!s)
    return NULL;
  cl_tensor *t = cl_header_new(s, dtype, ndim, shape);
  storage_release(s); /* the header holds it now */
  return t;
}

cl_tensor *cl_zeros(cl_dtype dtype, int ndim, const int64_t *shape) {
  cl_tensor *t = cl_empty(dtype, ndim, shape);
  if (t)
    memset(t->storage->data, 0, t->storage->nbytes);
  return t;
}

cl_tensor *cl_full(cl_dtype dtype, int ndim, const int64_t *shape, double value) {
  cl_tensor *t = cl_empty(dtype, ndim, shape);
  if (t && cl_fill_(t, value)) {
    cl_release(t);
    return NULL;
  }
  return t;
}

cl_tensor *cl_arange(double start, double end, double step, cl_dtype dtype) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
    cl_fail("arange: step must be non-zero and bounds finite, got start=%g end=%g step=%g", start,
            end, step);
    return NULL;
  }
  double count = ceil((end - start) / step);
  if (count < 0)
    count = 0;
  if (!(count <= (double)(INT64_C(1) << 40))) /* also before the cast: beyond 2^63 it is UB */
    return (void)cl_fail("arange: %.17g elements (from %g to %g by %g): tensor of more than "
                         "2^40 elements refused",
                         count, start, end, step),
           NULL;
  int64_t n = (int64_t)count;
  cl_tensor *t = cl_empty(dtype, 1, &n);
  if (!t)
    return NULL;
  for (int64_t i = 0; i < n; i++)
    cl_store(t->dtype, cl_data(t), i, start + (double)i * step);
  return t;
}

cl_tensor *cl_empty_like(const cl_tensor *t) { return cl_empty(t->dtype, t->ndim, t->shape); }
cl_tensor *cl_zeros_like(const cl_tensor *t) { return cl_zeros(t->dtype, t->ndim, t->shape); }

cl_tensor *cl_from_data(cl_dtype dtype, int ndim, const int64_t *shape, const void *data) {
  cl_tensor *t = cl_empty(dtype, ndim, shape);
  if (t)
    memcpy(t->storage->data, data, t->storage->nbytes);
  return t;
}

void cl_retain(cl_tensor *t) { t->refcount++; }

/* Dropping the last tensor of a long graph frees the whole chain behind it; a worklist
 * instead of recursion keeps that off the C stack. */
static cl_tensor *free_list;
static int freeing;

void cl_release(cl_tensor *t) {
  if (!t || --t->refcount > 0)
    return;
  t->free_next = free_list;
  free_list = t;
  if (freeing)
    return;
  freeing = 1;
  while (free_list) {
    cl_tensor *f = free_list;
    free_list = f->free_next;
    if (f->has_hooks)
      cl_notify_hooked_free(f);
    cl_release(f->grad);
    cl_release(f->bw_grad);
    cl_node_release(f->grad_fn);
    storage_release(f->storage);
    cl_dealloc(f, sizeof *f);
  }
  freeing = 0;
}

cl_tensor *cl_detach(const cl_tensor *t) {
  cl_tensor *a = cl_header_new(t->storage, t->dtype, t->ndim, t->shape);
  if (!a)
    return NULL;
  a->offset = t->offset;
  memcpy(a->stride, t->stride, sizeof a->stride);
  return a;
}

/* ---------------------------------------------------------------- queries */

int64_t cl_numel(const cl_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

int cl_is_contiguous(const cl_tensor *t) {
  int64_t stride = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != stride)
      return 0;
    stride *= t->shape[d];
  }
  return 1;
}

void *cl_data(const cl_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * cl_dtype_size(t->dtype);
}

float *cl_f32(const cl_tensor *t) { return (float *)cl_data(t); }

const char *cl_shape_str(const cl_tensor *t, char *buf, size_t len) {
  return cl_dims_str(t->ndim, t->shape, buf, len);
}

const char *cl_dims_str(int ndim, const int64_t *shape, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = 0;
  if (ndim == 0) {
    snprintf(buf, len, "scalar");
    return buf;
  }
  for (int d = 0; d < ndim && used < len; d++) {
    int w = snprintf(buf + used, len - used, d ? "×%lld" : "%lld", (long long)shape[d]);
    if (w < 0)
      break;
    used += (size_t)w;
  }
  return buf;
}

int cl_same_shape(const cl_tensor *a, const cl_tensor *b) {
  if (a->ndim != b->ndim)
    return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d])
      return 0;
  return 1;
}

/* ---------------------------------------------------------------- element access */

double cl_load(cl_dtype dtype, const void *data, int64_t i) {
  switch (dtype) {
  case CL_FLOAT32: return ((const float *)data)[i];
  case CL_UINT8: return ((const uint8_t *)data)[i];
  case CL_INT64: return (double)((const int64_t *)data)[i];
  }
  return 0;
}

void cl_store(cl_dtype dtype, void *data, int64_t i, double v) {
  switch (dtype) {
  case CL_FLOAT32: ((float *)data)[i] = (float)v; break;
  case CL_UINT8:
    /* Saturate: a byte image clipped to [0, 255] is what a user means. */
    ((uint8_t *)data)[i] = v != v ? 0 : v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5);
    break;
  case CL_INT64:
    ((int64_t *)data)[i] = v != v ? 0 : v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN
                                                                               : (int64_t)v;
    break;
  }
}

void cl_move_elem(cl_dtype dt, void *dst, int64_t di, cl_dtype st, const void *src, int64_t si) {
  if (dt == CL_INT64 && st == CL_INT64) /* exact: no trip through double */
    ((int64_t *)dst)[di] = ((const int64_t *)src)[si];
  else
    cl_store(dt, dst, di, cl_load(st, src, si));
}

int64_t cl_offset_of(const cl_tensor *t, int64_t linear) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t i = linear % t->shape[d];
    linear /= t->shape[d];
    off += i * t->stride[d];
  }
  return off;
}

double cl_item_at(const cl_tensor *t, int64_t linear) {
  return cl_load(t->dtype, cl_data(t), cl_offset_of(t, linear));
}

static int position(const cl_tensor *t, const int64_t *idx, const char *fn, int64_t *off) {
  *off = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (idx[d] < 0 || idx[d] >= t->shape[d]) {
      char buf[96];
      return cl_fail("%s: index %lld out of range for dimension %d of size %lld (shape %s; "
                     "positions count from 0)",
                     fn, (long long)idx[d], d, (long long)t->shape[d],
                     cl_shape_str(t, buf, sizeof buf));
    }
    *off += idx[d] * t->stride[d];
  }
  return 0;
}

int cl_get(const cl_tensor *t, const int64_t *idx, double *value) {
  int64_t off;
  if (position(t, idx, "get", &off))
    return -1;
  *value = cl_load(t->dtype, cl_data(t), off);
  return 0;
}

int cl_check_writable(const cl_tensor *t, const char *fn) {
  if (t->requires_grad && cl_grad_enabled())
    return cl_fail("%s: cannot write in place into a tensor that requires grad (use "
                   "lab.no_grad, or :detach())",
                   fn);
  return 0;
}

int cl_set(cl_tensor *t, const int64_t *idx, double value) {
  int64_t off;
  if (cl_check_writable(t, "set") || position(t, idx, "set", &off))
    return -1;
  cl_store(t->dtype, cl_data(t), off, value);
  t->storage->version++;
  return 0;
}

int cl_fill_(cl_tensor *t, double value) {
  if (cl_check_writable(t, "fill_"))
    return -1;
  int64_t n = cl_numel(t);
  void *data = cl_data(t);
  if (cl_is_contiguous(t) && t->dtype == CL_FLOAT32) {
    float v = (float)value, *p = data;
    for (int64_t i = 0; i < n; i++)
      p[i] = v;
  } else {
    for (int64_t i = 0; i < n; i++) {
      if (CL_POLL(i))
        return -1;
      cl_store(t->dtype, data, cl_offset_of(t, i), value);
    }
  }
  t->storage->version++;
  return 0;
}

int cl_check_value(const char *fn, cl_dtype dtype, double v) {
  if (dtype == CL_FLOAT32)
    return 0;
  if (v != v)
    return cl_fail("%s: NaN cannot be stored in a %s tensor", fn, cl_dtype_name(dtype));
  double lo = dtype == CL_UINT8 ? 0 : -9223372036854775808.0;
  double hi = dtype == CL_UINT8 ? 255 : 9223372036854775808.0; /* 2^63: excluded */
  if (!(v >= lo && (dtype == CL_UINT8 ? v <= hi : v < hi)))
    return cl_fail("%s: %.17g is outside the range of %s (%s)", fn, v, cl_dtype_name(dtype),
                   dtype == CL_UINT8 ? "0..255" : "-2^63..2^63-1");
  return 0;
}

static int check_i64_fits(const char *fn, cl_dtype dtype, int64_t v) {
  if (dtype == CL_UINT8 && (v < 0 || v > 255))
    return cl_fail("%s: %lld is outside the range of uint8 (0..255)", fn, (long long)v);
  return 0;
}

static void store_i64(cl_dtype dtype, void *data, int64_t i, int64_t v) {
  if (dtype == CL_INT64)
    ((int64_t *)data)[i] = v;
  else if (dtype == CL_UINT8)
    ((uint8_t *)data)[i] = (uint8_t)v; /* checked by check_i64_fits */
  else
    ((float *)data)[i] = (float)v;
}

int64_t cl_item_i64_at(const cl_tensor *t, int64_t linear) {
  return ((const int64_t *)cl_data(t))[cl_offset_of(t, linear)];
}

int cl_get_i64(const cl_tensor *t, const int64_t *idx, int64_t *value) {
  int64_t off;
  if (position(t, idx, "get", &off))
    return -1;
  if (t->dtype == CL_INT64)
    *value = ((const int64_t *)cl_data(t))[off];
  else
    *value = (int64_t)cl_load(t->dtype, cl_data(t), off); /* uint8 only: float has no i64 get */
  return 0;
}

int cl_set_i64(cl_tensor *t, const int64_t *idx, int64_t value) {
  int64_t off;
  if (cl_check_writable(t, "set") || check_i64_fits("set", t->dtype, value) ||
      position(t, idx, "set", &off))
    return -1;
  store_i64(t->dtype, cl_data(t), off, value);
  t->storage->version++;
  return 0;
}

int cl_fill_i64_(cl_tensor *t, int64_t value) {
  if (cl_check_writable(t, "fill_") || check_i64_fits("fill_", t->dtype, value))
    return -1;
  int64_t n = cl_numel(t);
  void *data = cl_data(t);
  for (int64_t i = 0; i < n; i++) {
    if (CL_POLL(i))
      return -1;
    store_i64(t->dtype, data, cl_offset_of(t, i), value);
  }
  t->storage->version++;
  return 0;
}

int cl_broadcast_shape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb,
                       int *nout, int64_t *out) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t a = i < n - na ? 1 : sa[i - (n - na)];
    int64_t b = i < n - nb ? 1 : sb[i - (n - nb)];
    if (a != b && a != 1 && b != 1) {
      char ba[96], bb[96];
      return cl_fail("%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)", fn,
                     cl_dims_str(na, sa, ba, sizeof ba), cl_dims_str(nb, sb, bb, sizeof bb), i,
                     (long long)a, (long long)b);
    }
    out[i] = a == 1 ? b : a;
  }
  *nout = n;
  return 0;
}

/* Strides of t seen as a tensor of `shape` (0 where t broadcasts). */
void cl_broadcast_strides(const cl_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
  int lead = ndim - t->ndim;
  for (int d = 0; d < ndim; d++) {
    if (d < lead)
      strides[d] = 0;
    else
      strides[d] = t->shape[d - lead] == 1 && shape[d] != 1 ? 0 : t->stride[d - lead];
  }
}

int cl_copy_(cl_tensor *dst, const cl_tensor *src) {
  if (cl_check_writable(dst, "copy_"))
    return -1;
  int n;
  int64_t shape[CL_MAX_DIMS];
  if (cl_broadcast_shape("copy_", dst->ndim, dst->shape, src->ndim, src->shape, &n, shape))
    return -1;
  for (int d = 0; d < n; d++)
    if (n != dst->ndim || shape[d] != dst->shape[d]) {
      char bd[96], bs[96];
      return cl_fail("copy_: source of shape %s does not fit destination of shape %s",
                     cl_shape_str(src, bs, sizeof bs), cl_shape_str(dst, bd, sizeof bd));
    }
  int64_t total = cl_numel(dst);
  if (dst->storage == src->storage && total > 0) {
    /* Overlapping copy: go through a temporary so the result does not depend on order. */
    cl_tensor *tmp = cl_empty(src->dtype, src->ndim, src->shape);
    if (!tmp)
      return -1;
    for (int64_t i = 0; i < cl_numel(src); i++) {
      if (CL_POLL(i)) {
        cl_release(tmp);
        return -1;
      }
      cl_move_elem(tmp->dtype, cl_data(tmp), i, src->dtype, cl_data(src), cl_offset_of(src, i));
    }
    int r = cl_copy_(dst, tmp);
    cl_release(tmp);
    return r;
  }
  if (cl_is_contiguous(dst) && cl_is_contiguous(src) && dst->dtype == src->dtype &&
      cl_same_shape(dst, src)) {
    memcpy(cl_data(dst), cl_data(src), (size_t)total * cl_dtype_size(dst->dtype));
  } else {
    int64_t sstr[CL_MAX_DIMS];
    cl_broadcast_strides(src, n, shape, sstr);
    const void *sd = cl_data(src);
    void *dd = cl_data(dst);
    for (int64_t i = 0; i < total; i++) {
      if (CL_POLL(i))
        return -1;
      int64_t rem = i, so = 0, doff = 0;
      for (int d = n - 1; d >= 0; d--) {
        int64_t k = rem % shape[d];
        rem /= shape[d];
        so += k * sstr[d];
        doff += k * dst->stride[d];
      }
      cl_move_elem(dst->dtype, dd, doff, src->dtype, sd, so);
    }
  }
  dst->storage->version++;
  return 0;
}

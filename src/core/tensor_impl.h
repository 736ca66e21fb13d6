/* tensor_impl.h — helpers shared by the core's source files; not part of the public API. */
#ifndef CNNLAB_TENSOR_IMPL_H
#define CNNLAB_TENSOR_IMPL_H

#include "cnnlab.h"

cl_tensor *cl_header_new(cl_storage *storage, cl_dtype dtype, int ndim, const int64_t *shape);
void cl_set_contiguous_strides(cl_tensor *t);
int cl_check_shape(const char *fn, int ndim, const int64_t *shape);
/* The one checked multiply for shape products: a·b into *out, -1 (no message) on int64
 * overflow. */
static inline int cl_mul_i64(int64_t a, int64_t b, int64_t *out) {
  return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
/* A shape any tensor header may have (views included): sizes >= 0 and the product of the
 * sizes (size-0 counting as 1, so every stride fits too) within int64. The message names fn
 * and the sizes. */
int cl_check_view_shape(const char *fn, int ndim, const int64_t *shape);
const char *cl_dims_str(int ndim, const int64_t *shape, char *buf, size_t len);
int cl_check_writable(const cl_tensor *t, const char *fn);

double cl_load(cl_dtype dtype, const void *data, int64_t i);
void cl_store(cl_dtype dtype, void *data, int64_t i, double v);
/* dst[di] = src[si] with conversion; int64 to int64 exactly. */
void cl_move_elem(cl_dtype dt, void *dst, int64_t di, cl_dtype st, const void *src, int64_t si);
/* Element offset (from cl_data) of the linear-th element in row-major order. */
int64_t cl_offset_of(const cl_tensor *t, int64_t linear);

int cl_broadcast_shape(const char *fn, int na, const int64_t *sa, int nb, const int64_t *sb,
                       int *nout, int64_t *out);
void cl_broadcast_strides(const cl_tensor *t, int ndim, const int64_t *shape, int64_t *strides);

/* Normalises a possibly negative dim against ndim; -1 with a message when out of range. */
int cl_norm_dim(const char *fn, int dim, int ndim, int *out);
/* A float32 contiguous tensor with t's values (a new reference; t itself when it fits). */
cl_tensor *cl_float_contiguous(cl_tensor *t);
int cl_check_float(const char *fn, const char *arg, const cl_tensor *t);

void cl_node_release(cl_node *n);
/* Tells the bindings that a tensor carrying hooks is gone (they drop its hook list). */
void cl_notify_hooked_free(cl_tensor *t);
void cl_set_hooked_free_listener(void (*fn)(uint64_t id));

/* Parallel loops: OpenMP when built with it, plain loops otherwise. */
#ifdef _OPENMP
#define CL_PRAGMA(x) _Pragma(#x)
#define CL_PARALLEL_FOR CL_PRAGMA(omp parallel for schedule(static))
#else
#define CL_PARALLEL_FOR
#endif

#endif

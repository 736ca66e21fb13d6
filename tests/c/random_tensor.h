/* random_tensor.h — random float tensors for the C tests, from a generator the test owns. */
#ifndef CNNLAB_RANDOM_TENSOR_H
#define CNNLAB_RANDOM_TENSOR_H

#include "cnnlab.h"

/* Uniform in [lo, hi). */
static cl_tensor *random_tensor(cl_rng *r, int ndim, const int64_t *shape, float lo, float hi) {
  cl_tensor *t = cl_empty(CL_FLOAT32, ndim, shape);
  float *p = cl_f32(t);
  for (int64_t i = 0; i < cl_numel(t); i++)
    p[i] = lo + (hi - lo) * cl_rng_uniform_f(r);
  return t;
}

#endif

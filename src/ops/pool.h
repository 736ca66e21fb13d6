/* pool.h — internal to the core and its tests: the reference max-pooling kept in pool.c. */
#ifndef CNNLAB_OPS_POOL_H
#define CNNLAB_OPS_POOL_H

#include "cnnlab.h"

/* Max-pooling by the window-by-window definition: values y N×C×OH×OW and, when `where` is not
 * NULL, the int64 position (row·W + column in its plane) of each maximum. No graph. */
int cl_max_pool2d_reference(cl_tensor *x, int kernel, int stride, cl_tensor **y, cl_tensor **where);

/* The fast plane kernel of max_pool2d, for the fused block (conv_block.c): pools one H×W plane
 * into y (OH×OW), positions into where when not NULL; returns nonzero, with y and where not
 * to be used, when the plane holds a NaN. Scratch hm (floats) and hc (ints),
 * cl_max_pool_scratch_len entries each. */
int cl_max_pool_plane_fast(const float *plane, int64_t w, int k, int stride, int64_t oh,
                           int64_t ow, float *y, int32_t *where, float *hm, int32_t *hc);
static inline int64_t cl_max_pool_scratch_len(int k, int stride, int64_t oh, int64_t ow) {
  return ((oh - 1) * stride + k) * ow;
}

#endif

/* pool.h — internal to the core and its tests: the reference max-pooling kept in pool.c. */
#ifndef CNNLAB_OPS_POOL_H
#define CNNLAB_OPS_POOL_H

#include "cnnlab.h"

/* Max-pooling by the window-by-window definition: values y N×C×OH×OW and, when `where` is not
 * NULL, the int64 position (row·W + column in its plane) of each maximum. No graph. */
int cl_max_pool2d_reference(cl_tensor *x, int kernel, int stride, cl_tensor **y, cl_tensor **where);

#endif

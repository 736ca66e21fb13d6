/* norm.h — internal to the core and its tests: the reference kernels of batchnorm.c and
 * avgpool.c, straight from the definitions, without a graph. */
#ifndef CNNLAB_OPS_NORM_H
#define CNNLAB_OPS_NORM_H

#include "cnnlab.h"

/* Batch normalisation, two passes in double; batch statistics when training or without
 * running statistics, else running_mean/running_var (neither is updated). */
cl_tensor *cl_batch_norm_reference(cl_tensor *x, cl_tensor *weight, cl_tensor *bias,
                                   cl_tensor *running_mean, cl_tensor *running_var,
                                   int training, double eps);
/* Average pooling by the definition: kernel > 0 gives avg_pool2d(kernel, stride, padding)
 * (padding counted as zeros), kernel 0 gives adaptive_avg_pool2d to out_h × out_w. */
cl_tensor *cl_avg_pool2d_reference(cl_tensor *x, int kernel, int stride, int padding, int out_h,
                                   int out_w);

#endif

/* conv.h — internal to the core and its tests: the plain reference convolution kept in
 * conv.c, so that optimised kernels can be checked against loops a reader can verify by eye,
 * and the switch between the convolution's two lowerings. */
#ifndef CNNLAB_OPS_CONV_H
#define CNNLAB_OPS_CONV_H

#include "cnnlab.h"

/* Same contract and validation as cl_conv2d, computed by the direct 7-loop definition with
 * double accumulators; never records a graph. */
cl_tensor *cl_conv2d_reference(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding);

/* The gradients of sum(conv2d(x, w, b) · g) by the direct definition: dx N×C×H×W, dw O×C×K×K,
 * db O. Any out pointer may be NULL. Returns 0, or -1 with a message. */
int cl_conv2d_reference_backward(cl_tensor *x, cl_tensor *w, cl_tensor *g, int stride, int padding,
                                 cl_tensor **dx, cl_tensor **dw, cl_tensor **db);

/* How convolutions run: 1 the default choice (the micro-kernel, except layers with fewer than
 * 64 column-matrix rows when OpenBLAS is there), 2 the micro-kernel always, 0 im2col + cl_gemm
 * per sample always (CNNLAB_CONV=gemm); -1 goes back to reading CNNLAB_CONV. Returns the
 * previous setting. For tests and benchmarks; not thread-safe. */
int cl_conv_use_microkernel(int on);

#endif

/* conv_impl.h — shared by the two halves of conv2d, not public: conv.c (checks, the op's
 * forward and backward, the reference) and conv_lower.c (how a convolution becomes matrix
 * products: im2col/col2im, the micro-kernel paths, im2col + GEMM per sample). */
#ifndef CNNLAB_CONV_IMPL_H
#define CNNLAB_CONV_IMPL_H

#include "gemm/kernels.h"
#include "ops/ops_impl.h"

typedef struct {
  int64_t n, c, h, w; /* input */
  int64_t o, k;       /* output channels, kernel size */
  int64_t oh, ow;     /* output plane */
  int64_t ckk, plane; /* rows of the column matrix (C·K·K), output pixels per map (OH·OW) */
  int stride, pad;
} conv_shape;

/* Sum of a row in float, 16 interleaved partial sums (the vectoriser's lanes, written out so
 * that the order is fixed by the code, not by the compiler), then added up in double. */
static inline double cl_conv_row_sum(const float *restrict v, int64_t n) {
  float part[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++)
      part[l] += v[i + l];
  double sum = 0;
  for (int l = 0; l < 16; l++)
    sum += part[l];
  for (; i < n; i++)
    sum += v[i];
  return sum;
}

/* The checks of conv2d (fn names the op in messages), and the shape they set. */
int cl_conv_check(const char *fn, const cl_tensor *x, const cl_tensor *w, const cl_tensor *b,
                  int stride, int padding, conv_shape *s);
void cl_conv_shape_from(conv_shape *s, const cl_tensor *x, const cl_tensor *w, int stride,
                        int padding);

/* dL/dy as a convolution's backward reads it: g (N×O×P) as it lies when fill is NULL; else
 * fill(src, lo, hi) first writes samples [lo, hi) of it, by the thread about to use them —
 * how the fused conv → ReLU → max-pool block (conv_block.c) turns its pooled gradient into the
 * convolution's without a pass of its own. pooled, where, pooled_plane and shape are fill's. */
typedef struct conv_grad {
  const float *g;
  void (*fill)(const struct conv_grad *src, int64_t lo, int64_t hi);
  float *gz; /* = g, writable, for fill */
  const float *pooled;
  const int32_t *where;
  int64_t pooled_plane;
  const conv_shape *shape;
} conv_grad;

/* conv2d's backward on contiguous x and w: sets gin[0..2] to dx, dw, db (each when wanted,
 * else NULL). The same chunks and sums whoever calls it, so the same bits. */
int cl_conv_backward_run(const conv_shape *s, const cl_tensor *x, const cl_tensor *w,
                         const conv_grad *src, int want_x, int want_w, int want_b,
                         cl_tensor **gin);

/* Whether this convolution runs on the micro-kernel (else im2col + cl_gemm per sample). */
int cl_conv_on_microkernel(const conv_shape *s);
/* Samples per column buffer, and the floats of one group's column buffer. */
int64_t cl_conv_group(const conv_shape *s);
int64_t cl_conv_col_len(const conv_shape *s, int64_t group, int nr);

/* On the micro-kernel, samples [lo, hi) (conv_lower.c has the matrix products):
 *   forward      y  (hi − lo)×O×P  from apack = W packed (O rows, CKK deep), col scratch;
 *                                  y points at sample lo's output
 *   input grad   dx N×C×H×W        from apack = Wᵀ packed (CKK rows, O deep), g N×O×P
 *   weight grad  dwt (CKK × O, += ) and db (+= row sums of g, when not NULL) */
void cl_conv_mk_forward(const conv_shape *s, const cl_microkernel *uk, const float *apack,
                        const float *bias, const float *x, float *y, int64_t lo, int64_t hi,
                        float *col);
void cl_conv_mk_input_grad(const conv_shape *s, const cl_microkernel *uk, const float *apack,
                           const float *g, float *dx, int64_t lo, int64_t hi, float *gbuf,
                           float *dcol);
void cl_conv_mk_weight_grad(const conv_shape *s, const cl_microkernel *uk, const float *x,
                            const float *g, int64_t lo, int64_t hi, float *col, float *apack,
                            float *bpack, float *dwt, double *db);

/* One sample as im2col + cl_gemm: forward y_n O×P; backward dw (O×CKK, +=) and/or dx_n. */
void cl_conv_forward_sample(const conv_shape *s, const float *x, const float *w, const float *b,
                            float *y, float *col);
void cl_conv_backward_sample(const conv_shape *s, const float *x, const float *w, const float *g,
                             float *dw, float *dx, float *col);

#endif

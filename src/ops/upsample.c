/* upsample.c — bilinear upsampling (align_corners = false), forward and backward. */
#include "ops/ops_impl.h"

#include <math.h>
#include <string.h>

/* Where output row (or column) i reads from, align_corners = false as in PyTorch:
 * src = (i + 0.5)·in/out − 0.5, clamped below at 0; i0 = ⌊src⌋, i1 = i0 + 1 unless i0 is the
 * last row; weights (1 − λ, λ) with λ = src − i0. Computed in double: PyTorch rounds src to
 * float on the way, so the two agree to about one float rounding of the source coordinate. */
typedef struct {
  int64_t i0, i1;
  double l0, l1;
} lerp_tap;

static void lerp_taps(int64_t in, int64_t out, lerp_tap *taps) {
  double scale = (double)in / (double)out;
  for (int64_t i = 0; i < out; i++) {
    double src = scale * ((double)i + 0.5) - 0.5;
    if (src < 0)
      src = 0;
    int64_t i0 = (int64_t)src;
    if (i0 > in - 1)
      i0 = in - 1;
    double lambda = src - (double)i0;
    if (lambda > 1)
      lambda = 1;
    taps[i].i0 = i0;
    taps[i].i1 = i0 < in - 1 ? i0 + 1 : i0;
    taps[i].l1 = lambda;
    taps[i].l0 = 1.0 - lambda;
  }
}

/* x N×C×H×W → y N×C×OH×OW: with row taps (h0, h1, α0, α1) and column taps (w0, w1, β0, β1),
 *   y[i,j] = α0·(β0·x[h0,w0] + β1·x[h0,w1]) + α1·(β0·x[h1,w0] + β1·x[h1,w1]).
 * Backward spreads g[i,j] over the same four pixels with weights α·β. */
static int upsample_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->inputs[0];
  int64_t h = x->shape[2], w = x->shape[3], oh = g->shape[2], ow = g->shape[3];
  int64_t planes = x->shape[0] * x->shape[1];
  size_t taps_bytes = sizeof(lerp_tap) * (size_t)(oh + ow);
  lerp_tap *rows = cl_alloc(taps_bytes);
  cl_tensor *dx = rows ? cl_zeros(CL_FLOAT32, 4, x->shape) : NULL;
  if (!dx) {
    cl_dealloc(rows, taps_bytes);
    return -1;
  }
  lerp_tap *cols = rows + oh;
  lerp_taps(h, oh, rows);
  lerp_taps(w, ow, cols);
  const float *pg = cl_f32(g);
  float *pdx = cl_f32(dx);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)planes * oh * ow * 4 > PARALLEL_MIN_WORK)
#endif
  for (int64_t pl = 0; pl < planes; pl++) {
    float *d = pdx + pl * h * w;
    const float *gp = pg + pl * oh * ow;
    for (int64_t i = 0; i < oh; i++) {
      const lerp_tap *r = rows + i;
      for (int64_t j = 0; j < ow; j++) {
        const lerp_tap *c = cols + j;
        double gv = gp[i * ow + j];
        d[r->i0 * w + c->i0] += (float)(r->l0 * c->l0 * gv);
        d[r->i0 * w + c->i1] += (float)(r->l0 * c->l1 * gv);
        d[r->i1 * w + c->i0] += (float)(r->l1 * c->l0 * gv);
        d[r->i1 * w + c->i1] += (float)(r->l1 * c->l1 * gv);
      }
    }
  }
  cl_dealloc(rows, taps_bytes);
  gin[0] = dx;
  return 0;
}

cl_tensor *cl_upsample_bilinear(cl_tensor *x, int out_h, int out_w) {
  char bx[96];
  if (cl_check_float("upsample_bilinear", "input", x))
    return NULL;
  if (x->ndim != 4 || x->shape[2] < 1 || x->shape[3] < 1)
    return (void)cl_fail("upsample_bilinear: input must be N×C×H×W with H, W >= 1, got %s",
                         cl_shape_str(x, bx, sizeof bx)),
           NULL;
  if (out_h < 1 || out_w < 1)
    return (void)cl_fail("upsample_bilinear: output size must be >= 1×1, got %d×%d", out_h, out_w),
           NULL;
  int64_t h = x->shape[2], w = x->shape[3], planes = x->shape[0] * x->shape[1];
  int64_t shape[4] = {x->shape[0], x->shape[1], out_h, out_w};
  /* Before anything is multiplied: 2^30 × 2^30 outputs overflow more than one product. */
  if (cl_check_shape("upsample_bilinear", 4, shape))
    return NULL;
  size_t taps_bytes = sizeof(lerp_tap) * ((size_t)out_h + (size_t)out_w);
  lerp_tap *rows = cl_alloc(taps_bytes);
  cl_tensor *xc = rows ? cl_float_contiguous(x) : NULL;
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  if (!out) {
    cl_release(xc);
    cl_dealloc(rows, taps_bytes);
    return NULL;
  }
  lerp_tap *cols = rows + out_h;
  lerp_taps(h, out_h, rows);
  lerp_taps(w, out_w, cols);
  const float *px = cl_f32(xc);
  float *py = cl_f32(out);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)planes * out_h * out_w * 4 >                 \
                                              PARALLEL_MIN_WORK)
#endif
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *s = px + pl * h * w;
    float *y = py + pl * out_h * out_w;
    for (int64_t i = 0; i < out_h; i++) {
      const lerp_tap *r = rows + i;
      for (int64_t j = 0; j < out_w; j++) {
        const lerp_tap *c = cols + j;
        double top = c->l0 * s[r->i0 * w + c->i0] + c->l1 * s[r->i0 * w + c->i1];
        double bottom = c->l0 * s[r->i1 * w + c->i0] + c->l1 * s[r->i1 * w + c->i1];
        y[i * out_w + j] = (float)(r->l0 * top + r->l1 * bottom);
      }
    }
  }
  cl_dealloc(rows, taps_bytes);
  cl_release(xc);
  cl_record(&out, NULL, "upsample_bilinear", upsample_backward, 1, &x, 0, NULL);
  return out;
}

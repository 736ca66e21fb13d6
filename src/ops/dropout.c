/* dropout.c — inverted dropout; evaluation passes the input through as a view. */
#include "ops/ops_impl.h"

#include <string.h>

/* Training: keep[i] = (u_i ≥ p) with u_i ~ U[0,1) drawn from r in row-major order;
 *   y[i] = keep[i] ? x[i]/(1 − p) : 0      (inverted dropout: evaluation needs no rescaling)
 * Backward: dx[i] = keep[i] ? g[i]/(1 − p) : 0, from the mask kept in the node.
 * Evaluation or p = 0: y is a new view of x whose gradient passes straight through. */
static int dropout_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  const uint8_t *keep = node->ctx;
  float scale = (float)node->farg[0];
  cl_tensor *dx = cl_empty(CL_FLOAT32, g->ndim, g->shape);
  if (!dx)
    return -1;
  const float *pg = cl_f32(g);
  float *pdx = cl_f32(dx);
  for (int64_t i = 0, n = cl_numel(g); i < n; i++)
    pdx[i] = keep[i] ? pg[i] * scale : 0.0f;
  gin[0] = dx;
  return 0;
}

static int pass_through_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  (void)node;
  cl_retain(g);
  gin[0] = g;
  return 0;
}

cl_tensor *cl_dropout(cl_tensor *x, double p, int training, cl_rng *r) {
  if (cl_check_float("dropout", "input", x))
    return NULL;
  if (!(p >= 0 && p < 1))
    return (void)cl_fail("dropout: p must be in [0, 1), got %g", p), NULL;
  if (!training || p == 0) {
    cl_tensor *view = cl_detach(x);
    if (!view)
      return NULL;
    cl_record(&view, NULL, "dropout", pass_through_backward, 1, &x, 0, NULL);
    return view;
  }
  if (!r)
    r = cl_default_rng();
  int64_t n = cl_numel(x);
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, x->ndim, x->shape) : NULL;
  uint8_t *keep = out ? cl_alloc((size_t)n) : NULL;
  if (!keep) {
    release4(xc, out, NULL, NULL);
    return NULL;
  }
  float scale = (float)(1.0 / (1.0 - p));
  const float *px = cl_f32(xc);
  float *py = cl_f32(out);
  for (int64_t i = 0; i < n; i++) {
    keep[i] = cl_rng_uniform_f(r) >= p;
    py[i] = keep[i] ? px[i] * scale : 0.0f;
  }
  cl_release(xc);
  cl_node *node;
  if (cl_record(&out, &node, "dropout", dropout_backward, 1, &x, 0, NULL)) {
    cl_dealloc(keep, (size_t)n);
    return NULL;
  }
  if (node) {
    node->ctx = keep;
    node->ctx_bytes = (size_t)n;
    node->farg[0] = scale;
  } else {
    cl_dealloc(keep, (size_t)n);
  }
  return out;
}

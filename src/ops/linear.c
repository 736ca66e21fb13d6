/* linear.c — the fully connected layer, forward and backward, both as cl_gemm products. */
#include "ops/ops_impl.h"

/* x N×I, w O×I, b O → y N×O:  y = x·wᵀ + b,  y[n,o] = b[o] + Σ_i x[n,i]·w[o,i].
 * Backward: dx = g·w (N×O · O×I), dw = gᵀ·x (O×N · N×I), db[o] = Σ_n g[n,o]. */
static int linear_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->saved[0], *w = node->saved[1];
  int n = (int)x->shape[0], in = (int)x->shape[1], out = (int)w->shape[0];
  const float *pg = cl_f32(g);
  if (node->inputs[0]) {
    if (!(gin[0] = cl_empty(CL_FLOAT32, 2, x->shape)))
      return -1;
    cl_gemm(0, 0, n, in, out, 1.0f, pg, out, cl_f32(w), in, 0.0f, cl_f32(gin[0]), in);
  }
  if (node->inputs[1]) {
    if (!(gin[1] = cl_empty(CL_FLOAT32, 2, w->shape)))
      return -1;
    cl_gemm(1, 0, out, in, n, 1.0f, pg, out, cl_f32(x), in, 0.0f, cl_f32(gin[1]), in);
  }
  if (node->inputs[2]) {
    int64_t o64 = out;
    if (!(gin[2] = cl_empty(CL_FLOAT32, 1, &o64)))
      return -1;
    float *pdb = cl_f32(gin[2]);
    for (int o = 0; o < out; o++) {
      double sum = 0;
      for (int r = 0; r < n; r++)
        sum += pg[(int64_t)r * out + o];
      pdb[o] = (float)sum;
    }
  }
  return 0;
}

cl_tensor *cl_linear(cl_tensor *x, cl_tensor *w, cl_tensor *b) {
  char bx[96], bw[96];
  if (cl_check_float("linear", "input", x) || cl_check_float("linear", "weight", w) ||
      (b && cl_check_float("linear", "bias", b)))
    return NULL;
  if (w->ndim != 2)
    return (void)cl_fail("linear: weight must be O×I, got %s", cl_shape_str(w, bw, sizeof bw)),
           NULL;
  if (x->ndim != 2 || x->shape[1] != w->shape[1])
    return (void)cl_fail("linear: input must be N×I with I = %lld (the weight's I), got %s",
                         (long long)w->shape[1], cl_shape_str(x, bx, sizeof bx)),
           NULL;
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return (void)cl_fail("linear: bias must be 1-D of size O = %lld (the weight's O), got %s",
                         (long long)w->shape[0], cl_shape_str(b, bx, sizeof bx)),
           NULL;
  int64_t n = x->shape[0], in = x->shape[1], out_f = w->shape[0];
  if (!fits_int(n) || !fits_int(in) || !fits_int(out_f))
    return (void)cl_fail("linear: sizes beyond 2^31 are not supported, input %s, weight %s",
                         cl_shape_str(x, bx, sizeof bx), cl_shape_str(w, bw, sizeof bw)),
           NULL;
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *bc = wc && b ? cl_float_contiguous(b) : NULL;
  int64_t shape[2] = {n, out_f};
  cl_tensor *out = wc && (bc || !b) ? cl_empty(CL_FLOAT32, 2, shape) : NULL;
  if (!out) {
    release4(xc, wc, bc, NULL);
    return NULL;
  }
  float *py = cl_f32(out);
  const float *pb = bc ? cl_f32(bc) : NULL;
  for (int64_t r = 0; r < n; r++)
    for (int64_t o = 0; o < out_f; o++)
      py[r * out_f + o] = pb ? pb[o] : 0.0f;
  cl_gemm(0, 1, (int)n, (int)out_f, (int)in, 1.0f, cl_f32(xc), (int)in, cl_f32(wc), (int)in, 1.0f,
          py, (int)out_f);
  cl_tensor *inputs[3] = {x, w, b}, *saved[2] = {xc, wc};
  cl_record(&out, NULL, "linear", linear_backward, 3, inputs, 2, saved);
  release4(xc, wc, bc, NULL);
  return out;
}

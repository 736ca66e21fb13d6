/* conv.c — conv2d: argument checks, the forward and backward passes (split over chunks of
 * samples, see ops_impl.h), and the reference convolution the tests compare against. The
 * matrix products they run on are in conv_lower.c. */
#include "ops/conv.h"
#include "ops/conv_impl.h"

#include <string.h>

void cl_conv_shape_from(conv_shape *s, const cl_tensor *x, const cl_tensor *w, int stride,
                            int padding) {
  s->n = x->shape[0], s->c = x->shape[1], s->h = x->shape[2], s->w = x->shape[3];
  s->o = w->shape[0], s->k = w->shape[2];
  s->stride = stride, s->pad = padding;
  s->oh = (s->h + 2 * (int64_t)padding - s->k) / stride + 1;
  s->ow = (s->w + 2 * (int64_t)padding - s->k) / stride + 1;
  s->ckk = s->c * s->k * s->k;
  s->plane = s->oh * s->ow;
}

int cl_conv_check(const char *fn, const cl_tensor *x, const cl_tensor *w, const cl_tensor *b,
                      int stride, int padding, conv_shape *s) {
  char bx[96], bw[96];
  if (cl_check_float(fn, "input", x) || cl_check_float(fn, "weight", w) ||
      (b && cl_check_float(fn, "bias", b)))
    return -1;
  if (w->ndim != 4 || w->shape[2] != w->shape[3])
    return cl_fail("%s: weight must be O×C×K×K (square kernel), got %s", fn,
                   cl_shape_str(w, bw, sizeof bw));
  if (w->shape[2] < 1)
    return cl_fail("%s: kernel size must be >= 1, got weight %s", fn,
                   cl_shape_str(w, bw, sizeof bw));
  if (x->ndim != 4 || x->shape[1] != w->shape[1])
    return cl_fail("%s: input must be N×C×H×W with C = %lld (the weight's C), got %s", fn,
                   (long long)w->shape[1], cl_shape_str(x, bx, sizeof bx));
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return cl_fail("%s: bias must be 1-D of size O = %lld (the weight's O), got %s", fn,
                   (long long)w->shape[0], cl_shape_str(b, bx, sizeof bx));
  if (stride < 1)
    return cl_fail("%s: stride must be >= 1, got %d", fn, stride);
  if (padding < 0)
    return cl_fail("%s: padding must be >= 0, got %d", fn, padding);
  int64_t k = w->shape[2], ph = x->shape[2] + 2 * (int64_t)padding,
          pw = x->shape[3] + 2 * (int64_t)padding;
  if (k > ph || k > pw)
    return cl_fail("%s: kernel %lld×%lld is larger than the padded input %lld×%lld (input %s, "
                   "padding %d)",
                   fn, (long long)k, (long long)k, (long long)ph, (long long)pw,
                   cl_shape_str(x, bx, sizeof bx), padding);
  cl_conv_shape_from(s, x, w, stride, padding);
  if (!fits_int(s->o) || !fits_int(s->ckk) || !fits_int(s->plane) || !fits_int(s->h * s->w) ||
      !fits_int(s->o * s->ckk) || !fits_int(s->ckk * s->plane))
    return cl_fail("%s: layer too large (matrices beyond 2^31 elements are not supported): "
                   "input %s, weight %s",
                   fn, cl_shape_str(x, bx, sizeof bx), cl_shape_str(w, bw, sizeof bw));
  return 0;
}

/* ---------------------------------------------------------------- conv2d op */

/* Backward, given g = dL/dy (N×O×OH×OW):
 *   db[o] = Σ_n Σ_p g[n, o, p];  dw and dx as above (on the micro-kernel, or im2col + GEMM).
 *   Samples go in chunks (see chunk_plan): db and dw are summed per chunk,
 *   then over chunks in order. */
#define BACKWARD_CHUNKS 8 /* each holds a dw partial: more would cost memory traffic */

int cl_conv_backward_run(const conv_shape *sp, const cl_tensor *x, const cl_tensor *w,
                         const conv_grad *src, int want_x, int want_w, int want_b,
                         cl_tensor **gin) {
  conv_shape s = *sp;
  const float *pg = src->g, *px = cl_f32(x), *pw = cl_f32(w);
  int64_t out_per = s.o * s.plane, in_per = s.c * s.h * s.w;
  gin[0] = gin[1] = gin[2] = NULL;
  if (!want_x && !want_w && !want_b)
    return 0;

  const cl_microkernel *uk = cl_microkernel_get();
  int64_t mr = uk->mr, nr = uk->nr;
  int mk = cl_conv_on_microkernel(&s);
  int64_t group = cl_conv_group(&s);
  chunking ch = chunk_plan(s.n, BACKWARD_CHUNKS, mk ? group : 1,
                           2.0 * (double)s.n * (double)s.o * (double)s.ckk * (double)s.plane);
  /* Per chunk: [db partial, O doubles][dw partial (dWᵀ on the micro-kernel)].
   * Per thread: [col][A pack][B pack] for the weights, [g copy][dcol] for the input (on the
   * micro-kernel; [dcol] alone for the GEMM). Shared: Wᵀ packed, for the input. */
  int64_t dbl = want_b ? 2 * s.o : 0; /* the floats that hold O doubles */
  int64_t part = !want_w ? 0 : mk ? round_up(s.ckk, mr) * round_up(s.o, nr) : s.o * s.ckk;
  int64_t per_chunk = round_up(dbl + part, 16); /* 64-byte aligned pieces */
  int64_t ld = round_up(group * s.plane, nr);   /* columns of a group's buffers */
  int64_t wcol = !want_w ? 0 : mk ? s.ckk * ld : s.ckk * s.plane;
  if (want_w && mk && wcol < 8 * s.plane) /* it doubles as pack_transposed's tmp */
    wcol = 8 * s.plane;
  int64_t wpack = want_w && mk ? (round_up(s.ckk, mr) + round_up(s.o, nr)) * group * s.plane : 0;
  int64_t xcol = !want_x ? 0 : mk ? (s.o + round_up(s.ckk, mr)) * ld : s.ckk * s.plane;
  int64_t per_thread = round_up(wcol + wpack + xcol, 16);
  int64_t shared = mk && want_x ? cl_packed_a_len((int)s.ckk, (int)s.o, (int)mr) : 0;
  size_t scratch_bytes =
      sizeof(float) * (size_t)(per_chunk * ch.count + per_thread * ch.threads + shared);
  float *scratch = cl_alloc(scratch_bytes); /* never NULL on success, even when empty */
  cl_tensor *dx = scratch && want_x ? cl_empty(CL_FLOAT32, 4, x->shape) : NULL;
  cl_tensor *dw = scratch && want_w ? cl_empty(CL_FLOAT32, 4, w->shape) : NULL;
  cl_tensor *db = scratch && want_b ? cl_empty(CL_FLOAT32, 1, &s.o) : NULL;
  if (!scratch || (want_x && !dx) || (want_w && !dw) || (want_b && !db)) {
    cl_dealloc(scratch, scratch_bytes);
    release4(dx, dw, db, NULL);
    return -1;
  }
  float *pdx = dx ? cl_f32(dx) : NULL, *pdw = dw ? cl_f32(dw) : NULL;
  float *thread_space = scratch + per_chunk * ch.count;
  float *wtpack = thread_space + per_thread * ch.threads;
  if (shared) /* Wᵀ: CKK rows, O deep */
    cl_pack_a(pw, (int)s.ckk, 1, (int)s.ckk, (int)s.o, 1.0f, (int)mr, wtpack);

  /* One parallel region for the chunks and then the sum of their dW partials (a barrier
   * between, not a second region: each region wakes the sleeping threads again). */
  int64_t ldo = round_up(s.o, nr);
#ifdef _OPENMP
#pragma omp parallel num_threads(ch.threads) if (ch.threads > 1)
#endif
  {
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    float *cp = scratch + per_chunk * i, *dpart = cp + dbl;
    double *dbpart = want_b ? (double *)cp : NULL;
    float *col = thread_space + per_thread * thread_number(), *ap = col + wcol;
    float *bp = ap + round_up(s.ckk, mr) * group * s.plane, *xs = ap + wpack;
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    if (src->fill) /* this chunk's dL/dy, made here, in cache for the products below */
      src->fill(src, lo, hi);
    for (int64_t o = 0; want_b && o < s.o; o++)
      dbpart[o] = 0;
    if (want_w) {
      for (int64_t q = 0; q < part; q++)
        dpart[q] = 0;
      if (mk)
        cl_conv_mk_weight_grad(&s, uk, px, pg, lo, hi, col, ap, bp, dpart, dbpart);
      else
        for (int64_t n = lo; n < hi; n++)
          cl_conv_backward_sample(&s, px + n * in_per, pw, pg + n * out_per, dpart, NULL, col);
    }
    if (want_b && !(want_w && mk)) /* not summed on the way through dW's packing */
      for (int64_t n = lo; n < hi; n++)
        for (int64_t o = 0; o < s.o; o++)
          dbpart[o] += cl_conv_row_sum(pg + (n * s.o + o) * s.plane, s.plane);
    if (want_x) {
      if (mk)
        cl_conv_mk_input_grad(&s, uk, wtpack, pg, pdx, lo, hi, xs, xs + s.o * ld);
      else
        for (int64_t n = lo; n < hi; n++)
          cl_conv_backward_sample(&s, NULL, pw, pg + n * out_per, NULL, pdx + n * in_per, xs);
    }
  }
  /* the chunks' dW partials, in chunk order: dW[o, r] = Σ_i part_i[o, r] (the partials are
   * dWᵀ, CKK × ldo, on the micro-kernel, O × CKK otherwise; each is read along its rows) */
  if (want_w) {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t r = 0; r < (mk ? s.ckk : s.o); r++)
      for (int64_t c = 0; c < (mk ? s.o : s.ckk); c++) {
        float sum = 0;
        for (int64_t i = 0; i < ch.count; i++)
          sum += (scratch + per_chunk * i + dbl)[r * (mk ? ldo : s.ckk) + c];
        pdw[mk ? c * s.ckk + r : r * s.ckk + c] = sum;
      }
  }
  }
  /* db's partials, in chunk order */
  for (int64_t o = 0; want_b && o < s.o; o++) {
    double sum = 0;
    for (int64_t i = 0; i < ch.count; i++)
      sum += ((const double *)(scratch + per_chunk * i))[o];
    cl_f32(db)[o] = (float)sum;
  }
  cl_dealloc(scratch, scratch_bytes);
  gin[0] = dx;
  gin[1] = dw;
  gin[2] = db;
  return 0;
}

static int conv2d_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->saved[0], *w = node->saved[1];
  conv_shape s;
  cl_conv_shape_from(&s, x, w, (int)node->iarg[0], (int)node->iarg[1]);
  conv_grad src = {.g = cl_f32(g)};
  return cl_conv_backward_run(&s, x, w, &src, node->inputs[0] != NULL, node->inputs[1] != NULL,
                              node->inputs[2] != NULL, gin);
}

cl_tensor *cl_conv2d(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding) {
  conv_shape s;
  if (cl_conv_check("conv2d", x, w, b, stride, padding, &s))
    return NULL;
  const cl_microkernel *uk = cl_microkernel_get();
  int mk = cl_conv_on_microkernel(&s);
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *bc = wc && b ? cl_float_contiguous(b) : NULL;
  int64_t shape[4] = {s.n, s.o, s.oh, s.ow};
  cl_tensor *out = wc && (bc || !b) ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  /* samples in chunks (chunk_plan); scratch: a column buffer per thread, W packed (shared) */
  int64_t group = mk ? cl_conv_group(&s) : 1;
  chunking ch =
      chunk_plan(s.n, 32, group, 2.0 * (double)s.n * (double)s.o * (double)s.ckk * (double)s.plane);
  int64_t col_len = round_up(mk ? cl_conv_col_len(&s, group, uk->nr) : s.ckk * s.plane, 16);
  int64_t wpack_len = mk ? cl_packed_a_len((int)s.o, (int)s.ckk, uk->mr) : 0;
  size_t scratch_bytes = sizeof(float) * (size_t)(col_len * ch.threads + wpack_len);
  float *scratch = out ? cl_alloc(scratch_bytes) : NULL; /* never NULL on success */
  if (!scratch) {
    release4(xc, wc, bc, out);
    return NULL;
  }
  const float *px = cl_f32(xc), *pw = cl_f32(wc), *pb = bc ? cl_f32(bc) : NULL;
  float *py = cl_f32(out), *wpack = scratch + col_len * ch.threads;
  int64_t in_per = s.c * s.h * s.w, out_per = s.o * s.plane;
  if (mk)
    cl_pack_a(pw, (int)s.ckk, 0, (int)s.o, (int)s.ckk, 1.0f, uk->mr, wpack);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    int64_t lo, hi;
    float *col = scratch + col_len * thread_number();
    chunk_range(&ch, i, &lo, &hi);
    if (mk)
      cl_conv_mk_forward(&s, uk, wpack, pb, px, py + lo * out_per, lo, hi, col);
    else
      for (int64_t n = lo; n < hi; n++)
        cl_conv_forward_sample(&s, px + n * in_per, pw, pb, py + n * out_per, col);
  }
  cl_dealloc(scratch, scratch_bytes);

  cl_node *node;
  cl_tensor *inputs[3] = {x, w, b}, *saved[2] = {xc, wc};
  cl_record(&out, &node, "conv2d", conv2d_backward, 3, inputs, 2, saved);
  if (node) {
    node->iarg[0] = stride;
    node->iarg[1] = padding;
  }
  release4(xc, wc, bc, NULL);
  return out;
}

/* ---------------------------------------------------------------- reference convolution */

/* y[n,o,oy,ox] = b[o] + Σ_c Σ_ki Σ_kj w[o,c,ki,kj] · x[n, c, oy·S − P + ki, ox·S − P + kj],
 * terms outside the input being zero — the definition, loop for loop. */
static void conv2d_direct(const conv_shape *s, const float *x, const float *w, const float *b,
                          float *y) {
  for (int64_t n = 0; n < s->n; n++)
    for (int64_t o = 0; o < s->o; o++)
      for (int64_t oy = 0; oy < s->oh; oy++)
        for (int64_t ox = 0; ox < s->ow; ox++) {
          double acc = b ? b[o] : 0.0;
          for (int64_t c = 0; c < s->c; c++)
            for (int64_t ki = 0; ki < s->k; ki++)
              for (int64_t kj = 0; kj < s->k; kj++) {
                int64_t iy = oy * s->stride - s->pad + ki, ix = ox * s->stride - s->pad + kj;
                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                  continue;
                acc += (double)w[((o * s->c + c) * s->k + ki) * s->k + kj] *
                       x[((n * s->c + c) * s->h + iy) * s->w + ix];
              }
          y[((n * s->o + o) * s->oh + oy) * s->ow + ox] = (float)acc;
        }
}

cl_tensor *cl_conv2d_reference(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding) {
  conv_shape s;
  if (cl_conv_check("conv2d", x, w, b, stride, padding, &s))
    return NULL;
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *bc = wc && b ? cl_float_contiguous(b) : NULL;
  int64_t shape[4] = {s.n, s.o, s.oh, s.ow};
  cl_tensor *out = wc && (bc || !b) ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  if (out)
    conv2d_direct(&s, cl_f32(xc), cl_f32(wc), bc ? cl_f32(bc) : NULL, cl_f32(out));
  release4(xc, wc, bc, NULL);
  return out;
}

/* Every (output pixel, kernel tap) pair sends g·w to dx, g·x to dw and g to db. */
int cl_conv2d_reference_backward(cl_tensor *x, cl_tensor *w, cl_tensor *g, int stride, int padding,
                                 cl_tensor **dx, cl_tensor **dw, cl_tensor **db) {
  conv_shape s;
  char bg[96];
  if (dx)
    *dx = NULL;
  if (dw)
    *dw = NULL;
  if (db)
    *db = NULL;
  if (cl_conv_check("conv2d_reference_backward", x, w, NULL, stride, padding, &s))
    return -1;
  int64_t want[4] = {s.n, s.o, s.oh, s.ow};
  if (g->ndim != 4 || memcmp(g->shape, want, sizeof want) || g->dtype != CL_FLOAT32)
    return cl_fail("conv2d_reference_backward: g must be float32 %lld×%lld×%lld×%lld, got %s",
                   (long long)want[0], (long long)want[1], (long long)want[2], (long long)want[3],
                   cl_shape_str(g, bg, sizeof bg));
  int64_t nx = s.n * s.c * s.h * s.w, nw = s.o * s.ckk;
  size_t bytes = sizeof(double) * (size_t)(nx + nw + s.o);
  double *acc = cl_calloc(bytes);
  cl_tensor *xc = acc ? cl_float_contiguous(x) : NULL;
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *gc = wc ? cl_float_contiguous(g) : NULL;
  cl_tensor *rx = gc ? cl_empty(CL_FLOAT32, 4, x->shape) : NULL;
  cl_tensor *rw = rx ? cl_empty(CL_FLOAT32, 4, w->shape) : NULL;
  cl_tensor *rb = rw ? cl_empty(CL_FLOAT32, 1, &s.o) : NULL;
  if (!rb) {
    release4(xc, wc, gc, NULL);
    release4(rx, rw, NULL, NULL);
    cl_dealloc(acc, bytes);
    return -1;
  }
  double *ax = acc, *aw = acc + nx, *ab = aw + nw;
  const float *px = cl_f32(xc), *pw = cl_f32(wc), *pg = cl_f32(gc);
  for (int64_t n = 0; n < s.n; n++)
    for (int64_t o = 0; o < s.o; o++)
      for (int64_t oy = 0; oy < s.oh; oy++)
        for (int64_t ox = 0; ox < s.ow; ox++) {
          double gv = pg[((n * s.o + o) * s.oh + oy) * s.ow + ox];
          ab[o] += gv;
          for (int64_t c = 0; c < s.c; c++)
            for (int64_t ki = 0; ki < s.k; ki++)
              for (int64_t kj = 0; kj < s.k; kj++) {
                int64_t iy = oy * s.stride - s.pad + ki, ix = ox * s.stride - s.pad + kj;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w)
                  continue;
                int64_t at_x = ((n * s.c + c) * s.h + iy) * s.w + ix;
                int64_t at_w = ((o * s.c + c) * s.k + ki) * s.k + kj;
                ax[at_x] += gv * pw[at_w];
                aw[at_w] += gv * px[at_x];
              }
        }
  float *fx = cl_f32(rx), *fw = cl_f32(rw), *fb = cl_f32(rb);
  for (int64_t i = 0; i < nx; i++)
    fx[i] = (float)ax[i];
  for (int64_t i = 0; i < nw; i++)
    fw[i] = (float)aw[i];
  for (int64_t i = 0; i < s.o; i++)
    fb[i] = (float)ab[i];
  cl_dealloc(acc, bytes);
  release4(xc, wc, gc, NULL);
  if (dx)
    *dx = rx;
  else
    cl_release(rx);
  if (dw)
    *dw = rw;
  else
    cl_release(rw);
  if (db)
    *db = rb;
  else
    cl_release(rb);
  return 0;
}

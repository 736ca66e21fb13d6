/* conv_block.c — conv2d → ReLU → max_pool2d as one op, for nn.Sequential when no hook (nor
 * anything else) observes the convolution's or the ReLU's output. Same bits as the three ops in
 * a row, forward and backward, for any thread count; what it saves is memory traffic and
 * parallel regions: the three ops stream the convolution's output (12.8 MB for the seed
 * network's first layer at batch 128) through memory five times forward and four times
 * backward, the block keeps it in a per-thread buffer of one group of samples, in L2.
 *
 * Shapes: x N×C×H×W, w O×C×K×K, b O (or none) →
 *   z = conv2d(x, w, b; stride, padding)         N×O×OH×OW    (never stored)
 *   r = relu(z)                                  N×O×OH×OW    (never stored)
 *   y = max_pool2d(r; PK, PS)                    N×O×PH×PW,  PH = ⌊(OH − PK)/PS⌋ + 1
 * Backward, from g = dL/dy:
 *   dL/dr = Σ over the windows whose maximum sits at a position, of their g   (max-pool)
 *   dL/dz = dL/dr where r > 0, else +0                                         (ReLU)
 * The forward pools z itself and applies the ReLU to the pooled values: without a NaN,
 * max(relu(·)) = relu(max(·)), bit for bit (max picks one of the values; −0 and negatives end
 * as +0 either way), and where a window's maximum is positive it is the same value at the
 * same first position in z as in r; a plane with a NaN gets the ReLU first (relu(NaN) = +0).
 * r > 0 at a window's maximum exactly when that window's y > 0 (y is the maximum), so the
 * forward keeps, per window, the position of its maximum, complemented (negative) when y ≤ 0;
 * the backward adds g at the live positions only, into a zeroed plane, in window order — the max-pool's sums in
 * its order for every position the ReLU lets through, +0 everywhere else: what max_pool2d's
 * backward followed by relu's gives. That dL/dz is written chunk by chunk inside the
 * convolution's backward (conv_grad.fill), just before the chunk's products read it. */
#include "ops/conv_impl.h"
#include "ops/pool.h"

#include <string.h>

/* v = relu(v) in place: the bits of v where v > 0, else +0 (NaN → +0), as relu's kernel. */
static void relu_in_place(float *restrict z, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &z[i], sizeof bits);
    bits &= -(uint32_t)(z[i] > 0);
    memcpy(&z[i], &bits, sizeof bits);
  }
}

/* where[j] = ~where[j] (negative) for the windows whose maximum y[j] is not positive: no
 * gradient goes back through them (the ReLU stops it). */
static void mark_dead_windows(const float *restrict y, int32_t *restrict where, int64_t n) {
  for (int64_t j = 0; j < n; j++)
    where[j] = y[j] > 0 ? where[j] : ~where[j];
}

/* conv_grad.fill: dL/dz of samples [lo, hi), plane by plane (P = OH·OW floats, PP = PH·PW):
 *   gz[plane] = 0;  gz[plane][where[j]] += g[plane][j]  for j < PP with where[j] >= 0
 * Without a branch (live and dead windows mix at random): a dead window adds +0 at its
 * position ~where[j], which changes nothing — a sum that starts at +0 is never −0 in
 * round-to-nearest, and v + (+0) = v for every other v, NaN and infinities included. */
static void fill_conv_grad(const conv_grad *src, int64_t lo, int64_t hi) {
  const conv_shape *s = src->shape;
  int64_t P = s->plane, PP = src->pooled_plane;
  for (int64_t pl = lo * s->o; pl < hi * s->o; pl++) {
    float *d = src->gz + pl * P;
    const float *gp = src->pooled + pl * PP;
    const int32_t *wp = src->where + pl * PP;
    memset(d, 0, sizeof(float) * (size_t)P);
    for (int64_t j = 0; j < PP; j++) {
      int32_t live = -(int32_t)(wp[j] >= 0), at = (wp[j] & live) | (~wp[j] & ~live);
      uint32_t bits;
      memcpy(&bits, &gp[j], sizeof bits);
      bits &= (uint32_t)live;
      float v;
      memcpy(&v, &bits, sizeof v);
      d[at] += v;
    }
  }
}

static int conv_block_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->saved[0], *w = node->saved[1];
  conv_shape s;
  cl_conv_shape_from(&s, x, w, (int)node->iarg[0], (int)node->iarg[1]);
  size_t gz_bytes = sizeof(float) * (size_t)(s.n * s.o * s.plane);
  float *gz = cl_alloc(gz_bytes);
  if (!gz)
    return -1;
  conv_grad src = {.g = gz,
                   .fill = fill_conv_grad,
                   .gz = gz,
                   .pooled = cl_f32(g),
                   .where = node->ctx,
                   .pooled_plane = g->shape[2] * g->shape[3],
                   .shape = &s};
  int rc = cl_conv_backward_run(&s, x, w, &src, node->inputs[0] != NULL, node->inputs[1] != NULL,
                                node->inputs[2] != NULL, gin);
  cl_dealloc(gz, gz_bytes);
  return rc;
}

cl_tensor *cl_conv2d_relu_pool(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding,
                               int pool_kernel, int pool_stride) {
  conv_shape s;
  if (cl_conv_check("conv2d_relu_pool", x, w, b, stride, padding, &s))
    return NULL;
  if (pool_kernel < 1 || pool_stride < 1) {
    cl_fail("conv2d_relu_pool: pool kernel and stride must be >= 1, got %d and %d", pool_kernel,
            pool_stride);
    return NULL;
  }
  if (pool_kernel > s.oh || pool_kernel > s.ow || s.plane > INT32_MAX) {
    cl_fail("conv2d_relu_pool: pool kernel %d×%d does not fit the convolution's output %lld×%lld",
            pool_kernel, pool_kernel, (long long)s.oh, (long long)s.ow);
    return NULL;
  }
  int64_t ph = (s.oh - pool_kernel) / pool_stride + 1, pw = (s.ow - pool_kernel) / pool_stride + 1;
  int64_t pp = ph * pw, P = s.plane, O = s.o, in_per = s.c * s.h * s.w;
  int recording = cl_grad_enabled() &&
                  (x->requires_grad || w->requires_grad || (b && b->requires_grad));

  /* The convolution's chunks (as conv2d's), each worked through one group of samples at a time
   * (one sample off the micro-kernel): z of a group lives in the thread's scratch. */
  const cl_microkernel *uk = cl_microkernel_get();
  int mk = cl_conv_on_microkernel(&s);
  int64_t group = mk ? cl_conv_group(&s) : 1;
  chunking ch =
      chunk_plan(s.n, 32, group, 2.0 * (double)s.n * (double)O * (double)s.ckk * (double)P);
  int64_t col_len = round_up(mk ? cl_conv_col_len(&s, group, uk->nr) : s.ckk * P, 16);
  int64_t z_len = round_up(group * O * P, 16);
  int64_t hm_len = round_up(cl_max_pool_scratch_len(pool_kernel, pool_stride, ph, pw), 16);
  int64_t per_thread = col_len + z_len + 2 * hm_len;
  int64_t wpack_len = mk ? cl_packed_a_len((int)O, (int)s.ckk, uk->mr) : 0;
  size_t scratch_bytes = sizeof(float) * (size_t)(per_thread * ch.threads + wpack_len);
  size_t where_bytes = recording ? sizeof(int32_t) * (size_t)(s.n * O * pp) : 0;

  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *bc = wc && b ? cl_float_contiguous(b) : NULL;
  int64_t shape[4] = {s.n, O, ph, pw};
  cl_tensor *out = wc && (bc || !b) ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  float *scratch = out ? cl_alloc(scratch_bytes) : NULL; /* never NULL on success */
  int32_t *where = scratch && recording ? cl_alloc(where_bytes) : NULL;
  if (!scratch || (recording && !where)) {
    cl_dealloc(scratch, scratch_bytes);
    release4(xc, wc, bc, out);
    return NULL;
  }
  const float *px = cl_f32(xc), *pwt = cl_f32(wc), *pb = bc ? cl_f32(bc) : NULL;
  float *py = cl_f32(out), *wpack = scratch + per_thread * ch.threads;
  if (mk)
    cl_pack_a(pwt, (int)s.ckk, 0, (int)O, (int)s.ckk, 1.0f, uk->mr, wpack);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    float *col = scratch + per_thread * thread_number(), *z = col + col_len, *hm = z + z_len;
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    for (int64_t n0 = lo; n0 < hi; n0 += group) {
      int64_t gs = hi - n0 < group ? hi - n0 : group, planes = gs * O;
      if (mk)
        cl_conv_mk_forward(&s, uk, wpack, pb, px, z, n0, n0 + gs, col);
      else
        cl_conv_forward_sample(&s, px + n0 * in_per, pwt, pb, z, col);
      float *yg = py + n0 * O * pp;
      int32_t *wh = where ? where + n0 * O * pp : NULL, *hc = (int32_t *)(hm + hm_len);
      for (int64_t pl = 0; pl < planes; pl++) {
        float *zp = z + pl * P, *yp = yg + pl * pp;
        int32_t *wp = wh ? wh + pl * pp : NULL;
        if (cl_max_pool_plane_fast(zp, s.ow, pool_kernel, pool_stride, ph, pw, yp, wp, hm, hc)) {
          relu_in_place(zp, P); /* a NaN: the ReLU first, as the three ops do */
          cl_max_pool_plane_fast(zp, s.ow, pool_kernel, pool_stride, ph, pw, yp, wp, hm, hc);
        }
      }
      relu_in_place(yg, planes * pp);
      if (wh)
        mark_dead_windows(yg, wh, planes * pp);
    }
  }
  cl_dealloc(scratch, scratch_bytes);
  release4(bc, NULL, NULL, NULL);
  if (!recording) {
    release4(xc, wc, NULL, NULL);
    return out;
  }
  cl_node *node;
  cl_tensor *inputs[3] = {x, w, b}, *saved[2] = {xc, wc};
  int rc = cl_record(&out, &node, "conv2d_relu_pool", conv_block_backward, 3, inputs, 2, saved);
  release4(xc, wc, NULL, NULL);
  if (rc) {
    cl_dealloc(where, where_bytes);
    return NULL;
  }
  node->iarg[0] = stride;
  node->iarg[1] = padding;
  node->iarg[2] = pool_kernel;
  node->iarg[3] = pool_stride;
  node->ctx = where;
  node->ctx_bytes = where_bytes;
  return out;
}

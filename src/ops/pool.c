/* pool.c — max_pool2d: forward, backward and the reference, which the tests compare
 * against. */
#include "ops/pool.h"
#include "ops/ops_impl.h"

#include <math.h>
#include <string.h>

/* x N×C×H×W → y N×C×OH×OW, OH = ⌊(H − K)/S⌋ + 1 (no padding; PyTorch's floor mode):
 *   y[n,c,i,j] = max over the K×K window whose top-left corner is (i·S, j·S);
 *   where[n,c,i,j] = position (row·W + column) of that maximum in its H×W plane.
 * The first maximum in row-major order wins a tie; a NaN wins over any number, as in PyTorch.
 * Backward: dx[n,c,where] += g[n,c,i,j] (overlapping windows may hit a position twice).
 * `where` is only kept when a graph is recorded; inference computes the maxima alone. */

/* The reference: window by window, as the definition reads. Two passes over the window: the
 * maximum first (no data-dependent branches), then the first position holding it. */
static void max_pool_plane_ref(const float *plane, int64_t h, int64_t w, int k, int stride,
                               int64_t oh, int64_t ow, float *y, int32_t *where) {
  (void)h;
  for (int64_t i = 0; i < oh; i++)
    for (int64_t j = 0; j < ow; j++) {
      int64_t top = i * stride, left = j * stride;
      const float *window = plane + top * w + left;
      float best_v = window[0];
      int has_nan = 0;
      for (int64_t ki = 0; ki < k; ki++)
        for (int64_t kj = 0; kj < k; kj++) {
          float v = window[ki * w + kj];
          best_v = v > best_v ? v : best_v;
          has_nan |= v != v;
        }
      int64_t best = -1;
      for (int64_t ki = 0; ki < k && best < 0; ki++)
        for (int64_t kj = 0; kj < k; kj++) {
          float v = window[ki * w + kj];
          if (has_nan ? v != v : v == best_v) {
            best = (top + ki) * w + left + kj;
            break;
          }
        }
      y[i * ow + j] = plane[best];
      if (where)
        where[i * ow + j] = (int32_t)best;
    }
}

/* The fast plane kernel, separable: a horizontal pass takes, for every input row the windows
 * touch, the maximum of each run of K columns (hm, with its flat position hc); a vertical pass
 * then takes the maximum of K rows of hm. Both are written without data-dependent branches or
 * integer selects — the maximum first, then its position as "how many candidates before the
 * first one equal to it" — so they vectorise with plain SSE2.
 * Ties: each pass takes the first candidate equal to the maximum, which is the first in
 * row-major order (a position in an earlier row precedes every position in a later one), so
 * the winner is the reference's. NaN breaks "v > m": a plane holding one reports it and the
 * caller redoes it with the reference kernel. hm and hc hold rows·OW entries, rows = the
 * input rows the windows touch. Returns nonzero when a NaN was seen. */
static inline int max_pool_plane_fast(const float *restrict plane, int64_t w, int k, int stride,
                                      int64_t oh, int64_t ow, float *restrict y,
                                      int32_t *restrict where, float *restrict hm,
                                      int32_t *restrict hc) {
  int nan_seen = 0;
  int64_t rows = (oh - 1) * stride + k;
  for (int64_t r = 0; r < rows; r++) {
    const float *row = plane + r * w;
    float *m = hm + r * ow;
    int32_t *c = hc + r * ow;
    for (int64_t j = 0; j < ow; j++) {
      const float *cand = row + j * stride;
      float best = cand[0];
      nan_seen |= cand[0] != cand[0];
      for (int kj = 1; kj < k; kj++) {
        best = cand[kj] > best ? cand[kj] : best;
        nan_seen |= cand[kj] != cand[kj];
      }
      m[j] = best;
      if (where) {
        int32_t before = 1, off = 0; /* before: no candidate so far equals best */
        for (int kj = 0; kj < k - 1; kj++) {
          before &= cand[kj] != best;
          off += before;
        }
        c[j] = (int32_t)(r * w + j * stride) + off;
      }
    }
  }
  for (int64_t i = 0; i < oh; i++) {
    const float *m0 = hm + i * stride * ow; /* row i·S of hm; row i·S + ki is ki·OW further */
    const int32_t *c0 = hc + i * stride * ow;
    for (int64_t j = 0; j < ow; j++) {
      float best = m0[j];
      for (int ki = 1; ki < k; ki++)
        best = m0[ki * ow + j] > best ? m0[ki * ow + j] : best;
      y[i * ow + j] = best;
      if (where) {
        /* at = c[first row equal to best], as c[row 0] plus the steps to each next row that
         * every row before it fails to match (masks of all ones or zero) */
        int32_t before = -1, at = c0[j];
        for (int ki = 1; ki < k; ki++) {
          before &= -(int32_t)(m0[(ki - 1) * ow + j] != best);
          at += (c0[ki * ow + j] - c0[(ki - 1) * ow + j]) & before;
        }
        where[i * ow + j] = at;
      }
    }
  }
  return nan_seen;
}

/* The kernel loops over the window vectorise only when K and S are constants the compiler can
 * unroll by: the common windows get their own instantiations (with and without positions),
 * any other runs the same code with run-time K and S. */
#define POOL_PLANE(K, S)                                                                           \
  (where ? max_pool_plane_fast(plane, w, K, S, oh, ow, y, where, hm, hc)                           \
         : max_pool_plane_fast(plane, w, K, S, oh, ow, y, NULL, hm, hc))

int cl_max_pool_plane_fast(const float *plane, int64_t w, int k, int stride, int64_t oh,
                           int64_t ow, float *y, int32_t *where, float *hm, int32_t *hc) {
  if (k == 3 && stride == 2)
    return POOL_PLANE(3, 2);
  if (k == 2 && stride == 2)
    return POOL_PLANE(2, 2);
  if (k == 3 && stride == 3)
    return POOL_PLANE(3, 3);
  return POOL_PLANE(k, stride);
}

/* Pools planes [lo, hi) of x (each H×W) into y, positions into where (or none). */
static void max_pool_planes(const float *x, int64_t lo, int64_t hi, int64_t h, int64_t w, int k,
                            int stride, int64_t oh, int64_t ow, float *y, int32_t *where, float *hm,
                            int32_t *hc) {
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *plane = x + pl * h * w;
    float *yp = y + pl * oh * ow;
    int32_t *wp = where ? where + pl * oh * ow : NULL;
    if (cl_max_pool_plane_fast(plane, w, k, stride, oh, ow, yp, wp, hm, hc))
      max_pool_plane_ref(plane, h, w, k, stride, oh, ow, yp, wp);
  }
}

/* dx of planes [lo, hi): zeroed here (in cache, by the thread that fills it), then g added at
 * the saved positions. Each plane is one thread's, so no two threads write one element. */
static void max_pool_backward_planes(const float *g, const int32_t *where, int64_t lo, int64_t hi,
                                     int64_t in_plane, int64_t out_plane, float *dx) {
  for (int64_t pl = lo; pl < hi; pl++) {
    float *d = dx + pl * in_plane;
    memset(d, 0, sizeof(float) * (size_t)in_plane);
    const float *gp = g + pl * out_plane;
    const int32_t *wp = where + pl * out_plane;
    for (int64_t i = 0; i < out_plane; i++)
      d[wp[i]] += gp[i];
  }
}

static int max_pool2d_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->inputs[0];
  const int32_t *where = node->ctx;
  cl_tensor *dx = cl_empty(CL_FLOAT32, 4, x->shape);
  if (!dx)
    return -1;
  int64_t planes = x->shape[0] * x->shape[1], in_plane = x->shape[2] * x->shape[3];
  int64_t out_plane = g->shape[2] * g->shape[3];
  const float *pg = cl_f32(g);
  float *pdx = cl_f32(dx);
  chunking ch = chunk_plan(planes, 64, 1, (double)planes * (double)in_plane);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    max_pool_backward_planes(pg, where, lo, hi, in_plane, out_plane, pdx);
  }
  gin[0] = dx;
  return 0;
}

/* Checks the arguments of max_pool2d (and of its reference); sets the output size. */
static int max_pool_check(const cl_tensor *x, int kernel, int stride, int64_t *oh, int64_t *ow) {
  char bx[96];
  if (cl_check_float("max_pool2d", "input", x))
    return -1;
  if (x->ndim != 4)
    return cl_fail("max_pool2d: input must be N×C×H×W, got %s", cl_shape_str(x, bx, sizeof bx));
  if (kernel < 1)
    return cl_fail("max_pool2d: kernel must be >= 1, got %d", kernel);
  if (stride < 1)
    return cl_fail("max_pool2d: stride must be >= 1, got %d", stride);
  int64_t h = x->shape[2], w = x->shape[3];
  if (kernel > h || kernel > w)
    return cl_fail("max_pool2d: kernel %d×%d is larger than the input plane %lld×%lld "
                   "(input %s; there is no padding)",
                   kernel, kernel, (long long)h, (long long)w, cl_shape_str(x, bx, sizeof bx));
  if (h * w > INT32_MAX)
    return cl_fail("max_pool2d: planes of more than 2^31 pixels are not supported, got %s",
                   cl_shape_str(x, bx, sizeof bx));
  *oh = (h - kernel) / stride + 1;
  *ow = (w - kernel) / stride + 1;
  return 0;
}

cl_tensor *cl_max_pool2d(cl_tensor *x, int kernel, int stride) {
  int64_t oh, ow;
  if (max_pool_check(x, kernel, stride, &oh, &ow))
    return NULL;
  int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
  int64_t shape[4] = {n, c, oh, ow}, planes = n * c;
  int recording = cl_grad_enabled() && x->requires_grad;
  size_t where_bytes = recording ? sizeof(int32_t) * (size_t)(planes * oh * ow) : 0;
  chunking ch = chunk_plan(planes, 64, 1, (double)planes * (double)(h * w * kernel));
  /* per thread: hm (floats) and hc (ints), one entry per window column of every row touched */
  int64_t hm_len = cl_max_pool_scratch_len(kernel, stride, oh, ow);
  size_t scratch_bytes = sizeof(float) * 2 * (size_t)(hm_len * ch.threads);
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  int32_t *where = out && recording ? cl_alloc(where_bytes) : NULL;
  float *scratch = out && (where || !recording) ? cl_alloc(scratch_bytes) : NULL;
  if (!scratch) {
    cl_dealloc(where, where_bytes);
    release4(xc, out, NULL, NULL);
    return NULL;
  }
  const float *px = cl_f32(xc);
  float *py = cl_f32(out);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    float *hm = scratch + 2 * hm_len * thread_number();
    max_pool_planes(px, lo, hi, h, w, kernel, stride, oh, ow, py, where, hm,
                    (int32_t *)(hm + hm_len));
  }
  cl_dealloc(scratch, scratch_bytes);
  cl_release(xc);
  if (!recording)
    return out;
  cl_node *node;
  if (cl_record(&out, &node, "max_pool2d", max_pool2d_backward, 1, &x, 0, NULL)) {
    cl_dealloc(where, where_bytes);
    return NULL;
  }
  node->ctx = where;
  node->ctx_bytes = where_bytes;
  return out;
}

int cl_max_pool2d_reference(cl_tensor *x, int kernel, int stride, cl_tensor **y,
                            cl_tensor **where) {
  int64_t oh, ow;
  *y = NULL;
  if (where)
    *where = NULL;
  if (max_pool_check(x, kernel, stride, &oh, &ow))
    return -1;
  int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
  int64_t shape[4] = {n, c, oh, ow};
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  cl_tensor *pos = out ? cl_empty(CL_INT64, 4, shape) : NULL;
  size_t where_bytes = sizeof(int32_t) * (size_t)(n * c * oh * ow);
  int32_t *tmp = pos ? cl_alloc(where_bytes) : NULL;
  if (!tmp) {
    release4(xc, out, pos, NULL);
    return -1;
  }
  for (int64_t pl = 0; pl < n * c; pl++)
    max_pool_plane_ref(cl_f32(xc) + pl * h * w, h, w, kernel, stride, oh, ow,
                       cl_f32(out) + pl * oh * ow, tmp + pl * oh * ow);
  int64_t *pp = cl_data(pos);
  for (int64_t i = 0; i < n * c * oh * ow; i++)
    pp[i] = tmp[i];
  cl_dealloc(tmp, where_bytes);
  cl_release(xc);
  *y = out;
  if (where)
    *where = pos;
  else
    cl_release(pos);
  return 0;
}

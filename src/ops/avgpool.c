/* avgpool.c — average pooling: avg_pool2d (PyTorch's defaults: count_include_pad = True,
 * ceil_mode = False) and adaptive_avg_pool2d, forward, backward and the reference.
 *
 * Both are "average over a window of rows [r0, r1) × columns [c0, c1), divided by a
 * divisor", with the windows fixed per output row i and column j:
 *   avg_pool2d(K, S, P):  r0 = i·S − P, r1 = r0 + K, clipped to [0, H); columns alike;
 *                         divisor K² (padding counts as zeros); OH = ⌊(H + 2P − K)/S⌋ + 1.
 *   adaptive(OH, OW):     r0 = ⌊i·H/OH⌋, r1 = ⌈(i + 1)·H/OH⌉ (PyTorch's start/end index);
 *                         divisor (r1 − r0)·(c1 − c0).
 * Planes (n, c) are independent: one thread does a plane in a fixed order, so the result is the
 * same bits for any thread count. */
#include "ops/norm.h"
#include "ops/ops_impl.h"

#include <math.h>
#include <string.h>

typedef struct {
  int64_t h, w, oh, ow;
  int kernel, stride, padding; /* kernel 0: adaptive */
} pool_geom;

/* Window of output row i (or column, with len = W, out = OW). */
static void window(const pool_geom *g, int64_t i, int64_t len, int64_t out, int64_t *lo,
                   int64_t *hi) {
  if (g->kernel) {
    int64_t a = i * g->stride - g->padding, b = a + g->kernel;
    *lo = a < 0 ? 0 : a;
    *hi = b > len ? len : b;
  } else {
    *lo = i * len / out;
    *hi = ((i + 1) * len + out - 1) / out;
  }
}

static float divisor(const pool_geom *g, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  return g->kernel ? (float)g->kernel * (float)g->kernel : (float)((r1 - r0) * (c1 - c0));
}

/* x plane H×W → y plane OH×OW: y[i,j] = Σ window / divisor (double accumulator). */
static void avg_plane(const pool_geom *g, const float *restrict x, float *restrict y) {
  for (int64_t i = 0; i < g->oh; i++) {
    int64_t r0, r1;
    window(g, i, g->h, g->oh, &r0, &r1);
    for (int64_t j = 0; j < g->ow; j++) {
      int64_t c0, c1;
      window(g, j, g->w, g->ow, &c0, &c1);
      double s = 0;
      for (int64_t r = r0; r < r1; r++) {
        const float *row = x + r * g->w;
        double rs = 0;
        for (int64_t c = c0; c < c1; c++)
          rs += row[c];
        s += rs;
      }
      y[i * g->ow + j] = (float)(s / divisor(g, r0, r1, c0, c1));
    }
  }
}

/* g plane OH×OW → dx plane H×W: dx[window] += g[i,j] / divisor, dx zeroed first. */
static void avg_plane_backward(const pool_geom *g, const float *restrict gp, float *restrict dx) {
  memset(dx, 0, sizeof(float) * (size_t)(g->h * g->w));
  for (int64_t i = 0; i < g->oh; i++) {
    int64_t r0, r1;
    window(g, i, g->h, g->oh, &r0, &r1);
    for (int64_t j = 0; j < g->ow; j++) {
      int64_t c0, c1;
      window(g, j, g->w, g->ow, &c0, &c1);
      float v = gp[i * g->ow + j] / divisor(g, r0, r1, c0, c1);
      for (int64_t r = r0; r < r1; r++) {
        float *row = dx + r * g->w;
        for (int64_t c = c0; c < c1; c++)
          row[c] += v;
      }
    }
  }
}

static void geom_from_node(const cl_node *node, const cl_tensor *x, pool_geom *g) {
  g->h = x->shape[2], g->w = x->shape[3];
  g->oh = node->iarg[0], g->ow = node->iarg[1];
  g->kernel = (int)node->iarg[2], g->stride = (int)node->iarg[3], g->padding = (int)node->iarg[4];
}

static int avg_pool_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->inputs[0];
  pool_geom geo;
  geom_from_node(node, x, &geo);
  cl_tensor *dx = cl_empty(CL_FLOAT32, 4, x->shape);
  if (!dx)
    return -1;
  int64_t planes = x->shape[0] * x->shape[1];
  const float *pg = cl_f32(g);
  float *pdx = cl_f32(dx);
  chunking ch = chunk_plan(planes, 64, 1, (double)planes * (double)(geo.h * geo.w));
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    for (int64_t pl = lo; pl < hi; pl++)
      avg_plane_backward(&geo, pg + pl * geo.oh * geo.ow, pdx + pl * geo.h * geo.w);
  }
  gin[0] = dx;
  return 0;
}

static cl_tensor *avg_pool_run(const char *fn, cl_tensor *x, const pool_geom *geo) {
  int64_t n = x->shape[0], c = x->shape[1], planes = n * c;
  int64_t shape[4] = {n, c, geo->oh, geo->ow};
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  if (!out) {
    cl_release(xc);
    return NULL;
  }
  const float *px = cl_f32(xc);
  float *py = cl_f32(out);
  chunking ch = chunk_plan(planes, 64, 1, (double)planes * (double)(geo->h * geo->w));
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    for (int64_t pl = lo; pl < hi; pl++)
      avg_plane(geo, px + pl * geo->h * geo->w, py + pl * geo->oh * geo->ow);
  }
  cl_release(xc);
  cl_node *node;
  if (cl_record(&out, &node, fn, avg_pool_backward, 1, &x, 0, NULL))
    return NULL;
  if (node) {
    node->iarg[0] = geo->oh, node->iarg[1] = geo->ow;
    node->iarg[2] = geo->kernel, node->iarg[3] = geo->stride, node->iarg[4] = geo->padding;
  }
  return out;
}

static int check_planes(const char *fn, const cl_tensor *x) {
  char bx[96];
  if (cl_check_float(fn, "input", x))
    return -1;
  if (x->ndim != 4)
    return cl_fail("%s: input must be N×C×H×W, got %s", fn, cl_shape_str(x, bx, sizeof bx));
  return 0;
}

static int avg_pool_geom(const cl_tensor *x, int kernel, int stride, int padding, pool_geom *g) {
  const char *fn = "avg_pool2d";
  char bx[96];
  if (check_planes(fn, x))
    return -1;
  if (kernel < 1)
    return cl_fail("%s: kernel must be >= 1, got %d", fn, kernel);
  if (stride < 1)
    return cl_fail("%s: stride must be >= 1, got %d", fn, stride);
  if (padding < 0 || padding > kernel / 2)
    return cl_fail("%s: padding must be in [0, kernel/2] = [0, %d] (as PyTorch), got %d", fn,
                   kernel / 2, padding);
  int64_t h = x->shape[2], w = x->shape[3];
  if (kernel > h + 2 * (int64_t)padding || kernel > w + 2 * (int64_t)padding)
    return cl_fail("%s: kernel %d×%d is larger than the padded input plane %lld×%lld (input %s)",
                   fn, kernel, kernel, (long long)(h + 2 * padding),
                   (long long)(w + 2 * padding), cl_shape_str(x, bx, sizeof bx));
  g->h = h, g->w = w;
  g->oh = (h + 2 * padding - kernel) / stride + 1;
  g->ow = (w + 2 * padding - kernel) / stride + 1;
  g->kernel = kernel, g->stride = stride, g->padding = padding;
  return 0;
}

static int adaptive_geom(const cl_tensor *x, int out_h, int out_w, pool_geom *g) {
  const char *fn = "adaptive_avg_pool2d";
  char bx[96];
  if (check_planes(fn, x))
    return -1;
  if (out_h < 1 || out_w < 1)
    return cl_fail("%s: output size must be >= 1×1, got %d×%d", fn, out_h, out_w);
  if (x->shape[2] < 1 || x->shape[3] < 1)
    return cl_fail("%s: input planes must not be empty, got %s", fn,
                   cl_shape_str(x, bx, sizeof bx));
  g->h = x->shape[2], g->w = x->shape[3], g->oh = out_h, g->ow = out_w;
  g->kernel = 0, g->stride = 0, g->padding = 0;
  return 0;
}

cl_tensor *cl_avg_pool2d(cl_tensor *x, int kernel, int stride, int padding) {
  pool_geom g = {0, 0, 0, 0, 0, 0, 0};
  if (avg_pool_geom(x, kernel, stride, padding, &g))
    return NULL;
  return avg_pool_run("avg_pool2d", x, &g);
}

cl_tensor *cl_adaptive_avg_pool2d(cl_tensor *x, int out_h, int out_w) {
  pool_geom g = {0, 0, 0, 0, 0, 0, 0};
  if (adaptive_geom(x, out_h, out_w, &g))
    return NULL;
  return avg_pool_run("adaptive_avg_pool2d", x, &g);
}

/* The reference: every output element straight from its definition, padding as zeros.
 * kernel 0 means adaptive (out_h × out_w); otherwise kernel, stride, padding. */
cl_tensor *cl_avg_pool2d_reference(cl_tensor *x, int kernel, int stride, int padding, int out_h,
                                   int out_w) {
  pool_geom g = {0, 0, 0, 0, 0, 0, 0};
  if (kernel ? avg_pool_geom(x, kernel, stride, padding, &g) : adaptive_geom(x, out_h, out_w, &g))
    return NULL;
  int64_t n = x->shape[0], c = x->shape[1], shape[4] = {n, c, g.oh, g.ow};
  cl_tensor *out = cl_empty(CL_FLOAT32, 4, shape);
  if (!out)
    return NULL;
  float *py = cl_f32(out);
  for (int64_t pl = 0; pl < n * c; pl++)
    for (int64_t i = 0; i < g.oh; i++)
      for (int64_t j = 0; j < g.ow; j++) {
        double s = 0;
        int64_t cells = 0;
        int64_t r_lo = kernel ? i * stride - padding : (int64_t)floor((double)i * g.h / g.oh);
        int64_t r_hi = kernel ? r_lo + kernel : (int64_t)ceil((double)(i + 1) * g.h / g.oh);
        int64_t c_lo = kernel ? j * stride - padding : (int64_t)floor((double)j * g.w / g.ow);
        int64_t c_hi = kernel ? c_lo + kernel : (int64_t)ceil((double)(j + 1) * g.w / g.ow);
        for (int64_t r = r_lo; r < r_hi; r++)
          for (int64_t q = c_lo; q < c_hi; q++) {
            cells++;
            if (r >= 0 && r < g.h && q >= 0 && q < g.w)
              s += cl_item_at(x, (pl * g.h + r) * g.w + q);
          }
        py[(pl * g.oh + i) * g.ow + j] = (float)(s / (double)cells);
      }
  return out;
}

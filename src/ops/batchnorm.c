/* batchnorm.c — batch normalisation (PyTorch's F.batch_norm): forward, backward and the plain
 * reference the tests compare against.
 *
 * x is N×C (BatchNorm1d), N×C×L (BatchNorm1d) or N×C×H×W (BatchNorm2d), seen as N×C×S with S
 * the product of the dimensions after C (1 for N×C); channel c owns the N planes
 * x[n, c, 0..S), M = N·S values. Every channel is computed by one thread in one fixed order,
 * with double accumulators, so the result is the same bits for any thread count. */
#include "ops/norm.h"
#include "ops/ops_impl.h"

#include <math.h>
#include <string.h>

/* x N×C×S, weight w (C) or none (1), bias b (C) or none (0), running_mean rm, running_var rv
 * (C) or none:
 *   training, or no running statistics (PyTorch: track_running_stats = False):
 *     mean_c = Σ x / M,  var_c = Σ (x − mean_c)² / M (biased),  invstd_c = 1/√(var_c + eps);
 *     with running statistics, in place:  rm = (1 − momentum)·rm + momentum·mean_c,
 *                                         rv = (1 − momentum)·rv + momentum·var_c·M/(M − 1)
 *     (the unbiased variance, as PyTorch's; M = 1 is refused, as PyTorch does).
 *   evaluation with running statistics:  mean_c = rm_c,  invstd_c = 1/√(rv_c + eps).
 *   y = (x − mean_c)·invstd_c·w_c + b_c.
 * The sums run over (x − x₀) with x₀ the channel's first value: one pass, and no cancellation
 * when the mean is large next to the spread.
 * Backward, x̂ = (x − mean_c)·invstd_c, Σ over the channel's M values:
 *   db_c = Σ g;  dw_c = Σ g·x̂;
 *   batch statistics:  dx = w_c·invstd_c·(g − db_c/M − x̂·dw_c/M);
 *   running statistics (constants):  dx = w_c·invstd_c·g.
 * The node saves x (contiguous) and w; mean_c and invstd_c are in its ctx. */

typedef struct {
  int64_t n, c, s; /* N, C, S */
} bn_dims;

/* Sum and sum of squares of (x − shift) over channel ch, in double. */
static void channel_moments(const float *x, const bn_dims *d, int64_t ch, double shift,
                            double *sum, double *sumsq) {
  double s1 = 0, s2 = 0;
  for (int64_t i = 0; i < d->n; i++) {
    const float *p = x + (i * d->c + ch) * d->s;
    for (int64_t k = 0; k < d->s; k++) {
      double v = (double)p[k] - shift;
      s1 += v;
      s2 += v * v;
    }
  }
  *sum = s1, *sumsq = s2;
}

/* y = x·scale + offset over channel ch (float arithmetic, vectorisable). */
static void channel_affine(const float *restrict x, float *restrict y, const bn_dims *d,
                           int64_t ch, float scale, float offset) {
  for (int64_t i = 0; i < d->n; i++) {
    const float *p = x + (i * d->c + ch) * d->s;
    float *q = y + (i * d->c + ch) * d->s;
    for (int64_t k = 0; k < d->s; k++)
      q[k] = p[k] * scale + offset;
  }
}

static int bn_check(const char *fn, const cl_tensor *x, const cl_tensor *w, const cl_tensor *b,
                    const cl_tensor *rm, const cl_tensor *rv, int training, double momentum,
                    double eps, bn_dims *d) {
  char bx[96], bo[96];
  if (cl_check_float(fn, "input", x))
    return -1;
  if (x->ndim < 2 || x->ndim > 4)
    return cl_fail("%s: input must be N×C, N×C×L or N×C×H×W, got %s", fn,
                   cl_shape_str(x, bx, sizeof bx));
  d->n = x->shape[0], d->c = x->shape[1], d->s = 1;
  for (int i = 2; i < x->ndim; i++)
    d->s *= x->shape[i];
  const cl_tensor *per_channel[4] = {w, b, rm, rv};
  const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
  for (int i = 0; i < 4; i++) {
    const cl_tensor *t = per_channel[i];
    if (!t)
      continue;
    if (cl_check_float(fn, names[i], t))
      return -1;
    if (t->ndim != 1 || t->shape[0] != d->c)
      return cl_fail("%s: %s must be 1-D of size C = %lld (the input's channels), got %s", fn,
                     names[i], (long long)d->c, cl_shape_str(t, bo, sizeof bo));
  }
  if (!rm != !rv)
    return cl_fail("%s: running_mean and running_var go together (both or neither)", fn);
  if (rm && (!cl_is_contiguous(rm) || !cl_is_contiguous(rv)))
    return cl_fail("%s: running_mean and running_var must be contiguous", fn);
  if (rm && rm->storage == rv->storage)
    return cl_fail("%s: running_mean and running_var must not share their storage", fn);
  if (!(eps > 0) || !isfinite(eps))
    return cl_fail("%s: eps must be a finite number > 0, got %g", fn, eps);
  if (training && rm && (!(momentum >= 0 && momentum <= 1)))
    return cl_fail("%s: momentum must be in [0, 1], got %g", fn, momentum);
  if ((training || !rm) && d->n * d->s < 2)
    return cl_fail("%s: expected more than 1 value per channel when training, got input %s",
                   fn, cl_shape_str(x, bx, sizeof bx));
  return 0;
}

static int batch_norm_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->saved[0], *w = node->saved[1];
  const double *stats = node->ctx; /* mean[C], then invstd[C] */
  int batch_stats = (int)node->iarg[0];
  bn_dims d = {x->shape[0], x->shape[1], 1};
  for (int i = 2; i < x->ndim; i++)
    d.s *= x->shape[i];
  const float *px = cl_f32(x), *pg = cl_f32(g), *pw = w ? cl_f32(w) : NULL;
  cl_tensor *dx = node->inputs[0] ? cl_empty(CL_FLOAT32, x->ndim, x->shape) : NULL;
  cl_tensor *dw = node->inputs[1] ? cl_empty(CL_FLOAT32, 1, &d.c) : NULL;
  cl_tensor *db = node->inputs[2] ? cl_empty(CL_FLOAT32, 1, &d.c) : NULL;
  if ((node->inputs[0] && !dx) || (node->inputs[1] && !dw) || (node->inputs[2] && !db)) {
    release4(dx, dw, db, NULL);
    return -1;
  }
  float *pdx = dx ? cl_f32(dx) : NULL, *pdw = dw ? cl_f32(dw) : NULL,
        *pdb = db ? cl_f32(db) : NULL;
  double m = (double)(d.n * d.s);
#ifdef _OPENMP
  chunking ch = chunk_plan(d.c, d.c, 1, 3.0 * (double)d.n * (double)d.c * (double)d.s);
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t c = 0; c < d.c; c++) {
    double mean = stats[c], invstd = stats[d.c + c];
    double sum_g = 0, sum_gx = 0; /* Σ g and Σ g·(x − mean) */
    for (int64_t i = 0; i < d.n; i++) {
      const float *xp = px + (i * d.c + c) * d.s, *gp = pg + (i * d.c + c) * d.s;
      for (int64_t k = 0; k < d.s; k++) {
        sum_g += gp[k];
        sum_gx += (double)gp[k] * ((double)xp[k] - mean);
      }
    }
    if (pdb)
      pdb[c] = (float)sum_g;
    if (pdw)
      pdw[c] = (float)(sum_gx * invstd);
    if (!pdx)
      continue;
    double scale = (pw ? pw[c] : 1.0) * invstd;
    /* dx = scale·(g − a − (x − mean)·k): a = Σg/M, k = invstd²·Σg(x − mean)/M (batch stats) */
    float a = batch_stats ? (float)(sum_g / m) : 0.0f;
    float k = batch_stats ? (float)(invstd * invstd * sum_gx / m) : 0.0f;
    float sc = (float)scale, mu = (float)mean;
    for (int64_t i = 0; i < d.n; i++) {
      const float *xp = px + (i * d.c + c) * d.s, *gp = pg + (i * d.c + c) * d.s;
      float *dp = pdx + (i * d.c + c) * d.s;
      for (int64_t q = 0; q < d.s; q++)
        dp[q] = sc * (gp[q] - a - (xp[q] - mu) * k);
    }
  }
  gin[0] = dx, gin[1] = dw, gin[2] = db;
  return 0;
}

cl_tensor *cl_batch_norm(cl_tensor *x, cl_tensor *weight, cl_tensor *bias,
                         cl_tensor *running_mean, cl_tensor *running_var, int training,
                         double momentum, double eps) {
  const char *fn = "batch_norm";
  bn_dims d;
  if (bn_check(fn, x, weight, bias, running_mean, running_var, training, momentum, eps, &d))
    return NULL;
  int batch_stats = training || !running_mean;
  size_t stats_bytes = sizeof(double) * 2 * (size_t)(d.c ? d.c : 1);
  double *stats = cl_alloc(stats_bytes);
  cl_tensor *xc = stats ? cl_float_contiguous(x) : NULL;
  cl_tensor *wc = xc && weight ? cl_float_contiguous(weight) : NULL;
  cl_tensor *bc = xc && bias ? cl_float_contiguous(bias) : NULL;
  cl_tensor *out = xc && (wc || !weight) && (bc || !bias) ? cl_empty(CL_FLOAT32, x->ndim, x->shape)
                                                          : NULL;
  if (!out) {
    release4(xc, wc, bc, NULL);
    cl_dealloc(stats, stats_bytes);
    return NULL;
  }
  const float *px = cl_f32(xc), *pw = wc ? cl_f32(wc) : NULL, *pb = bc ? cl_f32(bc) : NULL;
  float *py = cl_f32(out);
  float *prm = running_mean ? cl_f32(running_mean) : NULL;
  float *prv = running_var ? cl_f32(running_var) : NULL;
  double m = (double)(d.n * d.s);
  int update = training && prm;
#ifdef _OPENMP
  chunking ch = chunk_plan(d.c, d.c, 1, 3.0 * (double)d.n * (double)d.c * (double)d.s);
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t c = 0; c < d.c; c++) {
    double mean, var;
    if (batch_stats) {
      double shift = px[c * d.s], sum, sumsq;
      channel_moments(px, &d, c, shift, &sum, &sumsq);
      double centred = sum / m; /* mean − shift */
      var = sumsq / m - centred * centred;
      if (var < 0)
        var = 0;
      mean = shift + centred;
      if (update) {
        prm[c] = (float)((1 - momentum) * prm[c] + momentum * mean);
        prv[c] = (float)((1 - momentum) * prv[c] + momentum * var * m / (m - 1));
      }
    } else {
      mean = prm[c];
      var = prv[c];
    }
    double invstd = 1.0 / sqrt(var + eps);
    stats[c] = mean, stats[d.c + c] = invstd;
    double scale = (pw ? pw[c] : 1.0) * invstd;
    channel_affine(px, py, &d, c, (float)scale, (float)((pb ? pb[c] : 0.0) - mean * scale));
  }
  if (update) {
    running_mean->storage->version++;
    running_var->storage->version++;
  }
  cl_node *node;
  cl_tensor *inputs[3] = {x, weight, bias}, *saved[2] = {xc, wc};
  int rc = cl_record(&out, &node, fn, batch_norm_backward, 3, inputs, 2, saved);
  release4(xc, wc, bc, NULL);
  if (rc || !node) {
    cl_dealloc(stats, stats_bytes);
    return out;
  }
  node->ctx = stats;
  node->ctx_bytes = stats_bytes;
  node->iarg[0] = batch_stats;
  return out;
}

/* The reference: the definition as it reads, two passes in double, one channel after another
 * (no running-statistics update; eval with running statistics when rm is given and !training). */
cl_tensor *cl_batch_norm_reference(cl_tensor *x, cl_tensor *weight, cl_tensor *bias,
                                   cl_tensor *running_mean, cl_tensor *running_var,
                                   int training, double eps) {
  bn_dims d;
  if (bn_check("batch_norm", x, weight, bias, running_mean, running_var, training, 0, eps, &d))
    return NULL;
  cl_tensor *out = cl_empty(CL_FLOAT32, x->ndim, x->shape);
  if (!out)
    return NULL;
  float *py = cl_f32(out);
  int64_t m = d.n * d.s;
  for (int64_t c = 0; c < d.c; c++) {
    double mean = 0, var = 0;
    if (training || !running_mean) {
      for (int64_t i = 0; i < d.n; i++)
        for (int64_t k = 0; k < d.s; k++)
          mean += cl_item_at(x, (i * d.c + c) * d.s + k);
      mean /= (double)m;
      for (int64_t i = 0; i < d.n; i++)
        for (int64_t k = 0; k < d.s; k++) {
          double v = cl_item_at(x, (i * d.c + c) * d.s + k) - mean;
          var += v * v;
        }
      var /= (double)m;
    } else {
      mean = cl_item_at(running_mean, c);
      var = cl_item_at(running_var, c);
    }
    double w = weight ? cl_item_at(weight, c) : 1.0, b = bias ? cl_item_at(bias, c) : 0.0;
    for (int64_t i = 0; i < d.n; i++)
      for (int64_t k = 0; k < d.s; k++) {
        int64_t at = (i * d.c + c) * d.s + k;
        py[at] = (float)((cl_item_at(x, at) - mean) / sqrt(var + eps) * w + b);
      }
  }
  return out;
}

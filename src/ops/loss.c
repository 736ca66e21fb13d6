/* loss.c — the losses: cross-entropy (optionally weighted per class, as PyTorch's) and mean squared
 * error, each with none/mean/sum reduction. */
#include "ops/ops_impl.h"

#include <math.h>
#include <string.h>

static int check_reduction(const char *fn, cl_reduction r) {
  if (r != CL_REDUCE_NONE && r != CL_REDUCE_MEAN && r != CL_REDUCE_SUM)
    return cl_fail("%s: reduction must be none, mean or sum, got code %d", fn, (int)r);
  return 0;
}

/* The factor that the incoming gradient of a reduced loss carries to sample/element i. */
static double reduced_grad(const float *g, cl_reduction r, int64_t i, double count) {
  if (r == CL_REDUCE_NONE)
    return g[i];
  return r == CL_REDUCE_MEAN ? (double)g[0] / count : (double)g[0];
}

/* logits z N×K, targets t (N, int64 in [0, K)), class weights w (K) or none — PyTorch's
 * F.cross_entropy(z, t, weight=w, reduction=...):
 *   lse_i = log Σ_k exp(z[i,k])   (computed as m + log Σ exp(z − m), m = max_k z[i,k])
 *   ℓ_i = lse_i − z[i, t_i],   u_i = w[t_i] (1 without weights),   l_i = u_i · ℓ_i
 *   none → l (N);  sum → Σ_i l_i;  mean → Σ_i l_i / W with W = Σ_i u_i (N without weights).
 * Per-sample weights are not this option: take reduction none and weight the result.
 * Backward, with c_i the incoming factor (g_i, g, or g/W for the mean) and L the mean loss:
 *   dz[i,k] = c_i · u_i · (softmax(z_i)_k − [k = t_i])
 *   dw[k]   = Σ_{i: t_i = k} c_i · ℓ_i   (none, sum);   Σ_{i: t_i = k} (g/W) · (ℓ_i − L) (mean).
 * The node keeps lse and the targets (copied: later writes to the targets cannot matter),
 * W in farg[0] and L in farg[1]. */
typedef struct {
  double lse;
  int64_t target;
} ce_row;

/* Targets are read as integers: going through double would blur values beyond 2^53 in the
 * error message. */
static int64_t target_at(const cl_tensor *targets, int64_t i) {
  return ((const int64_t *)cl_data(targets))[cl_offset_of(targets, i)];
}

static int cross_entropy_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *z = node->saved[0], *w = node->saved[1];
  const ce_row *rows = node->ctx;
  cl_reduction red = (cl_reduction)node->iarg[0];
  double total_w = node->farg[0], mean_loss = node->farg[1];
  int64_t n = z->shape[0], k = z->shape[1];
  const float *pz = cl_f32(z), *pw = w ? cl_f32(w) : NULL, *pg = cl_f32(g);
  if (node->inputs[0]) {
    cl_tensor *dz = cl_empty(CL_FLOAT32, 2, z->shape);
    if (!dz)
      return -1;
    float *pdz = cl_f32(dz);
    for (int64_t i = 0; i < n; i++) {
      double c = reduced_grad(pg, red, i, total_w) * (pw ? pw[rows[i].target] : 1.0);
      for (int64_t j = 0; j < k; j++) {
        double soft = exp((double)pz[i * k + j] - rows[i].lse);
        pdz[i * k + j] = (float)(c * (soft - (j == rows[i].target ? 1.0 : 0.0)));
      }
    }
    gin[0] = dz;
  }
  if (node->inputs[1]) {
    cl_tensor *dw = cl_zeros(CL_FLOAT32, 1, &k);
    if (!dw)
      return -1;
    double *acc = cl_alloc(sizeof(double) * (size_t)k);
    if (!acc)
      return cl_release(dw), -1;
    memset(acc, 0, sizeof(double) * (size_t)k);
    for (int64_t i = 0; i < n; i++) {
      double li = rows[i].lse - (double)pz[i * k + rows[i].target];
      if (red == CL_REDUCE_MEAN)
        li -= mean_loss;
      acc[rows[i].target] += reduced_grad(pg, red, i, total_w) * li;
    }
    float *pdw = cl_f32(dw);
    for (int64_t j = 0; j < k; j++)
      pdw[j] = (float)acc[j];
    cl_dealloc(acc, sizeof(double) * (size_t)k);
    gin[1] = dw;
  }
  return 0;
}

cl_tensor *cl_cross_entropy(cl_tensor *logits, const cl_tensor *targets, cl_tensor *weights,
                            cl_reduction reduction) {
  const char *fn = "cross_entropy";
  char b1[96], b2[96];
  if (check_reduction(fn, reduction) || cl_check_float(fn, "logits", logits) ||
      (weights && cl_check_float(fn, "weight", weights)))
    return NULL;
  if (logits->ndim != 2 || logits->shape[1] < 1)
    return (void)cl_fail("%s: logits must be N×K with K >= 1 classes, got %s", fn,
                         cl_shape_str(logits, b1, sizeof b1)),
           NULL;
  int64_t n = logits->shape[0], k = logits->shape[1];
  if (targets->dtype != CL_INT64)
    return (void)cl_fail("%s: targets must be an int64 tensor of class indices, got %s (convert "
                         "with :long())",
                         fn, cl_dtype_name(targets->dtype)),
           NULL;
  if (targets->ndim != 1 || targets->shape[0] != n)
    return (void)cl_fail("%s: targets must be 1-D of size N = %lld (the logits' N), got %s", fn,
                         (long long)n, cl_shape_str(targets, b2, sizeof b2)),
           NULL;
  if (weights && (weights->ndim != 1 || weights->shape[0] != k))
    return (void)cl_fail("%s: weight must be 1-D of size K = %lld (one per class, as PyTorch's; "
                         "for per-sample weights take reduction none and weight the result), "
                         "got %s",
                         fn, (long long)k, cl_shape_str(weights, b2, sizeof b2)),
           NULL;
  for (int64_t i = 0; i < n; i++) {
    int64_t t = target_at(targets, i);
    if (t < 0 || t >= k)
      return (void)cl_fail("%s: target %lld at position %lld is out of range [0, %lld) (class "
                           "indices count from 0)",
                           fn, (long long)t, (long long)i, (long long)k),
             NULL;
  }
  size_t rows_bytes = sizeof(ce_row) * (size_t)n;
  ce_row *rows = cl_alloc(rows_bytes);
  cl_tensor *z = rows ? cl_float_contiguous(logits) : NULL;
  cl_tensor *w = z && weights ? cl_float_contiguous(weights) : NULL;
  int64_t one = n;
  cl_tensor *out =
      z && (w || !weights) ? cl_empty(CL_FLOAT32, reduction == CL_REDUCE_NONE ? 1 : 0, &one) : NULL;
  if (!out) {
    release4(z, w, NULL, NULL);
    cl_dealloc(rows, rows_bytes);
    return NULL;
  }
  const float *pz = cl_f32(z), *pw = w ? cl_f32(w) : NULL;
  float *py = cl_f32(out);
  double total = 0, total_w = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *zi = pz + i * k;
    float m = zi[0];
    for (int64_t j = 1; j < k; j++)
      m = zi[j] > m ? zi[j] : m;
    double sum = 0;
    for (int64_t j = 0; j < k; j++)
      sum += exp((double)zi[j] - m);
    rows[i].lse = m + log(sum);
    rows[i].target = target_at(targets, i);
    double u = pw ? pw[rows[i].target] : 1.0;
    double loss = (rows[i].lse - zi[rows[i].target]) * u;
    if (reduction == CL_REDUCE_NONE)
      py[i] = (float)loss;
    total += loss;
    total_w += u;
  }
  /* PyTorch divides by the weights' sum even when it is 0 (giving nan); so does this */
  double mean = total / total_w;
  if (reduction != CL_REDUCE_NONE)
    py[0] = (float)(reduction == CL_REDUCE_MEAN ? mean : total);
  cl_node *node;
  cl_tensor *inputs[2] = {logits, weights}, *saved[2] = {z, w};
  int rc = cl_record(&out, &node, fn, cross_entropy_backward, 2, inputs, 2, saved);
  release4(z, w, NULL, NULL);
  if (rc || !node) {
    cl_dealloc(rows, rows_bytes);
    return out;
  }
  node->ctx = rows;
  node->ctx_bytes = rows_bytes;
  node->iarg[0] = reduction;
  node->farg[0] = total_w;
  node->farg[1] = mean;
  return out;
}

/* a, b of one shape, d = a − b:
 *   none → d² (elementwise);  sum → Σ d²;  mean → Σ d² / numel.
 * Backward: da = 2·c·d, db = −2·c·d with c the incoming factor (g_i, g or g/numel). */
static int mse_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *d = node->saved[0];
  cl_reduction red = (cl_reduction)node->iarg[0];
  int64_t n = cl_numel(d);
  const float *pd = cl_f32(d), *pg = cl_f32(g);
  for (int side = 0; side < 2; side++) {
    if (!node->inputs[side])
      continue;
    cl_tensor *r = cl_empty(CL_FLOAT32, d->ndim, d->shape);
    if (!r)
      return -1;
    float *pr = cl_f32(r);
    double sign = side == 0 ? 2.0 : -2.0;
    for (int64_t i = 0; i < n; i++)
      pr[i] = (float)(sign * reduced_grad(pg, red, i, n) * pd[i]);
    gin[side] = r;
  }
  return 0;
}

cl_tensor *cl_mse_loss(cl_tensor *a, cl_tensor *b, cl_reduction reduction) {
  char b1[96], b2[96];
  if (check_reduction("mse_loss", reduction) || cl_check_float("mse_loss", "input", a) ||
      cl_check_float("mse_loss", "target", b))
    return NULL;
  if (!cl_same_shape(a, b))
    return (void)cl_fail("mse_loss: input and target must have the same shape, got %s and %s",
                         cl_shape_str(a, b1, sizeof b1), cl_shape_str(b, b2, sizeof b2)),
           NULL;
  int64_t n = cl_numel(a);
  cl_tensor *ac = cl_float_contiguous(a);
  cl_tensor *bc = ac ? cl_float_contiguous(b) : NULL;
  cl_tensor *d = bc ? cl_empty(CL_FLOAT32, a->ndim, a->shape) : NULL;
  cl_tensor *out = d ? (reduction == CL_REDUCE_NONE ? cl_empty(CL_FLOAT32, a->ndim, a->shape)
                                                    : cl_empty(CL_FLOAT32, 0, NULL))
                     : NULL;
  if (!out) {
    release4(ac, bc, d, NULL);
    return NULL;
  }
  const float *pa = cl_f32(ac), *pb = cl_f32(bc);
  float *pd = cl_f32(d), *py = cl_f32(out);
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    pd[i] = pa[i] - pb[i];
    double sq = (double)pd[i] * pd[i];
    if (reduction == CL_REDUCE_NONE)
      py[i] = (float)sq;
    total += sq;
  }
  if (reduction != CL_REDUCE_NONE)
    py[0] = (float)(reduction == CL_REDUCE_MEAN ? total / (double)n : total);
  cl_node *node;
  cl_tensor *inputs[2] = {a, b};
  cl_record(&out, &node, "mse_loss", mse_backward, 2, inputs, 1, &d);
  if (node)
    node->iarg[0] = reduction;
  release4(ac, bc, d, NULL);
  return out;
}

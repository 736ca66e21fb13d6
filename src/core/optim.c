/* optim.c — one optimisation step of SGD (with momentum, Nesterov, weight decay) and of
 * Adam / AdamW, written to reproduce PyTorch's float32 arithmetic step by step.
 *
 * The steps write parameters and buffers in place on purpose, so unlike the other in-place
 * writers they do not refuse leaves that require grad; they bump the storage version so that a
 * graph that saved the old values notices. Every element is updated on its own, so a parallel
 * loop gives the same bits whatever the thread count. */
#include "core/tensor_impl.h"

#include <math.h>

/* Elementwise loops shorter than this are not worth a parallel region. */
#define PARALLEL_MIN_ELEMENTS 65536

/* t must be a float32 contiguous tensor shaped like the parameter, not sharing its storage. */
static int check_operand(const char *fn, const char *arg, const cl_tensor *t, const cl_tensor *p) {
  char bt[96], bp[96];
  if (t->dtype != CL_FLOAT32)
    return cl_fail("%s: %s must be a float32 tensor, got %s", fn, arg, cl_dtype_name(t->dtype));
  if (!cl_is_contiguous(t))
    return cl_fail("%s: %s must be contiguous (call :contiguous() on it first)", fn, arg);
  if (p && !cl_same_shape(t, p))
    return cl_fail("%s: %s has shape %s but the parameter has shape %s", fn, arg,
                   cl_shape_str(t, bt, sizeof bt), cl_shape_str(p, bp, sizeof bp));
  return 0;
}

static int check_separate(const char *fn, const char *arg, const cl_tensor *t,
                          const cl_tensor *other, const char *other_arg) {
  if (t->storage == other->storage)
    return cl_fail("%s: %s shares its storage with the %s; each needs its own tensor", fn, arg,
                   other_arg);
  return 0;
}

/* PyTorch's SGD, without dampening:
 *   d = g + wd·p;  buf = momentum·buf + d (when momentum > 0);
 *   d = nesterov ? d + momentum·buf : buf;  p = p − lr·d.
 * A zero buffer on the first step gives PyTorch's buf = d. */
int cl_sgd_step(cl_tensor *p, const cl_tensor *g, cl_tensor *buf, double lr, double momentum,
                double weight_decay, int nesterov) {
  const char *fn = "sgd_step";
  if (check_operand(fn, "parameter", p, NULL) || check_operand(fn, "gradient", g, p))
    return -1;
  if (!(lr >= 0) || !isfinite(lr))
    return cl_fail("%s: lr must be a finite number >= 0, got %g", fn, lr);
  if (!(momentum >= 0) || !isfinite(momentum))
    return cl_fail("%s: momentum must be a finite number >= 0, got %g", fn, momentum);
  if (!(weight_decay >= 0) || !isfinite(weight_decay))
    return cl_fail("%s: weight_decay must be a finite number >= 0, got %g", fn, weight_decay);
  if (nesterov && momentum == 0)
    return cl_fail("%s: nesterov needs momentum > 0", fn);
  if (momentum != 0) {
    if (!buf)
      return cl_fail("%s: momentum %g needs a momentum buffer (a zero tensor shaped like the "
                     "parameter), got none",
                     fn, momentum);
    if (check_operand(fn, "momentum buffer", buf, p) ||
        check_separate(fn, "momentum buffer", buf, p, "parameter") ||
        check_separate(fn, "momentum buffer", buf, g, "gradient"))
      return -1;
  }
  int64_t n = cl_numel(p);
  float *pp = cl_f32(p), *pb = momentum != 0 ? cl_f32(buf) : NULL;
  const float *pg = cl_f32(g);
  float lr_f = (float)lr, mom = (float)momentum, wd = (float)weight_decay;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN_ELEMENTS)
#endif
  for (int64_t i = 0; i < n; i++) {
    float d = pg[i];
    if (wd != 0)
      d = d + wd * pp[i];
    if (pb) {
      float b = pb[i] * mom + d;
      pb[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    pp[i] = pp[i] + -lr_f * d;
  }
  p->storage->version++;
  if (pb)
    buf->storage->version++;
  return 0;
}

/* PyTorch's Adam (Kingma & Ba 2015), step t counted from 1 for this parameter alone (PyTorch's
 * state[p]['step']: the caller counts only the steps on which p had a gradient):
 *   Adam:  g = g + wd·p            AdamW: p = p·(1 − lr·wd)
 *   m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²
 *   p = p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps). */
int cl_adam_step(cl_tensor *p, const cl_tensor *g, cl_tensor *m, cl_tensor *v, long step, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int decoupled) {
  const char *fn = "adam_step";
  if (check_operand(fn, "parameter", p, NULL) || check_operand(fn, "gradient", g, p) ||
      check_operand(fn, "first moment m", m, p) || check_operand(fn, "second moment v", v, p) ||
      check_separate(fn, "first moment m", m, p, "parameter") ||
      check_separate(fn, "second moment v", v, p, "parameter") ||
      check_separate(fn, "first moment m", m, v, "second moment v") ||
      check_separate(fn, "first moment m", m, g, "gradient") ||
      check_separate(fn, "second moment v", v, g, "gradient"))
    return -1;
  if (step < 1)
    return cl_fail("%s: step counts from 1, got %ld", fn, step);
  if (!(lr >= 0) || !isfinite(lr))
    return cl_fail("%s: lr must be a finite number >= 0, got %g", fn, lr);
  if (!(beta1 >= 0 && beta1 < 1))
    return cl_fail("%s: beta1 must be in [0, 1), got %g", fn, beta1);
  if (!(beta2 >= 0 && beta2 < 1))
    return cl_fail("%s: beta2 must be in [0, 1), got %g", fn, beta2);
  if (!(eps >= 0) || !isfinite(eps))
    return cl_fail("%s: eps must be a finite number >= 0, got %g", fn, eps);
  if (!(weight_decay >= 0) || !isfinite(weight_decay))
    return cl_fail("%s: weight_decay must be a finite number >= 0, got %g", fn, weight_decay);
  double bias1 = 1.0 - pow(beta1, (double)step), bias2 = 1.0 - pow(beta2, (double)step);
  float step_size = (float)(lr / bias1), bias2_sqrt = (float)sqrt(bias2);
  float b1 = (float)beta1, b2 = (float)beta2, one_b1 = (float)(1.0 - beta1),
        one_b2 = (float)(1.0 - beta2), eps_f = (float)eps, wd = (float)weight_decay;
  float shrink = (float)(1.0 - lr * weight_decay);
  int64_t n = cl_numel(p);
  float *pp = cl_f32(p), *pm = cl_f32(m), *pv = cl_f32(v);
  const float *pg = cl_f32(g);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > PARALLEL_MIN_ELEMENTS)
#endif
  for (int64_t i = 0; i < n; i++) {
    float gi = pg[i];
    if (wd != 0) {
      if (decoupled)
        pp[i] = pp[i] * shrink;
      else
        gi = gi + wd * pp[i];
    }
    pm[i] = pm[i] * b1 + one_b1 * gi;
    pv[i] = pv[i] * b2 + one_b2 * gi * gi;
    float denom = sqrtf(pv[i]) / bias2_sqrt + eps_f;
    pp[i] = pp[i] + -step_size * pm[i] / denom;
  }
  p->storage->version++;
  m->storage->version++;
  v->storage->version++;
  return 0;
}

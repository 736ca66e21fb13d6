/* gradcheck.h — compares the gradients from cl_backward with central finite differences.
 * The function under test maps input tensors to any tensor; the check reduces it to a scalar
 * with fixed random weights (so every output element matters) and perturbs each input
 * element in turn. */
#ifndef CNNLAB_GRADCHECK_H
#define CNNLAB_GRADCHECK_H

#include "check.h"
#include "cnnlab.h"

typedef cl_tensor *(*gc_fn)(cl_tensor **inputs, void *ctx);

static double gc_weighted_sum(cl_tensor *out, const cl_tensor *weights) {
  double s = 0;
  for (int64_t i = 0; i < cl_numel(out); i++)
    s += cl_item_at(out, i) * cl_item_at(weights, i);
  return s;
}

/* Returns the worst relative error seen; records one CHECK per input. */
static double gradcheck(const char *name, gc_fn fn, void *ctx, int n, cl_tensor **inputs,
                        double eps, double tol) {
  cl_rng rng;
  cl_rng_seed(&rng, 1234, 7);
  cl_tensor *out = fn(inputs, ctx);
  if (!out) {
    CHECK(0, "%s: forward failed: %s", name, cl_last_error());
    return 1e9;
  }
  cl_tensor *w = cl_randn(&rng, out->ndim, out->shape);
  cl_tensor *wd = cl_detach(w);
  cl_tensor *loss_terms = cl_binary(CL_MUL, out, wd);
  cl_tensor *loss = cl_sum(loss_terms, CL_ALL_DIMS, 0);
  for (int i = 0; i < n; i++)
    if (inputs[i]->requires_grad) {
      cl_release(inputs[i]->grad);
      inputs[i]->grad = NULL;
    }
  int rc = cl_backward(loss, NULL, 0, NULL, NULL);
  CHECK(rc == 0, "%s: backward failed: %s", name, cl_last_error());
  cl_release(loss);
  cl_release(loss_terms);
  cl_release(out);
  double worst = 0;
  int was = cl_grad_enabled();
  cl_set_grad_enabled(0);
  for (int i = 0; i < n; i++) {
    cl_tensor *x = inputs[i];
    if (!x->requires_grad)
      continue;
    if (!x->grad) {
      CHECK(0, "%s: input %d got no gradient", name, i);
      continue;
    }
    double input_worst = 0;
    float *px = cl_f32(x);
    for (int64_t e = 0; e < cl_numel(x); e++) {
      float saved = px[e];
      px[e] = saved + (float)eps;
      cl_tensor *o1 = fn(inputs, ctx);
      double f1 = gc_weighted_sum(o1, w);
      px[e] = saved - (float)eps;
      cl_tensor *o2 = fn(inputs, ctx);
      double f2 = gc_weighted_sum(o2, w);
      px[e] = saved;
      cl_release(o1);
      cl_release(o2);
      double numeric = (f1 - f2) / (2 * eps), analytic = cl_item_at(x->grad, e);
      double err = fabs(numeric - analytic) / (fabs(numeric) + fabs(analytic) + 1e-2);
      if (err > input_worst)
        input_worst = err;
      if (err > tol && input_worst == err)
        fprintf(stderr, "  %s input %d element %lld: numeric %.6g analytic %.6g\n", name, i,
                (long long)e, numeric, analytic);
    }
    CHECK(input_worst <= tol, "%s: gradient of input %d off by %.3g (relative)", name, i,
          input_worst);
    if (input_worst > worst)
      worst = input_worst;
  }
  cl_set_grad_enabled(was);
  cl_release(w);
  cl_release(wd);
  return worst;
}

/* A float tensor of the given shape with values from N(0, 1) (or U[0.5, 1.5) when positive
 * values are needed), requiring grad. */
static cl_tensor *gc_input(cl_rng *r, int ndim, const int64_t *shape, int positive) {
  cl_tensor *t = positive ? cl_rand(r, ndim, shape) : cl_randn(r, ndim, shape);
  if (positive)
    for (int64_t i = 0; i < cl_numel(t); i++)
      cl_f32(t)[i] += 0.5f;
  cl_set_requires_grad(t, 1);
  return t;
}

#endif

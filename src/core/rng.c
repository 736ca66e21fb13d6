/* rng.c — PCG32 random numbers: integer arithmetic only, so every machine draws the same
 * sequence for a seed (uniforms are built from the integers, normals by Box–Muller). */
#include "core/tensor_impl.h"

#include <math.h>

#define PCG_MULT UINT64_C(6364136223846793005)

uint32_t cl_rng_u32(cl_rng *r) {
  uint64_t old = r->state;
  r->state = old * PCG_MULT + r->inc;
  uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = (uint32_t)(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

void cl_rng_seed(cl_rng *r, uint64_t seed, uint64_t stream) {
  r->state = 0;
  r->inc = (stream << 1u) | 1u;
  cl_rng_u32(r);
  r->state += seed;
  cl_rng_u32(r);
}

double cl_rng_uniform(cl_rng *r) {
  uint32_t hi = cl_rng_u32(r) >> 5, lo = cl_rng_u32(r) >> 6;
  return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

float cl_rng_uniform_f(cl_rng *r) { return (float)(cl_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double cl_rng_normal(cl_rng *r) {
  double u1 = 1.0 - cl_rng_uniform(r); /* (0, 1]: log stays finite */
  double u2 = cl_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t cl_rng_below(cl_rng *r, uint32_t n) {
  if (n <= 1)
    return 0;
  uint32_t threshold = (uint32_t)(-n) % n; /* rejecting below this removes modulo bias */
  for (;;) {
    uint32_t x = cl_rng_u32(r);
    if (x >= threshold)
      return x % n;
  }
}

static cl_rng default_rng = {0, 0};

cl_rng *cl_default_rng(void) {
  if (!default_rng.inc)
    cl_rng_seed(&default_rng, 0, 0);
  return &default_rng;
}

cl_tensor *cl_rand(cl_rng *r, int ndim, const int64_t *shape) {
  cl_tensor *t = cl_empty(CL_FLOAT32, ndim, shape);
  if (!t)
    return NULL;
  float *p = cl_f32(t);
  for (int64_t i = 0, n = cl_numel(t); i < n; i++) {
    if (CL_POLL(i)) {
      cl_release(t);
      return NULL;
    }
    p[i] = cl_rng_uniform_f(r);
  }
  return t;
}

cl_tensor *cl_randn(cl_rng *r, int ndim, const int64_t *shape) {
  cl_tensor *t = cl_empty(CL_FLOAT32, ndim, shape);
  if (!t)
    return NULL;
  float *p = cl_f32(t);
  for (int64_t i = 0, n = cl_numel(t); i < n; i++) {
    if (CL_POLL(i)) {
      cl_release(t);
      return NULL;
    }
    p[i] = (float)cl_rng_normal(r);
  }
  return t;
}

cl_tensor *cl_randperm(cl_rng *r, int64_t n) {
  if (n < 0 || n > UINT32_MAX)
    return (void)cl_fail("randperm: n must be in 0..2^32-1, got %lld", (long long)n), NULL;
  cl_tensor *t = cl_empty(CL_INT64, 1, &n);
  if (!t)
    return NULL;
  int64_t *p = cl_data(t);
  for (int64_t i = 0; i < n; i++)
    p[i] = i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher–Yates */
    if (CL_POLL(i)) {
      cl_release(t);
      return NULL;
    }
    int64_t j = cl_rng_below(r, (uint32_t)(i + 1));
    int64_t tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return t;
}

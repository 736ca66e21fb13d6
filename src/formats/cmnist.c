/* cmnist.c — Colored MNIST (SPEC §2) and small helpers around it: the split, colour
 * assignment, colouring with background noise, the grey version, batches as floats, and a
 * synthetic digit set. The exact random derivation is documented in docs/data.md; any change
 * here changes every data set, so the tests pin it. */
#include "core/tensor_impl.h"

#include <math.h>
#include <string.h>

/* The bytes must not depend on the compiler: no fused multiply-add in the colour formula. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

const double cl_cmnist_palette[10][3] = {
    {1, 0, 0}, {0, 1, 0}, {0, 0, 1},   {1, 1, 0},     {1, 0, 1},
    {0, 1, 1}, {1, 1, 1}, {1, 0.5, 0}, {0.5, 0.5, 0}, {0, 0.5, 0.5},
};

/* cl_rng_uniform_f of rng.c, inlined: the noise loop draws 55 million numbers for a full build
 * and the call was half its time. Same sequence (the tests check both against docs/data.md). */
static inline float noise_uniform(cl_rng *r) {
  uint64_t old = r->state;
  r->state = old * UINT64_C(6364136223846793005) + r->inc;
  uint32_t xs = (uint32_t)(((old >> 18u) ^ old) >> 27u), rot = (uint32_t)(old >> 59u);
  uint32_t x = (xs >> rot) | (xs << ((-rot) & 31u));
  return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* A contiguous tensor with t's contents: t itself (new reference) or a copy. */
static cl_tensor *contiguous_of(const cl_tensor *t) {
  if (cl_is_contiguous(t)) {
    cl_retain((cl_tensor *)t);
    return (cl_tensor *)t;
  }
  cl_tensor *c = cl_empty(t->dtype, t->ndim, t->shape);
  if (c && cl_copy_(c, t)) {
    cl_release(c);
    return NULL;
  }
  return c;
}

/* Checks a vector of class indices (int64 or uint8) in 0..9; on success *n is its length. */
static int check_classes(const char *fn, const char *arg, const cl_tensor *t, int64_t *n) {
  char buf[96];
  if (t->ndim != 1 || (t->dtype != CL_INT64 && t->dtype != CL_UINT8))
    return cl_fail("%s: %s must be a 1-D int64 or uint8 tensor of classes 0..9, got %s %s", fn, arg,
                   cl_dtype_name(t->dtype), cl_shape_str(t, buf, sizeof buf));
  *n = t->shape[0];
  for (int64_t i = 0; i < *n; i++) {
    double v = cl_item_at(t, i);
    if (!(v >= 0 && v <= 9))
      return cl_fail("%s: %s[%lld] = %g is not a class in 0..9", fn, arg, (long long)i, v);
  }
  return 0;
}

cl_tensor *cl_cmnist_split(int64_t n, uint64_t seed) {
  if (n < 0 || n > INT64_C(0xffffffff))
    return (void)cl_fail("split: n must be in 0..2^32-1, got %lld", (long long)n), NULL;
  cl_rng r;
  cl_rng_seed(&r, seed, CL_CMNIST_SPLIT);
  return cl_randperm(&r, n);
}

cl_tensor *cl_cmnist_colors(const cl_tensor *labels, double rho, int hard, uint64_t seed,
                            uint64_t stream) {
  int64_t n;
  if (check_classes("assign_colors", "labels", labels, &n))
    return NULL;
  if (!hard && !(rho >= 0 && rho <= 1))
    return (void)cl_fail("assign_colors: rho must be in [0, 1], got %g", rho), NULL;
  cl_tensor *out = cl_empty(CL_INT64, 1, &n);
  if (!out)
    return NULL;
  int64_t *k = cl_data(out);
  cl_rng r;
  cl_rng_seed(&r, seed, stream);
  for (int64_t i = 0; i < n; i++) {
    int64_t y = (int64_t)cl_item_at(labels, i);
    if (hard) {
      k[i] = cl_rng_below(&r, 10);
    } else if (cl_rng_uniform(&r) < rho) {
      k[i] = y;
    } else {
      int64_t other = cl_rng_below(&r, 9); /* one of the nine others, skipping y */
      k[i] = other < y ? other : other + 1;
    }
  }
  return out;
}

cl_tensor *cl_cmnist_colorize(const cl_tensor *grey, const cl_tensor *colors, double beta,
                              uint64_t seed, uint64_t stream) {
  char buf[96];
  if (grey->dtype != CL_UINT8 || grey->ndim != 3)
    return (void)cl_fail("colorize: grey must be uint8 N×H×W, got %s %s",
                         cl_dtype_name(grey->dtype), cl_shape_str(grey, buf, sizeof buf)),
           NULL;
  int64_t n;
  if (check_classes("colorize", "colors", colors, &n))
    return NULL;
  if (n != grey->shape[0])
    return (void)cl_fail("colorize: %lld colours for %lld images", (long long)n,
                         (long long)grey->shape[0]),
           NULL;
  if (!(beta >= 0 && beta <= 1))
    return (void)cl_fail("colorize: beta must be in [0, 1], got %g", beta), NULL;
  if (stream < 1 || stream >= (UINT64_C(1) << 31) || n > INT64_C(0xffffffff))
    return (void)cl_fail("colorize: stream must be in 1..2^31-1 and N < 2^32 (got stream %llu)",
                         (unsigned long long)stream),
           NULL;
  int64_t h = grey->shape[1], w = grey->shape[2], hw = h * w;
  int64_t shape[4] = {n, 3, h, w};
  cl_tensor *g = contiguous_of(grey);
  if (!g)
    return NULL;
  cl_tensor *out = cl_empty(CL_UINT8, 4, shape);
  if (!out) {
    cl_release(g);
    return NULL;
  }
  int64_t *k = cl_alloc((size_t)(n ? n : 1) * sizeof *k);
  if (!k) {
    cl_release(g);
    cl_release(out);
    return NULL;
  }
  for (int64_t i = 0; i < n; i++)
    k[i] = (int64_t)cl_item_at(colors, i);
  const uint8_t *src = cl_data(g);
  uint8_t *dst = cl_data(out);
  double grey_of[256]; /* the same correctly rounded v / 255 as computing it each time */
  for (int v = 0; v < 256; v++)
    grey_of[v] = v / 255.0;
  CL_PARALLEL_FOR
  for (int64_t i = 0; i < n; i++) {
    cl_rng r;
    cl_rng_seed(&r, seed, stream << 32 | (uint64_t)i);
    const double *pal = cl_cmnist_palette[k[i]];
    const uint8_t *gi = src + i * hw;
    uint8_t *o = dst + i * 3 * hw;
    /* Blocks of pixels: draw the block's noise in pixel order, then fill each channel with a
     * loop the compiler can vectorise; a zero palette entry is a plain zero fill. */
    enum { BLOCK = 256 };
    double u[BLOCK];
    for (int64_t p0 = 0; p0 < hw; p0 += BLOCK) {
      int64_t m = hw - p0 < BLOCK ? hw - p0 : BLOCK;
      for (int64_t j = 0; j < m; j++)
        u[j] = beta * (double)noise_uniform(&r);
      for (int c = 0; c < 3; c++) {
        uint8_t *oc = o + c * hw + p0;
        const double pc = pal[c];
        if (pc == 0) {
          memset(oc, 0, (size_t)m);
          continue;
        }
        for (int64_t j = 0; j < m; j++) {
          double gv = grey_of[gi[p0 + j]];
          /* SPEC §2 as written; x >= 0, so truncating x·255 + 0.5 is round-half-up, and
           * cheaper than floor(), a libm call on baseline x86-64. */
          double x = gv * pc + (1 - gv) * pc * u[j];
          oc[j] = (uint8_t)(255.0 * x + 0.5);
        }
      }
    }
  }
  cl_dealloc(k, (size_t)(n ? n : 1) * sizeof *k);
  cl_release(g);
  return out;
}

cl_tensor *cl_to_grey(const cl_tensor *images) {
  char buf[96];
  int nd = images->ndim;
  if ((nd != 3 && nd != 4) || images->shape[nd - 3] != 3 ||
      (images->dtype != CL_FLOAT32 && images->dtype != CL_UINT8))
    return (void)cl_fail("to_grey: expected float32 or uint8 images N×3×H×W or 3×H×W, got %s %s",
                         cl_dtype_name(images->dtype), cl_shape_str(images, buf, sizeof buf)),
           NULL;
  cl_tensor *x = contiguous_of(images);
  if (!x)
    return NULL;
  cl_tensor *out = cl_empty(images->dtype, nd, images->shape);
  if (!out) {
    cl_release(x);
    return NULL;
  }
  int64_t n = nd == 4 ? images->shape[0] : 1, hw = images->shape[nd - 2] * images->shape[nd - 1];
  if (images->dtype == CL_FLOAT32) {
    const float *s = cl_data(x);
    float *d = cl_data(out);
    CL_PARALLEL_FOR
    for (int64_t i = 0; i < n; i++)
      for (int64_t p = 0; p < hw; p++) {
        const float *q = s + i * 3 * hw + p;
        float m = ((q[0] + q[hw]) + q[2 * hw]) / 3.0f;
        d[i * 3 * hw + p] = d[i * 3 * hw + hw + p] = d[i * 3 * hw + 2 * hw + p] = m;
      }
  } else {
    const uint8_t *s = cl_data(x);
    uint8_t *d = cl_data(out);
    CL_PARALLEL_FOR
    for (int64_t i = 0; i < n; i++)
      for (int64_t p = 0; p < hw; p++) {
        const uint8_t *q = s + i * 3 * hw + p;
        /* round(sum / 3) in integers: (2·sum + 3) / 6 */
        uint8_t m = (uint8_t)((2 * (q[0] + q[hw] + q[2 * hw]) + 3) / 6);
        d[i * 3 * hw + p] = d[i * 3 * hw + hw + p] = d[i * 3 * hw + 2 * hw + p] = m;
      }
  }
  cl_release(x);
  return out;
}

cl_tensor *cl_gather_batch(const cl_tensor *images, const cl_tensor *index) {
  char buf[96];
  if (images->ndim < 1 || (images->dtype != CL_UINT8 && images->dtype != CL_FLOAT32))
    return (void)cl_fail("gather_batch: expected uint8 or float32 images N×..., got %s %s",
                         cl_dtype_name(images->dtype), cl_shape_str(images, buf, sizeof buf)),
           NULL;
  if (index->ndim != 1 || index->dtype != CL_INT64)
    return (void)cl_fail("gather_batch: index must be a 1-D int64 tensor, got %s %s",
                         cl_dtype_name(index->dtype), cl_shape_str(index, buf, sizeof buf)),
           NULL;
  int64_t b = index->shape[0], n = images->shape[0];
  for (int64_t j = 0; j < b; j++) {
    int64_t v = (int64_t)cl_item_at(index, j);
    if (v < 0 || v >= n)
      return (void)cl_fail("gather_batch: index[%lld] = %lld out of range for %lld images "
                           "(positions count from 0)",
                           (long long)j, (long long)v, (long long)n),
             NULL;
  }
  int64_t shape[CL_MAX_DIMS];
  memcpy(shape, images->shape, sizeof(int64_t) * (size_t)images->ndim);
  shape[0] = b;
  cl_tensor *x = contiguous_of(images);
  if (!x)
    return NULL;
  cl_tensor *out = cl_empty(CL_FLOAT32, images->ndim, shape);
  if (!out) {
    cl_release(x);
    return NULL;
  }
  int64_t per = n ? cl_numel(x) / n : 0;
  float *d = cl_f32(out);
  const int64_t *ix = cl_data(index);
  int64_t istride = index->stride[0];
  if (images->dtype == CL_UINT8) {
    /* The network reads byte / 255 as one correctly rounded float division. */
    float lut[256];
    for (int v = 0; v < 256; v++)
      lut[v] = (float)v / 255.0f;
    const uint8_t *s = cl_data(x);
    CL_PARALLEL_FOR
    for (int64_t j = 0; j < b; j++) {
      const uint8_t *src = s + ix[j * istride] * per;
      float *o = d + j * per;
      for (int64_t p = 0; p < per; p++)
        o[p] = lut[src[p]];
    }
  } else {
    const float *s = cl_data(x);
    CL_PARALLEL_FOR
    for (int64_t j = 0; j < b; j++)
      memcpy(d + j * per, s + ix[j * istride] * per, (size_t)per * sizeof(float));
  }
  cl_release(x);
  return out;
}

/* ---------------------------------------------------------------- synthetic digits */

/* Seven-segment digits: segment endpoints in a 1×2 box (x right, y down). */
static const float seg_xy[7][4] = {
    {0, 0, 1, 0}, /* a: top */
    {1, 0, 1, 1}, /* b: top right */
    {1, 1, 1, 2}, /* c: bottom right */
    {0, 2, 1, 2}, /* d: bottom */
    {0, 1, 0, 2}, /* e: bottom left */
    {0, 0, 0, 1}, /* f: top left */
    {0, 1, 1, 1}, /* g: middle */
};
/* Bit s set: segment s lit. */
static const unsigned char seg_of_digit[10] = {
    0x3f, /* 0: abcdef */
    0x06, /* 1: bc */
    0x5b, /* 2: abdeg */
    0x4f, /* 3: abcdg */
    0x66, /* 4: bcfg */
    0x6d, /* 5: acdfg */
    0x7d, /* 6: acdefg */
    0x07, /* 7: abc */
    0x7f, /* 8: all */
    0x6f, /* 9: abcdfg */
};

#define SYNTH_STREAM UINT64_C(0x53594e) /* "SYN" */

static float seg_dist(float px, float py, const float *s) {
  float dx = s[2] - s[0], dy = s[3] - s[1];
  float len2 = dx * dx + dy * dy;
  float t = len2 > 0 ? ((px - s[0]) * dx + (py - s[1]) * dy) / len2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  float ex = s[0] + t * dx - px, ey = s[1] + t * dy - py;
  return sqrtf(ex * ex + ey * ey);
}

int cl_synth_digits(int64_t n, uint64_t seed, cl_tensor **images, cl_tensor **labels) {
  *images = *labels = NULL;
  if (n < 0 || n > INT64_C(0xffffffff))
    return cl_fail("synth_digits: n must be in 0..2^32-1, got %lld", (long long)n);
  int64_t shape[3] = {n, 28, 28};
  cl_tensor *im = cl_zeros(CL_UINT8, 3, shape);
  cl_tensor *lab = cl_empty(CL_INT64, 1, &n);
  if (!im || !lab) {
    cl_release(im);
    cl_release(lab);
    return -1;
  }
  int64_t *y = cl_data(lab);
  cl_rng r;
  cl_rng_seed(&r, seed, SYNTH_STREAM);
  for (int64_t i = 0; i < n; i++)
    y[i] = i % 10;
  for (int64_t i = n - 1; i > 0; i--) { /* balanced classes in random order */
    int64_t j = cl_rng_below(&r, (uint32_t)(i + 1)), tmp = y[i];
    y[i] = y[j];
    y[j] = tmp;
  }
  uint8_t *px = cl_data(im);
  CL_PARALLEL_FOR
  for (int64_t i = 0; i < n; i++) {
    cl_rng q;
    cl_rng_seed(&q, seed, SYNTH_STREAM << 32 | (uint64_t)i);
    /* Sizes keep the digit inside MNIST's central 20×20 box, so the border stays dark. */
    float w = 5.0f + 3.0f * cl_rng_uniform_f(&q);       /* box width in pixels */
    float h = w * (1.0f + 0.3f * cl_rng_uniform_f(&q)); /* half the box height */
    h = h > 8.0f ? 8.0f : h;
    float slant = 0.5f * (cl_rng_uniform_f(&q) - 0.5f);      /* x shift per unit of y */
    float cx = 14.0f + 4.0f * (cl_rng_uniform_f(&q) - 0.5f); /* centre */
    float cy = 14.0f + 2.0f * (cl_rng_uniform_f(&q) - 0.5f);
    float thick = 0.9f + 1.0f * cl_rng_uniform_f(&q); /* stroke half-width */
    float peak = 200.0f + 55.0f * cl_rng_uniform_f(&q);
    float segs[7][4];
    int ns = 0;
    for (int s = 0; s < 7; s++) {
      if (!(seg_of_digit[y[i]] >> s & 1))
        continue;
      for (int e = 0; e < 2; e++) {
        float sx = seg_xy[s][2 * e] - 0.5f, sy = seg_xy[s][2 * e + 1] - 1.0f;
        float jx = 0.6f * (cl_rng_uniform_f(&q) - 0.5f), jy = 0.6f * (cl_rng_uniform_f(&q) - 0.5f);
        segs[ns][2 * e] = cx + sx * w - slant * sy * h + jx;
        segs[ns][2 * e + 1] = cy + sy * h + jy;
      }
      ns++;
    }
    uint8_t *o = px + i * 784;
    for (int yy = 0; yy < 28; yy++)
      for (int xx = 0; xx < 28; xx++) {
        float d = 1e9f;
        for (int s = 0; s < ns; s++) {
          float ds = seg_dist((float)xx, (float)yy, segs[s]);
          d = ds < d ? ds : d;
        }
        float v = thick + 0.5f - d; /* anti-aliased edge one pixel wide */
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        o[yy * 28 + xx] = (uint8_t)(v * peak + 0.5f);
      }
  }
  *images = im;
  *labels = lab;
  return 0;
}

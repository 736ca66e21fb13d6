/* nn.c — the neural-network ops: conv2d, max_pool2d, linear, dropout, cross_entropy, mse_loss
 * and bilinear upsampling. Each op's forward kernel sits right above its backward rule, with
 * the shapes and the maths in a comment, so the two can be checked against each other.
 *
 * Threads: kernels split their work over samples (or over N·C planes) into chunks that depend
 * on the work only (chunk_plan); every output element is computed within one chunk in a fixed
 * order, and the only cross-chunk sums (conv2d's weight and bias gradients) add per-chunk
 * partials in chunk order. Results therefore repeat bit for bit, for any thread count.
 * Scratch memory is allocated before a region (one piece per thread), never inside: the
 * allocator's counters are not thread-safe. */
#include "gemm/kernels.h"
#include "ops/conv.h"
#include "core/tensor_impl.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef CNNLAB_CBLAS
#include <cblas.h>
#endif

/* Below this many floating-point operations a parallel region costs more than it saves. */
#define PARALLEL_MIN_WORK 200000.0

static int available_threads(void) {
  int n = cl_get_threads(); /* also applies the configured count to OpenMP before any region */
#ifdef _OPENMP
  int omp = omp_get_max_threads();
  if (omp < n)
    n = omp;
#endif
  return n > 0 ? n : 1;
}

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* Batch-parallel kernels cut their samples (or planes) into chunks whose size depends on the
 * amount of work only, never on the thread count. Threads take chunks as they come free (a
 * dynamic schedule), and whatever is summed across samples (weight and bias gradients) is
 * summed per chunk, then chunk after chunk in order. Hence:
 *  - a result is the same bits whatever the thread count, run after run;
 *  - a thread that the OS takes away on a shared machine holds the others up by one chunk,
 *    not by its whole share (with fixed halves, 2 threads on the busy 2-core test machine ran
 *    slower than 1).
 * Scratch is one piece per thread, allocated before the region (the allocator is not
 * thread-safe) and found by thread number. */
typedef struct {
  int64_t items, size, count; /* size items per chunk (the last may be short), count chunks */
  int threads;                /* threads to run them (1: no parallel region) */
} chunking;

static chunking chunk_plan(int64_t items, int64_t max_chunks, int64_t align, double work) {
  chunking c;
  c.items = items;
  c.size = round_up(items > max_chunks ? (items + max_chunks - 1) / max_chunks : 1, align);
  c.count = (items + c.size - 1) / c.size;
  int threads = available_threads();
  c.threads = threads < 2 || work < PARALLEL_MIN_WORK || c.count < 2
                  ? 1
                  : (int)(c.count < threads ? c.count : threads);
  return c;
}

static void chunk_range(const chunking *c, int64_t i, int64_t *lo, int64_t *hi) {
  *lo = i * c->size;
  *hi = *lo + c->size < c->items ? *lo + c->size : c->items;
}

static int thread_number(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* Releases up to four tensors; keeps the error paths short. */
static void release4(cl_tensor *a, cl_tensor *b, cl_tensor *c, cl_tensor *d) {
  cl_release(a);
  cl_release(b);
  cl_release(c);
  cl_release(d);
}

/* ================================================================ conv2d */

typedef struct {
  int64_t n, c, h, w; /* input */
  int64_t o, k;       /* output channels, kernel size */
  int64_t oh, ow;     /* output plane */
  int64_t ckk, plane; /* rows of the column matrix (C·K·K), output pixels per map (OH·OW) */
  int stride, pad;
} conv_shape;

static void conv_shape_from(conv_shape *s, const cl_tensor *x, const cl_tensor *w, int stride,
                            int padding) {
  s->n = x->shape[0], s->c = x->shape[1], s->h = x->shape[2], s->w = x->shape[3];
  s->o = w->shape[0], s->k = w->shape[2];
  s->stride = stride, s->pad = padding;
  s->oh = (s->h + 2 * (int64_t)padding - s->k) / stride + 1;
  s->ow = (s->w + 2 * (int64_t)padding - s->k) / stride + 1;
  s->ckk = s->c * s->k * s->k;
  s->plane = s->oh * s->ow;
}

static int conv_check(const char *fn, const cl_tensor *x, const cl_tensor *w, const cl_tensor *b,
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
  conv_shape_from(s, x, w, stride, padding);
  if (!fits_int(s->o) || !fits_int(s->ckk) || !fits_int(s->plane) || !fits_int(s->h * s->w) ||
      !fits_int(s->o * s->ckk) || !fits_int(s->ckk * s->plane))
    return cl_fail("%s: layer too large (matrices beyond 2^31 elements are not supported): "
                   "input %s, weight %s",
                   fn, cl_shape_str(x, bx, sizeof bx), cl_shape_str(w, bw, sizeof bw));
  return 0;
}

/* Output columns [*lo, *hi) whose input column ox·S + off falls inside [0, width). */
static void valid_columns(int64_t off, int64_t stride, int64_t width, int64_t out_width,
                          int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t h = width - 1 - off < 0 ? 0 : (width - 1 - off) / stride + 1;
  if (h > out_width)
    h = out_width;
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
}

/* A "same" convolution (stride 1, 2·P = K − 1: the output plane is the input plane) is what
 * CNNs mostly use, and its column matrix has a shape that general code wastes time on: row
 * (c, ki, kj) is the input plane c shifted by d = (ki − P)·W + (kj − P), with the output
 * columns whose input column fell off the left or right edge set to zero. One long copy per row
 * instead of one short one per output row (im2col below). */
static int conv_is_same(const conv_shape *s) {
  return s->stride == 1 && s->oh == s->h && s->ow == s->w;
}

/* Same convolutions whose plane is small enough run on the shifted-row scheme below with
 * their scratch on the stack: a plane with margins (SAME_MAX_PADDED floats) and one mask per
 * kernel column (SAME_MAX_MASKS words). The seed network's planes (28×28 and smaller) fit;
 * bigger planes take the general path, whose short per-row copies cost little beside rows
 * that long. */
#define SAME_MAX_PADDED 4096
#define SAME_MAX_MASKS 4096

/* Zeros on either side of a plane, enough for every shift d of a same convolution. */
static int64_t same_margin(const conv_shape *s) { return s->pad * s->w + s->pad; }

static int same_fits(const conv_shape *s) {
  return conv_is_same(s) && s->plane + 2 * same_margin(s) <= SAME_MAX_PADDED &&
         s->k * s->plane <= SAME_MAX_MASKS;
}

/* masks[kj·P + q]: all ones where output pixel q's source column q % W + kj − pad exists, zero
 * where the shift by kj − pad wrapped it round the plane's left or right edge. */
static void same_masks(const conv_shape *s, uint32_t *masks) {
  for (int64_t kj = 0; kj < s->k; kj++)
    for (int64_t oy = 0; oy < s->h; oy++)
      for (int64_t ox = 0; ox < s->w; ox++) {
        int64_t ix = ox + kj - s->pad;
        masks[kj * s->plane + oy * s->w + ox] = ix >= 0 && ix < s->w ? ~0u : 0u;
      }
}

/* out[q] = src[q] where mask[q] is set, +0 where it is clear: bits, so the vectoriser sees an
 * AND, and a NaN or infinity under a clear mask leaves nothing behind. */
CL_VECTOR_CLONES
static void copy_masked(const float *restrict src, const uint32_t *restrict mask,
                        float *restrict out, int64_t n) {
  for (int64_t q = 0; q < n; q++) {
    uint32_t bits;
    memcpy(&bits, &src[q], sizeof bits);
    bits &= mask[q];
    memcpy(&out[q], &bits, sizeof bits);
  }
}

CL_VECTOR_CLONES
static void add_masked(const float *restrict src, const uint32_t *restrict mask,
                       float *restrict acc, int64_t n) {
  for (int64_t q = 0; q < n; q++) {
    uint32_t bits;
    memcpy(&bits, &src[q], sizeof bits);
    bits &= mask[q];
    float v;
    memcpy(&v, &bits, sizeof v);
    acc[q] += v;
  }
}

/* x one sample C×H×W → col (C·K·K)×(OH·OW), row r at col + r·ld (ld >= OH·OW):
 *   col[(c·K + ki)·K + kj, oy·OW + ox] = x[c, oy·S − P + ki, ox·S − P + kj]  (0 outside).
 * A same convolution's row (c, ki, kj) is plane c shifted by d = (ki − P)·W + (kj − P): with the
 * plane copied between zero margins, every row is one masked copy of `plane` floats — the
 * margins supply the rows above and below, the mask clears the columns that wrapped round an
 * edge. No branch and no library call per row (short rows made those cost more than the copy). */
static void im2col(const conv_shape *s, const float *restrict x, float *restrict col, int64_t ld) {
  int64_t K = s->k, S = s->stride, P = s->pad, W = s->w, OW = s->ow;
  if (same_fits(s)) {
    float padded[SAME_MAX_PADDED];
    uint32_t masks[SAME_MAX_MASKS];
    int64_t M = same_margin(s), plane = s->plane;
    same_masks(s, masks);
    memset(padded, 0, sizeof(float) * (size_t)M);
    memset(padded + M + plane, 0, sizeof(float) * (size_t)M);
    for (int64_t c = 0; c < s->c; c++) {
      memcpy(padded + M, x + c * plane, sizeof(float) * (size_t)plane);
      for (int64_t ki = 0; ki < K; ki++)
        for (int64_t kj = 0; kj < K; kj++)
          copy_masked(padded + M + (ki - P) * W + (kj - P), masks + kj * plane,
                      col + ((c * K + ki) * K + kj) * ld, plane);
    }
    return;
  }
  for (int64_t c = 0; c < s->c; c++)
    for (int64_t ki = 0; ki < K; ki++)
      for (int64_t kj = 0; kj < K; kj++) {
        float *row = col + ((c * K + ki) * K + kj) * ld;
        int64_t lo, hi;
        valid_columns(kj - P, S, W, OW, &lo, &hi);
        for (int64_t oy = 0; oy < s->oh; oy++) {
          float *dst = row + oy * OW;
          int64_t iy = oy * S - P + ki;
          if (iy < 0 || iy >= s->h) {
            for (int64_t ox = 0; ox < OW; ox++)
              dst[ox] = 0;
            continue;
          }
          const float *src = x + (c * s->h + iy) * W + (kj - P);
          for (int64_t ox = 0; ox < lo; ox++)
            dst[ox] = 0;
          for (int64_t ox = lo; ox < hi; ox++)
            dst[ox] = src[ox * S];
          for (int64_t ox = hi; ox < OW; ox++)
            dst[ox] = 0;
        }
      }
}

/* The adjoint of im2col: dx[c, iy, ix] = Σ dcol[row, pixel] over every (row, pixel) that
 * im2col read from (iy, ix), rows of dcol ld apart. Overwrites the sample's dx (C×H×W). A same
 * convolution's row adds back as one shifted run, masked (+0 where im2col wrote a zero), into
 * a plane with margins. Each element sums its terms in (c, ki, kj) order on either path. */
static void col2im(const conv_shape *s, const float *restrict dcol, int64_t ld,
                   float *restrict dx) {
  int64_t K = s->k, S = s->stride, P = s->pad, W = s->w, OW = s->ow;
  if (same_fits(s)) { /* im2col's scheme backwards: masked rows added into a padded plane */
    float acc[SAME_MAX_PADDED];
    uint32_t masks[SAME_MAX_MASKS];
    int64_t M = same_margin(s), plane = s->plane;
    same_masks(s, masks);
    for (int64_t c = 0; c < s->c; c++) {
      memset(acc, 0, sizeof(float) * (size_t)(plane + 2 * M));
      for (int64_t ki = 0; ki < K; ki++)
        for (int64_t kj = 0; kj < K; kj++)
          add_masked(dcol + ((c * K + ki) * K + kj) * ld, masks + kj * plane,
                     acc + M + (ki - P) * W + (kj - P), plane);
      memcpy(dx + c * plane, acc + M, sizeof(float) * (size_t)plane);
    }
    return;
  }
  for (int64_t i = 0; i < s->c * s->h * W; i++)
    dx[i] = 0;
  for (int64_t c = 0; c < s->c; c++)
    for (int64_t ki = 0; ki < K; ki++)
      for (int64_t kj = 0; kj < K; kj++) {
        const float *row = dcol + ((c * K + ki) * K + kj) * ld;
        int64_t lo, hi;
        valid_columns(kj - P, S, W, OW, &lo, &hi);
        for (int64_t oy = 0; oy < s->oh; oy++) {
          int64_t iy = oy * S - P + ki;
          if (iy < 0 || iy >= s->h)
            continue;
          const float *src = row + oy * OW;
          float *dst = dx + (c * s->h + iy) * W + (kj - P);
          for (int64_t ox = lo; ox < hi; ox++)
            dst[ox * S] += src[ox];
        }
      }
}

/* Sum of a row in float, 16 interleaved partial sums (the vectoriser's lanes, written out so
 * that the order is fixed by the code, not by the compiler), then added up in double. */
static double row_sum(const float *restrict v, int64_t n) {
  float part[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++)
      part[l] += v[i + l];
  double sum = 0;
  for (int l = 0; l < 16; l++)
    sum += part[l];
  for (; i < n; i++)
    sum += v[i];
  return sum;
}

/* ---------------------------------------------------------------- on the micro-kernel */

/* Convolutions run straight on the micro-kernel of kernels.h, with no GEMM library between,
 * as three matrix products per group of samples (col = im2col):
 *   forward  y_n   (O × P)     = W (O × CKK) · col(x_n) (CKK × P)  + b
 *   weights  dWᵀ   (CKK × O)   = Σ_n col(x_n) (CKK × P) · g_nᵀ (P × O)
 *   input    dcol  (CKK × P)   = Wᵀ (CKK × O) · g_n (O × P),  dx_n = col2im(dcol)
 * W (or Wᵀ) is packed once per call into the kernel's A slivers and shared by all threads.
 * The B operand is read in place: the column matrix (forward), or a copy of g's planes
 * (input), of a group of samples side by side — several when planes are small, so that the
 * kernel's NR-wide tiles rarely straddle two samples and rarely run short. Only dWᵀ packs
 * both operands, because its sum runs over pixels, which are the rows of neither.
 * (For dx, a convolution of g by the flipped weights avoids col2im but needs an im2col of g,
 * twice the data for the seed network: measured slower, 68 against 88 GFLOP/s on conv3.)
 * Forward writes the bias into y first (a sequential stream, which the memory system takes
 * much better than the kernel's tile-by-tile first touch), and the kernel adds into y.
 * Threads take chunks of the batch; dW sums each chunk's partial in chunk order (chunk_plan). */

/* Whether convolutions run on the micro-kernel (the default) or as im2col + cl_gemm, per
 * sample, as CNNLAB_CONV=gemm (or the tests, through cl_conv_use_microkernel) ask — to compare
 * the two, and to keep both paths tested. */
static int conv_mode = -1; /* 1: the usual choice; 2: micro-kernel always; 0: im2col + GEMM
                              always; -1: read CNNLAB_CONV ("gemm" for 0, else 1) */

int cl_conv_use_microkernel(int on) {
  int was = conv_mode;
  conv_mode = on;
  return was;
}

/* With OpenBLAS at hand, a convolution with a short column matrix (few input channels, like
 * conv1's 3·3·3 = 27 rows) runs faster through it: the micro-kernel's tiles then do little
 * work per store, and dW spends more time packing than multiplying. Measured on the seed
 * network, 1 thread, GFLOP/s per CPU-second: conv1 forward 54 → 57, backward 36 → 47 through
 * OpenBLAS; conv2 and conv3 lose 4-12% that way instead (docs/performance.md). */
#define MICROKERNEL_MIN_CKK 64

static int conv_on_microkernel(const conv_shape *s) {
  if (conv_mode < 0) {
    const char *env = getenv("CNNLAB_CONV");
    conv_mode = !(env && !strcmp(env, "gemm"));
  }
#ifdef CNNLAB_CBLAS
  if (s->ckk < MICROKERNEL_MIN_CKK && conv_mode != 2)
    return 0;
#else
  (void)s;
#endif
  return conv_mode != 0;
}

/* Column-buffer budget per group, in floats: it and the packed W share the core's L2. */
#define COL_BUDGET (96 * 1024)

/* Samples per column buffer for a convolution of shape s. */
static int64_t conv_group(const conv_shape *s) {
  int64_t g = COL_BUDGET / (s->ckk * s->plane);
  return g < 1 ? 1 : g;
}

/* Floats of the column buffer of one group: CKK rows of ld = group·P rounded to NR. */
static int64_t conv_col_len(const conv_shape *s, int64_t group, int nr) {
  return s->ckk * round_up(group * s->plane, nr);
}

/* y (samples lo..hi, N×O×P) = conv(x) on the micro-kernel; apack = W packed (O rows, CKK
 * deep), bias may be NULL. col holds conv_col_len floats. */
static void mk_forward(const conv_shape *s, const cl_microkernel *uk, const float *apack,
                       const float *bias, const float *x, float *y, int64_t lo, int64_t hi,
                       float *col) {
  int64_t P = s->plane, O = s->o, ckk = s->ckk, in_per = s->c * s->h * s->w;
  int64_t group = conv_group(s), mr = uk->mr, nr = uk->nr;
  int64_t ld = round_up(group * P, nr);
  float tile[CL_KERNEL_MAX_MR * CL_KERNEL_MAX_NR];
  for (int64_t n0 = lo; n0 < hi; n0 += group) {
    int64_t g = hi - n0 < group ? hi - n0 : group, cols = g * P, used = round_up(cols, nr);
    for (int64_t i = 0; i < g; i++)
      im2col(s, x + (n0 + i) * in_per, col + i * P, ld);
    for (int64_t r = 0; r < ckk; r++) /* the last tile reads up to `used`: zeros there */
      for (int64_t q = cols; q < used; q++)
        col[r * ld + q] = 0;
    for (int64_t i = 0; i < g * O; i++) {
      float *row = y + (n0 * O + i) * P, v = bias ? bias[i % O] : 0.0f;
      for (int64_t q = 0; q < P; q++)
        row[q] = v;
    }
    for (int64_t o0 = 0; o0 < O; o0 += mr) {
      int64_t rows = O - o0 < mr ? O - o0 : mr;
      const float *a = apack + o0 * ckk;
      for (int64_t j0 = 0; j0 < cols; j0 += nr) {
        int64_t n = j0 / P, p = j0 % P;
        float *yt = y + ((n0 + n) * O + o0) * P + p;
        if (rows == mr && p + nr <= P) { /* the whole tile lies in one sample's planes */
          uk->run((int)ckk, a, col + j0, (int)ld, yt, (int)P, 1);
          continue;
        }
        /* short on rows, or straddling samples: through a tile, column by column */
        uk->run((int)ckk, a, col + j0, (int)ld, tile, (int)nr, 0);
        int64_t width = cols - j0 < nr ? cols - j0 : nr;
        for (int64_t j = 0; j < width; j++, p++) {
          if (p == P)
            p = 0, n++;
          float *yc = y + ((n0 + n) * O + o0) * P + p;
          for (int64_t i = 0; i < rows; i++)
            yc[i * P] += tile[i * nr + j];
        }
      }
    }
  }
}

/* dx for samples lo..hi: per group, dcol (CKK × group·P, rows ld apart) = Wᵀ · g, with
 * apack = Wᵀ packed (CKK rows, O deep) and g's planes copied side by side into gbuf
 * (O × ld) as the kernel's B; then col2im folds each sample's columns back into dx.
 * dcol has CKK rounded up to MR rows, so that every tile is whole. */
static void mk_input_grad(const conv_shape *s, const cl_microkernel *uk, const float *apack,
                          const float *g, float *dx, int64_t lo, int64_t hi, float *gbuf,
                          float *dcol) {
  int64_t P = s->plane, O = s->o, ckk = s->ckk, in_per = s->c * s->h * s->w;
  int64_t group = conv_group(s), mr = uk->mr, nr = uk->nr;
  int64_t ld = round_up(group * P, nr);
  for (int64_t n0 = lo; n0 < hi; n0 += group) {
    int64_t gs = hi - n0 < group ? hi - n0 : group, cols = gs * P, used = round_up(cols, nr);
    for (int64_t o = 0; o < O; o++) {
      float *row = gbuf + o * ld;
      for (int64_t i = 0; i < gs; i++)
        memcpy(row + i * P, g + ((n0 + i) * O + o) * P, sizeof(float) * (size_t)P);
      for (int64_t q = cols; q < used; q++) /* the last tile reads up to `used` */
        row[q] = 0;
    }
    for (int64_t r0 = 0; r0 < ckk; r0 += mr)
      for (int64_t j0 = 0; j0 < cols; j0 += nr)
        uk->run((int)O, apack + r0 * O, gbuf + j0, (int)ld, dcol + r0 * ld + j0, (int)ld, 0);
    for (int64_t i = 0; i < gs; i++)
      col2im(s, dcol + i * P, ld, dx + (n0 + i) * in_per);
  }
}

/* g (samples × rows × P, rows of P floats) → NR-wide slivers of its transpose:
 * out[s][(n·P + q)·NR + j] = g[n, s·NR + j, q], zero for rows past `rows`; adds each row's
 * sum to row_sums[row] when given (the bias gradient, while g passes through). Two steps, each of
 * which the vectoriser handles well: groups of 8 rows interleaved into tmp (8·P floats), then
 * the 8-float pieces copied to their places in the sliver — one step writing 8 floats every
 * NR was 4× slower. */
static void pack_transposed(const float *g, int64_t samples, int64_t rows, int64_t P, int nr,
                            float *out, float *tmp, double *row_sums) {
  int64_t k = samples * P;
  for (int64_t r0 = 0; r0 < round_up(rows, nr); r0 += 8) {
    float *sliver = out + r0 / nr * nr * k;
    int64_t at = r0 % nr; /* where these 8 go in each row of the sliver */
    for (int64_t n = 0; n < samples; n++) {
      for (int64_t i = 0; row_sums && i < 8 && r0 + i < rows; i++) /* while the rows are near */
        row_sums[r0 + i] += row_sum(g + (n * rows + r0 + i) * P, P);
      if (r0 + 8 <= rows) {
        const float *src = g + (n * rows + r0) * P;
        for (int64_t q = 0; q < P; q++)
          for (int i = 0; i < 8; i++)
            tmp[q * 8 + i] = src[i * P + q];
      } else { /* the last rows, padded with zeros */
        for (int64_t q = 0; q < P; q++)
          for (int i = 0; i < 8; i++)
            tmp[q * 8 + i] = r0 + i < rows ? g[(n * rows + r0 + i) * P + q] : 0.0f;
      }
      float *dst = sliver + n * P * nr + at;
      for (int64_t q = 0; q < P; q++)
        memcpy(dst + q * nr, tmp + q * 8, 8 * sizeof(float));
    }
  }
}

/* dWᵀ (rows CKK rounded up to MR, ld = O rounded up to NR) += Σ over samples lo..hi of
 * col(x_n) · g_nᵀ, and db[o] += Σ g[n, o, ·] when db is given. Scratch: col (conv_col_len), apack
 * (CKK↑MR × group·P), bpack (O↑NR × group·P). A group's samples make one long contraction. */
static void mk_weight_grad(const conv_shape *s, const cl_microkernel *uk, const float *x,
                           const float *g, int64_t lo, int64_t hi, float *col, float *apack,
                           float *bpack, float *dwt, double *db) {
  int64_t P = s->plane, O = s->o, ckk = s->ckk, in_per = s->c * s->h * s->w;
  int64_t group = conv_group(s), mr = uk->mr, nr = uk->nr;
  int64_t ld = round_up(group * P, nr), ldo = round_up(O, nr);
  for (int64_t n0 = lo; n0 < hi; n0 += group) {
    int64_t gs = hi - n0 < group ? hi - n0 : group, k = gs * P;
    for (int64_t i = 0; i < gs; i++)
      im2col(s, x + (n0 + i) * in_per, col + i * P, ld);
    /* A: column matrix rows in MR-tall slivers, contraction (pixel) outermost */
    cl_pack_a(col, (int)ld, 0, (int)ckk, (int)k, 1.0f, (int)mr, apack);
    /* B: g_nᵀ in NR-wide slivers, bpack[sliver][q][j] = g[n0 + q/P, o0 + j, q%P] */
    pack_transposed(g + n0 * O * P, gs, O, P, (int)nr, bpack, col, db);
    for (int64_t r0 = 0; r0 < ckk; r0 += mr)
      for (int64_t o0 = 0; o0 < ldo; o0 += nr)
        uk->run((int)k, apack + r0 * k, bpack + o0 * k, (int)nr, dwt + r0 * ldo + o0, (int)ldo, 1);
  }
}

/* ---------------------------------------------------------------- im2col + GEMM, per sample */

/* Forward of one sample, as a matrix product on its column matrix:
 *   x_n C×H×W, w O×(C·K·K), b O → y_n O×(OH·OW) = w · im2col(x_n) + b (b broadcast along rows).
 * The bias is written first and the product added to it (beta = 1), one pass over y_n. */
static void conv_forward_sample(const conv_shape *s, const float *x, const float *w, const float *b,
                                float *y, float *col) {
  for (int64_t o = 0; o < s->o; o++) {
    float *row = y + o * s->plane, v = b ? b[o] : 0.0f;
    for (int64_t p = 0; p < s->plane; p++)
      row[p] = v;
  }
  im2col(s, x, col, s->plane);
  cl_gemm(0, 0, (int)s->o, (int)s->plane, (int)s->ckk, 1.0f, w, (int)s->ckk, col, (int)s->plane,
          1.0f, y, (int)s->plane);
}

/* Backward of one sample, given g_n = dL/dy_n (O×P):
 *   dw     += g_n · im2col(x_n)ᵀ          (O×P · P×CKK → O×CKK)
 *   dx_n    = col2im(wᵀ · g_n)            (CKK×O · O×P → CKK×P, folded back to C×H×W) */
static void conv_backward_sample(const conv_shape *s, const float *x, const float *w,
                                 const float *g, float *dw, float *dx, float *col) {
  float *dcol = col; /* the two are never needed at once */
  if (dw) {
    im2col(s, x, col, s->plane);
    cl_gemm(0, 1, (int)s->o, (int)s->ckk, (int)s->plane, 1.0f, g, (int)s->plane, col, (int)s->plane,
            1.0f, dw, (int)s->ckk);
  }
  if (dx) {
    cl_gemm(1, 0, (int)s->ckk, (int)s->plane, (int)s->o, 1.0f, w, (int)s->ckk, g, (int)s->plane,
            0.0f, dcol, (int)s->plane);
    col2im(s, dcol, s->plane, dx);
  }
}

/* ---------------------------------------------------------------- conv2d op */

/* Backward, given g = dL/dy (N×O×OH×OW):
 *   db[o] = Σ_n Σ_p g[n, o, p];  dw and dx as above (on the micro-kernel, or im2col + GEMM).
 *   Samples go in chunks (see chunk_plan): db and dw are summed per chunk,
 *   then over chunks in order. */
#define BACKWARD_CHUNKS 8 /* each holds a dw partial: more would cost memory traffic */

static int conv2d_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->saved[0], *w = node->saved[1];
  conv_shape s;
  conv_shape_from(&s, x, w, (int)node->iarg[0], (int)node->iarg[1]);
  int want_x = node->inputs[0] != NULL, want_w = node->inputs[1] != NULL;
  int want_b = node->inputs[2] != NULL;
  const float *pg = cl_f32(g), *px = cl_f32(x), *pw = cl_f32(w);
  int64_t out_per = s.o * s.plane, in_per = s.c * s.h * s.w;
  if (!want_x && !want_w && !want_b)
    return 0;

  const cl_microkernel *uk = cl_microkernel_get();
  int64_t mr = uk->mr, nr = uk->nr;
  int mk = conv_on_microkernel(&s);
  int64_t group = conv_group(&s);
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

#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(ch.threads) if (ch.threads > 1)
#endif
  for (int64_t i = 0; i < ch.count; i++) {
    float *cp = scratch + per_chunk * i, *dpart = cp + dbl;
    double *dbpart = want_b ? (double *)cp : NULL;
    float *col = thread_space + per_thread * thread_number(), *ap = col + wcol;
    float *bp = ap + round_up(s.ckk, mr) * group * s.plane, *xs = ap + wpack;
    int64_t lo, hi;
    chunk_range(&ch, i, &lo, &hi);
    for (int64_t o = 0; want_b && o < s.o; o++)
      dbpart[o] = 0;
    if (want_w) {
      for (int64_t q = 0; q < part; q++)
        dpart[q] = 0;
      if (mk)
        mk_weight_grad(&s, uk, px, pg, lo, hi, col, ap, bp, dpart, dbpart);
      else
        for (int64_t n = lo; n < hi; n++)
          conv_backward_sample(&s, px + n * in_per, pw, pg + n * out_per, dpart, NULL, col);
    }
    if (want_b && !(want_w && mk)) /* not summed on the way through dW's packing */
      for (int64_t n = lo; n < hi; n++)
        for (int64_t o = 0; o < s.o; o++)
          dbpart[o] += row_sum(pg + (n * s.o + o) * s.plane, s.plane);
    if (want_x) {
      if (mk)
        mk_input_grad(&s, uk, wtpack, pg, pdx, lo, hi, xs, xs + s.o * ld);
      else
        for (int64_t n = lo; n < hi; n++)
          conv_backward_sample(&s, NULL, pw, pg + n * out_per, NULL, pdx + n * in_per, xs);
    }
  }
  /* the chunks' partials, in chunk order (dWᵀ back to O×CKK on the way) */
  for (int64_t o = 0; want_b && o < s.o; o++) {
    double sum = 0;
    for (int64_t i = 0; i < ch.count; i++)
      sum += ((const double *)(scratch + per_chunk * i))[o];
    cl_f32(db)[o] = (float)sum;
  }
  if (want_w) {
    int64_t ldo = round_up(s.o, nr);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(ch.threads) if (ch.threads > 1)
#endif
    for (int64_t o = 0; o < s.o; o++)
      for (int64_t r = 0; r < s.ckk; r++) {
        float sum = 0;
        for (int64_t i = 0; i < ch.count; i++) {
          const float *dpart = scratch + per_chunk * i + dbl;
          sum += mk ? dpart[r * ldo + o] : dpart[o * s.ckk + r];
        }
        pdw[o * s.ckk + r] = sum;
      }
  }
  cl_dealloc(scratch, scratch_bytes);
  gin[0] = dx;
  gin[1] = dw;
  gin[2] = db;
  return 0;
}

cl_tensor *cl_conv2d(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding) {
  conv_shape s;
  if (conv_check("conv2d", x, w, b, stride, padding, &s))
    return NULL;
  const cl_microkernel *uk = cl_microkernel_get();
  int mk = conv_on_microkernel(&s);
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *bc = wc && b ? cl_float_contiguous(b) : NULL;
  int64_t shape[4] = {s.n, s.o, s.oh, s.ow};
  cl_tensor *out = wc && (bc || !b) ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  /* samples in chunks (chunk_plan); scratch: a column buffer per thread, W packed (shared) */
  int64_t group = mk ? conv_group(&s) : 1;
  chunking ch =
      chunk_plan(s.n, 32, group, 2.0 * (double)s.n * (double)s.o * (double)s.ckk * (double)s.plane);
  int64_t col_len = round_up(mk ? conv_col_len(&s, group, uk->nr) : s.ckk * s.plane, 16);
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
      mk_forward(&s, uk, wpack, pb, px, py, lo, hi, col);
    else
      for (int64_t n = lo; n < hi; n++)
        conv_forward_sample(&s, px + n * in_per, pw, pb, py + n * out_per, col);
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
  if (conv_check("conv2d", x, w, b, stride, padding, &s))
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
  if (conv_check("conv2d_reference_backward", x, w, NULL, stride, padding, &s))
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

/* ================================================================ max_pool2d */

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

static int pool_plane_dispatch(const float *plane, int64_t w, int k, int stride, int64_t oh,
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
    if (pool_plane_dispatch(plane, w, k, stride, oh, ow, yp, wp, hm, hc))
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
  int64_t hm_len = ((oh - 1) * stride + kernel) * ow;
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

/* ================================================================ linear */

/* x N×I, w O×I, b O → y N×O:  y = x·wᵀ + b,  y[n,o] = b[o] + Σ_i x[n,i]·w[o,i].
 * Backward: dx = g·w (N×O · O×I), dw = gᵀ·x (O×N · N×I), db[o] = Σ_n g[n,o]. */
static int linear_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->saved[0], *w = node->saved[1];
  int n = (int)x->shape[0], in = (int)x->shape[1], out = (int)w->shape[0];
  const float *pg = cl_f32(g);
  if (node->inputs[0]) {
    if (!(gin[0] = cl_empty(CL_FLOAT32, 2, x->shape)))
      return -1;
    cl_gemm(0, 0, n, in, out, 1.0f, pg, out, cl_f32(w), in, 0.0f, cl_f32(gin[0]), in);
  }
  if (node->inputs[1]) {
    if (!(gin[1] = cl_empty(CL_FLOAT32, 2, w->shape)))
      return -1;
    cl_gemm(1, 0, out, in, n, 1.0f, pg, out, cl_f32(x), in, 0.0f, cl_f32(gin[1]), in);
  }
  if (node->inputs[2]) {
    int64_t o64 = out;
    if (!(gin[2] = cl_empty(CL_FLOAT32, 1, &o64)))
      return -1;
    float *pdb = cl_f32(gin[2]);
    for (int o = 0; o < out; o++) {
      double sum = 0;
      for (int r = 0; r < n; r++)
        sum += pg[(int64_t)r * out + o];
      pdb[o] = (float)sum;
    }
  }
  return 0;
}

cl_tensor *cl_linear(cl_tensor *x, cl_tensor *w, cl_tensor *b) {
  char bx[96], bw[96];
  if (cl_check_float("linear", "input", x) || cl_check_float("linear", "weight", w) ||
      (b && cl_check_float("linear", "bias", b)))
    return NULL;
  if (w->ndim != 2)
    return (void)cl_fail("linear: weight must be O×I, got %s", cl_shape_str(w, bw, sizeof bw)),
           NULL;
  if (x->ndim != 2 || x->shape[1] != w->shape[1])
    return (void)cl_fail("linear: input must be N×I with I = %lld (the weight's I), got %s",
                         (long long)w->shape[1], cl_shape_str(x, bx, sizeof bx)),
           NULL;
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return (void)cl_fail("linear: bias must be 1-D of size O = %lld (the weight's O), got %s",
                         (long long)w->shape[0], cl_shape_str(b, bx, sizeof bx)),
           NULL;
  int64_t n = x->shape[0], in = x->shape[1], out_f = w->shape[0];
  if (!fits_int(n) || !fits_int(in) || !fits_int(out_f))
    return (void)cl_fail("linear: sizes beyond 2^31 are not supported, input %s, weight %s",
                         cl_shape_str(x, bx, sizeof bx), cl_shape_str(w, bw, sizeof bw)),
           NULL;
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *wc = xc ? cl_float_contiguous(w) : NULL;
  cl_tensor *bc = wc && b ? cl_float_contiguous(b) : NULL;
  int64_t shape[2] = {n, out_f};
  cl_tensor *out = wc && (bc || !b) ? cl_empty(CL_FLOAT32, 2, shape) : NULL;
  if (!out) {
    release4(xc, wc, bc, NULL);
    return NULL;
  }
  float *py = cl_f32(out);
  const float *pb = bc ? cl_f32(bc) : NULL;
  for (int64_t r = 0; r < n; r++)
    for (int64_t o = 0; o < out_f; o++)
      py[r * out_f + o] = pb ? pb[o] : 0.0f;
  cl_gemm(0, 1, (int)n, (int)out_f, (int)in, 1.0f, cl_f32(xc), (int)in, cl_f32(wc), (int)in, 1.0f,
          py, (int)out_f);
  cl_tensor *inputs[3] = {x, w, b}, *saved[2] = {xc, wc};
  cl_record(&out, NULL, "linear", linear_backward, 3, inputs, 2, saved);
  release4(xc, wc, bc, NULL);
  return out;
}

/* ================================================================ dropout */

/* Training: keep[i] = (u_i ≥ p) with u_i ~ U[0,1) drawn from r in row-major order;
 *   y[i] = keep[i] ? x[i]/(1 − p) : 0      (inverted dropout: evaluation needs no rescaling)
 * Backward: dx[i] = keep[i] ? g[i]/(1 − p) : 0, from the mask kept in the node.
 * Evaluation or p = 0: y is a new view of x whose gradient passes straight through. */
static int dropout_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  const uint8_t *keep = node->ctx;
  float scale = (float)node->farg[0];
  cl_tensor *dx = cl_empty(CL_FLOAT32, g->ndim, g->shape);
  if (!dx)
    return -1;
  const float *pg = cl_f32(g);
  float *pdx = cl_f32(dx);
  for (int64_t i = 0, n = cl_numel(g); i < n; i++)
    pdx[i] = keep[i] ? pg[i] * scale : 0.0f;
  gin[0] = dx;
  return 0;
}

static int pass_through_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  (void)node;
  cl_retain(g);
  gin[0] = g;
  return 0;
}

cl_tensor *cl_dropout(cl_tensor *x, double p, int training, cl_rng *r) {
  if (cl_check_float("dropout", "input", x))
    return NULL;
  if (!(p >= 0 && p < 1))
    return (void)cl_fail("dropout: p must be in [0, 1), got %g", p), NULL;
  if (!training || p == 0) {
    cl_tensor *view = cl_detach(x);
    if (!view)
      return NULL;
    cl_record(&view, NULL, "dropout", pass_through_backward, 1, &x, 0, NULL);
    return view;
  }
  if (!r)
    r = cl_default_rng();
  int64_t n = cl_numel(x);
  cl_tensor *xc = cl_float_contiguous(x);
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, x->ndim, x->shape) : NULL;
  uint8_t *keep = out ? cl_alloc((size_t)n) : NULL;
  if (!keep) {
    release4(xc, out, NULL, NULL);
    return NULL;
  }
  float scale = (float)(1.0 / (1.0 - p));
  const float *px = cl_f32(xc);
  float *py = cl_f32(out);
  for (int64_t i = 0; i < n; i++) {
    keep[i] = cl_rng_uniform_f(r) >= p;
    py[i] = keep[i] ? px[i] * scale : 0.0f;
  }
  cl_release(xc);
  cl_node *node;
  if (cl_record(&out, &node, "dropout", dropout_backward, 1, &x, 0, NULL)) {
    cl_dealloc(keep, (size_t)n);
    return NULL;
  }
  if (node) {
    node->ctx = keep;
    node->ctx_bytes = (size_t)n;
    node->farg[0] = scale;
  } else {
    cl_dealloc(keep, (size_t)n);
  }
  return out;
}

/* ================================================================ losses */

static int check_reduction(const char *fn, cl_reduction r) {
  if (r != CL_REDUCE_NONE && r != CL_REDUCE_MEAN && r != CL_REDUCE_SUM)
    return cl_fail("%s: reduction must be none, mean or sum, got code %d", fn, (int)r);
  return 0;
}

/* The factor that the incoming gradient of a reduced loss carries to sample/element i. */
static double reduced_grad(const float *g, cl_reduction r, int64_t i, int64_t count) {
  if (r == CL_REDUCE_NONE)
    return g[i];
  return r == CL_REDUCE_MEAN ? (double)g[0] / (double)count : (double)g[0];
}

/* logits z N×K, targets t (N, int64 in [0, K)), weights w (N) or none:
 *   lse_i = log Σ_k exp(z[i,k])   (computed as m + log Σ exp(z − m), m = max_k z[i,k])
 *   l_i   = w_i · (lse_i − z[i, t_i])
 *   none → l (N);  sum → Σ_i l_i;  mean → Σ_i l_i / N — also with weights: these are
 *   per-sample weights, so the mean stays over samples (not over Σw as PyTorch's per-class
 *   weights do), and a weight of 2 counts a sample twice.
 * Backward, with c_i the incoming factor (g_i, g or g/N):
 *   dz[i,k] = c_i · w_i · (softmax(z_i)_k − [k = t_i]),   dw_i = c_i · (lse_i − z[i, t_i]).
 * The node keeps lse and the targets (copied: later writes to the targets cannot matter). */
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
  int64_t n = z->shape[0], k = z->shape[1];
  const float *pz = cl_f32(z), *pw = w ? cl_f32(w) : NULL, *pg = cl_f32(g);
  if (node->inputs[0]) {
    cl_tensor *dz = cl_empty(CL_FLOAT32, 2, z->shape);
    if (!dz)
      return -1;
    float *pdz = cl_f32(dz);
    for (int64_t i = 0; i < n; i++) {
      double c = reduced_grad(pg, red, i, n) * (pw ? pw[i] : 1.0);
      for (int64_t j = 0; j < k; j++) {
        double soft = exp((double)pz[i * k + j] - rows[i].lse);
        pdz[i * k + j] = (float)(c * (soft - (j == rows[i].target ? 1.0 : 0.0)));
      }
    }
    gin[0] = dz;
  }
  if (node->inputs[1]) {
    cl_tensor *dw = cl_empty(CL_FLOAT32, 1, &n);
    if (!dw)
      return -1;
    float *pdw = cl_f32(dw);
    for (int64_t i = 0; i < n; i++)
      pdw[i] =
          (float)(reduced_grad(pg, red, i, n) * (rows[i].lse - (double)pz[i * k + rows[i].target]));
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
  if (weights && (weights->ndim != 1 || weights->shape[0] != n))
    return (void)cl_fail("%s: weight must be 1-D of size N = %lld (one per sample), got %s", fn,
                         (long long)n, cl_shape_str(weights, b2, sizeof b2)),
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
  double total = 0;
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
    double loss = (rows[i].lse - zi[rows[i].target]) * (pw ? pw[i] : 1.0);
    if (reduction == CL_REDUCE_NONE)
      py[i] = (float)loss;
    total += loss;
  }
  if (reduction != CL_REDUCE_NONE)
    py[0] = (float)(reduction == CL_REDUCE_MEAN ? total / (double)n : total);
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

/* ================================================================ upsample_bilinear */

/* Where output row (or column) i reads from, align_corners = false as in PyTorch:
 * src = (i + 0.5)·in/out − 0.5, clamped below at 0; i0 = ⌊src⌋, i1 = i0 + 1 unless i0 is the
 * last row; weights (1 − λ, λ) with λ = src − i0. Computed in double: PyTorch rounds src to
 * float on the way, so the two agree to about one float rounding of the source coordinate. */
typedef struct {
  int64_t i0, i1;
  double l0, l1;
} lerp_tap;

static void lerp_taps(int64_t in, int64_t out, lerp_tap *taps) {
  double scale = (double)in / (double)out;
  for (int64_t i = 0; i < out; i++) {
    double src = scale * ((double)i + 0.5) - 0.5;
    if (src < 0)
      src = 0;
    int64_t i0 = (int64_t)src;
    if (i0 > in - 1)
      i0 = in - 1;
    double lambda = src - (double)i0;
    if (lambda > 1)
      lambda = 1;
    taps[i].i0 = i0;
    taps[i].i1 = i0 < in - 1 ? i0 + 1 : i0;
    taps[i].l1 = lambda;
    taps[i].l0 = 1.0 - lambda;
  }
}

/* x N×C×H×W → y N×C×OH×OW: with row taps (h0, h1, α0, α1) and column taps (w0, w1, β0, β1),
 *   y[i,j] = α0·(β0·x[h0,w0] + β1·x[h0,w1]) + α1·(β0·x[h1,w0] + β1·x[h1,w1]).
 * Backward spreads g[i,j] over the same four pixels with weights α·β. */
static int upsample_backward(cl_node *node, cl_tensor *g, cl_tensor **gin) {
  cl_tensor *x = node->inputs[0];
  int64_t h = x->shape[2], w = x->shape[3], oh = g->shape[2], ow = g->shape[3];
  int64_t planes = x->shape[0] * x->shape[1];
  size_t taps_bytes = sizeof(lerp_tap) * (size_t)(oh + ow);
  lerp_tap *rows = cl_alloc(taps_bytes);
  cl_tensor *dx = rows ? cl_zeros(CL_FLOAT32, 4, x->shape) : NULL;
  if (!dx) {
    cl_dealloc(rows, taps_bytes);
    return -1;
  }
  lerp_tap *cols = rows + oh;
  lerp_taps(h, oh, rows);
  lerp_taps(w, ow, cols);
  const float *pg = cl_f32(g);
  float *pdx = cl_f32(dx);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)planes * oh * ow * 4 > PARALLEL_MIN_WORK)
#endif
  for (int64_t pl = 0; pl < planes; pl++) {
    float *d = pdx + pl * h * w;
    const float *gp = pg + pl * oh * ow;
    for (int64_t i = 0; i < oh; i++) {
      const lerp_tap *r = rows + i;
      for (int64_t j = 0; j < ow; j++) {
        const lerp_tap *c = cols + j;
        double gv = gp[i * ow + j];
        d[r->i0 * w + c->i0] += (float)(r->l0 * c->l0 * gv);
        d[r->i0 * w + c->i1] += (float)(r->l0 * c->l1 * gv);
        d[r->i1 * w + c->i0] += (float)(r->l1 * c->l0 * gv);
        d[r->i1 * w + c->i1] += (float)(r->l1 * c->l1 * gv);
      }
    }
  }
  cl_dealloc(rows, taps_bytes);
  gin[0] = dx;
  return 0;
}

cl_tensor *cl_upsample_bilinear(cl_tensor *x, int out_h, int out_w) {
  char bx[96];
  if (cl_check_float("upsample_bilinear", "input", x))
    return NULL;
  if (x->ndim != 4 || x->shape[2] < 1 || x->shape[3] < 1)
    return (void)cl_fail("upsample_bilinear: input must be N×C×H×W with H, W >= 1, got %s",
                         cl_shape_str(x, bx, sizeof bx)),
           NULL;
  if (out_h < 1 || out_w < 1)
    return (void)cl_fail("upsample_bilinear: output size must be >= 1×1, got %d×%d", out_h, out_w),
           NULL;
  int64_t h = x->shape[2], w = x->shape[3], planes = x->shape[0] * x->shape[1];
  int64_t shape[4] = {x->shape[0], x->shape[1], out_h, out_w};
  size_t taps_bytes = sizeof(lerp_tap) * (size_t)(out_h + out_w);
  lerp_tap *rows = cl_alloc(taps_bytes);
  cl_tensor *xc = rows ? cl_float_contiguous(x) : NULL;
  cl_tensor *out = xc ? cl_empty(CL_FLOAT32, 4, shape) : NULL;
  if (!out) {
    cl_release(xc);
    cl_dealloc(rows, taps_bytes);
    return NULL;
  }
  lerp_tap *cols = rows + out_h;
  lerp_taps(h, out_h, rows);
  lerp_taps(w, out_w, cols);
  const float *px = cl_f32(xc);
  float *py = cl_f32(out);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((double)planes * out_h * out_w * 4 >                 \
                                              PARALLEL_MIN_WORK)
#endif
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *s = px + pl * h * w;
    float *y = py + pl * out_h * out_w;
    for (int64_t i = 0; i < out_h; i++) {
      const lerp_tap *r = rows + i;
      for (int64_t j = 0; j < out_w; j++) {
        const lerp_tap *c = cols + j;
        double top = c->l0 * s[r->i0 * w + c->i0] + c->l1 * s[r->i0 * w + c->i1];
        double bottom = c->l0 * s[r->i1 * w + c->i0] + c->l1 * s[r->i1 * w + c->i1];
        y[i * out_w + j] = (float)(r->l0 * top + r->l1 * bottom);
      }
    }
  }
  cl_dealloc(rows, taps_bytes);
  cl_release(xc);
  cl_record(&out, NULL, "upsample_bilinear", upsample_backward, 1, &x, 0, NULL);
  return out;
}

/* conv_lower.c — how conv2d becomes matrix products: the column matrix (im2col) and its
 * adjoint (col2im), the three products on the micro-kernel of gemm/kernels.h, and the older
 * im2col + cl_gemm per sample that CNNLAB_CONV=gemm (and the tests) still run. conv.c owns the
 * op itself. */
#include "ops/conv.h"
#include "ops/conv_impl.h"

#include <stdlib.h>
#include <string.h>

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
 * kernel column (SAME_MAX_MASKS words, 32 KB). The seed network's planes (28×28 and smaller)
 * fit, and so do simple_convnet's 7×7 kernels on 28×28 (7 · 784 masks): on the general path
 * its im2col took 12% of a training step, and the step ran 15-20% slower. Bigger planes take
 * the general path, whose short per-row copies cost little beside rows that long. */
#define SAME_MAX_PADDED 4096
#define SAME_MAX_MASKS 8192

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
                              always; -1: read CNNLAB_CONV ("gemm" for 0, "microkernel" for 2,
                              else 1) */

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

int cl_conv_on_microkernel(const conv_shape *s) {
  if (conv_mode < 0) {
    const char *env = getenv("CNNLAB_CONV");
    conv_mode = !env ? 1 : !strcmp(env, "gemm") ? 0 : !strcmp(env, "microkernel") ? 2 : 1;
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
int64_t cl_conv_group(const conv_shape *s) {
  int64_t g = COL_BUDGET / (s->ckk * s->plane);
  return g < 1 ? 1 : g;
}

/* Floats of the column buffer of one group: CKK rows of ld = group·P rounded to NR. */
int64_t cl_conv_col_len(const conv_shape *s, int64_t group, int nr) {
  return s->ckk * round_up(group * s->plane, nr);
}

/* Contractions deeper than this run in K blocks of about CL_GEMM_KC (the portable GEMM's)
 * — the forward's (K = CKK) and the input gradient's (K = O). Unblocked, the kernel reads a B
 * panel of K × NR floats per tile, rows ld apart, while all of W goes past it: for
 * simple_convnet's conv4 (64·7·7 = 3,136 rows of a 784-pixel column matrix) a 300 KB panel
 * spread over 10 MB and 1.6 MB of W per tile, out of L2: its forward ran at 28 GFLOP/s,
 * against 65 through OpenBLAS. In blocks of 256 rows the panel (24 KB) stays in L1 and the
 * block's W slivers in L2: 67-71 GFLOP/s. Read in place; packing each block's panel (as the
 * portable GEMM does) measured no faster on conv4 and 8% slower on 16 → 32 channels, where a
 * panel serves only 8 W slivers. A block's sum goes into y before the next block's begins, so
 * blocking changes the order of the sum: at or below this depth nothing changes (one pass, the
 * same bits as before). The seed network's deepest contraction is 576 (conv3, 64·3·3); 1024
 * because 784 (simple_convnet's conv2, 16·7·7) measured 2% faster unblocked and 1,568 (its
 * conv3) 2% faster blocked (1 thread, 16 images, medians). The blocks depend on K only,
 * never on the thread count. */
#define CONV_UNBLOCKED_MAX_K 1024

/* Blocks of a K-deep contraction: ⌈K / KC⌉ of them, of equal depth to within one (block b
 * covers [K·b/blocks, K·(b + 1)/blocks)), so that none is a short tail. */
static int64_t k_blocks(int64_t k) {
  return k <= CONV_UNBLOCKED_MAX_K ? 1 : (k + CL_GEMM_KC - 1) / CL_GEMM_KC;
}

/* y (samples lo..hi, (hi − lo)×O×P, y[0] is sample lo's first output) = conv(x) on the
 * micro-kernel; apack = W packed (O rows, CKK deep), bias may be NULL. col holds conv_col_len
 * floats. y is relative to lo so that the fused block (conv_block.c) can aim it at a scratch
 * buffer of one group. */
void cl_conv_mk_forward(const conv_shape *s, const cl_microkernel *uk, const float *apack,
                        const float *bias, const float *x, float *y, int64_t lo, int64_t hi,
                        float *col) {
  int64_t P = s->plane, O = s->o, ckk = s->ckk, in_per = s->c * s->h * s->w;
  int64_t group = cl_conv_group(s), mr = uk->mr, nr = uk->nr;
  int64_t ld = round_up(group * P, nr);
  int64_t blocks = k_blocks(ckk);
  float tile[CL_KERNEL_MAX_MR * CL_KERNEL_MAX_NR];
  for (int64_t n0 = lo; n0 < hi; n0 += group) {
    int64_t g = hi - n0 < group ? hi - n0 : group, cols = g * P, used = round_up(cols, nr);
    for (int64_t i = 0; i < g; i++)
      im2col(s, x + (n0 + i) * in_per, col + i * P, ld);
    for (int64_t r = 0; r < ckk; r++) /* the last tile reads up to `used`: zeros there */
      for (int64_t q = cols; q < used; q++)
        col[r * ld + q] = 0;
    for (int64_t i = 0; i < g * O; i++) {
      float *row = y + ((n0 - lo) * O + i) * P, v = bias ? bias[i % O] : 0.0f;
      for (int64_t q = 0; q < P; q++)
        row[q] = v;
    }
    /* K blocks outermost (one block unless CKK > CONV_UNBLOCKED_MAX_K), then column tiles:
     * a tile's B panel (the block's rows × NR) stays in L1/L2 while the packed W streams past
     * it; W outermost re-read the whole column buffer once per MR rows of W. */
    for (int64_t kb = 0; kb < blocks; kb++) {
    int64_t p0 = ckk * kb / blocks, kc = ckk * (kb + 1) / blocks - p0;
    for (int64_t j0 = 0; j0 < cols; j0 += nr) {
      const float *b = col + p0 * ld + j0; /* the block's rows of the tile's panel */
      for (int64_t o0 = 0; o0 < O; o0 += mr) {
        int64_t rows = O - o0 < mr ? O - o0 : mr;
        const float *a = apack + o0 * ckk + p0 * mr; /* rows p0.. of W's sliver */
        int64_t n = j0 / P, p = j0 % P;
        float *yt = y + ((n0 - lo + n) * O + o0) * P + p;
        if (rows == mr && p + nr <= P) { /* the whole tile lies in one sample's planes */
          uk->run((int)kc, a, b, (int)ld, yt, (int)P, 1);
          continue;
        }
        /* short on rows, or straddling samples: through a tile, column by column */
        uk->run((int)kc, a, b, (int)ld, tile, (int)nr, 0);
        int64_t width = cols - j0 < nr ? cols - j0 : nr;
        for (int64_t j = 0; j < width; j++, p++) {
          if (p == P)
            p = 0, n++;
          float *yc = y + ((n0 - lo + n) * O + o0) * P + p;
          for (int64_t i = 0; i < rows; i++)
            yc[i * P] += tile[i * nr + j];
        }
      }
    }
    }
  }
}

/* dx for samples lo..hi: per group, dcol (CKK × group·P, rows ld apart) = Wᵀ · g, with
 * apack = Wᵀ packed (CKK rows, O deep) and g's planes copied side by side into gbuf
 * (O × ld) as the kernel's B; then col2im folds each sample's columns back into dx.
 * dcol has CKK rounded up to MR rows, so that every tile is whole. */
void cl_conv_mk_input_grad(const conv_shape *s, const cl_microkernel *uk, const float *apack,
                           const float *g, float *dx, int64_t lo, int64_t hi, float *gbuf,
                           float *dcol) {
  int64_t P = s->plane, O = s->o, ckk = s->ckk, in_per = s->c * s->h * s->w;
  int64_t group = cl_conv_group(s), mr = uk->mr, nr = uk->nr;
  int64_t ld = round_up(group * P, nr), blocks = k_blocks(O);
  for (int64_t n0 = lo; n0 < hi; n0 += group) {
    int64_t gs = hi - n0 < group ? hi - n0 : group, cols = gs * P, used = round_up(cols, nr);
    for (int64_t o = 0; o < O; o++) {
      float *row = gbuf + o * ld;
      for (int64_t i = 0; i < gs; i++)
        memcpy(row + i * P, g + ((n0 + i) * O + o) * P, sizeof(float) * (size_t)P);
      for (int64_t q = cols; q < used; q++) /* the last tile reads up to `used` */
        row[q] = 0;
    }
    /* as the forward: K (here O) in blocks when deep, B's panel stays, Wᵀ streams; the
     * first block stores, the others add */
    for (int64_t kb = 0; kb < blocks; kb++) {
      int64_t p0 = O * kb / blocks, kc = O * (kb + 1) / blocks - p0;
      for (int64_t j0 = 0; j0 < cols; j0 += nr) {
        for (int64_t r0 = 0; r0 < ckk; r0 += mr)
          uk->run((int)kc, apack + r0 * O + p0 * mr, gbuf + p0 * ld + j0, (int)ld,
                  dcol + r0 * ld + j0, (int)ld, kb > 0);
      }
    }
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
        row_sums[r0 + i] += cl_conv_row_sum(g + (n * rows + r0 + i) * P, P);
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
void cl_conv_mk_weight_grad(const conv_shape *s, const cl_microkernel *uk, const float *x,
                            const float *g, int64_t lo, int64_t hi, float *col, float *apack,
                            float *bpack, float *dwt, double *db) {
  int64_t P = s->plane, O = s->o, ckk = s->ckk, in_per = s->c * s->h * s->w;
  int64_t group = cl_conv_group(s), mr = uk->mr, nr = uk->nr;
  int64_t ld = round_up(group * P, nr), ldo = round_up(O, nr);
  for (int64_t n0 = lo; n0 < hi; n0 += group) {
    int64_t gs = hi - n0 < group ? hi - n0 : group, k = gs * P;
    for (int64_t i = 0; i < gs; i++)
      im2col(s, x + (n0 + i) * in_per, col + i * P, ld);
    /* A: column matrix rows in MR-tall slivers, contraction (pixel) outermost */
    cl_pack_a(col, (int)ld, 0, (int)ckk, (int)k, 1.0f, (int)mr, apack);
    /* B: g_nᵀ in NR-wide slivers, bpack[sliver][q][j] = g[n0 + q/P, o0 + j, q%P] */
    pack_transposed(g + n0 * O * P, gs, O, P, (int)nr, bpack, col, db);
    for (int64_t o0 = 0; o0 < ldo; o0 += nr) /* g's sliver stays, the column matrix streams */
      for (int64_t r0 = 0; r0 < ckk; r0 += mr)
        uk->run((int)k, apack + r0 * k, bpack + o0 * k, (int)nr, dwt + r0 * ldo + o0, (int)ldo, 1);
  }
}

/* ---------------------------------------------------------------- im2col + GEMM, per sample */

/* Forward of one sample, as a matrix product on its column matrix:
 *   x_n C×H×W, w O×(C·K·K), b O → y_n O×(OH·OW) = w · im2col(x_n) + b (b broadcast along rows).
 * The bias is written first and the product added to it (beta = 1), one pass over y_n. */
void cl_conv_forward_sample(const conv_shape *s, const float *x, const float *w, const float *b,
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
void cl_conv_backward_sample(const conv_shape *s, const float *x, const float *w, const float *g,
                             float *dw, float *dx, float *col) {
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

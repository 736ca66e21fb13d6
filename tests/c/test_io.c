/* test_io.c — IDX, PNG, safetensors and Colored MNIST in C: round trips, every malformed-input
 * case with its message, the exact random derivation of docs/data.md, and timings on the real
 * MNIST when data/mnist has it (CNNLAB_MNIST_DIR overrides where to look). */
#include "cnnlab.h"

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static char tmpdir[256];


static const char *tpath(const char *name) { return check_path(tmpdir, name); }

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  fclose(f);
}

static void write_gz(const char *path, const void *data, size_t n) {
  gzFile g = gzopen(path, "wb");
  if (!g || gzwrite(g, data, (unsigned)n) != (int)n) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  gzclose(g);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)len + 1);
  *n = fread(p, 1, (size_t)len, f);
  fclose(f);
  return p;
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int tensors_equal(const cl_tensor *a, const cl_tensor *b) {
  if (!a || !b || a->dtype != b->dtype || !cl_same_shape(a, b))
    return 0;
  for (int64_t i = 0, n = cl_numel(a); i < n; i++) {
    double x = cl_item_at(a, i), y = cl_item_at(b, i);
    if (x != y && !(x != x && y != y))
      return 0;
  }
  return 1;
}

/* Fails (and says which) when the call succeeds or its message lacks `needle`. */
#define CHECK_NULL_MSG(expr, needle)                                                               \
  do {                                                                                             \
    cl_tensor *check_t_ = (expr);                                                                  \
    CHECK_FAILS(check_t_ != NULL, needle);                                                         \
    cl_release(check_t_);                                                                          \
  } while (0)

/* ---------------------------------------------------------------- IDX */

static void test_idx_roundtrip(void) {
  int64_t s3[3] = {5, 4, 3};
  cl_tensor *u8 = cl_empty(CL_UINT8, 3, s3);
  for (int i = 0; i < 60; i++)
    ((uint8_t *)cl_data(u8))[i] = (uint8_t)(i * 37 + 11);
  int64_t s1[1] = {7};
  int64_t iv[7] = {0, 1, -1, 2147483647, -2147483647 - 1, 123456, -42};
  cl_tensor *i64 = cl_from_data(CL_INT64, 1, s1, iv);
  int64_t s2[2] = {2, 3};
  float fv[6] = {0.f, -1.5f, 3.25f, 1e-30f, -INFINITY, 65504.f};
  cl_tensor *f32 = cl_from_data(CL_FLOAT32, 2, s2, fv);
  cl_tensor *scalar = cl_full(CL_FLOAT32, 0, NULL, 2.5);
  cl_tensor *ts[4] = {u8, i64, f32, scalar};
  for (int gz = 0; gz < 2; gz++)
    for (int k = 0; k < 4; k++) {
      const char *p = tpath(gz ? "rt.idx.gz" : "rt.idx");
      CHECK(cl_write_idx(p, ts[k], gz) == 0, "write_idx %d gz=%d: %s", k, gz, cl_last_error());
      cl_tensor *back = cl_read_idx(p);
      CHECK(back && tensors_equal(back, ts[k]), "idx round trip %d gz=%d: %s", k, gz,
            back ? "differs" : cl_last_error());
      cl_release(back);
    }
  /* gzip really compresses and raw is the exact IDX layout */
  CHECK(cl_write_idx(tpath("u8.idx"), u8, 0) == 0, "write raw");
  size_t n;
  unsigned char *raw = read_bytes(tpath("u8.idx"), &n);
  CHECK(n == 16 + 60 && raw[0] == 0 && raw[1] == 0 && raw[2] == 0x08 && raw[3] == 3 &&
            raw[7] == 5 && raw[11] == 4 && raw[15] == 3 && raw[16] == 11,
        "raw IDX layout");
  free(raw);
  CHECK(cl_write_idx(tpath("u8.idx.gz"), u8, 1) == 0, "write gz");
  raw = read_bytes(tpath("u8.idx.gz"), &n);
  CHECK(raw[0] == 0x1f && raw[1] == 0x8b, "gzip magic");
  free(raw);
  /* a non-contiguous view is written in its logical order */
  cl_tensor *tr = cl_transpose(f32, 0, 1);
  CHECK(cl_write_idx(tpath("tr.idx"), tr, 0) == 0, "write view");
  cl_tensor *back = cl_read_idx(tpath("tr.idx"));
  CHECK(back && tensors_equal(back, tr), "transposed round trip");
  cl_release(back);
  cl_release(tr);
  /* int64 beyond int32 is refused before a file appears */
  cl_tensor *big = cl_full(CL_INT64, 1, s1, 3e9);
  CHECK_FAILS(cl_write_idx(tpath("big.idx"), big, 0) == 0, "does not fit IDX's int32");
  CHECK(access(tpath("big.idx"), F_OK) != 0, "no file after a refused write");
  cl_release(big);
  CHECK_FAILS(cl_write_idx("/nonexistent-dir/x.idx", u8, 0) == 0, "cannot create");
  for (int k = 0; k < 4; k++)
    cl_release(ts[k]);
}

static void test_idx_types(void) {
  /* i8, i16, i32, f32, f64 in big-endian, each read as cnnlab's dtype (i8 as float32:
   * exact, and half the memory of int64; there is no int8 dtype) */
  unsigned char i8[] = {0, 0, 0x09, 1, 0, 0, 0, 3, 0x80, 0x7f, 0xff};
  write_bytes(tpath("i8.idx"), i8, sizeof i8);
  cl_tensor *t = cl_read_idx(tpath("i8.idx"));
  CHECK(t && t->dtype == CL_FLOAT32 && cl_item_at(t, 0) == -128 && cl_item_at(t, 1) == 127 &&
            cl_item_at(t, 2) == -1,
        "i8: %s", t ? "values" : cl_last_error());
  cl_release(t);
  unsigned char i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0x80, 0x00, 0x12, 0x34};
  write_gz(tpath("i16.idx.gz"), i16, sizeof i16);
  t = cl_read_idx(tpath("i16.idx.gz"));
  CHECK(t && t->dtype == CL_INT64 && cl_item_at(t, 0) == -32768 && cl_item_at(t, 1) == 0x1234,
        "i16 gz: %s", t ? "values" : cl_last_error());
  cl_release(t);
  unsigned char i32[] = {0, 0, 0x0C, 2,    0,    0,    0,    1,    0,    0,
                         0, 2, 0xff, 0xff, 0xff, 0xfe, 0x7f, 0xff, 0xff, 0xff};
  write_bytes(tpath("i32.idx"), i32, sizeof i32);
  t = cl_read_idx(tpath("i32.idx"));
  CHECK(t && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == 2 && cl_item_at(t, 0) == -2 &&
            cl_item_at(t, 1) == 2147483647,
        "i32: %s", t ? "values" : cl_last_error());
  cl_release(t);
  unsigned char f64[] = {0, 0, 0x0E, 1, 0, 0, 0, 1, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18};
  write_bytes(tpath("f64.idx"), f64, sizeof f64);
  t = cl_read_idx(tpath("f64.idx"));
  CHECK(t && t->dtype == CL_FLOAT32 && cl_item_at(t, 0) == (float)3.141592653589793,
        "f64 → float32: %s", t ? "value" : cl_last_error());
  cl_release(t);
  unsigned char f32[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0};
  write_bytes(tpath("f32.idx"), f32, sizeof f32);
  t = cl_read_idx(tpath("f32.idx"));
  CHECK(t && cl_item_at(t, 0) == 1.5, "f32: %s", t ? "value" : cl_last_error());
  cl_release(t);
  /* a zero-size dimension is a valid, empty file */
  unsigned char empty[] = {0, 0, 0x08, 2, 0, 0, 0, 0, 0, 0, 0, 28};
  write_bytes(tpath("empty.idx"), empty, sizeof empty);
  t = cl_read_idx(tpath("empty.idx"));
  CHECK(t && cl_numel(t) == 0 && t->shape[1] == 28, "empty IDX: %s", t ? "" : cl_last_error());
  cl_release(t);
}

static void test_idx_malformed(void) {
  CHECK_NULL_MSG(cl_read_idx(tpath("does-not-exist")), "cannot open");
  CHECK_NULL_MSG(cl_read_idx(tmpdir), "not a regular file");
  write_bytes(tpath("m0"), "", 0);
  CHECK_NULL_MSG(cl_read_idx(tpath("m0")), "truncated: expected a 4-byte header, got 0");
  unsigned char h3[] = {0, 0, 8};
  write_bytes(tpath("m1"), h3, 3);
  CHECK_NULL_MSG(cl_read_idx(tpath("m1")), "truncated: expected a 4-byte header, got 3");
  unsigned char magic[] = {1, 0, 8, 1, 0, 0, 0, 1, 5};
  write_bytes(tpath("m2"), magic, sizeof magic);
  CHECK_NULL_MSG(cl_read_idx(tpath("m2")), "not an IDX file: magic 01 00 08 01");
  unsigned char type[] = {0, 0, 0x0A, 1, 0, 0, 0, 1, 5};
  write_bytes(tpath("m3"), type, sizeof type);
  CHECK_NULL_MSG(cl_read_idx(tpath("m3")), "unknown element type 0x0a");
  unsigned char rank[] = {0, 0, 8, 9};
  write_bytes(tpath("m4"), rank, sizeof rank);
  CHECK_NULL_MSG(cl_read_idx(tpath("m4")), "9 dimensions, at most 8");
  unsigned char dims[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0};
  write_bytes(tpath("m5"), dims, sizeof dims);
  CHECK_NULL_MSG(cl_read_idx(tpath("m5")), "truncated: the header of 3 dimensions needs 16 bytes");
  unsigned char trunc[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3};
  write_bytes(tpath("m6"), trunc, sizeof trunc);
  CHECK_NULL_MSG(cl_read_idx(tpath("m6")), "m6: truncated: expected 16 bytes, got 15");
  unsigned char trail[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3};
  write_bytes(tpath("m7"), trail, sizeof trail);
  CHECK_NULL_MSG(cl_read_idx(tpath("m7")), "trailing data: expected 10 bytes, the file has 11");
  unsigned char huge[] = {0, 0, 8, 4, 0, 0x10, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0, 0};
  write_bytes(tpath("m8"), huge, sizeof huge);
  CHECK_NULL_MSG(cl_read_idx(tpath("m8")), "more than 2^40 elements");
  /* the same cases inside gzip */
  write_gz(tpath("g6.gz"), trunc, sizeof trunc);
  CHECK_NULL_MSG(cl_read_idx(tpath("g6.gz")),
                 "truncated: expected 16 bytes, got 15 (after decompression)");
  write_gz(tpath("g7.gz"), trail, sizeof trail);
  CHECK_NULL_MSG(cl_read_idx(tpath("g7.gz")), "trailing data after the 10 bytes");
  write_gz(tpath("g2.gz"), magic, sizeof magic);
  CHECK_NULL_MSG(cl_read_idx(tpath("g2.gz")), "not an IDX file");
  /* a small gzip file announcing gigabytes is refused before anything is allocated */
  unsigned char bomb[] = {0, 0, 8, 3, 0, 0, 0x40, 0, 0, 0, 0x40, 0, 0, 0, 0x10, 0, 1, 2, 3};
  write_gz(tpath("bomb.gz"), bomb, sizeof bomb);
  long before = cl_alloc_count();
  CHECK_NULL_MSG(cl_read_idx(tpath("bomb.gz")), "at most 2^31 accepted");
  CHECK(cl_alloc_count() == before, "no allocation for a forged gzip header");
  /* within the element limit, but more than the file's size can hold once in memory */
  unsigned char bomb2[] = {0, 0, 9, 1, 0x04, 0, 0, 0, 1, 2, 3};
  write_gz(tpath("bomb2.gz"), bomb2, sizeof bomb2);
  before = cl_alloc_count();
  CHECK_NULL_MSG(cl_read_idx(tpath("bomb2.gz")), "more than a");
  CHECK(cl_alloc_count() == before, "no allocation for a forged gzip header");
  /* a cut gzip stream and a corrupted one */
  int64_t s[2] = {100, 100};
  cl_tensor *t = cl_zeros(CL_UINT8, 2, s);
  for (int i = 0; i < 10000; i++)
    ((uint8_t *)cl_data(t))[i] = (uint8_t)((i * 7919) >> 3);
  cl_write_idx(tpath("ok.gz"), t, 1);
  size_t n;
  unsigned char *gz = read_bytes(tpath("ok.gz"), &n);
  write_bytes(tpath("cut.gz"), gz, n / 2);
  cl_tensor *r = cl_read_idx(tpath("cut.gz"));
  CHECK(!r && strstr(cl_last_error(), "cut.gz") &&
            (strstr(cl_last_error(), "truncated") || strstr(cl_last_error(), "corrupt gzip")),
        "cut gzip: %s", r ? "read" : cl_last_error());
  cl_release(r);
  gz[n / 2] ^= 0x55;
  gz[n / 2 + 1] ^= 0xaa;
  write_bytes(tpath("bad.gz"), gz, n);
  r = cl_read_idx(tpath("bad.gz"));
  CHECK(!r && strstr(cl_last_error(), "bad.gz"), "corrupted gzip: %s",
        r ? "read" : cl_last_error());
  cl_release(r);
  free(gz);
  cl_release(t);
}

/* ---------------------------------------------------------------- PNG */

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Appends one chunk (length, type, data, CRC) at out; returns its size. */
static size_t png_chunk(unsigned char *out, const char *type, const unsigned char *data,
                        uint32_t n) {
  put32(out, n);
  memcpy(out + 4, type, 4);
  if (n)
    memcpy(out + 8, data, n);
  put32(out + 8 + n, (uint32_t)crc32(0, out + 4, 4 + n));
  return 12 + n;
}

/* A PNG by hand, to cover what our writer never produces (16-bit, palette, alpha).
 * rows: h rows of `rowbytes` bytes each (filter type 0 is prepended here). */
static size_t make_png(unsigned char *out, int w, int h, int depth, int ctype,
                       const unsigned char *rows, size_t rowbytes, const unsigned char *plte,
                       int nplte) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(out, sig, 8);
  size_t pos = 8;
  unsigned char ihdr[13];
  put32(ihdr, (uint32_t)w);
  put32(ihdr + 4, (uint32_t)h);
  ihdr[8] = (unsigned char)depth, ihdr[9] = (unsigned char)ctype,
  ihdr[10] = ihdr[11] = ihdr[12] = 0;
  pos += png_chunk(out + pos, "IHDR", ihdr, 13);
  if (plte)
    pos += png_chunk(out + pos, "PLTE", plte, (uint32_t)(3 * nplte));
  unsigned char raw[4096], z[4096];
  size_t rn = 0;
  for (int y = 0; y < h; y++) {
    raw[rn++] = 0;
    memcpy(raw + rn, rows + (size_t)y * rowbytes, rowbytes);
    rn += rowbytes;
  }
  uLongf zn = sizeof z;
  compress(z, &zn, raw, rn);
  pos += png_chunk(out + pos, "IDAT", z, (uint32_t)zn);
  pos += png_chunk(out + pos, "IEND", NULL, 0);
  return pos;
}

static void test_png(void) {
  int64_t sg[3] = {1, 5, 7}, sc[3] = {3, 6, 4}, s2[2] = {3, 2};
  cl_tensor *g = cl_empty(CL_UINT8, 3, sg), *c = cl_empty(CL_UINT8, 3, sc);
  for (int i = 0; i < 35; i++)
    ((uint8_t *)cl_data(g))[i] = (uint8_t)(i * 7);
  for (int i = 0; i < 72; i++)
    ((uint8_t *)cl_data(c))[i] = (uint8_t)(255 - i * 3);
  CHECK(cl_write_png(tpath("g.png"), g) == 0, "write grey: %s", cl_last_error());
  cl_tensor *b = cl_read_png(tpath("g.png"));
  CHECK(b && tensors_equal(b, g), "grey PNG round trip: %s", b ? "differs" : cl_last_error());
  cl_release(b);
  CHECK(cl_write_png(tpath("c.png"), c) == 0, "write rgb: %s", cl_last_error());
  b = cl_read_png(tpath("c.png"));
  CHECK(b && tensors_equal(b, c), "RGB PNG round trip: %s", b ? "differs" : cl_last_error());
  cl_release(b);
  /* float: clipped to [0,1], ×255, rounded; 2-D means grey */
  float fv[6] = {-0.5f, 0.f, 0.5f, 1.0f / 255 * 3.49f, 1.0f, 7.f};
  cl_tensor *f = cl_from_data(CL_FLOAT32, 2, s2, fv);
  CHECK(cl_write_png(tpath("f.png"), f) == 0, "write float");
  b = cl_read_png(tpath("f.png"));
  CHECK(b && b->ndim == 3 && b->shape[0] == 1 && b->shape[1] == 3 && b->shape[2] == 2 &&
            cl_item_at(b, 0) == 0 && cl_item_at(b, 1) == 0 && cl_item_at(b, 2) == 128 &&
            cl_item_at(b, 3) == 3 && cl_item_at(b, 4) == 255 && cl_item_at(b, 5) == 255,
        "float PNG values");
  cl_release(b);
  cl_release(f);
  /* shapes and dtypes that are not images */
  int64_t s4[3] = {4, 2, 2};
  cl_tensor *four = cl_zeros(CL_UINT8, 3, s4);
  CHECK_FAILS(cl_write_png(tpath("x.png"), four) == 0, "expected an image H×W, 1×H×W or 3×H×W");
  cl_release(four);
  cl_tensor *l = cl_zeros(CL_INT64, 2, s2);
  CHECK_FAILS(cl_write_png(tpath("x.png"), l) == 0, "uint8 or float32");
  cl_release(l);
  CHECK(access(tpath("x.png"), F_OK) != 0, "refused writes leave no file");

  /* bad files: every one an error, never a crash */
  write_bytes(tpath("not.png"), "hello world, not a png", 22);
  CHECK_NULL_MSG(cl_read_png(tpath("not.png")), "not a PNG file");
  size_t n;
  unsigned char *bytes = read_bytes(tpath("c.png"), &n);
  /* any cut into the image data (a cut inside the final IEND chunk loses nothing, and libpng
   * accepts it, as image viewers do) */
  for (size_t cut = 8; cut < n - 12; cut += 3) {
    write_bytes(tpath("cut.png"), bytes, cut);
    cl_tensor *r = cl_read_png(tpath("cut.png"));
    CHECK(!r && strstr(cl_last_error(), "cut.png"), "PNG cut at %zu: %s", cut,
          r ? "read" : cl_last_error());
    cl_release(r);
  }
  for (size_t k = 8; k < n; k++) { /* one flipped byte anywhere: error or (CRC-free spots) ok */
    unsigned char *copy = malloc(n);
    memcpy(copy, bytes, n);
    copy[k] ^= 0x21;
    cl_tensor *r = cl_decode_png(copy, n, "flipped");
    CHECK(r || strstr(cl_last_error(), "png: flipped"), "flipped byte %zu: %s", k, cl_last_error());
    cl_release(r);
    free(copy);
  }
  free(bytes);
  CHECK_NULL_MSG(cl_read_png(tpath("missing.png")), "cannot open");

  /* what other programs write: 16-bit grey, palette, RGBA, grey+alpha */
  unsigned char png[8192];
  unsigned char g16[2 * 2 * 2] = {0x12, 0x34, 0xff, 0xff, 0x00, 0x00, 0x80, 0x7f};
  size_t pn = make_png(png, 2, 2, 16, 0, g16, 4, NULL, 0);
  cl_tensor *r = cl_decode_png(png, pn, "g16");
  CHECK(r && r->shape[0] == 1 && cl_item_at(r, 0) == 0x12 && cl_item_at(r, 1) == 255 &&
            cl_item_at(r, 2) == 0 && (cl_item_at(r, 3) == 0x80 || cl_item_at(r, 3) == 0x7f),
        "16-bit grey: %s", r ? "values" : cl_last_error());
  cl_release(r);
  unsigned char plte[9] = {255, 0, 0, 0, 255, 0, 10, 20, 30}, idx8[3] = {2, 0, 1};
  pn = make_png(png, 3, 1, 8, 3, idx8, 3, plte, 3);
  r = cl_decode_png(png, pn, "palette");
  CHECK(r && r->shape[0] == 3 && cl_item_at(r, 0) == 10 && cl_item_at(r, 1) == 255 &&
            cl_item_at(r, 3 + 0) == 20 && cl_item_at(r, 3 + 2) == 255 && cl_item_at(r, 6) == 30,
        "palette: %s", r ? "values" : cl_last_error());
  cl_release(r);
  unsigned char rgba[8] = {200, 100, 50, 255, 200, 100, 50, 0};
  pn = make_png(png, 2, 1, 8, 6, rgba, 8, NULL, 0);
  r = cl_decode_png(png, pn, "rgba");
  CHECK(r && r->shape[0] == 3 && cl_item_at(r, 0) == 200 && cl_item_at(r, 1) == 0 &&
            cl_item_at(r, 2) == 100 && cl_item_at(r, 5) == 0,
        "RGBA over black: %s", r ? "values" : cl_last_error());
  cl_release(r);
  unsigned char ga[4] = {77, 255, 99, 255};
  pn = make_png(png, 2, 1, 8, 4, ga, 4, NULL, 0);
  r = cl_decode_png(png, pn, "grey-alpha");
  CHECK(r && r->shape[0] == 1 && cl_item_at(r, 0) == 77 && cl_item_at(r, 1) == 99, "grey+alpha: %s",
        r ? "values" : cl_last_error());
  cl_release(r);
  /* a header announcing 2^31 × 2^31 pixels */
  pn = make_png(png, 0x7fffffff, 1, 8, 0, g16, 1, NULL, 0);
  CHECK_NULL_MSG(cl_decode_png(png, pn, "huge"), "png: huge");

  /* grids */
  int64_t si[4] = {5, 1, 4, 4};
  cl_tensor *ims = cl_empty(CL_UINT8, 4, si);
  for (int i = 0; i < 80; i++)
    ((uint8_t *)cl_data(ims))[i] = (uint8_t)(i / 16 * 40 + 10);
  cl_tensor *grid = cl_image_grid(ims, 3, 2, 2, 255);
  CHECK(grid && grid->ndim == 3 && grid->shape[0] == 1 && grid->shape[1] == 22 &&
            grid->shape[2] == 32,
        "grid 5 images × ncol 3, pad 2, scale 2 is 1×22×32");
  if (grid) {
    int64_t at[3] = {0, 0, 0};
    double v;
    cl_get(grid, at, &v);
    CHECK(v == 255, "grid border is pad_value");
    at[1] = 2, at[2] = 2 + 10 + 7; /* second image, last pixel of its first row */
    cl_get(grid, at, &v);
    CHECK(v == 50, "grid cell 1: %g", v);
    at[1] = 2 + 10 + 7, at[2] = 2 + 10 + 7; /* fifth image (row 1, col 1), bottom right */
    cl_get(grid, at, &v);
    CHECK(v == 170, "grid cell 4: %g", v);
    at[1] = 12 + 3, at[2] = 22 + 3; /* sixth cell is empty */
    cl_get(grid, at, &v);
    CHECK(v == 255, "empty cell is pad_value");
    CHECK(cl_write_png(tpath("grid.png"), grid) == 0, "grid to PNG");
  }
  cl_release(grid);
  grid = cl_image_grid(ims, 10, 0, 1, 0);
  CHECK(grid && grid->shape[1] == 4 && grid->shape[2] == 20, "grid ncol > N shrinks to N");
  cl_release(grid);
  CHECK_NULL_MSG(cl_image_grid(ims, 0, 1, 1, 0), "need ncol >= 1");
  cl_release(ims);
  cl_release(g);
  cl_release(c);
}

/* ---------------------------------------------------------------- safetensors */

static void test_safetensors_roundtrip(void) {
  int64_t s1[1] = {3}, s2[2] = {2, 2}, s4[4] = {2, 3, 2, 2};
  float fv[4] = {1.5f, -2.f, 0.f, 3.25f};
  int64_t iv[3] = {-1, INT64_MAX, 7};
  cl_tensor *f = cl_from_data(CL_FLOAT32, 2, s2, fv);
  cl_tensor *l = cl_from_data(CL_INT64, 1, s1, iv);
  cl_tensor *u = cl_empty(CL_UINT8, 4, s4);
  for (int i = 0; i < 24; i++)
    ((uint8_t *)cl_data(u))[i] = (uint8_t)(i * 11);
  cl_tensor *sc = cl_full(CL_FLOAT32, 0, NULL, 4);
  const char *names[4] = {"w", "labels", "images", "scalar"};
  cl_tensor *ts[4] = {f, l, u, sc};
  const char *mk[2] = {"format", "note"}, *mv[2] = {"pt", "quote \" back\\slash\n"};
  const char *p = tpath("a.safetensors");
  CHECK(cl_save_safetensors(p, 4, names, ts, 2, mk, mv) == 0, "save: %s", cl_last_error());
  cl_safetensors *st = cl_load_safetensors(p, 1);
  CHECK(st && st->count == 4 && st->nmeta == 2, "load: %s", st ? "counts" : cl_last_error());
  if (st) {
    for (int i = 0; i < 4; i++) {
      int found = 0;
      for (int j = 0; j < st->count; j++)
        if (!strcmp(st->entries[j].name, names[i])) {
          found = 1;
          CHECK(tensors_equal(st->entries[j].tensor, ts[i]), "tensor %s round trip", names[i]);
        }
      CHECK(found, "tensor %s found", names[i]);
    }
    /* data order: 8-byte dtypes first, then 4, then 1, names sorted within */
    CHECK(!strcmp(st->entries[0].name, "labels") && !strcmp(st->entries[1].name, "scalar") &&
              !strcmp(st->entries[2].name, "w") && !strcmp(st->entries[3].name, "images"),
          "data order by dtype size then name");
    int mok = 0;
    for (int i = 0; i < st->nmeta; i++)
      mok += !strcmp(st->meta_keys[i], "note") && !strcmp(st->meta_values[i], mv[1]);
    CHECK(mok == 1, "metadata with escapes round trip");
  }
  cl_safetensors_free(st);
  /* the layout is the reference's: header length, JSON padded with spaces to 8 */
  size_t n;
  unsigned char *bytes = read_bytes(p, &n);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | bytes[i];
  CHECK(hl % 8 == 0 && 8 + hl + 24 + 16 + 4 + 24 == n, "header length %llu, file %zu",
        (unsigned long long)hl, n);
  CHECK(!memcmp(bytes + 8, "{\"__metadata__\":{\"format\":\"pt\",", 31), "header starts %.40s",
        bytes + 8);
  CHECK(strstr((char *)bytes + 8,
               "\"labels\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]}") != NULL,
        "labels entry");
  CHECK(strstr((char *)bytes + 8,
               "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]}"),
        "scalar entry");
  /* argument order does not change the file */
  const char *names2[4] = {"scalar", "images", "labels", "w"};
  cl_tensor *ts2[4] = {sc, u, l, f};
  const char *mk2[2] = {"note", "format"}, *mv2[2] = {mv[1], "pt"};
  CHECK(cl_save_safetensors(tpath("b.safetensors"), 4, names2, ts2, 2, mk2, mv2) == 0, "save b");
  size_t n2;
  unsigned char *bytes2 = read_bytes(tpath("b.safetensors"), &n2);
  CHECK(n == n2 && !memcmp(bytes, bytes2, n), "same contents, same bytes");
  free(bytes2);
  free(bytes);
  /* header only */
  st = cl_load_safetensors(p, 0);
  CHECK(st && st->count == 4 && !st->entries[3].tensor && st->entries[3].ndim == 4 &&
            st->entries[3].shape[1] == 3 && !strcmp(st->entries[3].dtype, "U8"),
        "header-only load");
  cl_safetensors_free(st);
  /* refusals, and a refused save leaves the earlier file as it was */
  const char *dup[2] = {"x", "x"};
  cl_tensor *dupt[2] = {f, l};
  CHECK_FAILS(cl_save_safetensors(p, 2, dup, dupt, 0, NULL, NULL) == 0,
              "duplicate tensor name 'x'");
  const char *meta[1] = {"__metadata__"};
  CHECK_FAILS(cl_save_safetensors(p, 1, meta, dupt, 0, NULL, NULL) == 0, "cannot name a tensor");
  const char *emptyn[1] = {""};
  CHECK_FAILS(cl_save_safetensors(p, 1, emptyn, dupt, 0, NULL, NULL) == 0, "empty name");
  const char *dk[2] = {"k", "k"}, *dv[2] = {"1", "2"};
  CHECK_FAILS(cl_save_safetensors(p, 1, names, ts, 2, dk, dv) == 0, "duplicate metadata key 'k'");
  /* an expanded view announcing terabytes from one element: Ctrl-C (here set beforehand)
   * stops the writing at its first flush, and the earlier file stays */
  int64_t one = 1, huge = (int64_t)1 << 40;
  cl_tensor *single = cl_full(CL_FLOAT32, 1, &one, 2.0);
  cl_tensor *vast = cl_expand(single, 1, &huge);
  const char *vast_name[1] = {"vast"};
  cl_interrupt();
  CHECK_FAILS(cl_save_safetensors(p, 1, vast_name, &vast, 0, NULL, NULL) == 0,
              "interrupted while writing 'vast'");
  CHECK(!cl_interrupt_pending(), "the interruption is consumed");
  cl_release(vast);
  cl_release(single);
  st = cl_load_safetensors(p, 1);
  CHECK(st && st->count == 4, "earlier file intact after refused saves");
  cl_safetensors_free(st);
  CHECK_FAILS(cl_save_safetensors("/nonexistent-dir/a.safetensors", 1, names, ts, 0, NULL, NULL) ==
                  0,
              "cannot create");
  /* an empty file (no tensors) is valid */
  CHECK(cl_save_safetensors(tpath("e.safetensors"), 0, NULL, NULL, 0, NULL, NULL) == 0,
        "save empty");
  st = cl_load_safetensors(tpath("e.safetensors"), 1);
  CHECK(st && st->count == 0 && st->nmeta == 0, "load empty: %s", st ? "" : cl_last_error());
  cl_safetensors_free(st);
  /* no temporary files left behind */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.tmp\\.' >/dev/null", tmpdir);
  CHECK(system(cmd) != 0, "no temporary files left in %s", tmpdir);
  for (int i = 0; i < 4; i++)
    cl_release(ts[i]);
}

/* A file from a header string and raw data, as another program might write it. */
static cl_safetensors *st_from(const char *header, const void *data, size_t dn, int pad_to_8) {
  static unsigned char buf[4096];
  size_t hl = strlen(header);
  memcpy(buf + 8, header, hl);
  while (pad_to_8 && hl % 8)
    buf[8 + hl++] = ' ';
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)(hl >> (8 * i));
  if (dn)
    memcpy(buf + 8 + hl, data, dn);
  return cl_parse_safetensors(buf, 8 + hl + dn, "f.st", 1);
}

static void test_safetensors_dtypes(void) {
  struct {
    const char *dtype;
    unsigned char data[16];
    int size;
    cl_dtype to;
    double v0, v1;
  } cases[] = {
      {"F64", {0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}, 8, CL_FLOAT32, 1.5, -2},
      {"F16", {0x00, 0x3e, 0x01, 0x80}, 2, CL_FLOAT32, 1.5, -5.9604644775390625e-8},
      {"BF16", {0xc0, 0x3f, 0x80, 0xbf}, 2, CL_FLOAT32, 1.5, -1},
      {"I8", {0xff, 0x7f}, 1, CL_INT64, -1, 127},
      {"I16", {0x00, 0x80, 0x34, 0x12}, 2, CL_INT64, -32768, 0x1234},
      {"I32", {0xfe, 0xff, 0xff, 0xff, 1, 0, 0, 0}, 4, CL_INT64, -2, 1},
      {"U16", {0xff, 0xff, 1, 0}, 2, CL_INT64, 65535, 1},
      {"U32", {0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0}, 4, CL_INT64, 4294967295.0, 2},
      {"U64", {5, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0}, 8, CL_INT64, 5, 6},
      {"BOOL", {1, 0}, 1, CL_UINT8, 1, 0},
      {"U8", {200, 7}, 1, CL_UINT8, 200, 7},
      {"I64",
       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 0, 0, 0},
       8,
       CL_INT64,
       -1,
       3},
      {"F32", {0, 0, 0xc0, 0x3f, 0, 0, 0x80, 0xbf}, 4, CL_FLOAT32, 1.5, -1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"t\":{\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[0,%d]}}",
             cases[k].dtype, 2 * cases[k].size);
    cl_safetensors *st = st_from(hdr, cases[k].data, (size_t)(2 * cases[k].size), k % 2);
    cl_tensor *t = st && st->count == 1 ? st->entries[0].tensor : NULL;
    CHECK(t && t->dtype == cases[k].to && cl_item_at(t, 0) == cases[k].v0 &&
              cl_item_at(t, 1) == cases[k].v1,
          "dtype %s: %s (%g, %g)", cases[k].dtype, t ? "values" : cl_last_error(),
          t ? cl_item_at(t, 0) : 0, t ? cl_item_at(t, 1) : 0);
    cl_safetensors_free(st);
  }
  unsigned char big[8] = {0, 0, 0, 0, 0, 0, 0, 0x80};
  cl_safetensors *st =
      st_from("{\"t\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}}", big, 8, 1);
  CHECK(!st && strstr(cl_last_error(), "'t': U64 value"), "U64 overflow: %s", cl_last_error());
}

static void test_safetensors_corrupt(void) {
  unsigned char d8[8] = {0};
  struct {
    const char *header;
    size_t data;
    const char *needle;
  } cases[] = {
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "invalid JSON"},
      {"[1,2]", 0, "not a JSON object"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "data after"},
      {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'a': unsupported dtype 'Q7'"},
      {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
       "unsupported dtype"},
      {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
       "tensor 'a': missing or non-string dtype"},
      {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8,
       "tensor 'a': missing or non-array shape"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
       "shape entry 0 is not a non-negative integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "shape entry 0"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
       "9 dimensions"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
       "tensor 'a': shape [3] of F32 needs 12 bytes, data_offsets [0, 8] span 8"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "[begin, end]"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
       "truncated: tensor 'a' ends at data byte 8, the file has 4"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, "tensor 'b': data_offsets [4, 8] overlap tensor 'a'"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
       "tensor 'a': gap of 4 bytes"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
       "4 bytes after the last tensor"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       8, "duplicate tensor name 'a'"},
      {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of 'k' is not a string"},
      {"{\"__metadata__\":[]}", 0, "__metadata__ must be an object"},
      {"{\"a\":[]}", 0, "tensor 'a': expected an object"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,2],\"data_offsets\":[0,8]}}", 8,
       "more than 2^40"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 8, "[begin, end]"},
      {"{\"\xff\":{}}", 0, "not valid UTF-8"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    cl_safetensors *st = st_from(cases[k].header, d8, cases[k].data, 1);
    CHECK(!st && strstr(cl_last_error(), cases[k].needle) && strstr(cl_last_error(), "f.st"),
          "corrupt case %zu: want \"%s\", got %s", k, cases[k].needle,
          st ? "success" : cl_last_error());
    cl_safetensors_free(st);
  }
  /* header length problems */
  unsigned char b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
  CHECK(!cl_parse_safetensors(b, 10, "f.st", 1) &&
            strstr(cl_last_error(), "header length 65535 exceeds the 2 bytes"),
        "header length beyond the file: %s", cl_last_error());
  CHECK(!cl_parse_safetensors(b, 5, "f.st", 1) && strstr(cl_last_error(), "too short"),
        "file shorter than 8 bytes: %s", cl_last_error());
  /* a real file cut at every length is always an error naming the file */
  int64_t s[2] = {3, 5};
  cl_tensor *t = cl_zeros(CL_FLOAT32, 2, s);
  const char *nm[1] = {"weight"};
  cl_save_safetensors(tpath("cut.safetensors"), 1, nm, &t, 0, NULL, NULL);
  size_t n;
  unsigned char *bytes = read_bytes(tpath("cut.safetensors"), &n);
  int all = 1;
  for (size_t cut = 0; cut < n; cut++) {
    write_bytes(tpath("cut2.safetensors"), bytes, cut);
    cl_safetensors *st = cl_load_safetensors(tpath("cut2.safetensors"), 1);
    if (st || !strstr(cl_last_error(), "cut2.safetensors"))
      all = 0;
    cl_safetensors_free(st);
  }
  CHECK(all, "every truncation of a safetensors file is an error naming it");
  write_bytes(tpath("cut2.safetensors"), bytes, n - 1);
  cl_safetensors *st = cl_load_safetensors(tpath("cut2.safetensors"), 1);
  CHECK(!st && strstr(cl_last_error(), "truncated: tensor 'weight' ends at data byte 60, the file "
                                       "has 59"),
        "truncated message: %s", cl_last_error());
  free(bytes);
  cl_release(t);
}

/* ---------------------------------------------------------------- Colored MNIST */

/* The derivation of docs/data.md, spelled out independently of cmnist.c. */
static uint32_t pcg_next(uint64_t *state, uint64_t inc) {
  uint64_t old = *state;
  *state = old * UINT64_C(6364136223846793005) + inc;
  uint32_t xs = (uint32_t)(((old >> 18) ^ old) >> 27), rot = (uint32_t)(old >> 59);
  return (xs >> rot) | (xs << ((32 - rot) & 31));
}

static uint8_t hand_pixel(uint64_t seed, uint64_t stream, uint64_t sample, int p, int c,
                          uint8_t grey, int k, double beta) {
  uint64_t inc = ((stream << 32 | sample) << 1) | 1, state = 0;
  pcg_next(&state, inc);
  state += seed;
  pcg_next(&state, inc);
  uint32_t x = 0;
  for (int i = 0; i <= p; i++)
    x = pcg_next(&state, inc);
  double u = beta * ((double)(x >> 8) / 16777216.0);
  double g = grey / 255.0, pc = cl_cmnist_palette[k][c];
  return (uint8_t)floor(255.0 * (g * pc + (1 - g) * pc * u) + 0.5);
}

static void test_cmnist(void) {
  cl_tensor *im, *lab;
  CHECK(cl_synth_digits(200, 5, &im, &lab) == 0, "synth: %s", cl_last_error());
  cl_tensor *im2, *lab2;
  cl_synth_digits(200, 5, &im2, &lab2);
  CHECK(tensors_equal(im, im2) && tensors_equal(lab, lab2), "synth is a function of the seed");
  int counts[10] = {0};
  for (int i = 0; i < 200; i++)
    counts[(int)cl_item_at(lab, i)]++;
  int balanced = 1;
  for (int k = 0; k < 10; k++)
    balanced &= counts[k] == 20;
  CHECK(balanced, "synth classes balanced");
  cl_release(im2);
  cl_release(lab2);

  /* split: a permutation, reproducible */
  cl_tensor *perm = cl_cmnist_split(1000, 3), *perm2 = cl_cmnist_split(1000, 3);
  cl_tensor *perm3 = cl_cmnist_split(1000, 4);
  char seen[1000] = {0};
  int isperm = 1;
  for (int i = 0; i < 1000; i++) {
    int64_t v = (int64_t)cl_item_at(perm, i);
    isperm &= v >= 0 && v < 1000 && !seen[v];
    if (v >= 0 && v < 1000)
      seen[v] = 1;
  }
  CHECK(isperm && tensors_equal(perm, perm2) && !tensors_equal(perm, perm3), "split permutation");
  cl_release(perm);
  cl_release(perm2);
  cl_release(perm3);

  /* colours: rho = 1 gives the label; hard is uniform; bad input refused */
  cl_tensor *col = cl_cmnist_colors(lab, 1.0, 0, 9, CL_CMNIST_TRAIN);
  CHECK(col != NULL, "colors: %s", cl_last_error());
  int same = 1;
  for (int i = 0; i < 200; i++)
    same &= cl_item_at(col, i) == cl_item_at(lab, i);
  CHECK(same, "rho = 1: colour = label everywhere");
  cl_release(col);
  col = cl_cmnist_colors(lab, 0.0, 0, 9, CL_CMNIST_TRAIN);
  same = 0;
  for (int i = 0; i < 200; i++)
    same += cl_item_at(col, i) == cl_item_at(lab, i);
  CHECK(same == 0, "rho = 0: colour never the label (%d)", same);
  cl_release(col);
  CHECK_NULL_MSG(cl_cmnist_colors(lab, 1.5, 0, 1, 2), "rho must be in [0, 1], got 1.5");
  int64_t one = 1;
  cl_tensor *badl = cl_full(CL_INT64, 1, &one, 10);
  CHECK_NULL_MSG(cl_cmnist_colors(badl, 1, 0, 1, 2), "labels[0] = 10 is not a class");
  cl_release(badl);

  /* colouring: every byte is SPEC §2's formula with docs/data.md's draws */
  col = cl_cmnist_colors(lab, 0.5, 0, 9, CL_CMNIST_VAL);
  double beta = 0.25;
  cl_tensor *x = cl_cmnist_colorize(im, col, beta, 9, CL_CMNIST_VAL);
  CHECK(x && x->ndim == 4 && x->shape[0] == 200 && x->shape[1] == 3 && x->shape[2] == 28,
        "colorize shape");
  int mismatches = 0;
  const uint8_t *xd = cl_data(x), *gd = cl_data(im);
  for (int s = 0; s < 200; s += 37)
    for (int p = 0; p < 784; p += 13)
      for (int c = 0; c < 3; c++) {
        uint8_t want = hand_pixel(9, CL_CMNIST_VAL, (uint64_t)s, p, c, gd[s * 784 + p],
                                  (int)cl_item_at(col, s), beta);
        mismatches += xd[(s * 3 + c) * 784 + p] != want;
      }
  CHECK(mismatches == 0, "hand-computed pixels: %d mismatches", mismatches);
  /* same arguments, same bytes, for any number of threads */
#ifdef _OPENMP
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  cl_tensor *x1 = cl_cmnist_colorize(im, col, beta, 9, CL_CMNIST_VAL);
#ifdef _OPENMP
  omp_set_num_threads(threads > 1 ? threads : 2);
#endif
  cl_tensor *x2 = cl_cmnist_colorize(im, col, beta, 9, CL_CMNIST_VAL);
  CHECK(tensors_equal(x, x1) && tensors_equal(x, x2), "colorize independent of thread count");
  cl_tensor *x3 = cl_cmnist_colorize(im, col, beta, 10, CL_CMNIST_VAL);
  CHECK(!tensors_equal(x, x3), "another seed, other bytes");
  cl_release(x1);
  cl_release(x2);
  cl_release(x3);
  /* beta = 0: background black, digit pixels P·g */
  x1 = cl_cmnist_colorize(im, col, 0, 9, CL_CMNIST_VAL);
  int bad = 0;
  for (int s = 0; s < 200; s++)
    for (int p = 0; p < 784; p++)
      for (int c = 0; c < 3; c++) {
        double want = floor(gd[s * 784 + p] * cl_cmnist_palette[(int)cl_item_at(col, s)][c] + 0.5);
        bad += ((uint8_t *)cl_data(x1))[(s * 3 + c) * 784 + p] != want;
      }
  CHECK(bad == 0, "beta = 0 gives P·g exactly (%d off)", bad);
  cl_release(x1);
  CHECK_NULL_MSG(cl_cmnist_colorize(im, col, 1.5, 9, 3), "beta must be in [0, 1]");
  CHECK_NULL_MSG(cl_cmnist_colorize(col, col, 0.2, 9, 3), "grey must be uint8 N×H×W");

  /* grey version and batches */
  int64_t bi[3] = {5, 0, 199};
  cl_tensor *index = cl_from_data(CL_INT64, 1, (int64_t[]){3}, bi);
  cl_tensor *xf = cl_gather_batch(x, index);
  CHECK(xf && xf->dtype == CL_FLOAT32 && xf->shape[0] == 3 && xf->shape[1] == 3, "batch shape");
  int exact = 1;
  for (int j = 0; j < 3; j++)
    for (int q = 0; q < 3 * 784; q++)
      exact &= cl_f32(xf)[j * 3 * 784 + q] == (float)xd[bi[j] * 3 * 784 + q] / 255.0f;
  CHECK(exact, "batch is byte / 255");
  cl_tensor *gr = cl_to_grey(xf);
  int gok = 1;
  for (int j = 0; j < 3; j++)
    for (int p = 0; p < 784; p++) {
      const float *q = cl_f32(xf) + j * 3 * 784 + p;
      float m = (q[0] + q[784] + q[1568]) / 3.0f;
      for (int c = 0; c < 3; c++)
        gok &= fabsf(cl_f32(gr)[j * 3 * 784 + c * 784 + p] - m) < 1e-7f;
    }
  CHECK(gok, "grey = channel mean on three channels");
  cl_tensor *gu = cl_to_grey(x);
  CHECK(gu && gu->dtype == CL_UINT8, "uint8 grey");
  int uok = 1;
  for (int q = 0; q < 784 * 3; q++) {
    int p = q % 784;
    double m = (xd[p] + xd[784 + p] + xd[1568 + p]) / 3.0;
    uok &= fabs(((uint8_t *)cl_data(gu))[q] - m) <= 0.5;
  }
  CHECK(uok, "uint8 grey rounds the mean");
  int64_t bad_i[1] = {200};
  cl_tensor *bidx = cl_from_data(CL_INT64, 1, (int64_t[]){1}, bad_i);
  CHECK_NULL_MSG(cl_gather_batch(x, bidx), "index[0] = 200 out of range for 200 images");
  CHECK_NULL_MSG(cl_to_grey(im), "to_grey: expected");
  cl_release(bidx);
  cl_release(gu);
  cl_release(gr);
  cl_release(xf);
  cl_release(index);
  cl_release(x);
  cl_release(col);
  cl_release(im);
  cl_release(lab);
}

/* ---------------------------------------------------------------- the real MNIST */

static void test_real_mnist(void) {
  const char *dir = getenv("CNNLAB_MNIST_DIR") ? getenv("CNNLAB_MNIST_DIR") : "data/mnist";
  char p[4][600];
  const char *files[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  for (int i = 0; i < 4; i++) {
    snprintf(p[i], sizeof p[i], "%s/%s", dir, files[i]);
    if (access(p[i], R_OK) != 0) {
      printf("skip: real MNIST not in %s (run 'make data'); integration checks skipped\n", dir);
      return;
    }
  }
  double t0 = seconds();
  cl_tensor *tr = cl_read_idx(p[0]);
  double t1 = seconds();
  cl_tensor *tl = cl_read_idx(p[1]), *te = cl_read_idx(p[2]), *tel = cl_read_idx(p[3]);
  CHECK(tr && tr->ndim == 3 && tr->shape[0] == 60000 && tr->shape[1] == 28 && tl &&
            tl->shape[0] == 60000 && te && te->shape[0] == 10000 && tel,
        "MNIST shapes: %s", cl_last_error());
  if (!tr || !tl || !te || !tel)
    return;
  /* timings are printed, never asserted: speed is make bench's business (a loaded machine) */
  printf("  reading 60,000 images took %.3f s\n", t1 - t0);
  printf("timing: read train-images (47 MB raw) %.3f s\n", t1 - t0);
  CHECK(cl_item_at(tl, 0) == 5 && cl_item_at(tel, 0) == 7, "first labels 5 and 7");
  /* gzip of the same */
  CHECK(cl_write_idx(tpath("train.gz"), tr, 1) == 0, "gzip MNIST");
  t0 = seconds();
  cl_tensor *tz = cl_read_idx(tpath("train.gz"));
  t1 = seconds();
  CHECK(tz && tensors_equal(tz, tr), "gzip MNIST round trip");
  printf("timing: read train-images.gz %.3f s\n", t1 - t0);
  cl_release(tz);

  /* the full Colored MNIST build */
  t0 = seconds();
  cl_tensor *perm = cl_cmnist_split(60000, 0);
  int64_t s48 = 48000, s12 = 12000;
  cl_tensor *itr = cl_narrow(perm, 0, 0, s48), *iva = cl_narrow(perm, 0, s48, s12);
  cl_tensor *gtr = cl_index_select(tr, 0, itr), *ltr = cl_index_select(tl, 0, itr);
  cl_tensor *gva = cl_index_select(tr, 0, iva), *lva = cl_index_select(tl, 0, iva);
  cl_tensor *ctr = cl_cmnist_colors(ltr, 1.0, 0, 0, CL_CMNIST_TRAIN);
  cl_tensor *cva = cl_cmnist_colors(lva, 1.0, 0, 0, CL_CMNIST_VAL);
  cl_tensor *cte = cl_cmnist_colors(tel, 0, 1, 0, CL_CMNIST_HARD);
  cl_tensor *xtr = cl_cmnist_colorize(gtr, ctr, 0.25, 0, CL_CMNIST_TRAIN);
  cl_tensor *xva = cl_cmnist_colorize(gva, cva, 0.25, 0, CL_CMNIST_VAL);
  cl_tensor *xte = cl_cmnist_colorize(te, cte, 0.25, 0, CL_CMNIST_HARD);
  t1 = seconds();
  CHECK(xtr && xva && xte, "coloured sets: %s", cl_last_error());
  printf("  building 70,000 coloured images took %.3f s\n", t1 - t0);
  printf("timing: split + colours + 70,000 coloured images %.3f s\n", t1 - t0);
  if (xte) {
    cl_tensor *first = cl_narrow(xte, 0, 0, 40);
    cl_tensor *grid = cl_image_grid(first, 10, 2, 2, 0);
    CHECK(grid && cl_write_png(tpath("hard40.png"), grid) == 0, "grid of hard digits");
    cl_release(grid);
    cl_release(first);
  }
  cl_tensor *all[] = {perm, itr, iva, gtr, ltr, gva, lva, ctr, cva,
                      cte,  xtr, xva, xte, tr,  tl,  te,  tel};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    cl_release(all[i]);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnlab_test_io.XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  test_idx_roundtrip();
  test_idx_types();
  test_idx_malformed();
  test_png();
  test_safetensors_roundtrip();
  test_safetensors_dtypes();
  test_safetensors_corrupt();
  test_cmnist();
  test_real_mnist();
  CHECK(cl_mem_in_use() == 0, "core memory leaked: %zu bytes still in use", cl_mem_in_use());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmpdir);
  CHECK_DONE();
}

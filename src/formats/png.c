/* png.c — PNG reading and writing through libpng's simplified API, and image grids.
 *
 * libpng reports errors by longjmp. The simplified API (png_image_*) keeps that longjmp inside
 * libpng and hands back a status and a message, so no jump ever crosses our frames or a Lua
 * call: every buffer here is ours and freed on every path. */
#include "formats/io_impl.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <string.h>

/* Caps what a forged header can make us allocate: 2^26 pixels is an 8192 × 8192 image (a
 * 261 KB file of 16384² grey pixels took 530 MB at the former 2^28). docs/reliability.md. */
#define PNG_MAX_PIXELS (1u << 26)
#define PNG_MAX_FILE ((size_t)1 << 30)
/* Deflate cannot expand more than 1032 times (see idx.c). */
#define DEFLATE_MAX_RATIO 1100

static int image_dims(const cl_tensor *t, const char *path, int64_t *c, int64_t *h, int64_t *w) {
  char buf[96];
  if (t->ndim == 2) {
    *c = 1, *h = t->shape[0], *w = t->shape[1];
  } else if (t->ndim == 3 && (t->shape[0] == 1 || t->shape[0] == 3)) {
    *c = t->shape[0], *h = t->shape[1], *w = t->shape[2];
  } else {
    return cl_fail("png: %s: expected an image H×W, 1×H×W or 3×H×W, got %s", path,
                   cl_shape_str(t, buf, sizeof buf));
  }
  if (*h < 1 || *w < 1 || *h > 0x7fffffff || *w > 0x7fffffff)
    return cl_fail("png: %s: image of size %s cannot be a PNG (each side 1..2^31-1)", path,
                   cl_shape_str(t, buf, sizeof buf));
  if (t->dtype == CL_INT64)
    return cl_fail("png: %s: expected a uint8 or float32 image, got int64", path);
  return 0;
}

static uint8_t to_byte(double v, cl_dtype dtype) {
  if (dtype == CL_UINT8)
    return (uint8_t)v;
  if (!(v > 0)) /* also NaN */
    return 0;
  if (v >= 1)
    return 255;
  return (uint8_t)floor(v * 255.0 + 0.5);
}

int cl_write_png(const char *path, const cl_tensor *t) {
  int64_t c = 0, h = 0, w = 0;
  if (image_dims(t, path, &c, &h, &w))
    return -1;
  if ((uint64_t)h * (uint64_t)w > PNG_MAX_PIXELS)
    return cl_fail("png: %s: image too large (%lld×%lld, at most 2^26 pixels)", path, (long long)h,
                   (long long)w);
  size_t npix = (size_t)(h * w), nbytes = npix * (size_t)c;
  uint8_t *buf = cl_alloc(nbytes);
  if (!buf)
    return -1;
  /* Channel-first tensor → interleaved rows as PNG wants them. */
  const void *data = cl_data(t);
  int contiguous = cl_is_contiguous(t);
  for (int64_t ch = 0; ch < c; ch++)
    for (size_t p = 0; p < npix; p++) {
      int64_t lin = ch * (int64_t)npix + (int64_t)p;
      int64_t off = contiguous ? lin : cl_offset_of(t, lin);
      buf[p * (size_t)c + (size_t)ch] = to_byte(cl_load(t->dtype, data, off), t->dtype);
    }

  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = (png_uint_32)w;
  img.height = (png_uint_32)h;
  img.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;

  cl_atomic a;
  if (cl_atomic_begin(&a, path, "png")) {
    cl_dealloc(buf, nbytes);
    return -1;
  }
  FILE *f = fdopen(a.fd, "wb");
  if (!f) {
    cl_atomic_abort(&a, NULL);
    cl_dealloc(buf, nbytes);
    return cl_fail("png: %s: cannot open the temporary file", path);
  }
  errno = 0;
  int ok = png_image_write_to_stdio(&img, f, 0, buf, 0, NULL);
  int e = errno; /* libpng only says "Write Error": keep the system's reason */
  cl_dealloc(buf, nbytes);
  if (!ok) {
    if (e)
      cl_fail("png: %s: write failed: %s; any earlier file there is unchanged", path, strerror(e));
    else
      cl_fail("png: %s: write failed: %s; any earlier file there is unchanged", path, img.message);
    png_image_free(&img);
    cl_atomic_abort(&a, f);
    return -1;
  }
  return cl_atomic_commit(&a, f, path, "png");
}

/* libpng allocates and zeroes a chunk's buffer from the length the chunk declares before it
 * knows whether that much data follows: a 100-byte file declaring a 1.9 GB sPLT chunk cost
 * 1.9 GB and 15 seconds to refuse (found by fuzzing, fuzz/regressions/png/). So every chunk up
 * to IEND must fit in what is left of the buffer before libpng sees it. */
static int check_chunks(const unsigned char *p, size_t size, const char *name) {
  size_t off = 8;
  while (size - off >= 12) {
    uint32_t len = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 |
                   p[off + 3];
    const unsigned char *type = p + off + 4;
    char tname[20];
    int letters = 1;
    for (int i = 0; i < 4; i++)
      letters &= (type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z');
    if (letters)
      snprintf(tname, sizeof tname, "'%c%c%c%c'", type[0], type[1], type[2], type[3]);
    else
      snprintf(tname, sizeof tname, "0x%02x%02x%02x%02x", type[0], type[1], type[2], type[3]);
    if (len > 0x7fffffffu || len > size - off - 12)
      return cl_fail("png: %s: truncated or corrupt: chunk %s at byte %zu declares %u bytes of "
                     "data (and a 4-byte CRC), the file has %zu bytes after the chunk's header",
                     name, tname, off, len, size - off - 8);
    off += 12 + (size_t)len;
    if (!memcmp(type, "IEND", 4))
      return 0;
  }
  return cl_fail("png: %s: truncated: the file ends before its IEND chunk", name);
}

cl_tensor *cl_decode_png(const void *data, size_t size, const char *name) {
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0)
    return (void)cl_fail("png: %s: not a PNG file (bad signature)", name), NULL;
  if (check_chunks(data, size, name))
    return NULL;
  if (!png_image_begin_read_from_memory(&img, data, size)) {
    cl_fail("png: %s: bad or unsupported PNG: %s", name, img.message);
    png_image_free(&img);
    return NULL;
  }
  uint64_t npix = (uint64_t)img.width * img.height;
  int color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
  int64_t c = color ? 3 : 1;
  if (npix == 0 || npix > PNG_MAX_PIXELS || npix * (uint64_t)c / DEFLATE_MAX_RATIO > size) {
    cl_fail("png: %s: unsupported or corrupt: %u×%u pixels%s", name, (unsigned)img.width,
            (unsigned)img.height,
            npix > PNG_MAX_PIXELS ? " (at most 2^26 = 8192×8192 accepted)"
                                  : " cannot come from a file this small (truncated?)");
    png_image_free(&img);
    return NULL;
  }
  img.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  /* Without gamma information a 16-bit file would be taken as linear light and re-encoded;
   * users mean its values, so treat them as sRGB like 8-bit files. */
  img.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  size_t nbytes = (size_t)npix * (size_t)c;
  uint8_t *buf = cl_alloc(nbytes);
  if (!buf) {
    png_image_free(&img);
    return NULL;
  }
  png_color black = {0, 0, 0};
  if (!png_image_finish_read(&img, &black, buf, 0, NULL)) {
    cl_fail("png: %s: bad or unsupported PNG: %s", name, img.message);
    png_image_free(&img);
    cl_dealloc(buf, nbytes);
    return NULL;
  }
  int64_t shape[3] = {c, (int64_t)img.height, (int64_t)img.width};
  cl_tensor *t = cl_empty(CL_UINT8, 3, shape);
  if (t) {
    uint8_t *out = cl_data(t);
    for (int64_t ch = 0; ch < c; ch++)
      for (size_t p = 0; p < (size_t)npix; p++)
        out[(size_t)ch * (size_t)npix + p] = buf[p * (size_t)c + (size_t)ch];
  }
  cl_dealloc(buf, nbytes);
  return t;
}

cl_tensor *cl_read_png(const char *path) {
  unsigned char *data;
  size_t size;
  if (cl_read_file(path, "png", PNG_MAX_FILE, &data, &size))
    return NULL;
  cl_tensor *t = cl_decode_png(data, size, path);
  cl_dealloc(data, size + 1);
  return t;
}

/* ---------------------------------------------------------------- grids */

cl_tensor *cl_image_grid(const cl_tensor *images, int ncol, int pad, int scale, double pad_value) {
  char buf[96];
  int64_t n, c, h, w;
  if (images->ndim == 4) {
    n = images->shape[0], c = images->shape[1], h = images->shape[2], w = images->shape[3];
  } else if (images->ndim == 3) {
    n = images->shape[0], c = 1, h = images->shape[1], w = images->shape[2];
  } else {
    return (void)cl_fail("image_grid: expected images N×C×H×W or N×H×W, got %s",
                         cl_shape_str(images, buf, sizeof buf)),
           NULL;
  }
  if (images->dtype == CL_INT64)
    return (void)cl_fail("image_grid: expected uint8 or float32 images, got int64"), NULL;
  if (n < 1)
    return (void)cl_fail("image_grid: no images (N = 0)"), NULL;
  if (ncol < 1 || pad < 0 || scale < 1 || pad > 4096 || scale > 4096)
    return (void)cl_fail("image_grid: need ncol >= 1, 0 <= pad <= 4096, 1 <= scale <= 4096 (got "
                         "ncol=%d, pad=%d, scale=%d)",
                         ncol, pad, scale),
           NULL;
  int64_t cols = ncol < n ? ncol : n, rows = (n + cols - 1) / cols;
  int64_t ch = h * scale + pad, cw = w * scale + pad;
  int64_t shape[3] = {c, rows * ch + pad, cols * cw + pad};
  if (shape[1] > (INT64_C(1) << 20) || shape[2] > (INT64_C(1) << 20))
    return (void)cl_fail("image_grid: result of %lld×%lld pixels is too large", (long long)shape[1],
                         (long long)shape[2]),
           NULL;
  cl_tensor *g = cl_full(images->dtype, 3, shape, pad_value);
  if (!g)
    return NULL;
  const void *src = cl_data(images);
  void *dst = cl_data(g);
  int contiguous = cl_is_contiguous(images);
  size_t es = cl_dtype_size(images->dtype);
  for (int64_t i = 0; i < n; i++) {
    int64_t y0 = pad + (i / cols) * ch, x0 = pad + (i % cols) * cw;
    for (int64_t k = 0; k < c; k++)
      for (int64_t y = 0; y < h * scale; y++)
        for (int64_t x = 0; x < w * scale; x++) {
          int64_t lin = ((i * c + k) * h + y / scale) * w + x / scale;
          int64_t so = contiguous ? lin : cl_offset_of(images, lin);
          int64_t d = (k * shape[1] + y0 + y) * shape[2] + x0 + x;
          memcpy((char *)dst + (size_t)d * es, (const char *)src + (size_t)so * es, es);
        }
  }
  return g;
}

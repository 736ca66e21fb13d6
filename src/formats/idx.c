/* idx.c — the IDX format of MNIST (big-endian header and data), raw or gzip-compressed.
 * zlib's gzread passes raw files through unchanged, so one reader serves both. */
#include "formats/io_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Deflate cannot expand data more than 1032 times; anything claiming more than this from a
 * compressed file is truncated, and refusing it early keeps a forged header from making us
 * allocate gigabytes. */
#define GZ_MAX_RATIO 1100
#define CHUNK (1 << 16)
/* The most elements an IDX file may announce (docs/reliability.md). */
#define IDX_MAX_ELEMENTS (UINT64_C(1) << 31)

static int idx_elem_size(int type) {
  switch (type) {
  case 0x08:
  case 0x09:
    return 1;
  case 0x0B:
    return 2;
  case 0x0C:
  case 0x0D:
    return 4;
  case 0x0E:
    return 8;
  }
  return 0;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* Reads up to n bytes; returns the count, or -1 with a message on a gzip error. */
static int64_t read_some(gzFile gz, void *buf, uint64_t n, const char *path) {
  uint64_t done = 0;
  while (done < n) {
    uint64_t want = n - done;
    unsigned ask = want > (1u << 30) ? (1u << 30) : (unsigned)want;
    int got = gzread(gz, (char *)buf + done, ask);
    if (got < 0) {
      int code;
      const char *msg = gzerror(gz, &code);
      return cl_fail("idx: %s: corrupt gzip data (%s)", path, msg ? msg : "unknown zlib error");
    }
    if (got == 0)
      break;
    done += (uint64_t)got;
  }
  return (int64_t)done;
}

/* Converts n big-endian elements of IDX type `type` at src into dst (cnnlab's dtype). */
static void convert(int type, const unsigned char *src, size_t n, void *dst) {
  switch (type) {
  case 0x09:
    for (size_t i = 0; i < n; i++)
      ((float *)dst)[i] = (float)(int8_t)src[i];
    break;
  case 0x0B:
    for (size_t i = 0; i < n; i++)
      ((int64_t *)dst)[i] = (int16_t)(uint16_t)(src[2 * i] << 8 | src[2 * i + 1]);
    break;
  case 0x0C:
    for (size_t i = 0; i < n; i++)
      ((int64_t *)dst)[i] = (int32_t)be32(src + 4 * i);
    break;
  case 0x0D:
    for (size_t i = 0; i < n; i++) {
      uint32_t u = be32(src + 4 * i);
      memcpy((float *)dst + i, &u, 4);
    }
    break;
  case 0x0E:
    for (size_t i = 0; i < n; i++) {
      uint64_t u = be64(src + 8 * i);
      double d;
      memcpy(&d, &u, 8);
      ((float *)dst)[i] = (float)d;
    }
    break;
  }
}

static cl_tensor *read_idx_gz(gzFile gz, const char *path, uint64_t file_size) {
  int direct = gzdirect(gz);
  unsigned char head[4 + 4 * 255];
  int64_t got = read_some(gz, head, 4, path);
  if (got < 0)
    return NULL;
  if (got < 4)
    return (void)cl_fail("idx: %s: truncated: expected a 4-byte header, got %lld bytes", path,
                         (long long)got),
           NULL;
  if (head[0] != 0 || head[1] != 0)
    return (void)cl_fail("idx: %s: not an IDX file: magic %02x %02x %02x %02x (the first two "
                         "bytes must be 0)",
                         path, head[0], head[1], head[2], head[3]),
           NULL;
  int type = head[2], rank = head[3], esize = idx_elem_size(type);
  if (!esize)
    return (void)cl_fail("idx: %s: unknown element type 0x%02x (IDX has 0x08 u8, 0x09 i8, "
                         "0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64)",
                         path, type),
           NULL;
  if (rank > CL_MAX_DIMS)
    return (void)cl_fail("idx: %s: %d dimensions, at most %d supported", path, rank, CL_MAX_DIMS),
           NULL;
  uint64_t header = 4 + 4 * (uint64_t)rank;
  got = read_some(gz, head + 4, 4 * (uint64_t)rank, path);
  if (got < 0)
    return NULL;
  if ((uint64_t)got < 4 * (uint64_t)rank)
    return (void)cl_fail("idx: %s: truncated: the header of %d dimensions needs %llu bytes, got "
                         "%llu",
                         path, rank, (unsigned long long)header, (unsigned long long)(4 + got)),
           NULL;
  int64_t shape[CL_MAX_DIMS];
  uint64_t n = 1, bound = 1;
  for (int d = 0; d < rank; d++) {
    shape[d] = be32(head + 4 + 4 * d);
    /* The bound counts a size-0 dimension as 1, as cl_empty does (0×2^32×2^32 overflows the
     * strides); checked here so the message names the file. Found by fuzzing. */
    uint64_t size = shape[d] > 0 ? (uint64_t)shape[d] : 1;
    if (bound > (UINT64_C(1) << 40) / size)
      return (void)cl_fail("idx: %s: dimensions too large (more than 2^40 elements)", path), NULL;
    bound *= size;
    n *= (uint64_t)shape[d];
  }
  if (n > IDX_MAX_ELEMENTS)
    return (void)cl_fail("idx: %s: %llu elements, at most 2^31 accepted", path,
                         (unsigned long long)n),
           NULL;
  uint64_t expected = header + n * (uint64_t)esize;
  if (direct) {
    if (file_size < expected)
      return (void)cl_fail("idx: %s: truncated: expected %llu bytes, got %llu", path,
                           (unsigned long long)expected, (unsigned long long)file_size),
             NULL;
    if (file_size > expected)
      return (void)cl_fail("idx: %s: trailing data: expected %llu bytes, the file has %llu", path,
                           (unsigned long long)expected, (unsigned long long)file_size),
             NULL;
  }
  /* i8 becomes float32 (exact, 4 bytes; there is no int8 dtype), not int64 (8 bytes); u8
   * stays bytes. The bound below is on what is allocated, not on what is read, so a small
   * gzip file cannot grow into hundreds of megabytes (48 KB of i8 made 397 MB as int64). */
  cl_dtype dtype = type == 0x08                                  ? CL_UINT8
                   : (type == 0x09 || type == 0x0D || type == 0x0E) ? CL_FLOAT32
                                                                  : CL_INT64;
  uint64_t out_bytes = n * (uint64_t)cl_dtype_size(dtype);
  if (!direct && out_bytes / GZ_MAX_RATIO > file_size + 65536)
    return (void)cl_fail("idx: %s: the header announces %llu elements (%llu bytes in memory), "
                         "more than a %llu-byte gzip file can hold (at most %d× its size)",
                         path, (unsigned long long)n, (unsigned long long)out_bytes,
                         (unsigned long long)file_size, GZ_MAX_RATIO),
           NULL;
  cl_tensor *t = cl_empty(dtype, rank, shape);
  if (!t)
    return NULL;
  uint64_t data_got = 0;
  if (type == 0x08) {
    got = read_some(gz, cl_data(t), n, path);
    if (got < 0)
      goto fail;
    data_got = (uint64_t)got;
  } else {
    unsigned char *buf = cl_alloc(CHUNK);
    if (!buf)
      goto fail;
    size_t per = CHUNK / (size_t)esize, osize = cl_dtype_size(dtype);
    for (uint64_t i = 0; i < n; i += per) {
      size_t m = n - i < per ? (size_t)(n - i) : per;
      got = read_some(gz, buf, (uint64_t)m * (uint64_t)esize, path);
      if (got < 0) {
        cl_dealloc(buf, CHUNK);
        goto fail;
      }
      data_got += (uint64_t)got;
      if ((uint64_t)got < (uint64_t)m * (uint64_t)esize)
        break;
      convert(type, buf, m, (char *)cl_data(t) + i * osize);
    }
    cl_dealloc(buf, CHUNK);
  }
  if (data_got < n * (uint64_t)esize) {
    cl_fail("idx: %s: truncated: expected %llu bytes, got %llu%s", path,
            (unsigned long long)expected, (unsigned long long)(header + data_got),
            direct ? "" : " (after decompression)");
    goto fail;
  }
  unsigned char extra;
  got = read_some(gz, &extra, 1, path);
  if (got < 0)
    goto fail;
  if (got > 0) {
    cl_fail("idx: %s: trailing data after the %llu bytes the header announces%s", path,
            (unsigned long long)expected, direct ? "" : " (after decompression)");
    goto fail;
  }
  return t;
fail:
  cl_release(t);
  return NULL;
}

cl_tensor *cl_read_idx(const char *path) {
  uint64_t fsize;
  int fd = cl_open_regular(path, "idx", &fsize);
  if (fd < 0)
    return NULL;
  gzFile gz = gzdopen(fd, "rb");
  if (!gz) {
    close(fd);
    return (void)cl_fail("idx: %s: not enough memory to open", path), NULL;
  }
  gzbuffer(gz, 1 << 18);
  cl_tensor *t = read_idx_gz(gz, path, fsize);
  gzclose(gz);
  return t;
}

/* ---------------------------------------------------------------- writing */

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

typedef int (*sink_fn)(void *ctx, const void *buf, size_t n);

static int sink_file(void *ctx, const void *buf, size_t n) {
  return fwrite(buf, 1, n, (FILE *)ctx) == n ? 0 : -1;
}

static int sink_gz(void *ctx, const void *buf, size_t n) {
  return gzwrite((gzFile)ctx, buf, (unsigned)n) == (int)n ? 0 : -1;
}

/* Streams t's header and elements in IDX byte order through `sink`. */
static int emit(const cl_tensor *t, int type, sink_fn sink, void *ctx) {
  unsigned char head[4 + 4 * CL_MAX_DIMS] = {0, 0, (unsigned char)type, (unsigned char)t->ndim};
  for (int d = 0; d < t->ndim; d++)
    put_be32(head + 4 + 4 * d, (uint32_t)t->shape[d]);
  if (sink(ctx, head, 4 + 4 * (size_t)t->ndim))
    return -1;
  unsigned char buf[CHUNK];
  int esize = idx_elem_size(type);
  int64_t n = cl_numel(t);
  int contiguous = cl_is_contiguous(t);
  const void *data = cl_data(t);
  size_t fill = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t off = contiguous ? i : cl_offset_of(t, i);
    unsigned char *p = buf + fill;
    if (type == 0x08) {
      *p = ((const uint8_t *)data)[off];
    } else if (type == 0x0C) {
      put_be32(p, (uint32_t)(int32_t)((const int64_t *)data)[off]);
    } else {
      uint32_t u;
      memcpy(&u, (const float *)data + off, 4);
      put_be32(p, u);
    }
    fill += (size_t)esize;
    if (fill + 8 > sizeof buf) {
      if (sink(ctx, buf, fill))
        return -1;
      fill = 0;
    }
  }
  return fill ? sink(ctx, buf, fill) : 0;
}

int cl_write_idx(const char *path, const cl_tensor *t, int gzip) {
  int type = t->dtype == CL_UINT8 ? 0x08 : t->dtype == CL_INT64 ? 0x0C : 0x0D;
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] > UINT32_MAX)
      return cl_fail("idx: %s: dimension %d of size %lld does not fit IDX's 32 bits", path, d,
                     (long long)t->shape[d]);
  if (type == 0x0C) {
    const int64_t *data = cl_data(t);
    for (int64_t i = 0, n = cl_numel(t); i < n; i++) {
      int64_t v = data[cl_offset_of(t, i)];
      if (v < INT32_MIN || v > INT32_MAX)
        return cl_fail("idx: %s: int64 value %lld at position %lld does not fit IDX's int32", path,
                       (long long)v, (long long)i);
    }
  }
  cl_atomic a;
  if (cl_atomic_begin(&a, path, "idx"))
    return -1;
  if (gzip) {
    int fd2 = dup(a.fd);
    gzFile gz = fd2 >= 0 ? gzdopen(fd2, "wb6") : NULL;
    if (!gz) {
      if (fd2 >= 0)
        close(fd2);
      cl_atomic_abort(&a, NULL);
      return cl_fail("idx: %s: cannot start gzip output", path);
    }
    errno = 0;
    int bad = emit(t, type, sink_gz, gz);
    int code = gzclose(gz);
    if (bad || code != Z_OK) {
      /* The system's reason (no space, file too large, ...), not a guess; errno before the
       * cleanup below can change it. */
      int e = errno;
      cl_atomic_abort(&a, NULL);
      return cl_fail("idx: %s: write failed: %s; any earlier file there is unchanged", path,
                     e ? strerror(e) : "gzip error");
    }
    return cl_atomic_commit(&a, NULL, path, "idx");
  }
  FILE *f = fdopen(a.fd, "wb");
  if (!f) {
    cl_atomic_abort(&a, NULL);
    return cl_fail("idx: %s: cannot open the temporary file: %s", path, strerror(errno));
  }
  errno = 0;
  if (emit(t, type, sink_file, f)) {
    int e = errno; /* the system's reason, saved before the cleanup can change it */
    cl_atomic_abort(&a, f);
    return cl_fail("idx: %s: write failed: %s; any earlier file there is unchanged", path,
                   e ? strerror(e) : "I/O error");
  }
  return cl_atomic_commit(&a, f, path, "idx");
}

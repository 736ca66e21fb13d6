/* targets.c — what each fuzz target does with one input (see targets.h).
 *
 * Beyond "no crash, no sanitizer report", every target checks invariants a reader must keep
 * for any input, so that silent misbehaviour counts as a finding too:
 *  - no leak: the core's byte counter is back where it was once the result is released;
 *  - a refusal carries a message that names the format and the file;
 *  - IDX: a raw file that loads has exactly the length its header announces and the values
 *    its bytes say; the same bytes gzip-compressed load to the same tensor (or fail alike);
 *  - safetensors: reading from memory and from a file give the same result or the same
 *    message; a header that parses alone parses with the data too (bar U64 overflow);
 *  - PNG: the tensor has 1 or 3 channels and the IHDR's width and height.
 * Inputs reach the path-based readers through a memfd (no disk, nothing left behind). */
#define _GNU_SOURCE /* memfd_create */
#include "targets.h"

#include "cnnlab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

static void broken(const char *target, const char *what) {
  fprintf(stderr, "fuzz %s: invariant broken: %s (last error: %s)\n", target, what,
          cl_last_error());
  abort();
}

/* A memfd holding the input, and a path that opens it. */
typedef struct {
  int fd;
  char path[64];
} memfile;

static void memfile_open(memfile *m, const char *target, const uint8_t *data, size_t size) {
  m->fd = memfd_create("cnnlab-fuzz", MFD_CLOEXEC);
  if (m->fd < 0)
    broken(target, "memfd_create failed (not an invariant: the harness cannot run)");
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(m->fd, data + done, size - done);
    if (n <= 0)
      broken(target, "cannot write the memfd (harness)");
    done += (size_t)n;
  }
  snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
}

static void memfile_close(memfile *m) { close(m->fd); }

static void check_refusal(const char *target, const char *prefix, const char *name) {
  const char *msg = cl_last_error();
  if (!strcmp(msg, "unknown error") || !msg[0])
    broken(target, "refused without a message");
  /* An allocation failure is reported as such; everything else names format and file. */
  if (strstr(msg, "not enough memory"))
    return;
  if (strncmp(msg, prefix, strlen(prefix)) != 0 || !strstr(msg, name))
    broken(target, "the message does not name the format and the file");
}

static int same_tensor(const cl_tensor *a, const cl_tensor *b) {
  if (a->dtype != b->dtype || !cl_same_shape(a, b))
    return 0;
  size_t n = (size_t)cl_numel(a) * cl_dtype_size(a->dtype);
  return n == 0 || !memcmp(cl_data(a), cl_data(b), n);
}

/* ---------------------------------------------------------------- IDX */

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int idx_esize(int type) {
  return type == 0x08 || type == 0x09   ? 1
         : type == 0x0B                 ? 2
         : type == 0x0C || type == 0x0D ? 4
         : type == 0x0E                 ? 8
                                        : 0;
}

/* The value element i of a raw IDX body should have once converted (as the reader's dtype). */
static void idx_expected(int type, const uint8_t *body, int64_t i, void *out) {
  const uint8_t *p = body + (size_t)i * (size_t)idx_esize(type);
  switch (type) {
  case 0x08:
    *(uint8_t *)out = p[0];
    break;
  case 0x09: { /* the reader keeps i8 as float32 (exact; there is no int8 dtype) */
    float f = (float)(int8_t)p[0];
    memcpy(out, &f, 4);
  } break;
  case 0x0B:
    *(int64_t *)out = (int16_t)(uint16_t)(p[0] << 8 | p[1]);
    break;
  case 0x0C:
    *(int64_t *)out = (int32_t)be32(p);
    break;
  case 0x0D: {
    uint32_t u = be32(p);
    memcpy(out, &u, 4);
  } break;
  case 0x0E: {
    uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
    double d;
    memcpy(&d, &u, 8);
    float f = (float)d;
    memcpy(out, &f, 4);
  } break;
  }
}

/* A raw file that loaded: its length and every value must be what the header says. */
static void idx_check_raw(const uint8_t *data, size_t size, const cl_tensor *t) {
  if (size < 4)
    broken("idx", "accepted a file shorter than the magic");
  int type = data[2], rank = data[3], es = idx_esize(type);
  if (data[0] || data[1] || !es || rank != t->ndim)
    broken("idx", "accepted a bad magic, type or rank");
  uint64_t n = 1;
  for (int d = 0; d < rank; d++) {
    if ((uint64_t)t->shape[d] != be32(data + 4 + 4 * d))
      broken("idx", "shape differs from the header");
    n *= (uint64_t)t->shape[d];
  }
  if (4 + 4 * (uint64_t)rank + n * (uint64_t)es != size)
    broken("idx", "accepted a file whose length is not what its header announces");
  cl_dtype want = type == 0x08                                    ? CL_UINT8
                  : type == 0x09 || type == 0x0D || type == 0x0E ? CL_FLOAT32
                                                                 : CL_INT64;
  if (t->dtype != want)
    broken("idx", "wrong dtype for the element type");
  const uint8_t *body = data + 4 + 4 * rank;
  size_t os = cl_dtype_size(t->dtype);
  for (int64_t i = 0; i < (int64_t)n; i++) {
    unsigned char expect[8];
    idx_expected(type, body, i, expect);
    if (memcmp(expect, (const char *)cl_data(t) + (size_t)i * os, os))
      broken("idx", "a value differs from the file's bytes");
  }
}

/* gzip(data) through zlib's deflate, or NULL when it cannot be made (harness problem). */
static uint8_t *gzip_of(const uint8_t *data, size_t size, size_t *out_size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return NULL;
  size_t cap = deflateBound(&z, (uLong)size) + 32;
  uint8_t *out = malloc(cap);
  if (!out) {
    deflateEnd(&z);
    return NULL;
  }
  z.next_in = (Bytef *)(uintptr_t)data;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  int rc = deflate(&z, Z_FINISH);
  *out_size = cap - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    free(out);
    return NULL;
  }
  return out;
}

int fuzz_idx_one(const uint8_t *data, size_t size) {
  size_t before = cl_mem_in_use();
  memfile m;
  memfile_open(&m, "idx", data, size);
  cl_tensor *t = cl_read_idx(m.path);
  if (!t)
    check_refusal("idx", "idx: ", m.path);
  memfile_close(&m);
  int is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (t && !is_gzip)
    idx_check_raw(data, size, t);
  if (!is_gzip) {
    size_t zsize;
    uint8_t *z = gzip_of(data, size, &zsize);
    if (z) {
      memfile mz;
      memfile_open(&mz, "idx", z, zsize);
      cl_tensor *tz = cl_read_idx(mz.path);
      memfile_close(&mz);
      free(z);
      if (!t != !tz && !(tz == NULL && strstr(cl_last_error(), "not enough memory")))
        broken("idx", "a file and its gzip-compressed copy are not both accepted or refused");
      if (t && tz && !same_tensor(t, tz))
        broken("idx", "a file and its gzip-compressed copy load differently");
      cl_release(tz);
    }
  }
  int ok = t != NULL;
  cl_release(t);
  if (cl_mem_in_use() != before)
    broken("idx", "leak: the core's heap did not return to its size before the call");
  return ok ? 0 : 1;
}

/* ---------------------------------------------------------------- safetensors */

static void st_compare(const cl_safetensors *a, const cl_safetensors *b, int data) {
  if (a->count != b->count || a->nmeta != b->nmeta)
    broken("safetensors", "memory and file loads differ in counts");
  for (int i = 0; i < a->count; i++) {
    const cl_st_entry *x = &a->entries[i], *y = &b->entries[i];
    if (strcmp(x->name, y->name) || strcmp(x->dtype, y->dtype) || x->ndim != y->ndim ||
        memcmp(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->ndim) || x->begin != y->begin ||
        x->end != y->end)
      broken("safetensors", "memory and file loads differ in an entry");
    if (data && !same_tensor(x->tensor, y->tensor))
      broken("safetensors", "memory and file loads differ in a tensor's values");
    if (i && x->begin < a->entries[i - 1].end)
      broken("safetensors", "entries overlap or are out of order");
  }
  for (int i = 0; i < a->nmeta; i++)
    if (strcmp(a->meta_keys[i], b->meta_keys[i]) || strcmp(a->meta_values[i], b->meta_values[i]))
      broken("safetensors", "memory and file loads differ in metadata");
}

int fuzz_safetensors_one(const uint8_t *data, size_t size) {
  size_t before = cl_mem_in_use();
  memfile m;
  memfile_open(&m, "safetensors", data, size);
  char err_mem[512], err_head[512];

  cl_safetensors *head = cl_parse_safetensors(data, size, m.path, 0);
  snprintf(err_head, sizeof err_head, "%s", head ? "" : cl_last_error());
  if (!head)
    check_refusal("safetensors", "safetensors: ", m.path);
  cl_safetensors *mem = cl_parse_safetensors(data, size, m.path, 1);
  snprintf(err_mem, sizeof err_mem, "%s", mem ? "" : cl_last_error());
  if (!mem)
    check_refusal("safetensors", "safetensors: ", m.path);
  cl_safetensors *file = cl_load_safetensors(m.path, 1);
  memfile_close(&m);

  if (!mem != !file)
    broken("safetensors", "memory and file loads are not both accepted or refused");
  if (!file && strcmp(err_mem, cl_last_error()))
    broken("safetensors", "memory and file loads refuse with different messages");
  if (!head && mem)
    broken("safetensors", "the data loaded although the header alone was refused");
  if (!head && strcmp(err_head, err_mem))
    broken("safetensors", "header-only and full loads refuse with different messages");
  if (head && !mem && !strstr(err_mem, "does not fit int64") &&
      !strstr(err_mem, "not enough memory"))
    broken("safetensors", "a valid header failed with its data for a reason other than U64");
  if (mem && file)
    st_compare(mem, file, 1);
  if (mem && head)
    st_compare(mem, head, 0);
  int ok = mem != NULL;
  cl_safetensors_free(head);
  cl_safetensors_free(mem);
  cl_safetensors_free(file);
  if (cl_mem_in_use() != before)
    broken("safetensors", "leak: the core's heap did not return to its size before the call");
  return ok ? 0 : 1;
}

/* ---------------------------------------------------------------- PNG */

/* The data of the first IHDR chunk (width, height, ...), walking length-type-data-CRC chunks
 * from the 8-byte signature; NULL when there is none whole. */
static const uint8_t *find_ihdr(const uint8_t *data, size_t size) {
  size_t at = 8;
  while (at + 8 <= size) {
    uint32_t len = be32(data + at);
    if (memcmp(data + at + 4, "IHDR", 4) == 0)
      return len >= 8 && at + 8 + 8 <= size ? data + at + 8 : NULL;
    if ((uint64_t)len + 12 > size - at)
      return NULL;
    at += (size_t)len + 12;
  }
  return NULL;
}

int fuzz_png_one(const uint8_t *data, size_t size) {
  size_t before = cl_mem_in_use();
  cl_tensor *t = cl_decode_png(data, size, "fuzz.png");
  if (!t) {
    check_refusal("png", "png: ", "fuzz.png");
  } else {
    if (t->dtype != CL_UINT8 || t->ndim != 3 || (t->shape[0] != 1 && t->shape[0] != 3))
      broken("png", "decoded to something other than uint8 1×H×W or 3×H×W");
    /* The IHDR chunk's width and height. Not always at byte 16: libpng lets an ancillary
     * chunk come first (found by fuzz_png), so walk the chunks to it. */
    const uint8_t *ihdr = find_ihdr(data, size);
    if (!ihdr || (uint64_t)t->shape[2] != be32(ihdr) || (uint64_t)t->shape[1] != be32(ihdr + 4))
      broken("png", "the size differs from the IHDR chunk's");
  }
  int ok = t != NULL;
  cl_release(t);
  if (cl_mem_in_use() != before)
    broken("png", "leak: the core's heap did not return to its size before the call");
  return ok ? 0 : 1;
}

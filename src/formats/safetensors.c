/* safetensors.c — the safetensors format (SPEC §4): 8-byte little-endian header length, a JSON
 * header, then raw little-endian tensor data. Loading trusts nothing in the file: every length,
 * offset and shape is checked before it is used. */
#include "formats/io_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; we stop at 8 MiB, because the
 * parsed JSON costs about thirty times its text (a 59 MB header of a million entries took
 * 1.8 GB): 8 MiB holds some 65,000 entries, far beyond any model's. docs/reliability.md. */
#define ST_MAX_HEADER (8u << 20)
#define ST_MAX_ENTRIES 65536
#define ST_MAX_EXACT 9007199254740992.0 /* 2^53: JSON numbers above it are not exact */

typedef enum {
  ST_F32,
  ST_F64,
  ST_F16,
  ST_BF16,
  ST_U8,
  ST_BOOL,
  ST_I8,
  ST_I16,
  ST_I32,
  ST_I64,
  ST_U16,
  ST_U32,
  ST_U64,
  ST_NTYPES
} st_type;

static const struct {
  const char *name;
  int size;
  cl_dtype to;
} st_types[ST_NTYPES] = {
    [ST_F32] = {"F32", 4, CL_FLOAT32}, [ST_F64] = {"F64", 8, CL_FLOAT32},
    [ST_F16] = {"F16", 2, CL_FLOAT32}, [ST_BF16] = {"BF16", 2, CL_FLOAT32},
    [ST_U8] = {"U8", 1, CL_UINT8},     [ST_BOOL] = {"BOOL", 1, CL_UINT8},
    [ST_I8] = {"I8", 1, CL_INT64},     [ST_I16] = {"I16", 2, CL_INT64},
    [ST_I32] = {"I32", 4, CL_INT64},   [ST_I64] = {"I64", 8, CL_INT64},
    [ST_U16] = {"U16", 2, CL_INT64},   [ST_U32] = {"U32", 4, CL_INT64},
    [ST_U64] = {"U64", 8, CL_INT64},
};

static int st_type_of(const char *name) {
  for (int i = 0; i < ST_NTYPES; i++)
    if (!strcmp(name, st_types[i].name))
      return i;
  return -1;
}

static uint64_t le_load(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static void le_store(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++, v >>= 8)
    p[i] = (unsigned char)v;
}

static float half_to_float(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  double v;
  if (exp == 0)
    v = ldexp(man, -24); /* subnormal */
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = ldexp(man + 1024, exp - 25);
  return (float)(sign ? -v : v);
}

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    int len = c < 0x80             ? 1
              : (c & 0xE0) == 0xC0 ? 2
              : (c & 0xF0) == 0xE0 ? 3
              : (c & 0xF8) == 0xF0 ? 4
                                   : 0;
    if (!len || i + (size_t)len > n || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4))
      return 0;
    for (int k = 1; k < len; k++)
      if ((s[i + (size_t)k] & 0xC0) != 0x80)
        return 0;
    if (len == 3) {
      unsigned cp = (c & 15u) << 12 | (s[i + 1] & 63u) << 6 | (s[i + 2] & 63u);
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    } else if (len == 4) {
      unsigned cp = (c & 7u) << 18 | (s[i + 1] & 63u) << 12 | (s[i + 2] & 63u) << 6;
      if (cp < 0x10000 || cp > 0x10FFFF)
        return 0;
    }
    i += (size_t)len;
  }
  return 1;
}

/* ---------------------------------------------------------------- freeing */

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = cl_alloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

static void free_str(char *s) {
  if (s)
    cl_dealloc(s, strlen(s) + 1);
}

void cl_safetensors_free(cl_safetensors *st) {
  if (!st)
    return;
  for (int i = 0; i < st->count; i++) {
    free_str(st->entries[i].name);
    cl_release(st->entries[i].tensor);
  }
  if (st->entries)
    cl_dealloc(st->entries, (size_t)st->count * sizeof *st->entries);
  for (int i = 0; i < st->nmeta; i++) {
    free_str(st->meta_keys[i]);
    free_str(st->meta_values[i]);
  }
  if (st->meta_keys)
    cl_dealloc(st->meta_keys, (size_t)st->nmeta * sizeof *st->meta_keys);
  if (st->meta_values)
    cl_dealloc(st->meta_values, (size_t)st->nmeta * sizeof *st->meta_values);
  cl_dealloc(st, sizeof *st);
}

/* ---------------------------------------------------------------- loading */

/* Where the bytes come from: a buffer, or a file read with pread. */
typedef struct {
  const unsigned char *mem;
  int fd;
  uint64_t size;
  const char *name;
} st_source;

static int source_read(const st_source *src, uint64_t off, void *buf, size_t n) {
  if (src->mem) {
    memcpy(buf, src->mem + off, n);
    return 0;
  }
  size_t done = 0;
  while (done < n) {
    ssize_t got = pread(src->fd, (char *)buf + done, n - done, (off_t)(off + done));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return cl_fail("safetensors: %s: read error: %s", src->name,
                     got < 0 ? strerror(errno) : "file shrank while reading");
    done += (size_t)got;
  }
  return 0;
}

static int get_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item))
    return -1;
  double d = item->valuedouble;
  if (!(d >= 0) || d > ST_MAX_EXACT || d != floor(d))
    return -1;
  *out = (uint64_t)d;
  return 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const cl_st_entry *)a)->name, ((const cl_st_entry *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
  const cl_st_entry *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Fills entry e from the JSON object `info`; message names the tensor on failure. */
static int parse_entry(const char *file, const cJSON *info, cl_st_entry *e) {
  const char *tn = e->name;
  if (!cJSON_IsObject(info))
    return cl_fail("safetensors: %s: tensor '%s': expected an object {dtype, shape, "
                   "data_offsets}",
                   file, tn);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(info, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(info, "shape");
  const cJSON *of = cJSON_GetObjectItemCaseSensitive(info, "data_offsets");
  if (!cJSON_IsString(dt))
    return cl_fail("safetensors: %s: tensor '%s': missing or non-string dtype", file, tn);
  int type = st_type_of(dt->valuestring);
  if (type < 0)
    return cl_fail("safetensors: %s: tensor '%s': unsupported dtype '%.16s' (cnnlab reads F32, "
                   "F64, F16, BF16, U8, BOOL, I8, I16, I32, I64, U16, U32, U64)",
                   file, tn, dt->valuestring);
  strcpy(e->dtype, st_types[type].name);
  if (!cJSON_IsArray(sh))
    return cl_fail("safetensors: %s: tensor '%s': missing or non-array shape", file, tn);
  int ndim = cJSON_GetArraySize(sh);
  if (ndim > CL_MAX_DIMS)
    return cl_fail("safetensors: %s: tensor '%s': %d dimensions, at most %d supported", file, tn,
                   ndim, CL_MAX_DIMS);
  e->ndim = ndim;
  uint64_t numel = 1, bound = 1;
  int d = 0;
  for (const cJSON *s = sh->child; s; s = s->next, d++) {
    uint64_t v;
    if (get_uint(s, &v))
      return cl_fail("safetensors: %s: tensor '%s': shape entry %d is not a non-negative integer",
                     file, tn, d);
    /* A size-0 dimension counts as 1 in the bound, as cl_empty does: [0, 2^32, 2^32] would
     * pass the header and then fail (or overflow strides) when the data is loaded. */
    uint64_t size = v > 0 ? v : 1;
    if (bound > (UINT64_C(1) << 40) / size)
      return cl_fail("safetensors: %s: tensor '%s': shape too large (more than 2^40 elements)",
                     file, tn);
    bound *= size;
    e->shape[d] = (int64_t)v;
    numel *= v;
  }
  if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || get_uint(of->child, &e->begin) ||
      get_uint(of->child->next, &e->end))
    return cl_fail("safetensors: %s: tensor '%s': data_offsets must be [begin, end] with "
                   "non-negative integers",
                   file, tn);
  if (e->end < e->begin)
    return cl_fail("safetensors: %s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                   file, tn, (unsigned long long)e->begin, (unsigned long long)e->end);
  uint64_t need = numel * (uint64_t)st_types[type].size;
  if (e->end - e->begin != need) {
    char buf[96];
    return cl_fail("safetensors: %s: tensor '%s': shape [%s] of %s needs %llu bytes, data_offsets "
                   "[%llu, %llu] span %llu",
                   file, tn, cl_dims_str(ndim, e->shape, buf, sizeof buf), e->dtype,
                   (unsigned long long)need, (unsigned long long)e->begin,
                   (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
  }
  return 0;
}

/* Reads entry e's bytes (at data_start + begin) into a new tensor of cnnlab's dtype. */
static int load_tensor(const st_source *src, uint64_t data_start, cl_st_entry *e) {
  int type = st_type_of(e->dtype);
  int es = st_types[type].size;
  cl_tensor *t = cl_empty(st_types[type].to, e->ndim, e->shape);
  if (!t)
    return -1;
  e->tensor = t;
  uint64_t n = (uint64_t)cl_numel(t), nbytes = e->end - e->begin;
  int native = (type == ST_F32 || type == ST_U8 || type == ST_BOOL || type == ST_I64);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  native = native && es == 1;
#endif
  if (native)
    return nbytes ? source_read(src, data_start + e->begin, cl_data(t), (size_t)nbytes) : 0;
  enum { CHUNK = 1 << 16 };
  unsigned char *buf = cl_alloc(CHUNK);
  if (!buf)
    return -1;
  uint64_t per = CHUNK / (uint64_t)es;
  for (uint64_t i = 0; i < n; i += per) {
    uint64_t m = n - i < per ? n - i : per;
    if (source_read(src, data_start + e->begin + i * (uint64_t)es, buf, (size_t)(m * es))) {
      cl_dealloc(buf, CHUNK);
      return -1;
    }
    for (uint64_t j = 0; j < m; j++) {
      uint64_t raw = le_load(buf + j * (uint64_t)es, es);
      int64_t k = (int64_t)(i + j);
      switch (type) {
      case ST_F32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        cl_f32(t)[k] = f;
      } break;
      case ST_F64: {
        double dv;
        memcpy(&dv, &raw, 8);
        cl_f32(t)[k] = (float)dv;
      } break;
      case ST_F16:
        cl_f32(t)[k] = half_to_float((uint16_t)raw);
        break;
      case ST_BF16: {
        uint32_t u = (uint32_t)raw << 16;
        float f;
        memcpy(&f, &u, 4);
        cl_f32(t)[k] = f;
      } break;
      case ST_U8:
      case ST_BOOL:
        ((uint8_t *)cl_data(t))[k] = (uint8_t)raw;
        break;
      case ST_I8:
        ((int64_t *)cl_data(t))[k] = (int8_t)raw;
        break;
      case ST_I16:
        ((int64_t *)cl_data(t))[k] = (int16_t)raw;
        break;
      case ST_I32:
        ((int64_t *)cl_data(t))[k] = (int32_t)raw;
        break;
      case ST_I64:
        ((int64_t *)cl_data(t))[k] = (int64_t)raw;
        break;
      case ST_U16:
      case ST_U32:
        ((int64_t *)cl_data(t))[k] = (int64_t)raw;
        break;
      case ST_U64:
        if (raw > INT64_MAX) {
          cl_dealloc(buf, CHUNK);
          return cl_fail("safetensors: %s: tensor '%s': U64 value %llu at position %lld does not "
                         "fit int64",
                         src->name, e->name, (unsigned long long)raw, (long long)k);
        }
        ((int64_t *)cl_data(t))[k] = (int64_t)raw;
        break;
      }
    }
  }
  cl_dealloc(buf, CHUNK);
  return 0;
}

static cl_safetensors *parse(const st_source *src, int with_data) {
  const char *file = src->name;
  unsigned char lenbuf[8];
  if (src->size < 8)
    return (void)cl_fail("safetensors: %s: truncated: %llu bytes, too short for the 8-byte header "
                         "length",
                         file, (unsigned long long)src->size),
           NULL;
  if (source_read(src, 0, lenbuf, 8))
    return NULL;
  uint64_t hlen = le_load(lenbuf, 8);
  if (hlen > src->size - 8)
    return (void)cl_fail("safetensors: %s: truncated or corrupt: header length %llu exceeds the "
                         "%llu bytes after it",
                         file, (unsigned long long)hlen, (unsigned long long)(src->size - 8)),
           NULL;
  if (hlen > ST_MAX_HEADER)
    return (void)cl_fail("safetensors: %s: header of %llu bytes is larger than the 8 MiB "
                         "accepted",
                         file, (unsigned long long)hlen),
           NULL;
  char *hdr = cl_alloc((size_t)hlen + 1);
  if (!hdr)
    return NULL;
  cJSON *root = NULL;
  cl_safetensors *st = NULL;
  if (source_read(src, 8, hdr, (size_t)hlen))
    goto fail;
  hdr[hlen] = 0;
  if (!utf8_valid((unsigned char *)hdr, (size_t)hlen)) {
    cl_fail("safetensors: %s: header is not valid UTF-8", file);
    goto fail;
  }
  const char *end = NULL;
  root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
  if (!root || !cJSON_IsObject(root)) {
    const char *at = root ? hdr : cJSON_GetErrorPtr();
    long pos = at && at >= hdr && at <= hdr + hlen ? (long)(at - hdr) : -1;
    cl_fail("safetensors: %s: corrupt header: %s (at byte %ld of %llu)", file,
            root ? "not a JSON object" : "invalid JSON", pos, (unsigned long long)hlen);
    goto fail;
  }
  for (const char *p = end; p && p < hdr + hlen; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      cl_fail("safetensors: %s: corrupt header: data after the JSON object (at byte %ld)", file,
              (long)(p - hdr));
      goto fail;
    }

  if (cJSON_GetArraySize(root) > ST_MAX_ENTRIES) {
    cl_fail("safetensors: %s: %d entries in the header, at most %d accepted", file,
            cJSON_GetArraySize(root), ST_MAX_ENTRIES);
    goto fail;
  }
  st = cl_alloc(sizeof *st);
  if (!st)
    goto fail;
  memset(st, 0, sizeof *st);
  int count = 0, nmeta = 0;
  const cJSON *meta = NULL;
  for (const cJSON *it = root->child; it; it = it->next) {
    if (!strcmp(it->string, "__metadata__")) {
      if (meta) {
        cl_fail("safetensors: %s: duplicate __metadata__", file);
        goto fail;
      }
      meta = it;
    } else {
      count++;
    }
  }
  if (meta) {
    if (!cJSON_IsObject(meta)) {
      cl_fail("safetensors: %s: __metadata__ must be an object of strings", file);
      goto fail;
    }
    for (const cJSON *m = meta->child; m; m = m->next) {
      if (!cJSON_IsString(m)) {
        cl_fail("safetensors: %s: __metadata__ value of '%s' is not a string", file, m->string);
        goto fail;
      }
      nmeta++;
    }
  }
  if (count) {
    st->entries = cl_alloc((size_t)count * sizeof *st->entries);
    if (!st->entries)
      goto fail;
    memset(st->entries, 0, (size_t)count * sizeof *st->entries);
  }
  st->count = count;
  if (nmeta) {
    st->meta_keys = cl_alloc((size_t)nmeta * sizeof(char *));
    st->meta_values = cl_alloc((size_t)nmeta * sizeof(char *));
    if (!st->meta_keys || !st->meta_values) {
      /* keep free() consistent: it releases nmeta entries of both arrays */
      if (st->meta_keys)
        cl_dealloc(st->meta_keys, (size_t)nmeta * sizeof(char *));
      if (st->meta_values)
        cl_dealloc(st->meta_values, (size_t)nmeta * sizeof(char *));
      st->meta_keys = st->meta_values = NULL;
      goto fail;
    }
    memset(st->meta_keys, 0, (size_t)nmeta * sizeof(char *));
    memset(st->meta_values, 0, (size_t)nmeta * sizeof(char *));
    st->nmeta = nmeta;
    int i = 0;
    for (const cJSON *m = meta->child; m; m = m->next, i++) {
      st->meta_keys[i] = dup_str(m->string);
      st->meta_values[i] = dup_str(m->valuestring);
      if (!st->meta_keys[i] || !st->meta_values[i])
        goto fail;
    }
  }
  int i = 0;
  for (const cJSON *it = root->child; it; it = it->next) {
    if (it == meta)
      continue;
    cl_st_entry *e = &st->entries[i++];
    if (!(e->name = dup_str(it->string)) || parse_entry(file, it, e))
      goto fail;
  }
  if (count > 1) {
    qsort(st->entries, (size_t)count, sizeof *st->entries, cmp_name);
    for (i = 1; i < count; i++)
      if (!strcmp(st->entries[i - 1].name, st->entries[i].name)) {
        cl_fail("safetensors: %s: duplicate tensor name '%s'", file, st->entries[i].name);
        goto fail;
      }
    qsort(st->entries, (size_t)count, sizeof *st->entries, cmp_offset);
  }
  /* The data must be covered exactly, in order: no overlap, no gap, nothing after. */
  uint64_t data_size = src->size - 8 - hlen, pos = 0;
  for (i = 0; i < count; i++) {
    cl_st_entry *e = &st->entries[i];
    if (e->end > data_size) {
      cl_fail("safetensors: %s: truncated: tensor '%s' ends at data byte %llu, the file has %llu "
              "bytes of data",
              file, e->name, (unsigned long long)e->end, (unsigned long long)data_size);
      goto fail;
    }
    if (e->begin < pos) {
      cl_fail("safetensors: %s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s'", file,
              e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
              st->entries[i - 1].name);
      goto fail;
    }
    if (e->begin > pos) {
      cl_fail("safetensors: %s: tensor '%s': gap of %llu bytes before its data_offsets [%llu, "
              "%llu]",
              file, e->name, (unsigned long long)(e->begin - pos), (unsigned long long)e->begin,
              (unsigned long long)e->end);
      goto fail;
    }
    pos = e->end;
  }
  if (pos != data_size) {
    cl_fail("safetensors: %s: %llu bytes after the last tensor's data (the tensors cover %llu of "
            "%llu)",
            file, (unsigned long long)(data_size - pos), (unsigned long long)pos,
            (unsigned long long)data_size);
    goto fail;
  }
  if (with_data)
    for (i = 0; i < count; i++)
      if (load_tensor(src, 8 + hlen, &st->entries[i]))
        goto fail;
  cJSON_Delete(root);
  cl_dealloc(hdr, (size_t)hlen + 1);
  return st;
fail:
  cJSON_Delete(root);
  cl_dealloc(hdr, (size_t)hlen + 1);
  cl_safetensors_free(st);
  return NULL;
}

cl_safetensors *cl_parse_safetensors(const void *data, size_t size, const char *name,
                                     int with_data) {
  st_source src = {data ? (const unsigned char *)data : (const unsigned char *)"", -1, size, name};
  return parse(&src, with_data);
}

cl_safetensors *cl_load_safetensors(const char *path, int with_data) {
  uint64_t fsize;
  int fd = cl_open_regular(path, "safetensors", &fsize);
  if (fd < 0)
    return NULL;
  st_source src = {NULL, fd, fsize, path};
  cl_safetensors *st = parse(&src, with_data);
  close(fd);
  return st;
}

/* ---------------------------------------------------------------- saving */

/* A growing string for the header. */
typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + n + 1 > cap)
      cap *= 2;
    char *q = cl_alloc(cap);
    if (!q) {
      b->oom = 1;
      return;
    }
    if (b->p) {
      memcpy(q, b->p, b->len);
      cl_dealloc(b->p, b->cap);
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      sb_put(b, esc, 2);
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      sb_put(b, esc, 6);
    } else {
      sb_put(b, (const char *)&c, 1);
    }
  }
  sb_put(b, "\"", 1);
}

static const char *st_name_of(cl_dtype d) {
  return d == CL_FLOAT32 ? "F32" : d == CL_UINT8 ? "U8" : "I64";
}

typedef struct {
  const char *name;
  const cl_tensor *t;
} named;

static int cmp_save(const void *a, const void *b) {
  const named *x = a, *y = b;
  size_t sx = cl_dtype_size(x->t->dtype), sy = cl_dtype_size(y->t->dtype);
  if (sx != sy)
    return sx > sy ? -1 : 1;
  return strcmp(x->name, y->name);
}

typedef struct {
  const char *key, *value;
} meta_pair;

static int cmp_meta(const void *a, const void *b) {
  return strcmp(((const meta_pair *)a)->key, ((const meta_pair *)b)->key);
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int write_tensor(FILE *f, const cl_tensor *t) {
  int64_t n = cl_numel(t);
  size_t es = cl_dtype_size(t->dtype);
  int le = 1;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  le = es == 1;
#endif
  if (le && cl_is_contiguous(t))
    return write_all(f, cl_data(t), (size_t)n * es);
  unsigned char buf[1 << 14];
  size_t fill = 0;
  const void *data = cl_data(t);
  for (int64_t i = 0; i < n; i++) {
    int64_t off = cl_offset_of(t, i);
    uint64_t raw = 0;
    if (t->dtype == CL_FLOAT32) {
      uint32_t u;
      memcpy(&u, (const float *)data + off, 4);
      raw = u;
    } else if (t->dtype == CL_UINT8) {
      raw = ((const uint8_t *)data)[off];
    } else {
      raw = (uint64_t)((const int64_t *)data)[off];
    }
    le_store(buf + fill, raw, (int)es);
    fill += es;
    if (fill + 8 > sizeof buf) {
      if (write_all(f, buf, fill))
        return -1;
      fill = 0;
      /* an expanded view can announce terabytes from a few bytes of storage: Ctrl-C stops it */
      if (cl_check_interrupt())
        return -2;
    }
  }
  return fill ? write_all(f, buf, fill) : 0;
}

int cl_save_safetensors(const char *path, int count, const char *const *names,
                        cl_tensor *const *tensors, int nmeta, const char *const *meta_keys,
                        const char *const *meta_values) {
  if (count < 0 || nmeta < 0)
    return cl_fail("safetensors: %s: negative count", path);
  for (int i = 0; i < count; i++) {
    if (!names[i] || !names[i][0])
      return cl_fail("safetensors: %s: tensor %d has an empty name", path, i);
    if (!strcmp(names[i], "__metadata__"))
      return cl_fail("safetensors: %s: '__metadata__' cannot name a tensor", path);
    if (!utf8_valid((const unsigned char *)names[i], strlen(names[i])))
      return cl_fail("safetensors: %s: tensor name '%s' is not valid UTF-8", path, names[i]);
    if (!tensors[i])
      return cl_fail("safetensors: %s: tensor '%s' is missing", path, names[i]);
  }
  for (int i = 0; i < nmeta; i++)
    if (!utf8_valid((const unsigned char *)meta_keys[i], strlen(meta_keys[i])) ||
        !utf8_valid((const unsigned char *)meta_values[i], strlen(meta_values[i])))
      return cl_fail("safetensors: %s: metadata '%s' is not valid UTF-8", path, meta_keys[i]);

  size_t nbytes = (size_t)(count ? count : 1) * sizeof(named);
  size_t mbytes = (size_t)(nmeta ? nmeta : 1) * sizeof(meta_pair);
  named *order = cl_alloc(nbytes);
  meta_pair *meta = cl_alloc(mbytes);
  sbuf hb = {0};
  int rc = -1;
  if (!order || !meta)
    goto done;
  for (int i = 0; i < count; i++)
    order[i] = (named){names[i], tensors[i]};
  qsort(order, (size_t)count, sizeof *order, cmp_save);
  for (int i = 1; i < count; i++)
    if (!strcmp(order[i - 1].name, order[i].name)) {
      cl_fail("safetensors: %s: duplicate tensor name '%s'", path, order[i].name);
      goto done;
    }
  /* Metadata keys sorted too, so equal contents give equal files. */
  for (int i = 0; i < nmeta; i++)
    meta[i] = (meta_pair){meta_keys[i], meta_values[i]};
  qsort(meta, (size_t)nmeta, sizeof *meta, cmp_meta);
  for (int i = 1; i < nmeta; i++)
    if (!strcmp(meta[i - 1].key, meta[i].key)) {
      cl_fail("safetensors: %s: duplicate metadata key '%s'", path, meta[i].key);
      goto done;
    }

  sb_puts(&hb, "{");
  if (nmeta > 0) {
    sb_puts(&hb, "\"__metadata__\":{");
    for (int i = 0; i < nmeta; i++) {
      if (i)
        sb_puts(&hb, ",");
      sb_json_string(&hb, meta[i].key);
      sb_puts(&hb, ":");
      sb_json_string(&hb, meta[i].value);
    }
    sb_puts(&hb, "}");
  }
  uint64_t off = 0;
  for (int i = 0; i < count; i++) {
    const cl_tensor *t = order[i].t;
    char num[64];
    if (i || nmeta > 0)
      sb_puts(&hb, ",");
    sb_json_string(&hb, order[i].name);
    sb_puts(&hb, ":{\"dtype\":\"");
    sb_puts(&hb, st_name_of(t->dtype));
    sb_puts(&hb, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
      sb_puts(&hb, num);
    }
    uint64_t size = (uint64_t)cl_numel(t) * cl_dtype_size(t->dtype);
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
             (unsigned long long)(off + size));
    sb_puts(&hb, num);
    off += size;
  }
  sb_puts(&hb, "}");
  while (!hb.oom && hb.len % 8)
    sb_puts(&hb, " ");
  if (hb.oom) {
    cl_fail("not enough memory");
    goto done;
  }

  cl_atomic a;
  if (cl_atomic_begin(&a, path, "safetensors"))
    goto done;
  FILE *f = fdopen(a.fd, "wb");
  if (!f) {
    cl_atomic_abort(&a, NULL);
    cl_fail("safetensors: %s: cannot open the temporary file", path);
    goto done;
  }
  unsigned char lenbuf[8];
  le_store(lenbuf, hb.len, 8);
  errno = 0;
  int bad = write_all(f, lenbuf, 8) || write_all(f, hb.p, hb.len);
  int at = 0;
  for (; at < count && !bad; at++)
    bad = write_tensor(f, order[at].t);
  if (bad == -2) {
    cl_atomic_abort(&a, f);
    cl_fail("safetensors: %s: interrupted while writing '%s'; any earlier file there is unchanged",
            path, order[at - 1].name);
    goto done;
  }
  if (bad) {
    /* The system's reason (no space, file too large, ...) rather than a guess; saved before
     * the cleanup can change errno. */
    int e = errno;
    cl_atomic_abort(&a, f);
    cl_fail("safetensors: %s: write failed: %s; any earlier file there is unchanged", path,
            e ? strerror(e) : "I/O error");
    goto done;
  }
  rc = cl_atomic_commit(&a, f, path, "safetensors");
done:
  if (order)
    cl_dealloc(order, nbytes);
  if (meta)
    cl_dealloc(meta, mbytes);
  if (hb.p)
    cl_dealloc(hb.p, hb.cap);
  return rc;
}

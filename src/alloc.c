/* alloc.c — counted, aligned allocation and the core's error message. */
#include "cnnlab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* One message per thread: kernels may fail inside OpenMP regions. */
static _Thread_local char error_message[512];

const char *cl_last_error(void) { return error_message[0] ? error_message : "unknown error"; }

int cl_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  return -1;
}

static size_t bytes_in_use, bytes_peak;
static long allocations, fail_at;

/* 64-byte alignment lets the kernels use full-width vector loads. */
#define CL_ALIGN 64

void *cl_alloc(size_t nbytes) {
  allocations++;
  if (fail_at > 0 && allocations >= fail_at) {
    fail_at = 0;
    cl_fail("not enough memory");
    return NULL;
  }
  size_t rounded = (nbytes + CL_ALIGN - 1) / CL_ALIGN * CL_ALIGN;
  if (rounded == 0)
    rounded = CL_ALIGN;
  void *p = aligned_alloc(CL_ALIGN, rounded);
  if (!p) {
    cl_fail("not enough memory (asked for %zu bytes)", nbytes);
    return NULL;
  }
  bytes_in_use += nbytes;
  if (bytes_in_use > bytes_peak)
    bytes_peak = bytes_in_use;
  return p;
}

void *cl_calloc(size_t nbytes) {
  unsigned char *p = cl_alloc(nbytes);
  if (p)
    for (size_t i = 0; i < nbytes; i++)
      p[i] = 0;
  return p;
}

void cl_dealloc(void *p, size_t nbytes) {
  if (!p)
    return;
  bytes_in_use -= nbytes;
  free(p);
}

size_t cl_mem_in_use(void) { return bytes_in_use; }
size_t cl_mem_peak(void) { return bytes_peak; }

void cl_fail_alloc_after(long n) { fail_at = n > 0 ? allocations + n : 0; }
long cl_alloc_count(void) { return allocations; }

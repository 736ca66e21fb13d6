/* alloc.c — counted, aligned allocation with a cache of big blocks, and the core's error
 * message.
 *
 * Why a cache: a training step allocates the same large buffers (activations, gradients,
 * column matrices) every step. glibc serves blocks of this size with mmap and returns them
 * with munmap, so every step paid the kernel for fresh zeroed pages again (about a tenth of
 * a step at batch 128). Blocks of CACHE_MIN bytes or more are therefore rounded up to a size
 * class and, when released, kept on that class's free list for the next request of the class.
 *
 * What stays the same for callers:
 *  - Every cl_alloc() counts as an allocation, cache hit or not, so cl_fail_alloc_after(n)
 *    still makes exactly the n-th allocation fail.
 *  - cl_mem_in_use() and cl_mem_peak() count live bytes only (what callers asked for); cached
 *    blocks are not "in use". cl_mem_cached() reports them.
 * What the cache costs: memory the core held once and will probably hold again stays
 * resident. It is bounded: live + cached bytes (blocks counted at their class size) never
 * exceed the high-water mark of live bytes plus max(CACHE_FLOOR, an eighth of it), see
 * cache_bound.
 * cl_mem_trim() hands every cached block back to the C library.
 * Under AddressSanitizer the cache is off, so use-after-free stays detectable.
 *
 * Not thread-safe, like the counters: kernels allocate before their parallel regions. */
#include "cnnlab.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
/* The same, with big blocks counted at their class size: what the C library really holds. */
static size_t bytes_held, bytes_held_peak;

/* 64-byte alignment lets the kernels use full-width vector loads. */
#define CL_ALIGN 64

/* ---------------------------------------------------------------- the block cache */

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_ENABLED 0
#endif
#endif
#ifndef CACHE_ENABLED
#define CACHE_ENABLED 1
#endif

/* Blocks below this go straight to the C library, whose small-block bins are fast already. */
#define CACHE_MIN ((size_t)64 << 10)
/* Live + cached may always reach this much, even before the live peak has. */
#define CACHE_FLOOR ((size_t)64 << 20)
/* Size classes: 8 per power of two (2^e·(8 + j)/8), so rounding wastes at most 1/8 of the
 * address space of a block, and untouched tail pages are never made resident. */
#define CLASS_STEPS 8
#define CLASS_COUNT (64 * CLASS_STEPS)

typedef struct cached_block {
  struct cached_block *next;
} cached_block;

static cached_block *free_lists[CLASS_COUNT];
static size_t bytes_cached;

/* The smallest class holding n bytes (n >= CACHE_MIN), and that class's size. */
static int class_of(size_t n, size_t *class_bytes) {
  int e = 63 - __builtin_clzll((unsigned long long)n); /* 2^e <= n < 2^(e+1) */
  size_t unit = (size_t)1 << (e - 3);                  /* 2^e / CLASS_STEPS */
  size_t j = (n - ((size_t)1 << e) + unit - 1) / unit; /* 0..8 */
  *class_bytes = ((size_t)1 << e) + j * unit;
  return e * CLASS_STEPS + (int)j; /* j = 8 is the next power's class 0: same index */
}

/* Frees cached blocks, biggest classes first, until `room` more bytes fit under the bound:
 * held (live) + cached + room <= the peak of held bytes + slack (cache_bound). A
 * release moves bytes from held to cached, so it always fits; only a miss can need room.
 * Why the half on top: Lua frees a step's tensors when its collector runs, not when the step
 * ends, so the mix of sizes in use drifts from one collection to the next; with the bound at
 * the peak itself, the seed network's training loop (batch 64) missed and evicted about 12 MB
 * a step, and its resident memory swung by 10%. With the slack: no eviction, flat. */
static size_t cache_bound(void) {
  size_t peak = bytes_held_peak > CACHE_FLOOR ? bytes_held_peak : CACHE_FLOOR;
  /* The slack covers the drift of a step's buffers, not the peak: a peak that includes a data
   * set (Task 1 holds 220 MB of images) would otherwise let the cache keep ~100 MB it never
   * needs. CACHE_FLOOR (64 MB) is above the drift measured at batch 128. */
  size_t slack = peak / 8 > CACHE_FLOOR ? peak / 8 : CACHE_FLOOR;
  return peak + slack;
}

static void cache_make_room(size_t room) {
  size_t bound = cache_bound();
  for (int c = CLASS_COUNT - 1; c >= 0 && bytes_cached && bytes_held + bytes_cached + room > bound;
       c--) {
    while (free_lists[c] && bytes_held + bytes_cached + room > bound) {
      cached_block *b = free_lists[c];
      free_lists[c] = b->next;
      size_t size =
          ((size_t)1 << (c / CLASS_STEPS)) / CLASS_STEPS * (size_t)(CLASS_STEPS + c % CLASS_STEPS);
      bytes_cached -= size;
      free(b);
    }
  }
}

void cl_mem_trim(void) {
  for (int c = 0; c < CLASS_COUNT; c++)
    while (free_lists[c]) {
      cached_block *b = free_lists[c];
      free_lists[c] = b->next;
      free(b);
    }
  bytes_cached = 0;
}

size_t cl_mem_cached(void) { return bytes_cached; }

/* ---------------------------------------------------------------- allocation */

/* A ceiling on one allocation (0: none), for harnesses whose own memory limit must not be
 * reached (the fuzzers): a refusal is the core's ordinary "not enough memory" failure. */
static size_t alloc_limit;
void cl_set_alloc_limit(size_t nbytes) { alloc_limit = nbytes; }

/* ---------------------------------------------------------------- interruption
 * A SIGINT handler calls cl_interrupt(); long loops poll cl_check_interrupt() and fail with
 * "interrupted", which the binding raises as a Lua error. */
static volatile sig_atomic_t interrupt_flag;
void cl_interrupt(void) { interrupt_flag = 1; }
void cl_interrupt_clear(void) { interrupt_flag = 0; }
int cl_interrupt_pending(void) { return interrupt_flag != 0; }
int cl_check_interrupt(void) {
  if (!interrupt_flag)
    return 0;
  interrupt_flag = 0;
  return cl_fail("interrupted");
}

void *cl_alloc(size_t nbytes) {
  allocations++;
  if (fail_at > 0 && allocations >= fail_at) {
    fail_at = 0;
    cl_fail("not enough memory");
    return NULL;
  }
  if (alloc_limit && nbytes > alloc_limit) {
    cl_fail("not enough memory (asked for %zu bytes, the limit set is %zu)", nbytes, alloc_limit);
    return NULL;
  }
  void *p = NULL;
  size_t held = nbytes;
  if (CACHE_ENABLED && nbytes >= CACHE_MIN && nbytes <= SIZE_MAX / 2) {
    size_t class_bytes;
    int c = class_of(nbytes, &class_bytes);
    if (free_lists[c]) {
      cached_block *b = free_lists[c];
      free_lists[c] = b->next;
      bytes_cached -= class_bytes;
      p = b;
    } else {
      cache_make_room(class_bytes);
      p = aligned_alloc(CL_ALIGN, class_bytes);
    }
    held = class_bytes;
  } else {
    size_t rounded = (nbytes + CL_ALIGN - 1) / CL_ALIGN * CL_ALIGN;
    if (rounded == 0)
      rounded = CL_ALIGN;
    p = aligned_alloc(CL_ALIGN, rounded);
  }
  if (!p) {
    cl_fail("not enough memory (asked for %zu bytes)", nbytes);
    return NULL;
  }
  bytes_in_use += nbytes;
  if (bytes_in_use > bytes_peak)
    bytes_peak = bytes_in_use;
  bytes_held += held;
  if (bytes_held > bytes_held_peak)
    bytes_held_peak = bytes_held;
  return p;
}

void *cl_calloc(size_t nbytes) {
  void *p = cl_alloc(nbytes);
  if (p)
    memset(p, 0, nbytes);
  return p;
}

void cl_dealloc(void *p, size_t nbytes) {
  if (!p)
    return;
  bytes_in_use -= nbytes;
  if (CACHE_ENABLED && nbytes >= CACHE_MIN && nbytes <= SIZE_MAX / 2) {
    size_t class_bytes;
    int c = class_of(nbytes, &class_bytes);
    cached_block *b = p;
    b->next = free_lists[c];
    free_lists[c] = b;
    bytes_cached += class_bytes;
    bytes_held -= class_bytes;
    return;
  }
  bytes_held -= nbytes;
  free(p);
}

size_t cl_mem_in_use(void) { return bytes_in_use; }
size_t cl_mem_peak(void) { return bytes_peak; }

void cl_fail_alloc_after(long n) { fail_at = n > 0 ? allocations + n : 0; }
long cl_alloc_count(void) { return allocations; }

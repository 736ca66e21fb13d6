/* ops_impl.h — what the operation files (src/ops/) share; not public.
 *
 * Threads: kernels split their work over samples (or over N·C planes) into chunks that depend
 * on the work only (chunk_plan); every output element is computed within one chunk in a fixed
 * order, and the only cross-chunk sums (conv2d's weight and bias gradients) add per-chunk
 * partials in chunk order. Results therefore repeat bit for bit, for any thread count.
 * Scratch memory is allocated before a region (one piece per thread), never inside: the
 * allocator's counters are not thread-safe. */
#ifndef CNNLAB_OPS_IMPL_H
#define CNNLAB_OPS_IMPL_H

#include "core/tensor_impl.h"

#include <limits.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many floating-point operations a parallel region costs more than it saves. */
#define PARALLEL_MIN_WORK 200000.0

static inline int available_threads(void) {
  int n = cl_get_threads(); /* also applies the configured count to OpenMP before any region */
#ifdef _OPENMP
  int omp = omp_get_max_threads();
  if (omp < n)
    n = omp;
#endif
  return n > 0 ? n : 1;
}

static inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

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

static inline chunking chunk_plan(int64_t items, int64_t max_chunks, int64_t align, double work) {
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

static inline void chunk_range(const chunking *c, int64_t i, int64_t *lo, int64_t *hi) {
  *lo = i * c->size;
  *hi = *lo + c->size < c->items ? *lo + c->size : c->items;
}

static inline int thread_number(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

static inline int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/* Releases up to four tensors; keeps the error paths short. */
static inline void release4(cl_tensor *a, cl_tensor *b, cl_tensor *c, cl_tensor *d) {
  cl_release(a);
  cl_release(b);
  cl_release(c);
  cl_release(d);
}

#endif

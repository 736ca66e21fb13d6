/*
 * cnnlab.h — the C API of the cnnlab core: tensors, reverse-mode autograd, CNN layers,
 * optimizers and file formats. No Lua in here; the binding (src/lua/) wraps this API.
 *
 * Conventions
 *  - Every function that can fail returns NULL (or -1) and leaves a message in
 *    cl_last_error(); it never aborts and never leaks on failure.
 *  - Tensors are reference counted: a function that returns a cl_tensor* hands the caller
 *    one reference, to be dropped with cl_release(). Arguments are borrowed.
 *  - Positions (dimensions, indices) count from 0.
 *  - Float tensors are float32; kernels want contiguous NCHW buffers and make a contiguous
 *    copy when given a strided view.
 */
#ifndef CNNLAB_H
#define CNNLAB_H

#include <stddef.h>
#include <stdint.h>

#define CL_MAX_DIMS 8

/* ---------------------------------------------------------------- errors, memory */

const char *cl_last_error(void);
/* Sets the message returned by cl_last_error(); always returns -1 for `return cl_fail(...)`. */
int cl_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* All core allocations go through these: they count bytes (Lua's collector cannot see them),
 * return 64-byte aligned memory, and can be made to fail for fault-injection tests. */
void *cl_alloc(size_t nbytes);
void *cl_calloc(size_t nbytes);
void cl_dealloc(void *p, size_t nbytes);
size_t cl_mem_in_use(void);
size_t cl_mem_peak(void);
/* Make the n-th allocation from now fail (n >= 1); 0 disables. Returns allocations so far. */
void cl_fail_alloc_after(long n);
long cl_alloc_count(void);
/* Refuse any single allocation above nbytes (0: no ceiling), as "not enough memory". */
void cl_set_alloc_limit(size_t nbytes);

/* ---------------------------------------------------------------- interruption */

/* cl_interrupt() is async-signal-safe: a SIGINT handler calls it. Every long loop of the core
 * (copies, fills, reductions, element-wise ops) polls cl_check_interrupt() every
 * CL_POLL_MASK + 1 elements; it returns -1 with the message "interrupted" (clearing the
 * request) when one is pending, 0 otherwise. */
void cl_interrupt(void);
void cl_interrupt_clear(void);
int cl_interrupt_pending(void);
int cl_check_interrupt(void);
#define CL_POLL_MASK 0xFFFF
#define CL_POLL(i) (((i) & CL_POLL_MASK) == CL_POLL_MASK && cl_check_interrupt())

/* ---------------------------------------------------------------- the block cache */

/* Released blocks of 64 KB and more are kept for reuse (a training step asks for the same
 * sizes every step); they are not counted in cl_mem_in_use(). Live + cached bytes stay under
 * 1.5 × the peak of live bytes (at least 64 MB). cl_mem_trim() returns the cached blocks to
 * the C library. See src/core/alloc.c and docs/performance.md. */
size_t cl_mem_cached(void);
void cl_mem_trim(void);

/* ---------------------------------------------------------------- tensors */

typedef enum { CL_FLOAT32 = 0, CL_UINT8 = 1, CL_INT64 = 2 } cl_dtype;

typedef struct cl_storage {
  void *data;
  size_t nbytes;
  int refcount;
  uint32_t version; /* bumped by every in-place write, so backward can spot stale saves */
} cl_storage;

struct cl_node;

typedef struct cl_tensor {
  cl_storage *storage;
  int64_t offset; /* in elements */
  int ndim;
  int64_t shape[CL_MAX_DIMS];
  int64_t stride[CL_MAX_DIMS]; /* in elements */
  cl_dtype dtype;
  int refcount;
  uint64_t id; /* unique for the life of the process; bindings key hooks by it */
  unsigned requires_grad : 1;
  unsigned retains_grad : 1;
  unsigned has_hooks : 1;
  struct cl_tensor *grad;  /* accumulated gradient (leaves and retained tensors) */
  struct cl_node *grad_fn; /* the op that made this tensor, NULL for leaves */
  /* scratch owned by cl_backward() while it runs */
  struct cl_tensor *bw_grad;
  int bw_pending;
  uint32_t bw_pass;
  struct cl_tensor *free_next; /* cl_release() frees chains iteratively through this */
} cl_tensor;

const char *cl_dtype_name(cl_dtype dtype);
size_t cl_dtype_size(cl_dtype dtype);
/* Parses "float32"/"float", "uint8"/"byte", "int64"/"long"; returns -1 when unknown. */
int cl_dtype_parse(const char *name);

cl_tensor *cl_empty(cl_dtype dtype, int ndim, const int64_t *shape);
cl_tensor *cl_zeros(cl_dtype dtype, int ndim, const int64_t *shape);
cl_tensor *cl_full(cl_dtype dtype, int ndim, const int64_t *shape, double value);
cl_tensor *cl_arange(double start, double end, double step, cl_dtype dtype);
cl_tensor *cl_empty_like(const cl_tensor *t);
cl_tensor *cl_zeros_like(const cl_tensor *t);
/* Wraps a copy of `n` elements of `data` (of `dtype`) with the given shape. */
cl_tensor *cl_from_data(cl_dtype dtype, int ndim, const int64_t *shape, const void *data);

void cl_retain(cl_tensor *t);
void cl_release(cl_tensor *t); /* NULL is allowed */

int64_t cl_numel(const cl_tensor *t);
int cl_is_contiguous(const cl_tensor *t);
/* Pointer to the first element (storage + offset). */
void *cl_data(const cl_tensor *t);
float *cl_f32(const cl_tensor *t);
/* "2×3×28×28" into buf; returns buf. */
const char *cl_shape_str(const cl_tensor *t, char *buf, size_t len);
int cl_same_shape(const cl_tensor *a, const cl_tensor *b);

/* Element access by position; idx has t->ndim entries, each checked. */
int cl_get(const cl_tensor *t, const int64_t *idx, double *value);
int cl_set(cl_tensor *t, const int64_t *idx, double value);
/* Exact integer access for int64 tensors (other dtypes convert; a value a uint8 tensor cannot
 * hold is refused rather than saturated). */
int cl_get_i64(const cl_tensor *t, const int64_t *idx, int64_t *value);
int cl_set_i64(cl_tensor *t, const int64_t *idx, int64_t value);
int cl_fill_i64_(cl_tensor *t, int64_t value);
int64_t cl_item_i64_at(const cl_tensor *t, int64_t linear); /* no checks, int64 tensors */
/* Whether v can be stored in an integer tensor of dtype exactly-enough: finite and within the
 * dtype's range (floats always pass); -1 with a message naming fn otherwise. */
int cl_check_value(const char *fn, cl_dtype dtype, double v);
double cl_item_at(const cl_tensor *t, int64_t linear); /* no checks: linear in row-major order */

/* In-place writes (refused on a leaf that requires grad while grad mode is on). */
int cl_fill_(cl_tensor *t, double value);
int cl_copy_(cl_tensor *dst, const cl_tensor *src); /* broadcasts src, converts dtype */

/* Differentiable copies and views. Views share storage. */
cl_tensor *cl_contiguous(cl_tensor *t); /* a new reference to t itself when contiguous */
cl_tensor *cl_clone(cl_tensor *t);
cl_tensor *cl_to_dtype(cl_tensor *t, cl_dtype dtype);
cl_tensor *cl_reshape(cl_tensor *t, int ndim, const int64_t *shape); /* one entry may be -1 */
cl_tensor *cl_narrow(cl_tensor *t, int dim, int64_t start, int64_t length);
cl_tensor *cl_select(cl_tensor *t, int dim, int64_t index);
cl_tensor *cl_transpose(cl_tensor *t, int dim0, int dim1);
cl_tensor *cl_permute(cl_tensor *t, const int *perm);
cl_tensor *cl_unsqueeze(cl_tensor *t, int dim);
cl_tensor *cl_squeeze(cl_tensor *t, int dim); /* dim < 0: every size-1 dim */
cl_tensor *cl_expand(cl_tensor *t, int ndim, const int64_t *shape);
/* A new header on the same storage, cut from the graph. */
cl_tensor *cl_detach(const cl_tensor *t);

/* ---------------------------------------------------------------- random numbers */

/* PCG32 (O'Neill 2014): the same sequence on every machine for a given seed and stream. */
typedef struct cl_rng {
  uint64_t state;
  uint64_t inc;
} cl_rng;

void cl_rng_seed(cl_rng *r, uint64_t seed, uint64_t stream);
uint32_t cl_rng_u32(cl_rng *r);
double cl_rng_uniform(cl_rng *r);            /* [0, 1), 53-bit */
float cl_rng_uniform_f(cl_rng *r);           /* [0, 1), 24-bit */
double cl_rng_normal(cl_rng *r);             /* Box–Muller, one draw per call pair-free */
uint32_t cl_rng_below(cl_rng *r, uint32_t n); /* uniform in [0, n), unbiased */
cl_rng *cl_default_rng(void);

cl_tensor *cl_rand(cl_rng *r, int ndim, const int64_t *shape);  /* U[0,1) */
cl_tensor *cl_randn(cl_rng *r, int ndim, const int64_t *shape); /* N(0,1) */
cl_tensor *cl_randperm(cl_rng *r, int64_t n);                   /* int64 */

/* ---------------------------------------------------------------- arithmetic */

typedef enum {
  CL_ADD, CL_SUB, CL_MUL, CL_DIV, CL_POW, CL_MAXIMUM, CL_MINIMUM,
  CL_EQ, CL_NE, CL_LT, CL_LE, CL_GT, CL_GE
} cl_binop;

/* Broadcasting as NumPy does: shapes align on the right, size-1 dims stretch.
 * Comparisons give uint8 0/1 and no gradient. */
cl_tensor *cl_binary(cl_binop op, cl_tensor *a, cl_tensor *b);
/* t op s, or s op t when `scalar_first` is set. */
cl_tensor *cl_binary_scalar(cl_binop op, cl_tensor *t, double s, int scalar_first);

typedef enum {
  CL_NEG, CL_EXP, CL_LOG, CL_RELU, CL_SIGMOID, CL_TANH, CL_ABS, CL_SIGN, CL_SQRT, CL_SQUARE
} cl_unop;
cl_tensor *cl_unary(cl_unop op, cl_tensor *t);
cl_tensor *cl_clamp(cl_tensor *t, double lo, double hi); /* NaN bound = no bound */

/* ---------------------------------------------------------------- reductions */

/* A negative dim counts from the end; CL_ALL_DIMS reduces everything to a 0-d tensor (or
 * all-ones shape with keepdim). Integer sums are int64. */
#define CL_ALL_DIMS (-128)
cl_tensor *cl_sum(cl_tensor *t, int dim, int keepdim);
cl_tensor *cl_mean(cl_tensor *t, int dim, int keepdim);
/* Along dim: values (differentiable) and int64 positions; either out pointer may be NULL. */
int cl_max(cl_tensor *t, int dim, int keepdim, cl_tensor **values, cl_tensor **indices);
int cl_min(cl_tensor *t, int dim, int keepdim, cl_tensor **values, cl_tensor **indices);
/* Over all elements → 0-d; backward shares the gradient evenly among tied extremes (PyTorch's
 * t.max()), where cl_max along a dim sends it to one index (PyTorch's t.max(dim)). */
cl_tensor *cl_max_all(cl_tensor *t);
cl_tensor *cl_min_all(cl_tensor *t);
cl_tensor *cl_argmax(cl_tensor *t, int dim, int keepdim);
cl_tensor *cl_softmax(cl_tensor *t, int dim);
cl_tensor *cl_log_softmax(cl_tensor *t, int dim);

/* ---------------------------------------------------------------- indexing, joining */

cl_tensor *cl_index_select(cl_tensor *t, int dim, const cl_tensor *index);
cl_tensor *cl_gather(cl_tensor *t, int dim, const cl_tensor *index);
cl_tensor *cl_cat(int n, cl_tensor *const *ts, int dim);

/* ---------------------------------------------------------------- linear algebra */

/* C[M×N] = alpha·op(A)·op(B) + beta·C, row-major; CBLAS or the portable kernel. */
void cl_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);
const char *cl_gemm_backend(void);
cl_tensor *cl_matmul(cl_tensor *a, cl_tensor *b); /* 2-D × 2-D */

/* ---------------------------------------------------------------- neural-network ops */

/* x N×C×H×W, w O×C×K×K, b O or NULL → N×O×H'×W'. */
cl_tensor *cl_conv2d(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding);
/* Square window; positions of the maxima are kept for backward. */
cl_tensor *cl_max_pool2d(cl_tensor *x, int kernel, int stride);
/* max_pool2d(relu(conv2d(x, w, b, stride, padding)), pool_kernel, pool_stride) as one op, the
 * same bits forward and backward, without storing the convolution's or the ReLU's output
 * (nn.Sequential runs it when no hook observes them; docs/performance.md). */
cl_tensor *cl_conv2d_relu_pool(cl_tensor *x, cl_tensor *w, cl_tensor *b, int stride, int padding,
                               int pool_kernel, int pool_stride);
/* x N×I, w O×I (PyTorch layout), b O or NULL → N×O. */
cl_tensor *cl_linear(cl_tensor *x, cl_tensor *w, cl_tensor *b);
/* Inverted dropout; identity when !training or p == 0. */
cl_tensor *cl_dropout(cl_tensor *x, double p, int training, cl_rng *r);
/* PyTorch's F.batch_norm: x N×C, N×C×L or N×C×H×W; weight, bias, running_mean, running_var
 * C or NULL. Batch statistics when training or without running statistics (biased variance
 * for normalising); then, when training with running statistics, updates them in place:
 * r = (1 − momentum)·r + momentum·batch value, the variance unbiased. Else the running ones. */
cl_tensor *cl_batch_norm(cl_tensor *x, cl_tensor *weight, cl_tensor *bias,
                         cl_tensor *running_mean, cl_tensor *running_var, int training,
                         double momentum, double eps);
/* N×C×H×W → N×C×OH×OW, OH = ⌊(H + 2P − K)/S⌋ + 1; padding counts as zeros in the K² divisor
 * (PyTorch's count_include_pad = True, ceil_mode = False), P ≤ K/2. */
cl_tensor *cl_avg_pool2d(cl_tensor *x, int kernel, int stride, int padding);
/* N×C×H×W → N×C×OH×OW, windows [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) as PyTorch's. */
cl_tensor *cl_adaptive_avg_pool2d(cl_tensor *x, int out_h, int out_w);
typedef enum { CL_REDUCE_NONE, CL_REDUCE_MEAN, CL_REDUCE_SUM } cl_reduction;
/* logits N×K, targets int64 N in [0, K), class weights K or NULL (PyTorch's weight: the mean
 * divides by Σ weight[target_i]). */
cl_tensor *cl_cross_entropy(cl_tensor *logits, const cl_tensor *targets, cl_tensor *weights,
                            cl_reduction reduction);
cl_tensor *cl_mse_loss(cl_tensor *a, cl_tensor *b, cl_reduction reduction);
/* N×C×H×W → N×C×OH×OW, align_corners = false as PyTorch's default. */
cl_tensor *cl_upsample_bilinear(cl_tensor *x, int out_h, int out_w);

/* ---------------------------------------------------------------- autograd */

int cl_grad_enabled(void);
void cl_set_grad_enabled(int on);
/* Marks a leaf as requiring grad (refused on non-float or non-leaf tensors). */
int cl_set_requires_grad(cl_tensor *t, int on);

/* Called by cl_backward when the full gradient of a tensor with has_hooks is known; may
 * replace *grad (taking over a reference, releasing the old). Returns 0, or -1 to stop. */
typedef int (*cl_grad_hook_fn)(void *ud, cl_tensor *t, cl_tensor **grad);

/* Backpropagates from root. grad may be NULL for a one-element root (then it is 1). */
int cl_backward(cl_tensor *root, cl_tensor *grad, int retain_graph, cl_grad_hook_fn hook,
                void *hook_ud);
const char *cl_grad_fn_name(const cl_tensor *t);

/* What an op needs to join the graph. */
typedef struct cl_node cl_node;
/* grad_out is always a contiguous float32 tensor of the output's shape; the rule sets
 * grad_in[i] (a new reference, or NULL for zero) for each i with inputs[i] != NULL. */
typedef int (*cl_backward_fn)(cl_node *n, cl_tensor *grad_out, cl_tensor **grad_in);
struct cl_node {
  const char *op;
  int refcount;
  int released; /* saved buffers freed by a backward without retain_graph */
  int ninputs;
  cl_tensor **inputs; /* strong references; NULL where the input needs no gradient */
  int nsaved;
  cl_tensor *saved[4];
  uint32_t saved_version[4];
  int64_t iarg[8];
  double farg[4];
  void *ctx;
  size_t ctx_bytes;
  cl_backward_fn backward;
};
/* If grad mode is on and any input requires grad, gives *out a grad_fn that remembers the
 * inputs and saves aliases of `saved` (*node is set to it, else NULL). On failure releases
 * *out, sets it to NULL and returns -1. */
int cl_record(cl_tensor **out, cl_node **node, const char *op, cl_backward_fn backward,
              int ninputs, cl_tensor *const *inputs, int nsaved, cl_tensor *const *saved);
/* Adds src into *acc (taking a reference when *acc is NULL); in place when no one else holds
 * *acc, else out of place. */
int cl_accumulate(cl_tensor **acc, cl_tensor *src);
/* Sums a broadcast gradient back to `shape` (the inverse of broadcasting). */
cl_tensor *cl_sum_to(cl_tensor *g, int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- optimizers */

/* p -= lr·(g + wd·p), with momentum buffer buf (may be NULL when momentum == 0). */
int cl_sgd_step(cl_tensor *p, const cl_tensor *g, cl_tensor *buf, double lr, double momentum,
                double weight_decay, int nesterov);
/* Adam (Kingma & Ba), step counted from 1 per parameter (PyTorch's state[p]['step']);
 * decoupled != 0 gives AdamW's weight decay. */
int cl_adam_step(cl_tensor *p, const cl_tensor *g, cl_tensor *m, cl_tensor *v, long step, double lr,
                 double beta1, double beta2, double eps, double weight_decay, int decoupled);

/* ---------------------------------------------------------------- threads */

void cl_set_threads(int n); /* OpenMP and BLAS threads; n < 1 means the machine's cores */
int cl_get_threads(void);

/* File formats and data sets: IDX, PNG, safetensors, Colored MNIST. */
#include "cnnlab_io.h"

#endif

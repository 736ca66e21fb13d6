/* test_faults.c — the allocation-failure sweep of the core (docs/reliability.md).
 *
 * One scenario touches what a run of the study does: Colored MNIST from synthetic digits,
 * a batch, a small CNN forward and backward with every kind of op, both optimizers, and every
 * file format written and read back. It is run once to count its allocations, then once for
 * every n with the n-th allocation failing. Each run must either complete or fail with "not
 * enough memory"; afterwards the core's heap must be back to its size before the run (no
 * leak) and the output folder must hold no temporary file (atomic writers clean up after
 * themselves). A crash is the test program dying, which run.sh reports. */
#include "cnnlab.h"

#include "check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[512];

static const char *file(const char *name) { return check_path(dir, name); }

/* Everything the scenario makes, released together whatever happened. */
typedef struct {
  cl_tensor *t[96];
  int n;
  cl_safetensors *st[2];
} pool;

static cl_tensor *keep(pool *p, cl_tensor *t) {
  if (t)
    p->t[p->n++] = t;
  return t;
}

static void drain(pool *p) {
  for (int i = 0; i < p->n; i++)
    cl_release(p->t[i]);
  p->n = 0;
  cl_safetensors_free(p->st[0]);
  cl_safetensors_free(p->st[1]);
  p->st[0] = p->st[1] = NULL;
}

#define T(var, expr)                                                                               \
  cl_tensor *var = keep(p, (expr));                                                                \
  if (!var)                                                                                        \
  return -1
#define OK(expr)                                                                                   \
  if ((expr) != 0)                                                                                 \
  return -1

static int scenario(pool *p) {
  cl_rng r;
  cl_rng_seed(&r, 5, 9);
  /* data: synthetic digits → Colored MNIST → a float batch */
  cl_tensor *digits = NULL, *labels = NULL;
  OK(cl_synth_digits(12, 3, &digits, &labels));
  keep(p, digits), keep(p, labels);
  T(split, cl_cmnist_split(12, 3));
  T(colors, cl_cmnist_colors(labels, 0.9, 0, 3, CL_CMNIST_TRAIN));
  T(hard, cl_cmnist_colors(labels, 0, 1, 3, CL_CMNIST_HARD));
  T(images, cl_cmnist_colorize(digits, colors, 0.25, 3, CL_CMNIST_TRAIN));
  T(idx, cl_narrow(split, 0, 0, 6));
  T(x, cl_gather_batch(images, idx));
  T(y, cl_index_select(labels, 0, idx));
  T(grey, cl_to_grey(x));
  T(grid, cl_image_grid(images, 4, 1, 2, 255));

  /* a small CNN: conv → relu → pool → flatten → linear, cross-entropy plus extra terms */
  int64_t ws[4] = {4, 3, 3, 3}, bs[1] = {4}, fs[2] = {10, 4 * 13 * 13}, fb[1] = {10};
  T(w1, cl_randn(&r, 4, ws));
  T(b1, cl_zeros(CL_FLOAT32, 1, bs));
  T(w2, cl_randn(&r, 2, fs));
  T(b2, cl_zeros(CL_FLOAT32, 1, fb));
  OK(cl_set_requires_grad(w1, 1) || cl_set_requires_grad(b1, 1) || cl_set_requires_grad(w2, 1) ||
     cl_set_requires_grad(b2, 1));
  T(mix, cl_binary(CL_ADD, x, grey));
  T(h, cl_conv2d(mix, w1, b1, 1, 1));
  T(a, cl_unary(CL_RELU, h));
  T(pl, cl_max_pool2d(a, 3, 2));
  T(dr, cl_dropout(pl, 0.25, 1, &r));
  int64_t flat[2] = {6, -1};
  T(f, cl_reshape(dr, 2, flat));
  T(logits, cl_linear(f, w2, b2));
  T(ce, cl_cross_entropy(logits, y, NULL, CL_REDUCE_MEAN));
  T(lsm, cl_log_softmax(logits, 1));
  T(sm, cl_softmax(logits, 1));
  T(pred, cl_argmax(sm, 1, 0));
  T(eq, cl_binary(CL_EQ, pred, y));
  T(col, cl_unsqueeze(y, 1));
  T(picked, cl_gather(lsm, 1, col));
  T(nll, cl_mean(picked, CL_ALL_DIMS, 0));
  T(tr, cl_transpose(logits, 0, 1));
  T(gram, cl_matmul(tr, logits));
  T(cl1, cl_clamp(gram, -1, 1));
  T(g2, cl_sum(cl1, CL_ALL_DIMS, 0));
  T(up, cl_upsample_bilinear(pl, 7, 7));
  T(sq, cl_unary(CL_SQUARE, up));
  T(mse, cl_mse_loss(up, sq, CL_REDUCE_MEAN));
  cl_tensor *parts[2] = {logits, logits};
  T(both, cl_cat(2, parts, 0));
  T(bm, cl_mean(both, 0, 1));
  T(bs2, cl_sum(bm, CL_ALL_DIMS, 0));
  T(t1, cl_binary(CL_ADD, ce, nll));
  T(t2, cl_binary_scalar(CL_MUL, g2, 1e-3, 0));
  T(t3, cl_binary(CL_ADD, t1, t2));
  T(t4, cl_binary(CL_ADD, t3, mse));
  T(loss, cl_binary(CL_ADD, t4, bs2));
  cl_tensor *mx = NULL, *mi = NULL;
  OK(cl_max(logits, 1, 0, &mx, &mi));
  keep(p, mx), keep(p, mi);
  OK(cl_backward(loss, NULL, 0, NULL, NULL));

  /* optimizers */
  T(mom, cl_zeros_like(w1));
  T(m, cl_zeros_like(w2));
  T(v, cl_zeros_like(w2));
  OK(cl_sgd_step(w1, w1->grad, mom, 0.1, 0.9, 1e-4, 1));
  OK(cl_adam_step(w2, w2->grad, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1));

  /* files: every writer, every reader */
  const char *names[5] = {"conv1.weight", "conv1.bias", "fc.weight", "images", "labels"};
  cl_tensor *ts[5] = {w1, b1, w2, images, y};
  const char *mk[2] = {"format", "seed"}, *mv[2] = {"cnnlab", "3"};
  OK(cl_save_safetensors(file("model.safetensors"), 5, names, ts, 2, mk, mv));
  if (!(p->st[0] = cl_load_safetensors(file("model.safetensors"), 1)))
    return -1;
  if (!(p->st[1] = cl_load_safetensors(file("model.safetensors"), 0)))
    return -1;
  OK(cl_write_idx(file("digits.idx"), digits, 0));
  OK(cl_write_idx(file("labels.idx.gz"), labels, 1));
  T(d2, cl_read_idx(file("digits.idx")));
  T(l2, cl_read_idx(file("labels.idx.gz")));
  T(first, cl_select(images, 0, 0));
  OK(cl_write_png(file("first.png"), first));
  OK(cl_write_png(file("grid.png"), grid));
  T(png, cl_read_png(file("first.png")));
  return 0;
}

/* Names of temporaries left in dir ("*.tmp.*"), or 0. */
static int leftovers(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) {
      fprintf(stderr, "leftover temporary %s/%s\n", dir, e->d_name);
      n++;
    }
  if (d)
    closedir(d);
  return n;
}

int main(void) {
  /* tmpfs when there is one: the writers fsync, and a sweep writes thousands of files */
  const char *base = getenv("TMPDIR");
  struct stat st;
  if (!base)
    base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/cnnlab-faults-XXXXXX", base);
  if (!mkdtemp(dir)) {
    fprintf(stderr, "cannot create a folder under %s\n", base);
    return 2;
  }
  cl_set_threads(1); /* the n-th allocation must be the same one in every run */

  pool p = {0};
  size_t heap = cl_mem_in_use();
  long before = cl_alloc_count();
  int rc = scenario(&p);
  CHECK(rc == 0, "the scenario runs without injected failures: %s", cl_last_error());
  drain(&p);
  long needed = cl_alloc_count() - before;
  CHECK(cl_mem_in_use() == heap, "the scenario leaves no memory behind");
  CHECK(needed > 100, "the scenario makes %ld allocations", needed);

  int leaks = 0, unnoticed = 0, wrong = 0, temps = 0, failed = 0;
  for (long n = 1; n <= needed + 1; n++) {
    cl_fail_alloc_after(n);
    long start = cl_alloc_count();
    rc = scenario(&p);
    int hit = cl_alloc_count() - start >= n;
    cl_fail_alloc_after(0);
    drain(&p);
    if (rc != 0) {
      failed++;
      if (!strstr(cl_last_error(), "not enough memory")) {
        wrong++;
        fprintf(stderr, "allocation %ld: failed with \"%s\"\n", n, cl_last_error());
      }
    } else if (hit) {
      unnoticed++;
      fprintf(stderr, "allocation %ld failed but the scenario succeeded\n", n);
    }
    if (cl_mem_in_use() != heap) {
      leaks++;
      fprintf(stderr, "allocation %ld failing leaked %zu bytes (%s)\n", n, cl_mem_in_use() - heap,
              cl_last_error());
      heap = cl_mem_in_use();
    }
    temps += leftovers();
  }
  printf("fault sweep: %ld allocation sites, %d runs failed cleanly\n", needed, failed);
  CHECK(failed == needed, "%d of %ld injected failures made the scenario fail", failed, needed);
  CHECK(leaks == 0, "%d injected failures leaked", leaks);
  CHECK(wrong == 0, "%d failures said something other than \"not enough memory\"", wrong);
  CHECK(unnoticed == 0, "%d injected failures went unnoticed", unnoticed);
  CHECK(temps == 0, "%d temporary files left behind", temps);

  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  CHECK_DONE();
}

/* check.h — the smallest test harness that can fail: CHECK records a pass or a failure
 * (with file, line and a message), CHECK_DONE prints "N passed, N failed" and sets the exit
 * status. Include once per test program. */
#ifndef CNNLAB_CHECK_H
#define CNNLAB_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (cond) {                                                                                    \
      check_passed++;                                                                              \
    } else {                                                                                       \
      check_failed++;                                                                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

/* "dir/name" in one of 8 rotating buffers, so that one call may use several paths at once. */
static inline const char *check_path(const char *dir, const char *name) {
  static char buf[8][600];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

/* |a - b| <= atol + rtol·|b| */
#define CHECK_NEAR(a, b, atol, rtol, what)                                                         \
  do {                                                                                             \
    double check_a_ = (a), check_b_ = (b);                                                         \
    CHECK(fabs(check_a_ - check_b_) <= (atol) + (rtol)*fabs(check_b_), "%s: got %.9g, want %.9g", \
          what, check_a_, check_b_);                                                               \
  } while (0)

/* Checks that a core call failed with a message containing `needle`. */
#define CHECK_FAILS(expr, needle)                                                                  \
  do {                                                                                             \
    int check_ok_ = (expr);                                                                        \
    CHECK(!check_ok_ && strstr(cl_last_error(), needle) != NULL,                                   \
          "%s: expected failure mentioning \"%s\", got %s (\"%s\")", #expr, needle,                \
          check_ok_ ? "success" : "failure", cl_last_error());                                    \
  } while (0)

#define CHECK_DONE()                                                                               \
  do {                                                                                             \
    printf("%d passed, %d failed\n", check_passed, check_failed);                                  \
    return check_failed ? 1 : 0;                                                                   \
  } while (0)

#endif

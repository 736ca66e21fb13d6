/* test_fuzz.c — replays every input under fuzz/regressions/<target>/ through the fuzz
 * targets' own code (fuzz/targets.c), so a crash the fuzzer once found stays fixed in
 * `make test` and `make check-asan` (where the sanitizers watch the replay). A broken
 * invariant aborts inside the target: run.sh then reports this program as crashed.
 * CNNLAB_FUZZ_DIR overrides where fuzz/ is (default: ./fuzz, the tests run from the root). */
#include "cnnlab.h"
#include "targets.h"

#include "check.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*target_fn)(const uint8_t *, size_t);

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      unsigned char *grown = realloc(buf, cap *= 2);
      if (!grown)
        free(buf);
      buf = grown;
    }
  }
  fclose(f);
  *n = len;
  return buf;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays each file of dir through fn; returns how many were replayed. */
static int replay_dir(const char *dir, const char *target, target_fn fn) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  char *names[4096];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 4096)
    if (e->d_name[0] != '.')
      names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], cmp_str);
  for (int i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    size_t size;
    unsigned char *data = slurp(path, &size);
    CHECK(data != NULL, "%s: cannot read %s", target, path);
    if (data) {
      size_t before = cl_mem_in_use();
      int rc = fn(data, size); /* aborts on a broken invariant */
      CHECK(cl_mem_in_use() == before, "%s: %s leaked", target, path);
      printf("  %s %s: %s\n", target, names[i], rc == 0 ? "accepted" : cl_last_error());
    }
    free(data);
    free(names[i]);
  }
  return n;
}

/* Known findings whose exact outcome is part of the fix: refused, with this message. */
static void check_refused(const char *dir, const char *file, target_fn fn, const char *needle) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  size_t size;
  unsigned char *data = slurp(path, &size);
  CHECK(data != NULL, "cannot read %s", path);
  if (!data)
    return;
  int rc = fn(data, size);
  CHECK(rc == 1 && strstr(cl_last_error(), needle), "%s: expected a refusal with \"%s\", got %s",
        path, needle, rc ? cl_last_error() : "acceptance");
  free(data);
}

int main(void) {
  const char *root = getenv("CNNLAB_FUZZ_DIR");
  if (!root)
    root = "fuzz";
  static const struct {
    const char *name;
    target_fn fn;
  } targets[] = {
      {"idx", fuzz_idx_one},
      {"safetensors", fuzz_safetensors_one},
      {"png", fuzz_png_one},
      {"lua", fuzz_lua_one}};
  int total = 0;
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/regressions/%s", root, targets[i].name);
    total += replay_dir(dir, targets[i].name, targets[i].fn);
  }
  CHECK(total > 0,
        "no regression inputs found under %s/regressions (run from the repository root "
        "or set CNNLAB_FUZZ_DIR)",
        root);

  char dir[2048];
  snprintf(dir, sizeof dir, "%s/regressions/idx", root);
  check_refused(dir, "zero-dim-stride-overflow", fuzz_idx_one, "dimensions too large");
  check_refused(dir, "zero-dim-stride-overflow-fuzzed", fuzz_idx_one, "dimensions too large");
  snprintf(dir, sizeof dir, "%s/regressions/safetensors", root);
  check_refused(dir, "zero-dim-stride-overflow", fuzz_safetensors_one, "shape too large");
  /* a chunk declaring gigabytes in a tiny file: refused before libpng allocates them */
  snprintf(dir, sizeof dir, "%s/regressions/png", root);
  check_refused(dir, "huge-chunk-length", fuzz_png_one, "chunk 'sPLT' at byte 33 declares");
  check_refused(dir, "huge-chunk-length-fuzzed", fuzz_png_one, "chunk 'sPLT' at byte 52 declares");

  /* The harness itself: valid inputs are accepted (else the targets test nothing). */
  static const uint8_t idx_ok[] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 9};
  CHECK(fuzz_idx_one(idx_ok, sizeof idx_ok) == 0, "a valid IDX file is refused: %s",
        cl_last_error());
  /* i8 elements {-128, 127}: the reader keeps them as float32, the harness must expect that */
  static const uint8_t idx_i8[] = {0, 0, 9, 1, 0, 0, 0, 2, 0x80, 0x7f};
  CHECK(fuzz_idx_one(idx_i8, sizeof idx_i8) == 0, "a valid i8 IDX file is refused: %s",
        cl_last_error());
  static const char st_hdr[] = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
  uint8_t st_ok[8 + sizeof st_hdr + 2] = {sizeof st_hdr - 1};
  memcpy(st_ok + 8, st_hdr, sizeof st_hdr - 1);
  CHECK(fuzz_safetensors_one(st_ok, 8 + sizeof st_hdr - 1 + 2) == 0,
        "a valid safetensors file is refused: %s", cl_last_error());
  /* The Lua target runs its statements: a valid one is accepted, a hostile one refused. */
  static const char lua_ok[] = "--lua\nT[1] = lab.ones(2, 3):sum(1)";
  CHECK(fuzz_lua_one((const uint8_t *)lua_ok, sizeof lua_ok - 1) == 0,
        "the Lua target refused valid code: %s", cl_last_error());
  static const char lua_bad[] = "--lua\nlab.ones(3):narrow(0, 1, math.maxinteger)";
  CHECK(fuzz_lua_one((const uint8_t *)lua_bad, sizeof lua_bad - 1) == 1,
        "the Lua target accepted an out-of-range narrow");
  static const uint8_t not_png[] = "not a png at all";
  CHECK(fuzz_png_one(not_png, sizeof not_png) == 1, "garbage accepted as PNG");
  CHECK_DONE();
}

/* lua_target.c — the fuzz target over the Lua API (cnnlab.core as `lab`), shared by the
 * libFuzzer entry point (fuzz_lua.c) and the regression replay (tests/c/test_fuzz.c).
 *
 * An input is either
 *  - Lua source, when it starts with "--lua\n": run as one chunk (readable regressions and
 *    seeds; only the base, math, string and table libraries and `lab` are there), or
 *  - bytes, decoded into a sequence of tensor calls: each statement is chosen by one byte and
 *    its arguments by the next ones, from tables of extreme values (0, -1, 2^31, 2^32, 2^53,
 *    2^62, maxinteger, mininteger, NaN, ±inf, ...), acting on four tensor slots T[1..4]
 *    (which start as a float 2×3, a float vector, an int64 2×2 and a uint8 vector).
 * Every statement runs in its own protected call: a Lua error is an expected outcome. What
 * counts as a finding: a crash or sanitizer report, a hang (the watchdog turns a statement
 * running over two seconds into the core's "interrupted"; one it cannot stop times out in
 * libFuzzer), core memory still held after the state is closed (a leak), or an error without
 * a message. The core refuses single allocations above 16 MB and Lua's own heap is capped at
 * 256 MB here, so "not enough memory" is an ordinary refusal and never libFuzzer's OOM. */
#define _GNU_SOURCE
#include "targets.h"

#include "cnnlab.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int luaopen_cnnlab_core(lua_State *L);

#define LUA_HEAP_LIMIT ((size_t)256 << 20)
#define CORE_ALLOC_LIMIT ((size_t)16 << 20)
#define STATEMENT_SECONDS 2
/* No statement starts once an input has run this long (libFuzzer's -timeout is 10 s). */
#define INPUT_SECONDS 4
#define MAX_STATEMENTS 64

/* ---------------------------------------------------------------- a capped Lua heap */

static size_t lua_heap;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr == NULL)
    osize = 0;
  if (nsize == 0) {
    free(ptr);
    lua_heap -= osize;
    return NULL;
  }
  if (nsize > osize && lua_heap + (nsize - osize) > LUA_HEAP_LIMIT)
    return NULL; /* Lua raises "not enough memory" */
  void *p = realloc(ptr, nsize);
  if (p)
    lua_heap = lua_heap - osize + nsize;
  return p;
}

/* ---------------------------------------------------------------- the watchdog */

static volatile long statement_started; /* monotonic seconds, 0 when no statement runs */
static pthread_once_t watchdog_once = PTHREAD_ONCE_INIT;

static long now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec;
}

static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    usleep(100 * 1000);
    long s = statement_started;
    if (s && now_seconds() - s >= STATEMENT_SECONDS)
      cl_interrupt();
  }
  return NULL;
}

static void start_watchdog(void) {
  pthread_t th;
  if (pthread_create(&th, NULL, watchdog, NULL) == 0)
    pthread_detach(th);
}

/* ---------------------------------------------------------------- decoding */

static const char *const ints[] = {
    "0",          "1",          "2",          "3",          "-1",         "-2",
    "7",          "1000",       "2^31",       "(1<<31)",    "(1<<32)",    "(1<<32)+1",
    "(1<<53)+1",  "(1<<62)",    "(1<<40)",    "math.maxinteger",        "math.mininteger",
    "65536",      "-5",         "255",        "256",        "4",          "(1<<30)",
    "-(1<<31)",   "0.5",        "2^53",       "2^63",       "-2^63",      "6",
};
static const char *const nums[] = {
    "0",     "1",      "-1",   "0.5",   "0/0",   "1/0",  "-1/0", "2^70",
    "1e-40", "255",    "256",  "-0.0",  "3.25",  "math.maxinteger", "math.mininteger",
    "2^53",  "(1<<53)+1", "1e38", "-1e39", "100",
};
static const char *const dtypes[] = {"float32", "int64", "uint8"};

/* Statement templates: %T a tensor slot, %I an integer, %N a number, %D a dtype name. */
static const char *const templates[] = {
    "T[%T] = lab.ones(%I)",
    "T[%T] = lab.zeros(%I, %I)",
    "T[%T] = lab.arange(%I)",
    "T[%T] = lab.arange(%I, %I, %I)",
    "T[%T] = lab.tensor({%N, %N, %N}, {dtype='%D'})",
    "T[%T] = lab.tensor({{%I, %I}, {%I, %I}}, {dtype='%D'})",
    "T[%T] = lab.full({%I, %I}, %N, {dtype='%D'})",
    "T[%T] = lab.randn(%I, %I)",
    "T[%T] = lab.empty(%I, {dtype='%D'})",
    "T[%T] = T[%T]:view(%I, %I)",
    "T[%T] = T[%T]:reshape(%I)",
    "T[%T] = T[%T]:narrow(%I, %I, %I)",
    "T[%T] = T[%T]:expand(%I, %I)",
    "T[%T] = T[%T]:expand(%I, %I, %I)",
    "T[%T] = T[%T]:permute(%I, %I)",
    "T[%T] = T[%T]:unsqueeze(%I)",
    "T[%T] = T[%T]:squeeze(%I)",
    "T[%T] = T[%T]:select(%I, %I)",
    "T[%T] = T[%T]:transpose(%I, %I)",
    "T[%T] = T[%T]:flatten(%I)",
    "T[%T]:set(%I, %N)",
    "T[%T]:set(%I, %I, %I)",
    "local _ = T[%T]:get(%I)",
    "local _ = T[%T]:get(%I, %I)",
    "local _ = T[%T]:item()",
    "T[%T]:fill_(%N)",
    "T[%T]:fill_(%I)",
    "local _ = T[%T]:totable()",
    "T[%T] = T[%T]:sum(%I)",
    "T[%T] = T[%T]:sum()",
    "T[%T] = T[%T]:mean(%I, true)",
    "T[%T] = T[%T]:max(%I)",
    "T[%T] = T[%T]:min()",
    "T[%T] = T[%T]:argmax(%I)",
    "T[%T] = T[%T]:softmax(%I)",
    "T[%T] = T[%T] + T[%T]",
    "T[%T] = T[%T] * %N",
    "T[%T] = T[%T]:clamp(%N, %N)",
    "T[%T] = T[%T]:exp()",
    "T[%T] = T[%T]:contiguous()",
    "T[%T] = T[%T]:clone()",
    "T[%T] = T[%T]:type('%D')",
    "T[%T]:copy_(T[%T])",
    "local _ = tostring(T[%T])",
    "local _ = T[%T]:numel()",
    "local _ = T[%T]:size(%I)",
    ("lab.save_safetensors(PATH .. '.st', {a = T[%T]}); "
     "T[%T] = lab.load_safetensors(PATH .. '.st').a"),
    "lab.write_idx(PATH .. '.idx', T[%T]); T[%T] = lab.read_idx(PATH .. '.idx')",
    "T[%T] = lab.cat({T[%T], T[%T]}, %I)",
    "T[%T] = T[%T]:index_select(%I, T[%T])",
    "T[%T] = lab.upsample_bilinear(T[%T], %I, %I)",
    "T[%T]:free()",
    "T[%T] = lab.randperm(%I)",
};

typedef struct {
  const uint8_t *p;
  size_t n, at;
} reader;

static unsigned next_byte(reader *r) { return r->at < r->n ? r->p[r->at++] : 0; }

/* Expands one template into buf. */
static void expand(reader *r, const char *tpl, char *buf, size_t len) {
  size_t used = 0;
  for (const char *c = tpl; *c && used + 40 < len; c++) {
    if (*c != '%' || !c[1]) {
      buf[used++] = *c;
      continue;
    }
    const char *s = "";
    char slot[8];
    switch (*++c) {
    case 'T':
      snprintf(slot, sizeof slot, "%u", next_byte(r) % 4 + 1);
      s = slot;
      break;
    case 'I': s = ints[next_byte(r) % (sizeof ints / sizeof ints[0])]; break;
    case 'N': s = nums[next_byte(r) % (sizeof nums / sizeof nums[0])]; break;
    case 'D': s = dtypes[next_byte(r) % 3]; break;
    default: s = "%"; break;
    }
    size_t sl = strlen(s);
    if (used + sl + 1 >= len)
      break;
    memcpy(buf + used, s, sl);
    used += sl;
  }
  buf[used] = 0;
}

/* ---------------------------------------------------------------- running */

/* Lua code that runs too long (a loop in a "--lua" input) is stopped the same way. */
static void slow_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  long s = statement_started;
  if (s && now_seconds() - s >= STATEMENT_SECONDS)
    luaL_error(L, "interrupted (the fuzz watchdog: over %d s)", STATEMENT_SECONDS);
}

static int run_chunk(lua_State *L, const char *code, size_t len) {
  if (luaL_loadbuffer(L, code, len, "=fuzz") != LUA_OK) {
    lua_pop(L, 1);
    return 1;
  }
  statement_started = now_seconds();
  int rc = lua_pcall(L, 0, 0, 0);
  statement_started = 0;
  if (rc != LUA_OK) {
    /* an error must say something */
    if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 0)
      abort();
    cl_fail("%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(a non-string error)");
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

int fuzz_lua_one(const uint8_t *data, size_t size) {
  pthread_once(&watchdog_once, start_watchdog);
  cl_set_alloc_limit(CORE_ALLOC_LIMIT);
  cl_interrupt_clear();
  size_t core_before = cl_mem_in_use();
  lua_State *L = lua_newstate(capped_alloc, NULL);
  if (!L)
    return 1;
  luaL_requiref(L, "_G", luaopen_base, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  lua_pop(L, 4);
  lua_pushcfunction(L, luaopen_cnnlab_core);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_close(L);
    return 1;
  }
  lua_setglobal(L, "lab");
  lua_newtable(L);
  lua_setglobal(L, "T");
  /* Four small tensors to start from (float 2×3, a float vector, int64 and uint8), so the
   * first statements already have something to act on. */
  static const char init[] =
      "T[1] = lab.arange(6):float():reshape(2, 3); T[2] = lab.ones(4); "
      "T[3] = lab.tensor({{1, -2}, {math.maxinteger, 0}}, {dtype = 'int64'}); "
      "T[4] = lab.tensor({0, 255, 7}, {dtype = 'uint8'})";
  if (run_chunk(L, init, sizeof init - 1)) {
    fprintf(stderr, "fuzz_lua: the starting tensors failed: %s\n", cl_last_error());
    abort();
  }
  char path[64];
  snprintf(path, sizeof path, "/tmp/cnnlab-fuzz-lua-%ld", (long)getpid());
  lua_pushstring(L, path);
  lua_setglobal(L, "PATH");
  lua_sethook(L, slow_hook, LUA_MASKCOUNT, 10000);

  int refused = 0;
  static const char prefix[] = "--lua\n";
  if (size >= sizeof prefix - 1 && memcmp(data, prefix, sizeof prefix - 1) == 0) {
    refused = run_chunk(L, (const char *)data, size);
  } else {
    /* CNNLAB_FUZZ_TRACE=1: each statement and its outcome on stderr, to read a finding */
    int trace = getenv("CNNLAB_FUZZ_TRACE") != NULL;
    reader r = {data, size, 0};
    long input_started = now_seconds();
    for (int k = 0; k < MAX_STATEMENTS && r.at < r.n; k++) {
      if (now_seconds() - input_started >= INPUT_SECONDS)
        break;
      const char *tpl = templates[next_byte(&r) % (sizeof templates / sizeof templates[0])];
      char stmt[512];
      expand(&r, tpl, stmt, sizeof stmt);
      if (trace)
        fprintf(stderr, "fuzz_lua: %s\n", stmt);
      int rc = run_chunk(L, stmt, strlen(stmt));
      refused |= rc;
      if (trace)
        fprintf(stderr, "fuzz_lua:   -> %s\n", rc ? cl_last_error() : "ok");
    }
  }
  lua_close(L); /* every tensor goes with the state */
  if (cl_mem_in_use() != core_before) {
    fprintf(stderr, "fuzz_lua: the core holds %zu bytes more after lua_close: a leak\n",
            cl_mem_in_use() - core_before);
    abort();
  }
  char f[80];
  snprintf(f, sizeof f, "%s.st", path);
  unlink(f);
  snprintf(f, sizeof f, "%s.idx", path);
  unlink(f);
  cl_set_alloc_limit(0);
  return refused;
}

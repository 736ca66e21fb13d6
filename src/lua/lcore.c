/* lcore.c — the cnnlab.core module: binding helpers shared by every l*.c file, memory
 * pressure for Lua's collector, generators, grad mode, threads and SIGINT trapping. */
#include "lua/lbind.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- tensor userdata */

int clb_is_tensor(lua_State *L, int idx) { return luaL_testudata(L, idx, CLB_TENSOR) != NULL; }

cl_tensor *clb_check(lua_State *L, int idx) {
  clb_tensor *ud = luaL_testudata(L, idx, CLB_TENSOR);
  if (!ud) {
    const char *got = luaL_typename(L, idx);
    if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
      got = lua_tostring(L, -1);
    luaL_argerror(L, idx, lua_pushfstring(L, "tensor expected, got %s", got));
  }
  if (!ud->t)
    luaL_argerror(L, idx, "tensor has been freed");
  return ud->t;
}

cl_tensor *clb_opt(lua_State *L, int idx) { return lua_isnoneornil(L, idx) ? NULL : clb_check(L, idx); }

/* Lua's collector only sees the small userdata, so the binding watches the core's heap and
 * runs a full collection once it has grown by a quarter of what was live after the last one
 * (at least 32 MB). Torch7 waited for the heap to double, but a study keeps a few hundred MB
 * of data sets alive, and doubling that would let a training loop's garbage pile up to
 * gigabytes; a full collection of cnnlab's small Lua heap takes well under a millisecond. */
static size_t live_after_gc;
#define GC_MIN_GROWTH ((size_t)32 << 20)

static void gc_pressure(lua_State *L) {
  size_t in_use = cl_mem_in_use(), allowance = live_after_gc / 4;
  if (allowance < GC_MIN_GROWTH)
    allowance = GC_MIN_GROWTH;
  if (in_use > live_after_gc + allowance) {
    lua_gc(L, LUA_GCCOLLECT);
    live_after_gc = cl_mem_in_use();
  }
}

cl_tensor **clb_slot(lua_State *L) {
  clb_tensor *ud = lua_newuserdatauv(L, sizeof *ud, 0);
  ud->t = NULL;
  luaL_setmetatable(L, CLB_TENSOR);
  return &ud->t;
}

int clb_error(lua_State *L) { return luaL_error(L, "%s", cl_last_error()); }

void clb_done(lua_State *L, cl_tensor **slot) {
  if (!*slot)
    clb_error(L);
  gc_pressure(L);
}

static int new_slot(lua_State *L) {
  clb_slot(L);
  return 1;
}

void clb_push(lua_State *L, cl_tensor *t) {
  if (!t)
    clb_error(L);
  /* The userdata is made in a protected call: if Lua runs out of memory there, t must be
   * released before the error goes on, or its reference leaks (found by the Lua allocator
   * sweep of tests/faults_spec.lua). Pushing a C function allocates nothing. */
  lua_pushcfunction(L, new_slot);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    cl_release(t);
    lua_error(L);
  }
  ((clb_tensor *)lua_touserdata(L, -1))->t = t;
  gc_pressure(L);
}

/* ---------------------------------------------------------------- argument helpers */

int clb_check_shape(lua_State *L, int idx, int64_t *shape, int *next, const char *fn) {
  int n = 0;
  if (lua_istable(L, idx)) {
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    if (len > CL_MAX_DIMS)
      luaL_error(L, "%s: a shape has at most %d dimensions, got %d", fn, CL_MAX_DIMS, (int)len);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, idx, i);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      if (!ok || v < 0)
        luaL_error(L, "%s: shape entry %d must be a non-negative integer, got %s", fn, (int)i,
                   ok ? lua_tostring(L, -1) : luaL_typename(L, -1));
      lua_pop(L, 1);
      shape[n++] = v;
    }
    *next = idx + 1;
    return n;
  }
  int i = idx;
  while (lua_type(L, i) == LUA_TNUMBER) {
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    if (!ok || v < 0)
      luaL_error(L, "%s: size %d must be a non-negative integer, got %s", fn, i - idx + 1,
                 lua_tostring(L, i));
    if (n == CL_MAX_DIMS)
      luaL_error(L, "%s: a shape has at most %d dimensions", fn, CL_MAX_DIMS);
    shape[n++] = v;
    i++;
  }
  if (i == idx && !lua_isnoneornil(L, idx) && !lua_istable(L, idx))
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: shape expected (a table like {2, 3} or sizes), "
                                             "got %s",
                                          fn, luaL_typename(L, idx)));
  *next = i;
  return n;
}

int clb_check_dim(lua_State *L, int idx, int ndim, const char *fn) {
  int ok;
  lua_Integer d = lua_tointegerx(L, idx, &ok);
  if (!ok)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: dimension must be an integer, got %s", fn,
                                          luaL_typename(L, idx)));
  if (d < -ndim || d >= ndim || ndim == 0)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: dimension %d out of range for a tensor with %d "
                                             "dimensions (dims count from 0)",
                                          fn, (int)d, ndim));
  return (int)(d < 0 ? d + ndim : d);
}

cl_rng *clb_opt_rng(lua_State *L, int idx) {
  if (!lua_istable(L, idx))
    return cl_default_rng();
  lua_getfield(L, idx, "generator");
  cl_rng *r = NULL;
  if (!lua_isnil(L, -1)) {
    r = luaL_testudata(L, -1, CLB_GENERATOR);
    if (!r)
      luaL_error(L, "option 'generator' must be a lab.Generator, got %s", luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return r ? r : cl_default_rng();
}

const char *clb_opt_string(lua_State *L, int idx, const char *key, const char *def) {
  if (!lua_istable(L, idx))
    return def;
  lua_getfield(L, idx, key);
  const char *s = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
    s = lua_tostring(L, -1); /* stays alive: the options table holds it */
  }
  lua_pop(L, 1);
  return s;
}

double clb_opt_number(lua_State *L, int idx, const char *key, double def) {
  if (!lua_istable(L, idx))
    return def;
  lua_getfield(L, idx, key);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

int clb_opt_bool(lua_State *L, int idx, const char *key, int def) {
  if (!lua_istable(L, idx))
    return def;
  lua_getfield(L, idx, key);
  int v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1))
      luaL_error(L, "option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

void clb_check_opts(lua_State *L, int idx, const char *fn, const char *const *allowed) {
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *a = allowed; *a && !known; a++)
        known = !strcmp(*a, lua_tostring(L, -1));
    if (!known) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (const char *const *a = allowed; *a; a++) {
        luaL_addstring(&b, a == allowed ? "" : ", ");
        luaL_addstring(&b, *a);
      }
      luaL_pushresult(&b);
      lua_pushvalue(L, -2);
      luaL_error(L, "%s: unknown option '%s' (known: %s)", fn, luaL_tolstring(L, -1, NULL),
                 lua_tostring(L, -2));
    }
  }
}

void clb_setfuncs(lua_State *L, const luaL_Reg *funcs) { luaL_setfuncs(L, funcs, 0); }

/* ---------------------------------------------------------------- generators */

static int gen_new(lua_State *L) {
  lua_Integer seed = luaL_optinteger(L, 1, 0), stream = luaL_optinteger(L, 2, 0);
  cl_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
  luaL_setmetatable(L, CLB_GENERATOR);
  cl_rng_seed(r, (uint64_t)seed, (uint64_t)stream);
  return 1;
}

static cl_rng *check_gen(lua_State *L, int idx) { return luaL_checkudata(L, idx, CLB_GENERATOR); }

static int gen_seed(lua_State *L) {
  cl_rng *r = check_gen(L, 1);
  cl_rng_seed(r, (uint64_t)luaL_checkinteger(L, 2), (uint64_t)luaL_optinteger(L, 3, 0));
  lua_settop(L, 1);
  return 1;
}

/* The state as a string of two hex words, so checkpoints can store it as text. */
static int gen_state(lua_State *L) {
  cl_rng *r = check_gen(L, 1);
  char buf[40];
  snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)r->state,
           (unsigned long long)r->inc);
  lua_pushstring(L, buf);
  return 1;
}

static int gen_set_state(lua_State *L) {
  cl_rng *r = check_gen(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  char hi[17] = {0}, lo[17] = {0};
  char *end1, *end2;
  if (len != 32)
    return luaL_argerror(L, 2, "generator state must be 32 hex digits (from :state())");
  memcpy(hi, s, 16);
  memcpy(lo, s + 16, 16);
  unsigned long long st = strtoull(hi, &end1, 16), inc = strtoull(lo, &end2, 16);
  if (*end1 || *end2 || !(inc & 1))
    return luaL_argerror(L, 2, "generator state must be 32 hex digits (from :state())");
  r->state = st;
  r->inc = inc;
  lua_settop(L, 1);
  return 1;
}

static int gen_uniform(lua_State *L) {
  lua_pushnumber(L, cl_rng_uniform(check_gen(L, 1)));
  return 1;
}

static int gen_integer(lua_State *L) {
  cl_rng *r = check_gen(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 1 && n <= UINT32_MAX, 2, "bound must be in 1..2^32-1");
  lua_pushinteger(L, (lua_Integer)cl_rng_below(r, (uint32_t)n));
  return 1;
}

static int gen_normal(lua_State *L) {
  lua_pushnumber(L, cl_rng_normal(check_gen(L, 1)));
  return 1;
}

static int gen_tostring(lua_State *L) {
  cl_rng *r = check_gen(L, 1);
  lua_pushfstring(L, "Generator(state %p)", (void *)(uintptr_t)r->state);
  return 1;
}

static const luaL_Reg gen_methods[] = {{"seed", gen_seed},       {"state", gen_state},
                                       {"set_state", gen_set_state}, {"uniform", gen_uniform},
                                       {"integer", gen_integer}, {"normal", gen_normal},
                                       {NULL, NULL}};

/* Reseeds the default generator (the one used when no generator is given). */
static int manual_seed(lua_State *L) {
  cl_rng_seed(cl_default_rng(), (uint64_t)luaL_checkinteger(L, 1),
              (uint64_t)luaL_optinteger(L, 2, 0));
  return 0;
}

static int default_generator(lua_State *L) {
  cl_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
  luaL_setmetatable(L, CLB_GENERATOR);
  *r = *cl_default_rng();
  return 1;
}

/* ---------------------------------------------------------------- grad mode, memory, threads */

static int set_grad_enabled(lua_State *L) {
  int was = cl_grad_enabled();
  cl_set_grad_enabled(lua_toboolean(L, 1));
  lua_pushboolean(L, was);
  return 1;
}

/* no_grad(fn, ...) → fn's results, run with grad mode off. The previous mode comes back
 * however fn ends: restoring it in Lua after a pcall needs allocations (results, a call
 * frame) that can themselves fail and leave grad mode off for good (found by the allocation
 * sweeps of tests/faults_spec.lua); here nothing runs between the pcall and the restore. */
static int no_grad(lua_State *L) {
  /* A module (a table whose metatable has __call) is as callable as a function:
   * lab.no_grad(model, x) evaluates it. */
  if (lua_type(L, 1) != LUA_TFUNCTION && luaL_getmetafield(L, 1, "__call") == LUA_TNIL)
    return luaL_typeerror(L, 1, "function or callable (a module)");
  if (lua_type(L, 1) != LUA_TFUNCTION)
    lua_pop(L, 1); /* the __call field: lua_pcall resolves it itself */
  int was = cl_grad_enabled();
  cl_set_grad_enabled(0);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  cl_set_grad_enabled(was);
  if (status != LUA_OK)
    return lua_error(L);
  return lua_gettop(L);
}

static int is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, cl_grad_enabled());
  return 1;
}

static int memory(lua_State *L) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)cl_mem_in_use());
  lua_setfield(L, -2, "in_use");
  lua_pushinteger(L, (lua_Integer)cl_mem_peak());
  lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)cl_alloc_count());
  lua_setfield(L, -2, "allocations");
  lua_pushinteger(L, (lua_Integer)cl_mem_cached());
  lua_setfield(L, -2, "cached");
  return 1;
}

static int fail_alloc_after(lua_State *L) {
  cl_fail_alloc_after((long)luaL_checkinteger(L, 1));
  return 0;
}

static int set_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 1024, 1, "thread count must be in 0..1024 (0: all cores)");
  cl_set_threads((int)n);
  return 0;
}

static int get_threads(lua_State *L) {
  lua_pushinteger(L, cl_get_threads());
  return 1;
}

static int gemm_backend(lua_State *L) {
  lua_pushstring(L, cl_gemm_backend());
  return 1;
}

/* A training loop asks trap_sigint(true) so that Ctrl-C only sets a flag it polls between
 * steps (to write a checkpoint and stop cleanly) instead of killing the run. */
static volatile sig_atomic_t sigint_count;
static struct sigaction previous_sigint;
static int sigint_trapped;

static void on_sigint(int sig) {
  (void)sig;
  sigint_count++;
}

static int trap_sigint(lua_State *L) {
  int on = lua_toboolean(L, 1);
  if (on && !sigint_trapped) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_sigint);
    sigint_trapped = 1;
  } else if (!on && sigint_trapped) {
    sigaction(SIGINT, &previous_sigint, NULL);
    sigint_trapped = 0;
  }
  sigint_count = 0;
  return 0;
}

static int sigint_pending(lua_State *L) {
  lua_pushboolean(L, sigint_count > 0);
  return 1;
}

static int is_a_tty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
  return 1;
}

/* Wall-clock seconds from a monotonic clock (os.clock is CPU time, wrong with threads). */
static int now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

/* The open directory of list_dir, owned by a userdata so that a Lua error (out of memory
 * while pushing names) still closes it: the collector calls this. */
static int dir_box_gc(lua_State *L) {
  DIR **box = lua_touserdata(L, 1);
  if (*box)
    closedir(*box);
  *box = NULL;
  return 0;
}

/* Sorted names in a directory (without . and ..); nil and a message when it can't be read. */
static int list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  DIR **box = lua_newuserdatauv(L, sizeof *box, 0); /* index 2, before opendir */
  *box = NULL;
  if (luaL_newmetatable(L, "cnnlab.Dir")) {
    lua_pushcfunction(L, dir_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, 2);
  DIR *d = *box = opendir(path);
  if (!d) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: cannot open directory", path);
    return 2;
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    lua_pushstring(L, e->d_name); /* may raise on memory: the box closes d */
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  *box = NULL;
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg core_funcs[] = {{"isatty", is_a_tty},
                                      {"listdir", list_dir},
                                      {"now", now},{"Generator", gen_new},
                                      {"manual_seed", manual_seed},
                                      {"default_generator", default_generator},
                                      {"set_grad_enabled", set_grad_enabled},
                                      {"no_grad", no_grad},
                                      {"is_grad_enabled", is_grad_enabled},
                                      {"memory", memory},
                                      {"_fail_alloc_after", fail_alloc_after},
                                      {"set_threads", set_threads},
                                      {"get_threads", get_threads},
                                      {"gemm_backend", gemm_backend},
                                      {"trap_sigint", trap_sigint},
                                      {"sigint_pending", sigint_pending},
                                      {NULL, NULL}};

int luaopen_cnnlab_core(lua_State *L) {
  luaL_checkversion(L);
  if (luaL_newmetatable(L, CLB_GENERATOR)) {
    lua_newtable(L);
    luaL_setfuncs(L, gen_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gen_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_setfuncs(L, core_funcs, 0);
  clb_open_tensor(L);
  clb_open_nn(L);
  clb_open_io(L);
  clb_open_mpi(L);
  return 1;
}

/* lbind.c — what every binding file uses, in the manner of lauxlib: the tensor userdata
 * (checking, the slot that makes construction leak-free) and the argument checks, so that one
 * set of functions and one style of error message serve the whole binding. */
#include "lua/lbind.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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

cl_tensor *clb_opt(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : clb_check(L, idx);
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
  clb_gc_pressure(L);
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
  clb_gc_pressure(L);
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
    luaL_argerror(L, idx,
                  lua_pushfstring(L,
                                  "%s: shape expected (a table like {2, 3} or sizes), "
                                  "got %s",
                                  fn, luaL_typename(L, idx)));
  *next = i;
  return n;
}

/* An argument error: "bad argument #n" for a real argument, a plain error for a value the
 * caller pushed itself (idx < 0: an entry of a table argument, say). */
static void arg_fail(lua_State *L, int idx, const char *msg) {
  if (idx < 0)
    luaL_error(L, "%s", msg);
  luaL_argerror(L, idx, msg);
}

/* The argument at idx as an exact integer: a float with an integral value in range is
 * accepted (2^40 as well as 1099511627776), anything else names fn, what and the value. */
lua_Integer clb_arg_integer(lua_State *L, int idx, const char *fn, const char *what) {
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok || lua_type(L, idx) != LUA_TNUMBER)
    arg_fail(L, idx,
                  lua_pushfstring(L, "%s: %s must be an integer, got %s", fn, what,
                                  lua_type(L, idx) == LUA_TNUMBER ? clb_describe(L, idx)
                                                                  : luaL_typename(L, idx)));
  return v;
}

/* A dim in [lo, hi] (after adding `wrap` to a negative one), range-checked as a lua_Integer
 * before it is narrowed to int, so 2^32 is refused instead of read as 0. */
static int check_dim_in(lua_State *L, int idx, int ndim, int extra, const char *fn) {
  lua_Integer d = clb_arg_integer(L, idx, fn, "dimension");
  lua_Integer n = (lua_Integer)ndim + extra; /* valid: -n .. n-1 */
  if (extra && (d < -n || d >= n))
    arg_fail(L, idx,
             lua_pushfstring(L, "%s: position %I out of range 0..%d (or %I..-1 from the end)", fn,
                             d, ndim, -n));
  if (n == 0 || d < -n || d >= n) {
    if (n == 0)
      arg_fail(L, idx,
                    lua_pushfstring(L, "%s: dimension %I out of range: the tensor has no "
                                       "dimensions (a scalar)",
                                    fn, d));
    arg_fail(L, idx,
                  lua_pushfstring(L,
                                  "%s: dimension %I out of range for a tensor with %d "
                                  "dimensions (expected %I..%I; dims count from 0)",
                                  fn, d, ndim, -n, n - 1));
  }
  return (int)(d < 0 ? d + n : d);
}

int clb_check_dim(lua_State *L, int idx, int ndim, const char *fn) {
  return check_dim_in(L, idx, ndim, 0, fn);
}

int clb_check_newdim(lua_State *L, int idx, int ndim, const char *fn) {
  return check_dim_in(L, idx, ndim, 1, fn);
}

int64_t clb_check_size(lua_State *L, int idx, const char *fn, const char *what, int keep_ok) {
  lua_Integer v = clb_arg_integer(L, idx, fn, what);
  if (v < 0 && !(keep_ok && v == -1))
    arg_fail(L, idx,
                  lua_pushfstring(L, "%s: %s must be %s, got %I", fn, what,
                                  keep_ok ? ">= 0 (or -1 to keep the size)" : ">= 0", v));
  return (int64_t)v;
}

const char *clb_check_name(lua_State *L, int idx, const char *fn, const char *what) {
  if (lua_type(L, idx) != LUA_TSTRING)
    arg_fail(L, idx,
                  lua_pushfstring(L, "%s: %s: string expected, got %s", fn, what,
                                  clb_describe(L, idx)));
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len)
    arg_fail(L, idx,
                  lua_pushfstring(L,
                                  "%s: %s contains a NUL byte (at byte %d); it would be cut "
                                  "there",
                                  fn, what, (int)strlen(s) + 1));
  return s;
}

const char *clb_opt_name(lua_State *L, int idx, const char *fn, const char *what,
                         const char *def) {
  return lua_isnoneornil(L, idx) ? def : clb_check_name(L, idx, fn, what);
}

double clb_arg_notnan(lua_State *L, int idx, const char *fn, const char *what) {
  double v = clb_arg_number(L, idx, fn, what);
  if (v != v)
    arg_fail(L, idx, lua_pushfstring(L, "%s: %s must be a number, got NaN", fn, what));
  return v;
}

void clb_check_value(lua_State *L, int idx, cl_dtype dt, const char *fn, clb_value *out) {
  if (lua_type(L, idx) != LUA_TNUMBER && !lua_isboolean(L, idx))
    luaL_argerror(L, idx,
                  lua_pushfstring(L, "%s: value must be a number, got %s", fn,
                                  clb_describe(L, idx)));
  clb_value_at(L, idx, dt, fn, out);
}

void clb_value_at(lua_State *L, int idx, cl_dtype dt, const char *fn, clb_value *out) {
  out->is_int = 0;
  if (lua_isboolean(L, idx)) {
    out->is_int = 1;
    out->i = lua_toboolean(L, idx);
    out->d = (double)out->i;
    return;
  }
  if (lua_isinteger(L, idx)) {
    out->is_int = 1;
    out->i = lua_tointeger(L, idx);
    out->d = (double)out->i;
    if (dt == CL_UINT8 && (out->i < 0 || out->i > 255))
      luaL_error(L, "%s: %I is outside the range of uint8 (0..255)", fn, out->i);
    return;
  }
  out->d = lua_tonumber(L, idx);
  if (dt == CL_FLOAT32)
    return;
  if (cl_check_value(fn, dt, out->d))
    clb_error(L);
  if (dt == CL_INT64 && out->d == floor(out->d)) { /* an integral float: exact from here */
    out->is_int = 1;
    out->i = (lua_Integer)out->d; /* in range: checked above */
  }
}

void clb_push_elem(lua_State *L, const cl_tensor *t, int64_t linear) {
  if (t->dtype == CL_INT64)
    lua_pushinteger(L, (lua_Integer)cl_item_i64_at(t, linear));
  else if (t->dtype == CL_FLOAT32)
    lua_pushnumber(L, cl_item_at(t, linear));
  else
    lua_pushinteger(L, (lua_Integer)cl_item_at(t, linear));
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
    s = clb_check_name(L, -1, "options", key); /* stays alive: the options table holds it */
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

/* An integer option in [lo, hi], with the function's name in the message. */
int clb_opt_int(lua_State *L, int idx, const char *fn, const char *key, int def, int lo, int hi) {
  if (!lua_istable(L, idx))
    return def;
  lua_getfield(L, idx, key);
  int v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    lua_Integer x = lua_tointegerx(L, -1, &ok);
    if (!ok || x < lo || x > hi)
      luaL_error(L, "%s: option '%s' must be an integer in %d..%d, got %s", fn, key, lo, hi,
                 luaL_tolstring(L, -1, NULL));
    v = (int)x;
  }
  lua_pop(L, 1);
  return v;
}

/* ---------------------------------------------------------------- named arguments
 * Positional arguments checked with messages that name the function and the argument:
 * "conv2d: stride must be a positive integer, got 0". */

/* A short description of the value at idx for "got ..." (numbers by value). */
const char *clb_describe(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER)
    return luaL_tolstring(L, idx, NULL);
  if (lua_type(L, idx) == LUA_TSTRING)
    return lua_pushfstring(L, "the string \"%s\"", lua_tostring(L, idx));
  if (clb_is_tensor(L, idx))
    return "a tensor";
  return luaL_typename(L, idx);
}

cl_tensor *clb_arg_tensor(lua_State *L, int idx, const char *fn, const char *arg) {
  if (!clb_is_tensor(L, idx))
    luaL_error(L, "%s: %s must be a tensor, got %s", fn, arg, clb_describe(L, idx));
  return clb_check(L, idx); /* also refuses a freed tensor */
}

cl_tensor *clb_arg_opttensor(lua_State *L, int idx, const char *fn, const char *arg) {
  return lua_isnoneornil(L, idx) ? NULL : clb_arg_tensor(L, idx, fn, arg);
}

/* An integer >= min that fits an int; nil/none gives def when def >= min. */
int clb_arg_int(lua_State *L, int idx, const char *fn, const char *arg, int min, int def) {
  if (lua_isnoneornil(L, idx) && def >= min)
    return def;
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (lua_type(L, idx) != LUA_TNUMBER || !ok || v < min || v > INT_MAX)
    luaL_error(L, "%s: %s must be a %s integer, got %s", fn, arg,
               min > 0 ? "positive" : "non-negative", clb_describe(L, idx));
  return (int)v;
}

double clb_arg_optnumber(lua_State *L, int idx, const char *fn, const char *arg, double def) {
  if (lua_isnoneornil(L, idx))
    return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a number, got %s", fn, arg, clb_describe(L, idx));
  return lua_tonumber(L, idx);
}

double clb_arg_number(lua_State *L, int idx, const char *fn, const char *arg) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a number, got %s", fn, arg, clb_describe(L, idx));
  return lua_tonumber(L, idx);
}

int clb_arg_optbool(lua_State *L, int idx, const char *fn, const char *arg, int def) {
  if (lua_isnoneornil(L, idx))
    return def;
  if (!lua_isboolean(L, idx))
    luaL_error(L, "%s: %s must be a boolean, got %s", fn, arg, clb_describe(L, idx));
  return lua_toboolean(L, idx);
}

void clb_check_optstable(lua_State *L, int idx, const char *fn, const char *const *allowed) {
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
    luaL_error(L, "%s: options must be a table, got %s", fn, clb_describe(L, idx));
  clb_check_opts(L, idx, fn, allowed);
}

/* A number in [lo, hi]; luaL_error has no %g, so the message is formatted here. */
double clb_arg_numberin(lua_State *L, int idx, const char *fn, const char *what, double lo,
                        double hi) {
  char msg[200];
  if (lua_type(L, idx) != LUA_TNUMBER) {
    snprintf(msg, sizeof msg, "%s: %s (argument #%d) must be a number in [%g, %g], got %s", fn,
             what, idx, lo, hi, luaL_typename(L, idx));
    luaL_error(L, "%s", msg);
  }
  double v = lua_tonumber(L, idx);
  if (!(v >= lo && v <= hi)) {
    snprintf(msg, sizeof msg, "%s: %s (argument #%d) must be in [%g, %g], got %g", fn, what, idx,
             lo, hi, v);
    luaL_error(L, "%s", msg);
  }
  return v;
}

cl_dtype clb_check_dtype(lua_State *L, const char *name, const char *fn) {
  int d = cl_dtype_parse(name);
  if (d < 0)
    luaL_error(L, "%s: unknown dtype '%s' (known: float32, uint8, int64)", fn, name);
  return (cl_dtype)d;
}

cl_dtype clb_opt_dtype(lua_State *L, int idx, cl_dtype def, const char *fn) {
  const char *name = clb_opt_string(L, idx, "dtype", NULL);
  return name ? clb_check_dtype(L, name, fn) : def;
}

void clb_setfuncs(lua_State *L, const luaL_Reg *funcs) { luaL_setfuncs(L, funcs, 0); }

/* lbind.c — what every binding file uses, in the manner of lauxlib: the tensor userdata
 * (checking, the slot that makes construction leak-free) and the argument checks, so that one
 * set of functions and one style of error message serve the whole binding. */
#include "lua/lbind.h"

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

int clb_check_dim(lua_State *L, int idx, int ndim, const char *fn) {
  int ok;
  lua_Integer d = lua_tointegerx(L, idx, &ok);
  if (!ok)
    luaL_argerror(
        L, idx,
        lua_pushfstring(L, "%s: dimension must be an integer, got %s", fn, luaL_typename(L, idx)));
  if (d < -ndim || d >= ndim || ndim == 0)
    luaL_argerror(L, idx,
                  lua_pushfstring(L,
                                  "%s: dimension %d out of range for a tensor with %d "
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

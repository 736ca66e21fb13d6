/* lgen.c — random generators (PCG32) as Lua userdata, and the default generator. */
#include "lua/lbind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const luaL_Reg gen_methods[] = {{"seed", gen_seed},
                                       {"state", gen_state},
                                       {"set_state", gen_set_state},
                                       {"uniform", gen_uniform},
                                       {"integer", gen_integer},
                                       {"normal", gen_normal},
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

static const luaL_Reg gen_funcs[] = {{"Generator", gen_new},
                                     {"manual_seed", manual_seed},
                                     {"default_generator", default_generator},
                                     {NULL, NULL}};

void clb_open_gen(lua_State *L) {
  if (luaL_newmetatable(L, CLB_GENERATOR)) {
    lua_newtable(L);
    luaL_setfuncs(L, gen_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gen_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, gen_funcs, 0);
}

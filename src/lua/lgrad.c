/* lgrad.c — grad mode: whether ops record a graph, and no_grad(fn, ...). */
#include "lua/lbind.h"

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

static const luaL_Reg grad_funcs[] = {{"set_grad_enabled", set_grad_enabled},
                                      {"no_grad", no_grad},
                                      {"is_grad_enabled", is_grad_enabled},
                                      {NULL, NULL}};

void clb_open_grad(lua_State *L) { luaL_setfuncs(L, grad_funcs, 0); }

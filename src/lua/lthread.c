/* lthread.c — the thread count the kernels use, and which GEMM runs them. */
#include "lua/lbind.h"

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

static const luaL_Reg thread_funcs[] = {{"set_threads", set_threads},
                                        {"get_threads", get_threads},
                                        {"gemm_backend", gemm_backend},
                                        {NULL, NULL}};

void clb_open_thread(lua_State *L) { luaL_setfuncs(L, thread_funcs, 0); }

/* lmem.c — the core's heap as Lua sees it: the GC pressure every tensor-making call applies,
 * memory statistics, and the allocation-failure injection the fault tests use. */
#include "lua/lbind.h"

/* Lua's collector only sees the small userdata, so the binding watches the core's heap and
 * runs a full collection once it has grown by a quarter of what was live after the last one
 * (at least 32 MB). Torch7 waited for the heap to double, but a study keeps a few hundred MB
 * of data sets alive, and doubling that would let a training loop's garbage pile up to
 * gigabytes; a full collection of cnnlab's small Lua heap takes well under a millisecond. */
static size_t live_after_gc;
#define GC_MIN_GROWTH ((size_t)32 << 20)

void clb_gc_pressure(lua_State *L) {
  size_t in_use = cl_mem_in_use(), allowance = live_after_gc / 4;
  if (allowance < GC_MIN_GROWTH)
    allowance = GC_MIN_GROWTH;
  if (in_use > live_after_gc + allowance) {
    lua_gc(L, LUA_GCCOLLECT);
    live_after_gc = cl_mem_in_use();
  }
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

static const luaL_Reg mem_funcs[] = {
    {"memory", memory}, {"_fail_alloc_after", fail_alloc_after}, {NULL, NULL}};

void clb_open_mem(lua_State *L) { luaL_setfuncs(L, mem_funcs, 0); }

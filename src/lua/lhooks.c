/* lhooks.c — tensor hooks and the backward pass that calls them. The hooks live in a registry
 * table keyed by tensor id; the engine calls back into Lua through a protected call, so an
 * error in a hook never jumps over the engine's C frames. */
#include "core/tensor_impl.h"
#include "lua/lbind.h"

#include <stdlib.h>

#define CLB_HOOK_HANDLE "cnnlab.HookHandle"
static const char *const HOOKS_KEY = "cnnlab.hooks"; /* registry: id → {{key, fn}, ...} */

/* Ids of freed tensors that had hooks; their entries are dropped at the next hook access
 * (the core reports frees without a lua_State at hand). */
static uint64_t *dead_ids;
static size_t dead_len, dead_cap;

static void on_hooked_free(uint64_t id) {
  if (dead_len == dead_cap) {
    size_t cap = dead_cap ? dead_cap * 2 : 64;
    uint64_t *grown = realloc(dead_ids, cap * sizeof *grown);
    if (!grown)
      return; /* the entry then lingers until the state closes; nothing breaks */
    dead_ids = grown;
    dead_cap = cap;
  }
  dead_ids[dead_len++] = id;
}

static void push_hooks_table(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOOKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HOOKS_KEY);
  }
  while (dead_len) {
    lua_pushnil(L);
    lua_rawseti(L, -2, (lua_Integer)dead_ids[--dead_len]);
  }
}

static lua_Integer next_hook_key = 1;

/* t:register_hook(fn) → handle; fn(grad) may return a replacement gradient. */
int clb_tensor_register_hook(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!t->requires_grad)
    return luaL_error(L, "register_hook: the tensor does not require grad, so no gradient will "
                         "reach it");
  push_hooks_table(L);
  if (lua_rawgeti(L, -1, (lua_Integer)t->id) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, (lua_Integer)t->id);
  }
  lua_Integer key = next_hook_key++;
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, key); /* keys grow, so pairs order == registration order after sorting */
  t->has_hooks = 1;
  lua_Integer *h = lua_newuserdatauv(L, sizeof(lua_Integer) * 2, 0);
  h[0] = (lua_Integer)t->id;
  h[1] = key;
  luaL_setmetatable(L, CLB_HOOK_HANDLE);
  return 1;
}

static int hook_remove(lua_State *L) {
  lua_Integer *h = luaL_checkudata(L, 1, CLB_HOOK_HANDLE);
  push_hooks_table(L);
  if (lua_rawgeti(L, -1, h[0]) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_rawseti(L, -2, h[1]);
  }
  return 0;
}

static int in_backward;

typedef struct {
  lua_State *L;
  int failed; /* a hook raised: its error object is at the top of L's stack */
} hook_call;

static int compare_keys(const void *a, const void *b) {
  lua_Integer x = *(const lua_Integer *)a, y = *(const lua_Integer *)b;
  return (x > y) - (x < y);
}

/* The Lua side of run_hooks, in a protected call: (t, grad) as light userdata. Any error,
 * running out of memory included, comes back to run_hooks as a status instead of jumping over
 * the engine's frames (which would strand the graph's buffers and leave in_backward set). */
static int run_hooks_protected(lua_State *L) {
  cl_tensor *t = lua_touserdata(L, 1);
  cl_tensor **grad = lua_touserdata(L, 2);
  int top = lua_gettop(L);
  push_hooks_table(L);
  if (lua_rawgeti(L, -1, (lua_Integer)t->id) != LUA_TTABLE)
    return 0;
  /* Snapshot the keys in registration order: a hook may remove itself. */
  lua_Integer keys[64];
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (n == 64) { /* more hooks on one tensor than anyone needs: run the first 64 */
      lua_pop(L, 1);
      break;
    }
    keys[n++] = lua_tointeger(L, -1);
  }
  qsort(keys, (size_t)n, sizeof keys[0], compare_keys);
  int list = lua_gettop(L);
  for (int i = 0; i < n; i++) {
    if (lua_rawgeti(L, list, keys[i]) != LUA_TFUNCTION) {
      lua_pop(L, 1);
      continue;
    }
    cl_tensor **slot = clb_slot(L); /* before the retain: making it may raise */
    cl_retain(*grad);
    *slot = *grad;
    lua_call(L, 1, 1);
    if (!lua_isnil(L, -1)) {
      clb_tensor *r = luaL_testudata(L, -1, CLB_TENSOR);
      if (!r || !r->t)
        return luaL_error(L, "backward: a tensor hook must return nil or a tensor, got %s",
                          luaL_typename(L, -1));
      cl_retain(r->t);
      cl_release(*grad);
      *grad = r->t;
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return 0;
}

/* Called by the engine with the full gradient of a hooked tensor. */
static int run_hooks(void *ud, cl_tensor *t, cl_tensor **grad) {
  hook_call *hc = ud;
  lua_State *L = hc->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8))
    return cl_fail("backward: Lua stack exhausted in hooks");
  lua_pushcfunction(L, run_hooks_protected); /* pushing these allocates nothing */
  lua_pushlightuserdata(L, t);
  lua_pushlightuserdata(L, grad);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_settop(L, top + 1); /* the error object, just above the caller's stack */
    hc->failed = 1;
    return cl_fail("backward: a hook raised an error");
  }
  return 0;
}

/* t:backward([grad], [{retain_graph = bool}]) */
int clb_tensor_backward(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int opts = 3;
  cl_tensor *grad = NULL;
  if (lua_istable(L, 2) && !clb_is_tensor(L, 2))
    opts = 2;
  else
    grad = clb_opt(L, 2);
  static const char *const allowed[] = {"retain_graph", NULL};
  clb_check_opts(L, opts, "backward", allowed);
  int retain = clb_opt_bool(L, opts, "retain_graph", 0);
  if (in_backward)
    return luaL_error(L, "backward: cannot start a backward pass from inside a hook");
  lua_settop(L, 3);
  hook_call hc = {L, 0};
  in_backward = 1;
  int rc = cl_backward(t, grad, retain, run_hooks, &hc);
  in_backward = 0;
  if (rc) {
    if (hc.failed)
      return lua_error(L);
    return clb_error(L);
  }
  return 0;
}

void clb_open_hooks(lua_State *L) {
  cl_set_hooked_free_listener(on_hooked_free);
  if (luaL_newmetatable(L, CLB_HOOK_HANDLE)) {
    lua_newtable(L);
    lua_pushcfunction(L, hook_remove);
    lua_setfield(L, -2, "remove");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

/* lcreate.c — making tensors from Lua: from nested tables or another tensor, filled
 * (zeros, ones, full, empty, rand, randn), ranges and permutations. */
#include "core/tensor_impl.h" /* cl_store */
#include "lua/lbind.h"

#include <math.h>
#include <string.h>

static void apply_requires_grad(lua_State *L, int opts, cl_tensor **slot) {
  if (clb_opt_bool(L, opts, "requires_grad", 0) && cl_set_requires_grad(*slot, 1))
    clb_error(L);
}

static const char *const creation_opts[] = {"dtype", "requires_grad", "generator", NULL};

/* Walks the first elements of a nested table to find its shape. */
static int nested_shape(lua_State *L, int idx, int64_t *shape) {
  int nd = 0;
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1)) {
    if (nd == CL_MAX_DIMS)
      luaL_error(L, "tensor: nesting deeper than %d levels", CL_MAX_DIMS);
    shape[nd++] = (int64_t)lua_rawlen(L, -1);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return nd;
}

/* One element from the Lua value at idx: exact for int64, NaN or out of range refused for the
 * integer dtypes. */
static void store_value(lua_State *L, int idx, cl_tensor *t, int64_t pos) {
  clb_value v;
  clb_value_at(L, idx, t->dtype, "tensor", &v);
  if (v.is_int && t->dtype == CL_INT64)
    ((int64_t *)cl_data(t))[pos] = v.i;
  else
    cl_store(t->dtype, cl_data(t), pos, v.d);
}

static void fill_nested(lua_State *L, int idx, cl_tensor *t, int dim, int64_t *pos) {
  int64_t len = (int64_t)lua_rawlen(L, idx);
  if (len != t->shape[dim])
    luaL_error(L, "tensor: ragged nested table: level %d has %d entries where %d were expected",
               dim + 1, (int)len, (int)t->shape[dim]);
  for (int64_t i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    if (dim + 1 < t->ndim) {
      if (!lua_istable(L, -1))
        luaL_error(L, "tensor: expected a table at depth %d, got %s", dim + 2,
                   luaL_typename(L, -1));
      fill_nested(L, lua_gettop(L), t, dim + 1, pos);
    } else {
      if (lua_type(L, -1) != LUA_TNUMBER && !lua_isboolean(L, -1))
        luaL_error(L, "tensor: expected a number at position %d, got %s", (int)*pos + 1,
                   luaL_typename(L, -1));
      store_value(L, lua_gettop(L), t, (*pos)++);
    }
    lua_pop(L, 1);
  }
}

/* lab.tensor(number | nested table | tensor, {dtype=, requires_grad=}) */
static int l_tensor(lua_State *L) {
  clb_check_opts(L, 2, "tensor", creation_opts);
  if (clb_is_tensor(L, 1)) {
    cl_tensor *src = clb_check(L, 1);
    cl_dtype dt = clb_opt_dtype(L, 2, src->dtype, "tensor");
    cl_tensor **slot = clb_slot(L);
    *slot = cl_empty(dt, src->ndim, src->shape);
    clb_done(L, slot);
    if (cl_copy_(*slot, src))
      clb_error(L);
    apply_requires_grad(L, 2, slot);
    return 1;
  }
  cl_dtype dt = clb_opt_dtype(L, 2, CL_FLOAT32, "tensor");
  int64_t shape[CL_MAX_DIMS];
  int nd = 0;
  if (lua_type(L, 1) == LUA_TNUMBER) {
    nd = 0;
  } else if (lua_istable(L, 1)) {
    nd = nested_shape(L, 1, shape);
  } else {
    return luaL_argerror(L, 1,
                         lua_pushfstring(L,
                                         "tensor: number, nested table or tensor "
                                         "expected, got %s",
                                         luaL_typename(L, 1)));
  }
  cl_tensor **slot = clb_slot(L);
  *slot = cl_empty(dt, nd, shape);
  clb_done(L, slot);
  if (nd == 0) {
    store_value(L, 1, *slot, 0);
  } else {
    int64_t pos = 0;
    fill_nested(L, 1, *slot, 0, &pos);
  }
  apply_requires_grad(L, 2, slot);
  return 1;
}

/* The shared shape of zeros/ones/full/empty/rand/randn: (shape..., [value], [opts]). */
static int make_filled(lua_State *L, const char *fn, int kind) {
  int64_t shape[CL_MAX_DIMS];
  int next;
  int nd = clb_check_shape(L, 1, shape, &next, fn);
  double value = 0;
  int value_at = next;
  if (kind == 'f') {
    luaL_checknumber(L, next);
    next++;
  }
  if (!lua_isnoneornil(L, next) && !lua_istable(L, next))
    luaL_argerror(
        L, next,
        lua_pushfstring(L, "%s: options table expected, got %s", fn, luaL_typename(L, next)));
  clb_check_opts(L, next, fn, creation_opts);
  cl_dtype dt = clb_opt_dtype(L, next, CL_FLOAT32, fn);
  cl_rng *rng = clb_opt_rng(L, next);
  if ((kind == 'r' || kind == 'n') && dt != CL_FLOAT32)
    luaL_error(L, "%s: only float32 is supported, got %s", fn, cl_dtype_name(dt));
  cl_tensor **slot = clb_slot(L);
  switch (kind) {
  case 'z':
    *slot = cl_zeros(dt, nd, shape);
    break;
  case 'o':
    *slot = cl_full(dt, nd, shape, 1);
    break;
  case 'f': {
    clb_value v;
    clb_value_at(L, value_at, dt, fn, &v);
    value = v.d;
    *slot = cl_empty(dt, nd, shape);
    if (*slot && (v.is_int && dt != CL_FLOAT32 ? cl_fill_i64_(*slot, v.i) : cl_fill_(*slot, value))) {
      cl_release(*slot);
      *slot = NULL;
    }
    break;
  }
  case 'e':
    *slot = cl_empty(dt, nd, shape);
    break;
  case 'r':
    *slot = cl_rand(rng, nd, shape);
    break;
  case 'n':
    *slot = cl_randn(rng, nd, shape);
    break;
  }
  clb_done(L, slot);
  apply_requires_grad(L, next, slot);
  return 1;
}

static int l_zeros(lua_State *L) { return make_filled(L, "zeros", 'z'); }
static int l_ones(lua_State *L) { return make_filled(L, "ones", 'o'); }
static int l_full(lua_State *L) { return make_filled(L, "full", 'f'); }
static int l_empty(lua_State *L) { return make_filled(L, "empty", 'e'); }
static int l_rand(lua_State *L) { return make_filled(L, "rand", 'r'); }
static int l_randn(lua_State *L) { return make_filled(L, "randn", 'n'); }

/* lab.arange(n) | (start, stop[, step]), with an optional options table last. */
static int l_arange(lua_State *L) {
  int nnum = 0;
  while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER)
    nnum++;
  if (nnum == 0)
    return luaL_argerror(L, 1, "arange: number expected (arange(n) or arange(start, stop, step))");
  int opts = nnum + 1;
  clb_check_opts(L, opts, "arange", creation_opts);
  double start = 0, stop, step = 1;
  if (nnum == 1) {
    stop = lua_tonumber(L, 1);
  } else {
    start = lua_tonumber(L, 1);
    stop = lua_tonumber(L, 2);
    if (nnum == 3)
      step = lua_tonumber(L, 3);
  }
  int all_int =
      lua_isinteger(L, 1) && (nnum < 2 || lua_isinteger(L, 2)) && (nnum < 3 || lua_isinteger(L, 3));
  cl_dtype dt = clb_opt_dtype(L, opts, all_int ? CL_INT64 : CL_FLOAT32, "arange");
  CLB_PUSH_RESULT(L, cl_arange(start, stop, step, dt));
}

static int l_randperm(lua_State *L) {
  lua_Integer n = clb_arg_integer(L, 1, "randperm", "n"); /* the range: cl_randperm */
  clb_check_opts(L, 2, "randperm", creation_opts);
  cl_rng *r = clb_opt_rng(L, 2);
  CLB_PUSH_RESULT(L, cl_randperm(r, n));
}

const luaL_Reg clb_create_funcs[] = {
    {"tensor", l_tensor},     {"zeros", l_zeros}, {"ones", l_ones},   {"full", l_full},
    {"empty", l_empty},       {"rand", l_rand},   {"randn", l_randn}, {"arange", l_arange},
    {"randperm", l_randperm}, {NULL, NULL},
};

/* ltensor.c — tensors as Lua userdata: creation, methods, operators, autograd flags and
 * explicit release (free / __close / __gc share one path). Creation is in lcreate.c,
 * backward and hooks in lhooks.c, printing in lprint.c. */
#include "core/tensor_impl.h"
#include "lua/lbind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- small helpers */

static clb_tensor *check_ud(lua_State *L, int idx) { return luaL_checkudata(L, idx, CLB_TENSOR); }

/* ---------------------------------------------------------------- properties */

static void push_shape(lua_State *L, const cl_tensor *t) {
  lua_createtable(L, t->ndim, 0);
  for (int d = 0; d < t->ndim; d++) {
    lua_pushinteger(L, t->shape[d]);
    lua_rawseti(L, -2, d + 1);
  }
}

static int m_size(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    push_shape(L, t);
  } else {
    int d = clb_check_dim(L, 2, t->ndim, "size");
    lua_pushinteger(L, t->shape[d]);
  }
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, clb_check(L, 1)->ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, cl_numel(clb_check(L, 1)));
  return 1;
}

static int m_len(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  lua_pushinteger(L, t->ndim ? t->shape[0] : 1);
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  lua_pushboolean(L, cl_is_contiguous(clb_check(L, 1)));
  return 1;
}

/* ---------------------------------------------------------------- element access */

static void push_value(lua_State *L, cl_dtype dt, double v) {
  if (dt == CL_FLOAT32)
    lua_pushnumber(L, v);
  else
    lua_pushinteger(L, (lua_Integer)v);
}

static void check_positions(lua_State *L, const cl_tensor *t, int first, int64_t *idx,
                            const char *fn) {
  for (int d = 0; d < t->ndim; d++) {
    int ok;
    lua_Integer v = lua_tointegerx(L, first + d, &ok);
    if (!ok) /* a number is shown by value: "argument 1 is number" puzzled for 0.5 */
      luaL_error(L,
                 "%s: %d position%s expected for a tensor of %d dimension%s (positions count "
                 "from 0), argument %d is %s",
                 fn, t->ndim, t->ndim == 1 ? "" : "s", t->ndim, t->ndim == 1 ? "" : "s", d + 1,
                 lua_type(L, first + d) == LUA_TNUMBER ? lua_tostring(L, first + d)
                                                       : luaL_typename(L, first + d));
    idx[d] = v;
  }
}

/* t:get(i, j, ...) with positions from 0 */
static int m_get(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int64_t idx[CL_MAX_DIMS];
  if (lua_gettop(L) - 1 != t->ndim)
    return luaL_error(L, "get: %d position%s expected for a tensor of shape %s, got %d", t->ndim,
                      t->ndim == 1 ? "" : "s", cl_shape_str(t, (char[96]){0}, 96),
                      lua_gettop(L) - 1);
  check_positions(L, t, 2, idx, "get");
  if (t->dtype == CL_INT64) {
    int64_t iv;
    if (cl_get_i64(t, idx, &iv))
      return clb_error(L);
    lua_pushinteger(L, (lua_Integer)iv);
    return 1;
  }
  double v;
  if (cl_get(t, idx, &v))
    return clb_error(L);
  push_value(L, t->dtype, v);
  return 1;
}

/* t:set(i, j, ..., value) */
static int m_set(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int64_t idx[CL_MAX_DIMS];
  if (lua_gettop(L) - 2 != t->ndim)
    return luaL_error(L,
                      "set: %d position%s and a value expected for a tensor of shape %s, got "
                      "%d arguments",
                      t->ndim, t->ndim == 1 ? "" : "s", cl_shape_str(t, (char[96]){0}, 96),
                      lua_gettop(L) - 1);
  check_positions(L, t, 2, idx, "set");
  clb_value v;
  clb_check_value(L, t->ndim + 2, t->dtype, "set", &v);
  if (v.is_int && t->dtype != CL_FLOAT32 ? cl_set_i64(t, idx, v.i) : cl_set(t, idx, v.d))
    return clb_error(L);
  lua_settop(L, 1);
  return 1;
}

static int m_item(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (cl_numel(t) != 1) {
    char b[96];
    return luaL_error(L, "item: tensor must have exactly one element, got shape %s",
                      cl_shape_str(t, b, sizeof b));
  }
  clb_push_elem(L, t, 0);
  return 1;
}

static void push_nested(lua_State *L, const cl_tensor *t, int dim, int64_t *linear) {
  lua_createtable(L, (int)t->shape[dim], 0);
  for (int64_t i = 0; i < t->shape[dim]; i++) {
    if (dim + 1 < t->ndim)
      push_nested(L, t, dim + 1, linear);
    else
      clb_push_elem(L, t, (*linear)++);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_totable(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (t->ndim == 0) {
    clb_push_elem(L, t, 0);
    return 1;
  }
  /* Every element becomes a Lua value: a view of 2^40 elements would exhaust memory first. */
  if (cl_numel(t) > (INT64_C(1) << 27))
    return luaL_error(L, "totable: %I elements are too many for a Lua table (at most 2^27)",
                      (lua_Integer)cl_numel(t));
  int64_t linear = 0;
  luaL_checkstack(L, t->ndim + 4, "totable: tensor too deep");
  push_nested(L, t, 0, &linear);
  return 1;
}

static int m_fill_(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  clb_value v;
  clb_check_value(L, 2, t->dtype, "fill_", &v);
  if (v.is_int && t->dtype != CL_FLOAT32 ? cl_fill_i64_(t, v.i) : cl_fill_(t, v.d))
    return clb_error(L);
  lua_settop(L, 1);
  return 1;
}

static int m_zero_(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (cl_fill_(t, 0))
    return clb_error(L);
  lua_settop(L, 1);
  return 1;
}

static int m_copy_(lua_State *L) {
  cl_tensor *t = clb_check(L, 1), *src = clb_check(L, 2);
  if (cl_copy_(t, src))
    return clb_error(L);
  lua_settop(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- views and conversions */

static int m_reshape(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int64_t shape[CL_MAX_DIMS];
  int n = 0;
  if (lua_istable(L, 2)) {
    int len = (int)lua_rawlen(L, 2);
    if (len > CL_MAX_DIMS)
      return luaL_error(L, "reshape: at most %d dimensions", CL_MAX_DIMS);
    for (int i = 1; i <= len; i++) {
      lua_rawgeti(L, 2, i);
      char what[32];
      snprintf(what, sizeof what, "shape entry %d", i);
      shape[n++] = clb_check_size(L, -1, "reshape", what, 1);
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    if (top - 1 > CL_MAX_DIMS)
      return luaL_error(L, "reshape: at most %d dimensions", CL_MAX_DIMS);
    for (int i = 2; i <= top; i++)
      shape[n++] = clb_check_size(L, i, "reshape", "a size", 1);
  }
  CLB_PUSH_RESULT(L, cl_reshape(t, n, shape));
}

static int m_flatten(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int start = lua_isnoneornil(L, 2) ? 0 : clb_check_dim(L, 2, t->ndim, "flatten");
  int64_t shape[CL_MAX_DIMS];
  for (int d = 0; d < start; d++)
    shape[d] = t->shape[d];
  shape[start] = -1;
  if (t->ndim == 0)
    start = 0;
  CLB_PUSH_RESULT(L, cl_reshape(t, start + 1, shape));
}

static int m_narrow(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int d = clb_check_dim(L, 2, t->ndim, "narrow");
  lua_Integer start = clb_arg_integer(L, 3, "narrow", "start");
  lua_Integer len = clb_arg_integer(L, 4, "narrow", "length");
  CLB_PUSH_RESULT(L, cl_narrow(t, d, start, len));
}

static int m_select(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int d = clb_check_dim(L, 2, t->ndim, "select");
  CLB_PUSH_RESULT(L, cl_select(t, d, clb_arg_integer(L, 3, "select", "index")));
}

static int m_transpose(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (t->ndim < 2 && lua_isnoneornil(L, 2))
    CLB_PUSH_RESULT(L, cl_clone(t));
  int a = lua_isnoneornil(L, 2) ? 0 : clb_check_dim(L, 2, t->ndim, "transpose");
  int b = lua_isnoneornil(L, 3) ? 1 : clb_check_dim(L, 3, t->ndim, "transpose");
  CLB_PUSH_RESULT(L, cl_transpose(t, a, b));
}

static int m_permute(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int perm[CL_MAX_DIMS];
  int tab = lua_istable(L, 2);
  int n = tab ? (int)lua_rawlen(L, 2) : lua_gettop(L) - 1;
  if (n != t->ndim)
    return luaL_error(L, "permute: %d dimensions expected, got %d", t->ndim, n);
  for (int i = 0; i < n; i++) {
    if (tab)
      lua_rawgeti(L, 2, i + 1);
    else
      lua_pushvalue(L, i + 2);
    perm[i] = clb_check_dim(L, tab ? -1 : i + 2, t->ndim, "permute");
    lua_pop(L, 1);
  }
  CLB_PUSH_RESULT(L, cl_permute(t, perm));
}

static int m_unsqueeze(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  CLB_PUSH_RESULT(L, cl_unsqueeze(t, clb_check_newdim(L, 2, t->ndim, "unsqueeze")));
}

static int m_squeeze(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int d = lua_isnoneornil(L, 2) ? -1 : clb_check_dim(L, 2, t->ndim, "squeeze");
  CLB_PUSH_RESULT(L, cl_squeeze(t, d));
}

static int m_expand(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int64_t shape[CL_MAX_DIMS];
  int n = 0;
  if (lua_istable(L, 2)) {
    n = (int)lua_rawlen(L, 2);
    if (n > CL_MAX_DIMS)
      return luaL_error(L, "expand: at most %d dimensions", CL_MAX_DIMS);
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 2, i + 1);
      shape[i] = clb_check_size(L, -1, "expand", "a size", 1);
      lua_pop(L, 1);
    }
  } else {
    n = lua_gettop(L) - 1;
    if (n > CL_MAX_DIMS)
      return luaL_error(L, "expand: at most %d dimensions", CL_MAX_DIMS);
    for (int i = 0; i < n; i++)
      shape[i] = clb_check_size(L, i + 2, "expand", "a size", 1);
  }
  CLB_PUSH_RESULT(L, cl_expand(t, n, shape));
}

static int m_contiguous(lua_State *L) { CLB_PUSH_RESULT(L, cl_contiguous(clb_check(L, 1))); }
static int m_clone(lua_State *L) { CLB_PUSH_RESULT(L, cl_clone(clb_check(L, 1))); }
static int m_detach(lua_State *L) { CLB_PUSH_RESULT(L, cl_detach(clb_check(L, 1))); }
static int m_float(lua_State *L) { CLB_PUSH_RESULT(L, cl_to_dtype(clb_check(L, 1), CL_FLOAT32)); }
static int m_byte(lua_State *L) { CLB_PUSH_RESULT(L, cl_to_dtype(clb_check(L, 1), CL_UINT8)); }
static int m_long(lua_State *L) { CLB_PUSH_RESULT(L, cl_to_dtype(clb_check(L, 1), CL_INT64)); }

static int m_type(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    lua_pushstring(L, cl_dtype_name(t->dtype));
    return 1;
  }
  cl_dtype dt = clb_check_dtype(L, clb_check_name(L, 2, "type", "dtype"), "type");
  CLB_PUSH_RESULT(L, cl_to_dtype(t, dt));
}

/* ---------------------------------------------------------------- arithmetic */

/* a op b where either side may be a number (0.5 * t must work as well as t * 0.5). */
static int binary(lua_State *L, cl_binop op, const char *fn) {
  int ta = clb_is_tensor(L, 1), tb = clb_is_tensor(L, 2);
  if (ta && tb) {
    cl_tensor *a = clb_check(L, 1), *b = clb_check(L, 2);
    CLB_PUSH_RESULT(L, cl_binary(op, a, b));
  }
  if (ta && lua_type(L, 2) == LUA_TNUMBER)
    CLB_PUSH_RESULT(L, cl_binary_scalar(op, clb_check(L, 1), lua_tonumber(L, 2), 0));
  if (tb && lua_type(L, 1) == LUA_TNUMBER)
    CLB_PUSH_RESULT(L, cl_binary_scalar(op, clb_check(L, 2), lua_tonumber(L, 1), 1));
  int bad = ta ? 2 : 1;
  if (ta)
    clb_check(L, 1);
  return luaL_error(L, "%s: tensor or number expected, got %s", fn, luaL_typename(L, bad));
}

#define BINARY(name, op)                                                                           \
  static int m_##name(lua_State *L) { return binary(L, op, #name); }
BINARY(add, CL_ADD)
BINARY(sub, CL_SUB)
BINARY(mul, CL_MUL)
BINARY(div, CL_DIV)
BINARY(pow, CL_POW)
BINARY(maximum, CL_MAXIMUM)
BINARY(minimum, CL_MINIMUM)
BINARY(eq, CL_EQ)
BINARY(ne, CL_NE)
BINARY(lt, CL_LT)
BINARY(le, CL_LE)
BINARY(gt, CL_GT)
BINARY(ge, CL_GE)

#define UNARY(name, op)                                                                            \
  static int m_##name(lua_State *L) { CLB_PUSH_RESULT(L, cl_unary(op, clb_check(L, 1))); }
UNARY(neg, CL_NEG)
UNARY(exp, CL_EXP)
UNARY(log, CL_LOG)
UNARY(relu, CL_RELU)
UNARY(sigmoid, CL_SIGMOID)
UNARY(tanh, CL_TANH)
UNARY(abs, CL_ABS)
UNARY(sign, CL_SIGN)
UNARY(sqrt, CL_SQRT)
UNARY(square, CL_SQUARE)

static int m_unm(lua_State *L) { CLB_PUSH_RESULT(L, cl_unary(CL_NEG, clb_check(L, 1))); }

static int m_clamp(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  /* nil means "no bound"; NaN is refused rather than read as one. */
  double lo = lua_isnoneornil(L, 2) ? NAN : clb_arg_notnan(L, 2, "clamp", "min");
  double hi = lua_isnoneornil(L, 3) ? NAN : clb_arg_notnan(L, 3, "clamp", "max");
  CLB_PUSH_RESULT(L, cl_clamp(t, lo, hi));
}

static int m_matmul(lua_State *L) {
  cl_tensor *a = clb_check(L, 1), *b = clb_check(L, 2);
  CLB_PUSH_RESULT(L, cl_matmul(a, b));
}

/* ---------------------------------------------------------------- reductions */

static int reduce(lua_State *L, int mean) {
  cl_tensor *t = clb_check(L, 1);
  const char *fn = mean ? "mean" : "sum";
  int dim = lua_isnoneornil(L, 2) ? CL_ALL_DIMS : clb_check_dim(L, 2, t->ndim, fn);
  int keep = lua_toboolean(L, 3);
  CLB_PUSH_RESULT(L, mean ? cl_mean(t, dim, keep) : cl_sum(t, dim, keep));
}

static int m_sum(lua_State *L) { return reduce(L, 0); }
static int m_mean(lua_State *L) { return reduce(L, 1); }

static int extreme(lua_State *L, int want_max) {
  cl_tensor *t = clb_check(L, 1);
  const char *fn = want_max ? "max" : "min";
  if (lua_isnoneornil(L, 2)) { /* over everything: one value, ties sharing the gradient */
    if (cl_numel(t) == 0)
      return luaL_error(L, "%s: tensor is empty", fn);
    CLB_PUSH_RESULT(L, want_max ? cl_max_all(t) : cl_min_all(t));
  }
  int dim = clb_check_dim(L, 2, t->ndim, fn);
  int keep = lua_toboolean(L, 3);
  cl_tensor **v = clb_slot(L), **i = clb_slot(L);
  if (want_max ? cl_max(t, dim, keep, v, i) : cl_min(t, dim, keep, v, i))
    return clb_error(L);
  return 2;
}

static int m_max(lua_State *L) { return extreme(L, 1); }
static int m_min(lua_State *L) { return extreme(L, 0); }

static int m_argmax(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    int64_t all = -1;
    cl_tensor **flat = clb_slot(L);
    *flat = cl_reshape(t, 1, &all);
    clb_done(L, flat);
    CLB_PUSH_RESULT(L, cl_argmax(*flat, 0, 0));
  }
  int dim = clb_check_dim(L, 2, t->ndim, "argmax");
  CLB_PUSH_RESULT(L, cl_argmax(t, dim, lua_toboolean(L, 3)));
}

static int m_softmax(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  CLB_PUSH_RESULT(L, cl_softmax(t, clb_check_dim(L, 2, t->ndim, "softmax")));
}

static int m_log_softmax(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  CLB_PUSH_RESULT(L, cl_log_softmax(t, clb_check_dim(L, 2, t->ndim, "log_softmax")));
}

static int m_index_select(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int d = clb_check_dim(L, 2, t->ndim, "index_select");
  cl_tensor *idx = clb_check(L, 3);
  CLB_PUSH_RESULT(L, cl_index_select(t, d, idx));
}

static int m_gather(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int d = clb_check_dim(L, 2, t->ndim, "gather");
  cl_tensor *idx = clb_check(L, 3);
  CLB_PUSH_RESULT(L, cl_gather(t, d, idx));
}

/* lab.cat({a, b, ...}, dim) */
static int l_cat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  /* Without it the pointer array below lands at index 2 and is read as the dim: lab.cat(list)
   * with the documented default dim failed ("dimension must be an integer, got userdata"). */
  lua_settop(L, 2);
  int n = (int)lua_rawlen(L, 1);
  if (n < 1)
    return luaL_argerror(L, 1, "cat: a non-empty list of tensors expected");
  cl_tensor **ts = lua_newuserdatauv(L, sizeof(cl_tensor *) * (size_t)n, 0); /* GC-owned */
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    if (!clb_is_tensor(L, -1))
      return luaL_error(L, "cat: entry %d of the list is %s, not a tensor", i + 1,
                        luaL_typename(L, -1));
    ts[i] = clb_check(L, -1);
    lua_pop(L, 1);
  }
  int dim = lua_isnoneornil(L, 2) ? 0 : clb_check_dim(L, 2, ts[0]->ndim, "cat");
  CLB_PUSH_RESULT(L, cl_cat(n, ts, dim));
}

/* ---------------------------------------------------------------- autograd flags */

static int m_retain_grad(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  if (!t->requires_grad)
    return luaL_error(L, "retain_grad: the tensor does not require grad");
  t->retains_grad = 1;
  lua_settop(L, 1);
  return 1;
}

static int m_requires_grad_(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  int on = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
  if (cl_set_requires_grad(t, on))
    return clb_error(L);
  lua_settop(L, 1);
  return 1;
}

static int m_zero_grad(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  cl_release(t->grad);
  t->grad = NULL;
  return 0;
}

/* ---------------------------------------------------------------- release */

static int m_free(lua_State *L) {
  clb_tensor *ud = check_ud(L, 1);
  cl_release(ud->t);
  ud->t = NULL;
  return 0;
}

static int m_is_freed(lua_State *L) {
  lua_pushboolean(L, check_ud(L, 1)->t == NULL);
  return 1;
}

/* ---------------------------------------------------------------- __index / __newindex */

static int t_index(lua_State *L) {
  clb_tensor *ud = check_ud(L, 1);
  /* methods first */
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) != LUA_TNIL)
    return 1;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "tensor: index with a method or property name; use t:get(i, ...) for "
                         "elements (positions from 0)");
  const char *k = lua_tostring(L, 2);
  if (!ud->t)
    return luaL_error(L, "tensor has been freed");
  cl_tensor *t = ud->t;
  if (!strcmp(k, "shape")) {
    push_shape(L, t);
  } else if (!strcmp(k, "grad")) {
    if (t->grad)
      clb_push(L, (cl_retain(t->grad), t->grad));
    else
      lua_pushnil(L);
  } else if (!strcmp(k, "requires_grad")) {
    lua_pushboolean(L, t->requires_grad);
  } else if (!strcmp(k, "is_leaf")) {
    lua_pushboolean(L, t->grad_fn == NULL);
  } else if (!strcmp(k, "grad_fn")) {
    if (t->grad_fn)
      lua_pushstring(L, t->grad_fn->op);
    else
      lua_pushnil(L);
  } else if (!strcmp(k, "dtype")) {
    lua_pushstring(L, cl_dtype_name(t->dtype));
  } else if (!strcmp(k, "ndim")) {
    lua_pushinteger(L, t->ndim);
  } else if (!strcmp(k, "id")) {
    lua_pushinteger(L, (lua_Integer)t->id);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int t_newindex(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "requires_grad")) {
    if (cl_set_requires_grad(t, lua_toboolean(L, 3)))
      return clb_error(L);
  } else if (!strcmp(k, "grad")) {
    cl_tensor *g = clb_opt(L, 3);
    if (g && (!cl_same_shape(g, t) || g->dtype != CL_FLOAT32))
      return luaL_error(L, "grad: must be a float32 tensor of the tensor's shape");
    if (g)
      cl_retain(g);
    cl_release(t->grad);
    t->grad = g;
  } else {
    return luaL_error(L, "tensor: cannot set field '%s' (settable: requires_grad, grad)", k);
  }
  return 0;
}

static const luaL_Reg methods[] = {
    {"size", m_size},
    {"dim", m_dim},
    {"numel", m_numel},
    {"is_contiguous", m_is_contiguous},
    {"get", m_get},
    {"set", m_set},
    {"item", m_item},
    {"totable", m_totable},
    {"fill_", m_fill_},
    {"zero_", m_zero_},
    {"copy_", m_copy_},
    {"reshape", m_reshape},
    {"view", m_reshape},
    {"flatten", m_flatten},
    {"narrow", m_narrow},
    {"select", m_select},
    {"transpose", m_transpose},
    {"permute", m_permute},
    {"unsqueeze", m_unsqueeze},
    {"squeeze", m_squeeze},
    {"expand", m_expand},
    {"contiguous", m_contiguous},
    {"clone", m_clone},
    {"detach", m_detach},
    {"float", m_float},
    {"byte", m_byte},
    {"long", m_long},
    {"type", m_type},
    {"add", m_add},
    {"sub", m_sub},
    {"mul", m_mul},
    {"div", m_div},
    {"pow", m_pow},
    {"maximum", m_maximum},
    {"minimum", m_minimum},
    {"eq", m_eq},
    {"ne", m_ne},
    {"lt", m_lt},
    {"le", m_le},
    {"gt", m_gt},
    {"ge", m_ge},
    {"neg", m_neg},
    {"exp", m_exp},
    {"log", m_log},
    {"relu", m_relu},
    {"sigmoid", m_sigmoid},
    {"tanh", m_tanh},
    {"abs", m_abs},
    {"sign", m_sign},
    {"sqrt", m_sqrt},
    {"square", m_square},
    {"clamp", m_clamp},
    {"matmul", m_matmul},
    {"sum", m_sum},
    {"mean", m_mean},
    {"max", m_max},
    {"min", m_min},
    {"argmax", m_argmax},
    {"softmax", m_softmax},
    {"log_softmax", m_log_softmax},
    {"index_select", m_index_select},
    {"gather", m_gather},
    {"backward", clb_tensor_backward},
    {"retain_grad", m_retain_grad},
    {"requires_grad_", m_requires_grad_},
    {"zero_grad", m_zero_grad},
    {"register_hook", clb_tensor_register_hook},
    {"free", m_free},
    {"is_freed", m_is_freed},
    {NULL, NULL},
};

static const luaL_Reg metamethods[] = {
    {"__add", m_add},           {"__sub", m_sub},
    {"__mul", m_mul},           {"__div", m_div},
    {"__pow", m_pow},           {"__unm", m_unm},
    {"__len", m_len},           {"__tostring", clb_tensor_tostring},
    {"__gc", m_free},           {"__close", m_free},
    {"__newindex", t_newindex}, {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {{"cat", l_cat}, {"matmul", m_matmul}, {NULL, NULL}};

static int is_tensor(lua_State *L) {
  lua_pushboolean(L, clb_is_tensor(L, 1));
  return 1;
}

void clb_open_tensor(lua_State *L) {
  if (luaL_newmetatable(L, CLB_TENSOR)) {
    luaL_setfuncs(L, metamethods, 0);
    lua_newtable(L); /* methods, also exposed as __methods for REPL completion */
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, -2, "__index");
  }
  lua_getfield(L, -1, "__methods");
  lua_setfield(L, -3, "Tensor"); /* core.Tensor: the method table, for extension from Lua */
  lua_pop(L, 1);
  luaL_setfuncs(L, clb_create_funcs, 0); /* lcreate.c: tensor, zeros, ... */
  luaL_setfuncs(L, module_funcs, 0);
  lua_pushcfunction(L, is_tensor);
  lua_setfield(L, -2, "is_tensor");
}

/* lnn.c — Lua bindings of the neural-network ops and optimizer steps (core.conv2d, ...).
 *
 * Every argument is checked before the core is called, with a message that names the function
 * and the argument ("conv2d: stride must be a positive integer, got 0"); the core then checks
 * shapes and dtypes itself. Results go through clb_slot/clb_done, so a Lua error can never
 * strand a C tensor. */
#include "lua/lbind.h"

#include <limits.h>
#include <string.h>

/* ---------------------------------------------------------------- argument checks */

/* A short description of the value at idx for "got ..." (numbers by value). */
static const char *describe(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER)
    return luaL_tolstring(L, idx, NULL);
  if (lua_type(L, idx) == LUA_TSTRING)
    return lua_pushfstring(L, "the string \"%s\"", lua_tostring(L, idx));
  if (clb_is_tensor(L, idx))
    return "a tensor";
  return luaL_typename(L, idx);
}

static cl_tensor *check_tensor(lua_State *L, int idx, const char *fn, const char *arg) {
  if (!clb_is_tensor(L, idx))
    luaL_error(L, "%s: %s must be a tensor, got %s", fn, arg, describe(L, idx));
  return clb_check(L, idx); /* also refuses a freed tensor */
}

static cl_tensor *opt_tensor(lua_State *L, int idx, const char *fn, const char *arg) {
  return lua_isnoneornil(L, idx) ? NULL : check_tensor(L, idx, fn, arg);
}

/* An integer >= min that fits an int; nil/none gives def when def >= min. */
static int check_int(lua_State *L, int idx, const char *fn, const char *arg, int min, int def) {
  if (lua_isnoneornil(L, idx) && def >= min)
    return def;
  int ok = 0;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (lua_type(L, idx) != LUA_TNUMBER || !ok || v < min || v > INT_MAX)
    luaL_error(L, "%s: %s must be a %s integer, got %s", fn, arg,
               min > 0 ? "positive" : "non-negative", describe(L, idx));
  return (int)v;
}

static double opt_number(lua_State *L, int idx, const char *fn, const char *arg, double def) {
  if (lua_isnoneornil(L, idx))
    return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a number, got %s", fn, arg, describe(L, idx));
  return lua_tonumber(L, idx);
}

static double check_number(lua_State *L, int idx, const char *fn, const char *arg) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a number, got %s", fn, arg, describe(L, idx));
  return lua_tonumber(L, idx);
}

static int opt_boolean(lua_State *L, int idx, const char *fn, const char *arg, int def) {
  if (lua_isnoneornil(L, idx))
    return def;
  if (!lua_isboolean(L, idx))
    luaL_error(L, "%s: %s must be a boolean, got %s", fn, arg, describe(L, idx));
  return lua_toboolean(L, idx);
}

/* opts.reduction from an options table at idx: "mean" (default), "sum" or "none". */
static cl_reduction opt_reduction(lua_State *L, int idx, const char *fn) {
  if (!lua_istable(L, idx))
    return CL_REDUCE_MEAN;
  lua_getfield(L, idx, "reduction");
  cl_reduction r = CL_REDUCE_MEAN;
  if (!lua_isnil(L, -1)) {
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (s && !strcmp(s, "mean"))
      r = CL_REDUCE_MEAN;
    else if (s && !strcmp(s, "sum"))
      r = CL_REDUCE_SUM;
    else if (s && !strcmp(s, "none"))
      r = CL_REDUCE_NONE;
    else
      luaL_error(L, "%s: reduction must be \"mean\", \"sum\" or \"none\", got %s", fn,
                 describe(L, lua_gettop(L)));
  }
  lua_pop(L, 1);
  return r;
}

static void check_options_table(lua_State *L, int idx, const char *fn, const char *const *allowed) {
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
    luaL_error(L, "%s: options must be a table, got %s", fn, describe(L, idx));
  clb_check_opts(L, idx, fn, allowed);
}

/* ---------------------------------------------------------------- layers */

/* conv2d(x, w, b_or_nil, stride = 1, padding = 0) */
static int l_conv2d(lua_State *L) {
  const char *fn = "conv2d";
  cl_tensor *x = check_tensor(L, 1, fn, "input");
  cl_tensor *w = check_tensor(L, 2, fn, "weight");
  cl_tensor *b = opt_tensor(L, 3, fn, "bias");
  int stride = check_int(L, 4, fn, "stride", 1, 1);
  int padding = check_int(L, 5, fn, "padding", 0, 0);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_conv2d(x, w, b, stride, padding);
  clb_done(L, slot);
  return 1;
}

/* max_pool2d(x, kernel, stride = kernel) */
static int l_max_pool2d(lua_State *L) {
  const char *fn = "max_pool2d";
  cl_tensor *x = check_tensor(L, 1, fn, "input");
  int kernel = check_int(L, 2, fn, "kernel", 1, 0);
  int stride = check_int(L, 3, fn, "stride", 1, kernel);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_max_pool2d(x, kernel, stride);
  clb_done(L, slot);
  return 1;
}

/* linear(x, w, b_or_nil) */
static int l_linear(lua_State *L) {
  const char *fn = "linear";
  cl_tensor *x = check_tensor(L, 1, fn, "input");
  cl_tensor *w = check_tensor(L, 2, fn, "weight");
  cl_tensor *b = opt_tensor(L, 3, fn, "bias");
  cl_tensor **slot = clb_slot(L);
  *slot = cl_linear(x, w, b);
  clb_done(L, slot);
  return 1;
}

/* dropout(x, p, training = true, generator_or_nil) */
static int l_dropout(lua_State *L) {
  const char *fn = "dropout";
  cl_tensor *x = check_tensor(L, 1, fn, "input");
  double p = check_number(L, 2, fn, "p");
  if (!(p >= 0 && p < 1))
    return luaL_error(L, "%s: p must be in [0, 1), got %s", fn, describe(L, 2));
  int training = opt_boolean(L, 3, fn, "training", 1);
  cl_rng *r = NULL;
  if (!lua_isnoneornil(L, 4) && !(r = luaL_testudata(L, 4, CLB_GENERATOR)))
    return luaL_error(L, "%s: generator must be a Generator, got %s", fn, describe(L, 4));
  cl_tensor **slot = clb_slot(L);
  *slot = cl_dropout(x, p, training, r ? r : cl_default_rng());
  clb_done(L, slot);
  return 1;
}

/* upsample_bilinear(x, out_h, out_w) */
static int l_upsample_bilinear(lua_State *L) {
  const char *fn = "upsample_bilinear";
  cl_tensor *x = check_tensor(L, 1, fn, "input");
  int out_h = check_int(L, 2, fn, "out_h", 1, 0);
  int out_w = check_int(L, 3, fn, "out_w", 1, 0);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_upsample_bilinear(x, out_h, out_w);
  clb_done(L, slot);
  return 1;
}

/* ---------------------------------------------------------------- losses */

/* cross_entropy(logits, targets, {reduction = "mean"|"sum"|"none", weight = tensor}) */
static int l_cross_entropy(lua_State *L) {
  static const char *const allowed[] = {"reduction", "weight", NULL};
  const char *fn = "cross_entropy";
  cl_tensor *logits = check_tensor(L, 1, fn, "logits");
  cl_tensor *targets = check_tensor(L, 2, fn, "targets");
  check_options_table(L, 3, fn, allowed);
  cl_reduction reduction = opt_reduction(L, 3, fn);
  cl_tensor *weight = NULL;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "weight");
    /* the options table keeps the tensor alive after the pop */
    weight = opt_tensor(L, lua_gettop(L), fn, "option weight");
    lua_pop(L, 1);
  }
  cl_tensor **slot = clb_slot(L);
  *slot = cl_cross_entropy(logits, targets, weight, reduction);
  clb_done(L, slot);
  return 1;
}

/* mse_loss(input, target, {reduction = "mean"|"sum"|"none"}) */
static int l_mse_loss(lua_State *L) {
  static const char *const allowed[] = {"reduction", NULL};
  const char *fn = "mse_loss";
  cl_tensor *a = check_tensor(L, 1, fn, "input");
  cl_tensor *b = check_tensor(L, 2, fn, "target");
  check_options_table(L, 3, fn, allowed);
  cl_reduction reduction = opt_reduction(L, 3, fn);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_mse_loss(a, b, reduction);
  clb_done(L, slot);
  return 1;
}

/* ---------------------------------------------------------------- optimizer steps */

/* sgd_step(p, g, buf_or_nil, lr, momentum = 0, weight_decay = 0, nesterov = false) */
static int l_sgd_step(lua_State *L) {
  const char *fn = "sgd_step";
  cl_tensor *p = check_tensor(L, 1, fn, "parameter");
  cl_tensor *g = check_tensor(L, 2, fn, "gradient");
  cl_tensor *buf = opt_tensor(L, 3, fn, "momentum buffer");
  double lr = check_number(L, 4, fn, "lr");
  double momentum = opt_number(L, 5, fn, "momentum", 0);
  double weight_decay = opt_number(L, 6, fn, "weight_decay", 0);
  int nesterov = opt_boolean(L, 7, fn, "nesterov", 0);
  if (cl_sgd_step(p, g, buf, lr, momentum, weight_decay, nesterov))
    return clb_error(L);
  return 0;
}

/* adam_step(p, g, m, v, step, lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
 *           weight_decay = 0, decoupled = false) */
static int l_adam_step(lua_State *L) {
  const char *fn = "adam_step";
  cl_tensor *p = check_tensor(L, 1, fn, "parameter");
  cl_tensor *g = check_tensor(L, 2, fn, "gradient");
  cl_tensor *m = check_tensor(L, 3, fn, "first moment m");
  cl_tensor *v = check_tensor(L, 4, fn, "second moment v");
  int step = check_int(L, 5, fn, "step", 1, 0);
  double lr = opt_number(L, 6, fn, "lr", 1e-3);
  double beta1 = opt_number(L, 7, fn, "beta1", 0.9);
  double beta2 = opt_number(L, 8, fn, "beta2", 0.999);
  double eps = opt_number(L, 9, fn, "eps", 1e-8);
  double weight_decay = opt_number(L, 10, fn, "weight_decay", 0);
  int decoupled = opt_boolean(L, 11, fn, "decoupled", 0);
  if (cl_adam_step(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled))
    return clb_error(L);
  return 0;
}

void clb_open_nn(lua_State *L) {
  static const luaL_Reg funcs[] = {{"conv2d", l_conv2d},
                                   {"max_pool2d", l_max_pool2d},
                                   {"linear", l_linear},
                                   {"dropout", l_dropout},
                                   {"upsample_bilinear", l_upsample_bilinear},
                                   {"cross_entropy", l_cross_entropy},
                                   {"mse_loss", l_mse_loss},
                                   {"sgd_step", l_sgd_step},
                                   {"adam_step", l_adam_step},
                                   {NULL, NULL}};
  clb_setfuncs(L, funcs);
}

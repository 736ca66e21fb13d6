/* lnn.c — Lua bindings of the neural-network ops and optimizer steps (core.conv2d, ...).
 *
 * Every argument is checked before the core is called, with a message that names the function
 * and the argument ("conv2d: stride must be a positive integer, got 0"); the core then checks
 * shapes and dtypes itself. Results go through clb_slot/clb_done, so a Lua error can never
 * strand a C tensor. */
#include "lua/lbind.h"

#include <math.h>

#include <string.h>

/* ---------------------------------------------------------------- argument checks */

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
                 clb_describe(L, lua_gettop(L)));
  }
  lua_pop(L, 1);
  return r;
}

/* ---------------------------------------------------------------- layers */

/* conv2d(x, w, b_or_nil, stride = 1, padding = 0) */
static int l_conv2d(lua_State *L) {
  const char *fn = "conv2d";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  cl_tensor *w = clb_arg_tensor(L, 2, fn, "weight");
  cl_tensor *b = clb_arg_opttensor(L, 3, fn, "bias");
  int stride = clb_arg_int(L, 4, fn, "stride", 1, 1);
  int padding = clb_arg_int(L, 5, fn, "padding", 0, 0);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_conv2d(x, w, b, stride, padding);
  clb_done(L, slot);
  return 1;
}

/* max_pool2d(x, kernel, stride = kernel) */
static int l_max_pool2d(lua_State *L) {
  const char *fn = "max_pool2d";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  int kernel = clb_arg_int(L, 2, fn, "kernel", 1, 0);
  int stride = clb_arg_int(L, 3, fn, "stride", 1, kernel);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_max_pool2d(x, kernel, stride);
  clb_done(L, slot);
  return 1;
}

/* conv2d_relu_pool(x, w, b_or_nil, stride, padding, pool_kernel, pool_stride) */
static int l_conv2d_relu_pool(lua_State *L) {
  const char *fn = "conv2d_relu_pool";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  cl_tensor *w = clb_arg_tensor(L, 2, fn, "weight");
  cl_tensor *b = clb_arg_opttensor(L, 3, fn, "bias");
  int stride = clb_arg_int(L, 4, fn, "stride", 1, 1);
  int padding = clb_arg_int(L, 5, fn, "padding", 0, 0);
  int kernel = clb_arg_int(L, 6, fn, "pool_kernel", 1, 0);
  int pool_stride = clb_arg_int(L, 7, fn, "pool_stride", 1, kernel);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_conv2d_relu_pool(x, w, b, stride, padding, kernel, pool_stride);
  clb_done(L, slot);
  return 1;
}

/* linear(x, w, b_or_nil) */
static int l_linear(lua_State *L) {
  const char *fn = "linear";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  cl_tensor *w = clb_arg_tensor(L, 2, fn, "weight");
  cl_tensor *b = clb_arg_opttensor(L, 3, fn, "bias");
  cl_tensor **slot = clb_slot(L);
  *slot = cl_linear(x, w, b);
  clb_done(L, slot);
  return 1;
}

/* dropout(x, p, training = true, generator_or_nil) */
static int l_dropout(lua_State *L) {
  const char *fn = "dropout";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  double p = clb_arg_number(L, 2, fn, "p");
  if (!(p >= 0 && p < 1))
    return luaL_error(L, "%s: p must be in [0, 1), got %s", fn, clb_describe(L, 2));
  int training = clb_arg_optbool(L, 3, fn, "training", 1);
  cl_rng *r = NULL;
  if (!lua_isnoneornil(L, 4) && !(r = luaL_testudata(L, 4, CLB_GENERATOR)))
    return luaL_error(L, "%s: generator must be a Generator, got %s", fn, clb_describe(L, 4));
  cl_tensor **slot = clb_slot(L);
  *slot = cl_dropout(x, p, training, r ? r : cl_default_rng());
  clb_done(L, slot);
  return 1;
}

/* upsample_bilinear(x, out_h, out_w) */
static int l_upsample_bilinear(lua_State *L) {
  const char *fn = "upsample_bilinear";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  int out_h = clb_arg_int(L, 2, fn, "out_h", 1, 0);
  int out_w = clb_arg_int(L, 3, fn, "out_w", 1, 0);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_upsample_bilinear(x, out_h, out_w);
  clb_done(L, slot);
  return 1;
}

/* batch_norm(x, running_mean_or_nil, running_var_or_nil, weight_or_nil, bias_or_nil,
 *            training = false, momentum = 0.1, eps = 1e-5): PyTorch's F.batch_norm order */
static int l_batch_norm(lua_State *L) {
  const char *fn = "batch_norm";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  cl_tensor *rm = clb_arg_opttensor(L, 2, fn, "running_mean");
  cl_tensor *rv = clb_arg_opttensor(L, 3, fn, "running_var");
  cl_tensor *w = clb_arg_opttensor(L, 4, fn, "weight");
  cl_tensor *b = clb_arg_opttensor(L, 5, fn, "bias");
  int training = clb_arg_optbool(L, 6, fn, "training", 0);
  double momentum = lua_isnoneornil(L, 7) ? 0.1 : clb_arg_numberin(L, 7, fn, "momentum", 0, 1);
  double eps = clb_arg_optnumber(L, 8, fn, "eps", 1e-5);
  if (!(eps > 0))
    return luaL_error(L, "%s: eps must be > 0, got %s", fn, clb_describe(L, 8));
  cl_tensor **slot = clb_slot(L);
  *slot = cl_batch_norm(x, w, b, rm, rv, training, momentum, eps);
  clb_done(L, slot);
  return 1;
}

/* avg_pool2d(x, kernel, stride = kernel, padding = 0) */
static int l_avg_pool2d(lua_State *L) {
  const char *fn = "avg_pool2d";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  int kernel = clb_arg_int(L, 2, fn, "kernel", 1, 0);
  int stride = clb_arg_int(L, 3, fn, "stride", 1, kernel);
  int padding = clb_arg_int(L, 4, fn, "padding", 0, 0);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_avg_pool2d(x, kernel, stride, padding);
  clb_done(L, slot);
  return 1;
}

/* adaptive_avg_pool2d(x, out_h, out_w = out_h) */
static int l_adaptive_avg_pool2d(lua_State *L) {
  const char *fn = "adaptive_avg_pool2d";
  cl_tensor *x = clb_arg_tensor(L, 1, fn, "input");
  int out_h = clb_arg_int(L, 2, fn, "out_h", 1, 0);
  int out_w = clb_arg_int(L, 3, fn, "out_w", 1, out_h);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_adaptive_avg_pool2d(x, out_h, out_w);
  clb_done(L, slot);
  return 1;
}

/* ---------------------------------------------------------------- losses */

/* cross_entropy(logits, targets, {reduction = "mean"|"sum"|"none", weight = tensor}): weight is
 * per class (K), as PyTorch's */
static int l_cross_entropy(lua_State *L) {
  static const char *const allowed[] = {"reduction", "weight", NULL};
  const char *fn = "cross_entropy";
  cl_tensor *logits = clb_arg_tensor(L, 1, fn, "logits");
  cl_tensor *targets = clb_arg_tensor(L, 2, fn, "targets");
  clb_check_optstable(L, 3, fn, allowed);
  cl_reduction reduction = opt_reduction(L, 3, fn);
  cl_tensor *weight = NULL;
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "weight");
    /* the options table keeps the tensor alive after the pop */
    weight = clb_arg_opttensor(L, lua_gettop(L), fn, "option weight");
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
  cl_tensor *a = clb_arg_tensor(L, 1, fn, "input");
  cl_tensor *b = clb_arg_tensor(L, 2, fn, "target");
  clb_check_optstable(L, 3, fn, allowed);
  cl_reduction reduction = opt_reduction(L, 3, fn);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_mse_loss(a, b, reduction);
  clb_done(L, slot);
  return 1;
}

/* ---------------------------------------------------------------- optimizer steps */

/* NaN (or ±inf) hyper-parameters would silently turn every weight into NaN. */
static void check_not_nan(lua_State *L, const char *fn, const double *v, const char *const *name,
                          int n) {
  for (int i = 0; i < n; i++)
    if (v[i] != v[i] || v[i] == HUGE_VAL || v[i] == -HUGE_VAL)
      luaL_error(L, "%s: %s must be a finite number, got %s", fn, name[i],
                 v[i] != v[i] ? "nan" : v[i] > 0 ? "inf" : "-inf");
}

/* sgd_step(p, g, buf_or_nil, lr, momentum = 0, weight_decay = 0, nesterov = false) */
static int l_sgd_step(lua_State *L) {
  const char *fn = "sgd_step";
  cl_tensor *p = clb_arg_tensor(L, 1, fn, "parameter");
  cl_tensor *g = clb_arg_tensor(L, 2, fn, "gradient");
  cl_tensor *buf = clb_arg_opttensor(L, 3, fn, "momentum buffer");
  double lr = clb_arg_number(L, 4, fn, "lr");
  double momentum = clb_arg_optnumber(L, 5, fn, "momentum", 0);
  double weight_decay = clb_arg_optnumber(L, 6, fn, "weight_decay", 0);
  int nesterov = clb_arg_optbool(L, 7, fn, "nesterov", 0);
  const double nums[] = {lr, momentum, weight_decay};
  static const char *const names[] = {"lr", "momentum", "weight_decay"};
  check_not_nan(L, fn, nums, names, 3);
  if (cl_sgd_step(p, g, buf, lr, momentum, weight_decay, nesterov))
    return clb_error(L);
  return 0;
}

/* adam_step(p, g, m, v, step, lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
 *           weight_decay = 0, decoupled = false) */
static int l_adam_step(lua_State *L) {
  const char *fn = "adam_step";
  cl_tensor *p = clb_arg_tensor(L, 1, fn, "parameter");
  cl_tensor *g = clb_arg_tensor(L, 2, fn, "gradient");
  cl_tensor *m = clb_arg_tensor(L, 3, fn, "first moment m");
  cl_tensor *v = clb_arg_tensor(L, 4, fn, "second moment v");
  int step = clb_arg_int(L, 5, fn, "step", 1, 0);
  double lr = clb_arg_number(L, 6, fn, "lr"); /* the default is cnnlab.defaults' */
  double beta1 = clb_arg_optnumber(L, 7, fn, "beta1", 0.9);
  double beta2 = clb_arg_optnumber(L, 8, fn, "beta2", 0.999);
  double eps = clb_arg_optnumber(L, 9, fn, "eps", 1e-8);
  double weight_decay = clb_arg_optnumber(L, 10, fn, "weight_decay", 0);
  int decoupled = clb_arg_optbool(L, 11, fn, "decoupled", 0);
  const double nums[] = {lr, beta1, beta2, eps, weight_decay};
  static const char *const names[] = {"lr", "beta1", "beta2", "eps", "weight_decay"};
  check_not_nan(L, fn, nums, names, 5);
  if (cl_adam_step(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled))
    return clb_error(L);
  return 0;
}

void clb_open_nn(lua_State *L) {
  static const luaL_Reg funcs[] = {{"conv2d", l_conv2d},
                                   {"max_pool2d", l_max_pool2d},
                                   {"conv2d_relu_pool", l_conv2d_relu_pool},
                                   {"linear", l_linear},
                                   {"dropout", l_dropout},
                                   {"upsample_bilinear", l_upsample_bilinear},
                                   {"batch_norm", l_batch_norm},
                                   {"avg_pool2d", l_avg_pool2d},
                                   {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
                                   {"cross_entropy", l_cross_entropy},
                                   {"mse_loss", l_mse_loss},
                                   {"sgd_step", l_sgd_step},
                                   {"adam_step", l_adam_step},
                                   {NULL, NULL}};
  clb_setfuncs(L, funcs);
}

/* lprint.c — tostring(tensor): a PyTorch-like layout, edges only for big tensors. */
#include "lua/lbind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void format_value(char *buf, size_t len, cl_dtype dt, double v, int sci) {
  if (dt != CL_FLOAT32)
    snprintf(buf, len, "%lld", (long long)v);
  else if (v != v)
    snprintf(buf, len, "nan");
  else if (isinf(v))
    snprintf(buf, len, v > 0 ? "inf" : "-inf");
  else
    snprintf(buf, len, sci ? "%.4e" : "%.4f", v);
}

typedef struct {
  luaL_Buffer *b;
  const cl_tensor *t;
  int width, sci, summarise;
} printer;

#define EDGE 3

static void print_dim(printer *p, int dim, int64_t base, int indent) {
  const cl_tensor *t = p->t;
  int64_t n = t->shape[dim];
  int64_t block = 1;
  for (int d = dim + 1; d < t->ndim; d++)
    block *= t->shape[d];
  luaL_addchar(p->b, '[');
  for (int64_t i = 0; i < n; i++) {
    if (p->summarise && n > 2 * EDGE && i == EDGE) {
      luaL_addstring(p->b, dim + 1 == t->ndim ? "..., " : "...,\n");
      if (dim + 1 < t->ndim)
        for (int s = 0; s < indent + 1; s++)
          luaL_addchar(p->b, ' ');
      i = n - EDGE - 1;
      continue;
    }
    if (dim + 1 == t->ndim) {
      char v[48];
      format_value(v, sizeof v, t->dtype, cl_item_at(t, base + i), p->sci);
      char padded[64];
      snprintf(padded, sizeof padded, "%*s", p->width, v);
      luaL_addstring(p->b, padded);
    } else {
      print_dim(p, dim + 1, base + i * block, indent + 1);
    }
    if (i + 1 < n) {
      luaL_addchar(p->b, ',');
      if (dim + 1 == t->ndim) {
        luaL_addchar(p->b, ' ');
      } else {
        for (int k = dim + 1; k < t->ndim; k++)
          luaL_addchar(p->b, '\n');
        for (int s = 0; s < indent + 1; s++)
          luaL_addchar(p->b, ' ');
      }
    }
  }
  luaL_addchar(p->b, ']');
}

/* "tensor(float32, 2×3, requires_grad)" then the values, NumPy-style: tensors beyond a
 * thousand elements show three entries at each edge, so a REPL never floods. */
int clb_tensor_tostring(lua_State *L) {
  clb_tensor *ud = luaL_checkudata(L, 1, CLB_TENSOR);
  if (!ud->t) {
    lua_pushliteral(L, "tensor(freed)");
    return 1;
  }
  cl_tensor *t = ud->t;
  char shape[96];
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  cl_shape_str(t, shape, sizeof shape);
  lua_pushfstring(L, "tensor(%s, %s", cl_dtype_name(t->dtype), shape);
  luaL_addvalue(&b);
  if (t->grad_fn) {
    lua_pushfstring(L, ", grad_fn=%s", t->grad_fn->op);
    luaL_addvalue(&b);
  } else if (t->requires_grad) {
    luaL_addstring(&b, ", requires_grad");
  }
  int64_t n = cl_numel(t);
  int summarise = n > 1000;
  if (summarise && t->dtype == CL_FLOAT32) {
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; i++) {
      double v = cl_item_at(t, i);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
      sum += v;
    }
    char stats[128];
    snprintf(stats, sizeof stats, ", min=%.4g, max=%.4g, mean=%.4g", lo, hi, sum / (double)n);
    luaL_addstring(&b, stats);
  }
  luaL_addstring(&b, ")\n");
  if (n == 0) {
    luaL_addstring(&b, "[]");
  } else if (t->ndim == 0) {
    char v[48];
    format_value(v, sizeof v, t->dtype, cl_item_at(t, 0), 0);
    luaL_addstring(&b, v);
  } else {
    double amax = 0;
    for (int64_t i = 0; i < n; i++) {
      double v = fabs(cl_item_at(t, i));
      if (v == v && !isinf(v) && v > amax)
        amax = v;
    }
    int sci = t->dtype == CL_FLOAT32 && (amax >= 1e5 || (amax > 0 && amax < 1e-3));
    printer p = {&b, t, 0, sci, summarise};
    for (int64_t i = 0; i < n; i++) {
      char v[48];
      format_value(v, sizeof v, t->dtype, cl_item_at(t, i), sci);
      int w = (int)strlen(v);
      if (w > p.width)
        p.width = w;
    }
    print_dim(&p, 0, 0, 0);
  }
  luaL_pushresult(&b);
  return 1;
}

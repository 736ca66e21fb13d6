/* lprint.c — tostring(tensor): a PyTorch-like layout, edges only for big tensors. */
#include "core/tensor_impl.h" /* cl_load */
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
  lua_State *L;
  luaL_Buffer *b;
  const cl_tensor *t;
  int width, sci, summarise;
  double amax;
  int64_t visited;
} printer;

#define EDGE 3

/* The value at a storage offset (elements from cl_data): int64 exactly. */
static void value_str(const printer *p, int64_t off, char *buf, size_t len) {
  const cl_tensor *t = p->t;
  if (t->dtype == CL_INT64)
    snprintf(buf, len, "%lld", (long long)((const int64_t *)cl_data(t))[off]);
  else
    format_value(buf, len, t->dtype, cl_load(t->dtype, cl_data(t), off), p->sci);
}

/* Positions shown along a dimension of size n: all, or EDGE at each end when summarising.
 * Cost is the number of shown elements, whatever the tensor's size: elements are reached by
 * offset (index × stride), never by walking or copying the tensor. */
static int64_t shown_next(const printer *p, int64_t n, int64_t i) {
  if (p->summarise && n > 2 * EDGE && i == EDGE - 1)
    return n - EDGE;
  return i + 1;
}

static void poll(printer *p) {
  if ((++p->visited & 0x3FFF) == 0 && cl_check_interrupt())
    clb_error(p->L);
}

/* First pass: the widest shown value, and the largest finite magnitude among them. */
static void measure(printer *p, int dim, int64_t off) {
  const cl_tensor *t = p->t;
  int64_t n = t->shape[dim];
  for (int64_t i = 0; i < n; i = shown_next(p, n, i)) {
    int64_t o = off + i * t->stride[dim];
    if (dim + 1 < t->ndim) {
      measure(p, dim + 1, o);
      continue;
    }
    poll(p);
    if (t->dtype == CL_FLOAT32) {
      double v = fabs(cl_load(t->dtype, cl_data(t), o));
      if (v == v && !isinf(v) && v > p->amax)
        p->amax = v;
    }
  }
}

static void widths(printer *p, int dim, int64_t off) {
  const cl_tensor *t = p->t;
  int64_t n = t->shape[dim];
  for (int64_t i = 0; i < n; i = shown_next(p, n, i)) {
    int64_t o = off + i * t->stride[dim];
    if (dim + 1 < t->ndim) {
      widths(p, dim + 1, o);
      continue;
    }
    poll(p);
    char v[48];
    value_str(p, o, v, sizeof v);
    int w = (int)strlen(v);
    if (w > p->width)
      p->width = w;
  }
}

static void print_dim(printer *p, int dim, int64_t off, int indent) {
  const cl_tensor *t = p->t;
  int64_t n = t->shape[dim];
  luaL_addchar(p->b, '[');
  for (int64_t i = 0; i < n; i = shown_next(p, n, i)) {
    int64_t o = off + i * t->stride[dim];
    if (dim + 1 == t->ndim) {
      poll(p);
      char v[48], padded[64];
      value_str(p, o, v, sizeof v);
      snprintf(padded, sizeof padded, "%*s", p->width, v);
      luaL_addstring(p->b, padded);
    } else {
      print_dim(p, dim + 1, o, indent + 1);
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
      if (shown_next(p, n, i) != i + 1) {
        luaL_addstring(p->b, dim + 1 == t->ndim ? "..., " : "...,\n");
        if (dim + 1 < t->ndim)
          for (int s = 0; s < indent + 1; s++)
            luaL_addchar(p->b, ' ');
      }
    }
  }
  luaL_addchar(p->b, ']');
}

/* "tensor(float32, 2×3, requires_grad)" then the values, PyTorch-style: tensors beyond a
 * thousand elements show three entries at each edge of every dimension, so a REPL never
 * floods. Printing reads only the elements it shows (by index, never a copy), so printing
 * lab.ones(1):expand(2^40) is as quick as printing a 7×7 tensor; the number format (fixed or
 * scientific) is chosen from the shown elements. Ctrl-C stops it ("interrupted"). */
int clb_tensor_tostring(lua_State *L) {
  clb_tensor *ud = luaL_checkudata(L, 1, CLB_TENSOR);
  if (!ud->t) {
    lua_pushliteral(L, "tensor(freed)");
    return 1;
  }
  cl_tensor *t = ud->t;
  char shape[200];
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
  if (summarise)
    luaL_addstring(&b, ", edges shown");
  luaL_addstring(&b, ")\n");
  if (n == 0) {
    luaL_addstring(&b, "[]");
  } else if (t->ndim == 0) {
    printer p = {L, &b, t, 0, 0, 0, 0, 0};
    char v[48];
    value_str(&p, 0, v, sizeof v);
    luaL_addstring(&b, v);
  } else {
    printer p = {L, &b, t, 0, 0, summarise, 0, 0};
    measure(&p, 0, 0);
    p.sci = t->dtype == CL_FLOAT32 && (p.amax >= 1e5 || (p.amax > 0 && p.amax < 1e-3));
    widths(&p, 0, 0);
    print_dim(&p, 0, 0, 0);
  }
  luaL_pushresult(&b);
  return 1;
}

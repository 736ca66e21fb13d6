/* lbind.h — what the Lua binding files (src/lua/) share. Only binding files include Lua. */
#ifndef CNNLAB_LBIND_H
#define CNNLAB_LBIND_H

#include "cnnlab.h"

#include <lauxlib.h>
#include <lua.h>

#define CLB_TENSOR "cnnlab.Tensor"
#define CLB_GENERATOR "cnnlab.Generator"

/* The userdata behind a Lua tensor: one reference to a core tensor, NULL once freed. */
typedef struct {
  cl_tensor *t;
} clb_tensor;

/* The tensor at idx, or a Lua error naming argument idx ("tensor expected, got nil") or
 * saying the tensor was freed. */
cl_tensor *clb_check(lua_State *L, int idx);
/* Like clb_check, but nil/none give NULL. */
cl_tensor *clb_opt(lua_State *L, int idx);
int clb_is_tensor(lua_State *L, int idx);

/* Safe construction: push an empty tensor userdata first, then fill its slot with the
 * result of a core call, then call clb_done(). If the call failed (slot NULL) clb_done raises
 * the core's message as a Lua error; a Lua error in between can leak nothing, because the
 * userdata on the stack owns whatever the slot holds. Also applies GC pressure. */
cl_tensor **clb_slot(lua_State *L);
void clb_done(lua_State *L, cl_tensor **slot);
/* Pushes t (taking over the caller's reference). For results made before any Lua call that
 * could fail: t == NULL raises the core's error. */
void clb_push(lua_State *L, cl_tensor *t);

/* Runs a core call that may fail and pushes the result. expr may still read arguments (an
 * absent optional one must read as none), so the slot goes above every argument position. */
#define CLB_PUSH_RESULT(L, expr)                                                                   \
  do {                                                                                             \
    if (lua_gettop(L) < 10)                                                                        \
      lua_settop(L, 10);                                                                           \
    cl_tensor **slot_ = clb_slot(L);                                                               \
    *slot_ = (expr);                                                                               \
    clb_done(L, slot_);                                                                            \
    return 1;                                                                                      \
  } while (0)

/* Raises cl_last_error() as a Lua error. */
int clb_error(lua_State *L);

/* Reads a shape at idx: either a table {2, 3, 28} or integers idx, idx+1, ... (stopping at
 * the first non-number). Returns the number of dims; *next is the index after the shape. */
int clb_check_shape(lua_State *L, int idx, int64_t *shape, int *next, const char *fn);
/* A dim argument counted from 0 (negative counts from the end), checked against ndim as a
 * lua_Integer before narrowing (2^32 is refused, not read as 0); the message shows the value
 * given and the valid range. Every method taking a dim uses it. */
int clb_check_dim(lua_State *L, int idx, int ndim, const char *fn);
/* The same for a position where a new dim goes (unsqueeze): -(ndim+1) .. ndim. */
int clb_check_newdim(lua_State *L, int idx, int ndim, const char *fn);
/* An exact integer argument (integral floats accepted), else an error naming fn and what. */
lua_Integer clb_arg_integer(lua_State *L, int idx, const char *fn, const char *what);
/* A size: an integer >= 0, or -1 too when keep_ok (expand's "keep this size"). */
int64_t clb_check_size(lua_State *L, int idx, const char *fn, const char *what, int keep_ok);
/* A string without embedded NUL bytes (a name, a key, a path): "a\0b" would be cut to "a"
 * by every C function it reaches, so it is refused. */
const char *clb_check_name(lua_State *L, int idx, const char *fn, const char *what);
const char *clb_opt_name(lua_State *L, int idx, const char *fn, const char *what,
                         const char *def);
/* A number that is not NaN. */
double clb_arg_notnan(lua_State *L, int idx, const char *fn, const char *what);
/* A value for an element of a tensor of dtype dt: integers stay exact (lua_Integer) for
 * int64 tensors; NaN or out-of-range values for integer dtypes are errors naming fn. */
typedef struct {
  int is_int;
  lua_Integer i;
  double d;
} clb_value;
void clb_check_value(lua_State *L, int idx, cl_dtype dt, const char *fn, clb_value *out);
/* The same for a value already known to be a number or boolean. */
void clb_value_at(lua_State *L, int idx, cl_dtype dt, const char *fn, clb_value *out);
/* Pushes the element at linear position of t: exact integers for int64. */
void clb_push_elem(lua_State *L, const cl_tensor *t, int64_t linear);
/* opts.generator if opts (a table at idx) has one, else the default generator. */
cl_rng *clb_opt_rng(lua_State *L, int idx);
/* Reads a string option `key` from an options table at idx (absent → def). */
const char *clb_opt_string(lua_State *L, int idx, const char *key, const char *def);
double clb_opt_number(lua_State *L, int idx, const char *key, double def);
int clb_opt_bool(lua_State *L, int idx, const char *key, int def);
/* A dtype by name ("float32", "uint8", "int64"), or an error naming fn. */
cl_dtype clb_check_dtype(lua_State *L, const char *name, const char *fn);
/* opts.dtype of the options table at idx, parsed; def when absent. */
cl_dtype clb_opt_dtype(lua_State *L, int idx, cl_dtype def, const char *fn);
/* An integer option `key` in [lo, hi] (absent → def), the message naming fn. */
int clb_opt_int(lua_State *L, int idx, const char *fn, const char *key, int def, int lo, int hi);
/* Checks that the options table at idx has only keys listed in `allowed` (NULL-terminated). */
void clb_check_opts(lua_State *L, int idx, const char *fn, const char *const *allowed);

/* Positional arguments, the messages naming fn and the argument ("conv2d: stride must be a
 * positive integer, got 0"). clb_describe: the value at idx for "got ..." (numbers by value). */
const char *clb_describe(lua_State *L, int idx);
cl_tensor *clb_arg_tensor(lua_State *L, int idx, const char *fn, const char *arg);
cl_tensor *clb_arg_opttensor(lua_State *L, int idx, const char *fn, const char *arg);
/* An integer >= min that fits an int; nil/none gives def when def >= min. */
int clb_arg_int(lua_State *L, int idx, const char *fn, const char *arg, int min, int def);
double clb_arg_number(lua_State *L, int idx, const char *fn, const char *arg);
double clb_arg_optnumber(lua_State *L, int idx, const char *fn, const char *arg, double def);
int clb_arg_optbool(lua_State *L, int idx, const char *fn, const char *arg, int def);
/* A number in [lo, hi] at idx; the message names fn, what and the argument number. */
double clb_arg_numberin(lua_State *L, int idx, const char *fn, const char *what, double lo,
                        double hi);
/* nil, or an options table with only the keys in `allowed`. */
void clb_check_optstable(lua_State *L, int idx, const char *fn, const char *const *allowed);

/* Adds functions to the table at the top of the stack. */
void clb_setfuncs(lua_State *L, const luaL_Reg *funcs);

/* The GC pressure: a full collection when the core's heap has grown enough (lmem.c). */
void clb_gc_pressure(lua_State *L);

/* Tensor methods defined beside their concern instead of in ltensor.c. */
int clb_tensor_backward(lua_State *L);      /* lhooks.c */
int clb_tensor_register_hook(lua_State *L); /* lhooks.c */
int clb_tensor_tostring(lua_State *L);      /* lprint.c */
extern const luaL_Reg clb_create_funcs[];   /* lcreate.c: tensor, zeros, ... randperm */

/* Each binding file registers its part of the core table (at the top of the stack); lcore.c
 * calls them in turn. */
void clb_open_sys(lua_State *L);
void clb_open_gen(lua_State *L);
void clb_open_grad(lua_State *L);
void clb_open_mem(lua_State *L);
void clb_open_thread(lua_State *L);
void clb_open_signal(lua_State *L);
void clb_open_hooks(lua_State *L);
void clb_open_tensor(lua_State *L);
void clb_open_nn(lua_State *L);
void clb_open_io(lua_State *L);
void clb_open_mpi(lua_State *L);

int luaopen_cnnlab_core(lua_State *L);

#endif

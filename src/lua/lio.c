/* lio.c — Lua binding of the file formats and the Colored MNIST builders (cnnlab_io.h).
 *
 *   read_idx(path) → tensor                write_idx(path, t, {gzip = bool})
 *   read_png(path) → uint8 C×H×W           write_png(path, t)
 *   image_grid(images, {ncol = 8, pad = 2, scale = 1, pad_value = 0}) → C×H'×W'
 *   save_safetensors(path, {name = tensor, ...}, metadata | nil)
 *   load_safetensors(path) → {name = tensor, ...}, metadata
 *   safetensors_info(path) → {{name=, dtype=, shape={...}, offsets={begin, end}}, ...}, metadata
 *   split_indices(n, seed) → train index, validation index (int64, 4/5 and 1/5 of n)
 *   assign_colors(labels, rho, "easy" | "hard", seed, set) → int64 colours
 *   colorize(grey uint8 N×H×W, colors, beta, seed, set) → uint8 N×3×H×W
 *   to_grey(images) → grey version;  gather_batch(images, index) → float32 batch (byte / 255)
 *   synth_digits(n, seed) → uint8 N×28×28 images, int64 labels
 * `set` is "train", "val", "hard" or a stream number (docs/data.md). Everything is checked
 * before anything is allocated, and results are owned by userdata on the stack before any Lua
 * call that could raise, so no error leaks. */
#include "lua/lbind.h"

#include <string.h>

#define ST_BOX "cnnlab.io.safetensors"

static int l_read_idx(lua_State *L) {
  const char *path = clb_check_name(L, 1, "read_idx", "path");
  cl_tensor **slot = clb_slot(L);
  *slot = cl_read_idx(path);
  clb_done(L, slot);
  return 1;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

static int l_write_idx(lua_State *L) {
  static const char *const allowed[] = {"gzip", NULL};
  const char *path = clb_check_name(L, 1, "write_idx", "path");
  cl_tensor *t = clb_check(L, 2);
  clb_check_opts(L, 3, "write_idx", allowed);
  int gzip = clb_opt_bool(L, 3, "gzip", ends_with(path, ".gz"));
  if (cl_write_idx(path, t, gzip))
    return clb_error(L);
  return 0;
}

static int l_read_png(lua_State *L) {
  const char *path = clb_check_name(L, 1, "read_png", "path");
  cl_tensor **slot = clb_slot(L);
  *slot = cl_read_png(path);
  clb_done(L, slot);
  return 1;
}

static int l_write_png(lua_State *L) {
  const char *path = clb_check_name(L, 1, "write_png", "path");
  cl_tensor *t = clb_check(L, 2);
  if (cl_write_png(path, t))
    return clb_error(L);
  return 0;
}

static int l_image_grid(lua_State *L) {
  static const char *const allowed[] = {"ncol", "pad", "scale", "pad_value", NULL};
  cl_tensor *t = clb_check(L, 1);
  clb_check_opts(L, 2, "image_grid", allowed);
  int ncol = clb_opt_int(L, 2, "image_grid", "ncol", 8, 1, 1 << 20);
  int pad = clb_opt_int(L, 2, "image_grid", "pad", 2, 0, 4096);
  int scale = clb_opt_int(L, 2, "image_grid", "scale", 1, 1, 4096);
  double pad_value = clb_opt_number(L, 2, "pad_value", 0);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_image_grid(t, ncol, pad, scale, pad_value);
  clb_done(L, slot);
  return 1;
}

/* ---------------------------------------------------------------- safetensors */

static int l_save_safetensors(lua_State *L) {
  const char *path = clb_check_name(L, 1, "save_safetensors", "path");
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3))
    luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  int count = 0, nmeta = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "save_safetensors: tensor names must be strings, got a %s key",
                        luaL_typename(L, -2));
    clb_check_name(L, -2, "save_safetensors", "a tensor name");
    if (!clb_is_tensor(L, -1))
      return luaL_error(L, "save_safetensors: '%s' must be a tensor, got %s", lua_tostring(L, -2),
                        luaL_typename(L, -1));
    /* named here: clb_check would blame "bad argument #-1" */
    if (!((clb_tensor *)lua_touserdata(L, -1))->t)
      return luaL_error(L, "save_safetensors: tensor '%s' has been freed", lua_tostring(L, -2));
    lua_pop(L, 1);
    if (++count > 1 << 20)
      return luaL_error(L, "save_safetensors: too many tensors");
  }
  /* Metadata values may be numbers: their string forms live in an anchor table (index 4) so
   * the pointers handed to C stay valid. */
  lua_newtable(L);
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L, "save_safetensors: metadata keys must be strings, got a %s key",
                          luaL_typename(L, -2));
      clb_check_name(L, -2, "save_safetensors", "a metadata key");
      int vt = lua_type(L, -1);
      if (vt == LUA_TSTRING)
        clb_check_name(L, -1, "save_safetensors", "a metadata value");
      if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
        return luaL_error(L,
                          "save_safetensors: metadata '%s' must be a string or a number, got "
                          "%s",
                          lua_tostring(L, -2), luaL_typename(L, -1));
      lua_pop(L, 1);
      if (++nmeta > 1 << 20)
        return luaL_error(L, "save_safetensors: too many metadata entries");
    }
  }
  size_t slots = (size_t)(count > nmeta ? count : nmeta) + 1;
  const char **names = lua_newuserdatauv(L, slots * sizeof *names, 0);
  cl_tensor **tensors = lua_newuserdatauv(L, slots * sizeof *tensors, 0);
  const char **keys = lua_newuserdatauv(L, slots * sizeof *keys, 0);
  const char **values = lua_newuserdatauv(L, slots * sizeof *values, 0);
  int i = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) { /* the table holds the keys and tensors alive */
    names[i] = lua_tostring(L, -2);
    tensors[i++] = clb_check(L, -1);
    lua_pop(L, 1);
  }
  i = 0;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      keys[i] = lua_tostring(L, -2);
      lua_pushvalue(L, -1);
      values[i] = lua_tostring(L, -1); /* converts the copy, not the table's value */
      lua_rawseti(L, 4, i + 1);        /* anchor the string */
      lua_pop(L, 1);
      i++;
    }
  }
  if (cl_save_safetensors(path, count, names, tensors, nmeta, keys, values))
    return clb_error(L);
  return 0;
}

static cl_safetensors **st_box(lua_State *L) {
  cl_safetensors **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, ST_BOX);
  return box;
}

static int st_box_gc(lua_State *L) {
  cl_safetensors **box = luaL_checkudata(L, 1, ST_BOX);
  cl_safetensors_free(*box);
  *box = NULL;
  return 0;
}

static void push_metadata(lua_State *L, const cl_safetensors *st) {
  lua_createtable(L, 0, st->nmeta);
  for (int i = 0; i < st->nmeta; i++) {
    lua_pushstring(L, st->meta_values[i]);
    lua_setfield(L, -2, st->meta_keys[i]);
  }
}

static int l_load_safetensors(lua_State *L) {
  const char *path = clb_check_name(L, 1, "load_safetensors", "path");
  cl_safetensors **box = st_box(L); /* index 2: owns everything until moved out */
  *box = cl_load_safetensors(path, 1);
  if (!*box)
    return clb_error(L);
  cl_safetensors *st = *box;
  lua_createtable(L, 0, st->count);
  for (int i = 0; i < st->count; i++) {
    lua_pushstring(L, st->entries[i].name);
    cl_tensor **slot = clb_slot(L);
    *slot = st->entries[i].tensor; /* the userdata owns it now */
    st->entries[i].tensor = NULL;
    clb_done(L, slot);
    lua_rawset(L, -3);
  }
  push_metadata(L, st);
  return 2;
}

static int l_safetensors_info(lua_State *L) {
  const char *path = clb_check_name(L, 1, "safetensors_info", "path");
  cl_safetensors **box = st_box(L);
  *box = cl_load_safetensors(path, 0);
  if (!*box)
    return clb_error(L);
  cl_safetensors *st = *box;
  lua_createtable(L, st->count, 0);
  for (int i = 0; i < st->count; i++) {
    const cl_st_entry *e = &st->entries[i];
    lua_createtable(L, 0, 4);
    lua_pushstring(L, e->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, e->dtype);
    lua_setfield(L, -2, "dtype");
    lua_createtable(L, e->ndim, 0);
    for (int d = 0; d < e->ndim; d++) {
      lua_pushinteger(L, e->shape[d]);
      lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "shape");
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)e->begin);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)e->end);
    lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, "offsets");
    lua_rawseti(L, -2, i + 1);
  }
  push_metadata(L, st);
  return 2;
}

/* ---------------------------------------------------------------- Colored MNIST */

static uint64_t check_seed(lua_State *L, int idx, const char *fn) {
  int ok;
  lua_Integer s = lua_tointegerx(L, idx, &ok);
  if (!ok)
    luaL_error(L, "%s: seed (argument #%d) must be an integer, got %s", fn, idx,
               luaL_tolstring(L, idx, NULL));
  return (uint64_t)s;
}

/* A set name or a stream number in 1..2^31-1. */
static uint64_t check_set(lua_State *L, int idx, const char *fn) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tostring(L, idx);
    if (!strcmp(s, "train"))
      return CL_CMNIST_TRAIN;
    if (!strcmp(s, "val"))
      return CL_CMNIST_VAL;
    if (!strcmp(s, "hard"))
      return CL_CMNIST_HARD;
  } else {
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (ok && v >= 1 && v < (lua_Integer)1 << 31)
      return (uint64_t)v;
  }
  luaL_error(L,
             "%s: set (argument #%d) must be \"train\", \"val\", \"hard\" or a stream number "
             "in 1..2^31-1, got %s",
             fn, idx, luaL_tolstring(L, idx, NULL));
  return 0;
}

/* A count of digits (argument #1): an integer in 0..2^32-1, as the builders take it. */
static lua_Integer check_digit_count(lua_State *L, const char *fn) {
  int ok;
  lua_Integer n = lua_tointegerx(L, 1, &ok);
  if (!ok || n < 0 || n > (lua_Integer)0xffffffff)
    luaL_error(L, "%s: n (argument #1) must be an integer in 0..2^32-1, got %s", fn,
               luaL_tolstring(L, 1, NULL));
  return n;
}

static int l_split_indices(lua_State *L) {
  lua_Integer n = check_digit_count(L, "split_indices");
  uint64_t seed = check_seed(L, 2, "split_indices");
  lua_settop(L, 2);
  cl_tensor **perm = clb_slot(L); /* index 3 */
  *perm = cl_cmnist_split(n, seed);
  clb_done(L, perm);
  int64_t ntrain = n * 4 / 5;
  cl_tensor **tr = clb_slot(L);
  *tr = cl_narrow(*perm, 0, 0, ntrain);
  clb_done(L, tr);
  cl_tensor **va = clb_slot(L);
  *va = cl_narrow(*perm, 0, ntrain, n - ntrain);
  clb_done(L, va);
  return 2;
}

static int l_assign_colors(lua_State *L) {
  cl_tensor *labels = clb_check(L, 1);
  const char *kind = clb_check_name(L, 3, "assign_colors", "kind");
  int hard = !strcmp(kind, "hard");
  if (!hard && strcmp(kind, "easy"))
    return luaL_error(L,
                      "assign_colors: kind (argument #3) must be \"easy\" or \"hard\", got "
                      "\"%s\"",
                      kind);
  double rho = hard && lua_isnil(L, 2) ? 0 : clb_arg_numberin(L, 2, "assign_colors", "rho", 0, 1);
  uint64_t seed = check_seed(L, 4, "assign_colors");
  uint64_t set = check_set(L, 5, "assign_colors");
  cl_tensor **slot = clb_slot(L);
  *slot = cl_cmnist_colors(labels, rho, hard, seed, set);
  clb_done(L, slot);
  return 1;
}

static int l_colorize(lua_State *L) {
  cl_tensor *grey = clb_check(L, 1), *colors = clb_check(L, 2);
  double beta = clb_arg_numberin(L, 3, "colorize", "beta", 0, 1);
  uint64_t seed = check_seed(L, 4, "colorize");
  uint64_t set = check_set(L, 5, "colorize");
  cl_tensor **slot = clb_slot(L);
  *slot = cl_cmnist_colorize(grey, colors, beta, seed, set);
  clb_done(L, slot);
  return 1;
}

static int l_to_grey(lua_State *L) {
  cl_tensor *t = clb_check(L, 1);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_to_grey(t);
  clb_done(L, slot);
  return 1;
}

static int l_gather_batch(lua_State *L) {
  cl_tensor *images = clb_check(L, 1), *index = clb_check(L, 2);
  cl_tensor **slot = clb_slot(L);
  *slot = cl_gather_batch(images, index);
  clb_done(L, slot);
  return 1;
}

static int l_synth_digits(lua_State *L) {
  lua_Integer n = check_digit_count(L, "synth_digits");
  uint64_t seed = check_seed(L, 2, "synth_digits");
  lua_settop(L, 2);
  cl_tensor **im = clb_slot(L), **lab = clb_slot(L);
  if (cl_synth_digits(n, seed, im, lab))
    return clb_error(L);
  clb_done(L, im);
  clb_done(L, lab);
  return 2;
}

static const luaL_Reg io_funcs[] = {
    {"read_idx", l_read_idx},
    {"write_idx", l_write_idx},
    {"read_png", l_read_png},
    {"write_png", l_write_png},
    {"image_grid", l_image_grid},
    {"save_safetensors", l_save_safetensors},
    {"load_safetensors", l_load_safetensors},
    {"safetensors_info", l_safetensors_info},
    {"split_indices", l_split_indices},
    {"assign_colors", l_assign_colors},
    {"colorize", l_colorize},
    {"to_grey", l_to_grey},
    {"gather_batch", l_gather_batch},
    {"synth_digits", l_synth_digits},
    {NULL, NULL},
};

void clb_open_io(lua_State *L) {
  if (luaL_newmetatable(L, ST_BOX)) {
    lua_pushcfunction(L, st_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  clb_setfuncs(L, io_funcs);
  /* The palette of SPEC §2, palette[k + 1] = {r, g, b} for class k. */
  lua_createtable(L, 10, 0);
  for (int k = 0; k < 10; k++) {
    lua_createtable(L, 3, 0);
    for (int c = 0; c < 3; c++) {
      lua_pushnumber(L, cl_cmnist_palette[k][c]);
      lua_rawseti(L, -2, c + 1);
    }
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "cmnist_palette");
}

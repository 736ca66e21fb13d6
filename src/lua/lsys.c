/* lsys.c — the few things of the system a script needs and plain Lua lacks: isatty, a
 * monotonic clock, directory listings. */
#include "lua/lbind.h"

#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int is_a_tty(lua_State *L) {
  lua_Integer fd = luaL_optinteger(L, 1, 1);
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "a file descriptor (0..2^31-1) expected");
  lua_pushboolean(L, isatty((int)fd));
  return 1;
}

/* Seconds since the epoch of a file's last change (stat's mtime); nil when it can't be read. */
static int file_mtime(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) != 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)st.st_mtime);
  return 1;
}

/* This process's id (names of temporary files carry it, so that stale ones can be told). */
static int get_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* Wall-clock seconds from a monotonic clock (os.clock is CPU time, wrong with threads). */
static int now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

/* The open directory of list_dir, owned by a userdata so that a Lua error (out of memory
 * while pushing names) still closes it: the collector calls this. */
static int dir_box_gc(lua_State *L) {
  DIR **box = lua_touserdata(L, 1);
  if (*box)
    closedir(*box);
  *box = NULL;
  return 0;
}

/* Sorted names in a directory (without . and ..); nil and a message when it can't be read. */
static int list_dir(lua_State *L) {
  const char *path = clb_check_name(L, 1, "list_dir", "path");
  lua_settop(L, 1);
  DIR **box = lua_newuserdatauv(L, sizeof *box, 0); /* index 2, before opendir */
  *box = NULL;
  if (luaL_newmetatable(L, "cnnlab.Dir")) {
    lua_pushcfunction(L, dir_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, 2);
  DIR *d = *box = opendir(path);
  if (!d) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: cannot open directory", path);
    return 2;
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    lua_pushstring(L, e->d_name); /* may raise on memory: the box closes d */
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  *box = NULL;
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg sys_funcs[] = {
    {"isatty", is_a_tty}, {"listdir", list_dir}, {"now", now}, {"file_mtime", file_mtime},
    {"getpid", get_pid}, {NULL, NULL}};

void clb_open_sys(lua_State *L) { luaL_setfuncs(L, sys_funcs, 0); }

/* rprint.c — how the REPL shows values: strings quoted and cut, tables summarised (a few
   entries, keys sorted), everything else through tostring. */
#include "app/repl_impl.h"

#include <string.h>

#include <lauxlib.h>

#define SUMMARY_ITEMS 20 /* entries shown when a table is printed */
#define ITEM_WIDTH 40    /* bytes of one entry's text shown before it is cut */

/* Backs n off to the start of a UTF-8 sequence so that a cut never splits a character. */
static size_t utf8_floor(const char *s, size_t n) {
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/* Cuts the string on top of the stack at its first newline or after ITEM_WIDTH bytes. */
void repl_shorten_top(lua_State *L) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  size_t n = 0;
  while (n < len && n < ITEM_WIDTH && s[n] != '\n')
    n++;
  if (n == len)
    return;
  n = utf8_floor(s, n);
  lua_pushlstring(L, s, n);
  lua_pushliteral(L, "…");
  lua_concat(L, 2);
  lua_replace(L, -2);
}

static void push_quoted(lua_State *L, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  size_t n = len > ITEM_WIDTH ? utf8_floor(s, ITEM_WIDTH) : len;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, (char)c);
    } else if (c == '\n') {
      luaL_addstring(&b, "\\n");
    } else if (c == '\t') {
      luaL_addstring(&b, "\\t");
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
      luaL_addstring(&b, esc);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  if (n < len)
    luaL_addstring(&b, "…");
  luaL_addchar(&b, '"');
  luaL_pushresult(&b);
}

/* One value inside a table summary: always a single short line. */
static void push_short(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    push_quoted(L, idx);
    return;
  }
  if (lua_type(L, idx) == LUA_TTABLE) {
    if (luaL_getmetafield(L, idx, "__tostring") == LUA_TNIL) {
      lua_pushnil(L);
      int empty = !lua_next(L, idx);
      if (!empty)
        lua_pop(L, 2);
      lua_pushstring(L, empty ? "{}" : "{…}");
      return;
    }
    lua_pop(L, 1);
  }
  if (lua_type(L, idx) == LUA_TFUNCTION) { /* addresses only add noise to a summary */
    lua_pushliteral(L, "function");
    return;
  }
  luaL_tolstring(L, idx, NULL);
  repl_shorten_top(L);
}

static void push_key(lua_State *L, int idx) {
  size_t len;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, idx, &len);
    if (repl_is_identifier(s, len)) {
      lua_pushvalue(L, idx);
      return;
    }
    push_quoted(L, idx);
  } else {
    push_short(L, idx);
  }
  lua_pushliteral(L, "[");
  lua_insert(L, -2);
  lua_pushliteral(L, "]");
  lua_concat(L, 3);
}

static int key_rank(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    return 0;
  case LUA_TSTRING:
    return 1;
  case LUA_TBOOLEAN:
    return 2;
  default:
    return 3;
  }
}

static int key_less(lua_State *L, int a, int b) {
  int ra = key_rank(L, a), rb = key_rank(L, b);
  if (ra != rb)
    return ra < rb;
  return ra <= 1 && lua_compare(L, a, b, LUA_OPLT);
}

/* Keeps in keys[1..*n] the cap smallest keys seen so far, in order, given the key on top of the
   stack (which stays there). One pass over a table of any size then yields the first keys in
   sorted order, and the same table always prints the same way. */
static void keep_smallest(lua_State *L, int keys, int *n, int cap) {
  int j = *n;
  if (j == cap) {
    lua_rawgeti(L, keys, j);
    int smaller = key_less(L, -2, -1);
    lua_pop(L, 1);
    if (!smaller)
      return;
    j--; /* the largest kept key drops out */
  }
  for (; j >= 1; j--) {
    lua_rawgeti(L, keys, j);
    if (!key_less(L, -2, -1)) {
      lua_pop(L, 1);
      break;
    }
    lua_rawseti(L, keys, j + 1);
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, keys, j + 1);
  if (*n < cap)
    (*n)++;
}

/* A one-line summary of table t: the sequence in order, then the smallest other keys in sorted
   order, at most SUMMARY_ITEMS entries and a count of the rest, so that a big table cannot
   flood the terminal. */
static void push_summary(lua_State *L, int t) {
  t = lua_absindex(L, t);
  luaL_checkstack(L, 10, "table too deep to print");
  lua_newtable(L);
  int parts = lua_gettop(L);
  lua_newtable(L);
  int keys = lua_gettop(L);
  int nparts = 0, nkeys = 0;
  lua_Integer seq = 0, total = 0;
  while (nparts < SUMMARY_ITEMS) {
    if (lua_rawgeti(L, t, seq + 1) == LUA_TNIL) {
      lua_pop(L, 1);
      break;
    }
    push_short(L, -1);
    lua_rawseti(L, parts, ++nparts);
    lua_pop(L, 1);
    seq++;
  }
  lua_pushnil(L);
  while (lua_next(L, t)) {
    total++;
    lua_pop(L, 1);
    int in_seq = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= seq;
    if (!in_seq && nparts < SUMMARY_ITEMS)
      keep_smallest(L, keys, &nkeys, SUMMARY_ITEMS - nparts);
  }
  for (int i = 1; i <= nkeys; i++) {
    lua_rawgeti(L, keys, i); /* k */
    push_key(L, -1);         /* k ktext */
    lua_pushliteral(L, " = ");
    lua_pushvalue(L, -3);
    lua_rawget(L, t);  /* k ktext " = " v */
    push_short(L, -1); /* k ktext " = " v vtext */
    lua_remove(L, -2);
    lua_concat(L, 3);
    lua_rawseti(L, parts, ++nparts);
    lua_pop(L, 1);
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '{');
  for (int i = 1; i <= nparts; i++) {
    if (i > 1)
      luaL_addstring(&b, ", ");
    lua_rawgeti(L, parts, i);
    luaL_addvalue(&b);
  }
  if (total > nparts) {
    char more[64];
    snprintf(more, sizeof more, "%s… (%lld more)", nparts > 0 ? ", " : "",
             (long long)(total - nparts));
    luaL_addstring(&b, more);
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  /* Instances of Lua classes usually name their class in __name. */
  int name = luaL_getmetafield(L, t, "__name");
  if (name == LUA_TSTRING) {
    lua_insert(L, -2);
    lua_pushliteral(L, " ");
    lua_insert(L, -2);
    lua_concat(L, 3);
  } else if (name != LUA_TNIL) {
    lua_pop(L, 1);
  }
  lua_replace(L, parts);
  lua_settop(L, parts);
}

static void push_repr(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE) {
    if (luaL_getmetafield(L, idx, "__tostring") == LUA_TNIL) {
      push_summary(L, idx);
      return;
    }
    lua_pop(L, 1);
  }
  luaL_tolstring(L, idx, NULL);
}

/* Prints its arguments on one line, tab-separated. Everything is converted before anything is
   written, so a failing __tostring prints nothing but the error. */
int repl_print_results(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checkstack(L, 20, "too many results to print");
  for (int i = 1; i <= n; i++) {
    push_repr(L, i);
    lua_replace(L, i);
  }
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    fwrite(s, 1, len, stdout);
    fputc(i < n ? '\t' : '\n', stdout);
  }
  fflush(stdout);
  return 0;
}

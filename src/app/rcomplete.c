/* rcomplete.c — members of a value (following __index chains), which serve both help() and
   readline's tab completion. */
#include "app/repl.h" /* CNNLAB_VERSION */
#include "app/repl_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/readline.h>

#include <lauxlib.h>

#define CHAIN_DEPTH 8 /* __index levels followed when listing members */

struct member_query {
  const char *head; /* text before the member name in each candidate */
  size_t headlen;
  const char *partial; /* what the member name must start with */
  size_t plen;
  int methods_only; /* after ':', only callables make sense */
  int out;          /* stack index of the table candidate -> suffix character */
};

static int is_callable(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION)
    return 1;
  if (luaL_getmetafield(L, idx, "__call") == LUA_TNIL)
    return 0;
  lua_pop(L, 1);
  return 1;
}

/* The character readline appends after a unique completion: a call (functions, and classes
   such as lab.nn.Conv2d that are called to make instances), a field access, or none. */
static int suffix_for(lua_State *L, int idx) {
  if (is_callable(L, idx))
    return '(';
  return lua_type(L, idx) == LUA_TTABLE ? '.' : 0;
}

static void add_keys(lua_State *L, int t, const struct member_query *q) {
  /* Metamethods and other "__" internals stay hidden until the user types "__". */
  int show_dunder = q->plen >= 2 && q->partial[0] == '_' && q->partial[1] == '_';
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len;
      const char *k = lua_tolstring(L, -2, &len);
      int dunder = len >= 2 && k[0] == '_' && k[1] == '_';
      if (len >= q->plen && memcmp(k, q->partial, q->plen) == 0 && repl_is_identifier(k, len) &&
          (show_dunder || !dunder) && (!q->methods_only || is_callable(L, -1))) {
        lua_pushlstring(L, q->head, q->headlen);
        lua_pushvalue(L, -3);
        lua_concat(L, 2);
        lua_pushinteger(L, suffix_for(L, -2));
        lua_rawset(L, q->out);
      }
    }
    lua_pop(L, 1);
  }
}

/* The members of a value: its own keys when it is a table, then the __index chain of its
   metatables as long as __index is a table. Userdata whose __index is a function (tensors)
   publish their methods in the metatable field __methods instead. */
static void repl_add_members(lua_State *L, int obj, const struct member_query *q) {
  int top = lua_gettop(L);
  obj = lua_absindex(L, obj);
  if (lua_type(L, obj) == LUA_TTABLE)
    add_keys(L, obj, q);
  lua_pushvalue(L, obj);
  for (int depth = 0; depth < CHAIN_DEPTH && lua_getmetatable(L, -1); depth++) {
    lua_pushliteral(L, "__index");
    if (lua_rawget(L, -2) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_pushliteral(L, "__methods");
      if (lua_rawget(L, -2) != LUA_TTABLE)
        break;
    }
    add_keys(L, lua_gettop(L), q);
    lua_replace(L, -3); /* the method table is the next object whose metatable we look at */
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char help_text[] =
    "cnnlab " CNNLAB_VERSION " — a deep-learning lab on " LUA_VERSION "\n"
    "\n"
    "  lab         the cnnlab library (lab = require \"cnnlab\"); type lab.<TAB> to explore\n"
    "  help(x)     list the fields and methods of x (a table, a tensor, a module, ...)\n"
    "  <TAB>       completes globals, fields (lab.nn.Con<TAB>) and methods (t:<TAB>)\n"
    "  1+1         an expression prints its value; tables print a one-line summary\n"
    "  local x = 1 at the prompt, a leading 'local' declares a global that later lines see\n"
    "  Ctrl-C      stops running code; at the prompt it drops the line being typed\n"
    "  Ctrl-D      leaves (so does os.exit())\n"
    "\n"
    "More: docs/repl.md, and the other guides under docs/ in the cnnlab sources.\n";

/* help() prints an orientation; help(x) lists what can follow "x." or "x:". */
int repl_help(lua_State *L) {
  if (lua_isnone(L, 1)) {
    fputs(help_text, stdout);
    fflush(stdout);
    return 0;
  }
  lua_settop(L, 1);
  lua_newtable(L);
  struct member_query q = {"", 0, "", 0, 0, 2};
  repl_add_members(L, 1, &q);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    n++;
    lua_pop(L, 1);
  }
  const char **names = lua_newuserdatauv(L, (n + 1) * sizeof *names, 0);
  size_t i = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    names[i++] = lua_tostring(L, -2); /* anchored: the keys live in table 2 */
    lua_pop(L, 1);
  }
  qsort(names, n, sizeof *names, cmp_names);
  if (luaL_getmetafield(L, 1, "__name") != LUA_TSTRING) {
    lua_settop(L, 3);
    luaL_tolstring(L, 1, NULL);
    repl_shorten_top(L);
  }
  printf("%s (%s): ", lua_tostring(L, -1), luaL_typename(L, 1));
  if (n == 0) {
    printf("no fields or methods\n");
  } else {
    printf("%zu field%s and method%s\n", n, n == 1 ? "" : "s", n == 1 ? "" : "s");
    size_t col = 0;
    for (i = 0; i < n; i++) {
      lua_getfield(L, 2, names[i]);
      int call = lua_tointeger(L, -1) == '(';
      lua_pop(L, 1);
      size_t w = strlen(names[i]) + (call ? 2 : 0);
      if (col > 0 && col + 2 + w > 78) {
        fputc('\n', stdout);
        col = 0;
      }
      printf("  %s%s", names[i], call ? "()" : "");
      col += 2 + w;
    }
    fputc('\n', stdout);
  }
  fflush(stdout);
  return 0;
}

static lua_State *completion_L;
static char **candidates;
static size_t ncandidates, next_candidate;

/* Lists the completions of text (protected: resolving a path may run __index metamethods).
   Returns a table candidate -> suffix character. */
static int l_candidates(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  lua_newtable(L);
  struct member_query q = {text, 0, NULL, 0, 0, 2};
  /* After a concatenation operator a new expression starts: "s..na" completes "na". */
  const char *expr = text;
  for (size_t i = 0; i + 1 < len; i++)
    if (text[i] == '.' && text[i + 1] == '.')
      expr = text + i + 2;
  const char *sep = NULL;
  for (const char *p = expr; *p; p++)
    if (*p == '.' || *p == ':')
      sep = p;
  if (sep == NULL) {
    q.headlen = (size_t)(expr - text);
    q.partial = expr;
    q.plen = strlen(expr);
    lua_pushglobaltable(L);
    repl_add_members(L, -1, &q);
    for (const char *const *k = repl_keywords; *k != NULL; k++) {
      if (strncmp(*k, q.partial, q.plen) == 0) {
        lua_pushlstring(L, text, q.headlen);
        lua_pushstring(L, *k);
        lua_concat(L, 2);
        lua_pushinteger(L, ' ');
        lua_rawset(L, 2);
      }
    }
    lua_settop(L, 2);
    return 1;
  }
  q.headlen = (size_t)(sep + 1 - text);
  q.partial = sep + 1;
  q.plen = strlen(sep + 1);
  q.methods_only = *sep == ':';
  lua_pushglobaltable(L);
  for (const char *seg = expr; seg <= sep;) {
    const char *end = seg;
    while (end < sep && *end != '.')
      end++;
    int t = lua_type(L, -1);
    if (!repl_is_identifier(seg, (size_t)(end - seg)) ||
        (t != LUA_TTABLE && t != LUA_TUSERDATA && t != LUA_TSTRING)) {
      lua_settop(L, 2);
      return 1;
    }
    lua_pushlstring(L, seg, (size_t)(end - seg));
    lua_gettable(L, -2);
    lua_remove(L, -2);
    seg = end + 1;
  }
  repl_add_members(L, -1, &q);
  lua_settop(L, 2);
  return 1;
}

static void free_candidates(void) {
  for (size_t i = 0; i < ncandidates; i++)
    free(candidates[i]);
  free(candidates);
  candidates = NULL;
  ncandidates = 0;
}

/* Hands readline the candidates one by one; readline frees each string it gets. */
static char *candidate_generator(const char *text, int state) {
  (void)text;
  if (state == 0)
    next_candidate = 0;
  while (next_candidate < ncandidates) {
    char *c = candidates[next_candidate];
    candidates[next_candidate++] = NULL;
    if (c != NULL)
      return c;
  }
  return NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  lua_State *L = completion_L;
  char **matches = NULL;
  rl_attempted_completion_over = 1; /* never fall back to file names for Lua code */
  if (rl_completion_quote_character != 0) {
    rl_attempted_completion_over = 0; /* inside a string: file names are what one types there */
    return NULL;
  }
  if (!lua_checkstack(L, 8))
    return NULL;
  int top = lua_gettop(L);
  lua_pushcfunction(L, l_candidates);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TTABLE) {
    size_t n = 0;
    int suffix = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      n++;
      lua_pop(L, 1);
    }
    candidates = n > 0 ? calloc(n, sizeof *candidates) : NULL;
    if (candidates != NULL) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        candidates[ncandidates++] = strdup(lua_tostring(L, -2));
        suffix = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      if (n == 1) {
        if (suffix != 0)
          rl_completion_append_character = suffix;
        else
          rl_completion_suppress_append = 1;
      }
      matches = rl_completion_matches(text, candidate_generator);
      free_candidates();
    }
  }
  lua_settop(L, top);
  return matches;
}

/* Inside a string literal the word is a file name, whose '/' and '.' must not split it. */
static char *word_break_hook(void) {
  char quote = 0;
  for (int i = 0; i < rl_point && rl_line_buffer[i] != '\0'; i++) {
    char c = rl_line_buffer[i];
    if (quote == 0 && (c == '"' || c == '\''))
      quote = c;
    else if (quote != 0 && c == '\\' && rl_line_buffer[i + 1] != '\0')
      i++;
    else if (c == quote)
      quote = 0;
  }
  return quote != 0 ? " \t\n\"'" : NULL;
}

/* Shows "Conv2d  Linear" rather than "lab.nn.Conv2d  lab.nn.Linear", and refuses to list
   hundreds of names (a big table's keys) at once. */
static void display_matches(char **matches, int n, int maxlen) {
  if (rl_completion_query_items > 0 && n >= rl_completion_query_items) {
    rl_crlf();
    fprintf(rl_outstream, "%d possibilities; type a few more letters", n);
    rl_crlf();
    rl_forced_update_display();
    return;
  }
  size_t skip = 0;
  if (!rl_filename_completion_desired) /* file names keep readline's own display */
    for (const char *p = matches[1]; *p; p++)
      if (*p == '.' || *p == ':')
        skip = (size_t)(p - matches[1]) + 1;
  char **shown = malloc(((size_t)n + 2) * sizeof *shown);
  if (shown == NULL) {
    rl_display_match_list(matches, n, maxlen);
  } else {
    shown[0] = matches[0] + (strlen(matches[0]) < skip ? strlen(matches[0]) : skip);
    for (int i = 1; i <= n; i++)
      shown[i] = matches[i] + skip;
    shown[n + 1] = NULL;
    rl_display_match_list(shown, n, maxlen - (int)skip);
    free(shown);
  }
  rl_forced_update_display();
}

void repl_setup_completion(lua_State *L) {
  completion_L = L;
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = " \t\n\"'`<>=;+-*/%^~#&|(){}[],";
  rl_completer_quote_characters = "\"'";
  rl_completion_word_break_hook = word_break_hook;
  rl_completion_display_matches_hook = display_matches;
}

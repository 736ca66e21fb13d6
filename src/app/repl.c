/* Running Lua code interactively: Ctrl-C handling, error reports with tracebacks, printing of
   results, and the read-eval-print loop with readline history and completion. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "app/repl.h"

#define HISTORY_LINES 1000
#define SUMMARY_ITEMS 20 /* entries shown when a table is printed */
#define ITEM_WIDTH 40    /* bytes of one entry's text shown before it is cut */
#define CHAIN_DEPTH 8    /* __index levels followed when listing members */
#define CHUNKNAME "=stdin"

#define BANNER "cnnlab " CNNLAB_VERSION " — " LUA_VERSION " — type help() or see docs/repl.md"

/* ---------------------------------------------------------------- running code */

static lua_State *running_L; /* the state that a SIGINT interrupts */

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* A signal handler may not raise a Lua error; lua_sethook is safe to call here, and the hook
   raises the error at the next instruction, call or return the interpreter reaches. The handler
   is installed with SA_RESETHAND, so a second Ctrl-C (say, inside a long C loop) kills. */
static void on_sigint_running(int sig) {
  (void)sig;
  lua_sethook(running_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static const char host_frame[] = "\n\t[C]: in ?";

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1; /* an error object that describes itself: no traceback, as in lua.c */
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  /* The last frame is always this program calling the chunk; it tells the user nothing. */
  size_t len;
  const char *tb = lua_tolstring(L, -1, &len);
  size_t hl = sizeof host_frame - 1;
  if (len >= hl && memcmp(tb + len - hl, host_frame, hl) == 0)
    lua_pushlstring(L, tb, len - hl);
  return 1;
}

/* Whether a SIGINT disposition is one this file may replace while code runs. Any other
   handler belongs to someone else, such as the core's trap for training loops (which may have
   been set on an earlier REPL line), and is left in place. */
static int replaceable(const struct sigaction *sa) {
  return sa->sa_handler == SIG_DFL || sa->sa_handler == SIG_IGN ||
         sa->sa_handler == on_sigint_running;
}

int repl_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  struct sigaction sa, old, now;
  int installed = 0;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  running_L = L;
  if (sigaction(SIGINT, NULL, &old) == 0 && replaceable(&old)) {
    if (old.sa_handler == on_sigint_running) /* left over by a trap released in another call */
      old.sa_handler = SIG_DFL;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint_running;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    installed = sigaction(SIGINT, &sa, NULL) == 0;
  }
  int status = lua_pcall(L, narg, nres, base);
  /* Put the old disposition back unless the code installed a handler of its own and left it
     (a trap that should outlive this chunk). SIG_DFL here means ours fired and reset itself. */
  if (installed && sigaction(SIGINT, NULL, &now) == 0 &&
      (now.sa_handler == on_sigint_running || now.sa_handler == SIG_DFL))
    sigaction(SIGINT, &old, NULL);
  /* A Ctrl-C that came after the code finished must not hit the next chunk; a hook the user set
     with debug.sethook is left alone. */
  if (lua_gethook(L) == stop_hook)
    lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

int repl_report(lua_State *L, const char *prefix, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL)
      msg = "(error object is not a string)";
    fflush(stdout); /* keep the order of results and errors when both go to one terminal */
    if (prefix != NULL)
      fprintf(stderr, "%s: ", prefix);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

/* ---------------------------------------------------------------- names */

static const char *const keywords[] = {"and",   "break", "do",       "else",  "elseif", "end",
                                       "false", "for",   "function", "goto",  "if",     "in",
                                       "local", "nil",   "not",      "or",    "repeat", "return",
                                       "then",  "true",  "until",    "while", NULL};

/* ASCII tests rather than <ctype.h>: readline switches LC_CTYPE to the user's locale, while
   Lua's own lexer accepts only ASCII letters in names. */
static int is_ident_start(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_ident_char(int c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
static int is_blank(int c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_keyword(const char *s, size_t len) {
  for (const char *const *k = keywords; *k != NULL; k++)
    if (strlen(*k) == len && memcmp(*k, s, len) == 0)
      return 1;
  return 0;
}

/* True when s[0..len) can follow a '.' in Lua source. */
static int is_identifier(const char *s, size_t len) {
  if (len == 0 || !is_ident_start((unsigned char)s[0]))
    return 0;
  for (size_t i = 1; i < len; i++)
    if (!is_ident_char((unsigned char)s[i]))
      return 0;
  return !is_keyword(s, len);
}

/* ---------------------------------------------------------------- printing values */

/* Backs n off to the start of a UTF-8 sequence so that a cut never splits a character. */
static size_t utf8_floor(const char *s, size_t n) {
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/* Cuts the string on top of the stack at its first newline or after ITEM_WIDTH bytes. */
static void shorten_top(lua_State *L) {
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
  shorten_top(L);
}

static void push_key(lua_State *L, int idx) {
  size_t len;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, idx, &len);
    if (is_identifier(s, len)) {
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
static int l_print_results(lua_State *L) {
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

/* ---------------------------------------------------------------- members (completion, help) */

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
      if (len >= q->plen && memcmp(k, q->partial, q->plen) == 0 && is_identifier(k, len) &&
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
static void add_members(lua_State *L, int obj, const struct member_query *q) {
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
static int l_help(lua_State *L) {
  if (lua_isnone(L, 1)) {
    fputs(help_text, stdout);
    fflush(stdout);
    return 0;
  }
  lua_settop(L, 1);
  lua_newtable(L);
  struct member_query q = {"", 0, "", 0, 0, 2};
  add_members(L, 1, &q);
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
    shorten_top(L);
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

/* ---------------------------------------------------------------- completion */

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
    add_members(L, -1, &q);
    for (const char *const *k = keywords; *k != NULL; k++) {
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
    if (!is_identifier(seg, (size_t)(end - seg)) ||
        (t != LUA_TTABLE && t != LUA_TUSERDATA && t != LUA_TSTRING)) {
      lua_settop(L, 2);
      return 1;
    }
    lua_pushlstring(L, seg, (size_t)(end - seg));
    lua_gettable(L, -2);
    lua_remove(L, -2);
    seg = end + 1;
  }
  add_members(L, -1, &q);
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

/* ---------------------------------------------------------------- history */

static char *history_path;

static void history_open(void) {
  const char *env = getenv("CNNLAB_HISTORY");
  using_history();
  stifle_history(HISTORY_LINES);
  /* Timestamp lines let a multi-line entry come back as one entry next session. */
  history_write_timestamps = 1;
  history_comment_char = '#';
  history_multiline_entries = 1;
  if (env != NULL) {
    if (*env == '\0')
      return; /* CNNLAB_HISTORY="" turns the file off */
    history_path = strdup(env);
  } else {
    const char *home = getenv("HOME");
    if (home == NULL || *home == '\0')
      return;
    size_t n = strlen(home) + sizeof "/.cnnlab_history";
    history_path = malloc(n);
    if (history_path != NULL)
      snprintf(history_path, n, "%s/.cnnlab_history", home);
  }
  if (history_path != NULL)
    read_history(history_path); /* a missing or unreadable file just means no history */
}

/* Saved after every entry, not at exit: os.exit() leaves without running our cleanup. */
static void history_add(const char *entry) {
  const char *p = entry;
  while (is_blank((unsigned char)*p))
    p++;
  if (*p == '\0')
    return;
  HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last != NULL && strcmp(last->line, entry) == 0)
    return;
  add_history(entry);
  if (history_path == NULL)
    return;
  if (append_history(1, history_path) != 0) /* fails when the file does not exist yet */
    write_history(history_path);
  history_truncate_file(history_path, HISTORY_LINES);
}

static void history_close(void) {
  clear_history();
  free(history_path);
  history_path = NULL;
}

/* ---------------------------------------------------------------- reading input */

enum { LINE_OK, LINE_EOF, LINE_INTERRUPTED };
enum { READ_EOF = -1, READ_SKIP = -2 }; /* besides the Lua status codes */

struct repl {
  lua_State *L;
  int tty;
  char *line; /* the last line read, owned here until the next read */
};

static volatile sig_atomic_t prompt_sigint;

static void on_sigint_prompt(int sig) {
  (void)sig;
  prompt_sigint = 1;
}

static char *rl_result;
static int rl_have_result;

static void on_rl_line(char *line) {
  rl_result = line;
  rl_have_result = 1;
  rl_callback_handler_remove(); /* also keeps readline from printing the next prompt itself */
}

/* readline's callback interface, so that a Ctrl-C at the prompt can leave the wait and drop the
   line: the blocking readline() would simply restart its read. */
static int read_tty(const char *prompt, char **out) {
  sigset_t block, orig;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  rl_result = NULL;
  rl_have_result = 0;
  prompt_sigint = 0;
  rl_callback_handler_install(prompt, on_rl_line);
  int fd = fileno(rl_instream != NULL ? rl_instream : stdin);
  while (!rl_have_result) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    /* SIGINT stays blocked from the flag test until pselect unblocks it atomically, so a Ctrl-C
       is neither lost nor left waiting for the next key. */
    pthread_sigmask(SIG_BLOCK, &block, &orig);
    int ready = -1, err = EINTR;
    if (!prompt_sigint) {
      ready = pselect(fd + 1, &fds, NULL, NULL, NULL, &orig);
      err = errno;
    }
    pthread_sigmask(SIG_SETMASK, &orig, NULL);
    if (prompt_sigint) {
      prompt_sigint = 0;
      rl_echo_signal_char(SIGINT);
      rl_free_line_state();
      rl_callback_sigcleanup();
      rl_callback_handler_remove();
      rl_crlf();
      fflush(rl_outstream);
      return LINE_INTERRUPTED;
    }
    if (ready < 0) {
      if (err == EINTR)
        continue;
      rl_callback_handler_remove();
      return LINE_EOF;
    }
    rl_callback_read_char();
  }
  *out = rl_result;
  return rl_result != NULL ? LINE_OK : LINE_EOF;
}

static int read_pipe(char **out) {
  char *buf = NULL;
  size_t cap = 0;
  prompt_sigint = 0;
  ssize_t n = getline(&buf, &cap, stdin);
  if (n < 0) {
    free(buf);
    if (prompt_sigint) {
      prompt_sigint = 0;
      clearerr(stdin);
      return LINE_INTERRUPTED;
    }
    return LINE_EOF;
  }
  if (n > 0 && buf[n - 1] == '\n')
    buf[n - 1] = '\0';
  *out = buf;
  return LINE_OK;
}

/* Reads a line and pushes it; the prompt (only shown on a terminal) can be changed through
   the globals _PROMPT and _PROMPT2, as in lua.c. */
static int push_line(struct repl *r, int first) {
  lua_State *L = r->L;
  char *line = NULL;
  int status;
  struct sigaction sa, old;
  free(r->line);
  r->line = NULL;
  /* Only while waiting for input, so that a trap set by the code (see repl_docall) stays in
     force when the code runs, and Ctrl-C at the prompt always drops the line. No SA_RESTART:
     a read waiting for a line must return to drop it. */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint_prompt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  if (r->tty) {
    lua_pushglobaltable(L);
    lua_pushstring(L, first ? "_PROMPT" : "_PROMPT2");
    lua_rawget(L, -2);
    const char *prompt = lua_tostring(L, -1);
    status = read_tty(prompt != NULL ? prompt : first ? "> " : ">> ", &line);
    lua_pop(L, 2);
  } else {
    status = read_pipe(&line);
  }
  sigaction(SIGINT, &old, NULL);
  if (status != LINE_OK)
    return status;
  r->line = line;
  if (first && line[0] == '=') /* lua.c's old shorthand: "=x" means "return x" */
    lua_pushfstring(L, "return %s", line + 1);
  else
    lua_pushstring(L, line);
  return LINE_OK;
}

/* True when source starting with "local function f" or "local a, b =" would define names that
   die with the chunk. At the prompt each line is its own chunk, so such a leading "local" is
   dropped and the names become globals that later lines can use. Attributes (<const>,
   <close>) keep the declaration local. *start receives the offset of "local". */
static int leading_local(const char *s, size_t *start) {
  size_t i = 0;
  while (is_blank((unsigned char)s[i]))
    i++;
  *start = i;
  if (strncmp(s + i, "local", 5) != 0 || !is_blank((unsigned char)s[i + 5]))
    return 0;
  size_t j = i + 5;
  while (is_blank((unsigned char)s[j]))
    j++;
  if (strncmp(s + j, "function", 8) == 0 && !is_ident_char((unsigned char)s[j + 8]))
    return 1;
  for (;;) {
    size_t k = j;
    if (!is_ident_start((unsigned char)s[k]))
      return 0;
    while (is_ident_char((unsigned char)s[k]))
      k++;
    if (is_keyword(s + j, k - j))
      return 0;
    while (is_blank((unsigned char)s[k]))
      k++;
    if (s[k] == '=')
      return s[k + 1] != '=';
    if (s[k] != ',')
      return 0;
    j = k + 1;
    while (is_blank((unsigned char)s[j]))
      j++;
  }
}

/* Pushes the source at idx with a leading declaration made global (see leading_local). Only
   the word "local" goes, so line numbers in messages stay right. */
static void push_source(lua_State *L, int idx) {
  size_t len, start;
  const char *s = lua_tolstring(L, idx, &len);
  if (!leading_local(s, &start)) {
    lua_pushvalue(L, idx);
    return;
  }
  lua_pushlstring(L, s, start);
  lua_pushlstring(L, s + start + 5, len - start - 5);
  lua_concat(L, 2);
}

/* A syntax error at <eof> means the input stops in the middle of a construct. */
static int incomplete(lua_State *L, int status) {
  static const char mark[] = "<eof>";
  size_t len, ml = sizeof mark - 1;
  if (status != LUA_ERRSYNTAX)
    return 0;
  const char *msg = lua_tolstring(L, -1, &len);
  return len >= ml && strcmp(msg + len - ml, mark) == 0;
}

/* The line on top as an expression, so that "1+1" prints 2. Leaves [line fn] or [line]. */
static int try_expression(lua_State *L) {
  const char *code = lua_pushfstring(L, "return %s", lua_tostring(L, -1));
  int status = luaL_loadbuffer(L, code, strlen(code), CHUNKNAME);
  if (status == LUA_OK)
    lua_remove(L, -2);
  else
    lua_pop(L, 2);
  return status;
}

/* The input on top as statements, reading more lines while it is incomplete. Leaves [source fn]
   or [source message], or [source] when Ctrl-C dropped the input (READ_SKIP). */
static int try_statements(struct repl *r) {
  lua_State *L = r->L;
  for (;;) {
    push_source(L, -1);
    size_t len;
    const char *src = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, src, len, CHUNKNAME);
    lua_remove(L, -2);
    if (!incomplete(L, status))
      return status;
    int got = push_line(r, 0);
    if (got == LINE_EOF)
      return status; /* report the unfinished construct */
    if (got == LINE_INTERRUPTED) {
      lua_pop(L, 1);
      return READ_SKIP;
    }
    lua_remove(L, -2); /* the message */
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

static int read_chunk(struct repl *r) {
  lua_State *L = r->L;
  int got = push_line(r, 1);
  if (got != LINE_OK)
    return got == LINE_EOF ? READ_EOF : READ_SKIP;
  int status = try_expression(L);
  if (status != LUA_OK)
    status = try_statements(r);
  if (r->tty && status != READ_SKIP) /* Ctrl-C means "forget this", history included */
    history_add(lua_tostring(L, -2));
  return status;
}

/* ---------------------------------------------------------------- the loop */

static void setup_readline(lua_State *L) {
  completion_L = L;
  rl_readline_name = "cnnlab"; /* for "$if cnnlab" in ~/.inputrc */
  rl_catch_signals = 0;        /* SIGINT is handled here, see read_tty */
  rl_attempted_completion_function = complete;
  rl_completer_word_break_characters = " \t\n\"'`<>=;+-*/%^~#&|(){}[],";
  rl_completer_quote_characters = "\"'";
  rl_completion_word_break_hook = word_break_hook;
  rl_completion_display_matches_hook = display_matches;
  history_open();
}

void repl_run(lua_State *L) {
  struct repl r = {L, isatty(STDIN_FILENO), NULL};
  if (lua_getglobal(L, "help") == LUA_TNIL) {
    lua_pushcfunction(L, l_help);
    lua_setglobal(L, "help");
  }
  lua_pop(L, 1);
  if (r.tty) {
    setup_readline(L);
    puts(BANNER);
    fflush(stdout);
  }
  int base = lua_gettop(L);
  for (;;) {
    lua_settop(L, base);
    int status = read_chunk(&r);
    if (status == READ_EOF)
      break;
    if (status == READ_SKIP)
      continue;
    lua_remove(L, base + 1); /* the source */
    if (status == LUA_OK)
      status = repl_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK && lua_gettop(L) > base) {
      lua_pushcfunction(L, l_print_results);
      lua_insert(L, base + 1);
      status = repl_docall(L, lua_gettop(L) - base - 1, 0);
    }
    repl_report(L, NULL, status);
  }
  lua_settop(L, base);
  free(r.line);
  if (r.tty) {
    fputc('\n', stdout);
    fflush(stdout);
    history_close();
  }
}

/* Running Lua code interactively: Ctrl-C handling, error reports with tracebacks, and the
   read-eval-print loop with readline history. Values are printed by rprint.c, completion and
   help are in rcomplete.c. */
#include "cnnlab.h"

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
#include "app/repl_impl.h"

#define HISTORY_LINES 1000
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
  cl_interrupt(); /* a long C loop (printing, a copy, a reduction) stops with "interrupted" */
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
  cl_interrupt_clear(); /* a Ctrl-C that came between chunks must not stop this one */
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
  while (repl_is_blank((unsigned char)*p))
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
  while (repl_is_blank((unsigned char)s[i]))
    i++;
  *start = i;
  if (strncmp(s + i, "local", 5) != 0 || !repl_is_blank((unsigned char)s[i + 5]))
    return 0;
  size_t j = i + 5;
  while (repl_is_blank((unsigned char)s[j]))
    j++;
  if (strncmp(s + j, "function", 8) == 0 && !repl_is_ident_char((unsigned char)s[j + 8]))
    return 1;
  for (;;) {
    size_t k = j;
    if (!repl_is_ident_start((unsigned char)s[k]))
      return 0;
    while (repl_is_ident_char((unsigned char)s[k]))
      k++;
    if (repl_is_keyword(s + j, k - j))
      return 0;
    while (repl_is_blank((unsigned char)s[k]))
      k++;
    if (s[k] == '=')
      return s[k + 1] != '=';
    if (s[k] != ',')
      return 0;
    j = k + 1;
    while (repl_is_blank((unsigned char)s[j]))
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
  rl_readline_name = "cnnlab"; /* for "$if cnnlab" in ~/.inputrc */
  rl_catch_signals = 0;        /* SIGINT is handled here, see read_tty */
  repl_setup_completion(L);
  history_open();
}

void repl_run(lua_State *L) {
  struct repl r = {L, isatty(STDIN_FILENO), NULL};
  if (lua_getglobal(L, "help") == LUA_TNIL) {
    lua_pushcfunction(L, repl_help);
    lua_setglobal(L, "help");
    /* help(x) of the API's functions, classes and methods comes from cnnlab.doc (signature and
       summary); what the API does not describe falls back to the member listing above. */
    static const char wrap[] =
        "local ok, doc = pcall(require, 'cnnlab.doc')\n"
        "if ok then\n"
        "  local list = help\n"
        "  help = function(...)\n"
        "    if select('#', ...) == 0 then return list() end\n"
        "    return doc.help((...), list)\n"
        "  end\n"
        "end\n";
    if (luaL_dostring(L, wrap) != LUA_OK)
      lua_pop(L, 1); /* no cnnlab.doc: the listing alone */
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
      lua_pushcfunction(L, repl_print_results);
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

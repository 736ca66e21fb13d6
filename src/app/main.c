/* cnnlab: a Lua 5.4 interpreter with the cnnlab library built in. The command line follows
   lua.c's conventions (same options, same `arg` table) so that scripts and tools written for
   plain `lua`, busted among them, run unchanged under cnnlab. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "app/repl.h"
#include "lua/lbind.h" /* luaopen_cnnlab_core */

#ifndef CNNLAB_LUADIR
#define CNNLAB_LUADIR "/usr/local/share/lua/5.4"
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static const char progname[] = "cnnlab";

static void print_usage(FILE *f) {
  fputs("usage: cnnlab [options] [script [args]]\n"
        "Available options are:\n"
        "  -e stat       execute string 'stat' (may be repeated; run in order)\n"
        "  -i            enter interactive mode after executing 'script'\n"
        "  -l mod        require library 'mod' into global 'mod'\n"
        "  -v            show version information\n"
        "  -E            ignore environment variables (LUA_PATH, LUA_INIT, ...)\n"
        "  -W            turn warnings on\n"
        "  --threads N   set CNNLAB_THREADS=N (worker threads of the core) before it loads\n"
        "  -h, --help    show this help\n"
        "  --            stop handling options\n"
        "  -             stop handling options and execute stdin\n"
        "With no script and no -e or -v, cnnlab starts the interactive REPL.\n"
        "The global 'lab' holds require \"cnnlab\". See docs/repl.md.\n",
        f);
  fflush(f);
}

static void print_version(void) {
  printf("cnnlab %s (%s)\n", CNNLAB_VERSION, LUA_RELEASE);
  fflush(stdout);
}

enum { HAS_E = 1, HAS_I = 2, HAS_V = 4, HAS_H = 8, HAS_NOENV = 16, HAS_L = 32 };

struct options {
  int flags;
  int script;          /* argv index of the script ("-" for stdin); argc when there is none */
  const char *threads; /* value of --threads, or NULL */
};

static int is_count(const char *s) {
  if (*s == '\0')
    return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return 0;
  return 1;
}

/* Validates the whole command line before anything runs, so a typo late in the line does not
   leave half of the -e chunks executed. Returns 0 or prints the problem and returns -1. */
static int collect_args(int argc, char **argv, struct options *o) {
  o->flags = 0;
  o->script = argc;
  o->threads = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      o->script = i;
      return 0;
    }
    if (strcmp(a, "-") == 0) {
      o->script = i;
      return 0;
    }
    if (strcmp(a, "--") == 0) {
      o->script = i + 1;
      return 0;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      o->flags |= HAS_H;
    } else if (strcmp(a, "-i") == 0) {
      o->flags |= HAS_I;
    } else if (strcmp(a, "-v") == 0) {
      o->flags |= HAS_V;
    } else if (strcmp(a, "-E") == 0) {
      o->flags |= HAS_NOENV;
    } else if (strcmp(a, "-W") == 0) {
      /* handled in run_args */
    } else if (strncmp(a, "--threads", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
      const char *n = a[9] == '=' ? a + 10 : argv[++i];
      if (n == NULL || !is_count(n)) {
        fprintf(stderr, "%s: --threads needs a non-negative integer, got '%s'\n", progname,
                n ? n : "");
        return -1;
      }
      o->threads = n;
    } else if (a[1] == 'e' || a[1] == 'l') {
      o->flags |= a[1] == 'e' ? HAS_E : HAS_L;
      if (a[2] == '\0' && argv[++i] == NULL) {
        fprintf(stderr, "%s: '%s' needs argument\n", progname, a);
        return -1;
      }
    } else {
      fprintf(stderr, "%s: unrecognized option '%s'\n", progname, a);
      return -1;
    }
  }
  return 0;
}

/* The same layout as lua.c: the script at 0, its arguments at 1.., the interpreter and the
   options before it at negative indices. Without a script, the interpreter is at 0. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  if (script == argc)
    script = 0;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Finds the Lua files of a build tree, given the real path of the executable: lua/ beside it
   (a binary at the top of the tree), or ../lua holding cnnlab/init.lua (build/cnnlab, which
   is what the ./cnnlab symlink resolves to). Returns 0 when neither is there. */
static int find_tree_luadir(char *dir, size_t size) {
  char exe[PATH_MAX];
  char probe[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return 0;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash == NULL)
    return 0;
  int len = (int)(slash - exe);
  /* ';' and '?' are package.path metacharacters and cannot be escaped. */
  if (memchr(exe, ';', (size_t)len) != NULL || memchr(exe, '?', (size_t)len) != NULL)
    return 0;
  snprintf(dir, size, "%.*s/lua", len, exe);
  if (is_dir(dir))
    return 1;
  /* /proc/self/exe has no symlinks or "..", so the parent is the text before the last '/'. */
  exe[len] = '\0';
  char *up = strrchr(exe, '/');
  if (up == NULL)
    return 0;
  snprintf(dir, size, "%.*s/lua", (int)(up - exe), exe);
  snprintf(probe, sizeof probe, "%s/cnnlab/init.lua", dir);
  if (access(probe, R_OK) == 0)
    return 1;
  /* An installed binary, PREFIX/bin/cnnlab, finds PREFIX/share/lua/5.4 whatever PREFIX the
     objects were compiled with (make install PREFIX=… does not rebuild them). */
  snprintf(dir, size, "%.*s/share/lua/5.4", (int)(up - exe), exe);
  snprintf(probe, sizeof probe, "%s/cnnlab/init.lua", dir);
  return access(probe, R_OK) == 0;
}

/* A build tree must use its own Lua files, not an installed copy, so the tree's lua/ comes
   first; an installed binary uses CNNLAB_LUADIR. Lua's default paths (or LUA_PATH) follow. */
static void set_paths(lua_State *L) {
  char dir[PATH_MAX + 16];
  int in_tree = find_tree_luadir(dir, sizeof dir);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  if (in_tree)
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, old ? old : "");
  else
    lua_pushfstring(L, CNNLAB_LUADIR "/?.lua;" CNNLAB_LUADIR "/?/init.lua;%s", old ? old : "");
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_cnnlab_core);
  lua_setfield(L, -2, "cnnlab.core");
  lua_pop(L, 2);
}

/* ---------------------------------------------------------------- allocation faults
 * Two test hooks for the sweeps of docs/reliability.md; neither costs anything unless used.
 *  - CNNLAB_FAIL_LUA_ALLOC=n: from Lua's n-th allocation on, every allocation that grows
 *    memory fails (0: none fails); the count is printed on stderr at exit. The run must end
 *    with "not enough memory" and status 1, never a crash.
 *  - lab._with_lua_alloc_failing(n, fn): runs fn() in protected mode with the same failure
 *    from its n-th allocation on, then restores the allocator; returns ok, error, count. The
 *    whole sweep then runs in one process, where leaks of core memory can be counted. */
typedef struct {
  lua_Alloc f; /* the allocator wrapped */
  void *ud;
  long count;   /* allocations that grew memory */
  long fail_at; /* >= 1: fail from this one on */
} fault_alloc;

static void *faulty_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  fault_alloc *fa = ud;
  /* Only growth may fail: Lua assumes that freeing and shrinking always succeed. When ptr is
     NULL, osize is a type tag, not a size. */
  if (nsize > (ptr ? osize : 0)) {
    fa->count++;
    if (fa->fail_at > 0 && fa->count >= fa->fail_at)
      return NULL;
  }
  return fa->f(fa->ud, ptr, osize, nsize);
}

static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud, (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

static fault_alloc process_faults; /* CNNLAB_FAIL_LUA_ALLOC */

/* What luaL_newstate's panic function does: an error outside any protected call. */
static int panic(lua_State *L) {
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(non-string error)";
  fprintf(stderr, "%s: PANIC: unprotected error in call to Lua API (%s)\n", progname, msg);
  return 0;
}

static int with_lua_alloc_failing(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaL_checkstack(L, 8, NULL); /* the results need no allocation once the fault is armed */
  fault_alloc fa = {0};
  fa.f = lua_getallocf(L, &fa.ud);
  fa.fail_at = n > 0 ? (long)n : 0;
  lua_setallocf(L, faulty_alloc, &fa);
  int status = lua_pcall(L, 0, 1, 0);
  lua_setallocf(L, fa.f, fa.ud);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, -2);
  if (status == LUA_OK)
    lua_pushnil(L), lua_replace(L, -2); /* ok, nil, count: the function's result is dropped */
  lua_pushinteger(L, fa.count);
  return 3;
}

static int run_chunk(lua_State *L, int status) {
  if (status == LUA_OK)
    status = repl_docall(L, 0, 0);
  return repl_report(L, progname, status);
}

/* LUA_INIT_5_4 or LUA_INIT: "@file" runs a file, anything else is Lua source. */
static int run_lua_init(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL)
    return LUA_OK;
  if (init[0] == '@')
    return run_chunk(L, luaL_loadfile(L, init + 1));
  return run_chunk(L, luaL_loadbuffer(L, init, strlen(init), name));
}

static int require_into(lua_State *L, const char *global, const char *module) {
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  int status = repl_docall(L, 1, 1);
  if (status == LUA_OK)
    lua_setglobal(L, global);
  return status;
}

/* Loaded eagerly: it costs well under a millisecond, and a missing library is better reported
   at start than as "attempt to index a nil value" deep inside a script. */
static void load_lab(lua_State *L) {
  if (require_into(L, "lab", "cnnlab") != LUA_OK) {
    fprintf(stderr, "%s: warning: could not load the cnnlab library, 'lab' is unset:\n", progname);
    repl_report(L, NULL, LUA_ERRRUN);
    return;
  }
  if (lua_getglobal(L, "lab") == LUA_TTABLE) {
    lua_pushcfunction(L, with_lua_alloc_failing);
    lua_setfield(L, -2, "_with_lua_alloc_failing");
  }
  lua_pop(L, 1);
}

/* Runs -e, -l and -W in command-line order; stops at the first failure. */
static int run_args(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--threads", 9) == 0) {
      if (a[9] == '\0')
        i++;
    } else if (a[1] == 'e' || a[1] == 'l') {
      const char *val = a[2] != '\0' ? a + 2 : argv[++i];
      int status;
      if (a[1] == 'e')
        status = run_chunk(L, luaL_loadbuffer(L, val, strlen(val), "=(command line)"));
      else
        status = repl_report(L, progname, require_into(L, val, val));
      if (status != LUA_OK)
        return 0;
    } else if (a[1] == 'W') {
      lua_warning(L, "@on", 0);
    }
  }
  return 1;
}

static int run_script(lua_State *L, char **argv, int script) {
  const char *fname = argv[script];
  if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
    fname = NULL; /* stdin */
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    lua_getglobal(L, "arg");
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++)
      lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    status = repl_docall(L, n, 0);
  }
  return repl_report(L, progname, status);
}

/* Everything runs inside a protected call so that running out of memory while setting up is
   reported like any other error instead of killing the process. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  struct options o;
  luaL_checkversion(L);
  if (collect_args(argc, argv, &o) != 0) {
    print_usage(stderr);
    return 0;
  }
  if (o.flags & HAS_H) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (o.flags & HAS_V)
    print_version();
  /* The core reads CNNLAB_THREADS when it starts its pool, so this must precede any require. */
  if (o.threads != NULL && setenv("CNNLAB_THREADS", o.threads, 1) != 0)
    return luaL_error(L, "cannot set CNNLAB_THREADS");
  if (o.flags & HAS_NOENV) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  set_paths(L);
  create_arg_table(L, argv, argc, o.script);
  lua_gc(L, LUA_GCRESTART);
  if (!(o.flags & HAS_NOENV) && run_lua_init(L) != LUA_OK)
    return 0;
  int interactive = (o.flags & HAS_I) || (o.script == argc && !(o.flags & (HAS_E | HAS_V)));
  /* `cnnlab -v` alone runs no Lua code, so it need not load the library. */
  if (interactive || o.script < argc || (o.flags & (HAS_E | HAS_L)))
    load_lab(L);
  if (!run_args(L, argv, o.script))
    return 0;
  if (o.script < argc && run_script(L, argv, o.script) != LUA_OK)
    return 0;
  if (interactive)
    repl_run(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* Idle OpenMP threads spin by default, taking the core their partner (or another process)
   needs; on a shared 2-core machine that halved 2-thread training (docs/performance.md).
   libgomp reads OMP_WAIT_POLICY when it loads, before main, so the interpreter re-executes
   itself once with the variable set; a user's own setting is left alone. */
static void prefer_passive_openmp(char **argv) {
  if (getenv("OMP_WAIT_POLICY") != NULL)
    return;
  /* Under valgrind /proc/self/exe is valgrind's tool, which refuses to be run directly; its
   * preload libraries in LD_PRELOAD give it away. Stay in the process valgrind watches. */
  const char *preload = getenv("LD_PRELOAD");
  if (preload != NULL && strstr(preload, "vgpreload") != NULL)
    return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
    return;
  execv("/proc/self/exe", argv); /* returns only on failure: then carry on as we are */
}

int main(int argc, char **argv) {
  prefer_passive_openmp(argv);
  const char *fail = getenv("CNNLAB_FAIL_LUA_ALLOC");
  lua_State *L;
  if (fail) {
    process_faults.f = plain_alloc;
    process_faults.fail_at = atol(fail);
    L = lua_newstate(faulty_alloc, &process_faults);
    if (L)
      lua_atpanic(L, panic); /* as luaL_newstate sets up, less the warning function */
  } else {
    L = luaL_newstate();
  }
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP); /* no collections while the libraries are being opened */
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = lua_toboolean(L, -1);
  repl_report(L, progname, status);
  lua_close(L);
  if (fail)
    fprintf(stderr, "%s: %ld Lua allocations\n", progname, process_faults.count);
  return (ok && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}

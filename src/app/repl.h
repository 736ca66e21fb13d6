/* The interactive side of the cnnlab executable: running Lua code with Ctrl-C turned into a
   Lua error, reporting errors with a traceback, and the read-eval-print loop. main.c parses the
   command line and calls these; nothing here is part of the Lua library. */
#ifndef CNNLAB_REPL_H
#define CNNLAB_REPL_H

#include <lua.h>

#ifndef CNNLAB_VERSION
#define CNNLAB_VERSION "0.1"
#endif

/* Calls the function below the narg arguments on top of the stack, like lua_pcall, but with a
   traceback added to error messages and the first SIGINT turned into the Lua error
   "interrupted!" (a second one kills the process, so a stuck C loop can still be stopped). */
int repl_docall(lua_State *L, int narg, int nres);

/* Writes the error message on top of the stack to stderr, preceded by "prefix: " when prefix
   is not NULL, and pops it. Returns status unchanged so calls can be chained. */
int repl_report(lua_State *L, const char *prefix, int status);

/* Runs the read-eval-print loop on stdin until end of input; with a terminal it uses GNU
   readline (history, completion), otherwise it reads plain lines and prints no prompts. */
void repl_run(lua_State *L);

#endif

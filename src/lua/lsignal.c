/* lsignal.c — SIGINT as a flag a training loop polls, instead of the end of the run. */
#include "lua/lbind.h"

#include <signal.h>
#include <string.h>

/* A training loop asks trap_sigint(true) so that Ctrl-C only sets a flag it polls between
 * steps (to write a checkpoint and stop cleanly) instead of killing the run. */
static volatile sig_atomic_t sigint_count;
static struct sigaction previous_sigint;
static int sigint_trapped;

static void on_sigint(int sig) {
  (void)sig;
  sigint_count++;
}

static int trap_sigint(lua_State *L) {
  int on = lua_toboolean(L, 1);
  if (on && !sigint_trapped) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_sigint);
    sigint_trapped = 1;
  } else if (!on && sigint_trapped) {
    sigaction(SIGINT, &previous_sigint, NULL);
    sigint_trapped = 0;
  }
  sigint_count = 0;
  return 0;
}

static int sigint_pending(lua_State *L) {
  lua_pushboolean(L, sigint_count > 0);
  return 1;
}

static const luaL_Reg signal_funcs[] = {
    {"trap_sigint", trap_sigint}, {"sigint_pending", sigint_pending}, {NULL, NULL}};

void clb_open_signal(lua_State *L) { luaL_setfuncs(L, signal_funcs, 0); }

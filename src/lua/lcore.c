/* lcore.c — the cnnlab.core module: registers each binding file's part, and nothing else. */
#include "lua/lbind.h"

int luaopen_cnnlab_core(lua_State *L) {
  luaL_checkversion(L);
  lua_newtable(L);
  /* this order is the order the fields enter the table */
  clb_open_sys(L);
  clb_open_gen(L);
  clb_open_grad(L);
  clb_open_mem(L);
  clb_open_thread(L);
  clb_open_signal(L);
  clb_open_hooks(L);
  clb_open_tensor(L);
  clb_open_nn(L);
  clb_open_io(L);
  clb_open_mpi(L);
  return 1;
}

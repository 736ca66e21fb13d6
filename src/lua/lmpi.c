/* lmpi.c — the MPI binding: data-parallel training and sweeps over Open MPI (docs/mpi.md).
 *
 * Compiled into every build, but MPI-specific only with -DCNNLAB_MPI (`make MPI=1`, which
 * compiles with mpicc into build-mpi/). Without it clb_open_mpi registers nothing and the Lua
 * module cnnlab.mpi (lua/cnnlab/mpi.lua) answers rank 0 of 1 with identity collectives, so
 * every script runs unchanged.
 *
 * With MPI, clb_open_mpi adds core.mpi_binding, a table of:
 *   initialized() → bool           MPI was started (we run under mpirun/srun, see below)
 *   rank(), size(), local_size()   in MPI_COMM_WORLD (0, 1, 1 when not initialized)
 *   allreduce(t[, op])             in place on a contiguous tensor; op "sum" | "max" | "min";
 *                                  float32 (MPI_FLOAT), int64 (MPI_INT64_T), uint8 (MPI_UINT8_T)
 *   allreduce_numbers({x, ...}[, op]) → {y, ...}   in double precision
 *   broadcast(t[, root])           in place on a contiguous tensor, from root (default 0)
 *   broadcast_string(s | nil[, root]) → the root's string
 *   allgather(t) → tensor          every rank's t concatenated along dimension 0 in rank
 *                                  order (sizes of dimension 0 may differ, the rest must not)
 *   barrier()                      (sleeps while it waits: no spinning core)
 *   abort(message[, code])         prints "cnnlab: rank r of K: message" and ends the whole job
 *   wtime()                        MPI_Wtime
 *   stats([reset]) → {seconds=, cpu_seconds=, calls=, bytes=}   wall and CPU time spent inside
 *                                  the collectives above (CPU: busy waiting counts)
 *
 * Starting and stopping. MPI_Init_thread (FUNNELED: only the Lua thread calls MPI; the OpenMP
 * workers never do) runs when the core loads, but only when a launcher started the process
 * (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK or PMI_SIZE in the environment, or
 * CNNLAB_MPI_INIT=1), so a plain `./build-mpi/cnnlab script.lua` behaves exactly like the
 * default build. The end of the process is handled by an on_exit() handler, which sees the
 * exit status:
 *   status 0   → MPI_Finalize, the normal end;
 *   status ≠ 0 → the rank failed (a Lua error reported by the interpreter, os.exit(1), ...):
 *                it prints which rank failed and calls MPI_Abort, which ends every rank.
 * Without this, a rank that fails while the others wait in an all-reduce would leave them
 * waiting forever (MPI_Finalize itself waits for the others). A crash (signal) is noticed by
 * mpirun, which ends the job. SIGUSR1 (which mpirun forwards to every rank) is turned into
 * SIGINT, the trainer's "stop cleanly with a checkpoint" (see usr1_as_sigint).
 *
 * Threads: when several ranks share a machine and neither CNNLAB_THREADS nor OMP_NUM_THREADS
 * is set, each rank gets its share of the cores (the CPUs in its affinity mask when mpirun
 * bound it, else the online CPUs divided by the ranks on this node), instead of every rank
 * starting one thread per core. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT, on_exit */
#include "lua/lbind.h"

void clb_open_mpi(lua_State *L);

#ifndef CNNLAB_MPI

/* The default build: no MPI. cnnlab.mpi sees no core.mpi_binding and runs as one process. */
void clb_open_mpi(lua_State *L) { (void)L; }

#else

#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int world_rank, world_size = 1, node_size = 1;
static double comm_seconds, comm_cpu; /* wall and process CPU seconds inside MPI */
static long comm_calls;
static double comm_bytes;

static int active(void) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

static void at_exit(int status, void *arg) {
  (void)arg;
  if (!active())
    return;
  if (status == 0) {
    MPI_Finalize();
    return;
  }
  fflush(stdout);
  fprintf(stderr,
          "cnnlab: MPI rank %d of %d is exiting with status %d (%s); aborting the whole job so "
          "that no rank waits for it\n",
          world_rank, world_size, status,
          status == 130 ? "interrupted" : "its error is printed above");
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, status);
}

static int launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                                     NULL};
  const char *force = getenv("CNNLAB_MPI_INIT");
  if (force && *force)
    return strcmp(force, "0") != 0;
  for (int i = 0; vars[i]; i++)
    if (getenv(vars[i]))
      return 1;
  return 0;
}

static void share_cores(void) {
  if (world_size < 2 || getenv("CNNLAB_THREADS") || getenv("OMP_NUM_THREADS"))
    return;
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1)
    online = 1;
  long mine = online;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    mine = CPU_COUNT(&set);
  long n = mine < online ? mine : online / (node_size > 0 ? node_size : 1);
  if (n < 1)
    n = 1;
  char buf[32];
  snprintf(buf, sizeof buf, "%ld", n);
  setenv("CNNLAB_THREADS", buf, 1);
  cl_set_threads((int)n);
}

/* mpirun ends the whole job on Ctrl-C (SIGINT/SIGTERM to every rank, then SIGKILL), so the
 * trainer's clean stop with a checkpoint cannot be asked that way; mpirun does forward SIGUSR1
 * to every rank, and each rank turns it into the SIGINT the trainer traps:
 * `kill -USR1 <pid of mpirun>` stops training at the end of the current step, with a checkpoint. */
static void usr1_as_sigint(int sig) {
  (void)sig;
  raise(SIGINT);
}

static void start(void) {
  static int tried;
  if (tried)
    return;
  tried = 1;
  int init = 0;
  MPI_Initialized(&init);
  if (!init) {
    if (!launched())
      return;
    /* Ranks waiting in a collective yield the core instead of spinning on it: on a machine
     * shared with other jobs (or with more ranks than cores) spinning steals the CPU the slower
     * rank needs. Measured on a loaded 2-core machine: 340 → 280 ms per step. An explicit
     * setting (mpirun --mca mpi_yield_when_idle 0) wins. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return; /* the default error handler has already aborted */
    on_exit(at_exit, NULL);
    signal(SIGUSR1, usr1_as_sigint);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  MPI_Comm node;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
      MPI_SUCCESS) {
    MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
  }
  share_cores();
}

/* ---------------------------------------------------------------- helpers */

static MPI_Op check_op(lua_State *L, int idx, const char *fn) {
  static const char *const names[] = {"sum", "max", "min", NULL};
  const char *name = luaL_optstring(L, idx, "sum");
  for (int i = 0; names[i]; i++)
    if (!strcmp(name, names[i]))
      return i == 0 ? MPI_SUM : i == 1 ? MPI_MAX : MPI_MIN;
  luaL_error(L, "mpi.%s: argument %d (op) must be \"sum\", \"max\" or \"min\", got \"%s\"", fn, idx,
             name);
  return MPI_SUM; /* not reached */
}

static MPI_Datatype mpi_type(const cl_tensor *t) {
  switch (t->dtype) {
  case CL_FLOAT32:
    return MPI_FLOAT;
  case CL_INT64:
    return MPI_INT64_T;
  default:
    return MPI_UINT8_T;
  }
}

/* A tensor the collectives may write into: contiguous, with at most INT_MAX elements. */
static cl_tensor *check_buffer(lua_State *L, int idx, const char *fn) {
  cl_tensor *t = clb_check(L, idx);
  if (!cl_is_contiguous(t))
    luaL_error(L,
               "mpi.%s: argument %d must be a contiguous tensor, got a strided view "
               "(call :contiguous() first)",
               fn, idx);
  if (cl_numel(t) > 0x7fffffff)
    luaL_error(L,
               "mpi.%s: argument %d has %lld elements, more than one MPI call can carry "
               "(2^31 − 1)",
               fn, idx, (long long)cl_numel(t));
  return t;
}

#define TIMED(bytes, call)                                                                         \
  do {                                                                                             \
    double t0_ = MPI_Wtime();                                                                      \
    clock_t c0_ = clock();                                                                         \
    call;                                                                                          \
    comm_seconds += MPI_Wtime() - t0_;                                                             \
    comm_cpu += (double)(clock() - c0_) / CLOCKS_PER_SEC;                                          \
    comm_calls++;                                                                                  \
    comm_bytes += (double)(bytes);                                                                 \
  } while (0)

/* ---------------------------------------------------------------- functions */

static int l_initialized(lua_State *L) {
  lua_pushboolean(L, active());
  return 1;
}

static int l_rank(lua_State *L) {
  lua_pushinteger(L, active() ? world_rank : 0);
  return 1;
}

static int l_size(lua_State *L) {
  lua_pushinteger(L, active() ? world_size : 1);
  return 1;
}

static int l_local_size(lua_State *L) {
  lua_pushinteger(L, active() ? node_size : 1);
  return 1;
}

static int l_allreduce(lua_State *L) {
  cl_tensor *t = check_buffer(L, 1, "allreduce");
  MPI_Op op = check_op(L, 2, "allreduce");
  if (t->dtype == CL_UINT8 && op == MPI_SUM)
    luaL_error(L, "mpi.allreduce: a uint8 tensor can only be reduced with \"max\" or \"min\" "
                  "(a sum would overflow), got \"sum\"");
  lua_settop(L, 1);
  if (!active() || world_size == 1)
    return 1;
  int n = (int)cl_numel(t);
  TIMED((size_t)n * cl_dtype_size(t->dtype),
        MPI_Allreduce(MPI_IN_PLACE, cl_data(t), n, mpi_type(t), op, MPI_COMM_WORLD));
  return 1;
}

static int l_allreduce_numbers(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  MPI_Op op = check_op(L, 2, "allreduce_numbers");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n > 1 << 20)
    luaL_error(L, "mpi.allreduce_numbers: at most 2^20 numbers, got %d (use a tensor)", (int)n);
  double *buf = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof(double), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    int ok;
    buf[i - 1] = lua_tonumberx(L, -1, &ok);
    if (!ok)
      luaL_error(L, "mpi.allreduce_numbers: element %d of argument 1 must be a number, got %s",
                 (int)i, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  if (active() && world_size > 1 && n > 0)
    TIMED((size_t)n * sizeof(double),
          MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, op, MPI_COMM_WORLD));
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    double v = buf[i - 1];
    lua_Integer iv = (lua_Integer)v;
    if ((double)iv == v && v > -9.0e15 && v < 9.0e15)
      lua_pushinteger(L, iv); /* counts stay integers */
    else
      lua_pushnumber(L, v);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static int check_root(lua_State *L, int idx, const char *fn) {
  lua_Integer root = luaL_optinteger(L, idx, 0);
  int size = active() ? world_size : 1;
  if (root < 0 || root >= size)
    luaL_error(L, "mpi.%s: argument %d (root) must be a rank in 0..%d, got %d", fn, idx, size - 1,
               (int)root);
  return (int)root;
}

static int l_broadcast(lua_State *L) {
  cl_tensor *t = check_buffer(L, 1, "broadcast");
  int root = check_root(L, 2, "broadcast");
  lua_settop(L, 1);
  if (!active() || world_size == 1)
    return 1;
  /* every rank must bring the same number of elements: a mismatch would corrupt memory */
  long long mine = (long long)cl_numel(t) * (long long)cl_dtype_size(t->dtype), lo = mine,
            hi = mine;
  TIMED(2 * sizeof lo,
        (MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD),
         MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD)));
  if (lo != hi)
    luaL_error(L,
               "mpi.broadcast: the ranks passed tensors of different sizes (%lld to %lld "
               "bytes; this rank %lld)",
               lo, hi, mine);
  int n = (int)cl_numel(t);
  TIMED((size_t)n * cl_dtype_size(t->dtype),
        MPI_Bcast(cl_data(t), n, mpi_type(t), root, MPI_COMM_WORLD));
  return 1;
}

static int l_broadcast_string(lua_State *L) {
  size_t len = 0;
  const char *s = lua_isnoneornil(L, 1) ? NULL : luaL_checklstring(L, 1, &len);
  int root = check_root(L, 2, "broadcast_string");
  if (!active() || world_size == 1) {
    if (!s)
      luaL_error(L, "mpi.broadcast_string: argument 1 must be a string on the root rank, got nil");
    lua_pushlstring(L, s, len);
    return 1;
  }
  long long n = (long long)len;
  if (world_rank == root && !s)
    n = -1;
  TIMED(sizeof n, MPI_Bcast(&n, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD));
  if (n < 0)
    luaL_error(L,
               "mpi.broadcast_string: argument 1 must be a string on the root rank (%d), "
               "got nil",
               root);
  if (n > 0x7fffffff)
    luaL_error(L, "mpi.broadcast_string: %lld bytes is more than one call can carry", n);
  char *buf = lua_newuserdatauv(L, (size_t)n + 1, 0);
  if (world_rank == root)
    memcpy(buf, s, (size_t)n);
  TIMED((size_t)n, MPI_Bcast(buf, (int)n, MPI_CHAR, root, MPI_COMM_WORLD));
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static int l_allgather(lua_State *L) {
  cl_tensor *t = check_buffer(L, 1, "allgather");
  if (t->ndim < 1)
    luaL_error(L, "mpi.allgather: argument 1 must have at least one dimension, got a 0-d tensor");
  if (!active() || world_size == 1) {
    cl_tensor **slot = clb_slot(L);
    *slot = cl_clone(t);
    clb_done(L, slot);
    return 1;
  }
  /* What every rank brings: dtype, trailing shape (as a row size) and its number of rows. */
  int64_t row = 1;
  for (int d = 1; d < t->ndim; d++)
    row *= t->shape[d];
  long long desc[3] = {(long long)t->dtype, (long long)t->ndim, (long long)row};
  long long lo[3], hi[3];
  TIMED(6 * sizeof(long long),
        (MPI_Allreduce(desc, lo, 3, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD),
         MPI_Allreduce(desc, hi, 3, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD)));
  if (memcmp(lo, hi, sizeof lo) != 0)
    luaL_error(L,
               "mpi.allgather: the ranks' tensors differ in type or in their dimensions after "
               "the first (this rank: %s, %d dims, %lld elements per row)",
               cl_dtype_name(t->dtype), t->ndim, (long long)row);
  size_t esize = cl_dtype_size(t->dtype);
  /* counts and displacements in bytes: one int each per rank */
  int *counts = lua_newuserdatauv(L, sizeof(int) * 2 * (size_t)world_size, 0);
  int *displs = counts + world_size;
  long long mine = (long long)t->shape[0] * row * (long long)esize;
  if (mine > 0x7fffffff)
    luaL_error(L, "mpi.allgather: %lld bytes is more than one call can carry", mine);
  int my_bytes = (int)mine;
  TIMED(sizeof(int) * (size_t)world_size,
        MPI_Allgather(&my_bytes, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD));
  long long total = 0;
  for (int r = 0; r < world_size; r++) {
    displs[r] = (int)total;
    total += counts[r];
  }
  if (total > 0x7fffffff)
    luaL_error(L, "mpi.allgather: %lld bytes in all is more than one call can carry", total);
  int64_t shape[CL_MAX_DIMS];
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shape[0] = row > 0 ? (int64_t)(total / (long long)esize / row) : 0;
  if (row == 0) { /* no data at all: the rows still add up */
    long long rows = t->shape[0];
    TIMED(sizeof rows,
          MPI_Allreduce(MPI_IN_PLACE, &rows, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
    shape[0] = rows;
  }
  cl_tensor **slot = clb_slot(L);
  *slot = cl_empty(t->dtype, t->ndim, shape);
  clb_done(L, slot);
  TIMED(total, MPI_Allgatherv(cl_data(t), my_bytes, MPI_BYTE, cl_data(*slot), counts, displs,
                              MPI_BYTE, MPI_COMM_WORLD));
  return 1;
}

/* A barrier that sleeps while it waits (1 ms between tests) instead of spinning on a core:
 * ranks that finish a sweep early must not steal the CPU of those still training. */
static int l_barrier(lua_State *L) {
  (void)L;
  if (!active() || world_size == 1)
    return 0;
  double t0 = MPI_Wtime();
  clock_t c0 = clock();
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  int done = 0;
  struct timespec pause = {0, 1000000};
  for (;;) {
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    if (done)
      break;
    nanosleep(&pause, NULL);
  }
  comm_seconds += MPI_Wtime() - t0;
  comm_cpu += (double)(clock() - c0) / CLOCKS_PER_SEC;
  comm_calls++;
  return 0;
}

static int l_abort(lua_State *L) {
  const char *msg = luaL_optstring(L, 1, "aborted");
  lua_Integer code = luaL_optinteger(L, 2, 1);
  fflush(stdout);
  fprintf(stderr, "cnnlab: rank %d of %d: %s\n", active() ? world_rank : 0,
          active() ? world_size : 1, msg);
  fflush(stderr);
  if (active())
    MPI_Abort(MPI_COMM_WORLD, code ? (int)code : 1);
  exit(code ? (int)code : 1); /* not under MPI: an ordinary exit */
}

static int l_wtime(lua_State *L) {
  if (active()) {
    lua_pushnumber(L, MPI_Wtime());
  } else {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
  }
  return 1;
}

static int l_stats(lua_State *L) {
  int reset = lua_toboolean(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, comm_seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushnumber(L, comm_cpu);
  lua_setfield(L, -2, "cpu_seconds");
  lua_pushinteger(L, comm_calls);
  lua_setfield(L, -2, "calls");
  lua_pushnumber(L, comm_bytes);
  lua_setfield(L, -2, "bytes");
  if (reset) {
    comm_seconds = 0;
    comm_cpu = 0;
    comm_calls = 0;
    comm_bytes = 0;
  }
  return 1;
}

static const luaL_Reg mpi_funcs[] = {
    {"initialized", l_initialized},
    {"rank", l_rank},
    {"size", l_size},
    {"local_size", l_local_size},
    {"allreduce", l_allreduce},
    {"allreduce_numbers", l_allreduce_numbers},
    {"broadcast", l_broadcast},
    {"broadcast_string", l_broadcast_string},
    {"allgather", l_allgather},
    {"barrier", l_barrier},
    {"abort", l_abort},
    {"wtime", l_wtime},
    {"stats", l_stats},
    {NULL, NULL},
};

void clb_open_mpi(lua_State *L) {
  start();
  lua_newtable(L);
  luaL_setfuncs(L, mpi_funcs, 0);
  lua_pushstring(L, "Open MPI" /* the build uses Debian's mpicc; other MPIs should work too */);
  lua_setfield(L, -2, "implementation");
  lua_setfield(L, -2, "mpi_binding");
}

#endif

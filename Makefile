# cnnlab — build, test, data, demo.
#   make              build ./cnnlab and build/cnnlab/core.so
#   make test         build, then run every C and Lua test (final line: N passed, N failed)
#   make data         fetch and verify MNIST into data/mnist/
#   make demo         the whole study, report in runs/report.html
#   make check-asan   the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make check-valgrind  a short training script under valgrind (no definitely-lost bytes)
#   make fuzz         each libFuzzer target for FUZZ_SECONDS seconds (clang); fuzz-ci: 30 s each
#   make bench        speed of every model plug-in; bench-compare (ARGS=--compare): beside PyTorch
#   make benchmarks   the literature's benchmark tables (docs/benchmarks.md; QUICK=1 TABLE=name)
# Options: BLAS=openblas|none  OPENMP=1|0  MODE=release|asan|debug  MPI=0|1 (build-mpi/)

BLAS ?= openblas
OPENMP ?= 1
MODE ?= release
PREFIX ?= /usr/local

CC ?= cc
PKG_CONFIG ?= pkg-config

# ---- Debian packages (tools/setup-deps.sh, docs/install.md) ----------------------------------
# `make demo` and `make test` first install the Debian packages they need and lack, saying in
# one line which and why (NO_INSTALL=1: they print the command instead). It runs while this file
# is read, before pkg-config is asked for the flags below; `make -n` installs nothing.
SETUP_GOAL := $(firstword $(filter demo test,$(MAKECMDGOALS)))
ifneq ($(SETUP_GOAL),)
SETUP_STATUS := $(shell NO_INSTALL='$(if $(findstring n,$(firstword -$(MAKEFLAGS))),1,$(NO_INSTALL))' \
  BLAS='$(BLAS)' $(if $(CNNLAB_REQUIRED_PACKAGES),CNNLAB_REQUIRED_PACKAGES='$(CNNLAB_REQUIRED_PACKAGES)') \
  sh tools/setup-deps.sh --for 'make $(SETUP_GOAL)' >&2; echo $$?)
ifneq ($(SETUP_STATUS),0)
$(error make $(SETUP_GOAL) stopped: Debian packages are missing (see the line above))
endif
endif

LUA_PC := $(shell $(PKG_CONFIG) --exists lua5.4 && echo lua5.4 || echo lua54)
LUA_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LUA_PC))
LUA_LIBS := $(shell $(PKG_CONFIG) --libs $(LUA_PC))

# Any other goal on a machine without them gets one message naming them, not a compiler error.
ifeq ($(filter clean format data uninstall,$(MAKECMDGOALS)),)
DEPS_MISSING := $(shell command -v $(PKG_CONFIG) >/dev/null 2>&1 || echo pkg-config; \
  for p in $(LUA_PC):liblua5.4-dev libpng:libpng-dev zlib:zlib1g-dev libcjson:libcjson-dev \
    $(if $(filter openblas,$(BLAS)),openblas:libopenblas-dev,); do \
    $(PKG_CONFIG) --exists $${p%%:*} 2>/dev/null || echo $${p#*:}; done)
ifneq ($(strip $(DEPS_MISSING)),)
$(error missing development packages: $(strip $(DEPS_MISSING)). `make demo` and `make test` install \
them, or run: sudo apt-get install -y $(shell BLAS='$(BLAS)' sh tools/setup-deps.sh --list))
endif
endif

BUILD := build
ifneq ($(MODE),release)
BUILD := build-$(MODE)
endif
ifneq ($(BLAS),openblas)
BUILD := $(BUILD)-blas-$(BLAS)
endif

WARN := -std=c11 -Wall -Wextra -Werror -Wno-unknown-pragmas
DEFS := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DCNNLAB_LUADIR='"$(PREFIX)/share/lua/5.4"'
OPT := -O2 -g
LDEXTRA :=
ifeq ($(MODE),asan)
# -O2: the GEMM micro-kernel is only fast once vectorised (at -O1 a sanitized training step
# ran ~80x slower than release, ~6x at -O2: check-asan's time is CI's time)
OPT := -O2 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDEXTRA += -fsanitize=address,undefined
endif
ifeq ($(MODE),debug)
OPT := -O0 -g
endif

# ---- MPI (docs/mpi.md) -------------------------------------------------------------------
# `make MPI=1`: Open MPI's mpicc (Debian: libopenmpi-dev openmpi-bin) and -DCNNLAB_MPI, into its
# own folder build-mpi/ (build-mpi-asan/ with MODE=asan, ...). Only src/lua/lmpi.c uses MPI; the
# default build has no MPI dependency. Run: mpirun -np 2 ./build-mpi/cnnlab script.lua ...
MPI ?= 0
ifeq ($(MPI),1)
CC := mpicc
DEFS += -DCNNLAB_MPI
BUILD := $(patsubst build%,build-mpi%,$(BUILD))
endif
# ---- end MPI -------------------------------------------------------------------------------

# Public headers from src/include/; internal ones by their folder ("core/tensor_impl.h").
INCLUDES := -Isrc/include -Isrc
CFLAGS_ALL := $(WARN) $(OPT) -fPIC $(DEFS) $(INCLUDES) $(LUA_CFLAGS) $(CFLAGS)
# The kernels (convolution, pooling, ReLU, the portable GEMM) are written for the vectoriser,
# which GCC 12 runs in full only from -O3 (at -O2 it leaves loops with a remainder scalar):
# measured, max-pool forward 7× and ReLU several times faster. Still the baseline x86-64
# instruction set; the portable GEMM picks AVX2/AVX-512 at run time (docs/performance.md).
KERNEL_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/ops/*.c) src/gemm/gemm.c \
  src/core/elementwise.c src/core/optim.c)
ifeq ($(MODE),release)
$(KERNEL_OBJ): CFLAGS_ALL += -O3
endif
# The optimisers' sqrtf never sees a negative (v >= 0), and nothing reads errno: without errno
# GCC emits the vector square root, and Adam's loop vectorises (same bits, element by element).
$(BUILD)/obj/core/optim.o: CFLAGS_ALL += -fno-math-errno
LIBS := $(LUA_LIBS) -lpng -lz -lcjson -lm
ifeq ($(BLAS),openblas)
CFLAGS_ALL += -DCNNLAB_CBLAS $(shell $(PKG_CONFIG) --cflags openblas)
LIBS += $(shell $(PKG_CONFIG) --libs openblas)
endif
ifeq ($(OPENMP),1)
CFLAGS_ALL += -fopenmp
LDEXTRA += -fopenmp
endif

# By folder (docs/architecture.md): the core (no Lua), the binding, and the interpreter.
CORE_SRC := $(wildcard src/core/*.c src/ops/*.c src/gemm/*.c src/formats/*.c)
BIND_SRC := $(wildcard src/lua/*.c)
APP_SRC := $(wildcard src/app/*.c)
CORE_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
BIND_OBJ := $(BIND_SRC:src/%.c=$(BUILD)/obj/%.o)
APP_OBJ := $(APP_SRC:src/%.c=$(BUILD)/obj/%.o)
HEADERS := $(wildcard src/*/*.h)

TEST_C_SRC := $(wildcard tests/c/test_*.c)
TEST_C_BIN := $(TEST_C_SRC:tests/c/%.c=$(BUILD)/tests/%)

EXE := $(BUILD)/cnnlab
ifeq ($(BUILD),build)
TOP_EXE := cnnlab
endif

.PHONY: all test check-asan check-valgrind data demo bench clean install rock-install format fuzz fuzz-ci \
	fuzz-build
all: $(EXE) $(BUILD)/lib/cnnlab/core.so $(TOP_EXE)

$(BUILD)/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/tests $(BUILD)/lib/cnnlab:
	mkdir -p $@

$(BUILD)/libcnnlab.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(EXE): $(APP_OBJ) $(BIND_OBJ) $(BUILD)/libcnnlab.a
	$(CC) -o $@ $(APP_OBJ) $(BIND_OBJ) $(BUILD)/libcnnlab.a $(LDEXTRA) $(LIBS) -lreadline -Wl,-E

# For plain lua5.4: require "cnnlab.core" finds build/lib/cnnlab/core.so via package.cpath.
$(BUILD)/lib/cnnlab/core.so: $(BIND_OBJ) $(CORE_OBJ) | $(BUILD)/lib/cnnlab
	$(CC) -shared -o $@ $(BIND_OBJ) $(CORE_OBJ) $(LDEXTRA) $(filter-out $(LUA_LIBS),$(LIBS))

cnnlab: $(EXE)
	ln -sf $(EXE) $@

$(BUILD)/tests/%: tests/c/%.c tests/c/check.h tests/c/random_tensor.h $(BUILD)/libcnnlab.a | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) $< -o $@ $(BUILD)/libcnnlab.a $(LDEXTRA) $(LIBS)

# The fuzz regression replay runs the fuzz targets' own code (fuzz/targets.c, and
# fuzz/lua_target.c over the Lua binding).
$(BUILD)/tests/test_fuzz: tests/c/test_fuzz.c fuzz/targets.c fuzz/lua_target.c fuzz/targets.h \
  tests/c/check.h $(BIND_OBJ) $(BUILD)/libcnnlab.a | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) -Ifuzz tests/c/test_fuzz.c fuzz/targets.c fuzz/lua_target.c -o $@ \
	  $(BIND_OBJ) $(BUILD)/libcnnlab.a $(LDEXTRA) $(LIBS) -lpthread

test: all $(TEST_C_BIN)
	@BUILD=$(BUILD) sh tests/run.sh

# LeakSanitizer reads tests/lsan.supp (third-party leaks only, each justified there). A small
# quarantine keeps the many child processes of the specs light.
# CNNLAB_SANITIZER and CNNLAB_SWEEP_STRIDE scale down the specs that start many or long child
# processes (docs/reliability.md).
check-asan:
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:quarantine_size_mb=32} \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CNNLAB_SANITIZER=asan CNNLAB_SWEEP_STRIDE=7 \
	  $(MAKE) MODE=asan test

# A short training run (generated data) under memcheck: any definitely-lost byte fails it.
check-valgrind: all
	sh tests/valgrind.sh $(EXE)

# Speed of every model plug-in (docs/performance.md): `make bench [ARGS="--rounds 9 ..."]`.
# `make bench-compare` is `make bench ARGS=--compare`: PyTorch (python3-torch) in the same run.
.PHONY: bench-compare
$(BUILD)/bench:
	mkdir -p $@

$(BUILD)/bench/peak: bench/peak.c | $(BUILD)/bench
	$(CC) -std=c11 -O3 -Wall -Wextra -Werror $(if $(filter 1,$(OPENMP)),-fopenmp) $< -o $@ -lm

# Idle OpenMP threads sleep at once (OMP_WAIT_POLICY=passive) instead of spinning, for cnnlab
# and PyTorch alike: on a shared machine a spinning thread takes the core its partner needs
# (docs/performance.md). Set OMP_WAIT_POLICY yourself to measure otherwise.
bench: all $(BUILD)/bench/peak
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} $(EXE) bench/bench.lua --peak $(BUILD)/bench/peak $(ARGS)

bench-compare:
	$(MAKE) bench ARGS="--compare $(ARGS)"

# ---------------------------------------------------------------- fuzzing (docs/reliability.md)
# libFuzzer targets built with clang, AddressSanitizer and UBSan, over the core compiled the
# same way (no OpenMP, no BLAS: the readers need neither). Seeds are generated, not committed.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := idx safetensors png lua
FUZZ_DIR := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=c11 -Wall -Wextra -Werror -Wno-unknown-pragmas -O1 -g \
  -fno-omit-frame-pointer $(FUZZ_SAN) $(DEFS) $(INCLUDES)
FUZZ_CORE_OBJ := $(CORE_SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
# The Lua target (fuzz/lua_target.c) also needs the binding, built the same way.
FUZZ_BIND_OBJ := $(BIND_SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

$(FUZZ_DIR)/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(LUA_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/lua_target.o: fuzz/lua_target.c fuzz/targets.h $(HEADERS) | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(LUA_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/targets.o: fuzz/targets.c fuzz/targets.h $(HEADERS) | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj:
	mkdir -p $@

$(FUZZ_DIR)/libcnnlab.a: $(FUZZ_CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_lua: fuzz/fuzz_lua.c $(FUZZ_DIR)/obj/lua_target.o $(FUZZ_BIND_OBJ) \
  $(FUZZ_DIR)/libcnnlab.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_DIR)/obj/lua_target.o $(FUZZ_BIND_OBJ) \
	  $(FUZZ_DIR)/libcnnlab.a -o $@ $(LUA_LIBS) -lpng -lz -lcjson -lm -lpthread

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_DIR)/obj/targets.o $(FUZZ_DIR)/libcnnlab.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_DIR)/obj/targets.o \
	  $(FUZZ_DIR)/libcnnlab.a -o $@ -lpng -lz -lcjson -lm

# Seed corpora: small valid files of every kind each reader accepts, written by a script.
$(FUZZ_DIR)/seeds/.done: fuzz/make_seeds.lua $(EXE)
	rm -rf $(FUZZ_DIR)/seeds && $(EXE) fuzz/make_seeds.lua $(FUZZ_DIR)/seeds && \
	  mkdir -p $(FUZZ_DIR)/seeds/lua && touch $@

fuzz-build: $(FUZZ_BIN) $(FUZZ_DIR)/seeds/.done

fuzz: fuzz-build
	sh fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-ci:
	$(MAKE) -j2 fuzz-build
	$(MAKE) fuzz FUZZ_SECONDS=30

# The whole study: build, fetch MNIST, run Tasks 0–6, write runs/report.html.
# QUICK=1: every task on a subset (about a minute); FORCE=1 redoes up-to-date steps.
demo: all
	@sh data/fetch.sh
	./$(EXE) scripts/demo.lua $(if $(QUICK),--quick) $(if $(FORCE),--force)

# The literature's benchmark tables (docs/benchmarks.md): `make benchmarks` runs every table in
# full (hours: run it under nice); TABLE=name one table, QUICK=1 the quick check, FORCE=1 trains
# runs again, ARGS= any other option of scripts/benchmarks.lua (--methods, --shares, --seeds ...).
.PHONY: benchmarks
benchmarks: all
	@sh data/fetch.sh
	./$(EXE) scripts/benchmarks.lua $(if $(TABLE),--table $(TABLE)) $(if $(QUICK),--quick) \
	  $(if $(FORCE),--force) $(ARGS)

# ---- install (docs/install.md) ---------------------------------------------------------------
# `make install [PREFIX=/usr/local] [DESTDIR=]`: the interpreter, the whole lua/cnnlab/ tree and
# the C module where Debian's lua5.4 looks (for another PREFIX it prints the two lines to add),
# and a list of what it put there, which `make uninstall` (same PREFIX and DESTDIR) removes.
.PHONY: uninstall test-data
install: all
	@sh tools/install.sh install '$(DESTDIR)' '$(PREFIX)' $(EXE) $(BUILD)/lib/cnnlab/core.so \
	  $(BUILD)/libcnnlab.a

uninstall:
	@sh tools/install.sh uninstall '$(DESTDIR)' '$(PREFIX)'

# luarocks (cnnlab-0.1-1.rockspec) installs through this target with its own folders.
rock-install: all
	@sh tools/install.sh rock '$(INST_LUADIR)' '$(INST_LIBDIR)' $(BUILD)/lib/cnnlab/core.so
# ---- end install

# make test fetches MNIST too: the tests on the real files need it; without it (offline) they
# are pending, and make test goes on.
test: test-data
test-data:
	@sh data/fetch.sh || echo "make test: MNIST could not be fetched (see above): its tests will be pending"

data:
	@sh data/fetch.sh
	@sh data/fetch_fashion.sh || echo "make data: Fashion-MNIST is not available (see above): the data set colored_fashion_mnist will not build"

clean:
	rm -rf build build-* cnnlab

format:
	clang-format -i src/*/*.c src/*/*.h tests/c/*.c tests/c/*.h

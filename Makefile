# cnnlab — build, test, data, demo.
#   make              build ./cnnlab and build/cnnlab/core.so
#   make test         build, then run every C and Lua test (final line: N passed, N failed)
#   make data         fetch and verify MNIST into data/mnist/
#   make demo         the whole study, report in runs/report.html
#   make check-asan   the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
# Options: BLAS=openblas|none  OPENMP=1|0  MODE=release|asan|debug

BLAS ?= openblas
OPENMP ?= 1
MODE ?= release
PREFIX ?= /usr/local

CC ?= cc
PKG_CONFIG ?= pkg-config
LUA_PC := $(shell $(PKG_CONFIG) --exists lua5.4 && echo lua5.4 || echo lua54)
LUA_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LUA_PC))
LUA_LIBS := $(shell $(PKG_CONFIG) --libs $(LUA_PC))

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
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDEXTRA += -fsanitize=address,undefined
endif
ifeq ($(MODE),debug)
OPT := -O0 -g
endif

CFLAGS_ALL := $(WARN) $(OPT) -fPIC $(DEFS) $(LUA_CFLAGS) $(CFLAGS)
LIBS := $(LUA_LIBS) -lpng -lz -lcjson -lm
ifeq ($(BLAS),openblas)
CFLAGS_ALL += -DCNNLAB_CBLAS $(shell $(PKG_CONFIG) --cflags openblas)
LIBS += $(shell $(PKG_CONFIG) --libs openblas)
endif
ifeq ($(OPENMP),1)
CFLAGS_ALL += -fopenmp
LDEXTRA += -fopenmp
endif

# The core (no Lua), the bindings (l*.c), and the interpreter.
APP_SRC := src/main.c src/repl.c
BIND_SRC := $(filter-out $(APP_SRC),$(wildcard src/l*.c))
CORE_SRC := $(filter-out $(APP_SRC) $(BIND_SRC),$(wildcard src/*.c))
CORE_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/obj/%.o)
BIND_OBJ := $(BIND_SRC:src/%.c=$(BUILD)/obj/%.o)
APP_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard $(APP_SRC)))
HEADERS := $(wildcard src/*.h)

TEST_C_SRC := $(wildcard tests/c/test_*.c)
TEST_C_BIN := $(TEST_C_SRC:tests/c/%.c=$(BUILD)/tests/%)

EXE := $(BUILD)/cnnlab
ifeq ($(BUILD),build)
TOP_EXE := cnnlab
endif

.PHONY: all test check-asan data demo bench clean install format fuzz
all: $(EXE) $(BUILD)/lib/cnnlab/core.so $(TOP_EXE)

$(BUILD)/obj/%.o: src/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/obj $(BUILD)/tests $(BUILD)/lib/cnnlab:
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

$(BUILD)/tests/%: tests/c/%.c tests/c/check.h $(BUILD)/libcnnlab.a | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) -Isrc $< -o $@ $(BUILD)/libcnnlab.a $(LDEXTRA) $(LIBS)

test: all $(TEST_C_BIN)
	@BUILD=$(BUILD) sh tests/run.sh

check-asan:
	$(MAKE) MODE=asan test

data:
	@sh data/fetch.sh

clean:
	rm -rf build build-* cnnlab

format:
	clang-format -i src/*.c src/*.h tests/c/*.c tests/c/*.h

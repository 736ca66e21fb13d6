/* targets.h — the fuzz targets' bodies, shared by the libFuzzer entry points (fuzz_*.c) and
 * the regression replay test (tests/c/test_fuzz.c), so a crash input found by the fuzzer is
 * replayed through exactly the same code by `make test` and `make check-asan`. */
#ifndef CNNLAB_FUZZ_TARGETS_H
#define CNNLAB_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 when the reader accepted the input, 1 when it refused it with a message;
 * a broken invariant (a leak, an inconsistent result, an empty message) aborts, which both
 * libFuzzer and the replay test report as a finding. */
int fuzz_idx_one(const uint8_t *data, size_t size);
int fuzz_safetensors_one(const uint8_t *data, size_t size);
int fuzz_png_one(const uint8_t *data, size_t size);
/* The Lua API (fuzz/lua_target.c): 0 when every statement ran, 1 when one raised an error. */
int fuzz_lua_one(const uint8_t *data, size_t size);

#endif

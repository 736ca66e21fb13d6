/* fuzz_lua.c — libFuzzer entry point for the Lua API; the work is in lua_target.c. */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_lua_one(data, size);
  return 0;
}

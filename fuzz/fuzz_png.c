/* fuzz_png.c — libFuzzer entry point for the png reader; the work is in targets.c. */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_png_one(data, size);
  return 0;
}

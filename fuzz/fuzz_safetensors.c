/* fuzz_safetensors.c — libFuzzer entry point for the safetensors reader; the work is in targets.c.
 */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_safetensors_one(data, size);
  return 0;
}

/* mem64-c: thaw_init fills a 64 MiB buffer with a deterministic pattern; the handler replies
 * with a checksum of the whole buffer and the input length, so a restore that loses or
 * corrupts any page changes the output. */
#include <stdio.h>
#include <stdlib.h>
#include "thaw.h"

#define BUFFER_BYTES (64u * 1024u * 1024u)

static uint32_t *buffer;
static uint32_t invocations;

THAW_EXPORT("thaw_init") void thaw_init(void) {
  buffer = malloc(BUFFER_BYTES);
  if (buffer == NULL) abort();
  uint32_t x = 0x9e3779b9u;
  for (uint32_t i = 0; i < BUFFER_BYTES / 4; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5; /* xorshift32 */
    buffer[i] = x;
  }
}

THAW_EXPORT("handle") int32_t handle(void) {
  if (buffer == NULL) {
    static const char msg[] = "thaw_init has not run";
    thaw_output_write(msg, sizeof msg - 1);
    return 1;
  }
  uint64_t sum = 0;
  for (uint32_t i = 0; i < BUFFER_BYTES / 4; i++) sum = sum * 31u + buffer[i];
  invocations++;
  char out[96];
  int n = snprintf(out, sizeof out, "checksum=%016llx input_len=%d", (unsigned long long)sum, (int)thaw_input_len());
  thaw_output_write(out, n);
  return 0;
}

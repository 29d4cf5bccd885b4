/* scaling-c: the memory scaling test and benchmark function. thaw_init keeps a 16 MiB buffer
 * filled with a deterministic pattern (what the guest keeps across invocations); each invocation
 * allocates the request's MiB count (the input is a decimal number, default 64), writes every
 * byte of it, checksums it and frees it (what the guest gives back), and replies
 * "kept=<checksum of the kept buffer> used=<MiB> sum=<checksum of the used region> pages=<memory pages>".
 * With the input "touch-freed" it instead writes into memory its allocator holds free (a
 * use-after-free the host cannot see) and replies what it then reads back there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "thaw.h"
#include "thaw_free_ranges.h"

#define KEPT_BYTES (16u * 1024u * 1024u)

static uint32_t *kept;
static volatile uint8_t *freed_region;

THAW_EXPORT("thaw_init") void thaw_init(void) {
  kept = malloc(KEPT_BYTES);
  if (kept == NULL) abort();
  uint32_t x = 0x2545f491u;
  for (uint32_t i = 0; i < KEPT_BYTES / 4; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    kept[i] = x;
  }
}

static uint64_t kept_sum(void) {
  uint64_t sum = 0;
  for (uint32_t i = 0; i < KEPT_BYTES / 4; i++) sum = sum * 31u + kept[i];
  return sum;
}

THAW_EXPORT("handle") int32_t handle(void) {
  char in[32] = {0};
  int32_t len = thaw_input_read(in, sizeof in - 1);
  char out[160];
  if (len >= 11 && memcmp(in, "touch-freed", 11) == 0) {
    /* Writes a mark into a region it freed in an earlier invocation, without allocating it. */
    if (freed_region == NULL) { thaw_output_write("no freed region yet", 19); return 1; }
    uint8_t before = freed_region[8192];
    freed_region[8192] = 0xA5;
    int n = snprintf(out, sizeof out, "before=%u after=%u", before, freed_region[8192]);
    thaw_output_write(out, n);
    return 0;
  }
  uint32_t mib = len > 0 ? (uint32_t)atoi(in) : 64u;
  if (kept == NULL || mib < 1 || mib > 3072) { thaw_output_write("bad input or no init", 20); return 1; }
  size_t bytes = (size_t)mib << 20;
  uint8_t *region = malloc(bytes);
  if (region == NULL) { thaw_output_write("out of memory", 13); return 1; }
  for (size_t i = 0; i < bytes; i++) region[i] = (uint8_t)(i * 7u + mib);
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes; i += 4096) sum = sum * 31u + region[i] + region[i + 4095];
  free(region);
  freed_region = region;
  int n = snprintf(out, sizeof out, "kept=%016llx used=%u sum=%016llx pages=%zu", (unsigned long long)kept_sum(), mib,
                   (unsigned long long)sum, (size_t)__builtin_wasm_memory_size(0));
  thaw_output_write(out, n);
  return 0;
}

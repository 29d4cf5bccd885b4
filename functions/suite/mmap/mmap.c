/* mmap (FaaSnap): grows linear memory by the input's size (512 MiB in the published inputs) with
 * one big malloc and writes one byte per stride (4 KiB), so every page of the new region is
 * touched. Input object: {"size_mib": 512, "stride_bytes": 4096}. Output object: the reply's
 * summary as JSON. WebAssembly memory cannot shrink: the region is freed back to malloc after
 * the request, so a warm sandbox reuses the memory its first request grew. */
#include "suite.h"

static uint32_t invocations;

THAW_EXPORT("handle") int32_t handle(void) {
  suite_event ev;
  if (suite_read_event(&ev) != 0) return suite_fail("request must be {\"input\": key, \"output\": key}");

  double t0 = suite_now();
  int32_t len;
  uint8_t *in = suite_read_object(ev.input, &len);
  if (in == NULL) return suite_fail_read(&ev, len);
  double size_mib = 0, stride = 0;
  int ok = suite_json_number((const char *)in, (size_t)len, "size_mib", &size_mib) == 0 &&
           suite_json_number((const char *)in, (size_t)len, "stride_bytes", &stride) == 0;
  free(in);
  if (!ok || size_mib < 1 || size_mib > 3072 || stride < 1) return suite_fail("input must be {\"size_mib\": 1..3072, \"stride_bytes\": >= 1}");
  double t1 = suite_now();

  size_t size_bytes = (size_t)size_mib << 20;
  size_t stride_bytes = (size_t)stride;
  size_t pages_before = __builtin_wasm_memory_size(0);
  volatile uint8_t *region = malloc(size_bytes);
  if (region == NULL) return suite_fail("out of memory: cannot allocate the region");
  size_t pages_after = __builtin_wasm_memory_size(0);
  invocations++;
  uint8_t mark = (uint8_t)(invocations | 1);
  uint32_t touched = 0;
  for (size_t i = 0; i < size_bytes; i += stride_bytes) {
    region[i] = mark;
    touched++;
  }
  /* Read back a few touched bytes so the writes cannot be elided. */
  uint32_t seen = region[0] + region[size_bytes / 2 - (size_bytes / 2) % stride_bytes];
  free((void *)region);
  double t2 = suite_now();

  char summary[320];
  snprintf(summary, sizeof summary,
           "{\"size_bytes\":%zu,\"stride_bytes\":%zu,\"touched_pages\":%u,\"grown_wasm_pages\":%zu,\"memory_wasm_pages\":%zu,\"mark_sum\":%u}",
           size_bytes, stride_bytes, touched, pages_after - pages_before, pages_after, seen);
  suite_write_object(ev.output, summary, strlen(summary));
  double t3 = suite_now();
  return suite_reply(&ev, t1 - t0, t2 - t1, t3 - t2, summary);
}

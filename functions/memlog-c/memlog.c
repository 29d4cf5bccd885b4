/* memlog-c: mem64-c's shape (init fills 64 MiB, every request reads all of it and replies with its
 * checksum) with a heap that compresses: 64 MiB of access-log lines (fixed-width fields, a few
 * paths and levels, varying ids, times and sizes), as an in-memory log buffer or cache of text
 * holds. lz4 makes about a third of it, page by page; mem64-c's random words do not compress. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "thaw.h"

#define BUFFER_BYTES (64u * 1024u * 1024u)

static char *buffer;

static const char *const PATHS[] = { "/api/v1/items", "/api/v1/users", "/static/app.js", "/health", "/api/v1/orders", "/login" };
static const char *const LEVELS[] = { "INFO ", "INFO ", "INFO ", "WARN ", "DEBUG" };

static char *digits(char *p, uint32_t v, int width) {
  for (int i = width - 1; i >= 0; i--) { p[i] = (char)('0' + v % 10); v /= 10; }
  return p + width;
}

static char *text(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return p + n;
}

THAW_EXPORT("thaw_init") void thaw_init(void) {
  buffer = malloc(BUFFER_BYTES);
  if (buffer == NULL) abort();
  uint32_t x = 0x9e3779b9u, t = 0;
  char *p = buffer, *end = buffer + BUFFER_BYTES;
  char line[128];
  while (p < end) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5; /* xorshift32 */
    t += x % 7;
    char *q = text(line, "2026-12-02T");
    q = digits(q, 10 + t / 3600000 % 14, 2); *q++ = ':';
    q = digits(q, t / 60000 % 60, 2); *q++ = ':';
    q = digits(q, t / 1000 % 60, 2); *q++ = '.';
    q = digits(q, t % 1000, 3);
    q = text(q, "Z ");
    q = text(q, LEVELS[x % 5]);
    q = text(q, " GET ");
    q = text(q, PATHS[(x >> 3) % 6]);
    q = text(q, "/");
    q = digits(q, (x >> 8) % 10000, 4);
    q = text(q, " status=200 bytes=");
    q = digits(q, (x >> 12) % 5000, 5);
    q = text(q, " ms=");
    q = digits(q, (x >> 20) % 300, 3);
    *q++ = '\n';
    size_t n = (size_t)(q - line);
    if (n > (size_t)(end - p)) n = (size_t)(end - p);
    memcpy(p, line, n);
    p += n;
  }
}

THAW_EXPORT("handle") int32_t handle(void) {
  if (buffer == NULL) {
    static const char msg[] = "thaw_init has not run";
    thaw_output_write(msg, sizeof msg - 1);
    return 1;
  }
  const uint32_t *words = (const uint32_t *)buffer;
  uint64_t sum = 0;
  for (uint32_t i = 0; i < BUFFER_BYTES / 4; i++) sum = sum * 31u + words[i];
  char out[96];
  int n = snprintf(out, sizeof out, "checksum=%016llx input_len=%d", (unsigned long long)sum, (int)thaw_input_len());
  thaw_output_write(out, n);
  return 0;
}

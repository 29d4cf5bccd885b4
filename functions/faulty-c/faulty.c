/* faulty-c: the test fixture of the wasi runtime; misbehaves on purpose to show how failures
 * surface. Input "trap" executes an unreachable instruction, "oom" allocates until memory runs
 * out, "spin" loops forever (for timeouts), "fail" returns a function error, "copy:<key>" copies object <key> to <key>.copy and
 * replies with its length (or "missing"); anything else is echoed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "thaw.h"

static volatile char *sink;

static int input_is(const char *buf, int32_t len, const char *word) {
  return (size_t)len == strlen(word) && memcmp(buf, word, (size_t)len) == 0;
}

THAW_EXPORT("handle") int32_t handle(void) {
  char buf[64];
  int32_t len = thaw_input_read(buf, sizeof buf);
  if (input_is(buf, len, "trap")) __builtin_trap();
  if (input_is(buf, len, "oom")) {
    for (;;) {
      char *p = malloc(1 << 20);
      if (p == NULL) abort(); /* wasi-libc's abort is a trap: the host sees an exhausted memory */
      p[0] = 1;
      sink = p;
    }
  }
  if (input_is(buf, len, "spin")) {
    for (;;) sink = (char *)sink + 1;
  }
  if (input_is(buf, len, "fail")) {
    static const char msg[] = "asked to fail";
    thaw_output_write(msg, sizeof msg - 1);
    return 7;
  }
  if (len > 5 && memcmp(buf, "copy:", 5) == 0) {
    const char *key = buf + 5;
    int32_t key_len = len - 5;
    char reply[32];
    int32_t size = thaw_object_len(key, key_len);
    if (size < 0) {
      thaw_output_write("missing", 7);
      return 0;
    }
    char *value = malloc((size_t)size + 1);
    int32_t got = thaw_object_read(key, key_len, value, size);
    char copy_key[64 + 5];
    memcpy(copy_key, key, (size_t)key_len);
    memcpy(copy_key + key_len, ".copy", 5);
    if (thaw_object_write(copy_key, key_len + 5, value, got) != 0) return 2;
    free(value);
    thaw_output_write(reply, snprintf(reply, sizeof reply, "%d", (int)got));
    return 0;
  }
  thaw_output_write(buf, len);
  return 0;
}

/* hello-c: replies "hello, <input>"; prints one line to stdout so log capture is visible. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "thaw.h"

static const char greeting[] = "hello, ";

THAW_EXPORT("handle") int32_t handle(void) {
  int32_t len = thaw_input_len();
  char *buf = malloc((size_t)len + 1);
  if (buf == NULL) return 1;
  int32_t got = thaw_input_read(buf, len);
  thaw_output_write(greeting, (int32_t)strlen(greeting));
  thaw_output_write(buf, got);
  printf("hello-c: greeted %d bytes\n", (int)got);
  fflush(stdout);
  free(buf);
  return 0;
}

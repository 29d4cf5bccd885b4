// A WASI command prepared by Wizer's convention: `wizer.initialize` runs once (building a table
// and counting its own runs), and every invocation's `_start` starts from the state it left.
// Prints the number of times init ran (1 in every invocation, cold, warm or restored), a value
// from the table, and how many invocations this instance has seen (always 1: fresh instances).
#include <stdio.h>

static unsigned table[1024];
static int init_runs;
static int invocations;

__attribute__((export_name("wizer.initialize"))) void wizer_initialize(void) {
  for (unsigned i = 0; i < 1024; i++) table[i] = i * i + 7;
  init_runs++;
}

int main(void) {
  invocations++;
  char input[64] = {0};
  unsigned at = 0;
  if (fgets(input, sizeof input, stdin)) sscanf(input, "%u", &at);
  printf("init runs %d, table[%u] = %u, invocations %d\n", init_runs, at % 1024, table[at % 1024], invocations);
  return 0;
}

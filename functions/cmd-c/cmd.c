// A WASI command (exports _start): the request arrives on stdin, the response goes to stdout.
// It prints its args and one environment variable, a file of its read-only bundle directory
// (/data), writes and reads back a file in its scratch directory (/scratch), and exits with the
// code given by an input line "exit <n>" (writing "failing on purpose" to stderr first).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int scratch_roundtrip(const char *input) {
  FILE *seen = fopen("/scratch/left-over", "r"); // an earlier invocation's file must not be here
  if (seen) { fclose(seen); printf("scratch: left over\n"); return 1; }
  FILE *f = fopen("/scratch/left-over", "w");
  if (!f) { printf("scratch: cannot write\n"); return 1; }
  fputs(input, f);
  fclose(f);
  char back[256] = {0};
  f = fopen("/scratch/left-over", "r");
  size_t n = f ? fread(back, 1, sizeof back - 1, f) : 0;
  if (f) fclose(f);
  printf("scratch: %zu bytes back\n", n);
  return 0;
}

int main(int argc, char **argv) {
  char input[4096];
  size_t len = fread(input, 1, sizeof input - 1, stdin);
  input[len] = 0;
  if (strncmp(input, "exit ", 5) == 0) {
    fprintf(stderr, "failing on purpose\n");
    return atoi(input + 5);
  }
  printf("input: %s\n", input);
  for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
  const char *greeting = getenv("GREETING");
  printf("env GREETING: %s\n", greeting ? greeting : "(unset)");
  FILE *data = fopen("/data/motd.txt", "r");
  char motd[256] = {0};
  if (data) { fgets(motd, sizeof motd, data); fclose(data); }
  printf("data: %s", data ? motd : "(missing)\n");
  FILE *w = fopen("/data/motd.txt", "a");
  printf("data writable: %s\n", w ? "yes" : "no");
  if (w) fclose(w);
  return scratch_roundtrip(input);
}

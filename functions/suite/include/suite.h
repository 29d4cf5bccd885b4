/* What every C suite function shares (src/suite/suite.ts is the contract): the request event
 * {"input": key, "output": key}, the clock behind read_s / process_s / write_s, whole-object
 * reads and writes, small JSON number lookups and the reply
 * {"read_s","process_s","write_s","output_key","summary":{...}}. Header-only: each function is
 * one translation unit. */
#ifndef SUITE_H
#define SUITE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "thaw.h"
#include "thaw_free_ranges.h"

#define SUITE_KEY_MAX 256

/** The request: which object to read and which to write. Keys are NUL-terminated. */
typedef struct {
  char input[SUITE_KEY_MAX];
  char output[SUITE_KEY_MAX];
} suite_event;

/** Seconds on the monotonic clock (node:wasi serves clock_time_get from the host's hrtime). */
static inline double suite_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/** Ends the invocation as a function error: writes msg as the output and returns status 1. */
static inline int32_t suite_fail(const char *msg) {
  thaw_output_write(msg, (int32_t)strlen(msg));
  return 1;
}

/**
 * Finds the string value of "name" in a flat JSON object (no escapes in keys or values: object
 * keys never need them). Copies it NUL-terminated to out. Returns 0, or -1 when absent/too long.
 */
static inline int suite_json_string(const char *json, size_t len, const char *name, char *out, size_t out_size) {
  size_t name_len = strlen(name);
  for (size_t i = 0; i + name_len + 2 <= len; i++) {
    if (json[i] != '"' || memcmp(json + i + 1, name, name_len) != 0 || json[i + 1 + name_len] != '"') continue;
    size_t j = i + name_len + 2;
    while (j < len && (json[j] == ' ' || json[j] == ':' || json[j] == '\t' || json[j] == '\n')) j++;
    if (j >= len || json[j] != '"') return -1;
    size_t start = ++j;
    while (j < len && json[j] != '"') j++;
    if (j >= len || j - start >= out_size) return -1;
    memcpy(out, json + start, j - start);
    out[j - start] = '\0';
    return 0;
  }
  return -1;
}

/** Finds the number value of "name" in a flat JSON object. Returns 0, or -1 when absent. */
static inline int suite_json_number(const char *json, size_t len, const char *name, double *out) {
  size_t name_len = strlen(name);
  for (size_t i = 0; i + name_len + 2 <= len; i++) {
    if (json[i] != '"' || memcmp(json + i + 1, name, name_len) != 0 || json[i + 1 + name_len] != '"') continue;
    size_t j = i + name_len + 2;
    while (j < len && (json[j] == ' ' || json[j] == ':' || json[j] == '\t' || json[j] == '\n')) j++;
    char buf[64];
    size_t k = 0;
    while (j < len && k + 1 < sizeof buf && strchr("+-.0123456789eE", json[j]) != NULL) buf[k++] = json[j++];
    if (k == 0) return -1;
    buf[k] = '\0';
    *out = strtod(buf, NULL);
    return 0;
  }
  return -1;
}

/** Reads the request body and takes "input" and "output" from it. Returns 0, or -1 when malformed. */
static inline int suite_read_event(suite_event *ev) {
  char body[1024];
  int32_t len = thaw_input_len();
  if (len <= 0 || len >= (int32_t)sizeof body) return -1;
  int32_t got = 0;
  while (got < len) {
    int32_t n = thaw_input_read(body + got, len - got);
    if (n <= 0) break;
    got += n;
  }
  if (suite_json_string(body, (size_t)got, "input", ev->input, sizeof ev->input) != 0) return -1;
  if (suite_json_string(body, (size_t)got, "output", ev->output, sizeof ev->output) != 0) return -1;
  return 0;
}

/**
 * Reads the whole object `key` into a malloc'd buffer (one spare zero byte after the end, so a
 * JSON object can be scanned as a string). The caller owns and frees it. Returns NULL when the
 * object is missing or memory runs out; *len_bytes gets -1 for missing, -2 for no memory.
 */
static inline uint8_t *suite_read_object(const char *key, int32_t *len_bytes) {
  int32_t key_len = (int32_t)strlen(key);
  int32_t len = thaw_object_len(key, key_len);
  if (len < 0) {
    *len_bytes = -1;
    return NULL;
  }
  uint8_t *buf = malloc((size_t)len + 1);
  if (buf == NULL) {
    *len_bytes = -2;
    return NULL;
  }
  int32_t got = thaw_object_read(key, key_len, buf, len);
  if (got != len) {
    free(buf);
    *len_bytes = -1;
    return NULL;
  }
  buf[len] = 0;
  *len_bytes = len;
  return buf;
}

/** Stores len bytes at data as object `key`. Returns 0. */
static inline int32_t suite_write_object(const char *key, const void *data, size_t len) {
  return thaw_object_write(key, (int32_t)strlen(key), data, (int32_t)len);
}

/** Fails the invocation naming the input object that could not be read. */
static inline int32_t suite_fail_read(const suite_event *ev, int32_t len_bytes) {
  char msg[SUITE_KEY_MAX + 64];
  snprintf(msg, sizeof msg, len_bytes == -2 ? "out of memory reading object '%s'" : "object '%s' not found", ev->input);
  return suite_fail(msg);
}

/** Writes the reply; summary_json is the text of a JSON object. Returns status 0. */
static inline int32_t suite_reply(const suite_event *ev, double read_s, double process_s, double write_s, const char *summary_json) {
  char head[SUITE_KEY_MAX + 160];
  int n = snprintf(head, sizeof head, "{\"read_s\":%.9f,\"process_s\":%.9f,\"write_s\":%.9f,\"output_key\":\"%s\",\"summary\":",
                   read_s, process_s, write_s, ev->output);
  thaw_output_write(head, n);
  thaw_output_write(summary_json, (int32_t)strlen(summary_json));
  thaw_output_write("}", 1);
  return 0;
}

#endif

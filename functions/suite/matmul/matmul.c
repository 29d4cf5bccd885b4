/* matmul (FaaSnap): multiplies two n x n double matrices. As the original (numpy.random.rand
 * inside the function), the matrices are generated in the request from a seeded PRNG
 * (include/prng.h); the input object holds only {"n": 1200, "seed": 1}. process_s covers
 * generation and multiplication; the summary has the multiplication alone as multiply_s.
 * Output object: C as n*n little-endian doubles, row-major. */
#include "suite.h"
#include "prng.h"

/* Cache blocks: a KB x JB block of B (256 KiB) stays in L2 while every row of A passes over it.
 * Each C[i][j] still sums its products in increasing k, with no fused multiply-add, so the
 * result is bit for bit the naive triple loop's. */
#define KB 128
#define JB 256

static void multiply(const double *a, const double *b, double *c, size_t n) {
  memset(c, 0, n * n * sizeof *c);
  for (size_t jj = 0; jj < n; jj += JB) {
    size_t jn = n - jj < JB ? n - jj : JB;
    for (size_t kk = 0; kk < n; kk += KB) {
      size_t kn = n - kk < KB ? n - kk : KB;
      size_t i = 0;
      /* Four rows of C at a time: each loaded element of B serves four products. */
      for (; i + 4 <= n; i += 4) {
        double *restrict c0 = c + i * n + jj, *restrict c1 = c0 + n, *restrict c2 = c1 + n, *restrict c3 = c2 + n;
        const double *a0 = a + i * n + kk, *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n;
        for (size_t k = 0; k < kn; k++) {
          double x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
          const double *restrict bk = b + (kk + k) * n + jj;
          for (size_t j = 0; j < jn; j++) {
            double bv = bk[j];
            c0[j] += x0 * bv;
            c1[j] += x1 * bv;
            c2[j] += x2 * bv;
            c3[j] += x3 * bv;
          }
        }
      }
      for (; i < n; i++) {
        double *restrict ci = c + i * n + jj;
        const double *ai = a + i * n + kk;
        for (size_t k = 0; k < kn; k++) {
          double aik = ai[k];
          const double *restrict bk = b + (kk + k) * n + jj;
          for (size_t j = 0; j < jn; j++) ci[j] += aik * bk[j];
        }
      }
    }
  }
}

THAW_EXPORT("handle") int32_t handle(void) {
  suite_event ev;
  if (suite_read_event(&ev) != 0) return suite_fail("request must be {\"input\": key, \"output\": key}");

  double t0 = suite_now();
  int32_t len;
  uint8_t *in = suite_read_object(ev.input, &len);
  if (in == NULL) return suite_fail_read(&ev, len);
  double nd = 0, seedd = 0;
  int ok = suite_json_number((const char *)in, (size_t)len, "n", &nd) == 0 &&
           suite_json_number((const char *)in, (size_t)len, "seed", &seedd) == 0;
  free(in);
  if (!ok || nd < 1 || nd > 4096 || seedd < 0 || seedd > 4294967295.0) return suite_fail("input must be {\"n\": 1..4096, \"seed\": u32}");
  double t1 = suite_now();

  size_t n = (size_t)nd;
  double *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b), *c = malloc(n * n * sizeof *c);
  if (a == NULL || b == NULL || c == NULL) return suite_fail("out of memory: cannot allocate the matrices");
  prng rng;
  prng_seed(&rng, (uint32_t)seedd);
  for (size_t i = 0; i < n * n; i++) a[i] = prng_double(&rng);
  for (size_t i = 0; i < n * n; i++) b[i] = prng_double(&rng);
  double tm = suite_now();
  multiply(a, b, c, n);
  double checksum = 0;
  for (size_t i = 0; i < n * n; i++) checksum += c[i];
  double t2 = suite_now();

  suite_write_object(ev.output, c, n * n * sizeof *c);
  double t3 = suite_now();
  free(a);
  free(b);
  free(c);
  char summary[256];
  snprintf(summary, sizeof summary, "{\"n\":%zu,\"seed\":%u,\"checksum\":%.17g,\"multiply_s\":%.9f}", n, (uint32_t)seedd, checksum, t2 - tm);
  return suite_reply(&ev, t1 - t0, t2 - t1, t3 - t2, summary);
}

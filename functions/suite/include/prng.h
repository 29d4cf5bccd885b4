/* The suite's seeded PRNG, bit for bit the same as src/suite/inputs/prng.ts: xoshiro128**
 * seeded through splitmix32, doubles in [0, 1) from 53 random bits. */
#ifndef SUITE_PRNG_H
#define SUITE_PRNG_H
#include <stdint.h>

typedef struct {
  uint32_t s[4];
} prng;

static inline uint32_t prng_rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static inline void prng_seed(prng *p, uint32_t seed) {
  uint32_t x = seed;
  for (int i = 0; i < 4; i++) {
    x += 0x9e3779b9u;
    uint32_t z = x;
    z = (z ^ (z >> 16)) * 0x21f0aaadu;
    z = (z ^ (z >> 15)) * 0x735a2d97u;
    p->s[i] = z ^ (z >> 15);
  }
}

static inline uint32_t prng_u32(prng *p) {
  uint32_t *s = p->s;
  uint32_t result = prng_rotl(s[1] * 5u, 7) * 9u;
  uint32_t t = s[1] << 9;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = prng_rotl(s[3], 11);
  return result;
}

/* 27 + 26 high bits of two draws, exactly as the TypeScript side combines them. */
static inline double prng_double(prng *p) {
  uint32_t a = prng_u32(p) >> 5, b = prng_u32(p) >> 6;
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

#endif

// The seeded PRNG of the C suite functions' inputs, bit for bit the same as
// functions/suite/include/prng.h, so the matmul function and its check draw the same matrices.

/** xoshiro128** seeded through splitmix32; 32-bit arithmetic only, so C and TypeScript agree. */
export class Prng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** @param seed an unsigned 32-bit integer; equal seeds give equal sequences. */
  constructor(seed: number) {
    let x = seed >>> 0;
    const state: number[] = [];
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      state.push((z ^ (z >>> 15)) >>> 0);
    }
    [this.s0, this.s1, this.s2, this.s3] = state as [number, number, number, number];
  }

  /** Next unsigned 32-bit integer. */
  u32(): number {
    const rotl = (v: number, k: number): number => ((v << k) | (v >>> (32 - k))) >>> 0;
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) from 53 random bits (27 + 26 high bits of two draws, as prng.h). */
  double(): number {
    const a = this.u32() >>> 5;
    const b = this.u32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n), n <= 2^32. */
  int(n: number): number {
    return Math.floor(this.double() * n);
  }
}

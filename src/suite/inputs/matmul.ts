// Inputs of the suite function "matmul" ({"n", "seed"}) and the naive reference product the
// check compares against. The matrices come from the same PRNG as the C function (prng.ts).

import { Prng } from './prng.js';

/** What the matmul function multiplies: two n x n matrices drawn from seed. */
export interface MatmulParams {
  readonly n: number;
  readonly seed: number;
}

/** The input object: {"n": ..., "seed": ...}. */
export function matmulInput(params: MatmulParams): Uint8Array {
  return Buffer.from(JSON.stringify({ n: params.n, seed: params.seed }), 'utf8');
}

/** Reads an input object back. Throws when it is not one. */
export function parseMatmulInput(bytes: Uint8Array): MatmulParams {
  const raw = JSON.parse(Buffer.from(bytes).toString('utf8')) as { n?: unknown; seed?: unknown };
  if (typeof raw.n !== 'number' || typeof raw.seed !== 'number') throw new Error('matmul input needs n and seed');
  return { n: raw.n, seed: raw.seed };
}

/** A then B, row-major, drawn in that order exactly as functions/suite/matmul/matmul.c does. */
export function matmulMatrices(params: MatmulParams): { a: Float64Array; b: Float64Array } {
  const rng = new Prng(params.seed);
  const size = params.n * params.n;
  const a = new Float64Array(size);
  const b = new Float64Array(size);
  for (let i = 0; i < size; i++) a[i] = rng.double();
  for (let i = 0; i < size; i++) b[i] = rng.double();
  return { a, b };
}

/** Rows `rows` of A x B by the naive triple loop (sums in increasing k). */
export function naiveProductRows(a: Float64Array, b: Float64Array, n: number, rows: readonly number[]): Float64Array {
  const out = new Float64Array(rows.length * n);
  rows.forEach((i, r) => {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += a[i * n + k]! * b[k * n + j]!;
      out[r * n + j] = s;
    }
  });
  return out;
}

// Shared machinery of the *.fuzz.test.ts property tests: run sizes and seeds (fixed and small
// in `npm test`, scaled and random under `npm run fuzz`), byte mutators for decoders of
// untrusted files, and the decoder property itself (a ThawError with an expected code, or a value).

import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { ThawError, type ErrorCode } from '../../core/errors.js';

/**
 * Whether this is a long run (`npm run fuzz`): FUZZ_RUNS or FUZZ_SECONDS set. Otherwise each
 * property runs a fixed number of cases from a seed derived from its name, so `npm test` is
 * deterministic and bounded.
 */
export const LONG_RUN = process.env.FUZZ_RUNS !== undefined || process.env.FUZZ_SECONDS !== undefined;

function seedOf(name: string): number {
  return crc32(Buffer.from(name)) | 0;
}

/**
 * fast-check parameters for property `name`. In CI: `ciRuns` cases, seed fixed by the name.
 * Long runs: FUZZ_RUNS cases and/or FUZZ_SECONDS per property, random seed printed to stderr
 * (replay a failure with FUZZ_SEED=<seed>, and FUZZ_PATH=<path> from fast-check's report).
 */
export function fuzzParams<T>(name: string, ciRuns: number): fc.Parameters<T> {
  if (!LONG_RUN && process.env.FUZZ_SEED === undefined) return { seed: seedOf(name), numRuns: ciRuns, includeErrorInReport: true };
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Math.random() * 2 ** 31) | 0;
  const runs = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : undefined;
  const seconds = process.env.FUZZ_SECONDS !== undefined ? Number(process.env.FUZZ_SECONDS) : undefined;
  process.stderr.write(`fuzz ${name}: seed=${seed}${runs !== undefined ? ` runs=${runs}` : ''}${seconds !== undefined ? ` seconds=${seconds}` : ''}\n`);
  return {
    seed,
    includeErrorInReport: true,
    numRuns: runs ?? (seconds !== undefined ? Number.MAX_SAFE_INTEGER : ciRuns),
    ...(seconds !== undefined ? { interruptAfterTimeLimit: seconds * 1000 } : {}),
    ...(process.env.FUZZ_PATH !== undefined ? { path: process.env.FUZZ_PATH } : {}),
  };
}

/** Runs a synchronous property with fuzzParams(name, ciRuns). */
export function check<Ts extends [unknown, ...unknown[]]>(name: string, ciRuns: number, ...args: [...arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, predicate: (...a: Ts) => void]): void {
  fc.assert(fc.property(...(args as Parameters<typeof fc.property<Ts>>)), fuzzParams(name, ciRuns));
}

/** Runs an asynchronous property with fuzzParams(name, ciRuns). */
export async function checkAsync<Ts extends [unknown, ...unknown[]]>(name: string, ciRuns: number, ...args: [...arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, predicate: (...a: Ts) => Promise<void>]): Promise<void> {
  await fc.assert(fc.asyncProperty(...(args as Parameters<typeof fc.asyncProperty<Ts>>)), fuzzParams(name, ciRuns));
}

/** Most time one decoder call may take. Decoders here are linear in their input: a call this slow is a hang in the making. */
const CALL_BUDGET_MS = 2_000;

/** What a decoder call did: returned `value`, or threw the ThawError `error`. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ThawError };

/**
 * The decoder property. Runs `fn` and requires that it either returns or throws a ThawError
 * whose code is in `codes` (a TypeError, RangeError, plain Error or another code fails), that it
 * finishes within CALL_BUDGET_MS, and that no single Buffer allocation during the call exceeds
 * `maxAllocBytes` (a length field trusted before it is checked shows up here, or as a RangeError).
 */
export function decodes<T>(codes: readonly ErrorCode[], maxAllocBytes: number, fn: () => T): Outcome<T> {
  const t0 = performance.now();
  const { result, largest } = trackAllocations(() => {
    try {
      return { ok: true as const, value: fn() };
    } catch (err: unknown) {
      return { ok: false as const, err };
    }
  });
  const elapsed = performance.now() - t0;
  assert.ok(elapsed < CALL_BUDGET_MS, `decoder call took ${elapsed.toFixed(0)} ms`);
  return outcome(codes, maxAllocBytes, largest, result);
}

/** The async form of decodes() (time and allocations are measured across awaits, so keep the rest of the process quiet). */
export async function decodesAsync<T>(codes: readonly ErrorCode[], maxAllocBytes: number, fn: () => Promise<T>): Promise<Outcome<T>> {
  let largest = 0;
  const restore = patchAllocations((n) => { largest = Math.max(largest, n); });
  let result: { ok: true; value: T } | { ok: false; err: unknown };
  try {
    result = { ok: true, value: await fn() };
  } catch (err: unknown) {
    result = { ok: false, err };
  } finally {
    restore();
  }
  return outcome(codes, maxAllocBytes, largest, result);
}

/** Checks one decoder call's result and allocations (see decodes()). */
function outcome<T>(codes: readonly ErrorCode[], maxAllocBytes: number, largest: number, result: { ok: true; value: T } | { ok: false; err: unknown }): Outcome<T> {
  assert.ok(largest <= maxAllocBytes, `decoder allocated a ${largest}-byte buffer (limit ${maxAllocBytes})`);
  if (result.ok) return result;
  const err = result.err;
  if (!(err instanceof ThawError)) throw new assert.AssertionError({ message: `decoder threw a non-ThawError: ${String(err)}${err instanceof Error ? `\n${err.stack}` : ''}` });
  assert.ok(codes.includes(err.code), `decoder threw ${err.code} (${err.message}), expected one of ${codes.join(', ')}`);
  return { ok: false, error: err };
}

type AllocFn = (size: number, ...rest: unknown[]) => Buffer;

/** Wraps Buffer.alloc/allocUnsafe/allocUnsafeSlow to report every requested size; returns the undo. */
function patchAllocations(report: (bytes: number) => void): () => void {
  const names = ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const;
  const saved = names.map((n) => Buffer[n] as AllocFn);
  names.forEach((n, i) => {
    const original = saved[i]!;
    (Buffer as unknown as Record<string, AllocFn>)[n] = (size: number, ...rest: unknown[]): Buffer => {
      if (typeof size === 'number') report(size);
      return original.call(Buffer, size, ...rest);
    };
  });
  return () => names.forEach((n, i) => { (Buffer as unknown as Record<string, AllocFn>)[n] = saved[i]!; });
}

function trackAllocations<T>(fn: () => T): { result: T; largest: number } {
  let largest = 0;
  const restore = patchAllocations((n) => { largest = Math.max(largest, n); });
  try {
    return { result: fn(), largest };
  } finally {
    restore();
  }
}

/** One mutation of an encoding. Offsets are taken modulo the current length. */
export type Mutation =
  | { readonly t: 'flip'; readonly at: number; readonly bit: number }
  | { readonly t: 'set'; readonly at: number; readonly value: number }
  | { readonly t: 'u32'; readonly at: number; readonly value: number }
  | { readonly t: 'f64'; readonly at: number; readonly value: number }
  | { readonly t: 'truncate'; readonly at: number }
  | { readonly t: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly t: 'delete'; readonly at: number; readonly len: number }
  | { readonly t: 'splice'; readonly at: number; readonly from: number; readonly start: number; readonly len: number }
  | { readonly t: 'dup'; readonly at: number; readonly len: number };

/** Lengths and counts that break careless decoders: zero, one, sign and size boundaries. */
export const INTERESTING_U32 = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xfff, 0x1000, 0xffff, 0x10000, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];
const INTERESTING_F64 = [NaN, Infinity, -Infinity, -1, -0, 0.5, 2 ** 53, 2 ** 64, 1e300, Number.MIN_VALUE];

/** Offsets biased towards the start, where headers, counts and lengths live. */
const offset = fc.oneof(fc.nat(64), fc.nat(1 << 20));

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ t: fc.constant('flip' as const), at: offset, bit: fc.nat(7) }),
  fc.record({ t: fc.constant('set' as const), at: offset, value: fc.nat(255) }),
  fc.record({ t: fc.constant('u32' as const), at: offset, value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat()) }),
  fc.record({ t: fc.constant('f64' as const), at: offset, value: fc.oneof(fc.constantFrom(...INTERESTING_F64), fc.double()) }),
  fc.record({ t: fc.constant('truncate' as const), at: offset }),
  fc.record({ t: fc.constant('insert' as const), at: offset, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ t: fc.constant('delete' as const), at: offset, len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ t: fc.constant('splice' as const), at: offset, from: fc.nat(), start: offset, len: fc.integer({ min: 1, max: 256 }) }),
  fc.record({ t: fc.constant('dup' as const), at: offset, len: fc.integer({ min: 1, max: 64 }) }),
);

/** A mutated encoding: which seed, which mutations, and whether checksums are recomputed afterwards. */
export interface MutationPlan {
  readonly seed: number;
  readonly mutations: readonly Mutation[];
  /** Recompute the format's checksums after mutating, so the mutation reaches the parser behind them. */
  readonly fixChecksums: boolean;
}

export const mutationPlanArb: fc.Arbitrary<MutationPlan> = fc.record({
  seed: fc.nat(),
  mutations: fc.array(mutationArb, { minLength: 1, maxLength: 6 }),
  fixChecksums: fc.boolean(),
});

/** Applies `mutations` to a copy of `seeds[plan.seed % n]` (splices copy from the other seeds). */
export function mutate(seeds: readonly Uint8Array[], mutations: readonly Mutation[], seedIndex: number): Buffer {
  let buf = Buffer.from(seeds[seedIndex % seeds.length]!);
  for (const m of mutations) {
    const len = buf.length;
    const at = len === 0 ? 0 : m.at % len;
    switch (m.t) {
      case 'flip': if (len > 0) buf[at]! ^= 1 << m.bit; break;
      case 'set': if (len > 0) buf[at] = m.value; break;
      case 'u32': if (len >= 4) buf.writeUInt32LE(m.value >>> 0, Math.min(at, len - 4)); break;
      case 'f64': if (len >= 8) buf.writeDoubleLE(m.value, Math.min(at, len - 8)); break;
      case 'truncate': buf = buf.subarray(0, at); break;
      case 'insert': buf = Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]); break;
      case 'delete': buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.len)]); break;
      case 'splice': {
        const other = seeds[m.from % seeds.length]!;
        const start = other.length === 0 ? 0 : m.start % other.length;
        buf = Buffer.concat([buf.subarray(0, at), other.subarray(start, start + m.len), buf.subarray(at + m.len)]);
        break;
      }
      case 'dup': buf = Buffer.concat([buf.subarray(0, at + m.len), buf.subarray(at, at + m.len), buf.subarray(at + m.len)]); break;
    }
  }
  return Buffer.from(buf);
}

/** Rewrites the trailing CRC-32 of `buf` over the `end - 4` bytes before it (formats whose checksum sits at `end - 4`). */
export function fixTrailingCrc(buf: Buffer, end = buf.length): void {
  if (end >= 4 && end <= buf.length) buf.writeUInt32LE(crc32(buf.subarray(0, end - 4)), end - 4);
}

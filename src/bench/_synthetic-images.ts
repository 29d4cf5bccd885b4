// Synthetic snapshot images for the restore benchmark: a memory of a given size with dense or
// zero-heavy contents and a working set (a share of its pages, walked sequentially or scattered),
// written with writeSnapshot like any snapshot the platform takes.

import { PAGE_BYTES, type SnapshotMeta, type SnapshotState } from '../core/snapshot-format.js';
import { readChain, writeSnapshot } from '../snapshot/snapshot-io.js';
import type { TouchPlan } from './_guest-toucher.js';

/** One benchmark scenario: an image and how its guest touches it. Its id is stable. */
export interface Scenario {
  readonly id: string;
  readonly sizeBytes: number;
  /** Share of the memory's pages the guest touches, in percent. */
  readonly workingSetPct: number;
  readonly order: 'seq' | 'rand';
  /** dense: every page holds data; zero: three pages in four are zero (holes in the image). */
  readonly content: 'dense' | 'zero';
  readonly write: boolean;
}

/** The scenarios of a run: every combination of the given dimensions. */
export function scenarios(sizeBytes: number, workingSetPcts: readonly number[], orders: readonly Scenario['order'][],
  contents: readonly Scenario['content'][], write: boolean): Scenario[] {
  const out: Scenario[] = [];
  for (const workingSetPct of workingSetPcts) {
    for (const order of orders) {
      for (const content of contents) {
        out.push({ id: `ws${workingSetPct}-${order}-${content}`, sizeBytes, workingSetPct, order, content, write });
      }
    }
  }
  return out;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** How the guest of `s` walks its working set. */
export function touchPlan(s: Scenario): TouchPlan {
  const pages = s.sizeBytes / PAGE_BYTES;
  const count = Math.max(1, Math.round((pages * s.workingSetPct) / 100));
  if (s.order === 'seq') return { count, pages, mul: 1, add: Math.floor(pages / 16), write: s.write };
  let mul = 2654435761; // Knuth's multiplicative constant: odd, scatters consecutive i widely
  while (gcd(mul % pages, pages) !== 1) mul += 2;
  return { count, pages, mul, add: 12345 % pages, write: s.write };
}

/**
 * The memory of `s`, deterministic: half the dense pages hold pointer-like words (a base plus one
 * of 64 small offsets, every fourth word zero: lz4 about 2-3x) and half random words; zero-heavy memory
 * keeps one page in four (the others are holes). Word 0 of every data page is non-zero.
 */
export function syntheticMemory(s: Scenario): Uint8Array {
  const memory = new Uint8Array(s.sizeBytes);
  const words = new Uint32Array(memory.buffer);
  const perPage = PAGE_BYTES / 4;
  let x = 0x9e3779b9;
  for (let p = 0; p < s.sizeBytes / PAGE_BYTES; p++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    if (s.content === 'zero' && x % 4 !== 0) continue;
    const base = p * perPage;
    const lowEntropy = (x & 0x100) !== 0;
    const heapBase = x & 0xfffff0;
    for (let i = 0; i < perPage; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      words[base + i] = !lowEntropy ? x : i % 4 === 3 ? 0 : heapBase + (x % 64) * 16;
    }
    words[base] = (p * 2654435761) >>> 0 || 1;
  }
  return memory;
}

/** Writes `memory` as full snapshot `id` under `root` and returns its chain (base first). */
export function writeScenarioSnapshot(root: string, id: string, memory: Uint8Array): SnapshotState[] {
  const meta: SnapshotMeta = {
    id, kind: 'full', baseId: null, functionName: 'bench-synthetic', runtime: 'wasi', moduleDigest: 'bench',
    memoryBytes: memory.length, guestState: null, createdAt: new Date().toISOString(), sourceSandboxId: 'bench',
  };
  writeSnapshot(root, meta, memory);
  return readChain(root, id);
}

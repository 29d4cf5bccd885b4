// The benchmark's guest: a tiny hand-assembled Wasm module that imports its memory and reads
// (and optionally writes) one word of each working-set page in a given order, so the accesses
// measured are real guest accesses through the Wasm memory, as a restored function makes them.
//
//   touch(count, pages, mul, add, write) -> checksum
//     for i in [0, count): page = (i * mul + add) mod pages          (u64 arithmetic)
//       sum += u32 at page*4096; if write: u32 at page*4096+8 = sum
//   mul = 1 walks pages sequentially from `add`; an odd mul coprime with `pages` visits `count`
//   distinct pages scattered over the memory (a multiplicative permutation).

import { PAGE_BYTES } from '../core/snapshot-format.js';

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'latin1')];

const I32 = 0x7f;
// Params 0 count, 1 pages, 2 mul, 3 add, 4 write; locals 5 i, 6 sum, 7 addr.
const body = [
  1, 3, I32, // three i32 locals
  0x02, 0x40, // block
  0x03, 0x40, //   loop
  0x20, 5, 0x20, 0, 0x4f, 0x0d, 1, // if i >= count: break
  0x20, 5, 0xad, 0x20, 2, 0xad, 0x7e, 0x20, 3, 0xad, 0x7c, 0x20, 1, 0xad, 0x82, // (i*mul + add) % pages
  0xa7, 0x41, 12, 0x74, 0x21, 7, // addr = page << 12
  0x20, 6, 0x20, 7, 0x28, 2, 0, 0x6a, 0x21, 6, // sum += load(addr)
  0x20, 4, 0x04, 0x40, 0x20, 7, 0x20, 6, 0x36, 2, 8, 0x0b, // if write: store(addr + 8, sum)
  0x20, 5, 0x41, 1, 0x6a, 0x21, 5, // i++
  0x0c, 0, // continue
  0x0b, 0x0b, // end loop, end block
  0x20, 6, 0x0b, // return sum
];

const MODULE_BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [1, 0x60, 5, I32, I32, I32, I32, I32, 1, I32]),
  ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 0x00]),
  ...section(3, [1, 0]),
  ...section(7, [1, ...name('touch'), 0x00, 0]),
  ...section(10, [1, ...uleb(body.length), ...body]),
]);

let compiled: WebAssembly.Module | undefined;

/** How a guest walks its working set. */
export interface TouchPlan {
  /** Pages touched (distinct). */
  readonly count: number;
  /** Guest memory size in 4 KiB pages. */
  readonly pages: number;
  readonly mul: number;
  readonly add: number;
  /** Also write one word of each page (a heap that is read and updated). */
  readonly write: boolean;
}

/** An instantiated toucher bound to one memory. */
export interface Toucher {
  touch(plan: TouchPlan): number;
}

/** Instantiates the toucher over `memory` (as a runtime instantiates its guest before restoring into it). */
export function newToucher(memory: WebAssembly.Memory): Toucher {
  compiled ??= new WebAssembly.Module(MODULE_BYTES);
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  const touch = instance.exports.touch as (count: number, pages: number, mul: number, add: number, write: number) => number;
  return { touch: (p) => touch(p.count, p.pages, p.mul | 0, p.add, p.write ? 1 : 0) >>> 0 };
}

/** The page the guest touches i-th under `plan`. */
export function pageAt(plan: TouchPlan, i: number): number {
  return Number((BigInt(i) * BigInt(plan.mul >>> 0) + BigInt(plan.add)) % BigInt(plan.pages));
}

/** The checksum touch(plan) returns over `image` (a snapshot's memory), computed in JS. */
export function expectedChecksum(image: Uint8Array, plan: TouchPlan): number {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  let sum = 0;
  for (let i = 0; i < plan.count; i++) sum = (sum + view.getUint32(pageAt(plan, i) * PAGE_BYTES, true)) >>> 0;
  return sum;
}

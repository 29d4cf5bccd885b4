// Firecracker's page-server handshake: the JSON list of GuestRegionUffdMapping it sends with the
// userfaultfd (DESIGN.md section 7). Shapes by version, as serde_json writes them:
//   v1.1   {"base_host_virt_addr":N,"size":N,"offset":N}
//   v1.7   ... ,"page_size_kib":N      (bytes, despite the name)
//   v1.12  ... ,"page_size":N,"page_size_kib":N   (page_size_kib deprecated, still sent)
// Offsets are into the snapshot memory file; regions are separate mappings in Firecracker.

import { ThawError } from '../core/errors.js';

/** One guest memory region as the handshake describes it. */
export interface GuestRegion {
  /** Host virtual address of the region in the VMM (exact: above 2^53 would be refused). */
  readonly base: bigint;
  readonly size: number;
  /** Offset of the region's bytes in the memory file. */
  readonly offset: number;
  /** Page size the VMM backs it with (4096 unless huge pages); v1.1 sends none. */
  readonly pageSize: number;
}

const PAGE = 4096;
const KEYS = new Set(['base_host_virt_addr', 'size', 'offset', 'page_size_kib', 'page_size']);

function refuse(detail: string): never {
  throw new ThawError('THAW_REQUEST_INVALID', { detail: `Firecracker handshake: ${detail}` });
}

function count(region: Record<string, unknown>, key: string, i: number): number {
  const v = region[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) refuse(`region ${i}: ${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Parses and checks a handshake body against a memory file of `memoryBytes` bytes: a non-empty
 * JSON array of regions with page-aligned addresses, sizes and offsets, 4 KiB pages (hugetlbfs
 * guests are refused: this server copies 4 KiB pages), no two regions overlapping in the VMM's
 * address space or in the file, every region inside the file.
 * Throws THAW_REQUEST_INVALID naming the problem.
 */
export function parseHandshake(body: string, memoryBytes: number): GuestRegion[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err: unknown) {
    refuse(`not JSON (${(err as Error).message}): ${JSON.stringify(body.slice(0, 80))}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) refuse('expected a non-empty JSON array of GuestRegionUffdMapping');
  const regions = parsed.map((raw: unknown, i): GuestRegion => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) refuse(`region ${i} is not an object`);
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!KEYS.has(k)) refuse(`region ${i}: unknown field ${JSON.stringify(k)}`);
    const base = count(r, 'base_host_virt_addr', i);
    const size = count(r, 'size', i);
    const offset = count(r, 'offset', i);
    const sizes = ['page_size', 'page_size_kib'].filter((k) => k in r).map((k) => count(r, k, i));
    if (sizes.length === 2 && sizes[0] !== sizes[1]) refuse(`region ${i}: page_size ${sizes[0]} and page_size_kib ${sizes[1]} differ`);
    const pageSize = sizes[0] ?? PAGE;
    if (pageSize !== PAGE) refuse(`region ${i}: page size ${pageSize}: only 4 KiB pages are served (no hugetlbfs guests)`);
    if (size === 0) refuse(`region ${i} is empty`);
    if (base % PAGE || size % PAGE || offset % PAGE) refuse(`region ${i}: base_host_virt_addr, size and offset must be multiples of ${PAGE}`);
    if (offset + size > memoryBytes) refuse(`region ${i}: bytes ${offset}..${offset + size} lie past the end of the ${memoryBytes}-byte memory file`);
    return { base: BigInt(base), size, offset, pageSize };
  });
  const overlap = (a0: bigint, a1: bigint, b0: bigint, b1: bigint): boolean => a0 < b1 && b0 < a1;
  for (let i = 0; i < regions.length; i++) {
    for (let j = i + 1; j < regions.length; j++) {
      const a = regions[i]!, b = regions[j]!;
      if (overlap(a.base, a.base + BigInt(a.size), b.base, b.base + BigInt(b.size))) refuse(`regions ${i} and ${j} overlap in the VMM's address space`);
      if (overlap(BigInt(a.offset), BigInt(a.offset + a.size), BigInt(b.offset), BigInt(b.offset + b.size))) refuse(`regions ${i} and ${j} overlap in the memory file`);
    }
  }
  return regions;
}

// Inputs of the suite function "mmap": how much memory to grow and the stride of the touches.

/** What the mmap function grows and touches. */
export interface MmapParams {
  readonly sizeMiB: number;
  readonly strideBytes: number;
}

/** FaaSnap's mmap: 512 MiB, one byte per 4 KiB page. */
export const MMAP_PUBLISHED: MmapParams = { sizeMiB: 512, strideBytes: 4096 };

/** The input object: {"size_mib": ..., "stride_bytes": ...}. */
export function mmapInput(params: MmapParams): Uint8Array {
  return Buffer.from(JSON.stringify({ size_mib: params.sizeMiB, stride_bytes: params.strideBytes }), 'utf8');
}

/** Reads an input object back. Throws when it is not one. */
export function parseMmapInput(bytes: Uint8Array): MmapParams {
  const raw = JSON.parse(Buffer.from(bytes).toString('utf8')) as { size_mib?: unknown; stride_bytes?: unknown };
  if (typeof raw.size_mib !== 'number' || typeof raw.stride_bytes !== 'number') throw new Error('mmap input needs size_mib and stride_bytes');
  return { sizeMiB: raw.size_mib, strideBytes: raw.stride_bytes };
}

/** Pages (strides) the function must touch: ceil(size / stride). */
export function mmapTouchCount(params: MmapParams): number {
  return Math.ceil((params.sizeMiB * 1024 * 1024) / params.strideBytes);
}

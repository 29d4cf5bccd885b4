// Giving guest pages back to the host: the one place a scaling mechanism discards memory.

import { madviseDontneed, mapAnonymous } from '../../native/index.js';
import type { ByteRange } from './scaling.js';

/**
 * Makes a page-aligned range of guest memory non-resident; it reads as zero afterwards.
 * MADV_DONTNEED on anonymous memory; on memory that may be a private file mapping (a restored
 * sandbox) fresh anonymous pages are mapped over it instead, because MADV_DONTNEED there would
 * bring the snapshot file's bytes back rather than free anything.
 */
export function discardRange(memory: WebAssembly.Memory, range: ByteRange, fileBacked: boolean): void {
  if (fileBacked) mapAnonymous(memory.buffer, range.offset, range.length);
  else madviseDontneed(memory.buffer, range.offset, range.length);
}

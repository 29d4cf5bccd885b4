// eager: read the whole snapshot image into the sandbox's memory before the guest runs.
// The baseline every other strategy is compared against.

import { ThawError } from '../../core/errors.js';
import type { SnapshotState } from '../../core/snapshot-format.js';
import { loadChainInto } from '../../snapshot/snapshot-io.js';
import type { OpenedImage, RestoreStrategy } from '../strategy.js';

const WASM_PAGE_BYTES = 65536;

export const eager: RestoreStrategy = {
  id: 'eager',
  description: 'read the whole image into guest memory before resuming',
  supports: () => ({ ok: true }),
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    const top = chain[chain.length - 1];
    if (!top) throw new ThawError('THAW_INTERNAL', { detail: 'eager.open: empty chain' });
    const byteLength = top.meta.memoryBytes;
    const stats = { bytesRead: 0 };
    return {
      byteLength,
      stats,
      fill(memory: WebAssembly.Memory): void {
        const have = memory.buffer.byteLength;
        if (have < byteLength) {
          try {
            memory.grow((byteLength - have) / WASM_PAGE_BYTES);
          } catch (err) {
            throw new ThawError('THAW_GUEST_OOM', { name: top.meta.functionName, limitMiB: Math.round(have / 2 ** 20), detail: `cannot grow memory to the snapshot's ${byteLength} bytes` }, { cause: err });
          }
        }
        stats.bytesRead += loadChainInto(root, chain, new Uint8Array(memory.buffer)).bytesRead;
      },
      toBytes(): Uint8Array {
        const bytes = new Uint8Array(byteLength);
        stats.bytesRead += loadChainInto(root, chain, bytes).bytesRead;
        return bytes;
      },
    };
  },
};

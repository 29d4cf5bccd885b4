// The OpenedImage every strategy except eager builds on: resolve the chain to one verified image
// file (the prepare step), hold its fd until fill(), measure the fill, and run the strategy's
// hooks for invocation and release exactly once each, in order.

import { closeSync } from 'node:fs';
import { invariant } from '../core/errors.js';
import type { SnapshotState } from '../core/snapshot-format.js';
import { loadChainInto } from '../snapshot/snapshot-io.js';
import { clearBeyond, growTo, measured } from './guest-memory.js';
import { resolveImage, type SnapshotImage } from './snapshot-image.js';
import { emptyStats, type OpenedImage, type RestoreStats } from './strategy.js';

/** What a strategy's fill hook gets. */
export interface FillContext {
  /** The memory's buffer after growing it to image.memoryBytes (bytes beyond it already zero). */
  readonly buffer: ArrayBuffer;
  readonly image: SnapshotImage;
  /** Open, verified fd of image.path, closed by the caller after fill (mappings outlive it). */
  readonly fd: number;
  readonly stats: RestoreStats;
}

/** A strategy's part of a restore. */
export interface LazyHooks {
  /** Makes ctx.buffer's first image.memoryBytes bytes read as the snapshot. */
  fill(ctx: FillContext): void;
  /** After each invocation. */
  afterInvoke?(stats: RestoreStats): void;
  /** Once, when the sandbox ends (also when fill never ran or failed). Must not throw. */
  release?(stats: RestoreStats): void;
}

/**
 * Opens `chain` for strategy `id`: resolves (prepares and verifies) the image now, so a corrupt
 * snapshot fails before any guest is instantiated, then returns an OpenedImage whose fill() grows
 * the memory and runs the hooks' fill. `hooks` runs now (its work counts as opening, before the
 * guest exists) with the verified image fd, which stays open until fill() returns.
 * Throws THAW_SNAPSHOT_CORRUPT.
 */
export function openLazy(id: string, root: string, chain: readonly SnapshotState[],
  hooks: (image: SnapshotImage, fd: number, stats: RestoreStats) => LazyHooks): OpenedImage {
  const resolved = resolveImage(root, chain, 'open');
  const { image } = resolved;
  let fd: number | undefined = resolved.fd;
  const stats = emptyStats(id);
  stats.prepareMs = resolved.built ? resolved.elapsedMs : 0;
  let h: LazyHooks;
  try {
    h = hooks(image, resolved.fd, stats);
  } catch (err: unknown) {
    closeSync(fd);
    throw err;
  }
  let state: 'open' | 'filled' | 'released' = 'open';
  const closeFd = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  return {
    byteLength: image.memoryBytes,
    stats,
    fill(memory: WebAssembly.Memory): void {
      invariant(state === 'open' && fd !== undefined, `${id}: fill() on a ${state} image`);
      const openFd = fd;
      try {
        measured(stats, () => {
          const buffer = growTo(memory, image.memoryBytes, image.state.meta.functionName);
          clearBeyond(buffer, image.memoryBytes);
          h.fill({ buffer, image, fd: openFd, stats });
        });
        state = 'filled';
      } finally {
        closeFd();
      }
    },
    toBytes(): Uint8Array {
      const bytes = new Uint8Array(image.memoryBytes);
      stats.bytesRead += loadChainInto(root, chain, bytes).bytesRead;
      return bytes;
    },
    afterInvoke(): void {
      if (state === 'filled') h.afterInvoke?.(stats);
    },
    release(): RestoreStats {
      if (state !== 'released') {
        state = 'released';
        closeFd();
        h.release?.(stats);
      }
      return stats;
    },
  };
}

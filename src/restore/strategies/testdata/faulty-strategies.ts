// Deliberately faulty strategies for the conformance suite: they prove that the suite notices a
// restore that loses a page, and that a failing restore surfaces as an error, not as bad memory.

import { ThawError } from '../../../core/errors.js';
import { PAGE_BYTES, type SnapshotState } from '../../../core/snapshot-format.js';
import { eager } from '../eager.js';
import type { OpenedImage, RestoreStrategy } from '../../strategy.js';

/** Restores like eager, then zeroes one non-zero page: the conformance check must catch it. */
export const lossy: RestoreStrategy = {
  id: 'faulty-lossy',
  description: 'test fixture: eager, then loses the first present page',
  verifies: 'unverified-mapped',
  verifiesHow: 'test fixture',
  supports: () => ({ ok: true }),
  prepare: () => ({ built: false, elapsedMs: 0 }),
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    const inner = eager.open(root, chain);
    const first = chain[0]?.runs[0];
    return {
      ...inner,
      fill(memory: WebAssembly.Memory): void {
        inner.fill(memory);
        if (first) new Uint8Array(memory.buffer, first.firstPage * PAGE_BYTES, PAGE_BYTES).fill(0);
      },
    };
  },
};

/** Fails in fill() the way a dead page server or an unreadable file would. */
export const throwing: RestoreStrategy = {
  id: 'faulty-throwing',
  description: 'test fixture: fill() throws',
  verifies: 'unverified-mapped',
  verifiesHow: 'test fixture',
  supports: () => ({ ok: true }),
  prepare: () => ({ built: false, elapsedMs: 0 }),
  open(root: string, chain: readonly SnapshotState[]): OpenedImage {
    const inner = eager.open(root, chain);
    return {
      ...inner,
      fill(): void {
        throw new ThawError('THAW_INTERNAL', { detail: 'faulty-throwing: page server died' });
      },
    };
  },
};

/** Never supported: getStrategy() must refuse it rather than fall back. */
export const unavailable: RestoreStrategy = {
  id: 'faulty-unavailable',
  description: 'test fixture: never supported',
  verifies: 'unverified-mapped',
  verifiesHow: 'test fixture',
  supports: () => ({ ok: false, reason: 'test fixture: this host lacks the feature' }),
  prepare: () => ({ built: false, elapsedMs: 0 }),
  open(): OpenedImage {
    throw new ThawError('THAW_INTERNAL', { detail: 'faulty-unavailable opened despite supports() = false' });
  },
};

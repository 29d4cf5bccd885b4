// The example function a Python benchmark script runs in-process (restore.bench.ts,
// restore-split.bench.ts): its parsed manifest and a guest context with a no-op object store.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFunctionConfig, type FunctionParams } from '../../core/function-spec.js';
import type { SyncObjectStore } from '../../store/object-store.js';
import type { GuestContext } from '../runtime.js';

/** functions/<name>'s manifest and a context for its guests. */
export function benchFunction(name: string): { fn: FunctionParams; ctx: GuestContext } {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'functions', name);
  const fn = parseFunctionConfig(JSON.parse(readFileSync(join(dir, 'function.json'), 'utf8')), (p) => join(dir, p));
  const store: SyncObjectStore = { kind: 'embedded', get: () => undefined, put: () => undefined, close: () => undefined };
  return { fn, ctx: { objects: store, memoryLimitBytes: fn.memoryMiB * 1024 * 1024, log: () => undefined } };
}

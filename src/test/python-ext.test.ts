// A compiled Pyodide package (issue 13 item 4): `tinyext`, a C extension module built here with
// Debian's clang and wasm-ld as a Wasm side module, in a wheel of a local Pyodide package directory
// (functions/ext-py/make-ext-dir.py). Deploy checks and installs it; init imports it (Emscripten's
// loader instantiates the side module); a snapshot records where its data and functions were placed
// and a restore instantiates it again there before the heap comes back, so a call into the extension
// on a restored guest sees the state (a static counter) the snapshot captured.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifestFile } from '../cli/context.js';
import { FUNCTIONS_DIR, manifestPath, newPlatform, text } from './helpers.js';

const p = newPlatform({ maxIdleSandboxes: 4 });
const scratch = mkdtempSync(join(tmpdir(), 'thaw-pyext-test-'));
after(async () => {
  await p.close();
  rmSync(scratch, { recursive: true, force: true });
});

const pkgDir = join(scratch, 'pkgs');
execFileSync('python3', [join(FUNCTIONS_DIR, 'ext-py', 'make-ext-dir.py'), pkgDir]);

function manifest(patch: Record<string, unknown> = {}): { manifest: Record<string, unknown>; artefact: Uint8Array } {
  const { manifest: m, artefact } = readManifestFile(manifestPath('ext-py'));
  return { manifest: { ...m, pyodidePackages: pkgDir, ...patch }, artefact };
}

interface Reply {
  square: number | string;
  bump: number;
  atInit: number[];
  file: string;
}

test('a compiled package: its extension is called on the cold, snapshot and warm paths with the state the snapshot captured', async () => {
  const { manifest: m, artefact } = manifest();
  const info = await p.deployFunction(m, artefact);
  assert.equal(info.facts.pyodidePackages, 'tinyext==1.0');
  const call = async (mode: 'cold' | 'snapshot' | 'warm', n: number, extra: Record<string, unknown> = {}): Promise<{ reply: Reply; sandboxId: string }> => {
    const r = await p.invoke({ function: 'ext-py', mode, input: Buffer.from(JSON.stringify({ n })), ...extra });
    return { reply: JSON.parse(text(r.output)) as Reply, sandboxId: r.sandboxId };
  };
  const cold = await call('cold', 6);
  // 6*6 + (3, 5, 7, 11)[6 % 4]; the counter was bumped three times at init, once now.
  assert.deepEqual(cold.reply, { square: 43, bump: 1004, atInit: [1001, 1002, 1003], file: '/thaw/site/tinyext.so' });

  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  for (let i = 0; i < 2; i++) {
    // Each restore starts from the captured counter (1004), not from the side module's initial 1000.
    const restored = await call('snapshot', 5, { snapshotId: snap.id, keep: false });
    assert.deepEqual(restored.reply, { square: 30, bump: 1005, atInit: [1001, 1002, 1003], file: '/thaw/site/tinyext.so' });
  }
  const restoredErr = await call('snapshot', -1, { snapshotId: snap.id, keep: false });
  // A Python exception raised by the extension through a main-module global (PyExc_ValueError).
  assert.equal(restoredErr.reply.square, 'tinyext.square: negative');

  const warm = await call('warm', 7, { sandboxId: cold.sandboxId });
  assert.deepEqual(warm.reply, { square: 60, bump: 1005, atInit: [1001, 1002, 1003], file: '/thaw/site/tinyext.so' });
  const warm2 = await call('warm', 0, { sandboxId: cold.sandboxId });
  assert.equal(warm2.reply.bump, 1006);
  await p.deleteSandbox(cold.sandboxId);
});

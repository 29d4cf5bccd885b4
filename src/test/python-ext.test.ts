// A compiled Pyodide package (issue 13 item 4): `tinyext`, a C extension module built here with
// Debian's clang and wasm-ld as a Wasm side module, in a wheel of a local Pyodide package directory
// (functions/ext-py/make-ext-dir.py). Deploy checks and installs it; init imports it (Emscripten's
// loader instantiates the side module); a snapshot records where its data and functions were placed
// and a restore instantiates it again there before the heap comes back, so a call into the extension
// on a restored guest sees the state (a static counter) the snapshot captured.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifestFile } from '../cli/context.js';
import { pythonAdapter, type PythonRuntimeState } from '../runtimes/python/adapter.js';
import type { GuestContext, MemoryImage } from '../runtimes/runtime.js';
import { FUNCTIONS_DIR, manifestPath, newPlatform, rejectsWith, text } from './helpers.js';

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
  // Jailed hosts (seccomp allowlist, Landlock, no network): the side module is read from the function's own directory.
  assert.ok(p.jail.jailed, 'the platform jails its hosts');
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

  // A snapshot of a restored guest records the re-placed side module again, and restores from it.
  const kept = await call('snapshot', 1, { snapshotId: snap.id });
  assert.equal(kept.reply.bump, 1005);
  const snap2 = await p.createSnapshot({ sandboxId: kept.sandboxId });
  const again = await call('snapshot', 2, { snapshotId: snap2.id, keep: false });
  assert.deepEqual(again.reply, { square: 11, bump: 1006, atInit: [1001, 1002, 1003], file: '/thaw/site/tinyext.so' });
  await p.deleteSandbox(kept.sandboxId);

  const warm = await call('warm', 7, { sandboxId: cold.sandboxId });
  assert.deepEqual(warm.reply, { square: 60, bump: 1005, atInit: [1001, 1002, 1003], file: '/thaw/site/tinyext.so' });
  const warm2 = await call('warm', 0, { sandboxId: cold.sandboxId });
  assert.equal(warm2.reply.bump, 1006);
  await p.deleteSandbox(cold.sandboxId);
});

/** A guest context without an object store (the extension does not use one). */
function context(): GuestContext {
  const none = (): never => {
    throw new Error('no object store in this test');
  };
  return { objects: { kind: 'embedded', get: none, put: none, close: () => undefined }, memoryLimitBytes: 256 << 20, log: () => undefined };
}

/** An eager image over a copy of `memory`. */
function copyImage(memory: WebAssembly.Memory): MemoryImage {
  const bytes = new Uint8Array(memory.buffer).slice();
  return {
    byteLength: bytes.byteLength,
    fill(target) {
      new Uint8Array(target.buffer).set(bytes);
    },
    toBytes: () => bytes,
  };
}

test('a side module that cannot be placed at its recorded base is refused with THAW_SNAPSHOT_VERSION naming it', async () => {
  const { manifest: m, artefact } = manifest({ name: 'ext-py-adapter' });
  await p.deployFunction(m, artefact);
  // The runtime's guest side directly (in this process), on the installed function: the platform's
  // snapshots are sealed, so a tampered state can only be handed to the adapter.
  const fn = p.functions.get('ext-py-adapter').params;
  const prepared = await pythonAdapter.prepare(fn, fn.artefactPath);
  const guest = await pythonAdapter.boot(prepared, context());
  await guest.init();
  const state = guest.captureState();
  const image = copyImage(guest.memory);
  const st = state.runtime as PythonRuntimeState;
  assert.equal(st.sideModules?.length, 1);
  const [rec] = st.sideModules ?? [];
  assert.ok(rec !== undefined && rec.path === '/thaw/site/tinyext.so' && rec.memoryBase > 0 && rec.tableSize > 0, JSON.stringify(rec));

  // The untampered state restores, in a fresh Pyodide, to a guest whose extension answers from the captured counter.
  const ok = await pythonAdapter.restore(prepared, state, image, context());
  assert.equal((JSON.parse(text(await ok.invoke(new TextEncoder().encode('{"n": 2}')))) as Reply).bump, 1004);

  const tampered = (patch: Record<string, number>): typeof state => ({ runtime: { ...st, sideModules: [{ ...rec, ...patch }] } });
  const taken = await rejectsWith(pythonAdapter.restore(prepared, tampered({ tableBase: 1 }), image, context()), 'THAW_SNAPSHOT_VERSION');
  assert.match(taken.message, /side module '\/thaw\/site\/tinyext\.so' cannot be placed at its recorded base: table base 1 is taken/);
  const outside = await rejectsWith(pythonAdapter.restore(prepared, tampered({ memoryBase: st.heapBytes }), image, context()), 'THAW_SNAPSHOT_VERSION');
  assert.match(outside.message, /tinyext\.so' cannot be placed at its recorded base: memory base \d+ .* is not an aligned block inside the \d+-byte heap/);
  const grown = await rejectsWith(pythonAdapter.restore(prepared, tampered({ memorySize: rec.memorySize + 16 }), image, context()), 'THAW_SNAPSHOT_VERSION');
  assert.match(grown.message, /tinyext\.so' cannot be placed at its recorded base: it has \d+ bytes of data and \d+ table slots, the snapshot recorded/);
});

test('an extension wheel whose .so is not a Wasm side module (a host binary) is refused at deploy, naming the file', async () => {
  const elf = join(scratch, 'host.so');
  writeFileSync(elf, Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01'), Buffer.alloc(64)]));
  const dir = join(scratch, 'elf-pkgs');
  execFileSync('python3', [join(FUNCTIONS_DIR, 'ext-py', 'make-ext-dir.py'), dir, elf]);
  const { manifest: m, artefact } = manifest({ name: 'ext-py-elf', pyodidePackages: dir });
  const err = await rejectsWith(p.deployFunction(m, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(err.message, /Pyodide package 'tinyext' 1\.0: 'tinyext\.so' is a compiled extension module but not a Wasm side module for Pyodide/);
  assert.throws(() => p.functions.info('ext-py-elf'), /THAW_FUNCTION_NOT_FOUND|not found/i);
});

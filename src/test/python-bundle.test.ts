// Python functions as bundles (issue 13 item 4): a handler with its own module and data files, a
// package directory and a wheel, on the cold, snapshot and warm paths; bundles with missing or
// unusable pieces refused at deploy with THAW_BUNDLE_INVALID.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifestFile } from '../cli/context.js';
import { crc32 } from '../suite/inputs/image-png.js';
import { FUNCTIONS_DIR, deployExample, manifestPath, newPlatform, rejectsWith } from './helpers.js';

const p = newPlatform({ maxIdleSandboxes: 4 });
const scratch = mkdtempSync(join(tmpdir(), 'thaw-pybundle-test-'));
after(async () => {
  await p.close();
  rmSync(scratch, { recursive: true, force: true });
});

const EXPECTED = {
  greeting: 'HELLO, ADA, FROM A BUNDLED PACKAGE!',
  stats: { words: 8, distinct: 6, top: 'thaw', top_count: 3 },
  motto: 'Cold starts, warm answers.',
  file: '/thaw/app/handler.py',
};

test('bundle-py: helper module, data files, a package directory and a wheel, the same answer cold, restored and warm', async () => {
  await deployExample(p, 'bundle-py');
  const info = p.functions.info('bundle-py');
  assert.equal(info.facts.requirements, 2);
  const input = Buffer.from(JSON.stringify({ name: 'Ada' }));
  const cold = await p.invoke({ function: 'bundle-py', mode: 'cold', input });
  assert.deepEqual(JSON.parse(Buffer.from(cold.output).toString()), EXPECTED);
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  // The restored guest's imports come from the snapshot; its data file read at invoke needs the bundle mounted again.
  const restored = await p.invoke({ function: 'bundle-py', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
  assert.deepEqual(JSON.parse(Buffer.from(restored.output).toString()), EXPECTED);
  const warm = await p.invoke({ function: 'bundle-py', mode: 'warm', sandboxId: cold.sandboxId, input });
  assert.deepEqual(JSON.parse(Buffer.from(warm.output).toString()), EXPECTED);
  await p.deleteSandbox(cold.sandboxId);
});

/** The bundle-py manifest with some fields replaced (paths absolute). */
function patched(patch: Record<string, unknown>): { manifest: Record<string, unknown>; artefact: Uint8Array } {
  const { manifest, artefact } = readManifestFile(manifestPath('bundle-py'));
  return { manifest: { ...manifest, name: 'bundle-bad', ...patch }, artefact };
}

test('a handler importing a package that no requirement provides is refused at deploy, naming it', async () => {
  const { manifest, artefact } = patched({});
  const reqs = (manifest.requirements as string[]).filter((r) => !r.endsWith('.whl'));
  const err = await rejectsWith(p.deployFunction({ ...manifest, requirements: reqs }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(err.message, /'wordstats'/);
  assert.throws(() => p.functions.info('bundle-bad'), /THAW_FUNCTION_NOT_FOUND|not found/i);
});

test('a requirement path that does not exist, a compiled module and an impure wheel are refused at deploy', async () => {
  const { manifest, artefact } = patched({});
  const reqs = manifest.requirements as string[];
  const missing = await rejectsWith(p.deployFunction({ ...manifest, requirements: [...reqs, join(scratch, 'nope')] }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(missing.message, /does not exist/);

  const native = join(scratch, 'native');
  mkdirSync(native);
  writeFileSync(join(native, '__init__.py'), '');
  writeFileSync(join(native, '_speedups.cpython-311-x86_64-linux-gnu.so'), 'ELF');
  const compiled = await rejectsWith(p.deployFunction({ ...manifest, requirements: [...reqs, native] }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(compiled.message, /compiled extension module/);

  const impure = join(scratch, 'fast-1.0-cp311-cp311-linux_x86_64.whl');
  writeFileSync(impure, 'not even a zip');
  const wheel = await rejectsWith(p.deployFunction({ ...manifest, requirements: [...reqs, impure] }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(wheel.message, /not a pure-Python wheel/);

  const notPkg = join(scratch, 'loose');
  mkdirSync(notPkg);
  const loose = await rejectsWith(p.deployFunction({ ...manifest, requirements: [...reqs, notPkg] }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(loose.message, /without __init__\.py/);
});

/** A zip archive of stored (uncompressed) entries: enough to hand deploy a bundle as one file. */
function storedZip(entries: Array<[string, string]>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, body] of entries) {
    const data = Buffer.from(body);
    const n = Buffer.from(name);
    const crc = crc32(data);
    // Both headers carry version 20, CRC, both sizes and the name length; at 14 (local) and 16 (central).
    const header = (size: number, sig: number, at: number): Buffer => {
      const b = Buffer.alloc(size);
      b.writeUInt32LE(sig, 0);
      b.writeUInt16LE(20, at - 10);
      b.writeUInt32LE(crc, at);
      b.writeUInt32LE(data.length, at + 4);
      b.writeUInt32LE(data.length, at + 8);
      b.writeUInt16LE(n.length, at + 12);
      return b;
    };
    const local = header(30, 0x04034b50, 14);
    const central = header(46, 0x02014b50, 16);
    central.writeUInt16LE(20, 4);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, data);
    centrals.push(central, n);
    offset += 30 + n.length + data.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

test('a bundle given as a .zip runs like the directory; an entry escaping the bundle is refused', async () => {
  const app = join(FUNCTIONS_DIR, 'bundle-py', 'app');
  const files = ['handler.py', 'helpers.py', 'data/words.txt', 'data/motto.txt'].map((f): [string, string] => [f, readFileSync(join(app, f), 'utf8')]);
  const zip = join(scratch, 'app.zip');
  writeFileSync(zip, storedZip(files));
  const { manifest, artefact } = patched({ name: 'bundle-zip', bundle: zip });
  await p.deployFunction(manifest, artefact);
  const cold = await p.invoke({ function: 'bundle-zip', mode: 'cold', input: Buffer.from(JSON.stringify({ name: 'Ada' })), keep: false });
  assert.deepEqual(JSON.parse(Buffer.from(cold.output).toString()), EXPECTED);

  const evil = join(scratch, 'evil.zip');
  writeFileSync(evil, storedZip([...files, ['../escape.py', 'x = 1']]));
  const err = await rejectsWith(p.deployFunction({ ...manifest, name: 'bundle-evil', bundle: evil }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(err.message, /not a plain relative path/);
});

test('the guest cannot write into its mounted bundle', async () => {
  const { manifest } = patched({ name: 'bundle-write' });
  const source = [
    'import greetings, wordstats',
    'def handler(event, context):',
    '    try:',
    '        with open("/thaw/app/data/motto.txt", "w") as f:',
    '            f.write("changed")',
    '        return "written"',
    '    except OSError as exc:',
    '        return type(exc).__name__',
  ].join('\n');
  await p.deployFunction(manifest, Buffer.from(source));
  const res = await p.invoke({ function: 'bundle-write', mode: 'cold', input: Buffer.from('{}'), keep: false });
  assert.notEqual(Buffer.from(res.output).toString(), 'written');
  const installed = join(p.functions.hostFunction('bundle-write').artefactPath, '..', 'python', 'app', 'data', 'motto.txt');
  assert.equal(readFileSync(installed, 'utf8'), 'Cold starts, warm answers.\n');
});

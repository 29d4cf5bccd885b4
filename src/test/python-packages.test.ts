// Python functions with packages from a local Pyodide package directory (issue 13 item 4): a
// directory laid out like a Pyodide release (pyodide-lock.json + wheels), built here offline by
// functions/packages-py/make-pyodide-dir.py with Python's zipfile: `tinyunits` depends on `tinybase`.
// The function names only `tinyunits`; both are installed, imported at init and found on the cold,
// snapshot and warm paths. Unknown names, missing files, tampered wheels, shared libraries and wheels
// for another Pyodide are refused at deploy with THAW_BUNDLE_INVALID naming them.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifestFile } from '../cli/context.js';
import { PYODIDE_PACKAGES_ENV } from '../runtimes/python/pyodide-packages.js';
import { FUNCTIONS_DIR, manifestPath, newPlatform, rejectsWith, text } from './helpers.js';

const p = newPlatform({ maxIdleSandboxes: 4 });
const scratch = mkdtempSync(join(tmpdir(), 'thaw-pyodide-pkgs-test-'));
after(async () => {
  await p.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A fresh package directory under scratch: tinybase 1.0 and tinyunits 2.0 (depends on tinybase). */
function packageDir(name: string): string {
  const dir = join(scratch, name);
  execFileSync('python3', [join(FUNCTIONS_DIR, 'packages-py', 'make-pyodide-dir.py'), dir]);
  return dir;
}

const good = packageDir('good');

/** The packages-py manifest pointed at `dir`, with fields replaced. */
function manifest(dir: string | undefined, patch: Record<string, unknown> = {}): { manifest: Record<string, unknown>; artefact: Uint8Array } {
  const { manifest: m, artefact } = readManifestFile(manifestPath('packages-py'));
  const { pyodidePackages: _unused, ...rest } = m;
  return { manifest: { ...rest, ...(dir === undefined ? {} : { pyodidePackages: dir }), ...patch }, artefact };
}

interface Reply {
  scaled: number;
  extra: string;
  token: string;
  from: string;
}

test('packages from a Pyodide package directory: the named one and its dependency, imported at init, the same answer cold, restored and warm', async () => {
  const { manifest: m, artefact } = manifest(good);
  const info = await p.deployFunction(m, artefact);
  assert.equal(info.facts.pyodidePackages, 'tinybase==1.0 tinyunits==2.0');
  const input = Buffer.from(JSON.stringify({ n: 3 }));
  const cold = await p.invoke({ function: 'packages-py', mode: 'cold', input });
  const c = JSON.parse(text(cold.output)) as Reply;
  // 3 * tinybase.BASE (10) * the factor tinybase reads from its data file (7).
  assert.equal(c.scaled, 210);
  assert.equal(c.extra, 'tinyunits.extra, imported at invoke time');
  assert.equal(c.from, '/thaw/site/tinyunits/__init__.py');
  assert.match(c.token, /^[0-9a-f]{16}$/);

  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  for (let i = 0; i < 2; i++) {
    const restored = await p.invoke({ function: 'packages-py', mode: 'snapshot', snapshotId: snap.id, input, keep: false });
    // Same token: the packages were not imported again, they came with the snapshot; the data file and
    // the lazily imported submodule are read through the bundle mounted again after the restore.
    assert.deepEqual(JSON.parse(text(restored.output)), c);
  }
  const warm = await p.invoke({ function: 'packages-py', mode: 'warm', sandboxId: cold.sandboxId, input });
  assert.deepEqual(JSON.parse(text(warm.output)), c);

  // Another cold boot imports the packages anew: a different token, so the equality above is not luck.
  const other = await p.invoke({ function: 'packages-py', mode: 'cold', input, keep: false });
  assert.notEqual((JSON.parse(text(other.output)) as Reply).token, c.token);
  await p.deleteSandbox(cold.sandboxId);
});

test('the package directory can come from THAW_PYODIDE_PACKAGES of the deploying process', async () => {
  const { manifest: m, artefact } = manifest(undefined, { name: 'packages-env' });
  process.env[PYODIDE_PACKAGES_ENV] = good;
  try {
    const info = await p.deployFunction(m, artefact);
    assert.equal(info.facts.pyodidePackages, 'tinybase==1.0 tinyunits==2.0');
  } finally {
    delete process.env[PYODIDE_PACKAGES_ENV];
  }
  const noDir = await rejectsWith(p.deployFunction({ ...m, name: 'packages-nodir' }, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(noDir.message, /needs a Pyodide package directory.*THAW_PYODIDE_PACKAGES/);
});

/** Deploys packages-py against `dir` (under another name) and expects a refusal matching `pattern`. */
async function refused(dir: string, pattern: RegExp, patch: Record<string, unknown> = {}): Promise<void> {
  const { manifest: m, artefact } = manifest(dir, { name: 'packages-bad', ...patch });
  const err = await rejectsWith(p.deployFunction(m, artefact), 'THAW_BUNDLE_INVALID');
  assert.match(err.message, pattern);
  assert.throws(() => p.functions.info('packages-bad'), /THAW_FUNCTION_NOT_FOUND|not found/i);
}

test('an unknown package, a missing wheel, a tampered wheel, a shared library, a wheel for another Pyodide or another ABI is refused at deploy, naming it', async () => {
  await refused(good, /package 'nosuchpkg' is not in .*pyodide-lock\.json/, { packages: ['tinyunits', 'nosuchpkg'] });

  const missing = join(scratch, 'missing');
  cpSync(good, missing, { recursive: true });
  unlinkSync(join(missing, 'tinybase-1.0-py3-none-any.whl'));
  await refused(missing, /package 'tinybase' \(a dependency of 'tinyunits'\): its file .*tinybase-1\.0-py3-none-any\.whl is missing/);

  const tampered = join(scratch, 'tampered');
  cpSync(good, tampered, { recursive: true });
  const wheel = join(tampered, 'tinyunits-2.0-py3-none-any.whl');
  const bytes = readFileSync(wheel);
  bytes[bytes.length - 30] = (bytes[bytes.length - 30] ?? 0) ^ 0xff;
  writeFileSync(wheel, bytes);
  await refused(tampered, /package 'tinyunits': .*tinyunits-2\.0-py3-none-any\.whl has sha256 [0-9a-f]{64}, pyodide-lock\.json says [0-9a-f]{64}/);

  const compiled = join(scratch, 'compiled');
  cpSync(good, compiled, { recursive: true });
  const lock = JSON.parse(readFileSync(join(compiled, 'pyodide-lock.json'), 'utf8')) as { info: Record<string, string>; packages: Record<string, Record<string, unknown>> };
  // Compiled packages for this Pyodide are accepted (src/test/python-ext.test.ts); shared libraries and
  // wheels for another Python or platform are not.
  lock.packages.libblis = { name: 'libblis', version: '2.1', file_name: 'libblis-2.1.zip', install_dir: 'dynlib', package_type: 'shared_library', sha256: '0'.repeat(64), imports: [], depends: [] };
  lock.packages.numpy = { name: 'numpy', version: '2.4.6', file_name: 'numpy-2.4.6-cp313-cp313-pyodide_2025_0_wasm32.whl', install_dir: 'site', package_type: 'package', sha256: '0'.repeat(64), imports: ['numpy'], depends: [] };
  writeFileSync(join(compiled, 'pyodide-lock.json'), JSON.stringify(lock));
  await refused(compiled, /package 'libblis' \(libblis-2\.1\.zip, shared_library\) is neither a pure-Python package nor an extension wheel for this Pyodide.*shared libraries/, { packages: ['libblis'] });
  await refused(compiled, /package 'numpy' \(numpy-2\.4\.6-cp313-cp313-pyodide_2025_0_wasm32\.whl, package\) is neither a pure-Python package nor an extension wheel for this Pyodide/, { packages: ['numpy'] });

  lock.info.abi_version = '1999_0';
  writeFileSync(join(compiled, 'pyodide-lock.json'), JSON.stringify(lock));
  await refused(compiled, /is for Pyodide ABI '1999_0'/);

  await refused(join(scratch, 'nowhere'), /Pyodide package directory '.*nowhere' does not exist/);
});

test("a handler importing one of Pyodide's packages that the function does not name is refused, pointing at 'packages'", async () => {
  const { manifest: m } = manifest(good, { name: 'packages-bad' });
  const err = await rejectsWith(p.deployFunction(m, Buffer.from('import six\nimport tinyunits\ndef handler(event, context):\n    return six.__name__\n')), 'THAW_BUNDLE_INVALID');
  assert.match(err.message, /imports 'six' at top level.*'six' is Pyodide's package 'six': name it in 'packages'/);
});

// `thaw init`: each kind writes a function that builds with its build.sh, deploys from its
// directory and answers; a non-empty directory and an unknown kind are refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifestFile } from '../context.js';
import { newPlatform } from '../../test/helpers.js';
import { initFunction } from './init.js';

const scratch = mkdtempSync(join(tmpdir(), 'thaw-init-test-'));
const p = newPlatform();
after(async () => {
  await p.close();
  rmSync(scratch, { recursive: true, force: true });
});

const cases: Array<{ kind: string; input: string; expected: string }> = [
  { kind: 'wasi-c', input: 'thaw', expected: 'waht' },
  { kind: 'wasi-command', input: 'quiet words', expected: 'QUIET WORDS' },
  { kind: 'python', input: '{"name": "Ada"}', expected: JSON.stringify({ message: 'hello, Ada', function: 'python-fn' }) },
];

for (const c of cases) {
  test(`thaw init ${c.kind}: builds, deploys from its directory and answers cold and from a snapshot`, async () => {
    const dir = join(scratch, `${c.kind}-fn`);
    initFunction(c.kind, dir);
    execFileSync('sh', [join(dir, 'build.sh')], { stdio: 'pipe' });
    const { manifest, artefact } = readManifestFile(join(dir, 'function.json'));
    const info = await p.deployFunction(manifest, artefact);
    const cold = await p.invoke({ function: info.name, mode: 'cold', input: Buffer.from(c.input) });
    const out = Buffer.from(cold.output).toString();
    assert.equal(c.kind === 'python' ? JSON.stringify(JSON.parse(out)) : out, c.expected);
    const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
    const restored = await p.invoke({ function: info.name, mode: 'snapshot', snapshotId: snap.id, input: Buffer.from(c.input), keep: false });
    assert.equal(Buffer.from(restored.output).toString(), out);
    await p.deleteSandbox(cold.sandboxId);
  });
}

test('thaw init refuses a non-empty directory and an unknown kind', () => {
  const dir = join(scratch, 'taken');
  initFunction('python', dir);
  writeFileSync(join(dir, 'mine.txt'), 'keep me');
  assert.throws(() => initFunction('python', dir), /THAW_CONFIG_INVALID|not empty/);
  assert.throws(() => initFunction('rust', join(scratch, 'r')), /unknown kind 'rust'/);
});

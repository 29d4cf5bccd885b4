// The Python suite functions end to end: each deploys on a fresh platform, reads its small input
// from the object store and writes an output that passes its independent check on the cold,
// snapshot-restore and warm paths. Also the guest's pyaes library against the FIPS-197 vectors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readManifestFile } from '../cli/context.js';
import type { Platform } from '../platform/platform.js';
import type { InvokeMode } from '../platform/types.js';
import { PYTHON_SUITE } from '../suite/python-functions.js';
import type { SuiteFunction, SuiteInput, SuiteReply } from '../suite/suite.js';
import { newPlatform, text } from './helpers.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function deploySuite(p: Platform, fn: SuiteFunction, patch: Record<string, unknown> = {}, extraSource = ''): Promise<void> {
  const { manifest, artefact } = readManifestFile(join(REPO_ROOT, fn.dir, 'function.json'));
  await p.deployFunction({ ...manifest, ...patch }, Buffer.concat([artefact, Buffer.from(extraSource)]));
}

/** Invokes one path, then checks its reply and the output object it wrote (removed first, so a stale one cannot pass). */
async function invokeAndCheck(p: Platform, fn: SuiteFunction, input: SuiteInput, mode: InvokeMode, extra: { snapshotId?: string; sandboxId?: string; keep?: boolean }): Promise<string> {
  const event = fn.event(input);
  const outputKey = (JSON.parse(text(event)) as { output: string }).output;
  await p.deleteObject(outputKey).catch(() => undefined);
  const res = await p.invoke({ function: fn.name, mode, input: event, ...extra });
  const reply = JSON.parse(text(res.output)) as SuiteReply;
  fn.check(input, reply, await p.getObject(reply.output_key));
  return res.sandboxId;
}

for (const fn of PYTHON_SUITE) {
  test(`${fn.name}: check() passes on the cold, snapshot and warm paths`, async () => {
    const p = newPlatform({ preparedPerFunction: 1 });
    try {
      await deploySuite(p, fn);
      const input = fn.smallInput();
      await p.putObject(input.key, input.bytes);
      const coldId = await invokeAndCheck(p, fn, input, 'cold', {});
      const snap = await p.createSnapshot({ sandboxId: coldId });
      await invokeAndCheck(p, fn, input, 'snapshot', { snapshotId: snap.id, keep: false });
      await invokeAndCheck(p, fn, input, 'warm', { sandboxId: coldId });
    } finally {
      await p.close();
    }
  });
}

test('check() rejects outputs that are not the right computation', () => {
  const byName = (name: string): SuiteFunction => PYTHON_SUITE.find((f) => f.name === name) ?? assert.fail(name);
  const reply = (fn: SuiteFunction, input: SuiteInput, summary: Record<string, unknown>): SuiteReply => ({
    read_s: 0, process_s: 0, write_s: 0, output_key: (JSON.parse(text(fn.event(input))) as { output: string }).output, summary,
  });
  const json = byName('json');
  const doc = json.smallInput();
  const changed = Buffer.from(JSON.stringify({ ...(JSON.parse(text(doc.bytes)) as object), extra: 1 }, null, 4));
  assert.throws(() => json.check(doc, reply(json, doc, {}), changed), /differs/);
  const pyaes = byName('pyaes');
  const msg = pyaes.smallInput();
  assert.throws(() => pyaes.check(msg, reply(pyaes, msg, { round_trip: true }), msg.bytes), /decrypt/);
  const read = byName('read');
  const strides = read.smallInput();
  assert.throws(() => read.check(strides, reply(read, strides, { sum: -1 }), Buffer.from('{}')), /sum/);
  const image = byName('image');
  const png = image.smallInput();
  assert.throws(() => image.check(png, reply(image, png, {}), Buffer.concat([png.bytes, png.bytes, png.bytes])), /rotated by 90/);
});

// FIPS-197 Appendix C: the same plaintext under 128-, 192- and 256-bit keys.
const FIPS_197 = [
  { key: '000102030405060708090a0b0c0d0e0f', ciphertext: '69c4e0d86a7b0430d8cdb78070b4c55a' },
  { key: '000102030405060708090a0b0c0d0e0f1011121314151617', ciphertext: 'dda97ca4864cdfe06eaf70a0ec0d7191' },
  { key: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', ciphertext: '8ea2b7ca516745bfeafc49904b496089' },
] as const;
const FIPS_PLAINTEXT = '00112233445566778899aabbccddeeff';

// A test-only entry point appended to the pyaes guest source: one block through the library's AES
// class (pyaes.AES works on lists of byte values).
const FIPS_HANDLER = `

def fips_handler(event, context):
    aes = pyaes.AES(bytes.fromhex(event["key"]))
    ciphertext = bytes(aes.encrypt(list(bytes.fromhex(event["plaintext"]))))
    return {"ciphertext": ciphertext.hex(), "decrypted": bytes(aes.decrypt(list(ciphertext))).hex()}
`;

test('the pyaes library in the guest matches the FIPS-197 Appendix C vectors (AES-128, -192, -256)', async () => {
  const pyaes = PYTHON_SUITE.find((f) => f.name === 'pyaes') ?? assert.fail('no pyaes');
  assert.match(readFileSync(join(REPO_ROOT, pyaes.dir, 'handler.py'), 'utf8'), /^import pyaes$/m);
  const p = newPlatform();
  try {
    await deploySuite(p, pyaes, { name: 'pyaes-fips', handler: 'fips_handler' }, FIPS_HANDLER);
    let sandboxId: string | undefined;
    for (const v of FIPS_197) {
      const input = Buffer.from(JSON.stringify({ key: v.key, plaintext: FIPS_PLAINTEXT }));
      const res = await p.invoke({ function: 'pyaes-fips', mode: sandboxId === undefined ? 'cold' : 'warm', input, ...(sandboxId !== undefined && { sandboxId }) });
      sandboxId = res.sandboxId;
      assert.deepEqual(JSON.parse(text(res.output)), { ciphertext: v.ciphertext, decrypted: FIPS_PLAINTEXT }, `key of ${v.key.length * 4} bits`);
    }
  } finally {
    await p.close();
  }
});

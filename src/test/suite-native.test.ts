// The C (wasi) suite functions end to end on the in-process platform: each runs its small input
// cold, from a snapshot of the cold sandbox, and warm, and every output passes the function's
// check against an independent TypeScript computation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newPlatform, text } from './helpers.js';
import { readManifestFile } from '../cli/context.js';
import { NATIVE_SUITE } from '../suite/native-functions.js';
import type { SuiteFunction, SuiteInput, SuiteReply } from '../suite/suite.js';
import type { Platform } from '../platform/platform.js';
import type { InvokeRequest } from '../platform/types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Invokes, then checks the reply and the output object the function wrote. */
async function invokeAndCheck(p: Platform, fn: SuiteFunction, input: SuiteInput, req: Omit<InvokeRequest, 'function' | 'input'>): Promise<string> {
  const res = await p.invoke({ ...req, function: fn.name, input: fn.event(input) });
  const reply = JSON.parse(text(res.output)) as SuiteReply;
  const output = await p.getObject(reply.output_key);
  fn.check(input, reply, output);
  await p.deleteObject(reply.output_key);
  return res.sandboxId;
}

for (const fn of NATIVE_SUITE) {
  test(`${fn.name}: the small input is correct cold, from a snapshot and warm`, async () => {
    const p = newPlatform({ preparedPerFunction: 1 });
    try {
      for (const obj of fn.initObjects()) await p.putObject(obj.key, obj.bytes);
      const input = fn.smallInput();
      await p.putObject(input.key, input.bytes);
      const { manifest, artefact } = readManifestFile(join(ROOT, fn.dir, 'function.json'));
      await p.deployFunction(manifest, artefact);

      const coldId = await invokeAndCheck(p, fn, input, { mode: 'cold' });
      const snap = await p.createSnapshot({ sandboxId: coldId });
      assert.equal(snap.function, fn.name);
      await invokeAndCheck(p, fn, input, { mode: 'snapshot', snapshotId: snap.id, keep: false });
      await invokeAndCheck(p, fn, input, { mode: 'warm', sandboxId: coldId });
    } finally {
      await p.close();
    }
  });
}

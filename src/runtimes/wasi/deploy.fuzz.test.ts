// Property test of the wasi deployer on untrusted modules: deploy() of a mutated module (our
// example builds and generated ones) refuses with THAW_MODULE_INVALID, THAW_MODULE_NOT_WASI or
// THAW_HANDLER_MISSING, or stores an artefact WebAssembly.validate() accepts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FunctionParams } from '../../core/function-spec.js';
import { wasiDeployer } from './deploy.js';
import { buildModule, builtModules, moduleSpecArb } from '../../test/fuzz/_wasm-modules.js';
import { checkAsync, decodesAsync, mutate, mutationPlanArb } from '../../test/fuzz/_fuzz.js';

const fn: FunctionParams = Object.freeze({
  name: 'fuzz', runtime: 'wasi', artefactPath: '/dev/null', memoryMiB: 64, handler: 'handle', timeoutMs: 1000, initTimeoutMs: 60000, maxInputBytes: 1024, maxOutputBytes: 1024, description: '',
});

test('wasiDeployer.deploy() refuses mutated modules with a catalogue code or stores a valid artefact', async () => {
  // The smallest two builds (hello-as, a C function) and generated modules, whose handler is 'handle'.
  const seeds = [...builtModules().slice(0, 2), ...fc.sample(moduleSpecArb, { seed: 3, numRuns: 16 }).map(buildModule)];
  const input = fc.oneof(
    mutationPlanArb.map((plan) => mutate(seeds, plan.mutations, plan.seed)),
    moduleSpecArb.map((spec) => Buffer.from(buildModule(spec))),
  );
  await checkAsync('wasm-deploy', 300, input, async (bytes) => {
    const r = await decodesAsync(['THAW_MODULE_INVALID', 'THAW_MODULE_NOT_WASI', 'THAW_HANDLER_MISSING'], 64 * bytes.length + (1 << 16), () => wasiDeployer.deploy(fn, bytes));
    if (r.ok) {
      assert.ok(WebAssembly.validate(r.value.bytes), 'the stored artefact validates');
      assert.equal(r.value.facts.sizeBytes, r.value.bytes.length);
    }
  });
});

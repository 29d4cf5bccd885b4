// Property test of the function manifest parser: parseFunctionConfig() on random JSON and on
// mutated copies of our example manifests refuses with THAW_CONFIG_INVALID / THAW_RUNTIME_UNKNOWN
// or returns frozen params inside every documented range.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { RUNTIME_IDS, parseFunctionConfig } from './function-spec.js';
import { REPO_ROOT } from '../runtimes/wasi/_wasm-fixtures.js';
import { check, decodes, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

const FIELDS = ['name', 'runtime', 'module', 'source', 'memoryMiB', 'handler', 'timeoutMs', 'maxInputBytes', 'description'];

/** Manifests with the known fields holding any JSON (and sometimes an unknown field). */
const manifestArb = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 6 })), fc.oneof(
    fc.jsonValue({ maxDepth: 1 }), fc.constantFrom('wasi', 'python', 'hello', 'handle', 'a.wasm', 256, 48, 4096, 4097, 0, -1, 1.5),
  ), { maxKeys: 9 }),
);

function exampleManifests(): Buffer[] {
  const dir = join(REPO_ROOT, 'functions');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => existsSync(join(dir, n, 'function.json'))).map((n) => readFileSync(join(dir, n, 'function.json')));
}

function assertParams(p: ReturnType<typeof parseFunctionConfig>): void {
  assert.ok(Object.isFrozen(p));
  assert.match(p.name, /^[a-z0-9][a-z0-9-_]{0,62}$/);
  assert.ok((RUNTIME_IDS as readonly string[]).includes(p.runtime));
  assert.ok(Number.isInteger(p.memoryMiB) && p.memoryMiB >= 1 && p.memoryMiB <= 4096);
  assert.ok(Number.isInteger(p.timeoutMs) && p.timeoutMs >= 1 && p.timeoutMs <= 15 * 60_000);
  assert.ok(Number.isInteger(p.maxInputBytes) && p.maxInputBytes >= 0 && p.maxInputBytes <= 1 << 30);
  assert.match(p.handler, /^[A-Za-z_][A-Za-z0-9_]*$/);
  assert.equal(typeof p.description, 'string');
  assert.ok(p.artefactPath.startsWith('/resolved/'), 'the artefact path went through resolvePath');
}

test('parseFunctionConfig() refuses bad manifests with a catalogue code or returns params in range', () => {
  const seeds = exampleManifests();
  const input = fc.oneof(
    manifestArb,
    // Mutated text of the real manifests: only what still parses as JSON reaches the validator.
    mutationPlanArb.map((plan) => {
      try {
        return JSON.parse(mutate(seeds, plan.mutations, plan.seed).toString('utf8')) as unknown;
      } catch {
        return null;
      }
    }),
  );
  check('function-manifest', 3000, input, (raw) => {
    const r = decodes(['THAW_CONFIG_INVALID', 'THAW_RUNTIME_UNKNOWN'], 1 << 16, () => parseFunctionConfig(raw, (p) => `/resolved/${p}`));
    if (r.ok) assertParams(r.value);
  });
});

// Property test of the experiment config parser: parseBenchConfig() on mutated copies of the
// shipped configs and on random variations of them refuses with THAW_CONFIG_INVALID or returns
// frozen params that keep every cross-field rule (inputs in range, paired parallelism, unique ids).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { SHIPPED_CONFIG_DIR, parseBenchConfig, shippedConfigs, type BenchParams } from './bench-config.js';
import { LONG_RUN, checkAsync, decodesAsync, mutate, mutationPlanArb } from '../test/fuzz/_fuzz.js';

const FIELDS = ['name', 'description', 'settings', 'functions', 'record_input', 'test_input', 'repeat', 'parallelism', 'par_snapshots', 'storage', 'object_store', 'output_dir', 'trace_export'];

function assertParams(p: BenchParams): void {
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.settings) && Object.isFrozen(p.functions));
  assert.ok(p.settings.length > 0 && p.functions.length > 0);
  assert.equal(new Set(p.functions.map((f) => f.id)).size, p.functions.length, 'function ids unique');
  for (const i of [...p.recordInputs, ...p.testInputs]) for (const f of p.functions) assert.ok(Number.isInteger(i) && i >= 0 && i < f.params.length, 'inputs in range');
  for (const { parallelism, parSnapshots } of p.parallel) assert.ok(parSnapshots >= 1 && parSnapshots <= parallelism);
  assert.ok(Number.isInteger(p.repeat) && p.repeat >= 1 && p.repeat <= 10_000);
}

/**
 * No network in a test: a Redis URL is checked by connecting to it, so those become 'embedded'
 * (their parsing is parseObjectStoreConfig's, fuzzed with the daemon settings).
 */
function offline(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const o = raw as Record<string, unknown>;
  return typeof o.object_store === 'string' && o.object_store.startsWith('redis://') ? { ...o, object_store: 'embedded' } : raw;
}

test('parseBenchConfig() refuses bad configs with THAW_CONFIG_INVALID or returns params keeping its cross-field rules', async () => {
  // six-inputs makes the first validation generate every sweep input (~6 s): long runs only.
  const texts = shippedConfigs().filter((n) => LONG_RUN || n !== 'six-inputs').map((n) => readFileSync(join(SHIPPED_CONFIG_DIR, `${n}.json`)));
  const shipped = texts.map((t) => JSON.parse(t.toString('utf8')) as Record<string, unknown>);
  const input = fc.oneof(
    mutationPlanArb.map((plan) => {
      try {
        return JSON.parse(mutate(texts, plan.mutations, plan.seed).toString('utf8')) as unknown;
      } catch {
        return null;
      }
    }),
    // A shipped config with some fields replaced by random JSON or dropped.
    fc.tuple(fc.nat(), fc.dictionary(fc.constantFrom(...FIELDS), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }), { maxKeys: 3 }))
      .map(([i, patch]) => ({ ...shipped[i % shipped.length], ...patch })),
    fc.jsonValue({ maxDepth: 3 }),
  );
  await checkAsync('bench-config', 600, input, async (raw) => {
    // A config has no length fields; what it allocates is the suite's generated inputs (MBs).
    const r = await decodesAsync(['THAW_CONFIG_INVALID'], 256 << 20, () => parseBenchConfig(offline(raw)));
    if (r.ok) assertParams(r.value);
  });
});

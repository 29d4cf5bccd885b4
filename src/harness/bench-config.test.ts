// parseBenchConfig(): every rejection rule names its field with THAW_CONFIG_INVALID, defaults
// are filled in, and every shipped config validates.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ThawError } from '../core/errors.js';
import { freePort } from '../store/testing/redis-server.js';
import { BENCH_CONFIG_ERRORS, loadBenchConfigFile, parseBenchConfig, shippedConfigs, type BenchConfig } from './bench-config.js';

/** A small valid config; tests change one thing at a time. */
function base(): BenchConfig {
  return {
    name: 'unit',
    settings: { warm: { strategy: 'warm' }, vanilla: { strategy: 'vanilla' }, cached: { strategy: 'vanilla-cache' } },
    functions: [{ name: 'hello' }, { id: 'c', name: 'hello-c', params: ['example:0', 'example:1', 'example:2'] }],
    record_input: [0],
    test_input: [1],
    object_store: 'embedded',
  };
}

async function rejects(cfg: unknown, field: string, what: string): Promise<ThawError> {
  try {
    await parseBenchConfig(cfg);
  } catch (err: unknown) {
    assert.ok(err instanceof ThawError, String(err));
    assert.equal(err.code, 'THAW_CONFIG_INVALID');
    assert.ok(err.message.includes(`${field} ${what}`), `expected '${field} ${what}' in: ${err.message}`);
    return err;
  }
  assert.fail(`expected THAW_CONFIG_INVALID for ${field}`);
}

test('parseBenchConfig() fills in the defaults and freezes the result', async () => {
  const p = await parseBenchConfig(base());
  assert.equal(p.repeat, 1);
  assert.deepEqual(p.parallel, [{ parallelism: 1, parSnapshots: 1 }]);
  assert.equal(p.storage, 'disk');
  assert.deepEqual(p.functions.map((f) => [f.id, f.params]), [['hello', ['two:0', 'two:1']], ['c', ['example:0', 'example:1', 'example:2']]]);
  const byId = Object.fromEntries(p.settings.map((s) => [s.id, s]));
  assert.equal(byId['warm']!.kind, 'warm');
  assert.equal(byId['vanilla']!.dropCache, 'snapshot-files', 'disk tier: cold cache');
  assert.equal(byId['cached']!.dropCache, 'none', 'vanilla-cache keeps its cache');
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.settings));
});

test('parseBenchConfig() marks recording strategies for a record run', async () => {
  const p = await parseBenchConfig({ ...base(), settings: { reap: { strategy: 'reap' }, eager: { strategy: 'eager' }, forced: { strategy: 'eager', prepare: { record_run: true } } } });
  assert.deepEqual(p.settings.map((s) => s.recordRun), [true, false, true]);
});

test('parseBenchConfig() rejects unknown fields at the top and inside a setting', async () => {
  await rejects({ ...base(), vcpus: 2 }, 'vcpus', BENCH_CONFIG_ERRORS.unknownField);
  await rejects({ ...base(), settings: { x: { strategy: 'eager', prefetch: true } } }, 'settings.x.prefetch', BENCH_CONFIG_ERRORS.unknownField);
  await rejects({ ...base(), settings: { x: { strategy: 'eager', invoke: { drop: 1 } } } }, 'settings.x.invoke.drop', BENCH_CONFIG_ERRORS.unknownField);
  await rejects({ ...base(), functions: [{ name: 'hello', input: 1 }] }, 'functions[0].input', BENCH_CONFIG_ERRORS.unknownField);
});

test('parseBenchConfig() rejects missing and mistyped fields', async () => {
  const { settings: _settings, ...noSettings } = base();
  await rejects(noSettings, 'settings', 'is required');
  await rejects({ ...base(), repeat: 0 }, 'repeat', BENCH_CONFIG_ERRORS.schema);
  await rejects({ ...base(), storage: 'floppy' }, 'storage', BENCH_CONFIG_ERRORS.schema);
});

test('parseBenchConfig() rejects an unknown strategy unless the setting is optional', async () => {
  await rejects({ ...base(), settings: { fast: { strategy: 'teleport' } } }, 'settings.fast.strategy', BENCH_CONFIG_ERRORS.unknownStrategy);
  const p = await parseBenchConfig({ ...base(), settings: { fast: { strategy: 'teleport', optional: true }, warm: { strategy: 'warm' } } });
  assert.match(p.settings[0]!.skipReason ?? '', /teleport/);
  assert.equal(p.settings[1]!.skipReason, null);
});

test('parseBenchConfig() rejects an unknown function', async () => {
  const err = await rejects({ ...base(), functions: [{ name: 'ffmpeg-9000' }] }, 'functions[0].name', BENCH_CONFIG_ERRORS.unknownFunction);
  assert.match(err.message, /known: .*hello/);
});

test('parseBenchConfig() rejects input references a function does not have', async () => {
  await rejects({ ...base(), functions: [{ name: 'hello', params: ['two:0', 'two:7'] }] }, 'functions[0].params[1]', BENCH_CONFIG_ERRORS.badInputRef);
  await rejects({ ...base(), functions: [{ name: 'hello', params: ['two:0', 'example:1'] }] }, 'functions[0].params[1]', BENCH_CONFIG_ERRORS.badInputRef);
  await rejects({ ...base(), functions: [{ name: 'hello-c', params: ['example:0', 'example:99'] }] }, 'functions[0].params[1]', BENCH_CONFIG_ERRORS.badInputRef);
});

test('parseBenchConfig() rejects record and test input indices out of range', async () => {
  await rejects({ ...base(), record_input: [2] }, 'record_input[0]', BENCH_CONFIG_ERRORS.inputOutOfRange);
  await rejects({ ...base(), test_input: [1, 5] }, 'test_input[1]', BENCH_CONFIG_ERRORS.inputOutOfRange);
});

test('parseBenchConfig() rejects parallelism and par_snapshots lists that do not pair', async () => {
  await rejects({ ...base(), parallelism: [1, 2, 4], par_snapshots: [1, 2] }, 'par_snapshots', BENCH_CONFIG_ERRORS.lengthMismatch);
  await rejects({ ...base(), parallelism: [2], par_snapshots: [4] }, 'par_snapshots[0]', BENCH_CONFIG_ERRORS.parSnapshotsRange);
  const p = await parseBenchConfig({ ...base(), parallelism: [1, 4, 4], par_snapshots: [1, 1, 4] });
  assert.deepEqual(p.parallel.map((x) => [x.parallelism, x.parSnapshots]), [[1, 1], [4, 1], [4, 4]]);
});

test('parseBenchConfig() rejects duplicate function ids', async () => {
  await rejects({ ...base(), functions: [{ name: 'hello' }, { name: 'hello' }] }, 'functions[1].id', BENCH_CONFIG_ERRORS.duplicateId);
});

test('parseBenchConfig() rejects an unreachable Redis at start', async () => {
  const port = await freePort();
  await rejects({ ...base(), object_store: `redis://127.0.0.1:${port}/0` }, 'object_store', BENCH_CONFIG_ERRORS.unreachable);
  await rejects({ ...base(), object_store: 'memcached://x' }, 'object_store', BENCH_CONFIG_ERRORS.schema);
});

test('loadBenchConfigFile() finds shipped configs by name, and every shipped config validates', async () => {
  const names = shippedConfigs();
  for (const want of ['smoke', 'two-inputs', 'six-inputs', 'parallel', 'remote-storage-like']) assert.ok(names.includes(want), `${want} shipped`);
  for (const name of names) {
    const { raw } = loadBenchConfigFile(name);
    const p = await parseBenchConfig({ ...(raw as object), object_store: 'embedded' });
    assert.equal(p.name, name);
  }
  assert.throws(() => loadBenchConfigFile('no-such-experiment'), (e: unknown) => e instanceof ThawError && e.code === 'THAW_CONFIG_INVALID');
});

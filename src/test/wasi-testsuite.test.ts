// The WASI test suite (issue 13 item 2): each preview1 test of WebAssembly/wasi-testsuite
// (vendored in third_party/wasi-testsuite) deployed as a command function and invoked cold
// through the platform, its exit code and stdout compared with its spec. The tests expected to
// fail are listed with their reasons in wasi-testsuite.expectations.json: a test fails when its
// result differs from that list, a regression or a newly passing test not yet taken off it.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../core/errors.js';
import { newPlatform, text } from './helpers.js';
import { loadWasiTestSuite, type WasiTestSpec } from './_wasi-testsuite.js';

const EXPECTATIONS_PATH = fileURLToPath(new URL('../../src/test/wasi-testsuite.expectations.json', import.meta.url));
/** Test id -> why it fails under Thaw. */
const expectedFailures = (JSON.parse(readFileSync(EXPECTATIONS_PATH, 'utf8')) as { failures: Record<string, string> }).failures;

const p = newPlatform({ maxIdleSandboxes: 2 });
after(() => p.close());
const specs = loadWasiTestSuite();

/** Runs one test as a function; returns null when it passes, else what went wrong. */
async function run(spec: WasiTestSpec, fnName: string): Promise<string | null> {
  await p.deployFunction({
    name: fnName, runtime: 'wasi', module: spec.wasmPath, memoryMiB: 256, timeoutMs: 20_000,
    command: { args: spec.args, env: spec.env, ...(spec.rootDir === null ? {} : { scratch: { path: '/', seed: spec.rootDir } }) },
  }, readFileSync(spec.wasmPath));
  let exitCode = 0;
  let stdout = '';
  try {
    stdout = text((await p.invoke({ function: fnName, mode: 'cold', input: new Uint8Array(0), keep: false })).output);
  } catch (err: unknown) {
    if (!(err instanceof ThawError)) throw err;
    if (err.code !== 'THAW_COMMAND_FAILED') return `${err.code}: ${err.message}`;
    exitCode = Number(err.params.exitCode);
  } finally {
    await p.deleteFunction(fnName);
  }
  if (exitCode !== spec.exitCode) return `exit code ${exitCode}, expected ${spec.exitCode}`;
  if (spec.stdout !== null && stdout !== spec.stdout) return `stdout ${JSON.stringify(stdout.slice(0, 200))}, expected ${JSON.stringify(spec.stdout)}`;
  return null;
}

test('the vendored suite holds the 72 preview1 tests, and every expected failure names a test of it', () => {
  assert.equal(specs.length, 72);
  for (const id of Object.keys(expectedFailures)) assert.ok(specs.some((s) => s.id === id), `${id} in the expectations is not a test`);
});

const results = new Map<string, string | null>();
specs.forEach((spec, i) => {
  test(`wasi-testsuite ${spec.id}: ${expectedFailures[spec.id] ? 'fails as expected' : 'passes'}`, async () => {
    const failure = await run(spec, `wasi-ts-${i}`);
    results.set(spec.id, failure);
    const expected = expectedFailures[spec.id];
    if (expected === undefined) assert.equal(failure, null, `${spec.id} failed: ${failure}`);
    else assert.notEqual(failure, null, `${spec.id} passes now: take it off ${EXPECTATIONS_PATH} (listed as: ${expected})`);
  });
});

test('the count: at least as many pass as under node:wasi', () => {
  const passed = [...results.values()].filter((r) => r === null).length;
  process.stdout.write(`# wasi-testsuite under Thaw: ${passed} of ${specs.length} passed\n`);
  for (const [id, r] of results) if (r !== null) process.stdout.write(`#   ${id}: ${r.split("\n").slice(0, 2).join(" ")}\n`);
  // node:wasi passes 59 of 72 on this machine (node dist/bench/wasi-testsuite-node.js).
  assert.ok(passed >= 59, `${passed} passed`);
});

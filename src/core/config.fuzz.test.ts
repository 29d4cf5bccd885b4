// Property test of the daemon settings parser: parseDaemonConfig() on random settings of the
// wire types (flags and env give strings, files numbers and booleans) refuses with
// THAW_CONFIG_INVALID or returns frozen params whose numbers are what the settings said.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ThawError } from './errors.js';
import { parseDaemonConfig, type DaemonConfig } from './config.js';
import { check, decodes } from '../test/fuzz/_fuzz.js';

const INT_FIELDS = ['port', 'spareHosts', 'preparedPerFunction', 'hostOverheadMiB', 'maxIdleSandboxes', 'maxSandboxes'] as const;
const PARAM_OF = { port: 'port', spareHosts: 'spareHosts', preparedPerFunction: 'preparedPerFunction', hostOverheadMiB: 'hostOverheadMiB', maxIdleSandboxes: 'maxIdleSandboxes', maxSandboxes: 'maxSandboxes' } as const;

const DECIMAL = /^\s*[+-]?\d+\s*$/;

/** Numbers as a flag could spell them, and some that are not numbers at all. */
const intSetting = fc.oneof(
  fc.integer({ min: -10, max: 70_000 }), fc.double(),
  fc.integer({ min: -10, max: 70_000 }).map(String),
  fc.constantFrom('', ' ', '0x10', '1e3', '12abc', ' 7 ', '+5', '-0', '07', 'Infinity', 'NaN', '1.0'),
  fc.string({ maxLength: 6 }),
);

const configArb: fc.Arbitrary<DaemonConfig> = fc.record({
  dataDir: fc.constantFrom('/tmp/thaw-fuzz-data', 'rel/dir'),
  host: fc.string({ maxLength: 10 }),
  port: intSetting, spareHosts: intSetting, preparedPerFunction: intSetting, hostOverheadMiB: intSetting, maxIdleSandboxes: intSetting, maxSandboxes: intSetting,
  token: fc.string({ maxLength: 8 }),
  objectStore: fc.oneof(fc.constantFrom('embedded', 'redis://127.0.0.1:6379/0', 'redis://', 'redis://h:99999', 'file:///x'), fc.string({ maxLength: 10 })),
  cgroups: fc.boolean(),
  logLevel: fc.oneof(fc.constantFrom('info', 'debug', 'silent', 'verbose'), fc.string({ maxLength: 5 })),
}, { requiredKeys: [] });

test('parseDaemonConfig() refuses bad settings with THAW_CONFIG_INVALID or returns exactly the numbers given', () => {
  check('daemon-config', 3000, configArb, (cfg) => {
    const r = decodes(['THAW_CONFIG_INVALID'], 1 << 16, () => parseDaemonConfig(cfg));
    if (!r.ok) return;
    assert.ok(Object.isFrozen(r.value));
    for (const f of INT_FIELDS) {
      const given = cfg[f];
      if (given === undefined) continue;
      const got: number = r.value[PARAM_OF[f]];
      assert.ok(Number.isInteger(got), `${f} is an integer`);
      // A string setting is accepted only when it spells an integer in decimal.
      if (typeof given === 'string') assert.ok(DECIMAL.test(given) && Number(given) === got, `${f} '${given}' read as ${got}`);
      else assert.equal(got, given);
    }
  });
});

test('parseDaemonConfig() refuses an empty or non-decimal number setting', () => {
  // Minimal counterexample found by the fuzzer: Number('') is 0, so `--port ''` listened on a random port
  // and `--spare-hosts ' '` kept no spare hosts; '0x10' and '1e3' were read as 16 and 1000.
  for (const bad of ['', ' ', '0x10', '1e3']) {
    assert.throws(() => parseDaemonConfig({ dataDir: '/tmp/x', port: bad }), (err: unknown) => err instanceof ThawError && err.code === 'THAW_CONFIG_INVALID', `port '${bad}'`);
  }
  assert.equal(parseDaemonConfig({ dataDir: '/tmp/x', port: '8080' }).port, 8080);
});

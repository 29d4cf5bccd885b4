// parseFunctionConfig()'s `command` field (WASI commands, issue 13): what it accepts and the
// clear THAW_CONFIG_INVALID it gives for everything else.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ThawError } from './errors.js';
import { parseFunctionConfig } from './function-spec.js';

const base = { name: 'cmd', runtime: 'wasi', module: '/m.wasm' };
const parse = (command: unknown, extra: Record<string, unknown> = {}) => parseFunctionConfig({ ...base, ...extra, command }, (p) => `/abs/${p}`);
const refuses = (command: unknown, pattern: RegExp, extra: Record<string, unknown> = {}): void => {
  assert.throws(() => parse(command, extra), (err: unknown) => err instanceof ThawError && err.code === 'THAW_CONFIG_INVALID' && pattern.test(err.message));
};

test('parseFunctionConfig() reads a command: args, env, read-only dirs, a seeded scratch directory and a response file', () => {
  const fn = parse({ args: ['-f', '-'], env: { LANG: 'C' }, dirs: { '/data/': 'data', '/models': 'm' }, scratch: { path: '/out', seed: 'tpl' }, responseFile: '/out/r.wav' });
  assert.deepEqual(fn.command, {
    args: ['-f', '-'], env: { LANG: 'C' },
    dirs: [{ guestPath: '/data', sourcePath: '/abs/data', bundleName: 'bundle-0' }, { guestPath: '/models', sourcePath: '/abs/m', bundleName: 'bundle-1' }],
    scratch: { guestPath: '/out', seed: { guestPath: '/out', sourcePath: '/abs/tpl', bundleName: 'scratch-seed' } },
    responseFile: '/out/r.wav',
  });
  assert.equal(parseFunctionConfig(base, (p) => p).command, undefined, 'no command field: none in the params (reactors keep their deployment ids)');
  assert.equal(parse({}).command?.scratch, null);
});

test('parseFunctionConfig() refuses a malformed command with THAW_CONFIG_INVALID naming the field', () => {
  refuses('x', /'command' must be an object/);
  refuses({ argv: [] }, /unknown field 'command.argv'/);
  refuses({ args: [1] }, /'command.args\[0\]' must be a string/);
  refuses({ env: { 'A=B': 'x' } }, /'command.env' name 'A=B'/);
  refuses({ dirs: { data: 'd' } }, /must be an absolute guest path/);
  refuses({ dirs: { '/a/../b': 'd' } }, /without '..'/);
  refuses({ dirs: { '/a': 'd' }, scratch: { path: '/a' } }, /guest path '\/a' is given twice/);
  refuses({ scratch: { path: '/out', size: 1 } }, /unknown field 'command.scratch.size'/);
  refuses({ responseFile: '/out/r' }, /must name a file in the scratch directory/);
  refuses({ scratch: { path: '/out' }, responseFile: '/outside/r' }, /must name a file in the scratch directory/);
  refuses({ scratch: { path: '/out' }, responseFile: '/out' }, /must name a file in the scratch directory/);
  refuses({}, /'command' applies to runtime 'wasi' only/, { runtime: 'python', module: undefined, source: '/h.py' });
});

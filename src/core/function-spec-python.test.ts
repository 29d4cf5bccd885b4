// The python manifest fields `bundle`, `requirements`, `packages` and `pyodidePackages`: paths
// resolved, names checked, python only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFunctionConfig } from './function-spec.js';

const resolve = (p: string): string => `/base/${p}`;
const base = { name: 'f', runtime: 'python', source: 'handler.py' };

test('bundle and requirements are resolved against the manifest and absent when not given', () => {
  const fn = parseFunctionConfig({ ...base, bundle: 'app', requirements: ['vendor/a', 'w-1.0-py3-none-any.whl'] }, resolve);
  assert.deepEqual(fn.python, { app: '/base/app', requirements: ['/base/vendor/a', '/base/w-1.0-py3-none-any.whl'], packages: [], pyodidePackages: null });
  assert.deepEqual(parseFunctionConfig({ ...base, requirements: ['x'] }, resolve).python, { app: null, requirements: ['/base/x'], packages: [], pyodidePackages: null });
  assert.equal(parseFunctionConfig(base, resolve).python, undefined);
});

test('bundle and requirements are refused on wasi and when not paths', () => {
  assert.throws(() => parseFunctionConfig({ name: 'f', runtime: 'wasi', module: 'm.wasm', bundle: 'app' }, resolve), /THAW_CONFIG_INVALID|apply to runtime 'python' only/);
  assert.throws(() => parseFunctionConfig({ ...base, requirements: 'vendor/a' }, resolve), /'requirements' must be an array/);
  assert.throws(() => parseFunctionConfig({ ...base, requirements: [3] }, resolve), /'requirements\[0\]' must be a non-empty path/);
  assert.throws(() => parseFunctionConfig({ ...base, bundle: '' }, resolve), /'bundle' must be a non-empty path/);
});

test('packages are names and pyodidePackages a path resolved against the manifest; either alone makes a bundle', () => {
  assert.deepEqual(parseFunctionConfig({ ...base, packages: ['six', 'typing_extensions'], pyodidePackages: 'pkgs' }, resolve).python, {
    app: null, requirements: [], packages: ['six', 'typing_extensions'], pyodidePackages: '/base/pkgs',
  });
  assert.deepEqual(parseFunctionConfig({ ...base, packages: ['six'] }, resolve).python?.pyodidePackages, null);
  assert.throws(() => parseFunctionConfig({ ...base, packages: 'six' }, resolve), /'packages' must be an array/);
  assert.throws(() => parseFunctionConfig({ ...base, packages: ['../six'] }, resolve), /'packages\[0\]' must be a package name/);
  assert.throws(() => parseFunctionConfig({ ...base, pyodidePackages: 7 }, resolve), /'pyodidePackages' must be a non-empty path/);
  assert.throws(() => parseFunctionConfig({ name: 'f', runtime: 'wasi', module: 'm.wasm', packages: ['six'] }, resolve), /apply to runtime 'python' only/);
});

// Tests of the embedded store: both faces, binary values, key mapping and atomic writes.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { EmbeddedStore, EmbeddedSyncStore, keyToSegments } from './embedded-store.js';

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const ESCAPING_KEYS = ['..', '../x', '../../etc/passwd', '/etc/passwd', 'a/../../b', '.', './x', '%2e%2e/x', 'a\\..\\b', '.tmp-0123456789abcdef'];

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'thaw-embedded-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Every file under `root`, relative, recursively. */
function filesUnder(root: string): string[] {
  return fs.readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

describe('EmbeddedStore', () => {
  test('put() then get() returns the same bytes, and list()/delete() see the key', async () => {
    const store = await EmbeddedStore.open(dir);
    await store.put('inputs/a.json', new TextEncoder().encode('{"a":1}'));
    assert.equal(new TextDecoder().decode(await store.get('inputs/a.json')), '{"a":1}');
    assert.deepEqual(await store.list(), ['inputs/a.json']);
    assert.deepEqual(await store.list('inputs/'), ['inputs/a.json']);
    assert.deepEqual(await store.list('outputs/'), []);
    assert.equal(await store.delete('inputs/a.json'), true);
    assert.equal(await store.delete('inputs/a.json'), false);
    assert.equal(await store.get('inputs/a.json'), undefined);
    await store.close();
  });

  test('get() returns every one of the 256 byte values unchanged', async () => {
    const store = await EmbeddedStore.open(dir);
    await store.put('bin', ALL_BYTES);
    const back = await store.get('bin');
    assert.ok(back instanceof Uint8Array);
    assert.deepEqual(back, ALL_BYTES);
    await store.put('empty', new Uint8Array(0));
    assert.deepEqual(await store.get('empty'), new Uint8Array(0));
  });

  test('get() returns undefined for a missing key', async () => {
    const store = await EmbeddedStore.open(dir);
    assert.equal(await store.get('never-written'), undefined);
  });

  test('put() overwrites atomically and leaves no temp files behind', async () => {
    const store = await EmbeddedStore.open(dir);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put('same', new Uint8Array(1000).fill(i))));
    const back = await store.get('same');
    assert.ok(back !== undefined && back.length === 1000 && back.every((b) => b === back[0]));
    assert.deepEqual(filesUnder(dir).filter((f) => path.basename(f).startsWith('.')), []);
  });

  test('operations reject invalid keys with THAW_REQUEST_INVALID', async () => {
    const store = await EmbeddedStore.open(dir);
    for (const key of ['', 'a\0b', 'x'.repeat(513), '\uD800']) {
      await assert.rejects(store.put(key, ALL_BYTES), { code: 'THAW_REQUEST_INVALID' });
      await assert.rejects(store.get(key), { code: 'THAW_REQUEST_INVALID' });
    }
  });

  test('calls after close() fail with THAW_OBJECT_STORE', async () => {
    const store = await EmbeddedStore.open(dir);
    await store.close();
    await assert.rejects(store.get('a'), { code: 'THAW_OBJECT_STORE' });
  });
});

describe('EmbeddedSyncStore', () => {
  test('put() then get() round-trips all 256 byte values, and the async face reads them', async () => {
    const store = new EmbeddedSyncStore(dir);
    store.put('bin/all', ALL_BYTES);
    assert.deepEqual(store.get('bin/all'), ALL_BYTES);
    assert.equal(store.get('missing'), undefined);
    assert.deepEqual(await (await EmbeddedStore.open(dir)).get('bin/all'), ALL_BYTES);
    assert.equal(store.delete('bin/all'), true);
    store.close();
    assert.throws(() => store.get('bin/all'), { code: 'THAW_OBJECT_STORE' });
  });

  test('put() leaves no temp files, only the object file', () => {
    const store = new EmbeddedSyncStore(dir);
    for (let i = 0; i < 10; i++) store.put('k', new Uint8Array([i]));
    assert.deepEqual(filesUnder(dir), ['k.o']);
  });

  test('path-escaping keys stay inside the directory and round-trip', () => {
    const root = path.join(dir, 'store');
    const store = new EmbeddedSyncStore(root);
    ESCAPING_KEYS.forEach((key, i) => store.put(key, new Uint8Array([i])));
    ESCAPING_KEYS.forEach((key, i) => assert.deepEqual(store.get(key), new Uint8Array([i]), key));
    assert.deepEqual(fs.readdirSync(dir), ['store'], 'nothing written next to the store');
    assert.deepEqual(store.list(), [...ESCAPING_KEYS].sort());
    for (const file of filesUnder(root)) assert.ok(!file.split(path.sep).some((s) => s === '..' || s === '.'), file);
  });

  test('a 512-byte key of multi-byte characters fits NAME_MAX and round-trips', () => {
    const store = new EmbeddedSyncStore(dir);
    const key = 'é'.repeat(256); // 512 UTF-8 bytes, 1,536 encoded characters
    store.put(key, ALL_BYTES);
    store.put(key.slice(0, 100), ALL_BYTES.subarray(1));
    assert.deepEqual(store.get(key), ALL_BYTES);
    assert.deepEqual(store.list(), [key.slice(0, 100), key].sort());
    for (const file of filesUnder(dir)) assert.ok(file.split(path.sep).every((s) => Buffer.byteLength(s) <= 255));
  });

  test('list() ignores files the store did not write', () => {
    const store = new EmbeddedSyncStore(dir);
    store.put('real', ALL_BYTES);
    fs.writeFileSync(path.join(dir, 'README'), 'x');
    fs.writeFileSync(path.join(dir, 'a%2e.o'), 'x'); // not canonical: '.' would be %2E
    fs.writeFileSync(path.join(dir, '.tmp-deadbeef'), 'x');
    assert.deepEqual(store.list(), ['real']);
  });
});

describe('keyToSegments()', () => {
  test('keyToSegments() percent-encodes everything outside [A-Za-z0-9_-]', () => {
    assert.deepEqual(keyToSegments('../x'), ['%2E%2E%2Fx.o']);
    assert.deepEqual(keyToSegments('a_b-C9'), ['a_b-C9.o']);
  });

  test('keyToSegments() splits long encodings into .d directories', () => {
    const segments = keyToSegments('a'.repeat(450));
    assert.deepEqual(segments.map((s) => s.length), [202, 202, 52]);
    assert.ok(segments[0]?.endsWith('.d') && segments[2]?.endsWith('.o'));
  });
});

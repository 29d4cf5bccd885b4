// Tests of the store configuration parser and the two factories.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { openObjectStore, openSyncObjectStore, parseObjectStoreConfig } from './open-store.js';
import { freePort } from './testing/redis-server.js';

describe('parseObjectStoreConfig()', () => {
  test('parseObjectStoreConfig() normalises a redis url to redis://host:port/db', () => {
    assert.deepEqual(parseObjectStoreConfig({ kind: 'redis', url: 'redis://localhost' }), { kind: 'redis', url: 'redis://localhost:6379/0' });
    assert.deepEqual(parseObjectStoreConfig({ kind: 'redis', url: 'redis://10.0.0.2:7000/3' }), { kind: 'redis', url: 'redis://10.0.0.2:7000/3' });
    assert.deepEqual(parseObjectStoreConfig({ kind: 'redis', url: 'redis://[::1]:7000/' }), { kind: 'redis', url: 'redis://[::1]:7000/0' });
  });

  test('parseObjectStoreConfig() makes an embedded dir absolute and freezes the result', () => {
    const config = parseObjectStoreConfig({ kind: 'embedded', dir: 'objects' });
    assert.deepEqual(config, { kind: 'embedded', dir: path.resolve('objects') });
    assert.ok(Object.isFrozen(config));
  });

  test('parseObjectStoreConfig() rejects bad input with THAW_CONFIG_INVALID', () => {
    const bad: unknown[] = [
      null,
      [],
      'redis://x',
      { kind: 's3', url: 'redis://x' },
      { kind: 'embedded', dir: '/x', url: 'redis://x' },
      { kind: 'embedded', dir: '/x', extra: 1 },
      { kind: 'embedded', dir: '' },
      { kind: 'embedded' },
      { kind: 'redis', url: 'http://x:1/0' },
      { kind: 'redis', url: 'redis://user:secret@x:1/0' },
      { kind: 'redis', url: 'redis://x:1/db' },
      { kind: 'redis', url: 'redis://x:1/0?tls=1' },
      { kind: 'redis', url: 'not a url' },
      { kind: 'redis' },
    ];
    for (const raw of bad) assert.throws(() => parseObjectStoreConfig(raw), { code: 'THAW_CONFIG_INVALID' }, JSON.stringify(raw));
  });
});

describe('openObjectStore()', () => {
  test('openObjectStore() and openSyncObjectStore() open the same embedded directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'thaw-open-'));
    try {
      const sync = openSyncObjectStore({ kind: 'embedded', dir });
      sync.put('k', Uint8Array.of(1, 2, 3));
      const store = await openObjectStore({ kind: 'embedded', dir });
      assert.equal(store.kind, 'embedded');
      assert.deepEqual(await store.get('k'), Uint8Array.of(1, 2, 3));
      await store.close();
      sync.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('openObjectStore() validates wire input before opening anything', async () => {
    await assert.rejects(openObjectStore({ kind: 'redis', url: 'redis://x', tls: true } as never), { code: 'THAW_CONFIG_INVALID' });
    assert.throws(() => openSyncObjectStore({ kind: 'nope' } as never), { code: 'THAW_CONFIG_INVALID' });
  });

  test('openObjectStore() on an unreachable redis fails with THAW_OBJECT_STORE', { timeout: 5000 }, async () => {
    await assert.rejects(openObjectStore({ kind: 'redis', url: `redis://127.0.0.1:${await freePort()}/0` }), { code: 'THAW_OBJECT_STORE' });
  });

  test('openSyncObjectStore() on an unreachable redis opens nothing until first use, then fails that use', { timeout: 10_000 }, async () => {
    const store = openSyncObjectStore({ kind: 'redis', url: `redis://127.0.0.1:${await freePort()}/0` }, { connectTimeoutMs: 200 });
    assert.equal(store.kind, 'redis');
    assert.throws(() => store.get('k'), { code: 'THAW_OBJECT_STORE', message: /unreachable/ });
    assert.throws(() => store.put('k', Uint8Array.of(1)), { code: 'THAW_OBJECT_STORE' });
    store.close();
    assert.throws(() => store.get('k'), { code: 'THAW_OBJECT_STORE', message: /closed/ });
  });
});

// Tests of the async Redis store against a real redis-server, and its bounded failures.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { RedisStore } from './redis-store.js';
import { freePort, redisServerSkipReason, startRedisServer, type RedisServer } from './testing/redis-server.js';

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('RedisStore', { skip: redisServerSkipReason() }, () => {
  let server: RedisServer;
  let store: RedisStore;
  before(async () => {
    server = await startRedisServer();
    store = await RedisStore.open(server.url);
  });
  after(async () => {
    await store?.close();
    await server?.stop();
  });

  test('put() then get() returns all 256 byte values unchanged', async () => {
    await store.put('bin', ALL_BYTES);
    const back = await store.get('bin');
    assert.ok(back instanceof Uint8Array);
    assert.deepEqual(back, ALL_BYTES);
  });

  test('put() then get() round-trips an 8 MiB value', async () => {
    const big = Uint8Array.from({ length: 8 << 20 }, (_, i) => (i * 131) & 0xff);
    await store.put('big', big);
    assert.ok(Buffer.from((await store.get('big'))!).equals(Buffer.from(big)));
  });

  test('a reply that arrives while the event loop is blocked past the deadline is not a timeout', async () => {
    const short = await RedisStore.open(server.url, { commandTimeoutMs: 200 });
    const admin = net.connect(Number(new URL(server.url).port), '127.0.0.1');
    try {
      await short.put('blocked', ALL_BYTES);
      // The server holds the reply for 400 ms while the loop is busy for 700 ms (as with CPU-heavy
      // output checks): when the loop frees up, the deadline has passed and the reply is unread.
      await new Promise<void>((resolve) => admin.write('CLIENT PAUSE 400 ALL\r\n', () => resolve()));
      await new Promise<void>((resolve) => admin.once('data', () => resolve()));
      const pending = short.get('blocked');
      await new Promise<void>((resolve) => setImmediate(() => {
        const until = performance.now() + 700;
        while (performance.now() < until) { /* spin */ }
        resolve();
      }));
      assert.deepEqual(await pending, ALL_BYTES);
      assert.deepEqual(await short.get('blocked'), ALL_BYTES, 'the connection was kept');
    } finally {
      admin.destroy();
      await short.close();
    }
  });

  test('get() returns undefined for a missing key and delete() reports what it removed', async () => {
    assert.equal(await store.get('missing'), undefined);
    await store.put('gone', ALL_BYTES);
    assert.equal(await store.delete('gone'), true);
    assert.equal(await store.delete('gone'), false);
  });

  test('list() matches the prefix literally, glob characters included', async () => {
    for (const k of ['p/a', 'p/b', 'p*/c', 'q/d']) await store.put(k, ALL_BYTES);
    assert.deepEqual(await store.list('p/'), ['p/a', 'p/b']);
    assert.deepEqual(await store.list('p*'), ['p*/c']);
  });

  test('operations reject invalid keys with THAW_REQUEST_INVALID', async () => {
    await assert.rejects(store.get(''), { code: 'THAW_REQUEST_INVALID' });
    await assert.rejects(store.put('a\0b', ALL_BYTES), { code: 'THAW_REQUEST_INVALID' });
  });

  test('a call after the server stopped fails with THAW_OBJECT_STORE, and the next one reconnects', { timeout: 20_000 }, async () => {
    const own = await startRedisServer();
    const s = await RedisStore.open(own.url);
    await s.put('k', ALL_BYTES);
    await own.stop();
    await assert.rejects(s.get('k'), { code: 'THAW_OBJECT_STORE', message: /unreachable/ });
    await s.close();
  });
});

describe('RedisStore.open()', () => {
  test('RedisStore.open() on a closed port fails with THAW_OBJECT_STORE instead of hanging', { timeout: 5000 }, async () => {
    const url = `redis://127.0.0.1:${await freePort()}/0`;
    await assert.rejects(RedisStore.open(url), (err: unknown) => {
      assert.equal((err as { code?: unknown }).code, 'THAW_OBJECT_STORE');
      assert.match((err as Error).message, new RegExp(`redis at ${url} unreachable: .*ECONNREFUSED`));
      return true;
    });
  });

  test('RedisStore.open() on a server that never answers fails within its connect budget', { timeout: 5000 }, async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      await assert.rejects(RedisStore.open(`redis://127.0.0.1:${port}/0`, { connectTimeoutMs: 300, reconnectAttempts: 1 }), {
        code: 'THAW_OBJECT_STORE',
        message: /unreachable: no handshake reply/,
      });
    } finally {
      silent.close();
      silent.unref();
    }
  });
});

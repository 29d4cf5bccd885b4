// Tests of the synchronous Redis bridge against a real redis-server: round trips, large and
// binary values, bounded failures, and use from a thread that then carries on.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { RedisSyncStore } from './redis-sync.js';
import { freePort, redisServerSkipReason, startRedisServer, type RedisServer } from './testing/redis-server.js';

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

/** A hung Redis: answers the connect handshake (+OK per command), then never replies again. */
const HUNG_SERVER_SOURCE = `
const net = require('node:net');
const { parentPort } = require('node:worker_threads');
const server = net.createServer((socket) => {
  let handshakeDone = false;
  socket.on('data', (chunk) => {
    if (handshakeDone) return;
    const commands = (chunk.toString().match(/\\*\\d+\\r\\n/g) || []).length;
    socket.write('+OK\\r\\n'.repeat(commands));
    handshakeDone = true;
  });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

describe('RedisSyncStore', { skip: redisServerSkipReason() }, () => {
  let server: RedisServer;
  let store: RedisSyncStore;
  before(async () => {
    server = await startRedisServer();
    store = RedisSyncStore.open(server.url);
  });
  after(async () => {
    store?.close();
    await server?.stop();
  });

  test('put() then get() returns all 256 byte values unchanged', () => {
    store.put('bin', ALL_BYTES);
    const back = store.get('bin');
    assert.ok(back instanceof Uint8Array);
    assert.deepEqual(back, ALL_BYTES);
  });

  test('put() then get() round-trips an 8 MiB value', () => {
    const big = Uint8Array.from({ length: 8 << 20 }, (_, i) => (i * 131) & 0xff);
    store.put('big', big);
    assert.ok(Buffer.from(store.get('big')!).equals(Buffer.from(big)));
  });

  test('put() copies only the view, and leaves the caller its buffer', () => {
    const memory = new Uint8Array(1 << 16).fill(9);
    const view = memory.subarray(100, 104);
    view.set([1, 2, 3, 4]);
    store.put('view', view);
    assert.equal(memory.byteLength, 1 << 16, 'not detached');
    assert.deepEqual(store.get('view'), Uint8Array.of(1, 2, 3, 4));
  });

  test('get() returns undefined for a missing key; delete() and list() work too', () => {
    assert.equal(store.get('missing'), undefined);
    store.put('l/1', ALL_BYTES);
    assert.deepEqual(store.list('l/'), ['l/1']);
    assert.equal(store.delete('l/1'), true);
    assert.equal(store.delete('l/1'), false);
  });

  test('get() rejects an invalid key with THAW_REQUEST_INVALID', () => {
    assert.throws(() => store.get(''), { code: 'THAW_REQUEST_INVALID' });
  });

  test('the store works from a worker thread that then continues', { timeout: 20_000 }, async () => {
    const worker = new Worker(new URL('./testdata/sync-caller-thread.js', import.meta.url), { workerData: { url: server.url } });
    const report = await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.deepEqual(report, { same: true, continued: true });
    await worker.terminate();
    assert.deepEqual(store.get('thread/value'), Uint8Array.from({ length: 256 }, (_, i) => 255 - i));
  });

  test('calls after close() fail with THAW_OBJECT_STORE', () => {
    const s = RedisSyncStore.open(server.url);
    s.close();
    assert.throws(() => s.get('bin'), { code: 'THAW_OBJECT_STORE' });
  });
});

describe('RedisSyncStore.open()', () => {
  test('RedisSyncStore.open() on a closed port throws THAW_OBJECT_STORE instead of hanging', { timeout: 10_000 }, async () => {
    const url = `redis://127.0.0.1:${await freePort()}/0`;
    assert.throws(() => RedisSyncStore.open(url), { code: 'THAW_OBJECT_STORE', message: new RegExp(`redis at ${url} unreachable`) });
  });

  test('get() gives up after waitTimeoutMs with THAW_OBJECT_STORE when Redis does not answer', { timeout: 10_000 }, async () => {
    // The fake server must run on another thread: this one blocks inside the calls under test.
    const hung = new Worker(HUNG_SERVER_SOURCE, { eval: true });
    const port = await new Promise<number>((resolve, reject) => {
      hung.once('message', resolve);
      hung.once('error', reject);
    });
    const s = RedisSyncStore.open(`redis://127.0.0.1:${port}/0`, { waitTimeoutMs: 300, commandTimeoutMs: 60_000 });
    try {
      assert.throws(() => s.get('k'), { code: 'THAW_OBJECT_STORE', message: /no answer from the bridge worker within 300 ms/ });
    } finally {
      s.close();
      await hung.terminate();
    }
  });
});

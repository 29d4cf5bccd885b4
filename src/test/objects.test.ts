// Functions read and write objects by key through the host API: with the embedded store and
// with a real Redis server, on the cold, snapshot and warm paths.

import { join } from 'node:path';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer } from '../api/server.js';
import { startRedisServer, redisServerSkipReason, type RedisServer } from '../store/testing/redis-server.js';
import { deployExample, newPlatform, rejectsWith, smallTmpfs, tempDataDir, text, unmount } from './helpers.js';
import type { Platform } from '../platform/platform.js';

async function objectFlow(p: Platform): Promise<void> {
  await deployExample(p, 'faulty-c');
  const value = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
  await p.putObject('input-1', value);
  const cold = await p.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('copy:input-1') });
  assert.equal(text(cold.output), '3000');
  assert.deepEqual(Buffer.from(await p.getObject('input-1.copy')), value);
  await p.deleteObject('input-1.copy');
  const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
  const restored = await p.invoke({ function: 'faulty-c', mode: 'snapshot', snapshotId: snap.id, input: Buffer.from('copy:input-1'), keep: false });
  assert.equal(text(restored.output), '3000');
  assert.deepEqual(Buffer.from(await p.getObject('input-1.copy')), value);
  const warm = await p.invoke({ function: 'faulty-c', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('copy:absent') });
  assert.equal(text(warm.output), 'missing');
  assert.deepEqual((await p.listObjects('input-1')).sort(), ['input-1', 'input-1.copy']);
  await rejectsWith(p.getObject('absent'), 'THAW_OBJECT_NOT_FOUND');
}

test('objects through the embedded store', async () => {
  const p = newPlatform();
  try {
    await objectFlow(p);
  } finally {
    await p.close();
  }
});

const skip = redisServerSkipReason();
test('objects through a real Redis server', { skip }, async () => {
  const redis: RedisServer = await startRedisServer();
  after(() => redis.stop());
  const p = newPlatform({ objectStore: redis.url });
  try {
    await objectFlow(p);
  } finally {
    await p.close();
  }
});

test('objects over HTTP: PUT raw bytes, GET, list, DELETE', async () => {
  const p = newPlatform({ spareHosts: 0 });
  const app = await buildServer(p, { host: '127.0.0.1', token: null, logLevel: 'silent' });
  try {
    const put = await app.inject({ method: 'PUT', url: '/v1/objects/a%2Fb', payload: Buffer.from([0, 1, 2, 255]), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.statusCode, 204, put.body);
    const got = await app.inject({ method: 'GET', url: '/v1/objects/a%2Fb' });
    assert.deepEqual([...Buffer.from(got.json().valueBase64, 'base64')], [0, 1, 2, 255]);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/objects?prefix=a' })).json().keys, ['a/b']);
    assert.equal((await app.inject({ method: 'DELETE', url: '/v1/objects/a%2Fb' })).statusCode, 204);
    const gone = await app.inject({ method: 'GET', url: '/v1/objects/a%2Fb' });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().code, 'THAW_OBJECT_NOT_FOUND');
  } finally {
    await app.close();
    await p.close();
  }
});

test('an unreachable Redis is a clear error, and the platform keeps serving', async () => {
  const p = newPlatform({ objectStore: 'redis://127.0.0.1:1/0', spareHosts: 0 });
  try {
    const err = await rejectsWith(p.putObject('k', Buffer.from('v')), 'THAW_OBJECT_STORE');
    assert.match(err.message, /unreachable/);
    assert.deepEqual(await p.listFunctions(), []);
  } finally {
    await p.close();
  }
});

test('an unreachable Redis fails only the invocations that use objects', async () => {
  const p = newPlatform({ objectStore: 'redis://127.0.0.1:1/0' });
  try {
    await deployExample(p, 'faulty-c');
    const cold = await p.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('no objects') });
    assert.equal(text(cold.output), 'no objects');
    const err = await rejectsWith(p.invoke({ function: 'faulty-c', mode: 'warm', input: Buffer.from('copy:k') }), 'THAW_OBJECT_STORE');
    assert.equal(err.status, 503);
    assert.match(err.message, /unreachable/);
    // The sandbox is not to blame: it stays, and serves the next invocation.
    assert.equal(text((await p.invoke({ function: 'faulty-c', mode: 'warm', sandboxId: cold.sandboxId, input: Buffer.from('again') })).output), 'again');
  } finally {
    await p.close();
  }
});

test('a write to a full disk is 507 THAW_STORAGE_FULL, in the one error shape', async (t) => {
  const dataDir = tempDataDir();
  const objectsDir = join(dataDir, 'objects');
  const skip = smallTmpfs(objectsDir);
  if (skip) return t.skip(skip);
  const p = newPlatform({ dataDir, spareHosts: 0 });
  const app = await buildServer(p, { host: '127.0.0.1', token: null, logLevel: 'silent' });
  try {
    const res = await app.inject({ method: 'PUT', url: '/v1/objects/big', headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(1024 * 1024) });
    assert.equal(res.statusCode, 507, res.body);
    const body = res.json();
    assert.equal(body.code, 'THAW_STORAGE_FULL');
    assert.equal(body.statusCode, 507);
    assert.equal(body.error, 'Insufficient Storage');
    assert.match(body.message, /no space left to write an object in the embedded store: .*ENOSPC/);
    // A small object still fits: the store is not broken, only full.
    assert.equal((await app.inject({ method: 'PUT', url: '/v1/objects/small', headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from('v') })).statusCode, 204);
  } finally {
    await app.close();
    await p.close();
    unmount(objectsDir);
  }
});

// The HTTP API in-process (Fastify inject, no socket): the deploy -> cold -> snapshot ->
// restore -> warm flow, the OpenAPI document, the error reply shape, and the token rule.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer } from '../api/server.js';
import { readManifestFile } from '../cli/context.js';
import { ThawError } from '../core/errors.js';
import { manifestPath, newPlatform } from './helpers.js';

const platform = newPlatform();
const app = await buildServer(platform, { host: '127.0.0.1', token: null, logLevel: 'silent' });
after(async () => {
  await app.close();
  await platform.close();
});

async function deploy(name: string): Promise<void> {
  const { manifest, artefact } = readManifestFile(manifestPath(name));
  const res = await app.inject({ method: 'POST', url: '/v1/functions', payload: { manifest, artefactBase64: Buffer.from(artefact).toString('base64') } });
  assert.equal(res.statusCode, 201, res.body);
}

test('POST /v1/functions/:name/invocations serves cold, snapshot and warm with identical outputs', async () => {
  await deploy('hello-c');
  const invoke = (query: string) =>
    app.inject({ method: 'POST', url: `/v1/functions/hello-c/invocations?${query}`, payload: Buffer.from('api'), headers: { 'content-type': 'application/octet-stream' } });
  const cold = await invoke('mode=cold');
  assert.equal(cold.statusCode, 200, cold.body);
  const c = cold.json();
  assert.equal(c.output, 'hello, api');
  for (const k of ['acquireMs', 'bootMs', 'initMs', 'handlerMs', 'totalMs']) assert.equal(typeof c.timings[k], 'number', k);
  const snap = await app.inject({ method: 'POST', url: '/v1/snapshots', payload: { sandboxId: c.sandboxId } });
  assert.equal(snap.statusCode, 201, snap.body);
  const restored = await invoke(`mode=snapshot&snapshot=${snap.json().id}&keep=false`);
  assert.equal(restored.statusCode, 200, restored.body);
  assert.equal(restored.json().output, 'hello, api');
  assert.equal(typeof restored.json().timings.restoreMs, 'number');
  const warm = await invoke(`mode=warm&sandbox=${c.sandboxId}`);
  assert.equal(warm.json().output, 'hello, api');
  const list = await app.inject({ method: 'GET', url: '/v1/snapshots?function=hello-c' });
  assert.equal(list.json().length, 1);
  const sbs = await app.inject({ method: 'GET', url: '/v1/sandboxes' });
  assert.ok(sbs.json().some((s: { id: string }) => s.id === c.sandboxId));
  assert.equal((await app.inject({ method: 'DELETE', url: `/v1/sandboxes/${c.sandboxId}` })).statusCode, 204);
  assert.equal((await app.inject({ method: 'DELETE', url: `/v1/snapshots/${snap.json().id}` })).statusCode, 204);
});

test('errors come back in one shape with the catalogue code and status', async () => {
  const cases: [string, string, string, unknown, number, string][] = [
    ['POST', '/v1/functions/nope/invocations?mode=cold', 'application/octet-stream', Buffer.from('x'), 404, 'THAW_FUNCTION_NOT_FOUND'],
    ['GET', '/v1/snapshots/snap-404', 'application/json', undefined, 404, 'THAW_SNAPSHOT_NOT_FOUND'],
    ['DELETE', '/v1/sandboxes/sb-404', 'application/json', undefined, 404, 'THAW_SANDBOX_NOT_FOUND'],
    ['POST', '/v1/functions', 'application/json', { manifest: {} }, 400, 'THAW_REQUEST_INVALID'],
    ['POST', '/v1/functions', 'application/json', { manifest: { name: 'x', runtime: 'wasi', module: 'm' }, artefactBase64: 'AAAA' }, 400, 'THAW_MODULE_INVALID'],
    ['POST', '/v1/functions/hello-c/invocations?mode=sideways', 'application/octet-stream', Buffer.from('x'), 400, 'THAW_REQUEST_INVALID'],
    ['GET', '/v1/nothing-here', 'application/json', undefined, 404, 'THAW_ROUTE_NOT_FOUND'],
  ];
  await deploy('hello-c');
  for (const [method, url, type, payload, status, code] of cases) {
    const res = await app.inject({ method: method as 'GET', url, ...(payload !== undefined && { headers: { 'content-type': type }, payload: payload as string }) });
    assert.equal(res.statusCode, status, `${method} ${url}: ${res.body}`);
    const body = res.json();
    assert.equal(body.code, code, `${method} ${url}`);
    assert.equal(body.statusCode, status);
    assert.equal(typeof body.message, 'string');
    assert.equal(typeof body.error, 'string');
  }
});

test('GET /openapi.json documents every route', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
  assert.match(doc.openapi, /^3\./);
  for (const path of ['/v1/functions', '/v1/functions/{name}', '/v1/functions/{name}/invocations', '/v1/sandboxes', '/v1/sandboxes/{id}', '/v1/snapshots', '/v1/snapshots/{id}']) {
    assert.ok(doc.paths[path], `missing ${path}`);
  }
});

test('buildServer() refuses a non-loopback address without a token, and checks the token when set', async () => {
  await assert.rejects(buildServer(platform, { host: '0.0.0.0', token: null, logLevel: 'silent' }), (e: unknown) => e instanceof ThawError && e.code === 'THAW_CONFIG_INVALID');
  const guarded = await buildServer(platform, { host: '0.0.0.0', token: 's3cret', logLevel: 'silent' });
  try {
    assert.equal((await guarded.inject({ method: 'GET', url: '/v1/functions' })).statusCode, 401);
    assert.equal((await guarded.inject({ method: 'GET', url: '/v1/functions', headers: { authorization: 'Bearer wrong!' } })).statusCode, 401);
    assert.equal((await guarded.inject({ method: 'GET', url: '/v1/functions', headers: { authorization: 'Bearer s3cret' } })).statusCode, 200);
  } finally {
    await guarded.close();
  }
});

test('GET /v1/strategies lists every strategy; POST /v1/snapshots/:id/prepare builds artefacts once', async () => {
  const list = (await app.inject({ method: 'GET', url: '/v1/strategies' })).json() as { id: string; available: boolean; verifies: string; verifiesHow: string }[];
  for (const id of ['eager', 'vanilla', 'vanilla-cache', 'dram', 'uffd', 'reap', 'thaw']) assert.ok(list.some((s) => s.id === id), id);
  assert.equal(list.find((s) => s.id === 'eager')?.verifies, 'every-byte');
  assert.equal(list.find((s) => s.id === 'vanilla')?.verifies, 'unverified-mapped');
  assert.ok(list.every((s) => s.verifiesHow.length > 0));
  await deploy('hello-c');
  const cold = (await app.inject({ method: 'POST', url: '/v1/functions/hello-c/invocations?mode=cold', payload: Buffer.from('p'), headers: { 'content-type': 'application/octet-stream' } })).json();
  const snap = (await app.inject({ method: 'POST', url: '/v1/snapshots', payload: { sandboxId: cold.sandboxId } })).json();
  const first = await app.inject({ method: 'POST', url: `/v1/snapshots/${snap.id}/prepare`, payload: { strategy: 'vanilla-cache' } });
  assert.equal(first.statusCode, 200, first.body);
  // A full snapshot's image is mapped as it is: prepare checks it and has nothing to build.
  assert.equal(first.json().built, false);
  const bad = await app.inject({ method: 'POST', url: `/v1/snapshots/${snap.id}/prepare`, payload: { strategy: 'teleport' } });
  assert.equal(bad.json().code, 'THAW_STRATEGY_UNKNOWN');
  const restored = await app.inject({ method: 'POST', url: `/v1/functions/hello-c/invocations?mode=snapshot&snapshot=${snap.id}&strategy=vanilla-cache&keep=false`, payload: Buffer.from('p'), headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(restored.json().output, 'hello, p');
  assert.equal(restored.json().restore.strategy, 'vanilla-cache');
  // Each snapshot lists what the strategies keep for it.
  const bare = (await app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}` })).json() as { artefacts: { name: string; tier: string; bytes: number }[] };
  assert.deepEqual(bare.artefacts, []);
  for (const strategy of ['sabre', 'dram']) {
    const built = await app.inject({ method: 'POST', url: `/v1/snapshots/${snap.id}/prepare`, payload: { strategy } });
    assert.equal(built.json().built, true, `${strategy} builds its artefact`);
    const again = await app.inject({ method: 'POST', url: `/v1/snapshots/${snap.id}/prepare`, payload: { strategy } });
    assert.equal(again.json().built, false, `${strategy} finds it in place`);
  }
  const prepared = (await app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}` })).json() as typeof bare;
  assert.deepEqual(prepared.artefacts.map((a) => [a.name, a.tier]), [['sabre-lz4-1.img', 'disk'], [`${snap.id}.img`, 'tmpfs']]);
  assert.ok(prepared.artefacts.every((a) => a.bytes > 0));
  const scrub = await app.inject({ method: 'POST', url: `/v1/snapshots/${snap.id}/verify` });
  assert.equal(scrub.statusCode, 200, scrub.body);
  const report = scrub.json() as { ok: boolean; files: { file: string; status: string }[] };
  assert.equal(report.ok, true);
  assert.deepEqual(report.files.map((f) => f.file).filter((f) => !f.startsWith('/')), ['state.thaw', 'memory.img', 'memory.img (as mapped)', 'sabre-lz4-1.img']);
  assert.ok(report.files.some((f) => f.file.endsWith(`${snap.id}.img`) && f.status === 'ok'), 'the tmpfs copy is read too');
  assert.equal((await app.inject({ method: 'POST', url: '/v1/snapshots/snap-nope/verify' })).statusCode, 404);
});

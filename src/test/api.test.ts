// The HTTP API in-process (Fastify inject, no socket): the deploy -> cold -> snapshot ->
// restore -> warm flow, the OpenAPI document, the error reply shape, and the token rule.

import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer } from '../api/server.js';
import { HttpClient } from '../api/client.js';
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
  // Memory accounting crosses the API whole: declared, granted, resident, offloaded.
  const listed = sbs.json().find((s: { id: string }) => s.id === c.sandboxId);
  assert.deepEqual(listed.memory, warm.json().memory);
  assert.equal(warm.json().memory.declaredBytes, 32 * 1024 * 1024);
  assert.ok(warm.json().memory.residentBytes > 0 && warm.json().memory.residentBytes <= warm.json().memoryBytes);
  assert.equal((await app.inject({ method: 'DELETE', url: `/v1/sandboxes/${c.sandboxId}` })).statusCode, 204);
  assert.equal((await app.inject({ method: 'DELETE', url: `/v1/snapshots/${snap.json().id}` })).statusCode, 204);
});

test('GET /metrics counts invocations and error replies and reads sandboxes and snapshots, in Prometheus text format', async () => {
  const own = newPlatform();
  const server = await buildServer(own, { host: '127.0.0.1', token: null, logLevel: 'silent' });
  try {
    const { manifest, artefact } = readManifestFile(manifestPath('hello-c'));
    await own.deployFunction(manifest, artefact);
    const invoke = (query: string) =>
      server.inject({ method: 'POST', url: `/v1/functions/hello-c/invocations?${query}`, payload: Buffer.from('m'), headers: { 'content-type': 'application/octet-stream' } });
    const cold = (await invoke('mode=cold')).json();
    await invoke('mode=warm');
    await invoke('mode=warm');
    const snap = (await server.inject({ method: 'POST', url: '/v1/snapshots', payload: { sandboxId: cold.sandboxId } })).json();
    assert.equal((await invoke('mode=snapshot&strategy=eager&keep=false')).statusCode, 200);
    assert.equal((await server.inject({ method: 'POST', url: '/v1/functions/nope/invocations?mode=cold', payload: Buffer.from('x'), headers: { 'content-type': 'application/octet-stream' } })).statusCode, 404);
    assert.equal((await invoke('mode=snapshot&snapshot=snap-000000000000')).statusCode, 404);
    const res = await server.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
    const value = (series: string): number => {
      const line = res.body.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(line, `${series} in:\n${res.body.split('\n').filter((l) => l.startsWith('thaw_') && !l.startsWith('thaw_daemon_')).join('\n')}`);
      return Number(line.slice(series.length + 1));
    };
    assert.equal(value('thaw_invocations_total{function="hello-c",mode="cold",start="cold",strategy="",outcome="ok"}'), 1);
    assert.equal(value('thaw_invocations_total{function="hello-c",mode="warm",start="warm",strategy="",outcome="ok"}'), 2);
    assert.equal(value('thaw_invocations_total{function="hello-c",mode="snapshot",start="snapshot",strategy="eager",outcome="ok"}'), 1);
    assert.equal(value('thaw_invocations_total{function="hello-c",mode="snapshot",start="",strategy="",outcome="THAW_SNAPSHOT_NOT_FOUND"}'), 1);
    assert.equal(value('thaw_errors_total{code="THAW_FUNCTION_NOT_FOUND"}'), 1);
    assert.equal(value('thaw_errors_total{code="THAW_SNAPSHOT_NOT_FOUND"}'), 1);
    assert.equal(value('thaw_invocation_phase_seconds_count{start="warm",phase="handler"}'), 2);
    assert.equal(value('thaw_invocation_seconds_count{function="hello-c",start="snapshot"}'), 1);
    assert.equal(value('thaw_sandboxes{function="hello-c",state="idle"}'), 1, 'the cold sandbox, kept; the restored one was not');
    assert.ok(value('thaw_snapshot_bytes{tier="disk"}') > 0);
    assert.equal(value('thaw_snapshots{function="hello-c"}'), 1);
    assert.ok(value('thaw_restore_read_bytes_total{strategy="eager"}') > 0);
    await own.deleteSnapshot(snap.id);
  } finally {
    await server.close();
    await own.close();
  }
});

test('GET /v1/functions/:name/logs returns what guests wrote, and follow streams new lines to the HTTP client', async () => {
  const own = newPlatform();
  const server = await buildServer(own, { host: '127.0.0.1', token: null, logLevel: 'silent' });
  try {
    const { manifest, artefact } = readManifestFile(manifestPath('hello-c'));
    await own.deployFunction(manifest, artefact);
    const invoke = (body: string) =>
      server.inject({ method: 'POST', url: '/v1/functions/hello-c/invocations?mode=cold&keep=false', payload: Buffer.from(body), headers: { 'content-type': 'application/octet-stream' } });
    await invoke('ab');
    await invoke('abcd');
    const res = await server.inject({ method: 'GET', url: '/v1/functions/hello-c/logs' });
    assert.equal(res.statusCode, 200, res.body);
    const lines = res.json() as { seq: number; sandboxId: string; stream: string; text: string }[];
    assert.deepEqual(lines.map((l) => [l.stream, l.text]), [['stdout', 'hello-c: greeted 2 bytes'], ['stdout', 'hello-c: greeted 4 bytes']]);
    assert.notEqual(lines[0]!.sandboxId, lines[1]!.sandboxId);
    const newest = await server.inject({ method: 'GET', url: `/v1/functions/hello-c/logs?limit=1` });
    assert.deepEqual(newest.json().map((l: { seq: number }) => l.seq), [lines[1]!.seq]);
    assert.deepEqual((await server.inject({ method: 'GET', url: `/v1/functions/hello-c/logs?after=${lines[1]!.seq}` })).json(), []);
    assert.equal((await server.inject({ method: 'GET', url: '/v1/functions/nope/logs' })).json().code, 'THAW_FUNCTION_NOT_FOUND');

    await server.listen({ host: '127.0.0.1', port: 0 });
    const address = server.server.address() as { port: number };
    const client = new HttpClient(`http://127.0.0.1:${address.port}`);
    const seen: string[] = [];
    const stop = new AbortController();
    const following = client.followLogs('hello-c', lines[0]!.seq, (e) => {
      seen.push(e.text);
      if (seen.length === 2) stop.abort();
    }, stop.signal);
    await new Promise((r) => setTimeout(r, 200));
    await invoke('abcdef');
    await Promise.race([following, new Promise((_, reject) => setTimeout(() => reject(new Error(`follow saw only ${JSON.stringify(seen)}`)), 20000))]);
    assert.deepEqual(seen, ['hello-c: greeted 4 bytes', 'hello-c: greeted 6 bytes'], 'the kept line after `after`, then the new one');
  } finally {
    await server.close();
    await own.close();
  }
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

test('a warm invocation whose sandboxes stay busy is 429 with Retry-After', async () => {
  const { manifest, artefact } = readManifestFile(manifestPath('faulty-c'));
  await app.inject({ method: 'POST', url: '/v1/functions', payload: { manifest: { ...manifest, name: 'api-busy', timeoutMs: 2_000 }, artefactBase64: Buffer.from(artefact).toString('base64') } });
  const invoke = (query: string, body: string) =>
    app.inject({ method: 'POST', url: `/v1/functions/api-busy/invocations?${query}`, payload: Buffer.from(body), headers: { 'content-type': 'application/octet-stream' } });
  const cold = (await invoke('mode=cold', 'x')).json();
  const spinning = invoke(`mode=warm&sandbox=${cold.sandboxId}`, 'spin');
  // inject() dispatches on a later tick: wait until the spinning invocation holds the sandbox.
  const state = async () => (await app.inject({ method: 'GET', url: '/v1/sandboxes' })).json().find((s: { id: string }) => s.id === cold.sandboxId)?.state;
  while ((await state()) !== 'busy') await new Promise((r) => setTimeout(r, 5));
  const res = await invoke('mode=warm', 'y');
  assert.equal(res.statusCode, 429, res.body);
  assert.equal(res.json().code, 'THAW_FUNCTION_BUSY');
  assert.equal(res.json().error, 'Too Many Requests');
  assert.equal(res.headers['retry-after'], '1');
  assert.equal((await spinning).json().code, 'THAW_TIMEOUT');
});

test('an invocation body is refused with 413 as soon as it passes maxInputBytes, before it is read whole', async () => {
  const { manifest, artefact } = readManifestFile(manifestPath('hello-c'));
  await app.inject({ method: 'POST', url: '/v1/functions', payload: { manifest: { ...manifest, name: 'tiny-input', maxInputBytes: 1024 }, artefactBase64: Buffer.from(artefact).toString('base64') } });
  const url = '/v1/functions/tiny-input/invocations?mode=cold';
  const headers = { 'content-type': 'application/octet-stream' };
  // Declared too large: refused from the Content-Length alone.
  const declared = await app.inject({ method: 'POST', url, headers, payload: Buffer.alloc(64 * 1024) });
  assert.equal(declared.statusCode, 413, declared.body);
  assert.equal(declared.json().code, 'THAW_INPUT_TOO_LARGE');
  assert.match(declared.json().message, /input of 65536 bytes exceeds the limit of 1024 bytes for tiny-input/);
  assert.equal(declared.headers.connection, 'close');
  // Streamed with no length: refused at the chunk that passes the limit; the rest of a 1 GiB
  // body is never pulled from the client.
  let pulledBytes = 0;
  const body = new Readable({
    read() {
      if (pulledBytes >= 1024 ** 3) return void this.push(null);
      pulledBytes += 64 * 1024;
      this.push(Buffer.alloc(64 * 1024));
    },
  });
  const streamed = await app.inject({ method: 'POST', url, headers: { ...headers, 'transfer-encoding': 'chunked' }, payload: body });
  body.destroy();
  assert.equal(streamed.statusCode, 413, streamed.body);
  assert.equal(streamed.json().code, 'THAW_INPUT_TOO_LARGE');
  assert.match(streamed.json().message, /input of more than 1024 bytes/);
  assert.ok(pulledBytes < 16 * 1024 * 1024, `${pulledBytes} bytes pulled`);
  // At the limit it runs.
  const ok = await app.inject({ method: 'POST', url, headers, payload: Buffer.alloc(1024, 'a') });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.equal(ok.json().output, `hello, ${'a'.repeat(1024)}`);
});

test('bodies past the global caps of the other routes are 413 THAW_BODY_TOO_LARGE naming the limit', async () => {
  const json = await app.inject({ method: 'POST', url: '/v1/sandboxes', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ function: 'x'.repeat(2 * 1024 * 1024) }) });
  assert.equal(json.statusCode, 413, json.body);
  assert.equal(json.json().code, 'THAW_BODY_TOO_LARGE');
  assert.match(json.json().message, /limit of 1048576 bytes for POST \/v1\/sandboxes/);
  const object = await app.inject({ method: 'PUT', url: '/v1/objects/big', headers: { 'content-type': 'application/octet-stream', 'content-length': String(513 * 1024 * 1024) }, payload: Buffer.alloc(1) });
  assert.equal(object.statusCode, 413, object.body);
  assert.equal(object.json().code, 'THAW_BODY_TOO_LARGE');
  assert.match(object.json().message, /limit of 536870912 bytes for PUT \/v1\/objects\/:key/);
});

test('Fastify\'s own errors (bad URL, long segment, bad JSON, content type, no route) reply in the one shape with a THAW code', async () => {
  const cases: { method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; payload?: string; status: number; code: string }[] = [
    { method: 'GET', url: `/v1/objects/${'k'.repeat(2000)}`, status: 414, code: 'THAW_URI_TOO_LONG' },
    { method: 'GET', url: '/v1/objects/%E0%A4%A', status: 400, code: 'THAW_REQUEST_INVALID' },
    { method: 'POST', url: '/v1/sandboxes', headers: { 'content-type': 'application/json' }, payload: '{bad', status: 400, code: 'THAW_REQUEST_INVALID' },
    { method: 'POST', url: '/v1/sandboxes', headers: { 'content-type': 'application/xml' }, payload: '<a/>', status: 415, code: 'THAW_MEDIA_TYPE_UNSUPPORTED' },
    { method: 'GET', url: '/v1/nowhere', status: 404, code: 'THAW_ROUTE_NOT_FOUND' },
  ];
  for (const c of cases) {
    const res = await app.inject({ method: c.method, url: c.url, ...(c.headers && { headers: c.headers }), ...(c.payload !== undefined && { payload: c.payload }) });
    const what = `${c.method} ${c.url.slice(0, 40)}: ${res.body.slice(0, 200)}`;
    assert.equal(res.statusCode, c.status, what);
    const body = res.json();
    assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'], what);
    assert.equal(body.code, c.code, what);
    assert.equal(body.statusCode, c.status, what);
    assert.equal(body.error, STATUS_CODES[c.status], what);
  }
});

test('object keys up to the 512-byte limit work over HTTP; longer ones are THAW_REQUEST_INVALID', async () => {
  const headers = { 'content-type': 'application/octet-stream' };
  // 512 ASCII bytes, and 512 UTF-8 bytes that percent-encode to 1536 URL characters.
  for (const key of ['k'.repeat(512), 'é'.repeat(256), `a/${'x'.repeat(150)}`]) {
    const url = `/v1/objects/${encodeURIComponent(key)}`;
    const put = await app.inject({ method: 'PUT', url, headers, payload: Buffer.from('v') });
    assert.equal(put.statusCode, 204, `${key.length}: ${put.body}`);
    const got = await app.inject({ method: 'GET', url });
    assert.equal(got.statusCode, 200, got.body);
    assert.equal(got.json().key, key);
    assert.equal((await app.inject({ method: 'DELETE', url })).statusCode, 204);
  }
  const over = await app.inject({ method: 'PUT', url: `/v1/objects/${'k'.repeat(513)}`, headers, payload: Buffer.from('v') });
  assert.equal(over.statusCode, 400, over.body);
  assert.equal(over.json().code, 'THAW_REQUEST_INVALID');
});

test('GET /openapi.json documents every route', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
  assert.match(doc.openapi, /^3\./);
  for (const path of ['/v1/functions', '/v1/functions/{name}', '/v1/functions/{name}/invocations', '/v1/sandboxes', '/v1/sandboxes/{id}', '/v1/snapshots', '/v1/snapshots/{id}']) {
    assert.ok(doc.paths[path], `missing ${path}`);
  }
});

test('the OpenAPI ErrorReply schema lists exactly the codes of docs/errors.md; every documented error status is a catalogue status', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
    components: { schemas: Record<string, { title?: string; properties?: { code?: { enum?: string[] } } }> };
    paths: Record<string, Record<string, { responses: Record<string, { content?: { 'application/json'?: { schema?: { $ref?: string } } } }> }>>;
  };
  const [refName, errorReply] = Object.entries(doc.components.schemas).find(([, s]) => s.title === 'ErrorReply')!;
  const errorsDoc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = [...errorsDoc.matchAll(/^\| `(THAW_[A-Z_]+)` \| (\d+) \|/gm)];
  assert.deepEqual([...errorReply.properties!.code!.enum!].sort(), documented.map((m) => m[1]!).sort());
  const statuses = new Set(documented.map((m) => m[2]!));
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (response.content?.['application/json']?.schema?.$ref !== `#/components/schemas/${refName}`) continue;
        assert.ok(statuses.has(status), `${method.toUpperCase()} ${path} documents error status ${status}, which no catalogue code has`);
      }
    }
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

test('buildServer() with a token accepts only `Authorization: Bearer <token>`', async () => {
  const guarded = await buildServer(platform, { host: '0.0.0.0', token: 's3cret', logLevel: 'silent' });
  try {
    const refused: { url: string; headers?: Record<string, string> }[] = [
      { url: '/v1/functions', headers: { authorization: 's3cret' } },
      { url: '/v1/functions', headers: { authorization: 'Basic s3cret' } },
      { url: '/v1/functions', headers: { authorization: 'Token s3cret' } },
      { url: '/v1/functions', headers: { authorization: 'Bearer s3cret extra' } },
      { url: '/v1/functions', headers: { authorization: 'Bearers3cret' } },
      { url: '/v1/functions?token=s3cret' },
      { url: '/v1/functions?access_token=s3cret' },
      { url: '/v1/functions', headers: { 'x-thaw-token': 's3cret', cookie: 'token=s3cret' } },
    ];
    for (const r of refused) {
      const res = await guarded.inject({ method: 'GET', ...r });
      assert.equal(res.statusCode, 401, JSON.stringify(r));
      assert.equal(res.json().code, 'THAW_UNAUTHORIZED');
      assert.equal(res.headers['www-authenticate'], 'Bearer');
    }
    assert.equal((await guarded.inject({ method: 'GET', url: '/v1/functions', headers: { authorization: 'bearer s3cret' } })).statusCode, 200);
  } finally {
    await guarded.close();
  }
});

test('GET /v1/snapshots/:id lists the sealed image the daemon holds (tier memory) beside the files', async () => {
  await deploy('mem64-c');
  const cold = (await app.inject({ method: 'POST', url: '/v1/functions/mem64-c/invocations?mode=cold', payload: Buffer.from('p'), headers: { 'content-type': 'application/octet-stream' } })).json();
  const snap = (await app.inject({ method: 'POST', url: '/v1/snapshots', payload: { sandboxId: cold.sandboxId } })).json();
  // Sealed in the daemon's worker once taken (auto's sealAhead); the listing shows it when held.
  type Listing = { auto?: { strategy: string }; artefacts: { name: string; tier: string; bytes: number }[] };
  let info: Listing = { artefacts: [] };
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const res = await app.inject({ method: 'GET', url: `/v1/snapshots/${snap.id}` });
    assert.equal(res.statusCode, 200, res.body);
    info = res.json() as Listing;
    if (info.artefacts.some((a) => a.tier === 'memory')) break;
  }
  const held = info.artefacts.find((a) => a.tier === 'memory');
  assert.ok(held, `a sealed image is listed: ${JSON.stringify(info.artefacts)}`);
  assert.equal(held.name, 'sealed.memfd');
  assert.ok(held.bytes >= 64 * 1024 * 1024, `it holds the image's present pages: ${held.bytes}`);
  assert.equal(info.auto?.strategy, 'sealed');
  await app.inject({ method: 'DELETE', url: `/v1/sandboxes/${cold.sandboxId}` });
  const removed = await app.inject({ method: 'DELETE', url: `/v1/snapshots/${snap.id}` });
  assert.ok(removed.statusCode < 300, removed.body);
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

// Live traces from inside sandbox hosts: a restore invoked with a caller's W3C traceparent is
// exported to a Zipkin stand-in (harness/zipkin-stand-in.ts: accepts Zipkin v2 JSON as a real
// Zipkin's /api/v2/spans does) with the caller's trace id, the daemon's spans under the caller's
// span, and the spans the (jailed) host recorded in its own process under the daemon's request;
// the same through OTLP/HTTP (JSON) to a receiver standing in for an OpenTelemetry collector.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { buildServer } from '../api/server.js';
import { PlatformTracing, type SavedSpan } from '../platform/tracing.js';
import { suiteFunction } from '../suite/index.js';
import { deployExample, newPlatform } from './helpers.js';
import { startZipkinStandIn, type ZipkinSpan } from '../harness/zipkin-stand-in.js';

test('a restore\'s spans recorded inside the sandbox host reach Zipkin in the caller\'s trace, under the daemon\'s spans', { timeout: 180_000 }, async () => {
  const zipkin = await startZipkinStandIn();
  const platform = newPlatform();
  // Only callers' sampled traceparents are traced (ratio 0 for the rest).
  const tracing = new PlatformTracing({ exportTo: { protocol: 'zipkin', url: zipkin.url }, sampleRatio: 0 });
  platform.setTracing(tracing);
  const app = await buildServer(platform, { host: '127.0.0.1', token: null, logLevel: 'silent' });
  try {
    // matmul reads its input object and writes its output object: both are host spans too.
    const matmul = suiteFunction('matmul');
    await deployExample(platform, 'suite/matmul');
    const input = matmul.smallInput();
    await platform.putObject(input.key, input.bytes);
    const event = Buffer.from(matmul.event(input));
    const cold = await platform.invoke({ function: 'matmul', mode: 'cold', input: event, keep: true });
    const snap = await platform.createSnapshot({ sandboxId: cold.sandboxId, kind: 'full' });
    await platform.deleteSandbox(cold.sandboxId);

    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const invoke = (traceparent: string): Promise<{ statusCode: number; body: string }> => app.inject({
      method: 'POST', url: `/v1/functions/matmul/invocations?mode=snapshot&snapshot=${snap.id}&strategy=eager&keep=false`,
      headers: { traceparent, 'content-type': 'application/octet-stream' }, payload: event,
    });
    const traced = await invoke(`00-${traceId}-${callerSpan}-01`);
    assert.equal(traced.statusCode, 200, traced.body);
    assert.equal((JSON.parse(traced.body) as { traceId?: string }).traceId, traceId, 'the reply names its trace');
    // An unsampled caller's invocation records nothing, in the daemon or the host.
    const unsampled = await invoke('00-11111111111111111111111111111111-2222222222222222-00');
    assert.equal(unsampled.statusCode, 200, unsampled.body);
    assert.equal((JSON.parse(unsampled.body) as { traceId?: string }).traceId, undefined, 'an untraced reply names no trace');
    assert.equal(await tracing.close(), null, 'export succeeded');

    const spans = zipkin.spans;
    assert.ok(spans.length > 0, 'spans arrived');
    assert.deepEqual([...new Set(spans.map((s) => s.traceId))], [traceId], 'one trace: the caller\'s (nothing of the unsampled one, nor of the cold start)');
    const one = (name: string, service: string): ZipkinSpan => {
      const found = spans.filter((s) => s.name === name && s.localEndpoint.serviceName === service);
      assert.equal(found.length, 1, `one '${name}' span from ${service}: ${JSON.stringify(spans.map((s) => `${s.localEndpoint.serviceName}:${s.name}`))}`);
      return found[0]!;
    };
    const childOf = (child: ZipkinSpan, parent: ZipkinSpan): void => {
      assert.equal(child.parentId, parent.id, `'${child.name}' is a child of '${parent.name}'`);
      // Epoch clocks of two processes on one machine: the child lies within its parent (1 ms slack for rounding).
      assert.ok(child.timestamp >= parent.timestamp - 1000 && child.timestamp + child.duration <= parent.timestamp + parent.duration + 1000, `'${child.name}' lies within '${parent.name}'`);
    };

    const root = one('invoke matmul', 'thaw-daemon');
    assert.equal(root.parentId, callerSpan, 'the daemon\'s span is the caller\'s child');
    assert.equal(root.tags['thaw.start'], 'snapshot');
    assert.equal(root.tags['thaw.strategy'], 'eager');
    const hostRestore = one('host restore', 'thaw-daemon');
    const hostInvoke = one('host invoke', 'thaw-daemon');
    childOf(hostRestore, root);
    childOf(hostInvoke, root);

    // Recorded in the sandbox host's own process.
    const restore = one('restore', 'thaw-sandbox-host');
    childOf(restore, hostRestore);
    assert.equal(restore.tags['thaw.snapshot'], snap.id);
    assert.equal(restore.tags['thaw.strategy'], 'eager');
    assert.ok(Number(restore.tags['thaw.restore.bytes_read']) > 0, 'restore stats on the span');
    childOf(one('open snapshot', 'thaw-sandbox-host'), restore);
    const resume = one('resume', 'thaw-sandbox-host');
    childOf(resume, restore);
    childOf(one('map or prefetch (fill)', 'thaw-sandbox-host'), resume);
    const hostSideInvoke = one('invoke', 'thaw-sandbox-host');
    childOf(hostSideInvoke, hostInvoke);
    const handler = one('handler', 'thaw-sandbox-host');
    childOf(handler, hostSideInvoke);
    const get = one('object get', 'thaw-sandbox-host');
    childOf(get, handler);
    assert.equal(get.tags['thaw.object.key'], input.key);
    childOf(one('object put', 'thaw-sandbox-host'), handler);
    // The restore finished before the invocation's handler started (pipelined behind it in the host).
    assert.ok(restore.timestamp + restore.duration <= handler.timestamp + 1000);
  } finally {
    await app.close();
    await platform.close();
    await tracing.close();
    await zipkin.close();
  }
});

test('a traced invocation whose guest traps is exported with the host\'s handler span marked as the error', { timeout: 120_000 }, async () => {
  const spans: SavedSpan[] = [];
  const platform = newPlatform();
  const tracing = new PlatformTracing({ exportTo: null, sink: (s) => spans.push(s), sampleRatio: 0 });
  platform.setTracing(tracing);
  try {
    await deployExample(platform, 'faulty-c');
    const traceId = 'a'.repeat(32);
    await assert.rejects(platform.invoke({ function: 'faulty-c', mode: 'cold', input: Buffer.from('trap'), keep: false, traceparent: `00-${traceId}-${'b'.repeat(16)}-01` }), { code: 'THAW_GUEST_TRAP', traceId });
    const named = (name: string, service: string): SavedSpan => {
      const s = spans.find((x) => x.name === name && x.service === service);
      assert.ok(s, `a '${name}' span from ${service}: ${spans.map((x) => `${x.service}:${x.name}`).join(', ')}`);
      return s;
    };
    assert.ok(spans.every((s) => s.traceId === traceId));
    const root = named('invoke faulty-c', 'thaw-daemon');
    assert.equal(root.status, 'error');
    assert.equal(root.attributes['thaw.error'], 'THAW_GUEST_TRAP');
    const hostInvoke = named('host invoke', 'thaw-daemon');
    assert.equal(hostInvoke.status, 'error');
    // The failed request's reply still carried what the host recorded.
    const handler = named('handler', 'thaw-sandbox-host');
    assert.equal(handler.status, 'error');
    assert.equal(named('invoke', 'thaw-sandbox-host').parentSpanId, hostInvoke.spanId);
    assert.ok(named('instantiate', 'thaw-sandbox-host'));
  } finally {
    await platform.close();
    await tracing.close();
  }
});

test('with otlp, the host\'s spans reach an OTLP/HTTP receiver in the caller\'s trace, under the sandbox host\'s service', { timeout: 120_000 }, async () => {
  // Stands in for an OpenTelemetry collector's OTLP/HTTP receiver (JSON, POST /v1/traces).
  type OtlpSpan = { traceId: string; spanId: string; parentSpanId?: string; name: string };
  const received: { service: string; span: OtlpSpan }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const msg = JSON.parse(body) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of msg.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const span of ss.spans) received.push({ service, span });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/traces`;
  const platform = newPlatform();
  const tracing = new PlatformTracing({ exportTo: { protocol: 'otlp', url }, sampleRatio: 0 });
  platform.setTracing(tracing);
  try {
    await deployExample(platform, 'hello-c');
    const traceId = 'c'.repeat(32);
    const res = await platform.invoke({ function: 'hello-c', mode: 'cold', input: Buffer.from('otlp'), keep: false, traceparent: `00-${traceId}-${'d'.repeat(16)}-01` });
    assert.equal(Buffer.from(res.output).toString(), 'hello, otlp');
    assert.equal(await tracing.close(), null, 'export succeeded');
    assert.ok(received.length > 0);
    assert.ok(received.every((r) => r.span.traceId === traceId), 'the caller\'s trace');
    const byName = (name: string, service: string): OtlpSpan => {
      const r = received.find((x) => x.span.name === name && x.service === service);
      assert.ok(r, `'${name}' from ${service}: ${received.map((x) => `${x.service}:${x.span.name}`).join(', ')}`);
      return r.span;
    };
    const hostBoot = byName('host boot', 'thaw-daemon');
    assert.equal(byName('boot', 'thaw-sandbox-host').parentSpanId, hostBoot.spanId);
    assert.equal(byName('handler', 'thaw-sandbox-host').parentSpanId, byName('invoke', 'thaw-sandbox-host').spanId);
  } finally {
    await platform.close();
    await tracing.close();
    server.close();
  }
});

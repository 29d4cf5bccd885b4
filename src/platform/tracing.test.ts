// PlatformTracing: which invocations are traced (a caller's traceparent, else the sample ratio),
// the traceparent parser, host spans joined as recorded, and the daemon's trace settings.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDaemonConfig } from '../core/config.js';
import { formatTraceparent, parseTraceparent } from '../sandbox/protocol.js';
import { HOST_SERVICE, PlatformTracing, type SavedSpan } from './tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

test('parseTraceparent() reads version 00 and refuses malformed or all-zero ids', () => {
  assert.deepEqual(parseTraceparent(`00-${TRACE}-${PARENT}-01`), { traceId: TRACE, parentSpanId: PARENT, sampled: true });
  assert.equal(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.sampled, false);
  assert.equal(parseTraceparent(formatTraceparent(TRACE, PARENT))?.parentSpanId, PARENT);
  for (const bad of ['', 'garbage', `01-${TRACE}-${PARENT}-01`, `00-${TRACE.toUpperCase()}-${PARENT}-01`, `00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE}-${PARENT}-1`, `00-${TRACE}-${PARENT}-01-extra`]) {
    assert.equal(parseTraceparent(bad), null, bad);
  }
});

test('PlatformTracing.begin() follows a caller\'s sampled flag, else the sample ratio', async () => {
  const spans: SavedSpan[] = [];
  const none = new PlatformTracing({ exportTo: null, sink: (s) => spans.push(s), sampleRatio: 0 });
  assert.equal(none.begin('x', {}), null, 'ratio 0, no caller context');
  assert.equal(none.begin('x', {}, `00-${TRACE}-${PARENT}-00`), null, 'unsampled caller');
  assert.equal(none.begin('x', {}, 'malformed'), null, 'a malformed context counts as none');
  const traced = none.begin('x', {}, `00-${TRACE}-${PARENT}-01`);
  assert.ok(traced);
  assert.equal(traced.traceId, TRACE);
  traced.end({ done: true });
  assert.equal(spans.length, 1);
  assert.equal(spans[0]!.parentSpanId, PARENT);
  const all = new PlatformTracing({ exportTo: null, sink: () => {} });
  assert.ok(all.begin('x', {}), 'ratio 1 by default');
  await none.close();
  await all.close();
});

test('InvocationTrace.adopt() joins host spans with their own ids, parents and times, and drops other traces', async () => {
  const spans: SavedSpan[] = [];
  const tracing = new PlatformTracing({ exportTo: null, sink: (s) => spans.push(s), sampleRatio: 1 });
  const tr = tracing.begin('invoke f', {})!;
  const step = tr.step('host restore');
  const parent = parseTraceparent(tr.traceparentOf(step))!;
  const host = { traceId: tr.traceId, spanId: '1111111111111111', parentSpanId: parent.parentSpanId, name: 'restore', startMs: 1_700_000_000_000.25, endMs: 1_700_000_000_002.75, attributes: { 'thaw.strategy': 'eager' } };
  tr.adopt([host, { ...host, traceId: 'f'.repeat(32), spanId: '2222222222222222' }, { ...host, spanId: '3333333333333333', name: 'fill', error: 'boom' }], { 'thaw.host.pid': 42 });
  step.end();
  tr.end({});
  const restore = spans.find((s) => s.name === 'restore')!;
  assert.equal(restore.service, HOST_SERVICE);
  assert.equal(restore.spanId, host.spanId);
  assert.equal(restore.parentSpanId, step.spanContext().spanId);
  assert.ok(Math.abs(restore.startMs - host.startMs) < 0.001 && Math.abs(restore.durationMs - 2.5) < 0.001, 'times as recorded');
  assert.deepEqual(restore.attributes, { 'thaw.strategy': 'eager', 'thaw.host.pid': 42 });
  assert.equal(spans.find((s) => s.name === 'fill')!.status, 'error');
  assert.equal(spans.filter((s) => s.spanId === '2222222222222222').length, 0, 'a span of another trace is not joined');
  await tracing.close();
});

test('parseDaemonConfig() reads traceExport and traceSampleRatio and names a bad one', () => {
  const p = parseDaemonConfig({ traceExport: 'zipkin=http://127.0.0.1:9411/api/v2/spans', traceSampleRatio: '0.25' });
  assert.deepEqual(p.traceExport, { protocol: 'zipkin', url: 'http://127.0.0.1:9411/api/v2/spans' });
  assert.equal(p.traceSampleRatio, 0.25);
  assert.equal(parseDaemonConfig({}).traceExport, null);
  for (const bad of [{ traceExport: 'jaeger=http://x' }, { traceExport: 'zipkin=ftp://x' }, { traceExport: 'http://x' }, { traceSampleRatio: '2' }, { traceSampleRatio: 'half' }, { traceSampleRatio: -0.5 }]) {
    assert.throws(() => parseDaemonConfig(bad), (e: { code?: string; message?: string }) => e.code === 'THAW_CONFIG_INVALID' && /trace/.test(e.message ?? ''), JSON.stringify(bad));
  }
});

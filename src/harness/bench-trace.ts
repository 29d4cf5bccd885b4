// OpenTelemetry tracing for bench runs: every step of a run is a span (prepare, boot, snapshot,
// record run, invocation, and inside an invocation acquire / restore / handler with the
// function's own read / process / write). Spans are kept in memory and written with the run
// (traces.json); with an address they also go to a Zipkin or OTLP/HTTP collector.
// The platform reports its inner steps as durations after the fact, so those child spans are
// placed from the timings (attribute thaw.placed = true): acquire, then restore or boot + init,
// then the handler, with read, process and write laid end to end inside it.

import { context, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { InvokeTimings } from '../platform/types.js';
import type { RestoreStats } from '../restore/strategy.js';

/** One finished span as saved in traces.json. Times in ms since the epoch. */
export interface SavedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  readonly name: string;
  readonly startMs: number;
  readonly durationMs: number;
  readonly attributes: Attributes;
  readonly status: 'ok' | 'error' | 'unset';
}

/** The function's own seconds, when it reports them. */
export interface StageSeconds {
  readonly readS: number | null;
  readonly processS: number | null;
  readonly writeS: number | null;
}

const hrToMs = (t: readonly [number, number]): number => t[0] * 1000 + t[1] / 1e6;

/** Wall-clock now in ms with sub-ms precision. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The tracer of one bench run. */
export class BenchTracer {
  private readonly memory = new InMemorySpanExporter();
  private readonly provider: BasicTracerProvider;
  readonly tracer: Tracer;

  /** @param exportTo a collector to send spans to as well (batched), or null */
  constructor(experiment: string, exportTo: { readonly protocol: 'zipkin' | 'otlp'; readonly url: string } | null) {
    const processors: SpanProcessor[] = [new SimpleSpanProcessor(this.memory)];
    if (exportTo?.protocol === 'zipkin') processors.push(new BatchSpanProcessor(new ZipkinExporter({ url: exportTo.url, serviceName: 'thaw-bench' })));
    if (exportTo?.protocol === 'otlp') processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: exportTo.url })));
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'thaw-bench', 'thaw.experiment': experiment }),
      spanProcessors: processors,
    });
    this.tracer = this.provider.getTracer('thaw-harness');
  }

  /** Starts a span, as a child of `parent` when given. */
  start(name: string, attributes: Attributes, parent?: Span, startMs?: number): Span {
    const ctx = parent ? trace.setSpan(context.active(), parent) : context.active();
    return this.tracer.startSpan(name, { attributes, ...(startMs !== undefined ? { startTime: startMs } : {}) }, ctx);
  }

  /** Runs `body` inside a span that ends (with error status on a throw) when it settles. */
  async span<T>(name: string, attributes: Attributes, parent: Span | undefined, body: (span: Span) => Promise<T>): Promise<T> {
    const span = this.start(name, attributes, parent);
    try {
      return await body(span);
    } catch (err: unknown) {
      span.setStatus({ code: 2, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  }

  /**
   * Adds the platform's inner steps of one invocation under `parent`, placed from its timings
   * starting at `startMs`: acquire, boot, init, restore (with the strategy's map-or-prefetch
   * fill and the runtime's resume inside it, when `restore` stats are given), then invoke (the
   * handler) with the function's read, process and write seconds inside it.
   */
  addInvocationSteps(parent: Span, startMs: number, t: InvokeTimings, stages: StageSeconds, restore?: Pick<RestoreStats, 'fillMs' | 'strategy'>): void {
    let at = startMs;
    const step = (name: string, ms: number | undefined, p: Span = parent, from = at): number => {
      if (ms === undefined) return from;
      this.start(name, { 'thaw.placed': true, 'thaw.ms': ms }, p, from).end(from + ms);
      return from + ms;
    };
    at = step('acquire sandbox', t.acquireMs);
    at = step('boot', t.bootMs);
    at = step('init', t.initMs);
    if (t.restoreMs !== undefined && restore !== undefined) {
      const load = this.start('load snapshot (restore)', { 'thaw.placed': true, 'thaw.ms': t.restoreMs, 'thaw.strategy': restore.strategy }, parent, at);
      // fill() runs inside the runtime's restore; the rest of it (instantiation, state) is the resume.
      const fillMs = Math.min(restore.fillMs, t.restoreMs);
      const afterFill = step('map or prefetch (fill)', fillMs, load, at);
      step('resume', t.restoreMs - fillMs, load, afterFill);
      load.end(at + t.restoreMs);
      at += t.restoreMs;
    } else {
      at = step('load snapshot (restore)', t.restoreMs);
    }
    // Memory scaling runs in the host around the handler: grant and populate before, release after.
    at = step('grant memory', t.grantMs);
    at = step('populate memory', t.populateMs);
    const handler = this.start('invoke', { 'thaw.placed': true, 'thaw.ms': t.handlerMs }, parent, at);
    let inner = at;
    inner = step('read', stages.readS === null ? undefined : stages.readS * 1000, handler, inner);
    inner = step('process', stages.processS === null ? undefined : stages.processS * 1000, handler, inner);
    step('write', stages.writeS === null ? undefined : stages.writeS * 1000, handler, inner);
    handler.end(at + t.handlerMs);
    step('release memory', t.releaseMs, parent, at + t.handlerMs);
  }

  /** Every span finished so far, oldest first. */
  saved(): SavedSpan[] {
    return this.memory.getFinishedSpans().map((s: ReadableSpan) => ({
      traceId: s.spanContext().traceId,
      spanId: s.spanContext().spanId,
      parentSpanId: s.parentSpanContext?.spanId ?? null,
      name: s.name,
      startMs: hrToMs(s.startTime),
      durationMs: hrToMs(s.duration),
      attributes: s.attributes,
      status: s.status.code === 2 ? 'error' : s.status.code === 1 ? 'ok' : 'unset',
    }));
  }

  /** Flushes exporters and stops; export failures are reported, never thrown (the run's own traces.json is the record). */
  async close(): Promise<string | null> {
    try {
      await this.provider.forceFlush();
      await this.provider.shutdown();
      return null;
    } catch (err: unknown) {
      return err instanceof Error ? err.message : String(err);
    }
  }
}

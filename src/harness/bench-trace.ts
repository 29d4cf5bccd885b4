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
import { TIMING_PARTS, type InvokeTimings } from '../platform/types.js';
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
   * Adds the platform's inner steps of one invocation under `parent`, placed end to end from its
   * timings starting at `startMs`, one span per part of platform/types.ts TIMING_PARTS that is
   * not zero (so the spans cover the whole total): the restore holds the strategy's
   * map-or-prefetch fill and the runtime's resume when `restore` stats are given, the handler
   * the function's read, process and write seconds.
   */
  addInvocationSteps(parent: Span, startMs: number, t: InvokeTimings, stages: StageSeconds, restore?: Pick<RestoreStats, 'fillMs' | 'strategy'>): void {
    let at = startMs;
    const step = (name: string, ms: number | undefined, p: Span = parent, from = at): number => {
      if (ms === undefined) return from;
      this.start(name, { 'thaw.placed': true, 'thaw.ms': ms }, p, from).end(from + ms);
      return from + ms;
    };
    for (const part of TIMING_PARTS) {
      const ms = t[part.key];
      if (ms === 0) continue;
      if (part.key === 'restoreMs' && restore !== undefined) {
        const load = this.start(part.label, { 'thaw.placed': true, 'thaw.ms': ms, 'thaw.strategy': restore.strategy }, parent, at);
        // fill() runs inside the runtime's restore; the rest of it (instantiation, state) is the resume.
        const fillMs = Math.min(restore.fillMs, ms);
        const afterFill = step('map or prefetch (fill)', fillMs, load, at);
        step('resume', ms - fillMs, load, afterFill);
        load.end(at + ms);
      } else if (part.key === 'handlerMs') {
        const handler = this.start(part.label, { 'thaw.placed': true, 'thaw.ms': ms }, parent, at);
        let inner = at;
        inner = step('read', stages.readS === null ? undefined : stages.readS * 1000, handler, inner);
        inner = step('process', stages.processS === null ? undefined : stages.processS * 1000, handler, inner);
        step('write', stages.writeS === null ? undefined : stages.writeS * 1000, handler, inner);
        handler.end(at + ms);
      } else {
        step(part.label, ms);
      }
      at += ms;
    }
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

// OpenTelemetry tracing for bench runs: every step of a run is a span (prepare, boot, snapshot,
// record run, invocation, and inside an invocation the platform's steps with the function's own
// read / process / write). Spans are kept in memory and written with the run (traces.json); with
// an address they also go to a Zipkin or OTLP/HTTP collector.
// The platform records its steps, and the sandbox host the steps inside its process (restore,
// open, resume, map or prefetch, boot, init, handler, object reads and writes), as spans under the
// harness's invocation span (platform/tracing.ts). Only the function's own read / process / write
// seconds are placed (attribute thaw.placed = true), end to end inside the recorded handler; an
// invocation with no recorded spans (it failed before its host replied) gets every step placed
// from its timings instead.

import { TraceFlags, context, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { TIMING_PARTS, type InvokeTimings } from '../platform/types.js';
import { HOST_SERVICE, PlatformTracing, closeProvider, epochMs, toSavedSpan, type SavedSpan } from '../platform/tracing.js';
import { formatTraceparent } from '../sandbox/protocol.js';
import type { RestoreStats } from '../restore/strategy.js';

export type { SavedSpan };

/** The function's own seconds, when it reports them. */
export interface StageSeconds {
  readonly readS: number | null;
  readonly processS: number | null;
  readonly writeS: number | null;
}

/** Wall-clock now in ms with sub-ms precision. */
export const nowMs = epochMs;

/** The tracer of one bench run. */
export class BenchTracer {
  private readonly memory = new InMemorySpanExporter();
  private readonly provider: BasicTracerProvider;
  readonly tracer: Tracer;
  /** What the platforms of the run record (Platform.setTracing): their spans and their hosts'. */
  readonly platformTracing: PlatformTracing;
  private readonly recorded: SavedSpan[] = [];
  /** The same spans by their parent's id (recordedUnder walks down from an invocation). */
  private readonly recordedByParent = new Map<string, SavedSpan[]>();

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
    // Only invocations the harness passes its traceparent with are traced (ratio 0 for others).
    this.platformTracing = new PlatformTracing({
      exportTo,
      sink: (span) => {
        this.recorded.push(span);
        if (span.parentSpanId === null) return;
        const siblings = this.recordedByParent.get(span.parentSpanId);
        if (siblings) siblings.push(span);
        else this.recordedByParent.set(span.parentSpanId, [span]);
      },
      sampleRatio: 0,
    });
  }

  /** The traceparent that puts what the platform records under `span`. */
  traceparentOf(span: Span): string {
    return formatTraceparent(span.spanContext().traceId, span.spanContext().spanId);
  }

  /** The spans the platform and its hosts recorded under `span` (all descendants), oldest first. */
  recordedUnder(span: Span): SavedSpan[] {
    const out: SavedSpan[] = [];
    const queue = [span.spanContext().spanId];
    for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
      for (const child of this.recordedByParent.get(id) ?? []) {
        out.push(child);
        queue.push(child.spanId);
      }
    }
    return out.sort((a, b) => a.startMs - b.startMs);
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
  addInvocationSteps(parent: Span, startMs: number, t: InvokeTimings, stages: StageSeconds, restore?: Pick<RestoreStats, 'fillMs' | 'strategy'>, recorded: readonly SavedSpan[] = []): void {
    let at = startMs;
    const step = (name: string, ms: number | undefined, p: Span = parent, from = at): number => {
      if (ms === undefined) return from;
      this.start(name, { 'thaw.placed': true, 'thaw.ms': ms }, p, from).end(from + ms);
      return from + ms;
    };
    const handler = recorded.find((s) => s.name === 'handler' && s.service === HOST_SERVICE);
    if (handler) {
      // Recorded: only the function's own seconds are placed, inside the handler the host recorded.
      const inHandler = trace.wrapSpanContext({ traceId: handler.traceId, spanId: handler.spanId, traceFlags: TraceFlags.SAMPLED });
      let inner = handler.startMs;
      inner = step('read', stages.readS === null ? undefined : stages.readS * 1000, inHandler, inner);
      inner = step('process', stages.processS === null ? undefined : stages.processS * 1000, inHandler, inner);
      step('write', stages.writeS === null ? undefined : stages.writeS * 1000, inHandler, inner);
      return;
    }
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

  /** Every span finished so far, the harness's and the platform's, by start time. */
  saved(): SavedSpan[] {
    return [...this.memory.getFinishedSpans().map(toSavedSpan), ...this.recorded].sort((a, b) => a.startMs - b.startMs);
  }

  /** Flushes exporters and stops; export failures are reported, never thrown (the run's own traces.json is the record). */
  async close(): Promise<string | null> {
    const platformError = await this.platformTracing.close();
    return (await closeProvider(this.provider)) ?? platformError;
  }
}

// Traces of invocations through the platform (OpenTelemetry): the daemon's own span per invocation
// with its steps (acquire, checks, each request to the sandbox host), and the spans the host
// recorded inside its process (sandbox/host/spans.ts), joined under the request that carried the
// trace context. Exported to Zipkin (v2 JSON) or OTLP/HTTP, and/or handed to a sink (the harness
// writes them to traces.json). A request is traced when its caller's traceparent is sampled, or,
// with none, at the configured ratio.

import { SpanKind, SpanStatusCode, TraceFlags, context, trace, type Attributes, type HrTime, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { performance } from 'node:perf_hooks';
import { formatTraceparent, parseTraceparent, type HostSpan } from '../sandbox/protocol.js';

/** Where spans go: a Zipkin v2 endpoint (`.../api/v2/spans`) or an OTLP/HTTP traces endpoint (`.../v1/traces`). */
export interface TraceExport {
  readonly protocol: 'zipkin' | 'otlp';
  readonly url: string;
}

/** One finished span as saved in a harness's traces.json. Times in ms since the epoch. */
export interface SavedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  readonly name: string;
  readonly startMs: number;
  readonly durationMs: number;
  readonly attributes: Attributes;
  readonly status: 'ok' | 'error' | 'unset';
  /** The service that recorded it (thaw-daemon, thaw-sandbox-host, thaw-bench). */
  readonly service: string;
}

export interface TracingOptions {
  /** A collector to export to (batched), or null. */
  readonly exportTo: TraceExport | null;
  /** Called with every finished span (the daemon's and the hosts'), or none. */
  readonly sink?: (span: SavedSpan) => void;
  /** Share of requests without a caller's trace context that are traced (0..1; default 1). */
  readonly sampleRatio?: number;
}

/** The services spans are recorded by, as exported (Zipkin's localEndpoint.serviceName). */
export const DAEMON_SERVICE = 'thaw-daemon';
export const HOST_SERVICE = 'thaw-sandbox-host';

const hrToMs = (t: HrTime): number => t[0] * 1000 + t[1] / 1e6;
const msToHr = (ms: number): HrTime => {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
};

/** The platform's tracer: begins invocation traces and exports what they record. */
export class PlatformTracing {
  private readonly provider: BasicTracerProvider;
  private readonly processors: SpanProcessor[];
  private readonly tracer: Tracer;
  private readonly hostResource = resourceFromAttributes({ 'service.name': HOST_SERVICE });
  private readonly sampleRatio: number;

  constructor(opts: TracingOptions) {
    this.processors = [];
    if (opts.exportTo?.protocol === 'zipkin') this.processors.push(new BatchSpanProcessor(new ZipkinExporter({ url: opts.exportTo.url })));
    if (opts.exportTo?.protocol === 'otlp') this.processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: opts.exportTo.url })));
    if (opts.sink) this.processors.push(sinkProcessor(opts.sink));
    this.sampleRatio = opts.sampleRatio ?? 1;
    this.provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': DAEMON_SERVICE }), spanProcessors: this.processors });
    this.tracer = this.provider.getTracer('thaw-platform');
  }

  /**
   * Begins the trace of one invocation: a span named `name` under the caller's `traceparent`
   * when it is sampled, else (none given) a new trace at the sample ratio. Null: not traced.
   */
  begin(name: string, attributes: Attributes, traceparent?: string): InvocationTrace | null {
    let ctx = context.active();
    if (traceparent !== undefined) {
      const parent = parseTraceparent(traceparent);
      if (parent !== null) {
        if (!parent.sampled) return null;
        ctx = trace.setSpanContext(ctx, { traceId: parent.traceId, spanId: parent.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
      } else if (Math.random() >= this.sampleRatio) {
        return null;
      }
    } else if (Math.random() >= this.sampleRatio) {
      return null;
    }
    return new InvocationTrace(this, this.tracer.startSpan(name, { attributes, kind: SpanKind.SERVER, startTime: epochMs() }, ctx));
  }

  /** @internal A child of `parent`, started now or at `startMs` (ms since the epoch). */
  child(parent: Span, name: string, attributes: Attributes, startMs?: number): Span {
    return this.tracer.startSpan(name, { attributes, startTime: startMs ?? epochMs() }, trace.setSpan(context.active(), parent));
  }

  /** @internal Exports spans a sandbox host recorded, as recorded (their ids, parents and times). */
  adopt(spans: readonly HostSpan[], attributes: Attributes): void {
    for (const h of spans) {
      const readable = hostSpanToReadable(h, attributes, this.hostResource);
      for (const p of this.processors) p.onEnd(readable);
    }
  }

  /** Flushes and stops the exporters; an export failure is returned, never thrown. */
  close(): Promise<string | null> {
    return closeProvider(this.provider);
  }
}

/** Flushes and stops `provider`'s exporters; an export failure is returned, never thrown. */
export async function closeProvider(provider: BasicTracerProvider): Promise<string | null> {
  try {
    await provider.forceFlush();
    await provider.shutdown();
    return null;
  } catch (err: unknown) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** One traced invocation: its span, the spans of its steps and the host spans joined under them. */
export class InvocationTrace {
  constructor(private readonly tracing: PlatformTracing, readonly span: Span) {}

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  /** A step of the invocation in the daemon, started now or at `startMs` (ms since the epoch). */
  step(name: string, attributes: Attributes = {}, startMs?: number): Span {
    return this.tracing.child(this.span, name, attributes, startMs);
  }

  /** The traceparent that makes `span` the parent of what a host records. */
  traceparentOf(span: Span): string {
    return formatTraceparent(span.spanContext().traceId, span.spanContext().spanId);
  }

  /** Joins spans a host recorded (`attributes` added to each: which host) into this trace. */
  adopt(spans: readonly HostSpan[], attributes: Attributes): void {
    this.tracing.adopt(spans.filter((s) => s.traceId === this.traceId), attributes);
  }

  /** Ends the invocation's span (with error status and message when `err` is given). */
  end(attributes: Attributes, err?: unknown): void {
    this.span.setAttributes(attributes);
    endSpan(this.span, err);
  }
}

/**
 * Ends `span` now or at `endMs` (with error status when `err` is set). Every span of a trace is
 * timed on the epoch clock with sub-ms precision, the host's too (the SDK's own default start is
 * Date.now(), whole milliseconds).
 */
export function endSpan(span: Span, err?: unknown, endMs = epochMs()): void {
  if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end(endMs);
}

/** Wall-clock now in ms since the epoch (performance.timeOrigin + performance.now()). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

function hostSpanToReadable(h: HostSpan, extra: Attributes, resource: Resource): ReadableSpan {
  const startTime = msToHr(h.startMs);
  const endTime = msToHr(h.endMs);
  const spanContext = { traceId: h.traceId, spanId: h.spanId, traceFlags: TraceFlags.SAMPLED };
  return {
    name: h.name,
    kind: SpanKind.INTERNAL,
    spanContext: () => spanContext,
    parentSpanContext: { traceId: h.traceId, spanId: h.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true },
    startTime,
    endTime,
    duration: msToHr(Math.max(0, h.endMs - h.startMs)),
    status: h.error === undefined ? { code: SpanStatusCode.UNSET } : { code: SpanStatusCode.ERROR, message: h.error },
    attributes: { ...h.attributes, ...extra },
    links: [],
    events: [],
    ended: true,
    resource,
    instrumentationScope: { name: 'thaw-sandbox-host' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

/** A processor handing every finished span to `sink` in the saved shape. */
function sinkProcessor(sink: (span: SavedSpan) => void): SpanProcessor {
  return {
    onStart: () => {},
    onEnd: (s: ReadableSpan) => sink(toSavedSpan(s)),
    forceFlush: async () => {},
    shutdown: async () => {},
  };
}

/** A finished OpenTelemetry span in the saved shape. */
export function toSavedSpan(s: ReadableSpan): SavedSpan {
  return {
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? null,
    name: s.name,
    startMs: hrToMs(s.startTime),
    durationMs: hrToMs(s.duration),
    attributes: s.attributes,
    status: s.status.code === SpanStatusCode.ERROR ? 'error' : s.status.code === SpanStatusCode.OK ? 'ok' : 'unset',
    service: String(s.resource.attributes['service.name'] ?? ''),
  };
}

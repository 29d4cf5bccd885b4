// ThawApi over HTTP: what the CLI uses when it talks to a running daemon.

import { ThawError } from '../core/errors.js';
import type {
  FunctionInfo, InvokeRequest, InvokeResult, InvokeTimings, SandboxInfo, SnapshotInfo, SnapshotRequest, StrategyInfo, ThawApi, SnapshotVerifyReport, DoctorReport, LogEntry,
  SchedulerReport, SchedulerChange,
} from '../platform/types.js';

export class HttpClient implements ThawApi {
  constructor(private readonly baseUrl: string, private readonly token: string | null = null) {}

  /** What a failed fetch() means: no daemon answered at the URL (refused, unknown host, reset); fetch's own reason is in its cause. */
  private unreachable(err: unknown): ThawError {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.cause?.message || e.cause?.code || e.message;
    return new ThawError('THAW_DAEMON_UNREACHABLE', { url: this.baseUrl, detail: why }, { cause: err });
  }

  private async call<T>(method: string, path: string, body?: unknown, rawBody?: Uint8Array, extraHeaders: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { ...extraHeaders };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: string | Uint8Array | undefined;
    if (rawBody) {
      headers['content-type'] = 'application/octet-stream';
      payload = rawBody;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), { method, headers, ...(payload !== undefined && { body: payload }) });
    } catch (err) {
      throw this.unreachable(err);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ThawError('THAW_INTERNAL', { detail: `daemon replied ${res.status} with non-JSON: ${text.slice(0, 200)}` });
    }
    if (!res.ok) {
      const e = json as { code?: string; message?: string; traceId?: string };
      const err = ThawErrorFromReply(e.code ?? 'THAW_INTERNAL', e.message ?? text, res.status);
      if (typeof e.traceId === 'string') err.traceId = e.traceId;
      throw err;
    }
    return json as T;
  }

  deployFunction(manifest: unknown, artefact: Uint8Array): Promise<FunctionInfo> {
    return this.call('POST', '/v1/functions', { manifest, artefactBase64: Buffer.from(artefact).toString('base64') });
  }
  listFunctions(): Promise<FunctionInfo[]> {
    return this.call('GET', '/v1/functions');
  }
  getFunction(name: string): Promise<FunctionInfo> {
    return this.call('GET', `/v1/functions/${encodeURIComponent(name)}`);
  }
  deleteFunction(name: string): Promise<void> {
    return this.call('DELETE', `/v1/functions/${encodeURIComponent(name)}`);
  }
  functionLogs(name: string, opts: { afterSeq?: number; limit?: number } = {}): Promise<LogEntry[]> {
    const q = new URLSearchParams();
    if (opts.afterSeq !== undefined) q.set('after', String(opts.afterSeq));
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    return this.call('GET', `/v1/functions/${encodeURIComponent(name)}/logs?${q}`);
  }
  async followLogs(name: string, afterSeq: number | undefined, onEntry: (e: LogEntry) => void, signal: AbortSignal): Promise<void> {
    const headers: Record<string, string> = this.token ? { authorization: `Bearer ${this.token}` } : {};
    let res: Response;
    try {
      res = await fetch(new URL(`/v1/functions/${encodeURIComponent(name)}/logs?follow=true${afterSeq !== undefined ? `&after=${afterSeq}` : ''}`, this.baseUrl), { headers, signal });
    } catch (err) {
      if (signal.aborted) return;
      throw this.unreachable(err);
    }
    if (!res.ok || !res.body) {
      const e = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
      throw ThawErrorFromReply(e.code ?? 'THAW_INTERNAL', e.message ?? `daemon replied ${res.status}`, res.status);
    }
    let pending = '';
    try {
      for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          onEntry(JSON.parse(pending.slice(0, nl)) as LogEntry);
          pending = pending.slice(nl + 1);
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
  bootSandbox(fn: string): Promise<SandboxInfo & { timings: InvokeTimings }> {
    return this.call('POST', '/v1/sandboxes', { function: fn });
  }
  listSandboxes(): Promise<SandboxInfo[]> {
    return this.call('GET', '/v1/sandboxes');
  }
  deleteSandbox(id: string): Promise<void> {
    return this.call('DELETE', `/v1/sandboxes/${encodeURIComponent(id)}`);
  }
  createSnapshot(req: SnapshotRequest): Promise<SnapshotInfo> {
    return this.call('POST', '/v1/snapshots', req);
  }
  listSnapshots(fn?: string): Promise<SnapshotInfo[]> {
    return this.call('GET', `/v1/snapshots${fn ? `?function=${encodeURIComponent(fn)}` : ''}`);
  }
  getSnapshot(id: string): Promise<SnapshotInfo> {
    return this.call('GET', `/v1/snapshots/${encodeURIComponent(id)}`);
  }
  deleteSnapshot(id: string): Promise<void> {
    return this.call('DELETE', `/v1/snapshots/${encodeURIComponent(id)}`);
  }
  prepareSnapshot(id: string, strategy: string): Promise<{ snapshotId: string; strategy: string; built: boolean; elapsedMs: number }> {
    return this.call('POST', `/v1/snapshots/${encodeURIComponent(id)}/prepare`, { strategy });
  }
  verifySnapshot(id: string): Promise<SnapshotVerifyReport> {
    return this.call('POST', `/v1/snapshots/${encodeURIComponent(id)}/verify`);
  }
  listStrategies(): Promise<StrategyInfo[]> {
    return this.call('GET', '/v1/strategies');
  }
  doctor(): Promise<DoctorReport> {
    return this.call('GET', '/v1/doctor');
  }
  async invoke(req: InvokeRequest): Promise<InvokeResult> {
    const q = new URLSearchParams({ mode: req.mode });
    if (req.sandboxId !== undefined) q.set('sandbox', req.sandboxId);
    if (req.snapshotId !== undefined) q.set('snapshot', req.snapshotId);
    if (req.strategy !== undefined) q.set('strategy', req.strategy);
    if (req.keep !== undefined) q.set('keep', String(req.keep));
    const wire = await this.call<Omit<InvokeResult, 'output'> & { output?: string; outputBase64?: string }>(
      'POST', `/v1/functions/${encodeURIComponent(req.function)}/invocations?${q}`, undefined, req.input,
      req.traceparent === undefined ? {} : { traceparent: req.traceparent },
    );
    const { output, outputBase64, ...rest } = wire;
    return { ...rest, output: output !== undefined ? Buffer.from(output, 'utf8') : Buffer.from(outputBase64 ?? '', 'base64') };
  }
  scheduler(): Promise<SchedulerReport> {
    return this.call('GET', '/v1/scheduler');
  }
  configureScheduler(s: SchedulerChange): Promise<SchedulerReport> {
    return this.call('PUT', '/v1/scheduler', s);
  }
  putObject(key: string, value: Uint8Array): Promise<void> {
    return this.call('PUT', `/v1/objects/${encodeURIComponent(key)}`, undefined, value);
  }
  async getObject(key: string): Promise<Uint8Array> {
    const wire = await this.call<{ valueBase64: string }>('GET', `/v1/objects/${encodeURIComponent(key)}`);
    return Buffer.from(wire.valueBase64, 'base64');
  }
  deleteObject(key: string): Promise<void> {
    return this.call('DELETE', `/v1/objects/${encodeURIComponent(key)}`);
  }
  async listObjects(prefix?: string): Promise<string[]> {
    return (await this.call<{ keys: string[] }>('GET', `/v1/objects${prefix ? `?prefix=${encodeURIComponent(prefix)}` : ''}`)).keys;
  }
  async close(): Promise<void> {}
}

/** Rebuilds the daemon's error on the client side, keeping its code and message. */
function ThawErrorFromReply(code: string, message: string, status: number): ThawError {
  const err = ThawError.fromJSON({ code, message });
  // The daemon already formatted the message: keep its text rather than re-templating.
  Object.defineProperty(err, 'message', { value: message });
  Object.defineProperty(err, 'status', { value: status });
  return err;
}

// What guests write to stdout and stderr, kept per function in memory with bounded retention
// (the newest lines, up to a line count and a byte budget per function), readable by sequence
// number and followable. The daemon's own log still gets every line too (pino).

import { EventEmitter } from 'node:events';

export interface LogEntry {
  /** Increases by one per line across all functions: `afterSeq` resumes a read or a follow. */
  seq: number;
  time: string;
  function: string;
  sandboxId: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface LogRetention {
  /** Lines kept per function (the oldest go first). */
  readonly maxLines: number;
  /** Bytes of text kept per function. */
  readonly maxBytes: number;
  /** A longer line is cut here, with a marker saying how much was dropped. */
  readonly maxLineBytes: number;
}

export const DEFAULT_LOG_RETENTION: LogRetention = { maxLines: 2000, maxBytes: 1 << 20, maxLineBytes: 8 << 10 };

interface FunctionLog {
  entries: LogEntry[];
  bytes: number;
}

export class FunctionLogs {
  private readonly logs = new Map<string, FunctionLog>();
  private readonly events = new EventEmitter();
  private seq = 0;

  constructor(private readonly retention: LogRetention = DEFAULT_LOG_RETENTION) {
    this.events.setMaxListeners(0); // one per follower; followers are bounded by the HTTP server's connections
  }

  /** Appends what a sandbox of `fn` wrote (one or more lines; a trailing newline ends the last). */
  append(fn: string, sandboxId: string, stream: 'stdout' | 'stderr', text: string): void {
    const log = this.logs.get(fn) ?? { entries: [], bytes: 0 };
    this.logs.set(fn, log);
    const time = new Date().toISOString();
    for (let line of text.replace(/\n$/, '').split('\n')) {
      if (Buffer.byteLength(line) > this.retention.maxLineBytes) {
        const cut = Buffer.from(line).subarray(0, this.retention.maxLineBytes).toString('utf8');
        line = `${cut} [... ${Buffer.byteLength(line) - Buffer.byteLength(cut)} bytes cut]`;
      }
      const entry: LogEntry = { seq: ++this.seq, time, function: fn, sandboxId, stream, text: line };
      log.entries.push(entry);
      log.bytes += Buffer.byteLength(line);
      // The newest line always stays, even when it alone passes the byte budget.
      while (log.entries.length > this.retention.maxLines || (log.bytes > this.retention.maxBytes && log.entries.length > 1)) {
        log.bytes -= Buffer.byteLength(log.entries.shift()!.text);
      }
      this.events.emit(fn, entry);
    }
  }

  /** The kept lines of `fn` with seq > afterSeq, oldest first, at most `limit` (the newest ones). */
  read(fn: string, afterSeq = 0, limit = this.retention.maxLines): LogEntry[] {
    const entries = (this.logs.get(fn)?.entries ?? []).filter((e) => e.seq > afterSeq);
    return limit < entries.length ? entries.slice(entries.length - limit) : entries;
  }

  /** Calls `onEntry` for each new line of `fn` until `signal` aborts. */
  follow(fn: string, onEntry: (e: LogEntry) => void, signal: AbortSignal): void {
    if (signal.aborted) return;
    this.events.on(fn, onEntry);
    signal.addEventListener('abort', () => this.events.off(fn, onEntry), { once: true });
  }

  /** Drops what a deleted function wrote. */
  forget(fn: string): void {
    this.logs.delete(fn);
  }
}

export interface LogRate {
  /** Bytes of guest output a sandbox may log per second, sustained. */
  readonly bytesPerSecond: number;
  /** Bytes it may log at once after a quiet spell. */
  readonly burstBytes: number;
}

export const DEFAULT_LOG_RATE: LogRate = { bytesPerSecond: 256 << 10, burstBytes: 1 << 20 };

/**
 * A token bucket per sandbox in front of the logs: a guest that writes without end costs the
 * daemon's log (disk) and CPU, so what passes the rate is dropped, counted, and said in the next
 * line that gets through. Retention bounds memory; this bounds the work.
 */
export class LogRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; dropped: number }>();

  constructor(private readonly rate: LogRate = DEFAULT_LOG_RATE, private readonly now: () => number = () => performance.now()) {}

  /** `text` (after a note of what was dropped before it) when the sandbox may log it now, else null. */
  admit(sandboxId: string, text: string): string | null {
    const t = this.now();
    let b = this.buckets.get(sandboxId);
    if (!b) {
      if (this.buckets.size >= 4096) this.prune(t);
      b = { tokens: this.rate.burstBytes, at: t, dropped: 0 };
      this.buckets.set(sandboxId, b);
    }
    b.tokens = Math.min(this.rate.burstBytes, b.tokens + ((t - b.at) / 1000) * this.rate.bytesPerSecond);
    b.at = t;
    const bytes = Buffer.byteLength(text);
    if (bytes > b.tokens) {
      b.dropped += bytes;
      return null;
    }
    b.tokens -= bytes;
    if (b.dropped === 0) return text;
    const note = `[thaw: ${b.dropped} bytes of output dropped: over ${Math.round(this.rate.bytesPerSecond / 1024)} KiB/s]\n`;
    b.dropped = 0;
    return note + text;
  }

  /** Buckets that have refilled carry no state worth keeping. */
  private prune(t: number): void {
    for (const [id, b] of this.buckets) {
      if (b.dropped === 0 && b.tokens + ((t - b.at) / 1000) * this.rate.bytesPerSecond >= this.rate.burstBytes) this.buckets.delete(id);
    }
  }
}

// A stand-in for Zipkin's collector: accepts POST /api/v2/spans (Zipkin v2 JSON, what
// `thaw daemon --trace-export zipkin=<url>` sends) and keeps the spans. Used by the tracing test (src/test/tracing.test.ts);
// run on its own (`node dist/harness/zipkin-stand-in.js [port]`, default 9411) it prints each trace as
// a tree as its spans arrive, for a machine where Zipkin itself is not installed.

import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

/** A Zipkin v2 span as the exporter posts it (times in microseconds since the epoch). */
export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name: string;
  timestamp: number;
  duration: number;
  localEndpoint: { serviceName: string };
  tags: Record<string, string>;
}

export interface ZipkinStandIn {
  readonly url: string;
  readonly spans: ZipkinSpan[];
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:`port` (0: any); `onSpans` is called with each batch that arrives. */
export async function startZipkinStandIn(port = 0, onSpans?: (batch: ZipkinSpan[]) => void): Promise<ZipkinStandIn> {
  const spans: ZipkinSpan[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/v2/spans' || !/json/.test(req.headers['content-type'] ?? '')) {
        res.writeHead(404).end();
        return;
      }
      let batch: ZipkinSpan[];
      try {
        batch = JSON.parse(body) as ZipkinSpan[];
      } catch {
        res.writeHead(400).end();
        return;
      }
      spans.push(...batch);
      onSpans?.(batch);
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${bound}/api/v2/spans`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The spans of each trace as an indented tree: name, service, start offset and duration in ms. */
export function formatTrees(spans: readonly ZipkinSpan[]): string {
  const lines: string[] = [];
  for (const traceId of new Set(spans.map((s) => s.traceId))) {
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const ids = new Set(inTrace.map((s) => s.id));
    const t0 = Math.min(...inTrace.map((s) => s.timestamp));
    lines.push(`trace ${traceId}`);
    const walk = (parent: string | undefined, depth: number): void => {
      const children = inTrace.filter((s) => (parent === undefined ? s.parentId === undefined || !ids.has(s.parentId) : s.parentId === parent));
      for (const s of children.sort((a, b) => a.timestamp - b.timestamp)) {
        lines.push(`${'  '.repeat(depth + 1)}${s.name}  [${s.localEndpoint.serviceName}]  +${((s.timestamp - t0) / 1000).toFixed(3)} ms  ${(s.duration / 1000).toFixed(3)} ms`);
        walk(s.id, depth + 1);
      }
    };
    walk(undefined, 0);
  }
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 9411);
  const received: ZipkinSpan[] = [];
  let timer: NodeJS.Timeout | undefined;
  const standIn = await startZipkinStandIn(port, (batch) => {
    received.push(...batch);
    // Spans of one trace arrive in batches: print once they stop coming for a moment.
    clearTimeout(timer);
    timer = setTimeout(() => {
      process.stdout.write(`${formatTrees(received.splice(0))}\n`);
    }, 500);
  });
  process.stdout.write(`Zipkin stand-in listening: thaw daemon --trace-export zipkin=${standIn.url}\n`);
}

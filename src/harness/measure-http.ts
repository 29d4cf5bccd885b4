// Measures a function's snapshot restore + invoke and warm invoke through a running `thaw
// daemon` over HTTP on loopback, as a client sees them: from writing the request to reading the
// whole reply, beside the time the daemon reports inside Thaw (the reply's timings.totalMs).

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { readManifestFile } from '../cli/context.js';
import { HttpClient } from '../api/client.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Samples of one path over HTTP, in ms. */
export interface HttpSamples {
  /** Client side: request written to reply read (keep-alive connection, loopback). */
  readonly httpMs: number[];
  /** The daemon's own timings.totalMs of the same invocations. */
  readonly insideMs: number[];
}

export interface HttpFigures {
  readonly function: string;
  readonly runs: number;
  readonly snapshot: HttpSamples;
  readonly warm: HttpSamples;
  readonly outputsIdentical: boolean;
}

/** A `thaw daemon` child process on a free loopback port. */
export interface DaemonProcess {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts `thaw daemon --port 0` with `args` on `dataDir`; resolves once it listens. */
export async function startDaemonProcess(dataDir: string, args: readonly string[]): Promise<DaemonProcess> {
  const child: ChildProcessByStdio<null, Readable, null> = spawn(process.execPath, [CLI, '--data-dir', dataDir, 'daemon', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  const exited = once(child, 'exit');
  while (!/listening on (\S+)/.test(out)) {
    const got = await Promise.race([once(child.stdout, 'data') as Promise<[string]>, exited.then(() => null)]);
    if (got === null) throw new Error(`thaw daemon exited before listening: ${out}`);
    out += got[0];
  }
  // Its later stdout (pino's log lines) is drained, not kept.
  child.stdout.resume();
  return {
    url: /listening on (\S+)/.exec(out)![1]!,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/** One POST over `agent`, timed from the request's start to the reply's last byte. */
function timedPost(agent: Agent, url: URL, body: Uint8Array): Promise<{ ms: number; status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': body.byteLength } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const ms = performance.now() - t0;
        try {
          resolve({ ms, status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
        } catch (err: unknown) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Deploys `manifestPath` on the daemon at `baseUrl`, takes a snapshot of a cold sandbox and
 * measures `runs` restores + invokes of it (with `strategy`, each into a settled pool: GET
 * /health?settle=true between runs, as measurePaths waits for the pool in process), then `runs`
 * warm invokes of the first sandbox. Throws on any non-200 reply.
 */
export async function measureHttpPaths(baseUrl: string, manifestPath: string, input: Uint8Array, runs: number, strategy = 'eager'): Promise<HttpFigures> {
  const api = new HttpClient(baseUrl);
  const { manifest, artefact } = readManifestFile(manifestPath);
  const fn = await api.deployFunction(manifest, artefact);
  const first = await api.invoke({ function: fn.name, mode: 'cold', input, keep: true });
  const snap = await api.createSnapshot({ sandboxId: first.sandboxId, kind: 'full' });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const settle = new URL('/health?settle=true', baseUrl);
  const outputs = new Set([Buffer.from(first.output).toString('base64')]);
  const one = async (q: Record<string, string>, into: HttpSamples): Promise<void> => {
    const r = await timedPost(agent, new URL(`/v1/functions/${encodeURIComponent(fn.name)}/invocations?${new URLSearchParams(q)}`, baseUrl), input);
    if (r.status !== 200) throw new Error(`invocation over HTTP replied ${r.status}: ${JSON.stringify(r.json)}`);
    into.httpMs.push(r.ms);
    into.insideMs.push((r.json.timings as { totalMs: number }).totalMs);
    const out = typeof r.json.output === 'string' ? Buffer.from(r.json.output, 'utf8') : Buffer.from(String(r.json.outputBase64 ?? ''), 'base64');
    outputs.add(out.toString('base64'));
  };
  const snapshot: HttpSamples = { httpMs: [], insideMs: [] };
  const warm: HttpSamples = { httpMs: [], insideMs: [] };
  try {
    for (let i = 0; i < runs; i++) {
      await new Promise<void>((resolve, reject) => request(settle, { agent }, (res) => res.resume().on('end', resolve).on('error', reject)).on('error', reject).end());
      await one({ mode: 'snapshot', snapshot: snap.id, strategy, keep: 'false' }, snapshot);
    }
    for (let i = 0; i < runs; i++) await one({ mode: 'warm', sandbox: first.sandboxId, keep: 'true' }, warm);
  } finally {
    agent.destroy();
  }
  await api.deleteSandbox(first.sandboxId);
  return { function: fn.name, runs, snapshot, warm, outputsIdentical: outputs.size === 1 };
}

// The remote tier's memory server (FaaSMem's Fastswap over RDMA, stood in for by TCP): a process
// of its own holding the pages sandboxes send it, one store per connection (a connection's pages
// go when it closes), with an injectable latency added to each page fetched back to model a
// network. Sandbox hosts have no network: the server also listens on a Unix socket (mode 0660,
// group of the sandbox hosts) and relays each connection to its own TCP port, so every page still
// crosses TCP. Where this process may (root, `unshare` present) it runs in a network namespace of
// its own with only loopback up: nothing else on the machine can reach its port.
//
// Wire format (native/thaw_offload.c): a 16-byte header {op: 'P' | 'G', 7 zero bytes, page: u64 LE};
// 'P' is followed by one page and answered 'K'; 'G' is answered 'K' + the page, or 'E' if absent.
//
// Run as a program: node remote-server.js --socket <path> --gid <gid> --latency-us <us>

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES } from '../core/snapshot-format.js';

const HEADER = 16;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks for `us` microseconds (Atomics.wait: sub-millisecond, unlike timers). */
function pause(us: number): void {
  if (us > 0) Atomics.wait(sleeper, 0, 0, us / 1000);
}

/** Serves one connection's page store until it closes. */
function servePages(sock: Socket, latencyUs: number): void {
  const pages = new Map<bigint, Buffer>();
  let pending: Buffer = Buffer.alloc(0);
  sock.setNoDelay(true);
  sock.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    const replies: Buffer[] = [];
    let at = 0;
    for (;;) {
      if (pending.length - at < HEADER) break;
      const op = String.fromCharCode(pending[at]!);
      const page = pending.readBigUInt64LE(at + 8);
      if (op === 'P') {
        if (pending.length - at < HEADER + PAGE_BYTES) break;
        pages.set(page, Buffer.from(pending.subarray(at + HEADER, at + HEADER + PAGE_BYTES)));
        replies.push(Buffer.from('K'));
        at += HEADER + PAGE_BYTES;
      } else if (op === 'G') {
        pause(latencyUs);
        const bytes = pages.get(page);
        replies.push(bytes ? Buffer.concat([Buffer.from('K'), bytes]) : Buffer.from('E'));
        at += HEADER;
      } else {
        sock.destroy(); // a client that does not speak the protocol
        return;
      }
    }
    pending = pending.subarray(at);
    if (replies.length) sock.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
  });
  sock.on('error', () => sock.destroy());
  sock.on('close', () => pages.clear());
}

/**
 * Listens on `socketPath` (root:`gid`, 0660) and pipes each connection, byte for byte, to TCP
 * `port` on loopback (the page protocol needs no filtering: a client can only reach the pages of
 * its own connection).
 */
async function relayToPort(socketPath: string, port: number, gid: number): Promise<void> {
  const relay = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    relay.once('error', reject);
    relay.listen(socketPath, () => resolve());
  });
  chownSync(socketPath, 0, gid);
  chmodSync(socketPath, 0o660);
}

/** The server's main: TCP on loopback, plus the relay from the Unix socket. Prints "ready <port>". */
async function main(argv: readonly string[]): Promise<void> {
  const arg = (name: string): string => {
    const i = argv.indexOf(name);
    if (i < 0 || argv[i + 1] === undefined) throw new Error(`remote-server: ${name} is required`);
    return argv[i + 1]!;
  };
  const latencyUs = Number(arg('--latency-us'));
  const server = createServer((sock) => servePages(sock, latencyUs));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await relayToPort(arg('--socket'), port, Number(arg('--gid')));
  process.stdout.write(`ready ${port}\n`);
  process.on('SIGTERM', () => process.exit(0));
}

/** A running memory server process. */
export interface MemoryServer {
  readonly socketPath: string;
  readonly pid: number;
  /** True when it runs in a network namespace of its own; else why not. */
  readonly isolation: { netns: true } | { netns: false; reason: string };
  readonly latencyUs: number;
  /** Ends the process (SIGKILL: what a crash looks like to its clients). */
  kill(): Promise<void>;
}

/** Whether a child can get a network namespace of its own here, and if not, why. */
function netnsAvailability(): { ok: true } | { ok: false; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root: cannot create a network namespace' };
  const r = spawnSync('unshare', ['--net', 'true']);
  return r.status === 0 ? { ok: true } : { ok: false, reason: `unshare --net failed: ${r.error?.message ?? String(r.stderr).trim()}` };
}

/**
 * Starts a memory server listening on `socketPath` (root:`gid` 0660), adding `latencyUs` to each
 * page fetched. Resolves once it serves. Throws THAW_INTERNAL when it cannot start.
 */
export async function startMemoryServer(opts: { socketPath: string; gid: number; latencyUs: number }): Promise<MemoryServer> {
  const self = fileURLToPath(import.meta.url);
  const args = [self, '--socket', opts.socketPath, '--gid', String(opts.gid), '--latency-us', String(opts.latencyUs)];
  const ns = netnsAvailability();
  const child: ChildProcess = ns.ok
    ? spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready ')) resolve();
    });
    void exited.then(() => reject(new ThawError('THAW_INTERNAL', { detail: `the memory server exited before it was ready: ${out.trim()}` })));
  });
  return {
    socketPath: opts.socketPath,
    pid: child.pid ?? -1,
    isolation: ns.ok ? { netns: true } : { netns: false, reason: ns.reason },
    latencyUs: opts.latencyUs,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`thaw memory server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

// The remote tier's memory server (FaaSMem's Fastswap over RDMA, stood in for by TCP): a process
// of its own holding the pages sandboxes send it, one store per connection (a connection's pages
// go when it closes), with an injectable latency added to each fetch round trip to model a
// network. Sandbox hosts have no network: the server also listens on a Unix socket (mode 0660,
// group of the sandbox hosts), and every page still crosses TCP. Where this process may (root,
// `unshare` present) it runs in a network namespace of its own with only loopback up: nothing
// else on the machine can reach its port, and a client on the Unix socket is handed a TCP socket
// connected to the server (SCM_RIGHTS), which it then uses directly. Elsewhere the Unix socket
// is relayed to the TCP port byte for byte (one more hop per round trip).
//
// Wire format (native/thaw_offload.c): a 16-byte header {op: 'P' | 'G', 3 zero bytes, count: u32 LE,
// page: u64 LE} for the run of `count` pages from `page` (1 <= count <= MAX_RUN_PAGES):
// 'P' is followed by count * 4096 bytes and answered 'K' once; 'G' is answered 'K' + count * 4096
// bytes, or 'E' if any page of the run is absent. A page fetched back is forgotten (the client
// holds it again). The injected latency is charged once per 'G' round trip, as an RDMA read (or a
// Fastswap request) costs one network latency however many pages it carries.
//
// Run as a program: node remote-server.js --socket <path> --gid <gid> --latency-us <us> [--direct]

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES } from '../core/snapshot-format.js';
import { passMemoryConnection } from '../native/index.js';

const HEADER = 16;
/** The longest run one request may carry (the client sends at most 256: its prefetch batch). */
export const MAX_RUN_PAGES = 1024;

/** A reply held back until its injected latency has passed. */
interface Delayed {
  readonly dueNs: bigint;
  readonly sock: Socket;
  readonly parts: readonly Buffer[];
}

/**
 * Replies to fetches once their latency has passed, without blocking the event loop: a
 * setImmediate loop checks the monotonic clock (hrtime) and writes every reply that is due, so the
 * wait is accurate to one loop turn (a few us, where timers round up to 1 ms and Atomics.wait
 * overshot a 50 us wait ~3x), and requests of different connections wait at the same time, as
 * concurrent RDMA reads do. It spins a core only while a reply is waiting.
 */
class ReplyDelay {
  readonly #queue: Delayed[] = []; // in due order: one latency per server, so arrival order
  #head = 0;
  #scheduled = false;

  constructor(readonly latencyNs: bigint) {}

  send(sock: Socket, parts: readonly Buffer[]): void {
    if (this.latencyNs === 0n && this.#head === this.#queue.length) return writeParts(sock, parts);
    this.#queue.push({ dueNs: process.hrtime.bigint() + this.latencyNs, sock, parts });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    const now = process.hrtime.bigint();
    while (this.#head < this.#queue.length && this.#queue[this.#head]!.dueNs <= now) {
      const d = this.#queue[this.#head++]!;
      if (!d.sock.destroyed) writeParts(d.sock, d.parts);
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
      this.#scheduled = false;
    } else setImmediate(this.#flush);
  };
}

/** Writes parts as one writev (cork/uncork): no copy of the pages into one buffer. */
function writeParts(sock: Socket, parts: readonly Buffer[]): void {
  if (parts.length === 1) {
    sock.write(parts[0]!);
    return;
  }
  sock.cork();
  for (const part of parts) sock.write(part);
  sock.uncork();
}

/** Bytes received and not yet parsed, kept as the chunks they came in (joined only when needed). */
class ByteQueue {
  readonly #chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes the next out.length bytes (<= length) into out. */
  takeInto(out: Buffer): Buffer {
    let at = 0;
    while (at < out.length) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, out.length - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.length -= out.length;
    return out;
  }

  /** Removes the next n bytes (n <= length): a view into one chunk when they lie in one. */
  take(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length < n) return this.takeInto(Buffer.allocUnsafe(n));
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.length -= n;
    return first.subarray(0, n);
  }

  /** The next HEADER bytes (HEADER <= length), left in place. */
  peekHeader(): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= HEADER) return first.subarray(0, HEADER);
    const h = this.take(HEADER); // rare: a header split across chunks; put it back in front
    this.#chunks.unshift(h);
    this.length += HEADER;
    return h;
  }
}

const OK = Buffer.from('K');
const ABSENT = Buffer.from('E');

/** Serves one connection's page store until it closes. */
function servePages(sock: Socket, delay: ReplyDelay): void {
  const pages = new Map<number, Buffer>(); // page number (< 2^53) -> its own copy of the page
  const input = new ByteQueue();
  sock.setNoDelay(true);
  sock.on('data', (chunk: Buffer) => {
    input.push(chunk);
    while (input.length >= HEADER) {
      const h = input.peekHeader();
      const op = h[0]!;
      const count = h.readUInt32LE(4);
      const page = Number(h.readBigUInt64LE(8));
      if ((op !== 0x50 && op !== 0x47) || count < 1 || count > MAX_RUN_PAGES || !Number.isSafeInteger(page + count)) {
        sock.destroy(); // a client that does not speak the protocol
        return;
      }
      if (op === 0x50 /* P */) {
        if (input.length < HEADER + count * PAGE_BYTES) break;
        input.take(HEADER);
        for (let i = 0; i < count; i++) pages.set(page + i, input.takeInto(Buffer.allocUnsafeSlow(PAGE_BYTES)));
        sock.write(OK);
      } else {
        input.take(HEADER);
        const parts: Buffer[] = [OK];
        for (let i = 0; i < count; i++) {
          const bytes = pages.get(page + i);
          if (!bytes) break;
          parts.push(bytes);
        }
        if (parts.length === count + 1) {
          for (let i = 0; i < count; i++) pages.delete(page + i);
          delay.send(sock, parts);
        } else delay.send(sock, [ABSENT]);
      }
    }
  });
  sock.on('error', () => sock.destroy());
  sock.on('close', () => pages.clear());
}

/** The fd under a connected Node socket (net.Socket keeps it on its libuv handle). */
function fdOf(sock: Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('remote-server: a socket without an fd');
  return fd;
}

/**
 * Listens on `socketPath` (root:`gid`, 0660) and gives each client its own connection to TCP
 * `port` on loopback: `direct` (the server has a network namespace of its own), the connected
 * TCP socket itself, passed by SCM_RIGHTS after the byte 'T', so pages flow host <-> server with
 * no hop in between; else the byte 'R' and a byte-for-byte relay of the Unix socket to the port.
 * The page protocol needs no filtering either way: a client reaches only its own connection's
 * pages. A passed socket is no way out of a host's jail: it lives in the server's namespace,
 * where only loopback is up and only this server listens; a jailed host's Landlock rules refuse
 * it any other connect or bind, and its own namespace has no network.
 */
async function acceptClients(socketPath: string, port: number, gid: number, direct: boolean): Promise<void> {
  const relay = createServer((client) => {
    const upstream = connect({ port, host: '127.0.0.1', noDelay: true });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    if (direct) {
      upstream.pause(); // never read here: the client's copy of the socket gets every reply
      upstream.once('connect', () => {
        try {
          passMemoryConnection(fdOf(client), fdOf(upstream));
        } catch {
          /* the client went away first (EPIPE): nothing to hand over */
        } finally {
          end(); // this process's copies only: the client holds the connection now
        }
      });
      return;
    }
    client.on('close', end);
    upstream.on('close', end);
    client.write('R');
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
  const delay = new ReplyDelay(BigInt(Math.round(Number(arg('--latency-us')) * 1000)));
  const server = createServer((sock) => servePages(sock, delay));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await acceptClients(arg('--socket'), port, Number(arg('--gid')), argv.includes('--direct'));
  process.stdout.write(`ready ${port}\n`);
  process.on('SIGTERM', () => process.exit(0));
}

/** A running memory server process. */
export interface MemoryServer {
  readonly socketPath: string;
  readonly pid: number;
  /** True when it runs in a network namespace of its own (clients then get direct TCP connections); else why not (relayed). */
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
 * fetch round trip (however many pages it carries). `isolate: false` keeps it out of a network
 * namespace of its own (and so relays its clients) even where it could have one. Resolves once it serves. Throws THAW_INTERNAL when it cannot start.
 */
export async function startMemoryServer(opts: { socketPath: string; gid: number; latencyUs: number; isolate?: boolean }): Promise<MemoryServer> {
  const self = fileURLToPath(import.meta.url);
  const args = [self, '--socket', opts.socketPath, '--gid', String(opts.gid), '--latency-us', String(opts.latencyUs)];
  const ns = opts.isolate === false ? { ok: false as const, reason: 'isolate: false (asked for)' } : netnsAvailability();
  const child: ChildProcess = ns.ok
    ? spawn('unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...args, '--direct'], { stdio: ['ignore', 'pipe', 'inherit'] })
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

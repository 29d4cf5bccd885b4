// Thaw's page server for Firecracker microVMs: listens on a Unix socket for Firecracker's
// userfaultfd handshake (handshake.ts) and serves each VM's faults from a memory source
// (memory-source.ts) on a native thread (native/thaw_fc.c), with a restore strategy's policy:
//
//   uffd     on demand, one page per fault (Firecracker's on_demand example handler)
//   eager    every region installed at the handshake (Firecracker's fault_all handler)
//   reap     REAP: the first run records the pages the guest faults (a working set kept beside
//            the snapshot); later runs install that set at the handshake, the rest on demand
//   faasnap  FaaSnap: a Thaw snapshot's recorded loading set installed at the handshake in layer
//            order, the rest on demand
//   sabre    Sabre: a Thaw snapshot's lz4 partitions (built once beside it), each checked, decoded
//            and installed whole on the first fault inside it
// The other strategies do not apply (see NOT_APPLICABLE). A session ends when the VMM closes its
// socket; its statistics are reported. A refused handshake closes that connection only.

import { closeSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { ThawError } from '../core/errors.js';
import { PAGE_BYTES } from '../core/snapshot-format.js';
import { fcReceive, fcServe, type FcHandshake, type FcServeStats, type FcServer } from '../native/index.js';
import { openLoadingSet } from '../restore/faasnap-loading-set.js';
import { writeAtomic } from '../restore/snapshot-image.js';
import { decodeWorkingSet, encodeWorkingSet, pagesIn, runsFromOffsets } from '../restore/working-set.js';
import { parseHandshake, type GuestRegion } from './handshake.js';
import type { JailLayer } from '../sandbox/protocol.js';
import { openMemorySource, openPartitions, type MemorySource, type Partitions } from './memory-source.js';

/** Strategies a page server can apply, and how. */
export const PAGE_SERVER_STRATEGIES: Readonly<Record<string, string>> = {
  uffd: "on demand: one page per fault (Firecracker's on_demand handler)",
  eager: "every region installed at the handshake (Firecracker's fault_all handler)",
  reap: 'REAP: first run records the working set; later runs install it at the handshake, the rest on demand',
  faasnap: "FaaSnap: a Thaw snapshot's loading set installed at the handshake in layer order, the rest on demand",
  sabre: "Sabre: a Thaw snapshot's lz4 partitions, each checked and decoded on the first fault in it and installed whole",
};

/** What a Firecracker function's restore uses when none (or auto) is asked: REAP records on the first restore, then replays. */
export const FIRECRACKER_DEFAULT_STRATEGY = 'reap';

/** Strategies that do not apply to a page server, and why. */
export const NOT_APPLICABLE: Readonly<Record<string, string>> = {
  vanilla: "maps the snapshot file into the restoring process's own memory; Firecracker's guest memory is another process's",
  dram: "copies the snapshot into the restoring process's own memory",
  pass: "maps pooled copies into the restoring process's own memory",
  thaw: "moves pre-faulted pages of the restoring process under its own guest (mremap)",
  auto: 'picks among strategies for Wasm sandboxes; name one of uffd, eager, reap, faasnap',
};

export interface PageServerOptions {
  readonly socket: string;
  /** A Firecracker memory file or a Thaw snapshot directory. */
  readonly snapshot: string;
  readonly strategy: string;
  /** reap: the working-set file (default: <memory file>.ws.reap, or fc-ws.reap in a Thaw snapshot). */
  readonly workingSet?: string;
  /** Thaw snapshots: the sha256 of each state file of the chain by id (verified seals). */
  readonly expectSha256?: Readonly<Record<string, string>>;
  /** reap: where a recorded working set is written (default: workingSet's path); a jailed server's own directory. */
  readonly recordTo?: string;
  /** What this process observes of its jail (page-server-jail.ts), reported in the listening event; absent: not jailed. */
  readonly jail?: readonly JailLayer[];
  /** How long a connection may take to send its handshake. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Called with one event per line-worthy thing (listening, session, refused, session-end). */
  readonly onEvent?: (event: PageServerEvent) => void;
}

export type PageServerEvent =
  | { event: 'listening'; socket: string; source: string; kind: MemorySource['kind']; strategy: string; policy: string; verification: string; jail: readonly JailLayer[] | 'not jailed' }
  | { event: 'session'; peerPid: number; regions: number; guestBytes: number; phase: 'record' | 'replay' | null; prefetchPages: number }
  | { event: 'refused'; peerPid: number; code: string; message: string; params: Record<string, string | number> }
  | { event: 'session-end'; peerPid: number; stats: SessionStats; error?: string };

/** A session's statistics as reported (the native ones without the per-fault arrays). */
export interface SessionStats extends Omit<FcServeStats, 'recorded' | 'serviceNs' | 'error'> {
  recordedPages: number;
  serviceMedianNs: number;
  serviceP99Ns: number;
}

interface Session {
  readonly server: FcServer;
  readonly peerPid: number;
  readonly record: boolean;
  readonly socket: Socket;
}

/** Fails unless `id` is a strategy a page server applies. Throws THAW_STRATEGY_UNKNOWN / _UNAVAILABLE. */
export function checkStrategy(id: string): void {
  if (id in PAGE_SERVER_STRATEGIES) return;
  if (id in NOT_APPLICABLE) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: id, reason: `not for a Firecracker page server: ${NOT_APPLICABLE[id]}` });
  throw new ThawError('THAW_STRATEGY_UNKNOWN', { strategy: id, known: Object.keys(PAGE_SERVER_STRATEGIES).join(', ') });
}

function percentile(sorted: Uint32Array, q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
}

export class PageServer {
  readonly #opts: PageServerOptions;
  readonly #source: MemorySource;
  readonly #server: Server;
  readonly #sessions = new Set<Session>();
  readonly #wsPath: string;
  readonly #parts: Partitions | null;

  private constructor(opts: PageServerOptions, source: MemorySource, parts: Partitions | null) {
    this.#opts = opts;
    this.#source = source;
    this.#parts = parts;
    this.#wsPath = opts.workingSet ?? (source.kind === 'thaw-snapshot' ? `${source.home}/fc-ws.reap` : `${source.home}.ws.reap`);
    this.#server = createServer({ pauseOnConnect: true }, (socket) => void this.#accept(socket));
  }

  /** Opens the source and listens. Throws THAW_STRATEGY_*, THAW_SNAPSHOT_*. */
  static async listen(opts: PageServerOptions): Promise<PageServer> {
    checkStrategy(opts.strategy);
    const source = openMemorySource(opts.snapshot, opts.expectSha256);
    let parts: Partitions | null = null;
    try {
      parts = opts.strategy === 'sabre' ? openPartitions(source) : null;
    } catch (err: unknown) {
      source.close();
      throw err;
    }
    const ps = new PageServer(opts, source, parts);
    rmSync(opts.socket, { force: true });
    await new Promise<void>((resolve, reject) => {
      ps.#server.once('error', reject);
      ps.#server.listen(opts.socket, () => resolve());
    });
    ps.#emit({
      event: 'listening', socket: opts.socket, source: source.path, kind: source.kind, strategy: opts.strategy,
      policy: PAGE_SERVER_STRATEGIES[opts.strategy]!,
      verification: parts ? "checked: each lz4 partition's stored bytes are checked against its CRC-32 before it is decoded"
        : source.checksums ? `checked: every page served is checked against its ${source.checksums.pieceBytes}-byte piece's CRC-32 first`
        : 'unchecked: a Firecracker memory file carries no checksums, so served bytes are not checked',
      jail: opts.jail ?? 'not jailed',
    });
    return ps;
  }

  #emit(e: PageServerEvent): void {
    this.#opts.onEvent?.(e);
  }

  /** The memory-file byte ranges to install at the handshake, and whether to record. */
  #policy(): { prefetch: { offset: number; length: number }[]; record: boolean; phase: 'record' | 'replay' | null } {
    const s = this.#source;
    const pages = Math.floor(s.bytes / PAGE_BYTES);
    const runs = (rs: readonly { firstPage: number; pageCount: number }[]) => rs.map((r) => ({ offset: r.firstPage * PAGE_BYTES, length: r.pageCount * PAGE_BYTES }));
    switch (this.#opts.strategy) {
      case 'eager':
        return { prefetch: [{ offset: 0, length: pages * PAGE_BYTES }], record: false, phase: null };
      case 'reap': {
        let buf: Buffer;
        try {
          buf = readFileSync(this.#wsPath);
        } catch (err: unknown) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { prefetch: [], record: true, phase: 'record' };
          throw err;
        }
        return { prefetch: runs(decodeWorkingSet(this.#wsPath, buf, pages).runs), record: false, phase: 'replay' };
      }
      case 'faasnap': {
        const ls = s.kind === 'thaw-snapshot' ? openLoadingSet(s.home, s.home, pages) : null;
        if (!ls) throw new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy: 'faasnap', reason: `${s.home} has no recorded loading set (ls.faasnap): record one with a Wasm restore first, or use reap` });
        closeSync(ls.fd);
        return { prefetch: runs([...ls.set.regions].sort((a, b) => a.layer - b.layer)), record: false, phase: null };
      }
      default:
        return { prefetch: [], record: false, phase: null };
    }
  }

  /**
   * Waits for the handshake without blocking the event loop (other VMs keep being accepted):
   * polls the socket every few ms until the message is there or the timeout passes.
   */
  async #receive(socket: Socket, fd: number): Promise<FcHandshake> {
    const deadline = performance.now() + (this.#opts.handshakeTimeoutMs ?? 5000);
    for (;;) {
      // Once the socket is gone its fd number may belong to something else: never read it.
      if (socket.destroyed) throw new ThawError('THAW_REQUEST_INVALID', { detail: 'Firecracker handshake: the connection closed before it came' });
      try {
        return fcReceive(fd, 0);
      } catch (err: unknown) {
        const native = err instanceof ThawError ? (err.cause as { code?: string } | undefined) : undefined;
        if (native?.code !== 'ETIMEDOUT') throw err;
        if (performance.now() > deadline) throw new ThawError('THAW_REQUEST_INVALID', { detail: `Firecracker handshake: nothing received within ${this.#opts.handshakeTimeoutMs ?? 5000} ms` }, { cause: err });
        await new Promise((r) => setTimeout(r, 2));
      }
    }
  }

  async #accept(socket: Socket): Promise<void> {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let peerPid = 0;
    let uffd = -1;
    try {
      const hs = await this.#receive(socket, fd);
      peerPid = hs.pid;
      uffd = hs.fd;
      const regions: GuestRegion[] = parseHandshake(hs.body, this.#source.bytes);
      if (uffd < 0) throw new ThawError('THAW_REQUEST_INVALID', { detail: 'Firecracker handshake: no userfaultfd came with the message (SCM_RIGHTS)' });
      const policy = this.#policy();
      const taken = uffd;
      uffd = -1; // taken by fcServe, even when it fails
      let server: FcServer;
      try {
        server = fcServe({
          uffd: taken, memoryFd: this.#parts?.fd ?? this.#source.fd, peerPid, peerSocket: fd, regions,
          checksums: this.#parts ? null : this.#source.checksums, partitions: this.#parts,
          prefetch: policy.prefetch, record: policy.record,
        });
      } catch (err: unknown) {
        const native = err instanceof ThawError ? (err.cause as { code?: string } | undefined) : undefined;
        if (native?.code === 'EBADF') throw new ThawError('THAW_REQUEST_INVALID', { detail: 'Firecracker handshake: the fd sent with it is not a userfaultfd' }, { cause: err });
        throw err;
      }
      const session: Session = { server, peerPid, record: policy.record, socket };
      this.#sessions.add(session);
      this.#emit({
        event: 'session', peerPid, regions: regions.length, guestBytes: regions.reduce((n, r) => n + r.size, 0), phase: policy.phase,
        prefetchPages: policy.prefetch.reduce((n, r) => n + r.length / PAGE_BYTES, 0),
      });
      socket.on('close', () => this.#end(session));
      socket.on('error', () => socket.destroy());
      socket.resume(); // Firecracker sends nothing more: we only wait for it to close
    } catch (err: unknown) {
      if (uffd >= 0) closeSync(uffd);
      socket.destroy();
      const e = err instanceof ThawError ? err : new ThawError('THAW_INTERNAL', { detail: (err as Error).message }, { cause: err });
      this.#emit({ event: 'refused', peerPid, code: e.code, message: e.message, params: { ...e.params } });
    }
  }

  #end(session: Session): void {
    if (!this.#sessions.delete(session)) return;
    const raw = session.server.stop();
    const sorted = raw.serviceNs.slice().sort();
    const { recorded, serviceNs, error, ...counts } = raw;
    void serviceNs;
    const stats: SessionStats = { ...counts, recordedPages: recorded.length, serviceMedianNs: percentile(sorted, 0.5), serviceP99Ns: percentile(sorted, 0.99) };
    if (session.record && !error && recorded.length > 0) {
      const runs = runsFromOffsets(recorded);
      writeAtomic(this.#opts.recordTo ?? this.#wsPath, encodeWorkingSet({ memoryPages: Math.floor(this.#source.bytes / PAGE_BYTES), runs }));
      stats.recordedPages = pagesIn(runs);
    }
    this.#emit({ event: 'session-end', peerPid: session.peerPid, stats, ...(error ? { error } : {}) });
  }

  /** Stops listening, ends every session and closes the source. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of [...this.#sessions]) {
      s.socket.destroy();
      this.#end(s);
    }
    await closed;
    this.#parts?.close();
    this.#source.close();
    rmSync(this.#opts.socket, { force: true });
  }
}

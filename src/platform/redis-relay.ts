// The daemon's relay between jailed sandbox hosts and a Redis object store: hosts have no
// network (an empty network namespace), so they reach Redis through a Unix socket the daemon
// listens on, beside the snapshots, readable and writable by the sandbox group only. Each
// connection is piped to the configured server, filtered command by command: only what the
// object store sends (store/redis-store.ts) goes through, since a guest that reaches the host
// realm can write anything on the socket.
//
// Allowed: GET, SET, DEL, SCAN (the store's operations); HELLO, AUTH, PING, QUIT, CLIENT SETINFO
// and SELECT of the store's own database (node-redis's handshake). Anything else (FLUSHALL,
// CONFIG, KEYS, EVAL, SUBSCRIBE, MONITOR, SELECT of another database, ...) is not sent: in its
// place the relay sends the server `THAW-RELAY-REFUSED <command> <why>`, an unknown command, so the
// client gets a Redis error reply in its place in a pipeline without the relay parsing replies.
// Requests must be RESP arrays of bulk strings (what every client library sends); an inline
// command or a malformed request closes the connection. Payloads are streamed, never buffered
// whole: only a command's first two arguments are read, and only while they are short.

import { chmodSync, chownSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** A relay; `ready` resolves once it listens; close() stops it and removes its socket. */
export interface RedisRelay {
  readonly socketPath: string;
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * Listens on `socketPath` (owned root:`gid`, mode 0660) and relays each connection to the Redis
 * server of `url` (redis://host:port/db). Returns at once: hosts connect on their first object
 * use, after `ready` (a connection refused before it is an object-store error of that call).
 */
export function startRedisRelay(socketPath: string, url: string, gid: number): RedisRelay {
  const target = new URL(url);
  const port = target.port === '' ? 6379 : Number(target.port);
  const db = Number(target.pathname.slice(1) || '0');
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, target.hostname);
    // The filter forwards a command in several writes (its header, then the payload as it streams
    // in): with Nagle's algorithm on, a short last write waits for Redis's delayed ACK (40 ms).
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      // Either side failing ends both: the host's client sees the drop and reports it.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const filter = new CommandFilter(db, (bytes) => upstream.write(bytes), () => {
      client.destroy();
      upstream.destroy();
    });
    client.on('data', (data: Buffer) => filter.push(data));
    client.on('end', () => upstream.end());
    upstream.pipe(client);
  });
  rmSync(socketPath, { force: true });
  const ready = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      chownSync(socketPath, 0, gid);
      chmodSync(socketPath, 0o660);
      resolve();
    });
  });
  server.unref();
  return {
    socketPath,
    ready,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(socketPath, { force: true });
    },
  };
}

/** Commands the object store's client sends, by name; SELECT and CLIENT are checked further. */
const ALLOWED = new Set(['GET', 'SET', 'DEL', 'SCAN', 'HELLO', 'AUTH', 'PING', 'QUIT', 'SELECT', 'CLIENT']);
const ALLOWED_LIST = 'GET, SET, DEL, SCAN, HELLO, AUTH, PING, QUIT, CLIENT SETINFO, SELECT of the store\'s database';
/** Longest command name or checked argument read (anything longer is refused unread). */
const MAX_CHECKED_ARG = 64;
/** Redis's own limits: arguments per command and bytes per argument (proto-max-bulk-len). */
const MAX_ARGS = 1 << 20;
const MAX_BULK = 512 << 20;
const CRLF = Buffer.from('\r\n');

/** Why a command is refused, or null when it goes through (args: its first one or two). */
function refusal(args: readonly Buffer[], db: number): string | null {
  const name = args[0]!.toString('latin1').toUpperCase();
  if (!ALLOWED.has(name)) return `not allowed through Thaw's sandbox relay (allowed: ${ALLOWED_LIST})`;
  const arg = args[1]?.toString('latin1');
  if (name === 'SELECT' && arg !== undefined && arg !== String(db)) return `only database ${db}, the object store's, may be selected`;
  if (name === 'CLIENT' && arg?.toUpperCase() !== 'SETINFO') return 'only CLIENT SETINFO is allowed through Thaw\'s sandbox relay';
  return null;
}

/**
 * Splits a client's byte stream into RESP commands and passes on the allowed ones, streaming
 * their payloads (see the top of this file). `forward` gets the bytes for the server; `fail`
 * is called once on a request that is not RESP (the caller drops the connection).
 */
export class CommandFilter {
  #line = Buffer.alloc(0); // an unfinished header line ("*N" or "$len")
  #argsLeft = 0; // bulk arguments of the current command whose header has not come yet
  #bulkLeft = 0; // bytes (payload and CRLF) of the current argument still to come
  #verdict: string | null | undefined; // undefined: not known yet; null: allowed; string: why refused
  #held: Buffer[] = []; // the command's bytes while the verdict is unknown
  #args: Buffer[] = []; // its first arguments, while the verdict is unknown
  #arg: Buffer[] = []; // payload of the argument being read, while the verdict is unknown
  #failed = false;

  constructor(private readonly db: number, private readonly forward: (bytes: Buffer) => void, private readonly fail: () => void) {}

  /** Takes the next bytes from the client. */
  push(data: Buffer): void {
    let at = 0;
    while (at < data.length && !this.#failed) {
      if (this.#bulkLeft > 0) {
        const n = Math.min(this.#bulkLeft, data.length - at);
        this.#emit(data.subarray(at, at + n), true);
        this.#bulkLeft -= n;
        at += n;
        if (this.#bulkLeft === 0) this.#argEnd();
        continue;
      }
      const nl = data.indexOf(10, at);
      const end = nl < 0 ? data.length : nl + 1;
      this.#line = Buffer.concat([this.#line, data.subarray(at, end)]);
      at = end;
      if (this.#line.length > 24) return this.#fail();
      if (nl < 0) continue;
      const line = this.#line;
      this.#line = Buffer.alloc(0);
      this.#header(line);
    }
  }

  #fail(): void {
    this.#failed = true;
    this.fail();
  }

  #header(line: Buffer): void {
    const text = line.toString('latin1');
    const m = /^([*$])(\d{1,10})\r\n$/.exec(text);
    const n = m ? Number(m[2]) : NaN;
    if (this.#argsLeft === 0) {
      // A new command: an array of one or more bulk strings.
      if (m?.[1] !== '*' || n < 1 || n > MAX_ARGS) return this.#fail();
      this.#argsLeft = n;
      this.#verdict = undefined;
      this.#held = [line];
      this.#args = [];
      return;
    }
    if (m?.[1] !== '$' || n > MAX_BULK) return this.#fail();
    this.#argsLeft--;
    this.#bulkLeft = n + 2;
    // A name or checked argument this long is no allowed command's.
    if (this.#verdict === undefined && n > MAX_CHECKED_ARG) this.#decide(`${this.#args.length === 0 ? 'a command name' : 'an argument'} of ${n} bytes is not allowed through Thaw's sandbox relay`);
    this.#emit(line, false);
  }

  /** Passes bytes of the current command on, holds them while undecided, or drops them. */
  #emit(bytes: Buffer, payload: boolean): void {
    if (this.#verdict === undefined) {
      this.#held.push(bytes);
      if (payload) this.#arg.push(bytes);
    } else if (this.#verdict === null) {
      this.forward(bytes);
    }
  }

  #argEnd(): void {
    if (this.#verdict === undefined) {
      const arg = Buffer.concat(this.#arg);
      this.#arg = [];
      if (!arg.subarray(arg.length - 2).equals(CRLF)) return this.#fail();
      this.#args.push(arg.subarray(0, arg.length - 2));
      const name = this.#args[0]!.toString('latin1').toUpperCase();
      const needsArg = name === 'SELECT' || name === 'CLIENT';
      if (this.#args.length === 2 || !needsArg || this.#argsLeft === 0) this.#decide(refusal(this.#args, this.db));
    }
    if (this.#argsLeft === 0) this.#commandEnd();
  }

  #decide(verdict: string | null): void {
    this.#verdict = verdict;
    if (verdict === null) for (const b of this.#held) this.forward(b);
    this.#held = [];
    this.#arg = [];
  }

  #commandEnd(): void {
    if (typeof this.#verdict === 'string') {
      // An unknown command in the refused one's place: the server answers it with an error, in order.
      const name = (this.#args[0]?.toString('latin1') ?? '?').replace(/[^\x21-\x7e]/g, '?').slice(0, MAX_CHECKED_ARG);
      const parts = ['THAW-RELAY-REFUSED', name, this.#verdict].map((p) => Buffer.from(p, 'utf8'));
      this.forward(Buffer.concat([Buffer.from(`*${parts.length}\r\n`), ...parts.flatMap((p) => [Buffer.from(`$${p.length}\r\n`), p, CRLF])]));
    }
    this.#verdict = undefined;
    this.#args = [];
  }
}

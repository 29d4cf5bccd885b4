// A throwaway redis-server for tests and the harness: started on a free loopback port with
// persistence off, ready once it answers PING, and killed by stop() or when the process exits.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** A running redis-server owned by this process. */
export interface RedisServer {
  /** `redis://127.0.0.1:<port>/0` */
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and removes its working directory. */
  stop(): Promise<void>;
}

/** Time allowed for a started server to answer PING. */
const READY_TIMEOUT_MS = 10_000;
/** Start attempts; another process can take the free port between probe and bind. */
const START_ATTEMPTS = 3;

/**
 * Finds the redis-server executable: $THAW_REDIS_SERVER, then each directory of $PATH, then
 * /usr/bin and /usr/sbin (Debian's package installs /usr/bin/redis-server).
 *
 * @returns the absolute path, or undefined when it is not installed
 */
export function findRedisServer(): string | undefined {
  const override = process.env['THAW_REDIS_SERVER'];
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  const candidates = override ? [override] : dirs.filter((d) => d !== '').map((d) => path.join(d, 'redis-server'));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return path.resolve(candidate);
    } catch {
      // not here; try the next one
    }
  }
  return undefined;
}

/**
 * Why Redis-backed tests cannot run here, for `test(name, { skip }, ...)`.
 *
 * @returns a reason such as "redis-server is not installed (...)", or false when they can run
 */
export function redisServerSkipReason(): string | false {
  return findRedisServer() === undefined
    ? 'redis-server is not installed (apt-get install redis-server, see scripts/setup.d/20-store.apt)'
    : false;
}

/**
 * Starts redis-server on a free 127.0.0.1 port with `--save '' --appendonly no`, and waits
 * until it answers PING.
 *
 * @returns the running server; the caller must stop() it
 * @throws Error when redis-server is not installed or does not become ready within 10 s
 */
export async function startRedisServer(): Promise<RedisServer> {
  const binary = findRedisServer();
  if (binary === undefined) throw new Error('redis-server is not installed');
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(binary, await freePort());
    } catch (err: unknown) {
      lastError = err;
    }
  }
  throw new Error(`redis-server did not start after ${START_ATTEMPTS} attempts`, { cause: lastError });
}

/**
 * A loopback TCP port on which nothing listens (bound and released at once), for tests that
 * need a refused connection or a port to start a server on.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not read the probe port');
  return address.port;
}

async function startOnce(binary: string, port: number): Promise<RedisServer> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'thaw-redis-'));
  const child = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', workDir, '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // If the test process dies without stop(), the server must not outlive it.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    await terminate(child);
    fs.rmSync(workDir, { recursive: true, force: true });
  };
  try {
    await waitForPing(port, child);
  } catch (err: unknown) {
    await stop();
    throw new Error(`redis-server on port ${port} not ready: ${(err as Error).message}\n${output}`, { cause: err });
  }
  child.unref();
  return { url: `redis://127.0.0.1:${port}/0`, port, stop };
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode}`);
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`no PONG within ${READY_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Sends an inline PING; true when the reply is +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

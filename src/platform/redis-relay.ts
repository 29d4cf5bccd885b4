// The daemon's relay between jailed sandbox hosts and a Redis object store: hosts have no
// network (an empty network namespace), so they reach Redis through a Unix socket the daemon
// listens on, beside the snapshots, readable and writable by the sandbox group only. Each
// connection is piped to the configured server, byte for byte.

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
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, target.hostname);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      // Either side failing ends both: the host's client sees the drop and reports it.
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
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

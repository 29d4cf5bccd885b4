// Host-initiated connections to a guest over Firecracker's vsock device (docs/vsock.md of
// firecracker-microvm/firecracker): connect to the device's Unix socket, send `CONNECT <port>\n`,
// read `OK <host port>\n`, and the stream is then the guest's. A Firecracker function's guest
// serves HTTP/1.1 on such a port; an invocation is one POST on a fresh connection.

import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { ThawError } from '../core/errors.js';

/** The handshake's reply is one short line; more than this is not Firecracker's. */
const MAX_REPLY_LINE = 64;

/** Connects to guest vsock `port` through `udsPath`; the socket is paused after the handshake. Throws Error (the caller names the sandbox). */
export function vsockConnect(udsPath: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect(udsPath);
    let line = '';
    const fail = (err: Error): void => {
      sock.destroy();
      reject(err);
    };
    sock.once('error', fail);
    sock.once('connect', () => sock.write(`CONNECT ${port}\n`));
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('latin1');
      const nl = text.indexOf('\n');
      line += nl < 0 ? text : text.slice(0, nl);
      if (nl < 0) {
        if (line.length > MAX_REPLY_LINE) fail(new Error(`vsock handshake: no reply line within ${MAX_REPLY_LINE} bytes`));
        return;
      }
      sock.off('data', onData);
      sock.off('error', fail);
      sock.pause();
      if (!/^OK \d+$/.test(line)) return fail(new Error(`vsock handshake: ${JSON.stringify(line)} instead of "OK <port>" (is the guest listening on port ${port}?)`));
      const rest = chunk.subarray(Buffer.byteLength(text.slice(0, nl + 1), 'latin1'));
      if (rest.length > 0) sock.unshift(rest);
      resolve(sock);
    };
    sock.on('data', onData);
    sock.once('end', () => fail(new Error(`vsock handshake: the connection closed before "OK" (nothing listens on guest port ${port} yet)`)));
  });
}

/**
 * Waits until the guest accepts connections on `port` (it booted or resumed), polling every
 * `everyMs`, or gives up after `timeoutMs` with the last refusal. Throws Error.
 */
export async function vsockWaitReady(udsPath: string, port: number, timeoutMs: number, everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      (await vsockConnect(udsPath, port)).destroy();
      return;
    } catch (err: unknown) {
      if (performance.now() > deadline) throw new Error(`the guest did not accept vsock connections on port ${port} within ${timeoutMs} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** A guest's HTTP reply: status and body (at most maxBytes + 1 bytes are kept, to tell "too large"). */
export interface GuestReply {
  readonly status: number;
  readonly body: Buffer;
  readonly truncated: boolean;
}

/** POSTs `body` to `path` over a fresh vsock connection to guest `port`. Throws Error. */
export async function vsockPost(udsPath: string, port: number, path: string, body: Uint8Array, maxBytes: number): Promise<GuestReply> {
  const sock = await vsockConnect(udsPath, port);
  return new Promise((resolve, reject) => {
    const req = request({
      createConnection: () => sock, method: 'POST', path, host: 'guest',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, Connection: 'close' },
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let truncated = false;
      res.on('data', (c: Buffer) => {
        if (size > maxBytes) {
          truncated = true;
          return;
        }
        chunks.push(c);
        size += c.length;
      });
      res.on('end', () => {
        sock.destroy();
        const all = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, body: all.length > maxBytes ? all.subarray(0, maxBytes + 1) : all, truncated: truncated || all.length > maxBytes });
      });
      res.on('error', reject);
    });
    req.on('error', (err) => {
      sock.destroy();
      reject(err);
    });
    req.end(body);
    sock.resume(); // paused since the handshake: the HTTP parser listens now
  });
}

/** Wraps a guest-side failure as the function's error. */
export function guestFailed(name: string, detail: string): ThawError {
  return new ThawError('THAW_GUEST_TRAP', { name, detail });
}

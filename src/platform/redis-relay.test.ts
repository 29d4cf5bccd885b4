// The Redis relay against a real redis-server: the object store works through it, every other
// command gets a Redis error in its place (in order, in a pipeline) and never reaches the server.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RedisStore } from '../store/redis-store.js';
import { redisServerSkipReason, startRedisServer, type RedisServer } from '../store/testing/redis-server.js';
import { startRedisRelay, type RedisRelay } from './redis-relay.js';

/** A RESP request: an array of bulk strings. */
function resp(...args: (string | Buffer)[]): Buffer {
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => {
    const b = Buffer.from(a);
    return [Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')];
  })]);
}

/** Reads `count` RESP2 replies (simple, error, integer, bulk, flat arrays) from `socket`, as strings. */
function replies(socket: Socket, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`timed out; got ${buf.toString('latin1')}`)), 5000);
    const parse = (at: number): [string, number] | null => {
      const nl = buf.indexOf('\r\n', at);
      if (nl < 0) return null;
      const line = buf.toString('latin1', at + 1, nl);
      const type = String.fromCharCode(buf[at]!);
      if (type === '$') {
        const n = Number(line);
        if (n < 0) return ['(nil)', nl + 2];
        if (buf.length < nl + 2 + n + 2) return null;
        return [buf.toString('latin1', nl + 2, nl + 2 + n), nl + 2 + n + 2];
      }
      if (type === '*') {
        const items: string[] = [];
        let next = nl + 2;
        for (let i = 0; i < Number(line); i++) {
          const r = parse(next);
          if (r === null) return null;
          items.push(r[0]);
          next = r[1];
        }
        return [`[${items.join(',')}]`, next];
      }
      return [`${type}${line}`, nl + 2];
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const out: string[] = [];
      let at = 0;
      while (out.length < count) {
        const r = parse(at);
        if (r === null) return;
        out.push(r[0]);
        at = r[1];
      }
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(out);
    };
    socket.on('data', onData);
  });
}

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
}

describe('redis relay', { skip: redisServerSkipReason() }, () => {
  let server: RedisServer;
  let relay: RedisRelay;
  const dir = mkdtempSync(join(tmpdir(), 'thaw-relay-'));
  const socketPath = join(dir, 'redis.sock');

  before(async () => {
    server = await startRedisServer();
    relay = startRedisRelay(socketPath, server.url, process.getgid?.() ?? 0);
    await relay.ready;
  });
  after(async () => {
    await relay.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the object store works through it: put, get, list, delete, a 3 MiB value byte for byte', async () => {
    const store = await RedisStore.open(server.url, { socketPath });
    try {
      const big = Buffer.alloc(3 << 20);
      for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
      await store.put('relay/a', Buffer.from('one'));
      await store.put('relay/big', big);
      assert.equal(Buffer.from((await store.get('relay/a'))!).toString(), 'one');
      assert.equal(Buffer.compare(Buffer.from((await store.get('relay/big'))!), big), 0);
      assert.deepEqual((await store.list('relay/')).sort(), ['relay/a', 'relay/big']);
      assert.equal(await store.delete('relay/big'), true);
      assert.equal(await store.get('relay/big'), undefined);
    } finally {
      await store.close();
    }
  });

  test('any other command gets a Redis error in its place in a pipeline and never reaches the server', async () => {
    const s = await open(socketPath);
    try {
      const pipeline = [
        resp('SET', 'relay/kept', 'v'),
        resp('FLUSHALL'),
        resp('GET', 'relay/kept'),
        resp('CONFIG', 'SET', 'dir', '/tmp'),
        resp('SELECT', '1'),
        resp('SELECT', '0'),
        resp('CLIENT', 'KILL', 'TYPE', 'normal'),
        resp('client', 'setinfo', 'LIB-NAME', 'x'),
        resp('EVAL', 'return 1', '0'),
        resp('x'.repeat(100)),
        resp('del', 'relay/none'),
      ];
      // Sent in pieces of 3 bytes: the filter must not depend on how the stream is cut.
      const all = Buffer.concat(pipeline);
      const got = replies(s, pipeline.length);
      for (let at = 0; at < all.length; at += 3) s.write(all.subarray(at, at + 3));
      const r = await got;
      assert.equal(r[0], '+OK');
      assert.match(r[1]!, /^-ERR unknown command 'THAW-RELAY-REFUSED'.*'FLUSHALL' 'not allowed through Thaw's sandbox relay/);
      assert.equal(r[2], 'v', 'FLUSHALL never reached the server');
      assert.match(r[3]!, /^-ERR .*'CONFIG'/);
      assert.match(r[4]!, /^-ERR .*'SELECT' 'only database 0/);
      assert.equal(r[5], '+OK');
      assert.match(r[6]!, /^-ERR .*'CLIENT' 'only CLIENT SETINFO/);
      assert.doesNotMatch(r[7]!, /THAW-RELAY-REFUSED/, 'CLIENT SETINFO reaches the server (older servers answer that they lack it)');
      assert.match(r[8]!, /^-ERR .*'EVAL'/);
      assert.match(r[9]!, /^-ERR .*a command name of 100 bytes is not allowed/);
      assert.equal(r[10], ':0');
    } finally {
      s.destroy();
    }
    // Checked from outside the relay: the server's configuration and data are as they were.
    const store = await RedisStore.open(server.url);
    try {
      assert.equal(Buffer.from((await store.get('relay/kept'))!).toString(), 'v');
    } finally {
      await store.close();
    }
  });

  test('an inline command or a malformed request closes the connection', async () => {
    for (const bad of ['FLUSHALL\r\n', '*1\r\n+PING\r\n', '*1\r\n$4\r\nPINGxx', `*99999999999\r\n`]) {
      const s = await open(socketPath);
      const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
      s.on('error', () => {});
      s.write(bad);
      await closed;
    }
  });
});

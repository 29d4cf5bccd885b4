// The HTTP client's own errors: a daemon that does not answer at the URL is THAW_DAEMON_UNREACHABLE
// naming the URL, through the API and through the CLI's --daemon.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { HttpClient } from './client.js';
import { CLI, rejectsWith } from '../test/helpers.js';

/** A loopback URL nothing listens on: a port the kernel handed out, closed again. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return `http://127.0.0.1:${port}`;
}

test('a daemon that does not answer is THAW_DAEMON_UNREACHABLE naming its URL and the reason, for calls and for following logs', async () => {
  const url = await deadUrl();
  const client = new HttpClient(url);
  const err = await rejectsWith(client.listFunctions(), 'THAW_DAEMON_UNREACHABLE');
  assert.equal(err.status, 503);
  assert.ok(err.message.includes(url), err.message);
  assert.match(err.message, /ECONNREFUSED/);
  await rejectsWith(client.followLogs('f', undefined, () => undefined, new AbortController().signal), 'THAW_DAEMON_UNREACHABLE');
});

test('the CLI with --daemon at a URL where nothing answers says so and exits 1', async () => {
  const url = await deadUrl();
  const r = spawnSync(process.execPath, [CLI, '--daemon', url, 'functions', 'list'], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /THAW_DAEMON_UNREACHABLE/);
  assert.ok(r.stderr.includes(url), r.stderr);
  assert.doesNotMatch(r.stderr, /THAW_REQUEST_INVALID/);
});

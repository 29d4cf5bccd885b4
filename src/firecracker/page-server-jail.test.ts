// The page server in its own jail (page-server-jail.ts): it still serves the test VMM every byte
// (user- and kernel-mode faults, REMOVE events), records and replays a working set (written in its
// socket directory and copied beside the snapshot by its supervisor), reports the layers it
// observes from inside, and refuses a snapshot its group cannot read.

import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jailAvailability } from '../sandbox/jail.js';
import { rejectsWith, tempDataDir } from '../test/helpers.js';
import { JailedPageServer } from './page-server-jail.js';
import type { PageServerEvent } from './page-server.js';
import { runTestVmm, testVmmUnavailable } from './test-vmm.js';

const GID = 62990;
const PAGE = 4096;
const jail = jailAvailability();
const skip = testVmmUnavailable() || (!jail.ok && jail.reason);

function memoryFile(dir: string, bytes: number): string {
  const mem = randomBytes(bytes);
  for (let p = 0; p < bytes / PAGE; p += 7) mem.fill(0, p * PAGE, (p + 1) * PAGE);
  chmodSync(dir, 0o711); // as the daemon's data directory: the page server's uid may pass through
  const path = join(dir, 'vm.mem');
  writeFileSync(path, mem);
  chownSync(path, 0, GID);
  chmodSync(path, 0o640);
  return path;
}

async function until(events: PageServerEvent[], what: PageServerEvent['event'], n = 1): Promise<void> {
  for (let i = 0; i < 300 && events.filter((e) => e.event === what).length < n; i++) await new Promise((r) => setTimeout(r, 10));
}

describe('jailed page server', { skip }, () => {
  it('serves the test VMM byte-exact from its jail and says which layers are active', async () => {
    const dir = tempDataDir();
    const memory = memoryFile(dir, 16 << 20);
    const events: PageServerEvent[] = [];
    const socket = join(dir, 'ps', 'uffd.sock');
    const ps = await JailedPageServer.start({ socket, snapshot: memory, strategy: 'uffd', gid: GID, onEvent: (e) => events.push(e) });
    try {
      const listening = events.find((e) => e.event === 'listening');
      assert.ok(listening && listening.event === 'listening' && listening.jail !== 'not jailed', JSON.stringify(listening));
      const layers = Object.fromEntries(listening.jail.map((l) => [l.layer, l]));
      for (const layer of ['user', 'capabilities', 'no_new_privs', 'seccomp', 'landlock', 'pid namespace', 'network namespace', 'environment']) {
        assert.equal(layers[layer]?.active, true, `${layer}: ${JSON.stringify(layers[layer])}`);
      }
      assert.match(layers.user!.detail, new RegExp(`uid ${ps.uid}, gid ${GID}`));
      const run = await runTestVmm({ socket, memory, regions: '12M,4M', gap: '1M', stride: 2, remove: 8, removeStorm: 50 });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.report!.checkedBytes, 16 << 20);
      await until(events, 'session-end');
      const end = events.find((e) => e.event === 'session-end');
      assert.ok(end && end.event === 'session-end' && !end.error, JSON.stringify(end));
      assert.ok(end.stats.copiedPages > 0 && end.stats.removeEvents > 0, JSON.stringify(end.stats));
    } finally {
      await ps.close();
    }
    assert.equal(existsSync(join(dir, 'ps')), false, 'its socket directory is removed');
  });

  it('records a working set in its own directory; the supervisor keeps it beside the snapshot for the next run', async () => {
    const dir = tempDataDir();
    const memory = memoryFile(dir, 8 << 20);
    for (const phase of ['record', 'replay']) {
      const events: PageServerEvent[] = [];
      const socket = join(dir, 'ps', 'uffd.sock');
      const ps = await JailedPageServer.start({ socket, snapshot: memory, strategy: 'reap', gid: GID, onEvent: (e) => events.push(e) });
      try {
        const run = await runTestVmm({ socket, memory, regions: '8M', stride: 3 });
        assert.equal(run.code, 0, run.stderr);
        await until(events, 'session-end');
      } finally {
        await ps.close();
      }
      const session = events.find((e) => e.event === 'session');
      assert.ok(session && session.event === 'session' && session.phase === phase, JSON.stringify(events));
      if (phase === 'replay') assert.ok(session.prefetchPages > 0);
      assert.ok(existsSync(`${memory}.ws.reap`));
    }
  });

  it('refuses a snapshot its group cannot read, and a socket directory that is not its own', async () => {
    const dir = tempDataDir();
    const memory = memoryFile(dir, 1 << 20);
    chmodSync(memory, 0o600);
    await rejectsWith(JailedPageServer.start({ socket: join(dir, 'ps', 'u.sock'), snapshot: memory, strategy: 'uffd', gid: GID }), 'THAW_CONFIG_INVALID');
    chmodSync(memory, 0o640);
    await rejectsWith(JailedPageServer.start({ socket: join(dir, 'u.sock'), snapshot: memory, strategy: 'uffd', gid: GID }), 'THAW_CONFIG_INVALID');
  });
});

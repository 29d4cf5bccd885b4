// The tmpfs copies and pools of deleted data directories are swept; those of live ones, fresh
// unowned ones and ones a live process leases are kept.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimTmpfsDir, sweepOrphanTmpfsDirs } from './tmpfs-owner.js';
import { sweepOrphanPassPools } from './strategies/pass.js';

const base = mkdtempSync(join(tmpdir(), 'thaw-tmpfs-owner-'));
after(() => rmSync(base, { recursive: true, force: true }));

const hex = (n: number): string => n.toString(16).padStart(16, '0');
function dataDir(): string {
  return mkdtempSync(join(base, 'data-'));
}

test('a folder whose data directory is gone is swept; live, fresh unowned and in-use ones are kept', () => {
  const pools = join(base, 'a');
  const live = dataDir();
  const gone = dataDir();
  const inUse = dataDir();
  claimTmpfsDir(join(pools, hex(1)), live, 0o711);
  claimTmpfsDir(join(pools, hex(2)), gone, 0o711);
  claimTmpfsDir(join(pools, hex(3)), inUse, 0o711);
  assert.equal(statSync(join(pools, hex(1), 'owner')).mode & 0o777, 0o600);
  rmSync(gone, { recursive: true });
  rmSync(inUse, { recursive: true });
  mkdirSync(join(pools, hex(4))); // made before owner files: fresh, so kept
  mkdirSync(join(pools, hex(5))); // made before owner files, untouched for two hours: swept
  const twoHoursAgo = (Date.now() - 2 * 3600_000) / 1000;
  utimesSync(join(pools, hex(5)), twoHoursAgo, twoHoursAgo);
  mkdirSync(join(pools, 'not-a-root-hash'));

  const removed = sweepOrphanTmpfsDirs(pools, { inUse: (d) => d.endsWith(hex(3)) });
  assert.deepEqual(removed.sort(), [join(pools, hex(2)), join(pools, hex(5))]);
  for (const kept of [hex(1), hex(3), hex(4), 'not-a-root-hash']) assert.ok(existsSync(join(pools, kept)), kept);
  assert.deepEqual(sweepOrphanTmpfsDirs(pools), [join(pools, hex(3))], 'once no longer in use, it goes too');
});

test('pass: a pool with a live lease is kept, the old shared pool goes once nothing leases it', () => {
  const pools = join(base, 'b');
  const gone = dataDir();
  claimTmpfsDir(join(pools, hex(1)), gone, 0o711);
  claimTmpfsDir(join(pools, hex(2)), gone, 0o711);
  rmSync(gone, { recursive: true });
  mkdirSync(join(pools, hex(1), 'g0'));
  writeFileSync(join(pools, hex(1), 'g0', `lease-7-${process.pid}-ab0`), '');
  mkdirSync(join(pools, hex(2), 'g0'));
  writeFileSync(join(pools, hex(2), 'g0', 'lease-7-2147483646-ab0'), ''); // a pid that is not alive
  writeFileSync(join(pools, 'pool.bin'), 'old shared pool');
  writeFileSync(join(pools, 'index.json'), '{}');
  mkdirSync(join(pools, 'g3'));
  writeFileSync(join(pools, 'g3', `lease-1-${process.pid}-cd0`), '');

  assert.deepEqual(sweepOrphanPassPools(pools), [join(pools, hex(2))]);
  assert.ok(existsSync(join(pools, hex(1))) && existsSync(join(pools, 'pool.bin')), 'leased: kept');
  rmSync(join(pools, hex(1), 'g0', `lease-7-${process.pid}-ab0`));
  rmSync(join(pools, 'g3', `lease-1-${process.pid}-cd0`));
  assert.deepEqual(sweepOrphanPassPools(pools).sort(), [join(pools, 'g3'), join(pools, 'index.json'), join(pools, 'pool.bin'), join(pools, hex(1))].sort());
});

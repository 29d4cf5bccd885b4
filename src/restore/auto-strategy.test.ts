import assert from 'node:assert/strict';
import { closeSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fadvise } from '../native/index.js';
import { tempFile } from '../native/_test-helpers.js';
import { AutoStrategy, imageFacts, sealAheadWanted, type SnapshotFacts } from './auto-strategy.js';

const MIB = 1 << 20;

function facts(over: Partial<SnapshotFacts>): SnapshotFacts {
  return { memoryBytes: 64 * MIB, presentBytes: 33 * MIB, cachedFraction: 0, prepared: new Set(), supported: () => true, ...over };
}

test('auto picks eager for tiny images and for images in the page cache, and says why', () => {
  const auto = new AutoStrategy();
  const tiny = auto.choose('s1', facts({ presentBytes: 256 << 10 }));
  assert.equal(tiny.strategy, 'eager');
  assert.match(tiny.reason, /tiny image/);
  const warm = auto.choose('s1', facts({ cachedFraction: 0.95, prepared: new Set(['sabre']) }));
  assert.equal(warm.strategy, 'eager');
  assert.match(warm.reason, /95% of the image's 33\.0 MiB is in the page cache/);
});

test('from a cold cache auto picks sabre when its image is built, else thaw for whole-loadable images and prepares sabre', () => {
  const auto = new AutoStrategy();
  assert.equal(auto.choose('s1', facts({ prepared: new Set(['sabre']) })).strategy, 'sabre');
  const small = auto.choose('s1', facts({ supported: (s) => s !== 'sealed' }));
  assert.equal(small.strategy, 'thaw');
  assert.equal(small.prepareNext, 'sabre');
  const large = auto.choose('s1', facts({ presentBytes: 200 * MIB }));
  assert.equal(large.strategy, 'eager', 'thaw maps part of a large image unchecked: auto does not pick it');
  assert.equal(large.prepareNext, 'sabre');
  const noSabre = auto.choose('s1', facts({ prepared: new Set(['sabre']), supported: (s) => s !== 'sabre' }));
  assert.equal(noSabre.strategy, 'thaw', 'an unsupported strategy is never picked');
});

test('auto picks sealed once the daemon holds the sealed image (any cache state), and prepares it for images up to 64 MiB present', () => {
  const auto = new AutoStrategy();
  const first = auto.choose('s1', facts({ cachedFraction: 1 }));
  assert.equal(first.strategy, 'eager');
  assert.equal(first.prepareNext, 'sealed');
  assert.equal(auto.choose('s1', facts({})).prepareNext, 'sealed');
  for (const cachedFraction of [0, 1]) {
    const held = auto.choose('s1', facts({ cachedFraction, prepared: new Set(['sealed', 'sabre']) }));
    assert.equal(held.strategy, 'sealed');
    assert.match(held.reason, /sealed memfd/);
  }
  const large = auto.choose('s1', facts({ presentBytes: 200 * MIB, prepared: new Set(['sealed']) }));
  assert.notEqual(large.strategy, 'sealed', 'a large image is not held in the daemon');
  assert.equal(large.prepareNext, 'sabre');
  assert.equal(auto.choose('s1', facts({ prepared: new Set(['sealed']), supported: (s) => s !== 'sealed' })).strategy, 'thaw');
});

test('measured restores override the rules once there are enough of them, per cache state and snapshot', () => {
  const auto = new AutoStrategy();
  for (const ms of [50, 52, 51]) auto.record('s1', 'eager', 1, ms);
  for (const ms of [20, 22]) auto.record('s1', 'sabre', 1, ms);
  assert.equal(auto.choose('s1', facts({ cachedFraction: 1 })).strategy, 'eager', 'two samples are not enough');
  auto.record('s1', 'sabre', 1, 21);
  const chosen = auto.choose('s1', facts({ cachedFraction: 1 }));
  assert.equal(chosen.strategy, 'sabre');
  assert.match(chosen.reason, /measured .* warm cache: sabre 21\.0 ms median .* eager 51\.0 ms/);
  assert.equal(auto.choose('s1', facts({ cachedFraction: 0, prepared: new Set(['sabre']) })).strategy, 'sabre');
  assert.equal(auto.choose('s1', facts({ cachedFraction: 0 })).strategy, 'thaw', 'warm-cache figures say nothing of a cold restore');
  assert.equal(auto.choose('s2', facts({ cachedFraction: 1 })).strategy, 'eager', 'figures of one snapshot say nothing of another');
  for (const ms of [5, 5, 5]) auto.record('s1', 'vanilla-cache', 1, ms);
  assert.equal(auto.choose('s1', facts({ cachedFraction: 1 })).strategy, 'sabre', 'a strategy that maps unchecked pages is never picked');
  auto.forget('s1');
  assert.equal(auto.choose('s1', facts({ cachedFraction: 1 })).strategy, 'eager');
  // sealed copies from the daemon's memfd, not the file: its times from a cold cache hold in a warm one.
  for (const ms of [40, 41, 42]) auto.record('s3', 'eager', 1, ms);
  for (const ms of [10, 11, 12]) auto.record('s3', 'sealed', 0, ms);
  const sealedWarm = auto.choose('s3', facts({ cachedFraction: 1, presentBytes: 100 * MIB }));
  assert.equal(sealedWarm.strategy, 'sealed');
  assert.match(sealedWarm.reason, /sealed 11\.0 ms median .* eager 41\.0 ms/);
});

test('imageFacts() counts the present pages and the share of them in the page cache', () => {
  const file = tempFile(Buffer.alloc(16 * 4096, 7));
  const path = file.path;
  const runs = [{ firstPage: 0, pageCount: 4 }, { firstPage: 8, pageCount: 4 }];
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd); // dirty pages stay cached until written back
    fadvise(fd, 0, 16 * 4096, 'dontneed');
    const cold = imageFacts(fd, 16 * 4096, runs);
    assert.equal(cold.presentBytes, 8 * 4096);
    assert.ok(cold.cachedFraction < 0.5, `after dropping the file's pages, ${cold.cachedFraction} of them are cached`);
    readFileSync(path);
    assert.equal(imageFacts(fd, 16 * 4096, runs).cachedFraction, 1);
    assert.deepEqual(imageFacts(fd, 16 * 4096, []), { presentBytes: 0, cachedFraction: 1 });
  } finally {
    closeSync(fd);
    file.remove();
  }
});

test('sealAheadWanted(): a new snapshot is sealed at once only when auto would pick sealed for it once held', () => {
  const yes = (s: string): boolean => s === 'sealed';
  assert.equal(sealAheadWanted({ presentBytes: 33 * MIB, supported: yes }), true, 'a Python heap');
  assert.equal(sealAheadWanted({ presentBytes: 512 * 1024, supported: yes }), false, 'a tiny image stays eager');
  assert.equal(sealAheadWanted({ presentBytes: 65 * MIB, supported: yes }), true, 'mem64-c');
  assert.equal(sealAheadWanted({ presentBytes: 129 * MIB, supported: yes }), false, 'too large to hold');
  assert.equal(sealAheadWanted({ presentBytes: 33 * MIB, supported: () => false }), false, 'sealed cannot run here');
});

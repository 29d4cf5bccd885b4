import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FunctionLogs, LogRateLimiter } from './function-logs.js';

test('FunctionLogs keeps the newest lines per function within a line count and a byte budget, and cuts long lines', () => {
  const logs = new FunctionLogs({ maxLines: 3, maxBytes: 12, maxLineBytes: 6 });
  logs.append('f', 'sb-1', 'stdout', 'a\nbb\n');
  logs.append('g', 'sb-2', 'stderr', 'other');
  logs.append('f', 'sb-1', 'stderr', 'ccc\ndddd');
  assert.deepEqual(logs.read('f').map((e) => e.text), ['bb', 'ccc', 'dddd'], 'three lines kept, the oldest dropped');
  logs.append('f', 'sb-1', 'stdout', '0123456789');
  const f = logs.read('f');
  assert.deepEqual(f.map((e) => e.text), ['012345 [... 4 bytes cut]'], 'the byte budget (12) drops older lines; the long line is cut at 6 bytes');
  assert.deepEqual(logs.read('g').map((e) => [e.sandboxId, e.stream, e.text]), [['sb-2', 'stderr', 'other']]);
  assert.deepEqual(logs.read('f', f[0]!.seq), []);
  logs.forget('f');
  assert.deepEqual(logs.read('f'), []);
});

test('FunctionLogs.follow() delivers new lines of one function until aborted', () => {
  const logs = new FunctionLogs();
  const seen: string[] = [];
  const stop = new AbortController();
  logs.follow('f', (e) => seen.push(e.text), stop.signal);
  logs.append('f', 'sb', 'stdout', 'one\ntwo\n');
  logs.append('g', 'sb', 'stdout', 'not mine');
  stop.abort();
  logs.append('f', 'sb', 'stdout', 'after');
  assert.deepEqual(seen, ['one', 'two']);
});

test('LogRateLimiter passes a burst, drops what is over the rate, and says how much in the next line that passes', () => {
  let now = 0;
  const limit = new LogRateLimiter({ bytesPerSecond: 100, burstBytes: 10 }, () => now);
  assert.equal(limit.admit('sb', 'aaaaaaaaa\n'), 'aaaaaaaaa\n', 'the burst (10 bytes) passes');
  assert.equal(limit.admit('sb', 'b\n'), null, 'the bucket is empty');
  assert.equal(limit.admit('other', 'c\n'), 'c\n', 'another sandbox has its own bucket');
  assert.equal(limit.admit('sb', 'dddd\n'), null);
  now = 50; // 5 bytes refilled
  assert.equal(limit.admit('sb', 'e\n'), '[thaw: 7 bytes of output dropped: over 0 KiB/s]\ne\n');
  assert.equal(limit.admit('sb', 'f\n'), 'f\n', 'the note is said once');
  now = 10_000;
  assert.equal(limit.admit('sb', 'x'.repeat(11)), null, 'a chunk larger than the burst never passes');
});

// Two restores that record the same snapshot's working set at once (unjailed hosts write beside
// the snapshot themselves): the first recording stays, the second is dropped, no temp file is left.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeWorkingSet, encodeWorkingSet, writeWorkingSet } from './working-set.js';

const dir = mkdtempSync(join(tmpdir(), 'thaw-ws-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a second working-set recording does not replace the first', () => {
  const first = { memoryPages: 64, runs: [{ firstPage: 1, pageCount: 3 }] };
  const second = { memoryPages: 64, runs: [{ firstPage: 10, pageCount: 5 }] };
  writeWorkingSet(dir, first);
  writeWorkingSet(dir, second);
  const bytes = readFileSync(join(dir, 'ws.reap'));
  assert.deepEqual(bytes, Buffer.from(encodeWorkingSet(first)));
  assert.deepEqual(decodeWorkingSet('x', bytes, 64), first);
  assert.deepEqual(readdirSync(dir), ['ws.reap'], 'the losing temp file is removed');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS, ThawError } from './errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

test('docs/errors.md lists every code with its status, and nothing else', () => {
  const documented = new Map([...doc.matchAll(/^\| `(THAW_[A-Z_]+)` \| (\d+) \|/gm)].map((m) => [m[1]!, Number(m[2])]));
  for (const [code, entry] of Object.entries(ERRORS)) assert.equal(documented.get(code), entry.status, `${code} in docs/errors.md`);
  for (const code of documented.keys()) assert.ok(code in ERRORS, `${code} is documented but not in the catalogue`);
});

test('ThawError() fills the message template and keeps code and status', () => {
  const e = new ThawError('THAW_FUNCTION_NOT_FOUND', { name: 'f' });
  assert.equal(e.message, "function 'f' not found");
  assert.equal(e.status, 404);
  assert.deepEqual(ThawError.fromJSON(e.toJSON()).message, e.message);
  assert.equal(ThawError.fromJSON({ code: 'NOT_OURS', message: 'boom' }).code, 'THAW_INTERNAL');
});

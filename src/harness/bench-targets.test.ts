import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTarget } from './bench-targets.js';

test('findTarget() targets generate a function\'s input set once per process', () => {
  // Found by fuzzing parseBenchConfig(): every input reference regenerated the whole set to count
  // it, so validating six-inputs (36 references) took 20 s.
  const a = findTarget('matmul');
  const b = findTarget('matmul');
  assert.ok(a && b);
  assert.equal(a.refError('sweep:5'), null);
  assert.equal(a.input('sweep:0'), b.input('sweep:0'), 'the same generated input, not a fresh copy');
  assert.equal(a.input('two:1'), b.input('two:1'));
  assert.notEqual(a.input('two:0'), a.input('two:1'));
});

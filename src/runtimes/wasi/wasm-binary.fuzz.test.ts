// Property tests of the Wasm module parser and rewriters. parseWasm() on mutated modules (our
// example functions' builds and generated ones) refuses with THAW_MODULE_INVALID or returns
// sections that tile the module; on valid modules, exportMutableGlobals(), capMemoryPages() and
// instrumentMemoryGrow() refuse with THAW_MODULE_INVALID or return modules WebAssembly.validate()
// accepts, doing what they promise.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  GLOBAL_EXPORT_PREFIX, GROW_FAILED_EXPORT, capMemoryPages, exportMutableGlobals, instrumentMemoryGrow, parseWasm,
} from './wasm-binary.js';
import { moduleOf, section, typeSection } from './_wasm-fixtures.js';
import { buildModule, builtModules, moduleSpecArb } from '../../test/fuzz/_wasm-modules.js';
import { check, decodes, mutate, mutationPlanArb } from '../../test/fuzz/_fuzz.js';

const MODULE_CODES = ['THAW_MODULE_INVALID'] as const;

/** What the rewriters need from parseWasm: sections that tile the module after its header. */
function assertTiles(bytes: Uint8Array, sections: ReturnType<typeof parseWasm>['sections']): void {
  let at = 8;
  for (const s of sections) {
    assert.equal(s.offsetBytes, at, 'sections are contiguous');
    assert.ok(s.contentOffsetBytes > s.offsetBytes && s.contentOffsetBytes + s.sizeBytes <= bytes.length, 'section inside the module');
    at = s.contentOffsetBytes + s.sizeBytes;
  }
  assert.equal(at, bytes.length, 'sections end where the module ends');
}

/** Runs every rewriter on a module the engine accepts and checks each result. */
function assertRewritesValid(bytes: Uint8Array, maxPages: number): void {
  const limit = 64 * bytes.length + (1 << 16);
  const info = decodes(MODULE_CODES, limit, () => parseWasm(bytes));
  if (!info.ok) return; // stricter than the engine (an unsupported feature): refused, never rewritten wrongly
  const g = decodes(MODULE_CODES, limit, () => exportMutableGlobals(bytes));
  if (g.ok) {
    assert.ok(WebAssembly.validate(g.value.bytes), 'exportMutableGlobals output validates');
    const after = parseWasm(g.value.bytes);
    for (const gl of info.value.globals.filter((x) => x.mutable && !x.imported)) {
      assert.ok(after.exports.some((e) => e.kind === 'global' && e.index === gl.index && e.name === GLOBAL_EXPORT_PREFIX + gl.index), `global ${gl.index} exported`);
    }
    if (g.value.memoryExport !== undefined) assert.ok(after.exports.some((e) => e.kind === 'memory' && e.index === 0 && e.name === g.value.memoryExport));
    assert.equal(exportMutableGlobals(g.value.bytes).addedExports, 0, 'rewriting a rewritten module changes nothing');
  }
  const c = decodes(MODULE_CODES, limit, () => capMemoryPages(bytes, maxPages));
  if (c.ok) {
    assert.ok(WebAssembly.validate(c.value.bytes), 'capMemoryPages output validates');
    for (const m of parseWasm(c.value.bytes).memories.filter((x) => !x.imported)) {
      assert.ok(m.limits.maxPages !== undefined && m.limits.maxPages <= Math.max(maxPages, m.limits.minPages), 'maximum capped');
    }
  }
  const i = decodes(MODULE_CODES, limit, () => instrumentMemoryGrow(bytes));
  if (i.ok && i.value !== undefined) {
    assert.ok(WebAssembly.validate(i.value.bytes), `instrumentMemoryGrow output validates (${i.value.sites} sites)`);
    if (i.value.sites > 0) assert.ok(parseWasm(i.value.bytes).exports.some((e) => e.name === GROW_FAILED_EXPORT));
  }
}

test('parseWasm() refuses mutated modules with THAW_MODULE_INVALID or returns sections that tile them', () => {
  const generated = fc.sample(moduleSpecArb, { seed: 1, numRuns: 16 }).map(buildModule);
  const seeds = [...builtModules(), ...generated];
  check('wasm-parse-mutate', 2000, mutationPlanArb, (plan) => {
    const bytes = mutate(seeds, plan.mutations, plan.seed);
    const r = decodes(MODULE_CODES, 64 * bytes.length + (1 << 16), () => parseWasm(bytes));
    if (r.ok) assertTiles(bytes, r.value.sections);
  });
});

test('the rewriters turn every generated valid module into a valid module or refuse it', () => {
  check('wasm-rewrite-generated', 600, moduleSpecArb, fc.nat(70), (spec, maxPages) => {
    const bytes = buildModule(spec);
    assert.ok(WebAssembly.validate(bytes), 'the generator builds valid modules');
    // A module in the feature set the parser supports must not be refused.
    assertTiles(bytes, parseWasm(bytes).sections);
    assertRewritesValid(bytes, maxPages);
  });
});

test('the rewriters turn every mutated module the engine still accepts into a valid module or refuse it', () => {
  const generated = fc.sample(moduleSpecArb, { seed: 2, numRuns: 24 }).map(buildModule);
  const seeds = [...builtModules().filter((b) => b.length < 4096), ...generated];
  check('wasm-rewrite-mutate', 2000, mutationPlanArb, fc.nat(70), (plan, maxPages) => {
    const bytes = mutate(seeds, plan.mutations, plan.seed);
    if (!WebAssembly.validate(bytes)) return;
    assertRewritesValid(bytes, maxPages);
  });
});

test('instrumentMemoryGrow() keeps a function body whose size is a padded LEB128 valid', () => {
  // Minimal counterexample found by the fuzzer: a body without memory.grow was copied from
  // `start - encodeU32(size).length`, one byte into its 5-byte size, so the output did not validate.
  const body = [0x00, 0x0b]; // no locals; end
  const grow = [0x00, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b]; // i32.const 0; memory.grow 0; drop; end
  const bytes = moduleOf(
    typeSection([[], []]),
    section(3, [2, 0, 0]),
    section(5, [1, 0x00, 0]),
    section(10, [2, 0x80 | body.length, 0x80, 0x80, 0x80, 0x00], body, [grow.length], grow),
  );
  assert.ok(WebAssembly.validate(bytes));
  const out = instrumentMemoryGrow(bytes);
  assert.equal(out?.sites, 1);
  assert.ok(WebAssembly.validate(out.bytes));
});

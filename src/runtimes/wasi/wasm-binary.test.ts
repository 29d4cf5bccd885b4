// Tests of the WebAssembly binary reader/writer: parsing, Wizer-style global exports, memory
// capping and the messages given for malformed modules.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WASI } from 'node:wasi';
import { ThawError } from '../../core/errors.js';
import { I32, exampleFunction, moduleOf, name, needsBuild, section, typeSection } from './_wasm-fixtures.js';
import { GROW_FAILED_EXPORT, capMemoryPages, exportMutableGlobals, instrumentMemoryGrow, parseWasm } from './wasm-binary.js';

const helloC = exampleFunction('hello-c');
const helloAs = exampleFunction('hello-as');

/** Runs a hello module's handler with raw imports, returning its output. */
async function runHello(bytes: Uint8Array, input: string): Promise<string> {
  const request = new TextEncoder().encode(input);
  const out: number[] = [];
  let memory: WebAssembly.Memory | undefined;
  const mem = (): Uint8Array => new Uint8Array((memory as WebAssembly.Memory).buffer);
  const wasi = new WASI({ version: 'preview1', returnOnExit: true });
  const { instance } = await WebAssembly.instantiate(bytes, {
    wasi_snapshot_preview1: { ...(wasi.wasiImport as WebAssembly.ModuleImports), fd_write: discardWrite },
    thaw: {
      input_len: () => request.length,
      input_read: (ptr: number, len: number) => (mem().set(request.subarray(0, len), ptr), Math.min(len, request.length)),
      output_write: (ptr: number, len: number) => void out.push(...mem().subarray(ptr, ptr + len)),
    },
  });
  function discardWrite(_fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
    // Reports every byte as written: a stub that wrote nothing would make libc retry forever.
    const view = new DataView((memory as WebAssembly.Memory).buffer);
    let total = 0;
    for (let i = 0; i < iovsLen; i++) total += view.getUint32(iovs + i * 8 + 4, true);
    view.setUint32(nwrittenPtr, total, true);
    return 0;
  }
  memory = instance.exports.memory as WebAssembly.Memory;
  wasi.initialize({ exports: { memory } });
  (instance.exports._initialize as (() => void) | undefined)?.();
  assert.equal((instance.exports.handle as () => number)(), 0);
  return new TextDecoder().decode(Uint8Array.from(out));
}

function rejects(bytes: Uint8Array, message: RegExp): void {
  assert.throws(() => parseWasm(bytes), (err: unknown) => {
    assert.ok(err instanceof ThawError);
    assert.equal(err.code, 'THAW_MODULE_INVALID');
    assert.match(err.message, message);
    return true;
  });
}

/** A module with one mutable i32 global (42), one immutable one, and a trailing custom section. */
const globalsOnly = moduleOf(
  section(6, [2, I32, 1, 0x41, 42, 0x0b, I32, 0, 0x41, 7, 0x0b]),
  section(0, name('note'), [1, 2, 3]),
);

describe('parseWasm()', () => {
  it('parseWasm() lists the imports, exports, globals and memory of a clang module', { skip: needsBuild(helloC) }, () => {
    const info = parseWasm(helloC.bytes());
    assert.deepEqual(info.globals, [{ index: 0, valType: 'i32', mutable: true, imported: false }]);
    assert.equal(info.memories.length, 1);
    assert.ok(info.imports.some((i) => i.module === 'thaw' && i.name === 'input_read' && i.kind === 'function'));
    assert.deepEqual(info.exports.map((e) => e.name).sort(), ['_initialize', 'handle', 'memory']);
    assert.ok(info.sections.some((s) => s.name === 'custom:name'));
  });

  it('parseWasm() rejects a bad magic number', () => {
    rejects(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 1, 0, 0, 0), /bad magic number 0x7f 0x45 0x4c 0x46/);
  });

  it('parseWasm() rejects a module shorter than its header', () => {
    rejects(Uint8Array.of(0, 0x61, 0x73), /3 bytes, too short for the 8-byte header/);
  });

  it('parseWasm() rejects an unknown version and a component', () => {
    rejects(Uint8Array.of(0, 0x61, 0x73, 0x6d, 2, 0, 0, 0), /unsupported binary format version 2/);
    rejects(Uint8Array.of(0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0), /component, not a core module/);
  });

  it('parseWasm() names a truncated section', { skip: needsBuild(helloC) }, () => {
    const bytes = helloC.bytes();
    rejects(bytes.subarray(0, bytes.length - 10), /section custom \(id 0\) at offset \d+ declares \d+ bytes but only \d+ remain \(truncated section\)/);
  });

  it('parseWasm() rejects overlong LEB128, unknown, duplicate and misordered sections', () => {
    rejects(moduleOf(Uint8Array.of(1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)), /LEB128 section type \(id 1\) at offset 8 size at offset 9 is longer than 5 bytes/);
    rejects(moduleOf(section(14, [])), /unknown section id 14 at offset 8/);
    rejects(moduleOf(typeSection(), typeSection()), /section type \(id 1\) at offset 11 is a duplicate/);
    rejects(moduleOf(section(6, [0]), typeSection()), /section type .* is out of order: it must come before section global/);
  });

  it('parseWasm() rejects content that overruns or underruns its section', () => {
    rejects(moduleOf(section(6, [1, I32, 1, 0x41])), /section global .* is truncated: initialiser of global 0 .* runs past its end/);
    rejects(moduleOf(section(6, [0, 0])), /section global .* has 1 unexpected trailing byte/);
    rejects(moduleOf(section(7, [1, 1, 0xff, 0x00, 0x00])), /name of export 0 at offset \d+ is not valid UTF-8/);
  });
});

describe('exportMutableGlobals()', () => {
  it('exportMutableGlobals() exports the __stack_pointer of a clang module, which still behaves the same', { skip: needsBuild(helloC) }, async () => {
    const original = helloC.bytes();
    const rewrite = exportMutableGlobals(original);
    assert.deepEqual(rewrite.globalExports, ['thaw:global:0']);
    assert.equal(rewrite.memoryExport, 'memory');
    assert.equal(rewrite.addedExports, 1);
    assert.ok(WebAssembly.validate(rewrite.bytes));
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(rewrite.bytes));
    assert.ok(exports.some((e) => e.name === 'thaw:global:0' && e.kind === 'global'));
    assert.equal(await runHello(rewrite.bytes, 'clang'), await runHello(original, 'clang'));
    assert.equal(await runHello(rewrite.bytes, 'clang'), 'hello, clang');
  });

  it('exportMutableGlobals() exports the allocator global of an AssemblyScript module, which still behaves the same', { skip: needsBuild(helloAs) }, async () => {
    const original = helloAs.bytes();
    const rewrite = exportMutableGlobals(original);
    assert.deepEqual(rewrite.globalExports, ['thaw:global:0']);
    const { instance } = await WebAssembly.instantiate(rewrite.bytes, { thaw: { input_len: () => 0, input_read: () => 0, output_write: () => undefined } });
    assert.equal(typeof (instance.exports['thaw:global:0'] as WebAssembly.Global).value, 'number');
    assert.equal(await runHello(rewrite.bytes, 'as'), 'hello, as');
    assert.equal(await runHello(original, 'as'), 'hello, as');
  });

  it('exportMutableGlobals() keeps every section other than the export section byte-identical', { skip: needsBuild(helloC) }, () => {
    const original = helloC.bytes();
    const rewritten = exportMutableGlobals(original).bytes;
    const before = parseWasm(original).sections.filter((s) => s.id !== 7);
    const after = parseWasm(rewritten).sections.filter((s) => s.id !== 7);
    assert.deepEqual(after.map((s) => s.name), before.map((s) => s.name));
    before.forEach((s, i) => {
      const a = after[i] as (typeof after)[number];
      assert.deepEqual(
        rewritten.subarray(a.contentOffsetBytes, a.contentOffsetBytes + a.sizeBytes),
        original.subarray(s.contentOffsetBytes, s.contentOffsetBytes + s.sizeBytes),
        `section ${s.name} changed`,
      );
    });
  });

  it('exportMutableGlobals() creates an export section at its place when the module has none', async () => {
    const rewrite = exportMutableGlobals(globalsOnly);
    assert.deepEqual(rewrite.globalExports, ['thaw:global:0']);
    assert.equal(rewrite.memoryExport, undefined);
    assert.deepEqual(parseWasm(rewrite.bytes).sections.map((s) => s.name), ['global', 'export', 'custom:note']);
    const { instance } = await WebAssembly.instantiate(rewrite.bytes);
    assert.equal((instance.exports['thaw:global:0'] as WebAssembly.Global).value, 42);
    assert.deepEqual(Object.keys(instance.exports), ['thaw:global:0']);
  });

  it('exportMutableGlobals() numbers globals after the imported ones and leaves those alone', async () => {
    const bytes = moduleOf(
      section(2, [1], name('env'), name('g'), [3, I32, 1]),
      section(6, [1, I32, 1, 0x41, 5, 0x0b]),
    );
    const rewrite = exportMutableGlobals(bytes);
    assert.deepEqual(rewrite.globalExports, ['thaw:global:1']);
    const g = new WebAssembly.Global({ value: 'i32', mutable: true }, 1);
    const { instance } = await WebAssembly.instantiate(rewrite.bytes, { env: { g } });
    assert.equal((instance.exports['thaw:global:1'] as WebAssembly.Global).value, 5);
  });

  it('exportMutableGlobals() exports an unexported memory as "memory"', async () => {
    const rewrite = exportMutableGlobals(moduleOf(section(5, [1, 0, 1]), section(7, [0])));
    assert.equal(rewrite.memoryExport, 'memory');
    const { instance } = await WebAssembly.instantiate(rewrite.bytes);
    assert.ok(instance.exports.memory instanceof WebAssembly.Memory);
  });

  it('exportMutableGlobals() changes nothing in a module it already rewrote', { skip: needsBuild(helloC) }, () => {
    const once = exportMutableGlobals(helloC.bytes());
    const twice = exportMutableGlobals(once.bytes);
    assert.equal(twice.addedExports, 0);
    assert.deepEqual(twice.bytes, once.bytes);
  });
});

describe('capMemoryPages()', () => {
  it('capMemoryPages() lowers or adds the memory maximum and reports a minimum above it', async () => {
    const unbounded = moduleOf(section(5, [1, 0, 2]), section(7, [1], name('memory'), [2, 0]));
    const capped = capMemoryPages(unbounded, 4);
    assert.equal(capped.minimumTooLarge, false);
    assert.deepEqual(parseWasm(capped.bytes).memories[0]?.limits, { minPages: 2, maxPages: 4, shared: false });
    const { instance } = await WebAssembly.instantiate(capped.bytes);
    const memory = instance.exports.memory as WebAssembly.Memory;
    assert.throws(() => memory.grow(3), RangeError);
    assert.equal(memory.grow(2), 2);
    assert.equal(capMemoryPages(unbounded, 1).minimumTooLarge, true);
    const small = moduleOf(section(5, [1, 1, 1, 2]));
    assert.deepEqual(parseWasm(capMemoryPages(small, 4).bytes).memories[0]?.limits, { minPages: 1, maxPages: 2, shared: false });
  });
});

describe('instrumentMemoryGrow()', () => {
  it('instrumentMemoryGrow() records the page count of a failed memory.grow and keeps successful ones', async () => {
    // grow(pages) = memory.grow(pages), inside a block so the decoder meets a 0x40 block type first.
    const bytes = moduleOf(
      typeSection([[I32], [I32]]), section(3, [1, 0]), section(5, [1, 1, 1, 2]),
      section(7, [1], name('grow'), [0, 0]),
      section(10, [1], [9, 0, 0x02, 0x40, 0x0b, 0x20, 0, 0x40, 0, 0x0b]),
    );
    const result = instrumentMemoryGrow(bytes);
    assert.ok(result !== undefined);
    assert.equal(result.sites, 1);
    const { instance } = await WebAssembly.instantiate(result.bytes);
    const grow = instance.exports.grow as (pages: number) => number;
    const failed = instance.exports[GROW_FAILED_EXPORT] as WebAssembly.Global;
    assert.equal(grow(5), -1);
    assert.equal(failed.value, 5);
    failed.value = 0;
    assert.equal(grow(1), 1);
    assert.equal(failed.value, 0);
  });

  it('instrumentMemoryGrow() leaves clang and AssemblyScript modules working', { skip: needsBuild(helloC, helloAs) }, async () => {
    for (const example of [helloC, helloAs]) {
      const result = instrumentMemoryGrow(exportMutableGlobals(example.bytes()).bytes);
      assert.ok(result !== undefined && result.sites > 0, example.fn.name);
      assert.ok(WebAssembly.validate(result.bytes));
      assert.equal(await runHello(result.bytes, 'grow'), 'hello, grow');
    }
  });

  it('instrumentMemoryGrow() gives up on an opcode it does not know', () => {
    const bytes = moduleOf(typeSection([[], []]), section(3, [1, 0]), section(5, [1, 0, 1]), section(10, [1], [3, 0, 0xfb, 0x0b]));
    assert.equal(instrumentMemoryGrow(bytes), undefined);
  });
});

// Tests of the wasi deployer: what it accepts, the facts it reports and how it rejects modules.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ThawError, type ErrorCode } from '../../core/errors.js';
import { I32, bytesOf, exampleFunction, moduleOf, name, needsBuild, section, typeSection } from './_wasm-fixtures.js';
import { wasiDeployer } from './deploy.js';
import { parseWasm } from './wasm-binary.js';

const helloC = exampleFunction('hello-c');
const mem64 = exampleFunction('mem64-c');
const fn = { ...helloC.fn, name: 'hand-built' };

async function rejects(source: Uint8Array, code: ErrorCode, message: RegExp, handler = 'handle'): Promise<void> {
  await assert.rejects(wasiDeployer.deploy({ ...fn, handler }, source), (err: unknown) => {
    assert.ok(err instanceof ThawError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

/** Module: type 0 = () -> i32; optional imports; one memory; `handle` returning 0. */
function handlerModule(opts: { imports?: Uint8Array[]; importTypes?: [number[], number[]][]; exportName?: string } = {}): Uint8Array {
  const imports = opts.imports ?? [];
  const types = typeSection([[], [I32]], ...(opts.importTypes ?? []));
  const importCount = imports.length;
  return moduleOf(
    types,
    ...(importCount > 0 ? [section(2, [importCount], ...imports)] : []),
    section(3, [1, 0]),
    section(5, [1, 0, 1]),
    section(7, [2], name(opts.exportName ?? 'handle'), [0, importCount], name('memory'), [2, 0]),
    section(10, [1], [4, 0, 0x41, 0, 0x0b]),
  );
}

function funcImport(module: string, field: string, typeIndex: number): Uint8Array {
  return bytesOf(name(module), name(field), [0, typeIndex]);
}

describe('wasiDeployer.deploy()', () => {
  it('deploy() returns module.wasm with its globals exported and its facts', { skip: needsBuild(helloC, mem64) }, async () => {
    const artefact = await wasiDeployer.deploy(mem64.fn, mem64.bytes());
    assert.equal(artefact.fileName, 'module.wasm');
    assert.ok(parseWasm(artefact.bytes).exports.some((e) => e.name === 'thaw:global:0' && e.kind === 'global'));
    assert.equal(artefact.facts.mutableGlobalsExported, 1);
    assert.equal(artefact.facts.hasThawInit, true);
    assert.equal(artefact.facts.hasInitialize, true);
    assert.equal(artefact.facts.initialMemoryPages, 2);
    assert.equal(artefact.facts.exports, 4);
    assert.equal((await wasiDeployer.deploy(helloC.fn, helloC.bytes())).facts.hasThawInit, false);
  });

  it('deploy() accepts a minimal module that imports nothing', async () => {
    const artefact = await wasiDeployer.deploy(fn, handlerModule());
    assert.equal(artefact.facts.mutableGlobalsExported, 0);
  });

  it('deploy() rejects malformed bytes with THAW_MODULE_INVALID', async () => {
    await rejects(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 'THAW_MODULE_INVALID', /bad magic number/);
    const good = handlerModule();
    await rejects(good.subarray(0, good.length - 3), 'THAW_MODULE_INVALID', /truncated section/);
  });

  it('deploy() passes on the engine\'s message for invalid code', async () => {
    const badCode = moduleOf(typeSection([[], [I32]]), section(3, [1, 0]), section(5, [1, 0, 1]), section(7, [1], name('handle'), [0, 0]), section(10, [1], [2, 0, 0x0b]));
    await rejects(badCode, 'THAW_MODULE_INVALID', /module is not valid WebAssembly: .*Compiling function/i);
  });

  it('deploy() rejects a module importing env.foo with THAW_MODULE_NOT_WASI naming the import', async () => {
    await rejects(handlerModule({ imports: [funcImport('env', 'foo', 1)], importTypes: [[[], []]] }), 'THAW_MODULE_NOT_WASI', /import env\.foo: imports may only come from/);
  });

  it('deploy() rejects unknown or mistyped Thaw and WASI imports', async () => {
    await rejects(handlerModule({ imports: [funcImport('thaw', 'sleep', 1)], importTypes: [[[], []]] }), 'THAW_MODULE_NOT_WASI', /import thaw\.sleep is not a Thaw host function/);
    await rejects(handlerModule({ imports: [funcImport('thaw', 'input_len', 1)], importTypes: [[[], []]] }), 'THAW_MODULE_NOT_WASI', /import thaw\.input_len has signature \(\) -> \(\), expected \(\) -> i32/);
    await rejects(handlerModule({ imports: [funcImport('wasi_snapshot_preview1', 'fd_magic', 1)], importTypes: [[[], []]] }), 'THAW_MODULE_NOT_WASI', /fd_magic is not a WASI preview1 function/);
  });

  it('deploy() rejects a module without memory and a WASI command with a mistyped _start', async () => {
    const noMemory = moduleOf(typeSection([[], [I32]]), section(3, [1, 0]), section(7, [1], name('handle'), [0, 0]), section(10, [1], [4, 0, 0x41, 0, 0x0b]));
    await rejects(noMemory, 'THAW_MODULE_NOT_WASI', /defines no memory/);
    const command = moduleOf(
      typeSection([[], [I32]]), section(3, [1, 0]), section(5, [1, 0, 1]),
      section(7, [2], name('handle'), [0, 0], name('_start'), [0, 0]), section(10, [1], [4, 0, 0x41, 0, 0x0b]),
    );
    // Commands are deployable (issue 13), but `_start` must be `() -> ()`.
    await rejects(command, 'THAW_MODULE_NOT_WASI', /export _start has signature \(\) -> i32, expected \(\) -> \(\)/);
  });

  it('deploy() rejects a missing or mistyped handler with THAW_HANDLER_MISSING', async () => {
    await rejects(handlerModule(), 'THAW_HANDLER_MISSING', /handler 'main' is not exported by the module/, 'main');
    const voidHandler = moduleOf(typeSection([[], []]), section(3, [1, 0]), section(5, [1, 0, 1]), section(7, [1], name('handle'), [0, 0]), section(10, [1], [2, 0, 0x0b]));
    await rejects(voidHandler, 'THAW_HANDLER_MISSING', /with signature \(\) -> i32 \(it has \(\) -> \(\)\)/);
  });
});

// Tests of the wasi adapter on the example functions: cold boot, init and invoke against their
// testdata, failures (trap, function error, memory limit), and capture -> fresh restore -> invoke.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ThawError } from '../../core/errors.js';
import type { SyncObjectStore } from '../../store/object-store.js';
import type { GuestContext, GuestInstance, MemoryImage } from '../runtime.js';
import { I32, exampleFunction, moduleOf, name, needsBuild, section, typeSection, type ExampleFunction } from './_wasm-fixtures.js';
import { wasiAdapter, type WasiPrepared } from './adapter.js';
import { wasiDeployer } from './deploy.js';

/** Test double: an in-memory SyncObjectStore. */
class InMemoryObjectStoreDouble implements SyncObjectStore {
  readonly kind = 'embedded' as const;
  readonly objects = new Map<string, Uint8Array>();
  get(key: string): Uint8Array | undefined {
    return this.objects.get(key);
  }
  put(key: string, value: Uint8Array): void {
    this.objects.set(key, value.slice());
  }
  close(): void {}
}

/** Test double: a MemoryImage that copies captured bytes into the memory (what an eager restore does). */
class CopiedMemoryImageDouble implements MemoryImage {
  constructor(private readonly bytes: Uint8Array) {}
  get byteLength(): number {
    return this.bytes.length;
  }
  fill(memory: WebAssembly.Memory): void {
    const missingPages = (this.bytes.length - memory.buffer.byteLength) / 65_536;
    if (missingPages > 0) memory.grow(missingPages);
    new Uint8Array(memory.buffer).set(this.bytes);
  }
  toBytes(): Uint8Array {
    return this.bytes;
  }
}

const workDir = mkdtempSync(join(tmpdir(), 'thaw-wasi-adapter-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

const examples = ['hello-c', 'hello-as', 'mem64-c', 'faulty-c'].map(exampleFunction);
const [helloC, helloAs, mem64, faulty] = examples as [ExampleFunction, ExampleFunction, ExampleFunction, ExampleFunction];
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function context(limitMiB: number): GuestContext & { objects: InMemoryObjectStoreDouble; logs: string[] } {
  const logs: string[] = [];
  const objects = new InMemoryObjectStoreDouble();
  objects.put('greeting', utf8('hello'));
  return { objects, logs, memoryLimitBytes: limitMiB * 1024 * 1024, log: (stream, line) => void logs.push(`${stream}: ${line}`) };
}

/** Deploys an example like the daemon would and prepares the stored artefact. */
async function prepared(example: Pick<ExampleFunction, 'fn' | 'bytes'>): Promise<WasiPrepared> {
  const artefact = await wasiDeployer.deploy(example.fn, example.bytes());
  const path = join(workDir, `${example.fn.name}-${artefact.fileName}`);
  writeFileSync(path, artefact.bytes);
  return wasiAdapter.prepare(example.fn, path);
}

async function coldGuest(example: ExampleFunction, ctx = context(example.fn.memoryMiB)): Promise<GuestInstance> {
  const guest = await wasiAdapter.boot(await prepared(example), ctx);
  await guest.init();
  return guest;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ThawError, String(err));
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('wasiAdapter', () => {
  for (const example of examples) {
    it(`boot(), init() and invoke() give ${example.fn.name}'s expected outputs`, { skip: needsBuild(example) }, async () => {
      for (const c of example.cases) {
        const guest = await coldGuest(example);
        if (c.error === undefined) assert.equal(text(await guest.invoke(utf8(c.input))), c.output, `input ${JSON.stringify(c.input)}`);
        else await rejectsWith(guest.invoke(utf8(c.input)), c.error);
      }
    });
  }

  it('invoke() sends the guest\'s stdout to ctx.log line by line', { skip: needsBuild(helloC) }, async () => {
    const ctx = context(32);
    const guest = await coldGuest(helloC, ctx);
    await guest.invoke(utf8('log'));
    assert.deepEqual(ctx.logs, ['stdout: hello-c: greeted 3 bytes']);
  });

  it('invoke() reads and writes objects through the object store', { skip: needsBuild(faulty) }, async () => {
    const ctx = context(16);
    const guest = await coldGuest(faulty, ctx);
    assert.equal(text(await guest.invoke(utf8('copy:greeting'))), '5');
    assert.equal(text(ctx.objects.get('greeting.copy') ?? new Uint8Array()), 'hello');
  });

  it('invoke() reports a trap as THAW_GUEST_TRAP naming the trap and refuses later invocations', { skip: needsBuild(faulty) }, async () => {
    const guest = await coldGuest(faulty);
    await rejectsWith(guest.invoke(utf8('trap')), 'THAW_GUEST_TRAP', /function 'faulty-c' trapped: unreachable/);
    await rejectsWith(guest.invoke(utf8('echo')), 'THAW_GUEST_TRAP');
  });

  it('invoke() reports a non-zero status as THAW_GUEST_ERROR with the output as message', { skip: needsBuild(faulty) }, async () => {
    const guest = await coldGuest(faulty);
    await rejectsWith(guest.invoke(utf8('fail')), 'THAW_GUEST_ERROR', /status 7: asked to fail/);
    assert.equal(text(await guest.invoke(utf8('still fine'))), 'still fine');
  });

  it('invoke() stops memory growth at ctx.memoryLimitBytes and reports THAW_GUEST_OOM', { skip: needsBuild(faulty) }, async () => {
    const ctx = context(8);
    const guest = await coldGuest(faulty, ctx);
    await rejectsWith(guest.invoke(utf8('oom')), 'THAW_GUEST_OOM', /limit 8 MiB\): memory\.grow by \d+ page\(s\) failed/);
    assert.ok(guest.memory.buffer.byteLength <= ctx.memoryLimitBytes);
    const pagesLeft = (ctx.memoryLimitBytes - guest.memory.buffer.byteLength) / 65_536;
    assert.throws(() => guest.memory.grow(pagesLeft + 1), RangeError);
  });

  it('init() reports one allocation larger than the memory limit as THAW_GUEST_OOM', { skip: needsBuild(mem64) }, async () => {
    const guest = await wasiAdapter.boot(await prepared(mem64), context(32));
    await rejectsWith(guest.init(), 'THAW_GUEST_OOM', /limit 32 MiB\): memory\.grow by \d+ page\(s\) failed .* then trap 'unreachable'/);
  });

  it('boot() reports a memory limit below the module\'s initial memory as THAW_GUEST_OOM', { skip: needsBuild(helloC) }, async () => {
    await rejectsWith(wasiAdapter.boot(await prepared(helloC), { ...context(1), memoryLimitBytes: 65_536 }), 'THAW_GUEST_OOM', /needs more than 1 pages/);
  });

  for (const example of [helloC, helloAs, mem64]) {
    it(`restore() of ${example.fn.name} from captured state gives the warm output without re-running init`, { skip: needsBuild(example) }, async () => {
      const prep = await prepared(example);
      const warm = await wasiAdapter.boot(prep, context(example.fn.memoryMiB));
      const booted = warm.captureState();
      await warm.init();
      const input = utf8('snapshot');
      const warmOutput = text(await warm.invoke(input));
      const state = warm.captureState();
      const image = new CopiedMemoryImageDouble(new Uint8Array(warm.memory.buffer).slice());

      const restored = await wasiAdapter.restore(prep, JSON.parse(JSON.stringify(state)), image, context(example.fn.memoryMiB));
      assert.deepEqual(restored.captureState(), state);
      assert.equal(text(await restored.invoke(input)), warmOutput);
      assert.equal(text(await restored.invoke(input)), text(await warm.invoke(input)));
      await assert.rejects(restored.init(), /init\(\) runs once/);
      if (example === helloAs) assert.notDeepEqual(booted, state, 'the AssemblyScript allocator global moves, so restoring globals matters');
    });
  }

  it('restore() from state without the init gives the same failure as a guest that skipped init', { skip: needsBuild(mem64) }, async () => {
    const prep = await prepared(mem64);
    const booted = await wasiAdapter.boot(prep, context(128));
    const image = new CopiedMemoryImageDouble(new Uint8Array(booted.memory.buffer).slice());
    const restored = await wasiAdapter.restore(prep, booted.captureState(), image, context(128));
    await rejectsWith(restored.invoke(utf8('x')), 'THAW_GUEST_ERROR', /thaw_init has not run/);
  });

  it('restore() rejects state that does not match the module', { skip: needsBuild(helloC) }, async () => {
    const prep = await prepared(helloC);
    const guest = await coldGuest(helloC);
    const image = new CopiedMemoryImageDouble(new Uint8Array(guest.memory.buffer).slice());
    const ctx = context(32);
    await rejectsWith(wasiAdapter.restore(prep, { runtime: { globals: {}, memoryBytes: image.byteLength } }, image, ctx), 'THAW_SNAPSHOT_CORRUPT', /lacks global 'thaw:global:0'/);
    await rejectsWith(wasiAdapter.restore(prep, { runtime: { globals: { 'thaw:global:0': '1' }, memoryBytes: 65_536 } }, image, ctx), 'THAW_SNAPSHOT_CORRUPT', /image holds/);
    await rejectsWith(wasiAdapter.restore(prep, { runtime: null }, image, ctx), 'THAW_SNAPSHOT_CORRUPT');
  });

  it('invoke() runs a module with no memory.grow (nothing instrumented, no grow_failed global)', async () => {
    // handle() returns 0; trap() hits unreachable. Neither grows memory, as a C hello-world that
    // never calls malloc: instrumentation has no site to rewrite and adds no flag global.
    const bytes = moduleOf(
      typeSection([[], [I32]]), section(3, [2, 0, 0]), section(5, [1, 0, 1]),
      section(7, [2], name('handle'), [0, 0], name('trap'), [0, 1]), section(10, [2], [4, 0, 0x41, 0, 0x0b], [3, 0, 0x00, 0x0b]),
    );
    const example = { fn: { ...helloC.fn, name: 'no-grow', artefactPath: '' }, bytes: () => bytes };
    const prep = await prepared(example);
    const guest = await wasiAdapter.boot(prep, context(1));
    await guest.init();
    assert.equal(text(await guest.invoke(utf8('x'))), '');
    assert.equal(text(await guest.invoke(utf8('again'))), '');
    const trapping = await wasiAdapter.boot(await prepared({ fn: { ...example.fn, handler: 'trap' }, bytes: () => bytes }), context(1));
    await rejectsWith(trapping.invoke(utf8('x')), 'THAW_GUEST_TRAP', /unreachable/);
  });

  it('captureState() and restore() keep i64 and f64 globals exactly', async () => {
    // A module with a mutable i64 global and a mutable f64 global, both 0, and a trivial handler.
    const bytes = moduleOf(
      typeSection([[], [I32]]), section(3, [1, 0]), section(5, [1, 0, 1]),
      section(6, [2, 0x7e, 1, 0x42, 0, 0x0b, 0x7c, 1, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b]),
      section(7, [1], name('handle'), [0, 0]), section(10, [1], [4, 0, 0x41, 0, 0x0b]),
    );
    const example = { fn: { ...helloC.fn, name: 'globals', artefactPath: '' }, bytes: () => bytes };
    const prep = await prepared(example);
    const booted = await wasiAdapter.boot(prep, context(1));
    assert.deepEqual(booted.captureState(), { runtime: { globals: { 'thaw:global:0': '0', 'thaw:global:1': '0' }, memoryBytes: 65_536 } });
    for (const [i64, f64] of [['-9007199254740993', '-0'], ['9223372036854775807', '0.1'], ['1', 'NaN'], ['2', '-Infinity']]) {
      const state = { runtime: { globals: { 'thaw:global:0': i64, 'thaw:global:1': f64 }, memoryBytes: 65_536 } };
      const restored = await wasiAdapter.restore(prep, state, new CopiedMemoryImageDouble(new Uint8Array(65_536)), context(1));
      assert.deepEqual(restored.captureState(), state);
    }
  });
});

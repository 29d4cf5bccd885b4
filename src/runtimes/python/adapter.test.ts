// Tests of the python runtime's guest side on the example functions: boot + init + invoke, Python
// exceptions as THAW_GUEST_ERROR, objects through thaw.get/put, and capture -> restore -> same output.

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { ThawError } from '../../core/errors.js';
import { parseFunctionConfig, type FunctionParams } from '../../core/function-spec.js';
import type { SyncObjectStore } from '../../store/object-store.js';
import type { GuestContext, GuestInstance, MemoryImage } from '../runtime.js';
import { pythonAdapter, type PythonPrepared } from './adapter.js';

const FUNCTIONS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'functions');

/** In-memory SyncObjectStore test double. */
class InMemorySyncObjectStoreDouble implements SyncObjectStore {
  readonly kind = 'embedded' as const;
  readonly objects = new Map<string, Uint8Array>();
  get(key: string): Uint8Array | undefined {
    return this.objects.get(key);
  }
  put(key: string, value: Uint8Array): void {
    this.objects.set(key, new Uint8Array(value));
  }
  close(): void {}
}

/** Eager MemoryImage test double over a copy of a guest's memory. */
function copyImage(memory: WebAssembly.Memory): MemoryImage {
  const bytes = new Uint8Array(memory.buffer).slice();
  return {
    byteLength: bytes.byteLength,
    fill(target) {
      const missing = bytes.byteLength - target.buffer.byteLength;
      if (missing > 0) target.grow(missing / 65536);
      new Uint8Array(target.buffer).set(bytes);
    },
    toBytes: () => bytes,
  };
}

function context(objects = new InMemorySyncObjectStoreDouble()): GuestContext & { lines: string[] } {
  const lines: string[] = [];
  return { objects, memoryLimitBytes: 256 * 1024 * 1024, lines, log: (stream, text) => lines.push(`${stream}: ${text}`) };
}

function loadFunction(name: string): FunctionParams {
  const dir = join(FUNCTIONS, name);
  return parseFunctionConfig(JSON.parse(readFileSync(join(dir, 'function.json'), 'utf8')), (p) => join(dir, p));
}

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const dec = (b: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(b));

async function bootAndInit(name: string, ctx = context()): Promise<{ prepared: PythonPrepared; guest: GuestInstance }> {
  const fn = loadFunction(name);
  const prepared = await pythonAdapter.prepare(fn, fn.artefactPath);
  const guest = await pythonAdapter.boot(prepared, ctx);
  await guest.init();
  return { prepared, guest };
}

describe('pythonAdapter on hello-py', () => {
  let hello: { prepared: PythonPrepared; guest: GuestInstance };
  before(async () => {
    hello = await bootAndInit('hello-py');
  });

  it('invoke() passes a JSON event and JSON-encodes the return value', async () => {
    assert.deepEqual(dec(await hello.guest.invoke(enc({ a: [1, 2] }))), { hello: { a: [1, 2] } });
  });

  it('invoke() passes non-JSON input as a str', async () => {
    assert.deepEqual(dec(await hello.guest.invoke(enc('not json'))), { hello: 'not json' });
  });

  it('captureState() then restore() gives a guest that answers like the warm one, repeatedly', async () => {
    const warm = await hello.guest.invoke(enc({ n: 1 }));
    const state = JSON.parse(JSON.stringify(hello.guest.captureState())) as ReturnType<GuestInstance['captureState']>;
    const image = copyImage(hello.guest.memory);
    for (let i = 0; i < 2; i++) {
      const restored = await pythonAdapter.restore(hello.prepared, state, image, context());
      assert.deepEqual(await restored.invoke(enc({ n: 1 })), warm);
    }
  });

  it('restore() rejects a state from another runtime format with THAW_SNAPSHOT_VERSION', async () => {
    const image = copyImage(hello.guest.memory);
    await assert.rejects(pythonAdapter.restore(hello.prepared, { runtime: { format: 'other' } }, image, context()), {
      code: 'THAW_SNAPSHOT_VERSION',
    });
  });
});

describe('pythonAdapter on stdlib-py', () => {
  it('restores the init (imports and data) from the snapshot: restored output equals warm output', async () => {
    const { prepared, guest } = await bootAndInit('stdlib-py');
    const input = enc({ word: 'gamma', n: 5 });
    const warm = await guest.invoke(input);
    const reply = dec(warm) as { records: number; picked: number[] };
    assert.equal(reply.records, 30000);
    assert.equal(reply.picked.length, 5);
    const state = guest.captureState();
    const image = copyImage(guest.memory);
    const restored = await pythonAdapter.restore(prepared, state, image, context());
    assert.deepEqual(await restored.invoke(input), warm);
    // A restored guest can itself be captured again (a snapshot of a snapshot).
    const again = await pythonAdapter.restore(prepared, restored.captureState(), copyImage(restored.memory), context());
    assert.deepEqual(await again.invoke(input), warm);
  });
});

describe('pythonAdapter on faulty-py', () => {
  let faulty: { prepared: PythonPrepared; guest: GuestInstance };
  before(async () => {
    faulty = await bootAndInit('faulty-py');
  });

  it('invoke() answers normally when not asked to raise', async () => {
    assert.deepEqual(dec(await faulty.guest.invoke(enc({ raise: false }))), { ok: true, event: { raise: false } });
  });

  it('invoke() turns a ValueError into THAW_GUEST_ERROR with type, message and last traceback line', async () => {
    await assert.rejects(faulty.guest.invoke(enc({ raise: true })), (err: unknown) => {
      assert.ok(err instanceof ThawError);
      assert.equal(err.code, 'THAW_GUEST_ERROR');
      assert.match(err.message, /ValueError: asked to raise: \{'raise': True\}/);
      assert.match(err.message, /File "handler\.py", line \d+, in _check/);
      return true;
    });
    // The guest survives the exception.
    assert.deepEqual(dec(await faulty.guest.invoke(enc(1))), { ok: true, event: 1 });
  });
});

describe('pythonAdapter objects and failures', () => {
  let prepared: PythonPrepared;
  let guest: GuestInstance;
  const store = new InMemorySyncObjectStoreDouble();
  const ctx = context(store);
  const source = [
    'import thaw',
    'print("init says hi")',
    'def handler(event, context):',
    '    if event == "oom":',
    '        return len(bytearray(1 << 30))',
    '    data = thaw.get(event["in"])',
    '    thaw.put(event["out"], data[::-1] if data is not None else b"missing")',
    '    return {"read": None if data is None else data.decode(), "fn": context.function_name}',
  ].join('\n');

  before(async () => {
    const fn = { ...loadFunction('hello-py'), name: 'objects-py' };
    prepared = { fn, source, shells: [], bundleDir: null };
    guest = await pythonAdapter.boot(prepared, ctx);
    await guest.init();
  });
  after(() => store.close());

  it('thaw.get() and thaw.put() reach the object store synchronously', async () => {
    store.put('in-1', enc('hello'));
    assert.deepEqual(dec(await guest.invoke(enc({ in: 'in-1', out: 'out-1' }))), { read: 'hello', fn: 'objects-py' });
    assert.equal(new TextDecoder().decode(store.get('out-1')), 'olleh');
    assert.deepEqual(dec(await guest.invoke(enc({ in: 'absent', out: 'out-2' }))), { read: null, fn: 'objects-py' });
    assert.equal(new TextDecoder().decode(store.get('out-2')), 'missing');
  });

  it('init() routes print() to ctx.log', () => {
    assert.ok(ctx.lines.includes('stdout: init says hi'), ctx.lines.join('\n'));
  });

  it('a restored guest reaches the object store of its new context', async () => {
    const other = new InMemorySyncObjectStoreDouble();
    other.put('in-1', enc('restored'));
    const restored = await pythonAdapter.restore(prepared, guest.captureState(), copyImage(guest.memory), context(other));
    assert.deepEqual(dec(await restored.invoke(enc({ in: 'in-1', out: 'o' }))), { read: 'restored', fn: 'objects-py' });
    assert.equal(new TextDecoder().decode(other.get('o')), 'derotser');
    assert.equal(store.get('o'), undefined);
  });

  it('invoke() reports allocation beyond the memory limit as THAW_GUEST_OOM', async () => {
    await assert.rejects(guest.invoke(enc('oom')), { code: 'THAW_GUEST_OOM' });
  });

  it('init() reports a syntax error as THAW_SOURCE_INVALID and a missing handler as THAW_HANDLER_MISSING', async () => {
    const bad = await pythonAdapter.boot({ ...prepared, source: 'def handler(:\n  pass\n' }, context());
    await assert.rejects(bad.init(), { code: 'THAW_SOURCE_INVALID' });
    const none = await pythonAdapter.boot({ ...prepared, source: 'x = 1\n' }, context());
    await assert.rejects(none.init(), { code: 'THAW_HANDLER_MISSING' });
  });
});

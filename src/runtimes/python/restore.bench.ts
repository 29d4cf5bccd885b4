// Benchmark of the python runtime's cold start vs restore on the example functions; prints raw
// timings (ms) as JSON lines. Run: node dist/runtimes/python/restore.bench.js [function] [rounds]

import type { MemoryImage } from '../runtime.js';
import { benchFunction } from './bench-function.js';
import { PYODIDE_VERSION } from './_pyodide-host.js';
import { pythonAdapter } from './adapter.js';

const name = process.argv[2] ?? 'stdlib-py';
const rounds = Number(process.argv[3] ?? 5);
const { fn, ctx } = benchFunction(name);
const input = new TextEncoder().encode('{"word":"beta","n":3}');
const now = (): number => performance.now();
const emit = (row: Record<string, unknown>): void =>
  console.log(JSON.stringify({ fn: name, node: process.version, pyodide: PYODIDE_VERSION, ...row }));

let t = now();
const prepared = await pythonAdapter.prepare(fn, fn.artefactPath);
const prepareMs = now() - t;
t = now();
const guest = await pythonAdapter.boot(prepared, ctx);
const bootMs = now() - t;
t = now();
await guest.init();
const initMs = now() - t;
t = now();
const warm = await guest.invoke(input);
const firstInvokeMs = now() - t;
t = now();
await guest.invoke(input);
const warmInvokeMs = now() - t;
t = now();
const state = JSON.parse(JSON.stringify(guest.captureState())) as ReturnType<typeof guest.captureState>;
const captureStateMs = now() - t;
const bytes = new Uint8Array(guest.memory.buffer).slice();
emit({ phase: 'cold', prepareMs, bootMs, initMs, firstInvokeMs, warmInvokeMs, captureStateMs, heapBytes: bytes.byteLength });

for (let i = 0; i < rounds; i++) {
  // With a shell started ahead (as prepare() does in a pre-spawned sandbox host) and without one.
  const withShell = i % 2 === 0;
  const p = withShell ? await pythonAdapter.prepare(fn, fn.artefactPath) : { ...prepared, shells: [] };
  if (withShell) await p.shells[0]?.ready;
  let fillMs = 0;
  const image: MemoryImage = {
    byteLength: bytes.byteLength,
    fill(memory) {
      const f = now();
      new Uint8Array(memory.buffer).set(bytes);
      fillMs = now() - f;
    },
    toBytes: () => bytes,
  };
  t = now();
  const restored = await pythonAdapter.restore(p, state, image, ctx);
  const restoreMs = now() - t;
  t = now();
  const out = await restored.invoke(input);
  const invokeMs = now() - t;
  emit({ phase: 'restore', shellReady: withShell, restoreMs, fillMs, invokeMs, totalMs: restoreMs + invokeMs, same: Buffer.compare(out, warm) === 0 });
}

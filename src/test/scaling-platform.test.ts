// Memory scaling end to end on the in-process platform: the scaling-c guest (wasi-libc's
// dlmalloc reporting through thaw_free_ranges) and scaling-py (Pyodide's dlmalloc) under none,
// balloon and faascale; what the guest keeps is byte-exact (its checksum), resident memory falls
// after the release, a snapshot taken after a release restores with every restore strategy, and a
// guest that touches memory it released reads zeros (the documented semantics).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { deployExample, newPlatform, text } from './helpers.js';
import { discardArtefacts, listStrategies } from '../restore/index.js';
import type { InvokeResult } from '../platform/types.js';

const MiB = 1024 * 1024;
const p = newPlatform({ maxIdleSandboxes: 16 });
const snapshotRoot = (p as unknown as { snapshotRoot: string }).snapshotRoot;
const snapshots: string[] = [];
after(async () => {
  await p.close();
  for (const id of snapshots) discardArtefacts(snapshotRoot, id);
});

const kept = (r: InvokeResult): string => /kept=(\w+)/.exec(text(r.output))?.[1] ?? `no kept= in ${text(r.output)}`;
const input = (s: string): Uint8Array => Buffer.from(s);
let keptSum = '';

/** Deploys scaling-c under `mechanism` as scaling-c-<mechanism> (each test stands alone). */
async function deployScaling(mechanism: string): Promise<string> {
  const name = `scaling-c-${mechanism}`;
  await deployExample(p, 'scaling-c', { name, memoryMiB: 512, scaling: { mechanism, blockMiB: 32, baseMiB: 32 } });
  return name;
}

for (const mechanism of ['none', 'balloon', 'faascale'] as const) {
  test(`scaling-c under ${mechanism}: cold and warm invocations keep the guest's data, resident memory ${mechanism === 'none' ? 'stays' : 'falls after the release'}`, async () => {
    const name = await deployScaling(mechanism);
    const cold = await p.invoke({ function: name, mode: 'cold', input: input('192') });
    keptSum ||= kept(cold);
    assert.equal(kept(cold), keptSum);
    const m = cold.memory;
    assert.equal(m.declaredBytes, 512 * MiB);
    if (mechanism === 'none') {
      assert.ok(m.residentBytes >= 192 * MiB, `resident ${m.residentBytes / MiB} MiB under none`);
      assert.equal(m.grantedBytes, 512 * MiB);
    } else {
      // 16 MiB kept plus libc's and the stack's pages; the 192 MiB used are given back.
      assert.ok(m.residentBytes < 24 * MiB, `resident ${m.residentBytes / MiB} MiB after ${mechanism}'s release`);
      assert.ok(m.grantedBytes < 64 * MiB, `granted ${m.grantedBytes / MiB} MiB between invocations`);
      assert.equal(typeof cold.timings.grantMs, 'number');
      assert.equal(typeof cold.timings.releaseMs, 'number');
    }
    const warm = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input: input('192') });
    assert.equal(text(warm.output).replace(/pages=\d+/, ''), text(cold.output).replace(/pages=\d+/, ''));
    if (mechanism === 'faascale') assert.ok((warm.timings.populateMs ?? 0) > 0, 'the warm grant was not populated');
    const listed = (await p.listSandboxes()).find((s) => s.id === cold.sandboxId);
    assert.deepEqual(listed?.memory, warm.memory);
    // A guest writing into memory it freed (and the host released) reads zeros there: the
    // allocator contract says free memory is not read before it is written; the host never hands
    // it another sandbox's or stale bytes, and what the guest keeps is untouched.
    if (mechanism !== 'none') {
      const touched = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input: input('touch-freed') });
      assert.equal(text(touched.output), 'before=0 after=165');
      const again = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input: input('64') });
      assert.equal(kept(again), keptSum);
    }
    await p.deleteSandbox(cold.sandboxId);
  });
}

const strategies = listStrategies().filter((s) => s.support.ok).map((s) => s.id);
const unavailable = listStrategies().filter((s) => !s.support.ok);

for (const mechanism of ['balloon', 'faascale'] as const) {
  test(`${mechanism}: a snapshot taken after a release restores with every restore strategy (${strategies.join(', ')}), and the restored sandbox releases again`, async () => {
    const name = await deployScaling(mechanism);
    const cold = await p.invoke({ function: name, mode: 'cold', input: input('128') });
    keptSum ||= kept(cold);
    assert.equal(kept(cold), keptSum);
    const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
    snapshots.push(snap.id);
    // The released 128 MiB are zero pages: holes in the snapshot, not bytes on disk.
    assert.ok(snap.diskBytes < snap.memoryBytes - 96 * MiB, `snapshot holds ${snap.diskBytes / MiB} of ${snap.memoryBytes / MiB} MiB`);
    await p.deleteSandbox(cold.sandboxId);
    for (const strategy of strategies) {
      for (const round of [1, 2]) {
        const r = await p.invoke({ function: name, mode: 'snapshot', snapshotId: snap.id, strategy, input: input('128'), keep: round === 2 });
        assert.equal(kept(r), keptSum, `${strategy} round ${round}`);
        assert.ok(r.memory.residentBytes < 40 * MiB, `${strategy}: resident ${r.memory.residentBytes / MiB} MiB after the release`);
        if (round === 2) {
          const w = await p.invoke({ function: name, mode: 'warm', sandboxId: r.sandboxId, input: input('128') });
          assert.equal(kept(w), keptSum, `${strategy}: warm after restore`);
          await p.deleteSandbox(r.sandboxId);
        }
      }
    }
    for (const s of unavailable) process.stdout.write(`# ${mechanism}: strategy ${s.id} not available here: ${s.support.ok ? '' : s.support.reason}\n`);
  });
}

test('scaling-py under faascale: Pyodide\'s dlmalloc gives memory back (malloc_trim, top chunk), the kept data stays', { timeout: 600_000 }, async () => {
  const results: Record<string, InvokeResult> = {};
  for (const mechanism of ['none', 'faascale'] as const) {
    const name = `scaling-py-${mechanism}`;
    await deployExample(p, 'scaling-py', { name, scaling: mechanism });
    const cold = await p.invoke({ function: name, mode: 'cold', input: input('128') });
    results[mechanism] = await p.invoke({ function: name, mode: 'warm', sandboxId: cold.sandboxId, input: input('128') });
    assert.match(text(results[mechanism]!.output), /^kept=\w+ used=/);
    if (mechanism === 'faascale') {
      // A snapshot after a release restores, and the restored heap (file-backed where mapped) releases again.
      const snap = await p.createSnapshot({ sandboxId: cold.sandboxId });
      snapshots.push(snap.id);
      for (const strategy of strategies.filter((s) => s === 'eager' || s === 'uffd')) {
        const r = await p.invoke({ function: name, mode: 'snapshot', snapshotId: snap.id, strategy, input: input('64'), keep: false });
        assert.equal(kept(r), kept(results[mechanism]!), strategy);
        assert.ok(r.memory.residentBytes < results[mechanism]!.memory.residentBytes + 32 * MiB, `${strategy}: resident ${r.memory.residentBytes / MiB} MiB`);
      }
    }
    await p.deleteSandbox(cold.sandboxId);
  }
  const none = results.none!.memory.residentBytes;
  const scaled = results.faascale!.memory.residentBytes;
  process.stdout.write(`# python resident after a 128 MiB invocation: none ${(none / MiB).toFixed(1)} MiB, faascale ${(scaled / MiB).toFixed(1)} MiB\n`);
  assert.equal(kept(results.none!), kept(results.faascale!));
  assert.ok(scaled < none - 64 * MiB, `faascale gave back ${((none - scaled) / MiB).toFixed(1)} MiB of a 128 MiB invocation`);
});

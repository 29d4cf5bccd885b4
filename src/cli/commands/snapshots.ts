// `thaw snapshots ...`.

import type { GlobalOptions } from '../context.js';
import { printJson, printTable, withApi } from './with-api.js';

export function create(g: GlobalOptions, sandboxId: string, o: { diff?: boolean; base?: string }): Promise<void> {
  return withApi(g, async (api) => {
    printJson(await api.createSnapshot({ sandboxId, kind: o.diff ? 'diff' : 'full', ...(o.base !== undefined && { baseId: o.base }) }));
  });
}

export function list(g: GlobalOptions, o: { function?: string }): Promise<void> {
  return withApi(g, async (api) => {
    const all = await api.listSnapshots(o.function);
    printTable(all.map((s) => ({
      id: s.id, function: s.function, kind: s.kind, base: s.baseId ?? '', memoryMiB: (s.memoryBytes / 2 ** 20).toFixed(1),
      diskMiB: (s.diskBytes / 2 ** 20).toFixed(2), current: s.current ? 'yes' : 'no (redeployed)', created: s.createdAt,
      artefacts: s.artefacts.map((a) => a.name).join(' ') || '-',
    })));
  });
}

export function get(g: GlobalOptions, id: string): Promise<void> {
  return withApi(g, async (api) => printJson(await api.getSnapshot(id)));
}

export function remove(g: GlobalOptions, id: string): Promise<void> {
  return withApi(g, async (api) => {
    await api.deleteSnapshot(id);
    process.stdout.write(`deleted snapshot ${id}\n`);
  });
}

export function prepare(g: GlobalOptions, id: string, o: { strategy: string }): Promise<void> {
  return withApi(g, async (api) => printJson(await api.prepareSnapshot(id, o.strategy)));
}

export function strategies(g: GlobalOptions): Promise<void> {
  return withApi(g, async (api) => {
    const all = await api.listStrategies();
    printTable(all.map((s) => ({ id: s.id, available: s.available ? 'yes' : `no: ${s.reason ?? ''}`, verifies: s.verifies, description: s.description })));
  });
}

/** Scrubs a snapshot: one row per file; exits 1 when any is corrupt. */
export function verify(g: GlobalOptions, id: string): Promise<void> {
  return withApi(g, async (api) => {
    const r = await api.verifySnapshot(id);
    printTable(r.files.map((f) => ({ file: f.file, status: f.status, detail: f.detail ?? '' })));
    process.stdout.write(`${r.ok ? 'ok' : 'CORRUPT'}: snapshot ${r.snapshotId}, ${r.files.length} files read in ${r.elapsedMs.toFixed(0)} ms\n`);
    if (!r.ok) process.exitCode = 1;
  });
}

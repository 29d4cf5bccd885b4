// `thaw sandboxes ...`.

import type { GlobalOptions } from '../context.js';
import { printJson, printTable, withApi } from './with-api.js';
import { mib } from '../../memory/accounting.js';

export function boot(g: GlobalOptions, fn: string): Promise<void> {
  return withApi(g, async (api) => printJson(await api.bootSandbox(fn)));
}

export function list(g: GlobalOptions): Promise<void> {
  return withApi(g, async (api) => {
    const all = await api.listSandboxes();
    printTable(all.map((s) => ({
      id: s.id, function: s.function, state: s.state, origin: s.origin.kind === 'cold' ? 'cold' : `${s.origin.snapshotId} (${s.origin.strategy})`,
      invocations: s.invocations, memoryMiB: (s.memoryBytes / 2 ** 20).toFixed(1),
      declaredMiB: mib(s.memory.declaredBytes), grantedMiB: mib(s.memory.grantedBytes), residentMiB: mib(s.memory.residentBytes),
      // A sandbox is (host, instance): a vertical host carries several instances of one function.
      host: s.hostPid, layout: s.layout, instance: `${s.instance + 1}/${s.instancesPerHost}`, 'in host': s.instancesInHost,
    })));
  });
}

export function remove(g: GlobalOptions, id: string): Promise<void> {
  return withApi(g, async (api) => {
    await api.deleteSandbox(id);
    process.stdout.write(`stopped sandbox ${id}\n`);
  });
}

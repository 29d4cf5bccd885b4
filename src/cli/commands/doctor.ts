// `thaw doctor`: how sandbox hosts are confined on this machine, layer by layer, as a freshly
// started host observes it from inside.

import type { GlobalOptions } from '../context.js';
import { printJson, printTable, withApi } from './with-api.js';

export function doctor(g: GlobalOptions, o: { json?: boolean }): Promise<void> {
  return withApi(g, async (api) => {
    const report = await api.doctor();
    if (o.json) return printJson(report);
    process.stdout.write(report.jailed ? 'sandbox hosts are jailed\n' : `sandbox hosts are NOT jailed: ${report.reason ?? ''}\n`);
    printTable(report.layers.map((l) => ({ layer: l.layer, active: l.active ? 'yes' : 'NO', detail: l.detail })));
    process.stdout.write(`memory cgroups: ${report.memoryCgroups}\n`);
  });
}

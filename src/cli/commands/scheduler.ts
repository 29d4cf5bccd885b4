// `thaw scheduler`: the keep-alive scheduler's settings and each function's start counts
// (cold, snapshot, warm, semi-warm) and keep-alive expiries.

import type { GlobalOptions } from '../context.js';
import type { SchedulerReport } from '../../platform/types.js';
import { START_KINDS } from '../../platform/types.js';
import { printJson, printTable, withApi } from './with-api.js';

interface SchedulerOptions {
  json?: boolean;
  resetCounts?: boolean;
}

export function show(g: GlobalOptions, o: SchedulerOptions): Promise<void> {
  return withApi(g, async (api) => {
    const r = o.resetCounts ? await api.configureScheduler({ resetCounts: true }) : await api.scheduler();
    if (o.json) return printJson(r);
    printReport(r);
  });
}

function printReport(r: SchedulerReport): void {
  process.stdout.write(`policy ${r.policy}${r.tier ? ` (tier ${r.tier})` : ''}, keep-alive ${r.keepAliveS} s`
    + `${r.timeScale !== 1 ? ` at time scale ${r.timeScale} (${(r.keepAliveMs / 1000).toFixed(1)} s real)` : ''}; `
    + `${r.sandboxes.live} live sandboxes, ${r.sandboxes.idle} idle, ${r.sandboxes.semiWarm} semi-warm\n`);
  printTable(Object.entries(r.functions).map(([fn, f]) => ({
    function: fn, ...Object.fromEntries(START_KINDS.map((k) => [k, f.starts[k]])), expired: f.expired,
    'reuse P99 s': f.reuseSamples ? (f.reuseP99Ms / 1000).toFixed(2) : '-',
  })));
}

// `thaw invoke`: the output goes to stdout; the timing breakdown to stderr (or all as --json).

import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { ThawError } from '../../core/errors.js';
import type { GlobalOptions } from '../context.js';
import { formatTimings, type InvokeMode } from '../../platform/types.js';
import { invocationToWire } from '../../api/routes.js';
import { printJson, withApi } from './with-api.js';
import { formatMemory } from '../../memory/accounting.js';

interface InvokeOptions {
  mode: InvokeMode;
  data?: string;
  dataFile?: string;
  sandbox?: string;
  snapshot?: string;
  strategy: string;
  keep: boolean;
  json?: boolean;
  snapshotAfter?: boolean;
}

export function runInvoke(g: GlobalOptions, fn: string, o: InvokeOptions): Promise<void> {
  if (o.data !== undefined && o.dataFile !== undefined) throw new ThawError('THAW_REQUEST_INVALID', { detail: 'give --data or --data-file, not both' });
  const input = o.dataFile !== undefined ? readFileSync(o.dataFile === '-' ? 0 : o.dataFile) : Buffer.from(o.data ?? '', 'utf8');
  return withApi(g, async (api) => {
    const r = await api.invoke({
      function: fn, mode: o.mode, input, keep: o.keep,
      ...(o.sandbox !== undefined && { sandboxId: o.sandbox }),
      ...(o.snapshot !== undefined && { snapshotId: o.snapshot }),
      ...((o.mode === 'snapshot' || o.mode === 'auto') && { strategy: o.strategy }),
    });
    // One-shot runs have no daemon to keep the sandbox: --snapshot-after snapshots it before exit.
    const snap = o.snapshotAfter && r.kept ? await api.createSnapshot({ sandboxId: r.sandboxId }) : undefined;
    if (o.snapshotAfter && !r.kept) throw new ThawError('THAW_REQUEST_INVALID', { detail: '--snapshot-after needs the sandbox kept (drop --no-keep)' });
    if (o.json) return printJson({ ...invocationToWire(r), ...(snap && { snapshot: snap }) });
    process.stdout.write(r.output);
    // A newline after text that lacks one; never after binary output (a WAV file piped to disk).
    if (r.output.length > 0 && r.output[r.output.length - 1] !== 10 && isUtf8(r.output)) process.stdout.write('\n');
    const t = formatTimings(r.timings);
    process.stderr.write(`[${r.mode === 'auto' ? `auto: ${r.start}` : r.mode}${r.snapshotId ? ` ${r.snapshotId}/${r.strategy}` : ''}] sandbox=${r.sandboxId} ${t}\n`);
    if (r.strategyReason) process.stderr.write(`auto chose ${r.strategy}: ${r.strategyReason}\n`);
    if (r.traceId) process.stderr.write(`trace ${r.traceId}\n`);
    process.stderr.write(`memory: ${formatMemory(r.memory)}\n`);
    if (snap) process.stderr.write(`snapshot ${snap.id} taken (${(snap.diskBytes / 2 ** 20).toFixed(2)} MiB on disk)\n`);
  });
}

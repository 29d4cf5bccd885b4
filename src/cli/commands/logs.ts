// `thaw logs <function> [-n N] [-f]`: what a function's sandboxes wrote to stdout and stderr.
// The daemon keeps the newest lines per function; a one-shot CLI without a daemon only sees what
// its own command's sandboxes wrote, so this is for a running daemon (THAW_DAEMON).

import type { GlobalOptions } from '../context.js';
import type { LogEntry } from '../../platform/types.js';
import { printJson, withApi } from './with-api.js';

export function logs(g: GlobalOptions, name: string, o: { lines: string; follow?: boolean; json?: boolean }): Promise<void> {
  const limit = Number(o.lines);
  return withApi(g, async (api) => {
    const print = (e: LogEntry): void => {
      if (o.json) process.stdout.write(`${JSON.stringify(e)}\n`);
      else process.stdout.write(`${e.time} ${e.sandboxId} ${e.stream}: ${e.text}\n`);
    };
    const kept = await api.functionLogs(name, { limit });
    if (o.json && !o.follow) return printJson(kept);
    kept.forEach(print);
    if (!o.follow) return;
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    await api.followLogs(name, kept.at(-1)?.seq ?? 0, print, stop.signal);
  });
}

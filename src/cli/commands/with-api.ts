// Runs one CLI command against the API and always closes it (an in-process platform owns
// sandbox host processes that must not outlive the command).

import { openApi, type GlobalOptions } from '../context.js';
import type { ThawApi } from '../../platform/types.js';

export async function withApi<T>(opts: GlobalOptions, body: (api: ThawApi) => Promise<T>): Promise<T> {
  const api = openApi(opts);
  try {
    return await body(api);
  } finally {
    await api.close();
  }
}

/** Prints a value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as an aligned text table. */
export function printTable(rows: readonly Record<string, string | number>[], columns?: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = columns ?? Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(width[i]!)).join('  ').trimEnd();
  process.stdout.write(`${line(cols)}\n${line(width.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => String(r[c] ?? '')))}\n`);
}

// Reads a real invocation trace in the Azure Functions 2021 format: a CSV whose header names the
// columns app, func, end_timestamp and duration (any order; other columns are ignored), then one
// invocation per line, times in seconds. start = end_timestamp - duration; the earliest start
// becomes time 0. A malformed row is a THAW_CONFIG_INVALID naming the file, the line and the field.

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ThawError } from '../../core/errors.js';
import { rankFunctions, type Trace, type TraceInvocation } from './types.js';

const COLUMNS = ['app', 'func', 'end_timestamp', 'duration'] as const;

/**
 * Reads the trace at `path`.
 *
 * @param limitS keep only invocations starting within this many seconds of the first (the trace
 *   is read to the end regardless, since rows need not be sorted)
 */
export async function readTrace(path: string, limitS = Infinity): Promise<Trace> {
  const bad = (line: number, detail: string): ThawError => new ThawError('THAW_CONFIG_INVALID', { detail: `trace ${path} line ${line}: ${detail}` });
  const stream = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (err) => reject(new ThawError('THAW_CONFIG_INVALID', { detail: `cannot read trace ${path}: ${err.message}` })));
  });
  await opened;
  const keyOf = new Map<string, number>();
  const functions: { app: string; func: string; trigger: null; ratePerMin: null; memoryMb: null }[] = [];
  const rows: { fn: number; startS: number; durationS: number }[] = [];
  let cols: Record<(typeof COLUMNS)[number], number> | undefined;
  let width = 0;
  let n = 0;
  for await (const raw of createInterface({ input: stream, crlfDelay: Infinity })) {
    n++;
    const line = raw.trim();
    if (!line) continue;
    const cells = line.split(',').map((c) => c.trim());
    if (!cols) {
      const missing = COLUMNS.filter((c) => !cells.includes(c));
      if (missing.length) throw bad(n, `the header lacks column(s) ${missing.join(', ')} (the 2021 format is app,func,end_timestamp,duration; got '${line.slice(0, 120)}')`);
      cols = Object.fromEntries(COLUMNS.map((c) => [c, cells.indexOf(c)])) as Record<(typeof COLUMNS)[number], number>;
      width = cells.length;
      continue;
    }
    if (cells.length !== width) throw bad(n, `${cells.length} fields, the header has ${width}`);
    const app = cells[cols.app]!;
    const func = cells[cols.func]!;
    if (!app || !func) throw bad(n, 'app and func must not be empty');
    const end = Number(cells[cols.end_timestamp]);
    const duration = Number(cells[cols.duration]);
    if (cells[cols.end_timestamp] === '' || !Number.isFinite(end)) throw bad(n, `end_timestamp '${cells[cols.end_timestamp]}' is not a number of seconds`);
    if (cells[cols.duration] === '' || !Number.isFinite(duration) || duration < 0) throw bad(n, `duration '${cells[cols.duration]}' is not a non-negative number of seconds`);
    const key = `${app}\u0000${func}`;
    let fn = keyOf.get(key);
    if (fn === undefined) {
      fn = functions.length;
      keyOf.set(key, fn);
      functions.push({ app, func, trigger: null, ratePerMin: null, memoryMb: null });
    }
    rows.push({ fn, startS: end - duration, durationS: duration });
  }
  if (!cols) throw bad(1, 'the file is empty (expected the header app,func,end_timestamp,duration)');
  if (rows.length === 0) throw bad(n, 'no invocations after the header');
  const t0 = rows.reduce((m, r) => Math.min(m, r.startS), Infinity);
  const kept: TraceInvocation[] = rows.map((r) => ({ ...r, startS: r.startS - t0 })).filter((r) => r.startS < limitS);
  const ranked = rankFunctions(functions, kept);
  const last = kept.reduce((m, r) => Math.max(m, r.startS), 0);
  return { source: path, functions: ranked.functions.filter((f) => f.invocations > 0), invocations: ranked.invocations, durationS: Number.isFinite(limitS) ? limitS : last };
}

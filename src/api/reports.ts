// The harness's experiment reports (report.html of `thaw bench` and `thaw replay` runs) found
// under the daemon's results directory, listed and read for the dashboard. Only regular files
// named report.html inside that directory are ever read: no `..`, no absolute paths, no symbolic
// links (the real path must stay inside the real results directory).

import { lstatSync, readdirSync, readFileSync, realpathSync, type Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { ThawError } from '../core/errors.js';

/** One report as listed. */
export interface ReportEntry {
  /** Path relative to the results directory, with `/` (e.g. `bench/two-inputs-2026-.../report.html`). */
  readonly path: string;
  /** `bench` or `replay` (the harness's default subdirectories), else `other`. */
  readonly kind: 'bench' | 'replay' | 'other';
  /** The run's directory name (experiment and time stamp). */
  readonly run: string;
  readonly modifiedAt: string;
  readonly sizeBytes: number;
}

const REPORT_FILE = 'report.html';
/** results/<kind>/<run>/report.html is three levels down; nothing deeper is searched. */
const MAX_DEPTH = 3;
/** The newest this many are listed (a results directory can hold thousands of runs). */
export const MAX_REPORTS = 200;
/** Reports are a few hundred KiB; a file past this is not served. */
const MAX_REPORT_BYTES = 32 * 1024 * 1024;

/** The reports under `dir`, newest first (at most MAX_REPORTS); none when it does not exist. */
export function listReports(dir: string): ReportEntry[] {
  const found: ReportEntry[] = [];
  let root: string;
  try {
    root = realpathSync(dir);
  } catch {
    return [];
  }
  const walk = (at: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(at);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(at, name);
      const st = lstatOrNull(path);
      if (st === null || st.isSymbolicLink()) continue;
      if (st.isDirectory() && depth < MAX_DEPTH) walk(path, depth + 1);
      else if (st.isFile() && name === REPORT_FILE && depth > 1) found.push(entry(root, path, st));
    }
  };
  walk(root, 1);
  return found.sort((a, b) => b.modifiedAt.localeCompare(a.modifiedAt)).slice(0, MAX_REPORTS);
}

/**
 * The bytes of report `rel` (a path as listReports gives it) under `dir`. Throws
 * THAW_REPORT_NOT_FOUND for anything else: a path with `..`, `.` or empty segments, an absolute
 * path, a file not named report.html, a symbolic link anywhere on the way, or a real path outside.
 */
export function readReport(dir: string, rel: string): Uint8Array {
  const notFound = (): ThawError => new ThawError('THAW_REPORT_NOT_FOUND', { path: rel.slice(0, 200) });
  const segments = rel.split('/');
  if (segments.length < 2 || segments.length > MAX_DEPTH || segments.at(-1) !== REPORT_FILE) throw notFound();
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0'))) throw notFound();
  let root: string;
  try {
    root = realpathSync(dir);
  } catch {
    throw notFound();
  }
  // No link on the way: each step is checked, then the real path once more.
  let at = root;
  for (const s of segments) {
    at = join(at, s);
    const st = lstatOrNull(at);
    if (st === null || st.isSymbolicLink()) throw notFound();
  }
  const real = realpathSync(at);
  const inside = relative(root, real);
  if (inside.startsWith('..') || inside.split(sep).includes('..')) throw notFound();
  const st = lstatSync(real);
  if (!st.isFile() || st.size > MAX_REPORT_BYTES) throw notFound();
  return readFileSync(real);
}

function entry(root: string, path: string, st: Stats): ReportEntry {
  const rel = relative(root, path).split(sep).join('/');
  const parts = rel.split('/');
  const top = parts[0]!;
  return {
    path: rel,
    kind: parts.length === 3 && (top === 'bench' || top === 'replay') ? top : 'other',
    run: parts[parts.length - 2]!,
    modifiedAt: st.mtime.toISOString(),
    sizeBytes: st.size,
  };
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

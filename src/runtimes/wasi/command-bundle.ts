// The directories a WASI command brings (manifest `command.dirs` and `command.scratch.seed`):
// checked and hashed at deploy, then copied beside the deployed module, where a sandbox host
// (read-only to it under the jail) preopens them.

import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ThawError } from '../../core/errors.js';
import type { CommandDir, CommandParams } from '../../core/function-spec.js';
import { writeFileDurable } from '../../snapshot/snapshot-io.js';

/** Every bundle directory of a command: its read-only dirs, then the scratch seed if any. */
export function bundleDirs(command: CommandParams): CommandDir[] {
  return [...command.dirs, ...(command.scratch?.seed ? [command.scratch.seed] : [])];
}

/** One file or directory of a bundle, by its path relative to the bundle directory. */
export interface Entry { readonly rel: string; readonly dir: boolean }

/**
 * Lists a bundle directory, refusing what a copy could not keep faithfully or safely: a missing
 * directory, symbolic links (they could name files outside it) and special files.
 * Throws THAW_BUNDLE_INVALID.
 */
export function walk(d: CommandDir): Entry[] {
  const bad = (detail: string): never => {
    throw new ThawError('THAW_BUNDLE_INVALID', { detail: `${d.guestPath} <- ${d.sourcePath}: ${detail}` });
  };
  try {
    if (!lstatSync(d.sourcePath).isDirectory()) bad('not a directory');
  } catch (err: unknown) {
    if (err instanceof ThawError) throw err;
    bad(`cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const out: Entry[] = [];
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(d.sourcePath, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(join(d.sourcePath, r));
      if (st.isDirectory()) {
        out.push({ rel: r, dir: true });
        visit(r);
      } else if (st.isFile()) {
        out.push({ rel: r, dir: false });
      } else {
        bad(`'${r}' is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; bundles hold files and directories only`);
      }
    }
  };
  visit('');
  return out;
}

/** sha256 over every bundle directory's names, paths and file bytes. Throws THAW_BUNDLE_INVALID. */
export function bundleDigest(command: CommandParams): string {
  return dirsDigest(bundleDirs(command));
}

/** sha256 over the directories' names, paths and file bytes (any runtime's bundle). Throws THAW_BUNDLE_INVALID. */
export function dirsDigest(dirs: readonly CommandDir[]): string {
  const h = createHash('sha256');
  for (const d of dirs) {
    h.update(`${d.bundleName}\0${d.guestPath}\0`);
    for (const e of walk(d)) {
      h.update(`${e.dir ? 'd' : 'f'}\0${e.rel}\0`);
      if (!e.dir) h.update(readFileSync(join(d.sourcePath, e.rel)));
    }
  }
  return h.digest('hex');
}

/**
 * Copies every bundle directory into `functionDir/<bundleName>`: each file written durably into a
 * temporary directory, which then replaces the previous copy by rename.
 */
export function installBundle(command: CommandParams, functionDir: string): void {
  installDirs(bundleDirs(command), functionDir);
}

/** Copies each directory into `functionDir/<bundleName>` durably, replacing any previous copy by rename. */
export function installDirs(dirs: readonly CommandDir[], functionDir: string): void {
  for (const d of dirs) {
    const target = join(functionDir, d.bundleName);
    const tmp = `${target}.tmp-${process.pid}-${Date.now().toString(36)}`;
    mkdirSync(tmp, { recursive: true });
    for (const e of walk(d)) {
      if (e.dir) mkdirSync(join(tmp, e.rel), { recursive: true });
      else writeFileDurable(join(tmp, e.rel), readFileSync(join(d.sourcePath, e.rel)));
    }
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  }
}

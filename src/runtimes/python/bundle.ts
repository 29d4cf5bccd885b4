// A python function's bundle (docs/python-runtime.md "Bundles"): the manifest's `bundle` (a
// directory or .zip: further modules and data files), `requirements` (pure-Python wheels or
// package directories) and `packages` (from a Pyodide package directory, pyodide-packages.ts),
// checked and staged at deploy into one tree,
//
//     <staging>/app/...        the bundle's files (the handler's own directory in the guest)
//     <staging>/site/<pkg>...  every requirement, unpacked
//
// which the function registry then copies to <function dir>/python (read-only to the jailed host,
// which mounts it at /thaw in the guest). Nothing is fetched: a requirement is a local path.

import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ThawError } from '../../core/errors.js';
import type { PythonBundleParams } from '../../core/function-spec.js';
import { readZip } from '../../suite/inputs/compression-zip.js';
import { dirsDigest, installDirs, walk } from '../wasi/command-bundle.js';
import { resolvePyodidePackages } from './pyodide-packages.js';

/** Name of the staged tree inside the function's directory. */
export const PYTHON_BUNDLE_DIR = 'python';
/** Where the guest sees the tree: the handler's directory is `${GUEST_ROOT}/app`, requirements are in `${GUEST_ROOT}/site`. */
export const GUEST_ROOT = '/thaw';
/** Largest staged bundle: a deploy-time bound on what a wheel or zip may unpack to. */
const MAX_BUNDLE_BYTES = 256 * 1024 * 1024;
/** Files Pyodide cannot load: native extension modules built for a host, not for Emscripten. */
const COMPILED = /\.(so|pyd|dylib|dll)(\.|$)/i;
/** A pure-Python wheel's file name: name-version(-build)?-py3|py2.py3-none-any.whl. */
const PURE_WHEEL = /^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+(-\d[A-Za-z0-9_.]*)?-(py3|py2\.py3|py3\.py2)-none-any\.whl$/;

/** A bundle checked and staged at deploy. */
export interface StagedPythonBundle {
  readonly digest: string;
  /** Top-level importable names the bundle provides (modules and packages of app/ and site/). */
  readonly provides: ReadonlySet<string>;
  readonly facts: Readonly<Record<string, string | number>>;
  /** Copies the staged tree to `functionDir/python` (durably, by rename) and removes the staging. */
  install(functionDir: string): void;
  /** Removes the staging without installing (a deploy that failed after staging). */
  discard(): void;
}

/**
 * True for a Wasm side module as Emscripten's loader takes it: the Wasm magic and version, then a
 * `dylink.0` custom section first (section id 0, a LEB128 size, the name).
 */
function isSideModule(b: Uint8Array): boolean {
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (b.byteLength < 20 || header.some((v, i) => b[i] !== v) || b[8] !== 0) return false;
  let i = 9;
  while (i < 14 && ((b[i] ?? 0) & 0x80) !== 0) i++;
  const name = 'dylink.0';
  return b[i + 1] === name.length && Buffer.from(b.subarray(i + 2, i + 2 + name.length)).toString('latin1') === name;
}

const bad = (detail: string): never => {
  throw new ThawError('THAW_BUNDLE_INVALID', { detail });
};

/** A relative path from an archive, refused unless it stays inside its directory. */
function safeRel(name: string, what: string): string {
  const rel = name.replace(/\/+$/, '');
  if (rel === '' || rel.startsWith('/') || rel.includes('\\') || rel.includes('\0') || rel.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    bad(`${what}: entry '${name}' is not a plain relative path`);
  }
  return rel;
}

/** Builds the staged tree; every refusal is THAW_BUNDLE_INVALID naming the piece. */
class Stager {
  readonly root = mkdtempSync(join(tmpdir(), 'thaw-pybundle-'));
  private bytes = 0;
  private files = 0;

  constructor() {
    mkdirSync(join(this.root, 'app'));
    mkdirSync(join(this.root, 'site'));
  }

  /** Set while a Pyodide extension wheel is unpacked: its `.so` files may be Wasm side modules. */
  private sideModulesAllowed = false;

  private write(target: string, what: string, rel: string, data: Uint8Array | null, from?: string): void {
    if (COMPILED.test(rel) && !(this.sideModulesAllowed && rel.endsWith('.so') && data !== null && isSideModule(data))) {
      bad(`${what}: '${rel}' is a compiled extension module but not a Wasm side module for Pyodide; Pyodide cannot load host binaries (docs/python-runtime.md, "Bundles")`);
    }
    const size = data?.byteLength ?? lstatSync(from as string).size;
    this.bytes += size;
    this.files += 1;
    if (this.bytes > MAX_BUNDLE_BYTES) bad(`${what}: the bundle unpacks to more than ${MAX_BUNDLE_BYTES / 1024 / 1024} MiB`);
    mkdirSync(dirname(target), { recursive: true });
    if (data) writeFileSync(target, data);
    else copyFileSync(from as string, target);
  }

  /** Copies a directory's files into `into` (symbolic links and special files refused by walk()). */
  copyDir(source: string, into: string, what: string): void {
    for (const e of walk({ guestPath: what, sourcePath: source, bundleName: '' })) {
      if (e.dir) mkdirSync(join(into, e.rel), { recursive: true });
      else this.write(join(into, e.rel), what, e.rel, null, join(source, e.rel));
    }
  }

  /** Unpacks a zip's entries into `into` (`data`: its bytes, when already read); `accept` may refuse an entry by name. */
  unzip(path: string, into: string, what: string, accept: (rel: string) => void = () => undefined, data?: Uint8Array): void {
    let entries: ReturnType<typeof readZip>;
    try {
      entries = readZip(data ?? readFileSync(path), MAX_BUNDLE_BYTES);
    } catch (err: unknown) {
      bad(`${what}: not a readable zip archive (${(err as Error).message})`);
      return;
    }
    for (const e of entries) {
      const rel = safeRel(e.name, what);
      accept(rel);
      if (e.name.endsWith('/')) mkdirSync(join(into, rel), { recursive: true });
      else this.write(join(into, rel), what, rel, e.data);
    }
  }

  app(path: string): void {
    const what = `bundle '${path}'`;
    if (!existsSync(path)) bad(`${what} does not exist`);
    if (lstatSync(path).isDirectory()) this.copyDir(path, join(this.root, 'app'), what);
    else if (path.endsWith('.zip')) this.unzip(path, join(this.root, 'app'), what);
    else bad(`${what} is neither a directory nor a .zip file`);
  }

  requirement(path: string): void {
    const what = `requirement '${path}'`;
    if (!existsSync(path)) bad(`${what} does not exist (requirements are local wheels or package directories; nothing is downloaded)`);
    const site = join(this.root, 'site');
    if (lstatSync(path).isDirectory()) {
      if (!existsSync(join(path, '__init__.py'))) bad(`${what} is a directory without __init__.py: a requirement is a package directory or a pure-Python wheel (.whl)`);
      const target = join(site, basename(path));
      if (existsSync(target)) bad(`${what}: package '${basename(path)}' is given twice`);
      this.copyDir(path, target, what);
      return;
    }
    if (!path.endsWith('.whl')) bad(`${what} is neither a wheel (.whl) nor a package directory`);
    this.wheel(path, what);
  }

  /**
   * Unpacks a pure-Python wheel into site/ (a requirement, or a package of a Pyodide package
   * directory, whose bytes come already checked against the lock file's sha256). `compiled`: a
   * Pyodide package directory's extension wheel, whose `.so` files must be Wasm side modules.
   */
  wheel(path: string, what: string, data?: Uint8Array, compiled = false): void {
    const site = join(this.root, 'site');
    if (!compiled && !PURE_WHEEL.test(basename(path))) bad(`${what} is not a pure-Python wheel (its tags must be py3-none-any): compiled wheels run only from a Pyodide package directory ('packages')`);
    let wheelInfo = '';
    const before = new Set(readdirSync(site));
    this.sideModulesAllowed = compiled;
    try {
      this.unzip(path, site, what, (rel) => {
        const top = rel.split('/')[0] as string;
        if (/\.data$/.test(top)) bad(`${what}: '${rel}' is in a .data directory (scripts, headers, data): only purelib wheels are supported`);
        if (before.has(top)) bad(`${what}: '${top}' is already provided by another requirement`);
        if (/^[^/]+\.dist-info\/WHEEL$/.test(rel)) wheelInfo = rel;
      }, data);
    } finally {
      this.sideModulesAllowed = false;
    }
    if (wheelInfo === '') bad(`${what} has no *.dist-info/WHEEL file: not a wheel`);
    // An extension wheel is platlib (Root-Is-Purelib: false); it still installs into site/.
    if (!compiled && !/^Root-Is-Purelib:\s*true\s*$/im.test(readFileSync(join(site, wheelInfo), 'utf8'))) bad(`${what} is not a purelib wheel (Root-Is-Purelib is not true)`);
  }

  /** Top-level importable names: `x.py`, extension modules `x.so` and package directories `x/` of app/ and site/. */
  provides(): Set<string> {
    const names = new Set<string>();
    for (const sub of ['app', 'site']) {
      for (const e of walk({ guestPath: sub, sourcePath: join(this.root, sub), bundleName: '' })) {
        if (e.rel.includes('/')) continue;
        if (e.dir && !e.rel.includes('.')) names.add(e.rel);
        else if (!e.dir && e.rel.endsWith('.py')) names.add(e.rel.slice(0, -3));
        // An extension module: `x.so` or `x.cpython-314-wasm32-emscripten.so` (only side modules get this far).
        else if (!e.dir && e.rel.endsWith('.so')) names.add(e.rel.split('.')[0] as string);
      }
    }
    return names;
  }

  get facts(): Record<string, number> {
    return { bundleFiles: this.files, bundleBytes: this.bytes };
  }
}

/**
 * Checks and stages a python function's bundle and requirements.
 * Throws THAW_BUNDLE_INVALID naming a missing path, a compiled or impure piece, an unsafe archive
 * entry, a package given twice, or a bundle larger than 256 MiB.
 */
export function stagePythonBundle(params: PythonBundleParams): StagedPythonBundle {
  const stager = new Stager();
  const pyodidePackages: string[] = [];
  try {
    if (params.app !== null) stager.app(params.app);
    for (const r of params.requirements) stager.requirement(r);
    for (const pkg of resolvePyodidePackages(params.packages, params.pyodidePackages)) {
      stager.wheel(pkg.wheel, `Pyodide package '${pkg.name}' ${pkg.version}`, pkg.bytes, pkg.compiled);
      pyodidePackages.push(`${pkg.name}==${pkg.version}`);
    }
  } catch (err: unknown) {
    rmSync(stager.root, { recursive: true, force: true });
    throw err;
  }
  const dir = { guestPath: GUEST_ROOT, sourcePath: stager.root, bundleName: PYTHON_BUNDLE_DIR };
  return {
    digest: dirsDigest([dir]),
    provides: stager.provides(),
    facts: { ...stager.facts, requirements: params.requirements.length, ...(pyodidePackages.length > 0 && { pyodidePackages: pyodidePackages.join(' ') }) },
    install: (functionDir) => {
      try {
        installDirs([dir], functionDir);
      } finally {
        rmSync(stager.root, { recursive: true, force: true });
      }
    },
    discard: () => rmSync(stager.root, { recursive: true, force: true }),
  };
}

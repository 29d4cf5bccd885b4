// Packages from a local Pyodide package directory (docs/python-runtime.md, "Pyodide packages"): a
// directory laid out like a Pyodide release, `pyodide-lock.json` plus the wheels it lists. A
// manifest's `packages` names entries of that lock file; deploy resolves their dependencies, checks
// every file against the sha256 the lock file gives, and hands the verified wheels to the bundle
// stager, which installs them with the function (so the jailed host reads them from the function's
// own directory, and a restored guest finds them mounted as the booted one did). Nothing is fetched.

import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ThawError } from '../../core/errors.js';
import { PYODIDE_DIR, PYODIDE_VERSION } from './_pyodide-host.js';

/** Environment variable naming the default Pyodide package directory of the deploying process. */
export const PYODIDE_PACKAGES_ENV = 'THAW_PYODIDE_PACKAGES';
/** The lock file at the root of a Pyodide package directory. */
export const PYODIDE_LOCK = 'pyodide-lock.json';

/** One lock-file entry, as far as deploy reads it. */
interface LockEntry {
  readonly name: string;
  readonly version: string;
  readonly file_name: string;
  readonly package_type: string;
  readonly install_dir: string;
  readonly sha256: string;
  readonly depends: readonly string[];
}

/** A package resolved from the lock file, its wheel checked against the lock's sha256. */
export interface ResolvedPyodidePackage {
  readonly name: string;
  readonly version: string;
  /** Absolute path of the wheel. */
  readonly wheel: string;
  /** The wheel's bytes, as checked (the stager unpacks these, not a second read of the file). */
  readonly bytes: Uint8Array;
  /** A wheel built for this Pyodide (its `.so` files are Wasm side modules), not a pure-Python one. */
  readonly compiled: boolean;
}

const bad = (detail: string): never => {
  throw new ThawError('THAW_BUNDLE_INVALID', { detail });
};

/** Pyodide's (and PEP 503's) normalised package name: lower case, runs of '-', '_', '.' as one '-'. */
export function normalisePackageName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

interface NpmLock {
  readonly info?: { readonly abi_version?: unknown };
  readonly packages?: Record<string, { readonly name?: string; readonly imports?: readonly string[] }>;
}

let npmLock: NpmLock | undefined;

/** The lock file of the pyodide npm package (read once): the Pyodide this Thaw runs. */
function runtimeLock(): NpmLock {
  npmLock ??= JSON.parse(readFileSync(join(PYODIDE_DIR, PYODIDE_LOCK), 'utf8')) as NpmLock;
  return npmLock;
}

/** The ABI of the Pyodide this Thaw runs: a package directory must match it. */
function runtimeAbi(): string {
  return String(runtimeLock().info?.abi_version);
}

/** Wheel tags of a compiled package for the Pyodide this Thaw runs, e.g. `cp314-cp314-pyemscripten_2026_0_wasm32`. */
export function compiledWheelTag(): RegExp {
  const info = (runtimeLock() as { info?: { python?: unknown; abi_version?: unknown } }).info;
  const [major, minor] = String(info?.python).split('.');
  const cp = `cp${major}${minor}`;
  return new RegExp(`-${cp}-(${cp}|abi3)-pyemscripten_${String(info?.abi_version)}_wasm32\\.whl$`);
}

/** The Pyodide package that provides top-level module `importName`, per the npm package's lock file, if any. */
export function pyodidePackageProviding(importName: string): string | undefined {
  for (const [key, e] of Object.entries(runtimeLock().packages ?? {})) {
    if (e.imports?.includes(importName)) return e.name ?? key;
  }
  return undefined;
}

function readLock(dir: string): Map<string, LockEntry> {
  const lockPath = join(dir, PYODIDE_LOCK);
  if (!existsSync(dir)) bad(`Pyodide package directory '${dir}' does not exist`);
  if (!existsSync(lockPath)) bad(`Pyodide package directory '${dir}' has no ${PYODIDE_LOCK} (it must be laid out like a Pyodide release: the lock file and the wheels it lists)`);
  let lock: { info?: { abi_version?: unknown }; packages?: unknown };
  try {
    lock = JSON.parse(readFileSync(lockPath, 'utf8')) as typeof lock;
  } catch (err: unknown) {
    return bad(`${lockPath} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof lock !== 'object' || lock === null || typeof lock.packages !== 'object' || lock.packages === null) bad(`${lockPath} has no 'packages' object`);
  const abi = runtimeAbi();
  if (lock.info?.abi_version !== abi) {
    bad(`${lockPath} is for Pyodide ABI '${String(lock.info?.abi_version)}', this Thaw runs Pyodide ${PYODIDE_VERSION} (ABI '${abi}'): use the package directory of the matching Pyodide release`);
  }
  const entries = new Map<string, LockEntry>();
  for (const [key, value] of Object.entries(lock.packages as Record<string, unknown>)) {
    const e = value as Partial<LockEntry> | null;
    if (typeof e !== 'object' || e === null || typeof e.file_name !== 'string' || typeof e.sha256 !== 'string') bad(`${lockPath}: entry '${key}' has no file_name or sha256`);
    const entry = e as LockEntry;
    entries.set(normalisePackageName(key), { ...entry, name: String(entry.name ?? key), version: String(entry.version ?? ''), depends: Array.isArray(entry.depends) ? entry.depends.map(String) : [] });
  }
  return entries;
}

/**
 * Resolves `names` and their dependencies in `dir`'s lock file and checks each wheel's sha256.
 * Throws THAW_BUNDLE_INVALID naming: no directory given, a directory without a lock file or for
 * another Pyodide ABI, an unknown package (or dependency), a wheel given by URL, a shared library or
 * a wheel for another platform, a missing file, or a checksum mismatch.
 */
export function resolvePyodidePackages(names: readonly string[], dirGiven: string | null): ResolvedPyodidePackage[] {
  if (names.length === 0) return [];
  const dirRaw = dirGiven ?? process.env[PYODIDE_PACKAGES_ENV] ?? '';
  if (dirRaw === '') {
    bad(`'packages' (${names.join(', ')}) needs a Pyodide package directory: give 'pyodidePackages' in the manifest, or set ${PYODIDE_PACKAGES_ENV} for the process that deploys (the daemon); the pyodide npm package ships none`);
  }
  const dir = resolve(dirRaw);
  const lock = readLock(dir);
  const order: ResolvedPyodidePackage[] = [];
  const seen = new Set<string>();
  const visit = (name: string, neededBy: string | null): void => {
    const key = normalisePackageName(name);
    if (seen.has(key)) return;
    seen.add(key);
    const e = lock.get(key);
    const what = neededBy === null ? `package '${name}'` : `package '${name}' (a dependency of '${neededBy}')`;
    if (e === undefined) return bad(`${what} is not in ${join(dir, PYODIDE_LOCK)}`);
    for (const d of e.depends) visit(d, e.name);
    if (/^[a-z][a-z0-9+.-]*:/i.test(e.file_name) || isAbsolute(e.file_name) || e.file_name.includes('/') || e.file_name.includes('\\')) {
      bad(`${what}: its file '${e.file_name}' is not a file name inside ${dir} (nothing is downloaded, and only the directory's own files are read)`);
    }
    const compiled = compiledWheelTag().test(e.file_name);
    if (e.package_type !== 'package' || e.install_dir !== 'site' || !(compiled || /-none-any\.whl$/.test(e.file_name))) {
      bad(`${what} (${e.file_name}, ${e.package_type}) is neither a pure-Python package nor an extension wheel for this Pyodide (tags matching ${compiledWheelTag().source}); shared libraries (package_type 'shared_library') are not supported (docs/python-runtime.md, "Pyodide packages")`);
    }
    const wheel = join(dir, e.file_name);
    if (!existsSync(wheel) || !lstatSync(wheel).isFile()) bad(`${what}: its file ${wheel} is missing (or not a regular file)`);
    const bytes = readFileSync(wheel);
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== e.sha256.toLowerCase()) bad(`${what}: ${wheel} has sha256 ${actual}, ${PYODIDE_LOCK} says ${e.sha256}`);
    order.push({ name: e.name, version: e.version, wheel, bytes, compiled });
  };
  for (const n of names) visit(n, null);
  return order;
}

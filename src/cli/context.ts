// How a CLI command reaches Thaw: a running daemon over HTTP (--daemon / THAW_DAEMON), or an
// in-process platform for one-shot commands. Also reads function manifests from disk.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import pino from 'pino';
import { ThawError } from '../core/errors.js';
import { ARTEFACT_FIELD, type RuntimeId } from '../core/function-spec.js';
import { parseDaemonConfig, type DaemonConfig } from '../core/config.js';
import { HttpClient } from '../api/client.js';
import { Platform } from '../platform/platform.js';
import type { ThawApi } from '../platform/types.js';

export interface GlobalOptions {
  daemon?: string;
  token?: string;
  dataDir?: string;
  objectStore?: string;
}

/** Opens the API the user asked for. In-process platforms keep no spare hosts: they live for one command. */
export function openApi(opts: GlobalOptions, overrides: DaemonConfig = {}): ThawApi {
  const url = opts.daemon ?? process.env.THAW_DAEMON;
  if (url) return new HttpClient(url, opts.token ?? process.env.THAW_TOKEN ?? null);
  const params = parseDaemonConfig({ dataDir: opts.dataDir, objectStore: opts.objectStore, spareHosts: 0, preparedPerFunction: 0, ...overrides });
  return new Platform({ ...params, logger: pino({ level: process.env.THAW_LOG_LEVEL ?? 'warn' }, pino.destination(2)) });
}

/** Reads a manifest and the artefact it names (path relative to the manifest). */
export function readManifestFile(path: string): { manifest: Record<string, unknown>; artefact: Uint8Array } {
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `cannot read manifest ${path}: ${(err as Error).message}` });
  }
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `manifest ${path} is not a JSON object` });
  }
  const field = ARTEFACT_FIELD[manifest.runtime as RuntimeId] ?? 'module';
  const rel = manifest[field];
  if (typeof rel !== 'string') throw new ThawError('THAW_CONFIG_INVALID', { detail: `manifest ${path} has no '${field}' path` });
  const artefactPath = resolve(dirname(path), rel);
  let artefact: Uint8Array;
  try {
    artefact = readFileSync(artefactPath);
  } catch (err) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `cannot read ${field} '${artefactPath}' named by ${path}: ${(err as Error).message}` });
  }
  return { manifest: { ...manifest, [field]: artefactPath, ...resolveCommandPaths(manifest.command, dirname(path)), ...resolveBundlePaths(manifest, dirname(path)), ...resolveFirecrackerPaths(manifest.firecracker, dirname(path)) }, artefact };
}

/** A Firecracker function's kernel, relative to the manifest, made absolute (the daemon reads it from there). */
function resolveFirecrackerPaths(fc: unknown, base: string): { firecracker?: unknown } {
  if (typeof fc !== 'object' || fc === null || Array.isArray(fc)) return fc === undefined ? {} : { firecracker: fc };
  const kernel = (fc as Record<string, unknown>).kernel;
  return { firecracker: { ...fc, ...(typeof kernel === 'string' && { kernel: resolve(base, kernel) }) } };
}

/** A python function's bundle, requirements and Pyodide package directory, relative to the manifest, made absolute (the daemon copies them at deploy). */
function resolveBundlePaths(manifest: Record<string, unknown>, base: string): { bundle?: unknown; requirements?: unknown; pyodidePackages?: unknown } {
  const abs = (p: unknown): unknown => (typeof p === 'string' ? resolve(base, p) : p);
  return {
    ...(manifest.bundle === undefined ? {} : { bundle: abs(manifest.bundle) }),
    ...(manifest.pyodidePackages === undefined ? {} : { pyodidePackages: abs(manifest.pyodidePackages) }),
    ...(Array.isArray(manifest.requirements) ? { requirements: manifest.requirements.map(abs) } : {}),
  };
}

/** A WASI command's bundle directories, relative to the manifest, made absolute (the daemon copies them at deploy). */
function resolveCommandPaths(command: unknown, base: string): { command?: unknown } {
  if (typeof command !== 'object' || command === null || Array.isArray(command)) return command === undefined ? {} : { command };
  const c = command as Record<string, unknown>;
  const abs = (p: unknown): unknown => (typeof p === 'string' ? resolve(base, p) : p);
  const dirs = typeof c.dirs === 'object' && c.dirs !== null && !Array.isArray(c.dirs)
    ? Object.fromEntries(Object.entries(c.dirs as Record<string, unknown>).map(([g, h]) => [g, abs(h)])) : c.dirs;
  const scratch = typeof c.scratch === 'object' && c.scratch !== null && 'seed' in c.scratch
    ? { ...(c.scratch as Record<string, unknown>), seed: abs((c.scratch as Record<string, unknown>).seed) } : c.scratch;
  return { command: { ...c, ...(dirs === undefined ? {} : { dirs }), ...(scratch === undefined ? {} : { scratch }) } };
}

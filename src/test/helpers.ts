// Shared set-up of the cross-module tests: a platform on a fresh data directory, and the
// example functions' manifests.

import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseDaemonConfig, type DaemonConfig } from '../core/config.js';
import { ThawError } from '../core/errors.js';
import { Platform } from '../platform/platform.js';
import { TIMING_PARTS, sumOfParts, type InvokeTimings, type TimingPart } from '../platform/types.js';
import { readManifestFile } from '../cli/context.js';

export const FUNCTIONS_DIR = fileURLToPath(new URL('../../functions/', import.meta.url));
export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export function manifestPath(name: string): string {
  return join(FUNCTIONS_DIR, name, 'function.json');
}

const dataDirs: string[] = [];

/**
 * A fresh data dir, removed when the test file's process exits (snapshots, images and pools in
 * them run to gigabytes over a whole suite run).
 */
export function tempDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-test-'));
  if (dataDirs.push(dir) === 1) {
    process.on('exit', () => {
      for (const d of dataDirs) rmSync(d, { recursive: true, force: true, maxRetries: 2 });
    });
  }
  return dir;
}

export function newPlatform(overrides: DaemonConfig = {}): Platform {
  const params = parseDaemonConfig({ dataDir: tempDataDir(), spareHosts: 1, preparedPerFunction: 0, ...overrides });
  return new Platform({ ...params, logger: pino({ level: 'silent' }) });
}

export async function deployExample(p: Platform, name: string, patch: Record<string, unknown> = {}): Promise<void> {
  const { manifest, artefact } = readManifestFile(manifestPath(name));
  await p.deployFunction({ ...manifest, ...patch }, artefact);
}

/** Awaits `promise` and returns the ThawError code it rejected with. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ThawError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ThawError, `expected ThawError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

export const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** Mounts a 64 KiB tmpfs at `dir` (a real full disk; needs root); the reason to skip when it cannot. */
export function smallTmpfs(dir: string): string | false {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? false : `cannot mount a tmpfs here: ${(r.stderr || r.error?.message || '').trim()}`;
}

export function unmount(dir: string): void {
  spawnSync('umount', [dir]);
}

/**
 * An invocation's breakdown accounts for all its time: the parts of TIMING_PARTS sum to totalMs
 * (each rounded to the microsecond), none is negative beyond that rounding, and the channel, the
 * handler and the steps `named` were measured (not zero).
 */
export function assertBreakdown(t: InvokeTimings, named: readonly TimingPart[]): void {
  const sum = sumOfParts(t);
  assert.ok(Math.abs(sum - t.totalMs) <= 0.001 + 1e-9, `parts sum to ${sum}, total ${t.totalMs}: ${JSON.stringify(t)}`);
  for (const p of TIMING_PARTS) assert.ok(typeof t[p.key] === 'number' && t[p.key] >= -0.002, `${p.key} = ${t[p.key]}`);
  // The channel's split between out and back carries the clock calibration's error (either may be 0 under load), its sum does not.
  assert.ok(t.ipcOutMs + t.ipcBackMs > 0, `channel measured: ${JSON.stringify(t)}`);
  for (const k of ['handlerMs', ...named] as const) assert.ok(t[k] > 0, `${k} measured: ${JSON.stringify(t)}`);
}

/** Starts `thaw daemon --port 0` on a fresh data directory; resolves with its URL once it listens. */
export async function startDaemon(args: readonly string[] = []): Promise<{ url: string; daemon: ChildProcessByStdio<null, Readable, null> }> {
  const daemon = spawn(process.execPath, [CLI, '--data-dir', tempDataDir(), 'daemon', '--port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  daemon.stdout.setEncoding('utf8');
  while (!/listening on (\S+)/.test(out)) {
    const [chunk] = (await once(daemon.stdout, 'data')) as [string];
    out += chunk;
  }
  return { url: /listening on (\S+)/.exec(out)![1]!, daemon };
}

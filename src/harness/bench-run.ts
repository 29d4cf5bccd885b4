// Runs one experiment: function x setting x (parallelism, par_snapshots) x record input x test
// input x repeat, as FaaSnap's test.py did. Per setting, the prepare steps are done for real
// (cold boot + init on the record input, snapshot copies, the strategy's prepare and record
// run); each measured step runs `parallelism` invocations at once and yields one row each.

import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Span } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';
import { parseDaemonConfig } from '../core/config.js';
import { toThawError } from '../core/errors.js';
import { fadvise } from '../native/index.js';
import { Platform } from '../platform/platform.js';
import type { InvokeResult, InvokeTimings } from '../platform/types.js';
import { getStrategy } from '../restore/index.js';
import { readChain } from '../snapshot/snapshot-io.js';
import { startRedisServer, type RedisServer } from '../store/testing/redis-server.js';
import { readManifestFile } from '../cli/context.js';
import type { SuiteInput } from '../suite/index.js';
import type { BenchParams, FunctionParams, SettingParams, StorageTier } from './bench-config.js';
import { BenchTracer, nowMs, type SavedSpan } from './bench-trace.js';

/** One measured invocation, with every dimension (one CSV row). Times in ms unless named _s. */
export interface BenchRow {
  readonly experiment: string;
  readonly function: string;
  readonly setting: string;
  readonly strategy: string;
  readonly storage: StorageTier;
  readonly cacheDrop: string;
  readonly parallelism: number;
  readonly parSnapshots: number;
  readonly recordInput: number;
  readonly testInput: number;
  readonly testInputKey: string;
  readonly repeat: number;
  /** Index of the invocation within its parallel step. */
  readonly worker: number;
  readonly snapshotId: string;
  readonly acquireMs: number;
  readonly bootMs: number;
  readonly initMs: number;
  readonly restoreMs: number;
  readonly handlerMs: number;
  readonly totalMs: number;
  /** As seen by the harness (request to reply, in process). */
  readonly wallMs: number;
  readonly read_s: number | null;
  readonly process_s: number | null;
  readonly write_s: number | null;
  /** The setting's memory scaling mechanism, the sandbox's memory after the invocation and the scaling steps' costs. */
  readonly scaling: string;
  readonly declaredBytes: number | null;
  readonly grantedBytes: number | null;
  readonly residentBytes: number | null;
  readonly grantMs: number | null;
  readonly populateMs: number | null;
  readonly releaseMs: number | null;
  /** Restore engine counters, when the platform reports them. */
  readonly restoreBytesRead: number | null;
  readonly uffdFaults: number | null;
  readonly prefetchedPages: number | null;
  readonly ok: boolean;
  /** Error code or check failure; empty when ok. */
  readonly error: string;
  readonly traceId: string;
}

/** One prepare step, recorded with the run. */
export interface PrepareRecord {
  readonly function: string;
  readonly setting: string;
  readonly recordInput: number;
  readonly step: 'deploy' | 'boot' | 'snapshot' | 'strategy-prepare' | 'record-run' | 'warm-boot';
  readonly snapshotId: string;
  readonly ms: number;
  readonly detail: string;
}

export interface BenchRun {
  readonly experiment: string;
  readonly description: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly host: { readonly node: string; readonly platform: string; readonly cpus: number };
  readonly objectStore: string;
  readonly settings: readonly SettingParams[];
  readonly skipped: readonly { readonly setting: string; readonly reason: string }[];
  readonly rows: readonly BenchRow[];
  readonly prepare: readonly PrepareRecord[];
  readonly spans: readonly SavedSpan[];
  /** Why exporting spans to the collector failed, or null. */
  readonly traceExportError: string | null;
}

export interface RunOptions {
  /** Called after each measured step (and prepare) with units done and the total. */
  readonly onProgress?: (done: number, total: number, label: string) => void;
  readonly logger?: Logger;
}

/** Measured steps of an experiment (each runs `parallelism` invocations), for progress totals. */
export function countSteps(p: BenchParams): number {
  const settings = p.settings.filter((s) => s.skipReason === null).length;
  return p.functions.length * settings * p.parallel.length * p.recordInputs.length * p.testInputs.length * p.repeat;
}

/** Drops the page cache of every file under `dir` (written back first, so the drop takes). */
function dropFileCache(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      dropFileCache(path);
      continue;
    }
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
      fadvise(fd, 0, 0, 'dontneed');
    } finally {
      closeSync(fd);
    }
  }
}

/** A platform per storage tier: its data directory (and so its snapshots) lives on that tier. */
interface Tier {
  readonly platform: Platform;
  readonly dataDir: string;
  readonly snapshotRoot: string;
}

const p95 = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] ?? NaN;
};
export { p95 };

/**
 * Runs the experiment `p` and returns every row, prepare record and span. Invocation failures
 * become rows with ok = false (the harness never asserts); failures of a prepare step skip that
 * setting's steps for the record input and are recorded.
 */
export async function runBench(p: BenchParams, opts: RunOptions = {}): Promise<BenchRun> {
  const log = opts.logger ?? pino({ level: 'silent' });
  const startedAt = new Date().toISOString();
  const tracer = new BenchTracer(p.name, p.traceExport);
  const rows: BenchRow[] = [];
  const prepare: PrepareRecord[] = [];
  const skipped = p.settings.filter((s) => s.skipReason !== null).map((s) => ({ setting: s.id, reason: s.skipReason! }));
  const total = countSteps(p);
  let done = 0;
  const maxParallel = Math.max(...p.parallel.map((x) => x.parallelism));

  let redis: RedisServer | undefined;
  let storeUrl = 'embedded';
  if (p.objectStore.kind === 'local-redis-server') {
    redis = await startRedisServer();
    storeUrl = redis.url;
  } else if (p.objectStore.kind === 'redis') {
    storeUrl = p.objectStore.url;
  }
  const tiers = new Map<StorageTier, Tier>();
  const tierFor = (storage: StorageTier): Tier => {
    let t = tiers.get(storage);
    if (!t) {
      const base = storage === 'tmpfs' ? '/dev/shm' : tmpdir();
      mkdirSync(base, { recursive: true });
      const dataDir = mkdtempSync(join(base, `thaw-bench-${storage}-`));
      const params = parseDaemonConfig({
        dataDir, objectStore: storeUrl === 'embedded' ? 'embedded' : storeUrl, spareHosts: 1, preparedPerFunction: maxParallel,
        maxIdleSandboxes: Math.max(16, maxParallel * 2),
      });
      t = { platform: new Platform({ ...params, logger: log }), dataDir, snapshotRoot: join(dataDir, 'snapshots') };
      // Invocations the harness traces carry its trace into the platform and its hosts.
      t.platform.setTracing(tracer.platformTracing);
      tiers.set(storage, t);
    }
    return t;
  };

  // One trace per function and setting: its prepare steps and measured steps are its children.
  let settingSpan: Span | undefined;
  try {
    for (const fn of p.functions) {
      // The scaling mechanism each tier's platform has the function deployed with (settings may differ).
      const deployed = new Map<StorageTier, string>();
      try {
        for (const setting of p.settings) {
          if (setting.skipReason !== null) continue;
          const tier = tierFor(setting.storage);
          if (deployed.get(setting.storage) !== setting.scaling) {
            try {
              await deployAndFill(tier.platform, fn, setting.scaling);
            } catch (err: unknown) {
              // A function that cannot be deployed (e.g. its module is not built) is recorded and
              // skipped; the rest of the experiment still runs.
              const e = toThawError(err);
              prepare.push({ function: fn.id, setting: setting.id, recordInput: -1, step: 'deploy', snapshotId: '', ms: 0, detail: `failed: ${e.code}: ${e.message}` });
              skipped.push({ setting: `${fn.id} (all settings)`, reason: `deploy failed: ${e.code}: ${e.message}` });
              log.warn({ function: fn.id, code: e.code }, 'deploy failed; function skipped');
              done += countSteps(p) / p.functions.length;
              opts.onProgress?.(done, total, `${fn.id} deploy failed`);
              break;
            }
            deployed.set(setting.storage, setting.scaling);
          }
          settingSpan = tracer.start('setting', {
            'thaw.experiment': p.name, 'thaw.function': fn.id, 'thaw.setting': setting.id, 'thaw.strategy': setting.strategy, 'thaw.storage': setting.storage,
          });
          try {
            await runSetting(fn, setting, tier);
          } finally {
            settingSpan.end();
            settingSpan = undefined;
          }
        }
      } finally {
        for (const storage of deployed.keys()) await tiers.get(storage)!.platform.deleteFunction(fn.target.name).catch(() => undefined);
      }
    }
  } finally {
    for (const t of tiers.values()) {
      await t.platform.close();
      rmSync(t.dataDir, { recursive: true, force: true });
    }
    await redis?.stop();
  }
  const spans = tracer.saved();
  const traceExportError = await tracer.close();
  return {
    experiment: p.name,
    description: p.description,
    startedAt,
    finishedAt: new Date().toISOString(),
    host: { node: process.version, platform: `${process.platform} ${process.arch}`, cpus: (await import('node:os')).cpus().length },
    objectStore: p.objectStore.kind === 'redis' ? p.objectStore.url : p.objectStore.kind,
    settings: p.settings,
    skipped,
    rows,
    prepare,
    spans,
    traceExportError,
  };

  /** Deploys the function and writes its init objects and every input it may use (keys = input names). */
  async function deployAndFill(platform: Platform, fn: FunctionParams, scaling: string): Promise<void> {
    const { manifest, artefact } = readManifestFile(fn.target.manifestPath);
    await platform.deployFunction(scaling === 'none' ? manifest : { ...(manifest as object), scaling }, artefact);
    const inputs = [...fn.target.initObjects(), ...new Set([...p.recordInputs, ...p.testInputs].map((i) => fn.target.input(fn.params[i]!)))];
    for (const input of inputs) await platform.putObject(input.key, input.bytes);
  }

  async function runSetting(fn: FunctionParams, setting: SettingParams, tier: Tier): Promise<void> {
    for (const pair of p.parallel) {
      for (const recordInput of p.recordInputs) {
        const record = fn.target.input(fn.params[recordInput]!);
        const label = `${fn.id} ${setting.id} x${pair.parallelism}/${pair.parSnapshots} r${recordInput}`;
        let targets: string[];
        try {
          targets = setting.kind === 'cold' ? []
            : setting.kind === 'warm'
              ? await prepareWarm(fn, setting, tier, record, recordInput, pair.parallelism)
              : await prepareSnapshots(fn, setting, tier, record, recordInput, pair.parSnapshots);
        } catch (err: unknown) {
          const e = toThawError(err);
          prepare.push({ function: fn.id, setting: setting.id, recordInput, step: 'boot', snapshotId: '', ms: 0, detail: `failed: ${e.code}: ${e.message}` });
          log.warn({ function: fn.id, setting: setting.id, code: e.code }, 'prepare failed; steps skipped');
          done += p.testInputs.length * p.repeat;
          opts.onProgress?.(done, total, `${label} prepare failed`);
          continue;
        }
        try {
          for (const testInput of p.testInputs) {
            const input = fn.target.input(fn.params[testInput]!);
            for (let repeat = 0; repeat < p.repeat; repeat++) {
              await measureStep(fn, setting, tier, { ...pair, recordInput, testInput, repeat }, input, targets);
              opts.onProgress?.(++done, total, label);
            }
          }
        } finally {
          if (setting.kind === 'warm') for (const id of targets) await tier.platform.deleteSandbox(id).catch(() => undefined);
        }
      }
    }
  }

  /** Cold boot + init + the record input; returns the kept sandbox's id. */
  async function bootOnRecord(fn: FunctionParams, setting: SettingParams, tier: Tier, record: SuiteInput, recordInput: number, step: 'boot' | 'warm-boot'): Promise<string> {
    return tracer.span(`prepare: ${step}`, { 'thaw.function': fn.id, 'thaw.setting': setting.id }, settingSpan, async (span) => {
      const t0 = nowMs();
      await tier.platform.poolSettled();
      const res = await tier.platform.invoke({ function: fn.target.name, mode: 'cold', input: fn.target.event(record), keep: true, traceparent: tracer.traceparentOf(span) });
      const check = await fn.target.check(record, res.output, (k) => tier.platform.getObject(k));
      prepare.push({ function: fn.id, setting: setting.id, recordInput, step, snapshotId: '', ms: nowMs() - t0, detail: check.ok ? `sandbox ${res.sandboxId}` : `record output check failed: ${check.detail}` });
      return res.sandboxId;
    });
  }

  async function prepareWarm(fn: FunctionParams, setting: SettingParams, tier: Tier, record: SuiteInput, recordInput: number, n: number): Promise<string[]> {
    const ids: string[] = [];
    try {
      for (let i = 0; i < n; i++) ids.push(await bootOnRecord(fn, setting, tier, record, recordInput, 'warm-boot'));
    } catch (err: unknown) {
      for (const id of ids) await tier.platform.deleteSandbox(id).catch(() => undefined);
      throw err;
    }
    return ids;
  }

  /**
   * Snapshot copies for one setting and record input: a cold boot on the record input, `copies`
   * snapshots of that sandbox (separate files), then per copy the strategy's prepare step and,
   * for recording strategies, one restore + invocation on the record input.
   */
  async function prepareSnapshots(fn: FunctionParams, setting: SettingParams, tier: Tier, record: SuiteInput, recordInput: number, copies: number): Promise<string[]> {
    const sandboxId = await bootOnRecord(fn, setting, tier, record, recordInput, 'boot');
    const ids: string[] = [];
    try {
      for (let i = 0; i < copies; i++) {
        await tracer.span('prepare: snapshot', { 'thaw.function': fn.id, 'thaw.setting': setting.id, 'thaw.copy': i }, settingSpan, async () => {
          const t0 = nowMs();
          const snap = await tier.platform.createSnapshot({ sandboxId, kind: 'full' });
          ids.push(snap.id);
          prepare.push({ function: fn.id, setting: setting.id, recordInput, step: 'snapshot', snapshotId: snap.id, ms: nowMs() - t0, detail: `${snap.memoryBytes} B memory, ${snap.diskBytes} B on disk` });
        });
      }
    } finally {
      await tier.platform.deleteSandbox(sandboxId).catch(() => undefined);
    }
    const strategy = getStrategy(setting.strategy);
    for (const id of ids) {
      await tracer.span('prepare: strategy', { 'thaw.strategy': setting.strategy, 'thaw.snapshot': id }, settingSpan, async () => {
        const report = strategy.prepare(tier.snapshotRoot, readChain(tier.snapshotRoot, id));
        prepare.push({ function: fn.id, setting: setting.id, recordInput, step: 'strategy-prepare', snapshotId: id, ms: report.elapsedMs, detail: report.built ? 'built' : 'already in place' });
      });
      if (!setting.recordRun) continue;
      await tracer.span('prepare: record run', { 'thaw.strategy': setting.strategy, 'thaw.snapshot': id }, settingSpan, async (span) => {
        await tier.platform.poolSettled();
        const t0 = nowMs();
        const res = await tier.platform.invoke({ function: fn.target.name, mode: 'snapshot', snapshotId: id, strategy: setting.strategy, input: fn.target.event(record), keep: false, traceparent: tracer.traceparentOf(span) });
        const check = await fn.target.check(record, res.output, (k) => tier.platform.getObject(k));
        prepare.push({
          function: fn.id, setting: setting.id, recordInput, step: 'record-run', snapshotId: id, ms: nowMs() - t0,
          detail: `${res.restore?.phase ?? 'phase not reported'}${check.ok ? '' : `; output check failed: ${check.detail}`}`,
        });
      });
    }
    return ids;
  }

  async function measureStep(
    fn: FunctionParams, setting: SettingParams, tier: Tier,
    step: { parallelism: number; parSnapshots: number; recordInput: number; testInput: number; repeat: number },
    input: SuiteInput, targets: readonly string[],
  ): Promise<void> {
    await tier.platform.poolSettled();
    if (setting.dropCache === 'snapshot-files') {
      const span = tracer.start('drop page cache', { 'thaw.snapshots': targets.length }, settingSpan);
      for (const id of new Set(targets)) dropFileCache(join(tier.snapshotRoot, id));
      span.end();
    }
    const event = fn.target.event(input);
    const stepSpan = tracer.start('step', {
      'thaw.function': fn.id, 'thaw.setting': setting.id, 'thaw.parallelism': step.parallelism, 'thaw.par_snapshots': step.parSnapshots,
      'thaw.record_input': step.recordInput, 'thaw.test_input': step.testInput, 'thaw.repeat': step.repeat, 'thaw.cache_drop': setting.dropCache,
    }, settingSpan);
    try {
      await Promise.all(Array.from({ length: step.parallelism }, async (_, worker) => {
        const target = setting.kind === 'cold' ? '' : setting.kind === 'warm' ? targets[worker]! : targets[worker % targets.length]!;
        const span = tracer.start('invocation', { 'thaw.worker': worker, 'thaw.target': target }, stepSpan);
        const t0 = nowMs();
        let res: InvokeResult | undefined;
        let error = '';
        let stages = { ok: false, detail: '', readS: null as number | null, processS: null as number | null, writeS: null as number | null };
        const traceparent = tracer.traceparentOf(span);
        try {
          res = setting.kind === 'cold'
            ? await tier.platform.invoke({ function: fn.target.name, mode: 'cold', input: event, keep: false, traceparent })
            : setting.kind === 'warm'
            ? await tier.platform.invoke({ function: fn.target.name, mode: 'warm', sandboxId: target, input: event, keep: true, traceparent })
            : await tier.platform.invoke({ function: fn.target.name, mode: 'snapshot', snapshotId: target, strategy: setting.strategy, input: event, keep: false, traceparent });
        } catch (err: unknown) {
          const e = toThawError(err);
          error = `${e.code}: ${e.message}`;
        }
        const wallMs = nowMs() - t0;
        if (res) {
          stages = await fn.target.check(input, res.output, (k) => tier.platform.getObject(k));
          if (!stages.ok) error = `check: ${stages.detail}`;
          tracer.addInvocationSteps(span, t0, res.timings, stages, res.restore, tracer.recordedUnder(span));
          span.setAttributes({
            'thaw.scaling': setting.scaling, 'thaw.memory.declared_bytes': res.memory.declaredBytes,
            'thaw.memory.granted_bytes': res.memory.grantedBytes, 'thaw.memory.resident_bytes': res.memory.residentBytes,
          });
        }
        if (error) span.setStatus({ code: 2, message: error });
        span.end(t0 + wallMs);
        rows.push(row(fn, setting, step, worker, input, setting.kind === 'snapshot' ? target : '', res?.timings, wallMs, stages, res, error, span.spanContext().traceId));
      }));
    } finally {
      stepSpan.end();
    }
  }

  function row(
    fn: FunctionParams, setting: SettingParams,
    step: { parallelism: number; parSnapshots: number; recordInput: number; testInput: number; repeat: number },
    worker: number, input: SuiteInput, snapshotId: string, t: InvokeTimings | undefined, wallMs: number,
    stages: { readS: number | null; processS: number | null; writeS: number | null }, res: InvokeResult | undefined, error: string, traceId: string,
  ): BenchRow {
    const r3 = (x: number): number => Math.round(x * 1000) / 1000;
    return {
      experiment: p.name, function: fn.id, setting: setting.id, strategy: setting.strategy, storage: setting.storage, cacheDrop: setting.dropCache,
      parallelism: step.parallelism, parSnapshots: step.parSnapshots, recordInput: step.recordInput, testInput: step.testInput, testInputKey: input.key,
      repeat: step.repeat, worker, snapshotId,
      acquireMs: t?.acquireMs ?? NaN, bootMs: t?.bootMs ?? 0, initMs: t?.initMs ?? 0, restoreMs: t?.restoreMs ?? 0, handlerMs: t?.handlerMs ?? NaN, totalMs: t?.totalMs ?? NaN,
      wallMs: r3(wallMs), read_s: stages.readS, process_s: stages.processS, write_s: stages.writeS,
      scaling: setting.scaling, declaredBytes: res?.memory.declaredBytes ?? null, grantedBytes: res?.memory.grantedBytes ?? null, residentBytes: res?.memory.residentBytes ?? null,
      grantMs: t?.grantMs ?? null, populateMs: t?.populateMs ?? null, releaseMs: t?.releaseMs ?? null,
      restoreBytesRead: res?.restore?.bytesRead ?? null, uffdFaults: res?.restore?.uffdFaults ?? null, prefetchedPages: res?.restore?.prefetchedPages ?? null,
      ok: error === '', error, traceId,
    };
  }
}

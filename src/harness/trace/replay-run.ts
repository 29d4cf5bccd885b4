// Replays a trace open loop against Thaw (a daemon over HTTP, or an in-process platform), once per
// setting (memory policy and tier), and records every invocation and the sandboxes' memory.
//
// Mapping rule: the trace's functions are ranked by invocation count; the `maxFunctions` most
// invoked are replayed (the rest dropped) and the one of rank r is deployed as its own function
// `rp<r>-<target>`, target = the config's functions[r mod k], invoked with that target's input.
// Each trace function so has its own sandboxes, keep-alive and reuse intervals. The trace's
// durations are not reproduced (the target runs its own work): only arrival times are.
//
// Time: an invocation starting at trace second s is sent at real time s / timeScale after the
// setting's start, without waiting for earlier ones (open loop). The keep-alive and the policy's
// time constants are divided by the same factor (PUT /v1/scheduler timeScale).
//
// Memory: sampled every window / 10 (real time, at least 100 ms): each sandbox's resident bytes
// from the scheduler report's per-sandbox memory (its host's mincore over the guest memory now,
// plus the compressed store), else the sandbox list's memory.residentBytes (measured at the end of
// its last invocation), else its
// memoryBytes (the guest's linear memory size: an upper bound of what is resident). Bytes
// offloaded (held now) and faulted back (cumulative per live sandbox) come from the scheduler report.
// Hosts: the distinct host processes carrying the replayed sandboxes in each sample (a vertical
// host carries several), each host's first and last sample, and, when the caller can read them
// (a daemon on this machine), the hosts' resident memory. Every host that served an invocation is
// counted, sampled or not: the reply names its host (hostPid), so a host that lived between two
// samples (at 720x a sample is 0.5 s apart, longer than many a horizontal host lives) still counts.
//
// Layout: a setting may name the host layout (`none/vertical`); the functions are redeployed with
// it (manifest `layout` and `instancesPerHost`) before the setting runs. A redeploy keeps the
// module, so the snapshots taken at set-up stay current.

import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { readManifestFile } from '../../cli/context.js';
import { toThawError } from '../../core/errors.js';
import type { SandboxInfo, SchedulerReport, StartKind, ThawApi } from '../../platform/types.js';
import type { ReplayParams, ReplaySetting } from './replay-config.js';
import type { Trace, Trigger } from './types.js';

export interface ReplayFunction {
  readonly rank: number;
  readonly app: string;
  readonly func: string;
  readonly trigger: Trigger | null;
  readonly memoryMb: number | null;
  readonly invocations: number;
  readonly deployedAs: string;
  readonly target: string;
  readonly input: string;
}

export interface ReplayRow {
  readonly setting: string;
  readonly traceS: number;
  readonly rank: number;
  readonly start: StartKind | null;
  readonly ok: boolean;
  readonly error: string;
  /** End to end as the client saw it (HTTP included against a daemon). */
  readonly latencyMs: number;
  /** Inside Thaw (the reply's timings.totalMs), null on error. */
  readonly thawMs: number | null;
  /** How late it was sent against its scaled trace time (the replayer's own lag). */
  readonly sentLateMs: number;
  /** The sandbox that served it (absent on error and in older results). */
  readonly sandboxId?: string;
  /** The host process that carried that sandbox, as the reply names it (absent on error, from older daemons and in older results). */
  readonly hostPid?: number;
}

export interface MemorySample {
  readonly setting: string;
  readonly traceS: number;
  readonly sandboxes: number;
  readonly residentBytes: number;
  readonly offloadedBytes: number;
  /**
   * Local memory the compressed tier's store takes (outside the guest memory; counted in
   * residentBytes too, which is local memory: guest resident + store). Absent in older results.
   */
  readonly storedBytes?: number;
  /** Cumulative bytes faulted back from a tier, where the daemon reports them; else null. */
  readonly faultedBackBytes: number | null;
  /** Host processes carrying the sandboxes sampled (from the sandbox list). Absent in older results. */
  readonly hosts?: number;
  /** Sandboxes in the sandbox list (the instances those hosts carry). Absent in older results. */
  readonly instances?: number;
  /** The hosts' resident memory, when ReplayOptions.hostMemory could read it; else null. */
  readonly hostRssBytes?: number | null;
}

/**
 * A host process that carried replayed sandboxes (seen in a sample, or named by a reply): when it
 * started serving (the earliest invocation served in it, else its first sample), its last sample
 * or invocation, its most instances in one sample (1 for a host no sample saw).
 */
export interface ReplayHost {
  readonly setting: string;
  readonly pid: number;
  firstS: number;
  lastS: number;
  maxInstances: number;
}

export interface ReplayRun {
  readonly name: string;
  readonly description: string;
  readonly source: string;
  readonly startedAt: string;
  finishedAt: string;
  readonly timeScale: number;
  readonly windowS: number;
  readonly keepAliveS: number;
  readonly durationS: number;
  readonly settings: readonly string[];
  readonly farMemoryCost: Readonly<Record<string, number>>;
  readonly functions: readonly ReplayFunction[];
  readonly rows: ReplayRow[];
  readonly samples: MemorySample[];
  /** Hosts seen per setting (absent in older results). */
  readonly hosts?: ReplayHost[];
  readonly scheduler: Record<string, SchedulerReport>;
  readonly skipped: { setting: string; reason: string }[];
  /** Memory samples that failed (the daemon did not answer the sandbox list). */
  readonly sampleErrors: string[];
  /** Where resident memory was read from (see the header). */
  memorySource: 'memory.residentBytes' | 'scheduler memory (mincore)' | 'memoryBytes (linear memory size)' | 'none sampled';
  readonly loadAvg: { readonly before: readonly number[]; after: readonly number[] };
}

export interface ReplayOptions {
  onProgress?: (done: number, total: number, label: string) => void;
  /** A host process's resident bytes by pid (only where the hosts run on this machine), or null. */
  hostMemory?: (pid: number) => number | null;
}

/** What the replay reads of a sandbox's memory (SandboxInfo.memory once the daemon reports it). */
type MemoryView = { residentBytes?: number; offloadedBytes?: number; faultedBackBytes?: number };

/** Replays `trace` per `p`'s settings against `api`; deploys its functions first and deletes them after. */
export async function runReplay(api: ThawApi, p: ReplayParams, trace: Trace, opts: ReplayOptions = {}): Promise<ReplayRun> {
  const durationS = Math.min(trace.durationS, p.durationS ?? Infinity);
  const picked = trace.functions.slice(0, p.maxFunctions).filter((f) => f.invocations > 0);
  const functions: ReplayFunction[] = picked.map((f, rank) => {
    const t = p.targets[rank % p.targets.length]!;
    return {
      rank, app: f.app, func: f.func, trigger: f.trigger, memoryMb: f.memoryMb, invocations: 0,
      deployedAs: `rp${String(rank).padStart(2, '0')}-${t.target.name}`, target: t.target.name, input: t.inputRef,
    };
  });
  const invocations = trace.invocations.filter((i) => i.fn < functions.length && i.startS < durationS);
  for (const inv of invocations) (functions[inv.fn] as { invocations: number }).invocations++;
  const run: ReplayRun = {
    name: p.name, description: p.description, source: trace.source, startedAt: new Date().toISOString(), finishedAt: '',
    timeScale: p.timeScale, windowS: p.windowS, keepAliveS: p.keepAliveS, durationS, settings: p.settings.map((s) => s.id),
    farMemoryCost: p.farMemoryCost, functions, rows: [], samples: [], hosts: [], scheduler: {}, skipped: [], sampleErrors: [], memorySource: 'none sampled',
    loadAvg: { before: loadavg(), after: [] },
  };
  const events = new Map<number, Uint8Array>();
  const total = invocations.length * p.settings.length;
  let done = 0;
  const names = new Set(functions.map((f) => f.deployedAs));
  // Deploys every function with `layout` (null: the daemon's default).
  let deployedLayout: ReplaySetting['layout'] | undefined;
  const deploy = async (layout: ReplaySetting['layout']): Promise<void> => {
    for (const f of functions) {
      const { manifest, artefact } = readManifestFile(p.targets[f.rank % p.targets.length]!.target.manifestPath);
      await api.deployFunction({ ...manifest, name: f.deployedAs, ...(layout !== null && { layout, ...(layout === 'vertical' && { instancesPerHost: p.instancesPerHost }) }) }, artefact);
    }
    deployedLayout = layout;
  };
  try {
    await deploy(p.settings[0]!.layout);
    for (const f of functions) {
      const t = p.targets[f.rank % p.targets.length]!;
      const input = t.target.input(t.inputRef);
      for (const o of [...t.target.initObjects(), input]) await api.putObject(o.key, o.bytes);
      events.set(f.rank, t.target.event(input));
      if (p.snapshots) {
        const first = await api.invoke({ function: f.deployedAs, mode: 'cold', input: events.get(f.rank)! });
        await api.createSnapshot({ sandboxId: first.sandboxId });
        await api.deleteSandbox(first.sandboxId);
      }
    }
    for (const setting of p.settings) {
      try {
        run.scheduler[setting.id] = await api.configureScheduler({
          policy: setting.policy, tier: setting.tier, remoteLatencyUs: setting.remoteLatencyUs, keepAliveS: p.keepAliveS, timeScale: p.timeScale, resetCounts: true, resetHistory: true,
        });
      } catch (err: unknown) {
        const e = toThawError(err);
        run.skipped.push({ setting: setting.id, reason: `${e.code}: ${e.message}` });
        done += invocations.length;
        opts.onProgress?.(done, total, `${setting.id} skipped`);
        continue;
      }
      await stopSandboxes(api, names);
      if (setting.layout !== deployedLayout) await deploy(setting.layout);
      // Every setting starts from the pool the first found after the snapshots were taken.
      await api.configureScheduler({ preparePool: true });
      const t0 = performance.now();
      const hosts = new Map<number, ReplayHost>();
      const hostOf = new Map<string, number>();
      const traceNow = (): number => ((performance.now() - t0) / 1000) * p.timeScale;
      let sampling = true;
      const sampler = (async () => {
        const everyMs = Math.max(100, (p.windowS * 1000) / p.timeScale / 10);
        while (sampling) {
          try {
            const s = await sampleMemory(api, names, setting.id, traceNow(), opts.hostMemory);
            run.samples.push(s.sample);
            for (const [id, pid] of s.sandboxHosts) hostOf.set(id, pid);
            for (const [pid, n] of s.hostInstances) {
              const h = hosts.get(pid) ?? { setting: setting.id, pid, firstS: s.sample.traceS, lastS: s.sample.traceS, maxInstances: 0 };
              h.lastS = s.sample.traceS;
              h.maxInstances = Math.max(h.maxInstances, n);
              hosts.set(pid, h);
            }
            // The run names the worst source any sample used.
            if (s.source !== null && (run.memorySource === 'none sampled' || SOURCE_RANK.indexOf(s.source) > SOURCE_RANK.indexOf(run.memorySource))) run.memorySource = s.source;
          } catch (err: unknown) {
            // A daemon too busy to list its sandboxes loses a sample, not the replay.
            run.sampleErrors.push(`${setting.id} t=${traceNow().toFixed(1)}s: ${toThawError(err).message}`);
          }
          await sleep(everyMs);
        }
      })();
      const pending: Promise<void>[] = [];
      for (const inv of invocations) {
        const dueMs = (inv.startS / p.timeScale) * 1000;
        const waitMs = dueMs - (performance.now() - t0);
        if (waitMs > 1) await sleep(waitMs);
        const sentLateMs = Math.max(0, performance.now() - t0 - dueMs);
        const f = functions[inv.fn]!;
        const sent = performance.now();
        pending.push(api.invoke({ function: f.deployedAs, mode: 'auto', input: events.get(f.rank)! }).then(
          (r) => run.rows.push({
            setting: setting.id, traceS: inv.startS, rank: f.rank, start: r.start, ok: true, error: '', latencyMs: performance.now() - sent, thawMs: r.timings.totalMs, sentLateMs, sandboxId: r.sandboxId,
            ...(r.hostPid !== undefined && { hostPid: r.hostPid }),
          }),
          (err: unknown) => {
            const e = toThawError(err);
            run.rows.push({ setting: setting.id, traceS: inv.startS, rank: f.rank, start: null, ok: false, error: `${e.code}: ${e.message}`, latencyMs: performance.now() - sent, thawMs: null, sentLateMs });
          },
        ).then(() => opts.onProgress?.(++done, total, `${setting.id} t=${Math.floor(traceNow())}s/${Math.floor(durationS)}s`)));
      }
      await Promise.all(pending);
      // Memory is sampled to the end of the trace: idle sandboxes still count until they expire.
      const leftMs = (durationS / p.timeScale) * 1000 - (performance.now() - t0);
      if (leftMs > 0) await sleep(leftMs);
      sampling = false;
      await sampler;
      for (const r of run.rows) {
        if (r.setting !== setting.id) continue;
        const pid = r.hostPid ?? (r.sandboxId !== undefined ? hostOf.get(r.sandboxId) : undefined);
        if (pid === undefined) continue;
        // A host no sample saw carried at least this invocation's sandbox.
        const h = hosts.get(pid) ?? { setting: setting.id, pid, firstS: r.traceS, lastS: r.traceS, maxInstances: 1 };
        hosts.set(pid, h);
        if (r.traceS < h.firstS) h.firstS = r.traceS;
        if (r.traceS > h.lastS) h.lastS = r.traceS;
      }
      run.hosts!.push(...hosts.values());
      run.scheduler[setting.id] = await api.scheduler();
      await stopSandboxes(api, names);
    }
  } finally {
    await api.configureScheduler({ policy: 'none', tier: null, timeScale: 1 }).catch(() => undefined);
    for (const f of functions) {
      for (const s of await api.listSnapshots(f.deployedAs).catch(() => [])) await api.deleteSnapshot(s.id).catch(() => undefined);
      await api.deleteFunction(f.deployedAs).catch(() => undefined);
    }
    run.finishedAt = new Date().toISOString();
    run.loadAvg.after = loadavg();
  }
  run.rows.sort((a, b) => a.setting.localeCompare(b.setting) || a.traceS - b.traceS);
  return run;
}

async function stopSandboxes(api: ThawApi, names: ReadonlySet<string>): Promise<void> {
  for (const s of await api.listSandboxes()) if (names.has(s.function)) await api.deleteSandbox(s.id).catch(() => undefined);
}

/** Memory sources, best first. */
const SOURCE_RANK: readonly ReplayRun['memorySource'][] = ['scheduler memory (mincore)', 'memory.residentBytes', 'memoryBytes (linear memory size)', 'none sampled'];

async function sampleMemory(api: ThawApi, names: ReadonlySet<string>, setting: string, traceS: number, hostMemory: ReplayOptions['hostMemory']): Promise<{ sample: MemorySample; source: ReplayRun['memorySource'] | null; hostInstances: Map<number, number>; sandboxHosts: Map<string, number> }> {
  const [list, report] = await Promise.all([api.listSandboxes(), api.scheduler()]);
  const mine = list.filter((s) => names.has(s.function));
  const hostInstances = new Map<number, number>();
  for (const s of mine) hostInstances.set(s.hostPid, (hostInstances.get(s.hostPid) ?? 0) + 1);
  const sandboxHosts = new Map(mine.map((s) => [s.id, s.hostPid]));
  // A host that exited since the list was read counts nothing.
  const hostRss = hostMemory ? [...hostInstances.keys()].reduce((a, pid) => a + (hostMemory(pid) ?? 0), 0) : null;
  const measured = (report.memory ?? []).filter((m) => names.has(m.function));
  let resident = 0;
  let offloaded = 0;
  let stored = 0;
  let faulted: number | null = null;
  let source: ReplayRun['memorySource'] | null = null;
  const views = mine.map((s) => (s as SandboxInfo & { memory?: MemoryView }).memory);
  if (report.memory !== undefined) {
    // The hosts' live figures, one set per live sandbox (a sandbox started between the two calls
    // counts from the next sample on); the compressed store is local memory too. Preferred to the
    // sandbox list's memory.residentBytes, which is measured at the end of an invocation and so
    // misses what an idle sandbox gives back.
    source = 'scheduler memory (mincore)';
    let swapped = 0;
    for (const h of measured) {
      resident += h.residentBytes + h.storedBytes;
      stored += h.storedBytes;
      offloaded += h.heldBytes;
      swapped += h.swappedBytes ?? 0;
      faulted = (faulted ?? 0) + h.faultedBackBytes;
    }
    // tmo:compressed's zram swap: the guests' pages on it (pagemap) are offloaded, and the RAM
    // they take there is local memory. Only the guests' share: the device also holds the hosts'
    // own pages (Node's heap and code, reclaimed by the same cgroup limit), which `none`'s figure
    // (guest memory) never counts either. zram does not say how well whose pages compressed, so
    // the guests' pages count at full size (at most the device's whole RAM): an upper bound
    // (random heaps such as mem64-c's do not compress; Node's heap does).
    const z = report.zram;
    if (z) {
      const local = Math.min(swapped, z.memUsedBytes);
      resident += local;
      stored += local;
      offloaded += swapped;
    }
  } else if (mine.length > 0 && views.every((m) => m?.residentBytes !== undefined)) {
    source = 'memory.residentBytes';
    for (const m of views) {
      resident += m!.residentBytes!;
      offloaded += m!.offloadedBytes ?? 0;
      if (m!.faultedBackBytes !== undefined) faulted = (faulted ?? 0) + m!.faultedBackBytes;
    }
  } else if (mine.length > 0) {
    source = 'memoryBytes (linear memory size)';
    for (const s of mine) resident += s.memoryBytes;
  }
  const count = source === 'scheduler memory (mincore)' ? measured.length : mine.length;
  return {
    sample: { setting, traceS, sandboxes: count, residentBytes: resident, offloadedBytes: offloaded, storedBytes: stored, faultedBackBytes: faulted, hosts: hostInstances.size, instances: mine.length, hostRssBytes: hostRss },
    source, hostInstances, sandboxHosts,
  };
}

// A daemon-side sandbox as a memory policy sees it: the host operations on its pages (through its
// HostProcess) and its host's memory cgroup (for tmo, which the daemon drives: it owns cgroups).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostProcess } from '../sandbox/host-process.js';
import type { MemoryStagesResult } from '../sandbox/protocol.js';
import type { MemoryCgroup } from '../sandbox/cgroup.js';
import type { PolicyCgroup, PolicySandbox, SandboxOffloadFigures } from './types.js';

/** A PolicySandbox that also reports its offload figures (for the scheduler's and the bench's reports). */
export interface ReportingSandbox extends PolicySandbox {
  /** method: how the host knows the stages (write-protect tracking or the snapshot's layers). */
  memoryStages(): Promise<MemoryStagesResult>;
  /** heldBytes: offloaded and not faulted back now. */
  offloadStats(): Promise<SandboxOffloadFigures>;
}

/** `memorySocket`: the memory server's Unix socket (remote tier), or null when none runs. */
export function policySandboxOf(host: Pick<HostProcess, 'offloadStats' | 'offload' | 'prefetch' | 'memoryStages' | 'cgroup'>, id: string, fn: string, memorySocket: string | null): ReportingSandbox {
  return {
    offloadStats: () => host.offloadStats(id),
    id,
    fn,
    offload: (req) => host.offload(id, req, memorySocket),
    prefetch: () => host.prefetch(id),
    memoryStages: () => host.memoryStages(id),
    cgroup: host.cgroup ? cgroupControl(host.cgroup) : null,
  };
}

/** The tmo view of a host's memory cgroup (v1 or v2 files). */
export function cgroupControl(cg: MemoryCgroup): PolicyCgroup {
  const v2 = cg.version === 2;
  const read = (file: string): string => readFileSync(join(cg.path, file), 'utf8');
  const stat = (): Map<string, number> => new Map(read('memory.stat').trim().split('\n').map((l) => {
    const [k, v] = l.split(' ');
    return [k!, Number(v)] as const;
  }));
  return {
    anonBytes: () => (v2 ? stat().get('anon') : stat().get('rss')) ?? 0,
    usageBytes: () => Number(read(v2 ? 'memory.current' : 'memory.usage_in_bytes').trim()),
    limitBytes: () => {
      const v = read(v2 ? 'memory.max' : 'memory.limit_in_bytes').trim();
      return v === 'max' ? Number.MAX_SAFE_INTEGER : Number(v);
    },
    setLimit: (bytes) => writeFileSync(join(cg.path, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(Math.floor(bytes))),
    refaults: () => {
      const s = stat();
      return (s.get('workingset_refault_anon') ?? 0) + (s.get('workingset_refault_file') ?? 0) + (s.get('workingset_refault') ?? 0);
    },
  };
}

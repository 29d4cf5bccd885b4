// Memory cgroups for sandbox hosts: one cgroup per host process under a Thaw parent, with a
// limit set when the host is given a function. cgroup v2 where its memory controller is
// enabled, else v1; where neither is writable, Thaw runs without (and says so once).

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface Layout {
  readonly version: 1 | 2;
  readonly root: string;
}

function detect(): Layout | null {
  const v2Candidates = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
  for (const root of v2Candidates) {
    try {
      if (readFileSync(join(root, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('memory')) return { version: 2, root };
    } catch {
      /* not a v2 root */
    }
  }
  if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) return { version: 1, root: '/sys/fs/cgroup/memory' };
  return null;
}

let layout: Layout | null | undefined;

/**
 * Creates (or reuses) the parent cgroup `name` for Thaw's hosts.
 * Returns its path, or a reason why memory cgroups are unavailable here.
 */
export function setUpCgroupParent(name: string): { path: string } | { unavailable: string } {
  layout ??= detect();
  if (!layout) return { unavailable: 'no memory cgroup controller is mounted' };
  const path = join(layout.root, name);
  try {
    mkdirSync(path, { recursive: true });
    if (layout.version === 2) {
      // Children of a v2 cgroup get the memory controller only when the parent delegates it.
      writeFileSync(join(layout.root, 'cgroup.subtree_control'), '+memory');
      writeFileSync(join(path, 'cgroup.subtree_control'), '+memory');
    }
    return { path };
  } catch (err) {
    return { unavailable: `cannot create ${path}: ${(err as Error).message}` };
  }
}

/** Removes a parent cgroup once its hosts' cgroups are gone (left in place while any remain). */
export function removeCgroupParent(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    /* a host cgroup is still being removed, or already gone */
  }
}

/** One host process's memory cgroup. */
export class MemoryCgroup {
  private constructor(readonly path: string, readonly version: 1 | 2) {}

  /**
   * Creates the cgroup and moves `pid` into it (or, with null, leaves joining to the process
   * itself through procsFile); null when that fails (the host still runs).
   */
  static create(parent: string, name: string, pid: number | null): MemoryCgroup | null {
    layout ??= detect();
    if (!layout) return null;
    const path = join(parent, name);
    try {
      mkdirSync(path, { recursive: true });
      if (pid !== null) writeFileSync(join(path, 'cgroup.procs'), String(pid));
      return new MemoryCgroup(path, layout.version);
    } catch {
      return null;
    }
  }

  /** The file a process writes its pid to, to join this cgroup. */
  get procsFile(): string {
    return join(this.path, 'cgroup.procs');
  }

  /** Sets the hard memory limit of the whole host process (guest memory + runtime overhead). */
  setLimit(bytes: number): void {
    const file = this.version === 2 ? 'memory.max' : 'memory.limit_in_bytes';
    writeFileSync(join(this.path, file), String(bytes));
    if (this.version === 2) {
      try {
        writeFileSync(join(this.path, 'memory.swap.max'), '0');
      } catch {
        /* no swap accounting: fine */
      }
    }
  }

  /** Peak memory use of the host, in bytes, where the kernel reports it. */
  peakBytes(): number | null {
    const file = this.version === 2 ? 'memory.peak' : 'memory.max_usage_in_bytes';
    try {
      return Number(readFileSync(join(this.path, file), 'utf8').trim());
    } catch {
      return null;
    }
  }

  /** True when the kernel killed a process of this cgroup for memory. */
  oomKilled(): boolean {
    try {
      if (this.version === 2) {
        const m = /oom_kill (\d+)/.exec(readFileSync(join(this.path, 'memory.events'), 'utf8'));
        return m !== null && Number(m[1]) > 0;
      }
      const m = /oom_kill (\d+)/.exec(readFileSync(join(this.path, 'memory.oom_control'), 'utf8'));
      return m !== null && Number(m[1]) > 0;
    } catch {
      return false;
    }
  }

  /** Removes the (empty) cgroup once its process has exited. */
  remove(): void {
    try {
      rmdirSync(this.path);
    } catch {
      /* still populated for a moment, or already gone */
    }
  }
}

/**
 * The shared vocabulary of Thaw's memory work: what a sandbox's memory costs (accounting), and the
 * contract between the keep-alive scheduler (platform), the offload policies and tiers (memory/),
 * and the host operations that act on a guest's pages. Memory scaling (Faascale) and offloading
 * (FaaSMem) are built against these types; each mechanism, tier and policy is one module.
 */

/** A sandbox's memory, as the API, the CLI and the harness report it. */
export interface SandboxMemory {
  /** The limit the function declared (its manifest's memoryMiB): the most it may ever use. */
  declaredBytes: number;
  /** What the sandbox may use now (a scaling mechanism's grant; the declared size when there is none). */
  grantedBytes: number;
  /** Guest memory resident in the host right now (mincore over the guest's linear memory). */
  residentBytes: number;
  /** Guest memory moved to an offload tier and not faulted back (0 without offloading). */
  offloadedBytes: number;
}

/** Where a sandbox's cold pages go. */
export type OffloadTierId = 'file' | 'compressed' | 'remote';

/** A sandbox's pages by life stage (FaaSMem's Pucket): written before init, by init, by requests. */
export interface MemoryStages {
  runtimeBytes: number;
  initBytes: number;
  requestBytes: number;
  residentBytes: number;
}

export interface OffloadRequest {
  tier: OffloadTierId;
  /**
   * Which pages go: those of the named life stages that no request has touched since the stage
   * ended, or everything above a resident floor (a semi-warm step).
   */
  scope: { stages: ReadonlyArray<'runtime' | 'init' | 'request'> } | { shrinkToBytes: number };
}

export interface OffloadReport {
  offloadedBytes: number;
  residentBytes: number;
  elapsedMs: number;
}

/** What a prefetch brought back (a semi-warm sandbox picked for a request). */
export interface PrefetchReport {
  prefetchedBytes: number;
  residentBytes: number;
  elapsedMs: number;
}

/** Cumulative offload figures of one sandbox. */
export interface OffloadStats {
  offloadedBytes: number;
  /** Brought back: by faults, and in bulk by prefetch (prefetchedBytes of them). */
  faultedBackBytes: number;
  prefetchedBytes: number;
  faultBacks: number;
  faultBackMeanUs: number;
}

/** A sandbox's offload figures now, as its host reports them (the `stats` host operation). */
export interface SandboxOffloadFigures extends OffloadStats {
  /** Offloaded and not faulted back now. */
  heldBytes: number;
  /** Guest memory resident now (mincore over its linear memory). */
  residentBytes: number;
  /** Local memory the compressed tier's store takes now (in the host, outside guest memory). */
  storedBytes: number;
  /** Guest memory on swap now (pagemap): what reclaim put in tmo:compressed's zram, of this guest. */
  swappedBytes: number;
}

/** A live sandbox as a memory policy sees it: its identity and the host operations on its pages. */
export interface PolicySandbox {
  readonly id: string;
  readonly fn: string;
  offload(req: OffloadRequest): Promise<OffloadReport>;
  /** Brings back in bulk the held pages its requests use (host-memory.ts: prefetch). */
  prefetch(): Promise<PrefetchReport>;
  memoryStages(): Promise<MemoryStages>;
  /** Its host's memory cgroup, where it has one (the tmo policy acts on it, in the daemon). */
  readonly cgroup?: PolicyCgroup | null;
}

/** A memory cgroup as the tmo policy drives it (pressure-driven reclaim by a lowered limit). */
export interface PolicyCgroup {
  /** Anonymous memory charged to it (what reclaim cannot take without swap). */
  anonBytes(): number;
  usageBytes(): number;
  limitBytes(): number;
  setLimit(bytes: number): void;
  /** Pages refaulted after reclaim so far (workingset_refault, anon + file). */
  refaults(): number;
}

/**
 * An offload policy (none, tmo, faasmem and its ablations). The keep-alive scheduler calls it at
 * a sandbox's life events; the policy acts through the sandbox's host operations.
 */
export interface MemoryPolicy {
  readonly id: string;
  /**
   * A new sandbox booted or restored, before its first request. A policy without it lets the
   * platform send the first request right behind the boot or restore (pipelined starts).
   */
  afterInit?(s: PolicySandbox): Promise<void>;
  afterRequest(s: PolicySandbox, requestsServed: number): Promise<void>;
  /**
   * Called by the scheduler every tick while the sandbox is idle: `idleMs` since its last request,
   * `reuseP99Ms` the P99 of its function's reuse interval. Says whether it is now semi-warm.
   */
  onIdle(s: PolicySandbox, idleMs: number, reuseP99Ms: number): Promise<'warm' | 'semi-warm'>;
  /**
   * An idle sandbox was picked for a request (`semiWarm`: the policy had made it semi-warm); the
   * request waits for it. Optional.
   */
  beforeReuse?(s: PolicySandbox, semiWarm: boolean): Promise<void>;
  /**
   * Whether it needs page life stages tracked from a sandbox's start (write-protect tracking,
   * which costs every request a fault per page it first writes): the platform turns tracking on
   * for sandboxes started while such a policy is configured. Default false.
   */
  readonly needsStages?: boolean;
  /** Drops its state of a sandbox that is gone (stopped, expired, dead); the scheduler calls it. */
  forget?(sandboxId: string): void;
}

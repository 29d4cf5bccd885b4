// faasmem (FaaSMem, with its two ablations): offloading by page life stage, and semi-warm
// sandboxes that give their memory back step by step instead of dying.
//   - after a sandbox's first request: its runtime and init pages that request did not touch go
//     to the tier (the host knows the stages: memory/host-memory.ts);
//   - init pages are re-offloaded at most every reoffloadIntervalMs and only after at least
//     reoffloadEveryRequests requests since the last time (pages a request faulted back and did
//     not touch again go back);
//   - semi-warm: idle past max(P99 of its function's reuse interval, semiWarmMinIdleMs), the
//     sandbox gives back half of what it holds above the floor (at least semiWarmMinStepBytes)
//     every semiWarmStepMs, down to semiWarmFloorBytes. Its next request faults back what it
//     uses; each fault brings back up to 32 held pages from the faulting one on (readahead in
//     native/thaw_offload.c). The variant 'faasmem-prefetch' brings the pages its requests touched
//     and those the steps took back in bulk before the request instead (one read of the tier and
//     one UFFDIO_COPY per run of up to 256 pages); measured on a loaded machine it was slower than
//     readahead faults for mem64-c, which reads its heap in order (README, bench:offload).
// Ablations: 'faasmem-no-stages' offloads every page no request touched since the last offload,
// whatever its stage (request pages too: no Pucket); 'faasmem-no-semiwarm' never shrinks idle
// sandboxes. A sandbox that cannot offload (THAW_OFFLOAD_UNAVAILABLE: a page server owns its
// memory, or the tier cannot serve it) is left alone from then on; any other error propagates
// (THAW_MEMORY_SERVER_LOST: the scheduler discards the sandbox).

import { ThawError } from '../../core/errors.js';
import type { MemoryPolicy, OffloadRequest, PolicySandbox } from '../types.js';
import type { PolicyTiming } from './timing.js';

export interface FaasMemOptions {
  readonly stages: boolean;
  readonly semiWarm: boolean;
  /** Bring a semi-warm sandbox's working set back in bulk when it is picked, before its request (default false). */
  readonly prefetch?: boolean;
  readonly timing: PolicyTiming;
  /** Milliseconds now (a replay's scaled clock may be given). Default Date.now. */
  readonly now?: () => number;
}

interface SandboxState {
  offloadedOnce: boolean;
  lastOffloadAt: number;
  requestsAtLastOffload: number;
  /** Semi-warm steps taken in the current idle period. */
  steps: number;
  /** Why this sandbox cannot offload, once known. */
  unavailable: string | null;
}

/** A faasmem policy with its per-sandbox state; forget() drops a destroyed sandbox's. */
export interface FaasMemPolicy extends MemoryPolicy {
  readonly needsStages: boolean;
  forget(sandboxId: string): void;
}

export function faasmemPolicy(opts: FaasMemOptions): FaasMemPolicy {
  const t = opts.timing;
  const now = opts.now ?? Date.now;
  const state = new Map<string, SandboxState>();
  const of = (s: PolicySandbox): SandboxState => {
    let st = state.get(s.id);
    if (!st) {
      st = { offloadedOnce: false, lastOffloadAt: 0, requestsAtLastOffload: 0, steps: 0, unavailable: null };
      state.set(s.id, st);
    }
    return st;
  };
  const offload = async (s: PolicySandbox, st: SandboxState, scope: OffloadRequest['scope']): Promise<void> => {
    if (st.unavailable) return;
    try {
      await s.offload({ tier: t.tier, scope });
    } catch (err: unknown) {
      if (!(err instanceof ThawError && err.code === 'THAW_OFFLOAD_UNAVAILABLE')) throw err;
      st.unavailable = err.message;
    }
  };
  const cold: OffloadRequest['scope'] = { stages: opts.stages ? ['runtime', 'init'] : ['runtime', 'init', 'request'] };
  const again: OffloadRequest['scope'] = { stages: opts.stages ? ['init'] : ['runtime', 'init', 'request'] };
  return {
    id: `faasmem${opts.stages ? '' : '-no-stages'}${opts.semiWarm ? '' : '-no-semiwarm'}${opts.prefetch === true ? '-prefetch' : ''}`,
    // Without stages every page no request touched since the last offload goes: tracking starts at the first offload.
    needsStages: opts.stages,
    async afterRequest(s, requestsServed) {
      const st = of(s);
      st.steps = 0;
      if (!st.offloadedOnce) {
        st.offloadedOnce = true;
        st.lastOffloadAt = now();
        st.requestsAtLastOffload = requestsServed;
        await offload(s, st, cold);
      } else if (requestsServed - st.requestsAtLastOffload >= t.reoffloadEveryRequests && now() - st.lastOffloadAt >= t.reoffloadIntervalMs) {
        st.lastOffloadAt = now();
        st.requestsAtLastOffload = requestsServed;
        await offload(s, st, again);
      }
    },
    async onIdle(s, idleMs, reuseP99Ms) {
      if (!opts.semiWarm) return 'warm';
      const threshold = Math.max(reuseP99Ms, t.semiWarmMinIdleMs);
      if (idleMs < threshold) return 'warm';
      const st = of(s);
      const due = Math.floor((idleMs - threshold) / t.semiWarmStepMs) + 1;
      if (st.steps < due && !st.unavailable) {
        st.steps = due;
        const resident = (await s.memoryStages()).residentBytes;
        const above = resident - t.semiWarmFloorBytes;
        if (above > 0) {
          const target = Math.max(t.semiWarmFloorBytes, resident - Math.max(t.semiWarmMinStepBytes, above / 2));
          await offload(s, st, { shrinkToBytes: Math.round(target) });
        }
      }
      return 'semi-warm';
    },
    async beforeReuse(s, semiWarm) {
      if (!semiWarm || opts.prefetch !== true || state.get(s.id)?.unavailable) return;
      await s.prefetch();
    },
    forget(sandboxId) {
      state.delete(sandboxId);
    },
  };
}

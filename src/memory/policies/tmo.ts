// tmo (Meta's TMO, as FaaSMem's baseline): reclaim driven by memory pressure. Every tmoStepMs
// the sandbox host's memory cgroup limit goes down one step while the refaults since the last
// step stay under a threshold, and back up by what refaulted (at least one step) when they do
// not. It runs in the daemon (the daemon owns the cgroups; the PolicySandbox carries the host's
// cgroup).
// On this host: cgroup v1 (no memory.high, no memory.reclaim), and swap is off, so lowering the
// limit reclaims only page cache; anonymous memory (a guest's heap) cannot go anywhere. The limit
// therefore never goes below the cgroup's anonymous memory plus a headroom, else the next
// allocation would be an OOM kill rather than reclaim. With `tmo:compressed` the platform sets up
// a zram swap device for the run (memory/zram-swap.ts; timing.tmoSwap): reclaim then compresses
// anonymous memory into it, and the limit may go down to timing.tmoSwapFloorBytes, held up only
// by refaults. A sandbox without a cgroup is left alone.

import { PAGE_BYTES } from '../../core/snapshot-format.js';
import type { MemoryPolicy, PolicyCgroup, PolicySandbox } from '../types.js';
import type { PolicyTiming } from './timing.js';

interface TmoState {
  lastStepAt: number;
  lastRefaults: number;
  ceiling: number;
}

export interface TmoPolicy extends MemoryPolicy {
  /** One pressure check of `s` (called at its life events; also usable from a timer). */
  step(s: PolicySandbox): void;
  forget(sandboxId: string): void;
}

export function tmoPolicy(timing: PolicyTiming, now: () => number = Date.now): TmoPolicy {
  const state = new Map<string, TmoState>();
  const adjust = (cg: PolicyCgroup, st: TmoState): void => {
    const refaults = cg.refaults();
    const pressure = refaults - st.lastRefaults;
    st.lastRefaults = refaults;
    const limit = Math.min(cg.limitBytes(), cg.usageBytes());
    const floor = timing.tmoSwap ? timing.tmoSwapFloorBytes : cg.anonBytes() + timing.tmoAnonHeadroomBytes;
    // Under pressure the limit goes back up by what refaulted (at least one step): a working set
    // that came back from swap gets its room back at once, not 4 MiB per step.
    const next = pressure < timing.tmoRefaultThreshold
      ? Math.max(floor, limit - timing.tmoStepBytes)
      : Math.min(st.ceiling, cg.limitBytes() + Math.max(timing.tmoStepBytes, pressure * PAGE_BYTES));
    try {
      cg.setLimit(next);
    } catch {
      /* v1 refuses a limit below what it cannot reclaim (EBUSY): keep the old one */
    }
  };
  const policy: TmoPolicy = {
    id: 'tmo',
    step(s) {
      const cg = s.cgroup;
      if (!cg) return;
      let st = state.get(s.id);
      if (!st) {
        st = { lastStepAt: now(), lastRefaults: cg.refaults(), ceiling: cg.limitBytes() };
        state.set(s.id, st);
        return;
      }
      if (now() - st.lastStepAt < timing.tmoStepMs) return;
      st.lastStepAt = now();
      adjust(cg, st);
    },
    afterInit: async (s) => policy.step(s),
    afterRequest: async (s) => policy.step(s),
    onIdle: async (s) => {
      policy.step(s);
      return 'warm';
    },
    forget(sandboxId) {
      state.delete(sandboxId);
    },
  };
  return policy;
}

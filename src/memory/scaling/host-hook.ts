// The sandbox host's side of memory scaling: one session per live guest, run around each
// invocation (grant before the guest runs, release after), and the sandbox's memory as reported.

import type { FunctionParams } from '../../core/function-spec.js';
import type { GuestInstance } from '../../runtimes/runtime.js';
import type { SandboxMemory } from '../types.js';
import { measureSandboxMemory } from '../accounting.js';
import { getScaling } from './index.js';
import { DEFAULT_SCALING, type ScalingSession, type ScalingTimings } from './scaling.js';

const sessions = new WeakMap<GuestInstance, ScalingSession>();

/** The guest's scaling session, created on first use; `restored`: the memory may be file mapped (a snapshot restore). */
function sessionOf(guest: GuestInstance, params: FunctionParams, restored: boolean): ScalingSession {
  let s = sessions.get(guest);
  if (s === undefined) {
    const spec = params.scaling ?? DEFAULT_SCALING;
    s = getScaling(spec.mechanism).session({
      name: params.name,
      memory: guest.memory,
      declaredBytes: params.memoryMiB * 1024 * 1024,
      fileBacked: restored,
      freeRanges: () => guest.freeRanges?.() ?? null,
    }, spec);
    sessions.set(guest, s);
  }
  return s;
}

/** The guest's memory now: declared, granted by its mechanism, resident (mincore). */
export function guestMemory(guest: GuestInstance, params: FunctionParams, restored: boolean): SandboxMemory {
  return measureSandboxMemory(guest.memory, params.memoryMiB * 1024 * 1024, sessionOf(guest, params, restored).grantedBytes());
}

/**
 * Runs one invocation under the function's scaling mechanism: grant, the guest, release.
 * If the guest fails, nothing is released (the sandbox is discarded anyway).
 */
export async function invokeScaled<T>(guest: GuestInstance, params: FunctionParams, restored: boolean, run: () => Promise<T>): Promise<{ value: T; timings: ScalingTimings; memory: SandboxMemory }> {
  const session = sessionOf(guest, params, restored);
  const granted = await session.grant();
  const value = await run();
  const released = await session.release();
  const timings: ScalingTimings = { ...granted };
  if (released.releaseMs !== undefined) timings.releaseMs = released.releaseMs;
  return { value, timings, memory: guestMemory(guest, params, restored) };
}

// Runtime registry: deployers (daemon side) and adapters (sandbox-host side), by runtime id.
// Adapters load lazily so a host running C functions never loads Pyodide.

import type { RuntimeId } from '../core/function-spec.js';
import { ThawError } from '../core/errors.js';
import type { RuntimeAdapter, RuntimeDeployer } from './runtime.js';

/** The deploy side of a runtime, loaded on first use. */
export async function deployerFor(id: RuntimeId): Promise<RuntimeDeployer> {
  switch (id) {
    case 'wasi':
      return (await import('./wasi/deploy.js')).wasiDeployer;
    case 'python':
      return (await import('./python/deploy.js')).pythonDeployer;
    case 'firecracker':
      return (await import('../firecracker/deploy.js')).firecrackerDeployer;
  }
}

/** The guest side of a runtime, loaded on first use. */
export async function adapterFor(id: RuntimeId): Promise<RuntimeAdapter> {
  switch (id) {
    case 'wasi':
      return (await import('./wasi/adapter.js')).wasiAdapter as RuntimeAdapter;
    case 'python':
      return (await import('./python/adapter.js')).pythonAdapter as RuntimeAdapter;
    case 'firecracker':
      // A microVM is driven from the daemon (firecracker/host.ts), never inside a sandbox host.
      throw new ThawError('THAW_INTERNAL', { detail: 'firecracker functions run in microVMs, not in a sandbox host' });
  }
}

export type { RuntimeAdapter, RuntimeDeployer, GuestInstance, GuestContext, GuestState, MemoryImage, DeployedArtefact } from './runtime.js';

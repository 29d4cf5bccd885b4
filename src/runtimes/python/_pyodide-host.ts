// Loads Pyodide inside a sandbox host, offline, from the installed npm package: one compiled
// pyodide.asm.wasm per process, a memory-limit hook on heap growth, and "shells": guests whose
// Emscripten module is instantiated ahead of time and which wait for a snapshot to finish loading.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadPyodide, version as pyodideJsVersion } from 'pyodide';
import { ThawError } from '../../core/errors.js';
import { madvisePopulateWrite, nonZeroSpans, touchPages } from '../../native/index.js';
import { forgetDirtySpans, markDirtySpans } from '../../restore/guest-memory.js';
import { HOST_OBJECT } from './_runtime-py.js';
import { PlacementAllocator, type DynamicLinkerModule } from './side-modules.js';

/** Pyodide's snapshot config: the JS references Python held, by path (see MemoryImage layout in docs). */
export interface HiwireConfig {
  readonly hiwireKeys: unknown[];
  readonly immortalKeys: string[];
}

/** The parts of Pyodide's Emscripten module and private API that this runtime relies on. */
export interface PyodideModule {
  readonly HEAPU8: Uint8Array;
  readonly wasmMemory?: WebAssembly.Memory;
  readonly memory?: WebAssembly.Memory;
  growMemory(sizeBytes: number): number | undefined;
  readonly API: {
    restoreSnapshot(snapshot: Uint8Array): HiwireConfig;
    serializeHiwireState(serializer?: (obj: unknown) => unknown): HiwireConfig;
    readonly config: { readonly BUILD_ID: string };
    finalizeBootstrap(...args: unknown[]): unknown;
    readonly version: string;
  };
}

/** A PyProxy, as far as this runtime uses one. */
export interface PyProxyLike {
  (...args: unknown[]): unknown;
  destroy(): void;
  toJs(options?: { create_pyproxies?: boolean }): unknown;
}

/** The loaded Pyodide instance, as far as this runtime uses it. */
export interface PyodideLike {
  runPython(code: string): unknown;
  pyimport(name: string): { [attr: string]: unknown; destroy(): void };
  mountNodeFS(emscriptenPath: string, hostPath: string): void;
  readonly FS: { chdir(path: string): void };
  readonly _module: PyodideModule;
}

/** Host functions the guest's `thaw` module calls, bound to the current GuestContext. */
export interface HostBinding {
  get(key: string): Uint8Array | undefined;
  put(key: string, value: Uint8Array): void;
  log(stream: 'stdout' | 'stderr', text: string): void;
  /** Heap growth beyond this many bytes fails (Python sees MemoryError). */
  memoryLimitBytes: number;
}

/** Directory of the installed pyodide package (with pyodide.asm.wasm and python_stdlib.zip). */
export const PYODIDE_DIR: string = dirname(createRequire(import.meta.url).resolve('pyodide/package.json'));

/** Version of the pyodide npm package. */
export const PYODIDE_VERSION: string = pyodideJsVersion;

type CreateModule = (settings: Record<string, unknown>) => Promise<PyodideModule>;

let compiled: Promise<WebAssembly.Module> | undefined;
let createOriginal: Promise<CreateModule> | undefined;
let lockfileText: string | undefined;

/**
 * Compiles pyodide.asm.wasm once per process and loads the Emscripten glue; later loads reuse both,
 * which takes compilation off the restore path.
 */
export function warmPyodideProcess(): Promise<unknown> {
  compiled ??= WebAssembly.compile(readFileSync(join(PYODIDE_DIR, 'pyodide.asm.wasm')));
  createOriginal ??= import(pathToFileURL(join(PYODIDE_DIR, 'pyodide.asm.mjs')).href).then(
    (m: { default: CreateModule }) => m.default,
  );
  lockfileText ??= readFileSync(join(PYODIDE_DIR, 'pyodide-lock.json'), 'utf8');
  return Promise.all([compiled, createOriginal]);
}

/**
 * The guest's `js` globals: only the host object, so Python code cannot reach the host process's
 * globalThis. Every function reads the binding at call time, so a restored guest serves its new context.
 */
function makeJsGlobals(binding: HostBinding): object {
  return {
    [HOST_OBJECT]: {
      get: (key: string): Uint8Array | undefined => binding.get(key),
      put: (key: string, value: Uint8Array): void => binding.put(key, new Uint8Array(value)),
    },
  };
}

/** What a restore supplies to a shell when the snapshot is known. */
export interface ShellRestore {
  /** Pyodide's snapshot config captured with the memory. */
  readonly hiwire: HiwireConfig;
  /** Pyodide build the snapshot came from; must equal the loaded build. */
  readonly buildId: string;
  /** Size of the heap when captured, in bytes. */
  readonly heapBytes: number;
  /** Fills the (already large enough) memory with the snapshot's bytes. */
  fill(memory: WebAssembly.Memory): void;
  /** Runs on the fresh module after the memory is grown, before fill() (re-loads side modules). */
  beforeFill?(mod: PyodideModule): void;
}

/** Times (performance.now()) of a restore's steps inside a shell, for restore-split.bench.ts. */
export interface RestoreProbe {
  fillStart?: number;
  fillEnd?: number;
  finalizeEnd?: number;
  loaded?: number;
}

let probe: RestoreProbe | null = null;

/** Records the steps of the following restores into `p` (null: stop). Benchmarks only. */
export function setRestoreProbe(p: RestoreProbe | null): void {
  probe = p;
}

/** A Pyodide module instantiated ahead of time, waiting in loadPyodide for its snapshot. */
export interface Shell {
  readonly binding: HostBinding;
  /** Settles when the shell is instantiated and its memory pre-touched (for benchmarks and tests). */
  readonly ready: Promise<void>;
  /** Completes the load from the snapshot; resolves to the restored Pyodide. */
  finish(restore: ShellRestore): Promise<PyodideLike>;
  /** Abandons the shell (its promise settles with an error nobody awaits). */
  discard(): void;
}

/** A binding that drops output and refuses objects until a context is attached. */
export function detachedBinding(): HostBinding {
  const noStore = (): never => {
    throw new ThawError('THAW_INTERNAL', { detail: 'object store used before the guest has a context' });
  };
  return { get: noStore, put: noStore, log: () => undefined, memoryLimitBytes: Number.MAX_SAFE_INTEGER };
}

/** Memory of a loaded module (Emscripten exposes it under one of two names). */
export function moduleMemory(mod: PyodideModule): WebAssembly.Memory {
  const memory = mod.wasmMemory ?? mod.memory;
  if (!memory) throw new ThawError('THAW_INTERNAL', { detail: 'Pyodide module exposes no WebAssembly.Memory' });
  return memory;
}

const allocators = new WeakMap<PyodideModule, PlacementAllocator>();

/** The allocator that places a module's side modules at given addresses (side-modules.ts). */
export function placementAllocator(mod: PyodideModule): PlacementAllocator {
  const a = allocators.get(mod);
  if (!a) throw new ThawError('THAW_INTERNAL', { detail: 'Pyodide module was not created by this runtime' });
  return a;
}

/**
 * Wraps Pyodide's module factory: instantiates the precompiled module and caps heap growth at the
 * binding's limit (emscripten_resize_heap returning 0 makes malloc fail, which Python reports as
 * MemoryError). `onCreated` runs after instantiation, before Pyodide bootstraps or restores.
 */
function moduleFactory(binding: HostBinding, onCreated: (mod: PyodideModule) => Promise<void>): CreateModule {
  return async (settings) => {
    const [wasmModule, create] = await Promise.all([compiled, createOriginal]);
    if (!wasmModule || !create) throw new ThawError('THAW_INTERNAL', { detail: 'warmPyodideProcess() was not called' });
    const allocator = new PlacementAllocator();
    settings.instantiateWasm = (
      imports: Record<string, Record<string, unknown>>,
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ): object => {
      const env = imports.env;
      if (!env) throw new ThawError('THAW_INTERNAL', { detail: 'Pyodide imports have no env module' });
      // Pyodide's own fallback for engines without Wasm GC (Node 20): a unique JS marker value.
      const marker = Symbol('thaw-jsv-error');
      env.Jsv_GetError_import = (): symbol => marker;
      env.JsvError_Check = (value: unknown): boolean => value === marker;
      const resize = env.emscripten_resize_heap as (requestedBytes: number) => number;
      env.emscripten_resize_heap = (requestedBytes: number): number =>
        requestedBytes >>> 0 > binding.memoryLimitBytes ? 0 : resize(requestedBytes);
      void WebAssembly.instantiate(wasmModule, imports as WebAssembly.Imports).then((instance) => receive(allocator.wrap(instance), wasmModule));
      return {};
    };
    const mod = await create(settings);
    allocator.detach(mod as unknown as DynamicLinkerModule);
    allocators.set(mod, allocator);
    await onCreated(mod);
    return mod;
  };
}

function baseConfig(binding: HostBinding): Record<string, unknown> {
  return {
    indexURL: PYODIDE_DIR,
    lockFileContents: lockfileText,
    jsglobals: makeJsGlobals(binding),
    stdout: (text: string) => binding.log('stdout', text),
    stderr: (text: string) => binding.log('stderr', text),
    // Thaw captures every guest, cold or restored, so Pyodide must record JS references by path.
    _makeSnapshot: true,
    env: { PYTHONHASHSEED: '0' },
  };
}

/** Cold-loads Pyodide (no snapshot). Throws THAW_INTERNAL if Pyodide fails to start. */
export async function loadFresh(binding: HostBinding): Promise<PyodideLike> {
  await warmPyodideProcess();
  const config = { ...baseConfig(binding), createPyodideModule: moduleFactory(binding, async () => undefined) };
  return (await loadPyodide(config as unknown as Parameters<typeof loadPyodide>[0])) as unknown as PyodideLike;
}

/** Pre-touched per step; the host's JS thread serves other requests between steps. */
const PRETOUCH_STEP_BYTES = 8 * 1024 * 1024;

/**
 * Grows `memory` to at least `sizeBytes` and faults every page in, writable, so later copies into
 * it run at memcpy speed instead of paying a fresh page fault per page (DESIGN.md section 1).
 * Pages keep their contents; grown pages stay zero. madvise(MADV_POPULATE_WRITE) faults a range
 * in one call (3-4x faster here than a JS write per page, which it falls back to before Linux
 * 5.14), in steps that yield to the event loop: a vertical host makes shells between requests.
 */
async function pretouch(mod: PyodideModule, sizeBytes: number): Promise<void> {
  const memory = moduleMemory(mod);
  if (memory.buffer.byteLength < sizeBytes) mod.growMemory(sizeBytes);
  const length = memory.buffer.byteLength;
  for (let offset = 0; offset < length; offset += PRETOUCH_STEP_BYTES) {
    const step = Math.min(PRETOUCH_STEP_BYTES, length - offset);
    try {
      madvisePopulateWrite(memory.buffer, offset, step);
    } catch {
      touchPages(memory.buffer, offset, step);
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Starts a shell: runs loadPyodide up to the point where it would copy a snapshot into memory, and
 * parks there; instantiation and Emscripten start-up (most of a restore's cost) happen now.
 * `pretouchBytes`: memory the shell grows to and touches while it waits (0 = only its initial
 * memory); a snapshot larger than that grows the rest at restore, with fresh page faults.
 */
export function startShell(pretouchBytes = 0): Shell {
  const binding = detachedBinding();
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  let resolveRestore: (r: ShellRestore) => void = () => undefined;
  let rejectRestore: (e: unknown) => void = () => undefined;
  const restoreGiven = new Promise<ShellRestore>((resolve, reject) => {
    resolveRestore = resolve;
    rejectRestore = reject;
  });
  const onCreated = async (mod: PyodideModule): Promise<void> => {
    await pretouch(mod, pretouchBytes);
    // Nothing writes into a parked shell's memory: its non-zero pages are found now, off the
    // restore path, so a fill zeroes just those that the snapshot has as holes, reading no other
    // (guest-memory.ts markDirtySpans).
    const memory = moduleMemory(mod);
    const dirty = nonZeroSpans(memory.buffer);
    if (dirty) markDirtySpans(memory, dirty);
    markReady();
    const given = await restoreGiven;
    const api = mod.API;
    if (given.buildId !== api.config.BUILD_ID) {
      throw new ThawError('THAW_SNAPSHOT_VERSION', {
        id: 'python',
        detail: `snapshot is from Pyodide build ${given.buildId}, this host runs ${api.config.BUILD_ID}`,
      });
    }
    // Replaces Pyodide's copy of "header + HEAP" with the platform's image: the memory is grown to
    // the captured size first, so fill() never grows it behind Emscripten's cached heap views.
    api.restoreSnapshot = (): HiwireConfig => {
      const p = probe;
      if (p) p.fillStart = performance.now();
      const memory = moduleMemory(mod);
      if (memory.buffer.byteLength < given.heapBytes) mod.growMemory(given.heapBytes);
      if (given.beforeFill) {
        forgetDirtySpans(memory); // it writes into the memory
        given.beforeFill(mod);
      }
      given.fill(memory);
      if (p) {
        p.fillEnd = performance.now();
        const finalize = api.finalizeBootstrap;
        api.finalizeBootstrap = (...args: unknown[]): unknown => {
          const out = finalize(...args);
          p.finalizeEnd = performance.now();
          return out;
        };
      }
      return given.hiwire;
    };
  };
  // Pyodide only takes the snapshot path when _loadSnapshot is given; the bytes it gets are a
  // placeholder because restoreSnapshot above ignores them.
  const config = {
    ...baseConfig(binding),
    _loadSnapshot: new Uint8Array(16),
    createPyodideModule: moduleFactory(binding, onCreated),
  };
  const loaded = warmPyodideProcess().then(async () => {
    const py = (await loadPyodide(config as unknown as Parameters<typeof loadPyodide>[0])) as unknown as PyodideLike;
    if (probe) probe.loaded = performance.now();
    return py;
  });
  loaded.catch(() => markReady());
  return {
    binding,
    ready,
    finish: (restore) => {
      resolveRestore(restore);
      return loaded;
    },
    discard: () => rejectRestore(new ThawError('THAW_INTERNAL', { detail: 'shell discarded' })),
  };
}

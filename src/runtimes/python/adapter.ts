// Guest side of the python runtime, running in a sandbox host process: boots Pyodide offline, runs
// the handler file's top level as module `handler`, invokes the handler, and captures/restores the
// whole interpreter (init included) from a memory image plus Pyodide's small JS-reference table.

import { dlmallocFreeRanges, type DlmallocModule } from '../../memory/scaling/free-ranges.js';
import type { FreeRangeReport } from '../../memory/scaling/scaling.js';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ThawError, invariant, toThawError } from '../../core/errors.js';
import type { FunctionParams } from '../../core/function-spec.js';
import type { GuestContext, GuestInstance, GuestState, RuntimeAdapter } from '../runtime.js';
import {
  PYODIDE_VERSION,
  detachedBinding,
  loadFresh,
  moduleMemory,
  placementAllocator,
  startShell,
  warmPyodideProcess,
  type HiwireConfig,
  type HostBinding,
  type PyodideLike,
  type PyodideModule,
  type PyProxyLike,
  type Shell,
} from './_pyodide-host.js';
import { RUNTIME_MODULE, RUNTIME_PY, STATUS } from './_runtime-py.js';
import { GUEST_ROOT, PYTHON_BUNDLE_DIR } from './bundle.js';
import { captureSideModules, placeSideModules, precompileSideModules, type DynamicLinkerModule, type SideModuleRecord } from './side-modules.js';

/** Identifies the layout of PythonRuntimeState; bumped on any incompatible change. */
export const PYTHON_STATE_FORMAT = 'thaw-python-1';

/** What prepare() produces for one deployed function. */
export interface PythonPrepared {
  readonly fn: FunctionParams;
  /** The handler file's text. */
  readonly source: string;
  /**
   * Shells (Pyodide instantiated, waiting for a snapshot) started ahead of restores; restore()
   * takes one and starts none, so a sandbox host that restores once pays nothing extra.
   */
  readonly shells: Shell[];
  /** The function's installed bundle directory (mounted at GUEST_ROOT), or null without one. */
  readonly bundleDir: string | null;
}

/**
 * The python runtime's part of a snapshot (GuestState.runtime). The memory image is Pyodide's
 * whole HEAP; Pyodide's own snapshot file is this header plus that HEAP:
 *
 *     Pyodide snapshot   | magic | header len | json len | 0 | BUILD_ID (32 B) | hiwire JSON | pad | HEAP ... |
 *     Thaw snapshot      | GuestState.runtime = { buildId, hiwire, ... }      | memory image = HEAP ... |
 */
export interface PythonRuntimeState {
  readonly format: typeof PYTHON_STATE_FORMAT;
  /** Pyodide npm package version that captured the state. */
  readonly pyodideVersion: string;
  /** Pyodide's BUILD_ID; a restore requires the same build. */
  readonly buildId: string;
  /** The JS references Python held, recorded by path from the guest's `js` globals. */
  readonly hiwire: HiwireConfig;
  /** Handler name the snapshot's init bound. */
  readonly handler: string;
  /** Size of the HEAP when captured, in bytes (a multiple of 64 KiB). */
  readonly heapBytes: number;
  /** Whether the function's init had run (false for a snapshot of a booted, unused guest). */
  readonly initDone: boolean;
  /**
   * Side modules (compiled extensions) loaded when captured, in the order a restore loads them
   * again at the same bases (side-modules.ts). Absent in states captured before they were supported.
   */
  readonly sideModules?: readonly SideModuleRecord[];
}

function bindContext(binding: HostBinding, ctx: GuestContext): void {
  binding.get = (key) => ctx.objects.get(key);
  binding.put = (key, value) => ctx.objects.put(key, value);
  binding.log = (stream, text) => ctx.log(stream, text);
  binding.memoryLimitBytes = ctx.memoryLimitBytes;
}

/** Calls `_thaw_runtime.<name>(...args)` and returns its (status, payload) result as JS values. */
function callRuntime(py: PyodideLike, name: string, args: unknown[]): [number, unknown] {
  const mod = py.pyimport(RUNTIME_MODULE);
  const fn = mod[name] as PyProxyLike;
  let result: PyProxyLike | undefined;
  try {
    result = fn(...args) as PyProxyLike;
    const converted = result.toJs({ create_pyproxies: false }) as [number, unknown];
    return converted;
  } finally {
    result?.destroy();
    fn.destroy();
    mod.destroy();
  }
}

/** Turns a (status, payload) failure from the Python side into a catalogue error. */
function guestFailure(fn: FunctionParams, status: number, payload: unknown): ThawError {
  if (status === STATUS.SYNTAX) return new ThawError('THAW_SOURCE_INVALID', { detail: `handler.py ${String(payload)}` });
  if (status === STATUS.HANDLER_MISSING) {
    return new ThawError('THAW_HANDLER_MISSING', { handler: fn.handler, what: 'Python module' });
  }
  const info = JSON.parse(String(payload)) as { type: string; message: string; where: string };
  const detail = `${info.type}: ${info.message}${info.where ? ` (${info.where})` : ''}`;
  if (status === STATUS.OOM) return new ThawError('THAW_GUEST_OOM', { name: fn.name, limitMiB: fn.memoryMiB, detail });
  return new ThawError('THAW_GUEST_ERROR', { name: fn.name, detail, type: info.type, pythonMessage: info.message, where: info.where });
}

/** One live Pyodide guest. */
class PythonGuest implements GuestInstance {
  private initDone: boolean;

  constructor(
    private readonly prepared: PythonPrepared,
    private readonly py: PyodideLike,
    initDone: boolean,
  ) {
    this.initDone = initDone;
  }

  get memory(): WebAssembly.Memory {
    return moduleMemory(this.py._module);
  }

  async init(): Promise<void> {
    invariant(!this.initDone, 'init() called twice on a python guest');
    const filename = this.prepared.bundleDir === null ? 'handler.py' : `${GUEST_ROOT}/app/handler.py`;
    const [status, payload] = this.run(() => callRuntime(this.py, 'init', [this.prepared.source, this.prepared.fn.handler, filename]));
    if (status !== STATUS.OK) throw guestFailure(this.prepared.fn, status, payload);
    this.initDone = true;
  }

  async invoke(input: Uint8Array): Promise<Uint8Array> {
    invariant(this.initDone, 'invoke() before init() on a python guest');
    const { fn } = this.prepared;
    const [status, payload] = this.run(() => callRuntime(this.py, 'invoke', [input, fn.name, fn.memoryMiB, randomUUID()]));
    if (status !== STATUS.OK) throw guestFailure(fn, status, payload);
    invariant(payload instanceof Uint8Array, 'python runtime returned a non-bytes response');
    return payload;
  }

  freeRanges(): FreeRangeReport | null {
    return dlmallocFreeRanges(this.py._module as DlmallocModule, this.memory);
  }

  captureState(): GuestState {
    const api = this.py._module.API;
    const runtime: PythonRuntimeState = {
      format: PYTHON_STATE_FORMAT,
      pyodideVersion: PYODIDE_VERSION,
      buildId: api.config.BUILD_ID,
      hiwire: this.run(() => api.serializeHiwireState()),
      handler: this.prepared.fn.handler,
      heapBytes: this.memory.buffer.byteLength,
      initDone: this.initDone,
      sideModules: captureSideModules(this.py._module as unknown as DynamicLinkerModule, GUEST_ROOT, (path) => readSideModule(this.prepared, path)),
    };
    return { runtime };
  }

  /** Runs a call into Pyodide, translating its failures (a fatal error, a trap) into catalogue errors. */
  private run<T>(call: () => T): T {
    try {
      return call();
    } catch (err: unknown) {
      if (err instanceof ThawError) throw err;
      const detail = err instanceof Error ? err.message : String(err);
      throw new ThawError('THAW_GUEST_TRAP', { name: this.prepared.fn.name, detail }, { cause: err });
    }
  }
}

/**
 * A side module's bytes, read from the function's installed bundle (the directory the jailed host
 * already reads). Throws THAW_SNAPSHOT_VERSION for a path outside the bundle or a missing file.
 */
function readSideModule(prepared: PythonPrepared, guestPath: string): Uint8Array {
  const rel = guestPath.slice(GUEST_ROOT.length + 1);
  if (prepared.bundleDir === null || !guestPath.startsWith(`${GUEST_ROOT}/`) || rel.split('/').some((s) => s === '..' || s === '')) {
    throw new ThawError('THAW_SNAPSHOT_VERSION', { id: prepared.fn.name, detail: `side module '${guestPath}' is not a file of the function's bundle` });
  }
  try {
    return readFileSync(join(prepared.bundleDir, rel));
  } catch (err: unknown) {
    throw new ThawError('THAW_SNAPSHOT_VERSION', { id: prepared.fn.name, detail: `side module '${guestPath}' cannot be read (${(err as Error).message})` }, { cause: err });
  }
}

/** Checks a GuestState written by this runtime. Throws THAW_SNAPSHOT_VERSION on any mismatch. */
function parseState(fn: FunctionParams, state: GuestState): PythonRuntimeState {
  const bad = (detail: string): never => {
    throw new ThawError('THAW_SNAPSHOT_VERSION', { id: fn.name, detail });
  };
  const s = state.runtime as Partial<PythonRuntimeState> | null;
  if (typeof s !== 'object' || s === null || s.format !== PYTHON_STATE_FORMAT) bad(`not a ${PYTHON_STATE_FORMAT} state`);
  const st = s as PythonRuntimeState;
  if (st.pyodideVersion !== PYODIDE_VERSION) bad(`captured with Pyodide ${st.pyodideVersion}, this host has ${PYODIDE_VERSION}`);
  if (st.handler !== fn.handler) bad(`captured for handler '${st.handler}', the function now names '${fn.handler}'`);
  if (typeof st.heapBytes !== 'number' || st.heapBytes % 65536 !== 0) bad('heapBytes is not a multiple of 64 KiB');
  if (typeof st.hiwire !== 'object' || !Array.isArray(st.hiwire.hiwireKeys)) bad('hiwire table missing');
  if (st.sideModules !== undefined && !Array.isArray(st.sideModules)) bad('sideModules is not a list');
  return st;
}

/**
 * Memory a prepared shell pre-touches: the function's limit, capped at 64 MiB so an idle
 * pre-spawned host does not pin its whole limit (Pyodide's heap starts at 30 MiB).
 */
export function shellPretouchBytes(fn: FunctionParams): number {
  return Math.min(fn.memoryMiB, 64) * 1024 * 1024;
}

/**
 * Mounts the function's installed bundle at GUEST_ROOT (Emscripten's NODEFS: files are read from
 * the host on demand; the jail keeps the directory read-only) and makes its app directory the cwd.
 */
function mountBundle(py: PyodideLike, dir: string): void {
  py.mountNodeFS(GUEST_ROOT, dir);
  py.FS.chdir(`${GUEST_ROOT}/app`);
}

/** The python runtime's guest side. */
export const pythonAdapter: RuntimeAdapter<PythonPrepared> = {
  id: 'python',

  /**
   * Reads the handler source, compiles pyodide.asm.wasm (once per process) and starts one shell,
   * so the first restore in this host skips instantiation and Emscripten start-up.
   * Throws THAW_FUNCTION_NOT_FOUND when the source file is missing.
   */
  async prepare(fn, artefactPath) {
    let source: string;
    try {
      source = await readFile(artefactPath, 'utf8');
    } catch (err: unknown) {
      throw new ThawError('THAW_FUNCTION_NOT_FOUND', { name: fn.name }, { cause: err });
    }
    await warmPyodideProcess();
    const shell = startShell(shellPretouchBytes(fn));
    // Wait until the shell is parked: the host is "ready" only then. Replying earlier would let a
    // restore request queue behind Pyodide's instantiation on this process's one JS thread.
    await shell.ready;
    const bundleDir = join(dirname(artefactPath), PYTHON_BUNDLE_DIR);
    // Only a function deployed with a bundle mounts one (a redeploy without it may leave the old copy).
    const hasBundle = fn.python !== undefined && existsSync(bundleDir);
    // Compiled packages' side modules are compiled now, off the restore path.
    if (hasBundle && existsSync(join(bundleDir, 'site'))) await precompileSideModules(join(bundleDir, 'site'));
    return { fn, source, shells: [shell], bundleDir: hasBundle ? bundleDir : null };
  },

  /** Cold-boots Pyodide and installs the runtime module; the handler's init runs in init(). */
  async boot(prepared, ctx) {
    const binding = detachedBinding();
    bindContext(binding, ctx);
    let py: PyodideLike;
    try {
      py = await loadFresh(binding);
      py.runPython(`import sys, types\n_m = types.ModuleType(${JSON.stringify(RUNTIME_MODULE)})\nexec(${JSON.stringify(RUNTIME_PY)}, _m.__dict__)\nsys.modules[${JSON.stringify(RUNTIME_MODULE)}] = _m\ndel _m, sys, types`);
      if (prepared.bundleDir !== null) {
        mountBundle(py, prepared.bundleDir);
        callRuntime(py, 'use_bundle', [`${GUEST_ROOT}/app`, `${GUEST_ROOT}/site`]);
      }
    } catch (err: unknown) {
      throw toThawError(err);
    }
    return new PythonGuest(prepared, py, false);
  },

  /**
   * Rebuilds a guest from a snapshot: a shell (prepared ahead or started now) gets the image and
   * Pyodide's JS-reference table; the handler's init is not run again.
   * Throws THAW_SNAPSHOT_VERSION when the state is from another runtime format, Pyodide build or handler.
   */
  async restore(prepared, state, image, ctx) {
    const st = parseState(prepared.fn, state);
    if (image.byteLength !== st.heapBytes) {
      throw new ThawError('THAW_SNAPSHOT_CORRUPT', {
        id: prepared.fn.name,
        detail: `memory image is ${image.byteLength} bytes, the state says ${st.heapBytes}`,
      });
    }
    const shell = prepared.shells.shift() ?? startShell();
    bindContext(shell.binding, ctx);
    let py: PyodideLike;
    try {
      const sideModules = st.sideModules ?? [];
      py = await shell.finish({
        hiwire: st.hiwire,
        buildId: st.buildId,
        heapBytes: st.heapBytes,
        fill: (m) => image.fill(m),
        // Compiled extensions go back where the snapshot's heap expects them, before it is written.
        ...(sideModules.length > 0 && {
          beforeFill: (mod: PyodideModule) =>
            placeSideModules(mod as unknown as DynamicLinkerModule, placementAllocator(mod), sideModules, st.heapBytes, (path) => readSideModule(prepared, path)),
        }),
      });
      // The file system is JS state, not in the image: the bundle is mounted again.
      if (prepared.bundleDir !== null) mountBundle(py, prepared.bundleDir);
    } catch (err: unknown) {
      throw toThawError(err);
    }
    return new PythonGuest(prepared, py, st.initDone);
  },

  /**
   * A vertical host's next instance gets its own Pyodide (its own heap, runtime and module
   * table; one compiled pyodide.asm.wasm per process is shared): one shell is started ahead.
   */
  async readyNext(prepared) {
    if (prepared.shells.length > 0) return;
    const shell = startShell(shellPretouchBytes(prepared.fn));
    prepared.shells.push(shell);
    await shell.ready;
  },
};

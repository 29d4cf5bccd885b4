// Guest side of the wasi runtime, running in a sandbox host process: compiles a deployed module,
// boots it under node:wasi with the Thaw host functions (docs/abi.md), invokes its handler,
// captures its mutable globals and restores a guest from a snapshot without re-running init.

import { wasiFreeRanges } from '../../memory/scaling/free-ranges.js';
import type { FreeRangeReport } from '../../memory/scaling/scaling.js';
import { readFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { WASI } from 'node:wasi';
import { ThawError, invariant, toThawError } from '../../core/errors.js';
import type { FunctionParams } from '../../core/function-spec.js';
import type { GuestContext, GuestInstance, GuestState, MemoryImage, RuntimeAdapter } from '../runtime.js';
import { COMMAND_EXPORT, INIT_EXPORT, INITIALIZE_EXPORT, THAW_MODULE, WASI_MODULE } from './abi.js';
import {
  GLOBAL_EXPORT_PREFIX, GROW_FAILED_EXPORT, WASM_PAGE_BYTES, capMemoryPages, instrumentMemoryGrow, parseWasm, type ValType,
} from './wasm-binary.js';

/** What prepare() produces for one deployed function; owned by the caller, nothing is global. */
export interface WasiPrepared {
  readonly fn: FunctionParams;
  /** The deployed artefact (already rewritten to export its mutable globals and memory). */
  readonly bytes: Uint8Array;
  /** Value type of every `thaw:global:<n>` export, by export name. */
  readonly globalTypes: ReadonlyMap<string, ValType>;
  /** Name of the memory export. */
  readonly memoryExport: string;
  /** Compiled modules by memory limit in pages (the module's memory maximum is capped to it). */
  readonly compiled: Map<number, Promise<CompiledModule>>;
  /** True for a WASI command (it exports `_start`): command.ts runs it, one fresh instance per invocation. */
  readonly command: boolean;
  /**
   * Shells: guests instantiated ahead (memory allocated, imports bound, data segments applied)
   * and never run, waiting for a restore, which then only fills memory and sets globals. Each
   * is used by one restore and bound to its sandbox's context then.
   */
  readonly shells: WasiGuest[];
}

/** The artefact as the sandbox runs it: memory capped to one limit, memory.grow instrumented. */
export interface CompiledModule {
  readonly module: WebAssembly.Module;
  /** True when no memory.grow can fail unseen: each one sets `thaw:grow_failed`, or there is none. */
  readonly growObserved: boolean;
  /** True when the module exports the `thaw:grow_failed` global (it has memory.grow sites). */
  readonly growFlag: boolean;
}

/** The wasi runtime's state inside a snapshot: every mutable global as a string, and the memory size. */
export interface WasiRuntimeState {
  /** Export name (`thaw:global:<n>`) to value; i64 as a decimal string, floats as JS number text. */
  readonly globals: Readonly<Record<string, string>>;
  /** Size of the linear memory when captured, in bytes (a multiple of 64 KiB). */
  readonly memoryBytes: number;
}

/**
 * When memory.grow could not be instrumented (an instruction the decoder does not know), a trap
 * that leaves less than this much memory below the limit counts as running out of memory: a
 * guest's allocator that sees memory.grow fail usually aborts, and the engine does not say why.
 */
const OOM_HEADROOM_MAX_BYTES = 4 * 1024 * 1024;
const EFAULT = 21;
const STDIN_FD = 0;
const STDOUT_FD = 1;
const STDERR_FD = 2;

/**
 * The wasi adapter.
 * - prepare(fn, path): reads the artefact and compiles it with its memory capped to fn.memoryMiB.
 * - boot(prepared, ctx): instantiates and runs `_initialize`; init() then runs `thaw_init`.
 * - restore(prepared, state, image, ctx): instantiates, fills memory from `image`, sets the
 *   globals from `state`, and runs neither `_initialize` nor `thaw_init`.
 * Guest failures surface as THAW_GUEST_TRAP, THAW_GUEST_ERROR and THAW_GUEST_OOM; a malformed
 * state as THAW_SNAPSHOT_CORRUPT; an artefact that does not compile as THAW_MODULE_INVALID.
 */
export const wasiAdapter: RuntimeAdapter<WasiPrepared> = {
  id: 'wasi',

  async prepare(fn: FunctionParams, artefactPath: string): Promise<WasiPrepared> {
    const bytes = new Uint8Array(await readFile(artefactPath));
    const info = parseWasm(bytes);
    const globalTypes = new Map<string, ValType>();
    for (const e of info.exports) {
      const g = e.kind === 'global' && e.name.startsWith(GLOBAL_EXPORT_PREFIX) ? info.globals[e.index] : undefined;
      if (g !== undefined) globalTypes.set(e.name, g.valType);
    }
    const memoryExport = info.exports.find((e) => e.kind === 'memory')?.name;
    if (memoryExport === undefined) throw new ThawError('THAW_MODULE_NOT_WASI', { detail: `${artefactPath} exports no memory (was it deployed?)` });
    const command = info.exports.some((e) => e.name === COMMAND_EXPORT && e.kind === 'function');
    const prepared: WasiPrepared = { fn, bytes, globalTypes, memoryExport, compiled: new Map(), command, shells: [] };
    await compiledFor(prepared, fn.memoryMiB * 1024 * 1024);
    return prepared;
  },

  async boot(prepared: WasiPrepared, ctx: GuestContext): Promise<GuestInstance> {
    if (prepared.command) return (await import('./command.js')).CommandGuest.boot(prepared, ctx);
    const guest = await WasiGuest.instantiate(prepared, ctx);
    guest.runExport(INITIALIZE_EXPORT);
    return guest;
  },

  async restore(prepared: WasiPrepared, state: GuestState, image: MemoryImage, ctx: GuestContext): Promise<GuestInstance> {
    const saved = parseState(prepared, state, image);
    if (prepared.command) return (await import('./command.js')).CommandGuest.restore(prepared, saved, image, ctx);
    const shell = prepared.shells.shift();
    const guest = shell ? shell.bind(ctx) : await WasiGuest.instantiate(prepared, ctx);
    guest.load(saved, image);
    guest.markInitialised();
    return guest;
  },

  /** Instantiates one shell for the next restore (see WasiPrepared.shells), unless one waits. */
  async readyNext(prepared: WasiPrepared): Promise<void> {
    // A command restores into a fresh instance of its own per invocation (command.ts): no shells.
    if (prepared.command || prepared.shells.length > 0) return;
    prepared.shells.push(await WasiGuest.instantiate(prepared, shellContext(prepared.fn)));
  },
};

/**
 * The context a shell is instantiated with, before it belongs to a sandbox: the function's
 * memory limit, and no objects or logs (a start function that logs is not heard; nothing else
 * of the guest runs before restore binds the sandbox's own context).
 */
function shellContext(fn: FunctionParams): GuestContext {
  const none = (): never => {
    throw new ThawError('THAW_INTERNAL', { detail: 'a shell guest used objects before it was bound to a sandbox' });
  };
  return {
    objects: { kind: 'embedded', get: none, put: none, close: () => {} },
    memoryLimitBytes: fn.memoryMiB * 1024 * 1024,
    log: () => {},
  };
}

/**
 * Compiles the artefact once per memory limit, with every memory's maximum capped to the limit
 * (so the engine refuses growth past it) and memory.grow instrumented (so a refusal is seen).
 */
export function compiledFor(prepared: WasiPrepared, limitBytes: number): Promise<CompiledModule> {
  const limitPages = Math.floor(limitBytes / WASM_PAGE_BYTES);
  let compiled = prepared.compiled.get(limitPages);
  if (compiled === undefined) {
    const capped = capMemoryPages(prepared.bytes, limitPages);
    if (capped.minimumTooLarge) {
      throw oom(prepared.fn, limitBytes, `the module needs more than ${limitPages} pages of memory before it runs`);
    }
    const instrumented = instrumentMemoryGrow(capped.bytes);
    compiled = compileOptimized(instrumented?.bytes ?? capped.bytes).then(
      // A module without memory.grow gets no flag global (instrumentMemoryGrow leaves it as it
      // is): no grow of its can fail unseen, but there is no global to read either.
      (module) => ({
        module,
        growObserved: instrumented !== undefined,
        growFlag: WebAssembly.Module.exports(module).some((e) => e.name === GROW_FAILED_EXPORT && e.kind === 'global'),
      }),
      (err: unknown) => {
        throw new ThawError('THAW_MODULE_INVALID', { detail: err instanceof Error ? err.message : String(err) }, { cause: err });
      },
    );
    prepared.compiled.set(limitPages, compiled);
  }
  return compiled;
}

/**
 * Compiles with V8's optimizing tier (TurboFan) up front instead of its baseline (Liftoff).
 * Baseline code tiers up only as it runs, so a warm sandbox runs optimized code while every
 * restored one starts over on baseline code: matmul's handler took 1026 ms restored against 318
 * warm, 316 restored with this (`thaw bench`, two inputs, quiet host). Compiling costs more
 * (Pyodide's 9.6 MB module: 171 ms -> 2.9 s, hence Python keeps the default), but happens once per
 * host at prepare time, before any request. The flag is process-wide, so it is set for this
 * compilation only.
 */
async function compileOptimized(bytes: Uint8Array): Promise<WebAssembly.Module> {
  setFlagsFromString('--no-liftoff');
  try {
    return await WebAssembly.compile(bytes);
  } finally {
    setFlagsFromString('--liftoff');
  }
}

export function oom(fn: FunctionParams, limitBytes: number, detail: string, cause?: unknown): ThawError {
  return new ThawError('THAW_GUEST_OOM', { name: fn.name, limitMiB: limitBytes / (1024 * 1024), detail }, { cause });
}

export function corrupt(fn: FunctionParams, detail: string): ThawError {
  return new ThawError('THAW_SNAPSHOT_CORRUPT', { id: `${fn.name} (wasi state)`, detail });
}

/** Checks a snapshot's runtime state against the module before anything is instantiated. */
function parseState(prepared: WasiPrepared, state: GuestState, image: MemoryImage): WasiRuntimeState {
  const raw = state.runtime as Partial<WasiRuntimeState> | null | undefined;
  if (typeof raw !== 'object' || raw === null || typeof raw.globals !== 'object' || raw.globals === null || typeof raw.memoryBytes !== 'number') {
    throw corrupt(prepared.fn, 'runtime state must be { globals, memoryBytes }');
  }
  if (raw.memoryBytes !== image.byteLength) {
    throw corrupt(prepared.fn, `state records ${raw.memoryBytes} bytes of memory but the image holds ${image.byteLength}`);
  }
  const names = Object.keys(raw.globals);
  for (const name of names) {
    if (!prepared.globalTypes.has(name)) throw corrupt(prepared.fn, `state holds global '${name}', which the module does not export`);
    if (typeof raw.globals[name] !== 'string') throw corrupt(prepared.fn, `global '${name}' is not a string`);
  }
  for (const name of prepared.globalTypes.keys()) {
    if (!(name in raw.globals)) throw corrupt(prepared.fn, `state lacks global '${name}'`);
  }
  return { globals: raw.globals, memoryBytes: raw.memoryBytes };
}

export function globalToString(value: unknown): string {
  if (typeof value === 'bigint') return value.toString(10);
  invariant(typeof value === 'number', `global value of type ${typeof value}`);
  return Object.is(value, -0) ? '-0' : String(value);
}

export function globalFromString(type: ValType, text: string): number | bigint {
  if (type === 'i64') return BigInt(text);
  const value = Number(text);
  if (Number.isNaN(value) && text !== 'NaN') throw new TypeError(`'${text}' is not a ${type}`);
  return value;
}

/** The invocation in flight: the request, where input_read stands, and the response so far. */
interface Request {
  readonly input: Uint8Array;
  inputOffsetBytes: number;
  readonly output: Uint8Array[];
  /** Sum of the lengths in `output`, checked against the function's maxOutputBytes on each write. */
  outputBytes: number;
  /** Objects read or written during this invocation, so object_len + object_read fetch once. */
  readonly objects: Map<string, Uint8Array | undefined>;
}

/** One live wasi guest: its instance, its WASI context and the Thaw host functions bound to it. */
class WasiGuest implements GuestInstance {
  private instance: WebAssembly.Instance | undefined;
  private request: Request | undefined;
  private initialised = false;
  /** Set by a trap: the guest's own invariants (stack pointer, allocator) may be broken. */
  private failure: ThawError | undefined;
  private readonly lines = { stdout: new LineBuffer(), stderr: new LineBuffer() };
  private readonly exitCodeKey: symbol | undefined;

  private constructor(
    private readonly prepared: WasiPrepared,
    private ctx: GuestContext,
    private readonly wasi: WASI,
    /** True when no memory.grow can fail unseen (see CompiledModule). */
    private readonly growObserved: boolean,
    /** True when the module exports the `thaw:grow_failed` global. */
    private readonly growFlag: boolean,
  ) {
    // node:wasi keeps proc_exit's status under a private symbol; read it only to report it.
    this.exitCodeKey = Object.getOwnPropertySymbols(wasi).find((s) => s.description === 'kExitCode');
  }

  /** Instantiates the module (data segments and any start function run) without calling its exports. */
  static async instantiate(prepared: WasiPrepared, ctx: GuestContext): Promise<WasiGuest> {
    const { module, growObserved, growFlag } = await compiledFor(prepared, ctx.memoryLimitBytes);
    const wasi = new WASI({ version: 'preview1', args: [prepared.fn.name], env: {}, returnOnExit: true });
    const guest = new WasiGuest(prepared, ctx, wasi, growObserved, growFlag);
    let instance: WebAssembly.Instance;
    try {
      instance = await WebAssembly.instantiate(module, guest.imports());
    } catch (err: unknown) {
      throw guest.translate(err);
    }
    guest.instance = instance;
    // node:wasi must know the memory, but its initialize() would also call _initialize: hand it
    // a view of the exports holding only the memory, and run _initialize ourselves (boot only).
    wasi.initialize({ exports: { memory: guest.memory } });
    return guest;
  }

  get memory(): WebAssembly.Memory {
    return exportedMemory(this.exports(), this.prepared.memoryExport);
  }

  async init(): Promise<void> {
    invariant(!this.initialised, 'init() runs once, on cold boot only');
    this.initialised = true;
    this.runExport(INIT_EXPORT);
  }

  async invoke(input: Uint8Array): Promise<Uint8Array> {
    if (this.failure !== undefined) throw this.failure;
    invariant(this.request === undefined, 'invoke() while another invocation is running');
    const handler = this.exports()[this.prepared.fn.handler];
    invariant(typeof handler === 'function', `handler '${this.prepared.fn.handler}' is not a function`);
    const request: Request = { input, inputOffsetBytes: 0, output: [], outputBytes: 0, objects: new Map() };
    this.request = request;
    let status: unknown;
    try {
      status = this.guard(() => (handler as () => number)());
    } finally {
      this.request = undefined;
    }
    const output = concat(request.output);
    if (status !== 0) {
      const text = new TextDecoder().decode(output);
      throw new ThawError('THAW_GUEST_ERROR', { name: this.prepared.fn.name, detail: `status ${String(status)}${text ? `: ${text}` : ''}` });
    }
    return output;
  }

  captureState(): GuestState {
    invariant(this.request === undefined, 'captureState() during an invocation');
    const globals: Record<string, string> = {};
    for (const name of this.prepared.globalTypes.keys()) globals[name] = globalToString(this.global(name).value);
    const state: WasiRuntimeState = { globals, memoryBytes: this.memory.buffer.byteLength };
    return { runtime: state };
  }

  freeRanges(): FreeRangeReport | null {
    return wasiFreeRanges(this.prepared.fn.name, this.exports(), this.memory);
  }

  /** Runs an optional `() -> ()` export, translating guest failures. */
  runExport(name: string): void {
    const fn = this.exports()[name];
    if (typeof fn === 'function') this.guard(() => (fn as () => void)());
  }

  /** Overwrites memory and globals with a snapshot's (restore only). */
  load(state: WasiRuntimeState, image: MemoryImage): void {
    if (image.byteLength > this.ctx.memoryLimitBytes) {
      throw oom(this.prepared.fn, this.ctx.memoryLimitBytes, `the snapshot holds ${image.byteLength} bytes of memory`);
    }
    try {
      image.fill(this.memory);
    } catch (err: unknown) {
      throw this.translate(err);
    }
    invariant(this.memory.buffer.byteLength === image.byteLength, `memory holds ${this.memory.buffer.byteLength} bytes after fill, expected ${image.byteLength}`);
    for (const [name, type] of this.prepared.globalTypes) {
      const text = state.globals[name] as string;
      try {
        this.global(name).value = globalFromString(type, text);
      } catch (err: unknown) {
        throw corrupt(this.prepared.fn, `global '${name}' cannot hold ${type} value '${text}': ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  markInitialised(): void {
    this.initialised = true;
  }

  /** Gives a shell its sandbox's context (objects, logs); returns it. */
  bind(ctx: GuestContext): this {
    invariant(!this.initialised && this.request === undefined, 'only a shell that never ran is bound to a sandbox');
    invariant(ctx.memoryLimitBytes === this.ctx.memoryLimitBytes, 'a shell is bound to a sandbox of its own memory limit');
    this.ctx = ctx;
    return this;
  }

  private exports(): WebAssembly.Exports {
    invariant(this.instance !== undefined, 'guest used before instantiation');
    return this.instance.exports;
  }

  private global(name: string): WebAssembly.Global {
    return exportedGlobal(this.exports(), name);
  }

  /** Runs guest code; flushes its log lines and turns whatever it throws into a ThawError. */
  private guard<T>(run: () => T): T {
    if (this.growFlag) this.global(GROW_FAILED_EXPORT).value = 0;
    try {
      return run();
    } catch (err: unknown) {
      const failure = this.translate(err);
      // Each of these left the guest mid-code (its stack pointer global not restored).
      if (failure.code === 'THAW_GUEST_TRAP' || failure.code === 'THAW_GUEST_OOM' || failure.code === 'THAW_OUTPUT_TOO_LARGE') this.failure = failure;
      throw failure;
    } finally {
      this.flushLogs();
    }
  }

  private translate(err: unknown): ThawError {
    const { fn } = this.prepared;
    const limitBytes = this.ctx.memoryLimitBytes;
    if (err instanceof ThawError) return err;
    if (typeof err === 'symbol') {
      const code = this.exitCodeKey === undefined ? '?' : String((this.wasi as unknown as Record<symbol, unknown>)[this.exitCodeKey]);
      return new ThawError('THAW_GUEST_ERROR', { name: fn.name, detail: `the guest called proc_exit(${code})` });
    }
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof WebAssembly.RuntimeError) {
      const usedBytes = this.instance === undefined ? 0 : this.memory.buffer.byteLength;
      const failedGrowPages = this.growFlag && this.instance !== undefined ? Number(this.global(GROW_FAILED_EXPORT).value) : 0;
      if (failedGrowPages > 0) {
        return oom(fn, limitBytes, `memory.grow by ${failedGrowPages} page(s) failed with ${usedBytes} bytes in use, then trap '${message}'`, err);
      }
      if (!this.growObserved && limitBytes - usedBytes < Math.min(OOM_HEADROOM_MAX_BYTES, limitBytes / 8)) {
        return oom(fn, limitBytes, `trap '${message}' with ${usedBytes} of ${limitBytes} memory bytes in use`, err);
      }
      return new ThawError('THAW_GUEST_TRAP', { name: fn.name, detail: message }, { cause: err });
    }
    if (err instanceof RangeError) {
      if (/call stack/i.test(message)) return new ThawError('THAW_GUEST_TRAP', { name: fn.name, detail: message }, { cause: err });
      if (/memory/i.test(message)) return oom(fn, limitBytes, message, err);
    }
    return toThawError(err);
  }

  private flushLogs(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.lines[stream].flush();
      if (rest !== undefined) this.ctx.log(stream, rest);
    }
  }

  /** A view of guest memory at [ptr, ptr + len); traps the guest when it is out of bounds. */
  private bytesAt(ptr: number, len: number, what: string): Uint8Array {
    const start = ptr >>> 0;
    const buffer = this.memory.buffer;
    if (len < 0 || start + len > buffer.byteLength) {
      throw new ThawError('THAW_GUEST_TRAP', { name: this.prepared.fn.name, detail: `${what}: [${start}, ${start + len}) is outside the ${buffer.byteLength}-byte memory` });
    }
    return new Uint8Array(buffer, start, len);
  }

  private currentRequest(what: string): Request {
    const r = this.request;
    if (r === undefined) throw new ThawError('THAW_GUEST_TRAP', { name: this.prepared.fn.name, detail: `${what} called outside an invocation (during init?)` });
    return r;
  }

  /** Objects are reachable from init too (to load data a snapshot then keeps); only invocations cache them. */
  private objectValue(key: string): Uint8Array | undefined {
    const r = this.request;
    if (r === undefined) return this.ctx.objects.get(key);
    if (!r.objects.has(key)) r.objects.set(key, this.ctx.objects.get(key));
    return r.objects.get(key);
  }

  private keyAt(ptr: number, len: number, what: string): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.bytesAt(ptr, len, what));
    } catch (err: unknown) {
      if (err instanceof ThawError) throw err;
      throw new ThawError('THAW_GUEST_TRAP', { name: this.prepared.fn.name, detail: `${what}: object key is not valid UTF-8` });
    }
  }

  /** The import object: node:wasi's preview1 functions (stdio rerouted) and the Thaw host functions. */
  private imports(): WebAssembly.Imports {
    const wasiImport = this.wasi.wasiImport as Record<string, (...args: number[]) => number>;
    const thaw: Record<string, (...args: number[]) => number | undefined> = {
      input_len: () => this.currentRequest('thaw.input_len').input.length,
      input_read: (ptr, len) => {
        const r = this.currentRequest('thaw.input_read');
        const dst = this.bytesAt(ptr as number, len as number, 'thaw.input_read');
        const chunk = r.input.subarray(r.inputOffsetBytes, r.inputOffsetBytes + dst.length);
        dst.set(chunk);
        r.inputOffsetBytes += chunk.length;
        return chunk.length;
      },
      output_write: (ptr, len) => {
        const r = this.currentRequest('thaw.output_write');
        const bytes = this.bytesAt(ptr as number, len as number, 'thaw.output_write');
        // Stops the guest at the write that passes the limit: the bytes would otherwise pile up
        // here first (a guest looping on output_write grows this host without bound).
        const { name, maxOutputBytes } = this.prepared.fn;
        if (r.outputBytes + bytes.length > maxOutputBytes) throw new ThawError('THAW_OUTPUT_TOO_LARGE', { name, limitBytes: maxOutputBytes });
        r.outputBytes += bytes.length;
        r.output.push(bytes.slice());
        return undefined;
      },
      object_len: (keyPtr, keyLen) => this.objectValue(this.keyAt(keyPtr as number, keyLen as number, 'thaw.object_len'))?.length ?? -1,
      object_read: (keyPtr, keyLen, dstPtr, dstLen) => {
        const value = this.objectValue(this.keyAt(keyPtr as number, keyLen as number, 'thaw.object_read'));
        if (value === undefined) return -1;
        const dst = this.bytesAt(dstPtr as number, dstLen as number, 'thaw.object_read');
        const n = Math.min(value.length, dst.length);
        dst.set(value.subarray(0, n));
        return n;
      },
      object_write: (keyPtr, keyLen, valPtr, valLen) => {
        const key = this.keyAt(keyPtr as number, keyLen as number, 'thaw.object_write');
        const value = this.bytesAt(valPtr as number, valLen as number, 'thaw.object_write').slice();
        this.request?.objects.set(key, value);
        this.ctx.objects.put(key, value);
        return 0;
      },
    };
    return {
      [WASI_MODULE]: { ...wasiImport, fd_write: this.fdWrite(wasiImport), fd_read: this.fdRead(wasiImport) },
      [THAW_MODULE]: thaw,
    };
  }

  /** stdout and stderr go to ctx.log line by line, never to the host process's own streams. */
  private fdWrite(wasiImport: Record<string, (...args: number[]) => number>): (...args: number[]) => number {
    return (fd, iovs, iovsLen, nwrittenPtr) => {
      if (fd !== STDOUT_FD && fd !== STDERR_FD) return (wasiImport.fd_write as (...a: number[]) => number)(fd as number, iovs as number, iovsLen as number, nwrittenPtr as number);
      const view = new DataView(this.memory.buffer);
      const stream = fd === STDOUT_FD ? 'stdout' : 'stderr';
      let written = 0;
      try {
        for (let i = 0; i < (iovsLen as number); i++) {
          const at = ((iovs as number) >>> 0) + i * 8;
          const ptr = view.getUint32(at, true);
          const len = view.getUint32(at + 4, true);
          for (const line of this.lines[stream].push(this.bytesAt(ptr, len, 'fd_write'))) this.ctx.log(stream, line);
          written += len;
        }
        view.setUint32((nwrittenPtr as number) >>> 0, written, true);
      } catch {
        return EFAULT;
      }
      return 0;
    };
  }

  /** The guest's stdin is empty: the host process's stdin is not the guest's to read. */
  private fdRead(wasiImport: Record<string, (...args: number[]) => number>): (...args: number[]) => number {
    return (fd, iovs, iovsLen, nreadPtr) => {
      if (fd !== STDIN_FD) return (wasiImport.fd_read as (...a: number[]) => number)(fd as number, iovs as number, iovsLen as number, nreadPtr as number);
      try {
        new DataView(this.memory.buffer).setUint32((nreadPtr as number) >>> 0, 0, true);
      } catch {
        return EFAULT;
      }
      return 0;
    };
  }
}

/** The memory export `name` of an instance's exports. */
export function exportedMemory(exports: WebAssembly.Exports, name: string): WebAssembly.Memory {
  const memory = exports[name];
  invariant(memory instanceof WebAssembly.Memory, `export '${name}' is not a memory`);
  return memory;
}

/** The global export `name` of an instance's exports. */
export function exportedGlobal(exports: WebAssembly.Exports, name: string): WebAssembly.Global {
  const g = exports[name];
  invariant(g instanceof WebAssembly.Global, `export '${name}' is not a global`);
  return g;
}

/** Splits a byte stream into UTF-8 lines; flush() returns an unterminated last line. */
export class LineBuffer {
  private readonly decoder = new TextDecoder();
  private pending = '';

  push(bytes: Uint8Array): string[] {
    this.pending += this.decoder.decode(bytes, { stream: true });
    const parts = this.pending.split('\n');
    this.pending = parts.pop() ?? '';
    return parts;
  }

  flush(): string | undefined {
    this.pending += this.decoder.decode();
    const rest = this.pending;
    this.pending = '';
    return rest.length > 0 ? rest : undefined;
  }
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

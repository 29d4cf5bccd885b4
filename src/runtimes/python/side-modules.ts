// Wasm side modules (the `.so` files of Pyodide's compiled packages) in snapshots (docs/python-runtime.md,
// "Compiled packages"). CPython imports an extension with dlopen(); Emscripten's loader instantiates
// the side module with its data at `memoryBase` (a block it calloc()s from the heap) and its
// functions at `tableBase` (the end of the function table), and records both in the C-side `struct
// dso` at the dlopen handle. The heap is in the snapshot, the side module's instance and the table
// entries are not. So a capture records, per loaded side module, its guest path, handle and bases,
// and a restore, on the fresh module and before the heap is put back, instantiates each again at the
// same bases (its data initialisers and constructors then write into memory that the snapshot's
// bytes overwrite) and registers it with Emscripten's loader under the same handle.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ThawError } from '../../core/errors.js';

/** One side module loaded into a guest, as a snapshot records it. */
export interface SideModuleRecord {
  /** Path in the guest's file system (under the bundle mount). */
  readonly path: string;
  /** The dlopen handle (address of Emscripten's `struct dso` in the heap). */
  readonly handle: number;
  readonly memoryBase: number;
  readonly memorySize: number;
  readonly tableBase: number;
  readonly tableSize: number;
  /** Loaded with RTLD_GLOBAL (its symbols resolve later libraries' imports). */
  readonly global: boolean;
  /** sha256 of the file when captured; a restore refuses a file that changed. */
  readonly sha256: string;
}

interface Dso {
  name: string;
  exports: unknown;
  global: boolean;
  refcount: number;
}

/** The parts of Emscripten's dynamic linker (exported on the module) used here. */
export interface DynamicLinkerModule {
  readonly HEAPU32: Uint32Array;
  readonly wasmTable: WebAssembly.Table;
  readonly LDSO: { loadedLibsByName: Record<string, Dso>; loadedLibsByHandle: Record<string, Dso> };
  loadWebAssemblyModule(binary: Uint8Array | WebAssembly.Module, flags: object, libName: string, localScope: object | null, handle: number): Record<string, unknown>;
  newDSO(name: string, handle: number, exports: unknown): Dso;
  mergeLibSymbols(exports: unknown, libName: string): void;
  getDylinkMetadata(binary: Uint8Array | WebAssembly.Module): { memorySize: number; tableSize: number; memoryAlign: number; neededDynlibs: string[] };
}

// Offsets in Emscripten's `struct dso` (system/lib/libc/dynlink.h), as loadWebAssemblyModule writes them.
const DSO_MEM_ADDR = 12;
const DSO_MEM_SIZE = 16;
const DSO_TABLE_ADDR = 20;
const DSO_TABLE_SIZE = 24;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Side modules compiled ahead in this process, by the sha256 of their bytes. */
const compiled = new Map<string, WebAssembly.Module>();

/**
 * Compiles every `.so` under `dir` (a function's installed bundle) ahead of restores, so a restore
 * does not compile them on its path (it still reads and hashes each file it places).
 */
export async function precompileSideModules(dir: string): Promise<void> {
  const files = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.so'));
  await Promise.all(files.map(async (f) => {
    const bytes = readFileSync(join(dir, f));
    const key = sha256(bytes);
    if (!compiled.has(key)) compiled.set(key, await WebAssembly.compile(bytes));
  }));
}

/**
 * The side modules loaded into `mod`, in table order (the order a restore must load them in).
 * `read` returns a loaded file's bytes (for its checksum). Throws THAW_SNAPSHOT_VERSION naming a
 * library that was not loaded through dlopen (no recorded bases) or lies outside `root`.
 */
export function captureSideModules(mod: DynamicLinkerModule, root: string, read: (guestPath: string) => Uint8Array): SideModuleRecord[] {
  const byHandle = new Map<Dso, number>();
  for (const [h, dso] of Object.entries(mod.LDSO.loadedLibsByHandle)) if (Number(h) !== 0) byHandle.set(dso, Number(h));
  const out: SideModuleRecord[] = [];
  for (const [name, dso] of Object.entries(mod.LDSO.loadedLibsByName)) {
    if (name === '__main__') continue;
    const handle = byHandle.get(dso);
    const refuse = (detail: string): never => {
      throw new ThawError('THAW_SNAPSHOT_VERSION', { id: 'python', detail: `side module '${name}' ${detail}` });
    };
    if (handle === undefined) refuse('was not loaded through dlopen, so its memory and table bases are not known');
    if (!name.startsWith(`${root}/`)) refuse(`is outside the function's bundle (${root}): only the bundle's side modules are re-loaded on restore`);
    const u32 = mod.HEAPU32;
    const h = handle as number;
    out.push({
      path: name,
      handle: h,
      memoryBase: u32[(h + DSO_MEM_ADDR) >>> 2] as number,
      memorySize: u32[(h + DSO_MEM_SIZE) >>> 2] as number,
      tableBase: u32[(h + DSO_TABLE_ADDR) >>> 2] as number,
      tableSize: u32[(h + DSO_TABLE_SIZE) >>> 2] as number,
      global: dso.global,
      sha256: sha256(read(name)),
    });
  }
  // Table slots are handed out in load order; a library without table entries keeps its place by handle.
  return out.sort((a, b) => a.tableBase - b.tableBase || a.handle - b.handle);
}

/** (module (import "e" "f" (func $f (param i32 i32) (result i32))) (func (export "calloc") (param i32 i32) (result i32) (call $f (local.get 0) (local.get 1)))) */
const CALL_IMPORT_I32_I32 = new WebAssembly.Module(new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type 0: (i32 i32) -> i32
  0x02, 0x07, 0x01, 0x01, 0x65, 0x01, 0x66, 0x00, 0x00, // import e.f: type 0
  0x03, 0x02, 0x01, 0x00, // function 1: type 0
  0x07, 0x0a, 0x01, 0x06, 0x63, 0x61, 0x6c, 0x6c, 0x6f, 0x63, 0x00, 0x01, // export "calloc" = function 1
  0x0a, 0x0a, 0x01, 0x08, 0x00, 0x20, 0x00, 0x20, 0x01, 0x10, 0x00, 0x0b, // body: call 0 (local 0, local 1)
]));

/**
 * Makes Emscripten's JS-side calloc() return a given address once: its loader takes a side
 * module's data block from calloc(), and a restore must put it where the snapshot has it. Wraps
 * the main module's `calloc` export as Emscripten receives it (calls from inside Wasm do not go
 * through the wrapper); `detach()` points side modules' imports of calloc back at the real export.
 */
export class PlacementAllocator {
  private forced: number | undefined;
  private real: ((n: number, size: number) => number) | undefined;

  /** The instance with `calloc` wrapped in its exports (what Emscripten's receiveInstance reads). */
  wrap(instance: WebAssembly.Instance): WebAssembly.Instance {
    const real = instance.exports.calloc as (n: number, size: number) => number;
    this.real = real;
    const js = (n: number, size: number): number => {
      const at = this.forced;
      if (at === undefined) return real(n, size);
      this.forced = undefined;
      return at;
    };
    // A Wasm function calling the JS one: Emscripten puts every export into its function table
    // (updateGOT), which takes Wasm functions only.
    const calloc = new WebAssembly.Instance(CALL_IMPORT_I32_I32, { e: { f: js } }).exports.calloc as (n: number, size: number) => number;
    return { exports: { ...instance.exports, calloc } } as WebAssembly.Instance;
  }

  /**
   * Once the module is created: symbol resolution for side modules (the `__main__` library's
   * exports) gets the real calloc, so their calls do not go through JS.
   */
  detach(mod: Pick<DynamicLinkerModule, 'LDSO'>): void {
    const main = mod.LDSO.loadedLibsByName.__main__?.exports as Record<string, unknown> | undefined;
    if (main && this.real) main.calloc = this.real;
  }

  /** The next JS calloc() returns `address` without allocating (the restored heap has the block allocated). */
  force(address: number): void {
    this.forced = address;
  }

  /** True if a forced address was not taken (and clears it). */
  unused(): boolean {
    const was = this.forced !== undefined;
    this.forced = undefined;
    return was;
  }
}

/**
 * Loads `records` into a freshly instantiated module, at their recorded bases, before the
 * snapshot's heap (`heapBytes`) is written. `read` returns a side module's current bytes.
 * Throws THAW_SNAPSHOT_VERSION when a module cannot be placed where the snapshot has it: its file
 * changed, its table base is already taken, or its data block lies outside the heap.
 */
export function placeSideModules(
  mod: DynamicLinkerModule,
  allocator: PlacementAllocator,
  records: readonly SideModuleRecord[],
  heapBytes: number,
  read: (guestPath: string) => Uint8Array,
): void {
  for (const r of records) {
    const refuse = (detail: string): never => {
      throw new ThawError('THAW_SNAPSHOT_VERSION', { id: 'python', detail: `side module '${r.path}' cannot be placed at its recorded base: ${detail}` });
    };
    const bytes = read(r.path);
    if (sha256(bytes) !== r.sha256) refuse('the file changed since the snapshot was taken');
    const binary = compiled.get(r.sha256) ?? bytes;
    const meta = mod.getDylinkMetadata(binary);
    if (meta.memorySize !== r.memorySize || meta.tableSize !== r.tableSize) refuse(`it has ${meta.memorySize} bytes of data and ${meta.tableSize} table slots, the snapshot recorded ${r.memorySize} and ${r.tableSize}`);
    if (r.memorySize > 0 && (r.memoryBase === 0 || r.memoryBase % 2 ** meta.memoryAlign !== 0 || r.memoryBase + r.memorySize > heapBytes)) {
      refuse(`memory base ${r.memoryBase} (+${r.memorySize} bytes) is not an aligned block inside the ${heapBytes}-byte heap`);
    }
    const table = mod.wasmTable;
    if (r.tableSize > 0) {
      if (table.length > r.tableBase) refuse(`table base ${r.tableBase} is taken (the function table already has ${table.length} entries)`);
      // Slots the booted guest had used before this library (none of them is referenced from the heap
      // by the restored guest that a fresh module would not have filled too) stay empty.
      if (table.length < r.tableBase) table.grow(r.tableBase - table.length, null);
    }
    if (r.memorySize > 0) allocator.force(r.memoryBase);
    const localScope = r.global ? null : {};
    const exports = mod.loadWebAssemblyModule(binary, { loadAsync: false, global: r.global, nodelete: true }, r.path, localScope, 0);
    if (allocator.unused()) refuse('the loader did not allocate its data block');
    const dso = mod.newDSO(r.path, r.handle, exports);
    dso.global = r.global;
    dso.refcount = Infinity;
    if (r.global) mod.mergeLibSymbols(exports, r.path);
  }
}

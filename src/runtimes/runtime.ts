// The Runtime interface: what a language runtime (wasi, python) provides to Thaw, split into
// the deploy side (runs in the daemon, validates and transforms artefacts) and the guest side
// (runs inside a sandbox host process: compile, boot, restore, invoke, capture state).

import type { FunctionParams, RuntimeId } from '../core/function-spec.js';
import type { SyncObjectStore } from '../store/object-store.js';
import type { FreeRangeReport } from '../memory/scaling/scaling.js';

/** Result of deploying a function: the artefact bytes Thaw stores and runs. */
export interface DeployedArtefact {
  /** File name inside the function's directory ("module.wasm", "handler.py"). */
  readonly fileName: string;
  /** The stored artefact (for wasi: the module rewritten to export its mutable globals). */
  readonly bytes: Uint8Array;
  /** Human-readable facts found at deploy time (exports, globals exported, memory pages...). */
  readonly facts: Readonly<Record<string, string | number | boolean>>;
  /** Further files the function brings (a WASI command's directories): folded into its digest, installed beside the artefact. */
  readonly bundle?: { readonly digest: string; install(functionDir: string): void };
}

/** Deploy side: validates a function's artefact. Throws THAW_MODULE_INVALID, THAW_MODULE_NOT_WASI, THAW_HANDLER_MISSING. */
export interface RuntimeDeployer {
  readonly id: RuntimeId;
  deploy(fn: FunctionParams, source: Uint8Array): Promise<DeployedArtefact>;
}

/** What the guest can reach on the host while it runs. */
export interface GuestContext {
  readonly objects: SyncObjectStore;
  /** Memory limit of the sandbox in bytes: linear memory may not grow beyond it. */
  readonly memoryLimitBytes: number;
  /** Where the guest side may make temporary files (a WASI command's scratch directories): the host's own scratch directory when jailed. Default: os.tmpdir(). */
  readonly tempDir?: string;
  /** Receives the guest's stdout/stderr lines (for logs). */
  log(stream: 'stdout' | 'stderr', text: string): void;
}

/**
 * The non-memory state of a guest ("vCPU state"): JSON-serialisable.
 * For wasi: the values of every mutable global (exported at deploy). For python: Pyodide's
 * own snapshot metadata. The memory image is captured separately, page by page.
 */
export interface GuestState {
  /** Runtime-specific, JSON-serialisable; the runtime that wrote it is the only reader. */
  readonly runtime: unknown;
}

/** A snapshot's memory made available to a restoring runtime. */
export interface MemoryImage {
  /** Size of the guest memory in bytes (a multiple of 64 KiB). */
  readonly byteLength: number;
  /**
   * Makes `memory` hold the image: the memory is grown to byteLength if needed and filled.
   * Implemented by the restore strategy (eager copy today; mapping in the restore engine).
   */
  fill(memory: WebAssembly.Memory): void;
  /** The whole image as one contiguous buffer (for runtimes that need bytes, not a Memory). */
  toBytes(): Uint8Array;
}

/** One live guest inside a sandbox host. */
export interface GuestInstance {
  /** The guest's linear memory (its "guest physical memory"). */
  readonly memory: WebAssembly.Memory;
  /** Runs the function's init (top-level code / thaw_init export). Called once, on cold boot only. */
  init(): Promise<void>;
  /** Runs the handler once. Throws THAW_GUEST_TRAP / THAW_GUEST_ERROR / THAW_GUEST_OOM. */
  invoke(input: Uint8Array): Promise<Uint8Array>;
  /** Captures the non-memory state between invocations. */
  captureState(): GuestState;
  /**
   * What the guest's allocator reports free now (memory scaling gives it back), or null when it
   * cannot say: wasi through the `thaw_free_ranges` export (docs/abi.md), python from Pyodide's dlmalloc.
   */
  freeRanges?(): FreeRangeReport | null;
}

/** Guest side of a runtime: lives in the sandbox host process. */
export interface RuntimeAdapter<Prepared = unknown> {
  readonly id: RuntimeId;
  /** Ahead-of-use work (module compilation) for a deployed function; cached per host. */
  prepare(fn: FunctionParams, artefactPath: string): Promise<Prepared>;
  /** Creates a fresh guest without running the function's init. */
  boot(prepared: Prepared, ctx: GuestContext): Promise<GuestInstance>;
  /** Creates a guest from a snapshot: memory from `image`, the rest from `state`. */
  restore(prepared: Prepared, state: GuestState, image: MemoryImage, ctx: GuestContext): Promise<GuestInstance>;
  /**
   * Optional: gets ready for one more instance in this host (a vertical host with room left),
   * as prepare did for the first; does nothing when something is already waiting.
   */
  readyNext?(prepared: Prepared): Promise<void>;
}

// Guest side of WASI commands (modules exporting `_start`, docs/abi.md "Commands"), WAGI-style:
// each invocation runs `_start` in a fresh instance made from the function's pristine state (after
// `wizer.initialize` / `thaw_init`, or as restored from a snapshot), the request on stdin, the
// response from stdout, stderr to the log, args, env and read-only bundle directories from the
// manifest, and a scratch directory made for the invocation and removed after it.

import { closeSync, constants, cpSync, fstatSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { WASI } from 'node:wasi';
import { ThawError, invariant, toThawError } from '../../core/errors.js';
import type { CommandParams } from '../../core/function-spec.js';
import type { GuestContext, GuestInstance, GuestState, MemoryImage } from '../runtime.js';
import { COMMAND_EXPORT, INIT_EXPORT, WASI_MODULE, WIZER_INIT_EXPORT } from './abi.js';
import {
  LineBuffer, compiledFor, concat, exportedGlobal, exportedMemory, globalFromString, globalToString, oom, type CompiledModule, type WasiPrepared, type WasiRuntimeState,
} from './adapter.js';
import { GROW_FAILED_EXPORT } from './wasm-binary.js';

const NO_COMMAND: CommandParams = { args: [], env: {}, dirs: [], scratch: null, responseFile: null };
/** How much of a failed command's stderr its error carries. */
const STDERR_TAIL_BYTES = 2048;
const PAGE_BYTES = 4096;
const STDIN_FD = 0;
const STDOUT_FD = 1;
const STDERR_FD = 2;
/** The first preopened directory's fd in node:wasi (after stdin, stdout, stderr). */
const FIRST_PREOPEN_FD = 3;
const ERRNO_BADF = 8;
const ERRNO_FAULT = 21;
const ERRNO_NOTSOCK = 57;
const ERRNO_ROFS = 69;
// WASI preview1 flags that ask for a way to change a file (oflags, fdflags, rights).
const OFLAGS_WRITE = 0x1 /* creat */ | 0x4 /* excl */ | 0x8 /* trunc */;
const FDFLAGS_APPEND = 0x1;
// (Not fd_filestat_set_times: wasi-libc asks for it on every open, read-only ones included;
// the fd-level call is refused instead.)
const RIGHTS_WRITE = (1n << 6n) /* fd_write */ | (1n << 8n) /* fd_allocate */ | (1n << 22n) /* fd_filestat_set_size */;

/** Where the guest's stdin, stdout and stderr point in node:wasi for calls Thaw does not take over. */
let devNull: number | undefined;
function devNullFd(): number {
  devNull ??= openSync('/dev/null', 'r+');
  return devNull;
}

/** The memory and globals every invocation starts from: non-zero pages only, as byte runs. */
interface Pristine {
  readonly bytes: Uint8Array;
  /** [start, end) byte offsets of the non-zero page runs of `bytes`. */
  readonly runs: readonly (readonly [number, number])[];
  readonly globals: Readonly<Record<string, string>>;
}

/** [start, end) byte offsets of the runs of 4 KiB pages of `bytes` that are not all zero. */
function nonZeroRuns(bytes: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.byteLength / 4));
  const wordsPerPage = PAGE_BYTES / 4;
  for (let page = 0; page * PAGE_BYTES < bytes.byteLength; page++) {
    let zero = true;
    for (let w = page * wordsPerPage, end = Math.min(w + wordsPerPage, words.length); w < end; w++) {
      if (words[w] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) continue;
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === page * PAGE_BYTES) last[1] += PAGE_BYTES;
    else runs.push([page * PAGE_BYTES, (page + 1) * PAGE_BYTES]);
  }
  return runs;
}

/** The (ptr, len) pairs of an iovec array of `count` entries at `iovs` in `memory`. */
function* iovecs(memory: WebAssembly.Memory, iovs: number, count: number): Generator<Uint8Array> {
  const view = new DataView(memory.buffer);
  for (let i = 0; i < count; i++) {
    const at = (iovs >>> 0) + i * 8;
    const ptr = view.getUint32(at, true);
    const len = view.getUint32(at + 4, true);
    if (ptr + len > memory.buffer.byteLength) throw new RangeError('iovec outside memory');
    yield new Uint8Array(memory.buffer, ptr, len);
  }
}

/** One call into the guest (init or an invocation): its WASI context and stdio. */
class CommandIo {
  readonly wasi: WASI;
  readonly stdout: Uint8Array[] = [];
  stdoutBytes = 0;
  stdinOffsetBytes = 0;
  stderrTail = '';
  readonly lines = { stdout: new LineBuffer(), stderr: new LineBuffer() };
  /** fds the guest may only read through: the bundle directories and what it opens under them. */
  readonly readOnlyFds = new Set<number>();
  readonly scratchDir: string | null;

  constructor(fnName: string, command: CommandParams, bundleRoot: string, tempDir: string, readonly stdin: Uint8Array, readonly forInvocation: boolean) {
    const preopens: Record<string, string> = {};
    command.dirs.forEach((d, i) => {
      preopens[d.guestPath] = join(bundleRoot, d.bundleName);
      this.readOnlyFds.add(FIRST_PREOPEN_FD + i);
    });
    this.scratchDir = null;
    if (command.scratch !== null) {
      // tempDir is the host's own scratch directory when jailed: the one place such a host writes.
      const dir = mkdtempSync(join(tempDir, 'thaw-cmd-'));
      this.scratchDir = dir;
      if (command.scratch.seed !== null) cpSync(join(bundleRoot, command.scratch.seed.bundleName), dir, { recursive: true });
      preopens[command.scratch.guestPath] = dir;
    }
    const fd = devNullFd();
    try {
      this.wasi = new WASI({
        version: 'preview1', args: [fnName, ...command.args], env: { ...command.env }, preopens, returnOnExit: true, stdin: fd, stdout: fd, stderr: fd,
      });
    } catch (err: unknown) {
      this.close();
      throw new ThawError('THAW_INTERNAL', { detail: `cannot open the directories of ${fnName} (${Object.entries(preopens).map(([g, h]) => `${g} <- ${h}`).join(', ')}): ${err instanceof Error ? err.message : String(err)}` }, { cause: err });
    }
  }

  /** Removes the scratch directory: nothing the guest wrote there outlives the call. */
  close(): void {
    if (this.scratchDir !== null) rmSync(this.scratchDir, { recursive: true, force: true });
  }
}

/**
 * A WASI command's sandbox. Between calls it always holds a pristine instance, never run: the
 * state a snapshot captures. invoke() runs `_start` on it, then replaces it with a fresh one.
 * Throws THAW_COMMAND_FAILED (non-zero exit), THAW_GUEST_TRAP, THAW_GUEST_OOM, THAW_OUTPUT_TOO_LARGE.
 */
export class CommandGuest implements GuestInstance {
  private instance: WebAssembly.Instance | undefined;
  private io: CommandIo | undefined;
  private pristine: Pristine | undefined;
  private initialised = false;
  private readonly command: CommandParams;
  private readonly bundleRoot: string;
  private readonly exitCodeKey = new WeakMap<WASI, symbol | undefined>();
  /** True once `_start` ran in the current instance: it must be replaced before anything else uses it. */
  private dirty = false;
  private resetFailure: ThawError | undefined;
  /** Byte runs a freshly instantiated memory holds non-zero (its data segments). */
  private dataRuns: readonly (readonly [number, number])[] | undefined;

  private constructor(
    private readonly prepared: WasiPrepared,
    private readonly ctx: GuestContext,
    private readonly compiled: CompiledModule,
    /** The snapshot a restored guest came from: the pristine memory, read again when first needed. */
    private readonly image: MemoryImage | undefined,
  ) {
    this.command = prepared.fn.command ?? NO_COMMAND;
    this.bundleRoot = dirname(prepared.fn.artefactPath);
  }

  /** A cold guest: instantiated, nothing run (init() runs `wizer.initialize` and `thaw_init`). */
  static async boot(prepared: WasiPrepared, ctx: GuestContext): Promise<CommandGuest> {
    const guest = new CommandGuest(prepared, ctx, await compiledFor(prepared, ctx.memoryLimitBytes), undefined);
    guest.instance = await guest.instantiate();
    return guest;
  }

  /** A guest restored from a snapshot: its memory filled by the restore strategy, its globals set; nothing run. */
  static async restore(prepared: WasiPrepared, state: WasiRuntimeState, image: MemoryImage, ctx: GuestContext): Promise<CommandGuest> {
    if (image.byteLength > ctx.memoryLimitBytes) throw oom(prepared.fn, ctx.memoryLimitBytes, `the snapshot holds ${image.byteLength} bytes of memory`);
    const guest = new CommandGuest(prepared, ctx, await compiledFor(prepared, ctx.memoryLimitBytes), image);
    guest.instance = await guest.instantiate();
    image.fill(guest.memory);
    guest.setGlobals(state.globals);
    guest.initialised = true;
    return guest;
  }

  get memory(): WebAssembly.Memory {
    return exportedMemory(this.exports(), this.prepared.memoryExport);
  }

  /** Runs Wizer's `wizer.initialize`, then `thaw_init`, when exported: what every invocation then starts from. */
  async init(): Promise<void> {
    invariant(!this.initialised, 'init() runs once, on cold boot only');
    this.initialised = true;
    const io = new CommandIo(this.prepared.fn.name, this.command, this.bundleRoot, this.ctx.tempDir ?? tmpdir(), new Uint8Array(0), false);
    try {
      for (const name of [WIZER_INIT_EXPORT, INIT_EXPORT]) {
        const fn = this.exports()[name];
        if (typeof fn === 'function') {
          const code = this.call(io, fn as () => void);
          if (code !== 0) throw this.exitError(name, code, io);
        }
      }
    } finally {
      io.close();
    }
    this.pristine = this.capture(new Uint8Array(this.memory.buffer).slice());
  }

  async invoke(input: Uint8Array): Promise<Uint8Array> {
    invariant(this.io === undefined, 'invoke() while another invocation is running');
    this.ensureFresh();
    const start = this.exports()[COMMAND_EXPORT];
    invariant(typeof start === 'function', `${COMMAND_EXPORT} is not a function`);
    // A booted guest's pristine state is its memory now, before `_start` changes it (init()
    // takes it already; this is for a guest booted without init).
    if (this.pristine === undefined && this.image === undefined) this.pristine = this.capture(new Uint8Array(this.memory.buffer).slice());
    const io = new CommandIo(this.prepared.fn.name, this.command, this.bundleRoot, this.ctx.tempDir ?? tmpdir(), input, true);
    let code: number;
    let response: Uint8Array | undefined;
    try {
      code = this.call(io, start as () => void);
      if (code === 0 && this.command.responseFile !== null) response = this.readResponseFile(io);
    } finally {
      io.close();
      // Commands are not re-entrant: the next invocation (or a snapshot) gets a fresh instance,
      // made once this reply is on its way (or by whichever comes first).
      this.dirty = true;
      setImmediate(() => {
        try {
          this.ensureFresh();
        } catch {
          // Kept in this.resetFailure: the next invocation or snapshot reports it.
        }
      });
    }
    if (code !== 0) throw this.exitError(COMMAND_EXPORT, code, io);
    return response ?? concat(io.stdout);
  }

  /** Replaces a used instance with a fresh one; a failure to do so is kept and thrown again. */
  private ensureFresh(): void {
    if (this.resetFailure !== undefined) throw this.resetFailure;
    if (!this.dirty) return;
    try {
      this.instance = this.fresh();
      this.dirty = false;
    } catch (err: unknown) {
      this.resetFailure = this.translate(err);
      throw this.resetFailure;
    }
  }

  /** The response file's bytes (manifest `command.responseFile`), read before the scratch directory goes. */
  private readResponseFile(io: CommandIo): Uint8Array {
    const { name, maxOutputBytes } = this.prepared.fn;
    const scratch = this.command.scratch;
    invariant(scratch !== null && io.scratchDir !== null && this.command.responseFile !== null, 'a response file needs a scratch directory');
    const path = join(io.scratchDir, this.command.responseFile.slice(scratch.guestPath.length));
    let fd: number;
    try {
      // The guest may have left symbolic links in the scratch directory (the guest has finished,
      // so nothing changes under this check): the file's directory must resolve inside it, and
      // the file itself is opened with O_NOFOLLOW.
      const root = realpathSync(io.scratchDir);
      const parent = realpathSync(dirname(path));
      if (parent !== root && !parent.startsWith(`${root}/`)) throw Object.assign(new Error('outside the scratch directory'), { code: 'ELOOP' });
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err: unknown) {
      throw new ThawError('THAW_COMMAND_FAILED', { name, exitCode: 0, stderr: ` but wrote no response file ${this.command.responseFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new ThawError('THAW_COMMAND_FAILED', { name, exitCode: 0, stderr: ` but its response file ${this.command.responseFile} is not a file` });
      if (st.size > maxOutputBytes) throw new ThawError('THAW_OUTPUT_TOO_LARGE', { name, limitBytes: maxOutputBytes });
      return new Uint8Array(readFileSync(fd));
    } finally {
      closeSync(fd);
    }
  }

  captureState(): GuestState {
    invariant(this.io === undefined, 'captureState() during an invocation');
    this.ensureFresh();
    const globals: Record<string, string> = {};
    for (const name of this.prepared.globalTypes.keys()) globals[name] = globalToString(this.global(name).value);
    const state: WasiRuntimeState = { globals, memoryBytes: this.memory.buffer.byteLength };
    return { runtime: state };
  }

  /** The pristine state: a booted guest's copy, else the snapshot's memory and globals read once. */
  private pristineState(): Pristine {
    if (this.pristine === undefined) {
      invariant(this.image !== undefined, 'a booted command guest captures its pristine state before its first invocation');
      // Read from the snapshot files, not from the restored memory: copying that would fault in
      // every page the strategy left to be served lazily (and spoil a recording strategy's log).
      this.pristine = this.capture(this.image.toBytes());
    }
    return this.pristine;
  }

  private capture(bytes: Uint8Array): Pristine {
    const globals: Record<string, string> = {};
    for (const name of this.prepared.globalTypes.keys()) globals[name] = globalToString(this.global(name).value);
    return { bytes, runs: nonZeroRuns(bytes), globals };
  }

  /**
   * A new instance holding the pristine memory and globals. Synchronous (new WebAssembly.Instance
   * of a compiled module), so that a snapshot or an invocation can ask for it at once.
   */
  private fresh(): WebAssembly.Instance {
    const pristine = this.pristineState();
    const instance = new WebAssembly.Instance(this.compiled.module, { [WASI_MODULE]: this.wasiImports() });
    this.instance = instance;
    const memory = this.memory;
    const pages = pristine.bytes.byteLength / 65536 - memory.buffer.byteLength / 65536;
    if (pages > 0) memory.grow(pages);
    const dst = new Uint8Array(memory.buffer);
    // The new instance's data segments are in its memory already, and pristine memory replaces
    // them: where they were is found once (a scan of a fresh memory), then only that is zeroed,
    // so that no other page of the new memory is touched before the guest touches it.
    this.dataRuns ??= nonZeroRuns(dst);
    for (const [a, b] of this.dataRuns) dst.fill(0, a, b);
    for (const [a, b] of pristine.runs) dst.set(pristine.bytes.subarray(a, b), a);
    this.setGlobals(pristine.globals);
    return instance;
  }

  private setGlobals(globals: Readonly<Record<string, string>>): void {
    for (const [name, type] of this.prepared.globalTypes) this.global(name).value = globalFromString(type, globals[name] as string);
  }

  /** Runs guest code with `io` as its WASI context; returns the exit code (0 when it returns). */
  private call(io: CommandIo, run: () => void): number {
    if (this.compiled.growFlag) this.global(GROW_FAILED_EXPORT).value = 0;
    io.wasi.initialize({ exports: { memory: this.memory } });
    this.io = io;
    try {
      run();
      return 0;
    } catch (err: unknown) {
      if (typeof err === 'symbol') return this.exitCode(io.wasi);
      const failure = this.translate(err);
      // A trap usually follows the guest's own message (a Rust panic, a failed assert): keep it.
      const tail = io.stderrTail.trim();
      if (failure.code !== 'THAW_GUEST_TRAP' || tail === '') throw failure;
      throw new ThawError('THAW_GUEST_TRAP', { name: this.prepared.fn.name, detail: `${String(failure.params.detail)}; stderr: ${tail}` }, { cause: failure.cause });
    } finally {
      this.io = undefined;
      for (const stream of ['stdout', 'stderr'] as const) {
        const rest = io.lines[stream].flush();
        if (rest !== undefined) this.ctx.log(stream, rest);
      }
    }
  }

  /** node:wasi keeps proc_exit's status under a private symbol; read it only to report it. */
  private exitCode(wasi: WASI): number {
    if (!this.exitCodeKey.has(wasi)) this.exitCodeKey.set(wasi, Object.getOwnPropertySymbols(wasi).find((s) => s.description === 'kExitCode'));
    const key = this.exitCodeKey.get(wasi);
    const code = key === undefined ? undefined : (wasi as unknown as Record<symbol, unknown>)[key];
    return typeof code === 'number' ? code : 1;
  }

  private exitError(what: string, code: number, io: CommandIo): ThawError {
    const tail = io.stderrTail.trim();
    return new ThawError('THAW_COMMAND_FAILED', { name: this.prepared.fn.name, exitCode: code, stderr: `${what === COMMAND_EXPORT ? '' : ` in ${what}`}${tail ? `: ${tail}` : ''}` });
  }

  private translate(err: unknown): ThawError {
    const { fn } = this.prepared;
    if (err instanceof ThawError) return err;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof WebAssembly.RuntimeError) {
      const failedGrowPages = this.compiled.growFlag ? Number(this.global(GROW_FAILED_EXPORT).value) : 0;
      if (failedGrowPages > 0) return oom(fn, this.ctx.memoryLimitBytes, `memory.grow by ${failedGrowPages} page(s) failed, then trap '${message}'`, err);
      return new ThawError('THAW_GUEST_TRAP', { name: fn.name, detail: message }, { cause: err });
    }
    if (err instanceof RangeError) {
      if (/call stack/i.test(message)) return new ThawError('THAW_GUEST_TRAP', { name: fn.name, detail: message }, { cause: err });
      if (/memory/i.test(message)) return oom(fn, this.ctx.memoryLimitBytes, message, err);
    }
    return toThawError(err);
  }

  private exports(): WebAssembly.Exports {
    invariant(this.instance !== undefined, 'guest used before instantiation');
    return this.instance.exports;
  }

  private global(name: string): WebAssembly.Global {
    return exportedGlobal(this.exports(), name);
  }

  private async instantiate(): Promise<WebAssembly.Instance> {
    try {
      return await WebAssembly.instantiate(this.compiled.module, { [WASI_MODULE]: this.wasiImports() });
    } catch (err: unknown) {
      throw this.translate(err);
    }
  }

  private currentIo(): CommandIo {
    const io = this.io;
    // Only reachable from a module's start function, which runs at instantiation, outside any call.
    if (io === undefined) throw new ThawError('THAW_GUEST_TRAP', { name: this.prepared.fn.name, detail: 'WASI called outside init or an invocation (from a start function?)' });
    return io;
  }

  /**
   * The preview1 imports: each one calls the current call's node:wasi (so one instance can serve
   * init and then an invocation with different contexts); stdio is Thaw's, and the read-only
   * bundle directories refuse every change with ERRNO_ROFS (the jail's Landlock rules refuse
   * them too, for jailed hosts).
   */
  private wasiImports(): Record<string, (...args: (number | bigint)[]) => number> {
    const imports: Record<string, (...args: (number | bigint)[]) => number> = {};
    // Every i32 of preview1 is unsigned (fds, pointers, sizes, flags); node:wasi, called from JS
    // rather than straight from Wasm, refuses a negative one with EINVAL where it means EBADF.
    const pass = (name: string) => (...args: (number | bigint)[]): number =>
      (this.currentIo().wasi.wasiImport as Record<string, (...a: (number | bigint)[]) => number>)[name]!(...args.map((a) => (typeof a === 'number' ? a >>> 0 : a)));
    for (const imp of WebAssembly.Module.imports(this.compiled.module)) {
      if (imp.module === WASI_MODULE && imp.kind === 'function') imports[imp.name] = pass(imp.name);
    }
    const ro = (fd: number | bigint): boolean => this.currentIo().readOnlyFds.has(Number(fd));
    const guardFd = (name: string, fdArg: number) => {
      const next = pass(name);
      return (...a: (number | bigint)[]): number => (ro(a[fdArg]!) ? ERRNO_ROFS : next(...a));
    };
    for (const name of ['fd_pwrite', 'fd_allocate', 'fd_filestat_set_size', 'fd_filestat_set_times', 'path_create_directory', 'path_remove_directory',
      'path_unlink_file', 'path_filestat_set_times']) {
      if (name in imports) imports[name] = guardFd(name, 0);
    }
    if ('path_symlink' in imports) imports.path_symlink = guardFd('path_symlink', 2);
    if ('path_link' in imports) imports.path_link = guardFd('path_link', 4);
    if ('path_rename' in imports) {
      const next = pass('path_rename');
      imports.path_rename = (...a) => (ro(a[0]!) || ro(a[3]!) ? ERRNO_ROFS : next(...a));
    }
    if ('path_open' in imports) {
      const next = pass('path_open');
      // (fd, dirflags, path, path_len, oflags, rights_base, rights_inheriting, fdflags, fd_out)
      imports.path_open = (...a) => {
        const fromRo = ro(a[0]!);
        if (fromRo && ((Number(a[4]) & OFLAGS_WRITE) !== 0 || (BigInt(a[5]!) & RIGHTS_WRITE) !== 0n || (Number(a[7]) & FDFLAGS_APPEND) !== 0)) return ERRNO_ROFS;
        const errno = next(...a);
        if (errno === 0 && fromRo) this.currentIo().readOnlyFds.add(new DataView(this.memory.buffer).getUint32(Number(a[8]) >>> 0, true));
        return errno;
      };
    }
    if ('fd_close' in imports) {
      const next = pass('fd_close');
      imports.fd_close = (fd) => {
        const errno = next(fd!);
        if (errno === 0) this.currentIo().readOnlyFds.delete(Number(fd));
        return errno;
      };
    }
    if ('fd_renumber' in imports) {
      const next = pass('fd_renumber');
      imports.fd_renumber = (from, to) => {
        const errno = next(from!, to!);
        if (errno === 0) {
          const set = this.currentIo().readOnlyFds;
          if (set.has(Number(from))) set.add(Number(to));
          else set.delete(Number(to));
          set.delete(Number(from));
        }
        return errno;
      };
    }
    if ('sock_shutdown' in imports) {
      // A guest has no sockets (no network, none preopened), so every open fd is "not a socket";
      // node:wasi answers ENOTSUP for any fd. fd_advise(NORMAL) tells an open fd from a closed one
      // and changes nothing.
      const advise = pass('fd_advise');
      imports.sock_shutdown = (fd) => (advise(fd!, 0n, 0n, 0) === ERRNO_BADF ? ERRNO_BADF : ERRNO_NOTSOCK);
    }
    if ('fd_write' in imports) {
      const next = guardFd('fd_write', 0);
      imports.fd_write = (fd, iovs, iovsLen, nwrittenPtr) => (fd === STDOUT_FD || fd === STDERR_FD
        ? this.writeStdio(fd, Number(iovs), Number(iovsLen), Number(nwrittenPtr)) : next(fd!, iovs!, iovsLen!, nwrittenPtr!));
    }
    if ('fd_read' in imports) {
      const next = pass('fd_read');
      imports.fd_read = (fd, iovs, iovsLen, nreadPtr) => (fd === STDIN_FD ? this.readStdin(Number(iovs), Number(iovsLen), Number(nreadPtr)) : next(fd!, iovs!, iovsLen!, nreadPtr!));
    }
    return imports;
  }

  /** An invocation's stdout is its response (bounded by maxOutputBytes); init's stdout and all stderr go to the log. */
  private writeStdio(fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
    const io = this.currentIo();
    const { name, maxOutputBytes } = this.prepared.fn;
    let written = 0;
    try {
      for (const bytes of iovecs(this.memory, iovs, iovsLen)) {
        if (fd === STDOUT_FD && io.forInvocation && this.command.responseFile === null) {
          if (io.stdoutBytes + bytes.length > maxOutputBytes) throw new ThawError('THAW_OUTPUT_TOO_LARGE', { name, limitBytes: maxOutputBytes });
          io.stdoutBytes += bytes.length;
          io.stdout.push(bytes.slice());
        } else {
          const stream = fd === STDOUT_FD ? 'stdout' : 'stderr';
          for (const line of io.lines[stream].push(bytes)) this.ctx.log(stream, line);
          if (fd === STDERR_FD) io.stderrTail = (io.stderrTail + new TextDecoder().decode(bytes)).slice(-STDERR_TAIL_BYTES);
        }
        written += bytes.length;
      }
      new DataView(this.memory.buffer).setUint32(nwrittenPtr >>> 0, written, true);
    } catch (err: unknown) {
      if (err instanceof ThawError) throw err;
      return ERRNO_FAULT;
    }
    return 0;
  }

  /** stdin is the request body (empty during init). */
  private readStdin(iovs: number, iovsLen: number, nreadPtr: number): number {
    const io = this.currentIo();
    let read = 0;
    try {
      for (const dst of iovecs(this.memory, iovs, iovsLen)) {
        const chunk = io.stdin.subarray(io.stdinOffsetBytes, io.stdinOffsetBytes + dst.length);
        dst.set(chunk);
        io.stdinOffsetBytes += chunk.length;
        read += chunk.length;
        if (chunk.length < dst.length) break;
      }
      new DataView(this.memory.buffer).setUint32(nreadPtr >>> 0, read, true);
    } catch {
      return ERRNO_FAULT;
    }
    return 0;
  }
}

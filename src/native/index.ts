// The narrow TypeScript face of the native addon (native/): page mapping over Wasm memories, the
// userfaultfd page server, page-cache tools and lz4/zstd codecs. The only module that loads the
// addon and the only place that catches its errors, translating them into catalogue ThawErrors.

import { closeSync, fstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

import { ThawError } from '../core/errors.js';

/** A userfaultfd server handle as the addon sees it: opaque. */
declare const serverHandle: unique symbol;
type ServerHandle = { readonly [serverHandle]: true };

/** Raw statistics returned by the addon's uffdStop. */
interface RawUffdStats {
  faults: number;
  zeroPages: number;
  copiedPages: number;
  prefetchedPages: number;
  prefetchNs: number;
  userModeOnly: boolean;
  recorded: BigUint64Array;
}

type Bytes = ArrayBuffer | ArrayBufferView;

/** The addon's exports (native/binding.c). Offsets and lengths are bytes. */
interface Addon {
  pageSize(): number;
  mapFile(buffer: ArrayBuffer, offset: number, length: number, fd: number, fileOffset: number, shared: boolean): void;
  mapAnonymous(buffer: ArrayBuffer, offset: number, length: number): void;
  madviseDontneed(buffer: ArrayBuffer, offset: number, length: number): void;
  touchPages(buffer: ArrayBuffer, offset: number, length: number): void;
  madviseHugepage(buffer: ArrayBuffer, offset: number, length: number): void;
  madvisePopulateWrite(buffer: ArrayBuffer, offset: number, length: number): void;
  madvisePopulateRead(buffer: ArrayBuffer, offset: number, length: number): void;
  madviseWillneed(buffer: ArrayBuffer, offset: number, length: number): void;
  discardPages(buffer: ArrayBuffer, offsets: Float64Array, anon: boolean): void;
  copyInto(target: ArrayBuffer, targetOffset: number, source: Bytes): number;
  mincore(fd: number, length: number): Uint8Array;
  residentBytes(buffer: ArrayBuffer, offset: number, length: number): number;
  fadvise(fd: number, offset: number, length: number, advice: FadviseAdvice): void;
  readDirect(path: string, offset: number, length: number): ArrayBuffer;
  pageFaultCounts(): PageFaultCounts;
  poolReserve(lengthBytes: number): number;
  poolAvailable(): number;
  poolRelease(): void;
  poolMoveRuns(buffer: ArrayBuffer, runs: Float64Array): number;
  uffdCreate(buffer: ArrayBuffer, offset: number, length: number, source: object): ServerHandle;
  uffdWaitPrefetch(handle: ServerHandle): void;
  uffdStop(handle: ServerHandle, fill: boolean): RawUffdStats;
  lz4Compress(source: Bytes, acceleration: number): ArrayBuffer;
  zstdCompress(source: Bytes, level: number): ArrayBuffer;
  lz4Decompress(source: Bytes, target: ArrayBuffer, offset: number, length: number): number;
  zstdDecompress(source: Bytes, target: ArrayBuffer, offset: number, length: number): number;
  fill(fd: number, target: ArrayBuffer, jobs: Float64Array, scratch: Bytes | null, scratchPerThread: number, threads: number): RawFillResult;
  jailLockExec(): void;
  uffdUseDevice(fd: number): void;
  omStart(buffer: ArrayBuffer): OffloadHandle;
  omExtend(handle: OffloadHandle, buffer: ArrayBuffer): void;
  omSetFile(handle: OffloadHandle, fd: number): void;
  omConnect(handle: OffloadHandle, socketPath: string, timeoutMs: number): void;
  omScan(handle: OffloadHandle, what: 0 | 1 | 2): Uint8Array;
  omOffload(handle: OffloadHandle, tier: number, pages: Uint32Array): number;
  omPrefetch(handle: OffloadHandle, pages: Uint32Array): number;
  omStats(handle: OffloadHandle): RawOffloadStats;
  omStop(handle: OffloadHandle, fill: boolean): void;
  omPassSocket(unixFd: number, tcpFd: number): void;
  swappedBytes(memory: ArrayBuffer): number;
  fcRecv(fd: number, timeoutMs: number): RawFcHandshake;
  fcStart(options: object): ServerHandle;
  fcStop(handle: ServerHandle): FcServeStats;
  fcDataExtents(fd: number): Float64Array;
  sealedCreate(bytes: number): number;
  sealedSeal(fd: number): void;
  sealedIsSealed(fd: number): boolean;
  sealedPut(key: string, fd: number, bytes: number, budgetBytes: number): void;
  sealedGet(key: string): number;
  sealedDrop(key: string): void;
  sealedChannel(): [number, number];
  sealedSend(socket: number, key: string, fd: number): void;
  sealedRecv(socket: number): [string, number][];
  zeroDirtyPages(buffer: ArrayBuffer, spans: Float64Array): number;
  sealedCopy(fd: number, buffer: ArrayBuffer, spans: Float64Array, threads: number): void;
  nonZeroSpans(buffer: ArrayBuffer): Float64Array | null;
}

/** One message received on a Firecracker page-server socket (native/thaw_fc.c). */
interface RawFcHandshake {
  /** The message bytes as latin1 (one char per byte). */
  body: string;
  /** The fd passed with SCM_RIGHTS, or -1. */
  fd: number;
  /** The peer's pid (SO_PEERCRED), 0 if unknown. */
  pid: number;
}

declare const offloadHandle: unique symbol;
type OffloadHandle = { readonly [offloadHandle]: true };

interface RawFillResult {
  bytesRead: number;
  threads: number;
}

/** The addon's error shape: `code` is the errno name (or ERR_INVALID_ARG_VALUE), `syscall` the call. */
interface NativeError extends Error {
  code?: string;
  syscall?: string;
}

/** Where node-gyp puts the addon, relative to this file in both src/native and dist/native. */
const ADDON_PATH = '../../native/build/Release/thaw_native.node';

let loaded: Addon | undefined;

function addon(): Addon {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON_PATH) as Addon;
    } catch (err: unknown) {
      throw new ThawError('THAW_INTERNAL', { detail: `native addon not built (run npm run setup): ${errorText(err)}` }, { cause: err });
    }
  }
  return loaded;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Translates an error thrown by the addon into a ThawError, keeping the original as `cause`.
 * userfaultfd refused (EPERM, ENOSYS) becomes THAW_STRATEGY_UNAVAILABLE for `strategy`; every
 * other failure is THAW_INTERNAL, its detail naming the function, the syscall and the errno name.
 */
export function translateNativeError(fn: string, err: unknown, strategy = 'uffd'): ThawError {
  if (err instanceof ThawError) return err;
  const native = err as NativeError;
  const code = typeof native?.code === 'string' ? native.code : 'UNKNOWN';
  if (fn === 'uffdCreate' && native?.syscall === 'userfaultfd' && (code === 'EPERM' || code === 'ENOSYS')) {
    const why = code === 'EPERM'
      ? 'needs root, CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1'
      : 'the kernel has no userfaultfd (CONFIG_USERFAULTFD)';
    return new ThawError('THAW_STRATEGY_UNAVAILABLE', { strategy, reason: `userfaultfd: ${code}: ${why}` }, { cause: err });
  }
  return new ThawError('THAW_INTERNAL', { detail: `native ${fn}: ${errorText(err)} (${code})` }, { cause: err });
}

/** Calls addon function `fn`, translating anything it throws. */
function call<K extends keyof Addon>(fn: K, ...args: Parameters<Addon[K]>): ReturnType<Addon[K]> {
  const native = addon();
  try {
    return (native[fn] as (...a: Parameters<Addon[K]>) => ReturnType<Addon[K]>)(...args);
  } catch (err: unknown) {
    throw translateNativeError(fn, err);
  }
}

/** The host page size in bytes; every offset and length given to a mapping function is a multiple of it. */
export function hostPageSizeBytes(): number {
  return call('pageSize');
}

/** Options of mapFile. */
export interface MapFileOptions {
  /** true (default): MAP_PRIVATE, guest writes stay in memory; false: MAP_SHARED, writes reach the file. */
  readonly private?: boolean;
}

/**
 * Maps `lengthBytes` of the file `fd` (from `fileOffsetBytes`) over bytes [offsetBytes,
 * offsetBytes+lengthBytes) of a live Wasm memory's buffer, with MAP_FIXED. The range must lie
 * inside `memory.byteLength` (never the guard region) and be page aligned; the fd may be closed
 * afterwards. memory.grow keeps working. Throws THAW_INTERNAL (bad range, or mmap's errno).
 */
export function mapFile(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number, fd: number,
  fileOffsetBytes = 0, options: MapFileOptions = {}): void {
  call('mapFile', memory, offsetBytes, lengthBytes, fd, fileOffsetBytes, options.private === false);
}

/** Puts fresh zero pages back over a page-aligned range of a Wasm memory (MAP_FIXED|MAP_ANONYMOUS). Throws THAW_INTERNAL. */
export function mapAnonymous(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('mapAnonymous', memory, offsetBytes, lengthBytes);
}

/** madvise(MADV_DONTNEED) over a page-aligned range: anonymous pages read as zero again, file-mapped ones as the file. Throws THAW_INTERNAL. */
export function madviseDontneed(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('madviseDontneed', memory, offsetBytes, lengthBytes);
}

/** Writes one byte per page (the byte already there) so every page of the range is resident and writable. Throws THAW_INTERNAL. */
export function touchPages(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('touchPages', memory, offsetBytes, lengthBytes);
}

/**
 * madvise(MADV_HUGEPAGE) over a page-aligned range: with THP in "madvise" mode, later faults
 * install 2 MiB pages (one fault per 512 small pages). Throws THAW_INTERNAL (EINVAL without THP).
 */
export function madviseHugepage(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('madviseHugepage', memory, offsetBytes, lengthBytes);
}

/**
 * madvise(MADV_POPULATE_WRITE) over a page-aligned range: faults every page in, writable, in one
 * call (Linux 5.14+), contents unchanged. Throws THAW_INTERNAL (EINVAL on older kernels).
 */
export function madvisePopulateWrite(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('madvisePopulateWrite', memory, offsetBytes, lengthBytes);
}

/**
 * madvise(MADV_POPULATE_READ) over a page-aligned range: maps every page in for reading in one
 * call (Linux 5.14+), e.g. a file mapping's cached pages without a fault each; contents unchanged,
 * a later write still copies on write. Throws THAW_INTERNAL (EINVAL on older kernels).
 */
export function madvisePopulateRead(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('madvisePopulateRead', memory, offsetBytes, lengthBytes);
}

/** madvise(MADV_WILLNEED) over a page-aligned range (a hint; on anonymous memory it populates nothing). Throws THAW_INTERNAL. */
export function madviseWillneed(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): void {
  call('madviseWillneed', memory, offsetBytes, lengthBytes);
}

/**
 * Gives back single pages of a Wasm memory, one system call per page (a balloon device's
 * granularity): madvise(MADV_DONTNEED), or with `anonymous` fresh anonymous memory mapped over
 * each page (for memory that may be a private file mapping). Throws THAW_INTERNAL.
 */
export function discardPages(memory: ArrayBuffer, pageOffsets: Float64Array, anonymous: boolean): void {
  call('discardPages', memory, pageOffsets, anonymous);
}

/** Copies all of `source` into `target` at `targetOffsetBytes` (memcpy; no alignment needed). Returns the bytes copied. Throws THAW_INTERNAL. */
export function copyInto(target: ArrayBuffer, targetOffsetBytes: number, source: ArrayBuffer | ArrayBufferView): number {
  return call('copyInto', target, targetOffsetBytes, source);
}

/** Page-cache residency of a file's first `lengthBytes` (default: its size), one byte per page, 1 = resident. Throws THAW_INTERNAL. */
export function mincore(file: number | string, lengthBytes?: number): Uint8Array {
  return withFd(file, (fd) => call('mincore', fd, lengthBytes ?? fstatSync(fd).size));
}

/** posix_fadvise advice names. */
/**
 * Bytes of a page-aligned range of `memory` (e.g. a guest's linear memory) resident in this
 * process now, by mincore(2) over the range: the guest's real footprint, not its declared size.
 */
export function residentBytes(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number): number {
  return call('residentBytes', memory, offsetBytes, lengthBytes);
}

export type FadviseAdvice = 'dontneed' | 'willneed' | 'sequential' | 'random' | 'normal';

/** posix_fadvise on a file range (lengthBytes 0 = to the end); 'dontneed' drops clean cached pages. Throws THAW_INTERNAL. */
export function fadvise(file: number | string, offsetBytes: number, lengthBytes: number, advice: FadviseAdvice): void {
  withFd(file, (fd) => call('fadvise', fd, offsetBytes, lengthBytes, advice));
}

/** Reads a page-aligned range with O_DIRECT into a page-aligned buffer (shorter at end of file). Throws THAW_INTERNAL (EINVAL where the filesystem has no O_DIRECT, e.g. tmpfs). */
export function readDirect(path: string, offsetBytes: number, lengthBytes: number): Uint8Array {
  return new Uint8Array(call('readDirect', path, offsetBytes, lengthBytes));
}

/** Minor and major page faults of this process so far (getrusage). */
export interface PageFaultCounts {
  readonly minor: number;
  readonly major: number;
}

/** The process's page-fault counters (getrusage RUSAGE_SELF). Throws THAW_INTERNAL. */
export function pageFaultCounts(): PageFaultCounts {
  return call('pageFaultCounts');
}

/**
 * Makes sure this process holds a pool of at least `lengthBytes` of pre-faulted memory
 * (anonymous, 2 MiB aligned, huge-page advised, resident and zero), replacing a smaller pool.
 * Slow (it faults every page in): meant for a sandbox host's prepare step, before any request.
 * Returns the bytes now available. Throws THAW_INTERNAL (mmap, madvise).
 */
export function poolReserve(lengthBytes: number): number {
  return call('poolReserve', lengthBytes);
}

/** Bytes of pre-faulted memory the pool holds now. */
export function poolAvailable(): number {
  return call('poolAvailable');
}

/** Unmaps whatever the pool still holds. */
export function poolRelease(): void {
  call('poolRelease');
}

/**
 * Moves pool memory under each page-aligned run of a Wasm memory's buffer, in order
 * (mremap(MREMAP_FIXED): the run's old pages are dropped, the pool's resident zero pages take
 * their place, with no page faults), until a run does not fit in what the pool has left.
 * Runs of 2 MiB multiples keep their huge pages when the runs' offsets are 2 MiB multiples.
 * Returns how many runs were moved (the rest keep their old mapping). Throws THAW_INTERNAL.
 */
export function poolMoveRuns(memory: ArrayBuffer, runs: readonly PageRun[]): number {
  const pairs = new Float64Array(runs.length * 2);
  runs.forEach((r, i) => pairs.set([r.offsetBytes, r.lengthBytes], i * 2));
  return call('poolMoveRuns', memory, pairs);
}

function withFd<T>(file: number | string, use: (fd: number) => T): T {
  if (typeof file === 'number') return use(file);
  const fd = openSync(file, 'r');
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

/** Where a userfaultfd server reads the pages it installs. */
export interface UffdSource {
  /** Open, readable snapshot file; the server dups it, so the caller may close its own fd. */
  readonly fd: number;
  /** File offset of source page 0 (page aligned). Default 0. */
  readonly fileOffsetBytes?: number;
  /**
   * One entry per page of the range: the source page number holding it, or -1 for a hole
   * (served with UFFDIO_ZEROPAGE). Default: guest page i is source page i, and pages past the
   * end of the file are holes.
   */
  readonly pageMap?: Int32Array;
  /**
   * 'pread' (default): read each chunk into a buffer, then UFFDIO_COPY from it; 'mmap': UFFDIO_COPY
   * straight from a read-only mapping of the source. pread measured faster on this host
   * (limits.bench.ts: about 1.4 vs 0.7 GB/s for 64 KiB chunks from tmpfs).
   */
  readonly read?: 'mmap' | 'pread';
  /**
   * Verified serving: crc32 of each `verifyBytes` piece of the range as the guest must see it.
   * The first fault (or prefetch) in a piece reads all of it, checks it and installs it whole
   * from the checked buffer. A mismatch aborts this process from the server thread (naming
   * THAW_SNAPSHOT_CORRUPT on stderr): the guest must never read those bytes, and a server that
   * cannot serve must not leave it zeros. stop({remaining: 'fill'}) reports it as THAW_SNAPSHOT_CORRUPT.
   */
  readonly verify?: {
    readonly chunkCrcs: Uint32Array;
    readonly verifyBytes: number;
    /** Readahead cap: a fault right after the previous one's window doubles the window up to this many bytes (each piece checked); any other fault installs its own page. 0 or absent: one page. */
    readonly faultBytes?: number;
  };
}

/** A run of guest bytes [offsetBytes, offsetBytes+lengthBytes), page aligned, relative to the served range. */
export interface PageRun {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** Options of uffdCreate. */
export interface UffdOptions {
  /** Log the offset of every page served on demand, in fault order. Default false. */
  readonly record?: boolean;
  /** Runs installed eagerly by the server thread (UFFDIO_COPY with DONTWAKE, then one UFFDIO_WAKE). */
  readonly prefetch?: readonly PageRun[];
  /** Bytes per UFFDIO_COPY when installing runs (page multiple). Default 64 KiB. */
  readonly chunkBytes?: number;
  /** Strategy id named in THAW_STRATEGY_UNAVAILABLE. Default 'uffd'. */
  readonly strategy?: string;
}

/** What a page server did, returned by UffdServer.stop(). */
export interface UffdStats {
  /** Fault messages handled (a page prefetched after it faulted counts as a fault too). */
  readonly faults: number;
  readonly zeroPages: number;
  readonly copiedPages: number;
  readonly prefetchedPages: number;
  /** Time the server thread spent installing prefetch runs. */
  readonly prefetchNs: number;
  /** True when only user-mode faults are handled (syscalls touching unserved pages get EFAULT). */
  readonly userModeOnly: boolean;
  /** Offsets (bytes, relative to the served range) of pages installed on demand, in fault order; empty unless record. */
  readonly recorded: BigUint64Array;
}

/** What stop() does with pages never served: install them all ('fill') or make the range PROT_NONE ('fence', default). */
export interface UffdStopOptions {
  readonly remaining?: 'fill' | 'fence';
}

/**
 * A running userfaultfd page server for one range of a Wasm memory. Its fault loop runs on its
 * own pthread, so the JS thread can block in Wasm while faults are served; no JS runs on the
 * fault path. If the server cannot serve a page it aborts the process rather than let the
 * guest read zeros.
 */
export class UffdServer {
  #handle: ServerHandle | undefined;

  /** @internal use uffdCreate. */
  constructor(handle: ServerHandle) {
    this.#handle = handle;
  }

  /** True until stop(). */
  get running(): boolean {
    return this.#handle !== undefined;
  }

  /** Blocks until the prefetch runs are installed (at once when there are none). Throws THAW_INTERNAL after stop(). */
  waitPrefetch(): void {
    call('uffdWaitPrefetch', this.#running('waitPrefetch'));
  }

  /**
   * Stops the server: joins its thread, closes its fds and returns its statistics. Unserved
   * pages are filled or fenced (see UffdStopOptions) before the uffd closes, because a closed
   * uffd would let them read as zero. map/mapAnonymous over a fenced range makes it usable again.
   * Throws THAW_INTERNAL (fill failed: the range is fenced; or already stopped).
   */
  stop(options: UffdStopOptions = {}): UffdStats {
    const handle = this.#running('stop');
    this.#handle = undefined;
    return call('uffdStop', handle, options.remaining === 'fill');
  }

  #running(what: string): ServerHandle {
    if (this.#handle === undefined) throw new ThawError('THAW_INTERNAL', { detail: `UffdServer.${what}() after stop()` });
    return this.#handle;
  }
}

/**
 * Maps fresh anonymous memory over a page-aligned range of a Wasm memory (its old contents are
 * dropped), registers it with a new userfaultfd for MISSING faults and starts the server thread.
 * Throws THAW_STRATEGY_UNAVAILABLE {strategy, reason} when userfaultfd is refused (EPERM, ENOSYS),
 * THAW_INTERNAL otherwise (bad range or page map, unreadable source, ...).
 */
export function uffdCreate(memory: ArrayBuffer, offsetBytes: number, lengthBytes: number,
  source: UffdSource, options: UffdOptions = {}): UffdServer {
  const runs = options.prefetch ?? [];
  const prefetch = new Float64Array(runs.length * 2);
  runs.forEach((run, i) => prefetch.set([run.offsetBytes, run.lengthBytes], i * 2));
  const raw = {
    fd: source.fd,
    fileOffsetBytes: source.fileOffsetBytes ?? 0,
    pageMap: source.pageMap,
    pread: source.read !== 'mmap',
    record: options.record === true,
    prefetch: runs.length > 0 ? prefetch : undefined,
    chunkBytes: options.chunkBytes,
    chunkCrcs: source.verify?.chunkCrcs,
    verifyBytes: source.verify?.verifyBytes,
    faultBytes: source.verify?.faultBytes,
  };
  const native = addon();
  try {
    return new UffdServer(native.uffdCreate(memory, offsetBytes, lengthBytes, raw));
  } catch (err: unknown) {
    throw translateNativeError('uffdCreate', err, options.strategy ?? 'uffd');
  }
}

/** Whether this host lets Thaw serve faults with userfaultfd, and if not, why. */
export type UffdAvailability = { readonly available: true } | { readonly available: false; readonly reason: string };

let availability: UffdAvailability | undefined;

/** Probes userfaultfd once (a one-page server on a scratch memory) and caches the answer. */
/**
 * Forbids execve and execveat to every thread of this process, for good (a seccomp filter with
 * TSYNC). A jailed sandbox host calls it first thing: its jailer needed execve to start it.
 * Throws THAW_INTERNAL when the kernel refuses.
 */
export function jailLockExec(): void {
  call('jailLockExec');
}

/**
 * Makes page servers create their userfaultfds from `fd`, an open /dev/userfaultfd (a jailed host
 * gets one from its jailer: unprivileged, it may not call userfaultfd() for kernel-mode faults).
 */
export function uffdUseDevice(fd: number): void {
  call('uffdUseDevice', fd);
  availability = undefined;
}

export function uffdAvailability(): UffdAvailability {
  if (availability === undefined) {
    const scratch = new WebAssembly.Memory({ initial: 1 });
    const fd = openSync('/dev/null', 'r');
    try {
      uffdCreate(scratch.buffer, 0, hostPageSizeBytes(), { fd }).stop();
      availability = { available: true };
    } catch (err: unknown) {
      const reason = err instanceof ThawError && err.code === 'THAW_STRATEGY_UNAVAILABLE' ? String(err.params.reason) : errorText(err);
      availability = { available: false, reason };
    } finally {
      closeSync(fd);
    }
  }
  return availability;
}

/** Block codecs for snapshot partitions: lz4 (block format) and zstd (frame format). */
export type Codec = 'lz4' | 'zstd';

/**
 * Compresses `source`; `level` is the lz4 acceleration (default 1) or the zstd level (default 1).
 * Throws THAW_INTERNAL.
 */
export function compress(codec: Codec, source: ArrayBuffer | ArrayBufferView, level = 1): Uint8Array {
  return new Uint8Array(codec === 'lz4' ? call('lz4Compress', source, level) : call('zstdCompress', source, level));
}

/**
 * Decompresses `source` straight into target bytes [targetOffsetBytes, +lengthBytes), e.g. a
 * partition into its place in a Wasm memory. The decoded size must be exactly lengthBytes.
 * Throws THAW_INTERNAL (corrupt or mis-sized input: EBADMSG, ENOSPC).
 */
export function decompressInto(codec: Codec, source: ArrayBuffer | ArrayBufferView, target: ArrayBuffer,
  targetOffsetBytes: number, lengthBytes: number): void {
  call(codec === 'lz4' ? 'lz4Decompress' : 'zstdDecompress', source, target, targetOffsetBytes, lengthBytes);
}

/** One piece of a file to put in place in guest memory (fillFromFile). */
export interface FillJob {
  readonly targetOffsetBytes: number;
  /** Bytes it fills in the target; a raw job stores exactly this many. */
  readonly lengthBytes: number;
  readonly fileOffsetBytes: number;
  readonly storedBytes: number;
  readonly codec: Codec | 'raw';
  /** crc32 of the stored bytes, checked before they are decoded (raw: after the read); none: no check. */
  readonly crc?: number | undefined;
}

/** What fillFromFile did: every job done, or the first one (in job order) that failed and why. */
export type FillResult =
  | { readonly ok: true; readonly bytesRead: number; readonly threads: number }
  | { readonly ok: false; readonly job: number; readonly reason: 'short' | 'crc' | 'decode' };

const CODEC_FLAGS = { raw: 0, lz4: 1, zstd: 2 } as const;
const FILL_REASONS = { THAW_FILL_SHORT: 'short', THAW_FILL_CRC: 'crc', THAW_FILL_DECODE: 'decode' } as const;
/** Most threads a fill uses (the addon's limit). */
export const MAX_FILL_THREADS = 16;
/**
 * Threads a restore fills with: one more than the cores, so one thread's wait for the disk
 * overlaps the others' copying and decoding (256 MiB lz4 from the page cache here: 1 thread
 * ~85 ms, 2-3 threads ~55-60 ms).
 */
export const FILL_THREADS = Math.min(MAX_FILL_THREADS, availableParallelism() + 1);

/**
 * Scratch memory for compressed jobs, kept for the life of the process: after the first fill its
 * pages are resident, so reading into it costs no fresh page faults (12-17 us each on this kind
 * of host; a fresh 64 MiB buffer would cost more than the decompression).
 */
let scratch = Buffer.alloc(0);

/**
 * Puts `jobs` (pieces of the file `fd`) in place in `target` on `threads` threads at once (the
 * caller's among them): raw jobs are read straight into place, compressed ones read into scratch
 * memory and decoded into place; each job's crc32, when given, is checked before it is decoded.
 * Jobs are taken in order, so file-ordered jobs give near-sequential reads. The target ranges
 * must be writable (mapped) and disjoint. On a data failure the remaining jobs may not have run.
 * Throws THAW_INTERNAL (a read's errno, bad arguments).
 */
export function fillFromFile(fd: number, target: ArrayBuffer, jobs: readonly FillJob[], threads: number): FillResult {
  const table = new Float64Array(jobs.length * 6);
  let perThread = 0;
  jobs.forEach((j, i) => {
    table.set([j.targetOffsetBytes, j.lengthBytes, j.fileOffsetBytes, j.storedBytes, j.crc ?? 0, CODEC_FLAGS[j.codec] | (j.crc === undefined ? 0 : 256)], i * 6);
    if (j.codec !== 'raw') perThread = Math.max(perThread, j.storedBytes);
  });
  const n = Math.max(1, Math.min(MAX_FILL_THREADS, Math.floor(threads), jobs.length));
  if (perThread > 0 && scratch.length < perThread * n) scratch = Buffer.alloc(perThread * n);
  const native = addon();
  try {
    const r = native.fill(fd, target, table, perThread > 0 ? scratch : null, perThread, n);
    return { ok: true, bytesRead: r.bytesRead, threads: r.threads };
  } catch (err: unknown) {
    const e = err as NativeError & { job?: number };
    const reason = FILL_REASONS[e?.code as keyof typeof FILL_REASONS];
    if (reason !== undefined && typeof e.job === 'number') return { ok: false, job: e.job, reason };
    throw translateNativeError('fill', err);
  }
}

/** What the guest-memory offloader has done so far (native/thaw_offload.c). */
export interface RawOffloadStats {
  readonly offloadedPages: number;
  readonly faultedPages: number;
  /** Fault-backs served (each put faultedPages back in runs of up to 32 held pages). */
  readonly faults: number;
  /** Time the server thread spent putting faulted pages back (fetch + UFFDIO_COPY), summed. */
  readonly faultNs: number;
  /** Never-offloaded pages first touched (served as zero pages). */
  readonly zeroPages: number;
  /** Bytes the compressed tier holds now. */
  readonly storedBytes: number;
  /** Pages offloaded and not faulted back. */
  readonly heldPages: number;
  /** Pages brought back in bulk by prefetch() (not counted in faultedPages), and the time it took, summed. */
  readonly prefetchedPages: number;
  readonly prefetchNs: number;
  /** 2: MISSING + write-protect (every tier); 1: write-protect only (a file-mapped range: stages, file tier). */
  readonly mode: number;
  /** Why fetching a page back failed ('' while nothing failed): the memory is fenced from then on. */
  readonly failure: string;
}

/**
 * Bytes of `memory` (a Wasm memory's buffer) on swap now, from this process's pagemap: guest
 * pages reclaimed into a swap device (tmo:compressed's zram). Throws THAW_INTERNAL.
 */
export function swappedBytes(memory: ArrayBuffer): number {
  return call('swappedBytes', memory);
}

/**
 * The memory server's side of the remote tier's greeting: sends the client on the Unix socket
 * `unixFd` the byte 'T' with `tcpFd` (a TCP socket connected to the server) by SCM_RIGHTS; the
 * client's offloader then exchanges pages over it directly (GuestOffloader.connect). The caller
 * still owns both fds. Throws THAW_INTERNAL.
 */
export function passMemoryConnection(unixFd: number, tcpFd: number): void {
  call('omPassSocket', unixFd, tcpFd);
}

/** Offload tiers by their native number. */
export const OFFLOAD_TIER_NUMBER = { file: 1, compressed: 2, remote: 3 } as const;

/**
 * One guest memory's userfaultfd for page life stages (write-protect, async mode, PAGEMAP_SCAN)
 * and offloading (MISSING faults served back from a tier by a native thread).
 */
export class GuestOffloader {
  #handle: OffloadHandle | undefined;

  private constructor(handle: OffloadHandle) {
    this.#handle = handle;
  }

  /**
   * Registers all of `memory` (a Wasm memory's buffer) and write-protects it. Returns null when
   * the memory already has a userfaultfd (a restore strategy's page server owns it). Throws
   * THAW_STRATEGY_UNAVAILABLE (userfaultfd refused) or THAW_INTERNAL.
   */
  static start(memory: ArrayBuffer): GuestOffloader | null {
    const native = addon();
    try {
      return new GuestOffloader(native.omStart(memory));
    } catch (err: unknown) {
      if ((err as NativeError).code === 'EBUSY') return null;
      throw translateNativeError('uffdCreate', err, 'offload');
    }
  }

  /** Registers the pages `memory` grew by since start (or the last extend). */
  extend(memory: ArrayBuffer): void {
    call('omExtend', this.#running(), memory);
  }

  /** The snapshot image the file tier compares with and faults back from (byte i = guest byte i). */
  setImage(fd: number): void {
    call('omSetFile', this.#running(), fd);
  }

  /** Connects the remote tier to a memory server's Unix socket. */
  connect(socketPath: string, timeoutMs: number): void {
    call('omConnect', this.#running(), socketPath, timeoutMs);
  }

  /** One byte per page: 1 = written since the last scan with `reset` (which write-protects them again). */
  scan(reset: boolean): Uint8Array {
    return call('omScan', this.#running(), reset ? 1 : 0);
  }

  /** One byte per page: 1 = present (mapped) now. */
  present(): Uint8Array {
    return call('omScan', this.#running(), 2);
  }

  /**
   * Offloads those of `pages` (page numbers) that are resident and not offloaded yet (file tier:
   * only pages byte-identical to the image) and drops them. Returns how many went. Throws
   * THAW_INTERNAL (the failing step and errno; nothing dropped that was not stored).
   */
  offload(tier: keyof typeof OFFLOAD_TIER_NUMBER, pages: Uint32Array): number {
    return call('omOffload', this.#running(), OFFLOAD_TIER_NUMBER[tier], pages);
  }

  /**
   * Brings the held ones of `pages` (page numbers, ascending) back in bulk before the guest
   * touches them: one read of the tier and one UFFDIO_COPY per run of up to 256 pages, installed
   * write-protected (the next scan sees only what the guest writes). Returns how many came back.
   * Throws THAW_INTERNAL; a page that cannot be fetched fences the memory, as a fault would.
   */
  prefetch(pages: Uint32Array): number {
    return call('omPrefetch', this.#running(), pages);
  }

  stats(): RawOffloadStats {
    return call('omStats', this.#running());
  }

  get running(): boolean {
    return this.#handle !== undefined;
  }

  /** Stops the server: held pages are put back ('fill') or the memory is fenced ('fence'). */
  stop(remaining: 'fill' | 'fence'): void {
    const h = this.#running();
    this.#handle = undefined;
    call('omStop', h, remaining === 'fill');
  }

  #running(): OffloadHandle {
    if (this.#handle === undefined) throw new ThawError('THAW_INTERNAL', { detail: 'GuestOffloader used after stop()' });
    return this.#handle;
  }
}

// ---- Firecracker's userfaultfd protocol (native/thaw_fc.c) ----

/** Statistics of a Firecracker page-server session. */
export interface FcServeStats {
  faults: number;
  copiedPages: number;
  zeroPages: number;
  prefetchedPages: number;
  prefetchNs: number;
  removeEvents: number;
  removedPages: number;
  /** Copies that found the page already there (a racing fault or prefetch): counted as served. */
  eexist: number;
  /** Copies refused while a REMOVE event was queued: the fault was served again after it. */
  eagain: number;
  /** Memory-file offsets of the pages faults installed, in order (when recording). */
  recorded: BigUint64Array;
  /** Service time of each fault, ns. */
  serviceNs: Uint32Array;
  /** The fatal error that ended the session (the peer was killed), if any. */
  error?: string;
}

/** What fcReceive got: the message text (latin1), the fd passed with it (or -1) and the peer's pid. */
export type FcHandshake = Readonly<RawFcHandshake>;

/**
 * Waits up to `timeoutMs` for one message on the connected Unix socket `fd` and receives it with
 * the fd passed by SCM_RIGHTS (Firecracker's handshake). Throws THAW_INTERNAL (ETIMEDOUT, ...).
 */
export function fcReceive(fd: number, timeoutMs: number): FcHandshake {
  return call('fcRecv', fd, timeoutMs);
}

/**
 * The data extents of sparse file `fd` (SEEK_DATA / SEEK_HOLE) as [offset, length] pairs in
 * bytes: a Firecracker diff memory file's data is the pages it holds. Throws THAW_INTERNAL.
 */
export function fcDataExtents(fd: number): { offset: number; length: number }[] {
  const flat = call('fcDataExtents', fd);
  const out: { offset: number; length: number }[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ offset: flat[i]!, length: flat[i + 1]! });
  return out;
}

/** Options of fcServe: offsets and lengths in bytes. */
export interface FcServeOptions {
  /** The userfaultfd (taken: closed when the server stops, or now if it cannot start). */
  readonly uffd: number;
  /** Memory file, mapped read-only. */
  readonly memoryFd: number;
  /** Killed on a fatal error (as Firecracker's handlers do). */
  readonly peerPid: number;
  /** The peer's connection fd: shut down on a fatal error, so the session ends even when the peer cannot be killed. */
  readonly peerSocket?: number;
  readonly regions: readonly { readonly base: bigint; readonly size: number; readonly offset: number }[];
  /** crc32 per `pieceBytes` piece of the memory file: every byte installed is checked first. */
  readonly checksums?: { readonly crcs: Uint32Array; readonly pieceBytes: number } | null;
  /** File byte ranges installed before faults are served (working-set replay, fault-all). */
  readonly prefetch?: readonly { readonly offset: number; readonly length: number }[];
  readonly record?: boolean;
  /**
   * Compressed partitions (Sabre): memoryFd then holds stored pieces, each decoded into guest
   * bytes [targetOffsetBytes, +lengthBytes) after its crc32 is checked, on the first fault in it;
   * guest bytes in no partition are zero. Not with checksums.
   */
  readonly partitions?: { readonly memoryBytes: number; readonly jobs: readonly FillJob[] } | null;
}

/** THAW_FILL_* codec ids of native/thaw.h. */
const FC_CODECS = { raw: 0, lz4: 1, zstd: 2 } as const;

/** A running Firecracker page server thread. */
export class FcServer {
  #handle: ServerHandle | null;
  /** @internal use fcServe. */
  constructor(handle: ServerHandle) {
    this.#handle = handle;
  }
  /** Stops the thread, closes the uffd and returns the session's statistics. Once only. */
  stop(): FcServeStats {
    const handle = this.#handle;
    if (handle === null) throw new ThawError('THAW_INTERNAL', { detail: 'FcServer.stop called twice' });
    this.#handle = null;
    return call('fcStop', handle);
  }
}

/** Starts serving faults of another process's userfaultfd. Throws THAW_INTERNAL. */
export function fcServe(options: FcServeOptions): FcServer {
  const regions = new BigUint64Array(options.regions.length * 3);
  options.regions.forEach((r, i) => regions.set([r.base, BigInt(r.size), BigInt(r.offset)], i * 3));
  const runs = options.prefetch ?? [];
  const prefetch = new BigUint64Array(runs.length * 2);
  runs.forEach((r, i) => prefetch.set([BigInt(r.offset), BigInt(r.length)], i * 2));
  return new FcServer(call('fcStart', {
    uffd: options.uffd, srcFd: options.memoryFd, peer: options.peerPid, peerSocket: options.peerSocket ?? -1, regions, prefetch,
    record: options.record === true ? 1 : 0,
    crcs: options.checksums?.crcs, verifyBytes: options.checksums?.pieceBytes,
    ...(options.partitions ? {
      memoryBytes: options.partitions.memoryBytes,
      parts: Float64Array.from(options.partitions.jobs.flatMap((j) => [j.targetOffsetBytes, j.lengthBytes, j.fileOffsetBytes, j.storedBytes, FC_CODECS[j.codec], j.crc ?? 0])),
    } : {}),
  }));
}

// Sealed snapshot images (native/thaw_sealed.c; the `sealed` restore strategy).

/** A new memfd of `bytes` bytes (all holes) that can be sealed. Throws THAW_INTERNAL. */
export function sealedCreate(bytes: number): number {
  return call('sealedCreate', bytes);
}

/** Seals memfd `fd` for good: F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL. Throws THAW_INTERNAL. */
export function sealedSeal(fd: number): void {
  call('sealedSeal', fd);
}

/** Whether `fd` is a memfd with all four seals set (false for anything else). */
export function sealedIsSealed(fd: number): boolean {
  return call('sealedIsSealed', fd);
}

/**
 * Hands `fd` to this process's table of sealed images under `key` (the table closes it when it is
 * dropped, replaced or evicted: least recently used first while the table would hold more than
 * `budgetBytes`, or more than 64 images). The table is shared by every thread of the process.
 */
export function sealedPut(key: string, fd: number, bytes: number, budgetBytes: number): void {
  call('sealedPut', key, fd, bytes, budgetBytes);
}

/** The table's fd for `key` (still owned by the table), or null. */
export function sealedGet(key: string): number | null {
  const fd = call('sealedGet', key);
  return fd < 0 ? null : fd;
}

/** Closes and forgets the table's image `key`, if any. */
export function sealedDrop(key: string): void {
  call('sealedDrop', key);
}

/** A SOCK_SEQPACKET socketpair, both ends close-on-exec: [the daemon's end, the host's end]. */
export function sealedChannel(): [number, number] {
  return call('sealedChannel');
}

/** Sends `fd` with its `key` over `socket` (SCM_RIGHTS; never blocks). Throws THAW_INTERNAL (EAGAIN when the peer's queue is full). */
export function sealedSend(socket: number, key: string, fd: number): void {
  call('sealedSend', socket, key, fd);
}

/** Every message waiting on `socket`: [key, fd] pairs (fd -1 when none came); the caller owns the fds. */
export function sealedRecv(socket: number): [string, number][] {
  return call('sealedRecv', socket);
}

/**
 * Copies `spans` ([offset, length] pairs) of the table's sealed image `fd` to the same offsets of
 * `buffer` on up to `threads` threads (at least 4 MiB each), from a read-only mapping of the
 * image kept after the first copy. Throws THAW_INTERNAL (ENOENT: the table has no image with that
 * fd; ERANGE: a span outside either).
 */
export function sealedCopy(fd: number, buffer: ArrayBuffer, spans: Float64Array, threads: number): void {
  call('sealedCopy', fd, buffer, spans, threads);
}

/** Zeroes the pages of `spans` ([offset, length] pairs, page aligned) of `buffer` that are not zero; returns how many. */
export function zeroDirtyPages(buffer: ArrayBuffer, spans: Float64Array): number {
  return call('zeroDirtyPages', buffer, spans);
}

/** The runs of non-zero pages of `buffer` as [offset, length] pairs, or null when there are more than 65536 runs. */
export function nonZeroSpans(buffer: ArrayBuffer): Float64Array | null {
  return call('nonZeroSpans', buffer);
}

// Daemon and platform settings: the wire shape (DaemonConfig, from flags, env or a file) and
// the validated, frozen shape (DaemonParams). Only parseDaemonConfig converts one to the other.

import { availableParallelism, homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ThawError } from './errors.js';
import type { ObjectStoreConfig } from '../store/object-store.js';
import { parseObjectStoreConfig } from '../store/open-store.js';
import { HOST_LAYOUTS, MAX_INSTANCES_PER_HOST, type HostLayout } from './function-spec.js';

export interface DaemonConfig {
  dataDir?: string | undefined;
  host?: string | undefined;
  port?: number | string | undefined;
  token?: string | undefined;
  /** "embedded" (default: <dataDir>/objects) or a redis:// URL. */
  objectStore?: string | undefined;
  spareHosts?: number | string | undefined;
  preparedPerFunction?: number | string | undefined;
  hostOverheadMiB?: number | string | undefined;
  maxIdleSandboxes?: number | string | undefined;
  maxSandboxes?: number | string | undefined;
  cgroups?: boolean | undefined;
  /** "auto" (default: jail hosts where the daemon can), "required" (refuse to start without) or "off". */
  jail?: string | undefined;
  /** Seconds between scrubs of every snapshot (0 = only on demand). */
  scrubIntervalS?: number | string | undefined;
  /** Seconds a function may go unused before its prepared hosts are retired. */
  preparedIdleS?: number | string | undefined;
  /** Prepared hosts are kept for at most this many (most recently used) functions. */
  maxPreparedFunctions?: number | string | undefined;
  /** Sandbox host processes starting at once, at most (default: the machine's cores); more starts queue. */
  maxHostStarts?: number | string | undefined;
  logLevel?: string | undefined;
  /** Default placement of sandboxes in hosts: "horizontal" (one instance per host, default) or "vertical". */
  layout?: string | undefined;
  /** Default instances per vertical host (a manifest's instancesPerHost overrides it). */
  instancesPerHost?: number | string | undefined;
  /** Idle sandboxes expire after this many seconds (the keep-alive scheduler). */
  keepAliveS?: number | string | undefined;
  /** The memory policy the scheduler calls at sandbox events: none, or a registered one. */
  memoryPolicy?: string | undefined;
  /** Export invocation traces: "zipkin=<url>" (Zipkin v2 JSON) or "otlp=<url>" (OTLP/HTTP). */
  traceExport?: string | undefined;
  /** Share of invocations without a caller's traceparent that are traced, 0..1 (default 1 with traceExport). */
  traceSampleRatio?: number | string | undefined;
  /** Where the harness writes its reports (bench, replay): the dashboard links the report.html files in it. */
  resultsDir?: string | undefined;
}

export const JAIL_MODES = ['auto', 'required', 'off'] as const;
export type JailMode = (typeof JAIL_MODES)[number];

export interface DaemonParams {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly token: string | null;
  readonly objectStore: ObjectStoreConfig;
  readonly spareHosts: number;
  readonly preparedPerFunction: number;
  readonly hostOverheadMiB: number;
  readonly maxIdleSandboxes: number;
  readonly maxSandboxes: number;
  readonly useCgroups: boolean;
  readonly jail: JailMode;
  readonly scrubIntervalMs: number;
  readonly preparedIdleMs: number;
  readonly maxPreparedFunctions: number;
  readonly maxHostStarts: number;
  readonly logLevel: string;
  readonly layout: HostLayout;
  readonly instancesPerHost: number;
  readonly keepAliveS: number;
  readonly memoryPolicy: string;
  readonly traceExport: { readonly protocol: 'zipkin' | 'otlp'; readonly url: string } | null;
  readonly traceSampleRatio: number;
  readonly resultsDir: string;
}

/**
 * Host processes starting at once by default: one per core (a start is a Node process booting and
 * compiling a module, about one core for 0.1-0.3 s; more at once only thrash), at most 8.
 */
export function defaultMaxHostStarts(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/** The default data directory: $THAW_HOME, else ~/.thaw. */
export function defaultDataDir(): string {
  return process.env.THAW_HOME ? resolve(process.env.THAW_HOME) : join(homedir(), '.thaw');
}

/** Validates settings; throws THAW_CONFIG_INVALID naming the bad setting. */
export function parseDaemonConfig(cfg: DaemonConfig): DaemonParams {
  const int = (name: keyof DaemonConfig, value: unknown, dflt: number, min: number, max: number): number => {
    if (value === undefined) return dflt;
    // Number() reads '' and ' ' as 0 and accepts hex and exponents: a string must spell a decimal integer.
    const n = typeof value === 'string' ? (/^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : NaN) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ThawError('THAW_CONFIG_INVALID', { detail: `${name} must be an integer in [${min}, ${max}], got '${String(value)}'` });
    }
    return n;
  };
  const dataDir = resolve(cfg.dataDir ?? defaultDataDir());
  let objectStore: ObjectStoreConfig;
  const store = cfg.objectStore ?? 'embedded';
  if (store === 'embedded') objectStore = { kind: 'embedded', dir: join(dataDir, 'objects') };
  else if (/^redis:\/\//.test(store)) objectStore = parseObjectStoreConfig({ kind: 'redis', url: store });
  else throw new ThawError('THAW_CONFIG_INVALID', { detail: `objectStore must be 'embedded' or a redis:// URL, got '${store}'` });
  const logLevel = cfg.logLevel ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `logLevel '${logLevel}' is not a pino level` });
  }
  const jail = cfg.jail ?? 'auto';
  if (!(JAIL_MODES as readonly string[]).includes(jail)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `jail must be one of ${JAIL_MODES.join(', ')}, got '${jail}'` });
  const layout = cfg.layout ?? 'horizontal';
  if (!(HOST_LAYOUTS as readonly string[]).includes(layout)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `layout must be one of ${HOST_LAYOUTS.join(', ')}, got '${layout}'` });
  let traceExport: DaemonParams['traceExport'] = null;
  if (cfg.traceExport !== undefined && cfg.traceExport !== '') {
    const m = /^(zipkin|otlp)=(https?:\/\/\S+)$/.exec(cfg.traceExport);
    if (!m) throw new ThawError('THAW_CONFIG_INVALID', { detail: `traceExport must be zipkin=<http(s) url> or otlp=<http(s) url>, got '${cfg.traceExport}'` });
    traceExport = Object.freeze({ protocol: m[1] as 'zipkin' | 'otlp', url: m[2]! });
  }
  const ratio = cfg.traceSampleRatio === undefined ? 1 : typeof cfg.traceSampleRatio === 'number' ? cfg.traceSampleRatio : /^\s*(0|1|0?\.\d+|1\.0*)\s*$/.test(cfg.traceSampleRatio) ? Number(cfg.traceSampleRatio) : NaN;
  if (!(ratio >= 0 && ratio <= 1)) throw new ThawError('THAW_CONFIG_INVALID', { detail: `traceSampleRatio must be a number in [0, 1], got '${String(cfg.traceSampleRatio)}'` });
  return Object.freeze({
    dataDir,
    host: cfg.host ?? '127.0.0.1',
    port: int('port', cfg.port, 7070, 0, 65535),
    token: cfg.token ?? process.env.THAW_TOKEN ?? null,
    objectStore,
    spareHosts: int('spareHosts', cfg.spareHosts, 1, 0, 64),
    preparedPerFunction: int('preparedPerFunction', cfg.preparedPerFunction, 1, 0, 64),
    hostOverheadMiB: int('hostOverheadMiB', cfg.hostOverheadMiB, 384, 64, 65536),
    maxIdleSandboxes: int('maxIdleSandboxes', cfg.maxIdleSandboxes, 16, 0, 1024),
    maxSandboxes: int('maxSandboxes', cfg.maxSandboxes, 64, 1, 4096),
    useCgroups: cfg.cgroups ?? true,
    jail: jail as JailMode,
    scrubIntervalMs: int('scrubIntervalS', cfg.scrubIntervalS, 0, 0, 30 * 86400) * 1000,
    preparedIdleMs: int('preparedIdleS', cfg.preparedIdleS, 600, 1, 86400) * 1000,
    maxPreparedFunctions: int('maxPreparedFunctions', cfg.maxPreparedFunctions, 8, 0, 1024),
    maxHostStarts: int('maxHostStarts', cfg.maxHostStarts, defaultMaxHostStarts(), 1, 64),
    logLevel,
    layout: layout as HostLayout,
    instancesPerHost: int('instancesPerHost', cfg.instancesPerHost, 4, 1, MAX_INSTANCES_PER_HOST),
    keepAliveS: int('keepAliveS', cfg.keepAliveS, 600, 0, 7 * 86400),
    // Checked against the registered policies when the platform starts (scheduler.ts).
    memoryPolicy: cfg.memoryPolicy ?? 'none',
    traceExport,
    traceSampleRatio: ratio,
    resultsDir: resolve(cfg.resultsDir ?? 'results'),
  });
}

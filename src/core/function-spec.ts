// Function manifests: the wire shape a user writes (FunctionConfig) and the validated,
// frozen shape the core uses (FunctionParams). Only parseFunctionConfig converts one into the other.

import { ThawError } from './errors.js';

export const RUNTIME_IDS = ['wasi', 'python'] as const;
export type RuntimeId = (typeof RUNTIME_IDS)[number];

/** A function manifest as written by a user (function.json). Paths are relative to the manifest. */
export interface FunctionConfig {
  name?: unknown;
  runtime?: unknown;
  /** wasi: path to the .wasm module. */
  module?: unknown;
  /** python: path to the handler .py file. */
  source?: unknown;
  /** Sandbox memory limit in MiB (default 256 for wasi, 512 for python). */
  memoryMiB?: unknown;
  /** wasi: exported handler function (default "handle"); python: handler function (default "handler"). */
  handler?: unknown;
  /** Handler timeout in ms (default 30000): the handler alone, not boot, init or restore. */
  timeoutMs?: unknown;
  /** Budget in ms of a sandbox's boot and init, or restore, and of a snapshot (default 60000). */
  initTimeoutMs?: unknown;
  /** Largest accepted request body in bytes (default 6 MiB, as AWS Lambda's synchronous limit). */
  maxInputBytes?: unknown;
  /** Largest output an invocation may return, in bytes (default 6 MiB, as maxInputBytes). */
  maxOutputBytes?: unknown;
  /** Free-form description shown by `thaw fn list`. */
  description?: unknown;
  /**
   * How sandboxes of this function are placed in host processes: "horizontal" (one instance per
   * host) or "vertical" (several instances per host, sharing the compiled module). Default: the
   * daemon's --layout.
   */
  layout?: unknown;
  /** vertical: instances one host carries at most (default: the daemon's --instances-per-host). */
  instancesPerHost?: unknown;
}

export const HOST_LAYOUTS = ['horizontal', 'vertical'] as const;
export type HostLayout = (typeof HOST_LAYOUTS)[number];
/** Most instances one vertical host may carry (its memory cgroup holds all of them). */
export const MAX_INSTANCES_PER_HOST = 64;

/** A validated function manifest. Artefact paths are absolute. */
export interface FunctionParams {
  readonly name: string;
  readonly runtime: RuntimeId;
  /** Absolute path of the module (wasi) or handler source (python) as given at deploy. */
  readonly artefactPath: string;
  readonly memoryMiB: number;
  readonly handler: string;
  readonly timeoutMs: number;
  readonly initTimeoutMs: number;
  readonly maxInputBytes: number;
  /** Enforced in the sandbox host: a larger output never crosses to the daemon. */
  readonly maxOutputBytes: number;
  readonly description: string;
  /** Placement in hosts, when the manifest chose it (else the daemon's default applies). */
  readonly layout?: HostLayout;
  /** vertical: instances per host, when the manifest chose it. */
  readonly instancesPerHost?: number;
}

const KNOWN_FIELDS = new Set(['name', 'runtime', 'module', 'source', 'memoryMiB', 'handler', 'timeoutMs', 'initTimeoutMs', 'maxInputBytes', 'maxOutputBytes', 'description', 'layout', 'instancesPerHost']);
const NAME_RE = /^[a-z0-9][a-z0-9-_]{0,62}$/;

/** Validates a manifest. Throws THAW_CONFIG_INVALID naming the first bad field. */
export function parseFunctionConfig(raw: unknown, resolvePath: (p: string) => string): FunctionParams {
  const bad = (detail: string): never => {
    throw new ThawError('THAW_CONFIG_INVALID', { detail });
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('function manifest must be a JSON object');
  const cfg = raw as Record<string, unknown>;
  for (const key of Object.keys(cfg)) if (!KNOWN_FIELDS.has(key)) bad(`unknown field '${key}' in function manifest`);

  if (typeof cfg.name !== 'string' || !NAME_RE.test(cfg.name)) bad("'name' must match " + NAME_RE.source);
  const name = cfg.name as string;
  if (cfg.runtime !== 'wasi' && cfg.runtime !== 'python') {
    throw new ThawError('THAW_RUNTIME_UNKNOWN', { runtime: String(cfg.runtime) });
  }
  const runtime: RuntimeId = cfg.runtime;
  const artefactField = runtime === 'wasi' ? 'module' : 'source';
  const other = runtime === 'wasi' ? 'source' : 'module';
  if (cfg[other] !== undefined) bad(`'${other}' does not apply to runtime '${runtime}' (use '${artefactField}')`);
  const artefact = cfg[artefactField];
  if (typeof artefact !== 'string' || artefact.length === 0) bad(`'${artefactField}' is required for runtime '${runtime}'`);

  const int = (field: string, dflt: number, min: number, max: number): number => {
    const v = cfg[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`'${field}' must be an integer in [${min}, ${max}]`);
    return v as number;
  };
  const handler = cfg.handler ?? (runtime === 'wasi' ? 'handle' : 'handler');
  if (typeof handler !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(handler)) bad("'handler' must be an identifier");
  if (cfg.description !== undefined && typeof cfg.description !== 'string') bad("'description' must be a string");
  if (cfg.layout !== undefined && !HOST_LAYOUTS.includes(cfg.layout as HostLayout)) bad(`'layout' must be one of ${HOST_LAYOUTS.join(', ')}`);
  if (cfg.instancesPerHost !== undefined && cfg.layout === 'horizontal') bad("'instancesPerHost' applies to layout 'vertical' only (a horizontal host carries one instance)");

  return Object.freeze({
    name,
    runtime,
    artefactPath: resolvePath(artefact as string),
    // Pyodide's own heap starts at about 30 MiB: a smaller python sandbox cannot boot.
    memoryMiB: int('memoryMiB', runtime === 'wasi' ? 256 : 512, runtime === 'wasi' ? 1 : 48, 4096),
    handler: handler as string,
    timeoutMs: int('timeoutMs', 30_000, 1, 15 * 60_000),
    // Generous: Pyodide boots in about 3 s on a quiet host, far more under load.
    initTimeoutMs: int('initTimeoutMs', 60_000, 1, 15 * 60_000),
    maxInputBytes: int('maxInputBytes', 6 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    maxOutputBytes: int('maxOutputBytes', 6 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    description: (cfg.description as string | undefined) ?? '',
    ...(cfg.layout !== undefined && { layout: cfg.layout as HostLayout }),
    ...(cfg.instancesPerHost !== undefined && { instancesPerHost: int('instancesPerHost', 1, 1, MAX_INSTANCES_PER_HOST) }),
  });
}

// Function manifests: the wire shape a user writes (FunctionConfig) and the validated,
// frozen shape the core uses (FunctionParams). Only parseFunctionConfig converts one into the other.

import { ThawError } from './errors.js';
import { DEFAULT_SCALING, POPULATE_METHODS, SCALING_IDS, type ScalingSpec } from '../memory/scaling/scaling.js';

export const RUNTIME_IDS = ['wasi', 'python', 'firecracker'] as const;
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
  /** wasi commands (modules exporting `_start`) only: see CommandConfig. */
  command?: unknown;
  /**
   * Memory scaling per invocation: "none" (default), "balloon" or "faascale", or an object
   * {mechanism, blockMiB, grantMiB, populate, baseMiB} (src/memory/scaling/scaling.ts).
   */
  scaling?: unknown;
  /**
   * How sandboxes of this function are placed in host processes: "horizontal" (one instance per
   * host) or "vertical" (several instances per host, sharing the compiled module). Default: the
   * daemon's --layout.
   */
  layout?: unknown;
  /** vertical: instances one host carries at most (default: the daemon's --instances-per-host). */
  instancesPerHost?: unknown;
  /** python only: a directory or .zip of further modules and data files, copied at deploy (docs/python-runtime.md). */
  bundle?: unknown;
  /** python only: local pure-Python wheels (.whl) or package directories, installed at deploy; never fetched. */
  requirements?: unknown;
  /** python only: package names from a local Pyodide package directory's pyodide-lock.json, installed at deploy. */
  packages?: unknown;
  /** python only: that directory (default: the deploying process's THAW_PYODIDE_PACKAGES). */
  pyodidePackages?: unknown;
  /** firecracker: path to the guest's root filesystem (ext4), the function's artefact. */
  rootfs?: unknown;
  /** firecracker only: see FirecrackerConfig. */
  firecracker?: unknown;
}

/**
 * A Firecracker microVM function (README "Firecracker microVMs"): `{ "kernel": "vmlinux",
 * "vsockPort": 5000, "invokePath": "/invoke", "vcpus": 1, "bootArgs": "..." }`; kernel required.
 * The guest serves HTTP on vsock port `vsockPort`: each invocation is a POST of the input to
 * `invokePath`, whose 200 reply body is the output.
 */
export interface FirecrackerParams {
  /** Absolute path of the uncompressed guest kernel (vmlinux), as given at deploy. */
  readonly kernelPath: string;
  readonly vsockPort: number;
  readonly invokePath: string;
  readonly vcpus: number;
  readonly bootArgs: string;
}

/** A python function's bundle (docs/python-runtime.md "Bundles"): absolute paths as given at deploy. */
export interface PythonBundleParams {
  /** Directory or .zip whose root is the handler's own directory (modules, data files), or null. */
  readonly app: string | null;
  /** Pure-Python wheels (.whl) and package directories. */
  readonly requirements: readonly string[];
  /** Package names from a Pyodide package directory's lock file (dependencies added at deploy). */
  readonly packages: readonly string[];
  /** That directory as given in the manifest, or null (deploy then reads THAW_PYODIDE_PACKAGES). */
  readonly pyodidePackages: string | null;
}

/**
 * How a WASI command (a module exporting `_start`) is run per invocation (docs/abi.md):
 * `{ "args": [...], "env": {...}, "dirs": { "/guest/path": "host/dir" },
 *    "scratch": { "path": "/tmp", "seed": "host/dir" }, "responseFile": "/tmp/out" }`, every field optional.
 */
export interface CommandParams {
  /** argv[1..] (argv[0] is the function's name). */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Directories of the function's bundle, preopened read-only; copied into the function's directory at deploy. */
  readonly dirs: readonly CommandDir[];
  /** A writable directory made afresh for each invocation and removed after it, or null. */
  readonly scratch: { readonly guestPath: string; readonly seed: CommandDir | null } | null;
  /**
   * A file in the scratch directory (a guest path) whose bytes are the response instead of stdout,
   * for programs that write their result to a file (stdout then goes to the log); or null.
   */
  readonly responseFile: string | null;
}

/** A bundle directory: where the guest sees it, where deploy found it, its name in the function's directory. */
export interface CommandDir {
  readonly guestPath: string;
  /** Absolute path the directory was copied from at deploy. */
  readonly sourcePath: string;
  /** Name of the copy beside the deployed module (`bundle-<i>`, `scratch-seed`). */
  readonly bundleName: string;
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
  /** wasi only: how a command module runs, when the manifest says (absent: a command gets no args, env or directories). */
  readonly command?: CommandParams;
  /** How the sandbox's memory follows each invocation (none, balloon, faascale); absent = none. */
  readonly scaling?: ScalingSpec;
  /** Placement in hosts, when the manifest chose it (else the daemon's default applies). */
  readonly layout?: HostLayout;
  /** vertical: instances per host, when the manifest chose it. */
  readonly instancesPerHost?: number;
  /** python only: the bundle and requirements, when the manifest gives either. */
  readonly python?: PythonBundleParams;
  /** firecracker only: the microVM's kernel and invoke endpoint. */
  readonly firecracker?: FirecrackerParams;
}

const KNOWN_FIELDS = new Set(['name', 'runtime', 'module', 'source', 'memoryMiB', 'handler', 'timeoutMs', 'initTimeoutMs', 'maxInputBytes', 'maxOutputBytes', 'description', 'command', 'scaling', 'layout', 'instancesPerHost', 'bundle', 'requirements', 'packages', 'pyodidePackages', 'rootfs', 'firecracker']);
const FIRECRACKER_FIELDS = new Set(['kernel', 'vsockPort', 'invokePath', 'vcpus', 'bootArgs']);
/** The artefact field of each runtime: the file deploy stores and snapshots are versioned by. */
export const ARTEFACT_FIELD: Readonly<Record<RuntimeId, string>> = { wasi: 'module', python: 'source', firecracker: 'rootfs' };
const SCALING_FIELDS = new Set(['mechanism', 'blockMiB', 'grantMiB', 'populate', 'baseMiB']);
const COMMAND_FIELDS = new Set(['args', 'env', 'dirs', 'scratch', 'responseFile']);
const SCRATCH_FIELDS = new Set(['path', 'seed']);
/** Sizes that keep a manifest small: a command's args and environment travel in it. */
const COMMAND_MAX_ARGS = 256;
const COMMAND_MAX_STRING = 4096;
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
  if (!(RUNTIME_IDS as readonly unknown[]).includes(cfg.runtime)) {
    throw new ThawError('THAW_RUNTIME_UNKNOWN', { runtime: String(cfg.runtime) });
  }
  const runtime = cfg.runtime as RuntimeId;
  const artefactField = ARTEFACT_FIELD[runtime];
  for (const other of Object.values(ARTEFACT_FIELD)) {
    if (other !== artefactField && cfg[other] !== undefined) bad(`'${other}' does not apply to runtime '${runtime}' (use '${artefactField}')`);
  }
  if (cfg.firecracker !== undefined && runtime !== 'firecracker') bad("'firecracker' applies to runtime 'firecracker' only");
  if (runtime === 'firecracker' && cfg.firecracker === undefined) bad("runtime 'firecracker' needs 'firecracker': { \"kernel\": <vmlinux path> }");
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

  // Pyodide's own heap starts at about 30 MiB: a smaller python sandbox cannot boot; a microVM's
  // kernel needs some memory of its own too.
  const memoryMiB = int('memoryMiB', { wasi: 256, python: 512, firecracker: 128 }[runtime], { wasi: 1, python: 48, firecracker: 16 }[runtime], 4096);
  return Object.freeze({
    name,
    runtime,
    artefactPath: resolvePath(artefact as string),
    memoryMiB,
    handler: handler as string,
    timeoutMs: int('timeoutMs', 30_000, 1, 15 * 60_000),
    // Generous: Pyodide boots in about 3 s on a quiet host, far more under load.
    initTimeoutMs: int('initTimeoutMs', 60_000, 1, 15 * 60_000),
    maxInputBytes: int('maxInputBytes', 6 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    maxOutputBytes: int('maxOutputBytes', 6 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    description: (cfg.description as string | undefined) ?? '',
    ...(cfg.command === undefined ? {} : { command: parseCommand(cfg.command, runtime, resolvePath, bad) }),
    scaling: parseScaling(cfg.scaling, memoryMiB, bad),
    ...(cfg.layout !== undefined && { layout: cfg.layout as HostLayout }),
    ...(cfg.instancesPerHost !== undefined && { instancesPerHost: int('instancesPerHost', 1, 1, MAX_INSTANCES_PER_HOST) }),
    ...(['bundle', 'requirements', 'packages', 'pyodidePackages'].every((f) => cfg[f] === undefined) ? {} : { python: parsePythonBundle(cfg, runtime, resolvePath, bad) }),
    ...(runtime === 'firecracker' && { firecracker: parseFirecracker(cfg.firecracker, resolvePath, bad) }),
  });
}

/** The `firecracker` field: the kernel's path and the guest's invoke endpoint. */
function parseFirecracker(raw: unknown, resolvePath: (p: string) => string, bad: (detail: string) => never): FirecrackerParams {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad("'firecracker' must be an object { kernel, vsockPort?, invokePath?, vcpus?, bootArgs? }");
  const cfg = raw as Record<string, unknown>;
  for (const key of Object.keys(cfg)) if (!FIRECRACKER_FIELDS.has(key)) bad(`unknown field 'firecracker.${key}' (known: ${[...FIRECRACKER_FIELDS].join(', ')})`);
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || v.length === 0 || v.length > COMMAND_MAX_STRING || v.includes('\0')) bad(`${what} must be a non-empty string without NUL`);
    return v as string;
  };
  const int = (field: string, dflt: number, min: number, max: number): number => {
    const v = cfg[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`'firecracker.${field}' must be an integer in [${min}, ${max}]`);
    return v as number;
  };
  const invokePath = cfg.invokePath === undefined ? '/invoke' : str(cfg.invokePath, "'firecracker.invokePath'");
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$/.test(invokePath)) bad("'firecracker.invokePath' must be an absolute URL path");
  return Object.freeze({
    kernelPath: resolvePath(str(cfg.kernel, "'firecracker.kernel'")),
    vsockPort: int('vsockPort', 5000, 1, 0xffff_fffe),
    invokePath,
    vcpus: int('vcpus', 1, 1, 32),
    bootArgs: cfg.bootArgs === undefined ? 'console=ttyS0 reboot=k panic=1 pci=off' : str(cfg.bootArgs, "'firecracker.bootArgs'"),
  });
}

/** The `bundle`, `requirements`, `packages` and `pyodidePackages` fields: paths and names only; deploy checks what they name. */
function parsePythonBundle(cfg: Record<string, unknown>, runtime: RuntimeId, resolvePath: (p: string) => string, bad: (detail: string) => never): PythonBundleParams {
  if (runtime !== 'python') bad("'bundle', 'requirements', 'packages' and 'pyodidePackages' apply to runtime 'python' only");
  const path = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || v.length === 0 || v.length > COMMAND_MAX_STRING || v.includes('\0')) bad(`${what} must be a non-empty path`);
    return resolvePath(v as string);
  };
  const reqs = cfg.requirements ?? [];
  if (!Array.isArray(reqs) || reqs.length > COMMAND_MAX_ARGS) bad(`'requirements' must be an array of at most ${COMMAND_MAX_ARGS} paths (wheels or package directories)`);
  const pkgs = cfg.packages ?? [];
  if (!Array.isArray(pkgs) || pkgs.length > COMMAND_MAX_ARGS) bad(`'packages' must be an array of at most ${COMMAND_MAX_ARGS} names from a Pyodide package directory's pyodide-lock.json`);
  return Object.freeze({
    app: cfg.bundle === undefined ? null : path(cfg.bundle, "'bundle'"),
    requirements: Object.freeze((reqs as unknown[]).map((r, i) => path(r, `'requirements[${i}]'`))),
    packages: Object.freeze((pkgs as unknown[]).map((n, i) => {
      if (typeof n !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(n)) bad(`'packages[${i}]' must be a package name (letters, digits, '.', '_', '-')`);
      return n as string;
    })),
    pyodidePackages: cfg.pyodidePackages === undefined ? null : path(cfg.pyodidePackages, "'pyodidePackages'"),
  });
}

/** Validates the manifest's `scaling` field: a mechanism id, or an object naming one with its settings. */
export function parseScaling(raw: unknown, memoryMiB: number, bad: (detail: string) => never): ScalingSpec {
  if (raw === undefined) return DEFAULT_SCALING;
  const obj: Record<string, unknown> = typeof raw === 'string' ? { mechanism: raw } : (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw as Record<string, unknown> : bad("'scaling' must be a mechanism name or an object"));
  for (const key of Object.keys(obj)) if (!SCALING_FIELDS.has(key)) bad(`unknown field '${key}' in 'scaling' (expected ${[...SCALING_FIELDS].join(', ')})`);
  const mechanism = obj.mechanism;
  if (typeof mechanism !== 'string' || !(SCALING_IDS as readonly string[]).includes(mechanism)) {
    bad(`unknown scaling mechanism '${String(mechanism)}' (expected one of ${SCALING_IDS.join(', ')})`);
  }
  const num = (field: string, dflt: number | null, min: number, max: number): number | null => {
    const v = obj[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`'scaling.${field}' must be an integer in [${min}, ${max}]`);
    return v as number;
  };
  const blockMiB = num('blockMiB', DEFAULT_SCALING.blockMiB, 4, 512)!;
  if ((blockMiB & (blockMiB - 1)) !== 0) bad("'scaling.blockMiB' must be a power of two (4..512, as Faascale's blocks)");
  const populate = obj.populate ?? DEFAULT_SCALING.populate;
  if (typeof populate !== 'string' || !(POPULATE_METHODS as readonly string[]).includes(populate)) bad(`'scaling.populate' must be one of ${POPULATE_METHODS.join(', ')}`);
  return Object.freeze({
    mechanism: mechanism as ScalingSpec['mechanism'],
    blockMiB,
    grantMiB: num('grantMiB', null, 1, memoryMiB),
    populate: populate as ScalingSpec['populate'],
    baseMiB: num('baseMiB', DEFAULT_SCALING.baseMiB, 0, memoryMiB)!,
  });
}

/** The `command` field: plain strings only, guest paths absolute, no guest path given twice. */
function parseCommand(raw: unknown, runtime: RuntimeId, resolvePath: (p: string) => string, bad: (detail: string) => never): CommandParams {
  if (runtime !== 'wasi') bad(`'command' applies to runtime 'wasi' only`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad("'command' must be an object");
  const cfg = raw as Record<string, unknown>;
  for (const key of Object.keys(cfg)) if (!COMMAND_FIELDS.has(key)) bad(`unknown field 'command.${key}' (known: ${[...COMMAND_FIELDS].join(', ')})`);
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || v.length > COMMAND_MAX_STRING || v.includes('\0')) bad(`${what} must be a string of at most ${COMMAND_MAX_STRING} characters without NUL`);
    return v as string;
  };
  const args = cfg.args ?? [];
  if (!Array.isArray(args) || args.length > COMMAND_MAX_ARGS) bad(`'command.args' must be an array of at most ${COMMAND_MAX_ARGS} strings`);
  const envRaw = cfg.env ?? {};
  if (typeof envRaw !== 'object' || envRaw === null || Array.isArray(envRaw)) bad("'command.env' must be an object of strings");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(envRaw as Record<string, unknown>)) {
    if (k.length === 0 || k.includes('=')) bad(`'command.env' name '${k}' must be non-empty and without '='`);
    env[k] = str(v, `'command.env.${k}'`);
  }
  const guestPath = (p: unknown, what: string): string => {
    const s = str(p, what);
    if (!s.startsWith('/') || s.split('/').includes('..')) bad(`${what} must be an absolute guest path without '..' (got '${s}')`);
    return s.length > 1 ? s.replace(/\/+$/, '') : s;
  };
  const dirsRaw = cfg.dirs ?? {};
  if (typeof dirsRaw !== 'object' || dirsRaw === null || Array.isArray(dirsRaw)) bad("'command.dirs' must be an object mapping guest paths to directories");
  const dirs: CommandDir[] = Object.entries(dirsRaw as Record<string, unknown>).map(([g, host], i) => ({
    guestPath: guestPath(g, `'command.dirs' key '${g}'`),
    sourcePath: resolvePath(str(host, `'command.dirs.${g}'`)),
    bundleName: `bundle-${i}`,
  }));
  let scratch: CommandParams['scratch'] = null;
  if (cfg.scratch !== undefined) {
    const s = cfg.scratch;
    if (typeof s !== 'object' || s === null || Array.isArray(s)) bad("'command.scratch' must be { path, seed? }");
    const sc = s as Record<string, unknown>;
    for (const key of Object.keys(sc)) if (!SCRATCH_FIELDS.has(key)) bad(`unknown field 'command.scratch.${key}' (known: path, seed)`);
    const path = guestPath(sc.path, "'command.scratch.path'");
    scratch = { guestPath: path, seed: sc.seed === undefined ? null : { guestPath: path, sourcePath: resolvePath(str(sc.seed, "'command.scratch.seed'")), bundleName: 'scratch-seed' } };
  }
  let responseFile: string | null = null;
  if (cfg.responseFile !== undefined) {
    responseFile = guestPath(cfg.responseFile, "'command.responseFile'");
    const under = scratch === null ? null : scratch.guestPath === '/' ? '/' : `${scratch.guestPath}/`;
    if (under === null || !responseFile.startsWith(under) || responseFile.length === under.length) bad("'command.responseFile' must name a file in the scratch directory ('command.scratch.path')");
  }
  const guestPaths = [...dirs.map((d) => d.guestPath), ...(scratch ? [scratch.guestPath] : [])];
  const twice = guestPaths.find((p, i) => guestPaths.indexOf(p) !== i);
  if (twice !== undefined) bad(`guest path '${twice}' is given twice in 'command'`);
  return Object.freeze({ args: (args as unknown[]).map((a, i) => str(a, `'command.args[${i}]'`)), env, dirs, scratch, responseFile });
}

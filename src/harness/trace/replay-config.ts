// Configs of `thaw replay`: the wire shape (ReplayConfig, JSON) and the validated, frozen shape
// (ReplayParams); parseReplayConfig is the only conversion. A config names its trace (a generator
// or a file in the Azure 2021 format), the functions the trace's functions map to, the settings
// (memory policy and tier) replayed one after another, the time scale and the result window.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { ThawError } from '../../core/errors.js';
import { REPO_ROOT, findTarget, knownTargets, type BenchTarget } from '../bench-targets.js';
import { MAX_INSTANCES_PER_HOST, type HostLayout } from '../../core/function-spec.js';
import type { GeneratorParams } from './generate.js';
import { readAzureMemory } from './generate.js';

/** Shipped replay configs and the shipped extract of the Azure 2019 memory data. */
export const REPLAY_CONFIG_DIR = join(REPO_ROOT, 'harness', 'replay');
export const AZURE_MEMORY_FILE = join(REPLAY_CONFIG_DIR, 'azure2019-app-memory.d01.csv');

export type TierId = 'file' | 'compressed' | 'remote';

/**
 * The local memory one offloaded byte still costs, per tier: M_f / M_b in FaaSMem's density
 * formula. file 0 (dropped pages live in the snapshot file on disk), remote 0 (another machine's
 * memory), compressed 0.33 (a 3:1 compressed store in local memory; an assumption, not measured
 * here: a config can set what its tier measured).
 */
export const DEFAULT_FAR_MEMORY_COST: Readonly<Record<TierId, number>> = { file: 0, remote: 0, compressed: 0.33 };

export interface ReplayConfig {
  name: string;
  description?: string;
  /** A synthetic trace (generate.ts)... */
  generator?: {
    seed: number;
    duration_s: number;
    apps: number;
    total_rate_per_min: number;
    burstiness?: number;
    burst_s?: number;
    /** Azure 2019 memory file (default: the shipped extract); relative to the config's directory. */
    memory_data?: string;
  };
  /** ...or a trace file in the 2021 format, relative to the config's directory. */
  trace?: string;
  /** Replay only the first this many trace seconds. */
  duration_s?: number;
  /** Suite or example functions, `name` or `name@input-ref` (default input: small, or example:0). */
  functions: string[];
  /** The most-invoked trace functions replayed (default 8). */
  max_functions?: number;
  /**
   * Settings replayed one after another: `policy` or `policy:tier`, the remote tier with an
   * optional per-page latency (`faasmem:remote@20us`, default 0), and optionally the host layout
   * the functions are deployed with for that setting (`none/vertical`, `none/horizontal`; default:
   * the daemon's). A setting of policy `none` without a tier is always first (`none` is added when
   * none is listed).
   */
  settings: string[];
  /** Instances a vertical host carries at most in settings with `/vertical` (default 4). */
  instances_per_host?: number;
  /** Trace seconds per real second. */
  time_scale: number;
  window_s?: number;
  keep_alive_s?: number;
  /** Restore from a snapshot taken at set-up (true) or boot cold after every expiry (false). */
  snapshots?: boolean;
  far_memory_cost?: Partial<Record<TierId, number>>;
  output_dir?: string;
}

export interface ReplayTarget {
  readonly target: BenchTarget;
  readonly inputRef: string;
}

export interface ReplaySetting {
  readonly id: string;
  readonly policy: string;
  readonly tier: TierId | null;
  readonly remoteLatencyUs: number;
  /** The host layout functions are deployed with in this setting (null: the daemon's default). */
  readonly layout: HostLayout | null;
}

export interface ReplayParams {
  readonly name: string;
  readonly description: string;
  readonly source: { readonly kind: 'generator'; readonly generator: GeneratorParams } | { readonly kind: 'file'; readonly path: string };
  readonly durationS: number | null;
  readonly targets: readonly ReplayTarget[];
  readonly maxFunctions: number;
  readonly settings: readonly ReplaySetting[];
  /** Instances per vertical host in settings with layout vertical. */
  readonly instancesPerHost: number;
  readonly timeScale: number;
  readonly windowS: number;
  readonly keepAliveS: number;
  readonly snapshots: boolean;
  readonly farMemoryCost: Readonly<Record<TierId, number>>;
  readonly outputDir: string;
}

const posNumber = { type: 'number', exclusiveMinimum: 0 } as const;
export const REPLAY_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'functions', 'settings', 'time_scale'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    description: { type: 'string' },
    generator: {
      type: 'object', additionalProperties: false, required: ['seed', 'duration_s', 'apps', 'total_rate_per_min'],
      properties: {
        seed: { type: 'integer', minimum: 0, maximum: 4294967295 }, duration_s: { type: 'number', exclusiveMinimum: 0, maximum: 14 * 86400 },
        apps: { type: 'integer', minimum: 1, maximum: 100000 }, total_rate_per_min: { type: 'number', exclusiveMinimum: 0, maximum: 1e6 },
        burstiness: { type: 'number', minimum: 1.5, maximum: 1000 }, burst_s: posNumber, memory_data: { type: 'string' },
      },
    },
    trace: { type: 'string' },
    duration_s: posNumber,
    functions: { type: 'array', minItems: 1, items: { type: 'string' } },
    max_functions: { type: 'integer', minimum: 1, maximum: 1000 },
    settings: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[a-z0-9-]+(:(file|compressed|remote(@[0-9]{1,7}us)?))?(/(horizontal|vertical))?$' } },
    instances_per_host: { type: 'integer', minimum: 1, maximum: MAX_INSTANCES_PER_HOST },
    time_scale: { type: 'number', minimum: 1, maximum: 10000 },
    window_s: posNumber,
    keep_alive_s: { type: 'number', minimum: 0, maximum: 604800 },
    snapshots: { type: 'boolean' },
    far_memory_cost: {
      type: 'object', additionalProperties: false,
      properties: { file: { type: 'number', minimum: 0, maximum: 1 }, compressed: { type: 'number', minimum: 0, maximum: 1 }, remote: { type: 'number', minimum: 0, maximum: 1 } },
    },
    output_dir: { type: 'string' },
  },
} as const;

const validateSchema = new Ajv({ allErrors: false, strict: true }).compile(REPLAY_CONFIG_SCHEMA);

function invalid(field: string, detail: string): ThawError {
  return new ThawError('THAW_CONFIG_INVALID', { detail: `replay config: ${field} ${detail}` });
}

function schemaError(e: ErrorObject): ThawError {
  const at = e.instancePath.split('/').slice(1).join('.') || '(config)';
  if (e.keyword === 'additionalProperties') return invalid(`${at === '(config)' ? '' : `${at}.`}${String((e.params as { additionalProperty: string }).additionalProperty)}`, 'is not a known field');
  if (e.keyword === 'required') return invalid(String((e.params as { missingProperty: string }).missingProperty), 'is required');
  return invalid(at, e.message ?? e.keyword);
}

/**
 * Validates a replay config. Paths in it are relative to `baseDir` (the config file's directory).
 *
 * @throws THAW_CONFIG_INVALID naming the field at fault
 */
export function parseReplayConfig(raw: unknown, baseDir: string): ReplayParams {
  if (!validateSchema(raw)) throw schemaError(validateSchema.errors![0]!);
  const cfg = raw as ReplayConfig;
  if ((cfg.generator === undefined) === (cfg.trace === undefined)) throw invalid('generator / trace', 'give exactly one: a generator or a trace file');
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  let source: ReplayParams['source'];
  if (cfg.generator) {
    const g = cfg.generator;
    source = {
      kind: 'generator',
      generator: Object.freeze({
        name: cfg.name, seed: g.seed, durationS: g.duration_s, apps: g.apps, totalRatePerMin: g.total_rate_per_min,
        burstiness: g.burstiness ?? 10, burstS: g.burst_s ?? 20, memoryMb: readAzureMemory(g.memory_data ? at(g.memory_data) : AZURE_MEMORY_FILE),
      }),
    };
  } else {
    const path = at(cfg.trace!);
    if (!existsSync(path)) throw invalid('trace', `names no file: ${path}`);
    source = { kind: 'file', path };
  }
  const targets = cfg.functions.map((spec, i): ReplayTarget => {
    const [name, ref] = spec.includes('@') ? [spec.slice(0, spec.indexOf('@')), spec.slice(spec.indexOf('@') + 1)] : [spec, undefined];
    const target = findTarget(name!);
    if (!target) throw invalid(`functions[${i}]`, `'${name}' is not a suite or example function (known: ${knownTargets().join(', ')})`);
    const inputRef = ref ?? (target.kind === 'suite' ? 'small' : 'example:0');
    const why = target.refError(inputRef);
    if (why !== null) throw invalid(`functions[${i}]`, why);
    return Object.freeze({ target, inputRef });
  });
  const seen = new Set<string>();
  const settings = cfg.settings.map((s, i): ReplaySetting => {
    if (seen.has(s)) throw invalid(`settings[${i}]`, `'${s}' is listed twice`);
    seen.add(s);
    const [memory, layout] = s.split('/') as [string, HostLayout | undefined];
    const [policy, tierSpec] = memory.split(':') as [string, string | undefined];
    const [tier, latency] = (tierSpec ?? '').split('@') as [string, string | undefined];
    const remoteLatencyUs = latency === undefined ? 0 : Number(latency.slice(0, -2));
    if (remoteLatencyUs > 1_000_000) throw invalid(`settings[${i}]`, `remote latency must be at most 1000000us, got ${latency}`);
    return Object.freeze({ id: s, policy, tier: (tier || null) as TierId | null, remoteLatencyUs, layout: layout ?? null });
  });
  // Memory saved is measured against none (in any layout): it is replayed first.
  const isNone = (s: ReplaySetting): boolean => s.policy === 'none' && s.tier === null;
  if (!settings.some(isNone)) settings.unshift(Object.freeze({ id: 'none', policy: 'none', tier: null, remoteLatencyUs: 0, layout: null }));
  settings.sort((a, b) => Number(isNone(b)) - Number(isNone(a)));
  return Object.freeze({
    name: cfg.name,
    description: cfg.description ?? '',
    source,
    durationS: cfg.duration_s ?? null,
    targets: Object.freeze(targets),
    maxFunctions: cfg.max_functions ?? 8,
    settings: Object.freeze(settings),
    instancesPerHost: cfg.instances_per_host ?? 4,
    timeScale: cfg.time_scale,
    windowS: cfg.window_s ?? 60,
    keepAliveS: cfg.keep_alive_s ?? 600,
    snapshots: cfg.snapshots ?? true,
    farMemoryCost: Object.freeze({ ...DEFAULT_FAR_MEMORY_COST, ...cfg.far_memory_cost }),
    outputDir: resolve(cfg.output_dir ?? 'results/replay'),
  });
}

/** Finds a replay config: a path, or the name of a shipped one (`replay-ci` -> harness/replay/replay-ci.json). */
export function loadReplayConfigFile(nameOrPath: string): { path: string; raw: unknown } {
  const candidates = [resolve(nameOrPath)];
  if (!nameOrPath.includes('/')) candidates.push(join(REPLAY_CONFIG_DIR, nameOrPath.endsWith('.json') ? nameOrPath : `${nameOrPath}.json`));
  const path = candidates.find((p) => existsSync(p) && p.endsWith('.json'));
  if (!path) {
    const shipped = readdirSync(REPLAY_CONFIG_DIR).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5));
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `'${nameOrPath}' is neither a replay config file, a trace (.csv) nor a shipped config (${shipped.join(', ')})` });
  }
  try {
    return { path, raw: JSON.parse(readFileSync(path, 'utf8')) as unknown };
  } catch (err: unknown) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `${path} is not valid JSON: ${(err as Error).message}` });
  }
}

/** The directory relative paths in a config file are read from. */
export const configBaseDir = (path: string): string => dirname(path);

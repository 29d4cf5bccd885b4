// Experiment configs for `thaw bench`: the wire shape (BenchConfig, JSON as FaaSnap's harness
// took it: settings, functions, record_input, test_input, repeat, parallelism, par_snapshots, ...)
// and the validated, frozen shape (BenchParams). parseBenchConfig is the only conversion.
// (It lives here rather than in core/config.ts because it needs the suite and the strategy
// registry, which core/ must not import; only cli/ imports harness/.)

import { SCALING_IDS, type ScalingId } from '../memory/scaling/scaling.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { ThawError } from '../core/errors.js';
import { listStrategies } from '../restore/index.js';
import { openObjectStore, parseObjectStoreConfig } from '../store/open-store.js';
import { REPO_ROOT, defaultRefs, findTarget, knownTargets, type BenchTarget } from './bench-targets.js';

/** Where snapshot files live during a run. */
export type StorageTier = 'disk' | 'tmpfs' | 'page-cache';
export const STORAGE_TIERS: readonly StorageTier[] = ['disk', 'tmpfs', 'page-cache'];

/** Cache handling before each measured invocation: none (the strategy decides), or the harness drops the snapshot files' page cache. */
export type DropCache = 'none' | 'snapshot-files';

/** One setting as received. */
export interface SettingConfig {
  /** A restore strategy id (listStrategies()), "warm" (invoke a live sandbox) or "cold" (boot + init + handler each time). */
  strategy: string;
  /** The function's memory scaling mechanism in this setting (none, balloon, faascale; default none): it is deployed with it. */
  scaling?: ScalingId;
  prepare?: {
    /** Run one restore + invocation on the record input after the snapshot (default: true for recording strategies such as reap). */
    record_run?: boolean;
    /** Strategy options (e.g. faasnap's size_threshold / interval_threshold). No strategy takes options yet: they are recorded with the run. */
    options?: Record<string, number | string | boolean>;
  };
  invoke?: {
    /** Default: "snapshot-files" on the disk tier (except for vanilla-cache), else "none". */
    drop_cache?: DropCache;
  };
  /** Overrides the config's storage tier for this setting. */
  storage?: StorageTier;
  /** Skip (and report) instead of failing when the strategy is unknown or unavailable on this host. */
  optional?: boolean;
}

/** One function as received. */
export interface FunctionConfig {
  /** Label in results (default: name). Unique. */
  id?: string;
  /** Suite function name (src/suite) or example function directory (functions/<name>, with testdata). */
  name: string;
  /** Input per index: "two:<i>", "sweep:<i>", "small" (suite) or "example:<i>" (examples). Default: the two published inputs. */
  params?: string[];
}

/** An experiment as received (JSON). Unknown fields are rejected. */
export interface BenchConfig {
  $schema?: string;
  /** Stable id of the experiment (results go to <output_dir>/<name>-<timestamp>/). */
  name: string;
  description?: string;
  settings: Record<string, SettingConfig>;
  functions: FunctionConfig[];
  record_input: number[];
  test_input: number[];
  /** Measured invocations per (function, setting, parallelism, record, test). Default 1. */
  repeat?: number;
  /** Concurrent invocations per step. Default [1]. */
  parallelism?: number[];
  /** Distinct snapshot copies the concurrent restores spread over, paired with parallelism. Default [1, ...]. */
  par_snapshots?: number[];
  /** Default "disk". */
  storage?: StorageTier;
  /** "redis://host:port/db", "local-redis-server" (start a throwaway one) or "embedded". Default "local-redis-server". */
  object_store?: string;
  /** Relative to the current directory. Default "results/bench". */
  output_dir?: string;
  /** Export spans to a collector as well as to the run's traces.json. Default none. */
  trace_export?: { protocol: 'zipkin' | 'otlp'; url: string } | null;
}

export interface SettingParams {
  readonly id: string;
  readonly kind: 'warm' | 'snapshot' | 'cold';
  /** The memory scaling mechanism the function runs under in this setting. */
  readonly scaling: ScalingId;
  /** Strategy id, or "warm". */
  readonly strategy: string;
  readonly recordRun: boolean;
  /** Strategy options as given (recorded; see SettingConfig.prepare.options). */
  readonly options: Readonly<Record<string, number | string | boolean>>;
  readonly dropCache: DropCache;
  readonly storage: StorageTier;
  /** Why the setting is skipped (an optional strategy that is unknown or unavailable), or null. */
  readonly skipReason: string | null;
}

export interface FunctionParams {
  readonly id: string;
  readonly target: BenchTarget;
  /** Input references by index. */
  readonly params: readonly string[];
}

export type ObjectStoreChoice =
  | { readonly kind: 'redis'; readonly url: string }
  | { readonly kind: 'local-redis-server' }
  | { readonly kind: 'embedded' };

export interface BenchParams {
  readonly name: string;
  readonly description: string;
  readonly settings: readonly SettingParams[];
  readonly functions: readonly FunctionParams[];
  readonly recordInputs: readonly number[];
  readonly testInputs: readonly number[];
  readonly repeat: number;
  readonly parallel: readonly { readonly parallelism: number; readonly parSnapshots: number }[];
  readonly storage: StorageTier;
  readonly objectStore: ObjectStoreChoice;
  readonly outputDir: string;
  readonly traceExport: { readonly protocol: 'zipkin' | 'otlp'; readonly url: string } | null;
}

/** Why a config was rejected: the text after "invalid configuration: <field> ". */
export const BENCH_CONFIG_ERRORS = {
  unknownField: 'is not a known field',
  unknownStrategy: 'names an unknown strategy',
  unavailableStrategy: 'names a strategy this host cannot run',
  unknownFunction: 'names an unknown function',
  inputOutOfRange: 'is out of range',
  badInputRef: 'is not an input of the function',
  lengthMismatch: 'must have as many entries as parallelism',
  parSnapshotsRange: 'must be between 1 and the paired parallelism',
  duplicateId: 'repeats a function id',
  unreachable: 'is unreachable',
  schema: 'does not match the schema',
} as const;

/** The JSON schema of BenchConfig (draft-07); also written to harness/configs/bench-config.schema.json. */
export const BENCH_CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'thaw bench config',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'settings', 'functions', 'record_input', 'test_input'],
  properties: {
    $schema: { type: 'string' },
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 64 },
    description: { type: 'string' },
    settings: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['strategy'],
        properties: {
          strategy: { type: 'string', minLength: 1 },
          scaling: { enum: [...SCALING_IDS] },
          prepare: {
            type: 'object',
            additionalProperties: false,
            properties: {
              record_run: { type: 'boolean' },
              options: { type: 'object', additionalProperties: { type: ['number', 'string', 'boolean'] } },
            },
          },
          invoke: { type: 'object', additionalProperties: false, properties: { drop_cache: { enum: ['none', 'snapshot-files'] } } },
          storage: { enum: STORAGE_TIERS },
          optional: { type: 'boolean' },
        },
      },
    },
    functions: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
          name: { type: 'string', minLength: 1 },
          params: { type: 'array', minItems: 1, items: { type: 'string' } },
        },
      },
    },
    record_input: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
    test_input: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
    repeat: { type: 'integer', minimum: 1, maximum: 10000 },
    parallelism: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1, maximum: 256 } },
    par_snapshots: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1, maximum: 256 } },
    storage: { enum: STORAGE_TIERS },
    object_store: { type: 'string', minLength: 1 },
    output_dir: { type: 'string', minLength: 1 },
    trace_export: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['protocol', 'url'],
          properties: { protocol: { enum: ['zipkin', 'otlp'] }, url: { type: 'string', pattern: '^https?://' } },
        },
      ],
    },
  },
} as const;

/** Strategies with a recording phase: their first restore of a snapshot records what later restores use. */
const RECORDING_STRATEGIES = new Set(['reap', 'faasnap', 'sabre-reap']);
/** Strategies defined by a warm page cache: the harness never drops it for them by default. */
const KEEPS_CACHE = new Set(['vanilla-cache']);

const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const validateSchema = ajv.compile(BENCH_CONFIG_SCHEMA);

function invalid(field: string, what: string, detail = ''): ThawError {
  return new ThawError('THAW_CONFIG_INVALID', { detail: `${field} ${what}${detail ? `: ${detail}` : ''}` });
}

/** Turns an ajv error into "<field> <what>" with the field as a dotted path (settings.reap.prepare.x). */
function schemaError(e: ErrorObject): ThawError {
  const path = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const at = (extra?: string): string => [...path, ...(extra ? [extra] : [])].map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(config)';
  if (e.keyword === 'additionalProperties') {
    const name = String((e.params as { additionalProperty: string }).additionalProperty);
    return invalid(at(name), BENCH_CONFIG_ERRORS.unknownField, `allowed here: ${allowedAt(path).join(', ')}`);
  }
  if (e.keyword === 'required') return invalid(at(String((e.params as { missingProperty: string }).missingProperty)), 'is required');
  return invalid(at(), BENCH_CONFIG_ERRORS.schema, e.message ?? e.keyword);
}

/** Field names the schema allows at `path`, for "unknown field" messages. */
function allowedAt(path: readonly string[]): string[] {
  let node: unknown = BENCH_CONFIG_SCHEMA;
  for (const p of path) {
    const n = node as { properties?: Record<string, unknown>; additionalProperties?: unknown; items?: unknown };
    if (/^\d+$/.test(p) && n.items) node = n.items;
    else if (n.properties?.[p]) node = n.properties[p];
    else if (typeof n.additionalProperties === 'object') node = n.additionalProperties;
  }
  return Object.keys((node as { properties?: Record<string, unknown> }).properties ?? {});
}

/** Checks the object store is reachable (a Redis URL answers), without keeping a connection. */
async function checkObjectStore(choice: ObjectStoreChoice): Promise<void> {
  if (choice.kind !== 'redis') return;
  try {
    const store = await openObjectStore(parseObjectStoreConfig({ kind: 'redis', url: choice.url }));
    await store.close();
  } catch (err: unknown) {
    throw invalid('object_store', BENCH_CONFIG_ERRORS.unreachable, `${choice.url}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function parseObjectStore(raw: string): ObjectStoreChoice {
  if (raw === 'local-redis-server' || raw === 'embedded') return { kind: raw };
  if (!raw.startsWith('redis://')) throw invalid('object_store', BENCH_CONFIG_ERRORS.schema, `'${raw}' is not a redis:// URL, 'local-redis-server' or 'embedded'`);
  try {
    const parsed = parseObjectStoreConfig({ kind: 'redis', url: raw });
    return { kind: 'redis', url: parsed.kind === 'redis' ? parsed.url : raw };
  } catch (err: unknown) {
    throw invalid('object_store', BENCH_CONFIG_ERRORS.schema, err instanceof Error ? err.message : String(err));
  }
}

function parseSetting(id: string, s: SettingConfig, storage: StorageTier, strategies: ReturnType<typeof listStrategies>): SettingParams {
  const tier = s.storage ?? storage;
  // On disk, snapshots are read cold (DESIGN.md section 2), except by vanilla-cache, whose
  // whole point is the file kept in the page cache.
  const dropCache = s.invoke?.drop_cache ?? (tier === 'disk' && !KEEPS_CACHE.has(s.strategy) ? 'snapshot-files' : 'none');
  const scaling = s.scaling ?? 'none';
  if (s.strategy === 'warm' || s.strategy === 'cold') {
    return Object.freeze({ id, kind: s.strategy, strategy: s.strategy, scaling, recordRun: false, options: Object.freeze({}), dropCache: 'none', storage: tier, skipReason: null });
  }
  let skipReason: string | null = null;
  const known = strategies.find((k) => k.id === s.strategy);
  if (!known) {
    const detail = `'${s.strategy}' (known: warm, cold, ${strategies.map((k) => k.id).join(', ')})`;
    if (!s.optional) throw invalid(`settings.${id}.strategy`, BENCH_CONFIG_ERRORS.unknownStrategy, detail);
    skipReason = `strategy '${s.strategy}' is not implemented yet`;
  } else if (!known.support.ok) {
    if (!s.optional) throw invalid(`settings.${id}.strategy`, BENCH_CONFIG_ERRORS.unavailableStrategy, `'${s.strategy}': ${known.support.reason}`);
    skipReason = `strategy '${s.strategy}' unavailable: ${known.support.reason}`;
  }
  return Object.freeze({
    id, kind: 'snapshot', strategy: s.strategy, scaling, recordRun: s.prepare?.record_run ?? RECORDING_STRATEGIES.has(s.strategy),
    options: Object.freeze({ ...(s.prepare?.options ?? {}) }), dropCache, storage: tier, skipReason,
  });
}

function parseFunction(f: FunctionConfig, i: number): FunctionParams {
  const target = findTarget(f.name);
  if (!target) throw invalid(`functions[${i}].name`, BENCH_CONFIG_ERRORS.unknownFunction, `'${f.name}' (known: ${knownTargets().join(', ')})`);
  const params = f.params ?? defaultRefs(target);
  params.forEach((ref, j) => {
    const why = target.refError(ref);
    if (why !== null) throw invalid(`functions[${i}].params[${j}]`, BENCH_CONFIG_ERRORS.badInputRef, why);
  });
  return Object.freeze({ id: f.id ?? f.name, target, params: Object.freeze([...params]) });
}

/**
 * Validates an experiment config and returns its frozen params. Checks, in order: the schema
 * (unknown fields, types), strategies (unknown or unavailable unless the setting is optional),
 * functions (unknown names, input references), record/test input indices against each
 * function's params, parallelism vs par_snapshots, and that a Redis object store answers.
 *
 * @param raw the parsed JSON
 * @returns BenchParams with every default filled in
 * @throws THAW_CONFIG_INVALID naming the field at fault (see {@link BENCH_CONFIG_ERRORS})
 */
export async function parseBenchConfig(raw: unknown): Promise<BenchParams> {
  if (!validateSchema(raw)) throw schemaError(validateSchema.errors![0]!);
  const cfg = raw as unknown as BenchConfig;
  const storage = cfg.storage ?? 'disk';
  const strategies = listStrategies();
  const settings = Object.entries(cfg.settings).map(([id, s]) => parseSetting(id, s, storage, strategies));
  const functions = cfg.functions.map(parseFunction);
  const ids = new Set<string>();
  functions.forEach((f, i) => {
    if (ids.has(f.id)) throw invalid(`functions[${i}].id`, BENCH_CONFIG_ERRORS.duplicateId, `'${f.id}' (give each an id)`);
    ids.add(f.id);
  });
  for (const field of ['record_input', 'test_input'] as const) {
    cfg[field].forEach((index, j) => {
      for (const f of functions) {
        if (index >= f.params.length) {
          throw invalid(`${field}[${j}]`, BENCH_CONFIG_ERRORS.inputOutOfRange, `input ${index}, but function '${f.id}' has ${f.params.length} inputs (params)`);
        }
      }
    });
  }
  const parallelism = cfg.parallelism ?? [1];
  const parSnapshots = cfg.par_snapshots ?? parallelism.map(() => 1);
  if (parSnapshots.length !== parallelism.length) {
    throw invalid('par_snapshots', BENCH_CONFIG_ERRORS.lengthMismatch, `${parSnapshots.length} vs ${parallelism.length}`);
  }
  parSnapshots.forEach((n, i) => {
    if (n > parallelism[i]!) throw invalid(`par_snapshots[${i}]`, BENCH_CONFIG_ERRORS.parSnapshotsRange, `${n} snapshots for parallelism ${parallelism[i]}`);
  });
  const objectStore = parseObjectStore(cfg.object_store ?? 'local-redis-server');
  await checkObjectStore(objectStore);
  return Object.freeze({
    name: cfg.name,
    description: cfg.description ?? '',
    settings: Object.freeze(settings),
    functions: Object.freeze(functions),
    recordInputs: Object.freeze([...cfg.record_input]),
    testInputs: Object.freeze([...cfg.test_input]),
    repeat: cfg.repeat ?? 1,
    parallel: Object.freeze(parallelism.map((p, i) => Object.freeze({ parallelism: p, parSnapshots: parSnapshots[i]! }))),
    storage,
    objectStore,
    outputDir: resolve(cfg.output_dir ?? 'results/bench'),
    traceExport: cfg.trace_export ? Object.freeze({ ...cfg.trace_export }) : null,
  });
}

/** Directory of the shipped configs. */
export const SHIPPED_CONFIG_DIR = join(REPO_ROOT, 'harness', 'configs');

/**
 * Finds a config: a path to a JSON file, or the name of a shipped config (`smoke` ->
 * harness/configs/smoke.json). Reads and parses the JSON (not the content: see parseBenchConfig).
 *
 * @throws THAW_CONFIG_INVALID when neither exists or the file is not JSON
 */
export function loadBenchConfigFile(nameOrPath: string): { path: string; raw: unknown } {
  const candidates = [resolve(nameOrPath)];
  if (!isAbsolute(nameOrPath) && !nameOrPath.includes('/')) candidates.push(join(SHIPPED_CONFIG_DIR, nameOrPath.endsWith('.json') ? nameOrPath : `${nameOrPath}.json`));
  const path = candidates.find((p) => existsSync(p) && !p.endsWith('/'));
  if (!path) throw invalid('config', 'was not found', `'${nameOrPath}' is neither a file nor a shipped config (${shippedConfigs().join(', ')})`);
  try {
    return { path, raw: JSON.parse(readFileSync(path, 'utf8')) as unknown };
  } catch (err: unknown) {
    throw invalid('config', 'is not valid JSON', `${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Names of the shipped configs. */
export function shippedConfigs(): string[] {
  if (!existsSync(SHIPPED_CONFIG_DIR)) return [];
  return readdirSync(SHIPPED_CONFIG_DIR).filter((n) => n.endsWith('.json') && !n.endsWith('.schema.json')).sort().map((n) => n.slice(0, -5));
}

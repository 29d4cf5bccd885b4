// Deployed functions on disk: <dataDir>/functions/<name>/{function.json, artefact}. Deploy
// validates the manifest, runs the runtime's deployer (which rewrites WASI modules so that
// their mutable globals are exported) and stores the result atomically.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ThawError } from '../core/errors.js';
import { parseFunctionConfig, type FunctionParams } from '../core/function-spec.js';
import { deployerFor } from '../runtimes/index.js';
import { writeFileDurable } from '../snapshot/snapshot-io.js';
import { FUNCTION_GID_BASE } from '../sandbox/jail.js';
import type { HostFunction } from '../sandbox/protocol.js';
import type { FunctionInfo } from './types.js';

export interface StoredFunction {
  params: FunctionParams;
  fileName: string;
  digest: string;
  /** sha256 of name, module digest and settings: what prepared hosts and warm sandboxes belong to. */
  deployment: string;
  /** The function's own group (jail.ts): kept across redeploys, never given to another function. */
  gid: number;
  deployedAt: string;
  facts: Record<string, string | number | boolean>;
}

export class FunctionRegistry {
  private readonly root: string;
  private readonly cache = new Map<string, StoredFunction>();
  /** Where the next new function's gid comes from; persisted so that a gid is never reused. */
  private readonly gidCounterPath: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'functions');
    this.gidCounterPath = join(this.root, '.next-gid');
    mkdirSync(this.root, { recursive: true });
    for (const name of readdirSync(this.root)) {
      if (name.startsWith('.')) continue;
      try {
        const stored = JSON.parse(readFileSync(join(this.root, name, 'function.json'), 'utf8')) as Partial<StoredFunction> & Omit<StoredFunction, 'gid' | 'deployment'>;
        // Functions stored by an older Thaw have neither: derived and allocated once here.
        const full: StoredFunction = { ...stored, gid: stored.gid ?? this.allocateGid(), deployment: stored.deployment ?? deploymentOf(stored.params, stored.digest) };
        this.cache.set(name, full);
      } catch {
        /* a half-deleted function directory: ignored */
      }
    }
  }

  private allocateGid(): number {
    let next = FUNCTION_GID_BASE;
    try {
      next = Math.max(next, Number(readFileSync(this.gidCounterPath, 'utf8')));
    } catch {
      /* first function */
    }
    for (const fn of this.cache.values()) next = Math.max(next, fn.gid + 1);
    writeFileDurable(this.gidCounterPath, Buffer.from(String(next + 1)));
    return next;
  }

  /** Validates and stores a function; replaces an existing one of the same name. */
  async deploy(manifest: unknown, artefact: Uint8Array): Promise<{ info: FunctionInfo; replaced: StoredFunction | undefined }> {
    const params = parseFunctionConfig(manifest, (p) => resolve(p));
    const deployed = await (await deployerFor(params.runtime)).deploy(params, artefact);
    const dir = join(this.root, params.name);
    mkdirSync(dir, { recursive: true });
    writeFileDurable(join(dir, deployed.fileName), deployed.bytes);
    deployed.bundle?.install(dir);
    const replaced = this.cache.get(params.name);
    const digest = createHash('sha256').update(deployed.bytes).update(deployed.bundle?.digest ?? '').digest('hex');
    const stored: StoredFunction = {
      params: { ...params, artefactPath: join(dir, deployed.fileName) },
      fileName: deployed.fileName,
      digest,
      deployment: '',
      gid: replaced?.gid ?? this.allocateGid(),
      deployedAt: new Date().toISOString(),
      facts: { ...deployed.facts },
    };
    stored.deployment = deploymentOf(stored.params, digest);
    writeFileDurable(join(dir, 'function.json'), Buffer.from(JSON.stringify(stored, null, 2)));
    this.cache.set(params.name, stored);
    return { info: toInfo(stored), replaced };
  }

  /** Throws THAW_FUNCTION_NOT_FOUND. */
  get(name: string): StoredFunction {
    const fn = this.cache.get(name);
    if (!fn) throw new ThawError('THAW_FUNCTION_NOT_FOUND', { name });
    return fn;
  }

  info(name: string): FunctionInfo {
    return toInfo(this.get(name));
  }

  list(): FunctionInfo[] {
    return [...this.cache.values()].map(toInfo).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The function as a sandbox host needs it. */
  hostFunction(name: string): HostFunction {
    const fn = this.get(name);
    return { params: fn.params, artefactPath: fn.params.artefactPath, digest: fn.digest, deployment: fn.deployment, gid: fn.gid };
  }

  delete(name: string): StoredFunction {
    const fn = this.get(name);
    this.cache.delete(name);
    const dir = join(this.root, name);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    return fn;
  }
}

/** A deployment's identity: the function's name and settings and its module's digest. */
function deploymentOf(params: FunctionParams, digest: string): string {
  return createHash('sha256').update(JSON.stringify({ params, digest })).digest('hex');
}

function toInfo(fn: StoredFunction): FunctionInfo {
  const p = fn.params;
  return {
    name: p.name,
    runtime: p.runtime,
    memoryMiB: p.memoryMiB,
    handler: p.handler,
    timeoutMs: p.timeoutMs,
    initTimeoutMs: p.initTimeoutMs,
    maxInputBytes: p.maxInputBytes,
    maxOutputBytes: p.maxOutputBytes,
    description: p.description,
    digest: fn.digest,
    deployedAt: fn.deployedAt,
    facts: fn.facts,
  };
}

// `thaw deploy` and `thaw functions ...`.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readManifestFile, type GlobalOptions } from '../context.js';
import { printJson, printTable, withApi } from './with-api.js';

export function deploy(g: GlobalOptions, manifestPath: string): Promise<void> {
  return withApi(g, async (api) => {
    // A directory (as `thaw init` writes) is deployed from its function.json.
    const path = existsSync(manifestPath) && statSync(manifestPath).isDirectory() ? join(manifestPath, 'function.json') : manifestPath;
    const { manifest, artefact } = readManifestFile(path);
    printJson(await api.deployFunction(manifest, artefact));
  });
}

export function list(g: GlobalOptions): Promise<void> {
  return withApi(g, async (api) => {
    const fns = await api.listFunctions();
    printTable(fns.map((f) => ({ name: f.name, runtime: f.runtime, memoryMiB: f.memoryMiB, handler: f.handler, digest: f.digest.slice(0, 12), description: f.description })));
  });
}

export function get(g: GlobalOptions, name: string): Promise<void> {
  return withApi(g, async (api) => printJson(await api.getFunction(name)));
}

export function remove(g: GlobalOptions, name: string): Promise<void> {
  return withApi(g, async (api) => {
    await api.deleteFunction(name);
    process.stdout.write(`deleted function ${name}\n`);
  });
}

// `thaw objects ...`: the inputs and outputs functions read and write by key.

import { readFileSync } from 'node:fs';
import { ThawError } from '../../core/errors.js';
import type { GlobalOptions } from '../context.js';
import { withApi } from './with-api.js';

export function put(g: GlobalOptions, key: string, o: { data?: string; dataFile?: string }): Promise<void> {
  if ((o.data === undefined) === (o.dataFile === undefined)) throw new ThawError('THAW_REQUEST_INVALID', { detail: 'give exactly one of --data or --data-file' });
  const value = o.dataFile !== undefined ? readFileSync(o.dataFile === '-' ? 0 : o.dataFile) : Buffer.from(o.data!, 'utf8');
  return withApi(g, async (api) => {
    await api.putObject(key, value);
    process.stdout.write(`stored ${key} (${value.length} bytes)\n`);
  });
}

export function get(g: GlobalOptions, key: string): Promise<void> {
  return withApi(g, async (api) => void process.stdout.write(await api.getObject(key)));
}

export function list(g: GlobalOptions, o: { prefix?: string }): Promise<void> {
  return withApi(g, async (api) => {
    for (const k of await api.listObjects(o.prefix)) process.stdout.write(`${k}\n`);
  });
}

export function remove(g: GlobalOptions, key: string): Promise<void> {
  return withApi(g, async (api) => {
    await api.deleteObject(key);
    process.stdout.write(`deleted ${key}\n`);
  });
}

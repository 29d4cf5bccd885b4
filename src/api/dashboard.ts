// The web dashboard the daemon serves at /ui/: static files from ui/ and three ES modules from
// npm packages (preact, its hooks, htm) served from node_modules, so it works offline with no
// build step and no CDN. The files carry no data and are served without the token; every piece
// of data the page shows comes from the API, with the same bearer token as any other client.
// GET /v1/invocations (the newest invocations with their timing breakdown) is registered here.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { ThawError } from '../core/errors.js';
import { RECENT_INVOCATIONS, type RecentInvocations } from './recent-invocations.js';

/** Paths under this prefix are the dashboard's static files: no token needed, no data in them. */
export const DASHBOARD_PREFIX = '/ui/';

const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

const require = createRequire(import.meta.url);
/** The ES module builds the page imports (its import map names them). */
const VENDOR: Readonly<Record<string, string>> = {
  'preact.module.js': join(dirname(require.resolve('preact')), 'preact.module.js'),
  'hooks.module.js': join(dirname(require.resolve('preact/hooks')), 'hooks.module.js'),
  'htm.module.js': join(dirname(require.resolve('htm')), 'htm.module.js'),
};

export async function registerDashboard(app: FastifyInstance, recent: RecentInvocations): Promise<void> {
  await app.register(fastifyStatic, { root: UI_DIR, prefix: DASHBOARD_PREFIX, index: 'index.html', schemaHide: true });
  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect(DASHBOARD_PREFIX));
  app.get<{ Params: { file: string } }>(`${DASHBOARD_PREFIX}vendor/:file`, { schema: { hide: true } }, async (req, reply) => {
    const path = VENDOR[req.params.file];
    if (!path) throw new ThawError('THAW_ROUTE_NOT_FOUND', { method: 'GET', url: req.url });
    return reply.sendFile(req.params.file, dirname(path));
  });
  app.get<{ Querystring: { limit?: number } }>('/v1/invocations', {
    schema: {
      summary: 'The newest invocations through this daemon with their timing breakdown or error, newest first (kept in memory)',
      tags: ['daemon'],
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: RECENT_INVOCATIONS } } },
    },
  }, async (req) => recent.list(req.query.limit));
}

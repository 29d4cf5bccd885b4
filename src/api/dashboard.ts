// The web dashboard the daemon serves at /ui/: static files from ui/ and three ES modules from
// npm packages (preact, its hooks, htm) served from node_modules, so it works offline with no
// build step and no CDN. The files carry no data and are served without the token; every piece
// of data the page shows comes from the API, with the same bearer token as any other client.
// GET /v1/invocations (the newest invocations with their timing breakdown) and the harness's
// experiment reports (GET /v1/reports, GET /v1/reports/<path>: see reports.ts) are registered here.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { ThawError } from '../core/errors.js';
import { RECENT_INVOCATIONS, type RecentInvocations } from './recent-invocations.js';
import { MAX_REPORTS, listReports, readReport } from './reports.js';

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

/**
 * A report is the harness's own HTML, but what it shows came from functions (names, errors):
 * it is served as a sandboxed document (no scripts, its own origin, nothing loaded from outside).
 */
const REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** @param resultsDir the harness's results directory (reports listed from it), or null: none listed. */
export async function registerDashboard(app: FastifyInstance, recent: RecentInvocations, resultsDir: string | null = null): Promise<void> {
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
  app.get('/v1/reports', {
    schema: {
      summary: `Experiment reports (report.html of thaw bench and thaw replay runs) in the daemon's results directory, newest first (at most ${MAX_REPORTS})`,
      tags: ['daemon'],
    },
  }, async () => ({ resultsDir, reports: resultsDir === null ? [] : listReports(resultsDir) }));
  app.get<{ Params: { '*': string } }>('/v1/reports/*', {
    schema: { summary: 'One experiment report (a path from GET /v1/reports), as a sandboxed HTML document', tags: ['daemon'] },
  }, async (req, reply) => {
    const rel = req.params['*'];
    if (resultsDir === null) throw new ThawError('THAW_REPORT_NOT_FOUND', { path: rel.slice(0, 200) });
    const body = readReport(resultsDir, rel);
    return reply.type('text/html; charset=utf-8').header('content-security-policy', REPORT_CSP).header('x-content-type-options', 'nosniff').send(Buffer.from(body));
  });
}

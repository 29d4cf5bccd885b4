// The Thaw daemon's HTTP server: Fastify with JSON-schema'd routes, an OpenAPI document at
// /openapi.json, structured logs (pino), and a bearer token required off loopback.

import Fastify, { type FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import swagger from '@fastify/swagger';
import { timingSafeEqual } from 'node:crypto';
import { ThawError } from '../core/errors.js';
import { MAX_OBJECT_KEY_BYTES } from '../store/object-key.js';
import type { ThawApi } from '../platform/types.js';
import { errorHandler, errorReplySchema } from './error-reply.js';
import { DaemonMetrics, type MetricsSources } from './metrics.js';
import { observeInvocations } from './observed-api.js';
import { RecentInvocations } from './recent-invocations.js';
import { DASHBOARD_PREFIX, registerDashboard } from './dashboard.js';
import { JSON_BODY_LIMIT_BYTES, registerRoutes, sharedSchemas } from './routes.js';

export interface ServerParams {
  readonly host: string;
  readonly port: number;
  /** Required when `host` is not a loopback address. */
  readonly token: string | null;
  readonly logLevel: string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Builds the daemon's Fastify app over `api` (not listening yet; tests use app.inject). */
export async function buildServer(api: ThawApi, params: Pick<ServerParams, 'host' | 'token' | 'logLevel'>, extra: { health?: () => unknown; settle?: () => Promise<void>; logStream?: DestinationStream; resultsDir?: string } & MetricsSources = {}): Promise<FastifyInstance> {
  if (!LOOPBACK.has(params.host) && !params.token) {
    throw new ThawError('THAW_CONFIG_INVALID', { detail: `binding to ${params.host} (not loopback) requires a bearer token (--token or THAW_TOKEN)` });
  }
  const app = Fastify({
    // The daemon's own log destination (asynchronous: cli/commands/daemon.ts), else stdout.
    logger: extra.logStream ? { level: params.logLevel, stream: extra.logStream } : { level: params.logLevel },
    bodyLimit: JSON_BODY_LIMIT_BYTES,
    // An object key may be MAX_OBJECT_KEY_BYTES of UTF-8, each byte percent-encoded in the URL
    // (Fastify's default of 100 refused keys over 100 bytes with its own 414).
    routerOptions: { maxParamLength: 3 * MAX_OBJECT_KEY_BYTES },
    // Errors the router raises before any route (bad URL encoding, a too long segment) go
    // through the same handler as every other error.
    frameworkErrors: (err, req, reply) => errorHandler(err, req, reply),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } },
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Thaw', description: 'Serverless functions with cold starts from memory snapshots', version: '0.1.0' },
      components: params.token ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {},
      ...(params.token ? { security: [{ bearer: [] }] } : {}),
    },
  });
  app.addSchema(errorReplySchema);
  for (const s of sharedSchemas) app.addSchema(s);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    errorHandler(new ThawError('THAW_ROUTE_NOT_FOUND', { method: req.method, url: req.url }), req, reply);
  });

  if (params.token) {
    const expected = Buffer.from(params.token);
    app.addHook('onRequest', async (req) => {
      // The dashboard's own files hold no data; the page sends the token with every API call.
      if (req.url.startsWith(DASHBOARD_PREFIX) || req.url === '/ui') return;
      // Only `Authorization: Bearer <token>` (RFC 6750 section 2.1; the scheme name is
      // case-insensitive): a bare token or another scheme used to pass, since the check only
      // stripped a leading "Bearer " when there was one.
      const m = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
      const got = Buffer.from(m?.[1] ?? '');
      if (!m || got.length !== expected.length || !timingSafeEqual(got, expected)) throw new ThawError('THAW_UNAUTHORIZED');
    });
  }

  const metrics = new DaemonMetrics(api, extra);
  // Error replies are counted by their THAW_* code as they are sent (the router's own errors too).
  app.addHook('onSend', async (_req, reply, payload) => {
    if (reply.statusCode >= 400 && typeof payload === 'string') {
      const code = /"code":"(THAW_[A-Z_]+)"/.exec(payload)?.[1];
      if (code) metrics.recordError(code);
    }
    return payload;
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text format; docs/metrics.md)', tags: ['daemon'] } }, async (_req, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get<{ Querystring: { settle?: boolean } }>('/health', {
    schema: {
      summary: 'Liveness and pool state',
      tags: ['daemon'],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { settle: { type: 'boolean', default: false, description: 'reply once the host pool has refilled and vertical hosts have made their next instance (benchmarks wait for it between runs)' } },
      },
    },
  }, async (req) => {
    if (req.query.settle) await extra.settle?.();
    return { ok: true, ...(extra.health?.() as object | undefined) };
  });
  const recent = new RecentInvocations();
  registerRoutes(app, observeInvocations(api, [metrics, recent]));
  await registerDashboard(app, recent, extra.resultsDir ?? null);
  return app;
}

// The one error reply shape of the HTTP API, and the mapping from any thrown value to it.

import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, ThawError, toThawError } from '../core/errors.js';

export const errorReplySchema = {
  $id: 'ErrorReply',
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    // The catalogue's codes: the OpenAPI document and docs/errors.md list the same ones.
    code: { type: 'string', enum: Object.keys(ERRORS), description: 'stable THAW_* code from the error catalogue (docs/errors.md)' },
    error: { type: 'string' },
    message: { type: 'string' },
    traceId: { type: 'string', description: 'the trace the failed invocation was recorded in, when it was traced' },
  },
} as const;

/**
 * Turns a thrown value into a ThawError: schema validation and Fastify's own errors (body, URL,
 * content type) get catalogue codes, so no reply goes out in Fastify's shape.
 */
export function asThawError(err: unknown, req: FastifyRequest): ThawError {
  if (err instanceof ThawError) return err;
  const fe = err as Partial<FastifyError>;
  if (fe.validation) return new ThawError('THAW_REQUEST_INVALID', { detail: fe.message ?? 'schema validation failed' });
  if (fe.code === 'FST_ERR_MAX_PARAM_LENGTH') return new ThawError('THAW_URI_TOO_LONG', { detail: `a path segment of ${req.url.slice(0, 80)}... is too long` });
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new ThawError('THAW_MEDIA_TYPE_UNSUPPORTED', { contentType: req.headers['content-type'] ?? '', route: `${req.method} ${req.routeOptions.url ?? req.url}` });
  }
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const declared = req.headers['content-length'];
    const limitBytes = req.routeOptions.bodyLimit ?? 0;
    return new ThawError('THAW_BODY_TOO_LARGE', { sizeBytes: declared ?? `more than ${limitBytes}`, limitBytes, route: `${req.method} ${req.routeOptions.url ?? req.url}` });
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new ThawError('THAW_REQUEST_INVALID', { detail: fe.message ?? 'bad request' });
  }
  return toThawError(err);
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const e = asThawError(err, req);
  if (e.status >= 500) req.log.error({ code: e.code, err: e.message }, 'request failed');
  else req.log.info({ code: e.code, err: e.message }, 'request rejected');
  if (e.code === 'THAW_POOL_EXHAUSTED' || e.code === 'THAW_FUNCTION_BUSY') void reply.header('Retry-After', '1');
  // The client may still be sending the body it was refused: close rather than read it all.
  if (e.status === 413) void reply.header('Connection', 'close');
  if (e.code === 'THAW_UNAUTHORIZED') void reply.header('WWW-Authenticate', 'Bearer');
  void reply.status(e.status).send({ statusCode: e.status, code: e.code, error: STATUS_CODES[e.status] ?? 'Error', message: e.message, ...(e.traceId !== undefined && { traceId: e.traceId }) });
}

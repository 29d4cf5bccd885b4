// The one error reply shape of the HTTP API, and the mapping from any thrown value to it.

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ThawError, toThawError } from '../core/errors.js';

export const errorReplySchema = {
  $id: 'ErrorReply',
  type: 'object',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string', description: 'stable THAW_* code from the error catalogue' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 429: 'Too Many Requests',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** Turns a thrown value into a ThawError: schema validation and body errors become 400/413. */
export function asThawError(err: unknown, req: FastifyRequest): ThawError {
  if (err instanceof ThawError) return err;
  const fe = err as Partial<FastifyError>;
  if (fe.validation) return new ThawError('THAW_REQUEST_INVALID', { detail: fe.message ?? 'schema validation failed' });
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
  void reply.status(e.status).send({ statusCode: e.status, code: e.code, error: STATUS_TEXT[e.status] ?? 'Error', message: e.message });
}

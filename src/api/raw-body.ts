// Raw request bodies (invocation inputs, object values) read with a limit that depends on the
// request: an invocation's is its function's maxInputBytes. Fastify's own limit is one number
// per route, so the invocation route used to accept 1 GiB and let the platform refuse it
// afterwards, with the whole body (and a copy) already in daemon memory.

import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { invariant, type ThawError } from '../core/errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Raw-body routes only: see RawBodyLimit. */
    rawBodyLimit?: RawBodyLimit['rawBodyLimit'];
  }
}

/**
 * What a raw-body route declares in its `config`: the most bytes it accepts for this request,
 * and the error for a body past it (`sizeBytes` is the declared length, or a lower bound).
 * May reject (e.g. with THAW_FUNCTION_NOT_FOUND): then nothing of the body is read.
 */
export interface RawBodyLimit {
  rawBodyLimit(req: FastifyRequest): Promise<{ limitBytes: number; tooLarge(sizeBytes: string): ThawError }>;
}

/**
 * Reads the body of `req` as bytes, refusing it as soon as it passes the route's limit: at once
 * when Content-Length says so, else at the chunk that crosses it. Memory stays within the limit
 * (one buffer of the declared length, or the chunks received so far).
 */
export async function readRawBody(req: FastifyRequest, payload: IncomingMessage): Promise<Buffer> {
  const limit = req.routeOptions.config.rawBodyLimit;
  invariant(limit !== undefined, `route ${req.routeOptions.url ?? req.url} reads a raw body but declares no rawBodyLimit`);
  const { limitBytes, tooLarge } = await limit(req);
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  if (declared !== undefined && declared > limitBytes) throw tooLarge(String(declared));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let receivedBytes = 0;
    const stop = (): void => {
      payload.off('data', onData).off('end', onEnd).off('error', onError);
      // Not destroyed: that would close the socket before the 413 is written. The reply asks
      // for the connection to close (see error-reply.ts), so the rest is never read.
      payload.pause();
    };
    const onData = (chunk: Buffer): void => {
      receivedBytes += chunk.length;
      if (receivedBytes <= limitBytes) {
        chunks.push(chunk);
        return;
      }
      stop();
      reject(tooLarge(`more than ${limitBytes}`));
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, receivedBytes));
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    payload.on('data', onData).on('end', onEnd).on('error', onError);
    payload.resume();
  });
}

// The HTTP routes of the daemon, each with its JSON schema (which also feeds the OpenAPI
// document). Handlers only translate between HTTP and ThawApi; all logic is in the platform.

import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ThawError } from '../core/errors.js';
import { RUNTIME_IDS } from '../core/function-spec.js';
import { TIMING_PARTS, type ThawApi, type InvokeResult, type InvokeMode, type SchedulerChange } from '../platform/types.js';
import { INVOKE_MODES, START_KINDS } from '../platform/types.js';
import { readRawBody, type RawBodyLimit } from './raw-body.js';

/** Largest JSON request body (every JSON route but deploy): control requests are small. */
export const JSON_BODY_LIMIT_BYTES = 1024 * 1024;
/** Largest deploy request: a module or source of up to 384 MiB, base64. */
export const DEPLOY_BODY_LIMIT_BYTES = 512 * 1024 * 1024;
/** Largest object value written over HTTP: Redis's own limit for one string value. */
export const OBJECT_BODY_LIMIT_BYTES = 512 * 1024 * 1024;

const ref = (id: string) => ({ $ref: `${id}#` });
const errors = { 400: ref('ErrorReply'), 404: ref('ErrorReply'), 409: ref('ErrorReply'), 500: ref('ErrorReply') };
const nameParam = { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 63 } } } as const;
const idParam = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 100 } } } as const;

export const sharedSchemas = [
  {
    $id: 'Function',
    type: 'object',
    properties: {
      name: { type: 'string' }, runtime: { type: 'string', enum: [...RUNTIME_IDS] }, memoryMiB: { type: 'integer' },
      handler: { type: 'string' }, timeoutMs: { type: 'integer' }, initTimeoutMs: { type: 'integer' }, maxInputBytes: { type: 'integer' }, maxOutputBytes: { type: 'integer' }, description: { type: 'string' },
      digest: { type: 'string' }, deployedAt: { type: 'string' }, facts: { type: 'object', additionalProperties: true },
    },
  },
  {
    $id: 'Sandbox',
    type: 'object',
    properties: {
      id: { type: 'string' }, function: { type: 'string' }, state: { type: 'string', enum: ['idle', 'busy'] },
      origin: { type: 'object', additionalProperties: true }, createdAt: { type: 'string' }, invocations: { type: 'integer' },
      memoryBytes: { type: 'integer' }, memory: { type: 'object', properties: { declaredBytes: { type: 'integer' }, grantedBytes: { type: 'integer' }, residentBytes: { type: 'integer' }, offloadedBytes: { type: 'integer' } } },
      hostPid: { type: 'integer', description: 'the host process carrying the sandbox (a sandbox is a host and an instance in it)' },
      layout: { type: 'string', enum: ['horizontal', 'vertical'] }, instance: { type: 'integer', description: 'the instance slot in its host, from 0' },
      instancesPerHost: { type: 'integer' }, instancesInHost: { type: 'integer' },
      timings: { type: 'object', additionalProperties: { type: 'number' } },
    },
  },
  {
    $id: 'LogEntry',
    type: 'object',
    properties: {
      seq: { type: 'integer' }, time: { type: 'string' }, function: { type: 'string' }, sandboxId: { type: 'string' },
      stream: { type: 'string', enum: ['stdout', 'stderr'] }, text: { type: 'string' },
    },
  },
  {
    $id: 'Snapshot',
    type: 'object',
    properties: {
      id: { type: 'string' }, kind: { type: 'string', enum: ['full', 'diff'] }, baseId: { type: ['string', 'null'] },
      function: { type: 'string' }, runtime: { type: 'string' }, moduleDigest: { type: 'string' }, memoryBytes: { type: 'integer' },
      diskBytes: { type: 'integer' }, createdAt: { type: 'string' }, sourceSandboxId: { type: 'string' }, current: { type: 'boolean' },
      artefacts: {
        type: 'array',
        items: {
          type: 'object',
          properties: { name: { type: 'string' }, kind: { type: 'string' }, bytes: { type: 'integer' }, tier: { type: 'string', enum: ['disk', 'tmpfs', 'pool', 'memory'] } },
        },
      },
      auto: {
        type: 'object', description: 'GET of one current snapshot: the strategy auto would pick now, and why',
        properties: { strategy: { type: 'string' }, reason: { type: 'string' } },
      },
    },
  },
  {
    $id: 'Invocation',
    type: 'object',
    properties: {
      function: { type: 'string' }, mode: { type: 'string', enum: [...INVOKE_MODES] }, start: { type: 'string', enum: [...START_KINDS] }, sandboxId: { type: 'string' },
      hostPid: { type: 'integer', description: 'the host process that carried the sandbox' },
      kept: { type: 'boolean' }, snapshotId: { type: 'string' }, strategy: { type: 'string' },
      strategyReason: { type: 'string', description: 'snapshot mode with strategy auto (the default): why it picked this strategy' },
      output: { type: 'string', description: 'the response as UTF-8 text, when it is valid UTF-8' },
      outputBase64: { type: 'string', description: 'the response, base64, when it is not valid UTF-8' },
      timings: {
        type: 'object',
        description: 'the parts of the time, in ms: they sum to totalMs',
        properties: {
          ...Object.fromEntries(TIMING_PARTS.map((p) => [p.key, { type: 'number', description: p.what }])),
          totalMs: { type: 'number' },
        },
      },
      memoryBytes: { type: 'integer' },
      memory: { type: 'object', properties: { declaredBytes: { type: 'integer' }, grantedBytes: { type: 'integer' }, residentBytes: { type: 'integer' }, offloadedBytes: { type: 'integer' } } },
      restore: { type: 'object', additionalProperties: true, description: 'snapshot mode: what the restore strategy did' },
      traceId: { type: 'string', description: 'the trace this invocation was recorded in, when it was traced (daemon run with --trace-export)' },
    },
  },
];

/** The wire form of an invocation result: the output as text when it is UTF-8, else base64. */
export function invocationToWire(r: InvokeResult): Record<string, unknown> {
  const { output, ...rest } = r;
  const buf = Buffer.from(output.buffer, output.byteOffset, output.byteLength);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
  return Buffer.from(text, 'utf8').equals(buf) ? { ...rest, output: text } : { ...rest, outputBase64: buf.toString('base64') };
}

export function registerRoutes(app: FastifyInstance, api: ThawApi): void {
  // ---- functions
  app.post<{ Body: { manifest: unknown; artefactBase64: string } }>('/v1/functions', {
    schema: {
      summary: 'Deploy (or redeploy) a function from its manifest and artefact',
      tags: ['functions'],
      body: {
        type: 'object', required: ['manifest', 'artefactBase64'], additionalProperties: false,
        properties: {
          manifest: { type: 'object', additionalProperties: true, description: 'function manifest (see docs/functions.md)' },
          artefactBase64: { type: 'string', description: 'the .wasm module (wasi) or handler source (python), base64' },
        },
      },
      response: { 201: ref('Function'), ...errors },
    },
    bodyLimit: DEPLOY_BODY_LIMIT_BYTES,
  }, async (req, reply) => {
    const info = await api.deployFunction(req.body.manifest, Buffer.from(req.body.artefactBase64, 'base64'));
    return reply.status(201).send(info);
  });
  app.get('/v1/functions', { schema: { summary: 'List functions', tags: ['functions'], response: { 200: { type: 'array', items: ref('Function') } } } },
    async () => api.listFunctions());
  app.get<{ Params: { name: string } }>('/v1/functions/:name', { schema: { summary: 'Get a function', tags: ['functions'], params: nameParam, response: { 200: ref('Function'), ...errors } } },
    async (req) => api.getFunction(req.params.name));
  app.delete<{ Params: { name: string } }>('/v1/functions/:name', { schema: { summary: 'Delete a function and stop its sandboxes', tags: ['functions'], params: nameParam, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await api.deleteFunction(req.params.name);
      return reply.status(204).send();
    });

  app.get<{ Params: { name: string }; Querystring: { after?: number; limit?: number; follow?: boolean } }>('/v1/functions/:name/logs', {
    schema: {
      summary: "What the function's sandboxes wrote to stdout and stderr (kept lines); with follow=true, the kept lines after `after` (none without it) and then new ones as they come, as NDJSON until the client hangs up",
      tags: ['functions'], params: nameParam,
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          after: { type: 'integer', minimum: 0, description: 'only lines with a larger seq (resume a read)' },
          limit: { type: 'integer', minimum: 1, maximum: 100000, description: 'at most this many of the newest kept lines' },
          follow: { type: 'boolean' },
        },
      },
      response: { 200: { type: 'array', items: ref('LogEntry') }, ...errors },
    },
  }, async (req, reply) => {
    const { name } = req.params;
    const { after, limit, follow } = req.query;
    if (!follow) return api.functionLogs(name, { ...(after !== undefined && { afterSeq: after }), ...(limit !== undefined && { limit }) });
    // Follow: the kept lines after `after` (none without it), then every new one, one JSON object
    // per line, until the client hangs up.
    await api.functionLogs(name); // an unknown function gets its 404 before the stream starts
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const done = new AbortController();
    reply.raw.once('close', () => done.abort());
    await api.followLogs(name, after, (e) => reply.raw.write(`${JSON.stringify(e)}\n`), done.signal);
    reply.raw.end();
    return reply;
  });

  // ---- sandboxes
  app.post<{ Body: { function: string } }>('/v1/sandboxes', {
    schema: {
      summary: 'Boot a sandbox cold (boot + init) and keep it idle for warm invocations', tags: ['sandboxes'],
      body: { type: 'object', required: ['function'], additionalProperties: false, properties: { function: { type: 'string' } } },
      response: { 201: ref('Sandbox'), ...errors },
    },
  }, async (req, reply) => reply.status(201).send(await api.bootSandbox(req.body.function)));
  app.get('/v1/sandboxes', { schema: { summary: 'List live sandboxes', tags: ['sandboxes'], response: { 200: { type: 'array', items: ref('Sandbox') } } } },
    async () => api.listSandboxes());
  app.delete<{ Params: { id: string } }>('/v1/sandboxes/:id', { schema: { summary: 'Stop a sandbox', tags: ['sandboxes'], params: idParam, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await api.deleteSandbox(req.params.id);
      return reply.status(204).send();
    });

  // ---- snapshots
  app.post<{ Body: { sandboxId: string; kind?: 'full' | 'diff'; baseId?: string } }>('/v1/snapshots', {
    schema: {
      summary: 'Snapshot an idle sandbox (full, or diff against a base snapshot)', tags: ['snapshots'],
      body: {
        type: 'object', required: ['sandboxId'], additionalProperties: false,
        properties: { sandboxId: { type: 'string' }, kind: { type: 'string', enum: ['full', 'diff'] }, baseId: { type: 'string' } },
      },
      response: { 201: ref('Snapshot'), ...errors },
    },
  }, async (req, reply) => reply.status(201).send(await api.createSnapshot(req.body)));
  app.get<{ Querystring: { function?: string } }>('/v1/snapshots', {
    schema: {
      summary: 'List snapshots', tags: ['snapshots'],
      querystring: { type: 'object', additionalProperties: false, properties: { function: { type: 'string' } } },
      response: { 200: { type: 'array', items: ref('Snapshot') } },
    },
  }, async (req) => api.listSnapshots(req.query.function));
  app.get<{ Params: { id: string } }>('/v1/snapshots/:id', { schema: { summary: 'Get a snapshot', tags: ['snapshots'], params: idParam, response: { 200: ref('Snapshot'), ...errors } } },
    async (req) => api.getSnapshot(req.params.id));
  app.delete<{ Params: { id: string } }>('/v1/snapshots/:id', { schema: { summary: 'Delete a snapshot (refused while diff snapshots build on it)', tags: ['snapshots'], params: idParam, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await api.deleteSnapshot(req.params.id);
      return reply.status(204).send();
    });

  app.post<{ Params: { id: string }; Body: { strategy: string } }>('/v1/snapshots/:id/prepare', {
    schema: {
      summary: "Build and verify a restore strategy's artefacts for a snapshot ahead of its first restore", tags: ['snapshots'], params: idParam,
      body: { type: 'object', required: ['strategy'], additionalProperties: false, properties: { strategy: { type: 'string' } } },
      response: {
        200: { type: 'object', properties: { snapshotId: { type: 'string' }, strategy: { type: 'string' }, built: { type: 'boolean' }, elapsedMs: { type: 'number' } } },
        ...errors, 501: ref('ErrorReply'),
      },
    },
  }, async (req) => api.prepareSnapshot(req.params.id, req.body.strategy));
  app.post<{ Params: { id: string } }>('/v1/snapshots/:id/verify', {
    schema: {
      summary: 'Read every byte of a snapshot, its base chain and its artefacts and check every checksum (a scrub)', tags: ['snapshots'], params: idParam,
      response: {
        200: {
          type: 'object',
          properties: {
            snapshotId: { type: 'string' }, ok: { type: 'boolean' }, elapsedMs: { type: 'number' },
            files: { type: 'array', items: { type: 'object', properties: { file: { type: 'string' }, status: { type: 'string', enum: ['ok', 'corrupt'] }, detail: { type: 'string' } } } },
          },
        },
        ...errors,
      },
    },
  }, async (req) => api.verifySnapshot(req.params.id));
  app.get('/v1/strategies', {
    schema: {
      summary: 'List restore strategies and whether this host can run them', tags: ['snapshots'],
      response: {
        200: {
          type: 'array',
          items: { type: 'object', properties: { id: { type: 'string' }, description: { type: 'string' }, available: { type: 'boolean' }, reason: { type: 'string' }, verifies: { type: 'string' }, verifiesHow: { type: 'string' } } },
        },
      },
    },
  }, async () => api.listStrategies());
  app.get('/v1/doctor', {
    schema: {
      summary: 'How sandbox hosts are confined here, layer by layer, as a freshly started host observes it', tags: ['sandboxes'],
      response: {
        200: {
          type: 'object',
          properties: {
            jailed: { type: 'boolean' }, reason: { type: 'string' }, memoryCgroups: { type: 'string' },
            layers: { type: 'array', items: { type: 'object', properties: { layer: { type: 'string' }, active: { type: 'boolean' }, detail: { type: 'string' } } } },
          },
        },
      },
    },
  }, async () => api.doctor());

  // ---- keep-alive scheduler
  const startCounts = { type: 'object', properties: Object.fromEntries(START_KINDS.map((k) => [k, { type: 'integer' }])) };
  const schedulerReply = {
    type: 'object',
    properties: {
      policy: { type: 'string' }, tier: { type: ['string', 'null'] }, keepAliveS: { type: 'number' }, timeScale: { type: 'number' }, remoteLatencyUs: { type: 'integer' }, keepAliveMs: { type: 'number' }, tickMs: { type: 'number' },
      sandboxes: { type: 'object', properties: { live: { type: 'integer' }, idle: { type: 'integer' }, semiWarm: { type: 'integer' } } },
      functions: {
        type: 'object',
        additionalProperties: { type: 'object', properties: { starts: startCounts, expired: { type: 'integer' }, reuseP99Ms: { type: 'number' }, reuseSamples: { type: 'integer' } } },
      },
      memory: {
        type: 'array', description: "each live sandbox's memory as its host measures it (resident: mincore; held: offloaded and not faulted back)",
        items: {
          type: 'object',
          properties: {
            id: { type: 'string' }, function: { type: 'string' }, semiWarm: { type: 'boolean' }, residentBytes: { type: 'integer' }, heldBytes: { type: 'integer' }, storedBytes: { type: 'integer' }, swappedBytes: { type: 'integer' },
            offloadedBytes: { type: 'integer' }, faultedBackBytes: { type: 'integer' }, faultBackMeanUs: { type: 'number' },
          },
        },
      },
      zram: {
        type: 'object', description: 'the zram swap device tmo:compressed set up (origBytes swapped out; memUsedBytes: the RAM it takes)',
        properties: { device: { type: 'string' }, origBytes: { type: 'integer' }, comprBytes: { type: 'integer' }, memUsedBytes: { type: 'integer' } },
      },
    },
  } as const;
  app.get('/v1/scheduler', {
    schema: { summary: 'The keep-alive scheduler: policy, keep-alive, live sandboxes and start counts per function', tags: ['sandboxes'], response: { 200: schedulerReply } },
  }, async () => api.scheduler());
  app.put<{ Body: SchedulerChange }>('/v1/scheduler', {
    schema: {
      summary: "Change the scheduler's memory policy, offload tier, keep-alive or time scale (an experiment setting)", tags: ['sandboxes'],
      body: {
        type: 'object', additionalProperties: false,
        properties: {
          policy: { type: 'string', maxLength: 63 }, tier: { type: ['string', 'null'], enum: ['file', 'compressed', 'remote', null] },
          keepAliveS: { type: 'number', minimum: 0, maximum: 604800 }, timeScale: { type: 'number', minimum: 1, maximum: 10000 },
          remoteLatencyUs: { type: 'integer', minimum: 0, maximum: 1000000, description: 'remote tier: latency the memory server adds per fetch round trip (one run of up to 256 pages)' },
          resetCounts: { type: 'boolean', description: 'set every start count to zero' },
          resetHistory: { type: 'boolean', description: "forget every function's reuse intervals (the semi-warm threshold is their P99)" },
          preparePool: { type: 'boolean', description: 'prepare pooled hosts for every deployed function and reply once they are ready (each replay setting starts from the same pool)' },
        },
      },
      response: { 200: schedulerReply, ...errors },
    },
  }, async (req) => api.configureScheduler(req.body));

  // ---- objects
  const keyParam = { type: 'object', required: ['key'], properties: { key: { type: 'string', minLength: 1, maxLength: 512 } } } as const;
  app.get<{ Querystring: { prefix?: string } }>('/v1/objects', {
    schema: {
      summary: 'List object keys', tags: ['objects'],
      querystring: { type: 'object', additionalProperties: false, properties: { prefix: { type: 'string' } } },
      response: { 200: { type: 'object', properties: { keys: { type: 'array', items: { type: 'string' } } } }, ...errors },
    },
  }, async (req) => ({ keys: await api.listObjects(req.query.prefix) }));
  app.get<{ Params: { key: string } }>('/v1/objects/:key', {
    schema: {
      summary: 'Read an object', tags: ['objects'], params: keyParam,
      response: { 200: { type: 'object', properties: { key: { type: 'string' }, sizeBytes: { type: 'integer' }, valueBase64: { type: 'string' } } }, ...errors },
    },
  }, async (req) => {
    const value = await api.getObject(req.params.key);
    return { key: req.params.key, sizeBytes: value.length, valueBase64: Buffer.from(value).toString('base64') };
  });
  app.delete<{ Params: { key: string } }>('/v1/objects/:key', { schema: { summary: 'Delete an object', tags: ['objects'], params: keyParam, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await api.deleteObject(req.params.key);
      return reply.status(204).send();
    });

  // ---- raw bodies: invocation inputs and object values, as bytes of any content type.
  void app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', async (req: FastifyRequest, payload: IncomingMessage) => readRawBody(req, payload));
    const objectLimit: RawBodyLimit = {
      rawBodyLimit: async () => ({
        limitBytes: OBJECT_BODY_LIMIT_BYTES,
        tooLarge: (sizeBytes) => new ThawError('THAW_BODY_TOO_LARGE', { sizeBytes, limitBytes: OBJECT_BODY_LIMIT_BYTES, route: 'PUT /v1/objects/:key' }),
      }),
    };
    // The function's own maxInputBytes: the body is refused at the chunk that passes it.
    const inputLimit: RawBodyLimit = {
      rawBodyLimit: async (req) => {
        const fn = await api.getFunction((req.params as { name: string }).name);
        return { limitBytes: fn.maxInputBytes, tooLarge: (sizeBytes) => new ThawError('THAW_INPUT_TOO_LARGE', { sizeBytes, limitBytes: fn.maxInputBytes, name: fn.name }) };
      },
    };
    raw.put<{ Params: { key: string }; Body: Buffer | undefined }>('/v1/objects/:key', {
      config: objectLimit,
      schema: { summary: 'Write an object (the request body is its value)', tags: ['objects'], params: keyParam, response: { 204: { type: 'null' }, ...errors } },
    }, async (req, reply) => {
      await api.putObject(req.params.key, req.body ?? new Uint8Array(0));
      return reply.status(204).send();
    });
    raw.post<{ Params: { name: string }; Querystring: { mode?: InvokeMode; sandbox?: string; snapshot?: string; strategy?: string; keep?: boolean }; Body: Buffer | undefined }>(
      '/v1/functions/:name/invocations',
      {
        config: inputLimit,
        schema: {
          summary: 'Invoke a function: auto (the keep-alive scheduler picks), cold (boot + init + handler), warm (an idle sandbox) or snapshot (restore + handler)',
          description: 'The request body is the input bytes. The reply carries the output and a timing breakdown measured inside Thaw.',
          tags: ['invocations'],
          params: nameParam,
          querystring: {
            type: 'object', additionalProperties: false,
            properties: {
              mode: { type: 'string', enum: [...INVOKE_MODES], default: 'auto', description: 'auto: an idle warm sandbox, else a semi-warm one, else the newest snapshot, else cold' },
              sandbox: { type: 'string', description: 'warm: the sandbox to use' },
              snapshot: { type: 'string', description: 'snapshot: the snapshot to restore (default: newest)' },
              strategy: { type: 'string', description: 'snapshot: restore strategy id, or auto (the default: the platform picks one and says why in strategyReason)' },
              keep: { type: 'boolean', default: true, description: 'keep the sandbox for warm invocations' },
            },
          },
          response: { 200: ref('Invocation'), ...errors, 413: ref('ErrorReply'), 429: ref('ErrorReply'), 502: ref('ErrorReply'), 503: ref('ErrorReply'), 504: ref('ErrorReply') },
        },
      },
      async (req) => {
        const q = req.query;
        const result = await api.invoke({
          function: req.params.name,
          mode: q.mode ?? 'auto',
          input: req.body ?? new Uint8Array(0),
          ...(q.sandbox !== undefined && { sandboxId: q.sandbox }),
          ...(q.snapshot !== undefined && { snapshotId: q.snapshot }),
          ...(q.strategy !== undefined && { strategy: q.strategy }),
          ...(q.keep !== undefined && { keep: q.keep }),
          // W3C Trace Context: a sampled caller's trace gets the invocation's spans (docs/tracing.md).
          ...(typeof req.headers.traceparent === 'string' && { traceparent: req.headers.traceparent }),
        });
        return invocationToWire(result);
      },
    );
  });
}

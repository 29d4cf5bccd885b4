// `thaw daemon`: the platform behind the HTTP API, until SIGINT/SIGTERM.

import pino from 'pino';
import { parseDaemonConfig } from '../../core/config.js';
import { Platform } from '../../platform/platform.js';
import { buildServer } from '../../api/server.js';
import { PlatformTracing } from '../../platform/tracing.js';
import type { GlobalOptions } from '../context.js';

interface DaemonOptions {
  host: string;
  port: string;
  spareHosts: string;
  preparedPerFunction: string;
  maxIdleSandboxes: string;
  maxSandboxes: string;
  cgroups: boolean;
  jail: string;
  scrubIntervalS: string;
  preparedIdleS: string;
  maxPreparedFunctions: string;
  maxHostStarts?: string;
  layout: string;
  instancesPerHost: string;
  logLevel: string;
  keepAliveS: string;
  memoryPolicy: string;
  traceExport?: string;
  traceSampleRatio: string;
  resultsDir: string;
}

export async function runDaemon(g: GlobalOptions, o: DaemonOptions): Promise<void> {
  const params = parseDaemonConfig({
    dataDir: g.dataDir, objectStore: g.objectStore, token: g.token, host: o.host, port: o.port, spareHosts: o.spareHosts,
    preparedPerFunction: o.preparedPerFunction, maxIdleSandboxes: o.maxIdleSandboxes, maxSandboxes: o.maxSandboxes, cgroups: o.cgroups, logLevel: o.logLevel,
    jail: o.jail, scrubIntervalS: o.scrubIntervalS, preparedIdleS: o.preparedIdleS, maxPreparedFunctions: o.maxPreparedFunctions, maxHostStarts: o.maxHostStarts,
    layout: o.layout, instancesPerHost: o.instancesPerHost,
    keepAliveS: o.keepAliveS, memoryPolicy: o.memoryPolicy,
    traceExport: o.traceExport, traceSampleRatio: o.traceSampleRatio, resultsDir: o.resultsDir,
  });
  // One buffered, asynchronous destination for the platform's log and Fastify's (request lines):
  // a write per line (synchronous, or handed to a libuv thread) cost each HTTP request 0.1-0.3 ms
  // of the daemon's thread on this machine (bench:core's HTTP row, DAEMON_LOG=info against
  // warn). Lines are written once 4 KiB have gathered or every 100 ms; pino flushes what is left
  // when the daemon exits.
  const logStream = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 });
  const logger = pino({ level: params.logLevel }, logStream);
  const platform = new Platform({ ...params, logger });
  // Invocations are traced (with what sandbox hosts record) only when there is a collector, or
  // when a caller's sampled traceparent asks; spans then go to that collector.
  const tracing = params.traceExport ? new PlatformTracing({ exportTo: params.traceExport, sampleRatio: params.traceSampleRatio }) : null;
  platform.setTracing(tracing);
  const app = await buildServer(platform, params, { health: () => ({ pool: platform.poolState() }), settle: () => platform.poolSettled(), logStream, pool: () => platform.poolState(), resultsDir: params.resultsDir });
  const address = await app.listen({ host: params.host, port: params.port });
  logger.info({ address, dataDir: params.dataDir, objectStore: params.objectStore.kind }, 'thaw daemon listening');
  // Printed on stdout so scripts (and tests) can find the port when --port 0 is used.
  process.stdout.write(`thaw daemon listening on ${address}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await app.close();
  await platform.close();
  const exportError = await tracing?.close();
  if (exportError) logger.warn({ error: exportError }, 'trace export failed at shutdown');
}

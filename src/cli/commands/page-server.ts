// `thaw page-server`: serves Firecracker microVMs' guest memory over Firecracker's userfaultfd
// protocol (src/firecracker/page-server.ts). Prints one JSON line per event on stdout; runs
// until SIGINT or SIGTERM.

import { ThawError } from '../../core/errors.js';
import { PageServer, type PageServerEvent } from '../../firecracker/page-server.js';
import { JailedPageServer } from '../../firecracker/page-server-jail.js';

export interface PageServerCliOptions {
  socket: string;
  snapshot: string;
  strategy: string;
  workingSet?: string;
  /** Run jailed with this group (page-server-jail.ts). */
  jail?: string;
}

export async function runPageServer(o: PageServerCliOptions): Promise<void> {
  const onEvent = (e: PageServerEvent): void => void process.stdout.write(`${JSON.stringify(e)}\n`);
  let server: { close(): Promise<void> };
  if (o.jail !== undefined) {
    const gid = Number(o.jail);
    if (!Number.isInteger(gid) || gid <= 0) throw new ThawError('THAW_CONFIG_INVALID', { detail: '--jail takes the snapshot\'s group id (a positive integer)' });
    if (o.workingSet) throw new ThawError('THAW_CONFIG_INVALID', { detail: '--working-set and --jail: a jailed server keeps its working set beside the snapshot' });
    server = await JailedPageServer.start({ socket: o.socket, snapshot: o.snapshot, strategy: o.strategy, gid, onEvent });
  } else {
    server = await PageServer.listen({ socket: o.socket, snapshot: o.snapshot, strategy: o.strategy, ...(o.workingSet ? { workingSet: o.workingSet } : {}), onEvent });
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
}

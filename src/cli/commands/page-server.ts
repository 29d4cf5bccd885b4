// `thaw page-server`: serves Firecracker microVMs' guest memory over Firecracker's userfaultfd
// protocol (src/firecracker/page-server.ts). Prints one JSON line per event on stdout; runs
// until SIGINT or SIGTERM.

import { PageServer } from '../../firecracker/page-server.js';

export interface PageServerCliOptions {
  socket: string;
  snapshot: string;
  strategy: string;
  workingSet?: string;
}

export async function runPageServer(o: PageServerCliOptions): Promise<void> {
  const server = await PageServer.listen({
    socket: o.socket, snapshot: o.snapshot, strategy: o.strategy, ...(o.workingSet ? { workingSet: o.workingSet } : {}),
    onEvent: (e) => process.stdout.write(`${JSON.stringify(e)}\n`),
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
}

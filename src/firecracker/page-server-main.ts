// The jailed page server process (started by page-server-jail.ts through thaw-jailer): forbids
// execve on every thread first, observes its own jail, serves with PageServer and reports each
// event to its supervisor over the IPC channel; on {kind:'stop'} it closes (recording a working
// set if it was recording) and exits.
// argv: --socket PATH --snapshot PATH --strategy ID [--working-set PATH] [--record-to PATH] [--sha256 JSON]

import { jailLockExec } from '../native/index.js';
import { inspectJail } from '../sandbox/host/inspect.js';
import { toThawError, type ThawError } from '../core/errors.js';
import { PageServer } from './page-server.js';

/** Messages from the jailed page server to its supervisor. */
export type PageServerChildMessage =
  | { kind: 'event'; event: import('./page-server.js').PageServerEvent }
  | { kind: 'failed'; error: ReturnType<ThawError['toJSON']> };

async function main(argv: readonly string[]): Promise<void> {
  jailLockExec();
  const arg = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const send = (m: PageServerChildMessage): void => void process.send?.(m);
  try {
    const sha = arg('--sha256');
    const workingSet = arg('--working-set');
    const recordTo = arg('--record-to');
    const server = await PageServer.listen({
      socket: arg('--socket')!, snapshot: arg('--snapshot')!, strategy: arg('--strategy')!,
      ...(workingSet && { workingSet }), ...(recordTo && { recordTo }), ...(sha && { expectSha256: JSON.parse(sha) as Record<string, string> }),
      jail: inspectJail(), onEvent: (event) => send({ kind: 'event', event }),
    });
    const stop = (): void => void server.close().finally(() => process.exit(0));
    process.on('message', (m: { kind?: string }) => { if (m.kind === 'stop') stop(); });
    process.on('disconnect', stop);
  } catch (err: unknown) {
    send({ kind: 'failed', error: toThawError(err).toJSON() });
    process.exitCode = 1;
    process.disconnect?.();
  }
}

void main(process.argv.slice(2));

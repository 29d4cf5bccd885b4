// A host's inspect op: what it observes of its own confinement (for `thaw doctor`).

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { uffdAvailability } from '../../native/index.js';
import type { JailLayer } from '../protocol.js';

/**
 * The jail as this process sees it: every layer is checked by what it does (a refused call, a
 * kernel status field), not by what the daemon asked for.
 */
export function inspectJail(): JailLayer[] {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '?';
  const refused = (fn: () => unknown): string | null => {
    try {
      fn();
      return null;
    } catch (err: unknown) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
  };
  const uid = process.getuid?.() ?? -1;
  const gid = process.getgid?.() ?? -1;
  const spawned = spawnSync('/bin/true');
  const listRoot = refused(() => readdirSync('/'));
  const interfaces = Object.keys(networkInterfaces());
  const uffd = uffdAvailability();
  const seccomp = field('Seccomp');
  return [
    { layer: 'user', active: uid !== 0 && gid !== 0, detail: `uid ${uid}, gid ${gid}, groups ${process.getgroups?.().join(',')}` },
    { layer: 'capabilities', active: /^0+$/.test(field('CapEff')) && /^0+$/.test(field('CapBnd')), detail: `effective ${field('CapEff')}, bounding ${field('CapBnd')}` },
    { layer: 'no_new_privs', active: field('NoNewPrivs') === '1', detail: `NoNewPrivs ${field('NoNewPrivs')}` },
    { layer: 'seccomp', active: seccomp === '2', detail: `mode ${seccomp}, ${field('Seccomp_filters')} filters; spawning a process: ${spawned.error ? (spawned.error as NodeJS.ErrnoException).code : 'allowed'}` },
    { layer: 'landlock', active: listRoot !== null, detail: listRoot ? `listing / refused (${listRoot})` : 'listing / allowed' },
    { layer: 'pid namespace', active: process.pid === 1, detail: `pid ${process.pid} inside` },
    { layer: 'network namespace', active: interfaces.length === 0 || interfaces.every((n) => n === 'lo'), detail: `interfaces: ${interfaces.join(', ') || 'none up'}` },
    { layer: 'uts namespace', active: hostname() === 'thaw-sandbox', detail: `hostname ${hostname()}` },
    { layer: 'environment', active: Object.keys(process.env).length === 0, detail: `${Object.keys(process.env).length} variables` },
    { layer: 'userfaultfd', active: uffd.available, detail: uffd.available ? 'page servers available' : uffd.reason },
  ];
}

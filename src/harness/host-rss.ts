// A sandbox host's resident memory as this machine's /proc shows it: the host process itself,
// plus (jailed) the node process the jailer started as its child. Only meaningful where the hosts
// run on this machine (an in-process platform, or a daemon on loopback).

import { readFileSync } from 'node:fs';

/** VmRSS of `pid` and its direct children in bytes, or null when the process is gone or unreadable. */
export function hostRssBytes(pid: number): number | null {
  const rss = (p: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* no children file */
  }
  try {
    return rss(pid) + children.reduce((a, c) => {
      try {
        return a + rss(c);
      } catch {
        return a; // the child exited meanwhile
      }
    }, 0);
  } catch {
    return null;
  }
}

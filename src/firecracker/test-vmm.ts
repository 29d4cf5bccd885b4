// Runs thaw-fc-testvmm (native/thaw_fc_vmm.c), the process that plays Firecracker's part of the
// userfaultfd protocol, for the page server's tests and benchmark.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const TEST_VMM = fileURLToPath(new URL('../../native/build/Release/thaw-fc-testvmm', import.meta.url));

/** The JSON line the test VMM prints when every byte was right. */
export interface VmmReport {
  ok: true;
  pages: number;
  userPages: number;
  kernelPages: number;
  removedPages: number;
  checkedBytes: number;
  touchNs: number;
  userFaultMedianNs: number;
  userFaultP99Ns: number;
}

export interface VmmRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Parsed report when the VMM exited 0. */
  readonly report: VmmReport | null;
}

export interface VmmArgs {
  readonly socket: string;
  readonly memory: string;
  /** e.g. '16M,8M' or '8M,4M@12M' (SIZE[@OFFSET] per region). */
  readonly regions: string;
  readonly shape?: '1.1' | '1.7' | '1.12';
  readonly gap?: string;
  readonly stride?: number;
  readonly remove?: number;
  /** Rounds of MADV_DONTNEED on the last 16 pages by a second thread while the guest runs. */
  readonly removeStorm?: number;
  readonly verify?: boolean;
  readonly json?: string;
  readonly noFd?: boolean;
  /** Send the memory file's fd instead of the userfaultfd. */
  readonly bogusFd?: boolean;
  /** Called once the handshake was sent; the VMM then waits for go() before touching memory. */
  readonly onReady?: (go: () => void, child: ChildProcess) => void;
}

/**
 * Why the test VMM cannot run here, or false when it can: it must be built, and (as Firecracker)
 * it needs a userfaultfd that takes kernel-mode faults: root, rw /dev/userfaultfd, or
 * vm.unprivileged_userfaultfd=1.
 */
export function testVmmUnavailable(): string | false {
  if (!existsSync(TEST_VMM)) return 'thaw-fc-testvmm not built (bash scripts/setup.d/05-native.sh)';
  if (process.getuid?.() === 0) return false;
  try {
    accessSync('/dev/userfaultfd', constants.R_OK | constants.W_OK);
    return false;
  } catch {
    // next
  }
  try {
    if (readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim() === '1') return false;
  } catch {
    // no such sysctl
  }
  return 'no userfaultfd for kernel-mode faults: run as root, give rw on /dev/userfaultfd or set vm.unprivileged_userfaultfd=1';
}

export function runTestVmm(a: VmmArgs): Promise<VmmRun> {
  const args = ['--socket', a.socket, '--memory', a.memory, '--regions', a.regions, '--shape', a.shape ?? '1.12'];
  if (a.gap) args.push('--gap', a.gap);
  if (a.stride) args.push('--stride', String(a.stride));
  if (a.remove) args.push('--remove', String(a.remove));
  if (a.removeStorm) args.push('--remove-storm', String(a.removeStorm));
  if (a.verify === false) args.push('--no-verify');
  if (a.json !== undefined) args.push('--json', a.json);
  if (a.noFd) args.push('--no-fd');
  if (a.bogusFd) args.push('--bogus-fd');
  if (a.onReady) args.push('--wait');
  const child = spawn(TEST_VMM, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let ready = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    if (!ready && a.onReady && stdout.startsWith('ready\n')) {
      ready = true;
      a.onReady(() => child.stdin.end('go\n'), child);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdin.on('error', () => { /* the VMM may be gone already */ });
  return new Promise((resolve) => {
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      resolve({ code, stdout, stderr, report: code === 0 && line ? JSON.parse(line) as VmmReport : null });
    });
  });
}

// The sandbox host's jail, attacked from inside: a Python guest that reaches full Node.js in its
// host (through Pyodide's `js` module and the Function constructor, as a hostile function would)
// tries to run commands, read and write files outside its sandbox, read the daemon's token,
// reach the daemon's port and kill another host. Each attempt must fail. Also: two functions
// with the same code never share a sandbox, and a redeploy retires the old deployment's.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { deployExample, newPlatform, rejectsWith, tempDataDir, text } from './helpers.js';
import { jailAvailability } from '../sandbox/jail.js';

const jail = jailAvailability();
const skip = jail.ok ? false : `the jail cannot run here: ${jail.reason}`;

// The daemon's secret, as `thaw daemon` would hold it: a host must never see it.
process.env.THAW_TOKEN = 'daemon-secret-token';
const dataDir = tempDataDir();
const p = newPlatform({ dataDir, jail: 'auto' });
after(() => p.close());

/** A handler that runs JavaScript bodies in its host's realm and reports each outcome. */
const ATTACKER = `
import js, json
run_js = js.constructor.constructor

def attempt(body):
    try:
        return {"ok": True, "value": str(run_js(body)())}
    except Exception as e:
        return {"ok": False, "error": str(e)[:300]}

def handler(event, context):
    req = event if isinstance(event, dict) else json.loads(event)
    return {name: attempt(body) for name, body in req.items()}
`;

const WHO_AM_I = `
import json
def handler(event, context):
    return {"function": context.function_name, "memoryMiB": context.memory_limit_in_mb}
`;

function pythonManifest(name: string, memoryMiB = 128): Record<string, unknown> {
  return { name, runtime: 'python', source: 'handler.py', memoryMiB, handler: 'handler', timeoutMs: 30000 };
}

async function attack(payloads: Record<string, string>, sandboxId?: string): Promise<Record<string, { ok: boolean; value?: string; error?: string }>> {
  const input = Buffer.from(JSON.stringify(payloads));
  const r = sandboxId
    ? await p.invoke({ function: 'attacker', mode: 'warm', sandboxId, input })
    : await p.invoke({ function: 'attacker', mode: 'cold', input });
  return { ...JSON.parse(text(r.output)), sandbox: { ok: true, value: r.sandboxId } };
}

/** A TCP server on loopback standing in for the daemon's port: it counts the connections it sees (none must arrive). */
async function portThatMustStayUnreached(): Promise<{ port: number; connections(): number; close(): void }> {
  let connections = 0;
  const server: Server = createServer((sock) => {
    connections++;
    sock.destroy();
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return { port: (server.address() as { port: number }).port, connections: () => connections, close: () => server.close() };
}

const fs = "process.getBuiltinModule('node:fs')";
// Unique names, so that a file left by another run cannot make the test pass or fail.
const mark = `thaw-pwned-${process.pid}-${Date.now()}`;

test('a guest that reaches Node.js in its host can do no harm outside its sandbox', { skip }, async () => {
  assert.ok(p.jail.jailed, 'the platform jails its hosts');
  // A victim function with a snapshot and a warm sandbox.
  await deployExample(p, 'hello-py', { name: 'victim' });
  const victim = await p.invoke({ function: 'victim', mode: 'cold', input: Buffer.from('{}') });
  const snap = await p.createSnapshot({ sandboxId: victim.sandboxId });
  const victimMemory = join(dataDir, 'snapshots', snap.id, 'memory.img');
  assert.ok(existsSync(victimMemory));
  const victimPid = (await p.listSandboxes()).find((s) => s.id === victim.sandboxId)!.hostPid;

  await p.deployFunction(pythonManifest('attacker'), Buffer.from(ATTACKER));
  const r = await attack({
    exec: "return process.getBuiltinModule('node:child_process').execSync('id').toString()",
    spawn: "return process.getBuiltinModule('node:child_process').spawnSync('/bin/sh', ['-c', 'id']).error",
    uid: 'return process.getuid() + ":" + process.getgid()',
    env: 'return JSON.stringify(process.env)',
    hostname: `return ${fs}.readFileSync('/etc/hostname', 'utf8')`,
    passwd: `return ${fs}.readFileSync('/etc/passwd', 'utf8').length`,
    otherSnapshot: `return ${fs}.readFileSync(${JSON.stringify(victimMemory)}).length`,
    otherFunction: `return ${fs}.readdirSync(${JSON.stringify(join(dataDir, 'functions', 'victim'))})`,
    listDataDir: `return ${fs}.readdirSync(${JSON.stringify(dataDir)})`,
    writeDataDir: `${fs}.writeFileSync(${JSON.stringify(join(dataDir, mark))}, 'x'); return 'written'`,
    writeTmp: `${fs}.writeFileSync(${JSON.stringify(`/tmp/${mark}`)}, 'x'); return 'written'`,
    writeProject: `${fs}.writeFileSync(${JSON.stringify(join(process.cwd(), mark))}, 'x'); return 'written'`,
    killOtherHost: `process.kill(${victimPid}, 'SIGKILL'); return 'sent'`,
    setuidRoot: 'process.setuid(0); return process.getuid()',
  });
  const attacker = r.sandbox!.value!;
  for (const name of ['exec', 'hostname', 'otherSnapshot', 'otherFunction', 'listDataDir', 'writeDataDir', 'writeTmp', 'writeProject', 'killOtherHost', 'setuidRoot']) {
    assert.equal(r[name]!.ok, false, `${name} must fail, got ${JSON.stringify(r[name])}`);
  }
  assert.ok(r.spawn!.ok && r.spawn!.value !== 'undefined', `spawning a process must fail, got ${JSON.stringify(r.spawn)}`);
  assert.equal(r.passwd!.ok, false, '/etc is not visible beyond what Node needs');
  assert.ok(r.uid!.ok);
  assert.doesNotMatch(r.uid!.value!, /^0:|:0$/, 'the host runs as neither root user nor root group');
  assert.equal(r.env!.value, '{}', 'the host environment is empty (no daemon token)');
  assert.ok(!existsSync(join(dataDir, mark)) && !existsSync(`/tmp/${mark}`) && !existsSync(join(process.cwd(), mark)));

  // The daemon's port: a TCP server on loopback that must never see a connection.
  const daemonPort = await portThatMustStayUnreached();
  const port = daemonPort.port;
  try {
    await attack({ connect: `globalThis.outcome = 'pending'; const s = process.getBuiltinModule('node:net').connect(${port}, '127.0.0.1'); s.on('connect', () => { globalThis.outcome = 'connected'; }); s.on('error', (e) => { globalThis.outcome = e.code; }); return 'started'` }, attacker);
    await new Promise((res) => setTimeout(res, 500));
    const later = await attack({ outcome: 'return globalThis.outcome' }, attacker);
    assert.notEqual(later.outcome!.value, 'connected');
    assert.notEqual(later.outcome!.value, 'pending', 'the connection attempt failed at once');
    assert.equal(daemonPort.connections(), 0);
  } finally {
    daemonPort.close();
  }

  // The victim is untouched: its warm sandbox still answers.
  const again = await p.invoke({ function: 'victim', mode: 'warm', sandboxId: victim.sandboxId, input: Buffer.from('{}') });
  assert.equal(text(again.output), text(victim.output));
});

/**
 * A shared object whose constructor runs the system calls an escape would need and leaves each
 * outcome (`name=ok` or the errno's name) in the environment variable THAW_NATIVE_RESULT: a guest
 * that writes it to its scratch directory and loads it with process.dlopen runs its own machine
 * code in the host, and then only seccomp, Landlock, the namespaces and the uid stand in its way.
 */
const NATIVE_ATTACK = `
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static char out[2048];
static size_t used;

static void note(const char *name, long rc) {
  used += snprintf(out + used, sizeof out - used, "%s%s=%s", used ? "," : "", name, rc < 0 ? strerrorname_np(errno) : "ok");
}

__attribute__((constructor)) static void attack(void) {
  pid_t victim = atoi(getenv("THAW_ATTACK_PID") ?: "1");
  int port = atoi(getenv("THAW_ATTACK_PORT") ?: "1");
  long rc = syscall(SYS_fork);
  if (rc == 0) _exit(0);
  note("fork", rc);
  char *argv[] = { "/bin/true", NULL };
  note("execve", execve("/bin/true", argv, NULL));
  note("ptrace_attach", ptrace(PTRACE_ATTACH, victim, 0, 0));
  note("ptrace_traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
  char buf[16];
  struct iovec local = { buf, sizeof buf }, remote = { (void *)0x400000, sizeof buf };
  note("process_vm_readv", process_vm_readv(victim, &local, 1, &remote, 1, 0));
  note("unshare_user", unshare(CLONE_NEWUSER));
  note("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
  note("setuid_root", setuid(0));
  note("chroot", chroot("/"));
  note("open_passwd", open("/etc/passwd", O_RDONLY));
  note("open_root_home", open("/root", O_RDONLY | O_DIRECTORY));
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  note("connect_daemon_port", s < 0 ? s : connect(s, (struct sockaddr *)&addr, sizeof addr));
  note("bpf", syscall(SYS_bpf, 0, NULL, 0));
  struct io_uring_params params = { 0 };
  note("io_uring_setup", syscall(SYS_io_uring_setup, 1, &params));
  note("init_module", syscall(SYS_init_module, NULL, 0, ""));
  setenv("THAW_NATIVE_RESULT", out, 1);
}
`;

/** Builds NATIVE_ATTACK with the system's C compiler; null (and why) when there is none. */
function buildNativeAttack(): { so: Buffer } | { why: string } {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-native-attack-'));
  try {
    writeFileSync(join(dir, 'attack.c'), NATIVE_ATTACK);
    const cc = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', join(dir, 'attack.so'), join(dir, 'attack.c')], { encoding: 'utf8' });
    if (cc.error || cc.status !== 0) return { why: `no C compiler to build the attack: ${cc.error?.message ?? cc.stderr}` };
    return { so: readFileSync(join(dir, 'attack.so')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a guest that loads its own machine code into its host is still confined: every escape syscall fails', { skip }, async (t) => {
  const built = buildNativeAttack();
  if ('why' in built) return t.skip(built.why);
  await deployExample(p, 'hello-py', { name: 'native-victim' });
  const victim = await p.invoke({ function: 'native-victim', mode: 'cold', input: Buffer.from('{}') });
  const victimPid = (await p.listSandboxes()).find((s) => s.id === victim.sandboxId)!.hostPid;
  const daemonPort = await portThatMustStayUnreached();
  try {
    await p.deployFunction(pythonManifest('native-attacker'), Buffer.from(ATTACKER));
    const r = await p.invoke({
      function: 'native-attacker',
      mode: 'cold',
      keep: false,
      input: Buffer.from(JSON.stringify({
        native: `
          const fs = process.getBuiltinModule('node:fs');
          const scratch = process.argv.find((a) => a.startsWith('--scratch='))?.slice('--scratch='.length) ?? process.getBuiltinModule('node:os').tmpdir();
          const so = scratch + '/attack.so';
          fs.writeFileSync(so, Buffer.from(${JSON.stringify(built.so.toString('base64'))}, 'base64'));
          process.env.THAW_ATTACK_PID = '${victimPid}';
          process.env.THAW_ATTACK_PORT = '${daemonPort.port}';
          try { process.dlopen({ exports: {} }, so); } catch { /* not a Node addon: its constructor has run */ }
          return process.env.THAW_NATIVE_RESULT;`,
      })),
    });
    const native = JSON.parse(text(r.output)).native as { ok: boolean; value?: string; error?: string };
    assert.ok(native.ok, `the guest loaded its machine code (the attack ran): ${JSON.stringify(native)}`);
    const outcomes = Object.fromEntries(native.value!.split(',').map((kv) => kv.split('=') as [string, string]));
    assert.equal(Object.keys(outcomes).length, 15, `every attempt reported: ${native.value}`);
    for (const [call, outcome] of Object.entries(outcomes)) assert.notEqual(outcome, 'ok', `${call} must fail inside the jail (${native.value})`);
    // Seccomp, not luck: the calls the allowlist refuses say EPERM (or ENOSYS for ones it never heard of).
    for (const call of ['fork', 'execve', 'ptrace_attach', 'ptrace_traceme', 'unshare_user', 'mount', 'bpf']) {
      assert.equal(outcomes[call], 'EPERM', `${call}: ${native.value}`);
    }
    assert.equal(daemonPort.connections(), 0, 'nothing reached the daemon\'s port');
  } finally {
    daemonPort.close();
  }
  const again = await p.invoke({ function: 'native-victim', mode: 'warm', sandboxId: victim.sandboxId, input: Buffer.from('{}') });
  assert.equal(text(again.output), text(victim.output), 'the victim\'s sandbox is untouched');
});

test('two functions with the same code never share a sandbox, and a redeploy retires the old ones', { skip: false }, async () => {
  await p.deployFunction(pythonManifest('twin-a'), Buffer.from(WHO_AM_I));
  await p.deployFunction(pythonManifest('twin-b'), Buffer.from(WHO_AM_I));
  const a = await p.invoke({ function: 'twin-a', mode: 'cold', input: Buffer.from('{}') });
  assert.equal(JSON.parse(text(a.output)).function, 'twin-a');
  await rejectsWith(p.invoke({ function: 'twin-b', mode: 'warm', input: Buffer.from('{}') }), 'THAW_NO_WARM_SANDBOX');
  const b = await p.invoke({ function: 'twin-b', mode: 'cold', input: Buffer.from('{}') });
  assert.equal(JSON.parse(text(b.output)).function, 'twin-b');
  assert.notEqual(b.sandboxId, a.sandboxId);
  const snapB = await p.createSnapshot({ sandboxId: b.sandboxId });
  assert.equal(snapB.function, 'twin-b');
  const restoredB = await p.invoke({ function: 'twin-b', mode: 'snapshot', snapshotId: snapB.id, input: Buffer.from('{}'), keep: false });
  assert.equal(JSON.parse(text(restoredB.output)).function, 'twin-b');

  // Redeploy twin-a with another memory size: its warm sandbox is retired, the new limit applies at once.
  await p.deployFunction(pythonManifest('twin-a', 192), Buffer.from(WHO_AM_I));
  assert.ok(!(await p.listSandboxes()).some((s) => s.id === a.sandboxId), 'the old deployment\'s sandbox is stopped');
  await rejectsWith(p.invoke({ function: 'twin-a', mode: 'warm', input: Buffer.from('{}') }), 'THAW_NO_WARM_SANDBOX');
  const a2 = await p.invoke({ function: 'twin-a', mode: 'cold', input: Buffer.from('{}'), keep: false });
  assert.equal(JSON.parse(text(a2.output)).memoryMiB, 192);
});

test('doctor() reports every layer of the jail active, as a probe host observes it from inside', { skip }, async () => {
  const report = await p.doctor();
  assert.equal(report.jailed, true);
  const layers = Object.fromEntries(report.layers.map((l) => [l.layer, l]));
  for (const layer of ['user', 'capabilities', 'no_new_privs', 'seccomp', 'landlock', 'pid namespace', 'network namespace', 'uts namespace', 'environment', 'userfaultfd']) {
    assert.ok(layers[layer], `layer ${layer} is reported`);
    assert.equal(layers[layer]!.active, true, `${layer}: ${layers[layer]!.detail}`);
  }
  assert.match(layers.seccomp!.detail, /spawning a process: EPERM/);
});

test('doctor() on an unjailed platform says so and why', async () => {
  const off = newPlatform({ jail: 'off' });
  try {
    const report = await off.doctor();
    assert.equal(report.jailed, false);
    assert.match(report.reason ?? '', /off/);
    assert.equal(report.layers.find((l) => l.layer === 'environment')?.active, true, 'even unjailed, a host gets an empty environment');
  } finally {
    await off.close();
  }
});

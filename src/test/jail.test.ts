// The sandbox host's jail, attacked from inside: a Python guest that reaches full Node.js in its
// host (through Pyodide's `js` module and the Function constructor, as a hostile function would)
// tries to run commands, read and write files outside its sandbox, read the daemon's token,
// reach the daemon's port and kill another host. Each attempt must fail. Also: two functions
// with the same code never share a sandbox, and a redeploy retires the old deployment's.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
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
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  try {
    await attack({ connect: `globalThis.outcome = 'pending'; const s = process.getBuiltinModule('node:net').connect(${port}, '127.0.0.1'); s.on('connect', () => { globalThis.outcome = 'connected'; }); s.on('error', (e) => { globalThis.outcome = e.code; }); return 'started'` }, attacker);
    await new Promise((res) => setTimeout(res, 500));
    const later = await attack({ outcome: 'return globalThis.outcome' }, attacker);
    assert.notEqual(later.outcome!.value, 'connected');
    assert.notEqual(later.outcome!.value, 'pending', 'the connection attempt failed at once');
    assert.equal(connections, 0);
  } finally {
    server.close();
  }

  // The victim is untouched: its warm sandbox still answers.
  const again = await p.invoke({ function: 'victim', mode: 'warm', sandboxId: victim.sandboxId, input: Buffer.from('{}') });
  assert.equal(text(again.output), text(victim.output));
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

// A TEST DOUBLE of Firecracker's API server, for the driver's and the platform's tests on hosts
// without a firecracker binary. It is not Firecracker and runs no VM. Started like firecracker
// (`--api-sock PATH --id ID`, cwd = the VM's directory), it:
//   - serves the API requests the driver sends (GET /, GET /version, PUT /boot-source,
//     /drives/{id}, /machine-config, /vsock, /actions, /snapshot/create, /snapshot/load, PATCH /vm),
//     checking each body against the required fields, types and enums of Firecracker's swagger
//     (src/firecracker/swagger/firecracker.yaml at 81b38b9, 1.17.0-dev; unknown fields refused,
//     as Firecracker's serde deny_unknown_fields does) and the order rules Firecracker enforces
//     (no configuration after InstanceStart, snapshot/load only into a fresh process, snapshot/create
//     only when Paused, Diff only with dirty-page tracking), answering 400 {fault_message} otherwise;
//   - records every request (method, path, body, status) as a JSON line in $THAW_FC_DOUBLE_LOG;
//   - plays a guest: "guest memory" filled at InstanceStart, an HTTP server on the vsock device's
//     Unix socket behind the `CONNECT <port>\n` / `OK <n>\n` handshake (any port) whose every POST
//     counts an invocation in guest page 0, writes the input into a page, and answers
//     {"invocations", "path", "echo"} (a body of "fail" is answered 500);
//   - snapshot/create writes the vmstate (the double's own JSON, not Firecracker's format) and the
//     memory file (Full: all of it; Diff: a sparse file of the pages written since the last
//     snapshot or load, zero pages included);
//   - snapshot/load with mem_backend Uffd does what Firecracker does at the socket: the test VMM
//     (thaw-fc-testvmm) maps the guest memory, registers it with a real userfaultfd, connects to
//     backend_path and sends the real handshake JSON with the uffd; it then reads every page (user
//     and kernel mode) and dumps them, and the double's guest continues from those bytes, checked
//     against the sha256 its vmstate recorded (a mismatch ends the process, as a guest would crash).
// $THAW_FC_DOUBLE_VERSION sets the version it reports (default 1.16.1); before 1.13 it refuses
// snapshot/load's `track_dirty_pages` as those versions do (they take `enable_diff_snapshots`).

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, ftruncateSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import { TEST_VMM } from './test-vmm.js';

type Json = Record<string, unknown>;
type FieldType = 'string' | 'boolean' | 'integer' | 'object' | 'array';
interface Field { type: FieldType; enum?: readonly string[]; min?: number; max?: number }
interface Schema { required: readonly string[]; fields: Readonly<Record<string, Field>> }

/** The request bodies' definitions, from the swagger (required fields, types, enums, bounds). */
const SCHEMAS: Readonly<Record<string, Schema>> = {
  BootSource: { required: ['kernel_image_path'], fields: { boot_args: { type: 'string' }, initrd_path: { type: 'string' }, kernel_image_path: { type: 'string' } } },
  Drive: {
    // is_read_only and path_on_host: "required for virtio-block" (and required outright in v1.1's swagger).
    required: ['drive_id', 'is_root_device', 'is_read_only', 'path_on_host'],
    fields: {
      drive_id: { type: 'string' }, partuuid: { type: 'string' }, is_root_device: { type: 'boolean' }, cache_type: { type: 'string', enum: ['Unsafe', 'Writeback'] },
      is_read_only: { type: 'boolean' }, path_on_host: { type: 'string' }, rate_limiter: { type: 'object' }, io_engine: { type: 'string', enum: ['Sync', 'Async'] },
    },
  },
  MachineConfiguration: {
    required: ['mem_size_mib', 'vcpu_count'],
    fields: {
      cpu_template: { type: 'string' }, smt: { type: 'boolean' }, mem_size_mib: { type: 'integer', min: 1 }, track_dirty_pages: { type: 'boolean' },
      vcpu_count: { type: 'integer', min: 1, max: 32 }, huge_pages: { type: 'string', enum: ['None', 'Transparent', '2M'] },
    },
  },
  Vsock: { required: ['guest_cid', 'uds_path'], fields: { guest_cid: { type: 'integer', min: 3 }, uds_path: { type: 'string' }, vsock_id: { type: 'string' } } },
  InstanceActionInfo: { required: ['action_type'], fields: { action_type: { type: 'string', enum: ['FlushMetrics', 'InstanceStart', 'SendCtrlAltDel'] } } },
  Vm: { required: ['state'], fields: { state: { type: 'string', enum: ['Paused', 'Resumed'] } } },
  SnapshotCreateParams: { required: ['mem_file_path', 'snapshot_path'], fields: { mem_file_path: { type: 'string' }, snapshot_path: { type: 'string' }, snapshot_type: { type: 'string', enum: ['Full', 'Diff'] } } },
  SnapshotLoadParams: {
    required: ['snapshot_path'],
    fields: {
      enable_diff_snapshots: { type: 'boolean' }, track_dirty_pages: { type: 'boolean' }, mem_file_path: { type: 'string' }, mem_backend: { type: 'object' },
      snapshot_path: { type: 'string' }, resume_vm: { type: 'boolean' }, network_overrides: { type: 'array' }, vsock_override: { type: 'object' },
      clock_realtime: { type: 'boolean' }, huge_pages: { type: 'string', enum: ['Snapshot', 'None', 'Transparent', '2M'] },
    },
  },
  MemoryBackend: { required: ['backend_type', 'backend_path'], fields: { backend_type: { type: 'string', enum: ['File', 'Uffd'] }, backend_path: { type: 'string' } } },
};

class Fault extends Error {}

/** Checks `body` against definition `name`; throws Fault naming the first problem. */
function checkBody(name: string, body: unknown): Json {
  const schema = SCHEMAS[name]!;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Fault(`${name}: the body must be a JSON object`);
  const b = body as Json;
  for (const key of Object.keys(b)) if (!(key in schema.fields)) throw new Fault(`${name}: unknown field \`${key}\``);
  for (const key of schema.required) if (!(key in b)) throw new Fault(`${name}: missing field \`${key}\``);
  for (const [key, f] of Object.entries(schema.fields)) {
    if (!(key in b)) continue;
    const v = b[key];
    const ok = f.type === 'integer' ? Number.isSafeInteger(v) : f.type === 'array' ? Array.isArray(v) : f.type === 'object' ? typeof v === 'object' && v !== null && !Array.isArray(v) : typeof v === f.type;
    if (!ok) throw new Fault(`${name}: \`${key}\` must be ${f.type === 'integer' ? 'an integer' : `a ${f.type}`}`);
    if (f.enum && !f.enum.includes(v as string)) throw new Fault(`${name}: \`${key}\` must be one of ${f.enum.join(', ')}`);
    if (f.min !== undefined && (v as number) < f.min) throw new Fault(`${name}: \`${key}\` must be at least ${f.min}`);
    if (f.max !== undefined && (v as number) > f.max) throw new Fault(`${name}: \`${key}\` must be at most ${f.max}`);
  }
  return b;
}

const PAGE = 4096;
const MAGIC = 'THAW-FC-DOUBLE';
/** The vmstate the double writes: its own JSON, marked so a real Firecracker's is never mistaken for it. */
interface DoubleVmstate { format: typeof MAGIC; memBytes: number; memSha256: string; vsock: Json | null; drives: Json[]; machine: Json }

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

function main(argv: readonly string[]): void {
  const arg = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const apiSock = arg('--api-sock');
  if (!apiSock) {
    process.stderr.write('firecracker API test double: --api-sock is required\n');
    process.exit(2);
  }
  const id = arg('--id') ?? 'anonymous-instance';
  const version = process.env.THAW_FC_DOUBLE_VERSION ?? '1.16.1';
  const logPath = process.env.THAW_FC_DOUBLE_LOG;

  let state: 'Not started' | 'Running' | 'Paused' = 'Not started';
  let configured = false;
  let loaded = false;
  let boot: Json | null = null;
  const drives = new Map<string, Json>();
  let machine: Json = { vcpu_count: 1, mem_size_mib: 128, track_dirty_pages: false };
  let vsock: Json | null = null;
  let tracking = false;
  let memory: Buffer = Buffer.alloc(0);
  const dirty = new Set<number>();
  let vsockServer: Server | null = null;

  const guestHttp = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const input = Buffer.concat(chunks);
      if (input.toString('utf8') === 'fail') {
        res.writeHead(500).end('the guest function failed (asked to)');
        return;
      }
      const n = memory.readUInt32LE(16) + 1;
      memory.writeUInt32LE(n, 16);
      dirty.add(0);
      const page = 1 + (n % 16);
      memory.fill(0, page * PAGE, (page + 1) * PAGE);
      input.copy(memory, page * PAGE, 0, Math.min(PAGE, input.length));
      dirty.add(page);
      const out = Buffer.from(JSON.stringify({ invocations: n, path: req.url, echo: input.toString('utf8') }));
      res.writeHead(200, { 'Content-Length': out.length }).end(out);
    });
  });

  const listenVsock = (): void => {
    if (!vsock) return;
    const path = resolve(String(vsock.uds_path));
    rmSync(path, { force: true });
    vsockServer = createNetServer((sock) => {
      let line = '';
      const onData = (c: Buffer): void => {
        line += c.toString('latin1');
        const nl = line.indexOf('\n');
        if (nl < 0) return;
        sock.off('data', onData);
        if (!/^CONNECT \d+$/.test(line.slice(0, nl)) || state === 'Not started') {
          sock.destroy();
          return;
        }
        sock.write('OK 1073741824\n');
        if (line.length > nl + 1) sock.unshift(Buffer.from(line.slice(nl + 1), 'latin1'));
        guestHttp.emit('connection', sock);
      };
      sock.on('data', onData);
    }).listen(path);
  };

  const fillGuest = (bytes: number, seed: string): void => {
    memory = Buffer.alloc(bytes);
    memory.write(MAGIC, 0, 'latin1');
    // A "booted kernel": a quarter of the pages hold bytes derived from the kernel, the rest are zero.
    const key = createHash('sha256').update(seed).digest();
    for (let p = 1; p < bytes / PAGE / 4; p++) {
      const h = createHash('sha256').update(key).update(String(p)).digest();
      for (let o = 0; o < PAGE; o += h.length) h.copy(memory, p * PAGE + o);
      dirty.add(p);
    }
    dirty.add(0);
  };

  const loadUffd = async (backendPath: string, vm: DoubleVmstate): Promise<Buffer> => {
    const dump = resolve(`restored-${process.pid}.mem`);
    const child = spawn(TEST_VMM, ['--socket', resolve(backendPath), '--regions', String(vm.memBytes), '--no-verify', '--stride', '2', '--dump', dump], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.stdout.resume();
    const code = await new Promise<number | null>((r) => child.on('close', r));
    if (code !== 0) throw new Fault(`Load snapshot error: the uffd handler did not serve guest memory (test VMM exit ${code}: ${err.trim()})`);
    const got = readFileSync(dump);
    rmSync(dump, { force: true });
    return got;
  };

  const handlers: Record<string, (body: unknown, path: string) => Promise<number> | number> = {
    'PUT /boot-source': (body) => { preBoot(); boot = checkBody('BootSource', body); return 204; },
    'PUT /drives': (body, path) => {
      preBoot();
      const d = checkBody('Drive', body);
      if (path !== `/drives/${String(d.drive_id)}`) throw new Fault('The id from the path does not match the id from the body!');
      drives.set(String(d.drive_id), d);
      return 204;
    },
    'PUT /machine-config': (body) => { preBoot(); machine = checkBody('MachineConfiguration', body); return 204; },
    'PUT /vsock': (body) => { preBoot(); vsock = checkBody('Vsock', body); return 204; },
    'PUT /actions': (body) => {
      const a = checkBody('InstanceActionInfo', body);
      if (a.action_type !== 'InstanceStart') return 204;
      if (state !== 'Not started') throw new Fault('The requested operation is not supported after starting the microVM.');
      if (!boot) throw new Fault('Cannot start microvm without kernel configuration.');
      if (!existsSync(String(boot.kernel_image_path))) throw new Fault(`Cannot load kernel due to invalid memory configuration or invalid kernel image: ${String(boot.kernel_image_path)}`);
      for (const d of drives.values()) if (!existsSync(resolve(String(d.path_on_host)))) throw new Fault(`Unable to create the block device: No such file or directory: ${String(d.path_on_host)}`);
      tracking = machine.track_dirty_pages === true;
      fillGuest(Number(machine.mem_size_mib) * 1024 * 1024, readFileSync(String(boot.kernel_image_path)).subarray(0, 4096).toString('hex') + String(boot.boot_args ?? ''));
      state = 'Running';
      listenVsock();
      return 204;
    },
    'PATCH /vm': (body) => {
      const v = checkBody('Vm', body);
      if (state === 'Not started') throw new Fault('The microVM is not started.');
      state = v.state === 'Paused' ? 'Paused' : 'Running';
      return 204;
    },
    'PUT /snapshot/create': (body) => {
      const c = checkBody('SnapshotCreateParams', body);
      if (state !== 'Paused') throw new Fault('Cannot create a snapshot: the microVM is not paused.');
      const diff = c.snapshot_type === 'Diff';
      if (diff && !tracking) throw new Fault('Diff snapshots are not allowed on uVMs with dirty page tracking disabled.');
      const memPath = resolve(String(c.mem_file_path));
      rmSync(memPath, { force: true });
      const fd = openSync(memPath, 'w', 0o600);
      try {
        if (diff) {
          ftruncateSync(fd, memory.length);
          for (const p of [...dirty].sort((a, b) => a - b)) writeSync(fd, memory, p * PAGE, PAGE, p * PAGE);
        } else {
          writeSync(fd, memory, 0, memory.length, 0);
        }
      } finally {
        closeSync(fd);
      }
      const vm: DoubleVmstate = { format: MAGIC, memBytes: memory.length, memSha256: createHash('sha256').update(memory).digest('hex'), vsock, drives: [...drives.values()], machine };
      writeFileSync(resolve(String(c.snapshot_path)), JSON.stringify(vm));
      dirty.clear();
      return 204;
    },
    'PUT /snapshot/load': async (body) => {
      const l = checkBody('SnapshotLoadParams', body);
      if (state !== 'Not started' || configured || loaded) throw new Fault('Loading a microVM snapshot not allowed after configuring boot-specific resources.');
      if ('track_dirty_pages' in l && !versionAtLeast(version, 1, 13)) throw new Fault('SnapshotLoadParams: unknown field `track_dirty_pages`');
      if (('mem_file_path' in l) === ('mem_backend' in l)) throw new Fault('Exactly one of `mem_file_path` or `mem_backend` must be present.');
      const backend = l.mem_backend === undefined ? { backend_type: 'File', backend_path: String(l.mem_file_path) } : checkBody('MemoryBackend', l.mem_backend);
      let vm: DoubleVmstate;
      try {
        vm = JSON.parse(readFileSync(resolve(String(l.snapshot_path)), 'utf8')) as DoubleVmstate;
        if (vm.format !== MAGIC) throw new Error('not a vmstate this test double wrote');
      } catch (err: unknown) {
        throw new Fault(`Load snapshot error: cannot read the microVM state ${String(l.snapshot_path)}: ${(err as Error).message}`);
      }
      for (const d of vm.drives) if (!existsSync(resolve(String(d.path_on_host)))) throw new Fault(`Load snapshot error: block device ${String(d.path_on_host)} not found (host resources must be at the same relative paths)`);
      loaded = true;
      const got = backend.backend_type === 'Uffd' ? await loadUffd(String(backend.backend_path), vm) : readFileSync(resolve(String(backend.backend_path)));
      const sha = createHash('sha256').update(got).digest('hex');
      if (got.length !== vm.memBytes || sha !== vm.memSha256) {
        process.stderr.write(`firecracker API test double: guest memory after load differs from the snapshot's (sha256 ${sha}, snapshot ${vm.memSha256}): the guest would crash\n`);
        process.exit(1);
      }
      memory = got;
      machine = vm.machine;
      vsock = vm.vsock;
      for (const d of vm.drives) drives.set(String(d.drive_id), d);
      tracking = l.track_dirty_pages === true || l.enable_diff_snapshots === true;
      dirty.clear();
      state = l.resume_vm === true ? 'Running' : 'Paused';
      listenVsock();
      return 204;
    },
  };
  function preBoot(): void {
    if (state !== 'Not started') throw new Fault('The requested operation is not supported after starting the microVM.');
    if (loaded) throw new Fault('Loading a microVM snapshot not allowed after configuring boot-specific resources.');
    configured = true;
  }

  const reply = (res: ServerResponse, status: number, body?: unknown): void => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
  };
  const api = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void (async () => {
      const path = req.url ?? '/';
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = null;
      let status = 400;
      let out: unknown;
      try {
        if (req.method === 'GET' && path === '/') {
          status = 200;
          out = { id, state, vmm_version: version, app_name: 'Firecracker' };
        } else if (req.method === 'GET' && path === '/version') {
          status = 200;
          out = { firecracker_version: version };
        } else {
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            throw new Fault('Invalid request body: not JSON');
          }
          const key = `${req.method} ${path.startsWith('/drives/') ? '/drives' : path}`;
          const handler = handlers[key];
          if (!handler) throw new Fault(`Invalid request method and/or path: ${req.method} ${path}`);
          status = await handler(body, path);
        }
      } catch (err: unknown) {
        if (!(err instanceof Fault)) throw err;
        status = 400;
        out = { fault_message: err.message };
      }
      if (logPath) appendFileSync(logPath, JSON.stringify({ id, method: req.method, path, body, status, ...(status >= 400 && { fault: (out as Json).fault_message }) }) + '\n');
      reply(res, status, out);
    })());
  });
  rmSync(apiSock, { force: true });
  api.listen(apiSock);
  process.on('SIGTERM', () => process.exit(0));
  void vsockServer;
}

main(process.argv.slice(2));

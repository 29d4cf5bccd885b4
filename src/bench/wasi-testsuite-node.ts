// The baseline the WASI test suite is measured against: each vendored preview1 test run directly
// under Node's own node:wasi (one child process per test, root copied), counting passes.
// Usage: node dist/bench/wasi-testsuite-node.js            (prints one line per test and the count)
//        node dist/bench/wasi-testsuite-node.js --one <id> (internal: runs one test in this process)

import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { copyRoot, loadWasiTestSuite } from '../test/_wasi-testsuite.js';

const TIMEOUT_MS = 20_000;

async function runOne(id: string): Promise<void> {
  const spec = loadWasiTestSuite().find((s) => s.id === id);
  if (!spec) throw new Error(`no test ${id}`);
  const root = spec.rootDir === null ? null : copyRoot(spec.rootDir);
  try {
    const wasi = new WASI({
      version: 'preview1', args: [spec.id, ...spec.args], env: { ...spec.env }, returnOnExit: true,
      preopens: root === null ? {} : { '/': root },
    });
    const module = await WebAssembly.compile(readFileSync(spec.wasmPath));
    const instance = await WebAssembly.instantiate(module, wasi.getImportObject() as WebAssembly.Imports);
    process.exitCode = wasi.start(instance);
  } finally {
    if (root !== null) rmSync(root, { recursive: true, force: true });
  }
}

function runAll(): void {
  const specs = loadWasiTestSuite();
  let passed = 0;
  for (const spec of specs) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--one', spec.id], { timeout: TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    const code = r.status;
    const ok = code === spec.exitCode && (spec.stdout === null || r.stdout === spec.stdout);
    if (ok) passed++;
    const why = ok ? '' : ` (exit ${String(code ?? r.signal)}, expected ${spec.exitCode}${spec.stdout !== null && r.stdout !== spec.stdout ? '; stdout differs' : ''}${r.stderr ? `; ${r.stderr.trim().split('\n').slice(-1)[0]}` : ''})`;
    process.stdout.write(`${ok ? 'pass' : 'FAIL'} ${spec.id}${why}\n`);
  }
  process.stdout.write(`node:wasi ${process.version}: ${passed} of ${specs.length} passed\n`);
}

const oneAt = process.argv.indexOf('--one');
if (oneAt >= 0) await runOne(process.argv[oneAt + 1] ?? '');
else runAll();

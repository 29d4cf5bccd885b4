// The vendored WASI test suite (third_party/wasi-testsuite, preview1 binaries of
// WebAssembly/wasi-testsuite branch prod/testsuite-base): each test's binary and its spec (args,
// env, root directory, expected exit code and stdout), as the suite's own runner reads them.

import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The vendored suite's root. */
export const WASI_TESTSUITE_DIR = fileURLToPath(new URL('../../third_party/wasi-testsuite', import.meta.url));

/** One test: a WASI preview1 command and what it must do. */
export interface WasiTestSpec {
  /** `<language>/<test name>`, e.g. `c/lseek`: unique across the suite. */
  readonly id: string;
  readonly wasmPath: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Directory preopened as `/`, writable (tests create and delete files in it), or null. */
  readonly rootDir: string | null;
  readonly exitCode: number;
  /** Expected stdout, when the spec names one. */
  readonly stdout: string | null;
}

interface RawSpec { args?: string[]; env?: Record<string, string>; root?: string; exit_code?: number; stdout?: string }

/** Every preview1 test of the vendored suite, sorted by id. */
export function loadWasiTestSuite(): WasiTestSpec[] {
  const specs: WasiTestSpec[] = [];
  for (const language of readdirSync(join(WASI_TESTSUITE_DIR, 'tests')).sort()) {
    const dir = join(WASI_TESTSUITE_DIR, 'tests', language, 'testsuite', 'wasm32-wasip1');
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.wasm')).sort()) {
      const name = basename(file, '.wasm');
      const specPath = join(dir, `${name}.json`);
      const raw = existsSync(specPath) ? (JSON.parse(readFileSync(specPath, 'utf8')) as RawSpec) : {};
      specs.push({
        id: `${language}/${name}`,
        wasmPath: join(dir, file),
        args: raw.args ?? [],
        env: raw.env ?? {},
        rootDir: raw.root === undefined ? null : join(dir, raw.root),
        exitCode: raw.exit_code ?? 0,
        stdout: raw.stdout ?? null,
      });
    }
  }
  return specs;
}

/** A private, writable copy of a test's root directory (the vendored one is never written). */
export function copyRoot(rootDir: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'thaw-wasi-root-'));
  cpSync(rootDir, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

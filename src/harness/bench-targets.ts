// What the harness runs: a suite function (src/suite) or one of the example functions in
// functions/ (with its testdata/expected.json), behind one interface that names inputs by
// reference ("two:1", "sweep:3", "small", "example:0") and checks each reply.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SUITE } from '../suite/index.js';
import type { SuiteFunction, SuiteInput, SuiteReply } from '../suite/index.js';

/** Repository root (dist/harness/ or src/harness/ -> ../../). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What a reply said about itself, and whether it passed its check. */
export interface CheckOutcome {
  /** True when the output matched the independent computation; false with `detail` when not. */
  readonly ok: boolean;
  readonly detail: string;
  /** The function's own read / process / write seconds (null when it does not report them). */
  readonly readS: number | null;
  readonly processS: number | null;
  readonly writeS: number | null;
}

/** A function the harness can deploy, feed and check. */
export interface BenchTarget {
  /** Function name as deployed (suite name or example directory name). */
  readonly name: string;
  readonly kind: 'suite' | 'example';
  /** Absolute path of its function.json. */
  readonly manifestPath: string;
  /** Objects needed before init (the recognition model). */
  initObjects(): SuiteInput[];
  /** Why `ref` names no input of this function, or null when it does. */
  refError(ref: string): string | null;
  /** The input `ref` names (refError(ref) must be null). */
  input(ref: string): SuiteInput;
  /** The request bytes for `input`. */
  event(input: SuiteInput): Uint8Array;
  /** Checks `output` (the reply bytes); reads the output object through `getObject` where there is one. */
  check(input: SuiteInput, output: Uint8Array, getObject: (key: string) => Promise<Uint8Array>): Promise<CheckOutcome>;
}

const REF = /^(two|sweep|example):(\d+)$|^small$/;

/**
 * Generated input sets per function, built once per process: generating one costs up to seconds
 * (a six-input sweep of pagerank), and validating a config asks for them once per input
 * reference (six-inputs took 20 s to validate before).
 */
const inputSets = new WeakMap<SuiteFunction, Map<string, SuiteInput[]>>();

function suiteTarget(fn: SuiteFunction): BenchTarget {
  const set = (which: string): SuiteInput[] => {
    let sets = inputSets.get(fn);
    if (sets === undefined) inputSets.set(fn, (sets = new Map()));
    let inputs = sets.get(which);
    if (inputs === undefined) {
      inputs = which === 'two' ? fn.twoInputs() : which === 'sweep' ? fn.sweepInputs?.() ?? [] : [];
      sets.set(which, inputs);
    }
    return inputs;
  };
  return {
    name: fn.name,
    kind: 'suite',
    manifestPath: join(REPO_ROOT, fn.dir, 'function.json'),
    initObjects: () => fn.initObjects(),
    refError(ref) {
      const m = REF.exec(ref);
      if (!m) return `'${ref}' is not an input reference (two:<i>, sweep:<i> or small)`;
      if (ref === 'small') return null;
      if (m[1] === 'example') return `'${ref}': suite function '${fn.name}' takes two:<i>, sweep:<i> or small`;
      if (m[1] === 'sweep' && fn.sweepInputs === undefined) return `'${ref}': suite function '${fn.name}' has no six-input sweep`;
      const n = set(m[1]!).length;
      return Number(m[2]) < n ? null : `'${ref}' is out of range: '${fn.name}' has ${n} ${m[1]} inputs`;
    },
    input(ref) {
      if (ref === 'small') return fn.smallInput();
      const m = REF.exec(ref)!;
      return set(m[1]!)[Number(m[2])]!;
    },
    event: (input) => fn.event(input),
    async check(input, output, getObject) {
      let reply: SuiteReply;
      try {
        reply = JSON.parse(Buffer.from(output).toString('utf8')) as SuiteReply;
      } catch {
        return { ok: false, detail: 'reply is not JSON', readS: null, processS: null, writeS: null };
      }
      const secs = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
      const times = { readS: secs(reply.read_s), processS: secs(reply.process_s), writeS: secs(reply.write_s) };
      try {
        fn.check(input, reply, await getObject(reply.output_key));
        return { ok: true, detail: '', ...times };
      } catch (err: unknown) {
        return { ok: false, detail: err instanceof Error ? err.message : String(err), ...times };
      }
    },
  };
}

interface ExpectedCase {
  readonly input: string;
  readonly output: string;
}

function exampleTarget(name: string): BenchTarget | undefined {
  const dir = join(REPO_ROOT, 'functions', name);
  const expectedPath = join(dir, 'testdata', 'expected.json');
  if (!existsSync(join(dir, 'function.json')) || !existsSync(expectedPath)) return undefined;
  let cases: ExpectedCase[] | undefined;
  const all = (): ExpectedCase[] => (cases ??= JSON.parse(readFileSync(expectedPath, 'utf8')) as ExpectedCase[]);
  return {
    name,
    kind: 'example',
    manifestPath: join(dir, 'function.json'),
    initObjects: () => [],
    refError(ref) {
      const m = REF.exec(ref);
      if (!m || m[1] !== 'example') return `'${ref}': example function '${name}' takes example:<i> (a case of its testdata/expected.json)`;
      return Number(m[2]) < all().length ? null : `'${ref}' is out of range: '${name}' has ${all().length} example inputs`;
    },
    input(ref) {
      const i = Number(REF.exec(ref)![2]);
      const c = all()[i]!;
      return { key: `${name}/example-${i}`, bytes: Buffer.from(c.input, 'utf8'), description: `${Buffer.byteLength(c.input)} B` };
    },
    event: (input) => input.bytes,
    async check(input, output) {
      const i = Number(/(\d+)$/.exec(input.key)![1]);
      const expected = all()[i]!.output;
      const got = Buffer.from(output).toString('utf8');
      const ok = got === expected;
      return { ok, detail: ok ? '' : `output '${got.slice(0, 60)}', expected '${expected.slice(0, 60)}'`, readS: null, processS: null, writeS: null };
    },
  };
}

/** The target named `name`: a suite function first, else an example function with testdata; undefined when neither exists. */
export function findTarget(name: string): BenchTarget | undefined {
  const fn = SUITE.find((f) => f.name === name);
  if (fn) return suiteTarget(fn);
  return exampleTarget(name);
}

/** Names findTarget() knows, for error messages. */
export function knownTargets(): string[] {
  const examples = ['hello-c', 'hello-as', 'mem64-c', 'memlog-c', 'faulty-c'].filter((n) => exampleTarget(n) !== undefined);
  return [...SUITE.map((f) => f.name), ...examples];
}

/** The inputs a function uses when its config lists none: its two published inputs, or its first two example cases. */
export function defaultRefs(target: BenchTarget): string[] {
  return target.kind === 'suite' ? ['two:0', 'two:1'] : ['example:0', 'example:1'];
}

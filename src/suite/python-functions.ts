// Suite functions on the python runtime: FaaSnap's Python functions (hello, read, json, image,
// pyaes, chameleon, compression) with their deterministic inputs and independent checks.
// Guest sources: functions/suite/<name>/handler.py; README: functions/suite/README.md.

import { isDeepStrictEqual } from 'node:util';
import type { SuiteFunction, SuiteInput, SuiteReply } from './suite.js';
import { chameleonInputBytes, checkBigtable, type ChameleonParams } from './inputs/chameleon.js';
import { readZip } from './inputs/compression-zip.js';
import { pngInput } from './inputs/image.js';
import { decodePngAt, decodePngSequence, rotate90, type RgbImage } from './inputs/image-png.js';
import { jsonDocument } from './inputs/json.js';
import { pyaesMessage, pyaesReferenceCtr } from './inputs/pyaes.js';
import { expectedReadSum, readInputBytes, type ReadParams } from './inputs/read.js';

/** What varies between the Python suite functions; the rest is shared by pythonSuiteFunction(). */
interface PythonSuiteSpec {
  readonly name: string;
  readonly two: () => SuiteInput[];
  readonly sweep?: () => SuiteInput[];
  readonly small: () => SuiteInput;
  /** Function-specific part of check(), after the reply's common fields were checked. */
  readonly check: (input: SuiteInput, reply: SuiteReply, output: Uint8Array) => void;
}

/** Object key the function writes its output to for `input`: "<name>/output/<input name>". */
export function pythonSuiteOutputKey(fnName: string, input: SuiteInput): string {
  const prefix = `${fnName}/`;
  const rest = input.key.startsWith(prefix) ? input.key.slice(prefix.length) : input.key;
  return `${fnName}/output/${rest}`;
}

function kilobytes(n: number): string {
  return n >= 1_000_000 ? `${(n / 1_000_000).toFixed(2)} MB` : `${(n / 1000).toFixed(1)} KB`;
}

function once<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}

function fail(fnName: string, what: string): never {
  throw new Error(`${fnName}: ${what}`);
}

function checkCommon(fnName: string, input: SuiteInput, reply: SuiteReply): void {
  for (const field of ['read_s', 'process_s', 'write_s'] as const) {
    const v = reply[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(fnName, `reply.${field} is ${String(v)}, expected seconds >= 0`);
  }
  const expectedKey = pythonSuiteOutputKey(fnName, input);
  if (reply.output_key !== expectedKey) fail(fnName, `reply.output_key is '${reply.output_key}', expected '${expectedKey}'`);
  if (typeof reply.summary !== 'object' || reply.summary === null) fail(fnName, 'reply.summary is not an object');
}

function pythonSuiteFunction(spec: PythonSuiteSpec): SuiteFunction {
  const two = once(spec.two);
  const small = once(spec.small);
  const sweep = spec.sweep ? once(spec.sweep) : undefined;
  const fn: SuiteFunction = {
    name: spec.name,
    dir: `functions/suite/${spec.name}`,
    initObjects: () => [],
    twoInputs: two,
    smallInput: small,
    event: (input) => Buffer.from(JSON.stringify({ input: input.key, output: pythonSuiteOutputKey(spec.name, input) })),
    check: (input, reply, output) => {
      checkCommon(spec.name, input, reply);
      spec.check(input, reply, output);
    },
  };
  return sweep ? { ...fn, sweepInputs: sweep } : fn;
}

const parse = <T>(input: SuiteInput): T => JSON.parse(Buffer.from(input.bytes).toString('utf8')) as T;

// ---- hello ----------------------------------------------------------------------------------

const hello = pythonSuiteFunction({
  name: 'hello',
  two: () => [0, 1].map((i) => ({ key: `hello/input-${i}`, bytes: Buffer.from(JSON.stringify({ hello: 'thaw', input: i })), description: 'empty work' })),
  small: () => ({ key: 'hello/small', bytes: Buffer.from('{"hello": "thaw"}'), description: 'empty work' }),
  check: (input, _reply, output) => {
    if (!Buffer.from(output).equals(Buffer.from(input.bytes))) fail('hello', 'output differs from the input it should echo');
  },
});

// ---- read -----------------------------------------------------------------------------------

const readInput = (key: string, params: ReadParams): SuiteInput => ({
  key,
  bytes: readInputBytes(params),
  description: `stride ${params.stride} x ${params.count} reads`,
});

const read = pythonSuiteFunction({
  name: 'read',
  // Stride 1024 elements = 4 KiB of wasm32 pointers: one read per page of the list. The record
  // input touches every other page, the test input every page.
  two: () => [readInput('read/input-0', { start: 0, stride: 2048, count: 8192 }), readInput('read/input-1', { start: 0, stride: 1024, count: 16384 })],
  small: () => readInput('read/small', { start: 5, stride: 99_991, count: 200 }),
  check: (input, reply, output) => {
    const params = parse<ReadParams>(input);
    const expected = expectedReadSum(params);
    if (reply.summary.sum !== expected) fail('read', `summary.sum is ${String(reply.summary.sum)}, expected ${expected}`);
    const out = JSON.parse(Buffer.from(output).toString('utf8')) as unknown;
    if (!isDeepStrictEqual(out, { sum: expected, reads: params.count })) fail('read', `output ${JSON.stringify(out)} is not {sum: ${expected}, reads: ${params.count}}`);
  },
});

// ---- json -----------------------------------------------------------------------------------

const jsonInput = (key: string, seed: number, targetBytes: number): SuiteInput => {
  const bytes = jsonDocument(seed, targetBytes);
  return { key, bytes, description: kilobytes(bytes.length) };
};
const JSON_TWO = [12_600, 151_000];
const JSON_SWEEP = [200_000, 400_000, 800_000, 1_200_000, 2_000_000, 3_000_000];

function checkJsonRoundTrip(fnName: string, inputBytes: Uint8Array, outputBytes: Uint8Array): void {
  const original = JSON.parse(Buffer.from(inputBytes).toString('utf8')) as unknown;
  const text = Buffer.from(outputBytes).toString('utf8');
  let copy: unknown;
  try {
    copy = JSON.parse(text);
  } catch (err) {
    fail(fnName, `output is not JSON: ${(err as Error).message}`);
  }
  if (!isDeepStrictEqual(copy, original)) fail(fnName, 'output document differs from the input document');
  if (!text.includes('\n    ')) fail(fnName, 'output is not indented by 4');
}

const json = pythonSuiteFunction({
  name: 'json',
  two: () => JSON_TWO.map((n, i) => jsonInput(`json/input-${i}`, 100 + i, n)),
  sweep: () => JSON_SWEEP.map((n, i) => jsonInput(`json/sweep-${i}`, 200 + i, n)),
  small: () => jsonInput('json/small', 99, 2_000),
  check: (input, _reply, output) => checkJsonRoundTrip('json', input.bytes, output),
});

// ---- image ----------------------------------------------------------------------------------

const imageInput = (key: string, seed: number, targetBytes: number): SuiteInput => {
  const bytes = pngInput(seed, targetBytes);
  const { image } = decodePngAt(bytes);
  return { key, bytes, description: `${kilobytes(bytes.length)} PNG ${image.width}x${image.height}` };
};
const IMAGE_SWEEP = [100_000, 200_000, 400_000, 800_000, 1_200_000, 1_600_000];

function sameImage(a: RgbImage, b: RgbImage): boolean {
  return a.width === b.width && a.height === b.height && Buffer.from(a.pixels).equals(Buffer.from(b.pixels));
}

const image = pythonSuiteFunction({
  name: 'image',
  two: () => [0, 1].map((i) => imageInput(`image/input-${i}`, 300 + i, 100_000)),
  sweep: () => IMAGE_SWEEP.map((n, i) => imageInput(`image/sweep-${i}`, 400 + i, n)),
  small: () => imageInput('image/small', 399, 3_000),
  check: (input, _reply, output) => {
    const original = decodePngAt(input.bytes).image;
    const outputs = decodePngSequence(output);
    if (outputs.length !== 3) fail('image', `output holds ${outputs.length} PNGs, expected 3 (90, 180, 270)`);
    let expected = original;
    outputs.forEach((got, k) => {
      expected = rotate90(expected);
      if (!sameImage(got, expected)) fail('image', `output PNG ${k} is not the input rotated by ${90 * (k + 1)} degrees`);
    });
    if (!sameImage(rotate90(expected), original)) fail('image', 'four rotations by 90 degrees do not give the input back');
  },
});

/** pyaes and chameleon run FaaSnap's libraries (Debian's packages, vendored at set-up): the reply names the version. */
function checkLibrary(fnName: string, reply: SuiteReply, prefix: string): void {
  const lib = reply.summary.library;
  if (typeof lib !== 'string' || !lib.startsWith(prefix)) fail(fnName, `summary.library is ${JSON.stringify(lib)}, expected Debian's ${prefix}`);
}

// ---- pyaes ----------------------------------------------------------------------------------

const pyaesInput = (key: string, seed: number, n: number): SuiteInput => ({ key, bytes: pyaesMessage(seed, n), description: `${n} bytes` });
const PYAES_SWEEP = [5_000, 10_000, 20_000, 40_000, 60_000, 80_000];

const pyaes = pythonSuiteFunction({
  name: 'pyaes',
  two: () => [20_000, 22_000].map((n, i) => pyaesInput(`pyaes/input-${i}`, 500 + i, n)),
  sweep: () => PYAES_SWEEP.map((n, i) => pyaesInput(`pyaes/sweep-${i}`, 600 + i, n)),
  // Not a multiple of 16: the last CTR block is partial.
  small: () => pyaesInput('pyaes/small', 599, 1_000),
  check: (input, reply, output) => {
    if (output.length !== input.bytes.length) fail('pyaes', `ciphertext is ${output.length} bytes, expected ${input.bytes.length}`);
    if (!pyaesReferenceCtr(output).equals(Buffer.from(input.bytes))) fail('pyaes', 'node:crypto aes-128-ctr does not decrypt the output to the input');
    if (reply.summary.round_trip !== true) fail('pyaes', 'the guest did not report a successful decryption');
    checkLibrary('pyaes', reply, 'pyaes 1.6.1');
  },
});

// ---- chameleon ------------------------------------------------------------------------------

const chameleonInput = (key: string, params: ChameleonParams): SuiteInput => ({ key, bytes: chameleonInputBytes(params), description: `${params.rows}x${params.cols}` });
const CHAMELEON_SWEEP = [100, 150, 200, 250, 300, 400];

const chameleon = pythonSuiteFunction({
  name: 'chameleon',
  two: () => [chameleonInput('chameleon/input-0', { rows: 100, cols: 300 }), chameleonInput('chameleon/input-1', { rows: 200, cols: 200 })],
  sweep: () => CHAMELEON_SWEEP.map((n, i) => chameleonInput(`chameleon/sweep-${i}`, { rows: n, cols: n })),
  small: () => chameleonInput('chameleon/small', { rows: 3, cols: 4 }),
  check: (input, reply, output) => {
    checkBigtable(Buffer.from(output).toString('utf8'), parse<ChameleonParams>(input));
    checkLibrary('chameleon', reply, 'chameleon 3.8.1');
  },
});

// ---- compression ----------------------------------------------------------------------------

const compression = pythonSuiteFunction({
  name: 'compression',
  // The json function's inputs (same seeds and sizes), under this function's keys.
  two: () => JSON_TWO.map((n, i) => jsonInput(`compression/input-${i}`, 100 + i, n)),
  small: () => jsonInput('compression/small', 99, 2_000),
  check: (input, _reply, output) => {
    const entries = readZip(output);
    const entry = entries[0];
    if (entries.length !== 1 || entry === undefined) fail('compression', `archive holds ${entries.length} entries, expected 1`);
    if (entry.name !== 'input.json') fail('compression', `archive entry is '${entry.name}', expected 'input.json'`);
    if (entry.method !== 8) fail('compression', `archive entry uses method ${entry.method}, expected 8 (deflate)`);
    if (!entry.data.equals(Buffer.from(input.bytes))) fail('compression', 'unzipped entry differs from the input');
  },
});

/** FaaSnap's Python functions, in the papers' order. */
export const PYTHON_SUITE: readonly SuiteFunction[] = [hello, read, json, image, pyaes, chameleon, compression];

// Suite functions on the wasi runtime: C compiled to wasm32-wasi (functions/suite/<name>/), for
// the functions whose work would be orders of magnitude slower in pure Python inside Wasm
// (mmap, matmul, pagerank, recognition, video). Inputs are generated here from fixed seeds;
// each check recomputes the result in TypeScript.

import type { SuiteFunction, SuiteInput, SuiteReply } from './suite.js';
import { MMAP_PUBLISHED, mmapInput, mmapTouchCount, parseMmapInput, type MmapParams } from './inputs/mmap.js';
import { matmulInput, matmulMatrices, naiveProductRows, parseMatmulInput } from './inputs/matmul.js';
import { barabasiAlbert, decodeEdgeList, encodeEdgeList, pageRank } from './inputs/pagerank.js';
import {
  RECOGNITION_MODEL_SEED, imageSetShape, recognitionForward, recognitionImages, recognitionModel,
} from './inputs/recognition.js';
import { clipShape, flipClip, videoClip } from './inputs/video.js';

/** Object key of the recognition model, read by the function's thaw_init. */
export const RECOGNITION_MODEL_KEY = 'recognition/model';

const MiB = 1024 * 1024;

function input(key: string, bytes: Uint8Array, description: string): SuiteInput {
  return { key, bytes, description };
}

/** The request every C suite function takes: {"input": key, "output": key}. */
function event(inp: SuiteInput): Uint8Array {
  return Buffer.from(JSON.stringify({ input: inp.key, output: outputKey(inp) }), 'utf8');
}

/** Where a function writes its output for an input: "<input key>/output". */
export function outputKey(inp: SuiteInput): string {
  return `${inp.key}/output`;
}

function fail(fn: string, what: string): never {
  throw new Error(`${fn}: ${what}`);
}

/** Checks the parts of a reply every function shares, and returns its summary. */
function commonReply(fn: string, inp: SuiteInput, reply: SuiteReply): Record<string, unknown> {
  for (const field of ['read_s', 'process_s', 'write_s'] as const) {
    const v = reply[field];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(fn, `${field} is ${String(v)}, not a duration in seconds`);
  }
  if (reply.output_key !== outputKey(inp)) fail(fn, `output_key '${reply.output_key}', expected '${outputKey(inp)}'`);
  if (typeof reply.summary !== 'object' || reply.summary === null) fail(fn, 'reply has no summary');
  return reply.summary;
}

function num(fn: string, summary: Record<string, unknown>, field: string): number {
  const v = summary[field];
  if (typeof v !== 'number') fail(fn, `summary.${field} is ${String(v)}, not a number`);
  return v;
}

function expectEqual(fn: string, what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) fail(fn, `${what} is ${String(actual)}, expected ${String(expected)}`);
}

/** |actual - expected| <= tolerance * max(1, |expected|). */
function expectClose(fn: string, what: string, actual: number, expected: number, tolerance: number): void {
  if (!(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)))) {
    fail(fn, `${what} is ${actual}, expected ${expected} (tolerance ${tolerance} relative)`);
  }
}

/** Little-endian floats of an output object (copied: objects need not be aligned). */
function float64s(bytes: Uint8Array): Float64Array {
  return new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}
function float32s(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

// ---- mmap ----------------------------------------------------------------------------------

const mmapParamsInput = (key: string, p: MmapParams): SuiteInput =>
  input(key, mmapInput(p), `${p.sizeMiB} MiB, stride ${p.strideBytes} B`);

const mmap: SuiteFunction = {
  name: 'mmap',
  dir: 'functions/suite/mmap',
  initObjects: () => [],
  // FaaSnap's mmap has one size: record and test inputs are the same work.
  twoInputs: () => [mmapParamsInput('mmap/input-0', MMAP_PUBLISHED), mmapParamsInput('mmap/input-1', MMAP_PUBLISHED)],
  smallInput: () => mmapParamsInput('mmap/small', MMAP_PUBLISHED),
  event,
  check(inp, reply, output) {
    const s = commonReply('mmap', inp, reply);
    const p = parseMmapInput(inp.bytes);
    expectEqual('mmap', 'summary.touched_pages', num('mmap', s, 'touched_pages'), mmapTouchCount(p));
    expectEqual('mmap', 'summary.size_bytes', num('mmap', s, 'size_bytes'), p.sizeMiB * MiB);
    const written = JSON.parse(Buffer.from(output).toString('utf8')) as Record<string, unknown>;
    expectEqual('mmap', 'output touched_pages', written.touched_pages, mmapTouchCount(p));
  },
};

// ---- matmul --------------------------------------------------------------------------------

const matmulParamsInput = (key: string, n: number, seed: number): SuiteInput =>
  input(key, matmulInput({ n, seed }), `n=${n}`);

const matmul: SuiteFunction = {
  name: 'matmul',
  dir: 'functions/suite/matmul',
  initObjects: () => [],
  twoInputs: () => [matmulParamsInput('matmul/input-0', 1100, 1), matmulParamsInput('matmul/input-1', 1200, 2)],
  sweepInputs: () => [500, 800, 1100, 1400, 1700, 2000].map((n, i) => matmulParamsInput(`matmul/sweep-${i}`, n, 10 + i)),
  smallInput: () => matmulParamsInput('matmul/small', 16, 7),
  event,
  /** Small n: the whole product against the naive triple loop; large n: eight rows of it. */
  check(inp, reply, output) {
    const s = commonReply('matmul', inp, reply);
    const { n, seed } = parseMatmulInput(inp.bytes);
    expectEqual('matmul', 'summary.n', num('matmul', s, 'n'), n);
    expectEqual('matmul', 'output size', output.length, n * n * 8);
    const c = float64s(output);
    const { a, b } = matmulMatrices({ n, seed });
    const rows = n <= 64 ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: 8 }, (_, i) => Math.floor((i * (n - 1)) / 7));
    const ref = naiveProductRows(a, b, n, rows);
    rows.forEach((i, r) => {
      for (let j = 0; j < n; j++) expectClose('matmul', `C[${i}][${j}]`, c[i * n + j]!, ref[r * n + j]!, 1e-9);
    });
    let sum = 0;
    for (const v of c) sum += v;
    expectClose('matmul', 'summary.checksum', num('matmul', s, 'checksum'), sum, 1e-9);
  },
};

// ---- pagerank ------------------------------------------------------------------------------

const EDGES_PER_NODE = 10;

const graphInput = (key: string, nodes: number, seed: number): SuiteInput =>
  input(key, encodeEdgeList(barabasiAlbert(nodes, EDGES_PER_NODE, seed)), `${nodes} nodes, m=${EDGES_PER_NODE}`);

const pagerank: SuiteFunction = {
  name: 'pagerank',
  dir: 'functions/suite/pagerank',
  initObjects: () => [],
  twoInputs: () => [graphInput('pagerank/input-0', 90_000, 1), graphInput('pagerank/input-1', 100_000, 2)],
  sweepInputs: () => [25_000, 50_000, 100_000, 200_000, 300_000, 400_000].map((n, i) => graphInput(`pagerank/sweep-${i}`, n, 10 + i)),
  smallInput: () => graphInput('pagerank/small', 200, 7),
  event,
  /** Ranks sum to 1 (1e-6) and match a TypeScript PageRank on the same edges (1e-9 relative). */
  check(inp, reply, output) {
    const s = commonReply('pagerank', inp, reply);
    const graph = decodeEdgeList(inp.bytes);
    expectEqual('pagerank', 'output size', output.length, graph.nodes * 8);
    const ranks = float64s(output);
    let sum = 0;
    for (const r of ranks) sum += r;
    if (!(Math.abs(sum - 1) <= 1e-6)) fail('pagerank', `ranks sum to ${sum}, not 1`);
    expectClose('pagerank', 'summary.rank_sum', num('pagerank', s, 'rank_sum'), 1, 1e-6);
    const ref = pageRank(graph);
    expectEqual('pagerank', 'summary.iterations', num('pagerank', s, 'iterations'), ref.iterations);
    let top = 0;
    for (let i = 0; i < graph.nodes; i++) {
      expectClose('pagerank', `rank[${i}]`, ranks[i]!, ref.ranks[i]!, 1e-9);
      if (ref.ranks[i]! > ref.ranks[top]!) top = i;
    }
    expectEqual('pagerank', 'summary.top_node', num('pagerank', s, 'top_node'), top);
  },
};

// ---- recognition ---------------------------------------------------------------------------

let modelCache: Uint8Array | undefined;
/** The published model (~100 MB), generated once per process. */
function model(): Uint8Array {
  modelCache ??= recognitionModel(RECOGNITION_MODEL_SEED);
  return modelCache;
}

const imagesInput = (key: string, size: number, seed: number): SuiteInput =>
  input(key, recognitionImages(2, size, size, seed), `2 images ${size}x${size} RGB`);

/** Image sets up to this many pixels per image are checked against a full TypeScript forward pass. */
const FULL_CHECK_PIXELS = 64 * 64;

const recognition: SuiteFunction = {
  name: 'recognition',
  dir: 'functions/suite/recognition',
  initObjects: () => [input(RECOGNITION_MODEL_KEY, model(), 'TRN1 model, ~25M float32 parameters')],
  twoInputs: () => [imagesInput('recognition/input-0', 224, 1), imagesInput('recognition/input-1', 224, 2)],
  smallInput: () => imagesInput('recognition/small', 32, 7),
  event,
  /**
   * Small images: every logit against the TypeScript forward pass (1e-4 relative). 224x224
   * images would take the TypeScript pass tens of seconds, so for them only the reply's
   * top-1 classes and checksum are checked against the output logits.
   */
  check(inp, reply, output) {
    const s = commonReply('recognition', inp, reply);
    const { count, height, width } = imageSetShape(inp.bytes);
    const classes = num('recognition', s, 'classes');
    expectEqual('recognition', 'output size', output.length, count * classes * 4);
    const logits = float32s(output);
    if (height * width <= FULL_CHECK_PIXELS) {
      const ref = recognitionForward(model(), inp.bytes);
      for (let i = 0; i < ref.length; i++) expectClose('recognition', `logit[${i}]`, logits[i]!, ref[i]!, 1e-4);
    }
    let checksum = 0;
    const top1: number[] = [];
    for (let n = 0; n < count; n++) {
      let top = 0;
      for (let k = 0; k < classes; k++) {
        const v = logits[n * classes + k]!;
        if (!Number.isFinite(v)) fail('recognition', `logit ${k} of image ${n} is ${v}`);
        checksum += v;
        if (v > logits[n * classes + top]!) top = k;
      }
      top1.push(top);
    }
    expectEqual('recognition', 'summary.top1', JSON.stringify(s.top1), JSON.stringify(top1));
    expectClose('recognition', 'summary.logits_checksum', num('recognition', s, 'logits_checksum'), checksum, 1e-9);
  },
};

// ---- video ---------------------------------------------------------------------------------

/** 1080p is 6.2 MB per RGB24 frame: ten frames keep the clip and its output at ~62 MB each. */
const clipInput = (key: string, width: number, height: number, frames: number, seed: number): SuiteInput =>
  input(key, videoClip({ width, height, frames }, seed), `${frames} frames ${width}x${height} RGB24`);

const video: SuiteFunction = {
  name: 'video',
  dir: 'functions/suite/video',
  initObjects: () => [],
  twoInputs: () => [clipInput('video/input-0', 1920, 1080, 10, 1), clipInput('video/input-1', 1920, 1080, 10, 2)],
  smallInput: () => clipInput('video/small', 33, 17, 2, 7),
  event,
  /** The output is byte for byte the TypeScript flip of the input. */
  check(inp, reply, output) {
    const s = commonReply('video', inp, reply);
    const shape = clipShape(inp.bytes);
    expectEqual('video', 'summary.frames', num('video', s, 'frames'), shape.frames);
    const expected = flipClip(inp.bytes);
    expectEqual('video', 'output size', output.length, expected.length);
    if (!Buffer.from(output).equals(Buffer.from(expected))) {
      const at = expected.findIndex((v, i) => output[i] !== v);
      fail('video', `output differs from the flipped input first at byte ${at}`);
    }
  },
};

/** The C (wasi) suite functions. */
export const NATIVE_SUITE: readonly SuiteFunction[] = [mmap, matmul, pagerank, recognition, video];

// The benchmark function suite (FaaSnap's functions on Thaw's runtimes): the contract each
// suite function implements, so that tests, `npm run bench:functions` and the experiment
// harness drive every function the same way.

/** One input of a suite function, stored as an object before the function runs. */
export interface SuiteInput {
  /** Object key, e.g. "json/input-0". Stable across runs. */
  readonly key: string;
  /** Deterministic contents (generated, never downloaded). */
  readonly bytes: Uint8Array;
  /** Human-readable size/shape, e.g. "12.6 KB", "n=1100", "100x300". */
  readonly description: string;
}

/** What every suite function replies (JSON), as FaaSnap's function agents did. */
export interface SuiteReply {
  readonly read_s: number;
  readonly process_s: number;
  readonly write_s: number;
  /** Object key the function wrote its output to. */
  readonly output_key: string;
  /** Small, function-specific facts for checking (sizes, sums, digests). */
  readonly summary: Record<string, unknown>;
}

/** A deployable suite function with its inputs and its correctness check. */
export interface SuiteFunction {
  /** Suite name as in the papers: hello, mmap, read, json, image, matmul, pyaes, chameleon, compression, recognition, pagerank, video. */
  readonly name: string;
  /** Directory (relative to the repository root) holding function.json and the sources. */
  readonly dir: string;
  /** Objects that must exist before init (e.g. the recognition model); written by the harness. */
  initObjects(): SuiteInput[];
  /**
   * The published inputs: index 0 = record input, 1 = test input; where the original had a
   * six-input sweep, indices 0..5 are the sweep instead (sweepInputs).
   */
  twoInputs(): SuiteInput[];
  /** Six-input sweep, where the original had one. */
  sweepInputs?(): SuiteInput[];
  /** A small input for tests, quick on every path. */
  smallInput(): SuiteInput;
  /** The request for one input: JSON naming the input key and the output key. */
  event(input: SuiteInput): Uint8Array;
  /**
   * Checks a reply and the output object against an independent computation.
   * Throws an Error naming what is wrong.
   */
  check(input: SuiteInput, reply: SuiteReply, output: Uint8Array): void;
}

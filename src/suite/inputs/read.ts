// Inputs of the suite function "read" and the expected result of its strided reads, computed
// without the guest: element i of the guest's list is READ_PATTERN[i % 256].

/** Length of the list the guest builds at init (functions/suite/read/handler.py LIST_LENGTH). */
export const READ_LIST_LENGTH = 16 * 1024 * 1024;

/** The guest list's repeating 256-element pattern: (j * 167 + 13) % 256, a permutation of 0..255. */
export const READ_PATTERN: readonly number[] = Array.from({ length: 256 }, (_, j) => (j * 167 + 13) % 256);

/** One request of "read": reads list[(start + k * stride) % READ_LIST_LENGTH] for k < count. */
export interface ReadParams {
  readonly start: number;
  readonly stride: number;
  readonly count: number;
}

/** The input object for `params` (JSON). */
export function readInputBytes(params: ReadParams): Uint8Array {
  return Buffer.from(JSON.stringify(params));
}

/** Sum of the values the guest reads for `params`. */
export function expectedReadSum(params: ReadParams): number {
  let total = 0;
  let i = params.start % READ_LIST_LENGTH;
  for (let k = 0; k < params.count; k++) {
    total += READ_PATTERN[i % 256] ?? 0;
    i = (i + params.stride) % READ_LIST_LENGTH;
  }
  return total;
}

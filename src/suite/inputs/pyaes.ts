// Inputs of the suite function "pyaes" (seeded random messages) and the reference AES-CTR from
// node:crypto with the guest's key and counter.

import { createCipheriv } from 'node:crypto';
import { SuiteRng } from './python-suite-rng.js';

/** The guest's key (functions/suite/pyaes/handler.py KEY, the original benchmark's AES-128 key). */
export const PYAES_KEY = Buffer.from('a1f6258c877d5fcd8964484538bfc92c', 'hex');

/** The guest's first counter block: the 128-bit big-endian integer 1 (pyaes's default Counter). */
export const PYAES_INITIAL_COUNTER_BLOCK = Buffer.from('00000000000000000000000000000001', 'hex');

/** A message of `n` seeded random bytes. */
export function pyaesMessage(seed: number, n: number): Uint8Array {
  return new SuiteRng(seed).bytes(n);
}

/** AES-128-CTR with the guest's key and counter (encryption and decryption are the same). */
export function pyaesReferenceCtr(data: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-128-ctr', PYAES_KEY, PYAES_INITIAL_COUNTER_BLOCK);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}
